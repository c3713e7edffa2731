//! An in-process distribution registry on 127.0.0.1: a thread answering the
//! few requests a pull makes (`/v2/`, manifests, blobs, tags), so that the
//! tool-free tier covers the registry protocol and its failures (token
//! flow, digest mismatches, 404s, truncated and refused blobs) without a
//! real registry. Answers follow the distribution spec
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md>):
//! `Docker-Content-Digest` on manifests, `Range` on blobs, the JSON error
//! envelope on 404s.
//!
//! A test gives a handler, usually [`Image::answer`] wrapped in the one
//! fault it checks. One request per connection (`Connection: close`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// One request as the fake registry saw it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// `GET`, `HEAD`, ...
    pub(crate) method: String,
    /// The path, without the query.
    pub(crate) path: String,
    /// The query string, without `?` (empty when there is none).
    pub(crate) query: String,
    /// Header names and values as sent.
    pub(crate) headers: Vec<(String, String)>,
}

impl Request {
    /// A header's value (case-insensitive name).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake registry answers.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes (after a `Content-Length` of the
    /// whole body), then close: a connection dropped mid-body.
    cut_at: Option<usize>,
}

impl Response {
    /// An empty answer with `status`.
    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_at: None,
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body and its `Content-Type`.
    pub(crate) fn body(self, content_type: &str, body: Vec<u8>) -> Self {
        let mut r = self.header("Content-Type", content_type);
        r.body = body;
        r
    }

    /// A JSON body.
    pub(crate) fn json(status: u16, value: &Value) -> Self {
        Self::status(status).body("application/json", serde_json::to_vec(value).unwrap())
    }

    /// A distribution error envelope (`{"errors": [{"code", "message"}]}`).
    pub(crate) fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(
            status,
            &json!({"errors": [{"code": code, "message": message, "detail": null}]}),
        )
    }

    /// Replaces the body (same headers); for a blob or manifest that is not
    /// what its digest says.
    pub(crate) fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The body.
    pub(crate) fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Sends `n` bytes of the body after announcing all of it, then closes.
    pub(crate) fn cut_at(mut self, n: usize) -> Self {
        self.cut_at = Some(n);
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running fake registry; stops when dropped.
pub(crate) struct FakeRegistry {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl FakeRegistry {
    /// Starts answering every request with `handler`.
    pub(crate) fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (handler, requests) = (Arc::clone(&handler), Arc::clone(&requests));
                    std::thread::spawn(move || {
                        let _ = serve_one(conn, &*handler, &requests);
                    });
                }
            });
        }
        Self {
            port,
            requests,
            stop,
        }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request so far, in arrival order.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one request from `conn`, answers it and closes the connection.
fn serve_one(
    conn: TcpStream,
    handler: &Handler,
    requests: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    // imgscan tries HTTPS first on loopback hosts: a TLS ClientHello
    // (record type 0x16) is refused by closing, so it falls back to HTTP.
    if reader
        .fill_buf()?
        .first()
        .is_none_or(|b| !b.is_ascii_uppercase())
    {
        return conn.shutdown(Shutdown::Both);
    }
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    let req = Request {
        method,
        path,
        query,
        headers,
    };
    if let Some(len) = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink())?;
    }
    requests.lock().unwrap().push(req.clone());
    let resp = handler(&req);
    let mut conn = conn;
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.body.len()
    ));
    conn.write_all(head.as_bytes())?;
    if req.method != "HEAD" {
        let n = resp.cut_at.unwrap_or(resp.body.len()).min(resp.body.len());
        conn.write_all(&resp.body[..n])?;
    }
    conn.flush()?;
    conn.shutdown(Shutdown::Both)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// One image in one repository, served as a registry serves it.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    /// Repository name (`lab/app`).
    pub(crate) repo: String,
    /// Its one tag.
    pub(crate) tag: String,
    /// The manifest's digest.
    pub(crate) digest: String,
    /// The manifest's media type.
    pub(crate) media_type: String,
    /// The manifest bytes.
    pub(crate) manifest: Vec<u8>,
    /// Config and layer blobs by digest.
    pub(crate) blobs: BTreeMap<String, Vec<u8>>,
}

impl Image {
    /// The image an OCI layout's `index.json` names first (as written by
    /// [`crate::util::write_oci_layout`]), as `repo:tag`.
    pub(crate) fn from_layout(layout: &Path, repo: &str, tag: &str) -> Self {
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let desc = &index["manifests"][0];
        let digest = desc["digest"].as_str().unwrap().to_owned();
        let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
        let manifest = blob(&digest);
        let doc: Value = serde_json::from_slice(&manifest).unwrap();
        let mut blobs = BTreeMap::new();
        for d in std::iter::once(&doc["config"]).chain(doc["layers"].as_array().unwrap()) {
            let d = d["digest"].as_str().unwrap();
            blobs.insert(d.to_owned(), blob(d));
        }
        Self {
            repo: repo.to_owned(),
            tag: tag.to_owned(),
            digest,
            media_type: desc["mediaType"].as_str().unwrap().to_owned(),
            manifest,
            blobs,
        }
    }

    /// The manifest's layer digests, in order.
    pub(crate) fn layers(&self) -> Vec<String> {
        let doc: Value = serde_json::from_slice(&self.manifest).unwrap();
        doc["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The registry API for this image: `/v2/`, its manifest by tag or
    /// digest, its blobs (with `Range`), its tag list; 404s otherwise.
    pub(crate) fn answer(&self, req: &Request) -> Response {
        if req.path == "/v2/" {
            return Response::status(200)
                .header("Docker-Distribution-API-Version", "registry/2.0")
                .body("application/json", b"{}".to_vec());
        }
        let Some(rest) = req.path.strip_prefix("/v2/") else {
            return Response::status(404);
        };
        let Some((repo, tail)) = rest
            .rsplit_once("/manifests/")
            .map(|(r, t)| (r, ("manifests", t)))
            .or_else(|| rest.rsplit_once("/blobs/").map(|(r, t)| (r, ("blobs", t))))
            .or_else(|| rest.strip_suffix("/tags/list").map(|r| (r, ("tags", ""))))
        else {
            return Response::status(404);
        };
        if repo != self.repo {
            return Response::error(404, "NAME_UNKNOWN", "repository name not known to registry");
        }
        match tail {
            ("manifests", r) if r == self.tag || r == self.digest => Response::status(200)
                .header("Docker-Content-Digest", &self.digest)
                .body(&self.media_type, self.manifest.clone()),
            ("manifests", _) => Response::error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
            ("blobs", d) => match self.blobs.get(d) {
                Some(b) => blob_answer(req, d, b),
                None => Response::error(404, "BLOB_UNKNOWN", "blob unknown to registry"),
            },
            _ => Response::json(200, &json!({"name": self.repo, "tags": [self.tag]})),
        }
    }
}

/// A blob, or the part of it a `Range: bytes=N-` asks for.
fn blob_answer(req: &Request, digest: &str, blob: &[u8]) -> Response {
    let start = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<usize>().ok());
    let base = |status| Response::status(status).header("Docker-Content-Digest", digest);
    match start {
        None => base(200).body("application/octet-stream", blob.to_vec()),
        Some(s) if s < blob.len() => base(206)
            .header(
                "Content-Range",
                &format!("bytes {s}-{}/{}", blob.len() - 1, blob.len()),
            )
            .body("application/octet-stream", blob[s..].to_vec()),
        Some(_) => Response::status(416),
    }
}

/// Wraps `inner` in the Bearer token flow registries use
/// (<https://distribution.github.io/distribution/spec/auth/token/>): every
/// `/v2/` request without `Authorization: Bearer TOKEN` gets a 401 whose
/// challenge names the realm `http://HOST/token`; the realm hands out
/// `token` for a pull scope of `repo`.
pub(crate) fn bearer(
    token: &'static str,
    repo: &str,
    inner: impl Fn(&Request) -> Response + Send + Sync + 'static,
) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    let scope = format!("repository:{repo}:pull");
    move |req| {
        let host = req.header("host").unwrap_or("127.0.0.1").to_owned();
        if req.path == "/token" {
            let asked = req.query.split('&').any(|kv| {
                kv.strip_prefix("scope=")
                    .is_some_and(|s| s.replace("%3A", ":").replace("%2F", "/") == scope)
            });
            return if asked {
                Response::json(200, &json!({"token": token, "expires_in": 300}))
            } else {
                Response::error(403, "DENIED", "unknown scope")
            };
        }
        if req.header("authorization") == Some(&format!("Bearer {token}")) {
            return inner(req);
        }
        Response::error(401, "UNAUTHORIZED", "authentication required").header(
            "WWW-Authenticate",
            &format!(
                "Bearer realm=\"http://{host}/token\",service=\"fake-registry\",scope=\"{scope}\""
            ),
        )
    }
}

/// Wraps `inner` in HTTP Basic auth: every request without
/// `Authorization: Basic base64(user:password)` gets a 401 with a Basic
/// challenge, as an htpasswd-protected distribution registry answers.
pub(crate) fn basic(
    user: &str,
    password: &str,
    inner: impl Fn(&Request) -> Response + Send + Sync + 'static,
) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    move |req| {
        if req.header("authorization") == Some(expected.as_str()) {
            inner(req)
        } else {
            Response::error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", "Basic realm=\"fake-registry\"")
        }
    }
}
