//! The findings model: what a scan produces, and what every emitter reads.
//!
//! # Format
//!
//! The JSON report is exactly the serialization of [`Report`] (one image) or
//! [`MultiReport`] (several images in one run). Field names are snake_case, maps
//! are sorted, findings are sorted, and nothing depends on timing, so the same
//! image always gives the same bytes. The JSON Schema lives in
//! `formats/schema/report.schema.json`; `schema_version` changes its major part
//! only when a field is removed or changes meaning.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::rules::Reach;
use crate::rules::RuleId;
pub use crate::severity::Severity;

/// Version of the JSON report layout (see `formats/schema/report.schema.json`).
pub const SCHEMA_VERSION: &str = "1.3";

/// The tool that wrote a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolInfo {
    /// Always `imgscan`.
    pub name: String,
    /// The tool's semantic version.
    pub version: String,
    /// Where to read about the tool.
    pub information_uri: String,
}

impl ToolInfo {
    /// This build of imgscan.
    pub fn current() -> Self {
        Self {
            name: "imgscan".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            information_uri: env!("CARGO_PKG_REPOSITORY").to_owned(),
        }
    }
}

/// One layer of the scanned image, in application order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerInfo {
    /// Zero-based position in the manifest (0 is the base layer).
    pub index: usize,
    /// Digest of the blob as stored (compressed if the blob is compressed).
    pub digest: String,
    /// Digest of the uncompressed tar (`config.rootfs.diff_ids[index]`).
    pub diff_id: String,
    /// Media type from the manifest, or the one imgscan sniffed for
    /// docker-archive layers that have none.
    pub media_type: String,
    /// Size in bytes of the blob as stored.
    pub size: u64,
    /// Compression found by sniffing the blob's magic bytes: `none`, `gzip` or `zstd`.
    pub compression: String,
    /// Tar entries in the layer.
    pub entries: u64,
    /// The image history's `created_by` for this layer, if the config has one.
    pub created_by: Option<String>,
}

/// What was scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    /// The image argument as given on the command line (or by the hook).
    pub source: String,
    /// `docker-archive`, `oci-archive`, `oci-layout`, `registry` or `docker-daemon`.
    pub format: String,
    /// The tag or reference picked inside an archive or registry, if any.
    pub reference: Option<String>,
    /// Digest of the image manifest; null for docker-archives without an OCI
    /// manifest (their identity is the config digest).
    pub manifest_digest: Option<String>,
    /// Digest of the image index / manifest list the manifest was picked from.
    pub index_digest: Option<String>,
    /// Digest of the image config (the image ID).
    pub config_digest: String,
    /// `os/architecture[/variant]` from the config.
    pub platform: String,
    /// The config's `User`, exactly as written (null when absent).
    pub user: Option<String>,
    /// Layers in application order.
    pub layers: Vec<LayerInfo>,
    /// The base image the manifest names in its
    /// `org.opencontainers.image.base.name` / `.digest` annotations (OCI
    /// image-spec `annotations.md`), when the builder set them; null
    /// otherwise. `--baseline auto` judges the image against it.
    #[serde(default)]
    pub base: Option<BaseImage>,
}

/// A base image named by the manifest's annotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseImage {
    /// `org.opencontainers.image.base.name`: a reference, such as
    /// `docker.io/library/debian:12`.
    pub name: Option<String>,
    /// `org.opencontainers.image.base.digest`: the base's manifest digest.
    pub digest: Option<String>,
}

impl BaseImage {
    /// The reference to pull the base with: `name@digest` when both are
    /// known (the digest pins it), the name alone otherwise.
    pub fn reference(&self) -> Option<String> {
        let name = self.name.as_deref()?;
        Some(match &self.digest {
            Some(d) => {
                // A name may carry a tag; the digest pins the content.
                let repo = match (name.rfind(':'), name.rfind('/')) {
                    (Some(c), Some(s)) if c > s => &name[..c],
                    (Some(c), None) => &name[..c],
                    _ => name,
                };
                let repo = repo.split('@').next().unwrap_or(repo);
                format!("{repo}@{d}")
            }
            None => name.to_owned(),
        })
    }
}

/// One problem found in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// Stable rule id, such as `setuid-binary` (see `imgscan rules`).
    pub rule_id: RuleId,
    /// Severity of this finding (rules may raise or lower their default).
    pub severity: Severity,
    /// Absolute path in the final filesystem; null for image-config findings.
    pub path: Option<String>,
    /// Layer that put the offending entry there; null for config findings.
    pub layer_index: Option<usize>,
    /// Digest of that layer's blob.
    pub layer_digest: Option<String>,
    /// That layer's history `created_by`, when known.
    pub layer_created_by: Option<String>,
    /// One-sentence description for people.
    pub message: String,
    /// Rule-specific facts (see the rule's documentation and the JSON Schema).
    pub details: BTreeMap<String, serde_json::Value>,
    /// Stable identity of the finding: sha256 over rule id, path and the
    /// rule's subject. Independent of layer digests and tags, so a rebuild
    /// that changes nothing keeps the same fingerprint.
    pub fingerprint: String,
    /// What an ignore entry of the policy file said about it; null when no
    /// entry names this rule and path.
    #[serde(default)]
    pub suppression: Option<Suppression>,
    /// Where it stands against `--baseline`; null without a baseline.
    #[serde(default)]
    pub baseline: Option<BaselineState>,
    /// Whether it counts toward the summary and the gate: false when an
    /// ignore entry accepted it, or the baseline waived it (inherited from
    /// the base image, or unchanged since the baseline report, unless
    /// `--gate all`).
    #[serde(default = "yes")]
    pub counts: bool,
}

fn yes() -> bool {
    true
}

/// An ignore entry's effect on a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    /// `accepted` (the finding does not count), `expired` (the entry's
    /// `expires` date has passed: it counts again) or `changed` (what the
    /// entry pinned is no longer what the image has: it counts again).
    pub status: SuppressionStatus,
    /// The entry's `reason`.
    pub reason: String,
    /// Which entry: the policy file and the entry's position and line.
    pub entry: String,
    /// The entry's `expires` date (`YYYY-MM-DD`), if any.
    pub expires: Option<String>,
    /// For `changed`: each pin that no longer holds, and what the image has.
    pub differs: Vec<String>,
}

/// See [`Suppression::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuppressionStatus {
    /// Accepted: does not count.
    Accepted,
    /// The exception expired: counts again.
    Expired,
    /// The pinned content, mode, owner or fingerprint changed: counts again.
    Changed,
}

/// A finding against a baseline (SARIF `baselineState` names the same idea).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineState {
    /// Introduced by one of the base image's layers, and reported by the
    /// base image itself (`--baseline IMAGE`).
    Inherited,
    /// Not in the baseline: the image (or the change since the baseline
    /// report) added it.
    New,
    /// In the baseline report with the same fingerprint and severity.
    Unchanged,
    /// In the baseline report with the same fingerprint, now more severe.
    Updated,
}

impl Finding {
    /// The strings of the details' list `key` (a path's `steps`,
    /// `closed_by`); empty when there is none.
    pub fn detail_list(&self, key: &str) -> Vec<String> {
        self.details
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sort key: most severe first, then by path, rule and fingerprint.
    pub fn sort_key(&self) -> impl Ord + '_ {
        (
            std::cmp::Reverse(self.severity),
            self.path.as_deref().unwrap_or(""),
            self.rule_id,
            self.fingerprint.as_str(),
        )
    }
}

/// Counts by severity of the findings that count (see [`Finding::counts`]),
/// and of those set aside.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Critical findings.
    pub critical: usize,
    /// High findings.
    pub high: usize,
    /// Medium findings.
    pub medium: usize,
    /// Low findings.
    pub low: usize,
    /// Info findings.
    pub info: usize,
    /// All findings that count.
    pub total: usize,
    /// Findings an ignore entry accepted (not counted above).
    #[serde(default)]
    pub suppressed: usize,
    /// Findings the baseline waived: inherited from the base image or
    /// unchanged since the baseline report (not counted above).
    #[serde(default)]
    pub baselined: usize,
    /// Findings counted above whose ignore entry expired or no longer
    /// matches what it pinned.
    #[serde(default)]
    pub expired: usize,
}

impl Summary {
    /// Counts the findings.
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Self {
        let mut s = Self::default();
        for f in findings {
            if f.counts {
                s.add(f.severity, 1);
                if f.suppression.is_some() {
                    s.expired += 1;
                }
            } else if f
                .suppression
                .as_ref()
                .is_some_and(|x| x.status == SuppressionStatus::Accepted)
            {
                s.suppressed += 1;
            } else {
                s.baselined += 1;
            }
        }
        s
    }

    fn add(&mut self, sev: Severity, n: usize) {
        match sev {
            Severity::Critical => self.critical += n,
            Severity::High => self.high += n,
            Severity::Medium => self.medium += n,
            Severity::Low => self.low += n,
            Severity::Info => self.info += n,
        }
        self.total += n;
    }

    /// Adds another summary to this one.
    pub fn merge(&mut self, other: &Self) {
        self.add(Severity::Critical, other.critical);
        self.add(Severity::High, other.high);
        self.add(Severity::Medium, other.medium);
        self.add(Severity::Low, other.low);
        self.add(Severity::Info, other.info);
        self.suppressed += other.suppressed;
        self.baselined += other.baselined;
        self.expired += other.expired;
    }

    /// The number of findings at or above `threshold`.
    pub fn at_or_above(&self, threshold: Severity) -> usize {
        Severity::ALL_DESC
            .iter()
            .filter(|s| **s >= threshold)
            .map(|s| match s {
                Severity::Critical => self.critical,
                Severity::High => self.high,
                Severity::Medium => self.medium,
                Severity::Low => self.low,
                Severity::Info => self.info,
            })
            .sum()
    }
}

/// The result of scanning one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Version of this layout, currently `1.3` ([`SCHEMA_VERSION`]).
    pub schema_version: String,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// What was scanned.
    pub image: ImageInfo,
    /// Findings, most severe first, then by path and rule.
    pub findings: Vec<Finding>,
    /// Things that did not stop the scan but limit what it could judge
    /// (for example a package database too large to read). Sorted.
    pub warnings: Vec<String>,
    /// Counts by severity.
    pub summary: Summary,
    /// Can the container run as root, or its runtime user become root: the
    /// verdict and its proof.
    pub escalation: Escalation,
    /// The runtime settings that close the paths, derived from the image,
    /// and what each breaks in it (`imgscan harden`).
    pub hardening: Hardening,
    /// The policy the findings were judged by: the policy file, disabled
    /// rules, severity overrides, ignore entries that matched nothing, the
    /// baseline.
    #[serde(default)]
    pub policy: PolicyInfo,
}

impl Report {
    /// Builds a report, sorting findings and warnings and counting the summary.
    pub fn new(
        image: ImageInfo,
        mut findings: Vec<Finding>,
        mut warnings: Vec<String>,
        escalation: Escalation,
        hardening: Hardening,
    ) -> Self {
        findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        warnings.sort();
        warnings.dedup();
        let summary = Summary::of(&findings);
        Self {
            schema_version: SCHEMA_VERSION.to_owned(),
            tool: ToolInfo::current(),
            image,
            findings,
            warnings,
            summary,
            escalation,
            hardening,
            policy: PolicyInfo::default(),
        }
    }

    /// Sorts the findings again and recounts the summary (after a policy
    /// changed severities, dropped or waived findings).
    pub fn recount(&mut self) {
        self.findings
            .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        self.summary = Summary::of(&self.findings);
    }
}

/// The policy a report was judged by (issue #12). Empty without a policy
/// file, ignores or a baseline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInfo {
    /// The policy file read (`imgscan.toml`, `--config`), if any.
    pub config: Option<String>,
    /// Rules switched off by the policy: their findings are not reported.
    pub disabled_rules: Vec<RuleId>,
    /// Severities the policy sets for rules, replacing the rules' own.
    pub severity_overrides: BTreeMap<RuleId, Severity>,
    /// Ignore entries that matched no finding of any image of the run.
    pub stale: Vec<StaleIgnore>,
    /// The baseline the findings were compared with.
    pub baseline: Option<BaselineInfo>,
}

/// An ignore entry that matched nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaleIgnore {
    /// Which entry.
    pub entry: String,
    /// Its rule.
    pub rule_id: RuleId,
    /// Its path glob, if any.
    pub path: Option<String>,
    /// Its reason.
    pub reason: String,
}

/// The baseline of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineInfo {
    /// `image` (a base image: findings of its layers are inherited) or
    /// `report` (an earlier JSON report: findings with its fingerprints
    /// are unchanged).
    pub kind: BaselineKind,
    /// The baseline as given (`--baseline`), or the annotated base image's
    /// reference for `--baseline auto`.
    pub source: String,
    /// For an image: how many of this image's layers are the base's.
    pub base_layers: Option<usize>,
    /// For a report: how many of its findings this image no longer has.
    pub absent: Option<usize>,
    /// Whether baselined findings count toward the gate (`--gate all`).
    pub gate_all: bool,
}

/// See [`BaselineInfo::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineKind {
    /// A base image.
    Image,
    /// An earlier report.
    Report,
}

/// How the config's `User` resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// The process runs as uid 0.
    Root,
    /// The process runs as a non-root uid.
    User,
    /// The runtime cannot resolve the user: the container does not start.
    WillNotStart,
}

/// Who the container's process runs as, resolved from the config's `User`
/// and the image's `/etc/passwd` and `/etc/group` as runc does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeUser {
    /// The config's `User`, exactly as written (null when absent).
    pub user: Option<String>,
    /// Root, a non-root user, or a container that does not start.
    pub resolution: Resolution,
    /// The uid (null when the container does not start).
    pub uid: Option<u32>,
    /// The primary gid (null when the container does not start).
    pub gid: Option<u32>,
    /// Supplementary gids, sorted (every gid some runtime may add).
    pub groups: Vec<u32>,
    /// The passwd entry's name, when the uid has one.
    pub name: Option<String>,
    /// Home directory (`/` for a uid without a passwd entry).
    pub home: Option<String>,
    /// Login shell from passwd, when the uid has an entry.
    pub shell: Option<String>,
    /// Why the container does not start, when it does not.
    pub reason: Option<String>,
    /// Where runtimes disagree, what each does.
    pub notes: Vec<String>,
}

impl Default for RuntimeUser {
    /// No `User`: the runtime's default, root.
    fn default() -> Self {
        Self {
            user: None,
            resolution: Resolution::Root,
            uid: Some(0),
            gid: Some(0),
            groups: Vec::new(),
            name: None,
            home: None,
            shell: None,
            reason: None,
            notes: Vec::new(),
        }
    }
}

/// The answer to "can this container run as root, or its user become root?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The process runs as uid 0.
    RunsAsRoot,
    /// The runtime user has at least one working path to uid 0.
    CanBecomeRoot,
    /// No path imgscan knows of holds (which is not a proof there is none).
    NoKnownPath,
}

/// A runtime setting that closes a path to root (FORMATS: what closes it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, strum::EnumIter,
)]
#[serde(rename_all = "kebab-case")]
pub enum Closer {
    /// `--security-opt no-new-privileges`, `allowPrivilegeEscalation: false`:
    /// set-id bits and file capabilities give nothing at exec.
    NoNewPrivileges,
    /// `--cap-drop ALL`, `capabilities.drop: [ALL]`.
    CapDropAll,
    /// `--read-only`, `readOnlyRootFilesystem: true`: the write cannot happen.
    ReadOnlyRootfs,
    /// `--user UID`, `runAsUser`/`runAsNonRoot`: the process is not root.
    NonRootUser,
}

impl Closer {
    /// The kebab-case name, as in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoNewPrivileges => "no-new-privileges",
            Self::CapDropAll => "cap-drop-all",
            Self::ReadOnlyRootfs => "read-only-rootfs",
            Self::NonRootUser => "non-root-user",
        }
    }
}

/// One way to root, with its proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPath {
    /// The rule that found it (its finding has the same fingerprint).
    pub rule_id: RuleId,
    /// The finding's severity.
    pub severity: Severity,
    /// The finding's fingerprint.
    pub fingerprint: String,
    /// `local` (the runtime user becomes root) or `remote` (someone from
    /// outside logs in as root).
    pub reach: Reach,
    /// Each fact the path needs, in order; every one was checked.
    pub steps: Vec<String>,
    /// The runtime settings, any one of which closes it, sorted.
    pub closed_by: Vec<Closer>,
}

/// The verdict, who it is about, and its paths. The default is the
/// verdict on an image without a `User` and without findings (it runs as
/// root), for reports built by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// Who the process runs as.
    pub runtime_user: RuntimeUser,
    /// The answer.
    pub verdict: Verdict,
    /// Every path found (running as root is one, `root-user`), most severe
    /// first, then by rule and fingerprint.
    pub paths: Vec<EscalationPath>,
}

impl Default for Escalation {
    fn default() -> Self {
        Self {
            runtime_user: RuntimeUser::default(),
            verdict: Verdict::RunsAsRoot,
            paths: Vec::new(),
        }
    }
}

/// One runtime setting `imgscan harden` recommends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardeningSetting {
    /// What it is: `non-root-user`, `no-new-privileges`, `cap-drop-all`,
    /// `seccomp-runtime-default`, `read-only-rootfs`.
    pub setting: String,
    /// The Kubernetes container `securityContext` fields, as YAML lines.
    pub kubernetes: Vec<String>,
    /// The `docker run` flags (podman takes the same).
    pub docker: Vec<String>,
    /// Why, for this image.
    pub why: String,
    /// What it breaks in this image (empty: nothing imgscan can see).
    pub breaks: Vec<String>,
    /// Fingerprints of the paths to root it closes.
    pub closes: Vec<String>,
}

/// Whether the image can run under the Kubernetes Pod Security Standards
/// *restricted* profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restricted {
    /// It can, with the settings below.
    pub allowed: bool,
    /// Why not, when it cannot.
    pub reasons: Vec<String>,
}

/// Runtime settings derived from the image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardening {
    /// The numeric uid to run as (`runAsUser`, `--user`): the image's user
    /// resolved through its own passwd; null when it runs as root or does
    /// not resolve.
    pub run_as_user: Option<u32>,
    /// The numeric primary gid (`runAsGroup`).
    pub run_as_group: Option<u32>,
    /// Capabilities to add back after dropping all (`NET_BIND_SERVICE`).
    pub add_capabilities: Vec<String>,
    /// Paths to mount writable (an `emptyDir`, a tmpfs) under a read-only
    /// root: `/tmp` and the image's `VOLUME`s, sorted.
    pub writable_paths: Vec<String>,
    /// Each setting, in the order to apply them.
    pub settings: Vec<HardeningSetting>,
    /// The Pod Security Standards *restricted* verdict.
    pub pod_security_restricted: Restricted,
}

/// The result of scanning several images in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiReport {
    /// Version of this layout, currently `1.3` ([`SCHEMA_VERSION`]).
    pub schema_version: String,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// One report per image, in command-line order.
    pub reports: Vec<Report>,
    /// Counts by severity over all images.
    pub summary: Summary,
}

impl MultiReport {
    /// Wraps several reports.
    pub fn new(reports: Vec<Report>) -> Self {
        let mut summary = Summary::default();
        for r in &reports {
            summary.merge(&r.summary);
        }
        Self {
            schema_version: SCHEMA_VERSION.to_owned(),
            tool: ToolInfo::current(),
            reports,
            summary,
        }
    }
}
