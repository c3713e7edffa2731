//! podman's Docker-compatible API on a unix socket, for `docker-daemon:`
//! pulls. Killed when its handle drops.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::tools::{require_tool, run};

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
        require_tool("podman");
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
