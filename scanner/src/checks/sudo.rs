//! The sudo policy of an image, read as sudo reads it (sudoers(5)), and the
//! PAM and setuid-program facts that `su` and `sudo` paths share.
//!
//! Read: `/etc/sudoers` and what it includes (`#include`, `@include`,
//! `#includedir`, `@includedir`: in a directory, the files whose names
//! neither end in `~` nor contain a `.`, in lexical order), continuation
//! lines, comments (`#` not followed by a digit or `include`), `Defaults`
//! (`authenticate`, `rootpw`, `targetpw`, `runaspw`, globally or for a user
//! list), the four alias kinds and user specifications with their runas
//! lists and tags (`NOPASSWD:`/`PASSWD:` carry over to the commands that
//! follow in the same list). A user list matches as sudo's `userlist_matches`
//! does: the last item that matches decides, `!` inverting it.
//!
//! Not modelled, so never claimed: host lists other than `ALL` (a
//! container's host name is not known from the image), netgroups, digests
//! on commands, `Defaults` for hosts, commands and runas lists. A line
//! imgscan cannot read is skipped with a warning.

use std::collections::BTreeMap;

use super::Context;
use super::access::{Granted, Perm, access};
use super::identity::Who;
use crate::fs::{FinalFs, Node};

/// The sudo policy's files (`/etc/sudoers`, `/etc/sudoers.d/*`), which
/// the layer pipeline keeps. Runs for every tar member: most paths fail the
/// first comparison.
pub fn sudoers_files(path: &str) -> bool {
    path.starts_with("etc/s")
        && (path == "etc/sudoers" || super::child_of(path, "etc/sudoers.d").is_some())
}

/// PAM's configuration (`/etc/pam.d/*`), which the layer pipeline keeps.
pub fn pam_files(path: &str) -> bool {
    path.starts_with("etc/p") && super::child_of(path, "etc/pam.d").is_some()
}

/// The four alias kinds.
#[derive(Debug, Default)]
struct Aliases {
    user: BTreeMap<String, Vec<String>>,
    runas: BTreeMap<String, Vec<String>>,
    host: BTreeMap<String, Vec<String>>,
    cmnd: BTreeMap<String, Vec<String>>,
}

/// One command of a user specification, with the runas list and tags in
/// force for it.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The file and line it came from.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The whole rule as written (white space folded).
    pub rule: String,
    users: Vec<String>,
    hosts: Vec<String>,
    /// Runas users (empty: root).
    runas: Option<Vec<String>>,
    /// `NOPASSWD:` in force.
    pub nopasswd: bool,
    /// The command as written (`ALL`, `/bin/sh`, `/usr/bin/less /var/log/x`).
    pub command: String,
    negated: bool,
}

/// A `Defaults` setting that changes authentication.
#[derive(Debug, Clone)]
struct AuthDefault {
    /// `None`: every user; else the user list of `Defaults:list`.
    users: Option<Vec<String>>,
    name: String,
    on: bool,
    file: String,
    line: usize,
}

/// An image's sudo policy.
#[derive(Debug, Default)]
pub struct Policy {
    aliases: Aliases,
    /// Every command grant, in file order.
    pub grants: Vec<Grant>,
    defaults: Vec<AuthDefault>,
    /// What could not be read, for `sudo-root` to report when it judges
    /// the policy.
    pub warnings: Vec<String>,
}

/// Removes a comment: `#` not followed by a digit (`#1000` is a uid).
pub(crate) fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'#' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return &line[..i];
        }
    }
    line
}

/// Logical lines: `(first line number, text)`, continuations joined.
pub(crate) fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.trim_end_matches('\r');
        let (start, mut acc) = cur.take().unwrap_or((i + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(part) => {
                acc.push_str(part);
                acc.push(' ');
                cur = Some((start, acc));
            }
            None => {
                acc.push_str(raw);
                out.push((start, acc));
            }
        }
    }
    out.extend(cur);
    out
}

/// A comma list, items trimmed.
fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .collect()
}

const TAGS: &[&str] = &[
    "NOPASSWD",
    "PASSWD",
    "NOEXEC",
    "EXEC",
    "SETENV",
    "NOSETENV",
    "LOG_INPUT",
    "NOLOG_INPUT",
    "LOG_OUTPUT",
    "NOLOG_OUTPUT",
    "MAIL",
    "NOMAIL",
    "FOLLOW",
    "NOFOLLOW",
    "INTERCEPT",
    "NOINTERCEPT",
];

impl Policy {
    /// Reads `/etc/sudoers` and its includes from the final filesystem.
    pub fn load(fs: &FinalFs) -> Self {
        let mut p = Self::default();
        let mut warnings = Vec::new();
        p.read_file(fs, "etc/sudoers", 0, &mut warnings);
        p.warnings = warnings;
        p
    }

    fn read_file(&mut self, fs: &FinalFs, path: &str, depth: usize, warnings: &mut Vec<String>) {
        // sudo's limit on nested includes.
        if depth > 128 {
            return;
        }
        let Some((resolved, node)) = fs.resolve(path) else {
            return;
        };
        if !node.is_regular() {
            return;
        }
        let Some(content) = node.content() else {
            warnings.push(format!(
                "/{resolved} is included by the sudo policy but was not read; its rules were not judged"
            ));
            return;
        };
        let text = String::from_utf8_lossy(&content.data).into_owned();
        let dir = resolved.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
        for (number, line) in logical_lines(&text) {
            let t = line.trim();
            for (kw, is_dir) in [
                ("#includedir", true),
                ("@includedir", true),
                ("#include", false),
                ("@include", false),
            ] {
                if let Some(rest) = t.strip_prefix(kw)
                    && rest.starts_with(char::is_whitespace)
                {
                    let target = rest.trim().trim_matches('"');
                    let target = match target.strip_prefix('/') {
                        Some(abs) => abs.to_owned(),
                        None => format!("{dir}/{target}"),
                    };
                    if is_dir {
                        let Some(d) = fs.canonical(&target, true) else {
                            continue;
                        };
                        let names: Vec<String> = fs
                            .children(&d)
                            .filter(|(n, _)| !n.ends_with('~') && !n.contains('.'))
                            .map(|(n, _)| n.to_owned())
                            .collect();
                        for n in names {
                            self.read_file(fs, &format!("{d}/{n}"), depth + 1, warnings);
                        }
                    } else {
                        self.read_file(fs, &target, depth + 1, warnings);
                    }
                    break;
                }
            }
            let t = strip_comment(t).trim();
            if t.is_empty() || t.starts_with("#include") || t.starts_with("@include") {
                continue;
            }
            self.read_line(&resolved, number, t);
        }
    }

    fn read_line(&mut self, file: &str, line: usize, t: &str) {
        let first = t.split_whitespace().next().unwrap_or("");
        if let Some(rest) = first.strip_prefix("Defaults") {
            let users = rest.strip_prefix(':').map(list);
            if rest.starts_with(['@', '>', '!']) {
                return;
            }
            let params = t[first.len()..].trim();
            for param in list(params) {
                let (on, name) = match param.strip_prefix('!') {
                    Some(n) => (false, n.trim()),
                    None => (true, param.split('=').next().unwrap_or("").trim()),
                };
                if matches!(name, "authenticate" | "rootpw" | "targetpw" | "runaspw") {
                    self.defaults.push(AuthDefault {
                        users: users.clone(),
                        name: name.to_owned(),
                        on,
                        file: file.to_owned(),
                        line,
                    });
                }
            }
            return;
        }
        let table = match first {
            "User_Alias" => Some(&mut self.aliases.user),
            "Runas_Alias" => Some(&mut self.aliases.runas),
            "Host_Alias" => Some(&mut self.aliases.host),
            "Cmnd_Alias" | "Cmd_Alias" => Some(&mut self.aliases.cmnd),
            _ => None,
        };
        if let Some(table) = table {
            for def in t[first.len()..].split(':') {
                if let Some((name, members)) = def.split_once('=') {
                    table.insert(name.trim().to_owned(), list(members));
                }
            }
            return;
        }
        // `users hosts = cmnd_spec_list`.
        let Some((who, cmnds)) = t.split_once('=') else {
            return;
        };
        // The user list may have spaces after its commas.
        let who = who.replace(", ", ",").replace(" ,", ",");
        let mut parts = who.split_whitespace();
        let (Some(users), Some(hosts)) = (parts.next(), parts.next()) else {
            return;
        };
        let rule = t.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut runas: Option<Vec<String>> = None;
        let mut nopasswd = false;
        for item in cmnds.split(',') {
            let mut item = item.trim();
            if let Some(r) = item.strip_prefix('(')
                && let Some(end) = r.find(')')
            {
                let users_part = r[..end].split(':').next().unwrap_or("");
                runas = Some(list(users_part));
                item = r[end + 1..].trim();
            }
            // Tags: `WORD:` prefixes.
            while let Some((tag, rest)) = item.split_once(':') {
                let tag = tag.trim();
                if !TAGS.contains(&tag) {
                    break;
                }
                match tag {
                    "NOPASSWD" => nopasswd = true,
                    "PASSWD" => nopasswd = false,
                    _ => {}
                }
                item = rest.trim();
            }
            let (negated, command) = match item.strip_prefix('!') {
                Some(c) => (true, c.trim()),
                None => (false, item),
            };
            if command.is_empty() {
                continue;
            }
            self.grants.push(Grant {
                file: file.to_owned(),
                line,
                rule: rule.clone(),
                users: list(users),
                hosts: list(hosts),
                runas: runas.clone(),
                nopasswd,
                command: command.split_whitespace().collect::<Vec<_>>().join(" "),
                negated,
            });
        }
    }

    /// Whether the user list matches `who` (named `name`): the last item
    /// that matches decides.
    fn users_match(
        &self,
        items: &[String],
        who: &Who,
        name: Option<&str>,
        ctx: &Context<'_>,
        depth: usize,
    ) -> bool {
        if depth > 16 {
            return false;
        }
        for item in items.iter().rev() {
            let (neg, it) = match item.strip_prefix('!') {
                Some(i) => (true, i.trim()),
                None => (false, item.as_str()),
            };
            let m = if it == "ALL" {
                true
            } else if let Some(uid) = it.strip_prefix('#') {
                uid.parse::<u32>().is_ok_and(|u| u == who.uid)
            } else if let Some(g) = it.strip_prefix("%#") {
                g.parse::<u64>().is_ok_and(|g| who.in_group(g))
            } else if let Some(g) = it.strip_prefix('%') {
                ctx.accounts
                    .group_by_name(g)
                    .is_some_and(|g| who.in_group(u64::from(g.runtime_gid())))
            } else if let Some(members) = self.aliases.user.get(it) {
                self.users_match(members, who, name, ctx, depth + 1)
            } else {
                name == Some(it)
            };
            if m {
                return !neg;
            }
        }
        false
    }

    fn hosts_all(&self, items: &[String], depth: usize) -> bool {
        depth < 16
            && items.iter().any(|h| {
                h == "ALL"
                    || self
                        .aliases
                        .host
                        .get(h)
                        .is_some_and(|m| self.hosts_all(m, depth + 1))
            })
            && !items.iter().any(|h| h.starts_with('!'))
    }

    fn runas_root(&self, items: &Option<Vec<String>>, ctx: &Context<'_>, depth: usize) -> bool {
        let Some(items) = items else {
            return true;
        };
        if items.is_empty() {
            // `()` or `(:group)`: the invoking user, not root.
            return false;
        }
        depth < 16
            && items.iter().any(|r| {
                r == "ALL"
                    || r == "root"
                    || r == "#0"
                    || ctx
                        .accounts
                        .user_by_name(r)
                        .is_some_and(|u| u.runtime_uid() == 0)
                    || self
                        .aliases
                        .runas
                        .get(r)
                        .is_some_and(|m| self.runas_root(&Some(m.clone()), ctx, depth + 1))
            })
    }

    /// The commands of a grant, aliases expanded.
    fn commands(&self, command: &str, depth: usize) -> Vec<String> {
        match self.aliases.cmnd.get(command) {
            Some(m) if depth < 16 => m
                .iter()
                .filter(|c| !c.starts_with('!'))
                .flat_map(|c| self.commands(c, depth + 1))
                .collect(),
            Some(_) => Vec::new(),
            None => vec![command.to_owned()],
        }
    }

    /// The grants that let `who` run `command`s as root on any host, each
    /// with its expanded commands.
    pub fn root_grants(
        &self,
        ctx: &Context<'_>,
        who: &Who,
        name: Option<&str>,
    ) -> Vec<(Grant, Vec<String>)> {
        self.grants
            .iter()
            .filter(|g| {
                !g.negated
                    && self.users_match(&g.users, who, name, ctx, 0)
                    && self.hosts_all(&g.hosts, 0)
                    && self.runas_root(&g.runas, ctx, 0)
            })
            .map(|g| (g.clone(), self.commands(&g.command, 0)))
            .collect()
    }

    /// The groups (`%name` in a user list) whose members may run, as root
    /// on any host and with `NOPASSWD:`, a command that gives root: who
    /// can write `/etc/group` can join them.
    pub fn nopasswd_group_grants(&self, ctx: &Context<'_>) -> Vec<(String, Grant, String)> {
        let mut out = Vec::new();
        for g in &self.grants {
            if g.negated
                || !g.nopasswd
                || !self.hosts_all(&g.hosts, 0)
                || !self.runas_root(&g.runas, ctx, 0)
            {
                continue;
            }
            let Some(gives) = self
                .commands(&g.command, 0)
                .iter()
                .find_map(|c| command_power(c))
            else {
                continue;
            };
            for u in &g.users {
                if let Some(name) = u.strip_prefix('%')
                    && !name.starts_with('#')
                    && !name.starts_with(':')
                    && ctx.accounts.group_by_name(name).is_some()
                {
                    out.push((name.to_owned(), g.clone(), gives.clone()));
                }
            }
        }
        out
    }

    /// Whether sudo asks `who` for a password for a grant, and whose
    /// (`Defaults !authenticate`, `rootpw`, `targetpw`, `runaspw`; the last
    /// setting that applies wins), with the line that decided.
    pub fn authentication(
        &self,
        ctx: &Context<'_>,
        who: &Who,
        name: Option<&str>,
        grant: &Grant,
    ) -> Auth {
        if grant.nopasswd {
            return Auth::None(format!("/{} line {} has NOPASSWD:", grant.file, grant.line));
        }
        let mut auth = Auth::Own;
        for d in &self.defaults {
            if let Some(users) = &d.users
                && !self.users_match(users, who, name, ctx, 0)
            {
                continue;
            }
            let at = format!("/{} line {}", d.file, d.line);
            auth = match (d.name.as_str(), d.on) {
                ("authenticate", false) => Auth::None(format!("{at} sets Defaults !authenticate")),
                ("authenticate", true) => Auth::Own,
                ("rootpw" | "targetpw" | "runaspw", true) => Auth::Root(at),
                (_, false) if matches!(auth, Auth::Root(_)) => Auth::Own,
                _ => auth,
            };
        }
        auth
    }
}

/// Whose password sudo asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// None, and why.
    None(String),
    /// The user's own.
    Own,
    /// root's (`rootpw`, or `targetpw` with root as the target), and where.
    Root(String),
}

/// What a sudo command gives as root, if it is a way to root: `ALL`, or a
/// program of [`super::escalation::POWERFUL`] with no arguments fixed.
pub fn command_power(command: &str) -> Option<String> {
    if command == "ALL" {
        return Some("ALL: any command".to_owned());
    }
    let mut words = command.split_whitespace();
    let prog = words.next()?;
    if !prog.starts_with('/') {
        return None;
    }
    let args: Vec<&str> = words.collect();
    let name = super::base_name(prog);
    let power = super::escalation::power_of(name)?;
    // Fixed arguments narrow what the program does; `""` means none.
    let shell_no_args = power == super::escalation::Power::Shell && args == [r#""""#];
    if args.is_empty() || shell_no_args {
        Some(format!("{prog} ({})", power.phrase()))
    } else {
        None
    }
}

/// Whether sudo will run for the runtime user at all: sudo looks the
/// invoking uid up in the passwd database first and stops with "you do not
/// exist in the passwd database" when it has no entry (observed with sudo
/// 1.9.13 in a Debian bookworm tree, `tests/escalation.rs`), so a numeric
/// `USER` without a passwd line has no sudo path, whatever the rules say.
pub fn invoker_known(ctx: &Context<'_>) -> bool {
    ctx.user.name.is_some()
}

/// A setuid-root program the user can run (`su`, `sudo`), found at the
/// first of `paths` that exists.
pub fn setuid_program<'a>(
    ctx: &'a Context<'_>,
    who: &Who,
    paths: &[&str],
) -> Result<(String, &'a Node, Granted), String> {
    let mut why = format!("no {} in the image", paths.join(" or /"));
    for p in paths {
        let Some((resolved, node)) = ctx.fs.resolve(p) else {
            continue;
        };
        if !node.is_regular() {
            continue;
        }
        if node.uid != 0 || node.mode & 0o4000 == 0 {
            why = format!(
                "/{resolved} is not setuid root (mode {:04o}, uid {})",
                node.mode, node.uid
            );
            continue;
        }
        match access(ctx.fs, who, &resolved, Perm::Exec) {
            Ok(g) => return Ok((resolved, node, g)),
            Err(e) => why = e,
        }
    }
    Err(why)
}

/// Whether PAM lets `service` (`su`, `sudo`) accept an empty password:
/// a `pam_unix.so` `auth` line with `nullok` in `/etc/pam.d/<service>` or a
/// file it includes (`@include`, `include`, `substack`). `Ok(None)` when the
/// image has no `/etc/pam.d` (the program then is not PAM-linked, or PAM
/// falls back to `/etc/pam.conf`: not judged), `Ok(Some(where))` with the
/// line that allows it, `Err(why not)`.
pub fn pam_nullok(ctx: &Context<'_>, service: &str) -> Result<Option<String>, String> {
    let pam_dir = ctx.fs.canonical("etc/pam.d", true);
    if pam_dir.as_deref().and_then(|d| ctx.fs.node_at(d)).is_none() {
        return Ok(None);
    }
    let mut seen = Vec::new();
    nullok_in(ctx, service, &mut seen, 0)
        .map(Some)
        .ok_or_else(|| format!("/etc/pam.d/{service} has no pam_unix.so auth line with nullok"))
}

fn nullok_in(
    ctx: &Context<'_>,
    name: &str,
    seen: &mut Vec<String>,
    depth: usize,
) -> Option<String> {
    if depth > 8 || seen.iter().any(|s| s == name) {
        return None;
    }
    seen.push(name.to_owned());
    let path = format!("etc/pam.d/{name}");
    let content = ctx.fs.read(&path)?;
    let text = String::from_utf8_lossy(&content.data);
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let words = pam_words(line);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["@include", f, ..] => {
                if let Some(w) = nullok_in(ctx, f, seen, depth + 1) {
                    return Some(w);
                }
            }
            ["auth", ctl, f, ..] if matches!(*ctl, "include" | "substack") => {
                if let Some(w) = nullok_in(ctx, f, seen, depth + 1) {
                    return Some(w);
                }
            }
            ["auth", _, module, args @ ..]
                if module.ends_with("pam_unix.so") && args.contains(&"nullok") =>
            {
                return Some(format!("/{path} line {}: {line}", i + 1));
            }
            _ => {}
        }
    }
    None
}

/// A PAM line's words, a `[value=action …]` control kept as one word.
fn pam_words(line: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for w in line.split_whitespace() {
        if open {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(w);
            }
        } else {
            out.push(w.to_owned());
        }
        open = if open {
            !w.ends_with(']')
        } else {
            w.starts_with('[') && !w.ends_with(']')
        };
    }
    out
}
