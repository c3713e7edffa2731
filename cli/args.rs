//! Command-line arguments (clap derive). Doc comments are the help text.

// Help text shows `[:REF]`-style syntax, which rustdoc would read as links.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A `--max-memory` size.
fn parse_size(s: &str) -> Result<u64, String> {
    scanner::budget::parse_size(s)
}

/// Static container-image scanner for root and privilege problems.
///
/// Reads a docker-save tarball, an OCI layout or an oci-archive without
/// running it, applies the layers (whiteouts and all), and reports setuid and
/// setgid binaries, file capabilities, root-owned world-writable paths, a root
/// USER and remote shell daemons on the final filesystem, then answers whether
/// the container runs as root or its user can become root (each path with
/// its proof and what closes it).
///
/// Exit status: 0 no findings at or above --fail-on, 1 findings at or above
/// it (with a one-line "gate failed" summary on stderr, in every format and
/// even with --quiet), 2 error (message on stderr, nothing on stdout).
#[derive(Debug, Parser)]
#[command(
    name = "imgscan",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  imgscan ./image.tar\n  docker save app:1.4 | imgscan -\n  imgscan --format sarif --output imgscan.sarif oci:./layout:app\n  imgscan --json report.json --sarif report.sarif --fail-on critical image.tar\n  imgscan --quiet --junit imgscan-junit.xml image.tar"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) scan: ScanArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Scan one or more images (the default command).
    Scan(ScanArgs),
    /// Print the runtime settings that close the image's paths to root,
    /// derived from the image: a Kubernetes securityContext, docker and
    /// podman flags, a compose service, whether it fits the Pod Security
    /// Standards restricted profile, and what each setting breaks in it.
    /// Takes the scan's options; --format json prints each report's
    /// `hardening`; exit 0 unless the scan fails (--fail-on is not used).
    Harden(ScanArgs),
    /// Write a policy file that accepts every finding the images have today
    /// (for adopting the gate on an existing fleet): one [[ignore]] entry per
    /// finding, pinned to its fingerprint (and content digest, mode and owner
    /// where known), with reason = "TODO" and an expiry. Writes --output
    /// (default imgscan.toml; `-` for standard output); refuses to replace
    /// an existing file without --force. Exit 0, or 2 on errors.
    Baseline(BaselineArgs),
    /// List every rule with its code, default severity and summary.
    Rules,
    /// Explain a rule: what it flags, why, how to fix it, how severity is chosen.
    Explain {
        /// A rule id (`setuid-binary`) or code (`IS004`).
        rule: String,
    },
    /// Run the registry hook: scan every image pushed to a registry
    /// (distribution notifications, Harbor's scanner API) and serve the
    /// reports. See docs/serve.md.
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
}

/// Severity threshold for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailOn {
    Critical,
    High,
    Medium,
    Low,
    Info,
    /// Never exit 1 (still exit 2 on errors).
    None,
}

/// Which findings a baseline lets through the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Gate {
    /// Only what is new against the baseline counts (paths to root always
    /// count).
    New,
    /// Everything counts: inherited and unchanged findings too.
    #[value(alias = "inherited")]
    All,
}

/// `imgscan baseline`.
#[derive(Debug, Args)]
pub(crate) struct BaselineArgs {
    /// Days until each entry expires (its `expires` date).
    #[arg(long, value_name = "DAYS", default_value_t = 90)]
    pub(crate) days: u32,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) scan: ScanArgs,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// A table for people.
    Table,
    /// The JSON report (see formats/schema/report.schema.json).
    Json,
    /// SARIF 2.1.0 for GitHub code scanning.
    Sarif,
    /// JUnit XML for GitLab, Jenkins and Azure test reports: a test suite per
    /// image, a test case per rule, a failure per finding at or above
    /// --fail-on.
    Junit,
}

/// When to colour the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    /// When writing the table to a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// Images to scan: PATH (docker-archive, oci-archive, OCI layout directory,
    /// gzipped docker-archive), PATH:REF, docker-archive:PATH[:REF|:@N],
    /// oci-archive:PATH[:REF], oci:DIR[:REF], - for standard input,
    /// HOST[:PORT]/REPO[:TAG|@DIGEST] or docker://REF for a registry, or
    /// docker-daemon:NAME[:TAG] for the local engine (DOCKER_HOST). A bare
    /// name is a file if one exists, else a registry reference (Docker Hub
    /// for short names), else an image in the local engine.
    #[arg(value_name = "IMAGE")]
    pub(crate) images: Vec<String>,

    /// Format of the report on standard output (or --output).
    #[arg(short, long, value_enum, default_value_t = Format::Table, env = "IMGSCAN_FORMAT")]
    pub(crate) format: Format,

    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE", env = "IMGSCAN_OUTPUT")]
    pub(crate) output: Option<PathBuf>,

    /// Also write the JSON report to FILE (in the same run as --format).
    #[arg(long, value_name = "FILE", env = "IMGSCAN_JSON")]
    pub(crate) json: Option<PathBuf>,

    /// Also write the SARIF report to FILE (in the same run as --format).
    #[arg(long, value_name = "FILE", env = "IMGSCAN_SARIF")]
    pub(crate) sarif: Option<PathBuf>,

    /// Also write the JUnit XML report to FILE (in the same run as --format).
    #[arg(long, value_name = "FILE", env = "IMGSCAN_JUNIT")]
    pub(crate) junit: Option<PathBuf>,

    /// Exit 1 when a finding is at or above this severity, and print one
    /// line on stderr saying why ("imgscan: gate failed: ..."). JUnit
    /// writes a failure for each such finding.
    #[arg(long, value_enum, default_value_t = FailOn::High, value_name = "SEVERITY", env = "IMGSCAN_FAIL_ON")]
    pub(crate) fail_on: FailOn,

    /// The policy file: fail_on, severity overrides, disabled rules, ignore
    /// entries, the baseline, output files (docs/policy.md). Default:
    /// imgscan.toml in the working directory, if there is one. Flags win
    /// over IMGSCAN_* environment variables, which win over the file.
    #[arg(long, value_name = "FILE", env = "IMGSCAN_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Read no policy file, not even ./imgscan.toml.
    #[arg(long, env = "IMGSCAN_NO_CONFIG", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) no_config: bool,

    /// Judge the image against a baseline: a base image (anything imgscan
    /// reads; its findings in the base's layers are `inherited`), an
    /// earlier JSON report (findings with its fingerprints are
    /// `unchanged`), or `auto` (the base image the manifest's
    /// org.opencontainers.image.base.name/.digest annotations name).
    /// Baselined findings are reported but do not fail the gate, unless
    /// --gate all; paths to root always count.
    #[arg(long, value_name = "IMAGE|REPORT.json|auto", env = "IMGSCAN_BASELINE")]
    pub(crate) baseline: Option<String>,

    /// With --baseline: `new` (only new findings count) or `all`
    /// (inherited and unchanged ones too; alias `inherited`).
    #[arg(long, value_enum, default_value_t = Gate::New, value_name = "WHICH", env = "IMGSCAN_GATE")]
    pub(crate) gate: Gate,

    /// List the findings ignore entries accepted in the table (they are
    /// always in JSON, SARIF and JUnit, marked, and counted in the summary).
    #[arg(long, env = "IMGSCAN_SHOW_SUPPRESSED", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) show_suppressed: bool,

    /// Platform to pick from a multi-platform index: os/arch[/variant].
    /// Default: linux and this machine's architecture.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", env = "IMGSCAN_PLATFORM")]
    pub(crate) platform: Option<String>,

    /// Most tar entries accepted in one layer (a safety limit on memory).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4_000_000,
        env = "IMGSCAN_MAX_ENTRIES"
    )]
    pub(crate) max_entries: u64,

    /// Most memory one image may make imgscan hold, all layers together:
    /// member records and names, symlink targets, whiteouts, captured files,
    /// buffered documents and the final filesystem. A size in bytes or with a
    /// binary suffix: 512M, 1G, 2048K. Going over is an error (exit 2) naming
    /// the limit, never an out-of-memory kill. Each image of a run has its own.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size, env = "IMGSCAN_MAX_MEMORY")]
    pub(crate) max_memory: u64,

    /// Do not verify layer digests: for trusted local files only (a
    /// docker-archive, oci-archive or OCI layout on this machine). Uncompressed
    /// layers are then read by seeking over file contents, reading only the
    /// headers and the few files checks need. The manifest and config are
    /// still verified, and the report carries a warning. Never the default.
    #[arg(long, env = "IMGSCAN_NO_VERIFY", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) no_verify: bool,

    /// Colour the table.
    #[arg(long, value_enum, default_value_t = Color::Auto, env = "IMGSCAN_COLOR")]
    pub(crate) color: Color,

    /// Print nothing but errors and, when the gate fails, its one-line
    /// summary on stderr (the reason for exit 1, for CI logs). Reports
    /// still go to the files given.
    #[arg(short, long, env = "IMGSCAN_QUIET", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) quiet: bool,

    // Boxed: it would make `Command::Scan` much larger than its siblings.
    #[command(flatten)]
    pub(crate) registry: Box<RegistryArgs>,

    #[command(flatten)]
    pub(crate) cache: CacheArgs,
}

/// How to reach registries (`imgscan HOST/REPO:TAG`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Registry options")]
pub(crate) struct RegistryArgs {
    /// Registry username. The password is read from standard input
    /// (--password-stdin). Without it: IMGSCAN_USERNAME/IMGSCAN_PASSWORD,
    /// then the docker config ($DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json: auths, credHelpers, credsStore), then podman's
    /// auth.json, else anonymous.
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub(crate) username: Option<String>,

    /// Read the registry password (or token) for --username from standard input.
    #[arg(long, requires = "username")]
    pub(crate) password_stdin: bool,

    /// Trust this CA certificate (PEM) for registries, besides the system roots.
    /// Repeatable (IMGSCAN_CA_CERT: one file).
    #[arg(long, value_name = "FILE", env = "IMGSCAN_CA_CERT")]
    pub(crate) ca_cert: Vec<PathBuf>,

    /// Reach this registry over plain HTTP or TLS without verification.
    /// Repeatable. Loopback registries (localhost, 127.0.0.0/8, ::1) fall back
    /// to plain HTTP without it when they do not speak TLS.
    /// Repeatable (IMGSCAN_INSECURE_REGISTRY: comma-separated).
    #[arg(
        long,
        value_name = "HOST[:PORT]",
        env = "IMGSCAN_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    pub(crate) insecure_registry: Vec<String>,

    /// Give up on one registry image after this many seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 1800,
        env = "IMGSCAN_TIMEOUT"
    )]
    pub(crate) timeout: u64,

    /// Connect limit and idle-read limit of each registry request, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        env = "IMGSCAN_REQUEST_TIMEOUT"
    )]
    pub(crate) request_timeout: u64,

    /// Retries of a registry request after 429, 5xx, timeouts and broken
    /// connections (with exponential backoff).
    #[arg(long, value_name = "N", default_value_t = 4, env = "IMGSCAN_RETRIES")]
    pub(crate) retries: u32,
}

/// The persistent layer cache of registry pulls (cli/cache.rs).
#[derive(Debug, Args)]
#[command(next_help_heading = "Cache options")]
pub(crate) struct CacheArgs {
    /// Keep the scans of registry image layers in DIR, by verified blob
    /// digest: a layer scanned before is not downloaded again (the manifest
    /// and config always are). Default: $XDG_CACHE_HOME/imgscan, else
    /// $HOME/.cache/imgscan. The directory is created mode 0700, its
    /// layers.db 0600; processes may share it. A cache that cannot be used
    /// is a warning and the scan goes on without it.
    #[arg(long, value_name = "DIR", env = "IMGSCAN_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,

    /// Use no layer cache: download and scan every layer. IMGSCAN_NO_CACHE
    /// takes 1, true, yes, on (or 0, false, no, off).
    #[arg(
        long,
        env = "IMGSCAN_NO_CACHE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub(crate) no_cache: bool,

    /// Most bytes of layer scans the cache keeps (512M, 4G, bytes); the
    /// least recently used go first.
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "2G",
        value_parser = parse_size,
        env = "IMGSCAN_CACHE_MAX_SIZE"
    )]
    pub(crate) cache_max_size: u64,
}
