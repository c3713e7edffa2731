//! SARIF: snapshot, GitHub-shaped invariants, and the official validator.

use std::path::{Path, PathBuf};
use std::process::Command;

use formats::{EmitOptions, OutputFormat};
use scanner::checks::RULES;
use scanner::model::Report;
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

/// The official SARIF 2.1.0 schema, vendored (`formats/schema/README.md`).
const SARIF_SCHEMA: &str = include_str!("../../schema/sarif-2.1.0.json");

/// The vendored schema is the official file, unchanged.
#[test]
fn sarif_schema_is_the_vendored_official_one() {
    use sha2::Digest as _;
    let hash = scanner::digest::to_hex(&sha2::Sha256::digest(SARIF_SCHEMA.as_bytes()));
    assert_eq!(
        hash,
        "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"
    );
}

/// Errors the official schema finds in `sarif` (draft-04, formats checked).
fn schema_errors(sarif: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(SARIF_SCHEMA).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the SARIF schema compiles");
    validator
        .iter_errors(sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// An optional extra check: an external validator (official schema,
/// Microsoft's SARIF Multitool and GitHub's upload rules), run only when
/// `IMGSCAN_VALIDATE_SARIF` names it. The schema check above never depends on it.
fn external_validator() -> Option<PathBuf> {
    std::env::var_os("IMGSCAN_VALIDATE_SARIF")
        .map(PathBuf::from)
        .filter(|p| Path::new(p).is_file())
}

pub(crate) fn validate(name: &str, reports: &[Report]) {
    let text = render_sarif(reports);
    let sarif: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors = schema_errors(&sarif);
    assert!(
        errors.is_empty(),
        "{name}: the SARIF 2.1.0 schema rejects imgscan's output:\n{}",
        errors.join("\n")
    );
    let Some(tool) = external_validator() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.sarif"));
    std::fs::write(&file, text).unwrap();
    let out = Command::new(&tool)
        .args(["--github", "--strict"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", tool.display()));
    assert!(
        out.status.success(),
        "{} rejected {name} ({}):\n{}\n{}",
        tool.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// The schema check can fail: a run without its `tool`, a result with an
/// unknown `level`, and a wrong `version` are each rejected.
#[test]
fn sarif_schema_rejects_broken_sarif() {
    let good: serde_json::Value = serde_json::from_str(&render_sarif(&[sample_report()])).unwrap();
    assert!(schema_errors(&good).is_empty());
    let mut no_tool = good.clone();
    no_tool["runs"][0].as_object_mut().unwrap().remove("tool");
    assert!(!schema_errors(&no_tool).is_empty(), "a run without tool");
    let mut bad_level = good.clone();
    bad_level["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!schema_errors(&bad_level).is_empty(), "level `fatal`");
    let mut bad_version = good;
    bad_version["version"] = "2.0.0".into();
    assert!(!schema_errors(&bad_version).is_empty(), "version 2.0.0");
}

/// One image's SARIF passes the official schema (and the external validator,
/// when one is given).
#[test]
fn sarif_one_passes_the_validator() {
    validate("one", &[sample_report()]);
}

/// Several images' SARIF passes too (distinct categories per run).
#[test]
fn sarif_several_passes_the_validator() {
    validate("several", &[sample_report(), clean_report()]);
}
