//! Edge-case layers written in code: whiteouts, opaque directories, hard
//! links, replacements, LIBARCHIVE-only xattrs, v3 capabilities, long names.

use serde_json::{Value, json};

use crate::util::{
    Comp, LayerBuilder, base_layer, docker_archive, findings_of, imgscan_stdin, rule_paths,
    scan_json, write_oci_layout,
};

const SUID: &[u8] = b"\x7fELF-suid";
// setcap cap_net_raw+ep, revision 2
const CAP_NET_RAW: &[u8] = &[
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn scan_layers(layers: &[Vec<u8>], container: Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(dir.path(), layers, Comp::Gzip, container);
    scan_json(dir.path().to_str().unwrap())
}

fn paths_of(report: &Value, rule: &str) -> Vec<String> {
    rule_paths(report)
        .into_iter()
        .filter(|(r, _)| r == rule)
        .map(|(_, p)| p)
        .collect()
}

/// A `.wh.` file hides the lower layer's setuid binary; an opaque marker
/// hides a whole directory, but not what its own layer adds.
#[test]
fn whiteouts_and_opaque_directories() {
    let l0 = base_layer()
        .dir("usr/bin/", 0o755)
        .file("usr/bin/su", 0o4755, SUID)
        .file("usr/bin/keep", 0o4755, SUID)
        .dir("opt/app/", 0o755)
        .file("opt/app/old", 0o4755, SUID)
        .dir("opt/app/sub/", 0o755)
        .file("opt/app/sub/deep", 0o4755, SUID)
        .build();
    let l1 = LayerBuilder::new()
        .file("opt/app/new", 0o4755, SUID)
        .opaque("opt/app")
        .whiteout("usr/bin/su")
        .build();
    let r = scan_layers(&[l0, l1], json!({"User": "app"}));
    assert_eq!(
        paths_of(&r, "setuid-binary"),
        ["/opt/app/new", "/usr/bin/keep"]
    );
    let new = &findings_of(&r, "setuid-binary")[0];
    assert_eq!(new["layer_index"], 1);
}

/// A whiteout only applies to lower layers: a file added in the same layer
/// as its whiteout stays.
#[test]
fn whiteout_in_same_layer_does_not_hide() {
    let l0 = base_layer().build();
    let l1 = LayerBuilder::new()
        .whiteout("bin/x")
        .file("bin/x", 0o4755, SUID)
        .build();
    let r = scan_layers(&[l0, l1], json!({"User": "app"}));
    assert_eq!(paths_of(&r, "setuid-binary"), ["/bin/x"]);
}

/// Hard links share the target's inode: both paths are setuid, and the
/// capability of the target is the link's too.
#[test]
fn hard_links_carry_mode_and_xattrs() {
    let l0 = base_layer()
        .file("usr/bin/passwd", 0o4755, SUID)
        .file_pax(
            "usr/bin/ping",
            0o755,
            &[("SCHILY.xattr.security.capability", CAP_NET_RAW)],
        )
        .build();
    let l1 = LayerBuilder::new()
        .hardlink("usr/bin/passwd2", "usr/bin/passwd", 0o4755)
        .hardlink("usr/sbin/ping4", "./usr/bin/ping", 0o755)
        .build();
    let r = scan_layers(&[l0, l1], json!({"User": "app"}));
    assert_eq!(
        paths_of(&r, "setuid-binary"),
        ["/usr/bin/passwd", "/usr/bin/passwd2"]
    );
    assert_eq!(
        paths_of(&r, "file-capability"),
        ["/usr/bin/ping", "/usr/sbin/ping4"]
    );
    for f in findings_of(&r, "file-capability") {
        assert_eq!(f["details"]["capabilities"], json!(["cap_net_raw"]));
    }
}

/// bsdtar's `LIBARCHIVE.xattr.security.capability` (base64, no padding)
/// alone is no capability: no Go runtime applies it (bsdtar writes a SCHILY
/// record too). v3 capabilities report their rootid.
#[test]
fn libarchive_xattrs_and_v3_capabilities() {
    // v3, cap_setuid+ep, rootid 1000
    let mut v3 = vec![
        1, 0, 0, 3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    v3.extend_from_slice(&1000u32.to_le_bytes());
    let l0 = base_layer()
        .file_pax(
            "usr/bin/ping",
            0o755,
            &[(
                "LIBARCHIVE.xattr.security.capability",
                b"AQAAAgAgAAAAAAAAAAAAAAAAAAA",
            )],
        )
        .file_pax(
            "usr/bin/ns",
            0o755,
            &[("SCHILY.xattr.security.capability", &v3)],
        )
        .build();
    let r = scan_layers(&[l0], json!({"User": "app"}));
    let caps = findings_of(&r, "file-capability");
    assert_eq!(caps.len(), 1, "{caps:?}");
    let ns = caps.iter().find(|f| f["path"] == "/usr/bin/ns").unwrap();
    assert_eq!(ns["details"]["revision"], 3);
    assert_eq!(ns["details"]["rootid"], 1000);
    assert_eq!(ns["details"]["capabilities"], json!(["cap_setuid"]));
}

/// Names longer than 100 bytes (GNU long names written by tar-rs) and old
/// writers' file-type bits in the mode field.
#[test]
fn long_names_and_type_bits_in_mode() {
    let long = format!("opt/{}/bin/tool", "very-long-directory-name".repeat(8));
    let l0 = base_layer()
        .file(&long, 0o4755, SUID)
        .file("usr/bin/old", 0o104755, SUID)
        .build();
    let r = scan_layers(&[l0], json!({"User": "app"}));
    let got = paths_of(&r, "setuid-binary");
    assert_eq!(got, [format!("/{long}"), "/usr/bin/old".to_owned()]);
    for f in findings_of(&r, "setuid-binary") {
        assert_eq!(f["details"]["mode"], "4755");
    }
}

/// A later layer changes a file's mode, replaces a directory by a file, and a
/// file by a symlink: the final filesystem decides, and the later layer is
/// the one named.
#[test]
fn replacements_across_layers() {
    let l0 = base_layer()
        .file("usr/bin/a", 0o4755, SUID)
        .file("usr/bin/b", 0o755, SUID)
        .dir("srv/d/", 0o755)
        .file("srv/d/inner", 0o4755, SUID)
        .file("srv/world", 0o666, b"x")
        .build();
    let l1 = LayerBuilder::new()
        .file("usr/bin/a", 0o755, SUID)
        .file("usr/bin/b", 0o4755, SUID)
        .file("srv/d", 0o644, b"now a file")
        .symlink("srv/world", "/etc/passwd")
        .build();
    let r = scan_layers(&[l0, l1], json!({"User": "app"}));
    assert_eq!(paths_of(&r, "setuid-binary"), ["/usr/bin/b"]);
    assert_eq!(findings_of(&r, "setuid-binary")[0]["layer_index"], 1);
    assert!(paths_of(&r, "world-writable-path").is_empty());
}

/// With `/bin -> usr/bin` in a lower layer (merged /usr), a later `bin/su`
/// lands at `/usr/bin/su`, and `.wh.su` in `bin/` deletes it.
#[test]
fn parents_resolve_through_symlinks() {
    let l0 = base_layer()
        .dir("usr/bin/", 0o755)
        .symlink("bin", "usr/bin")
        .build();
    let l1 = LayerBuilder::new().file("bin/su", 0o4755, SUID).build();
    let r = scan_layers(&[l0.clone(), l1.clone()], json!({"User": "app"}));
    assert_eq!(paths_of(&r, "setuid-binary"), ["/usr/bin/su"]);
    let l2 = LayerBuilder::new().whiteout("bin/su").build();
    let r = scan_layers(&[l0, l1, l2], json!({"User": "app"}));
    assert!(paths_of(&r, "setuid-binary").is_empty());
}

/// A user name that /etc/passwd maps to uid 0 is root; sticky /tmp, setgid
/// directories, symlinks and device nodes are not findings.
#[test]
fn root_by_name_and_non_findings() {
    let l0 = LayerBuilder::new()
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\n",
        )
        .dir("tmp/", 0o1777)
        .dir("var/mail/", 0o2775)
        .symlink("usr/bin/link", "/etc/shadow")
        .char_device("dev/null", 0o666)
        .build();
    let r = scan_layers(&[l0], json!({"User": "toor"}));
    let root = findings_of(&r, "root-user");
    assert_eq!(root.len(), 1, "{:#}", r["findings"]);
    assert_eq!(
        paths_of(&r, "uid0-account"),
        ["/etc/passwd"],
        "toor is a second uid-0 account"
    );
    for rule in ["setgid-binary", "world-writable-path", "setuid-binary"] {
        assert!(paths_of(&r, rule).is_empty(), "{rule}: {:#}", r["findings"]);
    }
}

/// The same layers uncompressed, gzip and zstd, in an OCI layout and a legacy
/// docker-archive on standard input, give the same findings.
#[test]
fn compressions_and_containers_agree() {
    let layers = vec![
        base_layer().file("usr/bin/s", 0o4755, SUID).build(),
        LayerBuilder::new()
            .file("etc/app.conf", 0o666, b"x")
            .build(),
    ];
    let mut seen = Vec::new();
    for comp in [Comp::None, Comp::Gzip, Comp::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        write_oci_layout(dir.path(), &layers, comp, json!({}));
        let r = scan_json(dir.path().to_str().unwrap());
        seen.push(rule_paths(&r));
    }
    let archive = docker_archive(&layers, json!({}), "edge:1");
    let out = imgscan_stdin(
        &["--format", "json", "--fail-on", "none", "-"],
        Some(&archive),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    seen.push(rule_paths(&serde_json::from_slice(&out.stdout).unwrap()));
    assert!(seen.iter().all(|s| s == &seen[0]), "{seen:#?}");
    assert!(seen[0].contains(&("root-user".to_owned(), String::new())));
    assert!(seen[0].contains(&("setuid-binary".to_owned(), "/usr/bin/s".to_owned())));
}

/// Output is deterministic: two runs, same bytes.
#[test]
fn deterministic_output() {
    let layers = vec![
        base_layer()
            .file("usr/bin/s", 0o4755, SUID)
            .file("usr/bin/t", 0o2755, SUID)
            .file("etc/x", 0o666, b"x")
            .build(),
    ];
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(dir.path(), &layers, Comp::Gzip, json!({"User": "root"}));
    let p = dir.path().to_str().unwrap();
    for fmt in ["json", "sarif", "table"] {
        let a = crate::util::imgscan(&["--format", fmt, p]);
        let b = crate::util::imgscan(&["--format", fmt, p]);
        assert_eq!(a.status.code(), Some(1));
        assert_eq!(a.stdout, b.stdout, "{fmt}");
    }
}
