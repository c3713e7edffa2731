//! SARIF: snapshot, GitHub-shaped invariants, and the official validator.

use std::path::{Path, PathBuf};
use std::process::Command;

use formats::{EmitOptions, OutputFormat};
use scanner::model::Report;
use scanner::rules::RULES;
use serde_json::Value;

use crate::sample::{clean_report, sample_report};

fn render_sarif(reports: &[Report]) -> String {
    let bytes = formats::render(OutputFormat::Sarif, &EmitOptions::default(), reports).unwrap();
    String::from_utf8(bytes).unwrap()
}

fn sarif_value(reports: &[Report]) -> Value {
    serde_json::from_str(&render_sarif(reports)).unwrap()
}

/// The SARIF for one image, with versions and the long rule help redacted
/// (the help is `RuleMeta::explanation` verbatim, checked below).
#[test]
fn sarif_one_snapshot() {
    let value = sarif_value(&[sample_report()]);
    for (rule, meta) in value["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .zip(RULES)
    {
        assert_eq!(rule["help"]["markdown"], meta.explanation.trim_end());
        assert_eq!(rule["help"]["text"], meta.explanation.trim_end());
    }
    insta::assert_json_snapshot!("sarif_one", value, {
        ".runs[].tool.driver.version" => "[VERSION]",
        ".runs[].tool.driver.semanticVersion" => "[VERSION]",
        ".runs[].tool.driver.rules[].help" => "[HELP]",
    });
}

/// The SARIF for two images: one run each, rules redacted (same as above).
#[test]
fn sarif_several_snapshot() {
    let value = sarif_value(&[sample_report(), clean_report()]);
    insta::assert_json_snapshot!("sarif_several", value, {
        ".runs[].tool.driver.version" => "[VERSION]",
        ".runs[].tool.driver.semanticVersion" => "[VERSION]",
        ".runs[].tool.driver.rules" => "[RULES]",
    });
}

/// What code scanning relies on: every rule in every run, ruleIndex agrees
/// with ruleId, one location per result whose URI has no scheme, distinct
/// categories, and fingerprints.
#[test]
fn sarif_is_shaped_for_code_scanning() {
    let reports = [sample_report(), clean_report()];
    let value = sarif_value(&reports);
    assert_eq!(value["version"], "2.1.0");
    let runs = value["runs"].as_array().unwrap();
    assert_eq!(runs.len(), reports.len());
    let ids: Vec<&str> = runs
        .iter()
        .map(|r| r["automationDetails"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["imgscan/acme/app/", "imgscan/base/"]);
    for (run, report) in runs.iter().zip(&reports) {
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), RULES.len());
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), report.findings.len());
        for (result, finding) in results.iter().zip(&report.findings) {
            let index = result["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[index]["id"], result["ruleId"]);
            assert_eq!(result["ruleId"], finding.rule_id.as_str());
            let locations = result["locations"].as_array().unwrap();
            assert_eq!(locations.len(), 1);
            let uri = locations[0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap();
            assert!(!uri.contains([':', '@', ' ']), "uri {uri}");
            assert!(!uri.starts_with('/'), "uri {uri}");
            let fp = &result["partialFingerprints"];
            assert_eq!(fp["imgscan/v1"], finding.fingerprint.as_str());
            let line_hash = fp["primaryLocationLineHash"].as_str().unwrap();
            assert!(line_hash.ends_with(":1") && line_hash.len() == 66);
            let text = result["message"]["text"].as_str().unwrap();
            assert!(text.starts_with(finding.message.trim_end_matches('.')));
        }
    }
    let results = runs[0]["results"].as_array().unwrap();
    let uris: Vec<&str> = results
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(uris.contains(&"acme/app/image-config"));
    assert!(uris.contains(&"acme/app/opt/my%20app/helper"));
}

/// The SARIF is the same bytes every time.
#[test]
fn sarif_is_deterministic() {
    let reports = [sample_report(), clean_report()];
    assert_eq!(render_sarif(&reports), render_sarif(&reports));
}

/// `shared/tools/validate-sarif`, beside the repository.
fn validator() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/validate-sarif")
}

fn validate(name: &str, reports: &[Report]) {
    let tool = validator();
    assert!(
        tool.is_file(),
        "the SARIF validator is missing: expected it at {} (shared/tools/validate-sarif \
         next to the repository checkout); this test must not pass without it",
        tool.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.sarif"));
    std::fs::write(&file, render_sarif(reports)).unwrap();
    let out = Command::new(&tool)
        .args(["--github", "--strict"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", tool.display()));
    assert!(
        out.status.success(),
        "validate-sarif rejected {name} ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// One image's SARIF passes the official schema, the SARIF Multitool and
/// GitHub's upload rules, warnings included.
#[test]
fn sarif_one_passes_the_validator() {
    validate("one", &[sample_report()]);
}

/// Several images' SARIF passes too (distinct categories per run).
#[test]
fn sarif_several_passes_the_validator() {
    validate("several", &[sample_report(), clean_report()]);
}
