//! The SQLite backend: jobs, reports and Harbor scan ids in one embedded
//! database file (rusqlite, bundled SQLite), the zero-setup default.
//!
//! # Durability
//!
//! WAL mode with `synchronous = FULL`: a commit is on disk before the push
//! it records is acknowledged, so neither `kill -9` nor a power cut loses
//! one. At start [`JobStore::recover`] puts `running` jobs (a scan the
//! process died in) back to `queued`, unless they have used up their
//! attempts.
//!
//! # Schema versions
//!
//! `PRAGMA user_version` records the schema. Version 0 (imgscan 0.1 before
//! retention) lacks `jobs.touched_at`; version 1 lacks the reconciliation
//! cursors; [`SqliteStore::open`] migrates both, one version per
//! transaction. A database from a newer imgscan is refused rather than
//! guessed at.
//!
//! # Security
//!
//! The database file is created `0600`, and held with an exclusive lock
//! while imgscan runs: one process per database.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{
    Admission, Claimed, Counts, FAILED, HarborScan, JobStore, JobView, NewJob, PRUNE_BATCH,
    Retention, SavedCursor, now_ms,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    digest        TEXT NOT NULL UNIQUE,
    registry      TEXT NOT NULL,
    repository    TEXT NOT NULL,
    tag           TEXT,
    media_type    TEXT NOT NULL,
    source        TEXT NOT NULL,
    auth          TEXT,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    completions   INTEGER NOT NULL DEFAULT 0,
    notifications INTEGER NOT NULL DEFAULT 1,
    not_before    INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    report        TEXT,
    summary       TEXT,
    queued_at     INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    duration_ms   INTEGER,
    touched_at    INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE TABLE IF NOT EXISTS harbor_scans (
    id          TEXT PRIMARY KEY,
    digest      TEXT NOT NULL,
    repository  TEXT NOT NULL,
    tag         TEXT,
    mime_type   TEXT,
    created_at  INTEGER NOT NULL
);
";

/// The schema this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

/// The database. One connection behind a mutex: every statement is short,
/// and SQLite serialises writers anyway.
pub(crate) struct SqliteStore {
    path: String,
    conn: Mutex<Connection>,
}

const VIEW_COLUMNS: &str = "digest, registry, repository, tag, media_type, source, state, \
     attempts, completions, notifications, error, queued_at, started_at, finished_at, \
     duration_ms, summary, not_before";

fn view_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobView> {
    let ts = |v: Option<i64>| v.map(crate::rfc3339);
    let summary: Option<String> = row.get(15)?;
    let state: String = row.get(6)?;
    let not_before: i64 = row.get(16)?;
    let retry_in_secs = super::retry_in_secs(&state, not_before);
    Ok(JobView {
        digest: row.get(0)?,
        registry: row.get(1)?,
        repository: row.get(2)?,
        tag: row.get(3)?,
        media_type: row.get(4)?,
        source: row.get(5)?,
        state,
        attempts: row.get(7)?,
        completions: row.get(8)?,
        notifications: row.get(9)?,
        error: row.get(10)?,
        queued_at: crate::rfc3339(row.get(11)?),
        started_at: ts(row.get(12)?),
        finished_at: ts(row.get(13)?),
        duration_ms: row.get(14)?,
        summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
        verdict: None,
        retry_in_secs,
        replica: None,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the directory {}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening the database {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {} to its owner", path.display()))?;
        }
        Self::init(conn, path.display().to_string())
            .with_context(|| format!("setting up the database {}", path.display()))
    }

    /// An in-memory database, for tests.
    #[cfg(test)]
    pub(crate) fn memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?, ":memory:".to_owned())
    }

    fn init(conn: Connection, path: String) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        // One process per database: a second `imgscan serve` would re-queue
        // the first one's running jobs as if it had crashed. EXCLUSIVE
        // locking holds the file lock for the life of the connection (the
        // OS drops it when the process dies, even by `kill -9`).
        conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE;")?;
        // WAL: a commit is one append. FULL: a commit is on disk before we
        // acknowledge the push it records.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .context("locking the database (is another imgscan serve using it?)")?;
        if mode != "wal" && mode != "memory" {
            anyhow::bail!("the database cannot use WAL mode (journal_mode is {mode})");
        }
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .context("locking the database (is another imgscan serve using it?)")?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>) -> Result<R> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("the database lock is poisoned"))?;
        Ok(f(&mut conn)?)
    }
}

impl JobStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn describe(&self) -> String {
        self.path.clone()
    }

    /// After a crash: jobs that were running are queued again (or failed,
    /// when they have had `max_attempts` runs). Returns (re-queued, failed).
    fn recover(&self, max_attempts: u32) -> Result<(usize, usize)> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let failed = tx.execute(
                "UPDATE jobs SET state = 'failed', auth = NULL, finished_at = ?1, touched_at = ?1,
                     error = 'imgscan stopped during every one of ' || attempts || ' scan attempts'
                 WHERE state = 'running' AND attempts >= ?2",
                params![now_ms(), max_attempts],
            )?;
            let requeued = tx.execute(
                "UPDATE jobs SET state = 'queued', not_before = 0, started_at = NULL
                 WHERE state = 'running'",
                [],
            )?;
            tx.commit()?;
            Ok((requeued, failed))
        })
    }

    /// Records `jobs` in one transaction, at most up to `capacity` queued
    /// jobs in all. Returns what happened to each, in order.
    fn admit(&self, jobs: &[NewJob], capacity: usize) -> Result<Vec<Admission>> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut queued = queued_count(&tx)?;
            let mut out = Vec::with_capacity(jobs.len());
            for j in jobs {
                out.push(admit_one(&tx, j, capacity, &mut queued, Mode::Push)?);
            }
            tx.commit()?;
            Ok(out)
        })
    }

    /// Like [`Self::admit`], for digests found by a catalog sweep rather
    /// than pushed: a digest that has a job in any state, failed included,
    /// is left as it is ([`Admission::Duplicate`]) and not counted as a
    /// notification, so a sweep neither retries failed scans nor keeps a
    /// report from being pruned.
    fn admit_missing(&self, jobs: &[NewJob], capacity: usize) -> Result<Vec<Admission>> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut queued = queued_count(&tx)?;
            let mut out = Vec::with_capacity(jobs.len());
            for j in jobs {
                out.push(admit_one(&tx, j, capacity, &mut queued, Mode::Sweep)?);
            }
            tx.commit()?;
            Ok(out)
        })
    }

    /// Whether `digest` has a job, in any state.
    fn known(&self, digest: &str) -> Result<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) > 0 FROM jobs WHERE digest = ?1",
                params![digest],
                |r| r.get(0),
            )
        })
    }

    /// Records a Harbor scan request and its job in one transaction. On
    /// [`Admission::QueueFull`] nothing is recorded.
    fn admit_harbor(
        &self,
        id: &str,
        job: &NewJob,
        mime_type: Option<&str>,
        capacity: usize,
    ) -> Result<Admission> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut queued = queued_count(&tx)?;
            let a = admit_one(&tx, job, capacity, &mut queued, Mode::Push)?;
            if a != Admission::QueueFull {
                tx.execute(
                    "INSERT INTO harbor_scans (id, digest, repository, tag, mime_type, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, job.digest, job.repository, job.tag, mime_type, now_ms()],
                )?;
            }
            tx.commit()?;
            Ok(a)
        })
    }

    /// Takes the oldest due queued job and marks it running.
    fn claim(&self) -> Result<Option<Claimed>> {
        self.with(|c| {
            c.query_row(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?1
                 WHERE seq = (SELECT seq FROM jobs WHERE state = 'queued' AND not_before <= ?1
                              ORDER BY seq LIMIT 1)
                 RETURNING seq, digest, registry, repository, auth, attempts",
                params![now_ms()],
                |r| {
                    Ok(Claimed {
                        seq: r.get(0)?,
                        digest: r.get(1)?,
                        registry: r.get(2)?,
                        repository: r.get(3)?,
                        auth: r.get(4)?,
                        attempts: r.get(5)?,
                    })
                },
            )
            .optional()
        })
    }

    /// When the next queued job becomes due (ms), if any is waiting.
    fn next_due(&self) -> Result<Option<i64>> {
        self.with(|c| {
            c.query_row(
                "SELECT MIN(not_before) FROM jobs WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )
        })
    }

    fn finish_ok(
        &self,
        job: &Claimed,
        report: &str,
        summary: &str,
        duration_ms: i64,
    ) -> Result<bool> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE jobs SET state = 'done', report = ?2, summary = ?3, error = NULL,
                     auth = NULL, finished_at = ?4, touched_at = ?4, duration_ms = ?5,
                     completions = completions + 1
                 WHERE seq = ?1 AND state = 'running' AND attempts = ?6",
                params![
                    job.seq,
                    report,
                    summary,
                    now_ms(),
                    duration_ms,
                    job.attempts
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn finish_err(&self, job: &Claimed, error: &str, retry_at: Option<i64>) -> Result<bool> {
        self.with(|c| {
            let n = match retry_at {
                Some(at) => c.execute(
                    "UPDATE jobs SET state = 'queued', error = ?2, not_before = ?3, started_at = NULL
                     WHERE seq = ?1 AND state = 'running' AND attempts = ?4",
                    params![job.seq, error, at, job.attempts],
                )?,
                None => c.execute(
                    "UPDATE jobs SET state = 'failed', error = ?2, auth = NULL, finished_at = ?3,
                         touched_at = ?3
                     WHERE seq = ?1 AND state = 'running' AND attempts = ?4",
                    params![job.seq, error, now_ms(), job.attempts],
                )?,
            };
            Ok(n == 1)
        })
    }

    /// A job by digest.
    fn job(&self, digest: &str) -> Result<Option<JobView>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {VIEW_COLUMNS} FROM jobs WHERE digest = ?1"),
                params![digest],
                view_from_row,
            )
            .optional()
        })
    }

    /// A job and its report JSON (present when done).
    fn job_report(&self, digest: &str) -> Result<Option<(JobView, Option<String>)>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {VIEW_COLUMNS}, report FROM jobs WHERE digest = ?1"),
                params![digest],
                |r| Ok((view_from_row(r)?, r.get(17)?)),
            )
            .optional()
        })
    }

    /// The most recently queued jobs, newest first.
    fn recent(&self, limit: usize, state: Option<&str>) -> Result<Vec<JobView>> {
        self.with(|c| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut st = c.prepare(&format!(
                "SELECT {VIEW_COLUMNS} FROM jobs WHERE (?1 IS NULL OR state = ?1)
                 ORDER BY seq DESC LIMIT ?2"
            ))?;
            let rows = st.query_map(params![state, limit], view_from_row)?;
            rows.collect()
        })
    }

    /// Jobs by state.
    fn counts(&self) -> Result<Counts> {
        self.with(|c| {
            let mut st = c.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let mut counts = Counts::default();
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (state, n) = row?;
                counts.set(&state, n);
            }
            Ok(counts)
        })
    }

    /// A Harbor scan request by id.
    fn harbor_scan(&self, id: &str) -> Result<Option<HarborScan>> {
        self.with(|c| {
            c.query_row(
                "SELECT digest, repository, tag, mime_type FROM harbor_scans WHERE id = ?1",
                params![id],
                |r| {
                    Ok(HarborScan {
                        digest: r.get(0)?,
                        repository: r.get(1)?,
                        tag: r.get(2)?,
                        mime_type: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Deletes finished jobs (and their reports) that `policy` no longer
    /// keeps, `now` being the current time in ms. Queued and running jobs
    /// are never touched. Works in batches of [`PRUNE_BATCH`] rows, each its
    /// own transaction, so the database is never held for long. Returns how
    /// many jobs were deleted.
    fn prune(&self, policy: Retention, now: i64) -> Result<u64> {
        let mut deleted = 0u64;
        if let Some(age) = policy.max_age_ms {
            let cutoff = now.saturating_sub(age);
            loop {
                let n = self.with(|c| {
                    c.execute(
                        "DELETE FROM jobs WHERE seq IN (
                             SELECT seq FROM jobs
                             WHERE state IN ('done', 'failed') AND touched_at < ?1
                             ORDER BY touched_at, seq LIMIT ?2)",
                        params![cutoff, PRUNE_BATCH],
                    )
                })?;
                deleted += n as u64;
                if (n as i64) < PRUNE_BATCH {
                    break;
                }
            }
        }
        if let Some(max) = policy.max_finished {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            loop {
                let n = self.with(|c| {
                    let finished: i64 = c.query_row(
                        "SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'failed')",
                        [],
                        |r| r.get(0),
                    )?;
                    let excess = (finished - max).clamp(0, PRUNE_BATCH);
                    if excess == 0 {
                        return Ok(0);
                    }
                    c.execute(
                        "DELETE FROM jobs WHERE seq IN (
                             SELECT seq FROM jobs WHERE state IN ('done', 'failed')
                             ORDER BY touched_at, seq LIMIT ?1)",
                        params![excess],
                    )
                })?;
                deleted += n as u64;
                if n == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// Forgets Harbor scan ids older than `age_ms` (Harbor gives up after 30
    /// minutes anyway).
    fn expire_harbor(&self, age_ms: i64) -> Result<usize> {
        self.with(|c| {
            c.execute(
                "DELETE FROM harbor_scans WHERE created_at < ?1",
                params![now_ms() - age_ms],
            )
        })
    }

    fn cursor(&self, registry: &str) -> Result<SavedCursor> {
        self.with(|c| {
            c.query_row(
                "SELECT after_repo, partial_repo, partial_tag FROM reconcile_cursors
                 WHERE registry = ?1",
                params![registry],
                |r| {
                    Ok(SavedCursor {
                        after_repo: r.get(0)?,
                        partial_repo: r.get(1)?,
                        partial_tag: r.get(2)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
        })
    }

    fn save_cursor(&self, registry: &str, cursor: &SavedCursor) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO reconcile_cursors (registry, after_repo, partial_repo, partial_tag,
                                                updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (registry) DO UPDATE SET after_repo = ?2, partial_repo = ?3,
                     partial_tag = ?4, updated_at = ?5",
                params![
                    registry,
                    cursor.after_repo,
                    cursor.partial_repo,
                    cursor.partial_tag,
                    now_ms()
                ],
            )?;
            Ok(())
        })
    }

    fn ping(&self) -> Result<()> {
        self.with(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))?;
        Ok(())
    }

    #[cfg(test)]
    fn set_touched(&self, digest: &str, at: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET touched_at = ?2 WHERE digest = ?1",
                params![digest, at],
            )
        })?;
        Ok(())
    }

    #[cfg(test)]
    fn simulate_crash(&self, max_attempts: u32) -> Result<()> {
        self.recover(max_attempts).map(|_| ())
    }
}

/// Brings a database written by an older imgscan up to [`SCHEMA_VERSION`].
fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        anyhow::bail!(
            "the database was written by a newer imgscan (schema version {version}; this one \
             knows up to {SCHEMA_VERSION}); use that version or another --database"
        );
    }
    if version < 1 {
        let has_touched: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = 'touched_at'",
            [],
            |r| r.get(0),
        )?;
        let tx = conn.unchecked_transaction()?;
        if !has_touched {
            tx.execute_batch("ALTER TABLE jobs ADD COLUMN touched_at INTEGER;")?;
        }
        tx.execute(
            "UPDATE jobs SET touched_at = COALESCE(finished_at, queued_at) WHERE touched_at IS NULL",
            [],
        )?;
        tx.execute_batch(
            "CREATE INDEX IF NOT EXISTS jobs_finished_by_touch ON jobs (touched_at, seq)
                 WHERE state IN ('done', 'failed');
             PRAGMA user_version = 1;",
        )?;
        tx.commit()?;
    }
    if version < 2 {
        // Reconciliation cursors (issue 13): a sweep resumes where the last
        // one stopped, across restarts.
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS reconcile_cursors (
                 registry     TEXT PRIMARY KEY,
                 after_repo   TEXT,
                 partial_repo TEXT,
                 partial_tag  TEXT,
                 updated_at   INTEGER NOT NULL
             );
             PRAGMA user_version = 2;",
        )?;
        tx.commit()?;
    }
    Ok(())
}

fn queued_count(tx: &Transaction<'_>) -> rusqlite::Result<usize> {
    tx.query_row(
        "SELECT COUNT(*) FROM jobs WHERE state = 'queued'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Who asks for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A push (notification or Harbor request): counted, refreshes the
    /// retention clock, re-queues a failed scan.
    Push,
    /// A catalog sweep: only digests without a job are queued.
    Sweep,
}

fn admit_one(
    tx: &Transaction<'_>,
    j: &NewJob,
    capacity: usize,
    queued: &mut usize,
    mode: Mode,
) -> rusqlite::Result<Admission> {
    let existing: Option<String> = tx
        .query_row(
            "SELECT state FROM jobs WHERE digest = ?1",
            params![j.digest],
            |r| r.get(0),
        )
        .optional()?;
    if mode == Mode::Sweep && existing.is_some() {
        return Ok(Admission::Duplicate);
    }
    match existing.as_deref() {
        Some(FAILED) => {
            if *queued >= capacity {
                return Ok(Admission::QueueFull);
            }
            // A new push of an image whose scan failed: try again, with the
            // new push's coordinates (the old repository may be gone).
            tx.execute(
                "UPDATE jobs SET state = 'queued', registry = ?2, repository = ?3,
                     tag = COALESCE(?4, tag), media_type = ?5, source = ?6, auth = ?7,
                     attempts = 0, not_before = 0, error = NULL, started_at = NULL,
                     finished_at = NULL, notifications = notifications + 1, queued_at = ?8,
                     touched_at = ?8
                 WHERE digest = ?1",
                params![
                    j.digest,
                    j.registry,
                    j.repository,
                    j.tag,
                    j.media_type,
                    j.source,
                    j.auth,
                    now_ms()
                ],
            )?;
            *queued += 1;
            Ok(Admission::Requeued)
        }
        Some(_) => {
            // Fresher Harbor credentials replace older ones on a job that
            // has not run yet.
            tx.execute(
                "UPDATE jobs SET notifications = notifications + 1,
                     tag = COALESCE(tag, ?2),
                     auth = CASE WHEN ?3 IS NOT NULL AND state = 'queued' THEN ?3 ELSE auth END,
                     touched_at = ?4
                 WHERE digest = ?1",
                params![j.digest, j.tag, j.auth, now_ms()],
            )?;
            Ok(Admission::Duplicate)
        }
        None => {
            if *queued >= capacity {
                return Ok(Admission::QueueFull);
            }
            tx.execute(
                "INSERT INTO jobs (digest, registry, repository, tag, media_type, source, auth,
                                   state, queued_at, touched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?8)",
                params![
                    j.digest,
                    j.registry,
                    j.repository,
                    j.tag,
                    j.media_type,
                    j.source,
                    j.auth,
                    now_ms()
                ],
            )?;
            *queued += 1;
            Ok(Admission::Queued)
        }
    }
}

#[cfg(test)]
mod tests {
    //! SQLite only; the behaviour both backends share is in `suite.rs`.

    use super::*;

    #[test]
    fn old_databases_gain_the_retention_clock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // The schema as imgscan 0.1 wrote it, before retention.
            let c = Connection::open(&path).unwrap();
            let v0 = SCHEMA.replace(",\n    touched_at    INTEGER", "");
            assert!(!v0.contains("touched_at"));
            c.execute_batch(&v0).unwrap();
            c.execute(
                "INSERT INTO jobs (digest, registry, repository, media_type, source, state,
                                   queued_at, finished_at)
                 VALUES ('sha256:01', 'local', 'lab/app', 'm', 'distribution', 'done', 5, 7)",
                [],
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let touched: i64 = s
            .with(|c| c.query_row("SELECT touched_at FROM jobs", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(touched, 7);
        let version: i64 = s
            .with(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        drop(s);
        // A database from a newer imgscan is refused.
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99;")
            .unwrap();
        let err = format!("{:#}", SqliteStore::open(&path).err().unwrap());
        assert!(err.contains("newer imgscan"), "{err}");
    }

    /// A second process on the same file is refused at open.
    #[test]
    fn one_process_per_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.db");
        let _first = SqliteStore::open(&path).unwrap();
        let err = format!("{:#}", SqliteStore::open(&path).err().unwrap());
        assert!(err.contains("another imgscan serve"), "{err}");
    }
}
