//! The persisted layer cache: layer scans kept across runs by verified blob
//! digest, shared by `imgscan serve` (`serve.layers.db`) and the CLI
//! (`--cache-dir`, `layers.db`), so that a layer already scanned is neither
//! downloaded nor scanned again.
//!
//! Two parts, kept apart so that another storage can reuse the first:
//!
//! - [`entry`]: the entry format, independent of any database: what a row
//!   holds, how a [`LayerIndex`](crate::layer::LayerIndex) becomes one, and
//!   the checks (generation, checksum, decoding) that decide whether a
//!   stored row may be used. A table in another database (PostgreSQL for
//!   serve) stores the same columns and calls the same functions.
//! - [`LayerDb`] (the `cache` feature, SQLite through rusqlite with SQLite
//!   built in): one file, bounded by row count and bytes, least recently
//!   used rows evicted first. It implements
//!   [`LayerStore`](crate::source::registry::LayerStore), so a registry
//!   pull consults it before downloading a layer.
//!
//! # What can be trusted
//!
//! A layer is stored only after its blob digest and its diff_id were
//! verified (`source/registry/blob.rs`), and looked up by that blob digest,
//! so an entry is the scan of exactly those bytes. The scan is then checked
//! again like a fresh one (blob digest, size, diff_id against the image's
//! manifest and config). An entry that cannot be used (another version of
//! imgscan, bytes that do not match their checksum, bytes the decoder
//! refuses, a damaged database) is a miss, never an error: the layer is
//! downloaded and scanned again.

pub mod entry;
#[cfg(feature = "cache")]
mod sqlite;

use std::sync::Arc;

#[cfg(feature = "cache")]
pub use sqlite::{CacheError, DbOptions, LayerDb, Locking};

/// Bounds of a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Most entries kept.
    pub layers: u64,
    /// Most bytes of entries (`size`) kept; the file is somewhat larger.
    pub bytes: u64,
}

/// What a cache did since it was opened, and what it keeps now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered.
    pub hits: u64,
    /// Lookups not answered (no entry, or one that could not be used).
    pub misses: u64,
    /// Entries deleted because they could not be used (another version,
    /// a bad checksum, bytes the decoder refused).
    pub discarded: u64,
    /// Entries kept now.
    pub layers: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// How much a cache message matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine: an unusable entry was dropped (the layer is scanned again).
    Info,
    /// The cache could not be read or written; scans go on without it.
    Warn,
}

/// Receives the cache's messages (lowercase, no trailing period): serve
/// logs them, the CLI prints warnings on stderr. Calls come from several
/// threads.
pub type Log = Arc<dyn Fn(Level, &str) + Send + Sync>;
