//! The sample image (testdata/README.md) and its oracle
//! (`testdata/sample.oracle`, what `umoci unpack` and find/getcap saw).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::util::{scan_json, testdata};

/// Findings of a report in the oracle's line format (`testdata/oracle.sh`).
pub(crate) fn oracle_lines(report: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in report["findings"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap_or("");
        let d = &f["details"];
        let line = match f["rule_id"].as_str().unwrap() {
            "setuid-binary" | "setgid-binary" => format!(
                "{} {path} {} {} {}",
                if f["rule_id"] == "setuid-binary" {
                    "setuid"
                } else {
                    "setgid"
                },
                d["mode"].as_str().unwrap(),
                d["uid"],
                d["gid"]
            ),
            "file-capability" => format!("cap {path} {}", d["getcap"].as_str().unwrap()),
            "world-writable-path" => format!(
                "world-writable {path} {}",
                match d["kind"].as_str().unwrap() {
                    "dir" => "dir",
                    _ => "file",
                }
            ),
            "remote-shell-daemon" => format!("daemon {path}"),
            _ => continue,
        };
        out.insert(line);
    }
    out
}

/// The oracle's lines (`testdata/sample.oracle`).
pub(crate) fn expected() -> BTreeSet<String> {
    std::fs::read_to_string(testdata("sample.oracle"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Scans `image`; its report, after checking it against the oracle.
pub(crate) fn assert_matches_oracle(image: &str) -> Value {
    let report = scan_json(image);
    assert_eq!(oracle_lines(&report), expected(), "image {image}");
    // Config findings: no USER means root.
    let root: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule_id"] == "root-user")
        .collect();
    assert_eq!(root.len(), 1, "{image}: one root-user finding");
    assert!(root[0]["path"].is_null());
    report
}
