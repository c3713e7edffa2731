//! `setuid-binary` and `setgid-binary`: regular files with S_ISUID or S_ISGID.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`SETUID_BINARY`], [`SETGID_BINARY`] (`checks/docs/setuid-
//! binary.md` and `checks/docs/setgid-binary.md`), included here.
#![doc = "# `setuid-binary`"]
#![doc = include_str!("docs/setuid-binary.md")]
#![doc = "# `setgid-binary`"]
#![doc = include_str!("docs/setgid-binary.md")]

use serde::Serialize;

use super::{Check, Context, Findings, NewFinding, details, mode_string};
use crate::fs::Node;
use crate::rules::{RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;
use crate::tarstream::Kind;

/// `setuid-binary` (IS004).
pub const SETUID_BINARY: RuleMeta = RuleMeta {
    id: RuleId::SetuidBinary,
    code: "IS004",
    name: "SetuidBinary",
    default_severity: Severity::Low,
    summary: "A regular file in the final filesystem has the set-user-ID bit (S_ISUID).",
    severity_note: "attack surface, not by itself a way to root: medium when owned by root and no package of the image's database lists it (added by hand, or no database); low when a package owns it (the distribution's su, passwd, mount...) or its owner is not root. A setuid-root shell or command runner the runtime user can execute is also a `setuid-root-shell` path (critical).",
    // CWE-250: Execution with Unnecessary Privileges.
    tags: &["privilege-escalation", "external/cwe/cwe-250"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/setuid-binary.md"),
};

/// `setgid-binary` (IS005).
pub const SETGID_BINARY: RuleMeta = RuleMeta {
    id: RuleId::SetgidBinary,
    code: "IS005",
    name: "SetgidBinary",
    default_severity: Severity::Info,
    summary: "A regular file in the final filesystem has the set-group-ID bit (S_ISGID). Setgid directories are normal and not flagged.",
    severity_note: "medium when the group is root (gid 0) and no package owns the file; low when the group is root and a package owns it, or when no package owns it; info for a package-owned setgid tool (chage, expiry, unix_chkpwd, ssh-agent).",
    // CWE-250: Execution with Unnecessary Privileges.
    tags: &["privilege-escalation", "external/cwe/cwe-250"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/setgid-binary.md"),
};

/// `setuid-binary` and `setgid-binary` details.
#[derive(Debug, Serialize)]
pub struct SetIdDetails {
    /// Permission bits, four octal digits with the set-id digit first (`4755`).
    pub mode: String,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// The package that owns the path in the image's package database;
    /// `None` (null) when none does or there is no database.
    pub package: Option<String>,
    /// The package database consulted ([`super::packages::PackageDb::kind`]).
    pub package_db: &'static str,
    /// SHA-256 of the file's content, lowercase hex (what an ignore entry's
    /// `sha256` pins); null when imgscan did not read it (a hard link made
    /// set-id by its own header).
    pub sha256: Option<String>,
    /// For a hard link, the path it links to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardlink_to: Option<String>,
}

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;

/// Reports `setuid-binary` and `setgid-binary`.
pub struct SetuidSetgid;

/// Severity of a setuid file.
///
/// By exploitability: a setuid program is attack surface, not by itself a
/// way to root (the ones that are, such as a setuid shell, are
/// `setuid-root-shell` paths). A package-owned one is the distribution's
/// (`su`, `passwd`, `mount` need a password or do one narrow task).
fn setuid_severity(uid: u64, db_known: bool, owned: bool) -> Severity {
    match (uid, db_known && owned) {
        (0, true) => Severity::Low,
        (0, false) => Severity::Medium,
        _ => Severity::Low,
    }
}

/// Severity of a setgid file.
fn setgid_severity(gid: u64, db_known: bool, owned: bool) -> Severity {
    match (gid, db_known && owned) {
        (0, false) => Severity::Medium,
        (0, true) | (_, false) => Severity::Low,
        (_, true) => Severity::Info,
    }
}

fn set_id_details(
    ctx: &Context<'_>,
    path: &str,
    node: &Node,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    details(&SetIdDetails {
        mode: mode_string(node.mode),
        uid: node.uid,
        gid: node.gid,
        package: ctx.packages.owner(path).map(str::to_owned),
        package_db: ctx.packages.kind(),
        sha256: node.content_sha256(),
        hardlink_to: node
            .link()
            .filter(|_| node.kind == Kind::Hardlink)
            .map(|target| format!("/{target}")),
    })
}

impl Check for SetuidSetgid {
    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        let known = ctx.packages.is_known();
        for (path, node) in ctx
            .inventory
            .select(|_, n| n.is_regular() && n.mode & (S_ISUID | S_ISGID) != 0)
        {
            let path = path.as_str();
            let owned = ctx.packages.owner(path).is_some();
            let mode = mode_string(node.mode);
            let ownership = ctx.packages.ownership_phrase(path);
            if node.mode & S_ISUID != 0 {
                let what = if node.uid == 0 {
                    format!("setuid-root binary /{path} (mode {mode})")
                } else {
                    format!(
                        "setuid binary /{path} (mode {mode}, owner uid {})",
                        node.uid
                    )
                };
                out.push(
                    ctx,
                    NewFinding {
                        rule: RuleId::SetuidBinary,
                        severity: setuid_severity(node.uid, known, owned),
                        at: Some((path, node)),
                        message: format!("{what}, {ownership}"),
                        details: set_id_details(ctx, path, node),
                        subject: String::new(),
                    },
                );
            }
            if node.mode & S_ISGID != 0 {
                let what = if node.gid == 0 {
                    format!("setgid-root binary /{path} (mode {mode})")
                } else {
                    format!(
                        "setgid binary /{path} (mode {mode}, group gid {})",
                        node.gid
                    )
                };
                out.push(
                    ctx,
                    NewFinding {
                        rule: RuleId::SetgidBinary,
                        severity: setgid_severity(node.gid, known, owned),
                        at: Some((path, node)),
                        message: format!("{what}, {ownership}"),
                        details: set_id_details(ctx, path, node),
                        subject: String::new(),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;
    use crate::layer::Entry;
    use crate::tarstream::Kind;
    use serde_json::Value;

    fn dpkg(lists: &[(&str, &str)]) -> Vec<Entry> {
        let mut v = vec![text(
            "var/lib/dpkg/status",
            &lists
                .iter()
                .map(|(p, _)| format!("Package: {p}\nStatus: install ok installed\n\n"))
                .collect::<String>(),
        )];
        v.extend(
            lists
                .iter()
                .map(|(p, files)| text(&format!("var/lib/dpkg/info/{p}.list"), files)),
        );
        v
    }

    #[test]
    fn usr_merge_ownership_is_low_and_unowned_is_medium() {
        let mut base = vec![
            dir("usr", 0o755),
            dir("usr/bin", 0o755),
            symlink("bin", "usr/bin"),
            file("usr/bin/su", 0o4755),
            file("usr/bin/passwd", 0o755),
        ];
        base.extend(dpkg(&[
            ("login", "/bin/su\n"),
            ("passwd", "/usr/bin/passwd\n"),
        ]));
        let fs = fs_of(vec![
            base,
            vec![file("usr/local/bin/backdoor", 0o4755)],
            vec![owned(file("usr/bin/passwd", 0o4755), 0, 0)],
        ]);
        let out = run(&SetuidSetgid, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "setuid-binary low /usr/bin/passwd",
                "setuid-binary low /usr/bin/su",
                "setuid-binary medium /usr/local/bin/backdoor",
            ]
        );
        assert_eq!(out.findings[1].details["package"], "login");
        assert_eq!(out.findings[2].details["package"], Value::Null);
        assert_eq!(
            out.findings[1].message,
            "setuid-root binary /usr/bin/su (mode 4755), owned by package login"
        );
        assert_eq!(
            out.findings[2].message,
            "setuid-root binary /usr/local/bin/backdoor (mode 4755), not owned by any package"
        );
        assert_eq!(out.findings[0].layer_index, Some(2));
        insta::assert_json_snapshot!(out.findings);
    }

    #[test]
    fn without_a_package_db_setuid_root_is_medium() {
        let fs = fs_of(vec![vec![
            file("usr/local/bin/x", 0o4755),
            owned(file("usr/local/bin/y", 0o4750), 1000, 1000),
        ]]);
        let out = run(&SetuidSetgid, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "setuid-binary medium /usr/local/bin/x",
                "setuid-binary low /usr/local/bin/y",
            ]
        );
        assert_eq!(out.findings[0].details["package_db"], "none");
        assert!(
            out.findings[0]
                .message
                .ends_with("no package database to tell who installed it")
        );
        assert_eq!(
            out.findings[1].message,
            "setuid binary /usr/local/bin/y (mode 4750, owner uid 1000), \
             no package database to tell who installed it"
        );
    }

    #[test]
    fn setgid_severity_by_group_and_ownership() {
        let mut l = dpkg(&[("passwd", "/usr/bin/chage\n/usr/bin/rootgrp\n")]);
        l.extend([
            owned(file("usr/bin/chage", 0o2755), 0, 42),
            owned(file("usr/bin/rootgrp", 0o2755), 0, 0),
            owned(file("usr/local/bin/handmade", 0o2755), 0, 42),
            owned(file("usr/bin/both", 0o6755), 0, 0),
        ]);
        let out = run(&SetuidSetgid, &fs_of(vec![l]), &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "setuid-binary medium /usr/bin/both",
                "setgid-binary medium /usr/bin/both",
                "setgid-binary info /usr/bin/chage",
                "setgid-binary low /usr/bin/rootgrp",
                "setgid-binary low /usr/local/bin/handmade",
            ]
        );
        assert_eq!(
            out.findings[2].message,
            "setgid binary /usr/bin/chage (mode 2755, group gid 42), owned by package passwd"
        );
    }

    #[test]
    fn only_regular_files_and_hard_links() {
        let fs = fs_of(vec![vec![
            dir("var/mail", 0o2775),
            dir("srv/suid-dir", 0o4755),
            Entry {
                mode: 0o4777,
                ..symlink("usr/bin/link", "target")
            },
            entry("dev/x", Kind::CharDevice, 0o6666),
            entry("run/fifo", Kind::Fifo, 0o4777),
            file("usr/bin/plain", 0o755),
            file("usr/bin/suidish", 0o755),
            // The link header's mode applies to the shared inode.
            hardlink("usr/bin/suidlink", "usr/bin/suidish", 0o4755),
        ]]);
        let out = run(&SetuidSetgid, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "setuid-binary medium /usr/bin/suidish",
                "setuid-binary medium /usr/bin/suidlink",
            ]
        );
        assert!(!out.findings[0].details.contains_key("hardlink_to"));
        assert_eq!(out.findings[1].details["hardlink_to"], "/usr/bin/suidish");
        assert_ne!(out.findings[0].fingerprint, out.findings[1].fingerprint);
    }

    #[test]
    fn clean_image_has_no_findings() {
        let fs = fs_of(vec![vec![dir("usr/bin", 0o755), file("usr/bin/ls", 0o755)]]);
        assert!(
            run(&SetuidSetgid, &fs, &config_user(None))
                .findings
                .is_empty()
        );
    }
}
