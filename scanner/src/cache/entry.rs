//! The format of a layer cache entry, shared by every storage.
//!
//! # Format
//!
//! One row per layer blob digest, with these columns (the SQLite table of
//! [`super::LayerDb`]; another database stores the same, with its own
//! types):
//!
//! | column       | type            | holds                                               |
//! |--------------|-----------------|-----------------------------------------------------|
//! | `digest`     | text, key       | the layer blob digest, `sha256:<64 hex>`            |
//! | `generation` | text            | who wrote the row: [`GENERATION`]                   |
//! | `data`       | bytes           | the scan, [`LayerIndex::to_bytes`]                  |
//! | `sha256`     | bytes (32)      | SHA-256 of `data`                                   |
//! | `size`       | integer         | `data`'s length in bytes (what the limits count)    |
//! | `stored_at`  | integer         | when it was written, ms since the Unix epoch        |
//! | `used_at`    | integer         | when it was last written or read (LRU order)        |
//!
//! Writing: [`Entry::of_layer`] gives `generation`, `data`, `sha256` and
//! `size`; [`now_ms`] the times. Reading: [`check`] the row's generation and
//! checksum, then [`decode_layer`]. A row either refuses must be deleted
//! and counted as a miss.
//!
//! # Why a checksum and a generation
//!
//! The decoder checks structure, not meaning: a flipped bit in a file mode
//! would decode and hide a setuid binary, so `data` is checked against its
//! SHA-256 first. A scan's contents depend on the scanner's rules and
//! limits, which can change between versions, so a row written by another
//! version (another `generation`) is never used.

use sha2::{Digest as _, Sha256};

use crate::layer::LayerIndex;

/// Which imgscan writes entries (the `generation` column): rows of any
/// other generation are misses.
pub const GENERATION: &str = concat!("imgscan ", env!("CARGO_PKG_VERSION"), " layer v1");

/// The columns of a row a storage writes, besides the key and the times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who wrote it ([`GENERATION`] for layer scans).
    pub generation: String,
    /// The encoded scan.
    pub data: Vec<u8>,
    /// SHA-256 of `data`.
    pub sha256: [u8; 32],
}

impl Entry {
    /// An entry of `generation` holding `data`, with its checksum.
    pub fn new(generation: &str, data: Vec<u8>) -> Self {
        Self {
            generation: generation.to_owned(),
            sha256: checksum(&data),
            data,
        }
    }

    /// The entry for a layer scan, of this version's [`GENERATION`].
    pub fn of_layer(index: &LayerIndex) -> Self {
        Self::new(GENERATION, encode_layer(index))
    }

    /// The `size` column: `data`'s length.
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }
}

/// Why a stored row is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// Another version of imgscan wrote it.
    #[error("written by {0}")]
    Generation(String),
    /// `data` does not match `sha256`.
    #[error("its bytes do not match their checksum")]
    Checksum,
    /// `data` is not what this version encodes.
    #[error("its bytes do not decode")]
    Undecodable,
    /// A column is missing or of the wrong type.
    #[error("the row has the wrong types")]
    Malformed,
}

/// SHA-256 of `data` (the `sha256` column).
pub fn checksum(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Checks a stored row against the generation this reader expects and
/// against its checksum; its `data` if both hold.
pub fn check<'a>(
    expected_generation: &str,
    generation: &str,
    data: &'a [u8],
    sha256: &[u8],
) -> Result<&'a [u8], Rejected> {
    if generation != expected_generation {
        return Err(Rejected::Generation(generation.chars().take(200).collect()));
    }
    if checksum(data).as_slice() != sha256 {
        return Err(Rejected::Checksum);
    }
    Ok(data)
}

/// A layer scan as entry bytes.
pub fn encode_layer(index: &LayerIndex) -> Vec<u8> {
    index.to_bytes()
}

/// Entry bytes back into a layer scan.
pub fn decode_layer(data: &[u8]) -> Result<LayerIndex, Rejected> {
    LayerIndex::from_bytes(data).map_err(|_| Rejected::Undecodable)
}

/// The time columns: milliseconds since the Unix epoch (0 before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_used_only_with_its_generation_and_checksum() {
        let e = Entry::new("g1", b"mode 4755".to_vec());
        assert_eq!(e.size(), 9);
        assert_eq!(
            check("g1", &e.generation, &e.data, &e.sha256),
            Ok(&b"mode 4755"[..])
        );
        assert_eq!(
            check("g2", &e.generation, &e.data, &e.sha256),
            Err(Rejected::Generation("g1".into()))
        );
        // One flipped bit, same checksum.
        assert_eq!(
            check("g1", "g1", b"mode 0755", &e.sha256),
            Err(Rejected::Checksum)
        );
        assert_eq!(
            check("g1", "g1", &e.data, &e.sha256[..31]),
            Err(Rejected::Checksum)
        );
    }

    #[test]
    fn layer_scans_round_trip_and_garbage_is_refused() {
        let idx = LayerIndex::from_entries([]);
        let e = Entry::of_layer(&idx);
        assert_eq!(e.generation, GENERATION);
        let data = check(GENERATION, &e.generation, &e.data, &e.sha256).unwrap();
        assert_eq!(decode_layer(data).unwrap(), idx);
        assert_eq!(decode_layer(b"\0garbage"), Err(Rejected::Undecodable));
        assert_eq!(
            decode_layer(&e.data[..e.data.len() - 1]),
            Err(Rejected::Undecodable)
        );
    }
}
