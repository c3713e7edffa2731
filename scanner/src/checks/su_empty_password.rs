//! `su-empty-password`: `su` to root, or to another uid-0 account, whose
//! password is empty; and `empty-password`, the fact of an account with no
//! password.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`SU_EMPTY_PASSWORD`] and [`EMPTY_PASSWORD`]
//! (`checks/docs/su-empty-password.md`, `checks/docs/empty-password.md`),
//! included here.
#![doc = "# `su-empty-password`"]
#![doc = include_str!("docs/su-empty-password.md")]
#![doc = "# `empty-password`"]
#![doc = include_str!("docs/empty-password.md")]

use serde::Serialize;

use super::accounts::PasswordState;
use super::escalation::{NewPath, push_path, who_step};
use super::sudo::{pam_nullok, setuid_program};
use super::{Check, Context, Findings, NewFinding, details};
use crate::model::Closer;
use crate::rules::{Reach, RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;

/// `su-empty-password` (IS015).
pub const SU_EMPTY_PASSWORD: RuleMeta = RuleMeta {
    id: RuleId::SuEmptyPassword,
    code: "IS015",
    name: "SuEmptyPassword",
    default_severity: Severity::Critical,
    summary: "The runtime user can run a setuid-root su, and root (or another uid-0 account) has an empty password that su accepts: a path to root.",
    severity_note: "critical: it works under the default runtime settings; closed by no-new-privileges (su is setuid).",
    // CWE-258: Empty Password in Configuration File.
    tags: &[
        "privilege-escalation",
        "path-to-root",
        "external/cwe/cwe-258",
    ],
    status: RuleStatus::Active,
    kind: RuleKind::Path(Reach::Local),
    explanation: include_str!("docs/su-empty-password.md"),
};

/// `empty-password` (IS016).
pub const EMPTY_PASSWORD: RuleMeta = RuleMeta {
    id: RuleId::EmptyPassword,
    code: "IS016",
    name: "EmptyPassword",
    default_severity: Severity::Medium,
    summary: "An account has an empty password (no password at all) in /etc/passwd or /etc/shadow.",
    severity_note: "high for a uid-0 account; medium otherwise. Whether it is a way to root is `su-empty-password` and `sudo-root`.",
    // CWE-258: Empty Password in Configuration File.
    tags: &["accounts", "external/cwe/cwe-258"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/empty-password.md"),
};

/// `su-empty-password` facts (with `steps` and `closed_by`).
#[derive(Debug, Serialize)]
pub struct SuFacts {
    /// The uid-0 account su switches to.
    pub account: String,
    /// Where its empty password is (`/etc/shadow line 1`).
    pub password_source: String,
}

/// `empty-password` details.
#[derive(Debug, Serialize)]
pub struct EmptyPasswordDetails {
    /// The account.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// Where the empty password is.
    pub source: String,
}

/// Reports `su-empty-password` and `empty-password`.
pub struct SuEmptyPassword;

impl Check for SuEmptyPassword {
    fn captures(path: &str) -> bool {
        super::sudo::pam_files(path)
    }

    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        let mut empty_roots = Vec::new();
        for u in ctx.accounts.users() {
            if u.name.starts_with('#') || u.name.is_empty() {
                continue;
            }
            let pw = ctx.accounts.password(u);
            if pw.state != PasswordState::Empty {
                continue;
            }
            let at = ctx.fs.get(&pw.path).map(|n| (pw.path.as_str(), n));
            out.push(
                ctx,
                NewFinding {
                    rule: RuleId::EmptyPassword,
                    severity: if u.runtime_uid() == 0 {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    at,
                    message: format!(
                        "account {} (uid {}) has an empty password ({})",
                        u.name,
                        u.runtime_uid(),
                        pw.source()
                    ),
                    details: details(&EmptyPasswordDetails {
                        user: u.name.clone(),
                        uid: u.runtime_uid(),
                        source: pw.source(),
                    }),
                    subject: u.name.clone(),
                },
            );
            if u.runtime_uid() == 0 {
                empty_roots.push((u, pw));
            }
        }
        let Some((who, first)) = who_step(ctx) else {
            return;
        };
        if empty_roots.is_empty() {
            return;
        }
        let Ok((su, su_node, exec)) = setuid_program(ctx, &who, &["usr/bin/su", "bin/su"]) else {
            return;
        };
        let pam = match pam_nullok(ctx, "su") {
            Ok(Some(w)) => format!("PAM accepts an empty password for su ({w})"),
            Ok(None) => "the image has no /etc/pam.d: su checks the password itself and an empty one needs no typing".to_owned(),
            Err(_) => return,
        };
        let (account, pw) = &empty_roots[0];
        let steps = vec![
            first,
            format!("/{su} is setuid root and {}", exec.why),
            format!(
                "account {} has uid 0 and an empty password ({})",
                account.name,
                pw.source()
            ),
            pam,
        ];
        push_path(
            ctx,
            out,
            NewPath {
                rule: RuleId::SuEmptyPassword,
                severity: Severity::Critical,
                at: Some((su.as_str(), su_node)),
                message: format!(
                    "the runtime user can `su {}` with an empty password: a path to root",
                    account.name
                ),
                facts: SuFacts {
                    account: account.name.clone(),
                    password_source: pw.source(),
                },
                steps,
                closed_by: vec![Closer::NoNewPrivileges],
                subject: account.name.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;

    const COMMON_AUTH: &str =
        "auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth requisite pam_deny.so\n";

    fn image(shadow: &str, su_mode: u32, nullok: bool) -> crate::fs::FinalFs {
        fs_of(vec![vec![
            text(
                "etc/passwd",
                "root:x:0:0::/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n",
            ),
            text("etc/shadow", shadow),
            file("usr/bin/su", su_mode),
            text(
                "etc/pam.d/su",
                "auth sufficient pam_rootok.so\n@include common-auth\n",
            ),
            text(
                "etc/pam.d/common-auth",
                if nullok {
                    COMMON_AUTH
                } else {
                    "auth required pam_unix.so\n"
                },
            ),
        ]])
    }

    #[test]
    fn empty_root_password_and_setuid_su() {
        let out = run(
            &SuEmptyPassword,
            &image("root::20000:0:99999:7:::\napp:!:1::::::\n", 0o4755, true),
            &config_user(Some("app")),
        );
        assert_eq!(
            brief(&out.findings),
            [
                "empty-password high /etc/shadow",
                "su-empty-password critical /usr/bin/su"
            ]
        );
        let steps = out.findings[1].details["steps"].as_array().unwrap();
        assert!(
            steps[3]
                .as_str()
                .unwrap()
                .contains("/etc/pam.d/common-auth line 1"),
            "{steps:?}"
        );
    }

    #[test]
    fn each_step_missing_closes_it() {
        // A locked root.
        let out = run(
            &SuEmptyPassword,
            &image("root:!:20000::::::\n", 0o4755, true),
            &config_user(Some("app")),
        );
        assert!(out.findings.is_empty());
        // su not setuid.
        let out = run(
            &SuEmptyPassword,
            &image("root::1::::::\n", 0o755, true),
            &config_user(Some("app")),
        );
        assert_eq!(brief(&out.findings), ["empty-password high /etc/shadow"]);
        // PAM without nullok.
        let out = run(
            &SuEmptyPassword,
            &image("root::1::::::\n", 0o4755, false),
            &config_user(Some("app")),
        );
        assert_eq!(brief(&out.findings), ["empty-password high /etc/shadow"]);
    }
}
