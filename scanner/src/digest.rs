//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and a reader that hashes
//! what passes through it.
//!
//! Verification happens while streaming (oci-client's `Digester` idea): every
//! byte that the scanner parses has gone through a [`HashingReader`], and the
//! result is compared with the expected digest only after the stream was read
//! to its end. A mismatch is an error carrying both digests, never a finding.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};

/// A digest algorithm imgscan can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Algorithm {
    /// SHA-256, which every image must support.
    Sha256,
    /// SHA-512, allowed by the OCI image spec.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings.
    pub fn name(self) -> &'static str {
        self.into()
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }
}

/// A parsed, validated digest such as `sha256:6d3d…`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `alg:hex`, checking the algorithm and the hex length.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::BadDigest {
            digest: s.chars().take(200).collect(),
            why: why.to_owned(),
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| bad("no `algorithm:` prefix"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(bad(
                    "unsupported algorithm (imgscan verifies sha256 and sha512)",
                ));
            }
        };
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("not lowercase hex of the right length"));
        }
        Ok(Self {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// Builds a digest from an algorithm and raw hash bytes.
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Self {
        Self {
            algorithm,
            hex: to_hex(bytes),
        }
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Self {
        Self::from_bytes(Algorithm::Sha256, &Sha256::digest(data))
    }

    /// The digest of `data` with `algorithm`.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Self {
        match algorithm {
            Algorithm::Sha256 => Self::sha256_of(data),
            Algorithm::Sha512 => Self::from_bytes(algorithm, &Sha512::digest(data)),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// Lowercase hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Checks `data` against `expected`; the error names `what`.
pub fn verify_bytes(what: &str, expected: &Digest, data: &[u8]) -> Result<()> {
    let actual = Digest::of(expected.algorithm(), data);
    if &actual != expected {
        return Err(Error::DigestMismatch {
            what: what.to_owned(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// A running hash of one or both algorithms.
#[derive(Clone, Default)]
pub struct Hasher {
    sha256: Option<Sha256>,
    sha512: Option<Sha512>,
    len: u64,
}

impl Hasher {
    /// A hasher computing the given algorithms.
    pub fn new(algorithms: &[Algorithm]) -> Self {
        Self {
            sha256: algorithms.contains(&Algorithm::Sha256).then(Sha256::new),
            sha512: algorithms.contains(&Algorithm::Sha512).then(Sha512::new),
            len: 0,
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
        self.len += data.len() as u64;
    }

    /// Finishes, returning the digests computed and the byte count.
    pub fn finish(self) -> Hashes {
        Hashes {
            sha256: self
                .sha256
                .map(|h| Digest::from_bytes(Algorithm::Sha256, &h.finalize())),
            sha512: self
                .sha512
                .map(|h| Digest::from_bytes(Algorithm::Sha512, &h.finalize())),
            len: self.len,
        }
    }
}

/// The digests of a finished stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hashes {
    /// The sha256 digest, if it was computed.
    pub sha256: Option<Digest>,
    /// The sha512 digest, if it was computed.
    pub sha512: Option<Digest>,
    /// Bytes hashed.
    pub len: u64,
}

impl Hashes {
    /// The digest with `alg`, if computed.
    pub fn get(&self, alg: Algorithm) -> Option<&Digest> {
        match alg {
            Algorithm::Sha256 => self.sha256.as_ref(),
            Algorithm::Sha512 => self.sha512.as_ref(),
        }
    }

    /// Verifies against `expected`; the error names `what`.
    pub fn verify(&self, what: &str, expected: &Digest) -> Result<()> {
        let Some(actual) = self.get(expected.algorithm()) else {
            return Err(Error::Unverifiable {
                what: what.to_owned(),
                why: format!(
                    "its {} digest was not computed while streaming",
                    expected.algorithm().name()
                ),
            });
        };
        if actual != expected {
            return Err(Error::DigestMismatch {
                what: what.to_owned(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }
}

/// A reader that hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, algorithms: &[Algorithm]) -> Self {
        Self {
            inner,
            hasher: Hasher::new(algorithms),
        }
    }

    /// Reads the rest of the stream (hashing it) and returns the digests.
    pub fn drain(mut self) -> io::Result<Hashes> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.hasher.finish())
    }

    /// The inner reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e").is_err());
        assert!(
            Digest::parse(
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
            )
            .is_err()
        );
    }

    #[test]
    fn hashing_reader_matches() {
        let data = vec![7u8; 200_000];
        let mut r = HashingReader::new(&data[..], &[Algorithm::Sha256, Algorithm::Sha512]);
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        let h = r.drain().unwrap();
        assert_eq!(h.len, 200_000);
        assert_eq!(h.sha256.unwrap(), Digest::sha256_of(&data));
        assert_eq!(h.sha512.unwrap(), Digest::of(Algorithm::Sha512, &data));
    }
}
