//! A throw-away PostgreSQL server on 127.0.0.1 from Debian's `postgresql`
//! package, for the PostgreSQL store tests (serve's own unit tests include
//! this file too, so it depends on nothing else in `support`).
//!
//! `initdb` refuses to run as root, so as root the cluster belongs to
//! `nobody` and every server command runs through `runuser -u nobody`.
//! TCP connections need the password (SCRAM), so the tests exercise
//! imgscan's password handling; the Unix socket in the data directory is
//! `trust`, for the server's own tools. The server is stopped (immediate
//! mode) when the handle drops.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser every test server has.
pub(crate) const PG_USER: &str = "imgscan";
/// Its password (TCP connections must give it).
pub(crate) const PG_PASSWORD: &str = "imgscan-test-password-1";

/// The directory of the newest installed PostgreSQL's server binaries;
/// fails the test with how to install it when there is none.
pub(crate) fn pg_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb), and this \
             test needs a real server: run scripts/install-test-deps (Debian package \
             `postgresql`), or scripts/test, which runs it first"
        )
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A running PostgreSQL server.
pub(crate) struct Postgres {
    bin: PathBuf,
    /// Holds `data/` (the cluster, its log and its socket).
    dir: tempfile::TempDir,
    /// The TCP port on 127.0.0.1.
    pub(crate) port: u16,
    root: bool,
    /// With TLS: the CA certificate (PEM) that signed the server's.
    pub(crate) ca: Option<PathBuf>,
}

impl Postgres {
    /// `initdb` and start a server on a free port.
    pub(crate) fn start() -> Self {
        Self::start_with(false)
    }

    /// [`Self::start`], serving TLS too (`ssl = on`) with a certificate for
    /// 127.0.0.1 signed by a throw-away CA ([`Self::ca`]); needs openssl.
    pub(crate) fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let bin = pg_bin();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = is_root();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, PG_PASSWORD).unwrap();
        if root {
            // nobody must reach the data directory and read the password.
            run(Command::new("chmod").arg("755").arg(dir.path()));
            run(Command::new("chmod").arg("644").arg(&pw));
            run(Command::new("chown").arg("nobody").arg(&data));
        }
        let mut pg = Self {
            bin,
            dir,
            port: free_port(),
            root,
            ca: None,
        };
        run(pg
            .server_cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", PG_USER, "-E", "UTF8", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pw.display())));
        if tls {
            pg.ca = Some(pg.make_certificates());
        }
        pg.start_server();
        pg
    }

    /// A CA and a server certificate for 127.0.0.1 in the data directory
    /// (the key readable by the server's user only); the CA's path.
    fn make_certificates(&self) -> PathBuf {
        let d = self.dir.path();
        let data = self.data();
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
            .args(["-days", "2", "-subj", "/CN=imgscan test database CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(d.join("ca.key"))
            .arg("-out")
            .arg(d.join("ca.pem")));
        run(Command::new("openssl")
            .arg("req")
            .args(ec)
            .args(["-subj", "/CN=127.0.0.1"])
            .arg("-keyout")
            .arg(data.join("server.key"))
            .arg("-out")
            .arg(d.join("server.csr")));
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(d.join("server.csr"))
            .arg("-CA")
            .arg(d.join("ca.pem"))
            .arg("-CAkey")
            .arg(d.join("ca.key"))
            .arg("-extfile")
            .arg(d.join("ext.cnf"))
            .arg("-out")
            .arg(data.join("server.crt")));
        run(Command::new("chmod")
            .arg("600")
            .arg(data.join("server.key")));
        if self.root {
            run(Command::new("chown")
                .arg("nobody")
                .arg(data.join("server.key"))
                .arg(data.join("server.crt")));
        }
        d.join("ca.pem")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command of the server's, as the cluster's owner.
    fn server_cmd(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn start_server(&self) {
        let data = self.data();
        let mut opts = format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {} -c max_connections=300",
            data.display(),
            self.port
        );
        if self.ca.is_some() {
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let out = self
            .server_cmd("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(data.join("server.log"))
            .args(["-o", &opts, "-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// The server's log.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.data().join("server.log")).unwrap_or_default()
    }

    /// Creates database `name`.
    pub(crate) fn create_database(&self, name: &str) {
        run(self
            .server_cmd("createdb")
            .arg("-h")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-U", PG_USER, name]));
    }

    /// Runs `sql` in database `db` with psql (over the trusted socket);
    /// its output, unaligned and tuples only.
    pub(crate) fn psql(&self, db: &str, sql: &str) -> String {
        let out = run(self
            .server_cmd("psql")
            .arg("-h")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-U", PG_USER, "-d", db])
            .args(["-v", "ON_ERROR_STOP=1", "-tA", "-c", sql]));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `postgres://imgscan@127.0.0.1:PORT/DB`, without the password.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Writes the password to `path` (for `database_password_file`).
    pub(crate) fn write_password(&self, path: &Path) {
        std::fs::write(path, format!("{PG_PASSWORD}\n")).unwrap();
    }

    /// Stops the server at once (as a crash would: `-m immediate`).
    pub(crate) fn stop(&self) {
        run(self.server_cmd("pg_ctl").arg("-D").arg(self.data()).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
    }

    /// Starts it again on the same port.
    pub(crate) fn restart(&self) {
        self.start_server();
    }

    /// Waits until the server accepts TCP connections.
    pub(crate) fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < limit, "PostgreSQL did not come back");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .server_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
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
