//! Accounts from the final `/etc/passwd` and `/etc/group`, and the
//! `uid0-account` rule.
//!
//! ## What it does
//! Parses the final `/etc/passwd` (`name:password:uid:gid:gecos:home:shell`)
//! and `/etc/group` (`name:password:gid:members`), the files the runtime reads
//! to resolve `config.User`, and flags every account besides `root` whose uid
//! is 0 (`toor:x:0:0:...`).
//!
//! Comments, blank lines and NIS compat lines (`+`, `-`, `+name`) are skipped,
//! and so are malformed lines (fewer than four fields, a uid or gid that is
//! not a decimal number). Missing trailing fields are tolerated: the C
//! library still resolves such a line. The first line for a name or uid wins,
//! as `getpwnam(3)` answers.
//!
//! ## Why is this bad?
//! A second uid-0 account is root under another name: it hides from reviews
//! that look for `root`, and is a classic backdoor.
//!
//! ## Example
//! ```text
//! toor:x:0:0:backdoor:/root:/bin/sh
//! ```
//! Remove the line, or give the account its own uid.
//!
//! ## References
//! - <https://man7.org/linux/man-pages/man5/passwd.5.html>
//! - <https://man7.org/linux/man-pages/man5/group.5.html>

use serde_json::Value;

use super::{Check, Context, Findings, NewFinding, details};
use crate::fs::FinalFs;
use crate::model::Severity;
use crate::rules::RuleId;

const PASSWD: &str = "etc/passwd";
const GROUP: &str = "etc/group";

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u64,
    /// Primary group id.
    pub gid: u64,
    /// Comment field.
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// 1-based line number in the file.
    pub line: usize,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Numeric group id.
    pub gid: u64,
    /// Supplementary members.
    pub members: Vec<String>,
    /// 1-based line number in the file.
    pub line: usize,
}

/// Accounts from the final `/etc/passwd` and `/etc/group`.
#[derive(Debug, Default)]
pub struct Accounts {
    users: Vec<PasswdEntry>,
    groups: Vec<GroupEntry>,
    has_passwd: bool,
    has_group: bool,
    passwd_complete: bool,
    group_complete: bool,
}

/// What reading one account file found: `None` when it does not exist;
/// otherwise its text and whether all of it was read.
fn read_account_file(
    fs: &FinalFs,
    path: &str,
    warnings: &mut Vec<String>,
) -> Option<(String, bool)> {
    let (resolved, node) = fs.resolve(path)?;
    if !node.is_regular() {
        return None;
    }
    let Some(content) = fs.read(path) else {
        warnings.push(format!(
            "/{resolved} exists but its contents were not read; users and groups cannot be resolved"
        ));
        return Some((String::new(), false));
    };
    if content.truncated {
        warnings.push(format!(
            "/{resolved} was only partly read ({} bytes); accounts past that point are not known",
            content.data.len()
        ));
    }
    Some((
        String::from_utf8_lossy(&content.data).into_owned(),
        !content.truncated,
    ))
}

/// The lines worth parsing: 1-based number and text without `\r`, comments,
/// blank and NIS compat lines skipped.
fn account_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.trim_end_matches('\r');
        let skip = l.trim().is_empty() || l.starts_with(['#', '+', '-']);
        (!skip).then_some((i + 1, l))
    })
}

fn parse_id(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `/etc/passwd` text.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    account_lines(text)
        .filter_map(|(line, l)| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            let get = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: parse_id(f[2].trim())?,
                gid: parse_id(f[3].trim())?,
                gecos: get(4),
                home: get(5),
                // A shell with colons is not valid, but keep what is there.
                shell: if f.len() > 7 {
                    f[6..].join(":")
                } else {
                    get(6)
                },
                line,
            })
        })
        .collect()
}

/// Parses `/etc/group` text.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    account_lines(text)
        .filter_map(|(line, l)| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: parse_id(f[2].trim())?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                line,
            })
        })
        .collect()
}

impl Accounts {
    /// Loads them from the final filesystem (symlinks followed). A file that
    /// exists but was not read in full is added to `warnings`.
    pub fn load(fs: &FinalFs, warnings: &mut Vec<String>) -> Self {
        let mut a = Self::default();
        if let Some((text, complete)) = read_account_file(fs, PASSWD, warnings) {
            a.has_passwd = true;
            a.passwd_complete = complete;
            a.users = parse_passwd(&text);
        }
        if let Some((text, complete)) = read_account_file(fs, GROUP, warnings) {
            a.has_group = true;
            a.group_complete = complete;
            a.groups = parse_group(&text);
        }
        a
    }

    /// Whether the image has an `/etc/passwd`.
    pub fn has_passwd(&self) -> bool {
        self.has_passwd
    }

    /// Whether the image has an `/etc/group`.
    pub fn has_group(&self) -> bool {
        self.has_group
    }

    /// Whether `/etc/passwd` exists and was read in full.
    pub fn passwd_complete(&self) -> bool {
        self.has_passwd && self.passwd_complete
    }

    /// Whether `/etc/group` exists and was read in full.
    pub fn group_complete(&self) -> bool {
        self.has_group && self.group_complete
    }

    /// Every parsed `/etc/passwd` entry, in file order.
    pub fn users(&self) -> &[PasswdEntry] {
        &self.users
    }

    /// Every parsed `/etc/group` entry, in file order.
    pub fn groups(&self) -> &[GroupEntry] {
        &self.groups
    }

    /// The first passwd entry named `name`.
    pub fn user_by_name(&self, name: &str) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The first passwd entry with `uid`.
    pub fn user_by_uid(&self, uid: u64) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.uid == uid)
    }

    /// The first group entry named `name`.
    pub fn group_by_name(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The first group entry with `gid`.
    pub fn group_by_gid(&self, gid: u64) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.gid == gid)
    }
}

/// Reports `uid0-account`: accounts other than `root` with uid 0.
pub struct Uid0Accounts;

impl Check for Uid0Accounts {
    fn rules(&self) -> &'static [RuleId] {
        &[RuleId::Uid0Account]
    }

    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        // Findings point at the file the entries came from (and its layer).
        let Some((path, node)) = ctx.fs.resolve(PASSWD) else {
            return;
        };
        for u in ctx.accounts.users() {
            if u.uid != 0 || u.name == "root" {
                continue;
            }
            out.push(
                ctx,
                NewFinding {
                    rule: RuleId::Uid0Account,
                    severity: Severity::High,
                    at: Some((&path, node)),
                    message: format!(
                        "account {} has uid 0 in /{path} (line {}): it is root under another name",
                        u.name, u.line
                    ),
                    details: details([
                        ("user", Value::from(u.name.as_str())),
                        ("uid", Value::from(u.uid)),
                        ("gid", Value::from(u.gid)),
                        ("shell", Value::from(u.shell.as_str())),
                        ("line", Value::from(u.line)),
                    ]),
                    subject: u.name.clone(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;

    const PASSWD_TEXT: &str = "# comment\nroot:x:0:0:root:/root:/bin/bash\n\
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\r\n\
\n\
+::::::\n\
-baduser\n\
broken:x:notanumber:0::/:/bin/sh\n\
short:x:5\n\
toor:x:0:0:backdoor:/root:/bin/sh\n\
app:x:1000:0\n\
root2:x:0:1000::/:\n\
toor:x:1001:1001::/:/bin/sh\n";

    const GROUP_TEXT: &str = "root:x:0:\nshadow:x:42:a, b\nwheel:x:10\n#x:x:1:\nbad:x:-1:\n";

    #[test]
    fn parses_passwd_and_group() {
        let fs = fs_of(vec![vec![
            text("etc/passwd", PASSWD_TEXT),
            text("etc/group", GROUP_TEXT),
        ]]);
        let mut w = Vec::new();
        let a = Accounts::load(&fs, &mut w);
        assert!(w.is_empty());
        assert!(a.has_passwd() && a.has_group() && a.passwd_complete());
        let names: Vec<&str> = a.users().iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["root", "daemon", "toor", "app", "root2", "toor"]);
        let toor = a.user_by_name("toor").unwrap();
        assert_eq!((toor.uid, toor.gid, toor.line), (0, 0, 9));
        assert_eq!(toor.shell, "/bin/sh");
        assert_eq!(a.user_by_name("daemon").unwrap().shell, "/usr/sbin/nologin");
        let app = a.user_by_uid(1000).unwrap();
        assert_eq!(
            (app.name.as_str(), app.gid, app.shell.as_str()),
            ("app", 0, "")
        );
        assert!(a.user_by_name("broken").is_none());
        assert!(a.user_by_name("short").is_none());
        assert_eq!(a.group_by_name("shadow").unwrap().members, ["a", "b"]);
        assert_eq!(a.group_by_name("wheel").unwrap().gid, 10);
        assert!(a.group_by_name("bad").is_none());
        assert_eq!(a.group_by_gid(0).unwrap().name, "root");
    }

    #[test]
    fn missing_uncaptured_and_truncated_files() {
        let a = Accounts::load(&fs_of(vec![vec![dir("etc", 0o755)]]), &mut Vec::new());
        assert!(!a.has_passwd() && !a.has_group() && a.users().is_empty());

        let mut passwd = text("etc/passwd", "root:x:0:0::/root:/bin/sh\nto");
        passwd.content.as_mut().unwrap().truncated = true;
        let fs = fs_of(vec![vec![
            passwd,
            // A group file through a symlink, not captured.
            file("etc/group.real", 0o644),
            symlink("etc/group", "group.real"),
        ]]);
        let mut w = Vec::new();
        let a = Accounts::load(&fs, &mut w);
        assert!(a.has_passwd() && !a.passwd_complete());
        assert!(a.has_group() && !a.group_complete());
        assert_eq!(a.users().len(), 1);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("/etc/passwd was only partly read"));
        assert!(w[1].contains("/etc/group.real exists but its contents were not read"));
    }

    #[test]
    fn uid0_accounts_other_than_root() {
        let fs = fs_of(vec![
            vec![text("etc/passwd", "root:x:0:0::/root:/bin/sh\n")],
            vec![text("etc/passwd", PASSWD_TEXT)],
        ]);
        let out = run(&Uid0Accounts, &fs, &config_user(Some("app")));
        assert_eq!(
            brief(&out.findings),
            [
                "uid0-account high /etc/passwd",
                "uid0-account high /etc/passwd"
            ]
        );
        assert_eq!(out.findings[0].layer_index, Some(1));
        insta::assert_json_snapshot!(out.findings);
    }

    #[test]
    fn only_root_has_uid_0() {
        let fs = fs_of(vec![vec![text(
            "etc/passwd",
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )]]);
        assert!(
            run(&Uid0Accounts, &fs, &config_user(None))
                .findings
                .is_empty()
        );
        assert!(
            run(&Uid0Accounts, &fs_of(vec![]), &config_user(None))
                .findings
                .is_empty()
        );
    }
}
