//! External tools the end-to-end tier runs, and how to get them.
//!
//! A missing tool fails the test with the Debian package that ships it and
//! the script that installs it: these tests never pass by skipping.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// `(tool, Debian package)`, as `scripts/install-test-deps` installs them.
const PACKAGES: &[(&str, &str)] = &[
    ("buildah", "buildah"),
    ("docker-registry", "docker-registry"),
    ("getcap", "libcap2-bin"),
    ("go", "golang-go"),
    ("htpasswd", "apache2-utils"),
    ("openssl", "openssl"),
    ("podman", "podman"),
    ("setcap", "libcap2-bin"),
    ("skopeo", "skopeo"),
    ("time", "time"),
    ("umoci", "umoci"),
    ("xmllint", "libxml2-utils"),
];

/// Where `tool` is: on PATH, or in /usr/sbin (setcap and getcap live there,
/// off a normal user's PATH).
pub(crate) fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The path of `tool`; fails the test with how to install it when it is missing.
pub(crate) fn require_tool(tool: &str) -> PathBuf {
    find_tool(tool).unwrap_or_else(|| {
        let package = PACKAGES
            .iter()
            .find(|(t, _)| *t == tool)
            .map_or(tool, |(_, p)| p);
        panic!(
            "`{tool}` is not installed, and this end-to-end test needs it: run \
             scripts/install-test-deps (Debian package `{package}`), or scripts/test, \
             which runs it first"
        )
    })
}

/// Fails the test unless it runs as root (`why` says what needs it).
pub(crate) fn require_root(why: &str) {
    // The effective uid, from /proc/self/status ("Uid: real effective ...").
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    assert!(root, "{why}: run this test as root");
}

/// Runs a command that must succeed; its output.
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
