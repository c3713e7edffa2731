//! `imgscan serve`'s HTTP API without a registry: authentication, size
//! limits, malformed envelopes and the registry allowlist. Only the built
//! binary runs; the end-to-end serve tests are in `serve.rs` (e2e tier).

use serde_json::json;

use crate::support::SAMPLE_DIGEST;
use crate::support::http::request;
use crate::support::serve::{EVENTS_V2, Serve, TOKEN, blob_event, push_event, write_config};

/// Every endpoint but /healthz refuses a missing or wrong token; bodies are
/// size-limited; malformed envelopes get 400 until they would block the
/// registry's queue, then are acknowledged and dropped.
#[test]
fn serve_refuses_unauthorised_and_malformed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "max_body_bytes = 4096\nreject_limit = 2",
        &[("local", "http://127.0.0.1:1")],
    );
    let serve = Serve::start(&config);
    let a = serve.addr.as_str();
    let d = SAMPLE_DIGEST;
    let endpoints = [
        ("POST", "/v1/events".to_owned()),
        ("POST", "/v1/events/local".to_owned()),
        ("GET", "/api/v1/metadata".to_owned()),
        ("POST", "/api/v1/scan".to_owned()),
        ("GET", "/api/v1/scan/x/report".to_owned()),
        ("GET", format!("/v1/reports/{d}")),
        ("GET", "/v1/scans".to_owned()),
        ("GET", format!("/v1/scans/{d}")),
        ("GET", "/metrics".to_owned()),
    ];
    let wrong = format!("Bearer {}", TOKEN.replace('0', "1"));
    for (method, path) in &endpoints {
        for headers in [
            vec![],
            vec![("Authorization", wrong.as_str())],
            vec![("Authorization", "Basic Zm9vOmJhcg==")],
            vec![("X-ScannerAdapter-API-Key", "nope")],
        ] {
            let r = request(a, method, path, &headers, b"{}").unwrap();
            assert_eq!(
                r.status,
                401,
                "{method} {path} with {headers:?}: {}",
                r.text()
            );
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer realm=\"imgscan\"")
            );
        }
    }
    let h = request(a, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!((h.status, h.json()["status"].as_str()), (200, Some("ok")));
    // Harbor may present the token as an API key.
    let m = request(
        a,
        "GET",
        "/api/v1/metadata",
        &[("X-ScannerAdapter-API-Key", TOKEN)],
        b"",
    )
    .unwrap();
    assert_eq!(m.status, 200);
    assert!(
        !serve.logs().contains(TOKEN),
        "the token must never be logged"
    );

    // Too large.
    let big = vec![b' '; 8192];
    let r = serve.call("POST", "/v1/events", &[("Content-Type", EVENTS_V2)], &big);
    assert_eq!(r.status, 413);
    // Malformed: 400 twice (reject_limit = 2), then acknowledged and dropped.
    for want in [400, 400, 200, 400] {
        let r = serve.call(
            "POST",
            "/v1/events",
            &[("Content-Type", EVENTS_V2)],
            b"{\"events\": 7}",
        );
        assert_eq!(r.status, want, "{}", r.text());
    }
    let r = serve.call(
        "POST",
        "/v1/events",
        &[("Content-Type", "text/plain")],
        b"{}",
    );
    assert_eq!(r.status, 415);
    // A push event whose digest is not a digest.
    let mut bad = push_event("127.0.0.1:1", "lab/x", "v1", d);
    bad["target"]["digest"] = json!("sha256:../../../etc/passwd");
    let r = serve.notify("/v1/events", &[bad]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        serve.metric("imgscan_http_refusals_total{reason=\"poison_dropped\"}"),
        1.0
    );
    assert_eq!(
        serve.metric("imgscan_http_refusals_total{reason=\"too_large\"}"),
        1.0
    );
    assert!(serve.metric("imgscan_http_refusals_total{reason=\"unauthorized\"}") >= 36.0);
    assert_eq!(serve.get("/v1/scans").json()["scans"], json!([]));
}

/// An event naming a registry that is not on the allowlist is refused (403)
/// and nothing is pulled; a named endpoint for an unknown registry is 404;
/// the event's URL never decides where imgscan pulls from.
#[test]
fn serve_refuses_registries_off_the_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", &[("local", "http://127.0.0.1:1")]);
    let serve = Serve::start(&config);
    let d = SAMPLE_DIGEST;
    let r = serve.notify(
        "/v1/events",
        &[push_event("evil.example:5000", "lab/x", "v1", d)],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.json()["error"]["message"],
        "registry evil.example:5000 is not on the allowlist"
    );
    assert_eq!(serve.get(&format!("/v1/scans/{d}")).status, 404);
    let r = serve.notify(
        "/v1/events/nosuch",
        &[push_event("127.0.0.1:1", "lab/x", "v1", d)],
    );
    assert_eq!(r.status, 404, "{}", r.text());
    // Mixed envelope: the allowlisted event is kept, the other reported.
    let other = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let r = serve.notify(
        "/v1/events",
        &[
            push_event("evil.example:5000", "lab/x", "v1", other),
            push_event("127.0.0.1:1", "lab/x", "v1", d),
            blob_event("127.0.0.1:1", "lab/x"),
        ],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let body = r.json();
    assert_eq!(
        (body["queued"].as_u64(), body["off_allowlist"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(body["ignored"], 1);
    assert_eq!(serve.get(&format!("/v1/scans/{other}")).status, 404);
    assert_eq!(serve.scan(d).unwrap()["registry"], "local");
    // distribution 3 sends one event per envelope, as …events.v2+json.
    let third = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    let body = json!({"events": [push_event("127.0.0.1:1", "lab/y", "v3", third)]});
    let r = serve.call(
        "POST",
        "/v1/events",
        &[("Content-Type", EVENTS_V2)],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(serve.scan(third).unwrap()["repository"], "lab/y");
    // Harbor: a registry URL off the allowlist is refused too.
    let req = json!({"registry": {"url": "https://evil.example"},
                     "artifact": {"repository": "lab/x", "digest": other}});
    let r = serve.call("POST", "/api/v1/scan", &[], req.to_string().as_bytes());
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowlist")
    );
}

/// A PostgreSQL database is chosen by URL: a password in the `--database`
/// flag is refused before anything starts, a database that cannot be reached
/// fails the start naming it without its password (from the environment or
/// a password file), and neither message ever shows a password.
#[test]
fn serve_postgres_urls_keep_passwords_out_of_flags_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_imgscan"));
        cmd.arg("serve")
            .arg("--token-file")
            .arg(&token)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("IMGSCAN_SERVE_DATABASE")
            .env_remove("IMGSCAN_SERVE_DATABASE_PASSWORD_FILE")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run imgscan serve");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Port 1 on loopback: nothing listens there.
    let (code, err) = run(
        &[
            "--database",
            "postgres://imgscan:hunter2-secret@127.0.0.1:1/jobs",
        ],
        &[],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("process listings"), "{err}");
    assert!(!err.contains("hunter2-secret"), "{err}");
    // From the environment the URL may hold it; the start fails (nothing
    // listens), naming the database without it.
    let (code, err) = run(
        &[],
        &[(
            "IMGSCAN_SERVE_DATABASE",
            "postgres://imgscan:hunter2-secret@127.0.0.1:1/jobs",
        )],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("postgres://imgscan@127.0.0.1:1/jobs"), "{err}");
    assert!(!err.contains("hunter2-secret"), "{err}");
    // A password file goes with a URL in the flag.
    let pw = dir.path().join("db-password");
    std::fs::write(&pw, "hunter2-secret\n").unwrap();
    let (code, err) = run(
        &["--database", "postgres://imgscan@127.0.0.1:1/jobs"],
        &[("IMGSCAN_SERVE_DATABASE_PASSWORD_FILE", pw.to_str().unwrap())],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("postgres://imgscan@127.0.0.1:1/jobs"), "{err}");
    assert!(!err.contains("hunter2-secret"), "{err}");
    // With a SQLite path, a database password is a mistake, said at once.
    let (code, err) = run(
        &["--database", dir.path().join("serve.db").to_str().unwrap()],
        &[("IMGSCAN_SERVE_DATABASE_PASSWORD_FILE", pw.to_str().unwrap())],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("SQLite file"), "{err}");
}
