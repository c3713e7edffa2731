//! Hostile images judged against real runtimes: each image is unpacked by
//! `umoci unpack` (Go `archive/tar` + umoci's applier) and loaded by
//! `podman load` + `podman image mount` (containers/image + containers/storage,
//! the stack podman and cri-o run), and imgscan must either see the same
//! setuid/setgid files, owners, capabilities and `USER` as every runtime that
//! accepted the image, or refuse the image with exit 2.
//!
//! The images are written byte by byte ([`RawTar`]), one per way a scanner has
//! been fooled (issue #9): data after header-only members, competing long
//! names, global headers, non-UTF-8 names, JSON keys that differ in case, and
//! so on. A case says what imgscan must do (`Same` or `Refuse`); in both cases
//! the comparison with the runtimes runs, so a case cannot pass by refusing
//! what the runtimes read plainly, nor by agreeing with only one of them.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::support::rawtar::{ELF, Hdr, RawTar, archive_with_config, base, cfg_name, outer};
use crate::support::tools::{require_root, require_tool};
use crate::util::{config, imgscan, sha256};

/// What one reader (a runtime or imgscan) saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Facts {
    /// `(path, uid)` of regular files with S_ISUID.
    pub(crate) setuid: BTreeSet<(String, u64)>,
    /// `(path, gid)` of regular files with S_ISGID.
    pub(crate) setgid: BTreeSet<(String, u64)>,
    /// Paths with a `security.capability` xattr.
    pub(crate) caps: BTreeSet<String>,
    /// The config's `User`, when the reader exposes it.
    pub(crate) user: Option<String>,
    /// Whether the container runs as uid 0, when the reader resolves users.
    pub(crate) root: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// imgscan reads it as every runtime that loads it does.
    Same,
    /// imgscan refuses it (exit 2): runtimes read it differently from each
    /// other, or imgscan cannot read it as they do.
    Refuse,
    /// Either, as long as what imgscan reads is what the runtimes read (a
    /// file the runtime resolves that imgscan may not have captured).
    Either,
}

pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) layers: Vec<Vec<u8>>,
    pub(crate) container: Value,
    pub(crate) expect: Expect,
    /// A docker-archive written by hand (outer-archive tricks): loaded by
    /// podman only, as umoci reads OCI layouts.
    pub(crate) archive: Option<Vec<u8>>,
}

impl Case {
    pub(crate) fn new(
        name: &'static str,
        layers: Vec<Vec<u8>>,
        container: Value,
        expect: Expect,
    ) -> Self {
        Self {
            name,
            layers,
            container,
            expect,
            archive: None,
        }
    }
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (see scripts/install-test-deps)"))
}

/// Walks an unpacked root filesystem without following symlinks.
pub(crate) fn walk(root: &Path) -> Facts {
    let mut facts = Facts::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                if m.mode() & 0o4000 != 0 {
                    facts.setuid.insert((rel.clone(), u64::from(m.uid())));
                }
                if m.mode() & 0o2000 != 0 {
                    facts.setgid.insert((rel.clone(), u64::from(m.gid())));
                }
            }
        }
    }
    // getcap prints "PATH CAPS" per file that has the xattr.
    let out = run(Command::new("getcap").arg("-r").arg(root));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((p, _)) = line.split_once(' ')
            && let Ok(rel) = Path::new(p).strip_prefix(root)
        {
            facts.caps.insert(format!("/{}", rel.display()));
        }
    }
    facts
}

/// `umoci unpack` of the case as an OCI layout; `None` if umoci refuses it.
fn umoci(case: &Case, work: &Path) -> Option<Facts> {
    let layout = work.join("layout");
    write_layout(&layout, &case.layers, &case.container);
    umoci_unpack(case.name, &layout, work)
}

/// `umoci unpack` of `layout:test` into `work`; `None` if umoci refuses it.
pub(crate) fn umoci_unpack(name: &str, layout: &Path, work: &Path) -> Option<Facts> {
    let bundle = work.join("bundle");
    let out = run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:test", layout.display()))
        .arg(&bundle));
    if !out.status.success() {
        eprintln!(
            "{name}: umoci refused: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let mut facts = walk(&bundle.join("rootfs"));
    // umoci resolves the config's User against the unpacked rootfs with
    // runc's libcontainer/user, as runc does at start, and writes the uid
    // into the runtime spec.
    let spec: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    facts.root = spec["process"]["user"]["uid"].as_u64().map(|uid| uid == 0);
    Some(facts)
}

/// `podman load` + `podman image mount` of the case as a docker-archive;
/// `None` if podman refuses it.
fn podman(case: &Case, archive: &Path, work: &Path) -> Option<Facts> {
    let tag = format!("localhost/imgscan-oracle/{}:test", case.name);
    podman_read(
        case.name,
        work,
        &["load", "-q", "-i", archive.to_str().unwrap()],
        |_| tag.clone(),
    )
}

/// Imports an image into a private podman store in `work` with `import`
/// (`load -i FILE`, `pull oci:DIR:test`), then reads what `podman image
/// mount` shows and the config's `User`; `None` if podman refuses it.
/// `image` names the imported image from the import's standard output.
pub(crate) fn podman_read(
    name: &str,
    work: &Path,
    import: &[&str],
    image: impl FnOnce(&str) -> String,
) -> Option<Facts> {
    let root = work.join("podman-root");
    let runroot = work.join("podman-run");
    let podman = |args: &[&str]| {
        run(Command::new("podman")
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(args))
    };
    let out = podman(import);
    if !out.status.success() {
        eprintln!(
            "{name}: podman refused: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let image = image(String::from_utf8_lossy(&out.stdout).trim());
    let out = podman(&["image", "mount", &image]);
    assert!(
        out.status.success(),
        "{name}: podman image mount {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mnt = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let mut facts = walk(&mnt);
    let out = podman(&["image", "inspect", "--format", "{{.Config.User}}", &image]);
    assert!(out.status.success(), "{name}: podman image inspect {image}");
    // Only the newline podman adds goes: a USER with spaces is compared as is.
    facts.user = Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end_matches('\n')
            .to_owned(),
    );
    let _ = podman(&["image", "unmount", &image]);
    Some(facts)
}

/// An OCI layout of uncompressed layers (`DIR:test`).
fn write_layout(dir: &Path, layers: &[Vec<u8>], container: &Value) {
    crate::util::write_oci_layout(dir, layers, crate::util::Comp::None, container.clone());
}

/// imgscan's reading of the docker-archive; `None` when it refuses (exit 2).
fn imgscan_facts(case: &Case, archive: &Path) -> Option<Facts> {
    imgscan_of(case.name, archive.to_str().unwrap())
}

/// What imgscan reads of `arg`; `None` when it refuses (exit 2).
pub(crate) fn imgscan_of(name: &str, arg: &str) -> Option<Facts> {
    let out = imgscan(&["--format", "json", "--fail-on", "none", arg]);
    match out.status.code() {
        Some(0) => {}
        Some(2) => {
            eprintln!(
                "{name}: imgscan refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        other => panic!(
            "{name}: imgscan exited {other:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut facts = Facts {
        root: Some(false),
        ..Facts::default()
    };
    for f in r["findings"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap_or_default().to_owned();
        let d = &f["details"];
        match f["rule_id"].as_str().unwrap() {
            "setuid-binary" => {
                facts.setuid.insert((path, d["uid"].as_u64().unwrap()));
            }
            "setgid-binary" => {
                facts.setgid.insert((path, d["gid"].as_u64().unwrap()));
            }
            "file-capability" => {
                facts.caps.insert(path);
            }
            "root-user" => facts.root = Some(true),
            _ => {}
        }
    }
    facts.user = Some(r["image"]["user"].as_str().unwrap_or_default().to_owned());
    Some(facts)
}

pub(crate) fn check(case: &Case) {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("image.tar");
    let bytes = case.archive.clone().unwrap_or_else(|| {
        crate::util::docker_archive(
            &case.layers,
            case.container.clone(),
            &format!("localhost/imgscan-oracle/{}:test", case.name),
        )
    });
    std::fs::write(&archive, bytes).unwrap();
    let umoci = if case.archive.is_none() {
        umoci(case, work.path())
    } else {
        None
    };
    let runtimes: Vec<(&str, Facts)> = [
        ("umoci", umoci),
        ("podman", podman(case, &archive, work.path())),
    ]
    .into_iter()
    .filter_map(|(n, f)| f.map(|f| (n, f)))
    .collect();
    let seen = imgscan_facts(case, &archive);
    match (case.expect, &seen) {
        (Expect::Same, None) => panic!("{}: imgscan refused an image it must read", case.name),
        (Expect::Refuse, Some(f)) => {
            panic!(
                "{}: imgscan must refuse this image, but read {f:?}",
                case.name
            )
        }
        _ => {}
    }
    let Some(seen) = seen else { return };
    assert!(
        !runtimes.is_empty(),
        "{}: imgscan read an image no runtime loads",
        case.name
    );
    for (name, rt) in &runtimes {
        eprintln!("{}: {name} read {rt:?}", case.name);
    }
    eprintln!("{}: imgscan read {seen:?}", case.name);
    // Where the runtimes disagree, imgscan reports the worst case: every
    // file that any of them leaves setuid, setgid or capable.
    let mut worst = Facts::default();
    for (_, rt) in &runtimes {
        worst.setuid.extend(rt.setuid.iter().cloned());
        worst.setgid.extend(rt.setgid.iter().cloned());
        worst.caps.extend(rt.caps.iter().cloned());
    }
    let names: Vec<&str> = runtimes.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        seen.setuid, worst.setuid,
        "{}: setuid files vs {names:?}",
        case.name
    );
    assert_eq!(
        seen.setgid, worst.setgid,
        "{}: setgid files vs {names:?}",
        case.name
    );
    assert_eq!(
        seen.caps, worst.caps,
        "{}: capabilities vs {names:?}",
        case.name
    );
    for (name, rt) in &runtimes {
        if let Some(u) = &rt.user {
            assert_eq!(seen.user.as_ref(), Some(u), "{}: USER vs {name}", case.name);
        }
    }
    if let Some(root) = runtimes
        .iter()
        .filter_map(|(_, rt)| rt.root)
        .reduce(|a, b| a || b)
    {
        assert_eq!(
            seen.root,
            Some(root),
            "{}: runs as root vs {names:?}",
            case.name
        );
    }
}

/// Fails the test unless the runtimes are installed and it runs as root.
pub(crate) fn require_runtimes() {
    for t in ["umoci", "podman", "getcap"] {
        require_tool(t);
    }
    require_root("the runtime oracle tests unpack images as root (ownership must survive)");
}

/// A plain image with a setuid-root file: every reader agrees (the control).
#[test]
fn control_setuid_file() {
    require_runtimes();
    check(&Case::new(
        "control",
        vec![base().file(b"usr/bin/su", 0o4755, ELF).finish()],
        json!({"User": "app"}),
        Expect::Same,
    ));
}

/// Header-only members (links, directories, devices, FIFOs) carry no data in
/// Go even when their `size` says otherwise: skipping `size` bytes would
/// swallow the setuid binary hidden right after them.
#[test]
fn header_only_members_with_a_size() {
    require_runtimes();
    for (name, typeflag, link) in [
        ("hidden-after-hardlink", b'1', &b"etc/passwd"[..]),
        ("hidden-after-symlink", b'2', &b"passwd"[..]),
        ("hidden-after-dir", b'5', &b""[..]),
        ("hidden-after-fifo", b'6', &b""[..]),
    ] {
        let hidden = RawTar::default().file(b"usr/bin/hidden", 0o4755, ELF).0;
        let mut h = Hdr::new(b"etc/decoy", typeflag, 0o755, hidden.len() as u64);
        h.link = link;
        let mut layer = base().header(&h);
        layer.0.extend_from_slice(&hidden);
        check(&Case::new(
            name,
            vec![layer.finish()],
            json!({"User": "app"}),
            Expect::Same,
        ));
    }
}

/// A PAX `size` on a directory header: still no data in Go.
#[test]
fn pax_size_on_a_directory() {
    require_runtimes();
    let hidden = RawTar::default().file(b"usr/bin/hidden", 0o4755, ELF).0;
    let size = hidden.len().to_string();
    let mut layer = base().pax(b'x', &[("size", size.as_bytes())]).dir(b"opt/");
    layer.0.extend_from_slice(&hidden);
    check(&Case::new(
        "pax-size-dir",
        vec![layer.finish()],
        json!({"User": "app"}),
        Expect::Same,
    ));
}

/// A GNU long name and a PAX `path` for the same member, in both orders: the
/// setuid file lands under one name; imgscan must pick the same.
#[test]
fn gnu_long_name_against_pax_path() {
    require_runtimes();
    let a = base()
        .gnu_long(b'L', b"usr/bin/from-gnu")
        .pax(b'x', &[("path", b"usr/bin/from-pax")])
        .file(b"usr/bin/from-header", 0o4755, ELF)
        .finish();
    let b = base()
        .pax(b'x', &[("path", b"usr/bin/from-pax")])
        .gnu_long(b'L', b"usr/bin/from-gnu")
        .file(b"usr/bin/from-header", 0o4755, ELF)
        .finish();
    for (name, layer) in [("gnu-then-pax", a), ("pax-then-gnu", b)] {
        check(&Case::new(
            name,
            vec![layer],
            json!({"User": "app"}),
            Expect::Same,
        ));
    }
}

/// A global `g` header between a pending `x` header and its member: Go
/// drops the pending `x`; umoci then refuses the `g` member, podman acts on
/// its name and ignores it. imgscan refuses layers with global headers.
#[test]
fn global_header_after_a_pending_pax_header() {
    require_runtimes();
    let layer = base()
        .pax(b'x', &[("path", b"usr/bin/from-pax")])
        .pax(b'g', &[("comment", b"global")])
        .file(b"usr/bin/from-header", 0o4755, ELF)
        .finish();
    check(&Case::new(
        "global-after-pax",
        vec![layer],
        json!({"User": "app"}),
        Expect::Refuse,
    ));
}

/// `GNU.sparse.name` on a member that is not sparse.
#[test]
fn gnu_sparse_name_on_a_plain_file() {
    require_runtimes();
    let layer = base()
        .pax(b'x', &[("GNU.sparse.name", b"usr/bin/from-sparse-name")])
        .file(b"usr/bin/from-header", 0o4755, ELF)
        .finish();
    check(&Case::new(
        "sparse-name",
        vec![layer],
        json!({"User": "app"}),
        Expect::Same,
    ));
}

/// A NUL-typeflag member whose name ends in `/` is a directory in Go (a
/// setgid directory is no finding); a `0`-type one stays a regular file.
#[test]
fn trailing_slash_and_typeflag() {
    require_runtimes();
    let nul = base()
        .header(&Hdr::new(b"usr/bin/tool/", 0, 0o2755, 0))
        .finish();
    check(&Case::new(
        "nul-type-slash",
        vec![nul],
        json!({"User": "app"}),
        Expect::Same,
    ));
}

/// Names that are not UTF-8: `\xff` and `\xfe` are different files to the
/// runtime; a whiteout of one must not delete the other.
#[test]
fn names_that_are_not_utf8() {
    require_runtimes();
    let l0 = base().file(b"usr/bin/\xff", 0o4755, ELF).finish();
    let l1 = RawTar::default()
        .file(b"usr/bin/.wh.\xfe", 0o644, b"")
        .finish();
    check(&Case::new(
        "non-utf8",
        vec![l0, l1],
        json!({"User": "app"}),
        Expect::Refuse,
    ));
}

/// Go's encoding/json matches `user` to the `User` field: a lone lower-case
/// key is the user the runtime runs as.
#[test]
fn lower_case_user_key() {
    require_runtimes();
    check(&Case::new(
        "lowercase-user",
        vec![base().finish()],
        json!({"user": "0"}),
        Expect::Same,
    ));
}

/// `User` and `user` in one config: Go takes the last; imgscan refuses
/// documents whose keys collide when case-folded.
#[test]
fn colliding_user_keys() {
    require_runtimes();
    // serde_json orders keys: "User" before "user", so Go reads "0".
    check(&Case::new(
        "user-collision",
        vec![base().finish()],
        json!({"User": "app", "user": "0"}),
        Expect::Refuse,
    ));
}

/// uids of 2^32 and more are truncated to 32 bits by lchown: a setuid file
/// owned by 4294967296 is root's.
#[test]
fn uid_truncated_to_32_bits() {
    require_runtimes();
    let layer = base()
        .pax(b'x', &[("uid", b"4294967296")])
        .file(b"usr/bin/wide", 0o4755, ELF)
        .finish();
    check(&Case::new(
        "uid-2-32",
        vec![layer],
        json!({"User": "app"}),
        Expect::Same,
    ));
}

/// A hard link's header mode applies to the inode, i.e. to every name.
#[test]
fn hard_link_header_changes_the_inode() {
    require_runtimes();
    let mut h = Hdr::new(b"usr/bin/alias", b'1', 0o4755, 0);
    h.link = b"usr/bin/plain";
    let layer = base()
        .file(b"usr/bin/plain", 0o755, ELF)
        .header(&h)
        .finish();
    check(&Case::new(
        "hardlink-mode",
        vec![layer],
        json!({"User": "app"}),
        Expect::Same,
    ));
}

/// A passwd line whose uid runc cannot parse (`1000x`): runc's parser
/// leaves it 0, so `USER app` runs as root.
#[test]
fn passwd_uid_field_runc_reads_as_zero() {
    require_runtimes();
    for (name, line) in [
        (
            "passwd-uid-1000x",
            &b"app:x:1000x:1000::/home/app:/bin/sh\n"[..],
        ),
        (
            "passwd-uid-space",
            &b"app:x: 1000:1000::/home/app:/bin/sh\n"[..],
        ),
    ] {
        let mut passwd = b"root:x:0:0:root:/root:/bin/sh\n".to_vec();
        passwd.extend_from_slice(line);
        let layer = RawTar::default()
            .dir(b"etc/")
            .file(b"etc/passwd", 0o644, &passwd)
            .file(b"etc/group", 0o644, b"root:x:0:\napp:x:1000:\n")
            .finish();
        check(&Case::new(
            name,
            vec![layer],
            json!({"User": "app"}),
            Expect::Same,
        ));
    }
}

/// `USER +0`: runc's `strconv.Atoi` takes the sign, so this is uid 0.
#[test]
fn user_with_a_sign() {
    require_runtimes();
    for (name, user) in [("user-plus-0", "+0"), ("user-minus-0", "-0")] {
        check(&Case::new(
            name,
            vec![base().finish()],
            json!({ "User": user }),
            Expect::Same,
        ));
    }
}

/// `/etc/passwd` a symlink, and `/etc` a symlink: the runtime resolves the
/// user through them inside the image; imgscan reads the same file or fails.
#[test]
fn passwd_behind_symlinks() {
    require_runtimes();
    let root_app = b"root:x:0:0:root:/root:/bin/sh\napp:x:0:0::/home/app:/bin/sh\n";
    let decoy = b"root:x:0:0:root:/root:/bin/sh\n";
    let linked_file = RawTar::default()
        .dir(b"usr/")
        .dir(b"usr/share/")
        .dir(b"usr/share/base-passwd/")
        .file(b"usr/share/base-passwd/passwd", 0o644, root_app)
        .dir(b"etc/")
        .header(&Hdr {
            link: b"../usr/share/base-passwd/passwd",
            ..Hdr::new(b"etc/passwd", b'2', 0o777, 0)
        })
        .finish();
    let linked_dir = RawTar::default()
        .dir(b"opt/")
        .dir(b"opt/etc/")
        .file(b"opt/etc/passwd", 0o644, root_app)
        .header(&Hdr {
            link: b"opt/etc",
            ..Hdr::new(b"etc", b'2', 0o777, 0)
        })
        .finish();
    let replaced_by_link = vec![
        base().file(b"opt/passwd", 0o644, decoy).finish(),
        RawTar::default()
            .file(b"opt/other", 0o644, root_app)
            .header(&Hdr {
                link: b"/opt/other",
                ..Hdr::new(b"etc/passwd", b'2', 0o777, 0)
            })
            .finish(),
    ];
    check(&Case::new(
        "passwd-symlink",
        vec![linked_file],
        json!({"User": "app"}),
        Expect::Either,
    ));
    check(&Case::new(
        "etc-symlink",
        vec![linked_dir],
        json!({"User": "app"}),
        Expect::Either,
    ));
    check(&Case::new(
        "passwd-relinked",
        replaced_by_link,
        json!({"User": "app"}),
        Expect::Either,
    ));
}

/// Whiteouts and opaque markers whose parent is a symlinked directory
/// (`/lib -> usr/lib`, as in usr-merged images).
#[test]
fn whiteouts_under_a_symlinked_directory() {
    require_runtimes();
    let lower = base()
        .dir(b"usr/lib/")
        .dir(b"usr/lib/x/")
        .file(b"usr/lib/x/su", 0o4755, ELF)
        .file(b"usr/lib/x/keep", 0o4755, ELF)
        .header(&Hdr {
            link: b"usr/lib",
            ..Hdr::new(b"lib", b'2', 0o777, 0)
        })
        .finish();
    let whiteout = RawTar::default().file(b"lib/x/.wh.su", 0o644, b"").finish();
    let opaque = RawTar::default()
        .file(b"lib/x/.wh..wh..opq", 0o644, b"")
        .finish();
    check(&Case::new(
        "whiteout-via-symlink",
        vec![lower.clone(), whiteout],
        json!({"User": "app"}),
        Expect::Same,
    ));
    check(&Case::new(
        "opaque-via-symlink",
        vec![lower, opaque],
        json!({"User": "app"}),
        Expect::Same,
    ));
}

/// File capabilities as runtimes apply them: from `SCHILY.xattr.*` records.
/// A `LIBARCHIVE.xattr.*` record alone is not applied by Go runtimes.
#[test]
fn capability_records() {
    require_runtimes();
    // setcap cap_net_raw+ep, revision 2
    let cap: &[u8] = &[
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let schily = base()
        .pax(b'x', &[("SCHILY.xattr.security.capability", cap)])
        .file(b"usr/bin/ping", 0o755, ELF)
        .finish();
    let libarchive = base()
        .pax(
            b'x',
            &[(
                "LIBARCHIVE.xattr.security.capability",
                b"AQAAAgAgAAAAAAAAAAAAAAAAAAA",
            )],
        )
        .file(b"usr/bin/ping", 0o755, ELF)
        .finish();
    check(&Case::new(
        "cap-schily",
        vec![schily],
        json!({"User": "app"}),
        Expect::Same,
    ));
    check(&Case::new(
        "cap-libarchive-only",
        vec![libarchive],
        json!({"User": "app"}),
        Expect::Same,
    ));
}

/// One zero block and then a member: Go's reader fails (`ErrHeader`), so no
/// runtime applies the layer and imgscan must not report on it.
#[test]
fn member_after_a_single_zero_block() {
    require_runtimes();
    let mut layer = base().0;
    layer.extend(std::iter::repeat_n(0, 512));
    let layer = RawTar(layer).file(b"usr/bin/late", 0o4755, ELF).finish();
    check(&Case::new(
        "after-zero-block",
        vec![layer],
        json!({"User": "app"}),
        Expect::Refuse,
    ));
}

/// A member type no applier knows.
#[test]
fn unknown_member_type() {
    require_runtimes();
    let layer = base()
        .header(&Hdr::new(b"usr/bin/odd", b'Z', 0o4755, 0))
        .finish();
    check(&Case::new(
        "unknown-type",
        vec![layer],
        json!({"User": "app"}),
        Expect::Either,
    ));
}

/// `manifest.json` keys matched the Go way: `layers` is `Layers`.
#[test]
fn docker_manifest_lower_case_keys() {
    require_runtimes();
    let l0 = base().file(b"usr/bin/su", 0o4755, ELF).finish();
    let cfg = config(std::slice::from_ref(&l0), json!({"User": "app"}));
    let cfg_name = cfg_name(&cfg);
    let manifest = serde_json::to_vec(&json!([{
        "config": cfg_name,
        "repotags": ["localhost/imgscan-oracle/manifest-case:test"],
        "layers": ["l0.tar"],
    }]))
    .unwrap();
    let mut case = Case::new("manifest-case", vec![], json!({}), Expect::Same);
    case.archive = Some(outer(&[
        ("l0.tar", b'0', &l0),
        (&cfg_name, b'0', &cfg),
        ("manifest.json", b'0', &manifest),
    ]));
    check(&case);
}

/// Two `manifest.json` members naming different layers: containers/image
/// takes the first, an extracting loader the last. imgscan refuses.
#[test]
fn two_manifests_in_one_archive() {
    require_runtimes();
    let clean = base().finish();
    let evil = base().file(b"usr/bin/su", 0o4755, ELF).finish();
    let cfg_clean = config(std::slice::from_ref(&clean), json!({"User": "app"}));
    let cfg_evil = config(std::slice::from_ref(&evil), json!({"User": "app"}));
    let tag = "localhost/imgscan-oracle/two-manifests:test";
    let m1 = serde_json::to_vec(
        &json!([{"Config": cfg_name(&cfg_clean), "RepoTags": [tag], "Layers": ["clean.tar"]}]),
    )
    .unwrap();
    let m2 = serde_json::to_vec(
        &json!([{"Config": cfg_name(&cfg_evil), "RepoTags": [tag], "Layers": ["evil.tar"]}]),
    )
    .unwrap();
    let mut case = Case::new("two-manifests", vec![], json!({}), Expect::Refuse);
    case.archive = Some(outer(&[
        ("clean.tar", b'0', &clean),
        ("evil.tar", b'0', &evil),
        (&cfg_name(&cfg_clean), b'0', &cfg_clean),
        (&cfg_name(&cfg_evil), b'0', &cfg_evil),
        ("manifest.json", b'0', &m1),
        ("manifest.json", b'0', &m2),
    ]));
    check(&case);
}

/// What `docker save` and skopeo really write: one layer listed twice (an
/// empty layer repeated), and `layer.tar` symlinked to another layer's file.
#[test]
fn repeated_and_symlinked_layers() {
    require_runtimes();
    let l0 = base().file(b"usr/bin/su", 0o4755, ELF).finish();
    let empty = RawTar::default().finish();
    let layers = vec![l0.clone(), empty.clone(), empty.clone()];
    let cfg = config(&layers, json!({"User": "app"}));
    let tag = "localhost/imgscan-oracle/repeated:test";
    let m = serde_json::to_vec(&json!([{"Config": cfg_name(&cfg), "RepoTags": [tag],
        "Layers": ["a/layer.tar", "b/layer.tar", "b/layer.tar"]}]))
    .unwrap();
    let mut case = Case::new("repeated", vec![], json!({}), Expect::Same);
    case.archive = Some(outer(&[
        ("a/layer.tar", b'0', &l0),
        ("b/layer.tar", b'0', &empty),
        (&cfg_name(&cfg), b'0', &cfg),
        ("manifest.json", b'0', &m),
    ]));
    check(&case);
    let tag = "localhost/imgscan-oracle/symlinked:test";
    let m = serde_json::to_vec(&json!([{"Config": cfg_name(&cfg), "RepoTags": [tag],
        "Layers": ["a/layer.tar", "b/layer.tar", "c/layer.tar"]}]))
    .unwrap();
    let mut case = Case::new("symlinked", vec![], json!({}), Expect::Same);
    case.archive = Some(outer(&[
        ("a/layer.tar", b'0', &l0),
        ("b/layer.tar", b'0', &empty),
        ("c/layer.tar", b'2', b"../b/layer.tar"),
        (&cfg_name(&cfg), b'0', &cfg),
        ("manifest.json", b'0', &m),
    ]));
    check(&case);
}

/// Member types Go's reader returns as they are and the appliers may not
/// know: contiguous files (`7`), GNU dump directories (`D`), a regular file
/// whose name ends in `/`.
#[test]
fn unusual_member_types() {
    require_runtimes();
    for (name, typeflag, member) in [
        ("type-contiguous", b'7', &b"usr/bin/cont"[..]),
        ("type-dumpdir", b'D', &b"usr/bin/dump/"[..]),
        ("type-reg-slash", b'0', &b"usr/bin/slash/"[..]),
    ] {
        let layer = base()
            .header(&Hdr::new(member, typeflag, 0o4755, 0))
            .finish();
        check(&Case::new(
            name,
            vec![layer],
            json!({"User": "app"}),
            Expect::Either,
        ));
    }
}

/// Hard links the appliers cannot make: to a missing target, to a
/// directory; and one to a symlink (Linux links the symlink itself).
#[test]
fn unusual_hard_links() {
    require_runtimes();
    let link = |to: &'static [u8]| Hdr {
        link: to,
        ..Hdr::new(b"usr/bin/alias", b'1', 0o4755, 0)
    };
    let missing = base().header(&link(b"usr/bin/nothing")).finish();
    let to_dir = base().header(&link(b"usr/bin")).finish();
    let to_symlink = base()
        .file(b"usr/bin/real", 0o4755, ELF)
        .header(&Hdr {
            link: b"real",
            ..Hdr::new(b"usr/bin/sym", b'2', 0o777, 0)
        })
        .header(&link(b"usr/bin/sym"))
        .finish();
    check(&Case::new(
        "hardlink-missing",
        vec![missing],
        json!({"User": "app"}),
        Expect::Either,
    ));
    check(&Case::new(
        "hardlink-dir",
        vec![to_dir],
        json!({"User": "app"}),
        Expect::Either,
    ));
    check(&Case::new(
        "hardlink-symlink",
        vec![to_symlink],
        json!({"User": "app"}),
        Expect::Either,
    ));
}

/// Ids written as PAX records that Go parses and the kernel then reads as
/// 32-bit: `-1` (lchown leaves the extractor, root, as owner) and a big one.
#[test]
fn pax_ids_out_of_range() {
    require_runtimes();
    for (name, uid) in [
        ("uid-minus-1", &b"-1"[..]),
        ("uid-2-32-plus-1000", &b"4294968296"[..]),
    ] {
        let layer = base()
            .pax(b'x', &[("uid", uid)])
            .file(b"usr/bin/owned", 0o4755, ELF)
            .finish();
        check(&Case::new(
            name,
            vec![layer],
            json!({"User": "app"}),
            Expect::Either,
        ));
    }
}

/// Image configs whose keys Go matches in another case, or repeats: read
/// the way encoding/json does, or refused.
#[test]
fn config_keys_in_other_cases() {
    require_runtimes();
    let layer = base().finish();
    let diff = sha256(&layer);
    for (name, expect, cfg) in [
        (
            "cfg-upper-keys",
            Expect::Same,
            format!(
                r#"{{"Architecture":"amd64","OS":"linux","CONFIG":{{"user":"0"}},"RootFS":{{"Type":"layers","Diff_IDs":["{diff}"]}}}}"#
            ),
        ),
        (
            "cfg-null-user",
            Expect::Same,
            format!(
                r#"{{"architecture":"amd64","os":"linux","config":{{"User":null}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
            ),
        ),
        (
            "cfg-duplicate-user",
            Expect::Refuse,
            format!(
                r#"{{"architecture":"amd64","os":"linux","config":{{"User":"app","User":"0"}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
            ),
        ),
        (
            "cfg-two-configs",
            Expect::Refuse,
            format!(
                r#"{{"architecture":"amd64","os":"linux","config":{{"User":"app"}},"Config":{{"User":"0"}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
            ),
        ),
    ] {
        let mut case = Case::new(name, vec![], json!({}), expect);
        case.archive = Some(archive_with_config(
            name,
            std::slice::from_ref(&layer),
            cfg.as_bytes(),
        ));
        check(&case);
    }
}
