//! Scanning one layer blob: verify, decompress, parse, index.
//!
//! A layer is read exactly once, as a stream: the blob bytes go through a
//! hash (the descriptor digest), the decompressor chosen by sniffing the magic
//! bytes (never by trusting the media type), a second hash (the diff_id) and
//! the tar reader, on up to four threads (one per stage). What comes out is a
//! compact [`LayerIndex`]: one small record per member (no file contents,
//! every path in one shared buffer), the whiteouts and opaque markers, and the
//! contents of the few files checks read (`/etc/passwd`, package databases,
//! sudoers), each capped. Memory does not grow with file sizes.
//!
//! # Security
//!
//! Every allocation is bounded: extension headers by
//! [`crate::tarstream::MAX_EXTENSION`], members by
//! [`LayerOptions::max_entries`], the bytes of all member names by
//! [`LayerOptions::max_names`], captured files by
//! [`LayerOptions::max_capture`] each and [`LayerOptions::max_capture_total`]
//! for the whole image. Above those, everything an index keeps charges the
//! image-wide [`LayerOptions::budget`] (`--max-memory`): the member records
//! and the path buffer as they grow (their capacity, in bytes), and per item
//! the symlink and hard link targets, capabilities, captured contents,
//! whiteout and opaque paths (their bytes plus a fixed overhead). An index
//! gives its charge back when it is dropped, once applied to the final
//! filesystem, which charges its own nodes ([`crate::fs`]).
//!
//! # Runtime fidelity
//!
//! A member enters the index as container runtimes extract it (containerd
//! `archive/tar.go` `createTarFile`, moby `pkg/archive/archive.go`
//! `createTarFile`, umoci `oci/layer/tar_extract.go` `UnpackEntry`):
//!
//! - Owners are what `lchown(2)` leaves: Go's `os.Lchown` passes the tar
//!   uid and gid (an `int`) through the system call as a 32-bit `uid_t`, so
//!   they are truncated to 32 bits, and `0xFFFFFFFF` (`-1`) means "leave
//!   unchanged": the file keeps the extracting user's id, root for a rootful
//!   runtime. Such members are judged as root's.
//! - A member type the appliers do not handle (the `default:` branch of
//!   `createTarFile` in containerd and moby, "unhandled tar header type";
//!   umoci's "unknown typeflag") fails extraction: the layer is refused.
//!   PAX global headers (`g`) are ignored, as all of them do.
//! - A symlink whose target is empty or longer than `PATH_MAX - 1` (4095)
//!   bytes cannot be created (`symlink(2)` fails with `ENOENT` or
//!   `ENAMETOOLONG`): the layer is refused.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use crate::budget::Charge;
use crate::digest::{Algorithm, Hasher, Hashes, HashingReader};
use crate::tarstream::{Kind, Seekable, Streaming, TarReader, TarSource};
use sha2::{Digest as _, Sha256};

mod codec;
mod gunzip;
pub(crate) mod pipeline;

use pipeline::{CHUNK, read_up_to};
pub(crate) use pipeline::{ChunkSource, channel};

/// Compression of a blob, found from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip, possibly several members (eStargz).
    Gzip,
    /// zstd, possibly with skippable frames (zstd:chunked).
    Zstd,
}

impl Compression {
    /// Sniffs the magic bytes.
    pub fn sniff(prefix: &[u8]) -> Self {
        match prefix {
            [0x1f, 0x8b, ..] => Self::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Self::Zstd,
            [b, 0x2a, 0x4d, 0x18, ..] if b & 0xf0 == 0x50 => Self::Zstd,
            _ => Self::None,
        }
    }

    /// Refuses a layer blob whose compression runtimes detect differently: a
    /// blob that starts with a zstd skippable frame is zstd to containerd
    /// (`archive/compression` matches skippable-frame magic) but an
    /// uncompressed tar to containers/image (podman, cri-o), which fails on
    /// it. (zstd:chunked puts its skippable frames after the first data frame.)
    pub fn check_unambiguous(prefix: &[u8]) -> Result<(), LayerError> {
        match prefix {
            [b, 0x2a, 0x4d, 0x18, ..] if b & 0xf0 == 0x50 => Err(LayerError(
                "ambiguous image: the layer blob starts with a zstd skippable frame, which \
                 containerd decompresses as zstd and containers/image (podman, cri-o) reads \
                 as an uncompressed tar"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// Name for reports.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A captured file's contents (for the checks that read files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The bytes, up to the capture limit.
    pub data: Vec<u8>,
    /// Whether the file was larger than the limit.
    pub truncated: bool,
}

/// One member of a layer, normalised and owned: what [`LayerIndex`] stores,
/// unpacked. Tests and the layer cache build layers from these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalised path relative to the root, without leading `/` (`""` is the root).
    pub path: Box<str>,
    /// Member type.
    pub kind: Kind,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// Data size.
    pub size: u64,
    /// Symlink target as written, or the normalised hard link target.
    pub link: Option<Box<str>>,
    /// Raw `security.capability` bytes, if the member has one.
    pub caps: Option<Box<[u8]>>,
    /// Contents, for the files checks read.
    pub content: Option<Box<Content>>,
}

/// A member as [`LayerIndex`] keeps it: 48 bytes, its path a range of the
/// shared path buffer, its rare parts (link, caps, contents) in a side table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rec {
    pub(crate) start: u32,
    pub(crate) len: u32,
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) size: u64,
    /// Index into `extras`, or [`NO_EXTRA`].
    pub(crate) extra: u32,
}

pub(crate) const NO_EXTRA: u32 = u32::MAX;

/// The parts of a member most members do not have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Extra {
    pub(crate) link: Option<Box<str>>,
    pub(crate) caps: Option<Box<[u8]>>,
    /// Shared, never copied: every name of a hard-linked file holds the same.
    pub(crate) content: Option<Arc<Content>>,
    /// SHA-256 of the whole content of a set-id or file-capability regular
    /// file: what an ignore entry's `sha256` pins (issue #12).
    pub(crate) digest: Option<[u8; 32]>,
}

impl Extra {
    /// Heap bytes this side-table entry accounts for (its slot counted twice
    /// for the table's growth).
    pub(crate) fn cost(&self) -> u64 {
        (2 * std::mem::size_of::<Self>()
            + self.link.as_ref().map_or(0, |l| l.len())
            + self.caps.as_ref().map_or(0, |c| c.len())
            + self.content.as_ref().map_or(0, |c| {
                c.data.capacity() + std::mem::size_of::<Content>() + 16
            })) as u64
    }
}

/// Bytes accounted per whiteout or opaque path besides its own bytes: its
/// box and its slot in the list (twice, for the list's growth).
const PATH_ITEM_COST: u64 = 48;

/// The owner a runtime leaves after `lchown(path, id, id)` with a tar id:
/// truncated to the 32-bit `uid_t`, and `-1` (`0xFFFFFFFF`, "unchanged")
/// is the extracting user, root.
pub(crate) fn runtime_id(id: u64) -> u64 {
    match id as u32 {
        u32::MAX => 0,
        t => u64::from(t),
    }
}

/// What scanning one layer produced.
///
/// Members are kept compactly (about 48 bytes plus the path each, one
/// allocation for all paths); [`LayerIndex::entries`] unpacks them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerIndex {
    /// Every member path, concatenated.
    pub(crate) paths: String,
    /// Members that add or replace paths, in archive order.
    pub(crate) recs: Vec<Rec>,
    pub(crate) extras: Vec<Extra>,
    /// Paths deleted from lower layers by `.wh.NAME` files.
    pub whiteouts: Vec<Box<str>>,
    /// Directories whose lower-layer contents are hidden (`.wh..wh..opq`).
    pub opaques: Vec<Box<str>>,
    /// Tar members read, whiteouts included.
    pub members: u64,
    /// The compression found.
    pub compression: Option<Compression>,
    /// Digests of the blob as stored (none computed when verification is off).
    pub raw: Hashes,
    /// Digests of the uncompressed tar (equal to `raw` when uncompressed).
    pub tar: Hashes,
    /// Non-fatal notes (a captured file over its limit, ...).
    pub warnings: Vec<String>,
    /// What this index charged to the image's memory budget, given back
    /// when it is dropped.
    pub(crate) charge: Charge,
}

impl LayerIndex {
    /// Holds an index that was not read under `opts` (one from a layer
    /// cache) to `opts`' limits, and charges its memory to `opts.budget`,
    /// as reading the layer would have: a cached layer must not get past
    /// `--max-entries`, the name limit or `--max-memory`. The error is the
    /// one the scan would have given.
    pub fn admit(&mut self, opts: &LayerOptions) -> Result<(), LayerError> {
        if self.members > opts.max_entries {
            return Err(LayerError(format!(
                "more than {} members (raise --max-entries if this image is genuine)",
                opts.max_entries
            )));
        }
        if self.paths.len() > opts.max_names.min(u32::MAX as usize) {
            return Err(LayerError(format!(
                "member names take more than {} bytes",
                opts.max_names
            )));
        }
        let strings = |v: &[Box<str>]| -> u64 {
            v.iter()
                .map(|s| (s.len() + std::mem::size_of::<Box<str>>()) as u64)
                .sum()
        };
        let bytes = self.paths.capacity() as u64
            + (self.recs.capacity() * std::mem::size_of::<Rec>()) as u64
            + self.extras.iter().map(Extra::cost).sum::<u64>()
            + strings(&self.whiteouts)
            + strings(&self.opaques)
            + self.warnings.iter().map(|w| w.len() as u64).sum::<u64>();
        let mut charge = crate::budget::Charge::new(std::sync::Arc::clone(&opts.budget));
        charge.add(bytes, "a cached layer")?;
        charge.flush("a cached layer")?;
        self.charge = charge;
        Ok(())
    }

    /// A layer holding these entries (and nothing else), in this order.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut idx = Self::default();
        for e in entries {
            idx.push(e);
        }
        idx
    }

    /// Appends an entry.
    pub fn push(&mut self, e: Entry) {
        let start = self.paths.len();
        self.paths.push_str(&e.path);
        let extra = Extra {
            link: e.link,
            caps: e.caps,
            content: e.content.map(|c| Arc::new(*c)),
            digest: None,
        };
        self.push_rec(start, e.kind, e.mode, (e.uid, e.gid), e.size, extra);
    }

    /// Records the member whose path is `paths[start..]` (already pushed),
    /// its rare parts in the side table when it has any.
    fn push_rec(
        &mut self,
        start: usize,
        kind: Kind,
        mode: u32,
        (uid, gid): (u64, u64),
        size: u64,
        extra: Extra,
    ) {
        let extra = if extra == Extra::default() {
            NO_EXTRA
        } else {
            self.extras.push(extra);
            (self.extras.len() - 1) as u32
        };
        self.recs.push(Rec {
            start: start as u32,
            len: (self.paths.len() - start) as u32,
            kind,
            mode,
            uid: runtime_id(uid),
            gid: runtime_id(gid),
            size,
            extra,
        });
    }

    /// Number of entries (whiteouts and opaque markers not counted).
    pub fn len(&self) -> usize {
        self.recs.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    pub(crate) fn path_of(&self, r: &Rec) -> &str {
        &self.paths[r.start as usize..(r.start + r.len) as usize]
    }

    fn unpack(&self, r: &Rec) -> Entry {
        let extra = self
            .extras
            .get(r.extra as usize)
            .cloned()
            .unwrap_or_default();
        Entry {
            path: self.path_of(r).into(),
            kind: r.kind,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            size: r.size,
            link: extra.link,
            caps: extra.caps,
            content: extra.content.map(|c| Box::new((*c).clone())),
        }
    }

    /// The entries, unpacked (copies), in archive order.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.recs.iter().map(|r| self.unpack(r))
    }
}

/// Limits and digests for [`scan_layer`].
#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// Algorithms to compute over the blob bytes (none: not verified).
    pub raw_algorithms: Vec<Algorithm>,
    /// Algorithms to compute over the uncompressed tar (none: not verified).
    pub tar_algorithms: Vec<Algorithm>,
    /// Most members accepted in one layer.
    pub max_entries: u64,
    /// Most bytes of member names (all paths together) in one layer.
    pub max_names: usize,
    /// Most bytes kept of one captured file.
    pub max_capture: usize,
    /// Most captured bytes in the whole image (all layers together, counted
    /// by [`LayerOptions::budget`]; captures are also charged to it).
    pub max_capture_total: usize,
    /// The image-wide memory budget every structure that grows with the
    /// input charges (shared by all layers of one scan; `--max-memory`).
    pub budget: std::sync::Arc<crate::budget::MemoryBudget>,
    /// Whether a regular file's contents are kept ([`Entry::content`]), by
    /// its normalised path: the files the checks read. The scan sets it to
    /// `checks::captures`, built from the checks' own declarations; this
    /// module only calls it, so it needs to know nothing about checks. The
    /// default captures nothing.
    pub captures: fn(&str) -> bool,
}

impl Default for LayerOptions {
    fn default() -> Self {
        Self {
            raw_algorithms: vec![Algorithm::Sha256],
            tar_algorithms: vec![Algorithm::Sha256],
            max_entries: 4_000_000,
            max_names: 256 << 20,
            max_capture: 16 << 20,
            max_capture_total: 96 << 20,
            budget: std::sync::Arc::default(),
            captures: |_| false,
        }
    }
}

impl LayerOptions {
    /// Whether any digest is computed (not under `--no-verify`).
    pub fn verifies(&self) -> bool {
        !self.raw_algorithms.is_empty() || !self.tar_algorithms.is_empty()
    }
}

/// Normalises a member name: strips `./` and leading `/`, folds `.` and
/// `..` (never above the root) and trailing slashes. Names that are not
/// UTF-8 are decoded lossily.
pub fn normalize(raw: &[u8]) -> String {
    let mut out = String::new();
    normalize_into(raw, &mut out);
    out
}

/// [`normalize`], appending to `out`. Names that are already clean (the
/// usual case: `./usr/bin/x`, `usr/bin/x/`) are copied without splitting.
pub fn normalize_into(raw: &[u8], out: &mut String) {
    if let Ok(s) = std::str::from_utf8(raw) {
        let mut t = s;
        loop {
            if let Some(r) = t.strip_prefix("./") {
                t = r;
            } else if let Some(r) = t.strip_prefix('/') {
                t = r;
            } else {
                break;
            }
        }
        let t = t.trim_end_matches('/');
        if t.is_empty() || t == "." {
            return;
        }
        if !t.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            out.push_str(t);
            return;
        }
    }
    let s = String::from_utf8_lossy(raw);
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(p);
    }
}

/// Why a layer could not be scanned.
#[derive(Debug)]
pub struct LayerError(pub String);

impl From<io::Error> for LayerError {
    fn from(e: io::Error) -> Self {
        Self(describe_io(&e))
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => format!("truncated: {e}"),
        _ => e.to_string(),
    }
}

fn after_end(e: &io::Error) -> LayerError {
    LayerError(format!("after the end of the tar: {}", describe_io(e)))
}

/// Scans one layer blob from `reader` to its end.
///
/// A blob of less than one chunk is scanned on this thread. A larger one
/// goes through a pipeline of threads, one per stage: for a compressed blob
/// one reads and hashes it (the blob digest), one decompresses, one hashes
/// the tar (the diff_id) and this one parses the headers from those same
/// bytes; for a plain tar one reads, one hashes and this one parses. Every
/// byte is read once.
pub fn scan_layer(reader: impl Read + Send, opts: &LayerOptions) -> Result<LayerIndex, LayerError> {
    let mut reader = reader;
    let mut first = vec![0u8; CHUNK];
    let n = read_up_to(&mut reader, &mut first)?;
    first.truncate(n);
    Compression::check_unambiguous(&first)?;
    let compression = Compression::sniff(&first);
    let mut index = LayerIndex {
        compression: Some(compression),
        ..LayerIndex::default()
    };
    if n < CHUNK {
        scan_small(&first, compression, opts, &mut index)?;
        return Ok(index);
    }
    scan_pipelined(reader, first, compression, opts, &mut index)?;
    Ok(index)
}

/// The algorithms for an uncompressed blob, whose tar digest is its digest:
/// hashed once.
fn plain_algorithms(opts: &LayerOptions) -> Vec<Algorithm> {
    let mut all = opts.raw_algorithms.clone();
    for a in &opts.tar_algorithms {
        if !all.contains(a) {
            all.push(*a);
        }
    }
    all
}

/// The whole blob is in `data`: one thread.
fn scan_small(
    data: &[u8],
    compression: Compression,
    opts: &LayerOptions,
    index: &mut LayerIndex,
) -> Result<(), LayerError> {
    if compression == Compression::None {
        let mut h = Hasher::new(&plain_algorithms(opts));
        h.update(data);
        // Bytes after the end-of-archive marker are hashed (above) and
        // otherwise ignored, as by tar and containerd.
        parse(&mut Streaming::new(data), compression, opts, index)?;
        index.raw = h.finish();
        index.tar = index.raw.clone();
        return Ok(());
    }
    let mut raw = Hasher::new(&opts.raw_algorithms);
    raw.update(data);
    index.raw = raw.finish();
    let mut tar = HashingReader::new(decoder(compression, data)?, &opts.tar_algorithms);
    parse(&mut Streaming::new(&mut tar), compression, opts, index)?;
    index.tar = tar.drain().map_err(|e| after_end(&e))?;
    Ok(())
}

/// A blob larger than one chunk, on one thread per stage:
///
/// ```text
/// plain:       [read]                ─────────────────► [sha256 (blob = diff_id)] ─► [parse]
/// compressed:  [read + sha256 (blob)] ─► [decompress] ─► [sha256 (diff_id)]       ─► [parse]
/// ```
///
/// This thread parses. An error anywhere reaches the parser as the reason
/// its stream ended; a parse error drops the stream, which stops every
/// stage upstream.
fn scan_pipelined(
    mut reader: impl Read + Send,
    first: Vec<u8>,
    compression: Compression,
    opts: &LayerOptions,
    index: &mut LayerIndex,
) -> Result<(), LayerError> {
    let plain = compression == Compression::None;
    // A plain tar's digest is its diff_id: its one hash is the relay's.
    let (read_algorithms, relay_algorithms) = if plain {
        (Vec::new(), plain_algorithms(opts))
    } else {
        (opts.raw_algorithms.clone(), opts.tar_algorithms.clone())
    };
    let (read_tx, read_rx) = channel();
    let (hash_tx, hash_rx) = channel();
    std::thread::scope(|scope| {
        let reader_thread = scope.spawn(move || {
            let mut h = Hasher::new(&read_algorithms);
            h.update(&first);
            if read_tx.send(first) {
                // A read error went downstream, where it is reported.
                let _ = read_tx.pump(&mut reader, |c| h.update(c));
            }
            h.finish()
        });
        let relay_input = if plain {
            read_rx
        } else {
            let (tar_tx, tar_rx) = channel();
            scope.spawn(move || {
                match decoder(compression, ChunkSource::new(read_rx, Vec::new())) {
                    // Decoding errors go downstream too.
                    Ok(mut dec) => {
                        let _ = tar_tx.pump(&mut dec, |_| {});
                    }
                    Err(e) => tar_tx.fail(&io::Error::other(e.0)),
                }
            });
            tar_rx
        };
        let hash_thread = scope.spawn(|| pipeline::relay(relay_input, hash_tx, &relay_algorithms));
        let mut src = ChunkSource::new(hash_rx, Vec::new());
        match parse(&mut src, compression, opts, index) {
            // What follows the end-of-archive marker is read (and hashed) too.
            Ok(()) => src.drain().map_err(|e| after_end(&e))?,
            Err(e) => {
                drop(src);
                return Err(e);
            }
        }
        let relayed = hash_thread
            .join()
            .map_err(|_| LayerError("the hashing thread panicked".into()))?;
        let read = reader_thread
            .join()
            .map_err(|_| LayerError("the reading thread panicked".into()))?;
        if plain {
            index.raw = relayed;
            index.tar = index.raw.clone();
        } else {
            index.raw = read;
            index.tar = relayed;
        }
        Ok(())
    })
}

/// Scans an uncompressed layer without verifying it, seeking over member
/// data: only headers and the files checks read are read. For trusted local
/// files only (`--no-verify`); `file` is positioned at the layer's start
/// and the layer is `len` bytes. A compressed layer is decompressed as a
/// stream (nothing to seek over), still unhashed.
pub fn scan_layer_seekable(
    mut file: File,
    len: u64,
    opts: &LayerOptions,
) -> Result<LayerIndex, LayerError> {
    use std::io::{Seek, SeekFrom};
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut (&mut file).take(4), &mut magic)?;
    file.seek(SeekFrom::Current(-(n as i64)))?;
    Compression::check_unambiguous(&magic[..n])?;
    let compression = Compression::sniff(&magic[..n]);
    let unverified = LayerOptions {
        raw_algorithms: Vec::new(),
        tar_algorithms: Vec::new(),
        ..opts.clone()
    };
    if compression != Compression::None {
        return scan_layer(
            io::BufReader::with_capacity(CHUNK, file.take(len)),
            &unverified,
        );
    }
    let mut index = LayerIndex {
        compression: Some(compression),
        ..LayerIndex::default()
    };
    // A small buffer: member data is mostly seeked over, and small members
    // that fit in it are skipped without a system call.
    let mut src = Seekable::new(file.take(len), len, 64 * 1024);
    parse(&mut src, compression, &unverified, &mut index)?;
    index.raw.len = len;
    index.tar.len = len;
    Ok(index)
}

fn decoder<'a>(
    c: Compression,
    raw: impl io::BufRead + Send + 'a,
) -> Result<Box<dyn Read + Send + 'a>, LayerError> {
    Ok(match c {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(gunzip::Gunzip::new(raw)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(raw)
                .map_err(|e| LayerError(format!("starting zstd: {e}")))?,
        ),
    })
}

fn parse<S: TarSource>(
    src: &mut S,
    compression: Compression,
    opts: &LayerOptions,
    index: &mut LayerIndex,
) -> Result<(), LayerError> {
    let mut tr = TarReader::new(src);
    read_entries(&mut tr, opts, index).map_err(|e| match compression {
        Compression::None => e,
        c => LayerError(format!("{} ({} stream)", e.0, c.as_str())),
    })
}

/// Charges a buffer's growth before it grows: when `more` items do not fit
/// in `cap - len`, it grows to the doubled capacity, which is charged (as
/// `elem` bytes an item) and reserved exactly, so the charge is its size.
fn grow<T>(
    buf: &mut Vec<T>,
    more: usize,
    charge: &mut Charge,
    what: &str,
) -> Result<(), LayerError> {
    let (len, cap) = (buf.len(), buf.capacity());
    if cap - len >= more {
        return Ok(());
    }
    let new_cap = (cap * 2).max(len + more).max(64);
    charge.add(((new_cap - cap) * std::mem::size_of::<T>()) as u64, what)?;
    buf.reserve_exact(new_cap - len);
    Ok(())
}

/// [`grow`] for the path buffer.
fn grow_str(
    buf: &mut String,
    more: usize,
    charge: &mut Charge,
    what: &str,
) -> Result<(), LayerError> {
    let (len, cap) = (buf.len(), buf.capacity());
    if cap - len >= more {
        return Ok(());
    }
    let new_cap = (cap * 2).max(len + more).max(4096);
    charge.add((new_cap - cap) as u64, what)?;
    buf.reserve_exact(new_cap - len);
    Ok(())
}

impl From<crate::budget::BudgetExceeded> for LayerError {
    fn from(e: crate::budget::BudgetExceeded) -> Self {
        Self(e.to_string())
    }
}

/// Longest symlink target `symlink(2)` accepts (`PATH_MAX` with its NUL).
pub const MAX_SYMLINK_TARGET: usize = 4095;

fn read_entries<S: TarSource>(
    tr: &mut TarReader<S>,
    opts: &LayerOptions,
    index: &mut LayerIndex,
) -> Result<(), LayerError> {
    if index.charge.budget().is_none() {
        index.charge = Charge::new(opts.budget.clone());
    }
    let r = read_members(tr, opts, index);
    // Whatever is pending is charged too, also after an error: the charge is
    // given back when the index is dropped.
    let flushed = index.charge.flush("member records and names");
    r?;
    flushed?;
    Ok(())
}

fn read_members<S: TarSource>(
    tr: &mut TarReader<S>,
    opts: &LayerOptions,
    index: &mut LayerIndex,
) -> Result<(), LayerError> {
    while let Some(h) = tr.next_member()? {
        index.members += 1;
        if index.members > opts.max_entries {
            return Err(LayerError(format!(
                "more than {} members (raise --max-entries if this image is genuine)",
                opts.max_entries
            )));
        }
        // One comparison each in the usual case; the growth is charged.
        grow_str(
            &mut index.paths,
            // Lossy decoding may triple a name that is not UTF-8.
            3 * h.path.len(),
            &mut index.charge,
            "member names",
        )?;
        grow(&mut index.recs, 1, &mut index.charge, "member records")?;
        let start = index.paths.len();
        normalize_into(&h.path, &mut index.paths);
        if index.paths.len() > opts.max_names.min(u32::MAX as usize) {
            return Err(LayerError(format!(
                "the member names add up to more than {} bytes",
                opts.max_names
            )));
        }
        let path = &index.paths[start..];
        let (dir, base) = match path.as_bytes().iter().rposition(|b| *b == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path),
        };
        // A PAX global header comes back from Go's reader as a member.
        // Runtimes disagree on it: umoci fails the layer ("unknown
        // typeflag"), while moby, containerd and containers/storage first
        // act on its name (a whiteout, or removing what is at that path) and
        // then ignore it. No image builder writes one into a layer.
        if h.typeflag == b'g' {
            return Err(LayerError(format!(
                "ambiguous image: member `{}` is a PAX global header, which container runtimes \
                 apply differently (umoci refuses the layer; moby, containerd and \
                 containers/storage remove the path it names)",
                String::from_utf8_lossy(&h.path)
            )));
        }
        if let Some(rest) = base.strip_prefix(".wh.") {
            if rest == ".wh..opq" {
                index
                    .charge
                    .add(PATH_ITEM_COST + dir.len() as u64, "opaque directories")?;
                index.opaques.push(dir.into());
            } else if rest.starts_with(".wh.") {
                // AUFS metadata (.wh..wh.plnk and the like): never a file.
            } else if rest.is_empty() {
                return Err(LayerError(format!(
                    "invalid whiteout `{}` (a bare `.wh.`)",
                    String::from_utf8_lossy(&h.path)
                )));
            } else if rest == "." || rest == ".." {
                // `.wh..` and `.wh...` name the directory itself or its
                // parent: containers/storage joins them into a RemoveAll of
                // that directory (or fails on the root), umoci refuses them.
                return Err(LayerError(format!(
                    "ambiguous image: whiteout `{}` names `{rest}`, which container runtimes \
                     apply differently (containers/storage removes that directory, umoci \
                     refuses the layer)",
                    String::from_utf8_lossy(&h.path)
                )));
            } else {
                let target = if dir.is_empty() {
                    rest.to_owned()
                } else {
                    format!("{dir}/{rest}")
                };
                index
                    .charge
                    .add(PATH_ITEM_COST + target.len() as u64, "whiteouts")?;
                index.whiteouts.push(target.into());
            }
            index.paths.truncate(start);
            continue;
        }
        // eStargz table of contents and landmarks are not image files.
        if dir.is_empty()
            && matches!(
                base,
                "stargz.index.json" | ".prefetch.landmark" | ".no.prefetch.landmark"
            )
        {
            index.paths.truncate(start);
            continue;
        }
        if h.kind == Kind::Other {
            return Err(LayerError(format!(
                "ambiguous image: member `{}` has a type container runtimes cannot extract \
                 (containerd and moby fail with \"unhandled tar header type\", umoci with \
                 \"unknown typeflag\"); imgscan will not guess what it would be",
                String::from_utf8_lossy(&h.path)
            )));
        }
        if h.kind == Kind::Symlink && (h.link.is_empty() || h.link.len() > MAX_SYMLINK_TARGET) {
            return Err(LayerError(format!(
                "ambiguous image: symlink `{}` has a target of {} bytes, which symlink(2) \
                 refuses ({}): container runtimes fail to extract this layer",
                String::from_utf8_lossy(&h.path),
                h.link.len(),
                if h.link.is_empty() {
                    "ENOENT"
                } else {
                    "ENAMETOOLONG, over 4095 bytes"
                }
            )));
        }
        // POSIX ACLs: runtimes set every `SCHILY.xattr.*` record, so a
        // `system.posix_acl_access` record gives the file an ACL, which can
        // grant a user or group access its mode bits do not show. imgscan's
        // access model reads mode bits only, so an ACL beyond the three
        // entries the mode already says (user::, group::, other::) is
        // refused rather than misjudged. Builders (moby, buildah,
        // containerd) copy only `security.capability` into layers, so real
        // images carry none.
        for (name, value) in &h.xattrs {
            if name.as_slice() == b"system.posix_acl_access"
                && let Err(why) = minimal_acl(value)
            {
                return Err(LayerError(format!(
                    "ambiguous image: member `{}` carries a POSIX ACL \
                     (SCHILY.xattr.system.posix_acl_access) that {why}; container runtimes \
                     apply it, and imgscan judges access by mode bits only",
                    String::from_utf8_lossy(&h.path)
                )));
            }
        }
        // File capabilities as runtimes set them: from the
        // `SCHILY.xattr.security.capability` PAX record only. moby and
        // containers/storage (`pkg/archive` `createTarFile`), containerd
        // (`pkg/archive/tar.go`) and umoci (`oci/layer/tar_extract.go`) apply
        // `SCHILY.xattr.*` records; none applies bsdtar's
        // `LIBARCHIVE.xattr.*`, so such a record alone gives no capability.
        // An empty record sets no capability (the runtimes' setxattr of an
        // empty `security.capability` leaves none; `getcap` shows nothing).
        let caps = h
            .cap_schily
            .as_ref()
            .filter(|raw| !raw.is_empty())
            .map(|raw| raw.clone().into_boxed_slice());
        let link: Option<Box<str>> = match h.kind {
            Kind::Symlink => Some(String::from_utf8_lossy(&h.link).into()),
            Kind::Hardlink => Some(normalize(&h.link).into()),
            _ => None,
        };
        let (kind, mode, uid, gid, size) = (h.kind, h.mode, h.uid, h.gid, h.size);
        let mut content = None;
        if kind == Kind::File && (opts.captures)(&index.paths[start..]) {
            let want = (opts.max_capture as u64).min(size);
            let granted = opts
                .budget
                .take_capture(want, opts.max_capture_total as u64);
            // Charged before it is read.
            index.charge.add(granted, "captured file contents")?;
            index.charge.flush("captured file contents")?;
            let mut data = Vec::with_capacity(granted as usize);
            tr.data().take(granted).read_to_end(&mut data)?;
            let truncated = (data.len() as u64) < size;
            if truncated {
                index.warnings.push(format!(
                    "/{} is {size} bytes; only the first {} were read",
                    &index.paths[start..],
                    data.len()
                ));
            }
            content = Some(Arc::new(Content { data, truncated }));
        }
        // The content digest of a file that gives privilege (set-id bits or
        // file capabilities): few files, read once more only when not
        // captured whole.
        let mut digest = None;
        if kind == Kind::File && (mode & 0o6000 != 0 || caps.is_some()) {
            let mut h = Sha256::new();
            if let Some(c) = &content {
                h.update(&c.data);
            }
            std::io::copy(&mut tr.data(), &mut HashWriter(&mut h))?;
            digest = Some(h.finalize().into());
        }
        let extra = Extra {
            link,
            caps,
            content,
            digest,
        };
        if extra != Extra::default() {
            // The captured bytes were charged above.
            let captured = extra.content.as_ref().map_or(0, |c| c.data.capacity()) as u64;
            index
                .charge
                .add(extra.cost() - captured, "symlink targets and capabilities")?;
            grow(&mut index.extras, 1, &mut index.charge, "member records")?;
        }
        index.push_rec(start, kind, mode, (uid, gid), size, extra);
    }
    Ok(())
}

/// Feeds what is written to a hasher.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether a `system.posix_acl_access` value (the kernel's
/// `posix_acl_xattr_header`: version 2, then 8-byte entries of tag, perm,
/// id; linux `include/uapi/linux/posix_acl_xattr.h`) says no more than the
/// mode bits: only `ACL_USER_OBJ` (1), `ACL_GROUP_OBJ` (4) and `ACL_OTHER`
/// (0x20) entries. Why not, otherwise.
fn minimal_acl(value: &[u8]) -> Result<(), String> {
    if value.len() < 4 || !(value.len() - 4).is_multiple_of(8) {
        return Err(format!("is malformed ({} bytes)", value.len()));
    }
    if value[..4] != 2u32.to_le_bytes() {
        return Err("has an unknown version".to_owned());
    }
    for e in value[4..].chunks_exact(8) {
        match u16::from_le_bytes([e[0], e[1]]) {
            0x01 | 0x04 | 0x20 => {}
            0x02 => return Err("grants a named user access".to_owned()),
            0x08 => return Err("grants a named group access".to_owned()),
            0x10 => return Err("has a mask (so named entries)".to_owned()),
            t => return Err(format!("has an unknown entry tag 0x{t:x}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The default options, capturing `/etc/passwd` as the scan's
    /// `checks::captures` does.
    fn opts() -> LayerOptions {
        LayerOptions {
            captures: |path| path == "etc/passwd",
            ..LayerOptions::default()
        }
    }

    fn layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "./etc/", &b""[..]).unwrap();
        let data = b"root:x:0:0:root:/root:/bin/sh\n";
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, "./etc/passwd", &data[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(0);
        b.append_data(&mut h, "opt/.wh..wh..opq", &b""[..]).unwrap();
        b.append_data(&mut h, "usr/bin/.wh.su", &b""[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn indexes_entries_whiteouts_and_content() {
        let raw = layer();
        let idx = scan_layer(&raw[..], &opts()).unwrap();
        let entries: Vec<Entry> = idx.entries().collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(&*entries[1].path, "etc/passwd");
        assert_eq!(
            entries[1].content.as_ref().unwrap().data,
            b"root:x:0:0:root:/root:/bin/sh\n"
        );
        assert_eq!(idx.opaques, vec![Box::from("opt")]);
        assert_eq!(idx.whiteouts, vec![Box::from("usr/bin/su")]);
        assert_eq!(idx.tar, idx.raw);
        assert_eq!(
            idx.raw.sha256.as_ref().unwrap(),
            &crate::digest::Digest::sha256_of(&raw)
        );
    }

    #[test]
    fn gzip_and_zstd_give_the_same_diff_id() {
        let raw = layer();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&raw[..], 3).unwrap();
        let plain = scan_layer(&raw[..], &opts()).unwrap();
        for blob in [&gz, &zs] {
            let idx = scan_layer(&blob[..], &opts()).unwrap();
            assert_eq!(idx.tar.sha256, plain.raw.sha256);
            assert_eq!(
                idx.raw.sha256.clone().unwrap(),
                crate::digest::Digest::sha256_of(blob)
            );
            assert_eq!(
                idx.entries().collect::<Vec<_>>(),
                plain.entries().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let raw = layer();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        assert!(scan_layer(&gz[..gz.len() / 2], &opts()).is_err());
    }

    fn big_layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        h.set_mode(0o4755);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, "usr/bin/big", &data[..]).unwrap();
        let pw = b"root:x:0:0::/root:/bin/sh\n";
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(pw.len() as u64);
        b.append_data(&mut h, "etc/passwd", &pw[..]).unwrap();
        b.into_inner().unwrap()
    }

    /// Layers past the pipeline threshold go through the two-thread pipeline,
    /// with the same result, in every compression; a cut blob is an error.
    #[test]
    fn pipelined_layers() {
        let raw = big_layer();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&raw[..], 1).unwrap();
        let want = crate::digest::Digest::sha256_of(&raw);
        for blob in [&raw, &gz, &zs] {
            let idx = scan_layer(&blob[..], &opts()).unwrap();
            assert_eq!(idx.tar.sha256.as_ref(), Some(&want));
            assert_eq!(idx.raw.len, blob.len() as u64);
            let entries: Vec<Entry> = idx.entries().collect();
            assert_eq!(entries.len(), 2);
            assert_eq!(entries[0].mode, 0o4755);
            assert!(entries[1].content.is_some());
            for cut in [blob.len() / 3, blob.len() * 9 / 10] {
                assert!(scan_layer(&blob[..cut], &opts()).is_err(), "cut {cut}");
            }
        }
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize(b"./usr/bin/x"), "usr/bin/x");
        assert_eq!(normalize(b"/etc//passwd/"), "etc/passwd");
        assert_eq!(normalize(b"../../etc/shadow"), "etc/shadow");
        assert_eq!(normalize(b"a/b/../../../c"), "c");
        assert_eq!(normalize(b"./"), "");
    }

    /// Path, typeflag, PAX records, data.
    type RawMember<'a> = (&'a str, u8, &'a [(&'a str, &'a [u8])], &'a [u8]);

    fn raw_layer(members: &[RawMember<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, typeflag, pax, data) in members {
            if !pax.is_empty() {
                b.append_pax_extensions(pax.iter().copied()).unwrap();
            }
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::new(*typeflag));
            h.set_mode(0o4755);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Owners are what lchown(2) leaves: 32 bits, and -1 is root.
    #[test]
    fn owners_truncate_to_32_bits() {
        let raw = raw_layer(&[
            (
                "a",
                b'0',
                &[("uid", b"4294967296"), ("gid", b"4294967297")],
                b"",
            ),
            (
                "b",
                b'0',
                &[("uid", b"4294967295"), ("gid", b"4294967295")],
                b"",
            ),
            ("c", b'0', &[("uid", b"1000")], b""),
        ]);
        let idx = scan_layer(&raw[..], &opts()).unwrap();
        let owners: Vec<(u64, u64)> = idx.entries().map(|e| (e.uid, e.gid)).collect();
        assert_eq!(owners, [(0, 1), (0, 0), (1000, 0)]);
    }

    /// Whiteouts of `.` and `..`, which runtimes apply differently, are
    /// refused; an empty capability record is no capability (runtimes set
    /// none); a blob starting with a zstd skippable frame is refused
    /// (containerd reads zstd, containers/image a plain tar).
    #[test]
    fn runtime_disagreements_are_refused() {
        for name in ["usr/.wh..", "usr/.wh..."] {
            let raw = raw_layer(&[(name, b'0', &[], b"")]);
            let e = scan_layer(&raw[..], &opts()).unwrap_err();
            assert!(e.0.starts_with("ambiguous image: whiteout"), "{}", e.0);
        }
        let raw = raw_layer(&[(
            "usr/bin/ping",
            b'0',
            &[("SCHILY.xattr.security.capability", b"")],
            b"x",
        )]);
        let idx = scan_layer(&raw[..], &opts()).unwrap();
        assert_eq!(idx.entries().next().unwrap().caps, None);
        let mut blob = vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 0, 0, 0, 0];
        blob.extend(zstd::encode_all(&raw_layer(&[("a", b'0', &[], b"")])[..], 1).unwrap());
        let e = scan_layer(&blob[..], &opts()).unwrap_err();
        assert!(e.0.contains("skippable frame"), "{}", e.0);
    }

    /// An ACL beyond the mode bits is refused; a minimal one is read.
    #[test]
    fn extended_acls_are_refused() {
        let entry = |tag: u16, perm: u16, id: u32| {
            let mut v = tag.to_le_bytes().to_vec();
            v.extend(perm.to_le_bytes());
            v.extend(id.to_le_bytes());
            v
        };
        let mut minimal = 2u32.to_le_bytes().to_vec();
        minimal.extend(entry(1, 6, u32::MAX));
        minimal.extend(entry(4, 4, u32::MAX));
        minimal.extend(entry(0x20, 4, u32::MAX));
        let raw = raw_layer(&[(
            "etc/passwd",
            b'0',
            &[("SCHILY.xattr.system.posix_acl_access", &minimal)],
            b"root:x:0:0::/:/bin/sh\n",
        )]);
        assert!(scan_layer(&raw[..], &opts()).is_ok());
        let mut extended = minimal.clone();
        extended.extend(entry(2, 6, 10001));
        extended.extend(entry(0x10, 6, u32::MAX));
        let raw = raw_layer(&[(
            "etc/passwd",
            b'0',
            &[("SCHILY.xattr.system.posix_acl_access", &extended)],
            b"root:x:0:0::/:/bin/sh\n",
        )]);
        let e = scan_layer(&raw[..], &opts()).unwrap_err();
        assert!(e.0.contains("grants a named user access"), "{}", e.0);
        let raw = raw_layer(&[(
            "x",
            b'0',
            &[("SCHILY.xattr.system.posix_acl_access", b"\x02\0\0")],
            b"",
        )]);
        assert!(
            scan_layer(&raw[..], &opts())
                .unwrap_err()
                .0
                .contains("malformed")
        );
    }

    /// Member types no runtime extracts are refused, and so is a global
    /// header, which runtimes apply differently.
    #[test]
    fn unhandled_types_are_refused() {
        let raw = raw_layer(&[("x", b'V', &[], b"")]);
        let e = scan_layer(&raw[..], &opts()).unwrap_err();
        assert!(e.0.starts_with("ambiguous image: member `x`"), "{}", e.0);
        // A global header is refused whatever its name: umoci fails the
        // layer, moby applies a whiteout or removal by its name.
        for name in ["g", ".wh.y"] {
            let raw = raw_layer(&[(name, b'g', &[], b""), ("y", b'0', &[], b"")]);
            let e = scan_layer(&raw[..], &opts()).unwrap_err();
            assert!(e.0.contains("PAX global header"), "{}", e.0);
        }
    }

    /// Captured files charge the budget and share one image-wide total; an
    /// index gives its charge back when dropped.
    #[test]
    fn captures_and_records_charge_the_image_budget() {
        let pw = vec![b'x'; 3000];
        let raw = raw_layer(&[("etc/passwd", b'0', &[], &pw)]);
        let budget = std::sync::Arc::new(crate::budget::MemoryBudget::new(1 << 30));
        let shared = LayerOptions {
            max_capture_total: 4000,
            budget: budget.clone(),
            ..opts()
        };
        let a = scan_layer(&raw[..], &shared).unwrap();
        let b = scan_layer(&raw[..], &shared).unwrap();
        let len = |i: &LayerIndex| i.entries().next().unwrap().content.unwrap().data.len();
        assert_eq!(
            (len(&a), len(&b)),
            (3000, 1000),
            "the second layer gets what is left"
        );
        assert!(budget.used() >= 4000);
        drop((a, b));
        assert_eq!(budget.used(), 0);
        let small = LayerOptions {
            budget: std::sync::Arc::new(crate::budget::MemoryBudget::new(1000)),
            ..opts()
        };
        let e = scan_layer(&raw[..], &small).unwrap_err();
        assert!(e.0.contains("memory budget"), "{}", e.0);
    }
}
