//! A streaming, bounded tar reader for hostile input.
//!
//! Why not `tar::Archive`: tar-rs reads GNU long names and PAX extension
//! headers into memory with no size limit (`EntryFields::read_all`), so a
//! crafted layer can make a scanner allocate gigabytes; it also offers no way
//! to seek over member data of an outer archive while streaming the same bytes
//! through a hash. This reader handles exactly what image layers use (ustar,
//! GNU and PAX headers, GNU long names, PAX `path`/`linkpath`/`size`/`uid`/
//! `gid`, GNU and PAX sparse names, xattr records) with every allocation
//! bounded by [`MAX_EXTENSION`]. The `tar` crate is still what the tests use
//! to *write* archives.
//!
//! # Security
//!
//! Names are returned as raw bytes; nothing here touches the filesystem.
//! Malformed headers (bad checksum, bad numbers, oversized extensions, a
//! stream that ends inside a member) are errors, never panics.

use std::io::{self, Read, Seek};

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

/// The type of a tar member, from its typeflag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Regular file (`0`, NUL, `7`, GNU sparse `S`).
    File,
    /// Hard link (`1`) to an earlier member.
    Hardlink,
    /// Symbolic link (`2`).
    Symlink,
    /// Character device (`3`).
    CharDevice,
    /// Block device (`4`).
    BlockDevice,
    /// Directory (`5`, GNU dumpdir `D`).
    Dir,
    /// FIFO (`6`).
    Fifo,
    /// Anything else (volume labels, vendor types): kept, never a file.
    Other,
}

impl Kind {
    /// Lowercase name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Hardlink => "hardlink",
            Self::Symlink => "symlink",
            Self::CharDevice => "char-device",
            Self::BlockDevice => "block-device",
            Self::Dir => "dir",
            Self::Fifo => "fifo",
            Self::Other => "other",
        }
    }
}

/// One member header, with extensions applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The member name as stored (raw bytes, not normalised).
    pub path: Vec<u8>,
    /// Link target for hard and symbolic links.
    pub link: Vec<u8>,
    /// The member type.
    pub kind: Kind,
    /// Permission bits, masked to `0o7777` (old writers put type bits there).
    pub mode: u32,
    /// Owner uid (PAX `uid` wins over the header).
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// Bytes of member data that follow the header.
    pub size: u64,
    /// Offset of the member data from the start of the stream.
    pub data_offset: u64,
    /// Raw `security.capability` from `SCHILY.xattr.security.capability`.
    pub cap_schily: Option<Vec<u8>>,
    /// Raw (base64) `LIBARCHIVE.xattr.security.capability`.
    pub cap_libarchive: Option<Vec<u8>>,
}

/// Reads members one after another.
pub struct TarReader<S> {
    src: S,
    pos: u64,
    /// Data bytes of the current member not yet read, and its padding.
    remaining: u64,
    padding: u64,
    done: bool,
    block: [u8; BLOCK],
    /// The current member's header, its buffers reused.
    hdr: Header,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<S: TarSource> TarReader<S> {
    /// Starts reading at the beginning of `src`.
    pub fn new(src: S) -> Self {
        Self {
            src,
            pos: 0,
            remaining: 0,
            padding: 0,
            done: false,
            block: [0; BLOCK],
            hdr: Header {
                path: Vec::new(),
                link: Vec::new(),
                kind: Kind::File,
                mode: 0,
                uid: 0,
                gid: 0,
                size: 0,
                data_offset: 0,
                cap_schily: None,
                cap_libarchive: None,
            },
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

    fn read_block(&mut self) -> io::Result<bool> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.src.read(&mut self.block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += filled as u64;
        match filled {
            0 => Ok(false),
            BLOCK => Ok(true),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("archive ends inside a header at offset {}", self.pos),
            )),
        }
    }

    fn skip_rest(&mut self) -> io::Result<()> {
        let n = self.remaining + self.padding;
        if n > 0 {
            self.src.skip(n)?;
            self.pos += n;
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    fn read_extension(&mut self, size: u64, what: &str) -> io::Result<Vec<u8>> {
        if size > MAX_EXTENSION {
            return Err(bad(format!(
                "{what} of {size} bytes at offset {} exceeds the {MAX_EXTENSION}-byte limit",
                self.pos
            )));
        }
        let mut v = vec![0u8; size as usize];
        self.data().read_exact(&mut v)?;
        self.skip_rest()?;
        Ok(v)
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
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside a member",
            ));
        }
        self.remaining -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }

    /// The next member, skipping the rest of the current one. `None` at the
    /// end-of-archive marker or at a clean end of stream. The header is an
    /// owned copy; [`TarReader::next_member`] lends one without allocating.
    pub fn next_header(&mut self) -> io::Result<Option<Header>> {
        Ok(self.next_member()?.cloned())
    }

    /// The next member, as [`TarReader::next_header`], lent from buffers the
    /// reader reuses (no allocation per member unless it has extensions).
    pub fn next_member(&mut self) -> io::Result<Option<&Header>> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Vec<u8>> = None;
        loop {
            let start = self.pos;
            if !self.read_block()? {
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(bad("archive ends after an extension header".into()));
                }
                self.done = true;
                return Ok(None);
            }
            if self.block.iter().all(|b| *b == 0) {
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(bad("extension header with no member after it".into()));
                }
                self.done = true;
                return Ok(None);
            }
            let b = &self.block;
            verify_checksum(b, start)?;
            let typeflag = b[156];
            let size = parse_number(&b[124..136], "size", start)?;
            let ustar = &b[257..263] == b"ustar\0";
            let gnu = &b[257..263] == b"ustar ";
            self.remaining = size;
            self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
            match typeflag {
                b'L' => {
                    long_name = Some(trim_nul(self.read_extension(size, "GNU long name")?));
                    continue;
                }
                b'K' => {
                    long_link = Some(trim_nul(self.read_extension(size, "GNU long link")?));
                    continue;
                }
                b'x' | b'X' => {
                    pax = Some(self.read_extension(size, "PAX header")?);
                    continue;
                }
                b'g' => {
                    // Global PAX headers are read (bounded) and ignored, as
                    // containerd and umoci do.
                    self.read_extension(size, "PAX global header")?;
                    continue;
                }
                _ => {}
            }
            let b = &self.block;
            let h = &mut self.hdr;
            h.path.clear();
            if ustar && b[345] != 0 {
                h.path.extend_from_slice(cstr(&b[345..500]));
                h.path.push(b'/');
            }
            h.path.extend_from_slice(cstr(&b[0..100]));
            h.link.clear();
            h.link.extend_from_slice(cstr(&b[157..257]));
            h.mode = (parse_number(&b[100..108], "mode", start)? & 0o7777) as u32;
            h.uid = parse_number(&b[108..116], "uid", start)?;
            h.gid = parse_number(&b[116..124], "gid", start)?;
            h.size = size;
            h.kind = match typeflag {
                b'0' | 0 | b'7' | b'S' => Kind::File,
                b'1' => Kind::Hardlink,
                b'2' => Kind::Symlink,
                b'3' => Kind::CharDevice,
                b'4' => Kind::BlockDevice,
                b'5' | b'D' => Kind::Dir,
                b'6' => Kind::Fifo,
                _ => Kind::Other,
            };
            h.cap_schily = None;
            h.cap_libarchive = None;
            // Old GNU sparse members may carry extra sparse-map blocks.
            if typeflag == b'S' && gnu && b[482] != 0 {
                loop {
                    let at = self.pos;
                    if !self.read_block()? {
                        return Err(bad(format!("archive ends in a sparse map at {at}")));
                    }
                    if self.block[504] == 0 {
                        break;
                    }
                }
            }
            let h = &mut self.hdr;
            if let Some(n) = long_name.take() {
                h.path = n;
            }
            if let Some(l) = long_link.take() {
                h.link = l;
            }
            if let Some(pax) = pax.take() {
                let mut sparse_name = None;
                for rec in PaxRecords::new(&pax) {
                    let (k, v) = rec
                        .map_err(|e| bad(format!("{e} in the PAX header before offset {start}")))?;
                    match k {
                        b"path" => h.path = v.to_vec(),
                        b"linkpath" => h.link = v.to_vec(),
                        b"size" => h.size = pax_number(v, "size", start)?,
                        b"uid" => h.uid = pax_number(v, "uid", start)?,
                        b"gid" => h.gid = pax_number(v, "gid", start)?,
                        b"GNU.sparse.name" => sparse_name = Some(v.to_vec()),
                        b"SCHILY.xattr.security.capability" => h.cap_schily = Some(v.to_vec()),
                        b"LIBARCHIVE.xattr.security.capability" => {
                            h.cap_libarchive = Some(v.to_vec());
                        }
                        _ => {}
                    }
                }
                if let Some(n) = sparse_name {
                    h.path = n;
                }
                self.remaining = h.size;
                self.padding = (BLOCK as u64 - h.size % BLOCK as u64) % BLOCK as u64;
            }
            // V7 archives mark directories with a trailing slash only.
            if h.kind == Kind::File && !ustar && !gnu && h.path.ends_with(b"/") {
                h.kind = Kind::Dir;
            }
            h.data_offset = self.pos;
            return Ok(Some(&self.hdr));
        }
    }
}

/// The current member's data ([`TarReader::data`]).
pub struct MemberData<'a, S>(&'a mut TarReader<S>);

impl<S: TarSource> Read for MemberData<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_data(buf)
    }
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

fn verify_checksum(b: &[u8; BLOCK], offset: u64) -> io::Result<()> {
    let stored = parse_number(&b[148..156], "checksum", offset)?;
    // The sum of the block with the checksum field counted as spaces, as
    // plain u32 sums that vectorise (this runs for every member; 512 × 255
    // fits). The signed sum some old writers used is computed only if the
    // unsigned one does not match.
    let field = |f: fn(u8) -> i64| b[148..156].iter().map(|v| f(*v)).sum::<i64>();
    let unsigned = u64::from(b.iter().map(|v| u32::from(*v)).sum::<u32>())
        - field(i64::from) as u64
        + 8 * u64::from(b' ');
    if stored == unsigned {
        return Ok(());
    }
    let signed: i64 = b.iter().map(|v| i32::from(*v as i8)).sum::<i32>() as i64
        - field(|v| i64::from(v as i8))
        + 8 * i64::from(b' ');
    if i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(bad(format!(
            "bad tar header checksum at offset {offset} (not a tar archive, or corrupted)"
        )))
    }
}

/// Parses an octal (or GNU base-256) numeric header field.
fn parse_number(field: &[u8], what: &str, offset: u64) -> io::Result<u64> {
    if let Some(first) = field.first()
        && first & 0x80 != 0
    {
        if first & 0x40 != 0 {
            return Err(bad(format!(
                "negative {what} in the header at offset {offset}"
            )));
        }
        let mut v: u64 = u64::from(first & 0x3f);
        for byte in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(*byte)))
                .ok_or_else(|| bad(format!("{what} overflows in the header at offset {offset}")))?;
        }
        return Ok(v);
    }
    let mut v: u64 = 0;
    let mut seen = false;
    for byte in field {
        match byte {
            b'0'..=b'7' => {
                seen = true;
                v = v
                    .checked_mul(8)
                    .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                    .ok_or_else(|| bad(format!("{what} overflows at offset {offset}")))?;
            }
            b' ' | 0 if !seen => {}
            b' ' | 0 => break,
            _ => {
                return Err(bad(format!(
                    "invalid {what} field in the tar header at offset {offset} (not a tar archive, or corrupted)"
                )));
            }
        }
    }
    Ok(v)
}

fn pax_number(v: &[u8], what: &str, offset: u64) -> io::Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad(format!("invalid PAX {what} before offset {offset}")))
}

/// Iterates `"%d %s=%s\n"` PAX records. Values may hold NUL and newlines:
/// records are split by their length, never by lines.
struct PaxRecords<'a> {
    data: &'a [u8],
}

impl<'a> PaxRecords<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data }
    }
}

impl<'a> Iterator for PaxRecords<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        // Trailing NUL padding ends the records.
        if self.data.is_empty() || self.data.iter().all(|b| *b == 0) {
            return None;
        }
        let res = (|| {
            let sp = self
                .data
                .iter()
                .position(|b| *b == b' ')
                .ok_or("a PAX record without a length")?;
            let len: usize = std::str::from_utf8(&self.data[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("a PAX record with a bad length")?;
            if len <= sp + 1 || len > self.data.len() || self.data[len - 1] != b'\n' {
                return Err("a PAX record with a bad length".to_owned());
            }
            let rec = &self.data[sp + 1..len - 1];
            let eq = rec
                .iter()
                .position(|b| *b == b'=')
                .ok_or("a PAX record without `=`")?;
            let out = (&rec[..eq], &rec[eq + 1..]);
            self.data = &self.data[len..];
            Ok(out)
        })();
        if res.is_err() {
            self.data = &[];
        }
        Some(res)
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
    }

    #[test]
    fn truncated_and_garbage_are_errors() {
        let data = build(|b| file(b, "a", 0o644, &[1u8; 3000]));
        assert!(all(&data[..1500]).is_err());
        assert!(all(&data[..700]).is_err());
        assert!(all(&[b'x'; 1024]).is_err());
        // A clean end of stream without the zero blocks is accepted.
        assert_eq!(all(&data[..512 + 3072]).unwrap().len(), 1);
    }

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

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"0000755\0", "m", 0).unwrap(), 0o755);
        assert_eq!(parse_number(b"  755 \0\0", "m", 0).unwrap(), 0o755);
        assert_eq!(
            parse_number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0], "s", 0).unwrap(),
            256
        );
        assert!(parse_number(b"12x", "m", 0).is_err());
        assert!(parse_number(&[0xff; 12], "s", 0).is_err());
    }

    #[test]
    fn pax_records_may_hold_newlines() {
        let recs: Vec<_> = PaxRecords::new(b"12 a=x\ny\nzz\n8 b=123\n")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(recs[0], (&b"a"[..], &b"x\ny\nzz"[..]));
        assert_eq!(recs[1], (&b"b"[..], &b"123"[..]));
        assert!(PaxRecords::new(b"99 a=b\n").next().unwrap().is_err());
    }
}
