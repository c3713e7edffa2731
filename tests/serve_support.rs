//! Support for the `imgscan serve` tests: a real `docker-registry` and an
//! `imgscan serve` child process on 127.0.0.1, a tiny HTTP/1.1 client, and
//! pushes with skopeo.
//!
//! Everything listens on loopback only; processes are killed on `Drop`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{require_tool, sha256, testdata};

/// The API token every test server uses (64 hex characters).
pub(crate) const TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// The sample image's manifest digest (testdata/README.md).
pub(crate) const SAMPLE_DIGEST: &str =
    "sha256:a941cb347d023be3bc70e687d600ad4fc379aabe2895996abd7d6efe2dd711c2";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const EVENTS_V1: &str = "application/vnd.docker.distribution.events.v1+json";
pub(crate) const EVENTS_V2: &str = "application/vnd.docker.distribution.events.v2+json";

/// A free TCP port on 127.0.0.1 (for the registry, whose port must be known
/// before it starts).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    /// A header's value (case-insensitive name).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn decode_chunked(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_line = String::from_utf8_lossy(&b[..nl]);
        let size =
            usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        b = &b[nl + 2..];
        if size == 0 || b.len() < size {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[(size + 2).min(b.len())..];
    }
}

/// Sends one request (`Connection: close`) and reads the whole response.
pub(crate) fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    // Read to EOF. A server that refuses a request before reading its body
    // (413) may reset the connection after answering: keep what arrived.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = decode_chunked(&body);
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `limit`
/// with `what` and the result of `context`.
pub(crate) fn wait_for<T>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A `docker-registry serve` child on 127.0.0.1.
pub(crate) struct Registry {
    child: Child,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
    /// `user:password` when the registry requires htpasswd Basic auth.
    pub(crate) creds: Option<(String, String)>,
}

/// How to start a registry.
#[derive(Default)]
pub(crate) struct RegistryOptions {
    /// `http://127.0.0.1:PORT/v1/events/NAME` that the registry notifies.
    pub(crate) notify: Option<String>,
    /// Require this `user:password` (htpasswd, bcrypt).
    pub(crate) basic_auth: Option<(String, String)>,
    /// The port to listen on (default: a free one).
    pub(crate) port: Option<u16>,
}

impl Registry {
    pub(crate) fn start(opts: RegistryOptions) -> Self {
        require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = opts.port.unwrap_or_else(free_port);
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if let Some((user, pass)) = &opts.basic_auth {
            require_tool("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: imgscan-test\n    path: {}\n",
                file.display()
            ));
        }
        if let Some(url) = &opts.notify {
            cfg.push_str(&format!(
                "notifications:\n  events:\n    includereferences: true\n  endpoints:\n\
                 \x20   - name: imgscan\n      url: {url}\n      headers:\n\
                 \x20       Authorization: [Bearer {TOKEN}]\n      timeout: 2s\n\
                 \x20     threshold: 3\n      backoff: 1s\n"
            ));
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let reg = Self {
            child,
            port,
            dir,
            creds: opts.basic_auth,
        };
        let addr = reg.addr();
        wait_for(
            Duration::from_secs(30),
            "docker-registry to answer /v2/",
            || {
                request(&addr, "GET", "/v2/", &[], b"")
                    .ok()
                    .filter(|r| r.status == 200 || r.status == 401)
            },
            String::new,
        );
        reg
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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
            &self.addr(),
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
        self.creds.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
    }

    /// Pushes testdata/sample/oci:sample to `repo:tag` with skopeo and returns
    /// the manifest digest skopeo reports.
    pub(crate) fn push_sample(&self, repo_tag: &str) -> String {
        require_tool("skopeo");
        let digest_file = self
            .dir
            .path()
            .join(format!("digest-{}", repo_tag.replace(['/', ':'], "_")));
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ])
        .arg("--digestfile")
        .arg(&digest_file);
        if let Some((u, p)) = &self.creds {
            cmd.arg("--dest-creds").arg(format!("{u}:{p}"));
        }
        let out = cmd
            .arg(format!("oci:{}:sample", testdata("sample/oci")))
            .arg(format!("docker://{}/{repo_tag}", self.addr()))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(digest_file)
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Writes `n` new image manifests to `repo` (tags `v0`…), each the sample
    /// image with a different annotation, and returns their digests. The
    /// blobs must already be in `repo` (push the sample there first).
    pub(crate) fn variants(&self, repo: &str, n: usize) -> Vec<String> {
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(
                PathBuf::from(testdata("sample/oci/blobs/sha256"))
                    .join(SAMPLE_DIGEST.trim_start_matches("sha256:")),
            )
            .unwrap(),
        )
        .unwrap();
        let auth = self.auth_header();
        (0..n)
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
}

/// The sample image's config digest (testdata/README.md).
pub(crate) const SAMPLE_CONFIG: &str =
    "sha256:755ff705d063e27e88704d16cd7e6f6b8eeed428f869b24260eb3d0edc78b59d";

impl Registry {
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
            &self.addr(),
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
            &self.addr(),
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

/// An `imgscan serve` child.
pub(crate) struct Serve {
    child: Option<Child>,
    pub(crate) addr: String,
    pub(crate) log: Arc<Mutex<Vec<String>>>,
    pub(crate) config: PathBuf,
}

/// Writes a serve config into `dir` and returns its path. `extra` is more
/// TOML for the top level; `registries` are `(name, url)` pairs.
pub(crate) fn write_config(dir: &Path, extra: &str, registries: &[(&str, &str)]) -> PathBuf {
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let mut cfg = format!(
        "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\ntoken_file = \"{}\"\n\
         retry_after_secs = 1\nretry_backoff_secs = 1\n{extra}\n",
        dir.join("serve.db").display(),
        token.display()
    );
    for (name, url) in registries {
        cfg.push_str(&format!(
            "[[registry]]\nname = \"{name}\"\nurl = \"{url}\"\n"
        ));
    }
    let path = dir.join("serve.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

impl Serve {
    /// Starts `imgscan serve --config CONFIG` and waits for its address.
    pub(crate) fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgscan"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env_remove("IMGSCAN_SERVE_TOKEN")
            .env_remove("IMGSCAN_SERVE_TOKEN_FILE")
            .env_remove("IMGSCAN_USERNAME")
            .env_remove("IMGSCAN_PASSWORD")
            // No ambient docker credentials.
            .env(
                "DOCKER_CONFIG",
                config.parent().unwrap().join("no-docker-config"),
            )
            .env(
                "REGISTRY_AUTH_FILE",
                config.parent().unwrap().join("no-auth.json"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start imgscan serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.trim().to_owned());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "imgscan serve did not start:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        Self {
            child: Some(child),
            addr,
            log,
            config: config.to_path_buf(),
        }
    }

    /// The server's log so far.
    pub(crate) fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// A request with the API token.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let auth = format!("Bearer {TOKEN}");
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(headers);
        request(&self.addr, method, path, &h, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.logs()))
    }

    pub(crate) fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[], b"")
    }

    /// POSTs a notification envelope holding `events`.
    pub(crate) fn notify(&self, path: &str, events: &[Value]) -> Resp {
        let body = serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap();
        self.call("POST", path, &[("Content-Type", EVENTS_V1)], &body)
    }

    /// The scan record of `digest`, if any.
    pub(crate) fn scan(&self, digest: &str) -> Option<Value> {
        let r = self.get(&format!("/v1/scans/{digest}"));
        (r.status == 200).then(|| r.json())
    }

    /// Waits until every digest's scan is `done` and returns the records.
    pub(crate) fn wait_done(&self, digests: &[String], limit: Duration) -> Vec<Value> {
        wait_for(
            limit,
            "every scan to finish",
            || {
                let all: Vec<Value> = digests.iter().filter_map(|d| self.scan(d)).collect();
                if all.iter().any(|s| s["state"] == "failed") {
                    panic!("a scan failed: {all:#?}\n{}", self.logs());
                }
                (all.len() == digests.len() && all.iter().all(|s| s["state"] == "done"))
                    .then_some(all)
            },
            || {
                let states: Vec<String> = digests
                    .iter()
                    .map(|d| {
                        self.scan(d)
                            .map_or_else(|| "unknown".into(), |s| s["state"].to_string())
                    })
                    .collect();
                format!("states: {states:?}\nlog:\n{}", self.logs())
            },
        )
    }

    /// A gauge or counter value from /metrics (first line starting with `name`).
    pub(crate) fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").text();
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
    }

    /// `kill -9`.
    pub(crate) fn kill9(mut self) -> Arc<Mutex<Vec<String>>> {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        Arc::clone(&self.log)
    }

    /// SIGTERM, then the exit status (waits up to `limit`).
    pub(crate) fn terminate(mut self, limit: Duration) -> Option<i32> {
        let mut c = self.child.take().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s.code();
            }
            if start.elapsed() > limit {
                let _ = c.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A push event as distribution 2.8 sends it, envelope and fields as documented in
/// <https://distribution.github.io/distribution/about/notifications/>.
pub(crate) fn push_event(host: &str, repo: &str, tag: &str, digest: &str) -> Value {
    serde_json::json!({
        "id": format!("evt-{}-{tag}", &digest[7..19]),
        "timestamp": "2026-11-22T04:28:50.719048203Z",
        "action": "push",
        "target": {
            "mediaType": OCI_MANIFEST,
            "size": 800,
            "digest": digest,
            "length": 800,
            "repository": repo,
            "url": format!("http://{host}/v2/{repo}/manifests/{digest}"),
            "tag": tag,
            "references": [
                {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1703,
                 "digest": "sha256:755ff705d063e27e88704d16cd7e6f6b8eeed428f869b24260eb3d0edc78b59d"}
            ]
        },
        "request": {"id": "r1", "addr": "127.0.0.1:59458", "host": host, "method": "PUT",
                    "useragent": "skopeo/1.9.3"},
        "actor": {},
        "source": {"addr": "vm:5055", "instanceID": "ac9a9930"}
    })
}

/// A layer (blob) push event, which imgscan must ignore.
pub(crate) fn blob_event(host: &str, repo: &str) -> Value {
    serde_json::json!({
        "id": "blob-1", "action": "push",
        "target": {"mediaType": "application/octet-stream", "size": 164,
                   "digest": "sha256:76221633fd5527ce90fca671eec1ad56a8e98cf165bd64be623f0405b9af5826",
                   "repository": repo,
                   "url": format!("http://{host}/v2/{repo}/blobs/sha256:76221633fd5527ce90fca671eec1ad56a8e98cf165bd64be623f0405b9af5826")},
        "request": {"host": host, "method": "PUT"}
    })
}
