//! SARIF 2.1.0 for GitHub code scanning and other SARIF consumers.
//!
//! # Format
//!
//! A hand-written subset of the OASIS SARIF 2.1.0 model (as ruff, cargo-deny
//! and cargo-audit write theirs), shaped by what GitHub code scanning reads
//! (<https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html>,
//! <https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning>):
//!
//! * one `run` per image, each with its own `automationDetails.id`
//!   (`imgscan/<image>/`), because code scanning rejects two runs of one tool
//!   and category in one upload;
//! * `tool.driver.rules` lists **every** rule of [`RULES`], not just those that
//!   fired, so `ruleIndex` is the rule's position in [`RULES`] in every file;
//!   `properties.security-severity` carries the default severity's score and
//!   `tags` start with `security`;
//! * each result has exactly one location. Images are not files in the
//!   repository, so the URI is `<image>/<path in image>` (Grype and Trivy do
//!   the same), where `<image>` is the repository part of the reference
//!   without registry, tag or digest ([`image_short_name`]). A `name:tag` URI
//!   would parse as a URI with scheme `name` and fail the upload
//!   (aquasecurity/trivy-action#114). The full reference, layer digest and path
//!   are in `logicalLocations` and `properties`;
//! * `partialFingerprints.primaryLocationLineHash` is our own stable hash,
//!   because `upload-sarif` can only compute one for files in the checkout;
//!   `imgscan/v1` is the finding's fingerprint from the JSON report;
//! * scan warnings become `invocations[0].toolExecutionNotifications`;
//! * a run holds at most 25,000 results, the code scanning limit for one
//!   upload: past it, the least severe are left out and an error notification
//!   says how many.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use scanner::checks::RULES;
use scanner::model::{BaselineState, Finding, ImageInfo, Report, Severity, SuppressionStatus};
use scanner::rules::RuleMeta;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::Emitter;

/// The `$schema` GitHub's documentation uses.
const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// GitHub truncates descriptions longer than this.
const MAX_DESCRIPTION: usize = 1024;
/// Code scanning rejects a whole upload with more results than this in one
/// run ("Upload limits" in GitHub's SARIF documentation, linked above).
const MAX_RESULTS: usize = 25_000;

/// Writes SARIF 2.1.0 (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct SarifEmitter;

impl Emitter for SarifEmitter {
    fn emit(&mut self, w: &mut dyn Write, reports: &[Report]) -> anyhow::Result<()> {
        serde_json::to_writer_pretty(&mut *w, &log(reports))?;
        w.write_all(b"\n")?;
        Ok(())
    }
}

/// A SARIF `level`. Code scanning shows `security-severity` in preference,
/// but `level` still drives the annotation style and non-GitHub consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Critical and high findings.
    Error,
    /// Medium findings.
    Warning,
    /// Low and info findings.
    Note,
}

impl From<Severity> for Level {
    /// critical/high → error, medium → warning, low/info → note (the mapping
    /// Trivy and Grype use).
    fn from(s: Severity) -> Self {
        match s {
            Severity::Critical | Severity::High => Self::Error,
            Severity::Medium => Self::Warning,
            Severity::Low | Severity::Info => Self::Note,
        }
    }
}

#[derive(Serialize)]
struct Log {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: Vec<Run>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    tool: Tool,
    automation_details: AutomationDetails,
    invocations: Vec<Invocation>,
    results: Vec<SarifResult>,
    properties: RunProperties,
}

#[derive(Serialize)]
struct Tool {
    driver: Driver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: &'static str,
    version: String,
    semantic_version: String,
    information_uri: String,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: &'static str,
    name: &'static str,
    short_description: Text,
    full_description: Text,
    help: Help,
    help_uri: String,
    default_configuration: Configuration,
    properties: RuleProperties,
}

#[derive(Serialize)]
struct Text {
    text: String,
}

#[derive(Serialize)]
struct Help {
    text: String,
    markdown: String,
}

#[derive(Serialize)]
struct Configuration {
    level: Level,
}

#[derive(Serialize)]
struct RuleProperties {
    tags: Vec<&'static str>,
    precision: &'static str,
    #[serde(rename = "security-severity")]
    security_severity: &'static str,
    #[serde(rename = "imgscan-code")]
    imgscan_code: &'static str,
}

#[derive(Serialize)]
struct AutomationDetails {
    id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Invocation {
    execution_successful: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_execution_notifications: Vec<Notification>,
}

#[derive(Serialize)]
struct Notification {
    level: Level,
    message: Text,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: &'static str,
    rule_index: usize,
    level: Level,
    message: Text,
    locations: [Location; 1],
    partial_fingerprints: BTreeMap<&'static str, String>,
    /// An accepted ignore entry (SARIF 2.1.0 §3.27.23, §3.35): the result
    /// stays, marked `external` / `accepted` with the entry's reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    suppressions: Vec<SarifSuppression>,
    /// Against `--baseline` (§3.27.24): `new`, `unchanged` (inherited from
    /// the base image, or in the baseline report) or `updated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline_state: Option<&'static str>,
    properties: ResultProperties,
}

#[derive(Serialize)]
struct SarifSuppression {
    kind: &'static str,
    status: &'static str,
    justification: String,
    properties: SuppressionProperties,
}

#[derive(Serialize)]
struct SuppressionProperties {
    entry: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    physical_location: PhysicalLocation,
    logical_locations: [LogicalLocation; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
    region: Region,
}

#[derive(Serialize)]
struct ArtifactLocation {
    uri: String,
}

/// There are no lines in an image; code scanning requires all four fields,
/// so every result points at 1:1-1:1 (as Trivy and Grype do).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: u32,
    start_column: u32,
    end_line: u32,
    end_column: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogicalLocation {
    name: String,
    fully_qualified_name: String,
    kind: &'static str,
}

#[derive(Serialize)]
struct ResultProperties {
    severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_created_by: Option<String>,
    details: BTreeMap<String, serde_json::Value>,
    /// Whether the finding counts toward the gate.
    counts: bool,
    /// An ignore entry that no longer accepts it (expired, changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    suppression: Option<scanner::model::Suppression>,
    /// `inherited` when the base image brought it.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<BaselineState>,
}

#[derive(Serialize)]
struct RunProperties {
    source: String,
    format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index_digest: Option<String>,
    config_digest: String,
    platform: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
}

fn log(reports: &[Report]) -> Log {
    let mut categories = BTreeSet::new();
    let runs = reports
        .iter()
        .map(|report| {
            let short = image_short_name(&report.image);
            // Two images with one repository name (two tags of `app`) would
            // share a category, which code scanning rejects: number the later ones.
            let mut id = format!("imgscan/{short}/");
            let mut n = 1;
            while !categories.insert(id.clone()) {
                n += 1;
                id = format!("imgscan/{short}-{n}/");
            }
            run(report, &short, id)
        })
        .collect();
    Log {
        schema: SCHEMA_URI,
        version: "2.1.0",
        runs,
    }
}

fn run(report: &Report, short: &str, automation_id: String) -> Run {
    let mut notifications: Vec<Notification> = report
        .warnings
        .iter()
        .map(|w| Notification {
            level: Level::Warning,
            message: Text { text: sentence(w) },
        })
        .collect();
    let mut results = Vec::with_capacity(report.findings.len());
    for finding in &report.findings {
        let Some(rule_index) = RULES.iter().position(|m| m.id == finding.rule_id) else {
            // Cannot happen while every RuleId has metadata (tested in
            // scanner::rules), but one odd finding must not sink the others.
            notifications.push(Notification {
                level: Level::Error,
                message: Text {
                    text: format!(
                        "Finding of rule {} skipped: the rule has no metadata.",
                        finding.rule_id
                    ),
                },
            });
            continue;
        };
        results.push(result(&report.image, short, finding, rule_index));
    }
    if results.len() > MAX_RESULTS {
        // Findings are sorted most severe first, so the ones left out are the
        // least severe; the JSON report still has them all.
        notifications.push(Notification {
            level: Level::Error,
            message: Text {
                text: format!(
                    "{} of {} results left out: code scanning accepts at most {MAX_RESULTS} \
                     results per run. The JSON report (--format json) has them all.",
                    results.len() - MAX_RESULTS,
                    results.len(),
                ),
            },
        });
        results.truncate(MAX_RESULTS);
    }
    let image = &report.image;
    Run {
        tool: Tool {
            driver: Driver {
                name: "imgscan",
                version: report.tool.version.clone(),
                semantic_version: report.tool.version.clone(),
                information_uri: report.tool.information_uri.clone(),
                rules: RULES.iter().map(rule).collect(),
            },
        },
        automation_details: AutomationDetails { id: automation_id },
        invocations: vec![Invocation {
            execution_successful: true,
            tool_execution_notifications: notifications,
        }],
        results,
        properties: RunProperties {
            source: image.source.clone(),
            format: image.format.clone(),
            reference: image.reference.clone(),
            manifest_digest: image.manifest_digest.clone(),
            index_digest: image.index_digest.clone(),
            config_digest: image.config_digest.clone(),
            platform: image.platform.clone(),
            user: image.user.clone(),
        },
    }
}

fn rule(meta: &'static RuleMeta) -> Rule {
    let sev = meta.default_severity;
    let help = meta.explanation.trim_end().to_owned();
    Rule {
        id: meta.id.as_str(),
        name: meta.name,
        short_description: Text {
            text: clip(meta.summary, MAX_DESCRIPTION),
        },
        full_description: Text {
            text: clip(
                &format!(
                    "{} Severity: {}",
                    sentence(meta.summary),
                    sentence(meta.severity_note)
                ),
                MAX_DESCRIPTION,
            ),
        },
        help: Help {
            text: help.clone(),
            markdown: help,
        },
        help_uri: meta.help_uri(),
        default_configuration: Configuration { level: sev.into() },
        properties: RuleProperties {
            tags: tags(meta),
            precision: "very-high",
            security_severity: sev.security_severity(),
            imgscan_code: meta.code,
        },
    }
}

/// Filterable tags: `security` first (code scanning wants it on rules with a
/// `security-severity`), `container`, then the rule's own
/// ([`RuleMeta::tags`]: a topic and, where one fits, the CWE in the
/// `external/cwe/cwe-N` form code scanning recognises).
fn tags(meta: &RuleMeta) -> Vec<&'static str> {
    let mut tags = vec!["security", "container"];
    tags.extend_from_slice(meta.tags);
    tags
}

fn result(image: &ImageInfo, short: &str, f: &Finding, rule_index: usize) -> SarifResult {
    let (uri, name, fq_name) = match &f.path {
        Some(path) => (
            format!("{short}/{}", encode_path(path.trim_start_matches('/'))),
            path.clone(),
            format!(
                "{}@{}:{path}",
                image.source,
                f.layer_digest.as_deref().unwrap_or(&image.config_digest)
            ),
        ),
        None => (
            format!("{short}/image-config"),
            "config".to_owned(),
            format!("{}@{}:config", image.source, image.config_digest),
        ),
    };
    let mut line_hash = Sha256::new();
    for part in [
        f.rule_id.as_str(),
        short,
        f.path.as_deref().unwrap_or(""),
        f.fingerprint.as_str(),
    ] {
        line_hash.update(part.as_bytes());
        line_hash.update([0]);
    }
    let line_hash = format!("{}:1", scanner::digest::to_hex(&line_hash.finalize()));
    SarifResult {
        rule_id: f.rule_id.as_str(),
        rule_index,
        level: f.severity.into(),
        message: Text {
            text: message(image, f),
        },
        locations: [Location {
            physical_location: PhysicalLocation {
                artifact_location: ArtifactLocation { uri },
                region: Region {
                    start_line: 1,
                    start_column: 1,
                    end_line: 1,
                    end_column: 1,
                },
            },
            logical_locations: [LogicalLocation {
                name,
                fully_qualified_name: fq_name,
                kind: "resource",
            }],
        }],
        partial_fingerprints: BTreeMap::from([
            ("imgscan/v1", f.fingerprint.clone()),
            ("primaryLocationLineHash", line_hash),
        ]),
        suppressions: f
            .suppression
            .iter()
            .filter(|s| s.status == SuppressionStatus::Accepted)
            .map(|s| SarifSuppression {
                kind: "external",
                status: "accepted",
                justification: s.reason.clone(),
                properties: SuppressionProperties {
                    entry: s.entry.clone(),
                    expires: s.expires.clone(),
                },
            })
            .collect(),
        baseline_state: f.baseline.map(|b| match b {
            BaselineState::New => "new",
            BaselineState::Inherited | BaselineState::Unchanged => "unchanged",
            BaselineState::Updated => "updated",
        }),
        properties: ResultProperties {
            severity: f.severity,
            layer_index: f.layer_index,
            layer_digest: f.layer_digest.clone(),
            layer_created_by: f.layer_created_by.clone(),
            details: f.details.clone(),
            counts: f.counts,
            suppression: f
                .suppression
                .clone()
                .filter(|s| s.status != SuppressionStatus::Accepted),
            baseline: f.baseline,
        },
    }
}

/// The finding's own sentence first (code scanning may show only the first
/// sentence), then where: image and layer.
fn message(image: &ImageInfo, f: &Finding) -> String {
    let mut m = location_message(image, f);
    // A path to root also says how it goes and what closes it.
    let steps = f.detail_list("steps");
    if !steps.is_empty() {
        m.push_str(&format!(" Proof: {}.", steps.join("; ")));
        let closers = f.detail_list("closed_by");
        if !closers.is_empty() {
            m.push_str(&format!(" Closed by: {}.", closers.join(", ")));
        }
    }
    m
}

fn location_message(image: &ImageInfo, f: &Finding) -> String {
    let shown = image.reference.as_deref().unwrap_or(&image.source);
    let what = sentence(&f.message);
    match (f.layer_index, &f.layer_digest) {
        (Some(index), Some(digest)) => format!(
            "{what} Found in image '{shown}', layer {index} ({}).",
            short_digest(digest)
        ),
        (Some(index), None) => format!("{what} Found in image '{shown}', layer {index}."),
        (None, _) if f.path.is_some() => format!("{what} Found in image '{shown}'."),
        (None, _) => format!("{what} Found in the config of image '{shown}'."),
    }
}

/// A path-like name for the image, for artifact URIs and categories: the
/// repository part of `image.reference` (or of `image.source` when there is
/// no reference, or when an OCI layout's reference is a bare tag), without transport prefix, registry host, Docker Hub's
/// `library/`, tag or digest; for an archive or layout path, the file name
/// without directories and `.tar`/`.tar.gz`/`.tgz`/`.tar.zst`. Only
/// `[A-Za-z0-9._-]` and `/` are kept, so the name never holds a `:` or `@`
/// (which would make GitHub read it as a URI scheme) and never needs
/// percent-encoding. Falls back to `image`.
///
/// ```
/// # use scanner::model::ImageInfo;
/// let mut image = ImageInfo {
///     source: "docker-archive:/tmp/build/app.tar".to_owned(),
///     format: "docker-archive".to_owned(),
///     reference: Some("ghcr.io/acme/app:1.2@sha256:abcd".to_owned()),
///     manifest_digest: None,
///     index_digest: None,
///     config_digest: "sha256:00".to_owned(),
///     platform: "linux/amd64".to_owned(),
///     user: None,
///     layers: Vec::new(),
///     base: None,
/// };
/// assert_eq!(formats::sarif::image_short_name(&image), "acme/app");
/// image.reference = None;
/// assert_eq!(formats::sarif::image_short_name(&image), "app");
/// ```
pub fn image_short_name(image: &ImageInfo) -> String {
    // In OCI layouts and archives `org.opencontainers.image.ref.name` is
    // often a bare tag (`1.0`), which names no repository: use the path then.
    let bare_tag = |r: &&str| {
        matches!(image.format.as_str(), "oci-layout" | "oci-archive")
            && !r.contains(['/', ':', '@'])
    };
    let from_reference = image
        .reference
        .as_deref()
        .filter(|r| !bare_tag(r))
        .map(repository_of_reference)
        .map(|r| sanitize(&r))
        .filter(|r| !r.is_empty());
    let name = from_reference.unwrap_or_else(|| sanitize(&name_of_source(image)));
    if name.is_empty() {
        "image".to_owned()
    } else {
        name
    }
}

/// `docker.io/library/alpine:3.19@sha256:…` → `alpine`;
/// `ghcr.io/acme/app:1` → `acme/app`; `localhost:5000/app` → `app`.
fn repository_of_reference(reference: &str) -> String {
    let reference = reference.trim();
    let reference = reference.strip_prefix("docker://").unwrap_or(reference);
    // The digest, then the tag (a ':' after the last '/'; an earlier one is a port).
    let no_digest = reference.split('@').next().unwrap_or_default();
    let no_tag = match no_digest.rfind(':') {
        Some(colon) if !no_digest[colon..].contains('/') => &no_digest[..colon],
        _ => no_digest,
    };
    let mut parts: Vec<&str> = no_tag.split('/').collect();
    // Docker's rule: the first component is a registry host when it has a '.'
    // or ':' or is `localhost` (distribution/reference `splitDockerDomain`).
    let mut docker_hub = true;
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        docker_hub = matches!(
            host,
            "docker.io" | "index.docker.io" | "registry-1.docker.io"
        );
    }
    if docker_hub && parts.len() > 1 && parts[0] == "library" {
        parts.remove(0);
    }
    parts.join("/")
}

/// The name of an archive or layout path, or the repository of a registry or
/// daemon reference.
fn name_of_source(image: &ImageInfo) -> String {
    const TRANSPORTS: [&str; 7] = [
        "docker-archive:",
        "oci-archive:",
        "oci:",
        "docker-daemon:",
        "docker://",
        "registry:",
        "containers-storage:",
    ];
    let mut source = image.source.trim();
    let mut transport = None;
    for t in TRANSPORTS {
        if let Some(rest) = source.strip_prefix(t) {
            transport = Some(t);
            source = rest;
            break;
        }
    }
    let is_reference = matches!(
        transport,
        Some("docker://" | "registry:" | "docker-daemon:" | "containers-storage:")
    ) || (transport.is_none()
        && matches!(image.format.as_str(), "registry" | "docker-daemon"));
    if is_reference {
        return repository_of_reference(source);
    }
    // A path, maybe with skopeo's `:reference` after it.
    let file = source
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let file = file.split([':', '@']).next().unwrap_or_default();
    let mut name = file;
    for suffix in [".tar.gz", ".tar.zst", ".tgz", ".tar"] {
        if let Some(stem) = name.strip_suffix(suffix) {
            name = stem;
            break;
        }
    }
    if name == "-" {
        // Standard input.
        return String::new();
    }
    name.to_owned()
}

/// Keeps `[A-Za-z0-9._-]` and `/`; drops empty, `.` and `..` segments.
fn sanitize(s: &str) -> String {
    let kept: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        .collect();
    kept.split('/')
        .filter(|seg| !seg.is_empty() && *seg != "." && *seg != "..")
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes every byte of a path except RFC 3986 unreserved characters
/// and `/`, so spaces, `:`, `@`, `%`, `#` and non-ASCII names stay one
/// relative URI.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `sha256:0123456789ab` from a full digest.
fn short_digest(digest: &str) -> &str {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => &digest[..algo.len() + 1 + 12],
        _ => digest,
    }
}

/// Ensures the text ends like a sentence (the SARIF Multitool's SARIF2001).
fn sentence(s: &str) -> String {
    let s = s.trim();
    if s.ends_with(['.', '!', '?']) {
        s.to_owned()
    } else {
        format!("{s}.")
    }
}

/// At most `max` bytes, cut at a character boundary with an ellipsis.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(source: &str, format: &str, reference: Option<&str>) -> ImageInfo {
        ImageInfo {
            source: source.to_owned(),
            format: format.to_owned(),
            reference: reference.map(str::to_owned),
            manifest_digest: None,
            index_digest: None,
            config_digest: "sha256:00".to_owned(),
            platform: "linux/amd64".to_owned(),
            user: None,
            layers: Vec::new(),
            base: None,
        }
    }

    #[test]
    fn short_names_from_references() {
        for (reference, want) in [
            ("alpine", "alpine"),
            ("alpine:3.19", "alpine"),
            ("docker.io/library/alpine:3.19", "alpine"),
            ("index.docker.io/library/alpine", "alpine"),
            ("library/alpine:latest", "alpine"),
            ("docker.io/acme/app:1.0", "acme/app"),
            ("ghcr.io/acme/tools/app:1.0@sha256:abc", "acme/tools/app"),
            ("ghcr.io/library/app:1", "library/app"),
            ("localhost:5000/app:dev", "app"),
            ("registry.local:5000/team/app", "team/app"),
            ("app@sha256:0123", "app"),
            ("docker://quay.io/org/img:v1", "org/img"),
            ("we!rd name:tag", "werdname"),
        ] {
            let got = image_short_name(&image("x.tar", "docker-archive", Some(reference)));
            assert_eq!(got, want, "reference {reference}");
        }
    }

    #[test]
    fn short_names_from_sources() {
        for (source, format, want) in [
            ("docker-archive:/tmp/build/app.tar", "docker-archive", "app"),
            ("/tmp/build/app.tar.gz", "docker-archive", "app"),
            ("images/base.tgz", "docker-archive", "base"),
            ("oci-archive:out/img.tar:latest", "oci-archive", "img"),
            ("oci:/srv/layouts/base:1.0", "oci-layout", "base"),
            ("/srv/layouts/base/", "oci-layout", "base"),
            ("-", "docker-archive", "image"),
            ("docker.io/library/nginx:1.27", "registry", "nginx"),
            ("docker-daemon:acme/app:1", "docker-daemon", "acme/app"),
            ("../..", "oci-layout", "image"),
            ("C:\\images\\my app.tar", "docker-archive", "myapp"),
        ] {
            let got = image_short_name(&image(source, format, None));
            assert_eq!(got, want, "source {source}");
            assert!(!got.contains([':', '@']));
        }
        let layout = image("oci:/srv/layouts/base", "oci-layout", Some("1.0"));
        assert_eq!(image_short_name(&layout), "base");
        let layout = image("oci:/srv/layouts/base", "oci-layout", Some("acme/base:1.0"));
        assert_eq!(image_short_name(&layout), "acme/base");
    }

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(encode_path("usr/bin/su"), "usr/bin/su");
        assert_eq!(
            encode_path("opt/my app/a:b@c%"),
            "opt/my%20app/a%3Ab%40c%25"
        );
        assert_eq!(encode_path("etc/caf\u{e9}"), "etc/caf%C3%A9");
    }

    #[test]
    fn duplicate_categories_are_numbered() {
        let a = Report::new(
            image("a.tar", "docker-archive", Some("app:1")),
            vec![],
            vec![],
            Default::default(),
            Default::default(),
        );
        let b = Report::new(
            image("b.tar", "docker-archive", Some("app:2")),
            vec![],
            vec![],
            Default::default(),
            Default::default(),
        );
        let ids: Vec<String> = log(&[a.clone(), b, a])
            .runs
            .into_iter()
            .map(|r| r.automation_details.id)
            .collect();
        assert_eq!(ids, ["imgscan/app/", "imgscan/app-2/", "imgscan/app-3/"]);
    }

    #[test]
    fn levels() {
        assert_eq!(Level::from(Severity::Critical), Level::Error);
        assert_eq!(Level::from(Severity::High), Level::Error);
        assert_eq!(Level::from(Severity::Medium), Level::Warning);
        assert_eq!(Level::from(Severity::Low), Level::Note);
        assert_eq!(Level::from(Severity::Info), Level::Note);
    }

    #[test]
    fn descriptions_fit() {
        for meta in RULES {
            let r = rule(meta);
            assert!(r.full_description.text.len() <= MAX_DESCRIPTION);
            assert!(r.short_description.text.len() <= MAX_DESCRIPTION);
            assert!(r.properties.tags.len() <= 10);
        }
        assert_eq!(clip("abcdef", 4), "a…");
        assert_eq!(
            short_digest("sha256:0123456789abcdef"),
            "sha256:0123456789ab"
        );
    }
}
