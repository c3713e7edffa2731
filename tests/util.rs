//! Test support: running the binary, and writing images in code.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The repository root.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path under `testdata/`.
pub(crate) fn testdata(p: &str) -> String {
    root().join("testdata").join(p).display().to_string()
}

/// Runs imgscan with `args`.
pub(crate) fn imgscan(args: &[&str]) -> Output {
    imgscan_stdin(args, None)
}

/// Runs imgscan with `args` and `stdin` bytes.
pub(crate) fn imgscan_stdin(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imgscan"));
    cmd.args(args)
        .env_remove("NO_COLOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run imgscan");
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    child.wait_with_output().expect("wait for imgscan")
}

/// Runs a scan that must succeed (exit 0 or 1) and returns the JSON report.
pub(crate) fn scan_json(image: &str) -> Value {
    let out = imgscan(&["--format", "json", "--fail-on", "none", image]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "imgscan {image} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// `(rule_id, path)` of every finding, sorted.
pub(crate) fn rule_paths(report: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule_id"].as_str().unwrap().to_owned(),
                f["path"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The findings of `rule`.
pub(crate) fn findings_of<'a>(report: &'a Value, rule: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule_id"] == rule)
        .collect()
}

/// `rule path` (`-` for config findings) of the findings that count toward
/// the gate (`counts`), sorted.
pub(crate) fn counting(report: &Value) -> Vec<String> {
    let mut out: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["counts"] == true)
        .map(|f| {
            format!(
                "{} {}",
                f["rule_id"].as_str().unwrap(),
                f["path"].as_str().unwrap_or("-")
            )
        })
        .collect();
    out.sort();
    out
}

/// sha256 digest string.
pub(crate) fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds one layer tar.
pub(crate) struct LayerBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub(crate) fn new() -> Self {
        Self {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(size);
        h.set_mtime(0);
        h
    }

    pub(crate) fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0, 0, 0);
        self.b.append_data(&mut h, path, &b""[..]).unwrap();
        self
    }

    pub(crate) fn file(self, path: &str, mode: u32, data: &[u8]) -> Self {
        self.file_owned(path, mode, 0, 0, data)
    }

    pub(crate) fn file_owned(
        mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        data: &[u8],
    ) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid, gid, data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    /// A file with PAX records before it (xattrs).
    pub(crate) fn file_pax(mut self, path: &str, mode: u32, pax: &[(&str, &[u8])]) -> Self {
        self.b.append_pax_extensions(pax.iter().copied()).unwrap();
        let mut h = Self::header(tar::EntryType::Regular, mode, 0, 0, 4);
        self.b.append_data(&mut h, path, &b"\x7fELF"[..]).unwrap();
        self
    }

    pub(crate) fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(crate) fn hardlink(mut self, path: &str, target: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Link, mode, 0, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(crate) fn char_device(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Char, mode, 0, 0, 0);
        self.b.append_data(&mut h, path, &b""[..]).unwrap();
        self
    }

    pub(crate) fn whiteout(self, path: &str) -> Self {
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
        let p = if dir.is_empty() {
            format!(".wh.{base}")
        } else {
            format!("{dir}/.wh.{base}")
        };
        self.file(&p, 0o644, b"")
    }

    pub(crate) fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), 0o644, b"")
    }

    pub(crate) fn build(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// Layer compression for [`write_oci_layout`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Comp {
    None,
    Gzip,
    Zstd,
}

pub(crate) fn compress(tar: &[u8], c: Comp) -> Vec<u8> {
    match c {
        Comp::None => tar.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::encode_all(tar, 3).unwrap(),
    }
}

/// An image config for `layers` (uncompressed tars) with `container` config.
pub(crate) fn config(layers: &[Vec<u8>], container: Value) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let history: Vec<Value> = (0..layers.len())
        .map(|i| json!({"created_by": format!("layer {i}")}))
        .collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": container,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    .unwrap()
}

/// Writes an OCI layout to `dir` and returns the manifest digest.
pub(crate) fn write_oci_layout(
    dir: &Path,
    layers: &[Vec<u8>],
    comp: Comp,
    container: Value,
) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> String {
        let d = sha256(data);
        std::fs::write(blobs.join(&d[7..]), data).unwrap();
        d
    };
    let cfg = config(layers, container);
    let cfg_digest = put(&cfg);
    let mt = match comp {
        Comp::None => "application/vnd.oci.image.layer.v1.tar",
        Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    let descs: Vec<Value> = layers
        .iter()
        .map(|l| {
            let blob = compress(l, comp);
            json!({"mediaType": mt, "digest": put(&blob), "size": blob.len()})
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg.len()},
        "layers": descs,
    }))
    .unwrap();
    let m = put(&manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "test"}}],
        }))
        .unwrap(),
    )
    .unwrap();
    m
}

/// A legacy docker-archive (`docker save` ≤ 24) of uncompressed layers.
pub(crate) fn docker_archive(layers: &[Vec<u8>], container: Value, tag: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    };
    let cfg = config(layers, container);
    let cfg_name = format!("{}.json", &sha256(&cfg)[7..]);
    let mut paths = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let p = format!("{:064x}/layer.tar", i + 1);
        add(&p, l);
        paths.push(p);
    }
    add(&cfg_name, &cfg);
    let manifest =
        serde_json::to_vec(&json!([{"Config": cfg_name, "RepoTags": [tag], "Layers": paths}]))
            .unwrap();
    add("manifest.json", &manifest);
    b.into_inner().unwrap()
}

/// A minimal passwd layer.
pub(crate) fn base_layer() -> LayerBuilder {
    LayerBuilder::new()
        .dir("etc/", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\napp:x:1000:\n")
        .dir("tmp/", 0o1777)
}
