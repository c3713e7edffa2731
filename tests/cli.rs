//! The command line: exit codes, subcommands, output files.

use serde_json::json;

use crate::util::{Comp, base_layer, imgscan, testdata, write_oci_layout};

/// 0 when nothing reaches --fail-on, 1 when something does, for each level.
#[test]
fn exit_codes_follow_fail_on() {
    let sample = testdata("sample-docker.tar");
    // The sample has critical findings (a telnet server on an exposed port).
    for (level, code) in [("critical", 1), ("high", 1), ("info", 1), ("none", 0)] {
        let out = imgscan(&["--fail-on", level, "--format", "json", &sample]);
        assert_eq!(out.status.code(), Some(code), "--fail-on {level}");
    }
    // Default threshold is high.
    assert_eq!(imgscan(&[&sample]).status.code(), Some(1));
    // A clean image passes at every level.
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(
        dir.path(),
        &[base_layer().build()],
        Comp::Gzip,
        json!({"User": "app"}),
    );
    let out = imgscan(&["--fail-on", "info", dir.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `imgscan scan IMG...` equals `imgscan IMG`, and several images give a
/// documented multi-image JSON report.
#[test]
fn scan_subcommand_and_several_images() {
    let sample = testdata("sample-docker.tar");
    let a = imgscan(&["--format", "json", &sample]);
    let b = imgscan(&["scan", "--format", "json", &sample]);
    assert_eq!(a.stdout, b.stdout);
    let oci = testdata("sample/oci");
    let out = imgscan(&["--format", "json", &sample, &oci]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reports"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["summary"]["total"].as_u64().unwrap(),
        2 * v["reports"][0]["summary"]["total"].as_u64().unwrap()
    );
}

/// `imgscan rules` lists every rule; `explain` documents one; an unknown
/// rule is an error.
#[test]
fn rules_and_explain() {
    let out = imgscan(&["rules"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for id in [
        "root-user",
        "setuid-binary",
        "setgid-binary",
        "file-capability",
        "world-writable-path",
        "remote-shell-daemon",
    ] {
        assert!(text.contains(id), "rules lists {id}");
    }
    let out = imgscan(&["explain", "file-capability"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Why is this bad"), "{text}");
    let by_code = imgscan(&["explain", "IS006"]);
    assert_eq!(by_code.stdout, text.as_bytes());
    let out = imgscan(&["explain", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("setuid-binary"));
}

/// --output writes the report to a file and nothing to stdout; no image is
/// a usage error.
#[test]
fn output_file_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("r.sarif");
    let out = imgscan(&[
        "--format",
        "sarif",
        "--output",
        o.to_str().unwrap(),
        &testdata("sample-docker.tar"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&o).unwrap()).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert_eq!(imgscan(&[]).status.code(), Some(2));
    assert_eq!(imgscan(&["--format", "xml", "x"]).status.code(), Some(2));
    assert_eq!(
        imgscan(&["--platform", "a/b/c/d", &testdata("sample-docker.tar")])
            .status
            .code(),
        Some(2)
    );
}

/// `--no-verify` (seeking over member data) finds exactly what the verified
/// scan finds, on every local form of the sample and on hand-made layers in
/// each compression, says in the report that nothing was verified, and is
/// refused for standard input.
#[test]
fn no_verify_finds_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let layers = [
        base_layer()
            .file("usr/bin/su", 0o4755, b"x")
            .file("tmp/ww", 0o666, b"y")
            .build(),
        crate::util::LayerBuilder::new()
            .whiteout("usr/bin/su")
            .file("usr/bin/newsu", 0o4755, b"z")
            .build(),
    ];
    let mut inputs = vec![testdata("sample-docker.tar"), testdata("sample/oci")];
    for (i, comp) in [Comp::None, Comp::Gzip, Comp::Zstd].into_iter().enumerate() {
        let d = dir.path().join(format!("l{i}"));
        write_oci_layout(&d, &layers, comp, json!({"User": "app"}));
        inputs.push(d.to_str().unwrap().to_owned());
    }
    let archive = dir.path().join("a.tar");
    std::fs::write(
        &archive,
        crate::util::docker_archive(&layers, json!({"User": "app"}), "t:1"),
    )
    .unwrap();
    inputs.push(archive.to_str().unwrap().to_owned());
    for input in &inputs {
        let verified = imgscan(&["--format", "json", "--fail-on", "none", input]);
        let fast = imgscan(&[
            "--no-verify",
            "--format",
            "json",
            "--fail-on",
            "none",
            input,
        ]);
        assert_eq!(verified.status.code(), Some(0), "{input}");
        assert_eq!(
            fast.status.code(),
            Some(0),
            "{input}: {}",
            String::from_utf8_lossy(&fast.stderr)
        );
        let a: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&fast.stdout).unwrap();
        assert!(!a["findings"].as_array().unwrap().is_empty(), "{input}");
        assert_eq!(a["findings"], b["findings"], "{input}");
        assert!(
            b["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("--no-verify")),
            "{input}: {}",
            b["warnings"]
        );
    }
    let out = crate::util::imgscan_stdin(&["--no-verify", "-"], Some(b""));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("local files"));
}

/// `imgscan harden`: text and JSON, derived from the image; sarif refused.
#[test]
fn harden_prints_the_settings_derived_from_the_image() {
    let sample = testdata("sample-docker.tar");
    let out = imgscan(&["harden", &sample]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "runs as root (uid 0): closed by a non-root user",
        "allowPrivilegeEscalation: false",
        "drop: [ALL]",
        "docker run ",
        "--security-opt no-new-privileges",
        "Pod Security Standards, restricted: cannot run:",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let out = imgscan(&["harden", "--format", "json", &sample]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["verdict"], "runs-as-root");
    assert_eq!(v[0]["hardening"]["run_as_user"], serde_json::Value::Null);
    assert_eq!(
        v[0]["hardening"]["pod_security_restricted"]["allowed"],
        false
    );
    // A non-root image gets its numbers from its own passwd.
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(
        dir.path(),
        &[base_layer().build()],
        Comp::Gzip,
        json!({"User": "app"}),
    );
    let out = imgscan(&["harden", "--format", "json", dir.path().to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v[0]["hardening"]["run_as_user"]
            .as_u64()
            .is_some_and(|u| u > 0),
        "{v}"
    );
    assert_eq!(v[0]["verdict"], "no-known-path");
    let out = imgscan(&["harden", "--format", "sarif", &sample]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// `--junit FILE` is written in the same run as `--json` and `--sarif`, and
/// counts what the JSON report holds; `--format junit` is the same document.
/// See: issue #12.
#[test]
fn junit_file_alongside_json_and_sarif() {
    let dir = tempfile::tempdir().unwrap();
    let [j, s, x] = ["r.json", "r.sarif", "r.xml"].map(|n| dir.path().join(n));
    let sample = testdata("sample-docker.tar");
    let out = imgscan(&[
        "--quiet",
        "--json",
        j.to_str().unwrap(),
        "--sarif",
        s.to_str().unwrap(),
        "--junit",
        x.to_str().unwrap(),
        &sample,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
    let sarif: serde_json::Value = serde_json::from_slice(&std::fs::read(&s).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let xml = std::fs::read_to_string(&x).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    let s = &report["summary"];
    let at_or_above_high = s["critical"].as_u64().unwrap() + s["high"].as_u64().unwrap();
    assert_eq!(failures as u64, at_or_above_high);
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("name"), report["image"]["source"].as_str());
    let stdout = imgscan(&["--format", "junit", &sample]);
    assert_eq!(stdout.stdout, xml.as_bytes());
    // --fail-on none: no failures, every finding in system-out.
    let out = imgscan(&["--format", "junit", "--fail-on", "none", &sample]);
    assert_eq!(out.status.code(), Some(0));
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(!xml.contains("<failure"), "{xml}");
    assert!(xml.contains(r#"<testsuites name="imgscan" tests="#));
    // harden writes no JUnit.
    assert_eq!(
        imgscan(&["harden", "--format", "junit", &sample])
            .status
            .code(),
        Some(2)
    );
}

/// A failed gate prints one line on stderr in every format, also with
/// --quiet; a passing gate prints nothing there. See: issue #12.
#[test]
fn gate_failure_is_one_line_on_stderr_in_every_format() {
    let sample = testdata("sample-docker.tar");
    let want = "imgscan: gate failed: 4 findings at or above high (1 critical, 3 high) \
                in 1 of 1 image; worst: remote-shell-daemon /usr/sbin/telnetd\n";
    for format in ["table", "json", "sarif", "junit"] {
        for quiet in [false, true] {
            let mut args = vec!["--format", format, &sample];
            if quiet {
                args.insert(0, "--quiet");
            }
            let out = imgscan(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            assert_eq!(String::from_utf8_lossy(&out.stderr), want, "{args:?}");
            assert_eq!(out.stdout.is_empty(), quiet, "{args:?}");
        }
        let out = imgscan(&["--format", format, "--fail-on", "none", &sample]);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = imgscan(&[
        "--fail-on",
        "critical",
        "-q",
        &sample,
        &testdata("sample/oci"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "imgscan: gate failed: 2 findings at or above critical (2 critical) in 2 of 2 \
             images; worst: remote-shell-daemon /usr/sbin/telnetd in {sample}\n"
        )
    );
}
