//! Differential: imgscan's tar reader against Go's `archive/tar`, the reader
//! container runtimes extract layers with (moby, containerd, containers/storage,
//! umoci).
//!
//! The same bytes go to `tarstream::TarReader` (every member's data read and
//! hashed) and to the Go oracle (`tests/goracle`, `tar-loop` mode: one process
//! for the whole run, tars framed on its standard input). imgscan may refuse
//! anything; it must never accept a tar Go refuses, nor list members
//! differently from Go (name, link name, typeflag, permission bits, owner,
//! size, `SCHILY.xattr.*` records and the sha256 of the data, in the
//! oracle's canonical line), and the members both read before either stops
//! must be the same.
//!
//! The oracle is built with `go build` into `fuzz/target/goracle/` when the
//! target starts, unless `IMGSCAN_GORACLE` names a binary.
#![no_main]

use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use scanner::tarstream::{Header, Streaming, TarReader};
use sha2::{Digest as _, Sha256};

struct Oracle {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn oracle_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("IMGSCAN_GORACLE") {
        return p.into();
    }
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = fuzz.join("target").join("goracle");
    let out = dir.join("goracle");
    std::fs::create_dir_all(&dir).expect("creating fuzz/target/goracle");
    // As tests/go_oracle.rs builds it: offline, the local toolchain.
    let status = Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(fuzz.join("../tests/goracle"))
        .env("GOCACHE", dir.join("cache"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .stdout(Stdio::null())
        .status()
        .expect("running `go build` for the Go oracle");
    assert!(status.success(), "go build of tests/goracle failed");
    out
}

fn oracle() -> &'static Mutex<Oracle> {
    static ORACLE: OnceLock<Mutex<Oracle>> = OnceLock::new();
    ORACLE.get_or_init(|| {
        let mut child = Command::new(oracle_binary())
            .arg("tar-loop")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the Go oracle");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Mutex::new(Oracle {
            _child: child,
            stdin,
            stdout,
        })
    })
}

/// Go's listing of `data`: the text `goracle tar` prints.
fn go_listing(data: &[u8]) -> String {
    let mut o = oracle().lock().unwrap_or_else(|e| e.into_inner());
    let len = u32::try_from(data.len()).expect("input over 4 GiB");
    o.stdin.write_all(&len.to_le_bytes()).expect("oracle gone");
    o.stdin.write_all(data).expect("oracle gone");
    o.stdin.flush().expect("oracle gone");
    let mut n = [0u8; 4];
    o.stdout
        .read_exact(&mut n)
        .expect("the Go oracle died (a panic in archive/tar?)");
    let mut out = vec![0u8; u32::from_le_bytes(n) as usize];
    o.stdout.read_exact(&mut out).expect("oracle gone");
    String::from_utf8(out).expect("oracle output is not UTF-8")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// imgscan's line for a member, in the oracle's canonical form
/// (`tests/goracle/tar.go` `listTar`): keys sorted; name, link name and
/// xattrs hex; `size` is Go's `Header.Size` (declared, also for header-only
/// types); `data` the sha256 of the bytes the member's data reader gives.
fn line(h: &Header, data_sha: &[u8]) -> String {
    let xattrs: Vec<String> = h
        .xattrs
        .iter()
        .map(|(k, v)| format!("\"{}\":\"{}\"", hex(k), hex(v)))
        .collect();
    format!(
        "{{\"data\":\"{}\",\"gid\":{},\"linkname\":\"{}\",\"mode\":{},\"name\":\"{}\",\"size\":{},\"typeflag\":{},\"uid\":{},\"xattrs\":{{{}}}}}",
        hex(data_sha),
        h.gid,
        hex(&h.link),
        h.mode,
        hex(&h.path),
        h.header_size,
        h.typeflag,
        h.uid,
        xattrs.join(",")
    )
}

/// A reading: the member lines, and the error that ended it, if any.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    lines: Vec<String>,
    error: Option<String>,
    /// imgscan's only: where each member's data ends.
    ends: Vec<u64>,
}

fn imgscan_reading(data: &[u8]) -> Reading {
    let mut r = TarReader::new(Streaming::new(data));
    let mut lines = Vec::new();
    let mut ends = Vec::new();
    loop {
        let h = match r.next_header() {
            Ok(Some(h)) => h,
            Ok(None) => {
                return Reading {
                    lines,
                    error: None,
                    ends,
                };
            }
            Err(e) => {
                return Reading {
                    lines,
                    error: Some(e.to_string()),
                    ends,
                };
            }
        };
        let mut sum = Sha256::new();
        if let Err(e) = std::io::copy(&mut r.data(), &mut sum) {
            return Reading {
                lines,
                error: Some(e.to_string()),
                ends,
            };
        }
        lines.push(line(&h, &sum.finalize()));
        ends.push(r.position());
    }
}

fn go_reading(data: &[u8]) -> Reading {
    let out = go_listing(data);
    let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
    let error = match lines.last() {
        Some(l) if l.starts_with("error: ") => lines.pop(),
        _ => None,
    };
    Reading {
        lines,
        error,
        ends: Vec::new(),
    }
}

/// The rule: the members both read agree; if imgscan reads the whole tar,
/// Go reads it too, identically.
///
/// When imgscan refuses the tar after `k` members, Go gets only the bytes up
/// to the end of the k-th member (rounded up to a block) and the first `k`
/// members are compared: Go has read them before it reads further, and the
/// member imgscan refused may be one Go would take forever over (a PAX
/// sparse file whose `GNU.sparse.realsize` is a petabyte of holes, which
/// `listTar` hashes byte by byte).
fn check(data: &[u8]) {
    let ours = imgscan_reading(data);
    if ours.error.is_some() {
        let Some(&end) = ours.ends.last() else {
            return; // nothing read: nothing to compare
        };
        let end = (end.div_ceil(512) * 512).min(data.len() as u64) as usize;
        let go = go_reading(&data[..end]);
        let n = ours.lines.len().min(go.lines.len());
        assert_eq!(
            ours.lines[..n],
            go.lines[..n],
            "the members both read differ\nimgscan: {ours:#?}\ngo: {go:#?}"
        );
        return;
    }
    let go = go_reading(data);
    assert!(
        go.error.is_none(),
        "imgscan reads a tar Go refuses\nimgscan: {ours:#?}\ngo: {go:#?}"
    );
    assert_eq!(
        ours.lines, go.lines,
        "imgscan reads a tar Go reads differently\nimgscan: {ours:#?}\ngo: {go:#?}"
    );
}

fuzz_target!(
    // Builds and starts the oracle before the first input (and its timeout).
    init: {
        oracle();
    },
    |data: &[u8]| check(data)
);
