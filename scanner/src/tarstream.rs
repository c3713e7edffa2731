//! A streaming, bounded tar reader for hostile input.
//!
//! Why not `tar::Archive`: tar-rs reads GNU long names and PAX extension
//! headers into memory with no size limit (`EntryFields::read_all`), so a
//! crafted layer can make a scanner allocate gigabytes; it also offers no way
//! to seek over member data of an outer archive while streaming the same bytes
//! through a hash. This reader handles exactly what image layers use (V7,
//! ustar, STAR, GNU and PAX headers, GNU long names and links, PAX
//! `path`/`linkpath`/`size`/`uid`/`gid`, xattr records) with every allocation
//! bounded by [`MAX_EXTENSION`]. The `tar` crate is still what the tests use
//! to *write* archives.
//!
//! # Runtime fidelity
//!
//! moby, containerd, containers/storage (podman, cri-o) and umoci read every
//! layer — and `docker load` the outer docker-archive — with Go's
//! `archive/tar` `Reader`. This reader returns the members that Reader
//! returns, with the same boundaries, names, link targets, types, owners,
//! sizes and data, or fails; where it cannot follow Go exactly it fails with
//! a message starting `ambiguous image: `. It is stricter than Go in a few
//! places (listed below) and never accepts a reading Go does not share.
//! `tests/differential_tar.rs` checks this against Go itself. Field by field
//! (Go 1.19 `archive/tar`; later releases read the same):
//!
//! - **End of archive** (reader.go `readHeader`): a clean end of stream at a
//!   header, one zero block then end of stream, or two zero blocks end the
//!   archive; a zero block followed by a non-zero block is an error, as is a
//!   stream that ends inside a header or inside member data. A stream that
//!   ends inside the padding after member data is a clean end (reader.go
//!   `next` reads padding with `tryReadFull`). An extension header followed
//!   by the end of the archive is dropped, as Go drops it.
//! - **Format** (format.go `getFormat`): the checksum field is parsed as
//!   octal and must equal the unsigned or the signed byte sum. Magic
//!   `ustar\0` with the STAR trailer `tar\0` at offset 508 is STAR, whose
//!   name prefix is 131 bytes (`headerSTAR.prefix`); other `ustar\0` is
//!   ustar/PAX with the 155-byte prefix; `ustar ` with version ` \0` is GNU
//!   (no prefix, except Go's fallback for pre-1.8 Go writers: when the GNU
//!   atime/ctime fields do not parse, an ASCII prefix field is used); anything
//!   else is V7 (no prefix).
//! - **Numbers** (strconv.go `parseNumeric`/`parseOctal`): base-256 when the
//!   top bit is set (values must fit in 63 bits), else leading/trailing
//!   spaces and NULs are trimmed, the rest is cut at the first NUL and must
//!   be all octal digits. Every numeric field Go parses is checked (mode,
//!   uid, gid, size, mtime, device numbers, STAR times), in every header,
//!   extension headers included. Stricter than Go: a negative size, mode,
//!   uid or gid is refused (Go accepts some of them; runtimes then chown to
//!   -1, "unchanged").
//! - **Header-only types** (common.go `isHeaderOnlyType`, reader.go
//!   `handleRegularFile`): hard links, symlinks, devices, directories and
//!   FIFOs carry no data whatever their ustar or PAX `size` says; the bytes
//!   after such a header are the next header. [`Header::size`] is the data
//!   length (0 for these), [`Header::header_size`] the size Go reports.
//! - **Names**: the ustar `name` and `linkname` fields end at the first NUL
//!   (`parseString`); a non-empty prefix is joined with `/`. A GNU long name
//!   (`L`) or long link (`K`) is cut at its first NUL; the last one before
//!   the member wins, an empty one is ignored, and a non-empty one wins over
//!   PAX `path`/`linkpath` whatever the order (reader.go `next`). A member
//!   with typeflag NUL whose final name ends in `/` is a directory, any
//!   other NUL member a regular file (`'0'`); a `'0'` member stays a file
//!   whatever its name.
//! - **PAX** (strconv.go `parsePAXRecord`, `validPAXRecord`; reader.go
//!   `parsePAX`, `mergePAX`): records are `"%d %s=%s\n"` split by their
//!   decimal length (Go `ParseInt`: an optional sign, at least 5, within the
//!   data); trailing bytes that are not a record (NUL padding included) are
//!   an error; keys must be non-empty without NUL, `path`/`linkpath`/
//!   `uname`/`gname` values without NUL. A later `x` header replaces an
//!   earlier one; within one, the last record for a key wins; an empty value
//!   leaves the ustar field alone. `size`/`uid`/`gid` are decimal
//!   (`ParseInt`), `mtime`/`atime`/`ctime` must parse as PAX times; a
//!   malformed one is an error. `X` (Solaris) is not an extension header in
//!   Go: it is returned as a member of that type. Extension data over 1 MiB
//!   (`maxSpecialFileSize`) is an error.
//! - **Global headers** (`g`): returned as a member of typeflag `g` with only
//!   its name (the header's, or the `g`'s own non-empty PAX `path`) and its
//!   xattr records, as Go does ([`Kind::Other`], [`Header::typeflag`] `b'g'`);
//!   an `x`, `L` or `K` before it is discarded and does not reach the next
//!   member.
//! - **Sparse files**: an old GNU sparse member (typeflag `S`) or a member Go
//!   reads as a PAX GNU sparse file (reader.go `readGNUSparsePAXHeaders`:
//!   `GNU.sparse.major`/`minor` 0.0, 0.1 or 1.0, or a `GNU.sparse.map`, also
//!   as built from 0.0 `offset`/`numbytes` records) is refused: Go expands
//!   the sparse map (holes read as NULs, the name from `GNU.sparse.name`, the
//!   size from `GNU.sparse.size`/`realsize`) and this reader does not.
//!   moby, containerd, containers/storage and umoci refuse typeflag `S`
//!   anyway. On any other member the `GNU.sparse.*` records are ignored, as
//!   Go ignores them.
//! - **Names are UTF-8**: imgscan keeps paths as UTF-8 strings, so a member
//!   whose final name, or a link whose target, is not UTF-8 is refused (a
//!   lossy decoding would make `\xff` and `\xfe` the same path).
//!
//! What runtimes then do with a member is not this module's business, but
//! [`Kind`] keeps the distinction they make: moby (`moby/go-archive`
//! archive.go `createTarFile`), containerd (pkg/archive/tar.go
//! `createTarFile`) and containers/storage (pkg/archive/archive.go
//! `createTarFile`) apply `0`, `1`-`6` and skip `g` (after their unpack loop
//! has already removed an existing file at its path); every other typeflag —
//! [`Kind::Other`]: `7`, GNU `D`, `M`, `N`, `V`, `S`, Solaris `X`, vendor
//! letters — fails the layer ("unhandled tar header type"); umoci
//! (oci/layer/tar_extract.go `UnpackEntry`) also fails on `g` ("unknown
//! typeflag").
//!
//! Xattrs: those runtimes set an xattr for every `SCHILY.xattr.*` PAX record
//! (moby, containerd and containers/storage iterate `Header.PAXRecords`, so
//! an empty value is set too; umoci iterates `Header.Xattrs`, which Go fills
//! with non-empty values only). None of them reads `LIBARCHIVE.xattr.*`
//! records: [`Header::cap_libarchive`] is what bsdtar would restore, not
//! what a container runtime does.
//!
//! # Security
//!
//! Names are returned as raw bytes; nothing here touches the filesystem.
//! Malformed headers (bad checksum, bad numbers, oversized extensions, a
//! stream that ends inside a member) are errors, never panics. The reader
//! reuses its header and extension buffers: no allocation per member unless
//! it has xattrs. An error is sticky: every later call fails too.

use std::io::{self, Read, Seek};
use std::ops::Range;
/// Largest GNU long name / long link / PAX header accepted (1 MiB).
pub const MAX_EXTENSION: u64 = 1 << 20;

const BLOCK: usize = 512;

/// Where tar bytes come from, and how to skip over member data.
pub trait TarSource: Read {
    /// Skips `n` bytes.
    fn skip(&mut self, n: u64) -> io::Result<()>;
}

impl<T: TarSource + ?Sized> TarSource for &mut T {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        (**self).skip(n)
    }
}

/// A source that can only be read: skipping reads (and so hashes) the bytes.
pub struct Streaming<R> {
    inner: R,
    scratch: Vec<u8>,
}

impl<R: Read> Streaming<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            scratch: Vec::new(),
        }
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Streaming<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R: Read> TarSource for Streaming<R> {
    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        if self.scratch.is_empty() {
            self.scratch = vec![0; 128 * 1024];
        }
        while n > 0 {
            let want = n.min(self.scratch.len() as u64) as usize;
            let got = self.inner.read(&mut self.scratch[..want])?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "archive ends inside a member",
                ));
            }
            n -= got as u64;
        }
        Ok(())
    }
}

/// A seekable source (a local file): skipping seeks, and a skip that stays
/// inside the read buffer moves a pointer and reads nothing.
pub struct Seekable<R> {
    inner: io::BufReader<R>,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Seekable<R> {
    /// Wraps a seekable reader positioned at its start, whose total length
    /// is `len`, with a read buffer of `capacity` bytes.
    pub fn new(inner: R, len: u64, capacity: usize) -> Self {
        Self {
            inner: io::BufReader::with_capacity(capacity, inner),
            pos: 0,
            len,
        }
    }
}

impl<R: Read> Read for Seekable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> TarSource for Seekable<R> {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.len)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "archive ends inside a member")
            })?;
        // `end <= len`, and a file is never longer than i64::MAX.
        let delta = i64::try_from(n).map_err(|_| bad("member too large to skip".into()))?;
        self.inner.seek_relative(delta)?;
        self.pos = end;
        Ok(())
    }
}

/// The type of a tar member, from its typeflag (after Go's NUL-typeflag
/// rule, see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Kind {
    /// Regular file (`0`; NUL when the name does not end in `/`).
    File,
    /// Hard link (`1`) to an earlier member.
    Hardlink,
    /// Symbolic link (`2`).
    Symlink,
    /// Character device (`3`).
    CharDevice,
    /// Block device (`4`).
    BlockDevice,
    /// Directory (`5`; NUL when the name ends in `/`).
    Dir,
    /// FIFO (`6`).
    Fifo,
    /// Anything else: a PAX global header (`g`, see [`Header::typeflag`]),
    /// contiguous files (`7`), GNU dumpdirs (`D`), volume labels, vendor
    /// types. Runtimes refuse all of these but `g` (module docs); never a
    /// file.
    Other,
}

impl Kind {
    /// Lowercase name for reports.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn of(typeflag: u8) -> Self {
        match typeflag {
            b'0' => Self::File,
            b'1' => Self::Hardlink,
            b'2' => Self::Symlink,
            b'3' => Self::CharDevice,
            b'4' => Self::BlockDevice,
            b'5' => Self::Dir,
            b'6' => Self::Fifo,
            _ => Self::Other,
        }
    }
}

/// One member header, with extensions applied, as Go's `tar.Reader.Next`
/// returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The member name (raw bytes, valid UTF-8, not normalised).
    pub path: Vec<u8>,
    /// The link name field (raw bytes; valid UTF-8 for hard and symbolic
    /// links, whose target it is).
    pub link: Vec<u8>,
    /// Go's `Header.Typeflag`: the header's, with NUL turned into `0` or `5`.
    pub typeflag: u8,
    /// The member type.
    pub kind: Kind,
    /// Permission bits, masked to `0o7777`: what runtimes apply
    /// (`Header.FileInfo().Mode()`; the file type comes from the typeflag).
    pub mode: u32,
    /// Owner uid (PAX `uid` wins over the header).
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// Bytes of member data that follow the header (0 for header-only types
    /// whatever the header says).
    pub size: u64,
    /// Go's `Header.Size`: the size the header (or PAX `size`) declares,
    /// also for header-only types, which carry no data.
    pub header_size: u64,
    /// Offset of the member data from the start of the stream.
    pub data_offset: u64,
    /// The `SCHILY.xattr.*` PAX records (Go's `Header.PAXRecords`): the name
    /// after the prefix and the raw value, sorted by name, the last record
    /// of a name winning. Empty values are kept.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Raw `security.capability` from `SCHILY.xattr.security.capability`.
    pub cap_schily: Option<Vec<u8>>,
    /// Raw (base64) `LIBARCHIVE.xattr.security.capability`. No container
    /// runtime applies `LIBARCHIVE.xattr.*` records (module docs).
    pub cap_libarchive: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Done,
    Failed,
}

/// The tar header formats Go tells apart (format.go `getFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V7,
    Ustar,
    Gnu,
    Star,
}

/// The records of the pending PAX header that matter, as ranges into the
/// reader's PAX buffer (the last record for a key wins, as in Go's map).
#[derive(Debug, Default)]
struct Pax {
    path: Option<Range<usize>>,
    linkpath: Option<Range<usize>>,
    size: Option<Range<usize>>,
    uid: Option<Range<usize>>,
    gid: Option<Range<usize>>,
    times: [Option<Range<usize>>; 3],
    cap_schily: Option<Range<usize>>,
    cap_libarchive: Option<Range<usize>>,
    /// `SCHILY.xattr.*` records in order: (name after the prefix, value).
    xattrs: Vec<(Range<usize>, Range<usize>)>,
    /// Go would read the member as a PAX GNU sparse file.
    sparse: bool,
}

impl Pax {
    fn clear(&mut self) {
        let mut xattrs = std::mem::take(&mut self.xattrs);
        xattrs.clear();
        *self = Self {
            xattrs,
            ..Self::default()
        };
    }
}

/// Reads members one after another.
pub struct TarReader<S> {
    src: S,
    pos: u64,
    /// Data bytes of the current member not yet read, and its padding.
    remaining: u64,
    padding: u64,
    state: State,
    block: [u8; BLOCK],
    /// The current member's header, its buffers reused.
    hdr: Header,
    /// Pending GNU long name / long link (cut at the first NUL) and PAX
    /// header data, reused.
    long_name: Vec<u8>,
    long_link: Vec<u8>,
    pax_data: Vec<u8>,
    pax: Pax,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn ambiguous(msg: String) -> io::Error {
    bad(format!("ambiguous image: {msg}"))
}

fn truncated(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("archive ends inside {what}"),
    )
}

/// Go `isHeaderOnlyType`: these carry no data whatever `size` says.
fn header_only(typeflag: u8) -> bool {
    matches!(typeflag, b'1'..=b'6')
}

fn padding_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

impl<S: TarSource> TarReader<S> {
    /// Starts reading at the beginning of `src`.
    pub fn new(src: S) -> Self {
        Self {
            src,
            pos: 0,
            remaining: 0,
            padding: 0,
            state: State::Reading,
            block: [0; BLOCK],
            hdr: Header {
                path: Vec::new(),
                link: Vec::new(),
                typeflag: b'0',
                kind: Kind::File,
                mode: 0,
                uid: 0,
                gid: 0,
                size: 0,
                header_size: 0,
                data_offset: 0,
                xattrs: Vec::new(),
                cap_schily: None,
                cap_libarchive: None,
            },
            long_name: Vec::new(),
            long_link: Vec::new(),
            pax_data: Vec::new(),
            pax: Pax::default(),
        }
    }

    /// Gives back the source (for draining the rest of the stream).
    pub fn into_inner(self) -> S {
        self.src
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads one 512-byte block. `Ok(false)` at a clean end of stream (no
    /// byte read); a partial block is an error (Go `io.ReadFull`).
    fn read_block(&mut self) -> io::Result<bool> {
        let filled = self.read_up_to(BLOCK)?;
        match filled {
            0 => Ok(false),
            BLOCK => Ok(true),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("archive ends inside a header at offset {}", self.pos),
            )),
        }
    }

    /// Reads up to `n <= BLOCK` bytes into the block buffer; fewer only at
    /// the end of the stream.
    fn read_up_to(&mut self, n: usize) -> io::Result<usize> {
        let mut filled = 0;
        while filled < n {
            match self.src.read(&mut self.block[filled..n]) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += filled as u64;
        Ok(filled)
    }

    /// Skips the rest of the current member's data and its padding.
    /// `Ok(false)` when the stream ends inside the padding: Go reads the
    /// padding with `tryReadFull` and takes that for the end of the archive.
    fn skip_rest(&mut self) -> io::Result<bool> {
        if self.remaining > 0 {
            self.src.skip(self.remaining)?;
            self.pos += self.remaining;
            self.remaining = 0;
        }
        let pad = std::mem::take(&mut self.padding) as usize;
        Ok(pad == 0 || self.read_up_to(pad)? == pad)
    }

    /// Reads the whole data of an extension header (GNU long name or link,
    /// PAX header) into `buf`, bounded by [`MAX_EXTENSION`] (Go
    /// `readSpecialFile`).
    fn read_special(&mut self, mut buf: Vec<u8>, what: &str, at: u64) -> io::Result<Vec<u8>> {
        let size = self.remaining;
        if size > MAX_EXTENSION {
            return Err(bad(format!(
                "{what} of {size} bytes at offset {at} exceeds the {MAX_EXTENSION}-byte limit"
            )));
        }
        buf.clear();
        buf.resize(size as usize, 0);
        self.data().read_exact(&mut buf)?;
        Ok(buf)
    }

    /// The current member's data as a reader, which ends where the member does.
    pub fn data(&mut self) -> MemberData<'_, S> {
        MemberData(self)
    }

    /// Reads data of the current member (returns 0 at its end).
    pub fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.remaining) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.src.read(&mut buf[..want])?;
        if n == 0 {
            return Err(truncated("a member"));
        }
        self.remaining -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }

    /// The next member, skipping the rest of the current one. `None` at the
    /// end of the archive. The header is an owned copy;
    /// [`TarReader::next_member`] lends one without allocating.
    pub fn next_header(&mut self) -> io::Result<Option<Header>> {
        Ok(self.next_member()?.cloned())
    }

    /// The next member, as [`TarReader::next_header`], lent from buffers the
    /// reader reuses (no allocation per member unless it has xattrs).
    pub fn next_member(&mut self) -> io::Result<Option<&Header>> {
        match self.state {
            State::Reading => {}
            State::Done => return Ok(None),
            State::Failed => {
                return Err(bad(format!(
                    "the archive could not be read past offset {}",
                    self.pos
                )));
            }
        }
        match self.advance() {
            Ok(true) => Ok(Some(&self.hdr)),
            Ok(false) => {
                self.state = State::Done;
                Ok(None)
            }
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    /// Go `Reader.next`: reads headers until one that is a member; `false`
    /// at the end of the archive.
    fn advance(&mut self) -> io::Result<bool> {
        let mut have_pax = false;
        self.long_name.clear();
        self.long_link.clear();
        loop {
            if !self.skip_rest()? {
                return Ok(false);
            }
            let start = self.pos;
            if !self.read_header_block()? {
                return Ok(false);
            }
            let raw = parse_raw(&self.block, start)?;
            // Go `handleRegularFile`, before the extensions.
            self.remaining = if header_only(raw.typeflag) {
                0
            } else {
                nonneg_size(raw.size, start)?
            };
            self.padding = padding_of(self.remaining);
            match raw.typeflag {
                b'x' | b'g' => {
                    let buf = std::mem::take(&mut self.pax_data);
                    self.pax_data = self.read_special(buf, "PAX header", start)?;
                    parse_pax(&self.pax_data, &mut self.pax)
                        .map_err(|e| bad(format!("{e} in the PAX header at offset {start}")))?;
                    if raw.typeflag == b'x' {
                        have_pax = true;
                        continue;
                    }
                    self.global_header(&raw, start)?;
                    return Ok(true);
                }
                b'L' | b'K' => {
                    let long = raw.typeflag == b'L';
                    let what = if long {
                        "GNU long name"
                    } else {
                        "GNU long link"
                    };
                    let buf = std::mem::take(if long {
                        &mut self.long_name
                    } else {
                        &mut self.long_link
                    });
                    let mut buf = self.read_special(buf, what, start)?;
                    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
                    buf.truncate(end);
                    *(if long {
                        &mut self.long_name
                    } else {
                        &mut self.long_link
                    }) = buf;
                    continue;
                }
                _ => {}
            }
            self.member(&raw, have_pax, start)?;
            return Ok(true);
        }
    }

    /// Go `readHeader`'s end-of-archive rules: `Ok(false)` at a clean end
    /// (no byte, one zero block then no byte, two zero blocks).
    fn read_header_block(&mut self) -> io::Result<bool> {
        if !self.read_block()? {
            return Ok(false);
        }
        if self.block.iter().any(|b| *b != 0) {
            return Ok(true);
        }
        let at = self.pos;
        if !self.read_block()? || self.block.iter().all(|b| *b == 0) {
            return Ok(false);
        }
        Err(bad(format!(
            "a zero block followed by a non-zero block at offset {at} (a corrupted archive)"
        )))
    }

    /// Fills `self.hdr` from a member header and the pending extensions.
    fn member(&mut self, raw: &Raw, have_pax: bool, start: u64) -> io::Result<()> {
        let b = &self.block;
        let h = &mut self.hdr;
        h.path.clear();
        if let Some(prefix) = raw.prefix.clone() {
            let prefix = cstr(&b[prefix]);
            if !prefix.is_empty() {
                h.path.extend_from_slice(prefix);
                h.path.push(b'/');
            }
        }
        h.path.extend_from_slice(cstr(&b[0..100]));
        h.link.clear();
        h.link.extend_from_slice(cstr(&b[157..257]));
        let mut typeflag = raw.typeflag;
        let mut size = raw.size;
        let (mut uid, mut gid) = (raw.uid, raw.gid);
        h.xattrs.clear();
        h.cap_schily = None;
        h.cap_libarchive = None;
        if have_pax {
            let (p, d) = (&self.pax, &self.pax_data[..]);
            if let Some(v) = nonempty(d, &p.path) {
                h.path.clear();
                h.path.extend_from_slice(v);
            }
            if let Some(v) = nonempty(d, &p.linkpath) {
                h.link.clear();
                h.link.extend_from_slice(v);
            }
            let int = |r: &Option<Range<usize>>, what: &str| -> io::Result<Option<i64>> {
                match nonempty(d, r) {
                    None => Ok(None),
                    Some(v) => go_parse_int(v).map(Some).ok_or_else(|| {
                        bad(format!(
                            "invalid PAX {what} `{}` for the member at offset {start}",
                            v.escape_ascii()
                        ))
                    }),
                }
            };
            if let Some(v) = int(&p.size, "size")? {
                size = v;
            }
            if let Some(v) = int(&p.uid, "uid")? {
                uid = v;
            }
            if let Some(v) = int(&p.gid, "gid")? {
                gid = v;
            }
            for t in &p.times {
                if let Some(v) = nonempty(d, t)
                    && !valid_pax_time(v)
                {
                    return Err(bad(format!(
                        "invalid PAX time `{}` for the member at offset {start}",
                        v.escape_ascii()
                    )));
                }
            }
            fill_xattrs(h, p, d);
            if p.sparse {
                return Err(sparse(h, start));
            }
        }
        if !self.long_name.is_empty() {
            std::mem::swap(&mut h.path, &mut self.long_name);
        }
        if !self.long_link.is_empty() {
            std::mem::swap(&mut h.link, &mut self.long_link);
        }
        if typeflag == 0 {
            typeflag = if h.path.ends_with(b"/") { b'5' } else { b'0' };
        }
        if typeflag == b'S' {
            return Err(sparse(h, start));
        }
        let what = |f: &str| {
            format!(
                "member {} (header at offset {start}) has a negative {f}",
                name(&h.path)
            )
        };
        if size < 0 {
            return Err(ambiguous(what("size")));
        }
        let (Ok(uid), Ok(gid)) = (u64::try_from(uid), u64::try_from(gid)) else {
            return Err(ambiguous(what("owner")));
        };
        if raw.mode < 0 {
            return Err(ambiguous(what("mode")));
        }
        if std::str::from_utf8(&h.path).is_err() {
            return Err(not_utf8("member name", &h.path, start));
        }
        if matches!(typeflag, b'1' | b'2') && std::str::from_utf8(&h.link).is_err() {
            return Err(not_utf8("link target", &h.link, start));
        }
        h.typeflag = typeflag;
        h.kind = Kind::of(typeflag);
        h.mode = (raw.mode & 0o7777) as u32;
        h.uid = uid;
        h.gid = gid;
        h.header_size = size as u64;
        // Go `handleRegularFile` again, after the extensions.
        h.size = if header_only(typeflag) {
            0
        } else {
            size as u64
        };
        h.data_offset = self.pos;
        self.remaining = h.size;
        self.padding = padding_of(h.size);
        Ok(())
    }

    /// Fills `self.hdr` from a PAX global header: Go returns it with only
    /// its name, typeflag and records (reader.go `next`).
    fn global_header(&mut self, raw: &Raw, start: u64) -> io::Result<()> {
        let b = &self.block;
        let h = &mut self.hdr;
        let (p, d) = (&self.pax, &self.pax_data[..]);
        h.path.clear();
        if let Some(prefix) = raw.prefix.clone() {
            let prefix = cstr(&b[prefix]);
            if !prefix.is_empty() {
                h.path.extend_from_slice(prefix);
                h.path.push(b'/');
            }
        }
        h.path.extend_from_slice(cstr(&b[0..100]));
        // Go merges the records into the header and ignores an error, which
        // stops the merge at a random record (map order) and drops them all.
        let merges = [&p.size, &p.uid, &p.gid]
            .into_iter()
            .all(|r| nonempty(d, r).is_none_or(|v| go_parse_int(v).is_some()))
            && p.times
                .iter()
                .all(|r| nonempty(d, r).is_none_or(valid_pax_time));
        h.xattrs.clear();
        h.cap_schily = None;
        h.cap_libarchive = None;
        if let Some(v) = nonempty(d, &p.path) {
            if !merges {
                return Err(ambiguous(format!(
                    "the PAX global header at offset {start} has a malformed record: Go may or may not \
                     take its name from its `path` record"
                )));
            }
            h.path.clear();
            h.path.extend_from_slice(v);
        }
        if merges {
            fill_xattrs(h, p, d);
        }
        if std::str::from_utf8(&h.path).is_err() {
            return Err(not_utf8("member name", &h.path, start));
        }
        h.link.clear();
        h.typeflag = b'g';
        h.kind = Kind::Other;
        h.mode = 0;
        h.uid = 0;
        h.gid = 0;
        h.size = 0;
        h.header_size = 0;
        h.data_offset = self.pos;
        // The long name, long link or PAX header before a `g` is dropped.
        self.long_name.clear();
        self.long_link.clear();
        Ok(())
    }
}

fn sparse(h: &Header, start: u64) -> io::Error {
    ambiguous(format!(
        "member {} (header at offset {start}) is a GNU sparse file: Go's archive/tar expands its \
         sparse map and imgscan does not (moby, containerd, containers/storage and umoci refuse \
         old GNU sparse members)",
        name(&h.path)
    ))
}

fn not_utf8(what: &str, raw: &[u8], start: u64) -> io::Error {
    ambiguous(format!(
        "{what} `{}` (header at offset {start}) is not UTF-8 (imgscan keeps paths as UTF-8; \
         runtimes use the raw bytes, so two different names could read as one)",
        raw.escape_ascii()
    ))
}

/// A member name for messages, escaped.
fn name(raw: &[u8]) -> String {
    format!("`{}`", raw.escape_ascii())
}

fn nonempty<'a>(d: &'a [u8], r: &Option<Range<usize>>) -> Option<&'a [u8]> {
    r.clone().and_then(|r| d.get(r)).filter(|v| !v.is_empty())
}

/// Copies the pending PAX header's xattr records into `h`: sorted by name,
/// the last record of a name winning.
fn fill_xattrs(h: &mut Header, p: &Pax, d: &[u8]) {
    let get = |r: &Range<usize>| d.get(r.clone()).unwrap_or_default();
    if !p.xattrs.is_empty() {
        let mut order: Vec<usize> = (0..p.xattrs.len()).collect();
        // Stable: equal names keep their record order, the last one wins.
        order.sort_by(|a, b| get(&p.xattrs[*a].0).cmp(get(&p.xattrs[*b].0)));
        for (n, i) in order.iter().enumerate() {
            let (k, v) = &p.xattrs[*i];
            if order
                .get(n + 1)
                .is_some_and(|next| get(&p.xattrs[*next].0) == get(k))
            {
                continue;
            }
            h.xattrs.push((get(k).to_vec(), get(v).to_vec()));
        }
    }
    h.cap_schily = p.cap_schily.clone().map(|r| get(&r).to_vec());
    h.cap_libarchive = p
        .cap_libarchive
        .clone()
        .and_then(|r| d.get(r))
        .filter(|v| !v.is_empty())
        .map(<[u8]>::to_vec);
}

/// The numeric fields of a header block, parsed as Go's `readHeader` does.
struct Raw {
    typeflag: u8,
    size: i64,
    mode: i64,
    uid: i64,
    gid: i64,
    /// Where the name prefix is, if the format has one.
    prefix: Option<Range<usize>>,
}

/// Go `getFormat` and `readHeader`: checks the checksum, tells the format
/// and parses every numeric field Go parses (an error in any fails the
/// header).
fn parse_raw(b: &[u8; BLOCK], start: u64) -> io::Result<Raw> {
    verify_checksum(b, start)?;
    let magic = &b[257..263];
    let format = if magic == b"ustar\0" {
        if &b[508..512] == b"tar\0" {
            Format::Star
        } else {
            Format::Ustar
        }
    } else if magic == b"ustar " && &b[263..265] == b" \0" {
        Format::Gnu
    } else {
        Format::V7
    };
    let num = |r: Range<usize>, what: &str| {
        parse_numeric(&b[r]).ok_or_else(|| {
            bad(format!(
                "invalid {what} field in the tar header at offset {start} (not a tar archive, or corrupted)"
            ))
        })
    };
    let raw = |prefix| -> io::Result<Raw> {
        Ok(Raw {
            typeflag: b[156],
            size: num(124..136, "size")?,
            mode: num(100..108, "mode")?,
            uid: num(108..116, "uid")?,
            gid: num(116..124, "gid")?,
            prefix,
        })
    };
    num(136..148, "mtime")?;
    if format == Format::V7 {
        return raw(None);
    }
    num(329..337, "devmajor")?;
    num(337..345, "devminor")?;
    let prefix = match format {
        Format::Ustar => Some(345..500),
        Format::Star => {
            num(476..488, "atime")?;
            num(488..500, "ctime")?;
            Some(345..476)
        }
        _ => {
            // GNU has no prefix; Go's fallback for archives from pre-1.8 Go
            // writers uses the ustar prefix when atime/ctime do not parse.
            let bad_time = |r: Range<usize>| b[r.start] != 0 && parse_numeric(&b[r]).is_none();
            (bad_time(345..357) || bad_time(357..369))
                .then_some(345..500)
                .filter(|r| cstr(&b[r.clone()]).is_ascii())
        }
    };
    raw(prefix)
}

fn nonneg_size(size: i64, start: u64) -> io::Result<u64> {
    u64::try_from(size)
        .map_err(|_| bad(format!("negative size in the tar header at offset {start}")))
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

fn verify_checksum(b: &[u8; BLOCK], offset: u64) -> io::Result<()> {
    let stored = parse_octal(&b[148..156]).ok_or_else(|| {
        bad(format!(
            "bad tar header checksum field at offset {offset} (not a tar archive, or corrupted)"
        ))
    })?;
    // The sum of the block with the checksum field counted as spaces, as
    // plain u32 sums that vectorise (this runs for every member; 512 × 255
    // fits). The signed sum some old writers used is computed only if the
    // unsigned one does not match.
    let field = |f: fn(u8) -> i64| b[148..156].iter().map(|v| f(*v)).sum::<i64>();
    let unsigned = i64::from(b.iter().map(|v| u32::from(*v)).sum::<u32>()) - field(i64::from)
        + 8 * i64::from(b' ');
    if stored == unsigned {
        return Ok(());
    }
    let signed: i64 = i64::from(b.iter().map(|v| i32::from(*v as i8)).sum::<i32>())
        - field(|v| i64::from(v as i8))
        + 8 * i64::from(b' ');
    if stored == signed {
        Ok(())
    } else {
        Err(bad(format!(
            "bad tar header checksum at offset {offset} (not a tar archive, or corrupted)"
        )))
    }
}

/// Go `parser.parseNumeric`: base-256 when the top bit is set (two's
/// complement, at most 63 bits), else octal. `None` where Go sets an error.
fn parse_numeric(field: &[u8]) -> Option<i64> {
    let first = *field.first()?;
    if first & 0x80 == 0 {
        return parse_octal(field);
    }
    let inv = if first & 0x40 != 0 { 0xff } else { 0 };
    let mut x: u64 = 0;
    for (i, c) in field.iter().enumerate() {
        let mut c = c ^ inv;
        if i == 0 {
            c &= 0x7f;
        }
        if x >> 56 > 0 {
            return None;
        }
        x = (x << 8) | u64::from(c);
    }
    if x >> 63 > 0 {
        return None;
    }
    let x = x as i64;
    Some(if inv == 0xff { !x } else { x })
}

/// Go `parser.parseOctal`: trims leading and trailing spaces and NULs, cuts
/// at the first NUL, then `strconv.ParseUint(s, 8, 64)`.
fn parse_octal(field: &[u8]) -> Option<i64> {
    // The form every writer uses, digits from the first byte on and then
    // only padding (`0000755\0`, `00000001750 `), in one pass: Go's trim,
    // cut and parse give the same number for it. Fields are at most 12
    // bytes, so 12 octal digits cannot overflow.
    let mut x: u64 = 0;
    let mut i = 0;
    while let Some(&c) = field.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 7 {
            break;
        }
        x = (x << 3) | u64::from(d);
        i += 1;
    }
    if i > 0 && field.len() <= 12 && field[i..].iter().all(|b| *b == b' ' || *b == 0) {
        return Some(x as i64);
    }
    parse_octal_go(field)
}

/// [`parse_octal`] for every other form, step by step as Go does it.
fn parse_octal_go(field: &[u8]) -> Option<i64> {
    let pad = |b: &u8| *b == b' ' || *b == 0;
    let Some(from) = field.iter().position(|b| !pad(b)) else {
        return Some(0);
    };
    let to = field
        .iter()
        .rposition(|b| !pad(b))
        .map_or(field.len(), |i| i + 1);
    let digits = cstr(&field[from..to]);
    let mut x: u64 = 0;
    for c in digits {
        if !(b'0'..=b'7').contains(c) {
            return None;
        }
        x = x.checked_mul(8)?.checked_add(u64::from(c - b'0'))?;
    }
    // ParseUint refuses an empty string; a cut at a NUL cannot leave one
    // here (the first byte is not padding), but keep Go's rule.
    (!digits.is_empty()).then_some(x as i64)
}

/// Go `strconv.ParseInt(s, 10, 64)`: an optional sign, then decimal digits.
fn go_parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut x: u64 = 0;
    for c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        x = x.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        (x <= 1 << 63).then(|| (x as i64).wrapping_neg())
    } else {
        i64::try_from(x).ok()
    }
}

/// Go `parsePAXTime`'s checks: decimal seconds (`ParseInt`), optionally a
/// `.` and only digits after it.
fn valid_pax_time(v: &[u8]) -> bool {
    let (secs, frac) = match v.iter().position(|b| *b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[][..]),
    };
    go_parse_int(secs).is_some() && frac.iter().all(u8::is_ascii_digit)
}

/// Go `parsePAXRecord`: one `"%d %s=%s\n"` record at the start of `s`;
/// (key, value, length) as offsets into `s`.
fn pax_record(s: &[u8]) -> Result<(Range<usize>, Range<usize>, usize), &'static str> {
    const BAD: &str = "a malformed PAX record";
    let sp = s.iter().position(|b| *b == b' ').ok_or(BAD)?;
    let n = go_parse_int(&s[..sp]).ok_or(BAD)?;
    if n < 5 || n > s.len() as i64 || n <= (sp + 1) as i64 {
        return Err(BAD);
    }
    let n = n as usize;
    if s[n - 1] != b'\n' {
        return Err(BAD);
    }
    let rec = sp + 1..n - 1;
    let eq = s[rec.clone()].iter().position(|b| *b == b'=').ok_or(BAD)? + rec.start;
    let (k, v) = (rec.start..eq, eq + 1..rec.end);
    // Go `validPAXRecord`.
    let key = &s[k.clone()];
    let valid = !key.is_empty()
        && match key {
            b"path" | b"linkpath" | b"uname" | b"gname" => !s[v.clone()].contains(&0),
            _ => !key.contains(&0),
        };
    if !valid {
        return Err("an invalid PAX record (empty key, or NUL in a key or a name)");
    }
    Ok((k, v, n))
}

/// Go `parsePAX` and the sparse-format detection of
/// `readGNUSparsePAXHeaders`: fills `pax` from the records in `data`.
fn parse_pax(data: &[u8], pax: &mut Pax) -> Result<(), &'static str> {
    pax.clear();
    let (mut major, mut minor, mut map) = (None, None, None);
    // GNU sparse 0.0 `offset`/`numbytes` records, joined into a map by Go.
    let mut sparse_records = 0usize;
    let mut first_sparse_empty = false;
    let mut at = 0;
    while at < data.len() {
        let (k, v, n) = pax_record(&data[at..])?;
        let (k, v) = (k.start + at..k.end + at, v.start + at..v.end + at);
        at += n;
        let key = &data[k.clone()];
        let slot = match key {
            b"path" => &mut pax.path,
            b"linkpath" => &mut pax.linkpath,
            b"size" => &mut pax.size,
            b"uid" => &mut pax.uid,
            b"gid" => &mut pax.gid,
            b"mtime" => &mut pax.times[0],
            b"atime" => &mut pax.times[1],
            b"ctime" => &mut pax.times[2],
            b"GNU.sparse.major" => &mut major,
            b"GNU.sparse.minor" => &mut minor,
            b"GNU.sparse.map" => &mut map,
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                let want: &[u8] = if sparse_records.is_multiple_of(2) {
                    b"GNU.sparse.offset"
                } else {
                    b"GNU.sparse.numbytes"
                };
                if key != want || data[v.clone()].contains(&b',') {
                    return Err("misordered GNU sparse 0.0 records");
                }
                if sparse_records == 0 {
                    first_sparse_empty = v.is_empty();
                }
                sparse_records += 1;
                continue;
            }
            b"SCHILY.xattr.security.capability" => {
                pax.xattrs.push((k.start + 13..k.end, v.clone()));
                &mut pax.cap_schily
            }
            b"LIBARCHIVE.xattr.security.capability" => &mut pax.cap_libarchive,
            _ => {
                if key.starts_with(b"SCHILY.xattr.") {
                    pax.xattrs.push((k.start + 13..k.end, v));
                }
                continue;
            }
        };
        *slot = Some(v);
    }
    let val = |r: &Option<Range<usize>>| r.clone().map_or(&[][..], |r| &data[r]);
    let map_nonempty = if sparse_records > 0 {
        !(sparse_records == 1 && first_sparse_empty)
    } else {
        !val(&map).is_empty()
    };
    pax.sparse = match (val(&major), val(&minor)) {
        (b"0", b"0" | b"1") | (b"1", b"0") => true,
        (b"", b"") => map_nonempty,
        _ => false,
    };
    Ok(())
}

/// The current member's data ([`TarReader::data`]).
pub struct MemberData<'a, S>(&'a mut TarReader<S>);

impl<S: TarSource> Read for MemberData<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_data(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn all(data: &[u8]) -> io::Result<Vec<Header>> {
        let mut r = TarReader::new(Streaming::new(data));
        let mut v = Vec::new();
        while let Some(h) = r.next_header()? {
            v.push(h);
        }
        Ok(v)
    }

    fn names(data: &[u8]) -> Vec<String> {
        all(data)
            .unwrap()
            .iter()
            .map(|h| String::from_utf8(h.path.clone()).unwrap())
            .collect()
    }

    fn err(data: &[u8]) -> String {
        all(data).unwrap_err().to_string()
    }

    // Raw headers, written byte by byte: the hostile cases the `tar` crate
    // will not write.

    /// A ustar header block (checksum left to [`seal`]).
    fn raw(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..name.len()].copy_from_slice(name);
        octal(&mut b, 100..108, 0o644);
        octal(&mut b, 108..116, 0);
        octal(&mut b, 116..124, 0);
        octal(&mut b, 124..136, size);
        octal(&mut b, 136..148, 0);
        b[156] = typeflag;
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        b
    }

    fn octal(b: &mut [u8; BLOCK], r: Range<usize>, v: u64) {
        let s = format!("{v:0w$o}\0", w = r.len() - 1);
        b[r].copy_from_slice(s.as_bytes());
    }

    /// Writes a correct checksum.
    fn seal(mut b: [u8; BLOCK]) -> [u8; BLOCK] {
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|v| u32::from(*v)).sum();
        let s = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(s.as_bytes());
        b
    }

    /// A sealed header followed by `data`, padded.
    fn entry(b: [u8; BLOCK], data: &[u8]) -> Vec<u8> {
        let mut v = seal(b).to_vec();
        v.extend_from_slice(data);
        v.resize(v.len().next_multiple_of(BLOCK), 0);
        v
    }

    fn pax_data(records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in records {
            let body = k.len() + v.len() + 3;
            let mut n = body + body.to_string().len();
            if (n).to_string().len() != body.to_string().len() {
                n = body + n.to_string().len();
            }
            out.extend_from_slice(format!("{n} ").as_bytes());
            out.extend_from_slice(k);
            out.push(b'=');
            out.extend_from_slice(v);
            out.push(b'\n');
        }
        out
    }

    fn pax(records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let d = pax_data(records);
        entry(raw(b"PaxHeaders/x", b'x', d.len() as u64), &d)
    }

    fn gnu_long(typeflag: u8, name: &[u8]) -> Vec<u8> {
        let mut b = raw(b"././@LongLink", typeflag, name.len() as u64);
        b[257..265].copy_from_slice(b"ustar  \0");
        entry(b, name)
    }

    fn end(mut v: Vec<u8>) -> Vec<u8> {
        v.extend_from_slice(&[0; 2 * BLOCK]);
        v
    }

    fn setuid_su() -> Vec<u8> {
        let mut b = raw(b"usr/bin/su", b'0', 4);
        octal(&mut b, 100..108, 0o104755);
        entry(b, b"\x7fELF")
    }

    /// Ordinary archives: files, GNU long names and PAX xattrs read as written.
    #[test]
    fn reads_files_long_names_and_pax_xattrs() {
        let long = format!("usr/{}/bin/x", "d".repeat(200));
        let data = build(|b| {
            file(b, "etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n");
            file(b, &long, 0o104755, b"x");
            let mut h = tar::Header::new_ustar();
            h.set_size(0);
            h.set_mode(0o755);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_pax_extensions([(
                "SCHILY.xattr.security.capability",
                &b"\x01\x00\x00\x02\n\x00=\x00"[..],
            )])
            .unwrap();
            b.append_data(&mut h, "usr/bin/ping", &b""[..]).unwrap();
        });
        let hs = all(&data).unwrap();
        assert_eq!(hs.len(), 3);
        assert_eq!(hs[0].path, b"etc/passwd");
        assert_eq!(hs[1].path, long.as_bytes());
        assert_eq!(hs[1].mode, 0o4755);
        assert_eq!(
            hs[2].cap_schily.as_deref(),
            Some(&b"\x01\x00\x00\x02\n\x00=\x00"[..])
        );
        assert_eq!(
            hs[2].xattrs,
            vec![(
                b"security.capability".to_vec(),
                b"\x01\x00\x00\x02\n\x00=\x00".to_vec()
            )]
        );
    }

    /// A stream cut inside a header or member data, or garbage, is an error.
    #[test]
    fn truncated_and_garbage_are_errors() {
        let data = build(|b| file(b, "a", 0o644, &[1u8; 3000]));
        assert!(all(&data[..1500]).is_err());
        assert!(all(&data[..700]).is_err());
        assert!(all(&[b'x'; 1024]).is_err());
        // A clean end of stream without the zero blocks is accepted.
        assert_eq!(all(&data[..512 + 3072]).unwrap().len(), 1);
    }

    /// A stream that ends inside the padding after member data is a clean end (Go `tryReadFull`).
    #[test]
    fn end_inside_padding_is_a_clean_end() {
        let data = entry(raw(b"a", b'0', 3), b"abc");
        assert_eq!(names(&data[..512 + 100]), ["a"]);
        assert!(all(&data[..512 + 2]).is_err(), "inside the data");
    }

    /// One zero block then a header is an error, not the end (Go `readHeader`: ErrHeader).
    #[test]
    fn zero_block_then_header_is_an_error() {
        let mut data = entry(raw(b"a", b'0', 0), b"");
        data.extend_from_slice(&[0; BLOCK]);
        data.extend(setuid_su());
        assert!(err(&data).contains("zero block"), "{}", err(&data));
        // One zero block then the end of the stream, or a zero block and
        // garbage after two: clean ends.
        let mut one = entry(raw(b"a", b'0', 0), b"");
        one.extend_from_slice(&[0; BLOCK]);
        assert_eq!(names(&one), ["a"]);
        let mut two = end(one.clone());
        two.extend(setuid_su());
        assert_eq!(names(&two), ["a"]);
        one.extend_from_slice(&[0; 100]);
        assert!(all(&one).is_err(), "a partial block after a zero block");
    }

    /// Extension data over 1 MiB is refused (Go `maxSpecialFileSize`), before it is read.
    #[test]
    fn oversized_extension_is_refused() {
        let mut h = tar::Header::new_gnu();
        h.set_size(MAX_EXTENSION + 1);
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_path("././@LongLink").unwrap();
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend(std::iter::repeat_n(b'a', 4096));
        let err = all(&data).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
    }

    /// Hard links, symlinks, devices, dirs and FIFOs carry no data whatever `size` says (Go `isHeaderOnlyType`).
    #[test]
    fn header_only_types_carry_no_data() {
        let hidden = setuid_su();
        for t in [b'1', b'2', b'3', b'4', b'5', b'6'] {
            let mut data = entry(raw(b"innocent", t, hidden.len() as u64), b"");
            data.extend_from_slice(&hidden);
            let hs = all(&end(data)).unwrap();
            assert_eq!(hs.len(), 2, "typeflag {}", t as char);
            assert_eq!((hs[0].size, hs[0].header_size), (0, hidden.len() as u64));
            assert_eq!(hs[1].path, b"usr/bin/su");
            assert_eq!(hs[1].mode, 0o4755);
        }
        // The same with the size in a PAX record.
        let n = hidden.len().to_string();
        let mut data = pax(&[(b"size", n.as_bytes())]);
        data.extend(entry(raw(b"innocent", b'2', 0), b""));
        data.extend_from_slice(&hidden);
        assert_eq!(names(&end(data)), ["innocent", "usr/bin/su"]);
    }

    /// A symlink's "data" cannot hide a second manifest.json in a docker-archive.
    #[test]
    fn header_only_member_cannot_hide_a_second_manifest() {
        let second = entry(raw(b"manifest.json", b'0', 2), b"[]");
        let mut data = entry(raw(b"manifest.json", b'0', 2), b"{}");
        data.extend(entry(raw(b"layer.tar", b'2', second.len() as u64), b""));
        data.extend(second);
        assert_eq!(
            names(&end(data)),
            ["manifest.json", "layer.tar", "manifest.json"]
        );
    }

    /// A non-empty GNU long name wins over PAX `path` in either order; an empty one is ignored.
    #[test]
    fn gnu_long_name_wins_over_pax_path() {
        let member = || entry(raw(b"short", b'2', 0), b"");
        for long_first in [true, false] {
            let (l, k) = (
                gnu_long(b'L', b"from/gnu\0junk"),
                gnu_long(b'K', b"gnu-target"),
            );
            let x = pax(&[(b"path", b"from/pax"), (b"linkpath", b"pax-target")]);
            let data = if long_first {
                [l, k, x, member()].concat()
            } else {
                [x, l, k, member()].concat()
            };
            let hs = all(&end(data)).unwrap();
            assert_eq!(hs.len(), 1);
            assert_eq!(hs[0].path, b"from/gnu", "cut at the first NUL");
            assert_eq!(hs[0].link, b"gnu-target");
        }
        let data = [
            gnu_long(b'L', b"first"),
            gnu_long(b'L', b"\0"),
            pax(&[(b"path", b"from/pax")]),
            member(),
        ]
        .concat();
        assert_eq!(names(&end(data)), ["from/pax"]);
    }

    /// A `g` header is a member of type `g`, and the `x`/`L` before it do not reach the next member.
    #[test]
    fn global_header_is_a_member_and_drops_pending_extensions() {
        let g = pax_data(&[(b"path", b"global/name"), (b"SCHILY.xattr.user.a", b"1")]);
        let data = [
            pax(&[(b"path", b"usr/bin/su"), (b"uid", b"0")]),
            gnu_long(b'L', b"usr/bin/sudo"),
            entry(raw(b"pax_global_header", b'g', g.len() as u64), &g),
            entry(raw(b"harmless", b'0', 0), b""),
        ]
        .concat();
        let hs = all(&end(data)).unwrap();
        assert_eq!(hs.len(), 2);
        assert_eq!((hs[0].typeflag, hs[0].kind), (b'g', Kind::Other));
        assert_eq!(hs[0].path, b"global/name");
        assert_eq!(hs[0].xattrs, vec![(b"user.a".to_vec(), b"1".to_vec())]);
        assert_eq!(hs[1].path, b"harmless");
    }

    /// `GNU.sparse.*` records on a member Go does not read as sparse are ignored; sparse members are refused.
    #[test]
    fn gnu_sparse_records_are_ignored_unless_go_reads_the_member_as_sparse() {
        let member = || entry(raw(b"a", b'0', 0), b"");
        let with = |recs: &[(&[u8], &[u8])]| end([pax(recs), member()].concat());
        assert_eq!(names(&with(&[(b"GNU.sparse.name", b"usr/bin/su")])), ["a"]);
        assert_eq!(
            names(&with(&[
                (b"GNU.sparse.name", b"usr/bin/su"),
                (b"GNU.sparse.major", b"2"),
                (b"GNU.sparse.map", b"0,1"),
            ])),
            ["a"]
        );
        for recs in [
            &[
                (&b"GNU.sparse.major"[..], &b"1"[..]),
                (b"GNU.sparse.minor", b"0"),
            ][..],
            &[(b"GNU.sparse.major", b"0"), (b"GNU.sparse.minor", b"1")],
            &[(b"GNU.sparse.map", b"0,0")],
            &[(b"GNU.sparse.offset", b"0"), (b"GNU.sparse.numbytes", b"0")],
        ] {
            assert!(
                err(&with(recs)).starts_with("ambiguous image: "),
                "{recs:?}"
            );
        }
        // Go: one empty 0.0 offset record makes an empty map: not sparse.
        assert_eq!(
            names(&with(&[
                (b"GNU.sparse.offset", b""),
                (b"GNU.sparse.map", b"0,1")
            ])),
            ["a"]
        );
        // Misordered 0.0 records: Go ErrHeader.
        assert!(!err(&with(&[(b"GNU.sparse.numbytes", b"0")])).starts_with("ambiguous"));
        let mut s = raw(b"sparse", b'S', 0);
        s[257..265].copy_from_slice(b"ustar  \0");
        assert!(err(&end(entry(s, b""))).contains("sparse"));
    }

    /// A NUL-typeflag member named `x/` is a directory (no data); a `0` one stays a file, V7 too.
    #[test]
    fn nul_typeflag_with_trailing_slash_is_a_dir_but_zero_typeflag_stays_a_file() {
        let hidden = setuid_su();
        let mut data = entry(raw(b"d/", 0, hidden.len() as u64), b"");
        data.extend_from_slice(&hidden);
        let hs = all(&end(data)).unwrap();
        assert_eq!(
            (hs[0].kind, hs[0].typeflag, hs[0].size),
            (Kind::Dir, b'5', 0)
        );
        assert_eq!(hs[1].path, b"usr/bin/su");
        for v7 in [false, true] {
            let mut b = raw(b"f/", b'0', 3);
            if v7 {
                b[257..265].fill(0);
            }
            let hs = all(&end(entry(b, b"abc"))).unwrap();
            assert_eq!((hs.len(), hs[0].kind, hs[0].size), (1, Kind::File, 3));
        }
        let hs = all(&end(entry(raw(b"f", 0, 0), b""))).unwrap();
        assert_eq!((hs[0].kind, hs[0].typeflag), (Kind::File, b'0'));
    }

    /// STAR's prefix is 131 bytes, ustar's 155; GNU has none unless its times do not parse (Go `readHeader`).
    #[test]
    fn prefix_width_follows_the_format() {
        let mut b = raw(b"name", b'0', 0);
        b[345..476].fill(b'p');
        b[476..500].copy_from_slice(b"00000000000\x0000000000000\0");
        let ustar = names(&end(entry(b, b"")));
        assert_eq!(ustar, [format!("{}00000000000/name", "p".repeat(131))]);
        b[508..512].copy_from_slice(b"tar\0");
        assert_eq!(
            names(&end(entry(b, b""))),
            [format!("{}/name", "p".repeat(131))]
        );
        // A STAR atime that does not parse fails the header.
        b[476] = b'x';
        assert!(all(&end(entry(b, b""))).is_err());
        let mut g = raw(b"name", b'0', 0);
        g[257..265].copy_from_slice(b"ustar  \0");
        g[345..369].copy_from_slice(b"00000000000\x0000000000000\0");
        assert_eq!(names(&end(entry(g, b""))), ["name"]);
        g[345..369].fill(0);
        g[345..348].copy_from_slice(b"pre");
        assert_eq!(names(&end(entry(g, b""))), ["pre/name"]);
        // Magic `ustar ` with another version is V7: no prefix, no devmajor.
        g[263..265].copy_from_slice(b"00");
        g[329] = b'x';
        assert_eq!(names(&end(entry(g, b""))), ["name"]);
    }

    /// Checksums: the unsigned or the signed sum, the field parsed as Go's octal.
    #[test]
    fn checksum_is_go_octal_and_the_unsigned_or_signed_sum() {
        let mut b = raw(b"\xc3\xa9t\xc3\xa9", b'0', 0);
        b[148..156].fill(b' ');
        let signed: i32 = b.iter().map(|v| i32::from(*v as i8)).sum();
        b[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        assert_eq!(names(&end(b.to_vec())), ["été"]);
        let mut b = seal(raw(b"a", b'0', 0));
        b[150] = b' ';
        assert!(err(&end(b.to_vec())).contains("checksum"));
    }

    /// The one-pass octal reading agrees with Go's step-by-step one.
    #[test]
    fn octal_fast_path_is_go_s_reading() {
        // Every field of digits, spaces, NULs and one odd byte, as 8 and 12
        // bytes: the one-pass reading equals Go's trim, cut and parse.
        let alphabet = [b'0', b'1', b'7', b'8', b' ', 0, b'x'];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for len in [8usize, 12] {
            for _ in 0..20_000 {
                let field: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        alphabet[(seed % alphabet.len() as u64) as usize]
                    })
                    .collect();
                assert_eq!(parse_octal(&field), parse_octal_go(&field), "{field:?}");
            }
        }
    }

    /// Numeric fields parse as Go `parseNumeric`: trimmed, cut at a NUL, all octal, or base-256.
    #[test]
    fn numeric_fields_parse_as_go_parse_numeric() {
        assert_eq!(parse_numeric(b"0000755\0"), Some(0o755));
        assert_eq!(parse_numeric(b"  755 \0\0"), Some(0o755));
        assert_eq!(parse_numeric(b"75\x005    "), Some(0o75));
        assert_eq!(parse_numeric(b"\0\0\0\0"), Some(0));
        assert_eq!(
            parse_numeric(b"755 abc\0"),
            None,
            "Go: ParseUint(\"755 abc\")"
        );
        assert_eq!(parse_numeric(b"12x"), None);
        assert_eq!(parse_numeric(b"+755"), None);
        assert_eq!(
            parse_numeric(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Some(256)
        );
        assert_eq!(parse_numeric(&[0xff; 12]), Some(-1));
        assert_eq!(
            parse_numeric(&[0x80, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(
            parse_numeric(&[
                0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ]),
            Some(i64::MAX)
        );
        assert_eq!(go_parse_int(b"+5"), Some(5));
        assert_eq!(go_parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(go_parse_int(b"9223372036854775808"), None);
        assert_eq!(go_parse_int(b"1_0"), None);
        assert_eq!(go_parse_int(b""), None);
        assert!(valid_pax_time(b"-1.5") && valid_pax_time(b"7.") && !valid_pax_time(b".5"));
        assert!(!valid_pax_time(b"1.2.3"));
    }

    /// Every numeric field Go parses is checked (mtime, devmajor...), not only the ones imgscan uses.
    #[test]
    fn unused_numeric_fields_are_checked() {
        let mut b = raw(b"a", b'0', 0);
        b[136..148].copy_from_slice(b"1 2\0\0\0\0\0\0\0\0\0");
        assert!(err(&end(entry(b, b""))).contains("mtime"));
        let mut b = raw(b"a", b'0', 0);
        b[329] = b'9';
        assert!(err(&end(entry(b, b""))).contains("devmajor"));
        // V7 has no device fields.
        b[257..265].fill(0);
        assert_eq!(names(&end(entry(b, b""))), ["a"]);
        // ... and in extension headers too.
        let mut x = raw(b"PaxHeaders/x", b'x', 0);
        x[108] = b'z';
        assert!(
            all(&end(
                [entry(x, b""), entry(raw(b"a", b'0', 0), b"")].concat()
            ))
            .is_err()
        );
    }

    /// Negative sizes and owners are refused.
    #[test]
    fn negative_numbers_are_refused() {
        let mut b = raw(b"a", b'0', 0);
        b[124..136].fill(0xff);
        assert!(all(&end(entry(b, b""))).is_err());
        let data = [pax(&[(b"size", b"-1")]), entry(raw(b"a", b'0', 0), b"")].concat();
        assert!(all(&end(data)).is_err());
        let data = [pax(&[(b"uid", b"-1")]), entry(raw(b"a", b'0', 0), b"")].concat();
        assert!(err(&end(data)).starts_with("ambiguous image: "));
    }

    /// PAX records as Go `parsePAXRecord`/`validPAXRecord`/`mergePAX` read them.
    #[test]
    fn pax_records_parse_validate_and_merge_as_go() {
        let one = |recs: &[u8]| {
            let x = entry(raw(b"PaxHeaders/a", b'x', recs.len() as u64), recs);
            all(&end([x, entry(raw(b"a", b'0', 0), b"")].concat()))
        };
        let path = |recs: &[u8]| one(recs).map(|h| h[0].path.clone());
        assert_eq!(path(b"12 path=x\ny\n").unwrap(), b"x\ny");
        assert!(
            path(b"11 path=xy\n\0\0\0\0").is_err(),
            "NUL padding is not a record"
        );
        assert!(path(b"11 path=\0y\n").is_err(), "NUL in a path");
        assert!(path(b"9 a\0b=yy\n").is_err(), "NUL in a key");
        assert!(path(b"7 =yyy\n").is_err(), "empty key");
        assert!(path(b"99 path=x\n").is_err());
        assert!(path(b"4 a=\n").is_err(), "shorter than 5");
        assert_eq!(
            path(b"+11 path=x\n").unwrap(),
            b"x",
            "Go ParseInt takes a sign"
        );
        assert_eq!(
            path(b"9 user=\0\n").unwrap(),
            b"a",
            "NUL in other values is fine"
        );
        // Last record wins, an empty value keeps the header's name.
        assert_eq!(path(b"10 path=b\n8 path=\n").unwrap(), b"a");
        assert_eq!(path(b"8 path=\n10 path=b\n").unwrap(), b"b");
        let h = one(b"10 uid=+7\n13 mtime=1.5\n").unwrap();
        assert_eq!(h[0].uid, 7);
        assert!(one(b"10 uid=7x\n").is_err());
        assert!(one(b"13 mtime=1.x\n").is_err());
        // Duplicate xattrs: the last one, names sorted.
        let h =
            one(b"25 SCHILY.xattr.user.b=1\n25 SCHILY.xattr.user.a=2\n25 SCHILY.xattr.user.b=3\n")
                .unwrap();
        assert_eq!(
            h[0].xattrs,
            vec![
                (b"user.a".to_vec(), b"2".to_vec()),
                (b"user.b".to_vec(), b"3".to_vec())
            ]
        );
    }

    /// `X` is not an extension header in Go: it is a member of that type, with its data.
    #[test]
    fn solaris_x_is_a_member() {
        let recs = pax_data(&[(b"path", b"usr/bin/su")]);
        let data = [
            entry(raw(b"x-header", b'X', recs.len() as u64), &recs),
            entry(raw(b"a", b'0', 0), b""),
        ]
        .concat();
        let hs = all(&end(data)).unwrap();
        assert_eq!(hs.len(), 2);
        assert_eq!(
            (hs[0].kind, hs[0].typeflag, hs[0].size),
            (Kind::Other, b'X', recs.len() as u64)
        );
        assert_eq!(hs[1].path, b"a");
    }

    /// Types runtimes refuse (`7`, `D`, ...) are `Kind::Other`, never a file or a directory.
    #[test]
    fn unhandled_typeflags_are_other() {
        for t in [b'7', b'D', b'V', b'M', b'A'] {
            let hs = all(&end(entry(raw(b"a", t, 1), b"z"))).unwrap();
            assert_eq!(
                (hs[0].kind, hs[0].typeflag, hs[0].size),
                (Kind::Other, t, 1)
            );
        }
    }

    /// A name or link target that is not UTF-8 is refused: `\xff` and `\xfe` must not become one path.
    #[test]
    fn non_utf8_names_are_refused() {
        let e = err(&end(entry(raw(b"usr/bin/\xff", b'0', 0), b"")));
        assert!(
            e.starts_with("ambiguous image: member name `usr/bin/\\xff`"),
            "{e}"
        );
        assert!(e.contains("is not UTF-8"), "{e}");
        let mut b = raw(b"l", b'2', 0);
        b[157..160].copy_from_slice(b"\xfe/x");
        assert!(err(&end(entry(b, b""))).contains("link target `\\xfe/x`"));
        let data = [gnu_long(b'L', b"\xc0\xaf"), entry(raw(b"ok", b'0', 0), b"")].concat();
        assert!(err(&end(data)).starts_with("ambiguous image: "));
        // A regular file's unused link field may hold anything.
        let mut b = raw(b"f", b'0', 0);
        b[157] = 0xff;
        assert_eq!(names(&end(entry(b, b""))), ["f"]);
    }

    /// Errors are sticky: a reader never goes on past a bad header.
    #[test]
    fn errors_are_sticky() {
        let data = [entry(raw(b"\xff", b'0', 0), b""), setuid_su()].concat();
        let mut r = TarReader::new(Streaming::new(&data[..]));
        assert!(r.next_member().is_err());
        assert!(r.next_member().is_err());
    }
}
