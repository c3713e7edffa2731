//! The durable side of `imgscan serve`: jobs, reports, Harbor scan ids and
//! reconciliation cursors, behind one interface ([`JobStore`]) with two
//! backends:
//!
//! - [`sqlite`]: an embedded SQLite file, the zero-setup default; one
//!   process per database (it holds an exclusive lock on the file).
//! - [`postgres`]: a PostgreSQL database shared by any number of replicas
//!   (issue 13): jobs are claimed with `FOR UPDATE SKIP LOCKED` under a
//!   lease each replica renews while it scans, and periodic work runs on the
//!   replica holding an advisory lock.
//!
//! Both keep the same promises, checked by one test suite (`suite.rs`) run
//! against each:
//!
//! # Durability
//!
//! The database is the queue. A push is acknowledged (2xx) only after the
//! transaction that records its job has committed. Jobs move
//! `queued → running → done | failed`. A job whose scan was interrupted
//! (the process died) runs again: SQLite re-queues `running` jobs at start
//! ([`JobStore::recover`]); on PostgreSQL another replica takes the job once
//! its lease has expired. After `max_attempts` interrupted runs it fails,
//! so a scan that kills imgscan every time cannot block the queue.
//!
//! # Exactly once
//!
//! The manifest digest is the job's key (`UNIQUE`): the same image pushed
//! again, to another tag or repository, or notified twice (the registry
//! retries whole envelopes; several replicas may each get every event) is
//! one job and one scan. Content addressing makes that safe: the same
//! digest is the same bytes wherever it lives. `completions` counts stored
//! results and is never more than 1 unless a failed job is explicitly
//! re-queued by a new push. A result is stored only by the run that holds
//! the job (its claim's `attempts` is the fencing token), so a replica that
//! lost its lease cannot overwrite the run that replaced it.
//!
//! # Retention
//!
//! Finished jobs (`done` and `failed`) and their reports are deleted by
//! [`JobStore::prune`] once they are older than `report_retention_days` or
//! beyond the newest `max_reports`. Age is counted from `touched_at`: when
//! the job last finished or a push last named its digest, so the report of
//! an image that is still being pushed stays. Queued and running jobs are
//! never deleted. A digest whose job was pruned is scanned again if it is
//! pushed again.
//!
//! # Security
//!
//! Harbor passes a short-lived registry credential with each scan request.
//! It is kept in `jobs.auth` so that a restart can still pull, and cleared as
//! soon as the job ends.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use scanner::model::Summary;
use serde::Serialize;

/// The throw-away PostgreSQL server of the tests, shared with the
/// integration tests.
#[cfg(all(test, feature = "e2e"))]
#[path = "../../../tests/support/postgres.rs"]
pub(crate) mod pg_server;
pub(crate) mod postgres;
pub(crate) mod sqlite;
#[cfg(test)]
mod suite;

/// Job states, as stored.
pub(crate) const QUEUED: &str = "queued";
pub(crate) const RUNNING: &str = "running";
pub(crate) const DONE: &str = "done";
pub(crate) const FAILED: &str = "failed";

/// Rows deleted per transaction while pruning, so that requests waiting for
/// the database are not held up for long.
pub(crate) const PRUNE_BATCH: i64 = 500;

/// Where a catalog sweep of one registry resumes (`reconcile::Cursor`, as
/// stored), so that a restart, or another replica taking over the periodic
/// work, goes on where the last sweep stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SavedCursor {
    /// The last repository finished in this pass.
    pub(crate) after_repo: Option<String>,
    /// A repository left part-way...
    pub(crate) partial_repo: Option<String>,
    /// ...and the last of its tags handled.
    pub(crate) partial_tag: Option<String>,
}

/// Seconds until a queued job with `not_before` (ms) may run again, for
/// `JobView::retry_in_secs`; `None` for other states or when it is due.
pub(crate) fn retry_in_secs(state: &str, not_before: i64) -> Option<i64> {
    let now = now_ms();
    (state == QUEUED && not_before > now).then(|| (not_before - now + 999) / 1000)
}

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
    /// The replica scanning it, while running (PostgreSQL: its owner id,
    /// `REPLICA/RUN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) replica: Option<String>,
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

impl Counts {
    /// Records `n` jobs in the stored state `state` (a row of `SELECT
    /// state, COUNT(*) … GROUP BY state`, on either backend).
    pub(crate) fn set(&mut self, state: &str, n: i64) {
        let n = u64::try_from(n).unwrap_or(0);
        match state {
            QUEUED => self.queued = n,
            RUNNING => self.running = n,
            DONE => self.done = n,
            _ => self.failed = n,
        }
    }
}

/// Called when another process (replica) has queued jobs.
pub(crate) type Waker = Arc<dyn Fn() + Send + Sync>;

/// The job store. Every method is blocking: call it from a worker thread or
/// `spawn_blocking`, never on an async runtime's own threads (the
/// PostgreSQL backend drives its async client on a runtime of its own).
pub(crate) trait JobStore: Send + Sync {
    /// `sqlite` or `postgres`, for logs and metrics.
    fn backend(&self) -> &'static str;
    /// The database in words for the log: a path, or a URL without its
    /// password.
    fn describe(&self) -> String;
    /// At start: jobs a previous run left `running` are queued again (or
    /// failed, when they have had `max_attempts` runs). Returns (re-queued,
    /// failed). On PostgreSQL only jobs whose lease has expired are looked
    /// at (the others belong to live replicas) and re-queued implicitly: a
    /// claim takes them.
    fn recover(&self, max_attempts: u32) -> Result<(usize, usize)>;
    /// Records `jobs` in one transaction, at most up to `capacity` queued
    /// jobs in all. Returns what happened to each, in order.
    fn admit(&self, jobs: &[NewJob], capacity: usize) -> Result<Vec<Admission>>;
    /// Like [`Self::admit`], for digests found by a catalog sweep rather
    /// than pushed: a digest that has a job in any state, failed included,
    /// is left as it is ([`Admission::Duplicate`]) and not counted as a
    /// notification, so a sweep neither retries failed scans nor keeps a
    /// report from being pruned.
    fn admit_missing(&self, jobs: &[NewJob], capacity: usize) -> Result<Vec<Admission>>;
    /// Whether `digest` has a job, in any state.
    fn known(&self, digest: &str) -> Result<bool>;
    /// Records a Harbor scan request and its job in one transaction. On
    /// [`Admission::QueueFull`] nothing is recorded.
    fn admit_harbor(
        &self,
        id: &str,
        job: &NewJob,
        mime_type: Option<&str>,
        capacity: usize,
    ) -> Result<Admission>;
    /// Takes the oldest due job and marks it running (on PostgreSQL, under
    /// this replica's lease).
    fn claim(&self) -> Result<Option<Claimed>>;
    /// When the next queued job becomes due (ms), if any is waiting.
    fn next_due(&self) -> Result<Option<i64>>;
    /// Stores a finished scan. `false`: the job is no longer this run's (its
    /// lease expired and another run took it), and nothing was stored.
    fn finish_ok(
        &self,
        job: &Claimed,
        report: &str,
        summary: &str,
        duration_ms: i64,
    ) -> Result<bool>;
    /// Records a failed scan: queued again at `retry_at` (ms), or failed for
    /// good when `retry_at` is `None`. `false` as for [`Self::finish_ok`].
    fn finish_err(&self, job: &Claimed, error: &str, retry_at: Option<i64>) -> Result<bool>;
    /// A job by digest.
    fn job(&self, digest: &str) -> Result<Option<JobView>>;
    /// A job and its report JSON (present when done).
    fn job_report(&self, digest: &str) -> Result<Option<(JobView, Option<String>)>>;
    /// The most recently queued jobs, newest first.
    fn recent(&self, limit: usize, state: Option<&str>) -> Result<Vec<JobView>>;
    /// Jobs by state.
    fn counts(&self) -> Result<Counts>;
    /// A Harbor scan request by id.
    fn harbor_scan(&self, id: &str) -> Result<Option<HarborScan>>;
    /// Deletes finished jobs (and their reports) that `policy` no longer
    /// keeps, `now` being the current time in ms. Queued and running jobs
    /// are never touched. Works in batches of [`PRUNE_BATCH`] rows, each its
    /// own transaction, so the database is never held for long. Returns how
    /// many jobs were deleted.
    fn prune(&self, policy: Retention, now: i64) -> Result<u64>;
    /// Forgets Harbor scan ids older than `age_ms` (Harbor gives up after 30
    /// minutes anyway).
    fn expire_harbor(&self, age_ms: i64) -> Result<usize>;
    /// Where the sweep of `registry` resumes.
    fn cursor(&self, registry: &str) -> Result<SavedCursor>;
    /// Records where the sweep of `registry` resumes.
    fn save_cursor(&self, registry: &str, cursor: &SavedCursor) -> Result<()>;
    /// Whether the database answers.
    fn ping(&self) -> Result<()>;
    /// Whether this process runs the periodic work (reconciliation,
    /// retention) now. SQLite: always (one process per database).
    /// PostgreSQL: while this replica holds the advisory lock.
    fn leads(&self) -> bool {
        true
    }
    /// At shutdown, after the drain: the jobs this process still runs go
    /// back to the queue at once, rather than when their lease runs out
    /// (PostgreSQL: another replica takes them now). Returns how many.
    /// SQLite: nothing to do, the next start re-queues them.
    fn release_running(&self) -> Result<usize> {
        Ok(0)
    }
    /// Registers what to call when another process queues jobs
    /// (PostgreSQL `LISTEN`). SQLite: nothing else can queue.
    fn on_new_jobs(&self, _wake: Waker) {}
    /// The longest an idle worker sleeps before looking again when nobody
    /// wakes it.
    fn idle_poll(&self) -> Duration {
        Duration::from_secs(1)
    }
    /// Tests: sets a job's retention clock.
    #[cfg(test)]
    fn set_touched(&self, digest: &str, at: i64) -> Result<()>;
    /// Tests: every running job becomes claimable again as if its process
    /// had died (SQLite: the recovery at the next start; PostgreSQL: the
    /// leases run out).
    #[cfg(test)]
    fn simulate_crash(&self, max_attempts: u32) -> Result<()>;
}

/// The store as the rest of serve holds it (`Arc<Store>`).
pub(crate) type Store = dyn JobStore;

impl dyn JobStore {
    /// An in-memory SQLite store, for tests.
    #[cfg(test)]
    pub(crate) fn memory() -> Result<Arc<Self>> {
        Ok(Arc::new(sqlite::SqliteStore::memory()?))
    }
}
