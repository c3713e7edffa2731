//! Applying the retention policy (`report_retention_days`, `max_reports`):
//! once at start, then every [`PRUNE_EVERY`] on the HTTP runtime, by the
//! one replica that runs the periodic work. The rules
//! themselves live in [`Store::prune`]; this file only schedules them and
//! reports what they did.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::harbor;

use super::metrics::Metrics;
use super::store::{Retention, Store, now_ms};

/// How often the policy is applied after start. An hour keeps the work per
/// run small and a report never outlives its limit by much.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Applies `policy` once; logs and counts what was deleted. Also forgets
/// expired Harbor scan ids.
pub(crate) fn prune_once(store: &Store, policy: Retention, metrics: &Metrics) {
    match store.prune(policy, now_ms()) {
        Ok(0) => {}
        Ok(n) => {
            metrics.pruned(n);
            tracing::info!(
                "pruned {n} finished job(s) and their reports ({})",
                describe(policy)
            );
        }
        Err(e) => tracing::error!("pruning old jobs: {e:#}"),
    }
    if let Err(e) = store.expire_harbor(harbor::SCAN_ID_TTL_MS) {
        tracing::error!("forgetting expired Harbor scan ids: {e:#}");
    }
}

/// How often a replica checks whether it runs the periodic work.
pub(crate) const LEADER_CHECK: Duration = Duration::from_secs(5);

/// Runs [`prune_once`] every [`PRUNE_EVERY`], forever (the task ends with
/// the runtime), on the replica that runs the periodic work
/// ([`Store::leads`]; SQLite: always). A replica that becomes the one prunes
/// at once: the one before it may have died before its hour was up.
pub(crate) async fn prune_periodically(
    store: Arc<Store>,
    policy: Retention,
    metrics: Arc<Metrics>,
) {
    // Start has just pruned, if this process leads.
    let mut last = store.leads().then(Instant::now);
    loop {
        tokio::time::sleep(LEADER_CHECK).await;
        if !store.leads() {
            last = None;
            continue;
        }
        if last.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            continue;
        }
        last = Some(Instant::now());
        let (store, metrics) = (Arc::clone(&store), Arc::clone(&metrics));
        let _ = tokio::task::spawn_blocking(move || prune_once(&*store, policy, &metrics)).await;
    }
}

/// The policy in words, for the log.
pub(crate) fn describe(policy: Retention) -> String {
    let age = policy.max_age_ms.map_or_else(
        || "kept whatever their age".to_owned(),
        |ms| format!("kept {} day(s)", ms / (24 * 3600 * 1000)),
    );
    let count = policy
        .max_finished
        .map_or_else(|| "no count limit".to_owned(), |n| format!("at most {n}"));
    format!("{age}, {count}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_read_well_in_the_log() {
        let p = Retention {
            max_age_ms: Some(90 * 24 * 3600 * 1000),
            max_finished: Some(50_000),
        };
        assert_eq!(describe(p), "kept 90 day(s), at most 50000");
        let p = Retention {
            max_age_ms: None,
            max_finished: None,
        };
        assert_eq!(describe(p), "kept whatever their age, no count limit");
    }
}
