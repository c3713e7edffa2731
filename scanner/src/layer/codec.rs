//! A compact, versioned binary form of [`LayerIndex`], for caches that
//! outlive a process (`imgscan serve`'s per-layer result cache).
//!
//! The layout is little-endian and length-prefixed:
//!
//! ```text
//! magic "imgscan.layer-index" | u32 version
//! u64 members | u8 compression | hashes raw | hashes tar
//! bytes paths | u64 n, n × record | u64 n, n × extra
//! strings whiteouts | strings opaques | strings warnings
//! ```
//!
//! # Security
//!
//! A stored index is data like any other: [`LayerIndex::from_bytes`] checks
//! every length against what is left, every path range against the path
//! buffer, every string for UTF-8 and every digest for its syntax, and
//! returns an error (never panics) for anything else. A cache treats that
//! error as a miss.

use super::{Compression, Content, Extra, LayerError, LayerIndex, NO_EXTRA, Rec};
use crate::digest::{Digest, Hashes};
use crate::tarstream::Kind;

const MAGIC: &[u8] = b"imgscan.layer-index";
/// Bumped whenever the layout or the meaning of a field changes: an index
/// written by another version is a cache miss.
const VERSION: u32 = 3;

fn kind_code(k: Kind) -> u8 {
    match k {
        Kind::File => 0,
        Kind::Hardlink => 1,
        Kind::Symlink => 2,
        Kind::CharDevice => 3,
        Kind::BlockDevice => 4,
        Kind::Dir => 5,
        Kind::Fifo => 6,
        Kind::Other => 7,
    }
}

fn kind_of(c: u8) -> Option<Kind> {
    Some(match c {
        0 => Kind::File,
        1 => Kind::Hardlink,
        2 => Kind::Symlink,
        3 => Kind::CharDevice,
        4 => Kind::BlockDevice,
        5 => Kind::Dir,
        6 => Kind::Fifo,
        7 => Kind::Other,
        _ => return None,
    })
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.u8(0),
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
        }
    }
    fn hashes(&mut self, h: &Hashes) {
        self.opt_bytes(
            h.sha256
                .as_ref()
                .map(|d| d.to_string())
                .as_deref()
                .map(str::as_bytes),
        );
        self.opt_bytes(
            h.sha512
                .as_ref()
                .map(|d| d.to_string())
                .as_deref()
                .map(str::as_bytes),
        );
        self.u64(h.len);
    }
    fn strings(&mut self, v: &[impl AsRef<str>]) {
        self.u64(v.len() as u64);
        for s in v {
            self.bytes(s.as_ref().as_bytes());
        }
    }
}

struct R<'a> {
    data: &'a [u8],
}

fn bad(why: &str) -> LayerError {
    LayerError(format!("stored layer index: {why}"))
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LayerError> {
        if n > self.data.len() {
            return Err(bad("truncated"));
        }
        let (a, b) = self.data.split_at(n);
        self.data = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, LayerError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, LayerError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, LayerError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// A count of items of at least `min_size` bytes each: never more than
    /// what is left could hold, so a hostile count cannot allocate.
    fn count(&mut self, min_size: usize) -> Result<usize, LayerError> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|n| n.saturating_mul(min_size.max(1)) <= self.data.len())
            .ok_or_else(|| bad("a count larger than the data"))
    }
    fn bytes(&mut self) -> Result<&'a [u8], LayerError> {
        let n = self.count(1)?;
        self.take(n)
    }
    fn string(&mut self) -> Result<&'a str, LayerError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| bad("a string that is not UTF-8"))
    }
    fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, LayerError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?)),
            _ => Err(bad("a bad option tag")),
        }
    }
    fn opt_digest(&mut self) -> Result<Option<Digest>, LayerError> {
        self.opt_bytes()?
            .map(|b| {
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| Digest::parse(s).ok())
                    .ok_or_else(|| bad("a bad digest"))
            })
            .transpose()
    }
    fn hashes(&mut self) -> Result<Hashes, LayerError> {
        Ok(Hashes {
            sha256: self.opt_digest()?,
            sha512: self.opt_digest()?,
            len: self.u64()?,
        })
    }
    fn strings(&mut self) -> Result<Vec<Box<str>>, LayerError> {
        let n = self.count(8)?;
        (0..n).map(|_| self.string().map(Into::into)).collect()
    }
}

impl LayerIndex {
    /// The index in a compact, versioned binary form (magic, version, then
    /// length-prefixed sections), read back by [`LayerIndex::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(
            self.paths.len() + self.recs.len() * 41 + 256,
        ));
        w.0.extend_from_slice(MAGIC);
        w.u32(VERSION);
        w.u64(self.members);
        w.u8(match self.compression {
            None => 0,
            Some(Compression::None) => 1,
            Some(Compression::Gzip) => 2,
            Some(Compression::Zstd) => 3,
        });
        w.hashes(&self.raw);
        w.hashes(&self.tar);
        w.bytes(self.paths.as_bytes());
        w.u64(self.recs.len() as u64);
        for r in &self.recs {
            w.u32(r.start);
            w.u32(r.len);
            w.u8(kind_code(r.kind));
            w.u32(r.mode);
            w.u64(r.uid);
            w.u64(r.gid);
            w.u64(r.size);
            w.u32(r.extra);
        }
        w.u64(self.extras.len() as u64);
        for x in &self.extras {
            w.opt_bytes(x.link.as_deref().map(str::as_bytes));
            w.opt_bytes(x.caps.as_deref());
            match &x.content {
                None => w.u8(0),
                Some(c) => {
                    w.u8(1 + u8::from(c.truncated));
                    w.bytes(&c.data);
                }
            }
            w.opt_bytes(x.digest.as_ref().map(|d| &d[..]));
        }
        w.strings(&self.whiteouts);
        w.strings(&self.opaques);
        w.strings(&self.warnings);
        w.0
    }

    /// Reads what [`LayerIndex::to_bytes`] wrote. Anything else, including
    /// an index written by another version of imgscan, is an error.
    pub fn from_bytes(data: &[u8]) -> Result<Self, LayerError> {
        let mut r = R { data };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(bad("not a layer index"));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(bad(&format!(
                "version {version}, this imgscan reads version {VERSION}"
            )));
        }
        let members = r.u64()?;
        let compression = match r.u8()? {
            0 => None,
            1 => Some(Compression::None),
            2 => Some(Compression::Gzip),
            3 => Some(Compression::Zstd),
            _ => return Err(bad("a bad compression code")),
        };
        let raw = r.hashes()?;
        let tar = r.hashes()?;
        let paths = std::str::from_utf8(r.bytes()?)
            .map_err(|_| bad("paths that are not UTF-8"))?
            .to_owned();
        let n = r.count(41)?;
        let mut recs = Vec::with_capacity(n);
        for _ in 0..n {
            let rec = Rec {
                start: r.u32()?,
                len: r.u32()?,
                kind: kind_of(r.u8()?).ok_or_else(|| bad("a bad member type"))?,
                mode: r.u32()?,
                uid: r.u64()?,
                gid: r.u64()?,
                size: r.u64()?,
                extra: r.u32()?,
            };
            let (start, end) = (rec.start as usize, rec.start as usize + rec.len as usize);
            if end > paths.len() || !paths.is_char_boundary(start) || !paths.is_char_boundary(end) {
                return Err(bad("a path outside the path buffer"));
            }
            recs.push(rec);
        }
        let n = r.count(3)?;
        let mut extras = Vec::with_capacity(n);
        for _ in 0..n {
            let link = r
                .opt_bytes()?
                .map(|b| std::str::from_utf8(b).map(Box::from))
                .transpose()
                .map_err(|_| bad("a link that is not UTF-8"))?;
            let caps = r.opt_bytes()?.map(Box::from);
            let content = match r.u8()? {
                0 => None,
                t @ (1 | 2) => Some(std::sync::Arc::new(Content {
                    data: r.bytes()?.to_vec(),
                    truncated: t == 2,
                })),
                _ => return Err(bad("a bad content tag")),
            };
            let digest = match r.opt_bytes()? {
                None => None,
                Some(d) => Some(
                    <[u8; 32]>::try_from(d)
                        .map_err(|_| bad("a content digest of the wrong size"))?,
                ),
            };
            extras.push(Extra {
                link,
                caps,
                content,
                digest,
            });
        }
        if recs
            .iter()
            .any(|x| x.extra != NO_EXTRA && x.extra as usize >= extras.len())
        {
            return Err(bad("a member pointing past the side table"));
        }
        let whiteouts = r.strings()?;
        let opaques = r.strings()?;
        let warnings = r.strings()?.into_iter().map(String::from).collect();
        if !r.data.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            paths,
            recs,
            extras,
            whiteouts,
            opaques,
            members,
            compression,
            raw,
            tar,
            warnings,
            charge: crate::budget::Charge::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Entry, LayerOptions, scan_layer};

    fn sample() -> LayerIndex {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        let pw = b"root:x:0:0::/root:/bin/sh\n";
        h.set_mode(0o644);
        h.set_size(pw.len() as u64);
        b.append_data(&mut h, "etc/passwd", &pw[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o4755);
        h.set_size(0);
        b.append_data(&mut h, "usr/bin/sü", &b""[..]).unwrap();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        b.append_link(&mut h, "bin", "usr/bin").unwrap();
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "opt/.wh..wh..opq", &b""[..]).unwrap();
        b.append_data(&mut h, "tmp/.wh.x", &b""[..]).unwrap();
        let opts = LayerOptions {
            captures: |path| path == "etc/passwd",
            ..LayerOptions::default()
        };
        scan_layer(&b.into_inner().unwrap()[..], &opts).unwrap()
    }

    #[test]
    fn round_trip() {
        let mut idx = sample();
        idx.warnings.push("a note".into());
        let second = idx.entries().nth(1).unwrap();
        idx.push(Entry {
            caps: Some(Box::from(&[1u8, 2, 3][..])),
            ..second
        });
        let bytes = idx.to_bytes();
        let back = LayerIndex::from_bytes(&bytes).unwrap();
        assert_eq!(back, idx);
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn every_truncation_and_many_flips_are_errors_or_equal_not_panics() {
        let bytes = sample().to_bytes();
        for cut in 0..bytes.len() {
            assert!(LayerIndex::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = LayerIndex::from_bytes(&b);
        }
        let mut b = bytes.clone();
        b.push(0);
        assert!(LayerIndex::from_bytes(&b).is_err());
        let mut b = bytes;
        b[MAGIC.len()] = 99;
        assert!(
            LayerIndex::from_bytes(&b)
                .unwrap_err()
                .0
                .contains("version")
        );
    }
}
