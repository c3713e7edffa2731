//! Access: can the runtime user read, write or execute a path of the final
//! filesystem?
//!
//! Judged as the kernel's `generic_permission` does (`fs/namei.c`;
//! path_resolution(7), credentials(7)): every directory on the way needs
//! search (`x`) permission; the owner class applies when the uid owns the
//! file, else the group class when the file's gid is one of the process's
//! groups, else the other class (the first class that matches is the only
//! one used, even when it grants less). Symlinks are resolved inside the
//! image ([`FinalFs::canonical`]). uid 0 passes every read, write and search
//! check (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, in Docker's default set)
//! and may execute a file with any `x` bit.
//!
//! Directories no layer names are created by the runtime as `0755 root:root`
//! ([`FinalFs::node_at`]).
//!
//! POSIX ACLs: runtimes apply a `SCHILY.xattr.system.posix_acl_access`
//! record, and an ACL can grant a user or group what the mode bits do not
//! show. The layer reader refuses (exit 2) a member whose ACL has more than
//! the three entries the mode bits already say, so every file judged here
//! has mode bits that tell the whole story.

use super::identity::Who;
use crate::fs::{FinalFs, Node};
use crate::tarstream::Kind;

/// The access asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// `r`.
    Read,
    /// `w`.
    Write,
    /// `x`.
    Exec,
}

impl Perm {
    fn bit(self) -> u32 {
        match self {
            Self::Read => 4,
            Self::Write => 2,
            Self::Exec => 1,
        }
    }

    fn able(self) -> &'static str {
        match self {
            Self::Read => "readable",
            Self::Write => "writable",
            Self::Exec => "executable",
        }
    }
}

/// Which class of a mode applies to `who` for `node`, and its bits.
fn class(who: &Who, node: &Node) -> (&'static str, u32) {
    if u64::from(who.uid) == node.uid {
        ("owner", (node.mode >> 6) & 7)
    } else if who.in_group(node.gid) {
        ("group", (node.mode >> 3) & 7)
    } else {
        ("other", node.mode & 7)
    }
}

/// Whether `who` has `perm` on `node` itself (no path walk), and why, as a
/// phrase for a step: `writable by its group (gid 0) in mode 0664`.
pub fn permits(who: &Who, node: &Node, perm: Perm) -> Result<String, String> {
    let mode = format!("{:04o}", node.mode & 0o7777);
    if who.uid == 0 {
        if perm == Perm::Exec && node.kind != Kind::Dir && node.mode & 0o111 == 0 {
            return Err(format!("no execute bit in mode {mode}"));
        }
        return Ok(format!("{} by root", perm.able()));
    }
    let (which, bits) = class(who, node);
    let whom = match which {
        "owner" => format!("its owner (uid {})", node.uid),
        "group" => format!("its group (gid {})", node.gid),
        _ => "others".to_owned(),
    };
    if bits & perm.bit() != 0 {
        Ok(format!("{} by {whom} in mode {mode}", perm.able()))
    } else {
        Err(format!("not {} by {whom} in mode {mode}", perm.able()))
    }
}

/// A granted access: the path it resolved to and why it is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The canonical path (relative, no leading `/`).
    pub path: String,
    /// Why, for a step.
    pub why: String,
}

/// Search permission on every directory above canonical `path`.
fn search_to(fs: &FinalFs, who: &Who, path: &str) -> Result<(), String> {
    let mut dir = String::new();
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, c) in comps.iter().enumerate() {
        let node = fs
            .node_at(&dir)
            .ok_or_else(|| format!("/{dir} does not exist"))?;
        if node.kind != Kind::Dir {
            return Err(format!("/{dir} is not a directory"));
        }
        permits(who, node, Perm::Exec).map_err(|e| format!("directory /{dir} is {e}"))?;
        if i + 1 < comps.len() {
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(c);
        }
    }
    Ok(())
}

/// Whether `who` can `perm` the file `path` names (symlinks followed).
pub fn access(fs: &FinalFs, who: &Who, path: &str, perm: Perm) -> Result<Granted, String> {
    let canonical = fs
        .canonical(path, true)
        .ok_or_else(|| format!("/{path} is a symlink loop"))?;
    let node = fs
        .node_at(&canonical)
        .ok_or_else(|| format!("/{canonical} does not exist"))?;
    search_to(fs, who, &canonical)?;
    if perm == Perm::Exec && !node.is_regular() {
        return Err(format!("/{canonical} is not a regular file"));
    }
    let why = permits(who, node, perm).map_err(|e| format!("/{canonical} is {e}"))?;
    Ok(Granted {
        path: canonical,
        why,
    })
}

/// Whether `who` can create or replace (rename over) the entry `path`
/// (its last component not followed): write and search permission on its
/// directory, and, when that directory is sticky, ownership of the
/// directory or of the existing entry (the kernel's `may_delete`).
pub fn can_replace(fs: &FinalFs, who: &Who, path: &str) -> Result<Granted, String> {
    let canonical = fs
        .canonical(path, false)
        .ok_or_else(|| format!("/{path} is a symlink loop"))?;
    let (dir, _) = canonical.rsplit_once('/').unwrap_or(("", &canonical));
    let dnode = fs
        .node_at(dir)
        .ok_or_else(|| format!("/{dir} does not exist"))?;
    if dnode.kind != Kind::Dir {
        return Err(format!("/{dir} is not a directory"));
    }
    search_to(fs, who, &format!("{dir}/x"))?;
    let w = permits(who, dnode, Perm::Write).map_err(|e| format!("directory /{dir} is {e}"))?;
    permits(who, dnode, Perm::Exec).map_err(|e| format!("directory /{dir} is {e}"))?;
    if who.uid != 0
        && dnode.mode & 0o1000 != 0
        && u64::from(who.uid) != dnode.uid
        && fs
            .node_at(&canonical)
            .is_some_and(|n| n.uid != u64::from(who.uid))
    {
        return Err(format!(
            "directory /{dir} is sticky and /{canonical} belongs to another user"
        ));
    }
    Ok(Granted {
        path: canonical.clone(),
        why: format!("its directory /{dir} is {w}"),
    })
}

/// Whether `who` can change the contents of `path`: write the file itself
/// or replace it through its directory.
pub fn can_modify(fs: &FinalFs, who: &Who, path: &str) -> Result<Granted, String> {
    match access(fs, who, path, Perm::Write) {
        Ok(g) => Ok(g),
        Err(e) => can_replace(fs, who, path).map_err(|e2| format!("{e}; {e2}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::packages::test_support::*;
    use crate::layer::Entry;

    fn owned(mut e: Entry, uid: u64, gid: u64) -> Entry {
        e.uid = uid;
        e.gid = gid;
        e
    }

    fn app() -> Who {
        Who {
            uid: 1000,
            gids: vec![1000, 27],
        }
    }

    #[test]
    fn classes_are_exclusive_and_groups_count() {
        let fs = fs_of(vec![vec![
            dir("etc", 0o755),
            owned(file("etc/own", 0o066), 1000, 1000),
            owned(file("etc/grp", 0o664), 0, 27),
            owned(file("etc/root0", 0o664), 0, 0),
            file("etc/world", 0o666),
            file("etc/plain", 0o644),
        ]]);
        let who = app();
        // The owner class denies although group and other allow.
        assert!(access(&fs, &who, "etc/own", Perm::Write).is_err());
        assert!(access(&fs, &who, "etc/grp", Perm::Write).is_ok());
        assert!(access(&fs, &who, "etc/root0", Perm::Write).is_err());
        let gid0 = Who {
            uid: 1000,
            gids: vec![0],
        };
        let g = access(&fs, &gid0, "etc/root0", Perm::Write).unwrap();
        assert_eq!(g.why, "writable by its group (gid 0) in mode 0664");
        assert!(access(&fs, &who, "etc/world", Perm::Write).is_ok());
        assert!(access(&fs, &who, "etc/plain", Perm::Write).is_err());
        assert!(access(&fs, &who, "etc/plain", Perm::Read).is_ok());
        let root = Who {
            uid: 0,
            gids: vec![0],
        };
        assert!(access(&fs, &root, "etc/plain", Perm::Write).is_ok());
        assert!(access(&fs, &root, "etc/plain", Perm::Exec).is_err());
    }

    #[test]
    fn directories_need_search_and_symlinks_are_followed() {
        let fs = fs_of(vec![vec![
            dir("secret", 0o700),
            file("secret/f", 0o666),
            dir("opt", 0o755),
            symlink("opt/link", "../secret/f"),
            symlink("opt/w", "/srv/w"),
            file("srv/w", 0o666),
        ]]);
        let who = app();
        let e = access(&fs, &who, "secret/f", Perm::Write).unwrap_err();
        assert!(e.contains("directory /secret is not executable"), "{e}");
        assert!(access(&fs, &who, "opt/link", Perm::Write).is_err());
        // `srv` was never named: created 0755 root, searchable.
        let g = access(&fs, &who, "opt/w", Perm::Write).unwrap();
        assert_eq!(g.path, "srv/w");
        assert!(access(&fs, &who, "opt/missing", Perm::Read).is_err());
    }

    #[test]
    fn replacing_through_the_directory() {
        let fs = fs_of(vec![vec![
            owned(dir("etc", 0o775), 0, 0),
            file("etc/passwd", 0o644),
            dir("tmp", 0o1777),
            file("tmp/rootfile", 0o644),
        ]]);
        let gid0 = Who {
            uid: 1000,
            gids: vec![0],
        };
        let g = can_modify(&fs, &gid0, "etc/passwd").unwrap();
        assert!(
            g.why.contains("directory /etc is writable by its group"),
            "{}",
            g.why
        );
        assert!(can_modify(&fs, &app(), "etc/passwd").is_err());
        let e = can_replace(&fs, &app(), "tmp/rootfile").unwrap_err();
        assert!(e.contains("sticky"), "{e}");
        assert!(can_replace(&fs, &app(), "tmp/new").is_ok());
    }
}
