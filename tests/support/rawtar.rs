//! Images written byte by byte, for the hostile-input tests of both tiers:
//! [`RawTar`] writes ustar headers whose fields disagree the way an
//! attacker makes them, [`outer`] and [`archive_with_config`] docker-archives,
//! [`Layout`] OCI layouts by hand.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{config, sha256};

/// A tar written header by header, so that fields can disagree with each
/// other the way an attacker makes them.
#[derive(Default)]
pub(crate) struct RawTar(pub(crate) Vec<u8>);

/// One ustar header's fields.
pub(crate) struct Hdr<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) typeflag: u8,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) size: u64,
    pub(crate) link: &'a [u8],
}

impl<'a> Hdr<'a> {
    pub(crate) fn new(name: &'a [u8], typeflag: u8, mode: u32, size: u64) -> Self {
        Self {
            name,
            typeflag,
            mode,
            uid: 0,
            gid: 0,
            size,
            link: b"",
        }
    }
}

pub(crate) fn octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0width$o}", width = field.len() - 1);
    assert_eq!(s.len(), field.len() - 1, "{v} does not fit the field");
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

impl RawTar {
    pub(crate) fn header(mut self, h: &Hdr<'_>) -> Self {
        let mut b = [0u8; 512];
        assert!(h.name.len() <= 100 && h.link.len() <= 100);
        b[..h.name.len()].copy_from_slice(h.name);
        octal(&mut b[100..108], u64::from(h.mode));
        octal(&mut b[108..116], h.uid);
        octal(&mut b[116..124], h.gid);
        octal(&mut b[124..136], h.size);
        octal(&mut b[136..148], 0);
        b[156] = h.typeflag;
        b[157..157 + h.link.len()].copy_from_slice(h.link);
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|v| u32::from(*v)).sum();
        let s = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(s.as_bytes());
        self.0.extend_from_slice(&b);
        self
    }

    /// Member data, padded to the block size.
    pub(crate) fn data(mut self, d: &[u8]) -> Self {
        self.0.extend_from_slice(d);
        let pad = (512 - d.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    pub(crate) fn file(self, name: &[u8], mode: u32, d: &[u8]) -> Self {
        self.header(&Hdr::new(name, b'0', mode, d.len() as u64))
            .data(d)
    }

    pub(crate) fn dir(self, name: &[u8]) -> Self {
        self.header(&Hdr::new(name, b'5', 0o755, 0))
    }

    /// A PAX header (`x`, or `g` for a global one) holding `records`.
    pub(crate) fn pax(self, typeflag: u8, records: &[(&str, &[u8])]) -> Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.header(&Hdr::new(
            b"././@PaxHeader",
            typeflag,
            0o644,
            body.len() as u64,
        ))
        .data(&body)
    }

    /// A GNU long name (`L`) or long link (`K`).
    pub(crate) fn gnu_long(self, typeflag: u8, name: &[u8]) -> Self {
        let mut d = name.to_vec();
        d.push(0);
        self.header(&Hdr::new(b"././@LongLink", typeflag, 0o644, d.len() as u64))
            .data(&d)
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0, 1024));
        self.0
    }
}

pub(crate) const ELF: &[u8] = b"\x7fELF-imgscan-test";

/// A base layer every case builds on: a passwd, a group, the usual dirs.
pub(crate) fn base() -> RawTar {
    RawTar::default()
        .dir(b"etc/")
        .file(
            b"etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .file(b"etc/group", 0o644, b"root:x:0:\napp:x:1000:\n")
        .dir(b"usr/")
        .dir(b"usr/bin/")
}

/// A config's member name in a docker-archive: its digest, as `docker save`
/// writes it (imgscan verifies the config by its name).
pub(crate) fn cfg_name(cfg: &[u8]) -> String {
    format!("{}.json", &sha256(cfg)[7..])
}

/// An outer docker-archive written by hand: `(name, typeflag, data or link)`.
pub(crate) fn outer(members: &[(&str, u8, &[u8])]) -> Vec<u8> {
    let mut t = RawTar::default();
    for (name, typeflag, data) in members {
        t = match typeflag {
            b'2' => t.header(&Hdr {
                link: data,
                ..Hdr::new(name.as_bytes(), b'2', 0o777, 0)
            }),
            _ => t.file(name.as_bytes(), 0o644, data),
        };
    }
    t.finish()
}

/// A docker-archive whose config is `cfg`, written as given (raw JSON).
pub(crate) fn archive_with_config(name: &str, layers: &[Vec<u8>], cfg: &[u8]) -> Vec<u8> {
    let tag = format!("localhost/imgscan-oracle/{name}:test");
    let mut members: Vec<(String, u8, Vec<u8>)> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("l{i}.tar"), b'0', l.clone()))
        .collect();
    let names: Vec<String> = members.iter().map(|m| m.0.clone()).collect();
    members.push((cfg_name(cfg), b'0', cfg.to_vec()));
    let m =
        serde_json::to_vec(&json!([{"Config": cfg_name(cfg), "RepoTags": [tag], "Layers": names}]))
            .unwrap();
    members.push(("manifest.json".into(), b'0', m));
    let refs: Vec<(&str, u8, &[u8])> = members
        .iter()
        .map(|(n, t, d)| (n.as_str(), *t, d.as_slice()))
        .collect();
    outer(&refs)
}

pub(crate) fn hardlink<'a>(name: &'a [u8], to: &'a [u8], mode: u32) -> Hdr<'a> {
    Hdr {
        link: to,
        ..Hdr::new(name, b'1', mode, 0)
    }
}

pub(crate) fn symlink<'a>(name: &'a [u8], to: &'a [u8]) -> Hdr<'a> {
    Hdr {
        link: to,
        ..Hdr::new(name, b'2', 0o777, 0)
    }
}

/// A hand-written OCI layout, in a lower-case directory (`podman pull
/// oci:DIR` refuses upper case), removed on drop.
pub(crate) struct Layout {
    dir: std::path::PathBuf,
}

impl Drop for Layout {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Layout {
    pub(crate) fn new() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("imgscan-layout-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Self { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn put(&self, data: &[u8]) -> Value {
        let d = sha256(data);
        std::fs::write(self.path().join("blobs/sha256").join(&d[7..]), data).unwrap();
        json!({"digest": d, "size": data.len()})
    }

    pub(crate) fn desc(&self, mt: &str, data: &[u8]) -> Value {
        let mut v = self.put(data);
        v["mediaType"] = json!(mt);
        v
    }

    /// A manifest over `(media type, blob)` layers whose uncompressed tars are
    /// `tars`, written with `layers_key` as the layers key.
    pub(crate) fn manifest(
        &self,
        tars: &[Vec<u8>],
        blobs: &[(&str, Vec<u8>)],
        container: Value,
        layers_key: &str,
    ) -> Vec<u8> {
        let cfg = config(tars, container);
        let cfgd = self.desc("application/vnd.oci.image.config.v1+json", &cfg);
        let layers: Vec<Value> = blobs.iter().map(|(mt, b)| self.desc(mt, b)).collect();
        let mut m = serde_json::Map::new();
        m.insert("schemaVersion".into(), json!(2));
        m.insert(
            "mediaType".into(),
            json!("application/vnd.oci.image.manifest.v1+json"),
        );
        m.insert("config".into(), cfgd);
        m.insert(layers_key.into(), json!(layers));
        serde_json::to_vec(&Value::Object(m)).unwrap()
    }

    pub(crate) fn index(&self, manifests: Vec<Value>) {
        std::fs::write(
            self.path().join("index.json"),
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).unwrap(),
        )
        .unwrap();
    }

    pub(crate) fn tagged(&self, mt: &str, doc: &[u8]) -> Value {
        let mut d = self.desc(mt, doc);
        d["annotations"] = json!({"org.opencontainers.image.ref.name": "test"});
        d
    }
}

/// The media types the documents use: the scanner's own list. (Each test
/// target uses some of them; `dead_code` does not cover imports.)
#[allow(unused_imports)]
pub(crate) use scanner::source::media::{
    OCI_CONFIG, OCI_INDEX as INDEX, OCI_LAYER_GZIP as GZ, OCI_LAYER_TAR as TAR,
    OCI_LAYER_ZSTD as ZST, OCI_MANIFEST as MANIFEST,
};

pub(crate) fn evil_tar() -> Vec<u8> {
    base().file(b"usr/bin/su", 0o4755, ELF).finish()
}

/// `layer` as the one layer of a docker-archive run as `app`, written in a
/// new temporary directory (kept alive by the returned guard).
pub(crate) fn app_archive(layer: Vec<u8>) -> (tempfile::TempDir, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("image.tar");
    std::fs::write(
        &archive,
        crate::util::docker_archive(&[layer], json!({"User": "app"}), "x/y:z"),
    )
    .unwrap();
    (work, archive)
}

/// Runs imgscan with a deadline; `(exit code, stderr, elapsed)`, `None` code
/// when it had to be killed.
pub(crate) fn imgscan_deadline(args: &[&str], limit: Duration) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgscan"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            return (st.code(), err, start.elapsed());
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            return (None, String::new(), start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A manifest document over one `tar` layer with `cfg` as the config blob.
pub(crate) fn manifest_doc(l: &Layout, cfg_mt: &str, cfg: &[u8], tars: &[Vec<u8>]) -> Value {
    let layers: Vec<Value> = tars.iter().map(|t| l.desc(TAR, t)).collect();
    json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": l.desc(cfg_mt, cfg),
        "layers": layers,
    })
}

pub(crate) fn evil_cfg(container: Value) -> (Vec<u8>, Vec<u8>) {
    let t = evil_tar();
    let cfg = config(std::slice::from_ref(&t), container);
    (t, cfg)
}

/// A docker-archive of `layers` tagged `x/NAME:t`.
pub(crate) fn da(name: &str, layers: &[Vec<u8>], container: Value) -> Vec<u8> {
    crate::util::docker_archive(layers, container, &format!("x/{name}:t"))
}
