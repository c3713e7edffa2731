//! The Go oracle (`tests/goracle/`): how Go's `archive/tar` and
//! `encoding/json`, the parsers container runtimes use, read an input.
//!
//! Built once per test run with Debian's `golang-go` (standard library only,
//! no network) into the cargo target directory.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::support::tools::require_tool;
use crate::util::root;

/// The built oracle binary.
pub(crate) fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let go = require_tool("go");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("goracle");
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("goracle");
        let out = Command::new(go)
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

fn frame(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

fn small_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(5);
    h.set_mode(0o4755);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "usr/bin/su", &b"hello"[..]).unwrap();
    b.into_inner().unwrap()
}

/// `goracle tar-loop` answers each framed tar with exactly what `goracle tar`
/// prints for it (error line included), in order, until its input ends.
#[test]
fn tar_loop_frames_are_goracle_tar_listings() {
    let inputs: Vec<Vec<u8>> = vec![small_tar(), vec![b'x'; 1024], Vec::new(), small_tar()];
    let mut child = Command::new(binary())
        .arg("tar-loop")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run goracle tar-loop");
    let mut stdin = child.stdin.take().unwrap();
    let framed: Vec<u8> = inputs.iter().flat_map(|i| frame(i)).collect();
    let writer = std::thread::spawn(move || stdin.write_all(&framed).unwrap());
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    let mut rest = &out[..];
    for input in &inputs {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        let (listing, tail) = tail.split_at(len);
        assert_eq!(std::str::from_utf8(listing).unwrap(), run(&["tar"], input));
        rest = tail;
    }
    assert!(rest.is_empty(), "answers past the last frame");
    // The garbage frame is refused, the tar listed.
    assert!(run(&["tar"], &inputs[1]).starts_with("error: "));
    assert_eq!(run(&["tar"], &inputs[0]).lines().count(), 1);
}
