//! Scanning one layer blob: verify, decompress, parse, index.
//!
//! A layer is read exactly once, as a stream: the blob bytes go through a
//! hash (the descriptor digest), the decompressor chosen by sniffing the magic
//! bytes (never by trusting the media type), a second hash (the diff_id) and
//! the tar reader. What comes out is a compact [`LayerIndex`]: one small
//! [`Entry`] per member (no file contents), the whiteouts and opaque markers,
//! and the contents of the few files checks read (`/etc/passwd`, package
//! databases, sudoers), each capped. Memory does not grow with file sizes.

use std::io::{self, Cursor, Read};

use crate::capability;
use crate::digest::{Algorithm, Hashes, HashingReader};
use crate::tarstream::{Kind, Streaming, TarReader};

/// Compression of a blob, found from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
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

/// One member of a layer, normalised.
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

/// What scanning one layer produced.
#[derive(Debug, Clone, Default)]
pub struct LayerIndex {
    /// Members that add or replace paths, in archive order.
    pub entries: Vec<Entry>,
    /// Paths deleted from lower layers by `.wh.NAME` files.
    pub whiteouts: Vec<Box<str>>,
    /// Directories whose lower-layer contents are hidden (`.wh..wh..opq`).
    pub opaques: Vec<Box<str>>,
    /// Tar members read, whiteouts included.
    pub members: u64,
    /// The compression found.
    pub compression: Option<Compression>,
    /// Digests of the blob as stored.
    pub raw: Hashes,
    /// Digests of the uncompressed tar (equal to `raw` when uncompressed).
    pub tar: Hashes,
    /// Non-fatal notes (a captured file over its limit, ...).
    pub warnings: Vec<String>,
}

/// Limits and digests for [`scan_layer`].
#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// Algorithms to compute over the blob bytes.
    pub raw_algorithms: Vec<Algorithm>,
    /// Algorithms to compute over the uncompressed tar.
    pub tar_algorithms: Vec<Algorithm>,
    /// Most members accepted in one layer.
    pub max_entries: u64,
    /// Most bytes kept of one captured file.
    pub max_capture: usize,
    /// Most captured bytes in one layer.
    pub max_capture_total: usize,
}

impl Default for LayerOptions {
    fn default() -> Self {
        Self {
            raw_algorithms: vec![Algorithm::Sha256],
            tar_algorithms: vec![Algorithm::Sha256],
            max_entries: 4_000_000,
            max_capture: 16 << 20,
            max_capture_total: 96 << 20,
        }
    }
}

/// Whether a check needs this file's contents (normalised path).
pub fn wants_content(path: &str) -> bool {
    matches!(
        path,
        "etc/passwd"
            | "etc/group"
            | "etc/sudoers"
            | "var/lib/dpkg/status"
            | "lib/apk/db/installed"
            | "usr/lib/apk/db/installed"
    ) || (path.starts_with("etc/sudoers.d/") && !path[14..].contains('/'))
        || (path.starts_with("var/lib/dpkg/info/")
            && path.ends_with(".list")
            && !path[18..].contains('/'))
        || (path.starts_with("var/lib/dpkg/status.d/") && !path[23..].contains('/'))
}

/// Normalises a member name: strips `./` and leading `/`, folds `.` and
/// `..` (never above the root) and trailing slashes. Names that are not
/// UTF-8 are decoded lossily.
pub fn normalize(raw: &[u8]) -> String {
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
    parts.join("/")
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

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Bytes of decompressed tar handed from the inflating thread to the parsing
/// thread at a time, and how many such chunks may be in flight.
const CHUNK: usize = 256 * 1024;
const IN_FLIGHT: usize = 8;

/// Layers smaller than this are scanned on one thread (a second thread would
/// cost more than it saves).
const PIPELINE_MIN: usize = 512 * 1024;

/// Scans one layer blob from `reader` to its end.
///
/// Two stages run on two threads, overlapping the work as the issue's
/// performance bound asks: the first reads the blob, hashes it and
/// decompresses it; the second hashes the uncompressed tar (the diff_id) and
/// parses the headers from those same bytes. Chunks move between them
/// through a bounded channel and are recycled, so memory stays at
/// `IN_FLIGHT` chunks whatever the layer size.
pub fn scan_layer(reader: impl Read + Send, opts: &LayerOptions) -> Result<LayerIndex, LayerError> {
    let mut prefix = vec![0u8; PIPELINE_MIN];
    let mut probe = reader;
    let n = read_up_to(&mut probe, &mut prefix)?;
    prefix.truncate(n);
    let compression = Compression::sniff(&prefix);
    // Uncompressed: the tar digest is the blob digest, so hash once.
    let (raw_algs, tar_algs) = if compression == Compression::None {
        let mut all = opts.raw_algorithms.clone();
        for a in &opts.tar_algorithms {
            if !all.contains(a) {
                all.push(*a);
            }
        }
        (all, Vec::new())
    } else {
        (opts.raw_algorithms.clone(), opts.tar_algorithms.clone())
    };
    let small = n < PIPELINE_MIN;
    let mut raw = HashingReader::new(Cursor::new(prefix).chain(probe), &raw_algs);
    let mut index = LayerIndex {
        compression: Some(compression),
        ..LayerIndex::default()
    };
    let tar_hashes = if small {
        let decoder = decoder(compression, &mut raw)?;
        let mut tar_hash = HashingReader::new(decoder, &tar_algs);
        parse(&mut tar_hash, compression, opts, &mut index)?;
        tar_hash
            .drain()
            .map_err(|e| LayerError(format!("after the end of the tar: {}", describe_io(&e))))?
    } else {
        let (tx, rx) = crossbeam_channel::bounded::<io::Result<Vec<u8>>>(IN_FLIGHT);
        let (back_tx, back_rx) = crossbeam_channel::bounded::<Vec<u8>>(IN_FLIGHT + 2);
        std::thread::scope(|scope| {
            let raw = &mut raw;
            let producer = scope.spawn(move || -> Result<(), LayerError> {
                let mut decoder = decoder(compression, raw)?;
                loop {
                    let mut buf = back_rx.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
                    buf.resize(CHUNK, 0);
                    match read_up_to(&mut decoder, &mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(k) => {
                            buf.truncate(k);
                            if tx.send(Ok(buf)).is_err() {
                                // The parser stopped (an error): it reports why.
                                return Ok(());
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                            return Ok(());
                        }
                    }
                }
            });
            let chunks = Chunks {
                rx,
                back: Some(back_tx),
                cur: Vec::new(),
                pos: 0,
            };
            let mut tar_hash = HashingReader::new(chunks, &tar_algs);
            let parsed = parse(&mut tar_hash, compression, opts, &mut index);
            // On error, dropping the receiving side stops the producer.
            let parsed = match parsed {
                Ok(()) => tar_hash.drain().map_err(|e| {
                    LayerError(format!("after the end of the tar: {}", describe_io(&e)))
                }),
                Err(e) => {
                    drop(tar_hash);
                    Err(e)
                }
            };
            let produced = producer
                .join()
                .map_err(|_| LayerError("the decompression thread panicked".into()))?;
            let hashes = parsed?;
            produced?;
            Ok::<_, LayerError>(hashes)
        })?
    };
    index.raw = raw.drain()?;
    index.tar = if compression == Compression::None {
        index.raw.clone()
    } else {
        tar_hashes
    };
    Ok(index)
}

fn decoder<'a>(
    c: Compression,
    raw: &'a mut (impl Read + Send),
) -> Result<Box<dyn Read + Send + 'a>, LayerError> {
    Ok(match c {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(CHUNK, raw),
        )),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(raw)
                .map_err(|e| LayerError(format!("starting zstd: {e}")))?,
        ),
    })
}

fn parse(
    tar: &mut impl Read,
    compression: Compression,
    opts: &LayerOptions,
    index: &mut LayerIndex,
) -> Result<(), LayerError> {
    let mut tr = TarReader::new(Streaming::new(tar));
    read_entries(&mut tr, opts, index).map_err(|e| match compression {
        Compression::None => e,
        c => LayerError(format!("{} ({} stream)", e.0, c.as_str())),
    })
}

/// The receiving side of a chunk channel (the layer pipeline, and the stream
/// reader feeding layer workers): reads the chunks sent, and gives the
/// buffers back for reuse when there is a way back.
pub(crate) struct Chunks {
    pub(crate) rx: crossbeam_channel::Receiver<io::Result<Vec<u8>>>,
    pub(crate) back: Option<crossbeam_channel::Sender<Vec<u8>>>,
    pub(crate) cur: Vec<u8>,
    pub(crate) pos: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let old = std::mem::replace(&mut self.cur, chunk);
                    if let Some(back) = &self.back {
                        let _ = back.try_send(old);
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn read_entries<S: crate::tarstream::TarSource>(
    tr: &mut TarReader<S>,
    opts: &LayerOptions,
    index: &mut LayerIndex,
) -> Result<(), LayerError> {
    let mut captured_total = 0usize;
    while let Some(h) = tr.next_header()? {
        index.members += 1;
        if index.members > opts.max_entries {
            return Err(LayerError(format!(
                "more than {} members (raise --max-entries if this image is genuine)",
                opts.max_entries
            )));
        }
        let path = normalize(&h.path);
        let (dir, base) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path.as_str()),
        };
        if let Some(rest) = base.strip_prefix(".wh.") {
            if rest == ".wh..opq" {
                index.opaques.push(dir.into());
            } else if rest.starts_with(".wh.") {
                // AUFS metadata (.wh..wh.plnk and the like): never a file.
            } else if rest.is_empty() {
                return Err(LayerError(format!(
                    "invalid whiteout `{}` (a bare `.wh.`)",
                    String::from_utf8_lossy(&h.path)
                )));
            } else {
                let target = if dir.is_empty() {
                    rest.to_owned()
                } else {
                    format!("{dir}/{rest}")
                };
                index.whiteouts.push(target.into());
            }
            continue;
        }
        // eStargz table of contents and landmarks are not image files.
        if dir.is_empty()
            && matches!(
                base,
                "stargz.index.json" | ".prefetch.landmark" | ".no.prefetch.landmark"
            )
        {
            continue;
        }
        let caps = match (&h.cap_schily, &h.cap_libarchive) {
            (Some(raw), _) => Some(raw.clone().into_boxed_slice()),
            (None, Some(b64)) => Some(
                capability::decode_libarchive_base64(b64)
                    .unwrap_or_else(|| b64.clone())
                    .into_boxed_slice(),
            ),
            (None, None) => None,
        };
        let link = match h.kind {
            Kind::Symlink => Some(String::from_utf8_lossy(&h.link).into_owned().into()),
            Kind::Hardlink => Some(normalize(&h.link).into()),
            _ => None,
        };
        let mut content = None;
        if h.kind == Kind::File && wants_content(&path) {
            let budget = opts
                .max_capture
                .min(opts.max_capture_total - captured_total);
            let take = (h.size as usize).min(budget);
            let mut data = vec![0u8; take];
            let mut filled = 0;
            while filled < take {
                let k = tr.read_data(&mut data[filled..])?;
                if k == 0 {
                    break;
                }
                filled += k;
            }
            data.truncate(filled);
            captured_total += data.len();
            let truncated = (data.len() as u64) < h.size;
            if truncated {
                index.warnings.push(format!(
                    "/{path} is {} bytes; only the first {} were read",
                    h.size,
                    data.len()
                ));
            }
            content = Some(Box::new(Content { data, truncated }));
        }
        index.entries.push(Entry {
            path: path.into(),
            kind: h.kind,
            mode: h.mode,
            uid: h.uid,
            gid: h.gid,
            size: h.size,
            link,
            caps,
            content,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
        let idx = scan_layer(&raw[..], &LayerOptions::default()).unwrap();
        assert_eq!(idx.entries.len(), 2);
        assert_eq!(&*idx.entries[1].path, "etc/passwd");
        assert_eq!(
            idx.entries[1].content.as_ref().unwrap().data,
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
        let plain = scan_layer(&raw[..], &LayerOptions::default()).unwrap();
        for blob in [&gz, &zs] {
            let idx = scan_layer(&blob[..], &LayerOptions::default()).unwrap();
            assert_eq!(idx.tar.sha256, plain.raw.sha256);
            assert_eq!(
                idx.raw.sha256.unwrap(),
                crate::digest::Digest::sha256_of(blob)
            );
            assert_eq!(idx.entries, plain.entries);
        }
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let raw = layer();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        assert!(scan_layer(&gz[..gz.len() / 2], &LayerOptions::default()).is_err());
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
            let idx = scan_layer(&blob[..], &LayerOptions::default()).unwrap();
            assert_eq!(idx.tar.sha256.as_ref(), Some(&want));
            assert_eq!(idx.raw.len, blob.len() as u64);
            assert_eq!(idx.entries.len(), 2);
            assert_eq!(idx.entries[0].mode, 0o4755);
            assert!(idx.entries[1].content.is_some());
            for cut in [blob.len() / 3, blob.len() * 9 / 10] {
                assert!(
                    scan_layer(&blob[..cut], &LayerOptions::default()).is_err(),
                    "cut {cut}"
                );
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

    #[test]
    fn content_wanted() {
        assert!(wants_content("etc/passwd"));
        assert!(wants_content("var/lib/dpkg/info/login.list"));
        assert!(wants_content("etc/sudoers.d/app"));
        assert!(!wants_content("etc/sudoers.d/x/y"));
        assert!(!wants_content("usr/bin/passwd"));
    }
}
