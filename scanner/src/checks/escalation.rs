//! The vocabulary every path-to-root rule shares: the list of programs that
//! run commands or write files, how a path finding is recorded (its `steps`
//! and `closed_by`), and the verdict built from the paths.
//!
//! A path is claimed only when every step holds for the runtime user
//! ([`super::identity`]) on the final filesystem ([`super::access`]); each
//! step is one sentence naming the fact that was checked.
//!
//! What closes each path at run time follows no_new_privs (prctl(2):
//! "execve(2) promises not to grant privileges": set-id bits and file
//! capabilities give nothing), capabilities(7) (an empty bounding set makes
//! file capabilities fail) and the mount options (`--read-only`).

use serde::Serialize;

use super::{Context, Findings, NewFinding, details};
use crate::fs::Node;
use crate::model::{Closer, Escalation, EscalationPath, Finding, Resolution, RuntimeUser, Verdict};
use crate::rules::{Reach, RuleId, RuleKind};
use crate::severity::Severity;

/// What a program does for whoever runs it with root's powers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// A shell or an interpreter: any command.
    Shell,
    /// Runs a command it is given by exec, without a shell (`find -exec`,
    /// `env`, `xargs`).
    Execs,
    /// Runs a command through `sh -c` or `system()` (editors' and pagers'
    /// shell escapes, `awk`'s `system`): Debian's `/bin/sh` (dash) and bash
    /// drop a set-user-ID euid when started without `-p`, so these are a
    /// way to root only where the real uid is 0 (sudo), not setuid.
    ShellEscape,
    /// Writes any file it is told to (`cp`, `tee`, `dd`).
    WritesFiles,
}

impl Power {
    /// A phrase for a step.
    pub fn phrase(self) -> &'static str {
        match self {
            Self::Shell => "a shell or interpreter: it runs any command",
            Self::Execs => "it executes a command it is given",
            Self::ShellEscape => "it runs a command it is given through a shell",
            Self::WritesFiles => "it writes any file it is given",
        }
    }
}

/// Programs that give a shell, a command or a file write to whoever runs
/// them with root's powers, by file name, and whether that also holds when
/// they are set-user-ID root (the euid is 0, the real uid is not). Our own
/// list, checked by hand against GTFOBins' `suid`, `sudo` and
/// `capabilities` contexts (<https://gtfobins.github.io/>; names only,
/// nothing copied), each program's manual, and for the setuid column by
/// running them setuid in a Debian bookworm tree (`tests/escalation.rs`):
/// bash, dash, env, find, python3 and perl keep euid 0 (`-p` for the
/// shells); Debian's busybox drops it and has no `-p`. A name ending in `*`
/// matches any suffix (`python3.11`).
pub const POWERFUL: &[(&str, Power, bool)] = &[
    ("bash", Power::Shell, true),
    ("dash", Power::Shell, true),
    ("sh", Power::Shell, true),
    ("ksh", Power::Shell, true),
    ("mksh", Power::Shell, true),
    ("zsh", Power::Shell, true),
    ("ash", Power::Shell, false),
    ("busybox", Power::Shell, false),
    ("csh", Power::Shell, false),
    ("tcsh", Power::Shell, false),
    ("fish", Power::Shell, false),
    ("python*", Power::Shell, true),
    ("perl*", Power::Shell, true),
    ("ruby*", Power::Shell, true),
    ("node", Power::Shell, true),
    ("nodejs", Power::Shell, true),
    ("php*", Power::Shell, true),
    ("lua*", Power::Shell, true),
    ("tclsh*", Power::Shell, true),
    ("wish*", Power::Shell, true),
    ("expect", Power::Shell, true),
    ("gdb", Power::Shell, true),
    ("env", Power::Execs, true),
    ("find", Power::Execs, true),
    ("xargs", Power::Execs, true),
    ("nice", Power::Execs, true),
    ("ionice", Power::Execs, true),
    ("timeout", Power::Execs, true),
    ("stdbuf", Power::Execs, true),
    ("setarch", Power::Execs, true),
    ("taskset", Power::Execs, true),
    ("flock", Power::Execs, true),
    ("chroot", Power::Execs, true),
    ("strace", Power::Execs, true),
    ("socat", Power::Execs, true),
    ("rsync", Power::Execs, true),
    ("run-parts", Power::Execs, true),
    ("start-stop-daemon", Power::Execs, true),
    ("awk", Power::ShellEscape, false),
    ("gawk", Power::ShellEscape, false),
    ("mawk", Power::ShellEscape, false),
    ("nawk", Power::ShellEscape, false),
    ("vi", Power::ShellEscape, false),
    ("vim*", Power::ShellEscape, false),
    ("nvim", Power::ShellEscape, false),
    ("view", Power::ShellEscape, false),
    ("rvim", Power::ShellEscape, false),
    ("ed", Power::ShellEscape, false),
    ("emacs*", Power::ShellEscape, false),
    ("less", Power::ShellEscape, false),
    ("more", Power::ShellEscape, false),
    ("man", Power::ShellEscape, false),
    ("make", Power::ShellEscape, false),
    ("git", Power::ShellEscape, false),
    ("sed", Power::ShellEscape, false),
    ("tar", Power::ShellEscape, false),
    ("zip", Power::ShellEscape, false),
    ("script", Power::ShellEscape, false),
    ("ssh", Power::ShellEscape, false),
    ("apt", Power::ShellEscape, false),
    ("apt-get", Power::ShellEscape, false),
    ("dpkg", Power::ShellEscape, false),
    ("cp", Power::WritesFiles, true),
    ("mv", Power::WritesFiles, true),
    ("dd", Power::WritesFiles, true),
    ("tee", Power::WritesFiles, true),
    ("install", Power::WritesFiles, true),
    ("openssl", Power::WritesFiles, true),
];

fn entry_of(name: &str) -> Option<(Power, bool)> {
    POWERFUL.iter().find_map(|(pat, p, suid)| {
        let hit = match pat.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *pat,
        };
        hit.then_some((*p, *suid))
    })
}

/// What `name` (a file's base name) does when run with uid 0 (sudo), if it
/// is one of [`POWERFUL`].
pub fn power_of(name: &str) -> Option<Power> {
    entry_of(name).map(|(p, _)| p)
}

/// What `name` does when it is set-user-ID root, if that is a way to root.
pub fn setuid_power_of(name: &str) -> Option<Power> {
    entry_of(name).and_then(|(p, suid)| suid.then_some(p))
}

/// A path finding's details: the rule's own facts, then the proof.
#[derive(Debug, Serialize)]
pub struct PathDetails<T: Serialize> {
    /// The rule's own facts.
    #[serde(flatten)]
    pub facts: T,
    /// Each fact the path needs, in order; every one was checked.
    pub steps: Vec<String>,
    /// The runtime settings, any one of which closes the path, sorted.
    pub closed_by: Vec<Closer>,
}

/// A path to root about to be reported.
pub struct NewPath<'a, T: Serialize> {
    /// The rule.
    pub rule: RuleId,
    /// Its severity.
    pub severity: Severity,
    /// The file the path hinges on, for the finding's path and layer.
    pub at: Option<(&'a str, &'a Node)>,
    /// One sentence.
    pub message: String,
    /// The rule's own facts.
    pub facts: T,
    /// The proof.
    pub steps: Vec<String>,
    /// What closes it.
    pub closed_by: Vec<Closer>,
    /// What makes it distinct, for the fingerprint.
    pub subject: String,
}

/// Records a path finding.
pub fn push_path<T: Serialize>(ctx: &Context<'_>, out: &mut Findings, p: NewPath<'_, T>) {
    let mut closed_by = p.closed_by;
    closed_by.sort_unstable();
    closed_by.dedup();
    out.push(
        ctx,
        NewFinding {
            rule: p.rule,
            severity: p.severity,
            at: p.at,
            message: p.message,
            details: details(&PathDetails {
                facts: p.facts,
                steps: p.steps,
                closed_by,
            }),
            subject: p.subject,
        },
    );
}

/// The first step of every local path: who runs.
pub fn who_step(ctx: &Context<'_>) -> Option<(super::identity::Who, String)> {
    if ctx.user.resolution != Resolution::User {
        return None;
    }
    let who = super::identity::Who::of(ctx.user)?;
    let raw = ctx.user.user.as_deref().unwrap_or("");
    let step = format!(
        "the container runs as {} (User `{raw}`)",
        who.describe(ctx.user)
    );
    Some((who, step))
}

/// The verdict from the findings: the paths are the findings of the
/// [`RuleKind::Path`] rules.
pub fn escalation(user: RuntimeUser, findings: &[Finding]) -> Escalation {
    let mut paths: Vec<EscalationPath> = findings
        .iter()
        .filter_map(|f| {
            let RuleKind::Path(reach) = f.rule_id.meta().kind else {
                return None;
            };
            let closed_by = f
                .detail_list("closed_by")
                .iter()
                .filter_map(|c| serde_json::from_value(serde_json::Value::String(c.clone())).ok())
                .collect();
            Some(EscalationPath {
                rule_id: f.rule_id,
                severity: f.severity,
                fingerprint: f.fingerprint.clone(),
                reach,
                steps: f.detail_list("steps"),
                closed_by,
            })
        })
        .collect();
    paths.sort_by(|a, b| {
        (std::cmp::Reverse(a.severity), a.rule_id, &a.fingerprint).cmp(&(
            std::cmp::Reverse(b.severity),
            b.rule_id,
            &b.fingerprint,
        ))
    });
    let verdict = if user.resolution == Resolution::Root {
        Verdict::RunsAsRoot
    } else if paths.iter().any(|p| p.reach == Reach::Local) {
        Verdict::CanBecomeRoot
    } else {
        Verdict::NoKnownPath
    };
    Escalation {
        runtime_user: user,
        verdict,
        paths,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_by_name() {
        assert_eq!(power_of("python3.11"), Some(Power::Shell));
        assert_eq!(power_of("bash"), Some(Power::Shell));
        assert_eq!(power_of("find"), Some(Power::Execs));
        assert_eq!(power_of("cp"), Some(Power::WritesFiles));
        assert_eq!(power_of("less"), Some(Power::ShellEscape));
        assert_eq!(
            setuid_power_of("less"),
            None,
            "dash drops the euid in its sh -c"
        );
        assert_eq!(
            setuid_power_of("busybox"),
            None,
            "Debian's busybox drops it"
        );
        assert_eq!(setuid_power_of("find"), Some(Power::Execs));
        assert_eq!(power_of("passwd"), None);
        assert_eq!(power_of("su"), None);
        assert_eq!(power_of("shred"), None);
    }
}
