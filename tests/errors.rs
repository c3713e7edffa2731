//! Hostile and broken input: truncated, tampered and not-an-image inputs exit
//! 2 with a clear message on stderr and nothing on stdout.

use std::path::Path;

use serde_json::json;

use crate::util::{
    Comp, base_layer, docker_archive, imgscan, imgscan_stdin, testdata, write_oci_layout,
};

fn assert_error(args: &[&str], stdin: Option<&[u8]>, needle: &str) {
    let out = imgscan_stdin(args, stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "args {args:?}: stderr {err}");
    assert!(out.stdout.is_empty(), "no partial report on stdout");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "stderr should mention `{needle}`: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn layout(dir: &Path) {
    let layers = vec![base_layer().file("usr/bin/s", 0o4755, b"x").build()];
    write_oci_layout(dir, &layers, Comp::Gzip, json!({}));
}

/// A docker-archive cut short, read from a file and from standard input.
#[test]
fn truncated_archives() {
    let data = std::fs::read(testdata("sample-docker.tar")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The last cut is inside the last member's data: an end inside its
    // padding is a clean end to Go's archive/tar (`tryReadFull`).
    let zeros = data.iter().rev().take_while(|b| **b == 0).count();
    for cut in [data.len() / 2, 700, data.len() - zeros - 10] {
        let p = dir.path().join(format!("cut{cut}.tar"));
        std::fs::write(&p, &data[..cut]).unwrap();
        let out = imgscan(&[p.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "cut at {cut}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        assert_error(&["-"], Some(&data[..cut]), "");
    }
}

/// One flipped byte in a layer blob: a digest mismatch naming the blob,
/// with the expected and the actual digest.
#[test]
fn tampered_layer_blob() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("blobs/sha256").join(&m[7..])).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let path = dir.path().join("blobs/sha256").join(&layer[7..]);
    let mut blob = std::fs::read(&path).unwrap();
    // Flip a byte in the gzip trailer's CRC: the tar still parses, only the
    // digests can tell.
    let n = blob.len();
    blob[n - 6] ^= 0xff;
    std::fs::write(&path, &blob).unwrap();
    let out = imgscan(&[dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains(&layer), "names the blob: {err}");
}

/// A layer whose bytes hash right but whose tar differs from the config's
/// diff_id (a swapped layer) is refused.
#[test]
fn wrong_diff_id() {
    let dir = tempfile::tempdir().unwrap();
    let layers = vec![base_layer().build()];
    write_oci_layout(dir.path(), &layers, Comp::None, json!({}));
    // Rewrite the layer and its descriptor digest, leaving the config alone.
    let other = base_layer().file("x", 0o644, b"x").build();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let mpath = dir.path().join("blobs/sha256").join(&m[7..]);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    let d = crate::util::sha256(&other);
    std::fs::write(dir.path().join("blobs/sha256").join(&d[7..]), &other).unwrap();
    manifest["layers"][0]["digest"] = json!(d);
    manifest["layers"][0]["size"] = json!(other.len());
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    let md = crate::util::sha256(&mbytes);
    std::fs::write(dir.path().join("blobs/sha256").join(&md[7..]), &mbytes).unwrap();
    let idx = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mbytes.len()}]});
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec(&idx).unwrap(),
    )
    .unwrap();
    assert_error(&[dir.path().to_str().unwrap()], None, "diff_id");
}

/// A tampered config in a docker-archive (its name is its digest).
#[test]
fn tampered_config() {
    let layers = vec![base_layer().build()];
    let mut archive = docker_archive(&layers, json!({"User": "app"}), "t:1");
    let needle = br#""User":"app""#;
    let pos = archive
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("config in archive");
    archive[pos + 8] = b'b';
    assert_error(&["-"], Some(&archive), "digest mismatch");
}

/// Files and directories that are not images.
#[test]
fn not_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, vec![0x42u8; 5000]).unwrap();
    assert_error(&[junk.to_str().unwrap()], None, "not a container image");
    let empty = dir.path().join("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    assert_error(&[empty.to_str().unwrap()], None, "empty");
    let plain = dir.path().join("plain.tar");
    std::fs::write(&plain, base_layer().build()).unwrap();
    assert_error(&[plain.to_str().unwrap()], None, "manifest.json");
    let d = dir.path().join("emptydir");
    std::fs::create_dir(&d).unwrap();
    assert_error(&[d.to_str().unwrap()], None, "index.json");
    assert_error(&["/nonexistent/image.tar"], None, "no such file");
    assert_error(&["-"], Some(b"not a tar at all, just text"), "");
}

/// Several images in one archive need a reference; a wrong one lists the
/// choices.
#[test]
fn ambiguous_and_unknown_references() {
    let layers = vec![base_layer().build()];
    let a = docker_archive(&layers, json!({}), "one:1");
    // Two images: re-use the builder twice by merging manifests is awkward;
    // an unknown tag on a single-image archive is enough to show the choices.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.tar");
    std::fs::write(&p, &a).unwrap();
    let out = imgscan(&[&format!("docker-archive:{}:nope:2", p.display())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("one:1"), "lists the choices: {err}");
    let ok = imgscan(&[
        "--fail-on",
        "none",
        &format!("docker-archive:{}:one:1", p.display()),
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = imgscan(&[
        "--fail-on",
        "none",
        &format!("docker-archive:{}:@0", p.display()),
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// A gzip bomb-like long-name header is refused without allocating it.
#[test]
fn oversized_tar_extension_header() {
    let mut h = tar::Header::new_gnu();
    h.set_path("././@LongLink").unwrap();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(1 << 40);
    h.set_cksum();
    let mut layer = h.as_bytes().to_vec();
    layer.extend(std::iter::repeat_n(0u8, 4096));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Build a layout whose only layer is that header (diff_id matches).
    write_oci_layout(d, &[layer], Comp::Gzip, json!({}));
    assert_error(&[d.to_str().unwrap()], None, "limit");
}
