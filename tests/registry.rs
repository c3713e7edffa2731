//! Registry pulls and the local engine against the real thing on 127.0.0.1:
//! CNCF distribution (`docker-registry`), skopeo-pushed fixtures, a
//! fault-injecting proxy, and podman's Docker-compatible API.
//!
//! See: issue 3 (registry pulls + local engine).

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::env::{CleanEnv, Run, output};
use crate::support::podman::Podman;
use crate::support::proxy::{Fault, Proxy};
use crate::support::registry::{Registry, RegistryConfig};
use crate::support::tools::{require_tool, run};
use crate::support::{SAMPLE_DIGEST as SAMPLE_MANIFEST, SAMPLE_LAYER1};

fn sample_layout() -> String {
    format!(
        "oci:{}/testdata/sample/oci:sample",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A scan with no layer cache: these tests are about pulls, and a layer
/// cached by an earlier scan of the same test would not be downloaded.
fn scan(env: &CleanEnv, args: &[&str]) -> Run {
    cached_scan(env, &[&["--no-cache"][..], args].concat())
}

/// A scan with the default layer cache (`$HOME/.cache/imgscan`).
fn cached_scan(env: &CleanEnv, args: &[&str]) -> Run {
    output(
        env.imgscan()
            .args(["--format", "json", "--fail-on", "none"])
            .args(args),
        None,
    )
}

/// The findings of the sample scanned from its OCI layout on disk.
fn local_findings(env: &CleanEnv) -> Value {
    let dir = format!("{}/testdata/sample/oci", env!("CARGO_MANIFEST_DIR"));
    scan(env, &[&dir]).json()["findings"].clone()
}

/// Findings without layer digests (which change when layers are recompressed).
fn without_layer_digests(findings: &Value) -> Value {
    let mut f = findings.clone();
    for x in f.as_array_mut().unwrap() {
        x.as_object_mut().unwrap().remove("layer_digest");
    }
    f
}

fn expect_error(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, 2, "expected exit 2; stderr: {}", r.stderr);
    assert!(r.stdout.is_empty(), "an error must print no report");
    for n in needles {
        assert!(r.stderr.contains(n), "stderr lacks {n:?}: {}", r.stderr);
    }
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

/// Writes `bytes` as a blob of an OCI layout and returns its descriptor.
fn put_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let d = sha256(bytes);
    let p = layout.join("blobs/sha256").join(&d[7..]);
    std::fs::write(p, bytes).unwrap();
    json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
}

/// An OCI layout whose tag `multi` is an index of the sample for
/// linux/amd64, linux/arm64 and linux/arm/v7 (same layers, configs that say
/// so) plus a BuildKit-style attestation manifest. Returns (layout, index digest).
fn multi_arch_layout(dir: &Path) -> (String, String) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample/oci");
    let layout = dir.join("multi");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    for e in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), layout.join("blobs/sha256").join(e.file_name())).unwrap();
    }
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let blob = |d: &str| std::fs::read(src.join("blobs/sha256").join(&d[7..])).unwrap();
    let manifest: Value = serde_json::from_slice(&blob(SAMPLE_MANIFEST)).unwrap();
    let config: Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let mut entries = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", None), ("arm", Some("v7"))] {
        let mut c = config.clone();
        c["architecture"] = json!(arch);
        if let Some(v) = variant {
            c["variant"] = json!(v);
        }
        let cdesc = put_blob(
            &layout,
            "application/vnd.oci.image.config.v1+json",
            &serde_json::to_vec(&c).unwrap(),
        );
        let mut m = manifest.clone();
        m["config"] = cdesc;
        let mut entry = put_blob(
            &layout,
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&m).unwrap(),
        );
        let mut platform = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        entry["platform"] = platform;
        entries.push(entry);
    }
    // An attestation manifest, as BuildKit attaches them.
    let statement = put_blob(
        &layout,
        "application/vnd.in-toto+json",
        br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#,
    );
    let empty = put_blob(&layout, "application/vnd.oci.image.config.v1+json", b"{}");
    let att = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": empty, "layers": [statement]});
    let mut att_entry = put_blob(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&att).unwrap(),
    );
    att_entry["platform"] = json!({"os": "unknown", "architecture": "unknown"});
    att_entry["annotations"] = json!({
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": entries[0]["digest"],
    });
    entries.push(att_entry);
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries});
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let mut top = put_blob(
        &layout,
        "application/vnd.oci.image.index.v1+json",
        &index_bytes,
    );
    top["annotations"] = json!({"org.opencontainers.image.ref.name": "multi"});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [top]})).unwrap(),
    )
    .unwrap();
    (
        format!("oci:{}:multi", layout.display()),
        sha256(&index_bytes),
    )
}

/// A tag pull and a digest pull report exactly the findings of the same
/// image scanned from its OCI layout on disk, and record where it came from.
#[test]
fn tag_and_digest_pulls_match_the_local_scan() {
    let env = CleanEnv::new();
    let reg = Registry::start();
    reg.push(&sample_layout(), "lab/sample:v1", &[]);
    let local = local_findings(&env);

    let by_tag = scan(&env, &[&format!("{}/lab/sample:v1", reg.host())]).json();
    assert_eq!(by_tag["findings"], local);
    let image = &by_tag["image"];
    assert_eq!(image["format"], "registry");
    assert_eq!(image["reference"], format!("{}/lab/sample:v1", reg.host()));
    assert_eq!(image["manifest_digest"], SAMPLE_MANIFEST);
    assert_eq!(image["index_digest"], Value::Null);
    assert_eq!(image["platform"], "linux/amd64");
    assert_eq!(image["layers"].as_array().unwrap().len(), 4);

    let by_digest = scan(
        &env,
        &[&format!(
            "docker://{}/lab/sample@{SAMPLE_MANIFEST}",
            reg.host()
        )],
    )
    .json();
    assert_eq!(by_digest["findings"], local);
    assert_eq!(by_digest["image"]["manifest_digest"], SAMPLE_MANIFEST);
}

/// zstd-compressed layers are pulled, sniffed and scanned like gzip ones.
#[test]
fn zstd_layers() {
    let env = CleanEnv::new();
    let reg = Registry::start();
    reg.push(
        &sample_layout(),
        "lab/sample:zstd",
        &["--dest-compress", "--dest-compress-format", "zstd"],
    );
    let r = scan(&env, &[&format!("{}/lab/sample:zstd", reg.host())]).json();
    for l in r["image"]["layers"].as_array().unwrap() {
        assert_eq!(l["compression"], "zstd");
        assert_eq!(
            l["media_type"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }
    assert_eq!(
        without_layer_digests(&r["findings"]),
        without_layer_digests(&local_findings(&env))
    );
}

/// An index is resolved by platform (variants honoured, attestations
/// skipped); a platform it lacks is exit 2 with the platforms it offers.
#[test]
fn platform_selection_from_an_index() {
    let env = CleanEnv::new();
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (layout, index_digest) = multi_arch_layout(tmp.path());
    reg.push(&layout, "lab/multi:v1", &["--all"]);
    let image = format!("{}/lab/multi:v1", reg.host());
    let local = local_findings(&env);

    for (platform, want) in [
        ("linux/amd64", "linux/amd64"),
        ("linux/arm64", "linux/arm64"),
        ("linux/arm/v7", "linux/arm/v7"),
        ("linux/arm", "linux/arm/v7"),
    ] {
        let r = scan(&env, &["--platform", platform, &image]).json();
        assert_eq!(r["image"]["platform"], want, "--platform {platform}");
        assert_eq!(r["image"]["index_digest"], index_digest.as_str());
        assert_eq!(r["findings"], local, "--platform {platform}");
    }

    let r = scan(&env, &["--platform", "linux/s390x", &image]);
    expect_error(
        &r,
        &[
            "no image for platform linux/s390x",
            "linux/amd64, linux/arm/v7, linux/arm64",
        ],
    );
    assert!(!r.stderr.contains("unknown/unknown"), "{}", r.stderr);
}

/// Basic auth (htpasswd) over TLS with a private CA: --ca-cert and
/// --username/--password-stdin work; wrong or missing credentials and an
/// untrusted certificate are exit 2 with messages that say so.
#[test]
fn basic_auth_over_tls_with_a_private_ca() {
    let env = CleanEnv::new();
    let reg = Registry::start_with(RegistryConfig {
        tls: true,
        user: Some(("tester", "s3cret-pass")),
        ..RegistryConfig::default()
    });
    reg.push(&sample_layout(), "lab/private:v1", &[]);
    let image = format!("{}/lab/private:v1", reg.host());
    let ca = reg.tls.as_ref().unwrap().ca.display().to_string();
    let local = local_findings(&env);

    let ok = output(
        env.imgscan().args([
            "-f",
            "json",
            "--fail-on",
            "none",
            "--ca-cert",
            &ca,
            "--username",
            "tester",
            "--password-stdin",
            &image,
        ]),
        Some("s3cret-pass\n"),
    );
    assert_eq!(ok.json()["findings"], local);

    let ok = output(
        env.imgscan()
            .env("IMGSCAN_USERNAME", "tester")
            .env("IMGSCAN_PASSWORD", "s3cret-pass")
            .args(["-f", "json", "--fail-on", "none", "--ca-cert", &ca, &image]),
        None,
    );
    assert_eq!(ok.json()["findings"], local);

    let wrong = output(
        env.imgscan().args([
            "--ca-cert",
            &ca,
            "--username",
            "tester",
            "--password-stdin",
            &format!("docker://{image}"),
        ]),
        Some("wrong-pass\n"),
    );
    expect_error(
        &wrong,
        &["401", "user `tester` from --username and --password-stdin"],
    );
    assert!(!wrong.stderr.contains("wrong-pass"), "a secret leaked");

    let anonymous = scan(&env, &["--ca-cert", &ca, &format!("docker://{image}")]);
    expect_error(&anonymous, &["401", "none (anonymous", "--password-stdin"]);

    let untrusted = output(
        env.imgscan().args([
            "--username",
            "tester",
            "--password-stdin",
            &format!("docker://{image}"),
        ]),
        Some("s3cret-pass\n"),
    );
    expect_error(&untrusted, &["TLS", "--ca-cert"]);
    assert!(!untrusted.stderr.contains("s3cret"), "a secret leaked");

    // --insecure-registry skips verification for that host only.
    let insecure = output(
        env.imgscan().args([
            "-f",
            "json",
            "--fail-on",
            "none",
            "--insecure-registry",
            &reg.host(),
            "--username",
            "tester",
            "--password-stdin",
            &image,
        ]),
        Some("s3cret-pass\n"),
    );
    assert_eq!(insecure.json()["findings"], local);
}

/// Credentials come from a DOCKER_CONFIG config.json (`auths`) and from a
/// `credHelpers` helper script; a 401 names the helper that was tried.
#[test]
fn credentials_from_docker_config_and_a_helper() {
    use base64::Engine as _;
    let env = CleanEnv::new();
    let reg = Registry::start_with(RegistryConfig {
        tls: true,
        user: Some(("tester", "s3cret-pass")),
        ..RegistryConfig::default()
    });
    reg.push(&sample_layout(), "lab/private:v1", &[]);
    let image = format!("docker://{}/lab/private:v1", reg.host());
    let ca = reg.tls.as_ref().unwrap().ca.display().to_string();
    let config = env.docker_config().join("config.json");

    let auth = base64::engine::general_purpose::STANDARD.encode("tester:s3cret-pass");
    std::fs::write(
        &config,
        json!({"auths": {reg.host(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let r = scan(&env, &["--ca-cert", &ca, &image]).json();
    assert_eq!(r["image"]["manifest_digest"], SAMPLE_MANIFEST);

    // A helper on PATH, as `docker-credential-NAME get` is run.
    let bin = env.home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-imgscantest");
    let write_helper = |secret: &str| {
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 1\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"tester\",\"Secret\":\"{secret}\"}}' \"$server\"\n"
            ),
        )
        .unwrap();
        run(Command::new("chmod").arg("755").arg(&helper));
    };
    write_helper("s3cret-pass");
    std::fs::write(
        &config,
        json!({"credHelpers": {reg.host(): "imgscantest"}}).to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let r = output(
        env.imgscan().env("PATH", &path).args([
            "-f",
            "json",
            "--fail-on",
            "none",
            "--ca-cert",
            &ca,
            &image,
        ]),
        None,
    );
    assert_eq!(r.json()["image"]["manifest_digest"], SAMPLE_MANIFEST);

    write_helper("stale-pass");
    let r = output(
        env.imgscan()
            .env("PATH", &path)
            .args(["--ca-cert", &ca, &image]),
        None,
    );
    expect_error(
        &r,
        &["401", "credential helper docker-credential-imgscantest"],
    );
    assert!(!r.stderr.contains("stale-pass"), "a secret leaked");
}

/// A repository or tag the registry lacks is exit 2 with a 404 that says which.
#[test]
fn missing_repository_and_tag() {
    let env = CleanEnv::new();
    let reg = Registry::start();
    reg.push(&sample_layout(), "lab/sample:v1", &[]);
    let r = scan(&env, &[&format!("docker://{}/lab/nope:v1", reg.host())]);
    expect_error(&r, &["repository lab/nope", "404"]);
    let r = scan(&env, &[&format!("docker://{}/lab/sample:nope", reg.host())]);
    expect_error(&r, &["tag nope of lab/sample (its tags: v1)", "404"]);
    let missing = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let r = scan(
        &env,
        &[&format!("docker://{}/lab/sample@{missing}", reg.host())],
    );
    expect_error(&r, &["404"]);
    // A bare name falls back to the local engine, and says so when that fails too.
    let r = scan(&env, &[&format!("{}/lab/nope:v1", reg.host())]);
    expect_error(&r, &["repository lab/nope", "local engine"]);
}

/// A byte flipped in a blob in the registry's storage is a digest mismatch
/// (exit 2, no report), never findings.
#[test]
fn corrupted_blob_is_a_digest_mismatch() {
    let env = CleanEnv::new();
    let reg = Registry::start();
    reg.push(&sample_layout(), "lab/sample:v1", &[]);
    let f = reg.blob_file(SAMPLE_LAYER1);
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[200_000] ^= 0x55;
    std::fs::write(&f, bytes).unwrap();
    let r = scan(&env, &[&format!("{}/lab/sample:v1", reg.host())]);
    expect_error(&r, &["digest mismatch", SAMPLE_LAYER1]);
}

/// A connection dropped in the middle of a blob resumes (Range) and the
/// scan still matches the local one.
#[test]
fn dropped_connection_mid_blob_is_resumed() {
    let env = CleanEnv::new();
    let reg = Registry::start();
    reg.push(&sample_layout(), "lab/sample:v1", &[]);
    let proxy = Proxy::start(
        reg.port,
        vec![Fault::Drop {
            path: SAMPLE_LAYER1,
            after: 1_000_000,
            times: 2,
        }],
    );
    let r = scan(&env, &[&format!("{}/lab/sample:v1", proxy.host())]).json();
    assert_eq!(proxy.injected.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(r["findings"], local_findings(&env));
}

/// 503 answers to the manifest and a blob are retried, then succeed.
#[test]
fn unavailable_once_is_retried() {
    let env = CleanEnv::new();
    let reg = Registry::start();
    reg.push(&sample_layout(), "lab/sample:v1", &[]);
    let proxy = Proxy::start(
        reg.port,
        vec![
            Fault::Unavailable {
                path: "/v2/lab/sample/manifests/",
                times: 1,
            },
            Fault::Unavailable {
                path: SAMPLE_LAYER1,
                times: 1,
            },
        ],
    );
    let r = scan(&env, &[&format!("{}/lab/sample:v1", proxy.host())]).json();
    assert_eq!(proxy.injected.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(r["findings"], local_findings(&env));
}

/// A registry that keeps answering 503 is given up on after the retries.
#[test]
fn unavailable_forever_gives_up() {
    let env = CleanEnv::new();
    let reg = Registry::start();
    reg.push(&sample_layout(), "lab/sample:v1", &[]);
    let proxy = Proxy::start(
        reg.port,
        vec![Fault::Unavailable {
            path: SAMPLE_LAYER1,
            times: 1000,
        }],
    );
    let r = scan(
        &env,
        &[
            "--retries",
            "1",
            &format!("docker://{}/lab/sample:v1", proxy.host()),
        ],
    );
    expect_error(&r, &["503", "after 2 attempts", SAMPLE_LAYER1]);
}

/// Several images in one run give one report each; a shared layer is pulled once.
#[test]
fn several_images_in_one_run() {
    let env = CleanEnv::new();
    let reg = Registry::start();
    reg.push(&sample_layout(), "lab/sample:v1", &[]);
    reg.push(&sample_layout(), "lab/copy:v1", &[]);
    let proxy = Proxy::start(reg.port, Vec::new());
    let r = scan(
        &env,
        &[
            &format!("{}/lab/sample:v1", proxy.host()),
            &format!("{}/lab/copy:v1", proxy.host()),
        ],
    )
    .json();
    let reports = r["reports"].as_array().expect("a multi-image report");
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["findings"], reports[1]["findings"]);
    let pulls = proxy
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.contains(SAMPLE_LAYER1))
        .count();
    assert_eq!(pulls, 1, "the shared layer is pulled once");
}

/// The persistent layer cache against a real registry (issue #12): after
/// one scan, the layer blobs are deleted from the registry's storage and a
/// second scan still succeeds with the same report, so it downloaded no
/// layer; with `--no-cache` the same scan needs the blobs and fails.
#[cfg(feature = "cache")]
#[test]
fn a_cached_image_scans_without_its_layer_blobs() {
    let env = CleanEnv::new();
    let reg = Registry::start();
    reg.push(&sample_layout(), "lab/sample:v1", &[]);
    let reference = format!("{}/lab/sample:v1", reg.host());
    let first = cached_scan(&env, &[&reference]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/sample/oci/blobs/sha256")
                .join(&SAMPLE_MANIFEST[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    let layers: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert!(layers.contains(&SAMPLE_LAYER1));
    for l in &layers {
        let f = reg.blob_file(l);
        assert!(f.is_file(), "{} holds layer {l}", f.display());
        std::fs::remove_file(&f).unwrap();
    }
    let second = cached_scan(&env, &[&reference]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        second.stdout, first.stdout,
        "the same report from the cache"
    );
    let uncached = scan(&env, &[&reference]);
    expect_error(&uncached, &["blob"]);
}

/// `docker-daemon:NAME` streams the image from podman's Docker-compatible
/// API and reports what the docker-archive on disk gives.
#[test]
fn docker_daemon_via_podman() {
    require_tool("podman");
    let env = CleanEnv::new();
    let archive = format!("{}/testdata/sample-docker.tar", env!("CARGO_MANIFEST_DIR"));
    let podman = Podman::start(&archive);
    let local = scan(&env, &[&archive]).json();
    let r = output(
        env.imgscan()
            .env("DOCKER_HOST", podman.docker_host())
            .args([
                "-f",
                "json",
                "--fail-on",
                "none",
                "docker-daemon:imgscan/sample",
            ]),
        None,
    )
    .json();
    assert_eq!(r["findings"], local["findings"]);
    assert_eq!(r["image"]["format"], "docker-daemon");
    assert_eq!(r["image"]["config_digest"], local["image"]["config_digest"]);

    let missing = output(
        env.imgscan()
            .env("DOCKER_HOST", podman.docker_host())
            .arg("docker-daemon:imgscan/absent:v9"),
        None,
    );
    expect_error(&missing, &["has no image imgscan/absent:v9"]);
}
