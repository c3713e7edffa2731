//! The checks: each one reads the final filesystem and the image config and
//! reports findings. They are unit structs in one static registry, as
//! ripgrep keeps its flags.
//!
//! # Adding a rule
//! A check file (`checks/<module>.rs`) owns everything about its rules: the
//! [`RuleMeta`] (id, code, default severity, summary, severity note, SARIF
//! tags, status), the Markdown documentation (`checks/docs/<rule-id>.md`,
//! included by the meta), the files it needs captured while the layers
//! stream ([`Check::captures`]), a `#[derive(Serialize)]` struct per rule
//! for the finding's `details`, and the check itself. The one list of rules
//! is `registry!` below: one line per check. From it come
//! [`crate::rules::RuleId`], [`RULES`], [`CHECKS`] and [`captures`]. So a new
//! rule is a new file, its `pub mod` line and its line in the list; then
//! regenerate `docs/rules.md`, the snapshots and the JSON Schema's details
//! for it (`formats/schema/report.schema.json`; a test validates every
//! report the tests make against it).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::budget::{BudgetExceeded, Charge};
use crate::config::ImageConfig;
use crate::digest::to_hex;
use crate::fs::{FinalFs, Inventory, Node};
use crate::model::{Escalation, Finding, Hardening, LayerInfo, RuntimeUser, Severity};
use crate::rules::{RuleId, RuleMeta};

pub mod access;
pub mod accounts;
pub mod capabilities;
pub mod capability_root;
pub mod escalation;
pub mod identity;
pub mod packages;
pub mod remote_shell;
pub mod root_ssh_login;
pub mod root_user;
pub mod setuid;
pub mod setuid_shell;
pub mod ssh_host_key;
pub mod su_empty_password;
pub mod sudo;
pub mod sudo_root;
pub mod sudoers;
pub mod world_writable;
pub mod writable_account_file;

/// The list of rules: one line per check, `module::Check { Rule = META, ... }`
/// with the check's unit struct, then each rule it reports (its
/// [`RuleId`] variant and the [`RuleMeta`] const in the module), in code
/// order. It expands to `$callback! { <the list> }`: `rules` builds
/// [`RuleId`] from it, this module [`RULES`], [`CHECKS`] and [`captures`].
macro_rules! registry {
    ($callback:ident) => {
        $callback! {
            root_user::RootUser {
                RootUser = ROOT_USER,
                UnresolvedUser = UNRESOLVED_USER,
                RootGroup = ROOT_GROUP,
            }
            setuid::SetuidSetgid { SetuidBinary = SETUID_BINARY, SetgidBinary = SETGID_BINARY }
            capabilities::FileCapabilities { FileCapability = FILE_CAPABILITY }
            world_writable::WorldWritable { WorldWritablePath = WORLD_WRITABLE_PATH }
            remote_shell::RemoteShellDaemon { RemoteShellDaemon = REMOTE_SHELL_DAEMON }
            accounts::Uid0Accounts { Uid0Account = UID0_ACCOUNT }
            ssh_host_key::SshHostKey { SshHostKey = SSH_HOST_KEY }
            sudoers::SudoersNopasswd { SudoersNopasswd = SUDOERS_NOPASSWD }
            setuid_shell::SetuidRootShell { SetuidRootShell = SETUID_ROOT_SHELL }
            capability_root::CapabilityRoot { CapabilityRoot = CAPABILITY_ROOT }
            sudo_root::SudoRoot { SudoRoot = SUDO_ROOT }
            su_empty_password::SuEmptyPassword {
                SuEmptyPassword = SU_EMPTY_PASSWORD,
                EmptyPassword = EMPTY_PASSWORD,
            }
            writable_account_file::WritableAccountFile { WritableAccountFile = WRITABLE_ACCOUNT_FILE }
            root_ssh_login::RootSshLogin { RootSshLogin = ROOT_SSH_LOGIN, PrivateKey = PRIVATE_KEY }
        }
    };
}

/// Builds [`RULES`], [`CHECKS`] and [`captures`] from [`registry!`].
macro_rules! build_registry {
    ($($module:ident :: $check:ident { $($variant:ident = $meta:ident),+ $(,)? })+) => {
        /// Every rule, in code order (the order of [`RuleId`]'s variants,
        /// so `RULES[id as usize].id == id`).
        pub static RULES: &[RuleMeta] = &[$($($module::$meta,)+)+];

        /// Every check, in rule order.
        pub static CHECKS: &[&dyn Check] = &[$(&$module::$check,)+];

        /// Whether some check needs the contents of the file at `path`
        /// (normalised, no leading `/`): the layer pipeline keeps those
        /// bytes while it streams the layer. The scan passes this function
        /// to [`crate::layer::LayerOptions::captures`]. It runs for every
        /// tar member, so each part is a few byte comparisons, statically
        /// dispatched.
        pub fn captures(path: &str) -> bool {
            packages::PackageDb::captures(path)
                || accounts::Accounts::captures(path)
                $(|| <$module::$check as Check>::captures(path))+
        }
    };
}

registry!(build_registry);

impl RuleId {
    /// This rule's metadata.
    pub fn meta(self) -> &'static RuleMeta {
        // RULES lists the rules in variant order (both come from `registry!`;
        // `rules::tests::every_rule_has_meta_in_order` checks it).
        &RULES[self as usize]
    }
}

/// The last component of a path (the whole of a path without `/`).
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `path` is a direct child of `dir` (a name without `/`), for
/// [`Check::captures`].
pub(crate) fn child_of<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    path.strip_prefix(dir)?
        .strip_prefix('/')
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

/// What a check sees.
pub struct Context<'a> {
    /// The final filesystem.
    pub fs: &'a FinalFs,
    /// The image config.
    pub config: &'a ImageConfig,
    /// The layers, in order (for attribution).
    pub layers: &'a [LayerInfo],
    /// Which package owns which path, from the image's own package database.
    pub packages: &'a packages::PackageDb,
    /// Accounts from the final `/etc/passwd` and `/etc/group`.
    pub accounts: &'a accounts::Accounts,
    /// Who the process runs as ([`identity::runtime_user`]).
    pub user: &'a RuntimeUser,
    /// The few nodes checks look at ([`Inventory`], one walk).
    pub inventory: &'a Inventory<'a>,
    /// The image's sudo policy, read once ([`sudo::Policy::load`]).
    pub sudo: &'a sudo::Policy,
}

/// Collects findings and warnings.
#[derive(Debug, Default)]
pub struct Findings {
    /// Findings so far.
    pub findings: Vec<Finding>,
    /// Things that limit the judgement.
    pub warnings: Vec<String>,
    /// What the findings hold, charged to the image's memory budget: an
    /// image can make a check report every one of a million paths.
    charge: Charge,
    /// The budget ran out: the findings are incomplete and the scan fails.
    exceeded: Option<BudgetExceeded>,
}

/// Bytes a JSON value holds, roughly (its strings and one word per item).
fn value_bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => 56 + s.len() as u64,
        Value::Array(a) => 24 + a.iter().map(value_bytes).sum::<u64>(),
        Value::Object(o) => {
            24 + o
                .iter()
                .map(|(k, v)| 48 + k.len() as u64 + value_bytes(v))
                .sum::<u64>()
        }
        _ => 16,
    }
}

/// A finding about to be reported.
pub struct NewFinding<'a> {
    /// The rule.
    pub rule: RuleId,
    /// Its severity here.
    pub severity: Severity,
    /// Path (relative, no leading `/`) and node, or `None` for config findings.
    pub at: Option<(&'a str, &'a Node)>,
    /// One sentence for people.
    pub message: String,
    /// Rule-specific facts: the rule's details struct, through [`details`].
    pub details: BTreeMap<String, Value>,
    /// What, besides rule and path, makes this finding distinct (for the
    /// fingerprint), e.g. the configured user.
    pub subject: String,
}

impl Findings {
    /// Records a finding, attributing it to the node's layer.
    pub fn push(&mut self, ctx: &Context<'_>, f: NewFinding<'_>) {
        if self.exceeded.is_some() {
            return;
        }
        let path = f.at.map(|(p, _)| format!("/{p}"));
        let layer = f.at.and_then(|(_, n)| ctx.layers.get(n.layer));
        // What the finding will hold on the heap: its strings (each one an
        // allocation, ~32 bytes of allocator overhead), the details map (a
        // B-tree node of ~640 bytes, then its keys and values) and its slot
        // in the vector, which grows by doubling. Measured: 500,000 setuid
        // hard links make ~1.4 KiB of findings each.
        const ALLOC: u64 = 32;
        let bytes = 2 * std::mem::size_of::<Finding>() as u64
            + (64 + ALLOC) // the fingerprint
            + path.as_ref().map_or(0, |p| p.len() as u64 + ALLOC)
            + layer.map_or(0, |l| {
                l.digest.len() as u64
                    + ALLOC
                    + l.created_by.as_ref().map_or(0, |c| c.len() as u64 + ALLOC)
            })
            + f.message.len() as u64
            + ALLOC
            + 640
            + f
                .details
                .iter()
                .map(|(k, v)| ALLOC + k.len() as u64 + value_bytes(v))
                .sum::<u64>();
        if let Err(e) = self.charge.add(bytes, "findings") {
            self.exceeded = Some(e);
            return;
        }
        let mut h = Sha256::new();
        h.update(f.rule.as_str().as_bytes());
        h.update([0]);
        h.update(path.as_deref().unwrap_or("").as_bytes());
        h.update([0]);
        h.update(f.subject.as_bytes());
        self.findings.push(Finding {
            rule_id: f.rule,
            severity: f.severity,
            path,
            layer_index: layer.map(|l| l.index),
            layer_digest: layer.map(|l| l.digest.clone()),
            layer_created_by: layer.and_then(|l| l.created_by.clone()),
            message: f.message,
            details: f.details,
            fingerprint: to_hex(&h.finalize()),
            suppression: None,
            baseline: None,
            counts: true,
        });
    }
}

/// One check.
pub trait Check: Send + Sync {
    /// Runs the check.
    fn run(&self, ctx: &Context<'_>, out: &mut Findings);

    /// Whether this check reads the contents of the file at `path`
    /// (normalised, no leading `/`), which the layer pipeline then captures
    /// (see [`captures`]). Most checks read only metadata.
    fn captures(_path: &str) -> bool
    where
        Self: Sized,
    {
        false
    }
}

/// `0o4755` as `"4755"`.
pub fn mode_string(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// A finding's details from the rule's details struct: its fields become
/// the keys (the JSON Schema documents each rule's struct).
pub fn details(d: &impl Serialize) -> BTreeMap<String, Value> {
    match serde_json::to_value(d) {
        Ok(Value::Object(map)) => map.into_iter().collect(),
        // A details struct is a struct of strings, numbers and options, so
        // neither can happen; no details beat a panic on input.
        Ok(_) | Err(_) => BTreeMap::new(),
    }
}

/// Runs every check over an image, then builds the escalation verdict from
/// the findings. Fails when a file the runtime reads to set up the
/// container (`/etc/passwd`, `/etc/group`) cannot be read as the runtime
/// reads it.
pub fn run_all(
    fs: &FinalFs,
    config: &ImageConfig,
    layers: &[LayerInfo],
) -> crate::error::Result<(Findings, Escalation, Hardening)> {
    let mut out = Findings {
        charge: fs
            .budget()
            .map_or_else(Charge::default, |b| Charge::new(b.clone())),
        ..Findings::default()
    };
    let packages = packages::PackageDb::load(fs, &mut out.warnings);
    let accounts = accounts::Accounts::load(fs, &mut out.warnings)?;
    let user = identity::runtime_user(config, &accounts);
    let inventory = Inventory::of(fs);
    let sudo = sudo::Policy::load(fs);
    let ctx = Context {
        fs,
        config,
        layers,
        packages: &packages,
        accounts: &accounts,
        user: &user,
        inventory: &inventory,
        sudo: &sudo,
    };
    for check in CHECKS {
        check.run(&ctx, &mut out);
    }
    if let Some(e) = out.exceeded.take() {
        return Err(crate::error::Error::Limit {
            what: "the list of findings".to_owned(),
            limit: format!("the memory budget of {} MiB", e.limit >> 20),
            why: "raise --max-memory if this image is genuine".to_owned(),
        });
    }
    let escalation = escalation::escalation(user, &out.findings);
    let hardening = crate::harden::derive(fs, config, &inventory, &escalation);
    Ok((out, escalation, hardening))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn meta_is_found_by_id() {
        for id in RuleId::iter() {
            assert_eq!(id.meta().id, id);
        }
    }

    /// The files the checks read are captured; others are not.
    #[test]
    fn captured_files() {
        for path in [
            "etc/passwd",
            "etc/group",
            "usr/lib/passwd",
            "var/lib/extrausers/group",
            "etc/passwd-",
            "var/lib/dpkg/status",
            "var/lib/dpkg/info/login.list",
            "var/lib/dpkg/status.d/base",
            "lib/apk/db/installed",
            "usr/lib/apk/db/installed",
            "etc/sudoers",
            "etc/sudoers.d/app",
            "etc/shadow",
        ] {
            assert!(captures(path), "{path}");
        }
        for path in [
            "etc/sudoers.d/x/y",
            "etc/sudoers.d",
            "usr/bin/passwd",
            "var/lib/dpkg/info/login.md5sums",
            "home/app/passwd",
            "etc/shadow-",
        ] {
            assert!(!captures(path), "{path}");
        }
    }
}
