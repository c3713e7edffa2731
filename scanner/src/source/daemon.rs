//! Images in the local engine (`docker-daemon:NAME[:TAG]`): the Docker
//! Engine API's `GET /images/{name}/get` streams a docker-archive, which goes
//! straight into [`archive::scan_stream`] (no temporary file). Compiled with
//! the library's `daemon` feature (on by default).
//!
//! The engine is found as docker finds it: `DOCKER_HOST` (`unix:///path` or
//! `tcp://HOST:PORT`, plain HTTP), otherwise the first socket that exists of
//! `/var/run/docker.sock`, `$XDG_RUNTIME_DIR/podman/podman.sock`,
//! `/run/podman/podman.sock` and `~/.docker/run/docker.sock` (Docker Desktop).
//! podman's Docker-compatible service (`podman system service`) works too.
//!
//! The HTTP/1.1 client is a small one written here (one request per
//! connection, chunked or length-delimited bodies), since the API is local
//! and needs none of TLS, redirects or keep-alive.
//!
//! # Security
//!
//! Response heads are limited to 64 KiB and error bodies to 64 KiB; the
//! image body is bounded by the archive reader's own limits.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::{Input, OpenOptions, Opened, Transport, archive};
use crate::error::Result;

const MAX_HEAD: usize = 64 * 1024;
const MAX_ERROR_BODY: u64 = 64 * 1024;

pub use crate::error::DaemonError;

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineAddress {
    /// A unix socket.
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
}

impl std::fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Parses a `DOCKER_HOST` value.
pub fn parse_docker_host(v: &str) -> std::result::Result<EngineAddress, DaemonError> {
    let bad = |why: &str| DaemonError::BadHost {
        value: v.to_owned(),
        why: why.to_owned(),
    };
    if let Some(p) = v.strip_prefix("unix://") {
        if p.is_empty() {
            return Err(bad("no socket path"));
        }
        return Ok(EngineAddress::Unix(PathBuf::from(p)));
    }
    if let Some(a) = v
        .strip_prefix("tcp://")
        .or_else(|| v.strip_prefix("http://"))
    {
        let a = a.trim_end_matches('/');
        if a.is_empty() || a.contains('/') {
            return Err(bad("expected tcp://HOST:PORT"));
        }
        if std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|x| !x.is_empty()) {
            return Err(bad(
                "TLS to the engine (DOCKER_TLS_VERIFY) is not supported; use a unix socket or an SSH tunnel",
            ));
        }
        let a = if a
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            a.to_owned()
        } else {
            format!("{a}:2375")
        };
        return Ok(EngineAddress::Tcp(a));
    }
    Err(bad("only unix:// and tcp:// are supported"))
}

/// The engine to use: `DOCKER_HOST`, else the first default socket found.
pub fn engine_address() -> std::result::Result<EngineAddress, DaemonError> {
    if let Some(v) = std::env::var("DOCKER_HOST").ok().filter(|v| !v.is_empty()) {
        return parse_docker_host(&v);
    }
    let mut candidates = vec![PathBuf::from("/var/run/docker.sock")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(x).join("podman/podman.sock"));
    }
    candidates.push(PathBuf::from("/run/podman/podman.sock"));
    if let Some(h) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(h).join(".docker/run/docker.sock"));
    }
    for c in &candidates {
        if c.exists() {
            return Ok(EngineAddress::Unix(c.clone()));
        }
    }
    Err(DaemonError::NoEngine {
        why: format!(
            "DOCKER_HOST is not set and none of {} exists",
            candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// `NAME` → `NAME:latest` unless it has a tag, a digest or is an image ID,
/// so that the engine exports one image and not a whole repository.
pub fn normalize_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    let is_id = name.len() >= 12
        && (name.starts_with("sha256:") || name.chars().all(|c| c.is_ascii_hexdigit()));
    if is_id || last.contains(':') || name.contains('@') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

/// Percent-encodes what may not appear in a path (names keep `/`, `:`, `@`).
fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn connect(addr: &EngineAddress, timeout: Duration) -> io::Result<Box<dyn Stream>> {
    match addr {
        EngineAddress::Unix(p) => {
            let s = UnixStream::connect(p)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Ok(Box::new(s))
        }
        EngineAddress::Tcp(a) => {
            let s = TcpStream::connect(a.as_str())?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Ok(Box::new(s))
        }
    }
}

/// The body of an HTTP/1.1 response.
enum Body<R> {
    Chunked(ChunkedReader<R>),
    Length(io::Take<R>, u64),
    Close(R),
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Chunked(c) => c.read(buf),
            Self::Length(r, want) => {
                let n = r.read(buf)?;
                if n == 0 && r.limit() > 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the engine closed the connection {} bytes before the announced {want}",
                            r.limit()
                        ),
                    ));
                }
                Ok(n)
            }
            Self::Close(r) => r.read(buf),
        }
    }
}

/// Decodes `Transfer-Encoding: chunked`.
pub struct ChunkedReader<R> {
    inner: R,
    /// Bytes left in the current chunk.
    left: u64,
    done: bool,
}

impl<R: BufRead> ChunkedReader<R> {
    /// Wraps a reader positioned at the first chunk-size line.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            left: 0,
            done: false,
        }
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.inner).take(4096).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body ended inside a chunk header",
            ));
        }
        Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let line = self.line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            self.left = u64::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "bad chunk size line {:?}",
                        line.chars().take(40).collect::<String>()
                    ),
                )
            })?;
            if self.left == 0 {
                // Trailers, then the empty line.
                loop {
                    if self.line()?.is_empty() {
                        break;
                    }
                }
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the engine closed the connection inside a chunk",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk not followed by CRLF",
                ));
            }
        }
        Ok(n)
    }
}

struct Head {
    status: u16,
    chunked: bool,
    length: Option<u64>,
}

fn read_head(r: &mut impl BufRead) -> io::Result<Head> {
    let mut total = 0usize;
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r
            .take((MAX_HEAD - total) as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response head ended",
            ));
        }
        total += n;
        if total > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response head larger than 64 KiB",
            ));
        }
        let s = String::from_utf8_lossy(&line).trim_end().to_owned();
        if s.is_empty() {
            break;
        }
        lines.push(s);
    }
    let status_line = lines.first().map(String::as_str).unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let Some(status) = status.filter(|_| version.starts_with("HTTP/1.")) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not an HTTP/1.x status line: {:?}",
                status_line.chars().take(80).collect::<String>()
            ),
        ));
    };
    let mut chunked = false;
    let mut length = None;
    for l in &lines[1..] {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if k == "content-length" {
            length = v.parse::<u64>().ok();
        }
    }
    Ok(Head {
        status,
        chunked,
        length,
    })
}

/// Opens `GET /images/{name}/get` and returns the archive stream.
pub fn open_image(
    addr: &EngineAddress,
    name: &str,
    timeout: Duration,
) -> std::result::Result<impl Read + use<>, DaemonError> {
    let host = addr.to_string();
    let conn_err = |source| DaemonError::Connect {
        host: host.clone(),
        source,
    };
    let mut stream = connect(addr, timeout).map_err(conn_err)?;
    let path = format!("/images/{}/get", encode_path(name));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: imgscan/{}\r\nAccept: application/x-tar\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).map_err(conn_err)?;
    stream.flush().map_err(conn_err)?;
    let mut r = BufReader::with_capacity(256 * 1024, stream);
    let head = read_head(&mut r).map_err(|e| DaemonError::Protocol {
        host: host.clone(),
        why: e.to_string(),
    })?;
    let body = if head.chunked {
        Body::Chunked(ChunkedReader::new(r))
    } else if let Some(n) = head.length {
        Body::Length(r.take(n), n)
    } else {
        Body::Close(r)
    };
    if head.status == 200 {
        return Ok(body);
    }
    let mut text = Vec::new();
    let _ = body.take(MAX_ERROR_BODY).read_to_end(&mut text);
    let message = serde_json::from_slice::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&text).trim().to_owned());
    let message: String = message.chars().take(300).collect();
    Err(match head.status {
        404 => DaemonError::NotFound {
            host,
            name: name.to_owned(),
            message,
        },
        status => DaemonError::Http {
            host,
            request: format!("GET {path}"),
            status,
            message,
        },
    })
}

/// Opens `docker-daemon:NAME[:TAG]` (or a bare name that fell back to the
/// local engine): the export streams through the archive reader, which scans
/// its layers as they pass.
pub fn open(input: &Input, opts: &OpenOptions<'_>) -> Result<Opened> {
    let raw = input.reference.as_deref().unwrap_or(&input.source);
    let name = normalize_name(raw);
    let addr = engine_address()?;
    // The engine may take a while to start a large export (podman writes
    // it to a temporary file first): the idle limit is generous.
    let idle = opts.registry.request_timeout.max(Duration::from_secs(300));
    let body = open_image(&addr, &name, idle)?;
    let what = format!("docker-daemon:{name} ({addr})");
    let reader = BufReader::with_capacity(256 * 1024, body);
    let c = archive::scan_stream(reader, &what, opts.layer, opts.stream_workers)?;
    let mut plan = super::resolve(&c, Transport::Auto, None, opts.selection, "oci-archive")?;
    plan.format = "docker-daemon";
    plan.reference = Some(name);
    Ok(Opened::new(c, plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode() {
        let raw = b"5\r\nhello\r\na;ext=1\r\n, chunked!\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut out = String::new();
        ChunkedReader::new(&raw[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello, chunked!");
    }

    #[test]
    fn truncated_chunked_bodies_fail() {
        let raw = b"5\r\nhel";
        let mut out = Vec::new();
        assert!(ChunkedReader::new(&raw[..]).read_to_end(&mut out).is_err());
        let raw = b"zz\r\n";
        assert!(ChunkedReader::new(&raw[..]).read_to_end(&mut out).is_err());
    }

    #[test]
    fn heads_parse() {
        let mut r = &b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\nrest"[..];
        let h = read_head(&mut r).unwrap();
        assert_eq!(h.status, 200);
        assert!(h.chunked);
        assert_eq!(r, b"rest");
        let mut r = &b"SSH-2.0-OpenSSH\r\n\r\n"[..];
        assert!(read_head(&mut r).is_err());
    }

    #[test]
    fn docker_hosts() {
        assert_eq!(
            parse_docker_host("unix:///run/x.sock").unwrap(),
            EngineAddress::Unix("/run/x.sock".into())
        );
        assert_eq!(
            parse_docker_host("tcp://127.0.0.1:2375").unwrap(),
            EngineAddress::Tcp("127.0.0.1:2375".into())
        );
        assert!(parse_docker_host("npipe:////./pipe/docker").is_err());
        assert!(parse_docker_host("ssh://host").is_err());
    }

    #[test]
    fn names_get_a_tag() {
        assert_eq!(normalize_name("alpine"), "alpine:latest");
        assert_eq!(
            normalize_name("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(normalize_name("app:1.2"), "app:1.2");
        assert_eq!(normalize_name("app@sha256:abc"), "app@sha256:abc");
        assert_eq!(normalize_name("0123456789ab"), "0123456789ab");
        assert_eq!(encode_path("a b/c:d"), "a%20b/c:d");
    }
}
