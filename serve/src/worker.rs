//! The bounded worker pool: `workers` threads take the oldest due job from
//! the database, pull and scan it, and store the report or the error.
//!
//! Scans are blocking work (the registry source runs its own small runtime
//! and its own layer threads), so workers are plain threads, apart from the HTTP
//! server's runtime: a slow scan never delays an answer to the registry.
//!
//! Failures that may clear by themselves (registry unreachable, timeouts,
//! 5xx) are retried `max_attempts` times with a doubling backoff; all others
//! fail the job at once. A panic in a scan fails that job, not the worker.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::ServeConfig;
use super::harbor;
use super::metrics::Metrics;
use super::one_line;
use super::pull::{self, ImageScanner, PullAuth, ScanTarget};
use super::store::{Claimed, Store, now_ms};

/// Wakes idle workers when jobs arrive, and tells them to stop.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    pending: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
}

impl Wake {
    /// New work may be waiting.
    pub(crate) fn notify(&self) {
        if let Ok(mut p) = self.pending.lock() {
            *p = true;
        }
        self.cv.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let Ok(mut p) = self.pending.lock() else {
            return;
        };
        if !*p && !self.stopping() {
            p = match self.cv.wait_timeout(p, timeout) {
                Ok((g, _)) => g,
                Err(_) => return,
            };
        }
        *p = false;
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.notify();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// What workers share.
pub(crate) struct Ctx {
    pub(crate) cfg: Arc<ServeConfig>,
    pub(crate) store: Arc<Store>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) wake: Arc<Wake>,
    pub(crate) scanner: Arc<dyn ImageScanner>,
}

/// The running workers.
pub(crate) struct Pool {
    handles: Vec<JoinHandle<()>>,
    done: mpsc::Receiver<()>,
    wake: Arc<Wake>,
}

/// Sends on drop, so a worker's exit is seen however it ends.
struct ExitSignal(mpsc::Sender<()>);

impl Drop for ExitSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

impl Pool {
    pub(crate) fn start(ctx: Arc<Ctx>) -> anyhow::Result<Self> {
        let (tx, done) = mpsc::channel();
        let mut handles = Vec::with_capacity(ctx.cfg.workers);
        for i in 0..ctx.cfg.workers {
            let ctx = Arc::clone(&ctx);
            let signal = ExitSignal(tx.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("imgscan-worker-{i}"))
                    .spawn(move || {
                        let _signal = signal;
                        worker_loop(&ctx);
                    })?,
            );
        }
        Ok(Self {
            handles,
            done,
            wake: Arc::clone(&ctx.wake),
        })
    }

    /// Stops taking jobs and waits up to `timeout` for running scans.
    /// Returns how many were still running (they stay `running` in the
    /// database and run again at the next start).
    pub(crate) fn shutdown(self, timeout: Duration) -> usize {
        self.wake.stop();
        let deadline = Instant::now() + timeout;
        let mut left = self.handles.len();
        while left > 0 {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(wait) {
                Ok(()) => left -= 1,
                Err(_) => break,
            }
        }
        if left == 0 {
            for h in self.handles {
                let _ = h.join();
            }
        }
        left
    }
}

fn worker_loop(ctx: &Ctx) {
    while !ctx.wake.stopping() {
        match ctx.store.claim() {
            Ok(Some(job)) => run_job(ctx, job),
            Ok(None) => {
                // Sleep until woken, until the next retry is due, or for
                // the store's idle poll at most.
                let mut wait = ctx.store.idle_poll();
                if let Ok(Some(due)) = ctx.store.next_due() {
                    let ms = u64::try_from((due - now_ms()).max(10)).unwrap_or(1000);
                    wait = wait.min(Duration::from_millis(ms));
                }
                ctx.wake.wait(wait);
            }
            Err(e) => {
                // The database is unreachable: take nothing until it is back.
                tracing::error!("taking a job from the database: {e:#}");
                ctx.wake.wait(Duration::from_secs(1));
            }
        }
    }
}

fn run_job(ctx: &Ctx, job: Claimed) {
    let _running = ctx.metrics.scan_running();
    let started = Instant::now();
    let result = prepare(ctx, &job).and_then(|target| {
        tracing::info!(
            "scanning {} (registry {}, attempt {})",
            target.reference(),
            target.registry.name,
            job.attempts
        );
        match std::panic::catch_unwind(AssertUnwindSafe(|| ctx.scanner.scan(&target))) {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("the scanner panicked")),
        }
    });
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let ms_i = i64::try_from(ms).unwrap_or(i64::MAX);
    match result {
        Ok(report) => {
            let failing = report.summary.at_or_above(ctx.cfg.fail_on) > 0;
            let stored = serde_json::to_string(&report)
                .and_then(|r| serde_json::to_string(&report.summary).map(|s| (r, s)));
            let (r, s) = match stored {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!("encoding the report of {}: {e}", job.digest);
                    return;
                }
            };
            match store_result(ctx, &job, "storing the report", |st| {
                st.finish_ok(&job, &r, &s, ms_i)
            }) {
                Some(true) => {}
                Some(false) => {
                    lost_lease(&job);
                    return;
                }
                None => return,
            }
            ctx.metrics.scan_done(ms, failing);
            let s = report.summary;
            tracing::info!(
                "scanned {} in {:.1}s: {} findings (critical {}, high {}, medium {}, low {}, info {}), verdict {}",
                job.digest,
                ms as f64 / 1000.0,
                s.total,
                s.critical,
                s.high,
                s.medium,
                s.low,
                s.info,
                if failing { "fail" } else { "pass" }
            );
        }
        Err(e) => {
            let msg = one_line(&format!("{e:#}"));
            let retry = pull::is_transient(&e) && job.attempts < ctx.cfg.max_attempts;
            let retry_at = retry.then(|| {
                let factor = 1u32 << (job.attempts.saturating_sub(1)).min(6);
                let delay = ctx.cfg.retry_backoff.saturating_mul(factor);
                now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2)
            });
            match store_result(ctx, &job, "recording the failure", |st| {
                st.finish_err(&job, &msg, retry_at)
            }) {
                Some(true) => {}
                Some(false) => {
                    lost_lease(&job);
                    return;
                }
                None => return,
            }
            ctx.metrics.scan_error(ms, retry);
            match retry_at {
                Some(at) => tracing::info!(
                    "scan of {} failed (attempt {} of {}), retrying in {}s: {msg}",
                    job.digest,
                    job.attempts,
                    ctx.cfg.max_attempts,
                    (at - now_ms()).max(0) / 1000
                ),
                None => tracing::info!("scan of {} failed: {msg}", job.digest),
            }
        }
    }
}

/// Stores the end of a run, retrying while the database is unreachable
/// (the lease runs out meanwhile only if the outage outlasts it). `None`:
/// gave up because serve is stopping; the job then runs again.
fn store_result(
    ctx: &Ctx,
    job: &Claimed,
    what: &str,
    f: impl Fn(&Store) -> anyhow::Result<bool>,
) -> Option<bool> {
    let mut logged = false;
    loop {
        match f(&*ctx.store) {
            Ok(held) => {
                if logged {
                    tracing::info!(
                        "{what} of {}: done after the database came back",
                        job.digest
                    );
                }
                return Some(held);
            }
            Err(e) => {
                if !logged {
                    tracing::error!("{what} of {}: {e:#}; retrying", job.digest);
                    logged = true;
                }
                if ctx.wake.stopping() {
                    tracing::warn!(
                        "{what} of {}: stopping; the job runs again later",
                        job.digest
                    );
                    return None;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

fn lost_lease(job: &Claimed) {
    tracing::warn!(
        "the lease on {} (attempt {}) ran out and another run took the job; this result is \
         dropped",
        job.digest,
        job.attempts
    );
}

fn prepare(ctx: &Ctx, job: &Claimed) -> anyhow::Result<ScanTarget> {
    let Some(entry) = ctx.cfg.registry(&job.registry) else {
        anyhow::bail!(
            "registry `{}` is no longer on the allowlist (the serve config changed)",
            job.registry
        );
    };
    let auth = match &job.auth {
        Some(a) => harbor::pull_auth(a)?,
        None => PullAuth::Configured,
    };
    Ok(ScanTarget {
        registry: entry.clone(),
        repository: job.repository.clone(),
        digest: job.digest.clone(),
        auth,
    })
}
