//! The persistent layer cache (`--cache-dir`, `--no-cache`,
//! `--cache-max-size`; issue #12) against the in-process fake registry,
//! whose request log says which blobs each scan downloaded: a second scan
//! of a cached image fetches the manifest and config and no layer, with
//! the same report; only verified layers are stored; a damaged cache is a
//! miss or a warning, never a failed scan; the cache is bounded; processes
//! share it. The same against a real `docker-registry` is in `registry.rs`
//! (e2e tier).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::env::{CleanEnv, Run, output};
use crate::support::fake_registry::{FakeRegistry, Image, Request};
use crate::util::{Comp, LayerBuilder, base_layer, compress, sha256, write_oci_layout};

const REPO: &str = "lab/app";

/// A three-layer gzip image (a setuid-root `su` in layer 1, a capability
/// file in layer 2) as the fake registry serves it.
fn image(dir: &Path) -> Image {
    let layers = [
        base_layer().build(),
        LayerBuilder::new()
            .dir("usr/", 0o755)
            .dir("usr/bin/", 0o755)
            .file("usr/bin/su", 0o4755, b"\x7fELF")
            .build(),
        LayerBuilder::new()
            .dir("opt/", 0o755)
            .file("opt/motd", 0o644, b"hello\n")
            .build(),
    ];
    write_oci_layout(dir, &layers, Comp::Gzip, json!({"User": "app"}));
    Image::from_layout(dir, REPO, "v1")
}

/// `image` with the config's diff_id of layer `n` replaced: the layer
/// blob is intact (its digest verifies) but does not unpack to what the
/// config says.
fn with_wrong_diff_id(img: &Image, n: usize) -> Image {
    let mut manifest: Value = serde_json::from_slice(&img.manifest).unwrap();
    let old = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let mut config: Value = serde_json::from_slice(&img.blobs[&old]).unwrap();
    config["rootfs"]["diff_ids"][n] = json!(sha256(b"not this layer"));
    let config = serde_json::to_vec(&config).unwrap();
    let digest = sha256(&config);
    manifest["config"]["digest"] = json!(digest);
    manifest["config"]["size"] = json!(config.len());
    let mut out = img.clone();
    out.blobs.remove(&old);
    out.blobs.insert(digest, config);
    out.manifest = serde_json::to_vec(&manifest).unwrap();
    out.digest = sha256(&out.manifest);
    out
}

/// `image` with layer `n`'s blob replaced by another valid gzip layer (the
/// same path without its setuid bit) under the same digest: it unpacks and
/// scans cleanly, and only the digest check tells.
fn with_tampered_layer(img: &Image, n: usize) -> Image {
    let mut out = img.clone();
    let other = LayerBuilder::new()
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/su", 0o755, b"\x7fELF")
        .build();
    out.blobs
        .insert(img.layers()[n].clone(), compress(&other, Comp::Gzip));
    out
}

/// A clean environment and the test image served by an in-process
/// registry on 127.0.0.1.
struct Served {
    env: CleanEnv,
    dir: tempfile::TempDir,
    img: Image,
    reg: FakeRegistry,
    reference: String,
}

impl Served {
    fn new() -> Self {
        let env = CleanEnv::new();
        let dir = tempfile::tempdir().unwrap();
        let img = image(dir.path());
        let served = img.clone();
        let reg = FakeRegistry::start(move |r| served.answer(r));
        let reference = format!("{}/{REPO}:v1", reg.host());
        Self {
            env,
            dir,
            img,
            reg,
            reference,
        }
    }
}

fn scan(env: &CleanEnv, args: &[&str]) -> Run {
    output(
        env.imgscan()
            .args(["--format", "json", "--fail-on", "none", "--retries", "0"])
            .args(args),
        None,
    )
}

/// The layer blobs of `img` the registry was asked for (GETs), in order.
fn layer_gets(reg: &FakeRegistry, img: &Image) -> Vec<String> {
    let layers = img.layers();
    reg.requests()
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(blob_of)
        .filter(|d| layers.contains(d))
        .collect()
}

fn blob_of(r: &Request) -> Option<String> {
    r.path.rsplit_once("/blobs/").map(|(_, d)| d.to_owned())
}

/// The default cache file of `env`: `$HOME/.cache/imgscan/layers.db`.
fn default_db(env: &CleanEnv) -> PathBuf {
    env.home.path().join(".cache/imgscan/layers.db")
}

/// The digests the cache file at `path` holds.
fn cached(path: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT digest FROM layers ORDER BY digest")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The judging criterion: a second scan of a cached registry image
/// downloads no layer (only the manifest and the config), and its report
/// is the first one, byte for byte. `--no-cache` downloads them all again.
#[test]
fn a_second_scan_downloads_no_layer_and_reports_the_same() {
    let Served {
        env,
        dir: _dir,
        img,
        reg,
        reference,
    } = Served::new();

    let first = scan(&env, &[&reference]);
    let report = first.json();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule_id"] == "setuid-binary"),
        "{report}"
    );
    assert_eq!(sorted(layer_gets(&reg, &img)), sorted(img.layers()));
    assert_eq!(cached(&default_db(&env)), sorted(img.layers()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&env.home.path().join(".cache/imgscan")), 0o700);
        assert_eq!(mode(&default_db(&env)), 0o600);
    }

    let before = reg.requests().len();
    let second = scan(&env, &[&reference]);
    assert_eq!(second.stdout, first.stdout, "the same report");
    assert!(second.stderr.is_empty(), "{}", second.stderr);
    let asked: Vec<Request> = reg.requests()[before..].to_vec();
    let blobs: Vec<String> = asked
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(blob_of)
        .collect();
    let manifest: Value = serde_json::from_slice(&img.manifest).unwrap();
    assert_eq!(
        blobs,
        [manifest["config"]["digest"].as_str().unwrap()],
        "only the config blob: {asked:?}"
    );
    assert!(
        asked
            .iter()
            .any(|r| r.path == format!("/v2/{REPO}/manifests/v1")),
        "{asked:?}"
    );

    let before = layer_gets(&reg, &img).len();
    for args in [vec!["--no-cache"], vec![]] {
        let mut cmd = env.imgscan();
        cmd.args(["--format", "json", "--fail-on", "none"]);
        if args.is_empty() {
            cmd.env("IMGSCAN_NO_CACHE", "1");
        }
        let r = output(cmd.args(&args).arg(&reference), None);
        assert_eq!(r.stdout, first.stdout, "{}", r.stderr);
    }
    assert_eq!(
        layer_gets(&reg, &img).len() - before,
        2 * img.layers().len(),
        "--no-cache and IMGSCAN_NO_CACHE=1 download every layer"
    );
}

/// Entries are written only after both the blob digest and the diff_id
/// verified: a blob whose bytes are not its digest, and a blob that does
/// not unpack to the config's diff_id, fail the scan (exit 2) and are not
/// cached; the next scan of the intact image downloads the refused layer
/// and reports what a scan without the cache reports.
#[test]
fn only_verified_layers_enter_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let layers = img.layers();
    let served = img.clone();
    let good = FakeRegistry::start(move |r| served.answer(r));
    let good_ref = format!("{}/{REPO}:v1", good.host());
    let fresh = scan(&CleanEnv::new(), &["--no-cache", &good_ref]);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);

    for (bad, refused, needle) in [
        (with_tampered_layer(&img, 1), 1, "digest mismatch"),
        (with_wrong_diff_id(&img, 2), 2, "diff_id"),
    ] {
        let env = CleanEnv::new();
        let db = default_db(&env);
        let reg = FakeRegistry::start(move |r| bad.answer(r));
        let r = scan(&env, &[&format!("{}/{REPO}:v1", reg.host())]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stdout.is_empty());
        assert!(r.stderr.contains(needle), "{}", r.stderr);
        // The layers that verified before the scan stopped may be cached.
        let kept = if db.exists() { cached(&db) } else { Vec::new() };
        assert!(
            !kept.contains(&layers[refused]),
            "layer {refused} was cached: {kept:?}"
        );

        let before = layer_gets(&good, &img).len();
        let r = scan(&env, &[&good_ref]);
        assert_eq!(r.stdout, fresh.stdout, "{}", r.stderr);
        let got = layer_gets(&good, &img)[before..].to_vec();
        assert!(got.contains(&layers[refused]), "{got:?}");
        assert_eq!(got.len() + kept.len(), layers.len(), "{got:?} {kept:?}");
        assert_eq!(cached(&db), sorted(layers.clone()));
    }
}

/// A damaged entry (its bytes changed: a flipped bit that still decodes
/// could hide a setuid binary) is a miss: the layer is downloaded again and
/// the report is right. A cache file that is not a database is replaced
/// with a warning; a cache directory that cannot be created is a warning;
/// neither fails the scan.
#[test]
fn a_damaged_cache_is_a_miss_never_an_error() {
    let Served {
        env,
        dir,
        img,
        reg,
        reference,
    } = Served::new();
    let good = scan(&env, &[&reference]);
    assert_eq!(good.code, 0, "{}", good.stderr);
    let db = default_db(&env);

    // Flip one byte in the middle of layer 1's entry (the su binary's).
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut data: Vec<u8> = c
            .query_row(
                "SELECT data FROM layers WHERE digest = ?1",
                [&img.layers()[1]],
                |r| r.get(0),
            )
            .unwrap();
        let at = data.len() / 2;
        data[at] ^= 0x01;
        c.execute(
            "UPDATE layers SET data = ?2 WHERE digest = ?1",
            rusqlite::params![&img.layers()[1], data],
        )
        .unwrap();
    }
    let before = layer_gets(&reg, &img).len();
    let r = scan(&env, &[&reference]);
    assert_eq!(r.stdout, good.stdout, "{}", r.stderr);
    assert_eq!(layer_gets(&reg, &img)[before..], [img.layers()[1].clone()]);
    assert_eq!(cached(&db), sorted(img.layers()), "stored again");

    // The whole file overwritten: replaced, with a warning; then a hit again.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::write(&db, vec![b'x'; 8192]).unwrap();
    let r = scan(&env, &[&reference]);
    assert_eq!(r.stdout, good.stdout, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("damaged"),
        "{}",
        r.stderr
    );
    assert_eq!(cached(&db), sorted(img.layers()));
    let quiet = scan(&env, &["--quiet", "--output", "/dev/null", &reference]);
    assert_eq!((quiet.code, quiet.stderr.as_str()), (0, ""));

    // A cache directory that cannot be created (a file is in the way).
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let cache_dir = blocker.join("imgscan");
    let r = scan(
        &env,
        &["--cache-dir", cache_dir.to_str().unwrap(), &reference],
    );
    assert_eq!(r.stdout, good.stdout, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning: not using the layer cache"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "one warning: {}", r.stderr);
    let r = scan(
        &env,
        &[
            "--quiet",
            "--cache-dir",
            cache_dir.to_str().unwrap(),
            &reference,
        ],
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

/// `--cache-max-size` bounds the entries' bytes: a cache opened with a
/// smaller bound evicts the least recently used entries down to it, and
/// a layer that no longer fits is downloaded again.
#[test]
fn the_cache_is_bounded_and_pruned() {
    let Served {
        env,
        dir,
        img,
        reg,
        reference,
    } = Served::new();
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let first = scan(&env, &["--cache-dir", cache_arg, &reference]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let db = cache.join("layers.db");
    let sizes: Vec<i64> = {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut st = c.prepare("SELECT size FROM layers").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(sizes.len(), 3);
    // Room for the largest entry, not for all three.
    let bound = *sizes.iter().max().unwrap();
    assert!(bound < sizes.iter().sum(), "{sizes:?}");
    let before = layer_gets(&reg, &img).len();
    let r = output(
        env.imgscan()
            .env("IMGSCAN_CACHE_DIR", &cache)
            .env("IMGSCAN_CACHE_MAX_SIZE", bound.to_string())
            .args(["--format", "json", "--fail-on", "none", &reference]),
        None,
    );
    assert_eq!(r.stdout, first.stdout, "{}", r.stderr);
    let c = rusqlite::Connection::open(&db).unwrap();
    let (rows, bytes): (i64, i64) = c
        .query_row("SELECT COUNT(*), TOTAL(size) FROM layers", [], |r| {
            Ok((r.get(0)?, r.get::<_, f64>(1)? as i64))
        })
        .unwrap();
    assert!(bytes <= bound, "{bytes} > {bound}");
    assert!((1..3).contains(&rows), "{rows} entries");
    let downloaded = layer_gets(&reg, &img).len() - before;
    assert!(downloaded >= 1, "pruned layers are downloaded again");
}

/// Several imgscan processes sharing one cache directory, from an empty
/// one, all succeed with the same report and no warning; afterwards every
/// layer is cached.
#[test]
fn processes_share_one_cache() {
    let Served {
        env,
        dir,
        img,
        reg: _reg,
        reference,
    } = Served::new();
    let expected = scan(&CleanEnv::new(), &["--no-cache", &reference]);
    let cache = dir.path().join("shared-cache");
    let children: Vec<_> = (0..4)
        .map(|_| {
            env.imgscan()
                .args(["--format", "json", "--fail-on", "none", "--cache-dir"])
                .arg(&cache)
                .arg(&reference)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stderr.is_empty(), "{stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected.stdout);
    }
    assert_eq!(cached(&cache.join("layers.db")), sorted(img.layers()));
}

/// Local files never touch the cache directory.
#[test]
fn local_scans_create_no_cache() {
    let env = CleanEnv::new();
    let dir = tempfile::tempdir().unwrap();
    image(dir.path());
    let r = scan(&env, &[&format!("oci:{}", dir.path().display())]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!env.home.path().join(".cache").exists());
}

/// The default directory is `$XDG_CACHE_HOME/imgscan` when that is an
/// absolute path, else `$HOME/.cache/imgscan`.
#[test]
fn the_default_directory_follows_xdg() {
    let Served {
        env,
        dir,
        img,
        reg: _reg,
        reference,
    } = Served::new();
    let xdg = dir.path().join("xdg");
    for (value, file) in [
        (xdg.to_str().unwrap(), xdg.join("imgscan/layers.db")),
        ("relative/cache", default_db(&env)),
    ] {
        let r = output(
            env.imgscan().env("XDG_CACHE_HOME", value).args([
                "--format",
                "json",
                "--fail-on",
                "none",
                &reference,
            ]),
            None,
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(cached(&file), sorted(img.layers()), "{value}");
    }
}

/// A cache file another process keeps locked (as `imgscan serve` keeps
/// its own) is a warning once the busy timeout (10 s) has passed: the scan
/// goes on without the cache and gives the same report.
#[test]
fn a_locked_cache_is_a_warning() {
    let Served {
        env,
        dir: _dir,
        img,
        reg,
        reference,
    } = Served::new();
    let good = scan(&env, &[&reference]);
    assert_eq!(good.code, 0, "{}", good.stderr);
    let holder = rusqlite::Connection::open(default_db(&env)).unwrap();
    holder
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .unwrap();
    let before = layer_gets(&reg, &img).len();
    let r = scan(&env, &[&reference]);
    assert_eq!(r.stdout, good.stdout, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning: not using the layer cache"),
        "{}",
        r.stderr
    );
    assert_eq!(layer_gets(&reg, &img).len() - before, img.layers().len());
    drop(holder);
}

/// A cached layer is held to the limits of the scan that reuses it, as
/// reading it would be: a stricter --max-entries or --max-memory than the
/// one it was cached under fails the same way (exit 2), without a download.
#[test]
fn a_cached_layer_is_held_to_the_next_scans_limits() {
    let Served {
        env,
        dir: _dir,
        img,
        reg,
        reference,
    } = Served::new();
    let first = scan(&env, &[&reference]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let fetched = layer_gets(&reg, &img).len();
    let strict = scan(&env, &["--max-entries", "2", &reference]);
    assert_eq!(strict.code, 2, "{}", strict.stderr);
    assert!(
        strict.stderr.contains("more than 2 members"),
        "{}",
        strict.stderr
    );
    let tight = scan(&env, &["--max-memory", "300", &reference]);
    assert_eq!(tight.code, 2, "{}", tight.stderr);
    assert!(tight.stderr.contains("a cached layer"), "{}", tight.stderr);
    assert_eq!(layer_gets(&reg, &img).len(), fetched, "both from the cache");
    // The cache still serves a scan within the limits.
    let again = scan(&env, &[&reference]);
    assert_eq!(again.stdout, first.stdout);
}
