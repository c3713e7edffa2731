//! `world-writable-path`: root-owned files and directories anyone can write.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`WORLD_WRITABLE_PATH`] (`checks/docs/world-writable-
//! path.md`), included here.
#![doc = include_str!("docs/world-writable-path.md")]

use serde::Serialize;

use super::{Check, Context, Findings, NewFinding, details, mode_string};
use crate::rules::{RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;
use crate::tarstream::Kind;

/// `world-writable-path` (IS007).
pub const WORLD_WRITABLE_PATH: RuleMeta = RuleMeta {
    id: RuleId::WorldWritablePath,
    code: "IS007",
    name: "WorldWritablePath",
    default_severity: Severity::Medium,
    summary: "A root-owned file or directory is writable by everyone (mode o+w). Symlinks, device nodes and sticky directories such as /tmp are not flagged.",
    severity_note: "high for files; medium for directories without the sticky bit.",
    // CWE-732: Incorrect Permission Assignment for Critical Resource.
    tags: &["file-permissions", "external/cwe/cwe-732"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/world-writable-path.md"),
};

/// `world-writable-path` details.
#[derive(Debug, Serialize)]
pub struct WorldWritableDetails {
    /// Permission bits, four octal digits (`0777`, `0666`).
    pub mode: String,
    /// What the entry is: `file`, `hardlink` or `dir`.
    pub kind: &'static str,
    /// Owner uid (always 0: only root-owned paths are flagged).
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
}

const S_IWOTH: u32 = 0o002;
const S_ISVTX: u32 = 0o1000;

/// Reports `world-writable-path`.
pub struct WorldWritable;

impl Check for WorldWritable {
    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        for (path, node) in ctx
            .inventory
            .select(|_, n| n.uid == 0 && n.mode & S_IWOTH != 0)
        {
            let path = path.as_str();
            let mode = mode_string(node.mode);
            let (severity, message) = match node.kind {
                Kind::File | Kind::Hardlink => (
                    Severity::High,
                    format!("root-owned file /{path} is writable by everyone (mode {mode})"),
                ),
                Kind::Dir if node.mode & S_ISVTX == 0 => (
                    Severity::Medium,
                    format!(
                        "root-owned directory /{path} is writable by everyone without the sticky bit (mode {mode})"
                    ),
                ),
                _ => continue,
            };
            out.push(
                ctx,
                NewFinding {
                    rule: RuleId::WorldWritablePath,
                    severity,
                    at: Some((path, node)),
                    message,
                    details: details(&WorldWritableDetails {
                        mode,
                        kind: node.kind.as_str(),
                        uid: node.uid,
                        gid: node.gid,
                    }),
                    subject: String::new(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;
    use crate::layer::Entry;

    #[test]
    fn files_dirs_and_the_root() {
        let fs = fs_of(vec![
            vec![
                dir("", 0o777),
                file("etc/app.conf", 0o666),
                dir("srv/shared", 0o777),
                owned(dir("srv/group", 0o2777), 0, 50),
                file("usr/bin/ok", 0o755),
            ],
            vec![hardlink("etc/app.link", "etc/app.conf", 0o646)],
        ]);
        let out = run(&WorldWritable, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "world-writable-path medium /",
                "world-writable-path high /etc/app.conf",
                "world-writable-path high /etc/app.link",
                "world-writable-path medium /srv/group",
                "world-writable-path medium /srv/shared",
            ]
        );
        // The hard link's header mode is the shared inode's mode.
        assert_eq!(out.findings[1].details["mode"], "0646");
        assert_eq!(out.findings[2].details["kind"], "hardlink");
        insta::assert_json_snapshot!(out.findings);
    }

    #[test]
    fn sticky_dirs_symlinks_devices_and_other_owners_are_not_flagged() {
        let fs = fs_of(vec![vec![
            dir("tmp", 0o1777),
            dir("var/tmp", 0o1777),
            symlink("etc/link", "app.conf"),
            Entry {
                mode: 0o777,
                ..symlink("etc/link2", "/nowhere")
            },
            entry("dev/null", Kind::CharDevice, 0o666),
            entry("dev/sda", Kind::BlockDevice, 0o666),
            entry("run/fifo", Kind::Fifo, 0o666),
            entry("run/other", Kind::Other, 0o777),
            owned(file("home/app/notes", 0o666), 1000, 1000),
            owned(dir("home/app/drop", 0o777), 1000, 1000),
            file("etc/ok", 0o664),
        ]]);
        let out = run(&WorldWritable, &fs, &config_user(None));
        assert!(out.findings.is_empty(), "{:?}", brief(&out.findings));
    }
}
