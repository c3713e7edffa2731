//! The Go oracle (`tests/goracle/`): how Go's `archive/tar` and
//! `encoding/json`, the parsers container runtimes use, read an input.
//!
//! Built once per test run with Debian's `golang-go` (standard library only,
//! no network) into the cargo target directory.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::util::{require_tool, root};

/// The built oracle binary.
pub(crate) fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        require_tool("go");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("goracle");
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("goracle");
        let out = Command::new("go")
            .args(["build", "-trimpath", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(root().join("tests/goracle"))
            .env("GOCACHE", dir.join("cache"))
            .env("GOPATH", dir.join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .output()
            .expect("run go build");
        assert!(
            out.status.success(),
            "building tests/goracle failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
    .clone()
}

/// Runs `goracle ARGS` with `input` on standard input; its standard output.
/// An input Go rejects ends with a line `error: ...`.
pub(crate) fn run(args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run goracle");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        // Go may stop reading early (a rejected input): a broken pipe is fine.
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for goracle");
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "goracle {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("goracle prints UTF-8")
}
