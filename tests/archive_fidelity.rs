//! Image archives runtimes read differently, and real `docker save` shapes
//! that must scan from a file and from a stream alike: members twice, a
//! layer listed twice, a `layer.tar` symlinked to another layer's.

use std::process::Output;

use serde_json::{Value, json};

use crate::util::{
    Comp, LayerBuilder, base_layer, compress, config, findings_of, imgscan, imgscan_stdin, sha256,
};

const SUID: &[u8] = b"\x7fELF-suid";

/// One archive member.
enum M<'a> {
    File(&'a str, Vec<u8>),
    Symlink(&'a str, &'a str),
    Dir(&'a str),
    /// A member of a raw tar type (`g` PAX global header, `7`, `V`, ...).
    Raw(&'a str, u8, Vec<u8>),
}

fn archive(members: &[M<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        match m {
            M::File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            M::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            M::Raw(p, typeflag, data) => {
                let mut h = tar::Header::new_ustar();
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::new(*typeflag));
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            M::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, &b""[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Scans `tar` as a file, from standard input, and as a `.tar.gz` file
/// (the last two are the stream path).
fn scan_three_ways(tar: &[u8]) -> Vec<(&'static str, Output)> {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("img.tar");
    std::fs::write(&plain, tar).unwrap();
    let gz = dir.path().join("img.tar.gz");
    std::fs::write(&gz, compress(tar, Comp::Gzip)).unwrap();
    let with = |p: &str| imgscan(&["--format", "json", "--fail-on", "none", p]);
    vec![
        ("file", with(plain.to_str().unwrap())),
        (
            "stdin",
            imgscan_stdin(&["--format", "json", "--fail-on", "none", "-"], Some(tar)),
        ),
        ("tar.gz", with(gz.to_str().unwrap())),
    ]
}

fn report(how: &str, out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{how}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn refused(how: &str, out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{how}: {err}");
    assert!(err.contains(needle), "{how}: {err}");
}

fn suid_layer() -> Vec<u8> {
    base_layer()
        .dir("usr/bin/", 0o755)
        .file("usr/bin/su", 0o4755, SUID)
        .build()
}

/// A docker-archive: `layers` are (member path, bytes or symlink target),
/// `listed` the manifest's `Layers`, `diff_layers` the tars whose digests
/// the config lists.
fn docker_archive_with(
    stored: Vec<M<'_>>,
    listed: &[&str],
    diff_layers: &[Vec<u8>],
    extra_manifest: Option<Vec<u8>>,
) -> Vec<u8> {
    let cfg = config(diff_layers, json!({"User": "app"}));
    let cfg_name = format!("{}.json", &sha256(&cfg)[7..]);
    let manifest = serde_json::to_vec(
        &json!([{"Config": cfg_name, "RepoTags": ["lab/t:1"], "Layers": listed}]),
    )
    .unwrap();
    let mut members = stored;
    members.push(M::File(Box::leak(cfg_name.into_boxed_str()), cfg));
    members.push(M::File("manifest.json", manifest));
    if let Some(m) = extra_manifest {
        members.push(M::File("manifest.json", m));
    }
    archive(&members)
}

/// Two `manifest.json` members: containers/image reads the first, moby the
/// last; refused from a file and from a stream.
#[test]
fn duplicate_manifest_json_is_ambiguous() {
    let l = suid_layer();
    let other = serde_json::to_vec(&json!([{"Config": "x.json", "Layers": []}])).unwrap();
    let tar = docker_archive_with(
        vec![M::File("a/layer.tar", l.clone())],
        &["a/layer.tar"],
        &[l],
        Some(other),
    );
    for (how, out) in scan_three_ways(&tar) {
        refused(how, &out, "ambiguous image: member manifest.json");
    }
}

/// Two `index.json` members in an oci-archive are refused the same way;
/// `./index.json` and `index.json` are one name.
#[test]
fn duplicate_index_json_is_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    crate::util::write_oci_layout(dir.path(), &[suid_layer()], Comp::Gzip, json!({}));
    let mut members = Vec::new();
    let mut names = Vec::new();
    for e in walk(dir.path()) {
        names.push(e);
    }
    names.sort();
    let files: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|n| (n.clone(), std::fs::read(dir.path().join(n)).unwrap()))
        .collect();
    for (n, d) in &files {
        members.push(M::File(n, d.clone()));
    }
    members.push(M::File(
        "./index.json",
        br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
    ));
    let tar = archive(&members);
    for (how, out) in scan_three_ways(&tar) {
        refused(how, &out, "ambiguous image: member index.json");
    }
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_owned());
            }
        }
    }
    out
}

/// A member below a symlink member: moby's extraction writes through the
/// link, name-matching readers do not. Refused.
#[test]
fn member_under_a_symlink_is_ambiguous() {
    let l = suid_layer();
    let tar = docker_archive_with(
        vec![
            M::File("a/layer.tar", l.clone()),
            M::Symlink("x", "."),
            M::File("x/manifest.json", b"[]".to_vec()),
        ],
        &["a/layer.tar"],
        &[l],
        None,
    );
    for (how, out) in scan_three_ways(&tar) {
        refused(how, &out, "ambiguous image: member x/manifest.json");
    }
}

/// A manifest that lists one layer twice (the config lists its diff_id
/// twice) scans from a file and from a stream, applying it twice.
#[test]
fn layer_listed_twice_scans_from_file_and_stream() {
    let l = suid_layer();
    let tar = docker_archive_with(
        vec![M::Dir("a/"), M::File("a/layer.tar", l.clone())],
        &["a/layer.tar", "a/layer.tar"],
        &[l.clone(), l],
        None,
    );
    for (how, out) in scan_three_ways(&tar) {
        let r = report(how, &out);
        assert_eq!(r["image"]["layers"].as_array().unwrap().len(), 2, "{how}");
        let su = findings_of(&r, "setuid-binary");
        assert_eq!(su.len(), 1, "{how}: {su:?}");
        assert_eq!(
            su[0]["layer_index"], 1,
            "{how}: the second copy is the top one"
        );
    }
}

/// `docker save` (legacy layout) stores a repeated layer once and makes the
/// other `layer.tar` a symlink to it; an empty layer repeated is common.
/// Both the empty-tar case (1024 zero bytes, kept in memory) and a
/// directory-only layer (scanned on the way) work from a file and a stream.
#[test]
fn symlinked_layer_tar_to_another_layers_scans_from_file_and_stream() {
    let empty = LayerBuilder::new().build();
    let dirs_only = LayerBuilder::new().dir("srv/", 0o755).build();
    for repeated in [empty, dirs_only] {
        let base = suid_layer();
        let tar = docker_archive_with(
            vec![
                M::File("a/layer.tar", base.clone()),
                M::Dir("b/"),
                M::File("b/layer.tar", repeated.clone()),
                M::Dir("c/"),
                M::Symlink("c/layer.tar", "../b/layer.tar"),
            ],
            &["a/layer.tar", "b/layer.tar", "c/layer.tar"],
            &[base, repeated.clone(), repeated],
            None,
        );
        for (how, out) in scan_three_ways(&tar) {
            let r = report(how, &out);
            assert_eq!(r["image"]["layers"].as_array().unwrap().len(), 3, "{how}");
            assert_eq!(findings_of(&r, "setuid-binary").len(), 1, "{how}");
        }
    }
}

/// A docker-archive whose manifest.json spells `Layers` in lower case is
/// read as Go reads it (podman and docker load that layer), from a file and
/// a stream; with both spellings it is refused.
#[test]
fn manifest_json_keys_are_read_as_go_reads_them() {
    let l = suid_layer();
    let cfg = config(std::slice::from_ref(&l), json!({"user": "0"}));
    let cfg_name = format!("{}.json", &sha256(&cfg)[7..]);
    let one = format!(r#"[{{"config":"{cfg_name}","layers":["a/layer.tar"]}}]"#);
    let two = format!(r#"[{{"Config":"{cfg_name}","Layers":[],"layers":["a/layer.tar"]}}]"#);
    for (manifest, ok) in [(one, true), (two, false)] {
        let tar = archive(&[
            M::File("a/layer.tar", l.clone()),
            M::File(&cfg_name, cfg.clone()),
            M::File("manifest.json", manifest.into_bytes()),
        ]);
        for (how, out) in scan_three_ways(&tar) {
            if ok {
                let r = report(how, &out);
                assert_eq!(findings_of(&r, "setuid-binary").len(), 1, "{how}");
                assert_eq!(r["image"]["user"], "0", "{how}: `user` is User to Go");
            } else {
                refused(how, &out, "both set field `Layers`");
            }
        }
    }
}

/// An oci-archive whose manifest lists one gzip layer blob twice (builders
/// emit this for repeated identical layers) scans from a file and a stream.
#[test]
fn oci_archive_listing_a_blob_twice_scans_from_file_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let l = suid_layer();
    crate::util::write_oci_layout(dir.path(), &[l.clone(), l], Comp::Gzip, json!({}));
    let mut names = walk(dir.path());
    names.sort();
    let files: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|n| (n.clone(), std::fs::read(dir.path().join(n)).unwrap()))
        .collect();
    let members: Vec<M<'_>> = files.iter().map(|(n, d)| M::File(n, d.clone())).collect();
    let tar = archive(&members);
    for (how, out) in scan_three_ways(&tar) {
        let r = report(how, &out);
        assert_eq!(r["image"]["layers"].as_array().unwrap().len(), 2, "{how}");
        assert_eq!(findings_of(&r, "setuid-binary").len(), 1, "{how}");
    }
}

/// PAX global headers in the outer archive are skipped as `docker load` and
/// containerd skip them: one named `manifest.json` after the real one, or
/// named like a directory above a member, changes nothing.
#[test]
fn pax_global_headers_in_the_archive_are_skipped() {
    let l = suid_layer();
    let members = vec![
        M::Raw("pax_global_header", b'g', b"17 comment=hello\n".to_vec()),
        M::Raw("a", b'g', Vec::new()),
        M::File("a/layer.tar", l.clone()),
    ];
    let tar = docker_archive_with(members, &["a/layer.tar"], &[l], None);
    // Another global header named `manifest.json`, after the real one.
    let mut tar = tar[..tar.len() - 1024].to_vec();
    tar.extend(archive(&[M::Raw(
        "manifest.json",
        b'g',
        b"17 comment=hello\n".to_vec(),
    )]));
    for (how, out) in scan_three_ways(&tar) {
        let r = report(how, &out);
        assert_eq!(findings_of(&r, "setuid-binary").len(), 1, "{how}");
    }
}

/// A PAX global header before the `manifest.json` it is named like is
/// refused: containers/image reads the header in the manifest's place.
#[test]
fn pax_global_header_before_manifest_json_is_ambiguous() {
    let l = suid_layer();
    let tar = docker_archive_with(
        vec![
            M::Raw("manifest.json", b'g', Vec::new()),
            M::File("a/layer.tar", l.clone()),
        ],
        &["a/layer.tar"],
        &[l],
        None,
    );
    for (how, out) in scan_three_ways(&tar) {
        refused(how, &out, "ambiguous image: member manifest.json");
        refused(how, &out, "PAX global header");
    }
}

/// A member of another tar type in the outer archive is refused: moby's
/// `docker load` fails on it, containerd skips it.
#[test]
fn other_member_types_in_the_archive_are_ambiguous() {
    let l = suid_layer();
    let tar = docker_archive_with(
        vec![
            M::Raw("label", b'V', Vec::new()),
            M::File("a/layer.tar", l.clone()),
        ],
        &["a/layer.tar"],
        &[l],
        None,
    );
    for (how, out) in scan_three_ways(&tar) {
        refused(how, &out, "ambiguous image: member label");
        refused(how, &out, "unhandled tar header type");
    }
}

/// The tar reader's refusals of the outer archive (a member name that is not
/// UTF-8) exit 2 as ambiguous, said once.
#[test]
fn tar_reader_refusals_of_the_archive_are_ambiguous() {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o644);
    h.as_old_mut().name[..4].copy_from_slice(b"a\xffb\0");
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[0u8; 1024]);
    for (how, out) in scan_three_ways(&tar) {
        refused(how, &out, "ambiguous image: archive ");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches("ambiguous image").count(), 1, "{how}: {err}");
        assert!(err.contains("not UTF-8"), "{how}: {err}");
    }
}

/// An image index whose only image is for another platform (next to an
/// attestation) is refused without `--platform`, listing what it offers, as
/// containerd refuses it; with that `--platform` it scans.
#[test]
fn lone_index_entry_for_another_platform_needs_platform() {
    let dir = tempfile::tempdir().unwrap();
    let m = crate::util::write_oci_layout(dir.path(), &[suid_layer()], Comp::Gzip, json!({}));
    let blob = |d: &str| dir.path().join("blobs/sha256").join(&d[7..]);
    let size = std::fs::metadata(blob(&m)).unwrap().len();
    let entry = |os: &str, arch: &str| {
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m,
               "size": size, "platform": {"os": os, "architecture": arch}})
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("unknown", "unknown"), entry("plan9", "amd64")],
    }))
    .unwrap();
    let idx = sha256(&index);
    std::fs::write(blob(&idx), &index).unwrap();
    let top = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": idx,
        "size": index.len(), "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec(&top).unwrap(),
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = imgscan(&["--format", "json", "--fail-on", "none", path]);
    refused("no --platform", &out, "it offers: plan9/amd64");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("unknown"),
        "attestations are not offered: {err}"
    );
    let out = imgscan(&[
        "--format",
        "json",
        "--fail-on",
        "none",
        "--platform",
        "plan9/amd64",
        path,
    ]);
    let r = report("--platform plan9/amd64", &out);
    assert_eq!(findings_of(&r, "setuid-binary").len(), 1);
}
