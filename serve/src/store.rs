//! The durable side of `imgscan serve`: jobs, reports and Harbor scan ids in
//! one SQLite database (rusqlite, bundled SQLite).
//!
//! # Durability
//!
//! The database is the queue. A push is acknowledged (2xx) only after the
//! transaction that records its job has committed, in WAL mode with
//! `synchronous = FULL`, so neither `kill -9` nor a power cut loses an
//! acknowledged push. Jobs move `queued → running → done | failed`; at start
//! [`Store::recover`] puts `running` jobs (a scan the process died in) back to
//! `queued`, unless they have used up their attempts.
//!
//! # Exactly once
//!
//! The manifest digest is the job's key (`UNIQUE`): the same image pushed
//! again, to another tag or repository, or notified twice (the registry
//! retries whole envelopes) is one job and one scan. Content addressing makes
//! that safe: the same digest is the same bytes wherever it lives.
//! `completions` counts stored results and is never more than 1 unless a
//! failed job is explicitly re-queued by a new push.
//!
//! # Retention
//!
//! Finished jobs (`done` and `failed`) and their reports are deleted by
//! [`Store::prune`] once they are older than `report_retention_days` or
//! beyond the newest `max_reports`. Age is counted from `touched_at`: when
//! the job last finished or a push last named its digest, so the report of
//! an image that is still being pushed stays. Queued and running jobs are
//! never deleted. A digest whose job was pruned is scanned again if it is
//! pushed again.
//!
//! # Schema versions
//!
//! `PRAGMA user_version` records the schema. Version 0 (imgscan 0.1 before
//! retention) lacks `jobs.touched_at`; [`Store::open`] adds it. A database
//! from a newer imgscan is refused rather than guessed at.
//!
//! # Security
//!
//! Harbor passes a short-lived registry credential with each scan request.
//! It is kept in `jobs.auth` so that a restart can still pull, and cleared as
//! soon as the job ends. The database file is created `0600`, and held
//! with an exclusive lock while imgscan runs.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use scanner::model::Summary;
use serde::Serialize;

/// Job states, as stored.
pub(crate) const QUEUED: &str = "queued";
pub(crate) const RUNNING: &str = "running";
pub(crate) const DONE: &str = "done";
pub(crate) const FAILED: &str = "failed";

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
const SCHEMA_VERSION: i64 = 1;

/// Rows deleted per transaction while pruning, so that requests waiting for
/// the database are not held up for long.
const PRUNE_BATCH: i64 = 500;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A scan to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewJob {
    pub(crate) digest: String,
    /// Allowlist entry name.
    pub(crate) registry: String,
    pub(crate) repository: String,
    pub(crate) tag: Option<String>,
    pub(crate) media_type: String,
    /// `distribution`, `harbor` or `reconcile`.
    pub(crate) source: &'static str,
    /// Harbor's registry authorization, if any.
    pub(crate) auth: Option<String>,
}

/// What happened to a [`NewJob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A new job.
    Queued,
    /// A failed job queued again by a new push.
    Requeued,
    /// Already known (queued, running or done): nothing to do.
    Duplicate,
    /// The queue is full; the caller answers 503.
    QueueFull,
}

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) seq: i64,
    pub(crate) digest: String,
    pub(crate) registry: String,
    pub(crate) repository: String,
    pub(crate) auth: Option<String>,
    pub(crate) attempts: u32,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct JobView {
    pub(crate) digest: String,
    pub(crate) registry: String,
    pub(crate) repository: String,
    pub(crate) tag: Option<String>,
    pub(crate) media_type: String,
    pub(crate) source: String,
    pub(crate) state: String,
    /// Scan runs started (a crash mid-scan or a retry adds one).
    pub(crate) attempts: u32,
    /// Results stored.
    pub(crate) completions: u32,
    /// Notifications and scan requests that named this digest.
    pub(crate) notifications: u32,
    pub(crate) error: Option<String>,
    pub(crate) queued_at: String,
    pub(crate) started_at: Option<String>,
    pub(crate) finished_at: Option<String>,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) summary: Option<Summary>,
    /// `pass` or `fail` at the configured threshold, when done.
    pub(crate) verdict: Option<&'static str>,
    /// Seconds until a retry, when queued after a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retry_in_secs: Option<i64>,
}

/// A Harbor scan request.
#[derive(Debug, Clone)]
pub(crate) struct HarborScan {
    pub(crate) digest: String,
    pub(crate) repository: String,
    pub(crate) tag: Option<String>,
    pub(crate) mime_type: Option<String>,
}

/// How long finished jobs and their reports are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retention {
    /// Delete finished jobs not touched for this long (ms); `None` keeps
    /// them whatever their age.
    pub(crate) max_age_ms: Option<i64>,
    /// Keep at most this many finished jobs, the most recently touched;
    /// `None` for no limit.
    pub(crate) max_finished: Option<u64>,
}

/// Jobs by state.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) queued: u64,
    pub(crate) running: u64,
    pub(crate) done: u64,
    pub(crate) failed: u64,
}

/// The database. One connection behind a mutex: every statement is short,
/// and SQLite serialises writers anyway.
pub(crate) struct Store {
    conn: Mutex<Connection>,
}

const VIEW_COLUMNS: &str = "digest, registry, repository, tag, media_type, source, state, \
     attempts, completions, notifications, error, queued_at, started_at, finished_at, \
     duration_ms, summary, not_before";

fn view_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobView> {
    let ts = |v: Option<i64>| v.map(super::rfc3339);
    let summary: Option<String> = row.get(15)?;
    let state: String = row.get(6)?;
    let not_before: i64 = row.get(16)?;
    let retry_in_secs =
        (state == QUEUED && not_before > now_ms()).then(|| (not_before - now_ms() + 999) / 1000);
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
        queued_at: super::rfc3339(row.get(11)?),
        started_at: ts(row.get(12)?),
        finished_at: ts(row.get(13)?),
        duration_ms: row.get(14)?,
        summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
        verdict: None,
        retry_in_secs,
    })
}

impl Store {
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
        Self::init(conn).with_context(|| format!("setting up the database {}", path.display()))
    }

    /// An in-memory database, for tests.
    #[cfg(test)]
    pub(crate) fn memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
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

    /// After a crash: jobs that were running are queued again (or failed,
    /// when they have had `max_attempts` runs). Returns (re-queued, failed).
    pub(crate) fn recover(&self, max_attempts: u32) -> Result<(usize, usize)> {
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
    pub(crate) fn admit(&self, jobs: &[NewJob], capacity: usize) -> Result<Vec<Admission>> {
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
    pub(crate) fn admit_missing(&self, jobs: &[NewJob], capacity: usize) -> Result<Vec<Admission>> {
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
    pub(crate) fn known(&self, digest: &str) -> Result<bool> {
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
    pub(crate) fn admit_harbor(
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
    pub(crate) fn claim(&self) -> Result<Option<Claimed>> {
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
    pub(crate) fn next_due(&self) -> Result<Option<i64>> {
        self.with(|c| {
            c.query_row(
                "SELECT MIN(not_before) FROM jobs WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )
        })
    }

    /// Stores a finished scan.
    pub(crate) fn finish_ok(
        &self,
        seq: i64,
        report: &str,
        summary: &str,
        duration_ms: i64,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'done', report = ?2, summary = ?3, error = NULL,
                     auth = NULL, finished_at = ?4, touched_at = ?4, duration_ms = ?5,
                     completions = completions + 1
                 WHERE seq = ?1 AND state = 'running'",
                params![seq, report, summary, now_ms(), duration_ms],
            )?;
            Ok(())
        })
    }

    /// Records a failed scan: queued again at `retry_at` (ms), or failed for
    /// good when `retry_at` is `None`.
    pub(crate) fn finish_err(&self, seq: i64, error: &str, retry_at: Option<i64>) -> Result<()> {
        self.with(|c| {
            match retry_at {
                Some(at) => c.execute(
                    "UPDATE jobs SET state = 'queued', error = ?2, not_before = ?3, started_at = NULL
                     WHERE seq = ?1 AND state = 'running'",
                    params![seq, error, at],
                )?,
                None => c.execute(
                    "UPDATE jobs SET state = 'failed', error = ?2, auth = NULL, finished_at = ?3,
                         touched_at = ?3
                     WHERE seq = ?1 AND state = 'running'",
                    params![seq, error, now_ms()],
                )?,
            };
            Ok(())
        })
    }

    /// A job by digest.
    pub(crate) fn job(&self, digest: &str) -> Result<Option<JobView>> {
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
    pub(crate) fn job_report(&self, digest: &str) -> Result<Option<(JobView, Option<String>)>> {
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
    pub(crate) fn recent(&self, limit: usize, state: Option<&str>) -> Result<Vec<JobView>> {
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
    pub(crate) fn counts(&self) -> Result<Counts> {
        self.with(|c| {
            let mut st = c.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let mut counts = Counts::default();
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (state, n) = row?;
                let n = u64::try_from(n).unwrap_or(0);
                match state.as_str() {
                    QUEUED => counts.queued = n,
                    RUNNING => counts.running = n,
                    DONE => counts.done = n,
                    _ => counts.failed = n,
                }
            }
            Ok(counts)
        })
    }

    /// A Harbor scan request by id.
    pub(crate) fn harbor_scan(&self, id: &str) -> Result<Option<HarborScan>> {
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
    pub(crate) fn prune(&self, policy: Retention, now: i64) -> Result<u64> {
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
    pub(crate) fn expire_harbor(&self, age_ms: i64) -> Result<usize> {
        self.with(|c| {
            c.execute(
                "DELETE FROM harbor_scans WHERE created_at < ?1",
                params![now_ms() - age_ms],
            )
        })
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
    use super::*;

    fn job(d: &str) -> NewJob {
        NewJob {
            digest: format!("sha256:{d:0>64}"),
            registry: "local".into(),
            repository: "lab/app".into(),
            tag: Some("v1".into()),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            source: "distribution",
            auth: None,
        }
    }

    #[test]
    fn admission_dedupes_and_respects_capacity() {
        let s = Store::memory().unwrap();
        let a = s
            .admit(&[job("1"), job("1"), job("2"), job("3")], 2)
            .unwrap();
        assert_eq!(
            a,
            [
                Admission::Queued,
                Admission::Duplicate,
                Admission::Queued,
                Admission::QueueFull
            ]
        );
        assert_eq!(s.counts().unwrap().queued, 2);
        let j = s.job(&job("1").digest).unwrap().unwrap();
        assert_eq!(j.notifications, 2);
    }

    #[test]
    fn crash_recovery_requeues_running_jobs_once() {
        let s = Store::memory().unwrap();
        s.admit(&[job("1"), job("2")], 10).unwrap();
        let c = s.claim().unwrap().unwrap();
        assert_eq!(c.attempts, 1);
        // The process dies here.
        assert_eq!(s.recover(3).unwrap(), (1, 0));
        let again = s.claim().unwrap().unwrap();
        assert_eq!(again.digest, c.digest);
        assert_eq!(again.attempts, 2);
        s.finish_ok(again.seq, "{}", "{}", 1).unwrap();
        let v = s.job(&c.digest).unwrap().unwrap();
        assert_eq!((v.state.as_str(), v.completions), (DONE, 1));
        // A re-push of a done image is a duplicate, not a new scan.
        assert_eq!(s.admit(&[job("1")], 10).unwrap(), [Admission::Duplicate]);
    }

    #[test]
    fn poison_jobs_fail_after_max_attempts() {
        let s = Store::memory().unwrap();
        s.admit(&[job("1")], 10).unwrap();
        for _ in 0..2 {
            s.claim().unwrap().unwrap();
            s.recover(2).unwrap();
        }
        let v = s.job(&job("1").digest).unwrap().unwrap();
        assert_eq!(v.state, FAILED);
        // A new push retries a failed image.
        assert_eq!(s.admit(&[job("1")], 10).unwrap(), [Admission::Requeued]);
    }

    #[test]
    fn retries_wait_until_due() {
        let s = Store::memory().unwrap();
        s.admit(&[job("1")], 10).unwrap();
        let c = s.claim().unwrap().unwrap();
        s.finish_err(c.seq, "registry down", Some(now_ms() + 60_000))
            .unwrap();
        assert!(s.claim().unwrap().is_none());
        assert!(s.next_due().unwrap().unwrap() > now_ms());
    }

    const DAY_MS: i64 = 24 * 3600 * 1000;

    /// Finishes `d` (queued or not yet known) as done, touched at `at`.
    fn done_at(s: &Store, d: &str, at: i64) {
        s.admit(&[job(d)], 10_000).unwrap();
        let c = s.claim().unwrap().unwrap();
        assert_eq!(c.digest, job(d).digest);
        s.finish_ok(c.seq, "{}", "{}", 1).unwrap();
        set_touched(s, d, at);
    }

    fn set_touched(s: &Store, d: &str, at: i64) {
        s.with(|c| {
            c.execute(
                "UPDATE jobs SET touched_at = ?2 WHERE digest = ?1",
                params![job(d).digest, at],
            )
        })
        .unwrap();
    }

    fn digests(s: &Store) -> Vec<String> {
        let mut v: Vec<String> = s
            .recent(10_000, None)
            .unwrap()
            .into_iter()
            .map(|j| {
                j.digest
                    .trim_start_matches("sha256:")
                    .trim_start_matches('0')
                    .to_owned()
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn pruning_by_age_never_deletes_unfinished_jobs() {
        let s = Store::memory().unwrap();
        let now = now_ms();
        done_at(&s, "1", now - 10 * DAY_MS);
        // 2 fails for good, long ago.
        s.admit(&[job("2")], 10).unwrap();
        let c = s.claim().unwrap().unwrap();
        s.finish_err(c.seq, "401", None).unwrap();
        set_touched(&s, "2", now - 10 * DAY_MS);
        done_at(&s, "3", now - DAY_MS / 2);
        // 4 is running and 5 queued, both "old".
        s.admit(&[job("4"), job("5")], 10).unwrap();
        assert_eq!(s.claim().unwrap().unwrap().digest, job("4").digest);
        set_touched(&s, "4", now - 10 * DAY_MS);
        set_touched(&s, "5", now - 10 * DAY_MS);

        let policy = Retention {
            max_age_ms: Some(DAY_MS),
            max_finished: None,
        };
        assert_eq!(s.prune(policy, now).unwrap(), 2);
        assert_eq!(digests(&s), ["3", "4", "5"]);
        let c = s.counts().unwrap();
        assert_eq!((c.queued, c.running, c.done, c.failed), (1, 1, 1, 0));
        // Nothing more to do.
        assert_eq!(s.prune(policy, now).unwrap(), 0);
        // A pruned image pushed again is a new job, and scanned again.
        assert_eq!(s.admit(&[job("1")], 10).unwrap(), [Admission::Queued]);
    }

    #[test]
    fn pruning_by_count_keeps_the_most_recently_touched() {
        let s = Store::memory().unwrap();
        let now = now_ms();
        for i in 1..=5 {
            done_at(&s, &i.to_string(), now - (10 - i) * 1000);
        }
        s.admit(&[job("9")], 10).unwrap();
        let policy = Retention {
            max_age_ms: None,
            max_finished: Some(3),
        };
        assert_eq!(s.prune(policy, now).unwrap(), 2);
        assert_eq!(digests(&s), ["3", "4", "5", "9"]);
        // A push of the oldest kept image refreshes it: the next prune takes
        // 4 instead. Its report is still the one stored.
        assert_eq!(s.admit(&[job("3")], 10).unwrap(), [Admission::Duplicate]);
        let policy = Retention {
            max_age_ms: None,
            max_finished: Some(2),
        };
        assert_eq!(s.prune(policy, now).unwrap(), 1);
        assert_eq!(digests(&s), ["3", "5", "9"]);
        let (v, report) = s.job_report(&job("3").digest).unwrap().unwrap();
        assert_eq!((v.state.as_str(), report.as_deref()), (DONE, Some("{}")));
    }

    #[test]
    fn pruning_works_in_batches() {
        let s = Store::memory().unwrap();
        let n = PRUNE_BATCH * 2 + 7;
        s.with(|c| {
            let tx = c.transaction()?;
            for i in 0..n {
                tx.execute(
                    "INSERT INTO jobs (digest, registry, repository, media_type, source, state,
                                       queued_at, finished_at, touched_at)
                     VALUES (?1, 'local', 'lab/app', 'm', 'distribution', 'done', ?2, ?2, ?2)",
                    params![format!("sha256:{i:064x}"), i],
                )?;
            }
            tx.commit()
        })
        .unwrap();
        let policy = Retention {
            max_age_ms: None,
            max_finished: Some(5),
        };
        assert_eq!(s.prune(policy, now_ms()).unwrap(), (n - 5) as u64);
        assert_eq!(s.counts().unwrap().done, 5);
        // The newest five are the ones kept.
        let kept = s.recent(10, None).unwrap();
        assert_eq!(kept[0].digest, format!("sha256:{:064x}", n - 1));
        assert_eq!(kept[4].digest, format!("sha256:{:064x}", n - 5));
    }

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
        let s = Store::open(&path).unwrap();
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
        let err = format!("{:#}", Store::open(&path).err().unwrap());
        assert!(err.contains("newer imgscan"), "{err}");
    }

    #[test]
    fn sweeps_queue_only_unknown_digests() {
        let s = Store::memory().unwrap();
        s.admit(&[job("1")], 10).unwrap();
        let c = s.claim().unwrap().unwrap();
        s.finish_err(c.seq, "401", None).unwrap();
        let mut found = job("2");
        found.source = "reconcile";
        assert_eq!(
            s.admit_missing(&[job("1"), found.clone(), found.clone(), job("3")], 1)
                .unwrap(),
            [
                // A failed scan is not retried by a sweep, only by a push.
                Admission::Duplicate,
                Admission::Queued,
                Admission::Duplicate,
                Admission::QueueFull
            ]
        );
        let v = s.job(&job("1").digest).unwrap().unwrap();
        assert_eq!((v.state.as_str(), v.notifications), (FAILED, 1));
        let v = s.job(&found.digest).unwrap().unwrap();
        assert_eq!((v.source.as_str(), v.notifications), ("reconcile", 1));
        assert!(s.known(&found.digest).unwrap());
        assert!(!s.known(&job("3").digest).unwrap());
    }
}
