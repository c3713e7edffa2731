//! Running imgscan in an environment of its own: no credentials, configs
//! or engines of the machine's.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

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
