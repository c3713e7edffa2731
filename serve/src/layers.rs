//! The persisted layer cache of `imgscan serve` (issue 4: "a per-layer
//! result cache keyed by layer digest (persisted) means a base layer shared
//! by many images is scanned once"): scanner's [`scanner::cache::LayerDb`],
//! the same file format as the CLI's `--cache-dir`, in a SQLite file of its
//! own next to the job database.
//!
//! # Why a second file
//!
//! The job database commits with `synchronous = FULL` behind one connection
//! that the HTTP handlers share, because it acknowledges pushes. A layer
//! scan can be megabytes (one entry per file of the layer); writing it there
//! would hold up the answers the registry waits for (1 s by default) and
//! grow that WAL. The cache has its own connection and lock, commits with
//! `synchronous = NORMAL` (losing the last entries on a power cut costs a
//! rescan, nothing else), and can be deleted at any time with imgscan
//! stopped. A damaged cache file is replaced, never a reason not to start.
//! Serve holds it with an exclusive lock, as it does the job database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
pub(crate) use scanner::cache::{CacheLimits, CacheStats, LayerDb};
use scanner::cache::{DbOptions, Level, Locking};

/// The cache file for the job database `database`: `serve.db` →
/// `serve.layers.db`, in the same directory.
pub(crate) fn path_for(database: &Path) -> PathBuf {
    database.with_extension("layers.db")
}

/// Opens (creating if needed) the cache at `path`, held exclusively; its
/// messages go to the log.
pub(crate) fn open(path: &Path, limits: CacheLimits) -> Result<LayerDb> {
    let opts = DbOptions {
        locking: Locking::Exclusive,
        log: Some(Arc::new(|level, msg: &str| match level {
            Level::Info => tracing::info!("{msg}"),
            Level::Warn => tracing::warn!("{msg}"),
        })),
        ..DbOptions::new(limits)
    };
    Ok(LayerDb::open(path, &opts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_file_sits_beside_the_database_and_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("serve.db"));
        assert_eq!(path, dir.path().join("serve.layers.db"));
        let limits = CacheLimits {
            layers: 10,
            bytes: 1 << 20,
        };
        let db = open(&path, limits).unwrap();
        db.store("sha256:00", b"scan".to_vec());
        let again = open(&path, limits).unwrap_err();
        assert!(
            format!("{again:#}").contains("serve.layers.db"),
            "{again:#}"
        );
        drop(db);
        let db = open(&path, limits).unwrap();
        assert_eq!(db.digests(), ["sha256:00"]);
    }
}
