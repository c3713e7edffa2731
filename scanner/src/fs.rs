//! The final filesystem: layers applied in order, without touching disk.
//!
//! Semantics follow the OCI image spec (`layer.md`, "Whiteouts") and what
//! container runtimes do when they extract a layer (containerd
//! `archive/tar.go` `applyNaive` and `createTarFile`, moby
//! `pkg/archive/diff.go` `UnpackLayer` and `archive.go` `createTarFile`,
//! containers/storage `pkg/archive`, umoci `oci/layer/tar_extract.go`):
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
//!    Whiteouts and opaque markers resolve their directory the same way.
//! 4. A hard link shares the inode of its (root-relative) target: the link
//!    header's mode and owner apply to the inode, that is to every name of
//!    it (the original and every earlier link), and the link carries the
//!    inode's capabilities unless it has its own.
//!
//! Every node remembers the layer that last set its metadata: that is the
//! layer a finding is attributed to.
//!
//! # Runtime fidelity
//!
//! Where the appliers fail, the layer is refused; where they disagree, the
//! worst case is modelled or the layer refused (messages starting
//! "ambiguous image: "):
//!
//! - A member, whiteout or opaque marker whose parent is not a directory
//!   (a file, or a symlink to one): containerd's `mkparent` and moby fail
//!   with `ENOTDIR`, umoci's `mkdirAll` replaces the file by a directory.
//!   Refused.
//! - A parent path through a symlink loop or more than 255 symlinks
//!   (continuity `fs.RootPath` and filepath-securejoin give up there; the
//!   kernel, for moby's chrooted extraction, at 40): refused. Between 40 and
//!   255 hops the path is resolved (containerd's reading, the worst case).
//! - A hard link to a missing path (`link(2)` fails with `ENOENT`) or to a
//!   directory (`EPERM`): refused. A hard link to a symlink links the
//!   symlink itself (Go's `os.Link` is `linkat(2)` without
//!   `AT_SYMLINK_FOLLOW`): the new name is the same symlink.
//! - A hard link's header: containerd and containers/storage apply its
//!   owner (`Lchown`), xattrs (`Lsetxattr`) and mode (`lchmod`) to the
//!   inode; moby's `handleLChmod` chmods unless the target is a symlink (moby
//!   28 and earlier: unless `os.Lstat(hdr.Linkname)`, relative to the
//!   working directory, fails); umoci applies nothing to a link. So the
//!   header's mode and owner are applied to every name of the inode (a
//!   setuid bit only a link header sets is reported, as containerd leaves
//!   it); the inode keeps its capabilities unless the header has its own
//!   (the `chown` of the other runtimes drops them, umoci keeps them). When
//!   the inode already had a setuid, setgid or world-writable bit, or
//!   capabilities, and the header clears one of those bits, changes the
//!   owner or changes the capabilities, umoci's reading and containerd's
//!   differ in ways neither covers: refused.
//! - An opaque marker in a directory that is itself a symlink
//!   (`lib -> usr/lib`, `lib/.wh..wh..opq`): containerd, moby's
//!   `go-archive` and umoci clear the symlink's target, moby 28 and
//!   earlier (`filepath.WalkDir` of the link) clears nothing: refused.
//! - Regular whiteouts follow the parent's symlinks in every runtime and
//!   remove the last component itself (`os.RemoveAll`), a symlink included.
//!   containerd also lets a whiteout remove an entry of its own layer that
//!   comes before it, which umoci and the OCI spec do not; the entry is kept
//!   (the worst case).
//!
//! # Availability and memory
//!
//! Resolving a path costs time linear in its bytes and in the bytes of the
//! symlink targets it passes (no component list is rescanned or rebuilt),
//! with at most 255 hops; all resolution while applying an image is bounded
//! in total steps, in proportion to the members applied, so crafted chains
//! of symlinks end in an error rather than hours of work. Every node, name
//! and table slot (the implicit parent directories of long paths too) is
//! charged to the image's [`MemoryBudget`] before the buffers grow, as
//! their capacity in bytes, and every link target, capability set and
//! captured file as its size; hard links share their inode's captured
//! contents instead of copying them.
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

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::budget::{Charge, MemoryBudget};
use crate::layer::{Content, Extra, LayerError, LayerIndex, NO_EXTRA, Rec};
use crate::tarstream::Kind;

/// Most symlinks followed while resolving one path at run time (Linux's
/// limit), in [`FinalFs::canonical`].
const MAX_HOPS: usize = 40;

/// Most symlinks followed while resolving a member's parent directory, as
/// extraction does (continuity `fs.RootPath`, filepath-securejoin).
const MAX_EXTRACT_HOPS: usize = 255;

/// Resolution steps (path components, hard link names) allowed for
/// applying an image, before the per-member allowance.
const BASE_WORK: u64 = 1 << 21;

/// Resolution steps allowed per member and per byte of member names.
const WORK_PER_ITEM: u64 = 16;

/// Mode bits whose loss or gain a finding depends on.
const PRIVILEGED_BITS: u32 = 0o6002;

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

    /// SHA-256 of the content, lowercase hex, for the files that give
    /// privilege (set-id bits or file capabilities in their layer); `None`
    /// for others, and for a hard link made set-id by its own header.
    pub fn content_sha256(&self) -> Option<String> {
        self.extra
            .as_ref()?
            .digest
            .map(|d| crate::digest::to_hex(&d))
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
    /// The hard link group (index into `FinalFs::groups`) of this inode, or
    /// [`NIL`].
    group: Id,
    flags: u8,
}

impl Slot {
    /// This node's name, in the filesystem's name buffer.
    fn name<'a>(&self, names: &'a str) -> &'a str {
        &names[self.name_start as usize..(self.name_start + self.name_len) as usize]
    }
}

/// Why resolving a path stopped short.
enum Stop {
    /// A component is missing (only without `create`).
    Missing,
    /// A component that has more below it is not a directory.
    NotDir(Id),
    /// A symlink loop, or too many symlinks.
    Loop,
    /// A limit (memory, work) was reached.
    Limit(LayerError),
}

impl From<LayerError> for Stop {
    fn from(e: LayerError) -> Self {
        Self::Limit(e)
    }
}

impl From<crate::budget::BudgetExceeded> for Stop {
    fn from(e: crate::budget::BudgetExceeded) -> Self {
        Self::Limit(e.into())
    }
}

/// One string being walked component by component: the path, or a symlink
/// target spliced in front of what is left of it.
struct Frame<'a> {
    text: Cow<'a, str>,
    pos: usize,
    /// End of the last component that is not `""` or `.`: past it, only
    /// trivial components are left.
    real_end: usize,
    /// Whether every frame below this one has only trivial components left.
    rest_trivial: bool,
    /// The symlink whose target this is (or [`NIL`]), and the hops taken
    /// when it was spliced in: when the frame ends, the walk is where the
    /// symlink leads.
    tag: Id,
    hops_at: usize,
}

impl<'a> Frame<'a> {
    fn new(text: Cow<'a, str>, rest_trivial: bool, tag: Id, hops_at: usize) -> Self {
        let (mut off, mut real_end) = (0, 0);
        for c in text.split('/') {
            let end = off + c.len();
            if !(c.is_empty() || c == ".") {
                real_end = end;
            }
            off = end + 1;
        }
        Self {
            text,
            pos: 0,
            real_end,
            rest_trivial,
            tag,
            hops_at,
        }
    }

    /// Whether only trivial components are left, here and below.
    fn trivial(&self) -> bool {
        self.pos >= self.real_end && self.rest_trivial
    }
}

/// The components of a path with symlink targets spliced in, in linear time.
struct Walker<'a> {
    frames: Vec<Frame<'a>>,
}

impl<'a> Walker<'a> {
    fn new(path: &'a str) -> Self {
        Self {
            frames: vec![Frame::new(Cow::Borrowed(path), true, NIL, 0)],
        }
    }

    /// The next non-trivial component (`..` included), as a byte range of
    /// the top frame, and whether it is the last one; or the end of a tagged
    /// symlink's target.
    fn next(&mut self) -> Option<Step> {
        loop {
            let f = self.frames.last_mut()?;
            if f.pos > f.text.len() {
                let (tag, hops_at) = (f.tag, f.hops_at);
                self.frames.pop();
                if tag != NIL {
                    return Some(Step::Resolved(tag, hops_at));
                }
                continue;
            }
            let rest = &f.text[f.pos..];
            let len = rest.find('/').unwrap_or(rest.len());
            let (a, b) = (f.pos, f.pos + len);
            f.pos = b + 1;
            let c = &f.text[a..b];
            if c.is_empty() || c == "." {
                continue;
            }
            return Some(Step::Component(a, b, f.trivial()));
        }
    }

    fn component(&self, (a, b): (usize, usize)) -> &str {
        self.frames.last().map_or("", |f| &f.text[a..b])
    }

    /// Splices `target` (of symlink `tag`, or [`NIL`]) in front of what is
    /// left.
    fn push(&mut self, target: Cow<'a, str>, tag: Id, hops: usize) {
        let rest_trivial = self.frames.last().is_none_or(Frame::trivial);
        self.frames
            .push(Frame::new(target, rest_trivial, tag, hops));
    }
}

/// What [`Walker::next`] found.
enum Step {
    /// A component (a byte range of the top frame) and whether it is the
    /// last one.
    Component(usize, usize, bool),
    /// The target of this symlink, spliced in after that many hops, is
    /// walked.
    Resolved(Id, usize),
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
    /// or directory removed or replaced; a new name breaks none).
    generation: u64,
    /// Hard link groups: the names of one inode (some may be dead).
    groups: Vec<Vec<Id>>,
    /// What the nodes charged to the image's memory budget.
    charge: Charge,
    /// Resolution steps taken, and allowed so far.
    work: u64,
    work_limit: u64,
    /// Where a symlink followed while extracting leads, the hops that took,
    /// and the generation that is valid for.
    memo: hashbrown::HashMap<Id, (Id, usize, u64), foldhash::fast::RandomState>,
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

/// Bytes a table of `cap` entries holds (buckets of an id and a control byte).
fn table_bytes(cap: usize) -> u64 {
    let buckets = if cap < 8 {
        cap.next_power_of_two().max(4)
    } else {
        (cap * 8 / 7).next_power_of_two()
    };
    (buckets * (std::mem::size_of::<Id>() + 1)) as u64
}

impl FinalFs {
    /// An empty filesystem (just the root directory), charging a budget of
    /// its own (the default size).
    pub fn new() -> Self {
        Self::with_budget(Arc::default())
    }

    /// The memory budget this filesystem charges, if any.
    pub fn budget(&self) -> Option<&Arc<MemoryBudget>> {
        self.charge.budget()
    }

    /// An empty filesystem charging the image's memory budget.
    pub fn with_budget(budget: Arc<MemoryBudget>) -> Self {
        let mut fs = Self {
            slots: Vec::new(),
            names: String::new(),
            table: HashTable::new(),
            seed: foldhash::fast::RandomState::default(),
            warnings: Vec::new(),
            cache: None,
            generation: 0,
            groups: Vec::new(),
            charge: Charge::new(budget),
            work: 0,
            work_limit: BASE_WORK,
            memo: hashbrown::HashMap::default(),
        };
        fs.slots.push(Slot {
            node: implicit_dir(0),
            parent: ROOT,
            first_child: NIL,
            prev: NIL,
            next: NIL,
            name_start: 0,
            name_len: 0,
            group: NIL,
            flags: IMPLICIT,
        });
        fs
    }

    /// Notes found while applying layers.
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
        while id != ROOT && id != NIL {
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

    /// Makes room for `nodes` more nodes with `name_bytes` more name bytes,
    /// charging the budget for whatever has to grow before it grows. One
    /// comparison each when there is room.
    #[inline]
    fn reserve(&mut self, nodes: usize, name_bytes: usize) -> Result<(), LayerError> {
        if self.slots.capacity() - self.slots.len() < nodes {
            let cap = self.slots.capacity();
            let new_cap = (cap * 2).max(self.slots.len() + nodes);
            self.charge.add(
                ((new_cap - cap) * std::mem::size_of::<Slot>()) as u64,
                "the final filesystem's nodes",
            )?;
            self.slots.reserve_exact(new_cap - self.slots.len());
        }
        if self.names.capacity() - self.names.len() < name_bytes {
            let cap = self.names.capacity();
            let new_cap = (cap * 2).max(self.names.len() + name_bytes).max(4096);
            self.charge
                .add((new_cap - cap) as u64, "the final filesystem's names")?;
            self.names.reserve_exact(new_cap - self.names.len());
        }
        if self.table.capacity() - self.table.len() < nodes {
            let cap = self.table.capacity();
            let want = (cap * 2).max(self.table.len() + nodes);
            self.charge.add(
                table_bytes(want).saturating_sub(table_bytes(cap)),
                "the final filesystem's table",
            )?;
            let (table, slots, names, seed) = self.table_parts();
            table.reserve(want - table.len(), rehasher(seed, slots, names));
        }
        Ok(())
    }

    fn insert(&mut self, parent: Id, name: &str, node: Node, flags: u8) -> Result<Id, LayerError> {
        self.reserve(1, name.len())?;
        let id = self.link_slot(parent, name, node, flags);
        let h = self.hash(parent, name);
        let (table, slots, names, seed) = self.table_parts();
        table.insert_unique(h, id, rehasher(seed, slots, names));
        Ok(id)
    }

    /// A new node under `parent`, linked as its first child but not yet in
    /// the table. Room was made by [`FinalFs::reserve`].
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
            group: NIL,
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

    /// Counts `n` resolution steps against the image's allowance.
    #[inline]
    fn step(&mut self, n: u64) -> Result<(), LayerError> {
        self.work += n;
        if self.work > self.work_limit {
            return Err(LayerError(format!(
                "resolving paths through symlinks and hard links takes more than {} steps \
                 for this image (symlink chains built to be slow)",
                self.work_limit
            )));
        }
        Ok(())
    }

    /// Resolves `path` from the root through symlinks, as extraction does:
    /// every component, and the last one too when `follow_last`. With
    /// `create`, missing components are made (as structure, [`IMPLICIT`]).
    /// Linear in the bytes of the path and of the targets followed.
    fn lookup(
        &mut self,
        path: &str,
        follow_last: bool,
        create: bool,
        layer: usize,
    ) -> Result<Id, Stop> {
        let mut w = Walker::new(path);
        let mut cur = ROOT;
        let mut hops = 0;
        while let Some(step) = w.next() {
            self.step(1)?;
            let (a, b, last) = match step {
                Step::Component(a, b, last) => (a, b, last),
                Step::Resolved(link, hops_at) => {
                    if self.memo.len() == self.memo.capacity() {
                        self.charge.add(
                            (self.memo.capacity().max(16) * 32) as u64,
                            "symlink resolutions",
                        )?;
                    }
                    self.memo
                        .insert(link, (cur, hops - hops_at, self.generation));
                    continue;
                }
            };
            let c = w.component((a, b));
            if c == ".." {
                if cur != ROOT {
                    cur = self.slots[cur as usize].parent;
                }
                continue;
            }
            let kind = self.slots[cur as usize].node.kind;
            if kind != Kind::Dir {
                return Err(Stop::NotDir(cur));
            }
            let next = match self.child(cur, c) {
                Some(n) => n,
                None if create => self.insert(cur, c, implicit_dir(layer), IMPLICIT)?,
                None => return Err(Stop::Missing),
            };
            let node = &self.slots[next as usize].node;
            if node.kind == Kind::Symlink && (!last || follow_last) {
                // Followed before, and nothing removed since: where it led.
                if let Some(&(to, n, g)) = self.memo.get(&next)
                    && g == self.generation
                {
                    hops += n;
                    if hops > MAX_EXTRACT_HOPS {
                        return Err(Stop::Loop);
                    }
                    cur = to;
                    continue;
                }
                hops += 1;
                if hops > MAX_EXTRACT_HOPS {
                    return Err(Stop::Loop);
                }
                let target = node.link().unwrap_or("").to_owned();
                self.step(target.len() as u64 / 2)?;
                if target.starts_with('/') {
                    cur = ROOT;
                }
                w.push(Cow::Owned(target), next, hops - 1);
                continue;
            }
            cur = next;
        }
        Ok(cur)
    }

    /// The error for a member whose parent could not be resolved.
    fn refusal(&self, what: &str, path: &str, stop: Stop) -> LayerError {
        match stop {
            Stop::Limit(e) => e,
            Stop::Loop => LayerError(format!(
                "{what} /{path}: its parent directory is behind a symlink loop or more than \
                 {MAX_EXTRACT_HOPS} symlinks: container runtimes fail to extract it (ELOOP)"
            )),
            Stop::NotDir(id) => {
                let kind = self.slots[id as usize].node.kind.as_str();
                let how = match what {
                    "member" => format!(
                        "containerd and moby fail to extract it (ENOTDIR), umoci replaces the \
                         {kind} by a directory"
                    ),
                    "whiteout of" | "opaque directory" => "containerd fails to extract it \
                         (ENOTDIR), umoci skips it"
                        .to_owned(),
                    _ => "container runtimes fail to extract it (ENOTDIR)".to_owned(),
                };
                LayerError(format!(
                    "ambiguous image: {what} /{path}: its parent /{} is a {kind}, not a \
                     directory: {how}",
                    self.path_of(id),
                ))
            }
            Stop::Missing => LayerError(format!("{what} /{path}: its parent is missing")),
        }
    }

    /// The directory a member's parent path names, created if missing.
    fn parent_dir(&mut self, path: &str, dir: &str, layer: usize) -> Result<Id, LayerError> {
        if dir.is_empty() {
            return Ok(ROOT);
        }
        if let Some((raw, id, generation)) = &self.cache
            && raw == dir
            && *generation == self.generation
        {
            return Ok(*id);
        }
        let id = match self.lookup(dir, true, true, layer) {
            Ok(id) if self.slots[id as usize].node.kind == Kind::Dir => id,
            Ok(id) => return Err(self.refusal("member", path, Stop::NotDir(id))),
            Err(stop) => return Err(self.refusal("member", path, stop)),
        };
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
        Ok(id)
    }

    /// The node a path names (parents through symlinks, the last component
    /// not followed), if it exists; nothing is created. `what` names the
    /// path in errors (a whiteout, a hard link target).
    fn member_node(&mut self, what: &str, path: &str) -> Result<Option<Id>, LayerError> {
        let (dir, base) = split(path);
        let parent = if dir.is_empty() {
            ROOT
        } else {
            match self.lookup(dir, true, false, 0) {
                Ok(id) => id,
                Err(Stop::Missing) => return Ok(None),
                Err(stop) => return Err(self.refusal(what, path, stop)),
            }
        };
        if self.slots[parent as usize].node.kind != Kind::Dir {
            return Err(self.refusal(what, path, Stop::NotDir(parent)));
        }
        if base.is_empty() {
            return Ok(Some(parent));
        }
        Ok(self.child(parent, base))
    }

    /// Applies one layer on top of what is there. A layer container
    /// runtimes would fail to extract is recorded as a warning (and the rest
    /// of it not applied); scans use [`FinalFs::try_apply`].
    pub fn apply(&mut self, layer: usize, index: LayerIndex) {
        if let Err(e) = self.try_apply(layer, index) {
            self.warnings
                .push(format!("layer {layer} was not applied whole: {}", e.0));
        }
    }

    /// Applies one layer on top of what is there, or says why container
    /// runtimes would not extract it (or would disagree about it), or that
    /// the memory budget is exhausted.
    pub fn try_apply(&mut self, layer: usize, index: LayerIndex) -> Result<(), LayerError> {
        // The index's charge is given back when it goes, at the end.
        let LayerIndex {
            paths,
            recs,
            mut extras,
            whiteouts,
            opaques,
            charge: _index_charge,
            ..
        } = index;
        self.work_limit = self
            .work_limit
            .saturating_add(WORK_PER_ITEM * (recs.len() + paths.len()) as u64);
        self.reserve(recs.len(), paths.len())?;
        // Where each marker's directory resolves when the markers are
        // applied (before the layer's entries): checked again below.
        let mut resolved: Vec<(&str, Option<String>)> = Vec::new();
        for dir in &opaques {
            resolved.push((dir, self.canonical(dir, true)));
            self.opaque(dir)?;
        }
        for w in &whiteouts {
            let (dir, _) = split(w);
            if !dir.is_empty() {
                resolved.push((dir, self.canonical(dir, true)));
            }
            if let Some(id) = self.member_node("whiteout of", w)?
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
            self.add(layer, path, r, extra)?;
        }
        // Runtimes apply whiteouts and opaque markers where they come in the
        // archive (containers/storage `UnpackLayer`, umoci `UnpackEntry`),
        // resolving their directory as the layer has left it so far. imgscan
        // applies them before the layer's entries; the two agree unless the
        // layer itself changes where a marker's directory resolves (a symlink
        // replaced by a directory, a directory by a symlink): then refused.
        self.step(resolved.len() as u64)?;
        for (dir, before) in &resolved {
            let after = self.canonical(dir, true);
            if after != *before {
                return Err(LayerError(format!(
                    "ambiguous image: this layer has whiteouts or an opaque marker in /{dir} and \
                     also changes where /{dir} resolves ({} before its entries, {} after): \
                     container runtimes apply each marker where it comes in the archive",
                    before
                        .as_deref()
                        .map_or("nothing".to_owned(), |p| format!("/{p}")),
                    after
                        .as_deref()
                        .map_or("nothing".to_owned(), |p| format!("/{p}")),
                )));
            }
        }
        self.charge.flush("the final filesystem")?;
        Ok(())
    }

    /// An opaque marker in `dir`: the directory's lower-layer children go.
    fn opaque(&mut self, dir: &str) -> Result<(), LayerError> {
        let id = if dir.is_empty() {
            Some(ROOT)
        } else {
            self.member_node("opaque directory", dir)?
        };
        let Some(id) = id else { return Ok(()) };
        match self.slots[id as usize].node.kind {
            Kind::Dir => {
                self.clear_children(id);
                Ok(())
            }
            Kind::Symlink => Err(LayerError(format!(
                "ambiguous image: the opaque marker /{dir}/.wh..wh..opq is in a symlink \
                 (-> {}): containerd, moby's go-archive and umoci clear the symlink's target, \
                 moby 28 and earlier clears nothing",
                self.slots[id as usize].node.link().unwrap_or("")
            ))),
            k => Err(LayerError(format!(
                "ambiguous image: the opaque marker /{dir}/.wh..wh..opq is in a {}, not a \
                 directory: containerd fails to extract it (ENOTDIR)",
                k.as_str()
            ))),
        }
    }

    fn add(
        &mut self,
        layer: usize,
        path: &str,
        r: &Rec,
        extra: Option<Extra>,
    ) -> Result<(), LayerError> {
        if let Some(x) = &extra {
            self.charge
                .add(x.cost(), "symlink targets and captured files")?;
        }
        let mut node = node_of(r, extra, layer);
        if path.is_empty() {
            // `./` itself: the root keeps being a directory.
            if node.kind == Kind::Dir {
                let root = &mut self.slots[ROOT as usize];
                root.node = node;
                root.flags &= !IMPLICIT;
            }
            return Ok(());
        }
        let (dir, base) = split(path);
        let parent = self.parent_dir(path, dir, layer)?;
        self.reserve(1, base.len())?;
        if node.kind == Kind::Hardlink {
            // The old path goes first (`os.RemoveAll`), then the link is
            // made: a link to itself or into what it replaces finds nothing.
            if let Some(old) = self.child(parent, base) {
                self.remove(old);
            }
            let group = self.link_inode(layer, path, &mut node)?;
            let id = self.insert(parent, base, node, 0)?;
            if let Some(g) = group {
                self.slots[id as usize].group = g;
                self.groups[g as usize].push(id);
                self.charge.add(8, "hard links")?;
            }
            return Ok(());
        }
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
                // A new name changes no resolution made so far (each went
                // through names that existed): nothing cached goes stale.
                v.insert(id);
                self.link_slot(parent, base, node, 0);
                return Ok(());
            }
            hashbrown::hash_table::Entry::Occupied(o) => *o.get(),
        };
        {
            let slot = &mut self.slots[old as usize];
            if slot.node.kind == Kind::Dir && node.kind == Kind::Dir {
                slot.node = node;
                slot.flags &= !IMPLICIT;
                return Ok(());
            }
        }
        self.remove(old);
        self.insert(parent, base, node, 0)?;
        Ok(())
    }

    /// A hard link shares its target's inode: the link header's mode and
    /// owner go to every name of it, and the new name takes the inode's
    /// size, capabilities and contents. Returns the inode's link group.
    fn link_inode(
        &mut self,
        layer: usize,
        path: &str,
        node: &mut Node,
    ) -> Result<Option<Id>, LayerError> {
        let raw_target = node.link().unwrap_or("").to_owned();
        let what = format!("hard link /{path} to");
        let Some(t) = self.member_node(&what, &raw_target)? else {
            return Err(LayerError(format!(
                "hard link /{path} points to /{raw_target}, which does not exist: container \
                 runtimes fail to extract it (ENOENT)"
            )));
        };
        let target = self.path_of(t);
        let tkind = self.slots[t as usize].node.kind;
        match tkind {
            Kind::Dir => {
                return Err(LayerError(format!(
                    "hard link /{path} points to /{target}, a directory: container runtimes \
                     fail to extract it (link(2) gives EPERM)"
                )));
            }
            Kind::Symlink => {
                // `linkat(2)` without AT_SYMLINK_FOLLOW: the same symlink.
                let tn = &self.slots[t as usize].node;
                node.kind = Kind::Symlink;
                node.size = tn.size;
                node.extra_mut().link = tn.link().map(Box::from);
                node.mode = tn.mode;
                return Ok(None);
            }
            _ => {}
        }
        let tn = &self.slots[t as usize].node;
        let (old_mode, old_uid, old_gid) = (tn.mode, tn.uid, tn.gid);
        let old_caps = tn.caps().map(Box::<[u8]>::from);
        let new_caps = node.caps().map(Box::<[u8]>::from);
        let changes_owner_or_mode = (old_mode, old_uid, old_gid) != (node.mode, node.uid, node.gid);
        let changes_caps = new_caps.is_some() && new_caps != old_caps;
        // umoci leaves the file as it was, the others apply the header: when
        // the file was privileged and the header takes some of that away,
        // neither reading is the worst case.
        let privileged_before = old_mode & PRIVILEGED_BITS != 0 || old_caps.is_some();
        let loses_bits = old_mode & PRIVILEGED_BITS & !node.mode != 0;
        let changes_owner = (old_uid, old_gid) != (node.uid, node.gid);
        if privileged_before && (loses_bits || changes_owner || changes_caps) {
            return Err(LayerError(format!(
                "ambiguous image: hard link /{path} to /{target} takes privilege from the file \
                 (mode {old_mode:o} owner {old_uid}:{old_gid} to {:o} {}:{}, or its \
                 capabilities): \
                 containerd, moby and containers/storage apply the link's header to the file \
                 (every name of it), umoci keeps the file as it was",
                node.mode, node.uid, node.gid
            )));
        }
        // The inode's link group, made on first use.
        let g = match self.slots[t as usize].group {
            NIL => {
                let g = self.groups.len() as Id;
                self.groups.push(vec![t]);
                self.charge.add(64, "hard links")?;
                self.slots[t as usize].group = g;
                g
            }
            g => g,
        };
        if changes_owner_or_mode || changes_caps {
            let mut names = std::mem::take(&mut self.groups[g as usize]);
            self.step(names.len() as u64)?;
            names.retain(|&id| self.slots[id as usize].flags & DEAD == 0);
            for &id in &names {
                let n = &mut self.slots[id as usize].node;
                n.mode = node.mode;
                n.uid = node.uid;
                n.gid = node.gid;
                if let Some(c) = &new_caps {
                    n.extra_mut().caps = Some(c.clone());
                }
                n.layer = layer;
            }
            self.groups[g as usize] = names;
        }
        let tn = &self.slots[t as usize].node;
        node.kind = if tn.is_regular() {
            Kind::Hardlink
        } else {
            tn.kind
        };
        node.size = tn.size;
        let (tcaps, tcontent, tdigest) = (
            tn.caps().map(Box::<[u8]>::from),
            tn.extra.as_ref().and_then(|x| x.content.clone()),
            tn.extra.as_ref().and_then(|x| x.digest),
        );
        let x = node.extra_mut();
        if x.caps.is_none() {
            x.caps = tcaps;
        }
        if x.digest.is_none() {
            x.digest = tdigest;
        }
        if x.content.is_none() {
            // Shared, not copied.
            x.content = tcontent;
        }
        x.link = Some(target.into());
        Ok(Some(g))
    }

    /// The node at exactly `path` (no symlink resolution).
    pub fn get(&self, path: &str) -> Option<&Node> {
        let id = self.exact(path)?;
        let s = &self.slots[id as usize];
        (s.flags & IMPLICIT == 0).then_some(&s.node)
    }

    /// The node at exactly `path` (no symlink resolution), including the
    /// directories no member named, which runtimes create as parents with
    /// mode `0755`, owned by root (moby `pkg/archive` and containerd
    /// `archive/tar.go` `mkparent` both use 0755; see `implicit_dir`).
    pub fn node_at(&self, path: &str) -> Option<&Node> {
        self.exact(path).map(|id| &self.slots[id as usize].node)
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

    /// Resolves every component of `path` through symlinks, as the kernel
    /// does at run time (at most 40 hops); the last one too when
    /// `follow_last`. Components that do not exist are kept as written.
    /// `None` on a symlink loop. Linear in the bytes of the path and of the
    /// targets followed.
    pub fn canonical(&self, path: &str, follow_last: bool) -> Option<String> {
        // `buf` is the resolved path so far; `stack` holds, per component in
        // it, where it starts in `buf` and its node while it exists.
        let mut buf = String::new();
        let mut stack: Vec<(usize, Option<Id>)> = Vec::new();
        let mut at: Option<Id> = Some(ROOT);
        let mut w = Walker::new(path);
        let mut hops = 0;
        while let Some(step) = w.next() {
            let Step::Component(a, b, last) = step else {
                continue;
            };
            let c = w.component((a, b));
            if c == ".." {
                if let Some((len, _)) = stack.pop() {
                    buf.truncate(len);
                }
                at = stack.last().map_or(Some(ROOT), |e| e.1);
                continue;
            }
            let next = at.and_then(|a| self.child(a, c));
            let before = buf.len();
            if !buf.is_empty() {
                buf.push('/');
            }
            buf.push_str(c);
            if last && !follow_last {
                break;
            }
            if let Some(id) = next
                && self.slots[id as usize].node.kind == Kind::Symlink
            {
                hops += 1;
                if hops > MAX_HOPS {
                    return None;
                }
                buf.truncate(before);
                let target = self.slots[id as usize].node.link().unwrap_or("");
                if target.starts_with('/') {
                    buf.clear();
                    stack.clear();
                }
                at = stack.last().map_or(Some(ROOT), |e| e.1);
                w.push(Cow::Borrowed(target), NIL, 0);
                continue;
            }
            stack.push((before, next));
            at = next;
        }
        Some(buf)
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

/// The nodes the checks look at, from one walk of the final filesystem:
/// set-id or other-writable files and directories, files with file
/// capabilities, files whose contents were captured. Everything else (most
/// of an image) is never offered, so a check filters a short list instead
/// of walking the tree itself.
pub struct Inventory<'a> {
    nodes: Vec<(String, &'a Node)>,
}

impl<'a> Inventory<'a> {
    /// One walk of `fs`.
    pub fn of(fs: &'a FinalFs) -> Self {
        Self {
            nodes: fs.select(|_, n| {
                (n.mode & 0o6002 != 0 && matches!(n.kind, Kind::File | Kind::Hardlink | Kind::Dir))
                    || n.caps().is_some()
                    || n.content().is_some()
            }),
        }
    }

    /// The nodes for which `pred(base name, node)` holds, sorted by path
    /// (relative, no leading `/`).
    pub fn select(&self, mut pred: impl FnMut(&str, &Node) -> bool) -> Vec<(String, &'a Node)> {
        self.nodes
            .iter()
            .filter(|(p, n)| pred(p.rsplit('/').next().unwrap_or(p), n))
            .map(|(p, n)| (p.clone(), *n))
            .collect()
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

    fn try_layer(fs: &mut FinalFs, i: usize, entries: Vec<Entry>) -> Result<(), String> {
        fs.try_apply(i, layer(entries, &[], &[])).map_err(|e| e.0)
    }

    /// A link header's mode and owner reach every name of the inode, earlier
    /// links included; the names share one copy of the captured contents.
    #[test]
    fn link_headers_change_every_name_and_share_contents() {
        let mut fs = FinalFs::new();
        let mut f = entry("etc/passwd", Kind::File, 0o644);
        f.content = Some(Box::new(Content {
            data: b"root:x:0:0::/:/bin/sh\n".to_vec(),
            truncated: false,
        }));
        let mut l1 = link("etc/passwd-", Kind::Hardlink, "etc/passwd");
        l1.mode = 0o644;
        try_layer(&mut fs, 0, vec![f, l1]).unwrap();
        let mut l2 = link("backup/passwd", Kind::Hardlink, "etc/passwd-");
        l2.mode = 0o4755;
        l2.uid = 0;
        try_layer(&mut fs, 1, vec![l2]).unwrap();
        for p in ["etc/passwd", "etc/passwd-", "backup/passwd"] {
            let n = fs.get(p).unwrap();
            assert_eq!((n.mode, n.layer), (0o4755, 1), "{p}");
        }
        let a = fs.get("etc/passwd").unwrap().extra.as_ref().unwrap();
        let b = fs.get("backup/passwd").unwrap().extra.as_ref().unwrap();
        assert!(Arc::ptr_eq(
            a.content.as_ref().unwrap(),
            b.content.as_ref().unwrap()
        ));
        // A replaced name is a new inode: later link headers leave it alone.
        try_layer(&mut fs, 2, vec![entry("etc/passwd", Kind::File, 0o600)]).unwrap();
        let mut l3 = link("x", Kind::Hardlink, "etc/passwd-");
        l3.mode = 0o4755;
        try_layer(&mut fs, 3, vec![l3]).unwrap();
        assert_eq!(fs.get("etc/passwd").unwrap().mode, 0o600);
    }

    /// Links runtimes cannot make are refused; a link to a symlink is that
    /// symlink; a header taking privilege from a file is ambiguous.
    #[test]
    fn impossible_and_ambiguous_links() {
        let mut fs = FinalFs::new();
        try_layer(
            &mut fs,
            0,
            vec![
                entry("d", Kind::Dir, 0o755),
                entry("su", Kind::File, 0o4755),
                link("sh", Kind::Symlink, "busybox"),
            ],
        )
        .unwrap();
        let e = try_layer(&mut fs, 1, vec![link("x", Kind::Hardlink, "d")]).unwrap_err();
        assert!(e.contains("a directory"), "{e}");
        let e = try_layer(&mut fs, 1, vec![link("x", Kind::Hardlink, "nope")]).unwrap_err();
        assert!(e.contains("ENOENT"), "{e}");
        let mut weaker = link("su2", Kind::Hardlink, "su");
        weaker.mode = 0o755;
        let e = try_layer(&mut fs, 1, vec![weaker]).unwrap_err();
        assert!(e.starts_with("ambiguous image: "), "{e}");
        try_layer(&mut fs, 1, vec![link("sh2", Kind::Hardlink, "sh")]).unwrap();
        let sh2 = fs.get("sh2").unwrap();
        assert_eq!((sh2.kind, sh2.link()), (Kind::Symlink, Some("busybox")));
        // A link to itself: the old name goes first, so there is nothing to
        // link to.
        let e = try_layer(&mut fs, 2, vec![link("su", Kind::Hardlink, "su")]).unwrap_err();
        assert!(e.contains("ENOENT"), "{e}");
    }

    /// Parents that are files, symlink loops and opaque markers in
    /// symlinks are refused; whiteouts and markers follow parent symlinks.
    #[test]
    fn refusals_and_symlinked_whiteouts() {
        let mut fs = FinalFs::new();
        try_layer(
            &mut fs,
            0,
            vec![
                entry("usr/lib/sub/x", Kind::File, 0o4755),
                entry("usr/lib/y", Kind::File, 0o4755),
                link("lib", Kind::Symlink, "usr/lib"),
                entry("f", Kind::File, 0o644),
                link("loop", Kind::Symlink, "loop"),
            ],
        )
        .unwrap();
        let e = try_layer(&mut fs, 1, vec![entry("f/x", Kind::File, 0o644)]).unwrap_err();
        assert!(e.contains("ENOTDIR"), "{e}");
        let e = try_layer(&mut fs, 1, vec![entry("loop/x", Kind::File, 0o644)]).unwrap_err();
        assert!(e.contains("ELOOP"), "{e}");
        let e = fs.try_apply(1, layer(vec![], &[], &["lib"])).unwrap_err().0;
        assert!(
            e.starts_with("ambiguous image: the opaque marker /lib/"),
            "{e}"
        );
        fs.try_apply(1, layer(vec![], &["lib/y"], &["lib/sub"]))
            .unwrap();
        assert!(fs.get("usr/lib/y").is_none());
        assert!(fs.get("usr/lib/sub/x").is_none());
    }

    /// Resolution is linear: a megabyte of `.` and `..` components in
    /// symlink targets (which the layer reader would refuse, over 4095
    /// bytes) resolves at once, and a replaced symlink is not remembered.
    #[test]
    fn huge_targets_resolve_in_linear_time() {
        let mut fs = FinalFs::new();
        let dots = format!("{}d", "./".repeat(500_000));
        let ups = format!("{}d/", "d/../".repeat(200_000));
        try_layer(
            &mut fs,
            0,
            vec![
                entry("d/e", Kind::Dir, 0o755),
                link("a", Kind::Symlink, &dots),
                link("b", Kind::Symlink, &ups),
                link("c", Kind::Symlink, &format!("a/e/{}", "./".repeat(500_000))),
            ],
        )
        .unwrap();
        let t = std::time::Instant::now();
        assert_eq!(fs.canonical("a/e", true).as_deref(), Some("d/e"));
        assert_eq!(fs.canonical("b/e", true).as_deref(), Some("d/e"));
        assert_eq!(fs.canonical("c", true).as_deref(), Some("d/e"));
        assert_eq!(fs.canonical("c", false).as_deref(), Some("c"));
        try_layer(
            &mut fs,
            1,
            vec![
                entry("c/f1", Kind::File, 0o644),
                entry("b/e/f2", Kind::File, 0o644),
                entry("c/f3", Kind::File, 0o644),
            ],
        )
        .unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert!(fs.get("d/e/f1").is_some() && fs.get("d/e/f3").is_some());
        assert!(fs.get("d/e/f2").is_some());
        // `a` now leads elsewhere: the remembered resolution is dropped.
        try_layer(
            &mut fs,
            2,
            vec![entry("z", Kind::Dir, 0o755), link("a", Kind::Symlink, "z")],
        )
        .unwrap();
        try_layer(&mut fs, 3, vec![entry("a/f4", Kind::File, 0o644)]).unwrap();
        assert!(fs.get("z/f4").is_some());
    }

    /// Nodes, names and the implicit directories of a long path are charged
    /// to the budget; going over is an error naming it.
    #[test]
    fn implicit_directories_are_charged() {
        let budget = Arc::new(MemoryBudget::new(1 << 20));
        let mut fs = FinalFs::with_budget(budget.clone());
        let deep = "a/".repeat(1000);
        try_layer(
            &mut fs,
            0,
            vec![entry(&format!("{deep}f"), Kind::File, 0o644)],
        )
        .unwrap();
        assert!(budget.used() >= 1000 * std::mem::size_of::<Slot>() as u64);
        let many: Vec<Entry> = (0..20)
            .map(|k| entry(&format!("x{k}/{deep}f"), Kind::File, 0o644))
            .collect();
        let e = try_layer(&mut fs, 1, many).unwrap_err();
        assert!(e.contains("memory budget of 1 MiB"), "{e}");
        drop(fs);
        assert_eq!(
            budget.used(),
            0,
            "a dropped filesystem gives its charge back"
        );
    }
}
