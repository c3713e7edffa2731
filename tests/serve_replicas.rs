//! Several `imgscan serve` replicas on one PostgreSQL database (issue 13),
//! end to end on 127.0.0.1 with real parts: a PostgreSQL server from
//! Debian's `postgresql` started for the test, a Debian `docker-registry`
//! that notifies every replica (one endpoint each, as distribution sends
//! every event to every endpoint), pushes with skopeo and the distribution
//! API, and the built binary as the replicas.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::support::ports::free_port;
use crate::support::postgres::Postgres;
use crate::support::registry::{Registry, RegistryConfig};
use crate::support::serve::{Serve, push_event, wait_for, write_config_with};

/// The job lease the replicas use: a killed replica's job waits this long.
/// It must outlast the database restart below: a replica that cannot reach
/// the database cannot renew, and a lease that runs out during an outage
/// lets another replica run the scan again (stored once all the same).
const LEASE_SECS: u64 = 20;

/// A config for replica `name` on database `imgscan` of `pg`.
fn replica_config(
    pg: &Postgres,
    dir: &Path,
    name: &str,
    extra: &str,
    registries: &[(&str, &str)],
) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let pw = dir.join("db-password");
    pg.write_password(&pw);
    let db = format!(
        "database = \"{}\"\ndatabase_password_file = \"{}\"\nreplica_id = \"{name}\"\n\
         job_lease_secs = {LEASE_SECS}",
        pg.url("imgscan"),
        pw.display()
    );
    write_config_with(dir, &db, extra, registries)
}

/// Every replica's record of `digest`, without what may differ by who
/// answers and when (`replica` while running, `retry_in_secs`).
fn record(serve: &Serve, digest: &str) -> Option<Value> {
    serve.scan(digest).map(|mut v| {
        if let Some(o) = v.as_object_mut() {
            o.remove("replica");
            o.remove("retry_in_secs");
        }
        v
    })
}

/// Three replicas behind one registry: every push acknowledged by any of
/// them is scanned exactly once (dedupe across replicas); the replica that
/// runs the periodic work is `kill -9`ed mid-scan and its job is taken by
/// another after the lease (the one documented double run), the periodic
/// work moves; the database is restarted under load and the replicas
/// recover by themselves (503 + Retry-After meanwhile); every replica then
/// answers the same records and reports.
#[test]
fn serve_replicas_on_postgres_survive_a_kill_and_a_database_restart() {
    let pg = Postgres::start();
    pg.create_database("imgscan");
    let root = tempfile::tempdir().unwrap();
    let reg_port = free_port();
    let reg_url = format!("http://127.0.0.1:{reg_port}");
    let replicas: Vec<Serve> = (0..3)
        .map(|i| {
            let dir = root.path().join(format!("r{i}"));
            let cfg = replica_config(
                &pg,
                &dir,
                &format!("r{i}"),
                // Full scans (no layer cache) keep the replicas busy long
                // enough to be caught mid-scan.
                "workers = 1\nqueue_capacity = 100\nlayer_cache_layers = 0",
                &[("local", &reg_url)],
            );
            Serve::start(&cfg)
        })
        .collect();
    let mut replicas: Vec<Option<Serve>> = replicas.into_iter().map(Some).collect();
    let registry = Registry::start_with(RegistryConfig {
        notify: None,
        notify_also: replicas
            .iter()
            .flatten()
            .map(|s| format!("http://{}/v1/events/local", s.addr))
            .collect(),
        port: Some(reg_port),
        ..RegistryConfig::default()
    });
    let live = |replicas: &[Option<Serve>]| -> Vec<usize> {
        (0..replicas.len())
            .filter(|i| replicas[*i].is_some())
            .collect()
    };
    let logs = |replicas: &[Option<Serve>]| -> String {
        replicas
            .iter()
            .flatten()
            .map(|s| s.logs())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };

    // Exactly one replica runs the periodic work.
    let leader = wait_for(
        Duration::from_secs(20),
        "one replica to run the periodic work",
        || {
            let leaders: Vec<usize> = live(&replicas)
                .into_iter()
                .filter(|i| {
                    replicas[*i]
                        .as_ref()
                        .unwrap()
                        .metric("imgscan_periodic_work")
                        == 1.0
                })
                .collect();
            (leaders.len() == 1).then(|| leaders[0])
        },
        || logs(&replicas),
    );

    // skopeo pushes the sample (three tags, one image), then the API puts
    // variants: all new images for the fleet.
    let first = registry.push_sample("lab/app:v1");
    registry.push_sample("lab/app:v2");
    let mut digests = vec![first.clone()];
    digests.extend(registry.variants("lab/app", 30));

    // Kill the leader while it scans.
    let leader_serve = replicas[leader].as_ref().unwrap();
    wait_for(
        Duration::from_secs(60),
        "the leader to be scanning",
        || (leader_serve.metric("imgscan_scans_in_flight") >= 1.0).then_some(()),
        || logs(&replicas),
    );
    let killed_log = replicas[leader].take().unwrap().kill9();
    // What the killed replica held stays `running` under its lease until
    // the lease expires: those jobs may run twice, nothing else.
    let witness = replicas[(leader + 1) % 3].as_ref().unwrap();
    let owned_by_leader: Vec<String> = witness.get("/v1/scans?state=running").json()["scans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["replica"]
                .as_str()
                .is_some_and(|r| r.starts_with(&format!("r{leader}/")))
        })
        .map(|s| s["digest"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !owned_by_leader.is_empty(),
        "the killed replica held no job\n{}",
        killed_log.lock().unwrap().join("\n")
    );
    let survivors = live(&replicas);
    let new_leader = wait_for(
        Duration::from_secs(30),
        "the periodic work to move to a survivor",
        || {
            survivors.iter().copied().find(|i| {
                replicas[*i]
                    .as_ref()
                    .unwrap()
                    .metric("imgscan_periodic_work")
                    == 1.0
            })
        },
        || logs(&replicas),
    );
    assert_ne!(new_leader, leader);

    // The database restarts under load: pushes keep coming.
    let more = registry.variants_from("lab/app", 100, 4);
    pg.stop();
    let a = replicas[survivors[0]].as_ref().unwrap();
    let health = wait_for(
        Duration::from_secs(20),
        "a replica to report the database down",
        || {
            let h = crate::support::http::request(&a.addr, "GET", "/healthz", &[], b"").ok()?;
            (h.status == 503).then_some(h)
        },
        || a.logs(),
    );
    assert_eq!(health.json()["status"], "database unavailable");
    let refused = a.notify(
        "/v1/events/local",
        &[push_event(
            &registry.host(),
            "lab/more",
            "x",
            "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        )],
    );
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    // The process is alive, only not ready.
    let live_r = crate::support::http::request(&a.addr, "GET", "/livez", &[], b"").unwrap();
    assert_eq!(live_r.status, 200);
    std::thread::sleep(Duration::from_secs(2));
    pg.restart();
    let even_more = registry.variants_from("lab/app", 200, 3);
    digests.extend(more);
    digests.extend(even_more);

    // Every push is scanned exactly once, whoever answers.
    for i in &survivors {
        replicas[*i]
            .as_ref()
            .unwrap()
            .wait_done(&digests, Duration::from_secs(300));
    }
    let survivors_serve: Vec<&Serve> = survivors
        .iter()
        .map(|i| replicas[*i].as_ref().unwrap())
        .collect();
    let mut twice = Vec::new();
    for d in &digests {
        let records: Vec<Value> = survivors_serve
            .iter()
            .map(|s| record(s, d).expect("a record"))
            .collect();
        assert!(
            records.windows(2).all(|w| w[0] == w[1]),
            "replicas disagree on {d}: {records:#?}"
        );
        let r = &records[0];
        assert_eq!(r["state"], "done", "{r:#}");
        assert_eq!(r["completions"], 1, "scanned twice: {r:#}");
        if r["attempts"] != 1 {
            twice.push(d.clone());
        }
        let reports: Vec<Vec<u8>> = survivors_serve
            .iter()
            .map(|s| {
                let r = s.get(&format!("/v1/reports/{d}"));
                assert_eq!(r.status, 200);
                r.body
            })
            .collect();
        assert!(
            reports.windows(2).all(|w| w[0] == w[1]),
            "reports differ for {d}"
        );
    }
    // Only a job the killed replica held ran twice (its lease expired).
    for d in &twice {
        assert!(
            owned_by_leader.contains(d),
            "{d} ran twice but was not the killed replica's: {owned_by_leader:?}\n{}\nkilled:\n{}",
            logs(&replicas),
            killed_log.lock().unwrap().join("\n")
        );
    }
    // The first image was notified by every replica (one endpoint each, and
    // two tags) but is one job.
    let r = record(survivors_serve[0], &first).unwrap();
    assert!(r["notifications"].as_u64().unwrap() >= 3, "{r:#}");
    let all = survivors_serve[0].get("/v1/scans?limit=1000").json()["scans"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(all, digests.len());
    // Both survivors scanned, and they label their series apart.
    let labels: Vec<String> = survivors_serve.iter().map(|s| s.replica_label()).collect();
    assert_ne!(labels[0], labels[1]);
    for s in &survivors_serve {
        assert!(
            s.metric("imgscan_scans_total{result=\"fail\"}") > 0.0,
            "a survivor scanned nothing:\n{}",
            s.logs()
        );
    }
    // After the restart, still exactly one runs the periodic work.
    wait_for(
        Duration::from_secs(30),
        "one leader after the database restart",
        || {
            let n = survivors_serve
                .iter()
                .filter(|s| s.metric("imgscan_periodic_work") == 1.0)
                .count();
            (n == 1).then_some(())
        },
        || logs(&replicas),
    );
    for s in &survivors_serve {
        assert!(
            !s.logs().contains("this result is dropped"),
            "a live replica lost a lease:\n{}",
            s.logs()
        );
    }
}

/// A burst of notifications spread over three replicas with a small queue:
/// the bound holds for the fleet (never more queued than
/// `queue_capacity`, 503 + Retry-After beyond it), every image is scanned
/// once, and the scans are spread over the replicas; the layer cache is
/// shared: a new replica scans a new image of known layers from the table;
/// a Harbor scan id from one replica is answered by the others.
#[test]
fn serve_replicas_share_one_queue_bound_in_a_burst() {
    const CAPACITY: usize = 5;
    let pg = Postgres::start();
    pg.create_database("imgscan");
    let registry = Registry::start();
    registry.push_sample("lab/burst:base");
    let digests = Arc::new(registry.variants("lab/burst", 18));
    let root = tempfile::tempdir().unwrap();
    let reg = format!("http://{}", registry.host());
    let replicas: Arc<Vec<Serve>> = Arc::new(
        (0..3)
            .map(|i| {
                Serve::start(&replica_config(
                    &pg,
                    &root.path().join(format!("r{i}")),
                    &format!("burst{i}"),
                    &format!("workers = 1\nqueue_capacity = {CAPACITY}"),
                    &[("local", &reg)],
                ))
            })
            .collect(),
    );
    let host = registry.host();
    let stop = Arc::new(AtomicUsize::new(0));
    let max_depth = Arc::new(Mutex::new(0f64));
    let monitor = {
        let (replicas, stop, max_depth) = (
            Arc::clone(&replicas),
            Arc::clone(&stop),
            Arc::clone(&max_depth),
        );
        std::thread::spawn(move || {
            while stop.load(Ordering::SeqCst) == 0 {
                let d = replicas[0].metric("imgscan_queue_depth");
                let mut m = max_depth.lock().unwrap();
                *m = m.max(d);
                drop(m);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let unavailable = Arc::new(AtomicUsize::new(0));
    // One envelope naming every image: more than the bound, whatever the
    // timing (cached scans are quick): the part that fits is kept, the rest
    // gets 503, and the senders below deliver it again.
    let all: Vec<Value> = digests
        .iter()
        .enumerate()
        .map(|(i, d)| push_event(&host, "lab/burst", &format!("all{i}"), d))
        .collect();
    let r = replicas[0].notify("/v1/events/local", &all);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    unavailable.fetch_add(1, Ordering::SeqCst);
    let senders: Vec<_> = (0..6)
        .map(|t| {
            let (replicas, digests, host, unavailable) = (
                Arc::clone(&replicas),
                Arc::clone(&digests),
                host.clone(),
                Arc::clone(&unavailable),
            );
            std::thread::spawn(move || {
                for i in 0..12 {
                    let n = t * 12 + i;
                    let events = [push_event(
                        &host,
                        "lab/burst",
                        &format!("b{n}"),
                        &digests[n % digests.len()],
                    )];
                    let start = Instant::now();
                    // Each envelope to one replica, round robin.
                    let serve = &replicas[n % replicas.len()];
                    loop {
                        let r = serve.notify("/v1/events/local", &events);
                        match r.status {
                            200 | 202 => break,
                            503 => {
                                assert_eq!(r.header("retry-after"), Some("1"));
                                unavailable.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            s => panic!("unexpected {s}: {}", r.text()),
                        }
                        assert!(
                            start.elapsed() < Duration::from_secs(180),
                            "envelope {n} never accepted"
                        );
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    for s in replicas.iter() {
        s.wait_done(&digests, Duration::from_secs(240));
    }
    stop.store(1, Ordering::SeqCst);
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
    let mut per_replica = BTreeMap::new();
    for s in replicas.iter() {
        per_replica.insert(
            s.replica_label(),
            s.metric("imgscan_scans_total{result=\"fail\"}"),
        );
    }
    for d in digests.iter() {
        let r = record(&replicas[1], d).unwrap();
        assert_eq!(
            (r["completions"].as_u64(), r["attempts"].as_u64()),
            (Some(1), Some(1)),
            "{r:#}"
        );
    }
    assert_eq!(
        per_replica.values().sum::<f64>(),
        digests.len() as f64,
        "{per_replica:?}"
    );
    assert!(
        per_replica.values().filter(|n| **n > 0.0).count() >= 2,
        "one replica did all the work: {per_replica:?}"
    );

    // A Harbor scan id issued by one replica is answered by another.
    let harbor_image = registry.variants_from("lab/burst", 400, 1);
    let request = serde_json::json!({
        "registry": {"url": reg, "authorization": format!("Basic {}",
            base64::engine::general_purpose::STANDARD.encode("robot:unused")), "insecure": true},
        "artifact": {"repository": "lab/burst", "digest": harbor_image[0], "tag": "h",
                     "mime_type": crate::support::OCI_MANIFEST, "size": 820},
        "enabled_capabilities": [{"type": "vulnerability",
            "produces_mime_types": ["application/vnd.security.vulnerability.report; version=1.1"],
            "parameters": null}]
    })
    .to_string();
    let r = replicas[0].call(
        "POST",
        "/api/v1/scan",
        &[
            (
                "Content-Type",
                "application/vnd.scanner.adapter.scan.request+json; version=1.0",
            ),
            (
                "Accept",
                "application/vnd.scanner.adapter.scan.response+json; version=1.0",
            ),
        ],
        request.as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let accept = [(
        "Accept",
        "application/vnd.security.vulnerability.report; version=1.1",
    )];
    let report = wait_for(
        Duration::from_secs(60),
        "the Harbor report from another replica",
        || {
            let r = replicas[2].call("GET", &format!("/api/v1/scan/{id}/report"), &accept, b"");
            assert!(
                r.status == 200 || r.status == 302,
                "{} {}",
                r.status,
                r.text()
            );
            (r.status == 200).then_some(r)
        },
        || replicas[0].logs(),
    );
    let other = replicas[1].call("GET", &format!("/api/v1/scan/{id}/report"), &accept, b"");
    assert_eq!(other.status, 200);
    let (a, b) = (report.json(), other.json());
    assert!(
        !a["vulnerabilities"].as_array().unwrap().is_empty(),
        "{a:#}"
    );
    assert_eq!(a["vulnerabilities"], b["vulnerabilities"]);

    // The layer cache is the fleet's: with the others stopped, a new
    // replica that has never scanned anything gets every layer of a new
    // image (the sample's four) from the table.
    let replicas = Arc::try_unwrap(replicas).ok().expect("no other owner");
    for s in replicas {
        assert_eq!(s.terminate(Duration::from_secs(30)), Some(0));
    }
    let fresh = Serve::start(&replica_config(
        &pg,
        &root.path().join("fresh"),
        "fresh",
        "workers = 1",
        &[("local", &reg)],
    ));
    let new = registry.variants_from("lab/burst", 500, 1);
    let r = fresh.notify(
        "/v1/events/local",
        &[push_event(&host, "lab/burst", "new", &new[0])],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    fresh.wait_done(&new, Duration::from_secs(60));
    assert_eq!(
        fresh.metric("imgscan_layer_cache_lookups_total{result=\"hit\"}"),
        4.0,
        "{}",
        fresh.logs()
    );
    assert_eq!(
        fresh.metric("imgscan_layer_cache_lookups_total{result=\"miss\"}"),
        0.0
    );
    assert_eq!(fresh.metric("imgscan_layer_cache_layers"), 4.0);
}

/// CPU seconds used so far by every `postgres` process (the bench's server
/// is the only one running).
fn postgres_cpu_secs() -> f64 {
    let mut total = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        total += (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0;
    }
    total
}

/// Throughput for docs/benchmarks.md (issue 13), not a test: the same
/// images scanned by one SQLite-backed process and by 1, 2 and 3 replicas
/// on PostgreSQL, one worker each, no layer cache (so every image is a full
/// scan). `cargo test --release --features e2e --test e2e -- --ignored
/// --nocapture serve_replicas_benchmark`
#[test]
#[ignore = "benchmark; see docs/benchmarks.md"]
fn serve_replicas_benchmark() {
    const N: usize = 150;
    let pg = Postgres::start();
    let registry = Registry::start();
    registry.push_sample("lab/bench:base");
    let reg = format!("http://{}", registry.host());
    let root = tempfile::tempdir().unwrap();
    // IMGSCAN_BENCH_LAYER_CACHE=1: with the layer cache (each process's
    // SQLite file, or the fleet's table), as deployed.
    let cache = std::env::var_os("IMGSCAN_BENCH_LAYER_CACHE").is_some();
    let extra = if cache {
        "workers = 1\nqueue_capacity = 1000"
    } else {
        "workers = 1\nqueue_capacity = 1000\nlayer_cache_layers = 0"
    };
    let mut offset = 1000;
    for (label, replicas) in [
        ("sqlite", 1),
        ("postgres", 1),
        ("postgres", 2),
        ("postgres", 3),
    ] {
        let digests = registry.variants_from("lab/bench", offset, N);
        offset += N;
        let run = root.path().join(format!("{label}-{replicas}"));
        let serves: Vec<Serve> = if label == "sqlite" {
            let dir = run.join("r0");
            std::fs::create_dir_all(&dir).unwrap();
            vec![Serve::start(&crate::support::serve::write_config(
                &dir,
                extra,
                &[("local", &reg)],
            ))]
        } else {
            let db = format!("bench{replicas}");
            pg.create_database(&db);
            (0..replicas)
                .map(|i| {
                    let dir = run.join(format!("r{i}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    let pw = dir.join("db-password");
                    pg.write_password(&pw);
                    let dbl = format!(
                        "database = \"{}\"\ndatabase_password_file = \"{}\"\nreplica_id = \"b{i}\"",
                        pg.url(&db),
                        pw.display()
                    );
                    Serve::start(&write_config_with(&dir, &dbl, extra, &[("local", &reg)]))
                })
                .collect()
        };
        let cpu0: Vec<f64> = serves.iter().map(Serve::cpu_secs).collect();
        let pg0 = postgres_cpu_secs();
        let events: Vec<Value> = digests
            .iter()
            .enumerate()
            .map(|(i, d)| push_event(&registry.host(), "lab/bench", &format!("v{i}"), d))
            .collect();
        let start = Instant::now();
        let r = serves[0].notify("/v1/events/local", &events);
        assert_eq!(r.status, 202, "{}", r.text());
        serves[0].wait_done(&digests, Duration::from_secs(900));
        let secs = start.elapsed().as_secs_f64();
        let cpu: f64 = serves
            .iter()
            .zip(&cpu0)
            .map(|(s, c)| s.cpu_secs() - c)
            .sum();
        let per: Vec<String> = serves
            .iter()
            .map(|s| format!("{}", s.metric("imgscan_scans_total{result=\"fail\"}")))
            .collect();
        let pg_cpu = postgres_cpu_secs() - pg0;
        println!(
            "{label:<8} replicas {replicas}: {N} scans in {secs:.1} s = {:.0} scans/min; serve CPU \
             {cpu:.2} s ({:.1} ms per scan), PostgreSQL CPU {pg_cpu:.2} s ({:.1} ms per scan); \
             scans per replica {}",
            N as f64 * 60.0 / secs,
            cpu * 1000.0 / N as f64,
            pg_cpu * 1000.0 / N as f64,
            per.join("/")
        );
    }
}
