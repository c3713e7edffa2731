//! Real services for `tests/registry.rs`, all on 127.0.0.1: a CNCF
//! distribution registry (`docker-registry serve`), optionally with TLS from
//! a throw-away CA and htpasswd auth; a fault-injecting HTTP proxy; podman's
//! Docker-compatible API. Every process is killed when its handle drops.
//!
//! A missing tool fails the test with a pointer to `scripts/install-test-deps`:
//! these tests never pass by skipping.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Panics unless `tool` is on PATH.
pub(crate) fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        || Path::new("/usr/sbin").join(tool).is_file();
    assert!(
        found,
        "`{tool}` is not installed, and the registry tests need it: run scripts/install-test-deps"
    );
}

/// Runs a command that must succeed.
pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (see scripts/install-test-deps)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A free port on 127.0.0.1 (the listener is closed again).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the service exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after 20 s");
}

/// TLS material: a CA and a server certificate for 127.0.0.1 signed by it.
pub(crate) struct Tls {
    /// The CA certificate (PEM), for `--ca-cert`.
    pub(crate) ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_tls(dir: &Path) -> Tls {
    require("openssl");
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
        require("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let tls = cfg.tls.then(|| make_tls(dir.path()));
        let port = free_port();
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
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
            require("htpasswd");
            let out = run(Command::new("htpasswd").args(["-Bbn", u, p]));
            std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: imgscan-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml).unwrap();
        let log = dir.path().join("registry.log");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("registry.err")).unwrap())
            .spawn()
            .expect("start docker-registry (see scripts/install-test-deps)");
        wait_for_port(port, &mut child, &dir.path().join("registry.err"));
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

    /// Copies an image into `repo_tag` (`lab/sample:v1`) with skopeo.
    pub(crate) fn push(&self, src: &str, repo_tag: &str, extra: &[&str]) {
        require("skopeo");
        let mut cmd = Command::new("skopeo");
        // A private HOME: skopeo's blob-info cache would otherwise reuse
        // blobs known from other registries instead of recompressing.
        cmd.env("HOME", self.dir.path()).args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        if let Some((u, p)) = self.user {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        cmd.args(extra)
            .arg(src)
            .arg(format!("docker://{}/{repo_tag}", self.host()));
        run(&mut cmd);
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
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy does to matching requests.
#[derive(Clone)]
pub(crate) enum Fault {
    /// Answer `503` with `Retry-After: 1`, `times` times.
    Unavailable { path: &'static str, times: usize },
    /// Forward the first `after` bytes of the response, then drop the
    /// connection, `times` times.
    Drop {
        path: &'static str,
        after: usize,
        times: usize,
    },
}

/// An HTTP proxy on 127.0.0.1 in front of `upstream`, one request per
/// connection, injecting faults.
pub(crate) struct Proxy {
    /// Port it listens on.
    pub(crate) port: u16,
    /// How many faults were injected.
    pub(crate) injected: Arc<AtomicUsize>,
    /// Request paths, in arrival order.
    pub(crate) requests: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    /// Starts the proxy.
    pub(crate) fn start(upstream: u16, faults: Vec<Fault>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let injected = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counters: Arc<Vec<AtomicUsize>> =
            Arc::new(faults.iter().map(|_| AtomicUsize::new(0)).collect());
        let faults = Arc::new(faults);
        {
            let (injected, stop, requests) = (injected.clone(), stop.clone(), requests.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (faults, counters, injected, requests) = (
                        faults.clone(),
                        counters.clone(),
                        injected.clone(),
                        requests.clone(),
                    );
                    std::thread::spawn(move || {
                        let _ = serve_one(conn, upstream, &faults, &counters, &injected, &requests);
                    });
                }
            });
        }
        Self {
            port,
            injected,
            requests,
            stop,
        }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_one(
    client: TcpStream,
    upstream: u16,
    faults: &[Fault],
    counters: &[AtomicUsize],
    injected: &AtomicUsize,
    requests: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push(line);
    }
    let path = head
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_owned();
    if let Ok(mut r) = requests.lock() {
        r.push(path.clone());
    }
    let mut client = client;
    let mut drop_after = None;
    for (f, n) in faults.iter().zip(counters) {
        let (p, times) = match f {
            Fault::Unavailable { path, times } | Fault::Drop { path, times, .. } => (path, times),
        };
        if !path.contains(p) || n.fetch_add(1, Ordering::SeqCst) >= *times {
            continue;
        }
        injected.fetch_add(1, Ordering::SeqCst);
        match f {
            Fault::Unavailable { .. } => {
                client.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nunavailable",
                )?;
                client.shutdown(Shutdown::Both)?;
                return Ok(());
            }
            Fault::Drop { after, .. } => drop_after = Some(*after),
        }
        break;
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut req = String::new();
    for l in &head {
        if !l.to_ascii_lowercase().starts_with("connection:") {
            req.push_str(l);
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    let mut sent = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let n = match drop_after {
            Some(limit) if sent + n >= limit => {
                client.write_all(&buf[..limit - sent])?;
                // An abortive close: the client sees a reset mid-body.
                client.shutdown(Shutdown::Both)?;
                return Ok(());
            }
            _ => n,
        };
        client.write_all(&buf[..n])?;
        sent += n;
    }
    client.shutdown(Shutdown::Both)?;
    Ok(())
}

/// podman's Docker-compatible API on a unix socket, over a private vfs store.
pub(crate) struct Podman {
    child: Child,
    /// Temporary directory (store, socket).
    pub(crate) dir: TempDir,
}

impl Podman {
    fn base(dir: &Path) -> Command {
        let mut c = Command::new("podman");
        c.arg("--storage-driver=vfs")
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .args(["--cgroup-manager=cgroupfs", "--events-backend=file"])
            .env("XDG_RUNTIME_DIR", dir.join("xdg"))
            .env("HOME", dir);
        c
    }

    /// Loads `archive` (a docker-archive) into a fresh store and serves the API.
    pub(crate) fn start(archive: &str) -> Self {
        require("podman");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("xdg")).unwrap();
        run(Self::base(dir.path()).args(["load", "-q", "-i", archive]));
        let sock = dir.path().join("podman.sock");
        let log = dir.path().join("podman.log");
        let mut child = Self::base(dir.path())
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start podman system service (see scripts/install-test-deps)");
        let start = Instant::now();
        while !sock.exists() {
            if let Ok(Some(s)) = child.try_wait() {
                panic!(
                    "podman system service exited ({s}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "podman's socket did not appear"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, dir }
    }

    /// `unix:///…/podman.sock`, for `DOCKER_HOST`.
    pub(crate) fn docker_host(&self) -> String {
        format!("unix://{}", self.dir.path().join("podman.sock").display())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An environment with no credentials, configs or engines of the machine's
/// own: a private HOME and DOCKER_CONFIG.
pub(crate) struct CleanEnv {
    /// The private home.
    pub(crate) home: TempDir,
}

impl CleanEnv {
    /// A fresh one.
    pub(crate) fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".docker")).unwrap();
        Self { home }
    }

    /// The docker config directory (`$DOCKER_CONFIG`).
    pub(crate) fn docker_config(&self) -> PathBuf {
        self.home.path().join(".docker")
    }

    /// An imgscan command in this environment.
    pub(crate) fn imgscan(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_imgscan"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("DOCKER_CONFIG", self.docker_config())
            .env("XDG_RUNTIME_DIR", self.home.path())
            .env("DOCKER_HOST", "unix:///nonexistent/imgscan-test.sock")
            .stdin(Stdio::null());
        c
    }
}

/// The outcome of one imgscan run.
pub(crate) struct Run {
    /// Exit code.
    pub(crate) code: i32,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

impl Run {
    /// The JSON report on standard output.
    pub(crate) fn json(&self) -> Value {
        assert!(
            self.code == 0 || self.code == 1,
            "imgscan failed ({}): {}",
            self.code,
            self.stderr
        );
        serde_json::from_str(&self.stdout).expect("a JSON report")
    }
}

/// Runs `cmd` with `stdin` bytes.
pub(crate) fn output(cmd: &mut Command, stdin: Option<&str>) -> Run {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run imgscan");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
