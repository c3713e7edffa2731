//! Users, account files, platform picking and layout blobs as the runtime
//! sees them (#9 classes 4, 5 and 7), end to end through the binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{
    Comp, LayerBuilder, base_layer, findings_of, scan_json, sha256, write_oci_layout,
};

fn scan_layers(layers: &[Vec<u8>], container: Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(dir.path(), layers, Comp::Gzip, container);
    scan_json(dir.path().to_str().unwrap())
}

/// Runs imgscan on `image`, killing it (and failing) if it hangs.
fn imgscan_bounded(image: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgscan"))
        .args(["--format", "json", "--fail-on", "none"])
        .arg(image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("imgscan hung on {}", image.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\n\
app:x:1000x:1000::/home/app:/bin/sh\n";

/// `/etc/passwd` as a relative or absolute symlink into `/usr/lib` (a
/// usr-merged layout) is read through the link.
#[test]
fn symlinked_passwd_is_read_through_the_link() {
    for target in ["../usr/lib/passwd", "/usr/lib/passwd"] {
        let l0 = LayerBuilder::new()
            .dir("usr/lib/", 0o755)
            .file("usr/lib/passwd", 0o644, PASSWD)
            .dir("etc/", 0o755)
            .symlink("etc/passwd", target)
            .build();
        let r = scan_layers(&[l0], json!({"User": "toor"}));
        assert_eq!(findings_of(&r, "root-user").len(), 1, "{target}");
        let uid0: Vec<&str> = findings_of(&r, "uid0-account")
            .iter()
            .map(|f| f["details"]["user"].as_str().unwrap())
            .collect();
        // `1000x` reads as uid 0 to runc.
        assert_eq!(uid0, ["toor", "app"], "{target}");
        assert_eq!(
            findings_of(&r, "uid0-account")[0]["path"],
            "/usr/lib/passwd"
        );
    }
}

/// An `/etc/passwd` whose real file imgscan does not capture fails the
/// scan (exit 2) instead of reading as "no such user".
#[test]
fn uncaptured_passwd_fails_the_scan() {
    let l0 = LayerBuilder::new()
        .dir("opt/accounts/", 0o755)
        .file("opt/accounts/passwd.db", 0o644, PASSWD)
        .dir("etc/", 0o755)
        .symlink("etc/passwd", "/opt/accounts/passwd.db")
        .build();
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(dir.path(), &[l0], Comp::Gzip, json!({"User": "app"}));
    let out = imgscan_bounded(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.contains("/etc/passwd (resolved to /opt/accounts/passwd.db)"),
        "{err}"
    );
}

/// `USER +0` (Go's Atoi takes the sign) and `USER 4294967296` (truncated
/// to uid 0 by containerd before CVE-2024-40635 was fixed) are root.
#[test]
fn signed_and_overflowing_uids_are_root() {
    for user in ["+0", "-0", "4294967296", "+0:1000"] {
        let r = scan_layers(&[base_layer().build()], json!({"User": user}));
        assert_eq!(
            findings_of(&r, "root-user").len(),
            1,
            "{user}: {:#}",
            r["findings"]
        );
    }
}

/// A layer blob that is a FIFO is refused (exit 2) instead of hanging.
#[test]
fn fifo_layer_blob_is_refused() {
    let layer = base_layer().build();
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(
        dir.path(),
        std::slice::from_ref(&layer),
        Comp::None,
        json!({}),
    );
    let blob = dir.path().join("blobs/sha256").join(&sha256(&layer)[7..]);
    std::fs::remove_file(&blob).unwrap();
    let st = Command::new("mkfifo").arg(&blob).status().unwrap();
    assert!(st.success());
    let out = imgscan_bounded(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");

    // `/dev/zero` linked in as the blob: refused, not read forever.
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &blob).unwrap();
    let out = imgscan_bounded(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("points outside the layout"), "{err}");
}

/// An index listing `amd64/v3` before plain `amd64` (and other orders):
/// the image containerd picks for a plain `linux/amd64` is plain amd64.
#[test]
fn index_picks_plain_amd64_over_v3() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = Vec::new();
    for (variant, user) in [(Some("v3"), "v3"), (None, "plain"), (Some("v2"), "v2")] {
        let m = write_oci_layout(
            dir.path(),
            &[base_layer().build()],
            Comp::Gzip,
            json!({ "User": user }),
        );
        let size = std::fs::metadata(dir.path().join("blobs/sha256").join(&m[7..]))
            .unwrap()
            .len();
        let mut platform = json!({"os": "linux", "architecture": "amd64"});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        entries.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m, "size": size, "platform": platform,
        }));
    }
    let write_index = |order: &[usize], dir: &Path| {
        let manifests: Vec<Value> = order.iter().map(|&i| entries[i].clone()).collect();
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    };
    for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
        write_index(&order, dir.path());
        let path = dir.path().to_str().unwrap();
        for (platform, want) in [
            ("linux/amd64", "plain"),
            ("linux/amd64/v3", "v3"),
            ("linux/amd64/v4", "v3"),
            ("linux/amd64/v2", "v2"),
        ] {
            let out = crate::util::imgscan(&[
                "--format",
                "json",
                "--fail-on",
                "none",
                "--platform",
                platform,
                path,
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{err}");
            let r: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r["image"]["user"], want, "{platform} {order:?}");
        }
        // Without --platform on an amd64 host, the same as linux/amd64.
        if cfg!(target_arch = "x86_64") {
            let r = scan_json(path);
            assert_eq!(r["image"]["user"], "plain", "{order:?}");
        }
    }
}
