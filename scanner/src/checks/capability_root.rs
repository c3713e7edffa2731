//! `capability-root`: an interpreter with a file capability that gives
//! root, which the runtime user can execute.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`CAPABILITY_ROOT`] (`checks/docs/capability-root.md`),
//! included here.
#![doc = include_str!("docs/capability-root.md")]
//!
//! # When it holds
//! capabilities(7), "Transformation of capabilities during execve()":
//! `P'(permitted) = (P(inheritable) & F(inheritable)) | (F(permitted) &
//! P(bounding))`; with the file's effective bit the permitted set becomes
//! effective, and when the bounding set lacks one of the file's permitted
//! capabilities the exec fails (EPERM, "safety checking for
//! capability-dumb binaries"). So a file whose capabilities are all in
//! Docker's default set works as is; one that needs more works only where
//! the container is given them (`--cap-add`).

use serde::Serialize;

use super::access::{Perm, access};
use super::base_name;
use super::escalation::{NewPath, Power, power_of, push_path, who_step};
use super::{Check, Context, Findings};
use crate::capability::{DOCKER_DEFAULT, FileCaps};
use crate::model::Closer;
use crate::rules::{Reach, RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;

/// `capability-root` (IS013).
pub const CAPABILITY_ROOT: RuleMeta = RuleMeta {
    id: RuleId::CapabilityRoot,
    code: "IS013",
    name: "CapabilityRoot",
    default_severity: Severity::Critical,
    summary: "The runtime user can execute an interpreter whose file capabilities give root (cap_setuid, cap_setfcap): a path to root.",
    severity_note: "critical when every capability of the file is in Docker's default bounding set (it works under default settings); high when the container must be given one more (--cap-add). Closed by no-new-privileges and by --cap-drop ALL.",
    // CWE-250: Execution with Unnecessary Privileges.
    tags: &[
        "privilege-escalation",
        "path-to-root",
        "external/cwe/cwe-250",
    ],
    status: RuleStatus::Active,
    kind: RuleKind::Path(Reach::Local),
    explanation: include_str!("docs/capability-root.md"),
};

/// Capabilities that give uid 0 to an interpreter directly, and how.
const GIVES_ROOT: &[(&str, &str)] = &[
    ("cap_setuid", "it calls setuid(0)"),
    (
        "cap_setfcap",
        "it sets cap_setuid on a copy of itself, which then calls setuid(0)",
    ),
];

/// `capability-root` facts (with `steps` and `closed_by`).
#[derive(Debug, Serialize)]
pub struct CapabilityRootFacts {
    /// The capabilities as `getcap` prints them.
    pub getcap: String,
    /// The capability the path uses.
    pub capability: String,
    /// Whether Docker's default bounding set is enough for the exec.
    pub works_by_default: bool,
    /// The capabilities the container must be given first (`--cap-add`).
    pub needs_cap_add: Vec<String>,
}

/// Reports `capability-root`.
pub struct CapabilityRoot;

impl Check for CapabilityRoot {
    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        let Some((who, first)) = who_step(ctx) else {
            return;
        };
        for (path, node) in ctx.inventory.select(|name, n| {
            n.is_regular() && n.caps().is_some() && power_of(name) == Some(Power::Shell)
        }) {
            let Some(Ok(caps)) = node.caps().map(FileCaps::parse) else {
                continue;
            };
            // Namespaced to another user-namespace root: not this container's.
            if caps.rootid.is_some_and(|r| r != 0) || !caps.effective {
                continue;
            }
            let permitted = caps.permitted_names();
            let Some((cap, how)) = GIVES_ROOT
                .iter()
                .find(|(c, _)| permitted.iter().any(|p| p == c))
            else {
                continue;
            };
            let Ok(exec) = access(ctx.fs, &who, &path, Perm::Exec) else {
                continue;
            };
            let needs: Vec<String> = permitted
                .iter()
                .filter(|p| !DOCKER_DEFAULT.contains(&p.as_str()))
                .cloned()
                .collect();
            let name = base_name(&path);
            let getcap = caps.getcap_text();
            let mut steps = vec![
                first.clone(),
                format!("/{path} has file capabilities {getcap} (effective on exec)"),
                format!("/{path} is {}", exec.why),
                format!("{name} is an interpreter: {how}"),
            ];
            let by_default = needs.is_empty();
            steps.push(if by_default {
                "every one of its capabilities is in Docker's default bounding set, so the exec \
                 succeeds under default settings"
                    .to_owned()
            } else {
                format!(
                    "its exec fails with EPERM unless the container is given {} (--cap-add)",
                    needs.join(", ")
                )
            });
            push_path(
                ctx,
                out,
                NewPath {
                    rule: RuleId::CapabilityRoot,
                    severity: if by_default {
                        Severity::Critical
                    } else {
                        Severity::High
                    },
                    at: Some((path.as_str(), node)),
                    message: if by_default {
                        format!(
                            "the runtime user can run /{path} with {getcap}: {how}, a path to root"
                        )
                    } else {
                        format!(
                            "the runtime user can run /{path} with {getcap}: {how}, a path to \
                             root once the container is given {}",
                            needs.join(", ")
                        )
                    },
                    facts: CapabilityRootFacts {
                        getcap,
                        capability: (*cap).to_owned(),
                        works_by_default: by_default,
                        needs_cap_add: needs,
                    },
                    steps,
                    closed_by: vec![Closer::NoNewPrivileges, Closer::CapDropAll],
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

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";

    /// Revision 2 `security.capability` with `permitted` and the effective flag.
    fn with_caps(mut e: Entry, permitted: u64) -> Entry {
        let mut raw = 0x0200_0001u32.to_le_bytes().to_vec();
        raw.extend((permitted as u32).to_le_bytes());
        raw.extend(0u32.to_le_bytes());
        raw.extend(((permitted >> 32) as u32).to_le_bytes());
        raw.extend(0u32.to_le_bytes());
        e.caps = Some(raw.into());
        e
    }

    #[test]
    fn setuid_capability_on_an_interpreter() {
        const SETUID: u64 = 1 << 7;
        const SYS_ADMIN: u64 = 1 << 21;
        const NET_RAW: u64 = 1 << 13;
        let fs = fs_of(vec![vec![
            text("etc/passwd", PASSWD),
            with_caps(file("usr/bin/python3.11", 0o755), SETUID),
            with_caps(file("usr/bin/perl", 0o755), SETUID | SYS_ADMIN),
            with_caps(file("usr/bin/ping", 0o755), NET_RAW),
            with_caps(file("usr/bin/ruby", 0o750), SETUID),
        ]]);
        let out = run(&CapabilityRoot, &fs, &config_user(Some("app")));
        assert_eq!(
            brief(&out.findings),
            [
                "capability-root high /usr/bin/perl",
                "capability-root critical /usr/bin/python3.11"
            ]
        );
        assert_eq!(
            out.findings[0].details["needs_cap_add"],
            serde_json::json!(["cap_sys_admin"])
        );
    }
}
