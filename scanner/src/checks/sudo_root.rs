//! `sudo-root`: a sudo rule that lets the runtime user run a command as
//! root that gives root, without a password (or with an empty one).
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`SUDO_ROOT`] (`checks/docs/sudo-root.md`), included here.
#![doc = include_str!("docs/sudo-root.md")]

use serde::Serialize;

use super::accounts::PasswordState;
use super::escalation::{NewPath, push_path, who_step};
use super::sudo::{Auth, command_power, pam_nullok, setuid_program};
use super::{Check, Context, Findings};
use crate::model::Closer;
use crate::rules::{Reach, RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;

/// `sudo-root` (IS014).
pub const SUDO_ROOT: RuleMeta = RuleMeta {
    id: RuleId::SudoRoot,
    code: "IS014",
    name: "SudoRoot",
    default_severity: Severity::Critical,
    summary: "A sudo rule lets the runtime user run, as root and without a password (NOPASSWD, Defaults !authenticate, or an empty password), any command or a program that gives a shell or writes files: a path to root.",
    severity_note: "critical: it works under the default runtime settings; closed by no-new-privileges (sudo is setuid).",
    // CWE-269: Improper Privilege Management.
    tags: &[
        "privilege-escalation",
        "path-to-root",
        "external/cwe/cwe-269",
    ],
    status: RuleStatus::Active,
    kind: RuleKind::Path(Reach::Local),
    explanation: include_str!("docs/sudo-root.md"),
};

/// `sudo-root` facts (with `steps` and `closed_by`).
#[derive(Debug, Serialize)]
pub struct SudoRootFacts {
    /// The rule's first line in its file (1-based).
    pub line: usize,
    /// The rule as written, white space folded.
    pub rule: String,
    /// The command that gives root.
    pub command: String,
}

/// Reports `sudo-root`.
pub struct SudoRoot;

impl Check for SudoRoot {
    fn captures(path: &str) -> bool {
        super::sudo::sudoers_files(path) || super::sudo::pam_files(path)
    }

    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        let Some((who, first)) = who_step(ctx) else {
            return;
        };
        if !super::sudo::invoker_known(ctx) {
            return;
        }
        let Ok((sudo, _, exec)) = setuid_program(
            ctx,
            &who,
            &["usr/bin/sudo", "bin/sudo", "usr/local/bin/sudo"],
        ) else {
            return;
        };
        let policy = ctx.sudo;
        out.warnings.extend(policy.warnings.iter().cloned());
        let name = ctx.user.name.as_deref();
        for (grant, commands) in policy.root_grants(ctx, &who, name) {
            let Some((command, gives)) = commands
                .iter()
                .find_map(|c| command_power(c).map(|g| (c.clone(), g)))
            else {
                continue;
            };
            let auth_step = match policy.authentication(ctx, &who, name, &grant) {
                Auth::None(why) => format!("sudo asks for no password: {why}"),
                auth @ (Auth::Own | Auth::Root(_)) => {
                    // With a password: a path only when it is empty and PAM
                    // takes an empty one.
                    let account = match &auth {
                        Auth::Root(_) => ctx.accounts.user_by_name("root"),
                        _ => name.and_then(|n| ctx.accounts.user_by_name(n)),
                    };
                    let Some(account) = account else {
                        continue;
                    };
                    let pw = ctx.accounts.password(account);
                    if pw.state != PasswordState::Empty {
                        continue;
                    }
                    let Ok(nullok) = pam_nullok(ctx, "sudo") else {
                        continue;
                    };
                    format!(
                        "sudo asks for {}'s password, which is empty ({}){}",
                        account.name,
                        pw.source(),
                        nullok.map_or_else(String::new, |w| format!(
                            ", and PAM accepts an empty one ({w})"
                        ))
                    )
                }
            };
            let steps = vec![
                first.clone(),
                format!("/{sudo} is setuid root and {}", exec.why),
                format!(
                    "/{} line {} grants it {gives} as root on any host: {}",
                    grant.file, grant.line, grant.rule
                ),
                auth_step,
            ];
            let at = ctx.fs.get(&grant.file).map(|n| (grant.file.as_str(), n));
            push_path(
                ctx,
                out,
                NewPath {
                    rule: RuleId::SudoRoot,
                    severity: Severity::Critical,
                    at,
                    message: format!(
                        "the runtime user can `sudo {}` as root without a password (/{} line {}): a path to root",
                        if command == "ALL" {
                            "sh"
                        } else {
                            command.as_str()
                        },
                        grant.file,
                        grant.line
                    ),
                    facts: SudoRootFacts {
                        line: grant.line,
                        rule: grant.rule.clone(),
                        command: command.clone(),
                    },
                    steps,
                    closed_by: vec![Closer::NoNewPrivileges],
                    subject: format!("{}:{}", grant.line, command),
                },
            );
            // One path per rule line is enough proof.
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nops:x:1001:1001::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:app\n";

    fn image(sudoers: &str) -> crate::fs::FinalFs {
        fs_of(vec![vec![
            text("etc/passwd", PASSWD),
            text("etc/group", GROUP),
            file("usr/bin/sudo", 0o4755),
            text("etc/sudoers", sudoers),
        ]])
    }

    fn paths(sudoers: &str) -> Vec<String> {
        let out = run(&SudoRoot, &image(sudoers), &config_user(Some("app")));
        out.findings
            .iter()
            .map(|f| f.details["command"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn grants_by_name_group_uid_and_alias() {
        assert_eq!(paths("app ALL=(ALL) NOPASSWD: ALL\n"), ["ALL"]);
        assert_eq!(
            paths("%wheel ALL=(root) NOPASSWD: /usr/bin/find\n"),
            ["/usr/bin/find"]
        );
        assert_eq!(paths("#1000 ALL = NOPASSWD: /bin/bash\n"), ["/bin/bash"]);
        assert_eq!(
            paths(
                "User_Alias DEVS = ops, app\nCmnd_Alias SH = /bin/sh\nDEVS ALL=(ALL:ALL) NOPASSWD: SH\n"
            ),
            ["/bin/sh"]
        );
        assert_eq!(
            paths("Defaults:app !authenticate\napp ALL=(ALL) ALL\n"),
            ["ALL"]
        );
        assert_eq!(
            paths("ALL ALL=(ALL) NOPASSWD: /usr/bin/vim\n"),
            ["/usr/bin/vim"]
        );
    }

    #[test]
    fn twins_without_a_path() {
        // A password is needed (and app's is unknown).
        assert!(paths("app ALL=(ALL) ALL\n").is_empty());
        // Not the runtime user.
        assert!(paths("ops ALL=(ALL) NOPASSWD: ALL\n").is_empty());
        assert!(paths("ALL,!app ALL=(ALL) NOPASSWD: ALL\n").is_empty());
        // Not as root.
        assert!(paths("app ALL=(ops) NOPASSWD: ALL\n").is_empty());
        // Fixed arguments, a harmless program, a named host.
        assert!(paths("app ALL=NOPASSWD: /usr/bin/find /var -name x\n").is_empty());
        assert!(paths("app ALL=NOPASSWD: /usr/sbin/service\n").is_empty());
        assert!(paths("app web1=NOPASSWD: ALL\n").is_empty());
        // A later PASSWD: takes the tag back.
        assert!(paths("app ALL=NOPASSWD: /bin/ls, PASSWD: /bin/sh\n").is_empty());
    }

    #[test]
    fn includes_are_followed_and_sudo_must_be_setuid() {
        let fs = fs_of(vec![vec![
            text("etc/passwd", PASSWD),
            text("etc/group", GROUP),
            file("usr/bin/sudo", 0o4755),
            text("etc/sudoers", "@includedir /etc/sudoers.d\n"),
            text("etc/sudoers.d/app", "app ALL=(ALL) NOPASSWD: ALL\n"),
            text("etc/sudoers.d/app.bak", "ops ALL=(ALL) NOPASSWD: ALL\n"),
        ]]);
        let out = run(&SudoRoot, &fs, &config_user(Some("app")));
        assert_eq!(
            brief(&out.findings),
            ["sudo-root critical /etc/sudoers.d/app"]
        );
        let fs = fs_of(vec![vec![
            text("etc/passwd", PASSWD),
            file("usr/bin/sudo", 0o755),
            text("etc/sudoers", "app ALL=(ALL) NOPASSWD: ALL\n"),
        ]]);
        assert!(
            run(&SudoRoot, &fs, &config_user(Some("app")))
                .findings
                .is_empty()
        );
    }
}
