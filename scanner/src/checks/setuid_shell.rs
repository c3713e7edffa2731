//! `setuid-root-shell`: a setuid-root shell, interpreter or other program
//! that runs commands or writes files, which the runtime user can execute.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`SETUID_ROOT_SHELL`] (`checks/docs/setuid-root-shell.md`),
//! included here.
#![doc = include_str!("docs/setuid-root-shell.md")]

use serde::Serialize;

use super::access::{Perm, access};
use super::base_name;
use super::escalation::{NewPath, Power, push_path, setuid_power_of, who_step};
use super::sudo::setuid_program;
use super::{Check, Context, Findings, mode_string};
use crate::model::Closer;
use crate::rules::{Reach, RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;

/// `setuid-root-shell` (IS012).
pub const SETUID_ROOT_SHELL: RuleMeta = RuleMeta {
    id: RuleId::SetuidRootShell,
    code: "IS012",
    name: "SetuidRootShell",
    default_severity: Severity::Critical,
    summary: "The runtime user can execute a setuid-root shell, interpreter or other program that runs commands or writes files: a path to root.",
    severity_note: "critical: it works under the default runtime settings; closed by no-new-privileges.",
    // CWE-250: Execution with Unnecessary Privileges.
    tags: &[
        "privilege-escalation",
        "path-to-root",
        "external/cwe/cwe-250",
    ],
    status: RuleStatus::Active,
    kind: RuleKind::Path(Reach::Local),
    explanation: include_str!("docs/setuid-root-shell.md"),
};

/// `setuid-root-shell` facts (with `steps` and `closed_by`).
#[derive(Debug, Serialize)]
pub struct SetuidShellFacts {
    /// Permission bits (`4755`).
    pub mode: String,
    /// The program's name as matched against imgscan's list.
    pub program: String,
}

/// Reports `setuid-root-shell`.
pub struct SetuidRootShell;

impl Check for SetuidRootShell {
    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        let Some((who, first)) = who_step(ctx) else {
            return;
        };
        for (path, node) in ctx.inventory.select(|name, n| {
            n.is_regular() && n.uid == 0 && n.mode & 0o4000 != 0 && setuid_power_of(name).is_some()
        }) {
            let name = base_name(&path);
            let Some(power) = setuid_power_of(name) else {
                continue;
            };
            let Ok(exec) = access(ctx.fs, &who, &path, Perm::Exec) else {
                continue;
            };
            let mode = mode_string(node.mode);
            let mut steps = vec![
                first.clone(),
                format!(
                    "/{path} is owned by root with the set-user-ID bit (mode {mode}): it runs with euid 0"
                ),
                format!("/{path} is {}", exec.why),
                format!("{name}: {}", power.phrase()),
            ];
            // A file write becomes root through a setuid su that reads the
            // written /etc/passwd.
            if power == Power::WritesFiles {
                match setuid_program(ctx, &who, &["usr/bin/su", "bin/su"]) {
                    Ok((su, _, g)) => steps.push(format!(
                        "with it, write an account with uid 0 and a password of one's choosing \
                         into /etc/passwd, then run /{su} (setuid root, {}) to it",
                        g.why
                    )),
                    Err(_) => continue,
                }
            }
            push_path(
                ctx,
                out,
                NewPath {
                    rule: RuleId::SetuidRootShell,
                    severity: Severity::Critical,
                    at: Some((path.as_str(), node)),
                    message: format!(
                        "the runtime user can run setuid-root /{path} (mode {mode}); {}: a path to root",
                        power.phrase()
                    ),
                    facts: SetuidShellFacts {
                        mode,
                        program: name.to_owned(),
                    },
                    steps,
                    closed_by: vec![Closer::NoNewPrivileges],
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

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";

    #[test]
    fn a_setuid_shell_the_user_can_run_is_a_path() {
        let fs = fs_of(vec![vec![
            text("etc/passwd", PASSWD),
            dir("usr/bin", 0o755),
            file("usr/bin/bash", 0o4755),
            file("usr/bin/find", 0o4750),
            file("usr/bin/passwd", 0o4755),
            file("usr/bin/python3.11", 0o755),
        ]]);
        let out = run(&SetuidRootShell, &fs, &config_user(Some("app")));
        assert_eq!(
            brief(&out.findings),
            ["setuid-root-shell critical /usr/bin/bash"]
        );
        let d = &out.findings[0].details;
        assert_eq!(d["closed_by"], serde_json::json!(["no-new-privileges"]));
        assert_eq!(d["steps"].as_array().unwrap().len(), 4);
        // Root already is root: no path is reported for it.
        let out = run(&SetuidRootShell, &fs, &config_user(None));
        assert!(out.findings.is_empty());
    }

    #[test]
    fn shell_escapes_are_not_setuid_paths_and_file_writes_need_su() {
        let image = |su_mode: u32| {
            fs_of(vec![vec![
                text("etc/passwd", PASSWD),
                file("usr/bin/less", 0o4755),
                file("usr/bin/busybox", 0o4755),
                file("usr/bin/cp", 0o4755),
                file("usr/bin/su", su_mode),
            ]])
        };
        let out = run(&SetuidRootShell, &image(0o4755), &config_user(Some("app")));
        assert_eq!(
            brief(&out.findings),
            ["setuid-root-shell critical /usr/bin/cp"]
        );
        let out = run(&SetuidRootShell, &image(0o755), &config_user(Some("app")));
        assert!(out.findings.is_empty(), "no su to use the written passwd");
    }
}
