//! `imgscan serve`: the registry hook (issue 4). Every image pushed to an
//! allowlisted registry is scanned once, and the results are served for
//! deployment gates.
//!
//! # Architecture
//!
//! ```text
//!  registry ──POST /v1/events──▶ distribution ─┐                ┌─▶ worker ─▶ pull::ImageScanner
//!  Harbor ────POST /api/v1/scan─▶ harbor ──────┼─▶ store (SQLite┼─▶ worker      (scanner::scan,
//!  gates ─────GET /v1/reports ──▶ api ◀────────┘  | PostgreSQL) └─▶ …            docker:// input)
//! ```
//!
//! - The HTTP side (axum on a small tokio runtime) only validates, records
//!   and answers; it never waits for a scan, so the registry (1 s default
//!   timeout) and Harbor (5 s) are answered at once.
//! - The database is the queue (`store`): a job is committed before the
//!   2xx that acknowledges it, so `kill -9` loses nothing; the manifest
//!   digest is its key, so each image is scanned once.
//! - A fixed pool of worker threads (`worker`) takes due jobs in order and
//!   runs `pull::ImageScanner`; the queue is bounded, and a full queue
//!   answers 503 with `Retry-After` so the registry retries.
//! - On PostgreSQL (`store::postgres`) any number of such processes share
//!   the queue: claims are leases, periodic work (reconciliation,
//!   retention) runs where `Store::leads`, and the layer cache is a table
//!   (`layers_pg`).
//! - SIGTERM/SIGINT: stop accepting, let running scans finish for
//!   `drain_timeout`, leave queued (and unfinished) jobs in the database for
//!   the next start.
//!
//! Recipes (registry `config.yml`, Harbor registration, the config file):
//! `docs/serve.md`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use sha2::{Digest as _, Sha256};

mod api;
mod config;
mod distribution;
mod harbor;
mod layers;
mod layers_pg;
mod logging;
mod metrics;
mod pull;
mod reconcile;
mod retention;
mod store;
mod worker;

use config::Database;
pub use config::ServeArgs;
use config::ServeConfig;
use distribution::RejectMemo;
use layers::LayerDb;
use layers_pg::PgLayers;
pub use logging::LogFormat;
use metrics::Metrics;
use pull::{ImageScanner, RegistryScanner};
use scanner::source::registry::LayerStore;
use store::Store;
use store::postgres::{PgOptions, PgStore};
use store::sqlite::SqliteStore;
use worker::{Ctx, Pool, Wake};

/// State shared by the HTTP handlers.
pub(crate) struct AppState {
    pub(crate) cfg: Arc<ServeConfig>,
    pub(crate) store: Arc<Store>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) wake: Arc<Wake>,
    pub(crate) memo: RejectMemo,
    /// The persisted layer cache, for `/metrics`.
    pub(crate) layers: Option<Arc<dyn CacheView>>,
    /// SHA-256 of the API token (the token itself is not kept here).
    pub(crate) token_digest: [u8; 32],
}

pub(crate) type App = Arc<AppState>;

/// What `/metrics` reads from a layer cache (the SQLite file or the
/// PostgreSQL table).
pub(crate) trait CacheView: Send + Sync {
    fn stats(&self) -> layers::CacheStats;
}

impl CacheView for LayerDb {
    fn stats(&self) -> layers::CacheStats {
        Self::stats(self)
    }
}

impl CacheView for PgLayers {
    fn stats(&self) -> layers::CacheStats {
        Self::stats(self)
    }
}

/// The layer cache as the scanner and `/metrics` see it.
struct Layers {
    store: Arc<dyn LayerStore>,
    view: Arc<dyn CacheView>,
    /// Where it is, for the log.
    place: String,
}

/// Folds a message onto one line (errors from the other side may hold
/// newlines; a log line must stay one line).
pub(crate) fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// RFC 3339 UTC with milliseconds, from milliseconds since the epoch.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("@{ms}ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// Runs a database call off the async runtime. Errors are logged and become
/// a 503 with `Retry-After` (without details: they may name paths): the
/// database is unreachable or failing, which a retry may get past, and the
/// registry and Harbor retry on a 5xx.
pub(crate) async fn blocking<R, F>(app: &App, f: F) -> std::result::Result<R, Response>
where
    R: Send + 'static,
    F: FnOnce(&Store) -> Result<R> + Send + 'static,
{
    let store = Arc::clone(&app.store);
    let unavailable = |message: &str| {
        let mut r = api::json_error(StatusCode::SERVICE_UNAVAILABLE, message);
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(app.cfg.retry_after_secs()),
        );
        r
    };
    match tokio::task::spawn_blocking(move || f(&*store)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            tracing::error!("database: {e:#}");
            Err(unavailable("database unavailable (see the server log)"))
        }
        Err(e) => {
            tracing::error!("database task: {e}");
            Err(unavailable("internal error (see the server log)"))
        }
    }
}

fn router(app: App) -> Router {
    let limit = app.cfg.max_body_bytes;
    let authed = Router::new()
        .route("/v1/events", post(distribution::events))
        .route("/v1/events/{registry}", post(distribution::events_for))
        .route("/api/v1/metadata", get(harbor::metadata))
        .route("/api/v1/scan", post(harbor::scan))
        .route("/api/v1/scan/{id}/report", get(harbor::report))
        .route("/v1/reports/{digest}", get(api::report))
        .route("/v1/scans", get(api::scans))
        .route("/v1/scans/{digest}", get(api::scan))
        .route("/metrics", get(api::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            api::require_token,
        ));
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/livez", get(api::livez))
        .merge(authed)
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// Longest wait for open connections after the shutdown signal.
const CONNECTION_GRACE: Duration = Duration::from_secs(5);

async fn serve_http(app: App, listener: tokio::net::TcpListener) -> Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let graceful = stopped(rx.clone());
    let server = async move {
        axum::serve(listener, router(app))
            .with_graceful_shutdown(graceful)
            .await
    };
    tokio::select! {
        r = server => r.context("serving HTTP")?,
        () = async { stopped(rx).await; tokio::time::sleep(CONNECTION_GRACE).await } => {
            tracing::info!("connections still open after the grace period; closing them");
        }
    }
    Ok(())
}

/// `imgscan serve`.
pub fn run(args: &ServeArgs) -> Result<()> {
    logging::init(args.log_format()?);
    let cfg = Arc::new(ServeConfig::load(args)?);
    run_with(Arc::clone(&cfg), |layers| {
        Arc::new(RegistryScanner::new(&cfg, layers))
    })
}

/// Serves with the scanner `make` builds, given the layer cache.
fn run_with(
    cfg: Arc<ServeConfig>,
    make: impl FnOnce(Option<Arc<dyn LayerStore>>) -> Arc<dyn ImageScanner>,
) -> Result<()> {
    // The job database first: its lock says whether another imgscan serve
    // owns this directory, before the cache file is touched.
    let (store, layers): (Arc<Store>, Option<Layers>) = match &cfg.database {
        Database::Sqlite(path) => {
            let store = Arc::new(SqliteStore::open(path)?);
            let layers = match cfg.layer_cache {
                Some(limits) => {
                    let db = Arc::new(layers::open(&layers::path_for(path), limits)?);
                    Some(Layers {
                        store: Arc::clone(&db) as Arc<dyn LayerStore>,
                        view: db,
                        place: layers::path_for(path).display().to_string(),
                    })
                }
                None => None,
            };
            (store, layers)
        }
        Database::Postgres {
            config,
            display,
            ca_cert,
        } => {
            let store = Arc::new(PgStore::open(&PgOptions {
                config: (**config).clone(),
                display: display.clone(),
                replica: cfg.replica.clone(),
                lease: cfg.job_lease,
                max_attempts: cfg.max_attempts,
                // Every worker, plus the HTTP side and the periodic work.
                pool_size: cfg.workers + 4,
                ca_cert: ca_cert.clone(),
            })?);
            // The layer cache is a table of the shared database: a base
            // layer is scanned once per fleet.
            let layers = cfg.layer_cache.map(|limits| {
                let cache = Arc::new(PgLayers::new(Arc::clone(&store), limits));
                Layers {
                    store: Arc::clone(&cache) as Arc<dyn LayerStore>,
                    view: cache,
                    place: "the database's layers table".to_owned(),
                }
            });
            (store, layers)
        }
    };
    let scanner = make(layers.as_ref().map(|l| Arc::clone(&l.store)));
    let (requeued, failed) = store.recover(cfg.max_attempts)?;
    let metrics = Arc::new(Metrics::default());
    if store.leads() {
        retention::prune_once(&*store, cfg.retention, &metrics);
    }
    let counts = store.counts()?;
    tracing::info!(
        "imgscan {} serving as replica {}; database {} {} ({} queued{}{}, {} done, {} failed); {} worker(s), \
         queue capacity {}, verdict fails at {}; finished jobs {}; layer cache {}; registries: {}",
        env!("CARGO_PKG_VERSION"),
        cfg.replica,
        store.backend(),
        store.describe(),
        counts.queued,
        if requeued > 0 {
            format!(", {requeued} re-queued after an interrupted scan")
        } else {
            String::new()
        },
        if failed > 0 {
            format!(", {failed} failed after repeated interrupted scans")
        } else {
            String::new()
        },
        counts.done,
        counts.failed,
        cfg.workers,
        cfg.queue_capacity,
        cfg.fail_on,
        retention::describe(cfg.retention),
        match &layers {
            Some(l) => format!("{} ({} layer scans)", l.place, l.view.stats().layers),
            None => "off".to_owned(),
        },
        if cfg.registries.is_empty() {
            "none".to_owned()
        } else {
            cfg.registries
                .iter()
                .map(|r| format!("{}={}", r.name, r.url()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("imgscan-http")
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    // Bind before any scan starts: a port in use must fail at once.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(cfg.listen))
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let wake = Arc::new(Wake::default());
    {
        // Jobs queued by other replicas (PostgreSQL NOTIFY) wake our workers.
        let wake = Arc::clone(&wake);
        store.on_new_jobs(Arc::new(move || wake.notify()));
    }
    let pool = Pool::start(Arc::new(Ctx {
        cfg: Arc::clone(&cfg),
        store: Arc::clone(&store),
        metrics: Arc::clone(&metrics),
        wake: Arc::clone(&wake),
        scanner,
    }))?;
    let app = Arc::new(AppState {
        token_digest: Sha256::digest(cfg.token.expose().as_bytes()).into(),
        cfg: Arc::clone(&cfg),
        store: Arc::clone(&store),
        metrics,
        wake,
        memo: RejectMemo::default(),
        layers: layers.map(|l| l.view),
    });
    let shared = Arc::new(reconcile::Shared {
        store: Arc::clone(&app.store),
        metrics: Arc::clone(&app.metrics),
        wake: Arc::clone(&app.wake),
        capacity: cfg.queue_capacity,
        limits: cfg.reconcile,
    });
    for entry in &cfg.registries {
        if let Some(every) = entry.reconcile_every {
            rt.spawn(reconcile::run(entry.clone(), every, Arc::clone(&shared)));
        }
    }
    rt.spawn(retention::prune_periodically(
        Arc::clone(&app.store),
        cfg.retention,
        Arc::clone(&app.metrics),
    ));
    let served = rt.block_on(serve_http(app, listener));
    rt.shutdown_timeout(Duration::from_secs(1));
    tracing::info!(
        "waiting up to {}s for running scans",
        cfg.drain_timeout.as_secs()
    );
    let left = pool.shutdown(cfg.drain_timeout);
    if left > 0 {
        match store.release_running() {
            Ok(0) => tracing::info!(
                "{left} scan(s) still running; they stay in the database and run again at the next start"
            ),
            Ok(n) => tracing::info!(
                "{left} scan(s) still running; {n} job(s) handed back to the queue for the other replicas"
            ),
            Err(e) => tracing::warn!(
                "{left} scan(s) still running; handing them back failed ({e:#}): another replica \
                 takes them when their lease runs out"
            ),
        }
    }
    tracing::info!("stopped; queued jobs stay in the database for the next start");
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_321_730_000), "2026-11-22T04:28:50.000Z");
    }

    #[test]
    fn log_lines_stay_one_line() {
        assert_eq!(one_line("a\n  b\r\n\nc"), "a / b / c");
    }
}
