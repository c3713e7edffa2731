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
//!    Missing parents are created (as extraction does), but only as
//!    structure: a path no member named does not show up in lookups.
//! 4. A hard link shares the inode of its (root-relative) target: the link
//!    header's mode and owner apply to both paths, and the link carries the
//!    target's capabilities unless it has its own.
//!
//! Every node remembers the layer that last set its metadata: that is the
//! layer a finding is attributed to.
//!
//! # Representation
//!
//! A tree, as a kernel keeps dentries: nodes in one `Vec`, each linked to its
//! parent and siblings, names in one string buffer, and one hash table from
//! (parent, name) to node. Applying a member is one table lookup (its parent
//! directory is cached, as members come grouped by directory), removing a
//! subtree is unlinking its top, and nothing is sorted until a check asks:
//! [`FinalFs::select`] returns what matches, sorted by path. About 80 bytes
//! per path. The table is seeded per process, so names chosen to collide
//! cannot slow it down.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::layer::{Content, Extra, LayerIndex, NO_EXTRA, Rec};
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
    /// Size in bytes (for a hard link, its target's).
    pub size: u64,
    /// The layer that last set this path's metadata.
    pub layer: usize,
    /// Link target, capabilities and contents, which few paths have.
    extra: Option<Box<Extra>>,
}

impl Node {
    /// Whether this is a regular file (a hard link counts: it is one).
    pub fn is_regular(&self) -> bool {
        matches!(self.kind, Kind::File | Kind::Hardlink)
    }

    /// Symlink target as written, or the canonical hard link target.
    pub fn link(&self) -> Option<&str> {
        self.extra.as_ref()?.link.as_deref()
    }

    /// Raw `security.capability`.
    pub fn caps(&self) -> Option<&[u8]> {
        self.extra.as_ref()?.caps.as_deref()
    }

    /// Captured contents (only for the files checks read).
    pub fn content(&self) -> Option<&Content> {
        self.extra.as_ref()?.content.as_deref()
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }
}

type Id = u32;
const NIL: Id = Id::MAX;
const ROOT: Id = 0;

/// Created as the parent of a member, named by no member itself.
const IMPLICIT: u8 = 1;
/// Removed, or below a removed node: no longer in the filesystem.
const DEAD: u8 = 2;

#[derive(Debug, Clone)]
struct Slot {
    node: Node,
    parent: Id,
    first_child: Id,
    prev: Id,
    next: Id,
    name_start: u32,
    name_len: u32,
    flags: u8,
}

impl Slot {
    /// This node's name, in the filesystem's name buffer.
    fn name<'a>(&self, names: &'a str) -> &'a str {
        &names[self.name_start as usize..(self.name_start + self.name_len) as usize]
    }
}

/// The merged view of all layers applied so far.
pub struct FinalFs {
    slots: Vec<Slot>,
    names: String,
    table: HashTable<Id>,
    seed: foldhash::fast::RandomState,
    warnings: Vec<String>,
    /// The last parent directory resolved: members come grouped by directory.
    cache: Option<(String, Id, u64)>,
    /// Bumped whenever a cached resolution may have become wrong (a symlink
    /// or directory added or removed).
    generation: u64,
}

impl std::fmt::Debug for FinalFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinalFs")
            .field("paths", &self.len())
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

impl Default for FinalFs {
    fn default() -> Self {
        Self::new()
    }
}

fn split(path: &str) -> (&str, &str) {
    match path.as_bytes().iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// The table's hash of an entry already in it, for growing the table.
fn rehasher<'a>(
    seed: &'a foldhash::fast::RandomState,
    slots: &'a [Slot],
    names: &'a str,
) -> impl Fn(&Id) -> u64 + 'a {
    move |&i| {
        let s = &slots[i as usize];
        let n = s.name(names);
        seed.hash_one((s.parent, n))
    }
}

fn implicit_dir(layer: usize) -> Node {
    Node {
        kind: Kind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        layer,
        extra: None,
    }
}

fn node_of(r: &Rec, extra: Option<Extra>, layer: usize) -> Node {
    Node {
        kind: r.kind,
        mode: r.mode,
        uid: r.uid,
        gid: r.gid,
        size: r.size,
        layer,
        extra: extra.map(Box::new),
    }
}

impl FinalFs {
    /// An empty filesystem (just the root directory).
    pub fn new() -> Self {
        let mut fs = Self {
            slots: Vec::new(),
            names: String::new(),
            table: HashTable::new(),
            seed: foldhash::fast::RandomState::default(),
            warnings: Vec::new(),
            cache: None,
            generation: 0,
        };
        fs.slots.push(Slot {
            node: implicit_dir(0),
            parent: ROOT,
            first_child: NIL,
            prev: NIL,
            next: NIL,
            name_start: 0,
            name_len: 0,
            flags: IMPLICIT,
        });
        fs
    }

    /// Notes found while applying layers (hard links to missing targets...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Number of paths that members named (the root and created parents
    /// not counted).
    pub fn len(&self) -> usize {
        let mut n = 0;
        self.walk(|_, s| {
            if s.flags & IMPLICIT == 0 {
                n += 1;
            }
        });
        n
    }

    /// Whether no member named any path.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn name(&self, id: Id) -> &str {
        let s = &self.slots[id as usize];
        s.name(&self.names)
    }

    fn hash(&self, parent: Id, name: &str) -> u64 {
        self.seed.hash_one((parent, name))
    }

    fn child(&self, parent: Id, name: &str) -> Option<Id> {
        let h = self.hash(parent, name);
        self.table
            .find(h, |&id| {
                let s = &self.slots[id as usize];
                s.parent == parent && self.name(id) == name
            })
            .copied()
    }

    /// Visits every live node, in the order they were added: a linear scan,
    /// which is several times faster than following the tree's links.
    fn walk(&self, mut f: impl FnMut(Id, &Slot)) {
        for (id, s) in self.slots.iter().enumerate() {
            if s.flags & DEAD == 0 {
                f(id as Id, s);
            }
        }
    }

    /// The path of a node, relative, without a leading `/`.
    fn path_of(&self, mut id: Id) -> String {
        let mut parts = Vec::new();
        while id != ROOT {
            parts.push(self.name(id));
            id = self.slots[id as usize].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// The table, mutably, beside what its hashing and equality read.
    fn table_parts(
        &mut self,
    ) -> (
        &mut HashTable<Id>,
        &[Slot],
        &str,
        &foldhash::fast::RandomState,
    ) {
        let Self {
            table,
            slots,
            names,
            seed,
            ..
        } = self;
        (table, slots, names, seed)
    }

    fn insert(&mut self, parent: Id, name: &str, node: Node, flags: u8) -> Id {
        let id = self.link_slot(parent, name, node, flags);
        let h = self.hash(parent, name);
        let (table, slots, names, seed) = self.table_parts();
        table.insert_unique(h, id, rehasher(seed, slots, names));
        id
    }

    /// A new node under `parent`, linked as its first child but not yet in
    /// the table.
    fn link_slot(&mut self, parent: Id, name: &str, node: Node, flags: u8) -> Id {
        let id = self.slots.len() as Id;
        let name_start = self.names.len() as u32;
        self.names.push_str(name);
        let next = self.slots[parent as usize].first_child;
        self.slots.push(Slot {
            node,
            parent,
            first_child: NIL,
            prev: NIL,
            next,
            name_start,
            name_len: name.len() as u32,
            flags,
        });
        if next != NIL {
            self.slots[next as usize].prev = id;
        }
        self.slots[parent as usize].first_child = id;
        id
    }

    /// Unlinks a node and everything below it.
    fn remove(&mut self, id: Id) {
        if id == ROOT {
            return;
        }
        let s = &self.slots[id as usize];
        let (parent, prev, next) = (s.parent, s.prev, s.next);
        if s.node.kind == Kind::Symlink || s.first_child != NIL || s.node.kind == Kind::Dir {
            self.generation += 1;
        }
        let h = self.hash(parent, self.name(id));
        if let Ok(e) = self.table.find_entry(h, |&x| x == id) {
            e.remove();
        }
        if prev == NIL {
            self.slots[parent as usize].first_child = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[id as usize];
        s.prev = NIL;
        s.next = NIL;
        s.parent = NIL;
        // Mark the whole subtree, so that a linear walk skips it. Every node
        // dies at most once, so this costs at most one visit per node.
        let mut stack = vec![id];
        while let Some(d) = stack.pop() {
            let s = &mut self.slots[d as usize];
            s.flags |= DEAD;
            let mut c = s.first_child;
            while c != NIL {
                stack.push(c);
                c = self.slots[c as usize].next;
            }
        }
    }

    /// Removes every child of `id` (an opaque directory).
    fn clear_children(&mut self, id: Id) {
        while self.slots[id as usize].first_child != NIL {
            let c = self.slots[id as usize].first_child;
            self.remove(c);
        }
    }

    /// Resolves `path` from the root through symlinks: every component, and
    /// the last one too when `follow_last`. With `create`, missing
    /// components are made (as structure, [`IMPLICIT`]). `None` on a loop,
    /// or (without `create`) when a component is missing.
    fn lookup(&mut self, path: &str, follow_last: bool, create: bool, layer: usize) -> Option<Id> {
        let mut stack: Vec<String> = Vec::new();
        let mut pending: Vec<&str> = path.rsplit('/').collect();
        let mut cur = ROOT;
        let mut hops = 0;
        loop {
            // Components of `path` are borrowed; only symlink targets are copied.
            let c: std::borrow::Cow<'_, str> = match pending.pop() {
                Some(c) => c.into(),
                None => match stack.pop() {
                    Some(c) => c.into(),
                    None => return Some(cur),
                },
            };
            match &*c {
                "" | "." => continue,
                ".." => {
                    if cur != ROOT {
                        cur = self.slots[cur as usize].parent;
                    }
                    continue;
                }
                _ => {}
            }
            let last = pending.iter().all(|c| c.is_empty() || *c == ".")
                && stack.iter().all(|c| c.is_empty() || c == ".");
            let next = match self.child(cur, &c) {
                Some(n) => n,
                None if create => self.insert(cur, &c, implicit_dir(layer), IMPLICIT),
                None => return None,
            };
            let node = &self.slots[next as usize].node;
            if node.kind == Kind::Symlink && (!last || follow_last) {
                hops += 1;
                if hops > MAX_HOPS {
                    return None;
                }
                let target = node.link().unwrap_or("");
                if target.starts_with('/') {
                    cur = ROOT;
                }
                // The target's components go before what is left.
                let rest: Vec<String> = pending.drain(..).map(str::to_owned).collect();
                stack.extend(rest);
                stack.extend(target.rsplit('/').map(str::to_owned));
                continue;
            }
            cur = next;
        }
    }

    /// The directory a member's parent path names, created if missing.
    fn parent_dir(&mut self, dir: &str, layer: usize) -> Id {
        if dir.is_empty() {
            return ROOT;
        }
        if let Some((raw, id, generation)) = &self.cache
            && raw == dir
            && *generation == self.generation
        {
            return *id;
        }
        // A loop: the member lands where the raw path says, symlinks not followed.
        let id = self
            .lookup(dir, true, true, layer)
            .unwrap_or_else(|| self.lookup_raw(dir, layer));
        let generation = self.generation;
        match &mut self.cache {
            Some((raw, cid, g)) => {
                raw.clear();
                raw.push_str(dir);
                *cid = id;
                *g = generation;
            }
            None => self.cache = Some((dir.to_owned(), id, generation)),
        }
        id
    }

    /// Creates `dir` component by component without following anything.
    fn lookup_raw(&mut self, dir: &str, layer: usize) -> Id {
        let mut cur = ROOT;
        for c in dir.split('/').filter(|c| !c.is_empty()) {
            cur = match self.child(cur, c) {
                Some(n) => n,
                None => self.insert(cur, c, implicit_dir(layer), IMPLICIT),
            };
        }
        cur
    }

    /// The node a member path names (parents through symlinks, the last
    /// component not followed), if it exists; nothing is created.
    fn member_node(&mut self, path: &str) -> Option<Id> {
        let (dir, base) = split(path);
        let parent = if dir.is_empty() {
            ROOT
        } else {
            self.lookup(dir, true, false, 0)?
        };
        if base.is_empty() {
            return Some(parent);
        }
        self.child(parent, base)
    }

    /// Applies one layer on top of what is there.
    pub fn apply(&mut self, layer: usize, index: LayerIndex) {
        let LayerIndex {
            paths,
            recs,
            mut extras,
            whiteouts,
            opaques,
            ..
        } = index;
        self.slots.reserve(recs.len());
        self.names.reserve(paths.len() / 2);
        let (table, slots, names, seed) = self.table_parts();
        table.reserve(recs.len(), rehasher(seed, slots, names));
        for dir in &opaques {
            let id = if dir.is_empty() {
                Some(ROOT)
            } else {
                self.lookup(dir, true, false, layer)
            };
            if let Some(id) = id {
                self.clear_children(id);
            }
        }
        for w in &whiteouts {
            if let Some(id) = self.member_node(w)
                && id != ROOT
            {
                self.remove(id);
            }
        }
        for r in &recs {
            let path = &paths[r.start as usize..(r.start + r.len) as usize];
            let extra = (r.extra != NO_EXTRA)
                .then(|| extras.get_mut(r.extra as usize).map(std::mem::take))
                .flatten();
            self.add(layer, path, r, extra);
        }
    }

    fn add(&mut self, layer: usize, path: &str, r: &Rec, extra: Option<Extra>) {
        let mut node = node_of(r, extra, layer);
        if path.is_empty() {
            // `./` itself: the root keeps being a directory.
            if node.kind == Kind::Dir {
                let root = &mut self.slots[ROOT as usize];
                root.node = node;
                root.flags &= !IMPLICIT;
            }
            return;
        }
        let (dir, base) = split(path);
        if node.kind == Kind::Hardlink {
            self.link_inode(layer, path, &mut node);
        }
        let parent = self.parent_dir(dir, layer);
        // One probe finds the old node or the place for the new one: most
        // members add a path no layer had.
        let h = self.hash(parent, base);
        let (table, slots, names, seed) = self.table_parts();
        let entry = table.entry(
            h,
            |&id| {
                let s = &slots[id as usize];
                s.parent == parent && s.name(names) == base
            },
            rehasher(seed, slots, names),
        );
        let old = match entry {
            hashbrown::hash_table::Entry::Vacant(v) => {
                let id = slots.len() as Id;
                v.insert(id);
                if node.kind == Kind::Symlink {
                    self.generation += 1;
                }
                self.link_slot(parent, base, node, 0);
                return;
            }
            hashbrown::hash_table::Entry::Occupied(o) => *o.get(),
        };
        {
            let slot = &mut self.slots[old as usize];
            if slot.node.kind == Kind::Dir && node.kind == Kind::Dir {
                slot.node = node;
                slot.flags &= !IMPLICIT;
                return;
            }
        }
        self.remove(old);
        if node.kind == Kind::Symlink {
            self.generation += 1;
        }
        self.insert(parent, base, node, 0);
    }

    /// A hard link shares its target's inode: metadata flows both ways.
    fn link_inode(&mut self, layer: usize, path: &str, node: &mut Node) {
        let raw_target = node.link().unwrap_or("").to_owned();
        let Some(t) = self.member_node(&raw_target) else {
            self.warnings.push(format!(
                "hard link /{path} points to /{raw_target}, which does not exist; judged by its own header"
            ));
            return;
        };
        let target = self.path_of(t);
        let tn = &mut self.slots[t as usize].node;
        if tn.is_regular() {
            let caps = node.caps().map(Box::<[u8]>::from);
            if (tn.mode, tn.uid, tn.gid) != (node.mode, node.uid, node.gid)
                || (caps.is_some() && caps.as_deref() != tn.caps())
            {
                tn.mode = node.mode;
                tn.uid = node.uid;
                tn.gid = node.gid;
                if let Some(c) = &caps {
                    tn.extra_mut().caps = Some(c.clone());
                }
                tn.layer = layer;
            }
            node.size = tn.size;
            let (tcaps, tcontent) = (
                tn.caps().map(Box::<[u8]>::from),
                tn.content().cloned().map(Box::new),
            );
            let x = node.extra_mut();
            if x.caps.is_none() {
                x.caps = tcaps;
            }
            if x.content.is_none() {
                x.content = tcontent;
            }
        } else {
            let kind = tn.kind.as_str();
            self.warnings.push(format!(
                "hard link /{path} points to /{target}, which is a {kind}, not a file"
            ));
        }
        node.extra_mut().link = Some(target.into());
    }

    /// The node at exactly `path` (no symlink resolution).
    pub fn get(&self, path: &str) -> Option<&Node> {
        let id = self.exact(path)?;
        let s = &self.slots[id as usize];
        (s.flags & IMPLICIT == 0).then_some(&s.node)
    }

    fn exact(&self, path: &str) -> Option<Id> {
        let mut cur = ROOT;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            cur = self.child(cur, c)?;
        }
        Some(cur)
    }

    /// Nodes for which `pred(name, node)` holds, with their paths (relative,
    /// no leading `/`), sorted by path. Created parents are never offered.
    pub fn select(&self, mut pred: impl FnMut(&str, &Node) -> bool) -> Vec<(String, &Node)> {
        let mut ids = Vec::new();
        self.walk(|id, s| {
            if s.flags & IMPLICIT == 0 && pred(self.name(id), &s.node) {
                ids.push(id);
            }
        });
        let mut out: Vec<(String, &Node)> = ids
            .into_iter()
            .map(|id| (self.path_of(id), &self.slots[id as usize].node))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// All paths (relative, no leading `/`) in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (String, &Node)> {
        self.select(|_, _| true).into_iter()
    }

    /// Direct children of directory `dir` (already canonical), sorted by name.
    pub fn children<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        let mut out = Vec::new();
        if let Some(d) = self.exact(dir) {
            let mut c = self.slots[d as usize].first_child;
            while c != NIL {
                let s = &self.slots[c as usize];
                if s.flags & IMPLICIT == 0 {
                    out.push((self.name(c), &s.node));
                }
                c = s.next;
            }
        }
        out.sort_by(|a, b| a.0.cmp(b.0));
        out.into_iter()
    }

    /// Resolves every component of `path` through symlinks; the last one too
    /// when `follow_last`. Components that do not exist are kept as written.
    /// `None` on a symlink loop.
    pub fn canonical(&self, path: &str, follow_last: bool) -> Option<String> {
        // `out` is the resolved path so far; `at` its node while it exists.
        let mut out: Vec<String> = Vec::new();
        let mut at: Option<Id> = Some(ROOT);
        let mut queue: std::collections::VecDeque<String> =
            path.split('/').map(str::to_owned).collect();
        let mut hops = 0;
        let node_at = |fs: &Self, out: &[String]| -> Option<Id> {
            let mut cur = ROOT;
            for c in out {
                cur = fs.child(cur, c)?;
            }
            Some(cur)
        };
        while let Some(c) = queue.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    out.pop();
                    at = node_at(self, &out);
                    continue;
                }
                _ => {}
            }
            let next = at.and_then(|a| self.child(a, &c));
            out.push(c);
            at = next;
            if queue.iter().all(|c| c.is_empty() || c == ".") && !follow_last {
                break;
            }
            if let Some(id) = at
                && self.slots[id as usize].node.kind == Kind::Symlink
            {
                hops += 1;
                if hops > MAX_HOPS {
                    return None;
                }
                out.pop();
                let target = self.slots[id as usize].node.link().unwrap_or("");
                if target.starts_with('/') {
                    out.clear();
                }
                for (i, t) in target.split('/').enumerate() {
                    queue.insert(i, t.to_owned());
                }
                at = node_at(self, &out);
            }
        }
        Some(out.join("/"))
    }

    /// Follows symlinks (all components) to the node a path names.
    pub fn resolve(&self, path: &str) -> Option<(String, &Node)> {
        let p = self.canonical(path, true)?;
        let node = self.get(&p)?;
        Some((p, node))
    }

    /// The captured contents of the file `path` names (symlinks followed).
    pub fn read(&self, path: &str) -> Option<&Content> {
        let (_, node) = self.resolve(path)?;
        node.content()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::checks::packages::test_support::entry;
    use crate::layer::Entry;

    fn link(path: &str, kind: Kind, target: &str) -> Entry {
        Entry {
            link: Some(target.into()),
            ..entry(path, kind, 0o777)
        }
    }

    fn layer(entries: Vec<Entry>, whiteouts: &[&str], opaques: &[&str]) -> LayerIndex {
        LayerIndex {
            whiteouts: whiteouts.iter().map(|s| Box::from(*s)).collect(),
            opaques: opaques.iter().map(|s| Box::from(*s)).collect(),
            ..LayerIndex::from_entries(entries)
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
        assert_eq!(b.caps(), a.caps());
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
