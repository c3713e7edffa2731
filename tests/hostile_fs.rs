//! Hostile filesystems (#9): layers that play on how extraction resolves
//! paths, hard links and whiteouts, symlink chains built to be slow, and
//! images built to exhaust memory.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{
    Comp, LayerBuilder, base_layer, findings_of, imgscan, rule_paths, write_oci_layout,
};

const SUID: &[u8] = b"\x7fELF-suid";

fn layout(layers: &[Vec<u8>]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(dir.path(), layers, Comp::None, json!({"User": "app"}));
    dir
}

/// Scans `layers` (with `args` before the image); returns the exit code,
/// the JSON report (when there is one) and standard error.
fn run(layers: &[Vec<u8>], args: &[&str]) -> (Option<i32>, Option<Value>, String) {
    let dir = layout(layers);
    let image = dir.path().to_str().unwrap().to_owned();
    let mut all = vec!["--format", "json", "--fail-on", "none"];
    all.extend_from_slice(args);
    all.push(&image);
    let out = imgscan(&all);
    let report = serde_json::from_slice(&out.stdout).ok();
    (
        out.status.code(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scan(layers: &[Vec<u8>]) -> Value {
    let (code, report, stderr) = run(layers, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    report.unwrap()
}

/// Scans `layers`, which must be refused (exit 2, nothing on stdout); returns
/// the message.
fn refused(layers: &[Vec<u8>], args: &[&str]) -> String {
    let (code, report, stderr) = run(layers, args);
    assert_eq!(code, Some(2), "not refused: {report:?} {stderr}");
    assert!(report.is_none());
    stderr
}

fn setuid_paths(r: &Value) -> Vec<String> {
    rule_paths(r)
        .into_iter()
        .filter(|(rule, _)| rule == "setuid-binary")
        .map(|(_, p)| p)
        .collect()
}

/// A raw member with any typeflag, PAX records and link name.
fn raw_member(
    b: &mut tar::Builder<Vec<u8>>,
    path: &str,
    typeflag: u8,
    mode: u32,
    pax: &[(&str, &[u8])],
    link: Option<&str>,
    data: &[u8],
) {
    if !pax.is_empty() {
        b.append_pax_extensions(pax.iter().copied()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::new(typeflag));
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    match link {
        Some(l) if !l.is_empty() => b.append_link(&mut h, path, l).unwrap(),
        // The header's link name is left empty.
        _ => b.append_data(&mut h, path, data).unwrap(),
    }
}

/// A hard link header's setuid mode reaches the inode: the original file and
/// a name linked earlier are setuid too, attributed to the link's layer.
#[test]
fn link_header_mode_reaches_every_name() {
    let l0 = base_layer()
        .file("usr/bin/tool", 0o755, SUID)
        .hardlink("usr/bin/tool2", "usr/bin/tool", 0o755)
        .build();
    let l1 = LayerBuilder::new()
        .hardlink("usr/local/tool3", "usr/bin/tool", 0o4755)
        .build();
    let r = scan(&[l0, l1]);
    assert_eq!(
        setuid_paths(&r),
        ["/usr/bin/tool", "/usr/bin/tool2", "/usr/local/tool3"]
    );
    for f in findings_of(&r, "setuid-binary") {
        assert_eq!(f["layer_index"], 1, "{f}");
    }
}

/// A hard link header that takes the setuid bit from a file is refused:
/// containerd applies it, umoci keeps the file setuid.
#[test]
fn link_header_taking_privilege_is_refused() {
    let l0 = base_layer().file("usr/bin/su", 0o4755, SUID).build();
    let l1 = LayerBuilder::new()
        .hardlink("usr/bin/su2", "usr/bin/su", 0o755)
        .build();
    let msg = refused(&[l0, l1], &[]);
    assert!(
        msg.contains("ambiguous image: hard link /usr/bin/su2"),
        "{msg}"
    );
    assert!(msg.contains("umoci"), "{msg}");
}

/// A whiteout under a symlinked directory deletes in the symlink's target,
/// as every runtime does (`lib -> usr/lib`, `lib/.wh.su`).
#[test]
fn whiteout_through_a_symlinked_directory() {
    let l0 = base_layer()
        .dir("usr/lib/", 0o755)
        .file("usr/lib/su", 0o4755, SUID)
        .file("usr/lib/keep", 0o4755, SUID)
        .symlink("lib", "usr/lib")
        .build();
    let l1 = LayerBuilder::new().whiteout("lib/su").build();
    let r = scan(&[l0.clone(), l1]);
    assert_eq!(setuid_paths(&r), ["/usr/lib/keep"]);
    // A whiteout of the symlink itself removes the symlink, not the target.
    let l1 = LayerBuilder::new().whiteout("lib").build();
    let r = scan(&[l0, l1]);
    assert_eq!(setuid_paths(&r), ["/usr/lib/keep", "/usr/lib/su"]);
}

/// An opaque marker in a symlinked directory is refused: containerd clears
/// the symlink's target, moby 28 and earlier clears nothing.
#[test]
fn opaque_marker_in_a_symlinked_directory_is_refused() {
    let l0 = base_layer()
        .dir("usr/lib/", 0o755)
        .file("usr/lib/su", 0o4755, SUID)
        .symlink("lib", "usr/lib")
        .build();
    let l1 = LayerBuilder::new().opaque("lib").build();
    let msg = refused(&[l0.clone(), l1], &[]);
    assert!(
        msg.contains("ambiguous image: the opaque marker /lib/"),
        "{msg}"
    );
    // Through a symlinked parent, the marker clears the real directory.
    let l1 = LayerBuilder::new().opaque("lib/sub").build();
    let l0b = LayerBuilder::new()
        .dir("usr/lib/sub/", 0o755)
        .file("usr/lib/sub/x", 0o4755, SUID)
        .build();
    let r = scan(&[l0, l0b, l1]);
    assert_eq!(setuid_paths(&r), ["/usr/lib/su"]);
}

/// A member below a file is refused (containerd and moby fail with
/// ENOTDIR, umoci replaces the file by a directory), also through a symlink.
#[test]
fn member_below_a_file_is_refused() {
    let l0 = base_layer()
        .file("opt/x", 0o644, b"x")
        .symlink("opt/y", "x")
        .build();
    for path in ["opt/x/su", "opt/y/su"] {
        let l1 = LayerBuilder::new().file(path, 0o4755, SUID).build();
        let msg = refused(&[l0.clone(), l1], &[]);
        assert!(msg.contains("ambiguous image: member /opt/"), "{msg}");
        assert!(msg.contains("ENOTDIR"), "{msg}");
    }
    // A directory over the file is fine: the file is replaced.
    let l1 = LayerBuilder::new()
        .dir("opt/x/", 0o755)
        .file("opt/x/su", 0o4755, SUID)
        .build();
    assert_eq!(setuid_paths(&scan(&[l0, l1])), ["/opt/x/su"]);
}

/// Hard links runtimes cannot make (to a missing path, to a directory, to
/// themselves) are refused.
#[test]
fn impossible_hard_links_are_refused() {
    let l0 = base_layer().dir("opt/d/", 0o755).build();
    for (path, target, why) in [
        ("usr/bin/x", "usr/bin/nothing", "ENOENT"),
        ("usr/bin/x", "opt/d", "EPERM"),
        ("etc/passwd", "etc/passwd", "ENOENT"),
    ] {
        let l1 = LayerBuilder::new().hardlink(path, target, 0o4755).build();
        let msg = refused(&[l0.clone(), l1], &[]);
        assert!(msg.contains(&format!("hard link /{path}")), "{msg}");
        assert!(msg.contains(why), "{msg}");
    }
}

/// Member types the appliers do not handle are refused; a PAX global
/// header is ignored, as runtimes do.
#[test]
fn unhandled_member_types_are_refused() {
    for typeflag in [b'V', b'M', b'Z'] {
        let mut b = tar::Builder::new(Vec::new());
        raw_member(&mut b, "usr/bin/su", typeflag, 0o4755, &[], None, SUID);
        let msg = refused(&[base_layer().build(), b.into_inner().unwrap()], &[]);
        assert!(
            msg.contains("ambiguous image: member `usr/bin/su`"),
            "{msg}"
        );
    }
    // A PAX global header is a member to Go's reader, which runtimes apply
    // differently (umoci refuses it, moby removes the path it names).
    let mut b = tar::Builder::new(Vec::new());
    raw_member(&mut b, "pax_global_header", b'g', 0o644, &[], None, b"");
    raw_member(&mut b, "usr/bin/su", b'0', 0o4755, &[], None, SUID);
    let msg = refused(&[base_layer().build(), b.into_inner().unwrap()], &[]);
    assert!(msg.contains("PAX global header"), "{msg}");
}

/// Owners are what `lchown(2)` leaves: truncated to 32 bits, and -1
/// (unchanged) is the extracting user, root.
#[test]
fn owners_are_truncated_to_32_bits() {
    let mut b = tar::Builder::new(Vec::new());
    for (path, uid) in [
        ("usr/bin/a", "4294967296"),
        ("usr/bin/b", "4294967295"),
        ("usr/bin/c", "4294968296"),
    ] {
        let pax: [(&str, &[u8]); 2] = [("uid", uid.as_bytes()), ("gid", uid.as_bytes())];
        raw_member(&mut b, path, b'0', 0o4755, &pax, None, SUID);
    }
    let r = scan(&[base_layer().build(), b.into_inner().unwrap()]);
    let owners: Vec<(String, Value, Value)> = findings_of(&r, "setuid-binary")
        .into_iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["details"]["uid"].clone(),
                f["details"]["gid"].clone(),
            )
        })
        .collect();
    assert_eq!(
        owners,
        [
            ("/usr/bin/a".to_owned(), json!(0), json!(0)),
            ("/usr/bin/b".to_owned(), json!(0), json!(0)),
            ("/usr/bin/c".to_owned(), json!(1000), json!(1000)),
        ]
    );
}

/// Symlinks `symlink(2)` refuses (an empty target, or one over 4095 bytes)
/// are refused, quickly even at a megabyte.
#[test]
fn symlinks_runtimes_cannot_create_are_refused() {
    let big = "./".repeat(400 * 1024) + "etc";
    for target in [String::new(), big] {
        let mut b = tar::Builder::new(Vec::new());
        // A PAX linkpath, as tar-rs would clean the `./` components away.
        let pax: &[(&str, &[u8])] = if target.is_empty() {
            &[]
        } else {
            &[("linkpath", target.as_bytes())]
        };
        raw_member(&mut b, "bin", b'2', 0o777, pax, None, b"");
        let layer = b.into_inner().unwrap();
        let t = Instant::now();
        let msg = refused(&[base_layer().build(), layer], &[]);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(msg.contains("ambiguous image: symlink `bin`"), "{msg}");
    }
}

/// A layer written member by member, symlink targets exactly as given (a
/// PAX `linkpath`: tar-rs would clean `.` components out of a link name).
struct Raw(tar::Builder<Vec<u8>>);

impl Raw {
    fn new() -> Self {
        let mut r = Self(tar::Builder::new(Vec::new()));
        r.file(
            "etc/passwd",
            0o644,
            b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        );
        r
    }
    fn dir(&mut self, path: &str) -> &mut Self {
        raw_member(&mut self.0, path, b'5', 0o755, &[], None, b"");
        self
    }
    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        raw_member(&mut self.0, path, b'0', mode, &[], None, data);
        self
    }
    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let pax: [(&str, &[u8]); 1] = [("linkpath", target.as_bytes())];
        raw_member(&mut self.0, path, b'2', 0o777, &pax, None, b"");
        self
    }
    fn build(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A chain of 200 symlinks whose 4 KiB targets are made of `..` and
/// trailing `.` components resolves in time linear in their bytes: members
/// through it land where they should, in well under the time a quadratic
/// walk would take.
#[test]
fn slow_symlink_chains_resolve_fast() {
    let mut l = Raw::new();
    l.dir("d/").dir("d/x/");
    // s0 -> ./././.../d; s(i) -> s(i-1)/x/../x/../.../././. (4 KiB each).
    l.symlink("s0", &format!("{}d", "./".repeat(2000)));
    for i in 1..200 {
        let pad = "x/../".repeat(780) + &"./".repeat(90);
        l.symlink(&format!("s{i}"), &format!("s{}/{pad}", i - 1));
    }
    // Members through the deepest link, alternating with other directories
    // so that no cached parent directory helps.
    for k in 0..200 {
        l.file(&format!("s199/f{k}"), 0o644, b"")
            .file(&format!("d/x/g{k}"), 0o644, b"");
    }
    l.file("s199/x/su", 0o4755, SUID);
    let t = Instant::now();
    let (code, report, stderr) = run(&[l.build()], &[]);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(setuid_paths(&report.unwrap()), ["/d/x/su"]);
}

/// Members through a long chain of symlinks, each after a replaced symlink
/// (which makes every cached resolution stale), run out of the image's
/// resolution allowance: refused in seconds, not hours.
#[test]
fn resolution_work_is_bounded() {
    let mut l = Raw::new();
    l.dir("d/").dir("d/x/").symlink("s0", "d");
    for i in 1..250 {
        let pad = "x/../".repeat(800);
        l.symlink(&format!("s{i}"), &format!("s{}/{pad}", i - 1));
    }
    for k in 0..3000 {
        l.symlink("junk", &format!("j{k}"))
            .file(&format!("s249/x/f{k}/a"), 0o644, b"");
    }
    let t = Instant::now();
    let msg = refused(&[l.build()], &[]);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(msg.contains("steps"), "{msg}");
}

/// Layers each well within the per-layer limits but together over a small
/// `--max-memory` are refused with exit 2 naming the budget; the default
/// budget takes the same image.
#[test]
fn many_layers_exceed_a_small_budget() {
    let layers: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            let mut l = LayerBuilder::new().dir(&format!("layer{i:02}/"), 0o755);
            for k in 0..2000 {
                l = l.file(
                    &format!("layer{i:02}/a-rather-long-directory-name/file-{k:06}-padding"),
                    0o644,
                    b"",
                );
            }
            l.build()
        })
        .collect();
    let msg = refused(&layers, &["--max-memory", "2M"]);
    assert!(msg.contains("memory budget of 2 MiB"), "{msg}");
    assert!(msg.contains("--max-memory"), "{msg}");
    let (code, _, stderr) = run(&layers, &[]);
    assert_eq!(code, Some(0), "{stderr}");
}

/// Every image of a run gets a fresh budget: two images that each fit pass
/// in one run, though one image of both their layers does not fit.
#[test]
fn each_image_has_its_own_budget() {
    let layers: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let mut l = LayerBuilder::new();
            for k in 0..2000 {
                l = l.file(
                    &format!("layer{i}/a-rather-long-directory-name/f{k:06}"),
                    0o644,
                    b"",
                );
            }
            l.build()
        })
        .collect();
    let msg = refused(&layers, &["--max-memory", "2M"]);
    assert!(msg.contains("memory budget of 2 MiB"), "{msg}");
    let (a, b) = (layout(&layers[..4]), layout(&layers[4..]));
    let out = imgscan(&[
        "--max-memory",
        "2M",
        "--fail-on",
        "none",
        a.path().to_str().unwrap(),
        b.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Long paths create a directory per component: those implicit directories
/// are charged too.
#[test]
fn implicit_directories_are_charged() {
    let mut l = LayerBuilder::new();
    let deep = "a/".repeat(2000);
    for k in 0..100 {
        l = l.file(&format!("x{k}/{deep}f"), 0o644, b"");
    }
    let msg = refused(&[base_layer().build(), l.build()], &["--max-memory", "8M"]);
    assert!(msg.contains("memory budget of 8 MiB"), "{msg}");
}

/// Symlink targets (up to 4095 bytes each) are charged.
#[test]
fn symlink_targets_are_charged() {
    let mut l = LayerBuilder::new();
    let target = "t/".repeat(2000);
    for k in 0..2000 {
        l = l.symlink(&format!("l{k}"), &target);
    }
    let msg = refused(&[base_layer().build(), l.build()], &["--max-memory", "4M"]);
    assert!(msg.contains("memory budget of 4 MiB"), "{msg}");
}

/// `--max-memory` rejects sizes it cannot read.
#[test]
fn max_memory_needs_a_size() {
    let out = imgscan(&["--max-memory", "lots", "x.tar"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a size"));
}

/// Findings are charged to the memory budget too: 20,000 setuid hard links
/// make 20,000 findings, which fail a budget the filesystem alone fits in,
/// and scan under the default one.
#[test]
fn findings_are_charged_to_the_budget() {
    let mut b = LayerBuilder::new()
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/su", 0o4755, SUID);
    for i in 0..20_000 {
        b = b.hardlink(&format!("usr/bin/l{i:05}"), "usr/bin/su", 0o4755);
    }
    let layers = [base_layer().build(), b.build()];
    let msg = refused(&layers, &["--max-memory", "16M"]);
    assert!(msg.contains("the list of findings"), "{msg}");
    let (code, report, stderr) = run(&layers, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(setuid_paths(&report.unwrap()).len(), 20_001);
}
