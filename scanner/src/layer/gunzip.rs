//! gzip (RFC 1952) decoding without the CRC-32.
//!
//! A layer's gzip members are inflated with zlib-rs through flate2's raw
//! [`flate2::Decompress`], and the member framing is parsed here. The CRC-32
//! in each member trailer is not computed: the blob digest already covers
//! every compressed byte and the diff_id every decompressed one, both with
//! SHA-256, so a CRC adds nothing but about a tenth of the inflate time
//! (zlib-rs falls back to a table CRC without `pclmulqdq` at build time).
//! `ISIZE`, the member length modulo 2^32, is still checked: it is free.
//!
//! Several members one after another (eStargz, `pigz --independent`) are one
//! stream. Anything after the last member that is not another member is an
//! error, as it is for `gzip -t`.

use std::io::{self, BufRead, Read};

use flate2::{Decompress, FlushDecompress, Status};

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const RESERVED: u8 = 0xe0;

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gzip: {msg}"))
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "gzip: the stream ends inside a member",
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a member header (the first, or one after a trailer).
    Header,
    /// Inside a member's deflate data.
    Body,
    /// After the last member.
    Done,
}

/// Decodes a gzip stream (one or more members) read from `inner`.
pub(crate) struct Gunzip<R> {
    inner: R,
    inflate: Decompress,
    state: State,
    members: u64,
    /// Bytes produced by the current member.
    member_out: u64,
}

impl<R: BufRead> Gunzip<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            inflate: Decompress::new(false),
            state: State::Header,
            members: 0,
            member_out: 0,
        }
    }

    fn byte(&mut self) -> io::Result<u8> {
        let buf = self.inner.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Err(truncated());
        };
        self.inner.consume(1);
        Ok(b)
    }

    fn skip(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Err(truncated());
            }
            let k = n.min(buf.len());
            self.inner.consume(k);
            n -= k;
        }
        Ok(())
    }

    /// Skips a NUL-terminated field (file name, comment) without keeping it.
    fn skip_cstr(&mut self) -> io::Result<()> {
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Err(truncated());
            }
            if let Some(i) = buf.iter().position(|b| *b == 0) {
                self.inner.consume(i + 1);
                return Ok(());
            }
            let k = buf.len();
            self.inner.consume(k);
        }
    }

    /// Reads a member header. `false` at a clean end of stream after at
    /// least one member.
    fn header(&mut self) -> io::Result<bool> {
        if self.inner.fill_buf()?.is_empty() {
            if self.members == 0 {
                return Err(invalid("empty stream"));
            }
            return Ok(false);
        }
        let mut fixed = [0u8; 10];
        for b in &mut fixed {
            *b = self.byte()?;
        }
        if fixed[0..2] != [0x1f, 0x8b] {
            return Err(invalid(if self.members == 0 {
                "not a gzip stream"
            } else {
                "trailing data after the last member"
            }));
        }
        if fixed[2] != 8 {
            return Err(invalid("compression method is not deflate"));
        }
        let flags = fixed[3];
        if flags & RESERVED != 0 {
            return Err(invalid("reserved header flags are set"));
        }
        if flags & FEXTRA != 0 {
            let lo = self.byte()?;
            let hi = self.byte()?;
            self.skip(usize::from(u16::from_le_bytes([lo, hi])))?;
        }
        if flags & FNAME != 0 {
            self.skip_cstr()?;
        }
        if flags & FCOMMENT != 0 {
            self.skip_cstr()?;
        }
        if flags & FHCRC != 0 {
            self.skip(2)?;
        }
        self.members += 1;
        self.member_out = 0;
        self.inflate.reset(false);
        Ok(true)
    }

    fn trailer(&mut self) -> io::Result<()> {
        let mut t = [0u8; 8];
        for b in &mut t {
            *b = self.byte()?;
        }
        // t[0..4] is the CRC-32: see the module docs.
        let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if isize != self.member_out as u32 {
            return Err(invalid(&format!(
                "member {} is {} bytes but its trailer says {isize} (mod 2^32)",
                self.members, self.member_out
            )));
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header => {
                    self.state = if self.header()? {
                        State::Body
                    } else {
                        State::Done
                    };
                }
                State::Body => {
                    let input = self.inner.fill_buf()?;
                    let eof = input.is_empty();
                    let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
                    let status = self
                        .inflate
                        .decompress(input, out, FlushDecompress::None)
                        .map_err(|e| invalid(&e.to_string()))?;
                    let used = (self.inflate.total_in() - in0) as usize;
                    let produced = (self.inflate.total_out() - out0) as usize;
                    self.inner.consume(used);
                    self.member_out += produced as u64;
                    if status == Status::StreamEnd {
                        self.trailer()?;
                        self.state = State::Header;
                    } else if produced == 0 && (eof || used == 0) {
                        return Err(if eof {
                            truncated()
                        } else {
                            invalid("the deflate stream makes no progress")
                        });
                    }
                    if produced > 0 {
                        return Ok(produced);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(blob: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Gunzip::new(blob).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_names_and_extras() {
        let a: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut blob = gz(&a);
        let named = flate2::GzBuilder::new()
            .filename("x.tar")
            .comment("c")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::best());
        let mut named = named;
        named.write_all(b"second").unwrap();
        blob.extend(named.finish().unwrap());
        let mut want = a.clone();
        want.extend_from_slice(b"second");
        assert_eq!(decode(&blob).unwrap(), want);
    }

    #[test]
    fn truncated_tampered_and_trailing_are_errors() {
        let blob = gz(&[7u8; 50_000]);
        for cut in [5, 12, blob.len() / 2, blob.len() - 3] {
            assert!(decode(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_size = blob.clone();
        let n = bad_size.len();
        bad_size[n - 1] ^= 1;
        assert!(
            decode(&bad_size)
                .unwrap_err()
                .to_string()
                .contains("trailer")
        );
        let mut trailing = blob.clone();
        trailing.extend_from_slice(b"junk");
        assert!(decode(&trailing).is_err());
        assert!(decode(b"").is_err());
        assert!(decode(b"plain text, not gzip").is_err());
    }
}
