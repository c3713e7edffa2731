//! The PostgreSQL backend: one database shared by any number of `imgscan
//! serve` replicas (issue 13).
//!
//! # Claims and leases
//!
//! A worker takes the oldest due job with one statement, the job-queue
//! pattern of `SELECT … FOR UPDATE SKIP LOCKED`
//! (<https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE>):
//! concurrent claims from any replica lock different rows and never wait on
//! one another. A claimed job carries its replica's `owner` id and a lease
//! (`lease_until`, on the database's clock), which a task of the replica
//! renews every third of the lease while the scan runs. A replica that dies
//! (`kill -9`, a lost node) stops renewing; once the lease has expired the
//! job is claimable again and another replica scans it. That is the one case
//! in which an image is scanned twice: the dead replica may have been
//! almost done. A result is stored only by the run that holds the job (the
//! claim's `attempts` is the fencing token), so a replica that was merely
//! slow and lost its lease cannot overwrite its successor's report. A job
//! whose lease expired `max_attempts` times is failed, as SQLite fails a
//! job interrupted on every run.
//!
//! # Admission
//!
//! The manifest digest is `UNIQUE`, so every replica that receives the same
//! event (distribution sends every event to every endpoint) finds the one
//! job. Admissions take a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`,
//! <https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS>),
//! so the queue bound is counted exactly across replicas, as SQLite's single
//! writer counts it. A commit that queued work sends `NOTIFY imgscan_jobs`
//! (<https://www.postgresql.org/docs/current/sql-notify.html>); every
//! replica `LISTEN`s on a control connection and wakes its idle workers, so
//! they need not poll hard.
//!
//! # Periodic work
//!
//! Reconciliation sweeps and retention run on the replica that holds the
//! session advisory lock [`LEADER_KEY`] (`pg_try_advisory_lock`) on its
//! control connection. The server releases it when that session ends: when
//! the replica dies or loses the database, another replica's next try (every
//! [`CONTROL_EVERY`]) takes it over.
//!
//! # Losing the database
//!
//! Every statement runs under [`OP_TIMEOUT`]; a replica whose database is
//! unreachable answers 503 (the callers' job), its workers stop claiming and
//! retry, and the pool reconnects by itself once the server is back.
//!
//! # Schema versions
//!
//! `imgscan_schema.version` records the schema; [`MIGRATIONS`] are applied
//! in order, each in a transaction, under an advisory lock so that replicas
//! starting together migrate once. A database from a newer imgscan is
//! refused.
//!
//! # Blocking interface
//!
//! The store is blocking, like the SQLite one: callers are worker threads
//! and `spawn_blocking` tasks. The async client (`tokio-postgres`, pooled
//! by `deadpool-postgres`) runs on a small runtime of the store's own;
//! every call is `Handle::block_on` on it, which tokio allows from any
//! thread that is not itself driving a runtime.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use deadpool_postgres::{Manager, Pool, Runtime};
use sha2::{Digest as _, Sha256};
use tokio_postgres::Socket;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls, Row, Transaction};

use super::{
    Admission, Claimed, Counts, FAILED, HarborScan, JobStore, JobView, NewJob, PRUNE_BATCH,
    RUNNING, Retention, SavedCursor, Waker, now_ms,
};

/// Advisory lock keys (per database). "imgscan" in ASCII, then a number.
const MIGRATE_KEY: i64 = 0x0069_6d67_7363_616e_i64 << 8 | 1;
const ADMIT_KEY: i64 = 0x0069_6d67_7363_616e_i64 << 8 | 2;
/// Held by the replica that runs the periodic work.
pub(crate) const LEADER_KEY: i64 = 0x0069_6d67_7363_616e_i64 << 8 | 3;

/// The channel replicas `LISTEN` on for new jobs.
const CHANNEL: &str = "imgscan_jobs";
/// Longest one database call may take before it counts as a failure.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the control connection checks itself and tries to lead.
pub(crate) const CONTROL_EVERY: Duration = Duration::from_secs(2);

/// The database's clock in ms: leases are compared on one clock, whatever
/// the replicas' clocks say.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The schema, one migration per version (`imgscan_schema.version` is the
/// number applied).
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE jobs (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest        TEXT NOT NULL UNIQUE,
    registry      TEXT NOT NULL,
    repository    TEXT NOT NULL,
    tag           TEXT,
    media_type    TEXT NOT NULL,
    source        TEXT NOT NULL,
    auth          TEXT,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts      BIGINT NOT NULL DEFAULT 0,
    completions   BIGINT NOT NULL DEFAULT 0,
    notifications BIGINT NOT NULL DEFAULT 1,
    not_before    BIGINT NOT NULL DEFAULT 0,
    error         TEXT,
    report        TEXT,
    summary       TEXT,
    queued_at     BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    duration_ms   BIGINT,
    touched_at    BIGINT NOT NULL,
    owner         TEXT,
    lease_until   BIGINT
);
CREATE INDEX jobs_by_state ON jobs (state, seq);
CREATE INDEX jobs_finished_by_touch ON jobs (touched_at, seq) WHERE state IN ('done', 'failed');
CREATE TABLE harbor_scans (
    id          TEXT PRIMARY KEY,
    digest      TEXT NOT NULL,
    repository  TEXT NOT NULL,
    tag         TEXT,
    mime_type   TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX harbor_scans_by_age ON harbor_scans (created_at);
CREATE TABLE reconcile_cursors (
    registry     TEXT PRIMARY KEY,
    after_repo   TEXT,
    partial_repo TEXT,
    partial_tag  TEXT,
    updated_at   BIGINT NOT NULL
);
",
    "
-- 2: the layer cache all replicas share (layers_pg.rs); the rows are those
-- of the SQLite cache file (layers.rs).
CREATE TABLE layers (
    digest      TEXT PRIMARY KEY,
    generation  TEXT NOT NULL,
    data        BYTEA NOT NULL,
    sha256      BYTEA NOT NULL,
    size        BIGINT NOT NULL,
    stored_at   BIGINT NOT NULL,
    used_at     BIGINT NOT NULL
);
CREATE INDEX layers_by_use ON layers (used_at);
",
];

/// The schema this build writes.
#[cfg(test)]
pub(crate) const SCHEMA_VERSION: usize = MIGRATIONS.len();

const VIEW_COLUMNS: &str = "digest, registry, repository, tag, media_type, source, state, \
     attempts, completions, notifications, error, queued_at, started_at, finished_at, \
     duration_ms, summary, not_before, owner";

/// How to reach the database, and this replica's part.
#[derive(Debug, Clone)]
pub(crate) struct PgOptions {
    /// Connection settings (password included, never printed: its `Debug`
    /// redacts it).
    pub(crate) config: tokio_postgres::Config,
    /// The URL without its password, for the log.
    pub(crate) display: String,
    /// This replica's id (metrics, logs, `jobs.owner`).
    pub(crate) replica: String,
    /// How long a claim holds a job without renewal.
    pub(crate) lease: Duration,
    /// Runs per job before an interrupted one fails.
    pub(crate) max_attempts: u32,
    /// Most pooled connections.
    pub(crate) pool_size: usize,
    /// PEM CA certificates trusted for the server's TLS certificate,
    /// besides the system's (`database_ca_cert`).
    pub(crate) ca_cert: Option<std::path::PathBuf>,
}

/// The TLS client for `sslmode=require`: rustls (ring), the server's
/// certificate checked against the system's roots and `ca_cert`, and its
/// name against the URL's host. Other modes stay plain TCP: `prefer` (the
/// default) would otherwise refuse servers with self-signed certificates
/// that plain connections accept today.
fn tls_connector(opts: &PgOptions) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    if opts.config.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
        if opts.ca_cert.is_some() {
            bail!("database_ca_cert is only used with sslmode=require in the database URL");
        }
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot parse is skipped, as
        // browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = &opts.ca_cert {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect)
            .map_err(|e| anyhow::anyhow!("database_ca_cert {}: {e}", path.display()))?;
        if certs.is_empty() {
            bail!(
                "database_ca_cert {} holds no PEM certificate",
                path.display()
            );
        }
        for c in certs {
            roots
                .add(c)
                .with_context(|| format!("database_ca_cert {}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("setting up TLS for the database")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

/// State shared with the store's background tasks.
struct Shared {
    /// Holds [`LEADER_KEY`].
    leader: AtomicBool,
    /// Jobs this replica is scanning: `(seq, attempts)`, whose leases the
    /// renewal task extends.
    running: Mutex<BTreeSet<(i64, u32)>>,
    waker: Mutex<Option<Waker>>,
    /// The control connection is up (logs say when it goes and comes back).
    control_up: AtomicBool,
}

impl Shared {
    fn wake(&self) {
        let w = self.waker.lock().ok().and_then(|w| w.clone());
        if let Some(w) = w {
            w();
        }
    }

    fn running(&self) -> Vec<i64> {
        self.running
            .lock()
            .map(|r| r.iter().map(|(s, _)| *s).collect())
            .unwrap_or_default()
    }

    fn forget(&self, job: &Claimed) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(&(job.seq, job.attempts));
        }
    }
}

/// The PostgreSQL store.
pub(crate) struct PgStore {
    /// Dropped with `shutdown_background` (a runtime must not be dropped
    /// where blocking is not allowed, and the last `Arc` may go anywhere).
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    owner: String,
    lease_ms: i64,
    max_attempts: i64,
    display: String,
    shared: Arc<Shared>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

pub(crate) fn db(e: tokio_postgres::Error) -> anyhow::Error {
    // The server's message (SQLSTATE and text) when there is one; the
    // password is never part of it.
    match e.as_db_error() {
        Some(d) => anyhow::anyhow!("{}: {}", d.code().code(), d.message()),
        None => anyhow::Error::new(e),
    }
}

/// A connection the pool could not hand out, with the server's reason.
fn pool_err(e: &deadpool_postgres::PoolError) -> anyhow::Error {
    match e {
        deadpool_postgres::PoolError::Backend(b) => match b.as_db_error() {
            Some(d) => anyhow::anyhow!(
                "connecting to the database: {}: {}",
                d.code().code(),
                d.message()
            ),
            None => anyhow::anyhow!("connecting to the database: {b}"),
        },
        other => anyhow::anyhow!("connecting to the database: {other}"),
    }
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn view(row: &Row) -> Result<JobView> {
    let ts = |v: Option<i64>| v.map(crate::rfc3339);
    let summary: Option<String> = row.try_get(15)?;
    let state: String = row.try_get(6)?;
    let not_before: i64 = row.try_get(16)?;
    let state_running = state == RUNNING;
    let retry_in_secs = super::retry_in_secs(&state, not_before);
    Ok(JobView {
        digest: row.try_get(0)?,
        registry: row.try_get(1)?,
        repository: row.try_get(2)?,
        tag: row.try_get(3)?,
        media_type: row.try_get(4)?,
        source: row.try_get(5)?,
        state,
        attempts: to_u32(row.try_get(7)?),
        completions: to_u32(row.try_get(8)?),
        notifications: to_u32(row.try_get(9)?),
        error: row.try_get(10)?,
        queued_at: crate::rfc3339(row.try_get(11)?),
        started_at: ts(row.try_get(12)?),
        finished_at: ts(row.try_get(13)?),
        duration_ms: row.try_get(14)?,
        summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
        verdict: None,
        retry_in_secs,
        replica: row
            .try_get::<_, Option<String>>(17)?
            .filter(|_| state_running),
    })
}

/// A per-process owner id: the replica id and a random part, so that a
/// restarted replica (a Kubernetes pod keeps its name across container
/// restarts) never renews the leases of the run that died.
fn owner_id(replica: &str) -> String {
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_le_bytes(),
    );
    h.update(replica.as_bytes());
    let d = h.finalize();
    let hex: String = d[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{replica}/{hex}")
}

impl PgStore {
    /// Connects, applies migrations and starts the control and lease tasks.
    pub(crate) fn open(opts: &PgOptions) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("imgscan-db")
            .enable_all()
            .build()
            .context("starting the database runtime")?;
        let handle = rt.handle().clone();
        let mut config = opts.config.clone();
        config
            .application_name(format!("imgscan serve {}", opts.replica))
            .connect_timeout(Duration::from_secs(5))
            .keepalives_idle(Duration::from_secs(30));
        let tls = tls_connector(opts)?;
        let manager = match &tls {
            Some(t) => Manager::new(config.clone(), t.clone()),
            None => Manager::new(config.clone(), NoTls),
        };
        let pool = {
            let _guard = handle.enter();
            Pool::builder(manager)
                .max_size(opts.pool_size.max(2))
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(OP_TIMEOUT))
                .create_timeout(Some(Duration::from_secs(5)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .context("setting up the database connection pool")?
        };
        let shared = Arc::new(Shared {
            leader: AtomicBool::new(false),
            running: Mutex::new(BTreeSet::new()),
            waker: Mutex::new(None),
            control_up: AtomicBool::new(false),
        });
        let store = Self {
            handle,
            pool,
            owner: owner_id(&opts.replica),
            lease_ms: i64::try_from(opts.lease.as_millis()).unwrap_or(i64::MAX / 4),
            max_attempts: i64::from(opts.max_attempts),
            display: opts.display.clone(),
            shared: Arc::clone(&shared),
            rt: Some(rt),
        };
        store
            .run(store.migrate())
            .with_context(|| format!("setting up the database {}", opts.display))?;
        match tls {
            Some(t) => store.handle.spawn(control(config, t, Arc::clone(&shared))),
            None => store
                .handle
                .spawn(control(config, NoTls, Arc::clone(&shared))),
        };
        store.handle.spawn(renew_leases(
            store.pool.clone(),
            store.owner.clone(),
            store.lease_ms,
            opts.lease,
            shared,
        ));
        Ok(store)
    }

    /// Runs `f` on the store's runtime, under [`OP_TIMEOUT`] (blocking; not
    /// from an async runtime's threads).
    pub(crate) fn run<R>(&self, f: impl Future<Output = Result<R>>) -> Result<R> {
        self.handle.block_on(async {
            match tokio::time::timeout(OP_TIMEOUT, f).await {
                Ok(r) => r,
                Err(_) => bail!(
                    "the database did not answer within {}s",
                    OP_TIMEOUT.as_secs()
                ),
            }
        })
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| pool_err(&e))
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_KEY])
            .await
            .map_err(db)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS imgscan_schema (version BIGINT NOT NULL)")
            .await
            .map_err(db)?;
        let version: i64 = match tx
            .query_opt("SELECT version FROM imgscan_schema", &[])
            .await
            .map_err(db)?
        {
            Some(r) => r.get(0),
            None => {
                tx.execute("INSERT INTO imgscan_schema (version) VALUES (0)", &[])
                    .await
                    .map_err(db)?;
                0
            }
        };
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if version > known {
            bail!(
                "the database was written by a newer imgscan (schema version {version}; this \
                 one knows up to {known}); use that version or another database"
            );
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version)?)
        {
            tx.batch_execute(sql)
                .await
                .with_context(|| format!("schema migration {}", i + 1))?;
            let v = i64::try_from(i + 1)?;
            tx.execute("UPDATE imgscan_schema SET version = $1", &[&v])
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn admit_all(
        &self,
        jobs: &[NewJob],
        capacity: usize,
        mode: Mode,
        harbor: Option<(&str, Option<&str>)>,
    ) -> Result<Vec<Admission>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        // One admission at a time across replicas, so that the bound is
        // exact (the lock ends with the transaction).
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ADMIT_KEY])
            .await
            .map_err(db)?;
        let queued: i64 = tx
            .query_one("SELECT COUNT(*) FROM jobs WHERE state = 'queued'", &[])
            .await
            .map_err(db)?
            .get(0);
        let mut queued = usize::try_from(queued).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            out.push(admit_one(&tx, j, capacity, &mut queued, mode).await?);
        }
        if let (Some((id, mime)), [job], [a]) = (harbor, jobs, out.as_slice())
            && *a != Admission::QueueFull
        {
            tx.execute(
                "INSERT INTO harbor_scans (id, digest, repository, tag, mime_type, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &id,
                    &job.digest,
                    &job.repository,
                    &job.tag,
                    &mime,
                    &now_ms(),
                ],
            )
            .await
            .map_err(db)?;
        }
        if out
            .iter()
            .any(|a| matches!(a, Admission::Queued | Admission::Requeued))
        {
            // Delivered to every listener when the transaction commits.
            tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    /// Runs a statement that ends `job`'s run: `$1` seq, `$2` owner, `$3`
    /// attempts (the fence), then `extra`. Whether the run still held it.
    async fn finish(
        &self,
        job: &Claimed,
        sql: &str,
        extra: &[&(dyn ToSql + Sync)],
    ) -> Result<bool> {
        let c = self.client().await?;
        let attempts = i64::from(job.attempts);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&job.seq, &self.owner, &attempts];
        params.extend_from_slice(extra);
        let st = c.prepare_cached(sql).await.map_err(db)?;
        let n = c.execute(&st, &params).await.map_err(db)?;
        Ok(n == 1)
    }
}

/// Who asks for a job (as in the SQLite store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Push,
    Sweep,
}

async fn admit_one(
    tx: &Transaction<'_>,
    j: &NewJob,
    capacity: usize,
    queued: &mut usize,
    mode: Mode,
) -> Result<Admission> {
    let existing: Option<String> = tx
        .query_opt("SELECT state FROM jobs WHERE digest = $1", &[&j.digest])
        .await
        .map_err(db)?
        .map(|r| r.get(0));
    if mode == Mode::Sweep && existing.is_some() {
        return Ok(Admission::Duplicate);
    }
    let now = now_ms();
    match existing.as_deref() {
        Some(FAILED) => {
            if *queued >= capacity {
                return Ok(Admission::QueueFull);
            }
            tx.execute(
                "UPDATE jobs SET state = 'queued', registry = $2, repository = $3,
                     tag = COALESCE($4, tag), media_type = $5, source = $6, auth = $7,
                     attempts = 0, not_before = 0, error = NULL, started_at = NULL,
                     finished_at = NULL, notifications = notifications + 1, queued_at = $8,
                     touched_at = $8, owner = NULL, lease_until = NULL
                 WHERE digest = $1",
                &[
                    &j.digest,
                    &j.registry,
                    &j.repository,
                    &j.tag,
                    &j.media_type,
                    &j.source,
                    &j.auth,
                    &now,
                ],
            )
            .await
            .map_err(db)?;
            *queued += 1;
            Ok(Admission::Requeued)
        }
        Some(_) => {
            tx.execute(
                "UPDATE jobs SET notifications = notifications + 1,
                     tag = COALESCE(tag, $2),
                     auth = CASE WHEN $3::text IS NOT NULL AND state = 'queued' THEN $3 ELSE auth END,
                     touched_at = $4
                 WHERE digest = $1",
                &[&j.digest, &j.tag, &j.auth, &now],
            )
            .await
            .map_err(db)?;
            Ok(Admission::Duplicate)
        }
        None => {
            if *queued >= capacity {
                return Ok(Admission::QueueFull);
            }
            tx.execute(
                "INSERT INTO jobs (digest, registry, repository, tag, media_type, source, auth,
                                   state, queued_at, touched_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $8)",
                &[
                    &j.digest,
                    &j.registry,
                    &j.repository,
                    &j.tag,
                    &j.media_type,
                    &j.source,
                    &j.auth,
                    &now,
                ],
            )
            .await
            .map_err(db)?;
            *queued += 1;
            Ok(Admission::Queued)
        }
    }
}

/// The control connection: `LISTEN` for new jobs, try to take (and then
/// keep checking) the periodic-work lock. Reconnects forever.
async fn control<T>(config: tokio_postgres::Config, tls: T, shared: Arc<Shared>)
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut conn)) => {
                let (tx, mut closed) = tokio::sync::oneshot::channel::<String>();
                let sh = Arc::clone(&shared);
                tokio::spawn(async move {
                    let why = loop {
                        match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                            Some(Ok(AsyncMessage::Notification(_))) => sh.wake(),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => break e.to_string(),
                            None => break "closed".to_owned(),
                        }
                    };
                    let _ = tx.send(why);
                });
                let why = control_session(&client, &shared, &mut closed).await;
                if shared.leader.swap(false, Ordering::SeqCst) {
                    tracing::warn!("periodic work stopped here: {why}");
                }
                if shared.control_up.swap(false, Ordering::SeqCst) {
                    tracing::error!("lost the database control connection: {why}; reconnecting");
                }
            }
            Err(e) => {
                if shared.control_up.swap(false, Ordering::SeqCst) {
                    tracing::error!("database unreachable: {e}; reconnecting");
                }
            }
        }
        tokio::time::sleep(CONTROL_EVERY / 2).await;
    }
}

/// One control session; returns why it ended.
async fn control_session(
    client: &tokio_postgres::Client,
    shared: &Shared,
    closed: &mut tokio::sync::oneshot::Receiver<String>,
) -> String {
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        return e.to_string();
    }
    if !shared.control_up.swap(true, Ordering::SeqCst) {
        tracing::info!("database control connection up");
    }
    // Jobs may have been queued while this replica was not listening.
    shared.wake();
    loop {
        let step = async {
            if shared.leader.load(Ordering::SeqCst) {
                client.simple_query("SELECT 1").await.map(|_| ())
            } else {
                let got: bool = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_KEY])
                    .await?
                    .get(0);
                if got {
                    shared.leader.store(true, Ordering::SeqCst);
                    tracing::info!(
                        "this replica now runs the periodic work (reconciliation, retention)"
                    );
                }
                Ok(())
            }
        };
        match tokio::time::timeout(OP_TIMEOUT, step).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return e.to_string(),
            Err(_) => return "the database stopped answering".to_owned(),
        }
        tokio::select! {
            () = tokio::time::sleep(CONTROL_EVERY) => {}
            why = &mut *closed => return why.unwrap_or_else(|_| "closed".to_owned()),
        }
    }
}

/// Extends the leases of the jobs this replica is scanning, every third of
/// the lease.
async fn renew_leases(
    pool: Pool,
    owner: String,
    lease_ms: i64,
    lease: Duration,
    shared: Arc<Shared>,
) {
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let seqs = shared.running();
        if seqs.is_empty() {
            continue;
        }
        let renew = async {
            let c = pool
                .get()
                .await
                .map_err(|e| format!("{:#}", pool_err(&e)))?;
            c.execute(
                &format!(
                    "UPDATE jobs SET lease_until = {DB_NOW} + $2
                     WHERE owner = $1 AND state = 'running' AND seq = ANY($3)"
                ),
                &[&owner, &lease_ms, &seqs],
            )
            .await
            .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(OP_TIMEOUT, renew).await {
            Ok(Ok(n)) if n < seqs.len() as u64 => tracing::warn!(
                "{} of {} running job(s) were taken over by another replica (lease expired)",
                seqs.len() as u64 - n,
                seqs.len()
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("renewing job leases: {e}"),
            Err(_) => tracing::warn!("renewing job leases: the database did not answer"),
        }
    }
}

impl JobStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn describe(&self) -> String {
        self.display.clone()
    }

    fn recover(&self, max_attempts: u32) -> Result<(usize, usize)> {
        self.run(async {
            let c = self.client().await?;
            let failed = c
                .execute(
                    &format!(
                        "UPDATE jobs SET state = 'failed', auth = NULL, finished_at = $1,
                             touched_at = $1, owner = NULL, lease_until = NULL,
                             error = 'imgscan stopped during every one of ' || attempts
                                     || ' scan attempts'
                         WHERE state = 'running' AND lease_until < {DB_NOW} AND attempts >= $2"
                    ),
                    &[&now_ms(), &i64::from(max_attempts)],
                )
                .await
                .map_err(db)?;
            let expired: i64 = c
                .query_one(
                    &format!(
                        "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lease_until < {DB_NOW}"
                    ),
                    &[],
                )
                .await
                .map_err(db)?
                .get(0);
            Ok((
                usize::try_from(expired).unwrap_or(0),
                usize::try_from(failed).unwrap_or(0),
            ))
        })
    }

    fn admit(&self, jobs: &[NewJob], capacity: usize) -> Result<Vec<Admission>> {
        self.run(self.admit_all(jobs, capacity, Mode::Push, None))
    }

    fn admit_missing(&self, jobs: &[NewJob], capacity: usize) -> Result<Vec<Admission>> {
        self.run(self.admit_all(jobs, capacity, Mode::Sweep, None))
    }

    fn known(&self, digest: &str) -> Result<bool> {
        self.run(async {
            let c = self.client().await?;
            let st = c
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM jobs WHERE digest = $1)")
                .await
                .map_err(db)?;
            Ok(c.query_one(&st, &[&digest]).await.map_err(db)?.get(0))
        })
    }

    fn admit_harbor(
        &self,
        id: &str,
        job: &NewJob,
        mime_type: Option<&str>,
        capacity: usize,
    ) -> Result<Admission> {
        let out = self.run(self.admit_all(
            std::slice::from_ref(job),
            capacity,
            Mode::Push,
            Some((id, mime_type)),
        ))?;
        Ok(out[0])
    }

    fn claim(&self) -> Result<Option<Claimed>> {
        // A job whose lease expired on its last allowed run is failed by
        // the claim that finds it; the next candidate is tried then.
        let sql = format!(
            "WITH pick AS (
                 SELECT seq, (state = 'running' AND attempts >= $3) AS poison FROM jobs
                 WHERE (state = 'queued' AND not_before <= $1)
                    OR (state = 'running' AND lease_until < {DB_NOW})
                 ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT 1)
             UPDATE jobs SET
                 state = CASE WHEN pick.poison THEN 'failed' ELSE 'running' END,
                 error = CASE WHEN pick.poison
                     THEN 'imgscan stopped during every one of ' || attempts || ' scan attempts'
                     ELSE error END,
                 auth = CASE WHEN pick.poison THEN NULL ELSE auth END,
                 finished_at = CASE WHEN pick.poison THEN $1 ELSE finished_at END,
                 touched_at = CASE WHEN pick.poison THEN $1 ELSE touched_at END,
                 attempts = CASE WHEN pick.poison THEN attempts ELSE attempts + 1 END,
                 started_at = CASE WHEN pick.poison THEN started_at ELSE $1 END,
                 owner = CASE WHEN pick.poison THEN NULL ELSE $2 END,
                 lease_until = CASE WHEN pick.poison THEN NULL ELSE {DB_NOW} + $4 END
             FROM pick WHERE jobs.seq = pick.seq
             RETURNING jobs.seq, digest, registry, repository, auth, attempts, pick.poison"
        );
        self.run(async {
            let c = self.client().await?;
            let st = c.prepare_cached(&sql).await.map_err(db)?;
            loop {
                let row = c
                    .query_opt(
                        &st,
                        &[&now_ms(), &self.owner, &self.max_attempts, &self.lease_ms],
                    )
                    .await
                    .map_err(db)?;
                let Some(r) = row else { return Ok(None) };
                let poison: bool = r.get(6);
                if poison {
                    tracing::info!(
                        "scan of {} failed: its runs were interrupted {} time(s)",
                        r.get::<_, String>(1),
                        r.get::<_, i64>(5)
                    );
                    continue;
                }
                let job = Claimed {
                    seq: r.get(0),
                    digest: r.get(1),
                    registry: r.get(2),
                    repository: r.get(3),
                    auth: r.get(4),
                    attempts: to_u32(r.get(5)),
                };
                if let Ok(mut running) = self.shared.running.lock() {
                    running.insert((job.seq, job.attempts));
                }
                return Ok(Some(job));
            }
        })
    }

    fn next_due(&self) -> Result<Option<i64>> {
        self.run(async {
            let c = self.client().await?;
            let st = c
                .prepare_cached(&format!(
                    "SELECT LEAST(
                         MIN(not_before) FILTER (WHERE state = 'queued'),
                         MIN(lease_until - {DB_NOW} + $1) FILTER (WHERE state = 'running'))
                     FROM jobs WHERE state IN ('queued', 'running')"
                ))
                .await
                .map_err(db)?;
            Ok(c.query_one(&st, &[&now_ms()]).await.map_err(db)?.get(0))
        })
    }

    fn finish_ok(
        &self,
        job: &Claimed,
        report: &str,
        summary: &str,
        duration_ms: i64,
    ) -> Result<bool> {
        let r = self.run(self.finish(
            job,
            "UPDATE jobs SET state = 'done', report = $4, summary = $5, error = NULL,
                 auth = NULL, finished_at = $6, touched_at = $6, duration_ms = $7,
                 completions = completions + 1, owner = NULL, lease_until = NULL
             WHERE seq = $1 AND state = 'running' AND owner = $2 AND attempts = $3",
            &[&report, &summary, &now_ms(), &duration_ms],
        ));
        if r.is_ok() {
            self.shared.forget(job);
        }
        r
    }

    fn finish_err(&self, job: &Claimed, error: &str, retry_at: Option<i64>) -> Result<bool> {
        let r = match retry_at {
            Some(at) => self.run(self.finish(
                job,
                "UPDATE jobs SET state = 'queued', error = $4, not_before = $5,
                     started_at = NULL, owner = NULL, lease_until = NULL
                 WHERE seq = $1 AND state = 'running' AND owner = $2 AND attempts = $3",
                &[&error, &at],
            )),
            None => self.run(self.finish(
                job,
                "UPDATE jobs SET state = 'failed', error = $4, auth = NULL, finished_at = $5,
                     touched_at = $5, owner = NULL, lease_until = NULL
                 WHERE seq = $1 AND state = 'running' AND owner = $2 AND attempts = $3",
                &[&error, &now_ms()],
            )),
        };
        if r.is_ok() {
            self.shared.forget(job);
        }
        r
    }

    fn job(&self, digest: &str) -> Result<Option<JobView>> {
        self.run(async {
            let c = self.client().await?;
            let st = c
                .prepare_cached(&format!(
                    "SELECT {VIEW_COLUMNS} FROM jobs WHERE digest = $1"
                ))
                .await
                .map_err(db)?;
            c.query_opt(&st, &[&digest])
                .await
                .map_err(db)?
                .map(|r| view(&r))
                .transpose()
        })
    }

    fn job_report(&self, digest: &str) -> Result<Option<(JobView, Option<String>)>> {
        self.run(async {
            let c = self.client().await?;
            let st = c
                .prepare_cached(&format!(
                    "SELECT {VIEW_COLUMNS}, report FROM jobs WHERE digest = $1"
                ))
                .await
                .map_err(db)?;
            match c.query_opt(&st, &[&digest]).await.map_err(db)? {
                Some(r) => Ok(Some((view(&r)?, r.try_get(18)?))),
                None => Ok(None),
            }
        })
    }

    fn recent(&self, limit: usize, state: Option<&str>) -> Result<Vec<JobView>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(async {
            let c = self.client().await?;
            let st = c
                .prepare_cached(&format!(
                    "SELECT {VIEW_COLUMNS} FROM jobs WHERE ($1::text IS NULL OR state = $1)
                     ORDER BY seq DESC LIMIT $2"
                ))
                .await
                .map_err(db)?;
            c.query(&st, &[&state, &limit])
                .await
                .map_err(db)?
                .iter()
                .map(view)
                .collect()
        })
    }

    fn counts(&self) -> Result<Counts> {
        self.run(async {
            let c = self.client().await?;
            let st = c
                .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")
                .await
                .map_err(db)?;
            let mut counts = Counts::default();
            for r in c.query(&st, &[]).await.map_err(db)? {
                counts.set(r.get::<_, &str>(0), r.get::<_, i64>(1));
            }
            Ok(counts)
        })
    }

    fn harbor_scan(&self, id: &str) -> Result<Option<HarborScan>> {
        self.run(async {
            let c = self.client().await?;
            let r = c
                .query_opt(
                    "SELECT digest, repository, tag, mime_type FROM harbor_scans WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(db)?;
            Ok(r.map(|r| HarborScan {
                digest: r.get(0),
                repository: r.get(1),
                tag: r.get(2),
                mime_type: r.get(3),
            }))
        })
    }

    fn prune(&self, policy: Retention, now: i64) -> Result<u64> {
        let mut deleted = 0u64;
        if let Some(age) = policy.max_age_ms {
            let cutoff = now.saturating_sub(age);
            loop {
                let n = self.run(async {
                    let c = self.client().await?;
                    c.execute(
                        "DELETE FROM jobs WHERE seq IN (
                             SELECT seq FROM jobs
                             WHERE state IN ('done', 'failed') AND touched_at < $1
                             ORDER BY touched_at, seq LIMIT $2)",
                        &[&cutoff, &PRUNE_BATCH],
                    )
                    .await
                    .map_err(db)
                })?;
                deleted += n;
                if n < PRUNE_BATCH as u64 {
                    break;
                }
            }
        }
        if let Some(max) = policy.max_finished {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            loop {
                let n = self.run(async {
                    let c = self.client().await?;
                    let finished: i64 = c
                        .query_one(
                            "SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'failed')",
                            &[],
                        )
                        .await
                        .map_err(db)?
                        .get(0);
                    let excess = (finished - max).clamp(0, PRUNE_BATCH);
                    if excess == 0 {
                        return Ok(0);
                    }
                    c.execute(
                        "DELETE FROM jobs WHERE seq IN (
                             SELECT seq FROM jobs WHERE state IN ('done', 'failed')
                             ORDER BY touched_at, seq LIMIT $1)",
                        &[&excess],
                    )
                    .await
                    .map_err(db)
                })?;
                deleted += n;
                if n == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    fn expire_harbor(&self, age_ms: i64) -> Result<usize> {
        self.run(async {
            let c = self.client().await?;
            let n = c
                .execute(
                    "DELETE FROM harbor_scans WHERE created_at < $1",
                    &[&(now_ms() - age_ms)],
                )
                .await
                .map_err(db)?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn cursor(&self, registry: &str) -> Result<SavedCursor> {
        self.run(async {
            let c = self.client().await?;
            let r = c
                .query_opt(
                    "SELECT after_repo, partial_repo, partial_tag FROM reconcile_cursors
                     WHERE registry = $1",
                    &[&registry],
                )
                .await
                .map_err(db)?;
            Ok(r.map(|r| SavedCursor {
                after_repo: r.get(0),
                partial_repo: r.get(1),
                partial_tag: r.get(2),
            })
            .unwrap_or_default())
        })
    }

    fn save_cursor(&self, registry: &str, cursor: &SavedCursor) -> Result<()> {
        self.run(async {
            let c = self.client().await?;
            c.execute(
                "INSERT INTO reconcile_cursors (registry, after_repo, partial_repo, partial_tag,
                                                updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (registry) DO UPDATE SET after_repo = $2, partial_repo = $3,
                     partial_tag = $4, updated_at = $5",
                &[
                    &registry,
                    &cursor.after_repo,
                    &cursor.partial_repo,
                    &cursor.partial_tag,
                    &now_ms(),
                ],
            )
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    fn ping(&self) -> Result<()> {
        self.run(async {
            let c = self.client().await?;
            c.simple_query("SELECT 1").await.map_err(db)?;
            Ok(())
        })
    }

    fn release_running(&self) -> Result<usize> {
        if let Ok(mut r) = self.shared.running.lock() {
            r.clear();
        }
        self.run(async {
            let c = self.client().await?;
            let n = c
                .execute(
                    "UPDATE jobs SET state = 'queued', owner = NULL, lease_until = NULL,
                         started_at = NULL
                     WHERE owner = $1 AND state = 'running'",
                    &[&self.owner],
                )
                .await
                .map_err(db)?;
            if n > 0 {
                // Wake the other replicas for them.
                c.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
                    .await
                    .map_err(db)?;
            }
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    fn leads(&self) -> bool {
        self.shared.leader.load(Ordering::SeqCst)
    }

    fn on_new_jobs(&self, wake: Waker) {
        if let Ok(mut w) = self.shared.waker.lock() {
            *w = Some(wake);
        }
    }

    fn idle_poll(&self) -> Duration {
        // LISTEN wakes workers for new jobs; this only bounds how late a
        // missed notification (a reconnect) is noticed.
        Duration::from_secs(5)
    }

    #[cfg(test)]
    fn set_touched(&self, digest: &str, at: i64) -> Result<()> {
        self.run(async {
            let c = self.client().await?;
            c.execute(
                "UPDATE jobs SET touched_at = $2 WHERE digest = $1",
                &[&digest, &at],
            )
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    #[cfg(test)]
    fn simulate_crash(&self, _max_attempts: u32) -> Result<()> {
        // This process stops renewing and every lease runs out.
        if let Ok(mut r) = self.shared.running.lock() {
            r.clear();
        }
        self.run(async {
            let c = self.client().await?;
            c.execute(
                "UPDATE jobs SET lease_until = 0 WHERE state = 'running'",
                &[],
            )
            .await
            .map_err(db)?;
            Ok(())
        })
    }
}
