//! A CNCF distribution registry (`docker-registry serve`) on 127.0.0.1 for
//! the end-to-end tier, optionally with TLS from a throw-away CA, htpasswd
//! Basic auth and notifications; images pushed with skopeo or written with
//! the distribution API. Killed when its handle drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use super::http::{Resp, request};
use super::ports::{free_port, wait_for_port};
use super::tools::{require_tool, run};
use super::{OCI_MANIFEST, SAMPLE_CONFIG, SAMPLE_DIGEST};
use crate::util::{sha256, testdata};

/// TLS material: a CA and a server certificate for 127.0.0.1 signed by it.
pub(crate) struct Tls {
    /// The CA certificate (PEM), for `--ca-cert`.
    pub(crate) ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_tls(dir: &Path) -> Tls {
    require_tool("openssl");
    let p = |n: &str| dir.join(n);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-days", "2", "-subj", "/CN=imgscan test CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .arg("req")
        .args(ec)
        .args(["-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("ext.cnf"))
        .arg("-out")
        .arg(p("server.pem")));
    Tls {
        ca: p("ca.pem"),
        cert: p("server.pem"),
        key: p("server.key"),
    }
}

/// How to start a registry.
#[derive(Default)]
pub(crate) struct RegistryConfig {
    /// Serve HTTPS with a throw-away CA.
    pub(crate) tls: bool,
    /// Require this username and password (htpasswd, bcrypt).
    pub(crate) user: Option<(&'static str, &'static str)>,
    /// Notify this URL (`http://127.0.0.1:PORT/v1/events/NAME`, with imgscan
    /// serve's test token) of pushes.
    pub(crate) notify: Option<String>,
    /// More endpoints to notify, each its own (distribution sends every
    /// event to every endpoint): one per `imgscan serve` replica.
    pub(crate) notify_also: Vec<String>,
    /// The port to listen on (default: a free one).
    pub(crate) port: Option<u16>,
}

/// A running `docker-registry serve` on 127.0.0.1.
pub(crate) struct Registry {
    child: Child,
    /// Port it listens on.
    pub(crate) port: u16,
    /// Temporary directory (config, storage, certificates).
    pub(crate) dir: TempDir,
    /// TLS material, when serving HTTPS.
    pub(crate) tls: Option<Tls>,
    user: Option<(&'static str, &'static str)>,
}

impl Registry {
    /// An anonymous plain-HTTP registry.
    pub(crate) fn start() -> Self {
        Self::start_with(RegistryConfig::default())
    }

    /// A registry configured by `cfg`.
    pub(crate) fn start_with(cfg: RegistryConfig) -> Self {
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let tls = cfg.tls.then(|| make_tls(dir.path()));
        let port = cfg.port.unwrap_or_else(free_port);
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if let Some(t) = &tls {
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            ));
        }
        if let Some((u, p)) = cfg.user {
            require_tool("htpasswd");
            let out = run(Command::new("htpasswd").args(["-Bbn", u, p]));
            std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: imgscan-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        let endpoints: Vec<&String> = cfg.notify.iter().chain(&cfg.notify_also).collect();
        if !endpoints.is_empty() {
            yaml.push_str("notifications:\n  events:\n    includereferences: true\n  endpoints:\n");
        }
        for (i, url) in endpoints.iter().enumerate() {
            yaml.push_str(&format!(
                "\x20   - name: imgscan{i}\n      url: {url}\n      headers:\n\
                 \x20       Authorization: [Bearer {}]\n      timeout: 2s\n\
                 \x20     threshold: 3\n      backoff: 1s\n",
                super::serve::TOKEN
            ));
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml).unwrap();
        let err = dir.path().join("registry.err");
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("start docker-registry (see scripts/install-test-deps)");
        wait_for_port(port, &mut child, &err);
        Self {
            child,
            port,
            dir,
            tls,
            user: cfg.user,
        }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Copies the image `src` (a containers-transports name such as
    /// `oci:DIR:TAG`) into `repo_tag` (`lab/sample:v1`) with skopeo, passing
    /// `extra` options; the manifest digest skopeo reports.
    pub(crate) fn push(&self, src: &str, repo_tag: &str, extra: &[&str]) -> String {
        let skopeo = require_tool("skopeo");
        let digest_file = self
            .dir
            .path()
            .join(format!("digest-{}", repo_tag.replace(['/', ':'], "_")));
        let mut cmd = Command::new(skopeo);
        // A private HOME: skopeo's blob-info cache would otherwise reuse
        // blobs known from other registries instead of recompressing.
        cmd.env("HOME", self.dir.path())
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
            ])
            .arg("--digestfile")
            .arg(&digest_file);
        if let Some((u, p)) = self.user {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        cmd.args(extra)
            .arg(src)
            .arg(format!("docker://{}/{repo_tag}", self.host()));
        run(&mut cmd);
        std::fs::read_to_string(digest_file)
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Pushes testdata/sample/oci:sample to `repo_tag`; its manifest digest.
    pub(crate) fn push_sample(&self, repo_tag: &str) -> String {
        self.push(
            &format!("oci:{}:sample", testdata("sample/oci")),
            repo_tag,
            &[],
        )
    }

    /// The file holding a blob in the registry's storage.
    pub(crate) fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// PUTs an OCI manifest under `repo:tag`; asserts 201 and returns the
    /// answer and the manifest's digest.
    fn put_manifest(
        &self,
        auth: Option<&str>,
        repo: &str,
        tag: &str,
        bytes: &[u8],
    ) -> (Resp, String) {
        let mut headers = vec![("Content-Type", OCI_MANIFEST)];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let r = request(
            &self.host(),
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &headers,
            bytes,
        )
        .unwrap();
        assert_eq!(r.status, 201, "PUT manifest: {}", r.text());
        (r, sha256(bytes))
    }

    fn auth_header(&self) -> Option<String> {
        use base64::Engine as _;
        self.user.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
    }

    /// Writes `n` new image manifests to `repo` (tags `v0`…), each the sample
    /// image with a different annotation, and returns their digests. The
    /// blobs must already be in `repo` (push the sample there first).
    pub(crate) fn variants(&self, repo: &str, n: usize) -> Vec<String> {
        self.variants_from(repo, 0, n)
    }

    /// [`Self::variants`] numbered from `first` (tags `v{first}`…): new
    /// images again for the same repository.
    pub(crate) fn variants_from(&self, repo: &str, first: usize, n: usize) -> Vec<String> {
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(
                PathBuf::from(testdata("sample/oci/blobs/sha256"))
                    .join(SAMPLE_DIGEST.trim_start_matches("sha256:")),
            )
            .unwrap(),
        )
        .unwrap();
        let auth = self.auth_header();
        (first..first + n)
            .map(|i| {
                let mut m = manifest.clone();
                m["annotations"] = serde_json::json!({"org.imgscan.test.variant": i.to_string()});
                let bytes = serde_json::to_vec(&m).unwrap();
                let (r, digest) =
                    self.put_manifest(auth.as_deref(), repo, &format!("v{i}"), &bytes);
                assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
                digest
            })
            .collect()
    }

    /// Uploads `bytes` as a blob of `repo` (`POST` a session, then one
    /// monolithic `PUT …?digest=`; distribution 2.8 does not take the
    /// single-`POST` form) and returns its digest.
    pub(crate) fn upload_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let auth = self.auth_header();
        let mut headers = vec![("Content-Type", "application/octet-stream")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let r = request(
            &self.host(),
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &headers,
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 202, "starting a blob upload: {}", r.text());
        let location = r.header("location").expect("upload Location").to_owned();
        // Absolute (http://host/v2/…) or a path.
        let path = match location.split_once("://") {
            Some((_, rest)) => rest[rest.find('/').unwrap_or(rest.len())..].to_owned(),
            None => location,
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = request(
            &self.host(),
            "PUT",
            &format!("{path}{sep}digest={digest}"),
            &headers,
            bytes,
        )
        .unwrap();
        assert_eq!(r.status, 201, "finishing a blob upload: {}", r.text());
        digest
    }

    /// Pushes to `repo:tag` an image made of the sample's base layer
    /// (layer 0, busybox) and one new layer holding `/etc/motd` with
    /// `motd`, and returns its manifest digest. The sample must already be
    /// in `repo`.
    pub(crate) fn push_on_sample_base(&self, repo: &str, tag: &str, motd: &str) -> String {
        let blob = |d: &str| {
            std::fs::read(
                PathBuf::from(testdata("sample/oci/blobs/sha256"))
                    .join(d.trim_start_matches("sha256:")),
            )
            .unwrap()
        };
        let mut layer = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("etc/motd").unwrap();
        h.set_size(motd.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        layer.append(&h, motd.as_bytes()).unwrap();
        let layer = layer.into_inner().unwrap();
        let layer_digest = self.upload_blob(repo, &layer);

        let sample: Value = serde_json::from_slice(&blob(SAMPLE_DIGEST)).unwrap();
        let mut config: Value = serde_json::from_slice(&blob(SAMPLE_CONFIG)).unwrap();
        config["rootfs"]["diff_ids"] =
            serde_json::json!([config["rootfs"]["diff_ids"][0], layer_digest]);
        config["history"] = serde_json::json!([
            config["history"][0],
            {"created": "1970-01-01T00:00:00Z", "created_by": format!("motd: {motd}")}
        ]);
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = self.upload_blob(repo, &config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [
                sample["layers"][0],
                {"mediaType": "application/vnd.oci.image.layer.v1.tar",
                 "digest": layer_digest, "size": layer.len()}
            ]
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let auth = self.auth_header();
        self.put_manifest(auth.as_deref(), repo, tag, &bytes).1
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
