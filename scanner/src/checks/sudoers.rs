//! `sudoers-nopasswd`: sudoers rules that need no password.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`SUDOERS_NOPASSWD`] (`checks/docs/sudoers-nopasswd.md`),
//! included here.
#![doc = include_str!("docs/sudoers-nopasswd.md")]

use serde::Serialize;

use super::sudo::{logical_lines, strip_comment};
use super::{Check, Context, Findings, NewFinding, child_of, details};
use crate::rules::{RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;

/// `sudoers-nopasswd` (IS011).
pub const SUDOERS_NOPASSWD: RuleMeta = RuleMeta {
    id: RuleId::SudoersNopasswd,
    code: "IS011",
    name: "SudoersNopasswd",
    default_severity: Severity::Low,
    summary: "A sudoers rule lets a user or group run commands as another user without a password (NOPASSWD).",
    severity_note: "medium when the commands after NOPASSWD: include ALL (before a PASSWD: tag takes the password requirement back); low otherwise. Whether the runtime user can use it to become root is the `sudo-root` path (critical).",
    // CWE-269: Improper Privilege Management.
    tags: &["privilege-escalation", "external/cwe/cwe-269"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/sudoers-nopasswd.md"),
};

/// `sudoers-nopasswd` details.
#[derive(Debug, Serialize)]
pub struct SudoersDetails {
    /// The number of the rule's first line in the file (1-based).
    pub line: usize,
    /// The rule as written, comment removed, white space runs folded to one
    /// space, continuation lines joined.
    pub rule: String,
}

/// Reports `sudoers-nopasswd`.
pub struct SudoersNopasswd;

const SUDOERS: &str = "etc/sudoers";
const SUDOERS_D: &str = "etc/sudoers.d";
const NOPASSWD: &str = "NOPASSWD:";

/// Whether a trimmed line is a directive, a `Defaults` line or an alias.
fn not_a_rule(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or("");
    ["#include", "@include"]
        .iter()
        .any(|d| first.starts_with(d))
        || first.starts_with("Defaults")
        || matches!(
            first,
            "User_Alias" | "Runas_Alias" | "Host_Alias" | "Cmnd_Alias" | "Cmd_Alias"
        )
}

/// Whether the commands after the first `NOPASSWD:` include `ALL` before a
/// `PASSWD:` tag.
fn nopasswd_all(rule: &str) -> bool {
    let Some(i) = rule.find(NOPASSWD) else {
        return false;
    };
    for item in rule[i + NOPASSWD.len()..].split([',', ':']) {
        let mut item = item.trim();
        // A runas list may precede a command: `(root) ALL`.
        if item.starts_with('(')
            && let Some(end) = item.find(')')
        {
            item = item[end + 1..].trim();
        }
        // What `split` left of a tag (`PASSWD`, `NOEXEC`, ...) ends this item.
        let words: Vec<&str> = item.split_whitespace().collect();
        match words.as_slice() {
            ["ALL", ..] => return true,
            [.., "PASSWD"] => return false,
            _ => {}
        }
    }
    false
}

impl SudoersNopasswd {
    fn scan_file(&self, ctx: &Context<'_>, path: &str, out: &mut Findings) {
        let Some((resolved, node)) = ctx.fs.resolve(path) else {
            return;
        };
        if !node.is_regular() {
            return;
        }
        let Some(content) = node.content() else {
            out.warnings.push(format!(
                "/{resolved} exists but its contents were not read; its sudo rules were not checked"
            ));
            return;
        };
        if content.truncated {
            out.warnings.push(format!(
                "/{resolved} was only partly read ({} bytes); sudo rules past that point were not checked",
                content.data.len()
            ));
        }
        let text = String::from_utf8_lossy(&content.data);
        for (number, line) in logical_lines(&text) {
            let rule = strip_comment(&line).trim();
            if rule.is_empty() || not_a_rule(rule) || !rule.contains(NOPASSWD) {
                continue;
            }
            let all = nopasswd_all(rule);
            let rule = rule.split_whitespace().collect::<Vec<_>>().join(" ");
            out.push(
                ctx,
                NewFinding {
                    rule: RuleId::SudoersNopasswd,
                    severity: if all { Severity::Medium } else { Severity::Low },
                    at: Some((&resolved, node)),
                    message: if all {
                        format!("/{resolved} line {number} allows ALL commands without a password: {rule}")
                    } else {
                        format!("/{resolved} line {number} allows commands without a password: {rule}")
                    },
                    details: details(&SudoersDetails {
                        line: number,
                        rule: rule.clone(),
                    }),
                    subject: rule,
                },
            );
        }
    }
}

impl Check for SudoersNopasswd {
    fn captures(path: &str) -> bool {
        path == SUDOERS || child_of(path, SUDOERS_D).is_some()
    }

    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        self.scan_file(ctx, SUDOERS, out);
        let Some(dir) = ctx.fs.canonical(SUDOERS_D, true) else {
            return;
        };
        for (name, _) in ctx.fs.children(&dir) {
            // sudoers(5): "skipping file names that end in '~' or contain a '.'".
            if name.ends_with('~') || name.contains('.') {
                continue;
            }
            self.scan_file(ctx, &format!("{dir}/{name}"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;

    const SUDOERS_TEXT: &str = "\
# sudoers
Defaults env_reset
Defaults:app !requiretty, NOPASSWD: ALL
Cmnd_Alias RESTART = /usr/sbin/service
root ALL=(ALL:ALL) ALL
%admin ALL=(ALL) NOPASSWD: ALL
# app ALL=(ALL) NOPASSWD: ALL
app ALL=(root) NOPASSWD: /usr/bin/apt-get, /usr/sbin/service # not ALL
#1000 ALL = (ALL) \\
    NOPASSWD: ALL
ops ALL = NOPASSWD: /bin/ls, PASSWD: ALL
svc ALL = (ALL) NOEXEC: NOPASSWD: ALL
#includedir /etc/sudoers.d
@includedir /etc/sudoers.d
";

    #[test]
    fn nopasswd_rules_in_sudoers() {
        let fs = fs_of(vec![vec![text("etc/sudoers", SUDOERS_TEXT)]]);
        let out = run(&SudoersNopasswd, &fs, &config_user(None));
        let got: Vec<String> = out
            .findings
            .iter()
            .map(|f| format!("{} {} {}", f.severity, f.details["line"], f.details["rule"]))
            .collect();
        assert_eq!(
            got,
            [
                "medium 6 \"%admin ALL=(ALL) NOPASSWD: ALL\"",
                "low 8 \"app ALL=(root) NOPASSWD: /usr/bin/apt-get, /usr/sbin/service\"",
                "medium 9 \"#1000 ALL = (ALL) NOPASSWD: ALL\"",
                "low 11 \"ops ALL = NOPASSWD: /bin/ls, PASSWD: ALL\"",
                "medium 12 \"svc ALL = (ALL) NOEXEC: NOPASSWD: ALL\"",
            ]
        );
        assert!(
            out.findings
                .iter()
                .all(|f| f.path.as_deref() == Some("/etc/sudoers"))
        );
        insta::assert_json_snapshot!(out.findings);
    }

    #[test]
    fn sudoers_d_files() {
        let fs = fs_of(vec![
            vec![
                dir("etc/sudoers.d", 0o750),
                text("etc/sudoers.d/README", "# nothing here\n"),
                text(
                    "etc/sudoers.d/app.disabled",
                    "app ALL=(ALL) NOPASSWD: ALL\n",
                ),
                text("etc/sudoers.d/app~", "app ALL=(ALL) NOPASSWD: ALL\n"),
            ],
            vec![text("etc/sudoers.d/90-app", "app ALL=(ALL) NOPASSWD:ALL\n")],
        ]);
        let out = run(&SudoersNopasswd, &fs, &config_user(None));
        assert_eq!(
            brief(&out.findings),
            ["sudoers-nopasswd medium /etc/sudoers.d/90-app"]
        );
        assert_eq!(out.findings[0].layer_index, Some(1));
        assert_eq!(out.findings[0].details["line"], 1);
    }

    #[test]
    fn no_sudoers_no_findings_and_uncaptured_warns() {
        let out = run(&SudoersNopasswd, &fs_of(vec![]), &config_user(None));
        assert!(out.findings.is_empty() && out.warnings.is_empty());
        let fs = fs_of(vec![vec![
            text("etc/sudoers", "root ALL=(ALL) ALL\n"),
            file("etc/sudoers.d/odd", 0o440),
        ]]);
        let out = run(&SudoersNopasswd, &fs, &config_user(None));
        assert!(out.findings.is_empty());
        assert_eq!(out.warnings.len(), 1);
        assert!(out.warnings[0].contains("/etc/sudoers.d/odd exists but"));
    }

    #[test]
    fn helpers() {
        assert_eq!(strip_comment("a # b"), "a ");
        assert_eq!(strip_comment("#1000 ALL=ALL # c"), "#1000 ALL=ALL ");
        assert!(nopasswd_all("u ALL = NOPASSWD: /bin/ls, (root) ALL"));
        assert!(!nopasswd_all("u ALL = NOPASSWD: /bin/ls, !ALL"));
        assert!(!nopasswd_all("u ALL = NOPASSWD: SHELLS"));
        assert_eq!(
            logical_lines("a \\\nb\nc\\"),
            [(1, "a  b".to_owned()), (3, "c ".to_owned())]
        );
    }
}
