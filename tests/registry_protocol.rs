//! Registry pulls against the in-process fake registry
//! ([`crate::support::fake_registry`]): the protocol (scheme fallback,
//! Bearer token flow, `Range` resumption, retries) and the failures that
//! must be exit 2 with no report (digest mismatches, 404s, truncated and
//! refused blobs). The same pulls against a real `docker-registry`, with
//! TLS, htpasswd and skopeo-pushed images, are in `registry.rs` (e2e tier).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::env::{CleanEnv, Run, output};
use crate::support::fake_registry::{FakeRegistry, Image, Request, Response, basic, bearer};
use crate::support::ports::free_port;
use crate::util::{Comp, LayerBuilder, base_layer, compress, write_oci_layout};

const REPO: &str = "lab/app";

/// A two-layer gzip image (a setuid-root `su` in layer 1) written as an OCI
/// layout in `dir`; `(served image, oci:DIR:test)`.
fn image(dir: &std::path::Path) -> (Image, String) {
    let layers = [
        base_layer().build(),
        LayerBuilder::new()
            .dir("usr/", 0o755)
            .dir("usr/bin/", 0o755)
            .file("usr/bin/su", 0o4755, b"\x7fELF")
            .build(),
    ];
    write_oci_layout(dir, &layers, Comp::Gzip, json!({"User": "app"}));
    (
        Image::from_layout(dir, REPO, "v1"),
        format!("oci:{}:test", dir.display()),
    )
}

/// A scan with no layer cache: these tests are about what crosses the wire,
/// and a layer cached by an earlier scan of the same test would not be
/// downloaded (the cache has its own tests, layer_cache.rs).
fn scan(env: &CleanEnv, args: &[&str]) -> Run {
    output(
        env.imgscan()
            .args(["--format", "json", "--fail-on", "none", "--retries", "1"])
            .arg("--no-cache")
            .args(args),
        None,
    )
}

fn expect_error(r: &Run, needles: &[&str]) {
    eprintln!("exit {}: {}", r.code, r.stderr.trim());
    assert_eq!(r.code, 2, "expected exit 2; stderr: {}", r.stderr);
    assert!(r.stdout.is_empty(), "an error must print no report");
    for n in needles {
        assert!(r.stderr.contains(n), "stderr lacks {n:?}: {}", r.stderr);
    }
}

/// Whether `req` fetches one of the image's layer blobs.
fn is_layer(img: &Image, req: &Request) -> bool {
    img.layers()
        .iter()
        .any(|l| req.path.ends_with(&format!("/blobs/{l}")))
}

/// A tag pull and a digest pull (HTTPS refused, so plain HTTP on loopback)
/// report exactly the findings of the same image read from its OCI layout.
#[test]
fn pulls_match_the_local_scan() {
    let env = CleanEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let (img, layout) = image(dir.path());
    let local = scan(&env, &[&layout]).json();
    assert!(
        local["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule_id"] == "setuid-binary"),
        "the fixture has a setuid file: {local}"
    );
    let digest = img.digest.clone();
    let reg = FakeRegistry::start(move |r| img.answer(r));
    for reference in [
        format!("{}/{REPO}:v1", reg.host()),
        format!("docker://{}/{REPO}@{digest}", reg.host()),
    ] {
        let r = scan(&env, &[&reference]).json();
        assert_eq!(r["findings"], local["findings"], "{reference}");
        assert_eq!(
            r["image"]["manifest_digest"],
            digest.as_str(),
            "{reference}"
        );
    }
}

/// A registry that answers 401 with a Bearer challenge: imgscan fetches a
/// token from the realm for the repository's pull scope and sends it.
#[test]
fn bearer_token_flow() {
    let env = CleanEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let (img, layout) = image(dir.path());
    let local = scan(&env, &[&layout]).json();
    let served = img.clone();
    let reg = FakeRegistry::start(bearer("t0ken", REPO, move |r| served.answer(r)));
    let r = scan(&env, &[&format!("{}/{REPO}:v1", reg.host())]).json();
    assert_eq!(r["findings"], local["findings"]);
    let reqs = reg.requests();
    let token = reqs
        .iter()
        .find(|r| r.path == "/token")
        .expect("a token request");
    assert!(
        token.query.contains("service=fake-registry"),
        "{}",
        token.query
    );
    for path in [
        format!("/v2/{REPO}/manifests/v1"),
        format!("/v2/{REPO}/blobs/{}", img.layers()[1]),
    ] {
        let authed = reqs
            .iter()
            .filter(|r| r.path == path)
            .all(|r| r.header("authorization") == Some("Bearer t0ken"));
        assert!(authed, "{path} sent without the token: {reqs:#?}");
    }
}

/// A registry behind Basic auth: `--username` with `--password-stdin`
/// pulls; a wrong password, or none, is exit 2 before anything is pulled.
#[test]
fn basic_auth_credentials() {
    let env = CleanEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let (img, layout) = image(dir.path());
    let local = scan(&env, &[&layout]).json();
    let reg = FakeRegistry::start(basic("tester", "s3cret", move |r| img.answer(r)));
    let image = format!("{}/{REPO}:v1", reg.host());
    let with_password = |password: &str| {
        output(
            env.imgscan()
                .args(["--format", "json", "--fail-on", "none", "--retries", "1"])
                .args(["--username", "tester", "--password-stdin", &image]),
            Some(password),
        )
    };
    assert_eq!(
        with_password("s3cret\n").json()["findings"],
        local["findings"]
    );
    let pulled = |reg: &FakeRegistry| {
        reg.requests()
            .iter()
            .filter(|r| r.path.contains("/blobs/"))
            .count()
    };
    let before = pulled(&reg);
    expect_error(
        &with_password("wrong\n"),
        &["401", "the username or password is wrong"],
    );
    expect_error(&scan(&env, &[&image]), &["401", "credentials tried: none"]);
    assert_eq!(
        pulled(&reg),
        before,
        "no blob is fetched without credentials"
    );
}

/// A manifest whose bytes are not what its digest says is exit 2, whether
/// the digest comes from the `Docker-Content-Digest` header (a tag pull) or
/// from the reference (a digest pull, no header).
#[test]
fn manifest_digest_mismatch() {
    let env = CleanEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = image(dir.path());
    let digest = img.digest.clone();
    let reg = FakeRegistry::start(move |r| {
        let mut tampered = img.manifest.clone();
        tampered.push(b'\n');
        match r.path.contains("/manifests/") {
            true if r.path.ends_with("/v1") => img.answer(r).with_body(tampered),
            true => Response::status(200).body(&img.media_type, tampered),
            false => img.answer(r),
        }
    });
    let r = scan(&env, &[&format!("{}/{REPO}:v1", reg.host())]);
    expect_error(&r, &["digest mismatch for the tag v1 of lab/app", &digest]);
    let r = scan(&env, &[&format!("{}/{REPO}@{digest}", reg.host())]);
    expect_error(&r, &["digest mismatch for the manifest", &digest]);
}

/// A layer blob that is valid gzip but not the blob its digest names is a
/// digest mismatch (exit 2, no report), never findings; so is a config blob.
#[test]
fn blob_digest_mismatch() {
    let env = CleanEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = image(dir.path());
    let layer = img.layers()[1].clone();
    let other = compress(
        &LayerBuilder::new().file("x", 0o644, b"other").build(),
        Comp::Gzip,
    );
    let served = img.clone();
    let reg = FakeRegistry::start(move |r| {
        let a = served.answer(r);
        if is_layer(&served, r) && r.path.ends_with(&layer) {
            a.with_body(other.clone())
        } else {
            a
        }
    });
    let r = scan(&env, &[&format!("{}/{REPO}:v1", reg.host())]);
    expect_error(&r, &["digest mismatch", &img.layers()[1]]);

    let doc: Value = serde_json::from_slice(&img.manifest).unwrap();
    let config = doc["config"]["digest"].as_str().unwrap().to_owned();
    let served = img.clone();
    let cfg = config.clone();
    let reg = FakeRegistry::start(move |r| {
        let a = served.answer(r);
        if r.path.ends_with(&cfg) {
            let mut c: Value = serde_json::from_slice(a.body_bytes()).unwrap();
            c["config"]["User"] = json!("root");
            a.with_body(serde_json::to_vec(&c).unwrap())
        } else {
            a
        }
    });
    let r = scan(&env, &[&format!("{}/{REPO}:v1", reg.host())]);
    expect_error(&r, &["digest mismatch for config", &config]);
}

/// A repository, tag or digest the registry lacks is exit 2 with a 404 that
/// says which.
#[test]
fn missing_repository_tag_and_digest() {
    let env = CleanEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = image(dir.path());
    let reg = FakeRegistry::start(move |r| img.answer(r));
    let r = scan(&env, &[&format!("docker://{}/lab/nope:v1", reg.host())]);
    expect_error(&r, &["repository lab/nope", "404"]);
    let r = scan(&env, &[&format!("docker://{}/{REPO}:nope", reg.host())]);
    expect_error(&r, &[&format!("tag nope of {REPO} (its tags: v1)"), "404"]);
    let missing = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let r = scan(
        &env,
        &[&format!("docker://{}/{REPO}@{missing}", reg.host())],
    );
    expect_error(&r, &["404"]);
}

/// A blob whose connection drops half-way resumes with a `Range` request
/// and the scan matches the local one; a blob that is cut short on every
/// try is exit 2 once the retries are spent.
#[test]
fn truncated_blobs() {
    let env = CleanEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let (img, layout) = image(dir.path());
    let local = scan(&env, &[&layout]).json();

    let cuts = Arc::new(AtomicUsize::new(0));
    let (served, n) = (img.clone(), Arc::clone(&cuts));
    let reg = FakeRegistry::start(move |r| {
        let a = served.answer(r);
        if is_layer(&served, r)
            && r.header("range").is_none()
            && n.fetch_add(1, Ordering::SeqCst) == 0
        {
            let half = a.body_bytes().len() / 2;
            a.cut_at(half)
        } else {
            a
        }
    });
    let r = scan(&env, &[&format!("{}/{REPO}:v1", reg.host())]).json();
    assert_eq!(r["findings"], local["findings"]);
    assert!(
        reg.requests().iter().any(|r| r.header("range").is_some()),
        "no Range request after the cut: {:#?}",
        reg.requests()
    );

    let served = img.clone();
    let reg = FakeRegistry::start(move |r| {
        let a = served.answer(r);
        if is_layer(&served, r) {
            let half = a.body_bytes().len() / 2;
            a.cut_at(half)
        } else {
            a
        }
    });
    let r = scan(&env, &[&format!("{}/{REPO}:v1", reg.host())]);
    expect_error(&r, &["blob", "failed after 2 attempts"]);
}

/// 503 answers to the manifest and a blob are retried, then succeed; a
/// blob that is always 503 is given up on after the retries.
#[test]
fn unavailable_is_retried_then_given_up() {
    let env = CleanEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let (img, layout) = image(dir.path());
    let local = scan(&env, &[&layout]).json();
    let unavailable = || Response::status(503).header("Retry-After", "1");

    // The first request of each manifest and layer path is refused.
    let (served, failed) = (img.clone(), Mutex::new(BTreeSet::new()));
    let reg = FakeRegistry::start(move |r| {
        let fault = r.path.contains("/manifests/") || is_layer(&served, r);
        if fault && failed.lock().unwrap().insert(r.path.clone()) {
            unavailable()
        } else {
            served.answer(r)
        }
    });
    let r = scan(&env, &[&format!("{}/{REPO}:v1", reg.host())]).json();
    assert_eq!(r["findings"], local["findings"]);
    assert!(
        reg.requests()
            .iter()
            .filter(|r| r.path.contains("/manifests/"))
            .count()
            >= 2,
        "the manifest was not retried"
    );

    let served = img.clone();
    let layer = img.layers()[1].clone();
    let reg = FakeRegistry::start(move |r| {
        if r.path.ends_with(&layer) {
            unavailable()
        } else {
            served.answer(r)
        }
    });
    let r = scan(&env, &[&format!("docker://{}/{REPO}:v1", reg.host())]);
    expect_error(&r, &["503", "after 2 attempts", &img.layers()[1]]);
}

/// A registry that cannot be reached is exit 2 with the address tried.
#[test]
fn unreachable_registry() {
    let env = CleanEnv::new();
    let port = free_port();
    let r = scan(&env, &[&format!("docker://127.0.0.1:{port}/lab/sample:v1")]);
    expect_error(&r, &["cannot reach registry", &format!("127.0.0.1:{port}")]);
}
