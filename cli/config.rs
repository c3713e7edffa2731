//! The policy file, `imgscan.toml` (issue #12), and where each scan setting
//! comes from: a flag, then its `IMGSCAN_*` environment variable (clap reads
//! both), then the policy file, then the default.
//!
//! The file is `--config FILE` (`IMGSCAN_CONFIG`), else `imgscan.toml` in
//! the working directory when there is one, unless `--no-config`. Unknown
//! keys are errors: a misspelt `fail_on` must not silently keep the default.
//! Relative paths in the file are relative to the file's directory.
//! docs/policy.md documents every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context as _, Result, bail};
use clap::ArgMatches;
use clap::ValueEnum;
use clap::parser::ValueSource;
use scanner::checks::RULES;
use scanner::model::{Finding, Report, Severity};
use scanner::policy::{Date, Ignore, Pins, Policy};
use scanner::rules::RuleId;
use serde::Deserialize;

use crate::args::{FailOn, Format, Gate, ScanArgs};

/// The file name looked for in the working directory.
pub(crate) const FILE_NAME: &str = "imgscan.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    fail_on: Option<String>,
    gate: Option<String>,
    format: Option<String>,
    output: Option<PathBuf>,
    json: Option<PathBuf>,
    sarif: Option<PathBuf>,
    junit: Option<PathBuf>,
    platform: Option<String>,
    baseline: Option<String>,
    show_suppressed: Option<bool>,
    cache_dir: Option<PathBuf>,
    no_cache: Option<bool>,
    cache_max_size: Option<String>,
    #[serde(default)]
    disabled_rules: Vec<String>,
    #[serde(default)]
    severity: BTreeMap<String, String>,
    #[serde(default)]
    ignore: Vec<toml::Spanned<IgnoreEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreEntry {
    rule: String,
    path: Option<String>,
    reason: Option<String>,
    expires: Option<toml::Value>,
    fingerprint: Option<String>,
    sha256: Option<String>,
    mode: Option<String>,
    owner: Option<String>,
}

/// A rule by id (`setuid-binary`) or code (`IS004`).
pub(crate) fn rule(s: &str) -> Result<RuleId> {
    if let Ok(r) = RuleId::from_str(s) {
        return Ok(r);
    }
    if let Some(m) = RULES.iter().find(|m| m.code.eq_ignore_ascii_case(s)) {
        return Ok(m.id);
    }
    let ids: Vec<&str> = RULES.iter().map(|m| m.id.as_str()).collect();
    bail!("unknown rule `{s}`; rules are: {}", ids.join(", "))
}

/// Whether the argument `id` was left to its default (neither a flag nor
/// an environment variable gave it).
fn defaulted(m: &ArgMatches, id: &str) -> bool {
    matches!(m.value_source(id), None | Some(ValueSource::DefaultValue))
}

fn value_enum<T: ValueEnum>(s: &str, key: &str) -> Result<T> {
    T::from_str(s, true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_owned()))
            .collect();
        anyhow::anyhow!("`{key} = \"{s}\"`: expected one of {}", names.join(", "))
    })
}

/// Reads the policy file (if any) into the settings the command line and
/// the environment left at their defaults, and returns the policy.
pub(crate) fn load(args: &mut ScanArgs, m: &ArgMatches) -> Result<Policy> {
    let path = match (&args.config, args.no_config) {
        (Some(_), true) => {
            bail!("--config and --no-config (or IMGSCAN_CONFIG) contradict each other")
        }
        (Some(p), false) => Some(p.clone()),
        (None, false) if Path::new(FILE_NAME).is_file() => Some(PathBuf::from(FILE_NAME)),
        (None, _) => None,
    };
    let Some(path) = path else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the policy file {}", path.display()))?;
    parse(&text, &path, args, m).with_context(|| format!("in the policy file {}", path.display()))
}

fn parse(text: &str, path: &Path, args: &mut ScanArgs, m: &ArgMatches) -> Result<Policy> {
    let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let rel = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
    if let Some(v) = &file.fail_on
        && defaulted(m, "fail_on")
    {
        args.fail_on = value_enum::<FailOn>(v, "fail_on")?;
    }
    if let Some(v) = &file.gate
        && defaulted(m, "gate")
    {
        args.gate = value_enum::<Gate>(v, "gate")?;
    }
    if let Some(v) = &file.format
        && defaulted(m, "format")
    {
        args.format = value_enum::<Format>(v, "format")?;
    }
    for (key, have, from_file) in [
        ("output", &mut args.output, file.output),
        ("json", &mut args.json, file.json),
        ("sarif", &mut args.sarif, file.sarif),
        ("junit", &mut args.junit, file.junit),
    ] {
        if let Some(p) = from_file
            && defaulted(m, key)
        {
            *have = Some(rel(p));
        }
    }
    if let Some(v) = file.platform
        && defaulted(m, "platform")
    {
        args.platform = Some(v);
    }
    if let Some(v) = file.baseline
        && defaulted(m, "baseline")
    {
        // A file next to the policy file, or anything else imgscan reads.
        let local = rel(PathBuf::from(&v));
        args.baseline = Some(
            if v != "auto" && !Path::new(&v).is_absolute() && local.exists() {
                local.to_string_lossy().into_owned()
            } else {
                v
            },
        );
    }
    if let Some(v) = file.show_suppressed
        && defaulted(m, "show_suppressed")
    {
        args.show_suppressed = v;
    }
    if let Some(p) = file.cache_dir
        && defaulted(m, "cache_dir")
    {
        args.cache.cache_dir = Some(rel(p));
    }
    if let Some(v) = file.no_cache
        && defaulted(m, "no_cache")
    {
        args.cache.no_cache = v;
    }
    if let Some(v) = &file.cache_max_size
        && defaulted(m, "cache_max_size")
    {
        args.cache.cache_max_size = scanner::budget::parse_size(v)
            .map_err(|e| anyhow::anyhow!("`cache_max_size = \"{v}\"`: {e}"))?;
    }

    let name = path.display().to_string();
    let mut policy = Policy {
        config: Some(name.clone()),
        ..Policy::default()
    };
    for r in &file.disabled_rules {
        policy
            .disabled
            .insert(rule(r).with_context(|| "in `disabled_rules`")?);
    }
    for (r, s) in &file.severity {
        let sev = Severity::from_str(s).map_err(|_| {
            anyhow::anyhow!(
                "`severity.{r} = \"{s}\"`: not a severity (critical, high, medium, low, info)"
            )
        })?;
        policy
            .severity
            .insert(rule(r).with_context(|| format!("in `severity.{r}`"))?, sev);
    }
    policy.validate().map_err(anyhow::Error::msg)?;
    for (i, spanned) in file.ignore.into_iter().enumerate() {
        let line = text[..spanned.span().start.min(text.len())]
            .lines()
            .count()
            .max(1);
        let label = format!("{name}: ignore {} (line {line})", i + 1);
        let e = spanned.into_inner();
        let parsed = ignore(e, label.clone()).with_context(|| label.clone())?;
        policy.ignores.push(parsed);
    }
    Ok(policy)
}

fn ignore(e: IgnoreEntry, label: String) -> Result<Ignore> {
    let rule = rule(&e.rule)?;
    let Some(reason) = e.reason else {
        bail!("no `reason`: every ignore entry says why the finding is accepted");
    };
    let expires = match e.expires {
        None => None,
        Some(toml::Value::String(s)) => Some(Date::parse(&s).map_err(anyhow::Error::msg)?),
        Some(toml::Value::Datetime(d)) if d.time.is_none() && d.offset.is_none() => {
            Some(Date::parse(&d.to_string()).map_err(anyhow::Error::msg)?)
        }
        Some(v) => bail!("`expires = {v:?}`: expected a date, such as 2027-03-31"),
    };
    let mode = match e.mode {
        None => None,
        Some(m) => Some(
            u32::from_str_radix(&m, 8)
                .ok()
                .filter(|v| *v <= 0o7777)
                .with_context(|| {
                    format!("`mode = \"{m}\"`: expected octal permission bits, such as \"4755\"")
                })?,
        ),
    };
    let owner = match e.owner {
        None => None,
        Some(o) => {
            let bad =
                || anyhow::anyhow!("`owner = \"{o}\"`: expected UID or UID:GID, such as \"0:0\"");
            let (u, g) = match o.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (o.as_str(), None),
            };
            let uid = u.parse::<u64>().map_err(|_| bad())?;
            let gid = g.map(|g| g.parse::<u64>().map_err(|_| bad())).transpose()?;
            Some((uid, gid))
        }
    };
    let hex = |key: &str, v: Option<String>| -> Result<Option<String>> {
        v.map(|s| {
            let h = s.strip_prefix("sha256:").unwrap_or(&s).to_ascii_lowercase();
            if h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()) {
                Ok(h)
            } else {
                bail!("`{key} = \"{s}\"`: expected 64 hexadecimal digits")
            }
        })
        .transpose()
    };
    let pins = Pins {
        fingerprint: hex("fingerprint", e.fingerprint)?,
        sha256: hex("sha256", e.sha256)?,
        mode,
        owner,
    };
    Ignore::new(rule, e.path, pins, reason, expires, label).map_err(anyhow::Error::msg)
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A path as a glob that matches only itself.
fn glob_literal(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `imgscan baseline`: a policy file accepting every finding of `reports`,
/// each pinned to what was seen (fingerprint, and the content digest, mode
/// and owner where the finding has them), with `reason = "TODO"` and an
/// expiry.
pub(crate) fn accepting(reports: &[Report], expires: Date) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# imgscan policy: written by `imgscan baseline` ({}) on {}.\n\
         # Each entry accepts one finding seen today, pinned to what was seen: it\n\
         # stops accepting when the file changes or on the day after `expires`.\n\
         # Replace every reason = \"TODO\" with the real reason, or fix the finding\n\
         # and delete its entry. See docs/policy.md.\n",
        env!("CARGO_PKG_VERSION"),
        Date::today()
    ));
    let mut seen = std::collections::BTreeSet::new();
    for r in reports {
        for f in &r.findings {
            if !seen.insert((f.rule_id, f.path.clone(), f.fingerprint.clone())) {
                continue;
            }
            out.push('\n');
            entry(&mut out, r, f, expires);
        }
    }
    if seen.is_empty() {
        out.push_str("\n# No findings today: nothing to accept.\n");
    }
    out
}

fn entry(out: &mut String, r: &Report, f: &Finding, expires: Date) {
    // A comment carries no control character (TOML 1.0 allows only tab,
    // which the parser here refuses too): each is written as `\u{…}`.
    let one_line = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    format!("\\u{{{:x}}}", u32::from(c))
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    out.push_str(&format!(
        "# {} {} in {}: {}\n",
        f.rule_id,
        f.severity,
        one_line(&r.image.source),
        one_line(&f.message)
    ));
    out.push_str("[[ignore]]\n");
    out.push_str(&format!("rule = {}\n", toml_str(f.rule_id.as_str())));
    if let Some(p) = &f.path {
        out.push_str(&format!("path = {}\n", toml_str(&glob_literal(p))));
    }
    out.push_str(&format!("fingerprint = {}\n", toml_str(&f.fingerprint)));
    if let Some(s) = f.details.get("sha256").and_then(|v| v.as_str()) {
        out.push_str(&format!("sha256 = {}\n", toml_str(s)));
    }
    // A file's mode and owner; a config finding's `uid` is the user's.
    if f.path.is_none() {
        out.push_str("reason = \"TODO\"\n");
        out.push_str(&format!("expires = {expires}\n"));
        return;
    }
    if let Some(m) = f.details.get("mode").and_then(|v| v.as_str()) {
        out.push_str(&format!("mode = {}\n", toml_str(m)));
    }
    if let Some(u) = f.details.get("uid").and_then(serde_json::Value::as_u64) {
        let owner = match f.details.get("gid").and_then(serde_json::Value::as_u64) {
            Some(g) => format!("{u}:{g}"),
            None => u.to_string(),
        };
        out.push_str(&format!("owner = {}\n", toml_str(&owner)));
    }
    out.push_str("reason = \"TODO\"\n");
    out.push_str(&format!("expires = {expires}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepting_writes_toml_for_hostile_paths() {
        use scanner::model::{Finding, ImageInfo, Severity};
        let hostile = "/opt/a\tb\u{1b}[31m\u{7f}\n\"x\"*[y]";
        let image = ImageInfo {
            source: "img\n# injected = 1".to_owned(),
            format: "docker-archive".to_owned(),
            reference: None,
            manifest_digest: None,
            index_digest: None,
            config_digest: "sha256:00".to_owned(),
            platform: "linux/amd64".to_owned(),
            user: None,
            layers: Vec::new(),
            base: None,
        };
        let f = Finding {
            rule_id: RuleId::SetuidBinary,
            severity: Severity::High,
            path: Some(hostile.to_owned()),
            layer_index: None,
            layer_digest: None,
            layer_created_by: None,
            message: format!("{hostile} is setuid"),
            details: BTreeMap::new(),
            fingerprint: "ab".repeat(32),
            suppression: None,
            baseline: None,
            counts: true,
        };
        let r = Report::new(
            image,
            vec![f.clone()],
            Vec::new(),
            Default::default(),
            Default::default(),
        );
        let text = accepting(&[r], Date::parse("2027-01-01").unwrap());
        let v: toml::Value = toml::from_str(&text).expect(&text);
        let e = &v["ignore"][0];
        assert_eq!(e["path"].as_str(), Some(glob_literal(hostile).as_str()));
        assert!(v.get("injected").is_none(), "{text}");
        // And the entry accepts exactly that path.
        let i = Ignore::new(
            RuleId::SetuidBinary,
            Some(glob_literal(hostile)),
            Pins::default(),
            "r".to_owned(),
            None,
            "e".to_owned(),
        )
        .unwrap();
        assert!(i.names(&f));
        let mut other = f;
        other.path = Some("/opt/a\tb\u{1b}[31m\u{7f}\n\"x\"*y".to_owned());
        assert!(!i.names(&other), "`*[y]` is literal");
    }

    #[test]
    fn globs_of_literal_paths_match_only_themselves() {
        assert_eq!(glob_literal("/a*b/[x]"), "/a\\*b/\\[x\\]");
        assert_eq!(toml_str("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    }
}
