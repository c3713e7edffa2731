//! One test suite for both backends: every test is a function of a store,
//! run once on an in-memory SQLite database and, with the `e2e` feature,
//! once on a real PostgreSQL server started for it (Debian's `postgresql`
//! package; see `tests/support/postgres.rs`). The PostgreSQL-only tests at
//! the end cover what only several replicas can do: concurrent claims,
//! leases, the advisory lock for periodic work, `LISTEN`/`NOTIFY`.

use std::sync::Arc;

use super::*;

/// `max_attempts` the suite's stores use.
const MAX_ATTEMPTS: u32 = 2;
const DAY_MS: i64 = 24 * 3600 * 1000;

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

/// Generates one `#[test]` per suite function for each backend.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&*crate::store::Store::memory().unwrap());
                }
            )*
        }
        #[cfg(feature = "e2e")]
        mod on_postgres {
            $(
                #[test]
                fn $name() {
                    let db = super::pg::Db::new();
                    super::$name(&*db.store("replica-a"));
                }
            )*
        }
    };
}

suite!(
    admission_dedupes_and_respects_capacity,
    interrupted_scans_run_again_and_stale_runs_cannot_finish,
    poison_jobs_fail_after_max_attempts,
    retries_wait_until_due,
    pruning_by_age_never_deletes_unfinished_jobs,
    pruning_by_count_keeps_the_most_recently_touched,
    pruning_works_in_batches,
    sweeps_queue_only_unknown_digests,
    harbor_scans_are_recorded_with_their_job,
    reconciliation_cursors_persist,
    lists_and_counts,
);

fn admission_dedupes_and_respects_capacity(s: &Store) {
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
    assert_eq!(j.state, QUEUED);
    assert!(s.known(&job("2").digest).unwrap());
    assert!(!s.known(&job("3").digest).unwrap());
    s.ping().unwrap();
}

fn interrupted_scans_run_again_and_stale_runs_cannot_finish(s: &Store) {
    s.admit(&[job("1"), job("2")], 10).unwrap();
    let c = s.claim().unwrap().unwrap();
    assert_eq!(
        (c.digest.as_str(), c.attempts),
        (job("1").digest.as_str(), 1)
    );
    // The process dies here.
    s.simulate_crash(3).unwrap();
    let again = s.claim().unwrap().unwrap();
    assert_eq!(again.digest, c.digest);
    assert_eq!(again.attempts, 2);
    // The interrupted run comes back to life (a replica that was only
    // slow): it no longer holds the job and stores nothing.
    assert!(!s.finish_ok(&c, "{\"stale\":1}", "{}", 1).unwrap());
    assert!(!s.finish_err(&c, "stale", None).unwrap());
    assert!(s.finish_ok(&again, "{}", "{}", 1).unwrap());
    let (v, report) = s.job_report(&c.digest).unwrap().unwrap();
    assert_eq!((v.state.as_str(), v.completions), (DONE, 1));
    assert_eq!(report.as_deref(), Some("{}"));
    // A re-push of a done image is a duplicate, not a new scan.
    assert_eq!(s.admit(&[job("1")], 10).unwrap(), [Admission::Duplicate]);
    // The other job was never claimed: still queued.
    assert_eq!(s.claim().unwrap().unwrap().digest, job("2").digest);
}

fn poison_jobs_fail_after_max_attempts(s: &Store) {
    s.admit(&[job("1")], 10).unwrap();
    for _ in 0..MAX_ATTEMPTS {
        s.claim().unwrap().unwrap();
        s.simulate_crash(MAX_ATTEMPTS).unwrap();
    }
    assert!(s.claim().unwrap().is_none());
    let v = s.job(&job("1").digest).unwrap().unwrap();
    assert_eq!(v.state, FAILED);
    assert!(
        v.error.as_deref().unwrap_or("").contains("every one of 2"),
        "{v:?}"
    );
    // A new push retries a failed image.
    assert_eq!(s.admit(&[job("1")], 10).unwrap(), [Admission::Requeued]);
    assert_eq!(s.claim().unwrap().unwrap().attempts, 1);
}

fn retries_wait_until_due(s: &Store) {
    s.admit(&[job("1")], 10).unwrap();
    let c = s.claim().unwrap().unwrap();
    assert!(
        s.finish_err(&c, "registry down", Some(now_ms() + 60_000))
            .unwrap()
    );
    assert!(s.claim().unwrap().is_none());
    assert!(s.next_due().unwrap().unwrap() > now_ms());
    let v = s.job(&job("1").digest).unwrap().unwrap();
    assert_eq!(v.state, QUEUED);
    assert!(v.retry_in_secs.unwrap() > 50, "{v:?}");
    assert_eq!(v.error.as_deref(), Some("registry down"));
}

/// Finishes `d` (queued or not yet known) as done, touched at `at`.
fn done_at(s: &Store, d: &str, at: i64) {
    s.admit(&[job(d)], 10_000).unwrap();
    let c = s.claim().unwrap().unwrap();
    assert_eq!(c.digest, job(d).digest);
    assert!(s.finish_ok(&c, "{}", "{}", 1).unwrap());
    s.set_touched(&job(d).digest, at).unwrap();
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

fn pruning_by_age_never_deletes_unfinished_jobs(s: &Store) {
    let now = now_ms();
    done_at(s, "1", now - 10 * DAY_MS);
    // 2 fails for good, long ago.
    s.admit(&[job("2")], 10).unwrap();
    let c = s.claim().unwrap().unwrap();
    s.finish_err(&c, "401", None).unwrap();
    s.set_touched(&job("2").digest, now - 10 * DAY_MS).unwrap();
    done_at(s, "3", now - DAY_MS / 2);
    // 4 is running and 5 queued, both "old".
    s.admit(&[job("4"), job("5")], 10).unwrap();
    assert_eq!(s.claim().unwrap().unwrap().digest, job("4").digest);
    s.set_touched(&job("4").digest, now - 10 * DAY_MS).unwrap();
    s.set_touched(&job("5").digest, now - 10 * DAY_MS).unwrap();

    let policy = Retention {
        max_age_ms: Some(DAY_MS),
        max_finished: None,
    };
    assert_eq!(s.prune(policy, now).unwrap(), 2);
    assert_eq!(digests(s), ["3", "4", "5"]);
    let c = s.counts().unwrap();
    assert_eq!((c.queued, c.running, c.done, c.failed), (1, 1, 1, 0));
    // Nothing more to do.
    assert_eq!(s.prune(policy, now).unwrap(), 0);
    // A pruned image pushed again is a new job, and scanned again.
    assert_eq!(s.admit(&[job("1")], 10).unwrap(), [Admission::Queued]);
}

fn pruning_by_count_keeps_the_most_recently_touched(s: &Store) {
    let now = now_ms();
    for i in 1..=5 {
        done_at(s, &i.to_string(), now - (10 - i) * 1000);
    }
    s.admit(&[job("9")], 10).unwrap();
    let policy = Retention {
        max_age_ms: None,
        max_finished: Some(3),
    };
    assert_eq!(s.prune(policy, now).unwrap(), 2);
    assert_eq!(digests(s), ["3", "4", "5", "9"]);
    // A push of the oldest kept image refreshes it: the next prune takes
    // 4 instead. Its report is still the one stored.
    assert_eq!(s.admit(&[job("3")], 10).unwrap(), [Admission::Duplicate]);
    let policy = Retention {
        max_age_ms: None,
        max_finished: Some(2),
    };
    assert_eq!(s.prune(policy, now).unwrap(), 1);
    assert_eq!(digests(s), ["3", "5", "9"]);
    let (v, report) = s.job_report(&job("3").digest).unwrap().unwrap();
    assert_eq!((v.state.as_str(), report.as_deref()), (DONE, Some("{}")));
}

fn pruning_works_in_batches(s: &Store) {
    let n = usize::try_from(PRUNE_BATCH).unwrap() * 2 + 7;
    let jobs: Vec<NewJob> = (0..n).map(|i| job(&format!("{i:x}"))).collect();
    assert!(
        s.admit(&jobs, n)
            .unwrap()
            .iter()
            .all(|a| *a == Admission::Queued)
    );
    while let Some(c) = s.claim().unwrap() {
        assert!(s.finish_ok(&c, "{}", "{}", 1).unwrap());
    }
    for (i, j) in jobs.iter().enumerate() {
        s.set_touched(&j.digest, i64::try_from(i).unwrap() + 1)
            .unwrap();
    }
    let policy = Retention {
        max_age_ms: None,
        max_finished: Some(5),
    };
    assert_eq!(s.prune(policy, now_ms()).unwrap(), (n - 5) as u64);
    assert_eq!(s.counts().unwrap().done, 5);
    // The most recently touched five are the ones kept.
    let mut kept: Vec<String> = s
        .recent(10, None)
        .unwrap()
        .into_iter()
        .map(|j| j.digest)
        .collect();
    kept.sort();
    let mut want: Vec<String> = jobs[n - 5..].iter().map(|j| j.digest.clone()).collect();
    want.sort();
    assert_eq!(kept, want);
}

fn sweeps_queue_only_unknown_digests(s: &Store) {
    s.admit(&[job("1")], 10).unwrap();
    let c = s.claim().unwrap().unwrap();
    s.finish_err(&c, "401", None).unwrap();
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

fn harbor_scans_are_recorded_with_their_job(s: &Store) {
    let mut j = job("1");
    j.source = "harbor";
    j.auth = Some("Basic cm9ib3Q6cw==".into());
    let a = s
        .admit_harbor(
            "id-1",
            &j,
            Some("application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"),
            1,
        )
        .unwrap();
    assert_eq!(a, Admission::Queued);
    // A full queue records neither the job nor the id.
    assert_eq!(
        s.admit_harbor("id-2", &job("2"), None, 1).unwrap(),
        Admission::QueueFull
    );
    assert!(s.harbor_scan("id-2").unwrap().is_none());
    let h = s.harbor_scan("id-1").unwrap().unwrap();
    assert_eq!(
        (h.digest.as_str(), h.repository.as_str()),
        (j.digest.as_str(), "lab/app")
    );
    assert_eq!(h.tag.as_deref(), Some("v1"));
    assert!(h.mime_type.unwrap().contains("harbor"));
    // The credential goes to the worker, and is gone when the job ends.
    let c = s.claim().unwrap().unwrap();
    assert_eq!(c.auth.as_deref(), Some("Basic cm9ib3Q6cw=="));
    assert!(s.finish_ok(&c, "{}", "{}", 1).unwrap());
    assert_eq!(s.expire_harbor(60_000).unwrap(), 0);
    assert_eq!(s.expire_harbor(-60_000).unwrap(), 1);
    assert!(s.harbor_scan("id-1").unwrap().is_none());
}

fn reconciliation_cursors_persist(s: &Store) {
    assert_eq!(s.cursor("local").unwrap(), SavedCursor::default());
    let c = SavedCursor {
        after_repo: Some("lab/a".into()),
        partial_repo: Some("lab/b".into()),
        partial_tag: None,
    };
    s.save_cursor("local", &c).unwrap();
    assert_eq!(s.cursor("local").unwrap(), c);
    assert_eq!(s.cursor("other").unwrap(), SavedCursor::default());
    s.save_cursor("local", &SavedCursor::default()).unwrap();
    assert_eq!(s.cursor("local").unwrap(), SavedCursor::default());
}

fn lists_and_counts(s: &Store) {
    s.admit(&[job("1"), job("2"), job("3")], 10).unwrap();
    let c = s.claim().unwrap().unwrap();
    assert!(s.finish_ok(&c, "{}", "{\"total\":0}", 7).unwrap());
    s.claim().unwrap().unwrap();
    let all = s.recent(10, None).unwrap();
    assert_eq!(
        all.iter().map(|j| j.digest.clone()).collect::<Vec<_>>(),
        [job("3").digest, job("2").digest, job("1").digest]
    );
    let done = s.recent(10, Some(DONE)).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].duration_ms, Some(7));
    assert!(done[0].finished_at.is_some());
    assert_eq!(s.recent(1, None).unwrap().len(), 1);
    let c = s.counts().unwrap();
    assert_eq!((c.queued, c.running, c.done, c.failed), (1, 1, 1, 0));
}

#[cfg(feature = "e2e")]
mod pg {
    //! A PostgreSQL server per test, and stores on it.

    use std::sync::Arc;
    use std::time::Duration;

    use super::super::Store;
    use super::super::postgres::{PgOptions, PgStore};

    use super::super::pg_server as server;

    pub(super) struct Db {
        pub(super) server: server::Postgres,
        pub(super) lease: Duration,
    }

    impl Db {
        pub(super) fn new() -> Self {
            let server = server::Postgres::start();
            server.create_database("imgscan");
            Self {
                server,
                lease: Duration::from_secs(30),
            }
        }

        pub(super) fn options(&self, replica: &str) -> PgOptions {
            let mut config: tokio_postgres::Config = self.server.url("imgscan").parse().unwrap();
            config.password(server::PG_PASSWORD);
            PgOptions {
                config,
                display: self.server.url("imgscan"),
                replica: replica.to_owned(),
                lease: self.lease,
                max_attempts: super::MAX_ATTEMPTS,
                pool_size: 4,
                ca_cert: None,
            }
        }

        pub(super) fn pg(&self, replica: &str) -> PgStore {
            PgStore::open(&self.options(replica)).unwrap()
        }

        pub(super) fn store(&self, replica: &str) -> Arc<Store> {
            Arc::new(self.pg(replica))
        }
    }
}

/// PostgreSQL only: several replicas on one database.
#[cfg(feature = "e2e")]
mod replicas {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::super::postgres::PgOptions;
    use super::*;

    fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Four replicas claiming from one queue at once each take different
    /// jobs: every job is claimed exactly once.
    #[test]
    fn concurrent_claims_never_share_a_job() {
        let db = pg::Db::new();
        let stores: Vec<Arc<Store>> = (0..4).map(|i| db.store(&format!("r{i}"))).collect();
        let jobs: Vec<NewJob> = (0..200).map(|i| job(&format!("{i:x}"))).collect();
        stores[0].admit(&jobs, 1000).unwrap();
        let claimed: Vec<Vec<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = stores
                .iter()
                .flat_map(|s| [Arc::clone(s), Arc::clone(s)])
                .map(|s| {
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        while let Some(c) = s.claim().unwrap() {
                            assert!(s.finish_ok(&c, "{}", "{}", 1).unwrap());
                            mine.push(c.digest);
                        }
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for d in claimed.iter().flatten() {
            *seen.entry(d.clone()).or_default() += 1;
        }
        assert_eq!(seen.len(), 200);
        assert!(seen.values().all(|n| *n == 1), "a job was claimed twice");
        // More than one replica did work.
        assert!(claimed.iter().filter(|c| !c.is_empty()).count() > 1);
        let c = stores[3].counts().unwrap();
        assert_eq!((c.done, c.queued, c.running), (200, 0, 0));
        assert!(
            stores[2]
                .recent(1000, None)
                .unwrap()
                .iter()
                .all(|j| j.completions == 1 && j.attempts == 1)
        );
    }

    /// Every replica gets every event (one endpoint each): concurrent
    /// admissions of the same digests make one job each, and the queue
    /// bound holds across replicas.
    #[test]
    fn concurrent_admissions_dedupe_and_respect_the_bound() {
        let db = pg::Db::new();
        let stores: Vec<Arc<Store>> = (0..3).map(|i| db.store(&format!("r{i}"))).collect();
        let jobs: Vec<NewJob> = (0..60).map(|i| job(&format!("{i:x}"))).collect();
        let queued = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for s in &stores {
                let (jobs, queued) = (&jobs, &queued);
                scope.spawn(move || {
                    for chunk in jobs.chunks(3) {
                        let a = s.admit(chunk, 40).unwrap();
                        queued.fetch_add(
                            a.iter().filter(|a| **a == Admission::Queued).count(),
                            Ordering::SeqCst,
                        );
                    }
                });
            }
        });
        assert_eq!(queued.load(Ordering::SeqCst), 40);
        let c = stores[0].counts().unwrap();
        assert_eq!(c.queued, 40);
        let notified: u32 = stores[1]
            .recent(100, None)
            .unwrap()
            .iter()
            .map(|j| j.notifications)
            .sum();
        // Each kept digest was admitted once and seen again by the others
        // unless the queue was full when they came.
        assert!((40..=120).contains(&notified), "{notified}");
    }

    /// A lease is renewed while the scan runs; when its replica dies the
    /// job goes to another after the lease, and the dead replica's result,
    /// should it still arrive, is refused.
    #[test]
    fn leases_are_renewed_and_expire_with_their_replica() {
        let mut db = pg::Db::new();
        db.lease = Duration::from_millis(1500);
        let a = db.store("a");
        let b = db.store("b");
        a.admit(&[job("1")], 10).unwrap();
        let c = a.claim().unwrap().unwrap();
        // Twice the lease: renewed all along, so b finds nothing.
        std::thread::sleep(Duration::from_millis(3000));
        assert!(b.claim().unwrap().is_none());
        // a dies (its runtime and connections with it).
        drop(a);
        let start = Instant::now();
        let taken = loop {
            if let Some(t) = b.claim().unwrap() {
                break t;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "never taken over"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(
            (taken.digest.as_str(), taken.attempts),
            (c.digest.as_str(), 2)
        );
        assert!(b.finish_ok(&taken, "{}", "{}", 1).unwrap());
        // The dead run's result (from a restarted store with the same
        // replica name, which is a different owner) is not stored.
        let a2 = db.store("a");
        assert!(!a2.finish_ok(&c, "{\"stale\":1}", "{}", 1).unwrap());
        let v = b.job(&c.digest).unwrap().unwrap();
        assert_eq!((v.state.as_str(), v.completions, v.attempts), (DONE, 1, 2));
    }

    /// At shutdown a replica hands the jobs it still runs back to the queue:
    /// another takes them at once, not after the lease.
    #[test]
    fn a_stopping_replica_hands_its_jobs_back() {
        let db = pg::Db::new();
        let a = db.store("a");
        let b = db.store("b");
        a.admit(&[job("1"), job("2")], 10).unwrap();
        let c = a.claim().unwrap().unwrap();
        assert_eq!(a.release_running().unwrap(), 1);
        let taken = b.claim().unwrap().unwrap();
        assert_eq!(taken.digest, c.digest);
        // The run that was handed back stores nothing.
        assert!(!a.finish_ok(&c, "{}", "{}", 1).unwrap());
        assert!(b.finish_ok(&taken, "{}", "{}", 1).unwrap());
        assert_eq!(a.release_running().unwrap(), 0);
    }

    /// One replica at a time holds the periodic-work lock; when it dies
    /// another takes it over.
    #[test]
    fn periodic_work_moves_when_its_replica_dies() {
        let db = pg::Db::new();
        let a = db.store("a");
        wait_until(Duration::from_secs(10), "a to lead", || a.leads());
        let b = db.store("b");
        std::thread::sleep(super::super::postgres::CONTROL_EVERY * 2);
        assert!(!b.leads(), "two leaders");
        drop(a);
        wait_until(Duration::from_secs(15), "b to take over", || b.leads());
    }

    /// An idle replica is woken by NOTIFY when another queues a job.
    #[test]
    fn idle_replicas_wake_on_notify() {
        let db = pg::Db::new();
        let a = db.store("a");
        let b = db.store("b");
        let woken = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&woken);
        b.on_new_jobs(Arc::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        // The wake-up after b's control connection came up.
        wait_until(Duration::from_secs(10), "b to listen", || {
            woken.load(Ordering::SeqCst) >= 1
        });
        let before = woken.load(Ordering::SeqCst);
        a.admit(&[job("1")], 10).unwrap();
        wait_until(Duration::from_secs(5), "the notification", || {
            woken.load(Ordering::SeqCst) > before
        });
        // A duplicate queues nothing and notifies no one.
        let after = woken.load(Ordering::SeqCst);
        a.admit(&[job("1")], 10).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(woken.load(Ordering::SeqCst), after);
    }

    /// The server goes away and comes back: calls fail meanwhile (and
    /// quickly), then work again without a new store.
    #[test]
    fn a_restarted_database_is_reconnected() {
        let db = pg::Db::new();
        let a = db.store("a");
        a.admit(&[job("1")], 10).unwrap();
        db.server.stop();
        let start = Instant::now();
        assert!(a.ping().is_err());
        assert!(a.claim().is_err());
        assert!(start.elapsed() < Duration::from_secs(15));
        db.server.restart();
        wait_until(Duration::from_secs(20), "the store to reconnect", || {
            a.ping().is_ok()
        });
        let c = a.claim().unwrap().unwrap();
        assert!(a.finish_ok(&c, "{}", "{}", 1).unwrap());
        wait_until(
            Duration::from_secs(15),
            "leadership after the restart",
            || a.leads(),
        );
    }

    /// `sslmode=require`: TLS with the server's certificate checked against
    /// `database_ca_cert` (and the system's roots, which do not know the
    /// test CA: without the CA file the connection is refused).
    #[test]
    fn tls_is_verified_against_the_configured_ca() {
        let server = super::super::pg_server::Postgres::start_tls();
        server.create_database("imgscan");
        let db = pg::Db {
            server,
            lease: Duration::from_secs(30),
        };
        let mut opts = db.options("tls");
        opts.config = format!("{}?sslmode=require", db.server.url("imgscan"))
            .parse()
            .unwrap();
        opts.config.password(super::super::pg_server::PG_PASSWORD);
        opts.ca_cert = db.server.ca.clone();
        let s = super::super::postgres::PgStore::open(&opts).unwrap();
        s.admit(&[job("1")], 10).unwrap();
        assert_eq!(s.counts().unwrap().queued, 1);
        // The server saw an encrypted session.
        assert_eq!(
            db.server.psql(
                "imgscan",
                "SELECT bool_or(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
                 WHERE application_name LIKE 'imgscan serve%'"
            ),
            "t"
        );
        opts.ca_cert = None;
        let err = format!(
            "{:#}",
            super::super::postgres::PgStore::open(&opts).err().unwrap()
        );
        assert!(
            err.contains("certificate") || err.contains("error performing TLS handshake"),
            "{err}"
        );
        // A CA file without sslmode=require would be silently unused.
        let mut plain = db.options("plain");
        plain.ca_cert = db.server.ca.clone();
        let err = format!(
            "{:#}",
            super::super::postgres::PgStore::open(&plain).err().unwrap()
        );
        assert!(err.contains("sslmode=require"), "{err}");
    }

    /// A database written by a newer imgscan is refused; migrating twice
    /// (replicas starting together) is harmless.
    #[test]
    fn schema_versions_are_checked() {
        let db = pg::Db::new();
        drop(db.store("a"));
        drop(db.store("b"));
        assert_eq!(
            db.server
                .psql("imgscan", "SELECT version FROM imgscan_schema"),
            super::super::postgres::SCHEMA_VERSION.to_string()
        );
        db.server
            .psql("imgscan", "UPDATE imgscan_schema SET version = 99");
        let opts: PgOptions = db.options("c");
        let err = format!(
            "{:#}",
            super::super::postgres::PgStore::open(&opts).err().unwrap()
        );
        assert!(err.contains("newer imgscan"), "{err}");
        // The wrong password is refused, and not printed.
        let mut bad = db.options("d");
        bad.config.password("wrong-password");
        let err = format!(
            "{:#}",
            super::super::postgres::PgStore::open(&bad).err().unwrap()
        );
        assert!(!err.contains("wrong-password"), "{err}");
        assert!(err.contains("password") || err.contains("28P01"), "{err}");
    }
}

/// Measurements for docs/benchmarks.md (issue 13), not a test:
/// `cargo test -p imgscan-serve --features e2e --release --lib -- --ignored --nocapture bench_`
#[cfg(feature = "e2e")]
mod bench {
    use std::time::{Duration, Instant};

    use super::*;

    fn percentile(v: &mut [Duration], p: f64) -> f64 {
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i].as_secs_f64() * 1000.0
    }

    /// One job at a time, as one notification each: admit, claim, finish.
    fn lifecycle(s: &Store, n: usize, prefix: &str) -> [(&'static str, f64, f64); 3] {
        let (mut admit, mut claim, mut finish) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let t = Instant::now();
            s.admit(&[job(&format!("{prefix}{i:x}"))], n + 1).unwrap();
            admit.push(t.elapsed());
            let t = Instant::now();
            let c = s.claim().unwrap().unwrap();
            claim.push(t.elapsed());
            let t = Instant::now();
            assert!(s.finish_ok(&c, "{}", "{}", 1).unwrap());
            finish.push(t.elapsed());
        }
        [
            (
                "admit",
                percentile(&mut admit, 0.5),
                percentile(&mut admit, 0.99),
            ),
            (
                "claim",
                percentile(&mut claim, 0.5),
                percentile(&mut claim, 0.99),
            ),
            (
                "finish",
                percentile(&mut finish, 0.5),
                percentile(&mut finish, 0.99),
            ),
        ]
    }

    #[test]
    #[ignore = "benchmark; see docs/benchmarks.md"]
    fn bench_store_latency_and_statements_per_job() {
        const N: usize = 300;
        let dir = tempfile::tempdir().unwrap();
        let sqlite = sqlite::SqliteStore::open(&dir.path().join("bench.db")).unwrap();
        for (op, p50, p99) in lifecycle(&sqlite, N, "b") {
            println!("sqlite   {op:<6} p50 {p50:.3} ms  p99 {p99:.3} ms");
        }
        let db = pg::Db::new();
        let s = db.store("bench");
        // Warm the pool and the statement caches, then count statements.
        lifecycle(&*s, 5, "a");
        // ALTER SYSTEM cannot run in a transaction: two calls.
        db.server
            .psql("imgscan", "ALTER SYSTEM SET log_statement = 'all'");
        db.server.psql("imgscan", "SELECT pg_reload_conf()");
        std::thread::sleep(Duration::from_millis(500));
        let before = db.server.log().len();
        for (op, p50, p99) in lifecycle(&*s, N, "b") {
            println!("postgres {op:<6} p50 {p50:.3} ms  p99 {p99:.3} ms");
        }
        std::thread::sleep(Duration::from_millis(500));
        let log = db.server.log();
        let statements = |what: &str| {
            log[before..]
                .lines()
                .filter(|l| l.contains("LOG:  statement:") || l.contains("LOG:  execute"))
                .filter(|l| l.contains(what))
                .count()
        };
        let all = statements("");
        println!(
            "postgres statements per job (admit + claim + finish, plus lease renewals and the \
             control connection meanwhile): {:.2} ({all} for {N} jobs; BEGIN/COMMIT {}, \
             advisory locks {})",
            all as f64 / N as f64,
            statements("BEGIN") + statements("COMMIT"),
            statements("pg_advisory_xact_lock")
        );
    }
}
