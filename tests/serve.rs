//! `imgscan serve` (issue 4) end to end, on 127.0.0.1 with real parts: a
//! Debian `docker-registry` (CNCF distribution 2.8) that notifies the
//! service, pushes made with skopeo, and the built binary as a child process.
//! A missing tool fails the test with a pointer to scripts/install-test-deps.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::http::request;
use crate::support::ports::free_port;
use crate::support::registry::{Registry, RegistryConfig};
use crate::support::serve::{Serve, blob_event, push_event, wait_for, write_config};
use crate::support::{OCI_MANIFEST, SAMPLE_DIGEST};
use crate::util::{imgscan, testdata};

/// `(rule_id, severity, path, layer_index, message)` of every finding.
fn finding_keys(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {}",
                f["rule_id"], f["severity"], f["path"], f["layer_index"], f["message"]
            )
        })
        .collect()
}

/// A registry configured to notify imgscan: a skopeo push is scanned, and
/// the report (JSON and SARIF) equals a local scan of the same image; a
/// second push of the same image is deduplicated; blob events are ignored.
#[test]
fn serve_scans_pushes_notified_by_a_real_registry() {
    let dir = tempfile::tempdir().unwrap();
    let reg_port = free_port();
    let reg_url = format!("http://127.0.0.1:{reg_port}");
    let config = write_config(dir.path(), "workers = 2", &[("local", reg_url.as_str())]);
    let serve = Serve::start(&config);
    let registry = Registry::start_with(RegistryConfig {
        notify: Some(format!("http://{}/v1/events/local", serve.addr)),
        port: Some(reg_port),
        ..RegistryConfig::default()
    });

    let digest = registry.push_sample("lab/sample:v1");
    assert_eq!(digest, SAMPLE_DIGEST);
    let path = format!("/v1/reports/{digest}");
    let report = wait_for(
        Duration::from_secs(90),
        "the report of the pushed image",
        || {
            let r = serve.get(&path);
            (r.status == 200).then_some(r)
        },
        || serve.logs(),
    );
    assert_eq!(report.header("content-type"), Some("application/json"));
    assert_eq!(report.header("x-imgscan-verdict"), Some("fail"));
    let served = report.json();
    assert_eq!(served["image"]["manifest_digest"], SAMPLE_DIGEST);
    assert_eq!(served["image"]["format"], "registry");

    // The same findings as scanning the OCI layout locally.
    let local = imgscan(&[
        "--format",
        "json",
        "--fail-on",
        "none",
        &format!("oci:{}:sample", testdata("sample/oci")),
    ]);
    assert!(
        local.status.success(),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
    let local: Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(finding_keys(&served), finding_keys(&local));
    let rules: BTreeSet<(String, String)> = served["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule_id"].as_str().unwrap().to_owned(),
                f["path"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for want in [
        ("setuid-binary", "/usr/local/bin/suid-helper"),
        ("setgid-binary", "/usr/local/bin/sgid-tool"),
        ("file-capability", "/usr/bin/pinger"),
        ("file-capability", "/usr/bin/admin-tool"),
        ("world-writable-path", "/srv/shared"),
        ("world-writable-path", "/etc/app.conf"),
        ("root-user", ""),
    ] {
        assert!(
            rules.contains(&(want.0.to_owned(), want.1.to_owned())),
            "missing {want:?} in {rules:?}"
        );
    }

    let sarif = serve.get(&format!("{path}?format=sarif"));
    assert_eq!(sarif.status, 200);
    assert_eq!(sarif.header("content-type"), Some("application/sarif+json"));
    let sarif = sarif.json();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(!sarif["runs"][0]["results"].as_array().unwrap().is_empty());

    // Pushing the same image again (another tag) is one scan, not two.
    registry.push_sample("lab/sample:v2");
    registry.push_sample("other/copy:latest");
    wait_for(
        Duration::from_secs(30),
        "the repeated pushes to be notified",
        || {
            serve
                .scan(&digest)
                .filter(|s| s["notifications"].as_u64() >= Some(3))
        },
        || serve.logs(),
    );
    let s = serve.scan(&digest).unwrap();
    assert_eq!(
        (s["state"].as_str(), s["completions"].as_u64()),
        (Some("done"), Some(1))
    );
    assert_eq!(s["attempts"], 1);
    assert_eq!(s["verdict"], "fail");
    assert_eq!(s["registry"], "local");

    let list = serve.get("/v1/scans").json();
    assert_eq!(list["fail_on"], "high");
    let scans = list["scans"].as_array().unwrap();
    assert_eq!(scans.len(), 1, "{scans:#?}");
    assert_eq!(scans[0]["digest"], SAMPLE_DIGEST);
    assert!(
        serve.metric("imgscan_events_total{outcome=\"ignored\"}") > 0.0,
        "blob pushes are ignored"
    );
    assert_eq!(serve.metric("imgscan_scans_total{result=\"fail\"}"), 1.0);
    assert_eq!(serve.metric("imgscan_queue_depth"), 0.0);
    assert_eq!(serve.metric("imgscan_scan_duration_seconds_count"), 1.0);
}

/// Pushes acknowledged before a `kill -9` (some queued, one mid-scan) are
/// all scanned after a restart, each exactly once.
#[test]
fn serve_kill_9_and_restart_scans_every_push_exactly_once() {
    let registry = Registry::start();
    registry.push_sample("lab/app:base");
    let digests = registry.variants("lab/app", 10);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "workers = 1",
        &[("local", &format!("http://{}", registry.host()))],
    );
    let serve = Serve::start(&config);
    let host = registry.host();
    for chunk in digests.chunks(3) {
        let events: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, d)| push_event(&host, "lab/app", &format!("t{i}"), d))
            .collect();
        let r = serve.notify("/v1/events", &events);
        assert_eq!(r.status, 202, "{}", r.text());
    }
    // Duplicates of acknowledged pushes are not new jobs.
    let r = serve.notify(
        "/v1/events",
        &[push_event(&host, "lab/app", "again", &digests[0])],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["duplicates"], 1);
    wait_for(
        Duration::from_secs(60),
        "a scan to be running",
        || (serve.metric("imgscan_scans_in_flight") >= 1.0).then_some(()),
        || serve.logs(),
    );
    let before = serve.get("/v1/scans?state=queued").json()["scans"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        before >= 5,
        "expected a queue at kill time, found {before} queued"
    );
    let first_log = serve.kill9();

    let serve = Serve::start(&config);
    assert!(
        serve.logs().contains("re-queued after an interrupted scan"),
        "{}\nbefore the kill:\n{}",
        serve.logs(),
        first_log.lock().unwrap().join("\n")
    );
    let done = serve.wait_done(&digests, Duration::from_secs(120));
    for s in &done {
        assert_eq!(s["completions"], 1, "{s:#}");
    }
    let all = serve.get("/v1/scans?limit=1000").json()["scans"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(all, digests.len());
    // Every report is there, and the same as the sample's findings.
    let first = serve.get(&format!("/v1/reports/{}", digests[0])).json();
    let last = serve.get(&format!("/v1/reports/{}", digests[9])).json();
    assert_eq!(finding_keys(&first), finding_keys(&last));
}

/// A burst of a few hundred notifications with a small queue: 503s with
/// Retry-After are seen and retried, the queue never holds more than its
/// bound, nothing is lost, every image is scanned once; SIGTERM then stops
/// the service cleanly.
#[test]
fn serve_burst_of_notifications_respects_the_queue_bound() {
    const CAPACITY: usize = 6;
    let registry = Registry::start();
    registry.push_sample("lab/burst:base");
    let digests = Arc::new(registry.variants("lab/burst", 24));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("workers = 2\nqueue_capacity = {CAPACITY}"),
        &[("local", &format!("http://{}", registry.host()))],
    );
    let serve = Arc::new(Serve::start(&config));
    let host = registry.host();

    let busy = Arc::new(AtomicUsize::new(0));
    let max_depth = Arc::new(Mutex::new(0f64));
    let monitor = {
        let (serve, busy, max_depth) = (
            Arc::clone(&serve),
            Arc::clone(&busy),
            Arc::clone(&max_depth),
        );
        std::thread::spawn(move || {
            while busy.load(Ordering::SeqCst) == 0 {
                let d = serve.metric("imgscan_queue_depth");
                let mut m = max_depth.lock().unwrap();
                *m = m.max(d);
                drop(m);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let unavailable = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..6)
        .map(|t| {
            let (serve, digests, host) = (Arc::clone(&serve), Arc::clone(&digests), host.clone());
            let (unavailable, delivered) = (Arc::clone(&unavailable), Arc::clone(&delivered));
            std::thread::spawn(move || {
                for i in 0..50 {
                    let n = t * 50 + i;
                    // One or two manifest pushes, sometimes with a blob push.
                    let mut events = vec![push_event(
                        &host,
                        "lab/burst",
                        &format!("b{n}"),
                        &digests[n % digests.len()],
                    )];
                    if n % 3 == 0 {
                        events.push(push_event(
                            &host,
                            "lab/burst",
                            "x",
                            &digests[(n * 7 + 1) % digests.len()],
                        ));
                    }
                    if n % 5 == 0 {
                        events.push(blob_event(&host, "lab/burst"));
                    }
                    let start = Instant::now();
                    loop {
                        let r = serve.notify("/v1/events/local", &events);
                        match r.status {
                            200 | 202 => break,
                            503 => {
                                assert_eq!(r.header("retry-after"), Some("1"));
                                unavailable.fetch_add(1, Ordering::SeqCst);
                                // Like the registry: retry soon, then back off.
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            s => panic!("unexpected {s}: {}", r.text()),
                        }
                        assert!(
                            start.elapsed() < Duration::from_secs(120),
                            "envelope {n} never accepted"
                        );
                    }
                    delivered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(delivered.load(Ordering::SeqCst), 300);
    let done = serve.wait_done(&digests, Duration::from_secs(120));
    busy.store(1, Ordering::SeqCst);
    monitor.join().unwrap();
    assert!(
        unavailable.load(Ordering::SeqCst) > 0,
        "the queue bound was never reached"
    );
    let max = *max_depth.lock().unwrap();
    assert!(
        max <= CAPACITY as f64,
        "queue depth {max} exceeded {CAPACITY}"
    );
    for s in &done {
        assert_eq!(s["completions"], 1, "{s:#}");
    }
    assert_eq!(
        serve.get("/v1/scans?limit=1000").json()["scans"]
            .as_array()
            .unwrap()
            .len(),
        digests.len()
    );
    assert_eq!(
        serve.metric("imgscan_scans_total{result=\"fail\"}"),
        digests.len() as f64
    );
    assert!(serve.metric("imgscan_events_total{outcome=\"queue_full\"}") > 0.0);

    let serve = Arc::try_unwrap(serve).ok().expect("no other owner");
    let log = Arc::clone(&serve.log);
    assert_eq!(serve.terminate(Duration::from_secs(20)), Some(0));
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("SIGTERM: shutting down") && log.contains("stopped;"),
        "{log}"
    );
}

/// Harbor's flow against a registry that needs credentials: metadata that
/// Harbor accepts, POST scan → 202 {id}, 302 with Refresh-After and
/// Retry-After while the scan runs, then a vulnerability report 1.1 with
/// one item per finding; every answer well within Harbor's 5 s.
#[test]
fn serve_harbor_adapter_flow() {
    let registry = Registry::start_with(RegistryConfig {
        user: Some(("robot$lab+scan", "s3cret-pass")),
        ..RegistryConfig::default()
    });
    let digest = registry.push_sample("lab/app:1.0");
    let busy = registry.variants("lab/app", 1);
    let dir = tempfile::tempdir().unwrap();
    // A second allowlist entry for the same registry (as `localhost`) with
    // credentials of its own, for distribution events.
    std::fs::write(dir.path().join("pw"), "s3cret-pass\n").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "workers = 1\n[[registry]]\nname = \"creds\"\nurl = \"http://localhost:{}\"\n\
             username = \"robot$lab+scan\"\npassword_file = \"pw\"\n",
            registry.port
        ),
        &[("harbor", &format!("http://{}", registry.host()))],
    );
    let serve = Serve::start(&config);
    let timed = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        let start = Instant::now();
        let r = serve.call(method, path, headers, body);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{method} {path} took {:?}",
            start.elapsed()
        );
        r
    };

    // Metadata as Harbor validates it (goharbor/harbor rest/v1/models.go).
    let m = timed(
        "GET",
        "/api/v1/metadata",
        &[(
            "Accept",
            "application/vnd.scanner.adapter.metadata+json; version=1.0",
        )],
        b"",
    );
    assert_eq!(m.status, 200);
    let m = m.json();
    for k in ["name", "vendor", "version"] {
        assert!(!m["scanner"][k].as_str().unwrap().is_empty());
    }
    let caps = m["capabilities"].as_array().unwrap();
    assert!(!caps.is_empty());
    for c in caps {
        assert!(
            c["consumes_mime_types"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "application/vnd.docker.distribution.manifest.v2+json")
        );
        assert!(
            c["produces_mime_types"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "application/vnd.security.vulnerability.report; version=1.1")
        );
    }
    assert_eq!(
        m["properties"]["harbor.scanner-adapter/registry-authorization-type"],
        "Basic"
    );

    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("robot$lab+scan:s3cret-pass")
    );
    let scan_request = |d: &str, auth: &str| {
        json!({
            "registry": {"url": format!("http://{}", registry.host()), "authorization": auth, "insecure": true},
            "artifact": {"repository": "lab/app", "digest": d, "tag": "1.0",
                         "mime_type": OCI_MANIFEST, "size": 820},
            "enabled_capabilities": [{"type": "vulnerability",
                "produces_mime_types": ["application/vnd.security.vulnerability.report; version=1.1"],
                "parameters": null}]
        })
        .to_string()
    };
    let scan_headers = [
        (
            "Content-Type",
            "application/vnd.scanner.adapter.scan.request+json; version=1.0",
        ),
        (
            "Accept",
            "application/vnd.scanner.adapter.scan.response+json; version=1.0",
        ),
    ];
    // Keep the single worker busy with another image first, so the report
    // is still pending when first asked for. This one comes as a
    // distribution event and is pulled with the configured credentials.
    let host = format!("localhost:{}", registry.port);
    let r = serve.notify(
        "/v1/events/creds",
        &[push_event(&host, "lab/app", "v0", &busy[0])],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = timed(
        "POST",
        "/api/v1/scan",
        &scan_headers,
        scan_request(&digest, &auth).as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.scanner.adapter.scan.response+json; version=1.0")
    );
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let report_path = format!("/api/v1/scan/{id}/report");
    let accept = [(
        "Accept",
        "application/vnd.security.vulnerability.report; version=1.1",
    )];
    let first = timed("GET", &report_path, &accept, b"");
    assert_eq!(first.status, 302, "{}", first.text());
    assert_eq!(first.header("refresh-after"), Some("1"));
    assert_eq!(first.header("retry-after"), Some("1"));
    let report = wait_for(
        Duration::from_secs(90),
        "the Harbor report",
        || {
            let r = timed("GET", &report_path, &accept, b"");
            assert!(
                r.status == 200 || r.status == 302,
                "{} {}",
                r.status,
                r.text()
            );
            (r.status == 200).then_some(r)
        },
        || serve.logs(),
    );
    assert_eq!(
        report.header("content-type"),
        Some("application/vnd.security.vulnerability.report; version=1.1")
    );
    let report = report.json();
    assert_eq!(report["artifact"]["digest"], digest);
    assert_eq!(report["artifact"]["repository"], "lab/app");
    assert_eq!(report["scanner"]["name"], "imgscan");
    let sevs = ["Unknown", "Negligible", "Low", "Medium", "High", "Critical"];
    let vulns = report["vulnerabilities"].as_array().unwrap();
    let served = serve.get(&format!("/v1/reports/{digest}")).json();
    assert_eq!(vulns.len(), served["findings"].as_array().unwrap().len());
    let mut top = 0;
    for v in vulns {
        let i = sevs
            .iter()
            .position(|s| v["severity"] == *s)
            .expect("Harbor severity");
        top = top.max(i);
        assert!(!v["id"].as_str().unwrap().is_empty());
        assert!(!v["package"].as_str().unwrap().is_empty());
    }
    assert_eq!(report["severity"], sevs[top]);
    assert!(
        vulns
            .iter()
            .any(|v| v["id"] == "setuid-binary" && v["package"] == "/usr/local/bin/suid-helper")
    );
    assert!(vulns.iter().any(|v| v["id"] == "root-user"));

    // Unknown ids, an unsupported report type, and a Bearer authorization
    // (imgscan asks Harbor for Basic).
    assert_eq!(
        timed("GET", "/api/v1/scan/nope/report", &accept, b"").status,
        404
    );
    let sbom = [(
        "Accept",
        "application/vnd.security.sbom.report+json; version=1.0",
    )];
    assert_eq!(timed("GET", &report_path, &sbom, b"").status, 501);
    let r = timed(
        "POST",
        "/api/v1/scan",
        &scan_headers,
        scan_request(&digest, "Bearer eyJ").as_bytes(),
    );
    assert_eq!(r.status, 422);
    let r = timed("POST", "/api/v1/scan", &scan_headers, b"{not json");
    assert_eq!(r.status, 400);

    // The image pulled with the configured credentials was scanned too.
    let done = serve.wait_done(&busy, Duration::from_secs(60));
    assert_eq!(done[0]["registry"], "creds");
    assert_eq!(done[0]["source"], "distribution");
}

/// Pushes the registry never announced (it has no notification endpoint,
/// as when its in-memory queue was lost) are found by catalog
/// reconciliation, through `Link`-paginated catalog pages and bounded
/// sweeps, scanned once each; an artifact is not; and a push made while
/// imgscan is down is found after the restart.
#[test]
fn serve_reconciliation_finds_pushes_no_event_announced() {
    let registry = Registry::start();
    let base = registry.push_sample("lab/a:base");
    let mut digests = vec![base.clone()];
    digests.extend(registry.variants("lab/a", 3));
    // The same image in another repository: one job, not two.
    assert_eq!(registry.push_sample("lab/b:copy"), base);
    // A Helm-style artifact (its config is not an image config).
    let sample_manifest: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::PathBuf::from(testdata("sample/oci/blobs/sha256"))
                .join(SAMPLE_DIGEST.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let mut chart = sample_manifest.clone();
    chart["config"]["mediaType"] = json!("application/vnd.cncf.helm.config.v1+json");
    let chart = serde_json::to_vec(&chart).unwrap();
    let r = request(
        &registry.host(),
        "PUT",
        "/v2/lab/a/manifests/chart",
        &[("Content-Type", OCI_MANIFEST)],
        &chart,
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let chart_digest = r.header("docker-content-digest").unwrap().to_owned();

    let dir = tempfile::tempdir().unwrap();
    // One repository per catalog page (so the sweep follows Link headers),
    // three tags per sweep (so it resumes), a queue of two.
    let config = write_config(
        dir.path(),
        "workers = 1\nqueue_capacity = 2\nreconcile_interval_secs = 1\n\
         reconcile_page_size = 1\nreconcile_max_tags = 3",
        &[("local", &format!("http://{}", registry.host()))],
    );
    let serve = Serve::start(&config);
    let done = serve.wait_done(&digests, Duration::from_secs(120));
    for s in &done {
        assert_eq!(
            (s["source"].as_str(), s["registry"].as_str()),
            (Some("reconcile"), Some("local")),
            "{s:#}"
        );
        assert_eq!(s["completions"], 1, "{s:#}");
        assert_eq!(s["notifications"], 1, "{s:#}");
    }
    assert_eq!(done[0]["repository"], "lab/a");
    assert_eq!(done[0]["tag"], "base");
    let report = serve.get(&format!("/v1/reports/{base}"));
    assert_eq!(report.status, 200);
    assert_eq!(report.header("x-imgscan-verdict"), Some("fail"));
    // Let a few more sweeps run: nothing else is queued, the artifact is not.
    let sweeps = serve.metric("imgscan_reconcile_sweeps_total{result=\"complete\"}");
    wait_for(
        Duration::from_secs(30),
        "two more complete sweeps",
        || {
            (serve.metric("imgscan_reconcile_sweeps_total{result=\"complete\"}") >= sweeps + 2.0)
                .then_some(())
        },
        || serve.logs(),
    );
    assert_eq!(serve.get(&format!("/v1/scans/{chart_digest}")).status, 404);
    let all = serve.get("/v1/scans?limit=1000").json()["scans"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(all, digests.len());
    assert_eq!(
        serve.metric("imgscan_reconcile_queued_total"),
        digests.len() as f64
    );
    assert!(serve.metric("imgscan_reconcile_sweeps_total{result=\"limited\"}") >= 1.0);
    assert_eq!(
        serve.metric("imgscan_reconcile_sweeps_total{result=\"failed\"}"),
        0.0
    );
    assert!(
        serve
            .logs()
            .contains("reconciling registry `local` (http://127.0.0.1:"),
        "{}",
        serve.logs()
    );

    // A push while imgscan is down is found after the restart.
    drop(serve.kill9());
    let later = registry.variants("lab/a", 4).pop().unwrap();
    assert!(!digests.contains(&later));
    let serve = Serve::start(&config);
    let s = serve.wait_done(std::slice::from_ref(&later), Duration::from_secs(60));
    assert_eq!(s[0]["source"], "reconcile");
    assert_eq!(s[0]["tag"], "v3");
    assert_eq!(serve.metric("imgscan_reconcile_queued_total"), 1.0);
}

/// The per-layer result cache is persisted: after a `kill -9` and a
/// restart, an image that shares only its base layer with one scanned
/// before the restart gets that layer from the cache (a hit) and scans
/// only its new layer (a miss), with the same findings for the base layer.
#[test]
fn serve_layer_cache_survives_kill_9() {
    let registry = Registry::start();
    let first = registry.push_sample("lab/app:base");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "workers = 1",
        &[("local", &format!("http://{}", registry.host()))],
    );
    let host = registry.host();
    let serve = Serve::start(&config);
    let r = serve.notify(
        "/v1/events",
        &[push_event(&host, "lab/app", "base", &first)],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    serve.wait_done(std::slice::from_ref(&first), Duration::from_secs(90));
    // A cold cache: every one of the four layers was scanned.
    assert_eq!(
        serve.metric("imgscan_layer_cache_lookups_total{result=\"miss\"}"),
        4.0
    );
    assert_eq!(
        serve.metric("imgscan_layer_cache_lookups_total{result=\"hit\"}"),
        0.0
    );
    assert_eq!(serve.metric("imgscan_layer_cache_layers"), 4.0);
    let first_log = serve.kill9();

    let second = registry.push_on_sample_base("lab/app", "motd", "hello\n");
    let serve = Serve::start(&config);
    assert!(
        dir.path().join("serve.layers.db").is_file(),
        "{}",
        first_log.lock().unwrap().join("\n")
    );
    let r = serve.notify(
        "/v1/events",
        &[push_event(&host, "lab/app", "motd", &second)],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    serve.wait_done(std::slice::from_ref(&second), Duration::from_secs(90));
    // The counters restarted with the process: the base layer came from the
    // persisted cache, only the new layer was scanned.
    assert_eq!(
        serve.metric("imgscan_layer_cache_lookups_total{result=\"hit\"}"),
        1.0,
        "{}",
        serve.logs()
    );
    assert_eq!(
        serve.metric("imgscan_layer_cache_lookups_total{result=\"miss\"}"),
        1.0
    );
    assert_eq!(serve.metric("imgscan_layer_cache_layers"), 5.0);
    assert_eq!(serve.metric("imgscan_layer_cache_discarded_total"), 0.0);
    // The cached base layer yields the findings a fresh scan of it gives.
    let layer0 = |digest: &str| -> BTreeSet<String> {
        let report = serve.get(&format!("/v1/reports/{digest}")).json();
        finding_keys(&report)
            .into_iter()
            .filter(|k| k.split(' ').nth(3) == Some("0"))
            .collect()
    };
    let (a, b) = (layer0(&first), layer0(&second));
    assert!(!a.is_empty(), "the sample's base layer has findings");
    assert_eq!(a, b);
}

/// A registry on TLS whose certificate is signed by a private CA: serve
/// configured with that CA as the entry's `ca_cert` (and without
/// `insecure`) reconciles its catalog and pulls the image it finds; the
/// same entry without `ca_cert` fails both on certificate verification.
#[test]
fn serve_trusts_a_private_ca_with_ca_cert() {
    let registry = Registry::start_with(RegistryConfig {
        tls: true,
        ..RegistryConfig::default()
    });
    let digest = registry.push_sample("lab/private:v1");
    assert_eq!(digest, SAMPLE_DIGEST);
    let ca = registry.tls.as_ref().unwrap().ca.clone();
    let url = format!("https://{}", registry.host());
    let entry = |ca_cert: Option<&std::path::Path>| {
        let mut e = format!(
            "workers = 1\nmax_attempts = 1\nreconcile_interval_secs = 1\n\
             [[registry]]\nname = \"corp\"\nurl = \"{url}\"\n"
        );
        if let Some(p) = ca_cert {
            e.push_str(&format!("ca_cert = \"{}\"\n", p.display()));
        }
        e
    };

    // Trusted: the sweep finds the image, the pull verifies the registry.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &entry(Some(&ca)), &[]);
    let serve = Serve::start(&config);
    let done = serve.wait_done(std::slice::from_ref(&digest), Duration::from_secs(90));
    assert_eq!(
        (done[0]["source"].as_str(), done[0]["registry"].as_str()),
        (Some("reconcile"), Some("corp")),
        "{:#}",
        done[0]
    );
    assert_eq!(done[0]["repository"], "lab/private");
    let report = serve.get(&format!("/v1/reports/{digest}"));
    assert_eq!(report.status, 200, "{}", serve.logs());
    assert_eq!(report.header("x-imgscan-verdict"), Some("fail"));
    assert_eq!(report.json()["image"]["manifest_digest"], SAMPLE_DIGEST);
    assert_eq!(
        serve.metric("imgscan_reconcile_sweeps_total{result=\"failed\"}"),
        0.0,
        "{}",
        serve.logs()
    );
    drop(serve);

    // Untrusted: the same registry without ca_cert. The sweep fails on the
    // certificate, and so does a pull asked for by an event.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &entry(None), &[]);
    let serve = Serve::start(&config);
    wait_for(
        Duration::from_secs(30),
        "a failed sweep",
        || (serve.metric("imgscan_reconcile_sweeps_total{result=\"failed\"}") >= 1.0).then_some(()),
        || serve.logs(),
    );
    let logs = serve.logs();
    let sweep = logs
        .lines()
        .find(|l| l.contains("reconcile `corp`") && l.contains("listing the catalog"))
        .unwrap_or_else(|| panic!("no failed sweep in the log:\n{logs}"));
    assert!(
        sweep.contains("invalid peer certificate"),
        "not a TLS verification error: {sweep}"
    );
    let r = serve.notify(
        "/v1/events/corp",
        &[push_event(&registry.host(), "lab/private", "v1", &digest)],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let failed = wait_for(
        Duration::from_secs(60),
        "the pull to fail",
        || serve.scan(&digest).filter(|s| s["state"] == "failed"),
        || serve.logs(),
    );
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("TLS") && error.contains("invalid peer certificate"),
        "not a TLS verification error: {failed:#}"
    );
    // No report: the failed job instead.
    assert_eq!(serve.get(&format!("/v1/reports/{digest}")).status, 502);
    assert_eq!(serve.metric("imgscan_reconcile_queued_total"), 0.0);
}
