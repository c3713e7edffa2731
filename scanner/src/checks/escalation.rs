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
    /// Runs a command it is given (`find -exec`, `env`, `xargs`, editors'
    /// and pagers' shell escapes).
    RunsCommands,
    /// Writes any file it is told to (`cp`, `tee`, `dd`, `tar -x`).
    WritesFiles,
}

impl Power {
    /// A phrase for a step.
    pub fn phrase(self) -> &'static str {
        match self {
            Self::Shell => "a shell or interpreter: it runs any command",
            Self::RunsCommands => "it can run a command it is given",
            Self::WritesFiles => "it can write any file it is given (then /etc/passwd)",
        }
    }
}

/// Programs that give a shell or a file write to whoever runs them with
/// root's powers, by file name. Our own list, checked by hand against
/// GTFOBins' `suid`, `sudo` and `capabilities` contexts
/// (<https://gtfobins.github.io/>; names only, nothing copied) and against
/// each program's manual. A name ending in `*` matches any suffix
/// (`python3.11`).
pub const POWERFUL: &[(&str, Power)] = &[
    ("ash", Power::Shell),
    ("bash", Power::Shell),
    ("busybox", Power::Shell),
    ("csh", Power::Shell),
    ("dash", Power::Shell),
    ("fish", Power::Shell),
    ("ksh", Power::Shell),
    ("mksh", Power::Shell),
    ("sh", Power::Shell),
    ("tcsh", Power::Shell),
    ("zsh", Power::Shell),
    ("python*", Power::Shell),
    ("perl*", Power::Shell),
    ("ruby*", Power::Shell),
    ("node", Power::Shell),
    ("nodejs", Power::Shell),
    ("php*", Power::Shell),
    ("lua*", Power::Shell),
    ("tclsh*", Power::Shell),
    ("wish*", Power::Shell),
    ("expect", Power::Shell),
    ("gdb", Power::Shell),
    ("awk", Power::RunsCommands),
    ("gawk", Power::RunsCommands),
    ("mawk", Power::RunsCommands),
    ("nawk", Power::RunsCommands),
    ("env", Power::RunsCommands),
    ("find", Power::RunsCommands),
    ("xargs", Power::RunsCommands),
    ("nice", Power::RunsCommands),
    ("ionice", Power::RunsCommands),
    ("timeout", Power::RunsCommands),
    ("stdbuf", Power::RunsCommands),
    ("setarch", Power::RunsCommands),
    ("taskset", Power::RunsCommands),
    ("flock", Power::RunsCommands),
    ("chroot", Power::RunsCommands),
    ("strace", Power::RunsCommands),
    ("make", Power::RunsCommands),
    ("git", Power::RunsCommands),
    ("vi", Power::RunsCommands),
    ("vim*", Power::RunsCommands),
    ("nvim", Power::RunsCommands),
    ("view", Power::RunsCommands),
    ("rvim", Power::RunsCommands),
    ("ed", Power::RunsCommands),
    ("emacs*", Power::RunsCommands),
    ("less", Power::RunsCommands),
    ("more", Power::RunsCommands),
    ("man", Power::RunsCommands),
    ("socat", Power::RunsCommands),
    ("ssh", Power::RunsCommands),
    ("rsync", Power::RunsCommands),
    ("script", Power::RunsCommands),
    ("run-parts", Power::RunsCommands),
    ("start-stop-daemon", Power::RunsCommands),
    ("apt", Power::RunsCommands),
    ("apt-get", Power::RunsCommands),
    ("dpkg", Power::RunsCommands),
    ("sed", Power::RunsCommands),
    ("tar", Power::RunsCommands),
    ("zip", Power::RunsCommands),
    ("cp", Power::WritesFiles),
    ("mv", Power::WritesFiles),
    ("dd", Power::WritesFiles),
    ("tee", Power::WritesFiles),
    ("install", Power::WritesFiles),
    ("chmod", Power::WritesFiles),
    ("chown", Power::WritesFiles),
    ("ln", Power::WritesFiles),
    ("openssl", Power::WritesFiles),
];

/// What `name` (a file's base name) does with root's powers, if it is one
/// of [`POWERFUL`].
pub fn power_of(name: &str) -> Option<Power> {
    POWERFUL.iter().find_map(|(pat, p)| {
        let hit = match pat.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *pat,
        };
        hit.then_some(*p)
    })
}

/// The base name of a path.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
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
            let strings = |key: &str| -> Vec<String> {
                f.details
                    .get(key)
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let closed_by = strings("closed_by")
                .iter()
                .filter_map(|c| serde_json::from_value(serde_json::Value::String(c.clone())).ok())
                .collect();
            Some(EscalationPath {
                rule_id: f.rule_id,
                severity: f.severity,
                fingerprint: f.fingerprint.clone(),
                reach,
                steps: strings("steps"),
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
        assert_eq!(power_of("find"), Some(Power::RunsCommands));
        assert_eq!(power_of("cp"), Some(Power::WritesFiles));
        assert_eq!(power_of("passwd"), None);
        assert_eq!(power_of("su"), None);
        assert_eq!(power_of("shred"), None);
    }
}
