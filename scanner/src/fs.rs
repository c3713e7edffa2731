//! The final filesystem: layers applied in order, without touching disk.
//!
//! Semantics follow the OCI image spec (`layer.md`, "Whiteouts") and what
//! containerd's `applyNaive` and `umoci unpack` do:
//!
//! 1. A layer's opaque markers (`D/.wh..wh..opq`) hide everything below `D`
//!    from lower layers, and its `.wh.NAME` files delete `NAME` and its
//!    subtree from lower layers. Both apply before the layer's own entries,
//!    whatever their order in the tar.
//! 2. Entries are then applied in archive order. A directory over a directory
//!    replaces the attributes and keeps the children; anything else replaces
//!    the old path and its whole subtree.
//! 3. Parent components are resolved through symlinks already in the
//!    filesystem (never above the root), as extraction would: with
//!    `/bin -> usr/bin` in a lower layer, a later `bin/su` lands at `/usr/bin/su`.
//! 4. A hard link shares the inode of its (root-relative) target: the link
//!    header's mode and owner apply to both paths, and the link carries the
//!    target's capabilities unless it has its own.
//!
//! Every node remembers the layer that last set its metadata: that is the
//! layer a finding is attributed to.

use std::collections::BTreeMap;

use crate::layer::{Content, Entry, LayerIndex};
use crate::tarstream::Kind;

/// Most symlinks followed while resolving one path (Linux's limit).
const MAX_HOPS: usize = 40;

/// A path in the final filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Type.
    pub kind: Kind,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// Size in bytes (0 for hard links, whose data is the target's).
    pub size: u64,
    /// Symlink target as written, or the canonical hard link target.
    pub link: Option<Box<str>>,
    /// Raw `security.capability`.
    pub caps: Option<Box<[u8]>>,
    /// Captured contents (only for the files checks read).
    pub content: Option<Box<Content>>,
    /// The layer that last set this path's metadata.
    pub layer: usize,
}

impl Node {
    /// Whether this is a regular file (a hard link counts: it is one).
    pub fn is_regular(&self) -> bool {
        matches!(self.kind, Kind::File | Kind::Hardlink)
    }
}

/// The merged view of all layers applied so far.
#[derive(Debug, Default)]
pub struct FinalFs {
    nodes: BTreeMap<Box<str>, Node>,
    warnings: Vec<String>,
    // Cache for parent resolution: tar members come grouped by directory.
    cache: Option<(String, String, u64)>,
    symlink_generation: u64,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

impl FinalFs {
    /// An empty filesystem.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes found while applying layers (hard links to missing targets...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no paths.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All paths (relative, no leading `/`) in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(k, v)| (&**k, v))
    }

    /// The node at exactly `path` (no symlink resolution).
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Direct children of directory `dir` (already canonical).
    pub fn children<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let plen = prefix.len();
        self.nodes
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(move |(k, _)| !k.is_empty() && !k[plen..].contains('/'))
            .map(move |(k, v)| (&k[plen..], v))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Resolves every component of `path` through symlinks; the last one too
    /// when `follow_last`. `None` on a symlink loop.
    pub fn canonical(&self, path: &str, follow_last: bool) -> Option<String> {
        let mut out: Vec<String> = Vec::new();
        let mut queue: std::collections::VecDeque<String> =
            path.split('/').map(str::to_owned).collect();
        let mut hops = 0;
        while let Some(c) = queue.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    out.pop();
                    continue;
                }
                _ => {}
            }
            out.push(c);
            if queue.iter().all(|c| c.is_empty() || c == ".") && !follow_last {
                break;
            }
            let cur = out.join("/");
            if let Some(node) = self.nodes.get(cur.as_str())
                && node.kind == Kind::Symlink
            {
                hops += 1;
                if hops > MAX_HOPS {
                    return None;
                }
                out.pop();
                let target = node.link.as_deref().unwrap_or("");
                if target.starts_with('/') {
                    out.clear();
                }
                for (i, t) in target.split('/').enumerate() {
                    queue.insert(i, t.to_owned());
                }
            }
        }
        Some(out.join("/"))
    }

    /// Follows symlinks (all components) to the node a path names.
    pub fn resolve(&self, path: &str) -> Option<(String, &Node)> {
        let p = self.canonical(path, true)?;
        let node = self.nodes.get(p.as_str())?;
        Some((p, node))
    }

    /// The captured contents of the file `path` names (symlinks followed).
    pub fn read(&self, path: &str) -> Option<&Content> {
        let (_, node) = self.resolve(path)?;
        node.content.as_deref()
    }

    fn parent_resolved(&mut self, dir: &str) -> String {
        if let Some((raw, resolved, generation)) = &self.cache
            && raw == dir
            && *generation == self.symlink_generation
        {
            return resolved.clone();
        }
        let resolved = self.canonical(dir, true).unwrap_or_else(|| dir.to_owned());
        self.cache = Some((dir.to_owned(), resolved.clone(), self.symlink_generation));
        resolved
    }

    fn resolve_member(&mut self, path: &str) -> String {
        let (dir, base) = split(path);
        if dir.is_empty() {
            return base.to_owned();
        }
        let dir = self.parent_resolved(dir);
        join(&dir, base)
    }

    fn remove_subtree(&mut self, path: &str, include_self: bool) {
        if include_self
            && let Some(old) = self.nodes.remove(path)
            && old.kind == Kind::Symlink
        {
            self.symlink_generation += 1;
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let doomed: Vec<Box<str>> = self
            .nodes
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            if let Some(old) = self.nodes.remove(&k)
                && old.kind == Kind::Symlink
            {
                self.symlink_generation += 1;
            }
        }
    }

    /// Applies one layer on top of what is there.
    pub fn apply(&mut self, layer: usize, index: LayerIndex) {
        for dir in &index.opaques {
            let d = if dir.is_empty() {
                String::new()
            } else {
                self.canonical(dir, true).unwrap_or_else(|| dir.to_string())
            };
            self.remove_subtree(&d, false);
        }
        for w in &index.whiteouts {
            let p = self.resolve_member(w);
            if !p.is_empty() {
                self.remove_subtree(&p, true);
            }
        }
        for e in index.entries {
            self.add(layer, e);
        }
    }

    fn add(&mut self, layer: usize, e: Entry) {
        let path = self.resolve_member(&e.path);
        let existing_dir = self.nodes.get(path.as_str()).map(|n| n.kind == Kind::Dir);
        match existing_dir {
            Some(true) if e.kind == Kind::Dir => {}
            Some(_) => self.remove_subtree(&path, true),
            None => {}
        }
        let mut node = Node {
            kind: e.kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            link: e.link,
            caps: e.caps,
            content: e.content,
            layer,
        };
        if e.kind == Kind::Hardlink {
            let raw_target = node.link.as_deref().unwrap_or("").to_owned();
            let target = self.resolve_member(&raw_target);
            node.link = Some(target.clone().into());
            match self.nodes.get_mut(target.as_str()) {
                Some(t) if t.is_regular() => {
                    // One inode: the link header's metadata applies to both.
                    if (t.mode, t.uid, t.gid) != (node.mode, node.uid, node.gid)
                        || (node.caps.is_some() && node.caps != t.caps)
                    {
                        t.mode = node.mode;
                        t.uid = node.uid;
                        t.gid = node.gid;
                        if node.caps.is_some() {
                            t.caps.clone_from(&node.caps);
                        }
                        t.layer = layer;
                    }
                    if node.caps.is_none() {
                        node.caps.clone_from(&t.caps);
                    }
                    node.size = t.size;
                    if node.content.is_none() {
                        node.content.clone_from(&t.content);
                    }
                }
                Some(t) => {
                    let kind = t.kind.as_str();
                    self.warnings.push(format!(
                        "hard link /{path} points to /{target}, which is a {kind}, not a file"
                    ));
                }
                None => self.warnings.push(format!(
                    "hard link /{path} points to /{target}, which does not exist; judged by its own header"
                )),
            }
        }
        if node.kind == Kind::Symlink {
            self.symlink_generation += 1;
        }
        if let Some(old) = self.nodes.get_mut(path.as_str())
            && old.kind == Kind::Dir
            && node.kind == Kind::Dir
        {
            *old = node;
            return;
        }
        self.nodes.insert(path.into(), node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::checks::packages::test_support::entry;

    fn link(path: &str, kind: Kind, target: &str) -> Entry {
        Entry {
            link: Some(target.into()),
            ..entry(path, kind, 0o777)
        }
    }

    fn layer(entries: Vec<Entry>, whiteouts: &[&str], opaques: &[&str]) -> LayerIndex {
        LayerIndex {
            entries,
            whiteouts: whiteouts.iter().map(|s| Box::from(*s)).collect(),
            opaques: opaques.iter().map(|s| Box::from(*s)).collect(),
            ..LayerIndex::default()
        }
    }

    fn paths(fs: &FinalFs) -> Vec<String> {
        fs.iter()
            .map(|(p, n)| format!("{p}:{}:{:o}:{}", n.kind.as_str(), n.mode, n.layer))
            .collect()
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
        let mut fs = FinalFs::new();
        fs.apply(
            0,
            layer(
                vec![
                    entry("opt", Kind::Dir, 0o755),
                    entry("opt/a", Kind::File, 0o4755),
                    entry("opt/sub", Kind::Dir, 0o755),
                    entry("opt/sub/b", Kind::File, 0o4755),
                    entry("usr/bin/su", Kind::File, 0o4755),
                    entry("usr/bin/keep", Kind::File, 0o755),
                ],
                &[],
                &[],
            ),
        );
        fs.apply(
            1,
            layer(
                // The opaque marker comes after a new entry in the same layer:
                // the new entry survives.
                vec![entry("opt/new", Kind::File, 0o4755)],
                &["usr/bin/su"],
                &["opt"],
            ),
        );
        assert_eq!(
            paths(&fs),
            [
                "opt:dir:755:0",
                "opt/new:file:4755:1",
                "usr/bin/keep:file:755:0"
            ]
        );
    }

    #[test]
    fn replacement_changes_attribution_and_drops_subtrees() {
        let mut fs = FinalFs::new();
        fs.apply(
            0,
            layer(
                vec![
                    entry("d", Kind::Dir, 0o777),
                    entry("d/x", Kind::File, 0o4755),
                    entry("f", Kind::File, 0o644),
                ],
                &[],
                &[],
            ),
        );
        fs.apply(
            1,
            layer(
                vec![entry("d", Kind::Dir, 0o755), entry("f", Kind::File, 0o4755)],
                &[],
                &[],
            ),
        );
        assert_eq!(
            paths(&fs),
            ["d:dir:755:1", "d/x:file:4755:0", "f:file:4755:1"]
        );
        fs.apply(2, layer(vec![link("d", Kind::Symlink, "/tmp")], &[], &[]));
        assert_eq!(paths(&fs), ["d:symlink:777:2", "f:file:4755:1"]);
    }

    #[test]
    fn parents_resolve_through_symlinks() {
        let mut fs = FinalFs::new();
        fs.apply(
            0,
            layer(
                vec![
                    entry("usr/bin", Kind::Dir, 0o755),
                    link("bin", Kind::Symlink, "usr/bin"),
                ],
                &[],
                &[],
            ),
        );
        fs.apply(
            1,
            layer(vec![entry("bin/su", Kind::File, 0o4755)], &[], &[]),
        );
        assert!(fs.get("usr/bin/su").is_some());
        assert!(fs.get("bin/su").is_none());
        fs.apply(2, layer(vec![], &["bin/su"], &[]));
        assert!(fs.get("usr/bin/su").is_none());
    }

    #[test]
    fn hard_links_share_the_inode() {
        let mut fs = FinalFs::new();
        let mut t = entry("usr/bin/ping", Kind::File, 0o755);
        t.caps = Some(Box::from(
            &b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"[..],
        ));
        t.size = 10;
        fs.apply(0, layer(vec![t], &[], &[]));
        let mut l = link("usr/bin/ping6", Kind::Hardlink, "usr/bin/ping");
        l.mode = 0o4755;
        fs.apply(1, layer(vec![l], &[], &[]));
        let a = fs.get("usr/bin/ping").unwrap();
        let b = fs.get("usr/bin/ping6").unwrap();
        assert_eq!((a.mode, a.layer), (0o4755, 1));
        assert_eq!(b.caps, a.caps);
        assert_eq!(b.size, 10);
        fs.apply(2, layer(vec![link("x", Kind::Hardlink, "nope")], &[], &[]));
        assert_eq!(fs.warnings().len(), 1);
    }

    #[test]
    fn symlink_loops_do_not_hang() {
        let mut fs = FinalFs::new();
        fs.apply(
            0,
            layer(
                vec![link("a", Kind::Symlink, "b"), link("b", Kind::Symlink, "a")],
                &[],
                &[],
            ),
        );
        assert!(fs.canonical("a/x", true).is_none());
        fs.apply(1, layer(vec![entry("a/x", Kind::File, 0o644)], &[], &[]));
        assert!(fs.resolve("a").is_none());
    }
}
