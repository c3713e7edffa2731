//! Prometheus metrics, written by hand in the text exposition format
//! (version 0.0.4): a handful of counters, one histogram, and gauges read
//! from the database at scrape time so they survive restarts.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use strum::{EnumCount, EnumIter, IntoEnumIterator as _, IntoStaticStr};

use super::layers::CacheStats;
use super::store::Counts;

/// Upper bounds (seconds) of the scan duration histogram.
const BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// What became of one event of a notification envelope. The metric label is
/// the snake_case name; the counters are indexed by the discriminant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumIter, EnumCount)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum EventOutcome {
    /// A new scan job.
    Queued,
    /// A failed image pushed again: scanned again.
    Requeued,
    /// Already queued, running or scanned.
    Duplicate,
    /// Not a manifest push (a blob, a pull, a mount, a delete, an artifact).
    Ignored,
    /// Names a registry that is not on the allowlist.
    OffAllowlist,
    /// Not a valid event.
    Malformed,
    /// No room in the queue; the registry will retry.
    QueueFull,
}

impl EventOutcome {
    /// The metric label and the name in a notification's response.
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why a request was refused before any work (labelled as [`EventOutcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumIter, EnumCount)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum Refusal {
    Unauthorized,
    TooLarge,
    QueueFull,
    /// A refused envelope delivered again too often: acknowledged and dropped.
    PoisonDropped,
}

/// How a reconciliation sweep can end (`reconcile::SweepEnd::label`).
pub(crate) const RECONCILE_ENDS: [&str; 4] = ["complete", "limited", "queue_full", "failed"];

/// Counts one running scan (see [`Metrics::scan_running`]).
pub(crate) struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Counters kept since start.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    events: [AtomicU64; EventOutcome::COUNT],
    refusals: [AtomicU64; Refusal::COUNT],
    scans_pass: AtomicU64,
    scans_fail: AtomicU64,
    scans_error: AtomicU64,
    scan_retries: AtomicU64,
    harbor_requests: AtomicU64,
    pruned: AtomicU64,
    /// Sweeps by how they ended, in [`RECONCILE_ENDS`] order.
    reconcile_sweeps: [AtomicU64; 4],
    reconcile_queued: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    duration_ms_sum: AtomicU64,
    duration_count: AtomicU64,
    /// Scans this process runs now.
    in_flight: AtomicU64,
}

impl Metrics {
    pub(crate) fn event(&self, o: EventOutcome) {
        self.events[o as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn refused(&self, r: Refusal) {
        self.refusals[r as usize].fetch_add(1, Relaxed);
    }

    /// A scan starts; the guard counts it until it is dropped.
    pub(crate) fn scan_running(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self)
    }

    /// Scans this process runs now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    pub(crate) fn harbor_request(&self) {
        self.harbor_requests.fetch_add(1, Relaxed);
    }

    /// A catalog sweep ended as `end` (a `SweepEnd` label) after queueing
    /// `queued` digests.
    pub(crate) fn reconcile_sweep(&self, end: &str, queued: u64) {
        if let Some(i) = RECONCILE_ENDS.iter().position(|e| *e == end) {
            self.reconcile_sweeps[i].fetch_add(1, Relaxed);
        }
        self.reconcile_queued.fetch_add(queued, Relaxed);
    }

    /// Finished jobs deleted by the retention policy.
    pub(crate) fn pruned(&self, n: u64) {
        self.pruned.fetch_add(n, Relaxed);
    }

    /// A scan that produced a report; `failing` is its verdict.
    pub(crate) fn scan_done(&self, duration_ms: u64, failing: bool) {
        if failing {
            self.scans_fail.fetch_add(1, Relaxed);
        } else {
            self.scans_pass.fetch_add(1, Relaxed);
        }
        self.observe(duration_ms);
    }

    /// A scan that failed; `retry` when it will be tried again.
    pub(crate) fn scan_error(&self, duration_ms: u64, retry: bool) {
        if retry {
            self.scan_retries.fetch_add(1, Relaxed);
        } else {
            self.scans_error.fetch_add(1, Relaxed);
        }
        self.observe(duration_ms);
    }

    fn observe(&self, ms: u64) {
        let secs = ms as f64 / 1000.0;
        for (b, c) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *b {
                c.fetch_add(1, Relaxed);
            }
        }
        self.duration_ms_sum.fetch_add(ms, Relaxed);
        self.duration_count.fetch_add(1, Relaxed);
    }

    /// The exposition text.
    pub(crate) fn render(
        &self,
        counts: Counts,
        capacity: usize,
        workers: usize,
        layers: CacheStats,
    ) -> String {
        let mut s = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "imgscan_queue_depth",
            "Scan jobs waiting in the queue.",
            counts.queued,
        );
        gauge(
            "imgscan_queue_capacity",
            "Most jobs the queue holds before pushes get 503.",
            capacity as u64,
        );
        gauge(
            "imgscan_scans_in_flight",
            "Scans running now.",
            counts.running,
        );
        gauge(
            "imgscan_workers",
            "Scans that may run at once.",
            workers as u64,
        );
        gauge(
            "imgscan_jobs_done",
            "Scanned images whose reports are kept (from the database).",
            counts.done,
        );
        gauge(
            "imgscan_jobs_failed",
            "Images whose scan failed for good, still kept (from the database).",
            counts.failed,
        );

        let _ = writeln!(
            s,
            "# HELP imgscan_scans_total Scans finished since start, by result (pass and fail are verdicts; error means no report).\n# TYPE imgscan_scans_total counter"
        );
        for (result, c) in [
            ("pass", &self.scans_pass),
            ("fail", &self.scans_fail),
            ("error", &self.scans_error),
        ] {
            let _ = writeln!(
                s,
                "imgscan_scans_total{{result=\"{result}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP imgscan_scan_failures_total Scans that ended without a report, including ones that will be retried.\n# TYPE imgscan_scan_failures_total counter\nimgscan_scan_failures_total {}",
            self.scans_error.load(Relaxed) + self.scan_retries.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP imgscan_scan_retries_total Failed scans queued again for a later try.\n# TYPE imgscan_scan_retries_total counter\nimgscan_scan_retries_total {}",
            self.scan_retries.load(Relaxed)
        );

        let _ = writeln!(
            s,
            "# HELP imgscan_scan_duration_seconds Time to pull and scan one image.\n# TYPE imgscan_scan_duration_seconds histogram"
        );
        for (b, c) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                s,
                "imgscan_scan_duration_seconds_bucket{{le=\"{b}\"}} {}",
                c.load(Relaxed)
            );
        }
        let count = self.duration_count.load(Relaxed);
        let _ = writeln!(
            s,
            "imgscan_scan_duration_seconds_bucket{{le=\"+Inf\"}} {count}\nimgscan_scan_duration_seconds_sum {}\nimgscan_scan_duration_seconds_count {count}",
            self.duration_ms_sum.load(Relaxed) as f64 / 1000.0
        );

        let _ = writeln!(
            s,
            "# HELP imgscan_events_total Registry notification events by outcome.\n# TYPE imgscan_events_total counter"
        );
        for (o, c) in EventOutcome::iter().zip(&self.events) {
            let _ = writeln!(
                s,
                "imgscan_events_total{{outcome=\"{}\"}} {}",
                <&str>::from(o),
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP imgscan_http_refusals_total Requests refused before any work, by reason.\n# TYPE imgscan_http_refusals_total counter"
        );
        for (r, c) in Refusal::iter().zip(&self.refusals) {
            let _ = writeln!(
                s,
                "imgscan_http_refusals_total{{reason=\"{}\"}} {}",
                <&str>::from(r),
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP imgscan_harbor_scan_requests_total Harbor scan requests accepted.\n# TYPE imgscan_harbor_scan_requests_total counter\nimgscan_harbor_scan_requests_total {}",
            self.harbor_requests.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP imgscan_jobs_pruned_total Finished jobs and reports deleted by the retention policy since start.\n# TYPE imgscan_jobs_pruned_total counter\nimgscan_jobs_pruned_total {}",
            self.pruned.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP imgscan_reconcile_sweeps_total Catalog sweeps since start, by how they ended.\n# TYPE imgscan_reconcile_sweeps_total counter"
        );
        for (end, c) in RECONCILE_ENDS.iter().zip(&self.reconcile_sweeps) {
            let _ = writeln!(
                s,
                "imgscan_reconcile_sweeps_total{{result=\"{end}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP imgscan_reconcile_queued_total Manifests queued by catalog sweeps (pushes no event announced).\n# TYPE imgscan_reconcile_queued_total counter\nimgscan_reconcile_queued_total {}",
            self.reconcile_queued.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP imgscan_layer_cache_lookups_total Layer scans looked up in the persisted cache since start, by result.\n# TYPE imgscan_layer_cache_lookups_total counter\nimgscan_layer_cache_lookups_total{{result=\"hit\"}} {}\nimgscan_layer_cache_lookups_total{{result=\"miss\"}} {}",
            layers.hits, layers.misses
        );
        let _ = writeln!(
            s,
            "# HELP imgscan_layer_cache_discarded_total Cache entries deleted since start because they could not be used (another version, or undecodable).\n# TYPE imgscan_layer_cache_discarded_total counter\nimgscan_layer_cache_discarded_total {}",
            layers.discarded
        );
        let _ = writeln!(
            s,
            "# HELP imgscan_layer_cache_layers Layer scans kept in the cache file.\n# TYPE imgscan_layer_cache_layers gauge\nimgscan_layer_cache_layers {}\n# HELP imgscan_layer_cache_bytes Bytes of layer scans kept in the cache file.\n# TYPE imgscan_layer_cache_bytes gauge\nimgscan_layer_cache_bytes {}",
            layers.layers, layers.bytes
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metric labels are a contract with dashboards and alerts.
    #[test]
    fn label_names_are_stable() {
        let events: Vec<&str> = EventOutcome::iter().map(EventOutcome::as_str).collect();
        assert_eq!(
            events,
            [
                "queued",
                "requeued",
                "duplicate",
                "ignored",
                "off_allowlist",
                "malformed",
                "queue_full"
            ]
        );
        let refusals: Vec<&str> = Refusal::iter().map(<&str>::from).collect();
        assert_eq!(
            refusals,
            ["unauthorized", "too_large", "queue_full", "poison_dropped"]
        );
        let m = Metrics::default();
        m.event(EventOutcome::QueueFull);
        m.refused(Refusal::PoisonDropped);
        assert_eq!(m.events[EventOutcome::COUNT - 1].load(Relaxed), 1);
        assert_eq!(m.refusals[Refusal::COUNT - 1].load(Relaxed), 1);
    }

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.scan_done(300, true);
        m.scan_done(2000, false);
        let text = m.render(Counts::default(), 10, 2, CacheStats::default());
        assert!(text.contains("imgscan_scan_duration_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(text.contains("imgscan_scan_duration_seconds_bucket{le=\"2.5\"} 2\n"));
        assert!(text.contains("imgscan_scan_duration_seconds_count 2\n"));
        assert!(text.contains("imgscan_scans_total{result=\"fail\"} 1\n"));
        assert!(text.contains("imgscan_queue_capacity 10\n"));
    }

    #[test]
    fn sweeps_are_counted_by_how_they_ended() {
        let m = Metrics::default();
        m.reconcile_sweep("queue_full", 3);
        m.reconcile_sweep("complete", 1);
        m.reconcile_sweep("complete", 0);
        let text = m.render(Counts::default(), 10, 2, CacheStats::default());
        assert!(text.contains("imgscan_reconcile_sweeps_total{result=\"complete\"} 2\n"));
        assert!(text.contains("imgscan_reconcile_sweeps_total{result=\"queue_full\"} 1\n"));
        assert!(text.contains("imgscan_reconcile_sweeps_total{result=\"failed\"} 0\n"));
        assert!(text.contains("imgscan_reconcile_queued_total 4\n"));
        let text = m.render(
            Counts::default(),
            10,
            2,
            CacheStats {
                hits: 3,
                misses: 1,
                discarded: 0,
                layers: 4,
                bytes: 100,
            },
        );
        assert!(text.contains("imgscan_layer_cache_lookups_total{result=\"hit\"} 3\n"));
        assert!(text.contains("imgscan_layer_cache_lookups_total{result=\"miss\"} 1\n"));
        assert!(text.contains("imgscan_layer_cache_layers 4\n"));
    }
}
