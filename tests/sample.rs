//! The real-builder sample image (umoci + busybox-static + setcap, exported by
//! skopeo) in every input format, compared with the oracle that `umoci unpack`
//! and find/getcap produced (`testdata/sample.oracle`).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::util::{imgscan, imgscan_stdin, require_tool, scan_json, testdata};

/// Findings of a report in the oracle's line format (`testdata/oracle.sh`).
fn oracle_lines(report: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in report["findings"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap_or("");
        let d = &f["details"];
        let line = match f["rule_id"].as_str().unwrap() {
            "setuid-binary" | "setgid-binary" => format!(
                "{} {path} {} {} {}",
                if f["rule_id"] == "setuid-binary" {
                    "setuid"
                } else {
                    "setgid"
                },
                d["mode"].as_str().unwrap(),
                d["uid"],
                d["gid"]
            ),
            "file-capability" => format!("cap {path} {}", d["getcap"].as_str().unwrap()),
            "world-writable-path" => format!(
                "world-writable {path} {}",
                match d["kind"].as_str().unwrap() {
                    "dir" => "dir",
                    _ => "file",
                }
            ),
            "remote-shell-daemon" => format!("daemon {path}"),
            _ => continue,
        };
        out.insert(line);
    }
    out
}

fn expected() -> BTreeSet<String> {
    std::fs::read_to_string(testdata("sample.oracle"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_matches_oracle(image: &str) -> Value {
    let report = scan_json(image);
    assert_eq!(oracle_lines(&report), expected(), "image {image}");
    // Config findings: no USER means root.
    let root: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule_id"] == "root-user")
        .collect();
    assert_eq!(root.len(), 1, "{image}: one root-user finding");
    assert!(root[0]["path"].is_null());
    report
}

/// The committed docker-archive (skopeo, uncompressed, symlinked layer.tar).
#[test]
fn docker_archive_matches_oracle() {
    let r = assert_matches_oracle(&testdata("sample-docker.tar"));
    assert_eq!(r["image"]["format"], "docker-archive");
    assert_eq!(r["image"]["reference"], "docker.io/imgscan/sample:latest");
    assert_eq!(r["image"]["layers"].as_array().unwrap().len(), 4);
}

/// The committed OCI layout, by bare path, `oci:DIR` and `oci:DIR:TAG`.
#[test]
fn oci_layout_matches_oracle() {
    let dir = testdata("sample/oci");
    for arg in [
        dir.clone(),
        format!("oci:{dir}"),
        format!("oci:{dir}:sample"),
        format!("{dir}:sample"),
    ] {
        let r = assert_matches_oracle(&arg);
        assert_eq!(r["image"]["format"], "oci-layout");
        assert!(
            r["image"]["manifest_digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }
}

/// Each finding names the layer (index, digest, created_by) that introduced it.
#[test]
fn findings_are_attributed_to_layers() {
    let r = scan_json(&testdata("sample/oci"));
    let layers = r["image"]["layers"].as_array().unwrap();
    for f in r["findings"].as_array().unwrap() {
        if f["path"].is_null() {
            continue;
        }
        let i = f["layer_index"].as_u64().unwrap() as usize;
        assert_eq!(f["layer_digest"], layers[i]["digest"]);
        assert_eq!(f["layer_created_by"], layers[i]["created_by"]);
    }
    let by_path = |p: &str| {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == p)
            .unwrap_or_else(|| panic!("no finding for {p}"))["layer_index"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(by_path("/usr/sbin/telnetd"), 0);
    assert_eq!(by_path("/usr/local/bin/suid-helper"), 1);
    assert_eq!(by_path("/srv/shared"), 2);
}

/// `docker save app | imgscan -`: a stream with the manifest after the layers.
#[test]
fn stdin_docker_archive() {
    let data = std::fs::read(testdata("sample-docker.tar")).unwrap();
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

/// `docker save | gzip > image.tar.gz`.
#[test]
fn gzipped_docker_archive() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("image.tar.gz");
    let data = std::fs::read(testdata("sample-docker.tar")).unwrap();
    std::fs::write(&gz, crate::util::compress(&data, crate::util::Comp::Gzip)).unwrap();
    assert_matches_oracle(gz.to_str().unwrap());
}

fn skopeo(args: &[&str]) {
    require_tool("skopeo");
    let out = Command::new("skopeo")
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

/// Findings are identical whatever the input format (same image, same report
/// apart from the image section).
#[test]
fn same_findings_in_every_format() {
    let a = scan_json(&testdata("sample-docker.tar"));
    let b = scan_json(&testdata("sample/oci"));
    let strip = |r: &Value| {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f.as_object_mut().unwrap().remove("layer_digest");
                f
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
}

/// The oracle itself, re-run live when umoci can restore owners (root only).
#[test]
fn oracle_is_current() {
    require_tool("umoci");
    require_tool("getcap");
    // SAFETY-free check of the effective uid: /proc/self/status "Uid:" line.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    assert!(
        root,
        "oracle_is_current needs root (umoci unpack restores owners and xattrs only as root)"
    );
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

/// The table goes to the terminal while JSON and SARIF files are written.
#[test]
fn table_with_json_and_sarif_files() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let sarif = dir.path().join("r.sarif");
    let out = imgscan(&[
        "--json",
        json.to_str().unwrap(),
        "--sarif",
        sarif.to_str().unwrap(),
        &testdata("sample-docker.tar"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("setuid-binary"), "{table}");
    assert!(!table.contains('\u{1b}'), "no colour when not a terminal");
    let j: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(j["schema_version"], "1.1");
    let s: Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(s["version"], "2.1.0");
    assert_eq!(
        s["runs"][0]["results"].as_array().unwrap().len(),
        j["findings"].as_array().unwrap().len()
    );
}
