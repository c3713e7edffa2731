//! The sample image in the forms only skopeo writes (oci-archive, zstd OCI
//! layout), and its oracle re-run live with umoci and getcap.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::support::sample::{assert_matches_oracle, expected, oracle_lines};
use crate::support::tools::{require_root, require_tool};
use crate::util::{imgscan_stdin, testdata};

fn skopeo(args: &[&str]) {
    let out = Command::new(require_tool("skopeo"))
        .args(["--insecure-policy", "copy", "-q"])
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// skopeo-written oci-archive and zstd OCI layout, and the oci-archive on stdin.
#[test]
fn skopeo_oci_archive_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("oci:{}:sample", testdata("sample/oci"));
    let archive = dir.path().join("sample-oci.tar");
    skopeo(&[&src, &format!("oci-archive:{}:sample", archive.display())]);
    let r = assert_matches_oracle(archive.to_str().unwrap());
    assert_eq!(r["image"]["format"], "oci-archive");
    assert_matches_oracle(&format!("oci-archive:{}:sample", archive.display()));

    let zdir = dir.path().join("zstd");
    skopeo(&[
        "--dest-compress-format",
        "zstd",
        &src,
        &format!("oci:{}:sample", zdir.display()),
    ]);
    let r = assert_matches_oracle(&format!("oci:{}:sample", zdir.display()));
    for l in r["image"]["layers"].as_array().unwrap() {
        assert_eq!(l["compression"], "zstd");
    }

    let data = std::fs::read(&archive).unwrap();
    let out = imgscan_stdin(&["--format", "json", "--fail-on", "none", "-"], Some(&data));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(oracle_lines(&r), expected());
}

/// The oracle itself, re-run live when umoci can restore owners (root only).
#[test]
fn oracle_is_current() {
    require_tool("umoci");
    require_tool("getcap");
    require_root("oracle_is_current: umoci unpack restores owners and xattrs only as root");
    let out = Command::new("bash")
        .arg(testdata("oracle.sh"))
        .arg(format!("{}:sample", testdata("sample/oci")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(live, expected());
}
