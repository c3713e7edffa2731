//! The `imgscan` command.
//!
//! Parses arguments, scans every image with the `scanner` crate, renders the
//! reports with the `formats` crate, and turns the result into an exit
//! status: 0 pass, 1 findings at or above `--fail-on`, 2 error. An error
//! prints nothing on standard output: a partial report must never be taken
//! for a clean one.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{CommandFactory as _, FromArgMatches as _};
use formats::{EmitOptions, OutputFormat};
use scanner::checks::RULES;
use scanner::model::{Report, Severity};
use scanner::policy::{self, BaselineReport, Date, Policy};
use scanner::rules::RuleId;
use scanner::source::registry::{Credentials, RegistryOptions};
use scanner::source::{Platform, Selection};
use scanner::{Input, ScanOptions};

mod args;
mod cache;
mod config;
mod progress;

use args::{BaselineArgs, Cli, Color, Command, FailOn, Format, Gate, RegistryArgs, ScanArgs};

/// Exit status, as documented in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitStatus {
    Success = 0,
    Findings = 1,
    Error = 2,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        Self::from(s as u8)
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The matches of the scan options, to tell a flag or an environment
    // variable from a default (the policy file fills only defaults).
    let scan_matches = match matches.subcommand() {
        Some(("scan" | "harden", m)) => m.clone(),
        Some(("baseline", m)) => m.clone(),
        _ => matches,
    };
    match run(cli, &scan_matches) {
        Ok(status) => status.into(),
        Err(err) => report_error(&err).into(),
    }
}

fn report_error(err: &anyhow::Error) -> ExitStatus {
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::BrokenPipe
        {
            return ExitStatus::Success;
        }
    }
    let mut msg = format!("imgscan: error: {err}");
    for cause in err.chain().skip(1) {
        msg.push_str(&format!("\n  cause: {cause}"));
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{msg}");
    }
    ExitStatus::Error
}

fn run(cli: Cli, m: &clap::ArgMatches) -> Result<ExitStatus> {
    match cli.command {
        Some(Command::Rules) => {
            let mut out = io::stdout().lock();
            formats::human::rules_table(&mut out)?;
            out.flush()?;
            Ok(ExitStatus::Success)
        }
        Some(Command::Explain { rule }) => {
            let meta = RuleId::from_str(&rule)
                .ok()
                .map(RuleId::meta)
                .or_else(|| RULES.iter().find(|m| m.code.eq_ignore_ascii_case(&rule)));
            let Some(meta) = meta else {
                let ids: Vec<&str> = RULES.iter().map(|m| m.id.as_str()).collect();
                bail!("unknown rule `{rule}`; rules are: {}", ids.join(", "));
            };
            let mut out = io::stdout().lock();
            formats::human::explain(&mut out, meta)?;
            out.flush()?;
            Ok(ExitStatus::Success)
        }
        Some(Command::Scan(mut args)) => scan(&mut args, m),
        Some(Command::Harden(mut args)) => harden(&mut args, m),
        Some(Command::Baseline(mut args)) => baseline(&mut args, m),
        #[cfg(feature = "serve")]
        Some(Command::Serve(args)) => serve::run(&args).map(|()| ExitStatus::Success),
        None => {
            let mut args = cli.scan;
            scan(&mut args, m)
        }
    }
}

fn threshold(f: FailOn) -> Option<Severity> {
    match f {
        FailOn::Critical => Some(Severity::Critical),
        FailOn::High => Some(Severity::High),
        FailOn::Medium => Some(Severity::Medium),
        FailOn::Low => Some(Severity::Low),
        FailOn::Info => Some(Severity::Info),
        FailOn::None => None,
    }
}

/// Scans every image of `args`, in order (any failure stops the run), and
/// judges the findings by `policy` and the baseline.
fn collect(args: &ScanArgs, policy: &Policy) -> Result<Vec<Report>> {
    if args.images.is_empty() {
        bail!("no image given; try `imgscan ./image.tar` or `imgscan --help`");
    }
    if args
        .images
        .iter()
        .filter(|i| Input::parse(i).is_ok_and(|i| i.is_stdin()))
        .count()
        > usize::from(!args.registry.password_stdin)
    {
        if args.registry.password_stdin {
            bail!(
                "standard input holds the password (--password-stdin); it cannot also be an image"
            );
        }
        bail!("standard input (`-`) can be scanned only once per run");
    }
    if args.baseline.as_deref() == Some("-")
        && (args.registry.password_stdin
            || args
                .images
                .iter()
                .any(|i| Input::parse(i).is_ok_and(|i| i.is_stdin())))
    {
        bail!("standard input is already taken; --baseline - needs it for itself");
    }
    let mut opts = ScanOptions::default();
    if let Some(p) = &args.platform {
        opts.selection = Selection {
            platform: Platform::parse(p)?,
            platform_explicit: true,
        };
    }
    opts.layer.max_entries = args.max_entries;
    opts.max_memory = args.max_memory;
    if args.no_verify {
        if let Some(i) = args
            .images
            .iter()
            .find(|i| Input::parse(i).is_ok_and(|i| i.path.is_none()))
        {
            bail!(
                "--no-verify is for trusted local files only; `{i}` is not a file or directory \
                 (standard input and registry or engine images are always verified)"
            );
        }
        opts.verify = false;
    }
    opts.registry = registry_options(&args.registry)?;
    opts.registry.progress = progress::sink(args.quiet);
    // Layers scanned before (the persistent cache) or shared between the
    // images are pulled and scanned once.
    opts.registry.layer_cache = cache::store(args);
    let mut reports: Vec<Report> = Vec::with_capacity(args.images.len());
    for image in &args.images {
        let input = Input::parse(image).with_context(|| format!("scanning {image}"))?;
        let report = scanner::scan(&input, &opts).with_context(|| format!("scanning {image}"))?;
        reports.push(report);
    }
    policy.apply(&mut reports, Date::today());
    if let Some(b) = &args.baseline {
        against_baseline(&mut reports, b, args.gate == Gate::All, &opts)?;
    }
    Ok(reports)
}

/// Marks every report's findings against the baseline `given`: a JSON
/// report, `auto` (each image's annotated base) or a base image, scanned
/// with the same options.
fn against_baseline(
    reports: &mut [Report],
    given: &str,
    gate_all: bool,
    opts: &ScanOptions,
) -> Result<()> {
    let path = Path::new(given);
    if given != "auto" && path.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("reading the baseline {given}"))?;
        // A JSON report starts with `{`; anything else is an image archive.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            let base = BaselineReport::parse(&bytes)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("reading the baseline {given}"))?;
            for r in reports.iter_mut() {
                policy::against_report(r, &base, given, gate_all);
            }
            return Ok(());
        }
    }
    let mut scanned: Vec<(String, Report)> = Vec::new();
    for r in reports.iter_mut() {
        let source = if given == "auto" {
            r.image
                .base
                .as_ref()
                .and_then(|b| b.reference())
                .with_context(|| {
                    format!(
                        "--baseline auto: {} names no base image (no \
                     org.opencontainers.image.base.name annotation on its manifest); \
                     give the base as --baseline IMAGE",
                        r.image.source
                    )
                })?
        } else {
            given.to_owned()
        };
        if !scanned.iter().any(|(s, _)| *s == source) {
            let input =
                Input::parse(&source).with_context(|| format!("scanning the baseline {source}"))?;
            let base = scanner::scan(&input, opts)
                .with_context(|| format!("scanning the baseline {source}"))?;
            scanned.push((source.clone(), base));
        }
        let base = &scanned
            .iter()
            .find(|(s, _)| *s == source)
            .expect("scanned above")
            .1;
        policy::against_base(r, base, &source, gate_all).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// `imgscan baseline`: a policy file accepting today's findings.
fn baseline(a: &mut BaselineArgs, m: &clap::ArgMatches) -> Result<ExitStatus> {
    // The policy file's settings (platform, ...) apply, its judgements do
    // not: every finding of today is listed.
    let _ = config::load(&mut a.scan, m)?;
    if a.scan.baseline.is_some() {
        bail!("imgscan baseline lists every finding; it takes no --baseline");
    }
    let reports = collect(&a.scan, &Policy::default())?;
    let expires = Date::from_days(Date::today().days() + i64::from(a.days));
    let text = config::accepting(&reports, expires);
    let out = a
        .scan
        .output
        .clone()
        .unwrap_or_else(|| config::FILE_NAME.into());
    if out.as_os_str() == "-" {
        let mut o = io::stdout().lock();
        o.write_all(text.as_bytes())?;
        o.flush()?;
    } else {
        if out.exists() && !a.force {
            bail!(
                "{} exists; give --force to replace it, or -o - to print the entries \
                 (they can be appended to an existing policy file)",
                out.display()
            );
        }
        write_file(&out, |w| Ok(w.write_all(text.as_bytes())?))?;
        if !a.scan.quiet {
            let n = reports.iter().map(|r| r.findings.len()).sum::<usize>();
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "imgscan: wrote {} accepting {n} finding{} until {expires}; replace each reason = \"TODO\"",
                    out.display(),
                    if n == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// `imgscan harden`: the runtime settings each image needs, as text
/// (Kubernetes securityContext, docker/podman flags, a compose service) or
/// as the JSON of each report's `hardening`.
fn harden(args: &mut ScanArgs, m: &clap::ArgMatches) -> Result<ExitStatus> {
    let policy = config::load(args, m)?;
    if let Format::Sarif | Format::Junit = args.format {
        bail!(
            "imgscan harden writes a table (text) or json, not {}",
            formats::OutputFormat::from(args.format)
        );
    }
    let reports = collect(args, &policy)?;
    let render = |w: &mut dyn Write| -> anyhow::Result<()> {
        match args.format {
            Format::Json => {
                let doc: Vec<serde_json::Value> = reports
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "image": r.image.source,
                            "verdict": r.escalation.verdict,
                            "hardening": r.hardening,
                        })
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut *w, &doc)?;
                writeln!(w)?;
            }
            Format::Table => {
                for (i, r) in reports.iter().enumerate() {
                    if i > 0 {
                        writeln!(w)?;
                    }
                    formats::human::harden(w, r)?;
                }
            }
            Format::Sarif | Format::Junit => unreachable!("refused above"),
        }
        Ok(())
    };
    match &args.output {
        Some(path) => write_file(path, render)?,
        None => {
            let mut out = io::BufWriter::new(io::stdout().lock());
            render(&mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitStatus::Success)
}

fn scan(args: &mut ScanArgs, m: &clap::ArgMatches) -> Result<ExitStatus> {
    let policy = config::load(args, m)?;
    let todo = policy.ignores.iter().filter(|i| i.reason == "TODO").count();
    let reports = collect(args, &policy)?;
    if todo > 0 && !args.quiet {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "imgscan: note: {todo} ignore entr{} of {} still say reason = \"TODO\"",
                if todo == 1 { "y" } else { "ies" },
                policy.config.as_deref().unwrap_or("the policy file")
            );
        }
    }

    // Every image is scanned before anything is written: a failed scan
    // leaves no partial output. The reports are then written as they are
    // rendered, not rendered into memory first: a report of a million
    // findings is hundreds of MB of JSON.
    let to_terminal = args.output.is_none() && io::stdout().is_terminal();
    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => to_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let primary = OutputFormat::from(args.format);
    let fail_on = threshold(args.fail_on);
    let plain = EmitOptions {
        color: false,
        fail_on,
        show_suppressed: args.show_suppressed,
    };
    for (path, format) in [
        (&args.json, OutputFormat::Json),
        (&args.sarif, OutputFormat::Sarif),
        (&args.junit, OutputFormat::Junit),
    ] {
        if let Some(path) = path {
            write_file(path, |w| formats::emit(format, &plain, &reports, w))?;
        }
    }
    let opts = EmitOptions {
        color,
        fail_on,
        show_suppressed: args.show_suppressed,
    };
    let main = |w: &mut dyn Write| formats::emit(primary, &opts, &reports, w);
    match &args.output {
        Some(path) => write_file(path, main)?,
        None if args.quiet => {}
        None => {
            let mut out = io::BufWriter::with_capacity(256 * 1024, io::stdout().lock());
            main(&mut out)?;
            out.flush()?;
        }
    }
    // The reason for exit 1, on stderr in every format and even with
    // --quiet: a CI log must say why the job failed (issue #12).
    Ok(match formats::gate::summary(&reports, fail_on) {
        Some(line) => {
            // Not `?`: a closed stderr must not turn exit 1 into the broken
            // pipe's exit 0.
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "{line}").and_then(|()| err.flush());
            ExitStatus::Findings
        }
        None => ExitStatus::Success,
    })
}

impl From<Format> for OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => Self::Table,
            Format::Json => Self::Json,
            Format::Sarif => Self::Sarif,
            Format::Junit => Self::Junit,
        }
    }
}

/// Registry options from the command line; reads the password from
/// standard input for --password-stdin.
fn registry_options(a: &RegistryArgs) -> Result<RegistryOptions> {
    let mut o = RegistryOptions {
        ca_certs: a.ca_cert.clone(),
        insecure: a.insecure_registry.clone(),
        timeout: Duration::from_secs(a.timeout.max(1)),
        request_timeout: Duration::from_secs(a.request_timeout.max(1)),
        attempts: a.retries.saturating_add(1),
        ..RegistryOptions::default()
    };
    if let (Some(username), true) = (&a.username, a.password_stdin) {
        let mut password = String::new();
        io::stdin()
            .lock()
            .read_line(&mut password)
            .context("reading the password from standard input")?;
        let password = password.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("--password-stdin: standard input holds no password");
        }
        o.credentials = Some(Credentials {
            username: username.clone(),
            password,
            origin: "--username and --password-stdin".to_owned(),
        });
    }
    Ok(o)
}

/// Writes a file whole, as `write` renders it: to a temporary name beside
/// it, then renamed.
fn write_file(path: &Path, write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>) -> Result<()> {
    let create = |p: &Path| -> Result<()> {
        let f = std::fs::File::create(p).with_context(|| format!("writing {}", p.display()))?;
        let mut w = io::BufWriter::with_capacity(256 * 1024, f);
        write(&mut w).with_context(|| format!("writing {}", p.display()))?;
        w.flush()
            .with_context(|| format!("writing {}", p.display()))?;
        Ok(())
    };
    // Devices, pipes and the like (`--output /dev/null`, `/dev/stdout`) are
    // written in place: renaming over them would replace the device node.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return create(path);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.imgscan-tmp", name.to_string_lossy()));
    if let Err(e) = create(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
