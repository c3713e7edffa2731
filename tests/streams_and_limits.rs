//! Hostile images that need no runtime to judge: the streaming path
//! (`imgscan -`, `.tar.gz`) must read what the file path reads, FIFOs and
//! devices must not hang a scan, and symlink and index chains must scan in
//! bounded time. The cases judged against umoci and podman are in
//! `runtime_oracle*.rs` (e2e tier).

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::rawtar::{
    ELF, Hdr, INDEX, Layout, MANIFEST, OCI_CONFIG, RawTar, TAR, archive_with_config, base,
    cfg_name, da, evil_cfg, evil_tar, hardlink, imgscan_deadline, manifest_doc, outer, symlink,
};
use crate::util::{Comp, compress, config, sha256};

/// The sanity check of the harness: the config digest the archive names is
/// the one written, so podman and umoci load the same image imgscan reads.
#[test]
fn harness_writes_consistent_images() {
    let layers = vec![base().finish()];
    let cfg = config(&layers, json!({"User": "app"}));
    assert!(sha256(&cfg).starts_with("sha256:"));
}

/// A layer blob that is a FIFO (no writer): imgscan must fail fast, not
/// block forever in `open`.
#[test]
fn fifo_as_a_layer_blob() {
    let l = Layout::new();
    let t = evil_tar();
    let m = l.manifest(
        std::slice::from_ref(&t),
        &[(TAR, t.clone())],
        json!({}),
        "layers",
    );
    l.index(vec![l.tagged(MANIFEST, &m)]);
    let blob = l.path().join("blobs/sha256").join(&sha256(&t)[7..]);
    std::fs::remove_file(&blob).unwrap();
    let st = Command::new("mkfifo").arg(&blob).status().unwrap();
    assert!(st.success());
    let arg = format!("oci:{}:test", l.path().display());
    let (code, err, took) = imgscan_deadline(&["--fail-on", "none", &arg], Duration::from_secs(10));
    eprintln!("fifo-blob: exit {code:?} after {took:?}: {err}");
    assert_eq!(code, Some(2), "a FIFO blob must be refused quickly");
}

/// A FIFO as `index.json`.
#[test]
fn fifo_as_index_json() {
    let l = Layout::new();
    let st = Command::new("mkfifo")
        .arg(l.path().join("index.json"))
        .status()
        .unwrap();
    assert!(st.success());
    let arg = format!("oci:{}:test", l.path().display());
    let (code, err, took) = imgscan_deadline(&["--fail-on", "none", &arg], Duration::from_secs(10));
    eprintln!("fifo-index: exit {code:?} after {took:?}: {err}");
    assert_eq!(code, Some(2), "a FIFO index.json must be refused quickly");
}

/// Symlink resolution cost: 20,000 members each through a chain of 39
/// symlinked directories must scan in seconds.
#[test]
fn deep_symlink_chains_scan_quickly() {
    let mut t = base().dir(b"d0/");
    let names: Vec<(Vec<u8>, Vec<u8>)> = (1..40)
        .map(|i| {
            (
                format!("d{i}").into_bytes(),
                format!("d{}", i - 1).into_bytes(),
            )
        })
        .collect();
    for (n, to) in &names {
        t = t.header(&symlink(n, to));
    }
    let files: Vec<Vec<u8>> = (0..20_000)
        .map(|i| format!("d39/f{i}").into_bytes())
        .collect();
    for f in &files {
        t = t.header(&Hdr::new(f, b'0', 0o644, 0));
    }
    let (_work, archive) = crate::support::rawtar::app_archive(t.finish());
    let (code, err, took) = imgscan_deadline(
        &["--fail-on", "none", archive.to_str().unwrap()],
        Duration::from_secs(20),
    );
    eprintln!("symlink-chains: exit {code:?} after {took:?}: {err}");
    assert!(code == Some(0) || code == Some(2), "killed after {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// A symlink whose PAX `linkpath` is 600 KB of components (`x/x/x/...`,
/// longer than PATH_MAX: no runtime can create it), and 20,000 members in
/// distinct directories below it: resolving each parent through the
/// symlink must not cost the whole target every time.
#[test]
fn huge_symlink_target_scans_quickly() {
    let target = "x/".repeat(300_000);
    let mut t = base()
        .pax(b'x', &[("linkpath", target.as_bytes())])
        .header(&symlink(b"s", b"placeholder"));
    let files: Vec<Vec<u8>> = (0..20_000)
        .map(|i| format!("s/d{i}/f").into_bytes())
        .collect();
    for f in &files {
        t = t.header(&Hdr::new(f, b'0', 0o644, 0));
    }
    let (_work, archive) = crate::support::rawtar::app_archive(t.finish());
    let (code, err, took) = imgscan_deadline(
        &["--fail-on", "none", archive.to_str().unwrap()],
        Duration::from_secs(30),
    );
    eprintln!("huge-symlink-target: exit {code:?} after {took:?}: {err}");
    assert!(code == Some(0) || code == Some(2), "killed after {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// `/etc/passwd` a character device (`/dev/zero`): imgscan must answer
/// quickly (runc would read it), never "no such user" silently.
#[test]
fn red2_passwd_is_a_device_or_fifo() {
    for (name, t) in [("r2-pw-chr", b'3'), ("r2-pw-fifo", b'6')] {
        let mut h = crate::support::rawtar::Hdr::new(b"etc/passwd", t, 0o644, 0);
        h.uid = 0;
        let mut raw = RawTar::default().dir(b"etc/").header(&h).0;
        // devmajor 1, devminor 5 (/dev/zero): header bytes 329..345.
        let hdr = raw.len() - 512;
        if t == b'3' {
            crate::support::rawtar::octal(&mut raw[hdr + 329..hdr + 337], 1);
            crate::support::rawtar::octal(&mut raw[hdr + 337..hdr + 345], 5);
            raw[hdr + 148..hdr + 156].fill(b' ');
            let sum: u32 = raw[hdr..hdr + 512].iter().map(|v| u32::from(*v)).sum();
            raw[hdr + 148..hdr + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
        let layer = RawTar(raw).finish();
        let work = tempfile::tempdir().unwrap();
        let a = work.path().join("i.tar");
        std::fs::write(
            &a,
            crate::util::docker_archive(&[layer], json!({"User": "app"}), "x/y:z"),
        )
        .unwrap();
        let (code, err, took) = imgscan_deadline(
            &["--fail-on", "none", "--format", "json", a.to_str().unwrap()],
            Duration::from_secs(10),
        );
        eprintln!("{name}: exit {code:?} after {took:?}: {}", err.trim());
        assert!(matches!(code, Some(0 | 2)), "{name}: exit {code:?}");
        let out = crate::util::imgscan(&["--fail-on", "none", a.to_str().unwrap()]);
        eprintln!("{name}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

/// `(exit code, sorted (rule, path) pairs, stderr)` of one imgscan run.
fn outcome(out: &std::process::Output) -> (Option<i32>, Vec<(String, String)>, String) {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let mut rules = match out.status.code() {
        Some(0 | 1) => {
            let r: Value = serde_json::from_slice(&out.stdout).unwrap();
            let mut v: Vec<(String, String)> = r["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["rule_id"].as_str().unwrap_or_default().to_owned(),
                        f["path"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            v.push(("USER".into(), r["image"]["user"].to_string()));
            v
        }
        _ => vec![],
    };
    rules.sort();
    (out.status.code(), rules, err)
}

/// The archive as a file, on stdin, as a `.tar.gz` file and gzipped on
/// stdin: all four readings agree (same exit, same findings).
fn stream_same(name: &str, archive: &[u8]) {
    stream_same_with(name, archive, false);
}

/// [`stream_same`], and with `gz_stdin` the gzipped archive on stdin too
/// (`docker save | gzip | imgscan -`; `docker load` and `podman load` take
/// compressed archives).
fn stream_same_with(name: &str, archive: &[u8], gz_stdin: bool) {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("image.tar");
    std::fs::write(&file, archive).unwrap();
    let gz = compress(archive, Comp::Gzip);
    let gzf = work.path().join("image.tar.gz");
    std::fs::write(&gzf, &gz).unwrap();
    let args = ["--format", "json", "--fail-on", "none"];
    let run = |target: &str, stdin: Option<&[u8]>| {
        let mut a = args.to_vec();
        a.push(target);
        outcome(&crate::util::imgscan_stdin(&a, stdin))
    };
    let f = run(file.to_str().unwrap(), None);
    let s = run("-", Some(archive));
    let g = run(gzf.to_str().unwrap(), None);
    let mut all = vec![("file", f.clone()), ("stdin", s), ("tar.gz", g)];
    if gz_stdin {
        all.push(("gz stdin", run("-", Some(&gz))));
    }
    for (how, o) in &all {
        eprintln!("{name}: {how}: exit {:?} {:?} {}", o.0, o.1, o.2);
        assert!(matches!(o.0, Some(0 | 2)), "{name}: {how} exited {:?}", o.0);
    }
    for (how, o) in &all[1..] {
        assert_eq!((o.0, &o.1), (f.0, &f.1), "{name}: {how} vs file");
    }
}

/// Hostile layers (hard links, whiteouts, pax/gnu names) streamed.
#[test]
fn red2_stream_hostile_layers_match_file() {
    let l0 = base()
        .file(b"usr/bin/su", 0o4755, ELF)
        .header(&hardlink(b"usr/bin/su-link", b"usr/bin/su", 0o4755))
        .finish();
    let l1 = RawTar::default()
        .dir(b"usr/")
        .dir(b"usr/bin/")
        .file(b"usr/bin/.wh.su", 0o644, b"")
        .gnu_long(b'L', b"usr/bin/long-name-setuid")
        .pax(b'x', &[("path", b"usr/bin/pax-name")])
        .file(b"usr/bin/ustar-name", 0o4755, ELF)
        .finish();
    stream_same(
        "r2-stream-hostile",
        &da("a", &[l0, l1], json!({"User": "app"})),
    );
}

/// The same layer listed twice and a symlinked layer member that comes
/// before its target in the stream.
#[test]
fn red2_stream_symlinked_layer_before_target() {
    let evil = evil_tar();
    let cfg = config(&[evil.clone(), evil.clone()], json!({"User": "app"}));
    let m = serde_json::to_vec(&json!([{"Config": cfg_name(&cfg), "RepoTags": ["x/y:z"],
        "Layers": ["a/layer.tar", "b/layer.tar"]}]))
    .unwrap();
    let mut t = RawTar::default()
        .dir(b"a/")
        .header(&symlink(b"a/layer.tar", b"../b/layer.tar"))
        .dir(b"b/");
    t = t.file(b"b/layer.tar", 0o644, &evil);
    let archive = RawTar(t.0)
        .file(cfg_name(&cfg).as_bytes(), 0o644, &cfg)
        .file(b"manifest.json", 0o644, &m)
        .finish();
    stream_same("r2-stream-symlink-first", &archive);
}

/// manifest.json first, config last; a layer member that starts with `{`
/// (a tar whose first member is named `{`), held as a small JSON-looking
/// member in stream mode.
#[test]
fn red2_stream_layer_that_looks_like_json() {
    let layer = RawTar::default()
        .file(b"{", 0o644, b"x")
        .dir(b"usr/")
        .dir(b"usr/bin/")
        .file(b"usr/bin/su", 0o4755, ELF)
        .finish();
    let cfg = config(std::slice::from_ref(&layer), json!({"User": "root"}));
    let m = serde_json::to_vec(&json!([{"Config": cfg_name(&cfg), "RepoTags": ["x/y:z"],
        "Layers": ["l.tar"]}]))
    .unwrap();
    let archive = outer(&[
        ("manifest.json", b'0', &m),
        ("l.tar", b'0', &layer),
        (&cfg_name(&cfg), b'0', &cfg),
    ]);
    stream_same("r2-stream-json-layer", &archive);
}

/// A V7 layer (no ustar magic) smaller than the small-member threshold and
/// a gzip layer, streamed.
#[test]
fn red2_stream_v7_and_gzip_layers() {
    let mut v7 = evil_tar();
    let mut off = 0;
    while off + 512 <= v7.len() {
        if v7[off + 257..off + 262] == *b"ustar" {
            v7[off + 257..off + 265].fill(0);
            v7[off + 148..off + 156].fill(b' ');
            let sum: u32 = v7[off..off + 512].iter().map(|v| u32::from(*v)).sum();
            v7[off + 148..off + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
        let size = std::str::from_utf8(&v7[off + 124..off + 135])
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_matches(|c| c == '\0' || c == ' '), 8).ok())
            .unwrap_or(0) as usize;
        off += 512 + size.div_ceil(512) * 512;
        if v7[off..].iter().take(512).all(|b| *b == 0) {
            break;
        }
    }
    let gz = compress(
        &base().file(b"usr/bin/gz-su", 0o4755, ELF).finish(),
        Comp::Gzip,
    );
    let tar_of_gz = base().file(b"usr/bin/gz-su", 0o4755, ELF).finish();
    let cfg = config(&[v7.clone(), tar_of_gz], json!({"User": "app"}));
    let archive = archive_with_config("r2-v7", &[v7, gz], &cfg);
    stream_same("r2-stream-v7-gz", &archive);
}

/// A gzipped docker-archive on standard input: `docker load` (moby
/// `archive.Untar` decompresses) and `podman load` (containers/image
/// `tarfile.NewReaderFromStream` auto-decompresses) read it; imgscan reads
/// the same bytes from a `.tar.gz` file but not from stdin.
#[test]
fn red2_gzip_archive_on_stdin() {
    stream_same_with(
        "r2-gz-stdin",
        &da("gz", &[evil_tar()], json!({"User": "app"})),
        true,
    );
}

/// Refusals agree too: two images, a duplicate member name.
#[test]
fn red2_stream_refusals_match_file() {
    let evil = evil_tar();
    let cfg = config(std::slice::from_ref(&evil), json!({"User": "app"}));
    let m = serde_json::to_vec(&json!([{"Config": cfg_name(&cfg), "RepoTags": ["x/y:z"],
        "Layers": ["l.tar"]}]))
    .unwrap();
    let clean = base().finish();
    let archive = outer(&[
        ("l.tar", b'0', &clean),
        ("l.tar", b'0', &evil),
        (&cfg_name(&cfg), b'0', &cfg),
        ("manifest.json", b'0', &m),
    ]);
    stream_same("r2-stream-dup-member", &archive);
    let archive = outer(&[
        ("l.tar", b'0', &evil),
        (&cfg_name(&cfg), b'0', &cfg),
        ("manifest.json", b'0', &m),
        ("manifest.json/../manifest.json", b'0', b"[]"),
    ]);
    stream_same("r2-stream-dup-manifest-dotdot", &archive);
}

/// A selection of the first round's hostile layers, read from a file, from
/// stdin and from a `.tar.gz`: the three readings agree.
#[test]
fn red2_stream_first_round_cases_match_file() {
    let after_eoa = RawTar(base().finish())
        .file(b"usr/bin/after-end", 0o4755, ELF)
        .finish();
    let global = base()
        .pax(b'x', &[("path", b"usr/bin/pending")])
        .pax(b'g', &[("uid", b"0")])
        .file(b"usr/bin/g-su", 0o4755, ELF)
        .finish();
    let opaque_root = RawTar::default()
        .file(b".wh..wh..opq", 0o644, b"")
        .dir(b"usr/")
        .dir(b"usr/bin/")
        .file(b"usr/bin/after-opq", 0o4755, ELF)
        .finish();
    let lower = base().file(b"usr/bin/lower", 0o4755, ELF).finish();
    let link_across = RawTar::default()
        .dir(b"usr/")
        .dir(b"usr/bin/")
        .header(&hardlink(b"usr/bin/upper-link", b"usr/bin/lower", 0o6755))
        .finish();
    let wh_symlinked_dir = RawTar::default()
        .header(&symlink(b"sbin", b"usr/bin"))
        .file(b"sbin/.wh.lower", 0o644, b"")
        .finish();
    for (name, layers) in [
        ("r2-s-after-eoa", vec![after_eoa]),
        ("r2-s-global", vec![global]),
        ("r2-s-opaque-root", vec![lower.clone(), opaque_root]),
        ("r2-s-link-across", vec![lower.clone(), link_across]),
        ("r2-s-wh-symlinked", vec![lower, wh_symlinked_dir]),
    ] {
        stream_same(name, &da(name, &layers, json!({"User": "app"})));
    }
}

/// An outer archive whose layer member is a hard link that comes before
/// its target, and one whose layer is zstd, streamed.
#[test]
fn red2_stream_hard_linked_layer_before_target() {
    let evil = evil_tar();
    let cfg = config(std::slice::from_ref(&evil), json!({"User": "app"}));
    let m = serde_json::to_vec(&json!([{"Config": cfg_name(&cfg), "RepoTags": ["x/y:z"],
        "Layers": ["a.tar"]}]))
    .unwrap();
    let archive = RawTar::default()
        .header(&hardlink(b"a.tar", b"b.tar", 0o644))
        .file(b"b.tar", 0o644, &evil)
        .file(cfg_name(&cfg).as_bytes(), 0o644, &cfg)
        .file(b"manifest.json", 0o644, &m)
        .finish();
    stream_same("r2-stream-hardlink-first", &archive);
    let z = compress(&evil, Comp::Zstd);
    stream_same(
        "r2-stream-zstd-layer",
        &archive_with_config("r2-z", &[z], &cfg),
    );
}

/// A chain of 300 nested indexes in a layout: exit 0 or 2 quickly, no
/// stack overflow.
#[test]
fn red2_deep_index_chain() {
    let l = Layout::new();
    let (t, cfg) = evil_cfg(json!({"User": "app"}));
    let m = serde_json::to_vec(&manifest_doc(&l, OCI_CONFIG, &cfg, &[t])).unwrap();
    let mut d = l.desc(MANIFEST, &m);
    for _ in 0..300 {
        let i =
            serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [d]}))
                .unwrap();
        d = l.desc(INDEX, &i);
    }
    d["annotations"] = json!({"org.opencontainers.image.ref.name": "test"});
    l.index(vec![d]);
    let arg = format!("oci:{}:test", l.path().display());
    let (code, err, took) = imgscan_deadline(&["--fail-on", "none", &arg], Duration::from_secs(10));
    eprintln!(
        "r2-deep-index: exit {code:?} after {took:?}: {}",
        err.trim()
    );
    assert!(matches!(code, Some(0 | 2)), "exit {code:?}");
}
