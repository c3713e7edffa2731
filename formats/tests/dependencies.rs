//! The emitters read the scanner's model and nothing else: building
//! `imgscan-formats` must not compile the network stack the scanner's
//! `registry` feature brings (tokio, reqwest, rustls, oci-client). The
//! workspace depends on the scanner with `default-features = false` and this
//! crate turns on no feature of it; this test keeps it so, by asking cargo
//! for the normal (non-dev) dependency tree of this crate alone:
//!
//! ```text
//! cargo tree -p imgscan-formats -e normal --locked
//! ```

use std::path::Path;
use std::process::Command;

/// Crates that only a network transport needs.
const NETWORK: &[&str] = &[
    "tokio",
    "reqwest",
    "rustls",
    "hyper",
    "h2",
    "ring",
    "oci-client",
    "docker_credential",
];

#[test]
fn formats_builds_without_the_network_stack() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = Command::new(cargo)
        .arg("tree")
        .arg("--manifest-path")
        .arg(&manifest)
        .args([
            "-p",
            "imgscan-formats",
            "-e",
            "normal",
            "--locked",
            "--offline",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"imgscan-scanner"),
        "the tree does not list the scanner:\n{tree}"
    );
    let found: Vec<&&str> = NETWORK.iter().filter(|n| names.contains(n)).collect();
    assert!(
        found.is_empty(),
        "imgscan-formats pulls in {found:?}; the scanner's network features must stay off \
         for it:\n{tree}"
    );
}
