//! Accounts from the final `/etc/passwd` and `/etc/group`, and the
//! `uid0-account` rule.
//!
//! The documentation `imgscan explain`, SARIF help and `docs/rules.md` show is
//! the Markdown of [`UID0_ACCOUNT`] (`checks/docs/uid0-account.md`), included
//! here.
#![doc = include_str!("docs/uid0-account.md")]
//!
//! # Runtime fidelity
//!
//! moby (`daemon/oci_linux.go` `getUser`), podman and containerd
//! (`pkg/oci/spec_opts.go` `UserFromFS`, `GIDFromFS`) all read these files
//! with runc's `libcontainer/user` (now `github.com/moby/sys/user`,
//! `user.go`), and this parser reads them the same way, line by line:
//!
//! - Lines are split as Go's `bufio.Scanner` with `ScanLines` splits them
//!   (at `\n`, one trailing `\r` dropped); a passwd line of 64 KiB or more
//!   (a group line of 1 MiB or more) makes the scanner, and so the runtime,
//!   fail: such a file is refused as ambiguous (glibc reads it).
//! - Each line is trimmed with Go's `bytes.TrimSpace` (ASCII and Unicode
//!   white space); empty lines are skipped. `ParseGroupFilter` also skips
//!   lines starting with `#`; `ParsePasswdFilter` does not: `# note` is an
//!   account named `# note` (with uid 0) to the runtime.
//! - `parseLine` splits at every `:` and fills the fields in order; missing
//!   fields keep their zero value (`""` or 0) and fields past the last one
//!   are ignored. Numbers are read with `strconv.Atoi`, errors ignored: a
//!   field that is not a number (` 1000`, `1000x`, empty, missing) is 0, one
//!   beyond 64 bits is clamped, `+5` and `-0` are accepted. Names are compared
//!   as bytes.
//! - Users and groups keep the Go `int` runc parsed; moby, podman and
//!   containerd then store them in the OCI spec's `uint32` fields, so what
//!   the process runs as is that value truncated to 32 bits
//!   ([`PasswdEntry::runtime_uid`]).
//! - The first matching line wins.
//!
//! The files are found on the final filesystem as the runtime opens them,
//! inside the root: symlinks (relative or absolute, resolved within the
//! root as moby's `GetResourcePath` and podman's `securejoin` do), hard links
//! and a symlinked `/etc` are followed. A path that does not exist, a
//! symlink loop and a file that is not a regular file are treated as no file
//! (moby and podman ignore every open error; newer containerd fails the
//! container, which is no worse). A file whose contents imgscan did not
//! capture, or captured only in part, fails the scan: an unread
//! `/etc/passwd` is never "no such user".

use serde::Serialize;

use super::{Check, Context, Findings, NewFinding, details};
use crate::error::{Error, Result};
use crate::fs::FinalFs;
use crate::rules::{RuleId, RuleKind, RuleMeta, RuleStatus};
use crate::severity::Severity;

/// `uid0-account` (IS009).
pub const UID0_ACCOUNT: RuleMeta = RuleMeta {
    id: RuleId::Uid0Account,
    code: "IS009",
    name: "Uid0Account",
    default_severity: Severity::Medium,
    summary: "An account other than root has uid 0 in the image's /etc/passwd.",
    severity_note: "medium: root under another name is attack surface (a login that accepts it, a password someone knows); when it has an empty password and a setuid su the runtime user can run, `su-empty-password` reports the path (critical).",
    // CWE-269: Improper Privilege Management.
    tags: &["accounts", "external/cwe/cwe-269"],
    status: RuleStatus::Active,
    kind: RuleKind::Fact,
    explanation: include_str!("docs/uid0-account.md"),
};

/// `uid0-account` details.
#[derive(Debug, Serialize)]
pub struct Uid0AccountDetails {
    /// The account name.
    pub user: String,
    /// Always 0: the uid the runtime runs the account as.
    pub uid: u32,
    /// The primary gid the runtime uses (truncated to 32 bits).
    pub gid: u32,
    /// The login shell field.
    pub shell: String,
    /// The account's line number in the passwd file (1-based).
    pub line: usize,
    /// The uid field as written, when it is not a plain `0` (`1000x`,
    /// `4294967296`, `+0`); null when the line has no uid field. Absent for
    /// a plain `0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid_field: Option<Option<String>>,
}

const PASSWD: &str = "etc/passwd";
const GROUP: &str = "etc/group";

/// `bufio.MaxScanTokenSize`: the longest passwd line runc's scanner takes
/// (a line and its newline must fit in the buffer).
const PASSWD_MAX_LINE: usize = 64 * 1024;
/// `ParseGroupFilter` raises the scanner's buffer to 1 MiB.
const GROUP_MAX_LINE: usize = 1024 * 1024;

/// What Go's `strconv.Atoi` makes of a string (on a 64-bit platform).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoAtoi {
    /// A number (an optional `+` or `-`, then decimal digits).
    Int(i64),
    /// Not a number (`ErrSyntax`); the value is 0.
    Syntax,
    /// A number beyond 64 bits (`ErrRange`); the value is clamped to
    /// `i64::MAX` or `i64::MIN`.
    Range(i64),
}

impl GoAtoi {
    /// The value `Atoi` returns beside its error, which `parseLine` keeps.
    pub fn value(self) -> i64 {
        match self {
            Self::Int(v) | Self::Range(v) => v,
            Self::Syntax => 0,
        }
    }
}

/// Go's `strconv.Atoi` (`ParseInt(s, 10, 0)` with a 64-bit `int`): one
/// optional sign, then ASCII digits only; overflow is reported as soon as
/// it happens, before later characters are looked at (as `ParseUint` does).
pub fn go_atoi(s: &[u8]) -> GoAtoi {
    let (neg, digits) = match s.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return GoAtoi::Syntax;
    }
    let clamp = if neg { i64::MIN } else { i64::MAX };
    let mut n: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return GoAtoi::Syntax;
        }
        match n
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(c - b'0')))
        {
            Some(v) => n = v,
            None => return GoAtoi::Range(clamp),
        }
    }
    const CUTOFF: u64 = 1 << 63;
    match (neg, n) {
        (false, n) if n >= CUTOFF => GoAtoi::Range(clamp),
        (true, n) if n > CUTOFF => GoAtoi::Range(clamp),
        (true, n) => GoAtoi::Int((n as i64).wrapping_neg()),
        (false, n) => GoAtoi::Int(n as i64),
    }
}

/// Go's `asciiSpace`: `\t \n \v \f \r` and space.
fn go_ascii_space(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// The UTF-8 character starting at `b[i]`, if valid.
fn decode_at(b: &[u8], i: usize) -> Option<(char, usize)> {
    let w = match b[i] {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(b.get(i..i + w)?).ok()?;
    s.chars().next().map(|c| (c, w))
}

/// The UTF-8 character ending at `b[end]` (exclusive), if valid, found as
/// Go's `utf8.DecodeLastRune` finds it.
fn decode_before(b: &[u8], end: usize) -> Option<(char, usize)> {
    let lim = end.saturating_sub(4);
    let mut start = end - 1;
    while start > lim && b[start] & 0xc0 == 0x80 {
        start -= 1;
    }
    let s = std::str::from_utf8(&b[start..end]).ok()?;
    let mut it = s.chars();
    let c = it.next()?;
    it.next().is_none().then_some((c, end - start))
}

/// Go's `bytes.TrimSpace`: ASCII white space, and Unicode `White_Space`
/// characters that are valid UTF-8 (Go's `unicode.IsSpace` and Rust's
/// `char::is_whitespace` are both that property).
pub fn go_trim_space(b: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < b.len() {
        let c = b[start];
        if c < 0x80 {
            if !go_ascii_space(c) {
                break;
            }
            start += 1;
        } else {
            match decode_at(b, start) {
                Some((ch, w)) if ch.is_whitespace() => start += w,
                _ => break,
            }
        }
    }
    let mut end = b.len();
    while end > start {
        let c = b[end - 1];
        if c < 0x80 {
            if !go_ascii_space(c) {
                break;
            }
            end -= 1;
        } else {
            match decode_before(&b[start..], end - start) {
                Some((ch, w)) if ch.is_whitespace() => end -= w,
                _ => break,
            }
        }
    }
    &b[start..end]
}

/// A line too long for runc's scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTooLong {
    /// 1-based line number.
    pub line: usize,
    /// Its length in bytes (without the newline).
    pub len: usize,
}

/// The lines `bufio.Scanner` with `ScanLines` yields, trimmed with
/// `bytes.TrimSpace`, empty ones skipped, with their 1-based numbers.
fn scanner_lines(data: &[u8], max: usize) -> Result<Vec<(usize, &[u8])>, LineTooLong> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut n = 0;
    while !rest.is_empty() {
        n += 1;
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        // The scanner needs the line (and its newline, or the end of the
        // file seen after a read) inside a `max`-byte buffer.
        if line.len() >= max {
            return Err(LineTooLong {
                line: n,
                len: line.len(),
            });
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let t = go_trim_space(line);
        if !t.is_empty() {
            out.push((n, t));
        }
        rest = next;
    }
    Ok(out)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One `/etc/passwd` line, as runc's `libcontainer/user` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name (lossily decoded; matching uses the raw bytes).
    pub name: String,
    name_raw: Box<[u8]>,
    /// The password field (`x`: see `/etc/shadow`; empty: no password).
    pub password: String,
    /// The uid as runc parsed it (Go `int`): 0 when the field is not a number.
    pub uid: i64,
    /// The uid field as written (lossily decoded), `None` when missing.
    pub uid_field: Option<String>,
    /// The primary gid as runc parsed it.
    pub gid: i64,
    /// Comment field.
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell (the seventh field; later fields are ignored).
    pub shell: String,
    /// 1-based line number in the file.
    pub line: usize,
}

impl PasswdEntry {
    /// The uid the process gets: runc's `int` stored in the OCI spec's
    /// `uint32` (`uint32(execUser.Uid)` in moby's `getUser`,
    /// `uint32(usr.Uid)` in containerd's `WithUsername`).
    pub fn runtime_uid(&self) -> u32 {
        self.uid as u32
    }

    /// The primary gid the process gets, likewise truncated.
    pub fn runtime_gid(&self) -> u32 {
        self.gid as u32
    }

    /// The raw name.
    pub fn name_bytes(&self) -> &[u8] {
        &self.name_raw
    }

    /// Why this entry's uid is 0 when the field does not say `0`, for
    /// messages; `None` when it says `0` or the uid is not 0.
    pub fn odd_uid0(&self) -> Option<String> {
        if self.runtime_uid() != 0 || self.uid_field.as_deref() == Some("0") {
            return None;
        }
        Some(match (&self.uid_field, self.uid) {
            (None, _) => {
                "its uid field is missing, which runc's libcontainer/user reads as 0".to_owned()
            }
            (Some(f), 0) => match go_atoi(f.as_bytes()) {
                GoAtoi::Int(_) => format!("its uid field `{f}` is 0 to Go's strconv.Atoi"),
                _ => format!(
                    "its uid field `{f}` is not a number, which runc's libcontainer/user reads as 0"
                ),
            },
            (Some(f), v) => format!(
                "its uid field `{f}` is {v}, which moby, podman and containerd truncate to uid 0 \
                 in the OCI spec's 32-bit uid"
            ),
        })
    }
}

/// One `/etc/group` line, as runc's `libcontainer/user` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name (lossily decoded; matching uses the raw bytes).
    pub name: String,
    name_raw: Box<[u8]>,
    /// The gid as runc parsed it (Go `int`).
    pub gid: i64,
    /// Supplementary members (split at `,`, not trimmed, lossily decoded).
    pub members: Vec<String>,
    members_raw: Vec<Box<[u8]>>,
    /// 1-based line number in the file.
    pub line: usize,
}

impl GroupEntry {
    /// The gid the process gets (truncated to the spec's `uint32`).
    pub fn runtime_gid(&self) -> u32 {
        self.gid as u32
    }

    /// Whether `name` (raw bytes) is listed as a member.
    pub fn has_member(&self, name: &[u8]) -> bool {
        self.members_raw.iter().any(|m| &**m == name)
    }
}

/// `parseLine`'s split: every `:`.
fn fields(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b':').collect()
}

/// Parses `/etc/passwd` as `ParsePasswdFilter` does.
pub fn parse_passwd(data: &[u8]) -> Result<Vec<PasswdEntry>, LineTooLong> {
    Ok(scanner_lines(data, PASSWD_MAX_LINE)?
        .into_iter()
        .map(|(line, l)| {
            let f = fields(l);
            let s = |i: usize| f.get(i).map_or_else(String::new, |b| lossy(b));
            let n = |i: usize| f.get(i).map_or(0, |b| go_atoi(b).value());
            PasswdEntry {
                name: s(0),
                name_raw: f.first().copied().unwrap_or_default().into(),
                password: s(1),
                uid: n(2),
                uid_field: f.get(2).map(|b| lossy(b)),
                gid: n(3),
                gecos: s(4),
                home: s(5),
                shell: s(6),
                line,
            }
        })
        .collect())
}

/// Parses `/etc/group` as `ParseGroupFilter` does.
pub fn parse_group(data: &[u8]) -> Result<Vec<GroupEntry>, LineTooLong> {
    Ok(scanner_lines(data, GROUP_MAX_LINE)?
        .into_iter()
        .filter(|(_, l)| l.first() != Some(&b'#'))
        .map(|(line, l)| {
            let f = fields(l);
            let members_raw: Vec<Box<[u8]>> = match f.get(3) {
                Some(m) if !m.is_empty() => m.split(|&b| b == b',').map(Box::from).collect(),
                _ => Vec::new(),
            };
            GroupEntry {
                name: f.first().map_or_else(String::new, |b| lossy(b)),
                name_raw: f.first().copied().unwrap_or_default().into(),
                gid: f.get(2).map_or(0, |b| go_atoi(b).value()),
                members: members_raw.iter().map(|m| lossy(m)).collect(),
                members_raw,
                line,
            }
        })
        .collect())
}

/// Accounts from the final `/etc/passwd` and `/etc/group`.
#[derive(Debug, Default)]
pub struct Accounts {
    users: Vec<PasswdEntry>,
    groups: Vec<GroupEntry>,
    passwd_path: Option<String>,
    group_path: Option<String>,
    /// `/etc/shadow`: where it resolved to and its entries (name, password
    /// field, line), when it could be read.
    shadow: Option<(String, Vec<ShadowEntry>)>,
}

/// A `/etc/shadow` entry: name, password field, 1-based line.
type ShadowEntry = (String, String, usize);

/// How an account's password stands, as `pam_unix` and shadow's `su` read
/// it (shadow(5), passwd(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordState {
    /// No password at all: an empty field (in passwd, or in shadow when
    /// passwd says `x`).
    Empty,
    /// Locked for password login (`!`, `*`, `!!` …).
    Locked,
    /// A crypt hash.
    Hash,
    /// `x` in passwd and no readable shadow entry: not known.
    Unknown,
}

/// An account's password state and the line that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Password {
    /// The state.
    pub state: PasswordState,
    /// The file that says so (relative, no leading `/`).
    pub path: String,
    /// Its 1-based line.
    pub line: usize,
}

impl Password {
    /// `/etc/shadow line 1`, for steps and messages.
    pub fn source(&self) -> String {
        format!("/{} line {}", self.path, self.line)
    }
}

/// `/etc/shadow` lines as glibc's `fgetspent` splits them: `name:password:…`,
/// empty lines, `#` comments and NIS `+`/`-` lines skipped.
fn parse_shadow(data: &[u8]) -> Vec<ShadowEntry> {
    data.split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            if l.is_empty() || matches!(l[0], b'#' | b'+' | b'-') {
                return None;
            }
            let mut f = l.split(|&b| b == b':');
            let name = lossy(f.next()?);
            let pw = lossy(f.next()?);
            Some((name, pw, i + 1))
        })
        .collect()
}

/// The contents of the account file at `path` as the runtime opens it:
/// `None` when the runtime finds no file there; an error when imgscan
/// cannot read what the runtime would.
fn read_account_file<'a>(
    fs: &'a FinalFs,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<(String, &'a [u8])>> {
    let Some(resolved) = fs.canonical(path, true) else {
        warnings.push(format!(
            "/{path} is a symlink loop: runtimes cannot open it and resolve users without it"
        ));
        return Ok(None);
    };
    let Some(node) = fs.get(&resolved) else {
        return Ok(None);
    };
    let what = if resolved == path {
        format!("/{path}")
    } else {
        format!("/{path} (resolved to /{resolved})")
    };
    if !node.is_regular() {
        warnings.push(format!(
            "{what} is a {}, not a file: runtimes ignore it and resolve users without it",
            node.kind.as_str()
        ));
        return Ok(None);
    }
    let Some(content) = node.content() else {
        return Err(Error::Unverifiable {
            what,
            why: "its contents were not captured (imgscan keeps the contents of account files \
                  only at known paths), and the runtime reads it to resolve the image's user"
                .into(),
        });
    };
    if content.truncated {
        return Err(Error::Limit {
            what: format!("{what} ({} bytes)", node.size),
            limit: format!("{} bytes read", content.data.len()),
            why: "the runtime reads the whole file to resolve users, and imgscan captured only \
                  part of it"
                .into(),
        });
    }
    Ok(Some((resolved, &content.data)))
}

fn too_long(path: &str, e: &LineTooLong, max: usize) -> Error {
    Error::ambiguous(
        format!("/{path}"),
        format!(
            "line {} is {} bytes: runc's libcontainer/user reads it with a bufio.Scanner that \
             fails on lines of {max} bytes or more (so moby, podman and containerd fail), while \
             glibc in the container reads it",
            e.line, e.len
        ),
    )
}

/// Directories where account files (`passwd`, `group`) live in common
/// layouts, and so where a symlinked or hard-linked `/etc/passwd` points:
/// Debian's `base-passwd` templates, `/usr/lib` (rpm-ostree and bootc
/// images, nss-altfiles), `/usr/etc` (openSUSE), Clear Linux's
/// `/usr/share/defaults/etc`, Ubuntu's `libnss-extrausers`.
const ACCOUNT_DIRS: &[&str] = &[
    "etc",
    "lib",
    "usr/etc",
    "usr/lib",
    "usr/share/base-passwd",
    "usr/share/defaults/etc",
    "var/lib/extrausers",
];

/// Account file names captured in `ACCOUNT_DIRS` (with the shadow-utils
/// backups and the `base-passwd` templates).
const ACCOUNT_NAMES: &[&str] = &[
    "passwd",
    "group",
    "passwd-",
    "group-",
    "passwd.master",
    "group.master",
];

/// A password field's state.
fn classify(pw: &str) -> PasswordState {
    if pw.is_empty() {
        PasswordState::Empty
    } else if pw.starts_with('!') || pw.starts_with('*') || pw == "x" {
        PasswordState::Locked
    } else {
        PasswordState::Hash
    }
}

/// `/etc/shadow`, which `su` and `sudo` (through PAM) read for passwords.
const SHADOW: &str = "etc/shadow";

impl Accounts {
    /// Whether the layer scan keeps this file (see [`super::captures`]).
    /// The account files are read as the runtime opens `/etc/passwd`,
    /// through symlinks and hard links: capturing them where they commonly
    /// really are keeps such images scannable (one whose `/etc/passwd`
    /// resolves to a file not captured here fails the scan).
    pub fn captures(path: &str) -> bool {
        if path == SHADOW {
            return true;
        }
        // Every account name ends in one of these bytes: most paths stop
        // here (this runs for every member).
        matches!(path.as_bytes().last(), Some(b'd' | b'p' | b'-' | b'r'))
            && path.rsplit_once('/').is_some_and(|(dir, name)| {
                ACCOUNT_NAMES.contains(&name) && ACCOUNT_DIRS.contains(&dir)
            })
    }

    /// Loads them from the final filesystem as the runtime would (see the
    /// module docs). Fails when an account file exists but imgscan cannot
    /// read it as the runtime does.
    pub fn load(fs: &FinalFs, warnings: &mut Vec<String>) -> Result<Self> {
        let mut a = Self::default();
        if let Some((path, data)) = read_account_file(fs, PASSWD, warnings)? {
            a.users = parse_passwd(data).map_err(|e| too_long(&path, &e, PASSWD_MAX_LINE))?;
            a.passwd_path = Some(path);
        }
        if let Some((path, data)) = read_account_file(fs, GROUP, warnings)? {
            a.groups = parse_group(data).map_err(|e| too_long(&path, &e, GROUP_MAX_LINE))?;
            a.group_path = Some(path);
        }
        if let Some((path, node)) = fs.resolve(SHADOW)
            && node.is_regular()
        {
            match node.content() {
                Some(c) if !c.truncated => a.shadow = Some((path, parse_shadow(&c.data))),
                _ => warnings.push(format!(
                    "/{path} was not read in full: passwords it holds are not judged"
                )),
            }
        }
        Ok(a)
    }

    /// Where `/etc/shadow` resolved to, when it was read.
    pub fn shadow_path(&self) -> Option<&str> {
        self.shadow.as_ref().map(|(p, _)| p.as_str())
    }

    /// How `user`'s password stands (passwd field 2, then `/etc/shadow`).
    pub fn password(&self, user: &PasswdEntry) -> Password {
        let passwd = self.passwd_path.as_deref().unwrap_or(PASSWD);
        let in_passwd = |state| Password {
            state,
            path: passwd.to_owned(),
            line: user.line,
        };
        match user.password.as_str() {
            "" => in_passwd(PasswordState::Empty),
            "x" => {
                let Some((path, entries)) = &self.shadow else {
                    return in_passwd(PasswordState::Unknown);
                };
                let Some((_, pw, line)) = entries.iter().find(|(n, _, _)| *n == user.name) else {
                    return in_passwd(PasswordState::Unknown);
                };
                Password {
                    state: classify(pw),
                    path: path.clone(),
                    line: *line,
                }
            }
            other => in_passwd(classify(other)),
        }
    }

    /// Whether the runtime finds an `/etc/passwd`.
    pub fn has_passwd(&self) -> bool {
        self.passwd_path.is_some()
    }

    /// Whether the runtime finds an `/etc/group`.
    pub fn has_group(&self) -> bool {
        self.group_path.is_some()
    }

    /// Where `/etc/passwd` resolved to (relative, no leading `/`).
    pub fn passwd_path(&self) -> Option<&str> {
        self.passwd_path.as_deref()
    }

    /// Every parsed `/etc/passwd` entry, in file order.
    pub fn users(&self) -> &[PasswdEntry] {
        &self.users
    }

    /// Every parsed `/etc/group` entry, in file order.
    pub fn groups(&self) -> &[GroupEntry] {
        &self.groups
    }

    /// The first passwd entry named `name` (bytes compared).
    pub fn user_by_name(&self, name: &str) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| &*u.name_raw == name.as_bytes())
    }

    /// The first passwd entry whose parsed uid is `uid` (runc compares Go
    /// `int`s, before any truncation).
    pub fn user_by_uid(&self, uid: i64) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.uid == uid)
    }

    /// The first group entry named `name` (bytes compared).
    pub fn group_by_name(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| &*g.name_raw == name.as_bytes())
    }

    /// The first group entry whose parsed gid is `gid`.
    pub fn group_by_gid(&self, gid: i64) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.gid == gid)
    }

    /// The groups that list `user` (raw name) as a member: the
    /// supplementary groups runc's `GetExecUser` and containerd's
    /// `WithAdditionalGIDs` give the process.
    pub fn groups_of<'a>(&'a self, user: &'a [u8]) -> impl Iterator<Item = &'a GroupEntry> + 'a {
        self.groups.iter().filter(move |g| g.has_member(user))
    }
}

/// Reports `uid0-account`: accounts other than `root` that run as uid 0.
pub struct Uid0Accounts;

impl Check for Uid0Accounts {
    fn run(&self, ctx: &Context<'_>, out: &mut Findings) {
        // Findings point at the file the entries came from (and its layer).
        let Some(path) = ctx.accounts.passwd_path() else {
            return;
        };
        let Some(node) = ctx.fs.get(path) else {
            return;
        };
        for u in ctx.accounts.users() {
            // A `#` line is an account to runc, but one only a `User` of
            // that very name reaches (which `root-user` reports); glibc
            // skips it, so nobody logs in as it.
            if u.runtime_uid() != 0 || u.name_bytes() == b"root" || u.name_bytes().starts_with(b"#")
            {
                continue;
            }
            let odd = u.odd_uid0();
            let d = details(&Uid0AccountDetails {
                user: u.name.clone(),
                uid: 0,
                gid: u.runtime_gid(),
                shell: u.shell.clone(),
                line: u.line,
                uid_field: odd.is_some().then(|| u.uid_field.clone()),
            });
            out.push(
                ctx,
                NewFinding {
                    rule: RuleId::Uid0Account,
                    severity: Severity::Medium,
                    at: Some((path, node)),
                    message: match odd {
                        None => format!(
                            "account {} has uid 0 in /{path} (line {}): it is root under another name",
                            u.name, u.line
                        ),
                        Some(why) => format!(
                            "account {} runs as uid 0 from /{path} (line {}): {why}; it is root \
                             under another name",
                            u.name, u.line
                        ),
                    },
                    details: d,
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
    use serde_json::Value;

    const PASSWD_TEXT: &str = "# comment\nroot:x:0:0:root:/root:/bin/bash\n\
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\r\n\
\n\
nis:x:2:2::/:/bin/false\n\
# another comment\n\
broken:x:3:0::/:/bin/sh\n\
short:x:5\n\
toor:x:0:0:backdoor:/root:/bin/sh\n\
app:x:1000:0\n\
root2:x:0:1000::/:\n\
toor:x:1001:1001::/:/bin/sh\n";

    const GROUP_TEXT: &str = "root:x:0:\nshadow:x:42:a, b\nwheel:x:10\n#x:x:1:\nbad:x:-1:\n";

    fn load(fs: &FinalFs) -> Accounts {
        Accounts::load(fs, &mut Vec::new()).expect("readable account files")
    }

    #[test]
    fn parses_passwd_and_group() {
        let fs = fs_of(vec![vec![
            text("etc/passwd", PASSWD_TEXT),
            text("etc/group", GROUP_TEXT),
        ]]);
        let mut w = Vec::new();
        let a = Accounts::load(&fs, &mut w).unwrap();
        assert!(w.is_empty());
        assert!(a.has_passwd() && a.has_group());
        let names: Vec<&str> = a.users().iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "# comment",
                "root",
                "daemon",
                "nis",
                "# another comment",
                "broken",
                "short",
                "toor",
                "app",
                "root2",
                "toor"
            ]
        );
        let toor = a.user_by_name("toor").unwrap();
        assert_eq!((toor.uid, toor.gid, toor.line), (0, 0, 9));
        assert_eq!(toor.shell, "/bin/sh");
        assert_eq!(a.user_by_name("daemon").unwrap().shell, "/usr/sbin/nologin");
        let app = a.user_by_uid(1000).unwrap();
        assert_eq!(
            (app.name.as_str(), app.gid, app.shell.as_str()),
            ("app", 0, "")
        );
        assert_eq!(a.user_by_name("short").unwrap().uid, 5);
        // Members are split at commas and not trimmed, as runc does.
        assert_eq!(a.group_by_name("shadow").unwrap().members, ["a", " b"]);
        assert!(a.group_by_name("shadow").unwrap().has_member(b" b"));
        assert_eq!(a.group_by_name("wheel").unwrap().gid, 10);
        // `#` lines are comments in /etc/group only.
        assert!(a.group_by_name("#x").is_none());
        assert_eq!(a.group_by_name("bad").unwrap().gid, -1);
        assert_eq!(a.group_by_name("bad").unwrap().runtime_gid(), u32::MAX);
        assert_eq!(a.group_by_gid(0).unwrap().name, "root");
    }

    /// Go's `strconv.Atoi`, which runc uses for every number.
    #[test]
    fn atoi_is_go_strconv_atoi() {
        use GoAtoi::*;
        for (s, want) in [
            ("0", Int(0)),
            ("+0", Int(0)),
            ("-0", Int(0)),
            ("007", Int(7)),
            ("-1", Int(-1)),
            ("4294967296", Int(1 << 32)),
            ("9223372036854775807", Int(i64::MAX)),
            ("-9223372036854775808", Int(i64::MIN)),
            ("9223372036854775808", Range(i64::MAX)),
            ("-9223372036854775809", Range(i64::MIN)),
            // Overflow is seen before the bad character.
            ("99999999999999999999x", Range(i64::MAX)),
            ("", Syntax),
            ("+", Syntax),
            ("+-1", Syntax),
            (" 1", Syntax),
            ("1 ", Syntax),
            ("1000x", Syntax),
            ("1_000", Syntax),
            ("0x10", Syntax),
            ("١", Syntax),
        ] {
            assert_eq!(go_atoi(s.as_bytes()), want, "{s:?}");
        }
    }

    /// Go's `bytes.TrimSpace`: `\v` and Unicode spaces too, not invalid UTF-8.
    #[test]
    fn trim_space_is_go_bytes_trimspace() {
        for (s, want) in [
            (&b" \t\x0b\x0croot:x \r\n"[..], &b"root:x"[..]),
            ("\u{a0}\u{2003}a\u{3000}\u{85}".as_bytes(), b"a"),
            (b"\xffa\xa0", b"\xffa\xa0"),
            (b"\x1ca\x1c", b"\x1ca\x1c"),
            ("a\u{200b}".as_bytes(), "a\u{200b}".as_bytes()),
            (b"   ", b""),
        ] {
            assert_eq!(go_trim_space(s), want, "{s:?}");
        }
    }

    /// Each quirk of runc's passwd parser, and what it makes of the uid.
    #[test]
    fn passwd_quirks_match_runc() {
        let text = "  spaced:x:1:1::/:/bin/sh  \n\
\u{a0}nbsp:x:2:2\n\
sp:x: 1000:1000::/:/bin/sh\n\
junk:x:1000x:1000::/:/bin/sh\n\
plus:x:+0:0\n\
minus:x:-0:0\n\
empty:x::1000\n\
nouid:x\n\
big:x:4294967296:4294967297\n\
neg:x:-4294967296:0\n\
huge:x:99999999999999999999:0\n\
extra:x:3:3:g:/h:/bin/sh:more:fields\n\
#c:x:0:0\n\
c\u{feff}:x:4:4\n";
        let users = parse_passwd(text.as_bytes()).unwrap();
        let by = |n: &str| users.iter().find(|u| u.name == n).unwrap();
        assert_eq!(by("spaced").shell, "/bin/sh");
        assert_eq!(by("nbsp").uid, 2);
        for n in [
            "sp", "junk", "plus", "minus", "empty", "nouid", "big", "neg",
        ] {
            assert_eq!(by(n).runtime_uid(), 0, "{n}");
            assert!(by(n).odd_uid0().is_some() || n == "plus" || n == "minus");
        }
        assert_eq!(by("big").uid, 1 << 32);
        assert_eq!(by("big").runtime_gid(), 1);
        assert_eq!(by("huge").uid, i64::MAX);
        assert_eq!(by("huge").runtime_uid(), u32::MAX);
        assert_eq!(by("extra").shell, "/bin/sh");
        assert_eq!(by("#c").uid, 0);
        // U+FEFF is not white space: it stays in the name.
        assert!(users.iter().any(|u| u.name == "c\u{feff}"));
        assert!(
            by("junk")
                .odd_uid0()
                .unwrap()
                .contains("`1000x` is not a number")
        );
        assert!(by("big").odd_uid0().unwrap().contains("truncate"));
    }

    /// A line runc's scanner cannot take refuses the image.
    #[test]
    fn overlong_lines_are_ambiguous() {
        let long = format!("root:x:0:0:{}:/root:/bin/sh\n", "g".repeat(PASSWD_MAX_LINE));
        let fs = fs_of(vec![vec![text("etc/passwd", &long)]]);
        let e = Accounts::load(&fs, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, Error::Ambiguous { .. }), "{e}");
        assert!(e.to_string().contains("line 1 is"), "{e}");
        // The longest line the scanner takes is fine.
        let ok = "x".repeat(PASSWD_MAX_LINE - 1);
        assert_eq!(parse_passwd(ok.as_bytes()).unwrap().len(), 1);
        assert!(parse_passwd("x".repeat(PASSWD_MAX_LINE).as_bytes()).is_err());
        // Group lines may be longer.
        let members = vec!["m"; PASSWD_MAX_LINE].join(",");
        assert_eq!(
            parse_group(format!("g:x:5:{members}\n").as_bytes())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn missing_files_are_no_files() {
        let a = load(&fs_of(vec![vec![dir("etc", 0o755)]]));
        assert!(!a.has_passwd() && !a.has_group() && a.users().is_empty());
        // A dangling symlink, a directory and a symlink loop: no file.
        let mut w = Vec::new();
        let fs = fs_of(vec![vec![
            symlink("etc/passwd", "nowhere"),
            dir("etc/group", 0o755),
        ]]);
        let a = Accounts::load(&fs, &mut w).unwrap();
        assert!(!a.has_passwd() && !a.has_group());
        assert_eq!(w.len(), 1, "{w:?}");
        let fs = fs_of(vec![vec![
            symlink("etc/passwd", "group"),
            symlink("etc/group", "passwd"),
        ]]);
        let mut w = Vec::new();
        assert!(!Accounts::load(&fs, &mut w).unwrap().has_passwd());
        assert!(w[0].contains("symlink loop"), "{w:?}");
    }

    /// Symlinks (relative, absolute), a symlinked /etc and hard links are
    /// followed to the contents the runtime reads.
    #[test]
    fn account_files_are_found_as_the_runtime_opens_them() {
        let passwd = "root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\n";
        for layers in [
            vec![vec![
                text("usr/lib/passwd", passwd),
                symlink("etc/passwd", "../usr/lib/passwd"),
            ]],
            vec![vec![
                text("usr/share/base-passwd/passwd.master", passwd),
                symlink("etc/passwd", "/usr/share/base-passwd/passwd.master"),
            ]],
            vec![vec![
                dir("usr/etc", 0o755),
                symlink("etc", "usr/etc"),
                text("usr/etc/passwd", passwd),
            ]],
            vec![
                vec![text("etc/passwd-", passwd)],
                vec![hardlink("etc/passwd", "etc/passwd-", 0o644)],
            ],
        ] {
            let fs = fs_of(layers);
            let a = load(&fs);
            assert_eq!(a.users().len(), 2, "{:?}", a.passwd_path());
            let out = run(&Uid0Accounts, &fs, &config_user(Some("1000")));
            assert_eq!(out.findings.len(), 1, "{:?}", a.passwd_path());
            assert_eq!(
                out.findings[0].path,
                a.passwd_path().map(|p| format!("/{p}"))
            );
        }
    }

    /// An account file imgscan did not capture, or only in part, fails the
    /// scan instead of reading as "no such user".
    #[test]
    fn unread_account_files_fail_the_scan() {
        let fs = fs_of(vec![vec![
            file("opt/accounts/passwd.real", 0o644),
            symlink("etc/passwd", "/opt/accounts/passwd.real"),
        ]]);
        let e = Accounts::load(&fs, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, Error::Unverifiable { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("/etc/passwd (resolved to /opt/accounts/passwd.real)"),
            "{e}"
        );
        // A hard link to an uncaptured file.
        let fs = fs_of(vec![vec![
            file("opt/g", 0o644),
            hardlink("etc/group", "opt/g", 0o644),
        ]]);
        assert!(Accounts::load(&fs, &mut Vec::new()).is_err());

        let mut passwd = text("etc/passwd", "root:x:0:0::/root:/bin/sh\nto");
        passwd.size = 1 << 30;
        passwd.content.as_mut().unwrap().truncated = true;
        let e = Accounts::load(&fs_of(vec![vec![passwd]]), &mut Vec::new()).unwrap_err();
        assert!(matches!(e, Error::Limit { .. }), "{e}");
    }

    /// The layer scan captures account files where symlinked layouts put
    /// them, and names that are not ASCII do not panic it.
    #[test]
    fn account_files_are_captured_in_common_places() {
        use crate::checks::captures as wants_content;
        for p in [
            "etc/passwd",
            "etc/group",
            "etc/passwd-",
            "usr/lib/passwd",
            "usr/lib/group",
            "lib/passwd",
            "usr/etc/passwd",
            "usr/share/base-passwd/passwd.master",
            "usr/share/base-passwd/group.master",
            "usr/share/defaults/etc/passwd",
            "var/lib/extrausers/group",
        ] {
            assert!(wants_content(p), "{p}");
        }
        for p in [
            "usr/bin/passwd",
            "usr/share/doc/passwd",
            "etc/passwd/x",
            "xetc/passwd",
            "etc/sudoers.d/",
            "etc/sudoers.dx/y",
            "var/lib/dpkg/info/x/y.list",
            "var/lib/dpkg/status.d/x/y",
        ] {
            assert!(!wants_content(p), "{p}");
        }
        // A multi-byte first character right after each prefix.
        for p in [
            "var/lib/dpkg/status.d/é",
            "var/lib/dpkg/status.d/日本",
            "etc/sudoers.d/é",
            "var/lib/dpkg/info/é.list",
        ] {
            assert!(wants_content(p), "{p}");
        }
        assert!(!wants_content("var/lib/dpkg/status.dé"));
        assert!(!wants_content("var/lib/dpkg/info/é"));
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
                "uid0-account medium /etc/passwd",
                "uid0-account medium /etc/passwd"
            ]
        );
        assert_eq!(out.findings[0].layer_index, Some(1));
        insta::assert_json_snapshot!(out.findings);
    }

    /// `1000x`, an empty or missing uid and 2^32 are uid 0 to the runtime.
    #[test]
    fn unparsable_and_truncated_uids_are_uid0_accounts() {
        let fs = fs_of(vec![vec![text(
            "etc/passwd",
            "root:x:0:0::/root:/bin/sh\napp:x:1000x:1000::/home/app:/bin/sh\n\
             e:x::1\nshort:x\nbig:x:4294967296:0\nok:x:4294967297:0\n# note\n",
        )]]);
        let out = run(&Uid0Accounts, &fs, &config_user(None));
        let users: Vec<&str> = out
            .findings
            .iter()
            .map(|f| f.details["user"].as_str().unwrap())
            .collect();
        assert_eq!(users, ["app", "e", "short", "big"]);
        assert_eq!(out.findings[0].details["uid_field"], "1000x");
        assert!(out.findings[0].message.contains("not a number"));
        assert_eq!(out.findings[2].details["uid_field"], Value::Null);
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
