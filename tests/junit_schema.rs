//! JUnit XML against the Jenkins xunit plugin's JUnit schema
//! (`formats/schema/jenkins-junit.xsd`, vendored; origin and licence in
//! `formats/schema/README.md`), checked by `xmllint --schema` from Debian's
//! libxml2-utils: the sample in each of its forms, several images in one
//! file, every threshold, and an image whose paths hold markup and control
//! characters. A missing xmllint fails with the package to install.
//! See: issue #12.

use std::path::Path;

use serde_json::json;

use crate::support::tools::require_tool;
use crate::util::{Comp, LayerBuilder, base_layer, imgscan, root, testdata, write_oci_layout};

const XSD: &str = "formats/schema/jenkins-junit.xsd";

/// The schema file is the one the README names (its sha256).
fn check_schema_hash() {
    use sha2::Digest as _;
    let bytes = std::fs::read(root().join(XSD)).unwrap();
    let hash = sha2::Sha256::digest(&bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex, "a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6",
        "{XSD} changed: it must stay the vendored upstream file (formats/schema/README.md)"
    );
}

/// Validates `file` with xmllint; fails with its output.
fn validate(file: &Path) {
    let xmllint = require_tool("xmllint");
    let out = std::process::Command::new(xmllint)
        .arg("--noout")
        .arg("--schema")
        .arg(root().join(XSD))
        .arg(file)
        .output()
        .expect("run xmllint");
    assert!(
        out.status.success(),
        "xmllint rejects {}:\n{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

/// `--junit FILE` and `--format junit` are valid against the Jenkins JUnit
/// schema for every input form of the sample, several images at once, every
/// threshold, and hostile file names.
#[test]
fn junit_is_valid_against_the_jenkins_schema() {
    check_schema_hash();
    let dir = tempfile::tempdir().unwrap();
    let hostile = dir.path().join("hostile");
    write_oci_layout(
        &hostile,
        &[
            base_layer()
                .file("usr/bin/a<b>&\"c'", 0o4755, b"x")
                .file("opt/]]>\u{1b}[31mred\u{7f}", 0o6755, b"y")
                .build(),
            LayerBuilder::new()
                .file("tmp/\ttab\u{1}", 0o4777, b"z")
                .build(),
        ],
        Comp::Gzip,
        json!({"User": "root", "ExposedPorts": {"22/tcp": {}}}),
    );
    let hostile = hostile.to_str().unwrap().to_owned();
    let sample = testdata("sample-docker.tar");
    let oci = testdata("sample/oci");
    let inputs: [&[&str]; 4] = [&[&sample], &[&oci], &[&sample, &oci], &[&hostile]];
    let mut n = 0;
    for images in inputs {
        for fail_on in ["critical", "high", "info", "none"] {
            n += 1;
            let file = dir.path().join(format!("{n}.xml"));
            let mut args = vec!["--quiet", "--fail-on", fail_on, "--junit"];
            args.push(file.to_str().unwrap());
            args.extend_from_slice(images);
            let out = imgscan(&args);
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{images:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            validate(&file);
            // --format junit on stdout is the same document.
            let mut args = vec!["--fail-on", fail_on, "--format", "junit"];
            args.extend_from_slice(images);
            let out = imgscan(&args);
            assert_eq!(out.stdout, std::fs::read(&file).unwrap(), "{images:?}");
        }
    }
    // With a policy that accepts every finding of the hostile image (its
    // reasons and paths escaped in <system-out>): still valid, no failure.
    let policy = dir.path().join("imgscan.toml");
    succeeds(&[
        "baseline",
        "--quiet",
        "-o",
        policy.to_str().unwrap(),
        &hostile,
    ]);
    let text = std::fs::read_to_string(&policy).unwrap().replace(
        "reason = \"TODO\"",
        "reason = \"<reviewed> & \\\"ok\\\" ]]>\"",
    );
    std::fs::write(&policy, text).unwrap();
    let file = dir.path().join("policy.xml");
    succeeds(&[
        "--quiet",
        "--fail-on",
        "info",
        "--config",
        policy.to_str().unwrap(),
        "--junit",
        file.to_str().unwrap(),
        &hostile,
    ]);
    validate(&file);
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(!xml.contains("<failure"), "{xml}");
    assert!(xml.contains("&lt;reviewed&gt; &amp;"), "{xml}");
}

/// Runs imgscan; fails the test unless it exits 0.
fn succeeds(args: &[&str]) {
    let out = imgscan(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
