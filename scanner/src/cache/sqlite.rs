//! The layer cache in one SQLite file ([`LayerDb`]).
//!
//! The file has its own connection and commits with `synchronous = NORMAL`
//! in WAL mode: losing the last entries on a power cut costs a rescan,
//! nothing else, and the file can be deleted at any time with imgscan
//! stopped. A damaged file is replaced on open, never a reason not to run.
//!
//! `imgscan serve` holds the file with an exclusive lock
//! ([`Locking::Exclusive`], one server per directory). The CLI shares it
//! ([`Locking::Shared`]): several `imgscan` processes may use one cache at
//! the same time, each waiting up to [`DbOptions::busy_timeout`] for the
//! others' writes, and a write that still finds the file busy is dropped
//! (a miss next time), never an error.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::entry::{self, Entry, GENERATION, Rejected, now_ms};
use super::{CacheLimits, CacheStats, Level, Log};
use crate::digest::Digest;
use crate::layer::LayerIndex;
use crate::source::registry::LayerStore;

/// The schema (`PRAGMA user_version`). A file of another version is
/// emptied and started afresh: it is a cache.
const SCHEMA_VERSION: i64 = 1;

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

/// Why a cache file could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// SQLite refused the file, or a statement setting it up failed.
    #[error("{what} the layer cache {path}: {source}")]
    Sqlite {
        /// The step (`opening`, `setting up`, `locking`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The file's permissions could not be set to its owner only.
    #[error("restricting {path} to its owner: {source}")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file system does not support WAL mode (shared memory).
    #[error("the layer cache {path} cannot use WAL mode (journal_mode is {mode})")]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
}

impl CacheError {
    /// Whether the file is not a usable database (as opposed to locked,
    /// or unreadable for permissions).
    pub fn is_damaged(&self) -> bool {
        matches!(
            self,
            Self::Sqlite { source, .. }
                if matches!(
                    source.sqlite_error_code(),
                    Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
                )
        )
    }

    /// Whether another process holds the file (serve's exclusive lock, or
    /// a writer that outlasted the busy timeout).
    pub fn is_locked(&self) -> bool {
        matches!(
            self,
            Self::Sqlite { source, .. }
                if matches!(
                    source.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                )
        )
    }
}

/// How a process holds the cache file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locking {
    /// For as long as it is open, as `imgscan serve` does: a second
    /// process fails to open it.
    Exclusive,
    /// Per transaction: processes take turns.
    Shared,
}

/// How to open a [`LayerDb`].
#[derive(Clone)]
pub struct DbOptions {
    /// Its bounds.
    pub limits: CacheLimits,
    /// How the file is locked.
    pub locking: Locking,
    /// How long a statement waits for another connection's lock.
    pub busy_timeout: Duration,
    /// Where messages go (none: dropped).
    pub log: Option<Log>,
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("limits", &self.limits)
            .field("locking", &self.locking)
            .field("busy_timeout", &self.busy_timeout)
            .finish_non_exhaustive()
    }
}

impl DbOptions {
    /// `limits`, an exclusive lock (serve's settings), a 2 s busy timeout
    /// and no log.
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            limits,
            locking: Locking::Exclusive,
            busy_timeout: Duration::from_secs(2),
            log: None,
        }
    }
}

/// A layer cache file: [`entry`] rows in a SQLite table `layers`.
pub struct LayerDb {
    conn: Mutex<Connection>,
    limits: CacheLimits,
    generation: String,
    log: Option<Log>,
    hits: AtomicU64,
    misses: AtomicU64,
    discarded: AtomicU64,
}

impl std::fmt::Debug for LayerDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerDb")
            .field("limits", &self.limits)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl LayerDb {
    /// Opens (creating if needed, mode 0600) the cache at `path`. A
    /// damaged file is deleted and started afresh, with a warning.
    pub fn open(path: &Path, opts: &DbOptions) -> Result<Self, CacheError> {
        match Self::open_file(path, opts) {
            Err(e) if e.is_damaged() => {
                if let Some(log) = &opts.log {
                    log(
                        Level::Warn,
                        &format!(
                            "the layer cache {} is damaged ({e}); starting a new one",
                            path.display()
                        ),
                    );
                }
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.as_os_str().to_owned();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
                Self::open_file(path, opts)
            }
            r => r,
        }
    }

    fn open_file(path: &Path, opts: &DbOptions) -> Result<Self, CacheError> {
        let sql = |what| {
            move |source| CacheError::Sqlite {
                what,
                path: path.to_owned(),
                source,
            }
        };
        let conn = Connection::open(path).map_err(sql("opening"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| CacheError::Permissions {
                    path: path.to_owned(),
                    source,
                },
            )?;
        }
        Self::init(conn, opts, GENERATION, path)
    }

    /// An in-memory cache, for tests.
    #[cfg(test)]
    pub(crate) fn memory(limits: CacheLimits, generation: &str) -> Result<Self, CacheError> {
        let conn = Connection::open_in_memory().map_err(|source| CacheError::Sqlite {
            what: "opening",
            path: ":memory:".into(),
            source,
        })?;
        Self::init(
            conn,
            &DbOptions::new(limits),
            generation,
            Path::new(":memory:"),
        )
    }

    fn init(
        conn: Connection,
        opts: &DbOptions,
        generation: &str,
        path: &Path,
    ) -> Result<Self, CacheError> {
        let sql = |what| {
            move |source| CacheError::Sqlite {
                what,
                path: path.to_owned(),
                source,
            }
        };
        conn.busy_timeout(opts.busy_timeout)
            .map_err(sql("setting up"))?;
        if opts.locking == Locking::Exclusive {
            conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE;")
                .map_err(sql("setting up"))?;
        }
        let mode = journal_wal(&conn, opts.busy_timeout).map_err(sql("setting up"))?;
        if mode != "wal" && mode != "memory" {
            return Err(CacheError::NoWal {
                path: path.to_owned(),
                mode,
            });
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(sql("setting up"))?;
        // One write transaction: it takes (and, in exclusive mode, keeps)
        // the lock, and two processes creating the file at once do not
        // empty each other's table.
        conn.execute_batch("BEGIN IMMEDIATE;")
            .map_err(sql("locking"))?;
        let setup = || -> rusqlite::Result<()> {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version != SCHEMA_VERSION {
                conn.execute_batch("DROP TABLE IF EXISTS layers;")?;
            }
            conn.execute_batch(SCHEMA)?;
            if version != SCHEMA_VERSION {
                conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
            }
            // The limits may have shrunk since the last run.
            evict(&conn, opts.limits, None)?;
            conn.execute_batch("COMMIT;")
        };
        if let Err(e) = setup() {
            let _ = conn.execute_batch("ROLLBACK;");
            return Err(sql("setting up")(e));
        }
        Ok(Self {
            conn: Mutex::new(conn),
            limits: opts.limits,
            generation: generation.to_owned(),
            log: opts.log.clone(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
        })
    }

    fn log(&self, level: Level, msg: &str) {
        if let Some(log) = &self.log {
            log(level, msg);
        }
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        match self.conn.lock() {
            Ok(mut c) => f(&mut c),
            // A thread panicked holding the connection; SQLite rolls back
            // an unfinished transaction, so the connection is still sound.
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The entry for `digest`, decoded by `decode`. A row of another
    /// generation, whose bytes do not match their checksum, or that
    /// `decode` refuses, is deleted and is a miss; so is any database error
    /// (logged). Never fails.
    pub fn lookup<T>(
        &self,
        digest: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, Rejected>,
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
            Ok(Some((Ok(generation), Ok(data), Ok(sum)))) => {
                match entry::check(&self.generation, &generation, &data, &sum).and_then(decode) {
                    Ok(v) => Some(v),
                    Err(why) => {
                        self.discard(digest, &why);
                        None
                    }
                }
            }
            Ok(Some(_)) => {
                self.discard(digest, &Rejected::Malformed);
                None
            }
            Err(e) => {
                self.log(Level::Warn, &format!("reading the layer cache: {e}"));
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
                self.log(Level::Warn, &format!("updating the layer cache: {e}"));
            }
        } else {
            self.misses.fetch_add(1, Relaxed);
        }
        found
    }

    fn discard(&self, digest: &str, why: &Rejected) {
        self.discarded.fetch_add(1, Relaxed);
        self.log(
            Level::Info,
            &format!(
                "layer cache: dropping the entry for {digest} ({why}); the layer is scanned again"
            ),
        );
        if let Err(e) =
            self.with(|c| c.execute("DELETE FROM layers WHERE digest = ?1", params![digest]))
        {
            self.log(Level::Warn, &format!("deleting from the layer cache: {e}"));
        }
    }

    /// Keeps `data` as the entry for `digest` (of this cache's
    /// generation), evicting the least recently used entries beyond the
    /// limits. An entry larger than the byte limit is not kept. Errors are
    /// logged, never returned: the scan has its result either way.
    pub fn store(&self, digest: &str, data: Vec<u8>) {
        self.store_entry(digest, &Entry::new(&self.generation, data));
    }

    fn store_entry(&self, digest: &str, e: &Entry) {
        let size = e.size();
        if size > self.limits.bytes {
            return;
        }
        let limits = self.limits;
        let r = self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO layers (digest, generation, data, sha256, size, stored_at, used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (digest) DO UPDATE SET generation = ?2, data = ?3, sha256 = ?4,
                     size = ?5, stored_at = ?6, used_at = ?6",
                params![
                    digest,
                    e.generation,
                    e.data,
                    e.sha256.as_slice(),
                    i64::try_from(size).unwrap_or(i64::MAX),
                    now_ms()
                ],
            )?;
            evict(&tx, limits, Some(digest))?;
            tx.commit()
        });
        if let Err(e) = r {
            self.log(Level::Warn, &format!("writing to the layer cache: {e}"));
        }
    }

    /// Counters since open, and what is kept now.
    pub fn stats(&self) -> CacheStats {
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

    /// The digests kept, in order.
    pub fn digests(&self) -> Vec<String> {
        self.with(|c| {
            let mut st = c.prepare("SELECT digest FROM layers ORDER BY digest")?;
            st.query_map([], |r| r.get(0))?.collect()
        })
        .unwrap_or_default()
    }
}

/// Layer scans, as [`entry`] encodes them.
impl LayerStore for LayerDb {
    fn get(&self, digest: &Digest) -> Option<LayerIndex> {
        self.lookup(&digest.to_string(), entry::decode_layer)
    }

    fn put(&self, digest: &Digest, index: &LayerIndex) {
        self.store(&digest.to_string(), entry::encode_layer(index));
    }
}

/// `PRAGMA journal_mode = WAL`, retried while another process holds the
/// file (switching a new file to WAL needs it alone, and SQLite's busy
/// handler does not cover that step).
fn journal_wal(conn: &Connection, patience: Duration) -> rusqlite::Result<String> {
    let start = std::time::Instant::now();
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && start.elapsed() < patience =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
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

    fn text(b: &[u8]) -> Result<String, Rejected> {
        String::from_utf8(b.to_vec()).map_err(|_| Rejected::Undecodable)
    }

    fn d(n: u8) -> String {
        format!("sha256:{n:064}")
    }

    fn shared(limits: CacheLimits) -> DbOptions {
        DbOptions {
            locking: Locking::Shared,
            ..DbOptions::new(limits)
        }
    }

    #[test]
    fn entries_round_trip_and_count_hits_and_misses() {
        let db = LayerDb::memory(BIG, "g1").unwrap();
        assert_eq!(db.lookup(&d(1), text), None);
        db.store(&d(1), b"scan one".to_vec());
        assert_eq!(db.lookup(&d(1), text).as_deref(), Some("scan one"));
        // A second store of the same digest replaces the entry.
        db.store(&d(1), b"scan one again".to_vec());
        assert_eq!(db.lookup(&d(1), text).as_deref(), Some("scan one again"));
        let s = db.stats();
        assert_eq!((s.hits, s.misses, s.discarded), (2, 1, 0));
        assert_eq!((s.layers, s.bytes), (1, 14));
    }

    #[test]
    fn a_row_that_does_not_decode_is_a_miss_and_is_deleted() {
        let db = LayerDb::memory(BIG, "g1").unwrap();
        db.store(&d(1), vec![0xff, 0xfe, 0x00]);
        db.store(&d(2), b"fine".to_vec());
        assert_eq!(db.lookup(&d(1), text), None);
        assert_eq!(db.digests(), [d(2)]);
        // A row whose columns hold the wrong types (a damaged or foreign
        // row) is a miss too, not an error.
        db.with(|c| {
            c.execute(
                "INSERT INTO layers VALUES (?1, 'g1', 'not a blob but text', x'00', 'x', 0, 0)",
                params![d(3)],
            )
        })
        .unwrap();
        assert_eq!(db.lookup(&d(3), |b| Ok(b.len())), None);
        assert_eq!(db.digests(), [d(2)]);
        let s = db.stats();
        assert_eq!((s.hits, s.misses, s.discarded), (0, 2, 2));
    }

    #[test]
    fn rows_of_another_generation_are_misses() {
        let db = LayerDb::memory(BIG, "g1").unwrap();
        db.store(&d(1), b"old".to_vec());
        let db2 = LayerDb {
            generation: "g2".into(),
            ..db
        };
        assert_eq!(db2.lookup(&d(1), text), None);
        assert!(db2.digests().is_empty());
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
            db.store(&d(n), b"ab".to_vec());
            std::thread::sleep(Duration::from_millis(2));
        }
        // Using 1 makes 2 the least recently used.
        assert!(db.lookup(&d(1), text).is_some());
        std::thread::sleep(Duration::from_millis(2));
        db.store(&d(4), b"ab".to_vec());
        assert_eq!(db.digests(), [d(1), d(3), d(4)]);
        // The byte limit (10): 6 bytes kept, 8 more need the two least
        // recently used entries (3, then 1) gone.
        db.store(&d(5), b"abcdefgh".to_vec());
        assert_eq!(db.digests(), [d(4), d(5)]);
        // Larger than the whole cache: not kept, nothing evicted.
        db.store(&d(6), b"abcdefghijk".to_vec());
        assert_eq!(db.digests(), [d(4), d(5)]);
        let s = db.stats();
        assert_eq!((s.layers, s.bytes), (2, 10));
    }

    #[test]
    fn the_cache_survives_a_restart_and_shrinks_to_new_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layers.db");
        {
            let db = LayerDb::open(&path, &DbOptions::new(BIG)).unwrap();
            for n in 1..=3 {
                db.store(&d(n), b"scan".to_vec());
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let small = CacheLimits {
            layers: 2,
            bytes: 1 << 20,
        };
        let db = LayerDb::open(&path, &DbOptions::new(small)).unwrap();
        assert_eq!(db.digests(), [d(2), d(3)]);
        assert_eq!(db.lookup(&d(3), text).as_deref(), Some("scan"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_damaged_cache_file_is_replaced_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.layers.db");
        std::fs::write(&path, vec![b'x'; 8192]).unwrap();
        let said = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log: Log = {
            let said = std::sync::Arc::clone(&said);
            std::sync::Arc::new(move |l, m: &str| said.lock().unwrap().push((l, m.to_owned())))
        };
        let opts = DbOptions {
            log: Some(log),
            ..DbOptions::new(BIG)
        };
        let db = LayerDb::open(&path, &opts).unwrap();
        db.store(&d(1), b"scan".to_vec());
        assert_eq!(db.lookup(&d(1), text).as_deref(), Some("scan"));
        let said = said.lock().unwrap();
        assert_eq!(said.len(), 1, "{said:?}");
        assert_eq!(said[0].0, Level::Warn);
        assert!(said[0].1.contains("is damaged"), "{said:?}");
    }

    #[test]
    fn bytes_that_no_longer_match_their_checksum_are_a_miss() {
        let db = LayerDb::memory(BIG, "g1").unwrap();
        db.store(&d(1), b"mode 4755".to_vec());
        // One flipped bit that still decodes.
        db.with(|c| c.execute("UPDATE layers SET data = CAST('mode 0755' AS BLOB)", []))
            .unwrap();
        assert_eq!(db.lookup(&d(1), text), None);
        assert!(db.digests().is_empty());
        assert_eq!(db.stats().discarded, 1);
    }

    #[test]
    fn an_exclusive_holder_keeps_others_out_and_shared_ones_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layers.db");
        let quick = |o: DbOptions| DbOptions {
            busy_timeout: Duration::from_millis(100),
            ..o
        };
        {
            let _serve = LayerDb::open(&path, &DbOptions::new(BIG)).unwrap();
            let e = LayerDb::open(&path, &quick(shared(BIG))).unwrap_err();
            assert!(e.is_locked(), "{e}");
            assert!(!e.is_damaged(), "{e}");
        }
        let a = LayerDb::open(&path, &shared(BIG)).unwrap();
        let b = LayerDb::open(&path, &shared(BIG)).unwrap();
        a.store(&d(1), b"from a".to_vec());
        b.store(&d(2), b"from b".to_vec());
        assert_eq!(a.lookup(&d(2), text).as_deref(), Some("from b"));
        assert_eq!(b.lookup(&d(1), text).as_deref(), Some("from a"));
    }

    #[test]
    fn processes_opening_a_new_file_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layers.db");
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..8u8)
                .map(|n| {
                    let path = &path;
                    s.spawn(move || {
                        let db = LayerDb::open(path, &shared(BIG)).unwrap();
                        db.store(&d(n), vec![n; 100]);
                        db.lookup(&d(n), |b| Ok(b.to_vec()))
                    })
                })
                .collect();
            for (n, h) in hs.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), Some(vec![n as u8; 100]));
            }
        });
        let db = LayerDb::open(&path, &shared(BIG)).unwrap();
        assert_eq!(db.digests().len(), 8);
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
            crate::layer::scan_layer(&tar[..], &crate::layer::LayerOptions::default()).unwrap();
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
            db.store(&digest.to_string(), bad.to_vec());
            assert!(db.get(&digest).is_none());
            assert!(db.digests().is_empty());
        }
        let s = db.stats();
        assert_eq!((s.hits, s.misses, s.discarded), (1, 4, 3));
        // And the layer is stored again after its rescan.
        db.put(&digest, &idx);
        assert!(db.get(&digest).is_some());
    }
}
