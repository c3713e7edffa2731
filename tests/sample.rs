//! The real-builder sample image (umoci + busybox-static + setcap, exported by
//! skopeo) in every input format, compared with the oracle that `umoci unpack`
//! and find/getcap produced (`testdata/sample.oracle`). The forms that need
//! skopeo, and the oracle re-run live, are in `sample_tools.rs` (e2e tier).

use serde_json::Value;

use crate::support::sample::{assert_matches_oracle, expected, oracle_lines};
use crate::util::{imgscan, imgscan_stdin, scan_json, testdata};

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
    assert_eq!(j["schema_version"], "1.3");
    let s: Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(s["version"], "2.1.0");
    assert_eq!(
        s["runs"][0]["results"].as_array().unwrap().len(),
        j["findings"].as_array().unwrap().len()
    );
}
