//! `file-capability`: files that carry Linux file capabilities.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`FILE_CAPABILITY`] (`checks/docs/file-capability.md`),
//! included here.
#![doc = include_str!("docs/file-capability.md")]

use serde::Serialize;

use super::{Check, Context, Findings, NewFinding, details};
use crate::capability::{DANGEROUS, FileCaps, ROOT_EQUIVALENT};
use crate::digest::to_hex;
use crate::rules::{RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;
use crate::tarstream::Kind;

/// `file-capability` (IS006).
pub const FILE_CAPABILITY: RuleMeta = RuleMeta {
    id: RuleId::FileCapability,
    code: "IS006",
    name: "FileCapability",
    default_severity: Severity::Low,
    summary: "A file carries Linux file capabilities (the security.capability extended attribute).",
    severity_note: "high when a permitted or inheritable capability is root-equivalent (cap_sys_admin, cap_sys_ptrace, cap_sys_module, cap_dac_override, cap_dac_read_search, cap_setuid, cap_setgid, cap_setfcap, cap_setpcap, cap_chown, cap_fowner, cap_sys_rawio, cap_bpf); medium for other powerful ones (cap_net_admin, cap_sys_chroot, cap_mknod, cap_sys_time, ...); low otherwise (cap_net_raw, cap_net_bind_service); info for an empty set. Capabilities namespaced to a non-zero rootid (revision 3) are one level lower. A malformed value is medium. An interpreter the runtime user can run with cap_setuid or cap_setfcap is also a `capability-root` path (critical).",
    // CWE-250: Execution with Unnecessary Privileges.
    tags: &["privilege-escalation", "external/cwe/cwe-250"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/file-capability.md"),
};

/// `file-capability` details of a `security.capability` the kernel accepts.
#[derive(Debug, Serialize)]
pub struct FileCapabilityDetails {
    /// Every permitted or inheritable capability, lowercase (`cap_net_raw`;
    /// `cap_N` for a number without a name). Empty for an empty set.
    pub capabilities: Vec<String>,
    /// The effective flag (`+ep`): the capabilities are raised on exec.
    pub effective: bool,
    /// The `vfs_cap_data` revision: 1, 2 or 3 (namespaced, with a rootid).
    pub revision: u8,
    /// Revision 3's user-namespace root uid; `None` (null) for 1 and 2.
    pub rootid: Option<u32>,
    /// The set as `getcap` prints it (`cap_net_raw=ep`).
    pub getcap: String,
    /// The package that owns the path; `None` (null) when none does.
    pub package: Option<String>,
    /// The package database consulted ([`super::packages::PackageDb::kind`]).
    pub package_db: &'static str,
    /// SHA-256 of the file's content, lowercase hex (what an ignore entry's
    /// `sha256` pins); null when imgscan did not read it.
    pub sha256: Option<String>,
}

/// `file-capability` details of a `security.capability` the kernel rejects.
#[derive(Debug, Serialize)]
pub struct MalformedCapabilityDetails {
    /// Why the value is malformed.
    pub error: String,
    /// The raw attribute value, lowercase hex.
    pub raw_hex: String,
    /// The package that owns the path; `None` (null) when none does.
    pub package: Option<String>,
    /// The package database consulted ([`super::packages::PackageDb::kind`]).
    pub package_db: &'static str,
}

/// Reports `file-capability`.
pub struct FileCapabilities;

/// The severity of a decoded capability set (see the module docs).
pub fn caps_severity(caps: &FileCaps) -> Severity {
    let names = caps.names();
    let has = |set: &[&str]| names.iter().any(|n| set.contains(&n.as_str()));
    // Severities by exploitability: a capability alone is attack surface;
    // `capability-root` reports the files that are a working path.
    let base = if has(ROOT_EQUIVALENT) {
        Severity::High
    } else if has(DANGEROUS) {
        Severity::Medium
    } else if names.is_empty() {
        Severity::Info
    } else {
        Severity::Low
    };
    if caps.rootid.is_some_and(|r| r != 0) {
        base.lowered()
    } else {
        base
    }
}

impl Check for FileCapabilities {
    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        for (path, node) in ctx.inventory.select(|_, n| n.caps().is_some()) {
            let path = path.as_str();
            if node.kind == Kind::Symlink {
                continue;
            }
            let Some(raw) = node.caps() else {
                continue;
            };
            let finding = match FileCaps::parse(raw) {
                Err(error) => NewFinding {
                    rule: RuleId::FileCapability,
                    severity: Severity::Medium,
                    at: Some((path, node)),
                    message: format!("/{path} has a malformed security.capability: {error}"),
                    details: details(&MalformedCapabilityDetails {
                        error,
                        raw_hex: to_hex(raw),
                        package: ctx.packages.owner(path).map(str::to_owned),
                        package_db: ctx.packages.kind(),
                    }),
                    subject: String::new(),
                },
                Ok(caps) => {
                    let getcap = caps.getcap_text();
                    let scope = match caps.rootid {
                        Some(r) if r != 0 => {
                            format!(" (namespaced: only for user-namespace root uid {r})")
                        }
                        _ => String::new(),
                    };
                    NewFinding {
                        rule: RuleId::FileCapability,
                        severity: caps_severity(&caps),
                        at: Some((path, node)),
                        message: if caps.names().is_empty() {
                            format!(
                                "/{path} has an empty file capability set ({getcap}), {}",
                                ctx.packages.ownership_phrase(path)
                            )
                        } else {
                            format!(
                                "/{path} has file capabilities {getcap}{scope}, {}",
                                ctx.packages.ownership_phrase(path)
                            )
                        },
                        details: details(&FileCapabilityDetails {
                            capabilities: caps.names(),
                            effective: caps.effective,
                            revision: caps.revision,
                            rootid: caps.rootid,
                            getcap,
                            package: ctx.packages.owner(path).map(str::to_owned),
                            package_db: ctx.packages.kind(),
                            sha256: node.content_sha256(),
                        }),
                        subject: String::new(),
                    }
                }
            };
            out.push(ctx, finding);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;
    use crate::layer::Entry;
    use serde_json::Value;

    /// A revision 2 value with `permitted` set (and the effective flag).
    fn v2(permitted: u64, effective: bool) -> Box<[u8]> {
        let mut v = (0x0200_0000u32 | u32::from(effective))
            .to_le_bytes()
            .to_vec();
        v.extend_from_slice(&(permitted as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&((permitted >> 32) as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.into()
    }

    fn v3(permitted: u64, rootid: u32) -> Box<[u8]> {
        let mut v = v2(permitted, true).into_vec();
        v[3] = 3;
        v.extend_from_slice(&rootid.to_le_bytes());
        v.into()
    }

    fn with_caps(e: Entry, caps: Box<[u8]>) -> Entry {
        Entry {
            caps: Some(caps),
            ..e
        }
    }

    const NET_RAW: u64 = 1 << 13;
    const NET_BIND: u64 = 1 << 10;
    const SYS_ADMIN: u64 = 1 << 21;
    const SETUID: u64 = 1 << 7;
    const NET_ADMIN: u64 = 1 << 12;

    #[test]
    fn severity_by_capability() {
        let fs = fs_of(vec![vec![
            with_caps(
                file("usr/bin/admin-tool", 0o755),
                v2(SYS_ADMIN | SETUID, true),
            ),
            with_caps(file("usr/bin/empty", 0o755), v2(0, false)),
            with_caps(file("usr/bin/netadm", 0o755), v2(NET_ADMIN, true)),
            with_caps(file("usr/bin/ping", 0o755), v2(NET_RAW, true)),
            with_caps(file("usr/bin/web", 0o755), v2(NET_BIND | NET_RAW, false)),
        ]]);
        let out = run(&FileCapabilities, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "file-capability high /usr/bin/admin-tool",
                "file-capability info /usr/bin/empty",
                "file-capability medium /usr/bin/netadm",
                "file-capability low /usr/bin/ping",
                "file-capability low /usr/bin/web",
            ]
        );
        let ping = &out.findings[3];
        assert_eq!(ping.details["getcap"], "cap_net_raw=ep");
        assert_eq!(
            ping.details["capabilities"],
            serde_json::json!(["cap_net_raw"])
        );
        assert_eq!(ping.details["rootid"], Value::Null);
        assert_eq!(ping.details["revision"], 2);
        assert!(ping.message.contains("cap_net_raw=ep"), "{}", ping.message);
        assert_eq!(out.findings[4].details["effective"], false);
        insta::assert_json_snapshot!(out.findings);
    }

    #[test]
    fn namespaced_v3_is_one_level_lower() {
        let fs = fs_of(vec![vec![
            with_caps(file("usr/bin/ns-admin", 0o755), v3(SYS_ADMIN, 1000)),
            with_caps(file("usr/bin/ns-ping", 0o755), v3(NET_RAW, 1000)),
            with_caps(file("usr/bin/root-ns", 0o755), v3(SYS_ADMIN, 0)),
        ]]);
        let out = run(&FileCapabilities, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "file-capability medium /usr/bin/ns-admin",
                "file-capability info /usr/bin/ns-ping",
                "file-capability high /usr/bin/root-ns",
            ]
        );
        assert_eq!(out.findings[0].details["rootid"], 1000);
        assert_eq!(out.findings[0].details["revision"], 3);
        assert!(out.findings[0].message.contains("uid 1000"));
        assert_eq!(out.findings[2].details["rootid"], 0);
    }

    #[test]
    fn malformed_values_are_reported_as_such() {
        let fs = fs_of(vec![vec![
            with_caps(
                file("usr/bin/short", 0o755),
                Box::new([1, 0, 0, 2, 0, 0x20]),
            ),
            with_caps(
                file("usr/bin/badrev", 0o755),
                Box::new([0, 0, 0, 9, 0, 0, 0, 0]),
            ),
        ]]);
        let out = run(&FileCapabilities, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "file-capability medium /usr/bin/badrev",
                "file-capability medium /usr/bin/short",
            ]
        );
        let short = &out.findings[1];
        assert_eq!(short.details["raw_hex"], "010000020020");
        assert!(
            short.details["error"]
                .as_str()
                .unwrap()
                .contains("needs 20 bytes")
        );
        assert!(short.message.contains("malformed security.capability"));
    }

    #[test]
    fn symlinks_ignored_hard_links_and_dirs_reported() {
        let fs = fs_of(vec![vec![
            with_caps(file("usr/bin/ping", 0o755), v2(NET_RAW, true)),
            hardlink("usr/bin/ping2", "usr/bin/ping", 0o755),
            with_caps(symlink("usr/bin/ping3", "ping"), v2(SYS_ADMIN, true)),
            with_caps(dir("opt/odd", 0o755), v2(SETUID, true)),
            file("usr/bin/plain", 0o755),
        ]]);
        let out = run(&FileCapabilities, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            [
                "file-capability high /opt/odd",
                "file-capability low /usr/bin/ping",
                "file-capability low /usr/bin/ping2",
            ]
        );
    }
}
