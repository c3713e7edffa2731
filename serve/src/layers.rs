//! The persisted layer cache of `imgscan serve` (issue 4: "a per-layer
//! result cache keyed by layer digest (persisted) means a base layer shared
//! by many images is scanned once"): layer scans in a SQLite file of their
//! own next to the job database, bounded by count and bytes with
//! least-recently-used eviction.
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
//!
//! # Entries
//!
//! One row per layer blob digest: the bytes of the scan, their SHA-256, the
//! imgscan version that wrote them (`generation`), their size and when they
//! were last used. A row of another generation, whose bytes do not match
//! their SHA-256, or that the decoder refuses, is a miss: it is deleted and
//! the layer is scanned again. The checksum matters because the decoder
//! checks structure, not meaning: a flipped bit in a file mode would decode
//! and hide a setuid binary. A scan's contents depend on the
//! scanner's rules and limits, which can change between versions, so rows
//! are never reused across versions.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use anyhow::{Context as _, Result};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use scanner::digest::Digest;
use scanner::layer::LayerIndex;
use scanner::source::registry::LayerStore;
use sha2::{Digest as _, Sha256};

use super::store::now_ms;

/// The cache schema (`PRAGMA user_version`). Another version is dropped and
/// started afresh: it is a cache.
const CACHE_SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS layers (
    digest      TEXT PRIMARY KEY,
    generation  TEXT NOT NULL,
    data        BLOB NOT NULL,
    sha256      BLOB NOT NULL,
    size        INTEGER NOT NULL,
    stored_at   INTEGER NOT NULL,
    used_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS layers_by_use ON layers (used_at);
";

/// Which imgscan wrote a row.
pub(crate) const GENERATION: &str = concat!("imgscan ", env!("CARGO_PKG_VERSION"), " layer v1");

/// Bounds of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheLimits {
    /// Most rows kept.
    pub(crate) layers: u64,
    /// Most bytes of scans kept (the file is somewhat larger).
    pub(crate) bytes: u64,
}

/// What the cache did, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheStats {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    /// Rows deleted because they could not be used (another version, or
    /// bytes the decoder refused).
    pub(crate) discarded: u64,
    /// Rows kept now, and their bytes.
    pub(crate) layers: u64,
    pub(crate) bytes: u64,
}

/// The layer cache file.
pub(crate) struct LayerDb {
    conn: Mutex<Connection>,
    limits: CacheLimits,
    generation: String,
    hits: AtomicU64,
    misses: AtomicU64,
    discarded: AtomicU64,
}

/// The cache file for the job database `database`: `serve.db` →
/// `serve.layers.db`, in the same directory.
pub(crate) fn path_for(database: &Path) -> PathBuf {
    database.with_extension("layers.db")
}

/// Whether opening failed because the file is not a usable database (as
/// opposed to locked, or unreadable for permissions).
fn damaged(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code),
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
        )
    })
}

impl LayerDb {
    /// Opens (creating if needed) the cache at `path`. A damaged file is
    /// deleted and started afresh, with a log line.
    pub(crate) fn open(path: &Path, limits: CacheLimits) -> Result<Self> {
        match Self::open_file(path, limits) {
            Ok(db) => Ok(db),
            Err(e) if damaged(&e) => {
                tracing::warn!(
                    "the layer cache {} is damaged ({e:#}); starting a new one",
                    path.display()
                );
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.as_os_str().to_owned();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
                Self::open_file(path, limits)
            }
            Err(e) => Err(e),
        }
    }

    fn open_file(path: &Path, limits: CacheLimits) -> Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the layer cache {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {} to its owner", path.display()))?;
        }
        Self::init(conn, limits, GENERATION)
            .with_context(|| format!("setting up the layer cache {}", path.display()))
    }

    /// An in-memory cache, for tests.
    #[cfg(test)]
    pub(crate) fn memory(limits: CacheLimits, generation: &str) -> Result<Self> {
        Self::init(Connection::open_in_memory()?, limits, generation)
    }

    fn init(conn: Connection, limits: CacheLimits, generation: &str) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE;")?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if mode != "wal" && mode != "memory" {
            anyhow::bail!("the layer cache cannot use WAL mode (journal_mode is {mode})");
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .context("locking the layer cache")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != CACHE_SCHEMA_VERSION {
            conn.execute_batch("DROP TABLE IF EXISTS layers;")?;
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(&format!("PRAGMA user_version = {CACHE_SCHEMA_VERSION};"))?;
        let db = Self {
            conn: Mutex::new(conn),
            limits,
            generation: generation.to_owned(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
        };
        // The limits may have shrunk since the last run.
        db.with(|c| evict(c, limits, None))?;
        Ok(db)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>) -> Result<R> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("the layer cache lock is poisoned"))?;
        Ok(f(&mut conn)?)
    }

    /// The entry for `digest`, decoded by `decode`. A row of another
    /// generation, or one `decode` refuses, is deleted and is a miss; so is
    /// any database error (logged). Never fails.
    pub(crate) fn lookup<T>(
        &self,
        digest: &str,
        decode: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Option<T> {
        let row = self.with(|c| {
            c.query_row(
                "SELECT generation, data, sha256 FROM layers WHERE digest = ?1",
                params![digest],
                |r| {
                    Ok((
                        r.get::<_, String>(0),
                        r.get::<_, Vec<u8>>(1),
                        r.get::<_, Vec<u8>>(2),
                    ))
                },
            )
            .optional()
        });
        let found = match row {
            Ok(None) => None,
            Ok(Some((Ok(generation), Ok(data), Ok(sum)))) if generation == self.generation => {
                if Sha256::digest(&data).as_slice() != sum.as_slice() {
                    self.discard(digest, "its bytes do not match their checksum");
                    None
                } else if let Some(v) = decode(&data) {
                    Some(v)
                } else {
                    self.discard(digest, "its bytes do not decode");
                    None
                }
            }
            Ok(Some((Ok(generation), Ok(_), Ok(_)))) => {
                self.discard(digest, &format!("written by {generation}"));
                None
            }
            Ok(Some(_)) => {
                self.discard(digest, "the row has the wrong types");
                None
            }
            Err(e) => {
                tracing::warn!("reading the layer cache: {e:#}");
                None
            }
        };
        if found.is_some() {
            self.hits.fetch_add(1, Relaxed);
            if let Err(e) = self.with(|c| {
                c.execute(
                    "UPDATE layers SET used_at = ?2 WHERE digest = ?1",
                    params![digest, now_ms()],
                )
            }) {
                tracing::warn!("updating the layer cache: {e:#}");
            }
        } else {
            self.misses.fetch_add(1, Relaxed);
        }
        found
    }

    fn discard(&self, digest: &str, why: &str) {
        self.discarded.fetch_add(1, Relaxed);
        tracing::info!(
            "layer cache: dropping the entry for {digest} ({why}); the layer is scanned again"
        );
        if let Err(e) =
            self.with(|c| c.execute("DELETE FROM layers WHERE digest = ?1", params![digest]))
        {
            tracing::warn!("deleting from the layer cache: {e:#}");
        }
    }

    /// Keeps `data` as the entry for `digest`, evicting the least recently
    /// used entries beyond the limits. An entry larger than the byte limit
    /// is not kept. Errors are logged, never returned: the scan has its
    /// result either way.
    pub(crate) fn store(&self, digest: &str, data: &[u8]) {
        let size = data.len() as u64;
        if size > self.limits.bytes {
            return;
        }
        let limits = self.limits;
        let generation = self.generation.clone();
        let r = self.with(|c| {
            let tx = c.transaction()?;
            let now = now_ms();
            tx.execute(
                "INSERT INTO layers (digest, generation, data, sha256, size, stored_at, used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (digest) DO UPDATE SET generation = ?2, data = ?3, sha256 = ?4,
                     size = ?5, stored_at = ?6, used_at = ?6",
                params![
                    digest,
                    generation,
                    data,
                    Sha256::digest(data).as_slice(),
                    i64::try_from(size).unwrap_or(i64::MAX),
                    now
                ],
            )?;
            evict(&tx, limits, Some(digest))?;
            tx.commit()
        });
        if let Err(e) = r {
            tracing::warn!("writing to the layer cache: {e:#}");
        }
    }

    /// Counters since start, and what is kept now.
    pub(crate) fn stats(&self) -> CacheStats {
        let (layers, bytes) = self
            .with(|c| {
                c.query_row("SELECT COUNT(*), TOTAL(size) FROM layers", [], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
                })
            })
            .unwrap_or((0, 0.0));
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            discarded: self.discarded.load(Relaxed),
            layers: u64::try_from(layers).unwrap_or(0),
            bytes: bytes as u64,
        }
    }
}

/// Layer scans, encoded with the scanner's own codec: a row that does not
/// decode is a miss.
impl LayerStore for LayerDb {
    fn get(&self, digest: &Digest) -> Option<LayerIndex> {
        self.lookup(&digest.to_string(), |b| LayerIndex::from_bytes(b).ok())
    }

    fn put(&self, digest: &Digest, index: &LayerIndex) {
        self.store(&digest.to_string(), &index.to_bytes());
    }
}

/// Deletes least recently used rows (never `keep`) until the cache is
/// within `limits`.
fn evict(c: &Connection, limits: CacheLimits, keep: Option<&str>) -> rusqlite::Result<()> {
    let (rows, bytes): (i64, f64) =
        c.query_row("SELECT COUNT(*), TOTAL(size) FROM layers", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let mut rows = u64::try_from(rows).unwrap_or(0);
    let mut bytes = bytes as u64;
    if rows <= limits.layers && bytes <= limits.bytes {
        return Ok(());
    }
    let mut victims: Vec<String> = Vec::new();
    {
        let mut st = c.prepare(
            "SELECT digest, size FROM layers WHERE digest IS NOT ?1 ORDER BY used_at, digest",
        )?;
        let mut it = st.query(params![keep])?;
        while (rows > limits.layers || bytes > limits.bytes)
            && let Some(r) = it.next()?
        {
            let size: i64 = r.get(1)?;
            victims.push(r.get(0)?);
            rows -= 1;
            bytes = bytes.saturating_sub(u64::try_from(size).unwrap_or(0));
        }
    }
    for v in victims {
        c.execute("DELETE FROM layers WHERE digest = ?1", params![v])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: CacheLimits = CacheLimits {
        layers: 1000,
        bytes: 1 << 30,
    };

    fn text(b: &[u8]) -> Option<String> {
        String::from_utf8(b.to_vec()).ok()
    }

    fn d(n: u8) -> String {
        format!("sha256:{n:064}")
    }

    fn digests(db: &LayerDb) -> Vec<String> {
        db.with(|c| {
            let mut st = c.prepare("SELECT digest FROM layers ORDER BY digest")?;
            st.query_map([], |r| r.get(0))?.collect()
        })
        .unwrap()
    }

    #[test]
    fn entries_round_trip_and_count_hits_and_misses() {
        let db = LayerDb::memory(BIG, "g1").unwrap();
        assert_eq!(db.lookup(&d(1), text), None);
        db.store(&d(1), b"scan one");
        assert_eq!(db.lookup(&d(1), text).as_deref(), Some("scan one"));
        // A second store of the same digest replaces the entry.
        db.store(&d(1), b"scan one again");
        assert_eq!(db.lookup(&d(1), text).as_deref(), Some("scan one again"));
        let s = db.stats();
        assert_eq!((s.hits, s.misses, s.discarded), (2, 1, 0));
        assert_eq!((s.layers, s.bytes), (1, 14));
    }

    #[test]
    fn a_row_that_does_not_decode_is_a_miss_and_is_deleted() {
        let db = LayerDb::memory(BIG, "g1").unwrap();
        db.store(&d(1), &[0xff, 0xfe, 0x00]);
        db.store(&d(2), b"fine");
        assert_eq!(db.lookup(&d(1), text), None);
        assert_eq!(digests(&db), [d(2)]);
        // A row whose columns hold the wrong types (a damaged or foreign
        // row) is a miss too, not an error.
        db.with(|c| {
            c.execute(
                "INSERT INTO layers VALUES (?1, 'g1', 'not a blob but text', x'00', 'x', 0, 0)",
                params![d(3)],
            )
        })
        .unwrap();
        assert_eq!(db.lookup(&d(3), |b| Some(b.len())), None);
        assert_eq!(digests(&db), [d(2)]);
        let s = db.stats();
        assert_eq!((s.hits, s.misses, s.discarded), (0, 2, 2));
    }

    #[test]
    fn rows_of_another_generation_are_misses() {
        let db = LayerDb::memory(BIG, "g1").unwrap();
        db.store(&d(1), b"old");
        let db2 = LayerDb {
            generation: "g2".into(),
            ..db
        };
        assert_eq!(db2.lookup(&d(1), text), None);
        assert!(digests(&db2).is_empty());
        assert_eq!(db2.stats().discarded, 1);
    }

    #[test]
    fn the_least_recently_used_entries_go_first() {
        let db = LayerDb::memory(
            CacheLimits {
                layers: 3,
                bytes: 10,
            },
            "g1",
        )
        .unwrap();
        for n in 1..=3 {
            db.store(&d(n), b"ab");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // Using 1 makes 2 the least recently used.
        assert!(db.lookup(&d(1), text).is_some());
        std::thread::sleep(std::time::Duration::from_millis(2));
        db.store(&d(4), b"ab");
        assert_eq!(digests(&db), [d(1), d(3), d(4)]);
        // The byte limit (10): 6 bytes kept, 8 more need the two least
        // recently used entries (3, then 1) gone.
        db.store(&d(5), b"abcdefgh");
        assert_eq!(digests(&db), [d(4), d(5)]);
        // Larger than the whole cache: not kept, nothing evicted.
        db.store(&d(6), b"abcdefghijk");
        assert_eq!(digests(&db), [d(4), d(5)]);
        let s = db.stats();
        assert_eq!((s.layers, s.bytes), (2, 10));
    }

    #[test]
    fn the_cache_survives_a_restart_and_shrinks_to_new_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("serve.db"));
        assert_eq!(path, dir.path().join("serve.layers.db"));
        {
            let db = LayerDb::open(&path, BIG).unwrap();
            for n in 1..=3 {
                db.store(&d(n), b"scan");
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        let db = LayerDb::open(
            &path,
            CacheLimits {
                layers: 2,
                bytes: 1 << 20,
            },
        )
        .unwrap();
        assert_eq!(digests(&db), [d(2), d(3)]);
        assert_eq!(db.lookup(&d(3), text).as_deref(), Some("scan"));
    }

    #[test]
    fn a_damaged_cache_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.layers.db");
        std::fs::write(&path, vec![b'x'; 8192]).unwrap();
        let db = LayerDb::open(&path, BIG).unwrap();
        db.store(&d(1), b"scan");
        assert_eq!(db.lookup(&d(1), text).as_deref(), Some("scan"));
    }

    #[test]
    fn bytes_that_no_longer_match_their_checksum_are_a_miss() {
        let db = LayerDb::memory(BIG, "g1").unwrap();
        db.store(&d(1), b"mode 4755");
        // One flipped bit that still decodes.
        db.with(|c| c.execute("UPDATE layers SET data = CAST('mode 0755' AS BLOB)", []))
            .unwrap();
        assert_eq!(db.lookup(&d(1), text), None);
        assert!(digests(&db).is_empty());
        assert_eq!(db.stats().discarded, 1);
    }

    /// A layer with a setuid binary, scanned by the scanner.
    fn scanned_layer() -> (Digest, LayerIndex) {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("usr/bin/su").unwrap();
        h.set_size(4);
        h.set_mode(0o4755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, &b"#!x\n"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let idx =
            scanner::layer::scan_layer(&tar[..], &scanner::layer::LayerOptions::default()).unwrap();
        (Digest::sha256_of(&tar), idx)
    }

    #[test]
    fn layer_scans_round_trip_and_a_corrupt_row_is_a_miss() {
        let db = LayerDb::memory(BIG, GENERATION).unwrap();
        let (digest, idx) = scanned_layer();
        assert!(db.get(&digest).is_none());
        db.put(&digest, &idx);
        let back = db.get(&digest).expect("a hit");
        assert_eq!(back.to_bytes(), idx.to_bytes());
        assert_eq!(back.len(), 1);
        let e = back.entries().next().unwrap();
        assert_eq!(e.mode & 0o7777, 0o4755, "{e:?}");
        // Bytes the codec refuses, stored with a matching checksum (as a
        // row written by a buggy or foreign writer would be): a miss, and
        // the row is gone.
        for bad in [
            &idx.to_bytes()[..20],
            b"\0garbage".as_slice(),
            b"".as_slice(),
        ] {
            db.store(&digest.to_string(), bad);
            assert!(db.get(&digest).is_none());
            assert!(digests(&db).is_empty());
        }
        let s = db.stats();
        assert_eq!((s.hits, s.misses, s.discarded), (1, 4, 3));
        // And the layer is stored again after its rescan.
        db.put(&digest, &idx);
        assert!(db.get(&digest).is_some());
    }
}
