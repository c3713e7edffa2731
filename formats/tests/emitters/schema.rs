//! `formats/schema/report.schema.json` against the JSON output and the model.
//!
//! The schema documents every rule's `details` with `additionalProperties:
//! false`, so a key a check emits but the schema does not document fails
//! here: every JSON report these tests can get hold of is validated (the
//! emitter tests' reports, every JSON snapshot in the workspace, and scans of
//! the sample images in `testdata/`).

use std::path::{Path, PathBuf};

use scanner::checks::RULES;
use scanner::model::Severity;
use serde_json::{Value, json};

use crate::json::render_json;
use crate::sample::{clean_report, root, sample_inputs, sample_report, scan};

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn errors(instance: &Value) -> Vec<String> {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The JSON for one image validates against the schema.
#[test]
fn one_report_validates() {
    let value: Value = serde_json::from_str(&render_json(&[sample_report()])).unwrap();
    assert_eq!(errors(&value), Vec::<String>::new());
}

/// The JSON for several images validates against the schema.
#[test]
fn several_reports_validate() {
    let text = render_json(&[sample_report(), clean_report()]);
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(errors(&value), Vec::<String>::new());
}

/// The position of the first finding of `rule` in a rendered report.
fn first_of(report: &Value, rule: &str) -> usize {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .position(|f| f["rule_id"] == rule)
        .unwrap_or_else(|| panic!("the sample report has no {rule} finding"))
}

/// The schema is not vacuous: it rejects unknown fields, bad enums, details
/// keys a rule does not have and malformed details it documents.
#[test]
fn schema_rejects_bad_reports() {
    let good: Value = serde_json::from_str(&render_json(&[sample_report()])).unwrap();
    assert_eq!(errors(&good), Vec::<String>::new());
    let setuid = first_of(&good, "setuid-binary");
    let caps = first_of(&good, "file-capability");
    let shell = first_of(&good, "remote-shell-daemon");
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut case = |what, edit: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        edit(&mut v);
        cases.push((what, v));
    };
    case("unknown top-level field", &|v| v["surprise"] = json!(1));
    case("unknown severity", &|v| {
        v["findings"][0]["severity"] = json!("severe");
    });
    case("unknown rule", &|v| {
        v["findings"][0]["rule_id"] = json!("no-such-rule");
    });
    case("numeric mode", &|v| {
        v["findings"][setuid]["details"]["mode"] = json!(2541);
    });
    case("uppercase capability", &|v| {
        v["findings"][caps]["details"]["capabilities"] = json!(["CAP_SETUID"]);
    });
    // The keys schema 1.0 documented but no check ever emitted.
    case("exposed_ports", &|v| {
        v["findings"][shell]["details"]["exposed_ports"] = json!(["22/tcp"]);
    });
    case("started_by_entrypoint", &|v| {
        v["findings"][shell]["details"]["started_by_entrypoint"] = json!(true);
    });
    case("a missing details key", &|v| {
        v["findings"][shell]["details"]
            .as_object_mut()
            .unwrap()
            .remove("started_by_config");
    });
    case("another rule's details", &|v| {
        v["findings"][setuid]["rule_id"] = json!("sudoers-nopasswd");
    });
    case("missing platform", &|v| {
        v["image"].as_object_mut().unwrap().remove("platform");
    });
    for (what, value) in cases {
        assert!(!errors(&value).is_empty(), "schema accepted: {what}");
    }
}

/// The JSON value an insta snapshot file holds (after its `---` header).
fn snapshot_value(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let body = text.strip_prefix("---\n")?.split_once("\n---\n")?.1;
    serde_json::from_str(body).ok()
}

/// Every `.snap` file under `dir`, sorted.
fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    out.sort();
    out
}

/// Every JSON snapshot of a report, or of a list of findings, validates:
/// the emitter tests' reports and the checks' own finding snapshots (which
/// come from the real checks, so they show every details key a check emits).
#[test]
fn every_json_snapshot_validates() {
    let template: Value = serde_json::from_str(&render_json(&[clean_report()])).unwrap();
    let mut checked = 0;
    for dir in [
        root().join("formats/tests/emitters/snapshots"),
        root().join("scanner/src/checks/snapshots"),
    ] {
        for path in snapshots(&dir) {
            let Some(value) = snapshot_value(&path) else {
                continue;
            };
            let report = match &value {
                Value::Object(o) if o.contains_key("schema_version") => value.clone(),
                // A list of findings: checked as the findings of a report.
                Value::Array(items) if items.iter().all(|f| f.get("rule_id").is_some()) => {
                    let mut r = template.clone();
                    r["findings"] = value.clone();
                    r
                }
                _ => continue,
            };
            assert_eq!(errors(&report), Vec::<String>::new(), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 13, "only {checked} JSON snapshots found");
}

/// Scans of the sample image, in each form `testdata/` has it, validate.
#[test]
fn sample_image_scans_validate() {
    for image in sample_inputs() {
        let report = scan(&image);
        assert!(!report.findings.is_empty(), "{image}");
        let value: Value = serde_json::from_str(&render_json(&[report])).unwrap();
        assert_eq!(errors(&value), Vec::<String>::new(), "{image}");
    }
}

/// The schema's enums list exactly the model's rules and severities.
#[test]
fn schema_enums_match_the_model() {
    let schema = schema();
    let rule_ids: Vec<&str> = RULES.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(schema["$defs"]["RuleId"]["enum"], json!(rule_ids));
    let mut severities: Vec<&str> = Severity::ALL_DESC.iter().map(|s| s.as_str()).collect();
    severities.reverse();
    assert_eq!(schema["$defs"]["Severity"]["enum"], json!(severities));
    // Every rule has its details documented, once.
    let documented: Vec<&str> = schema["$defs"]["Finding"]["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["if"]["properties"]["rule_id"]["const"].as_str().unwrap())
        .collect();
    assert_eq!(documented, rule_ids);
    assert!(
        schema["$defs"]["SchemaVersion"]["description"]
            .as_str()
            .unwrap()
            .contains(&format!("`{}`", scanner::model::SCHEMA_VERSION)),
        "the schema names the current schema_version"
    );
}

/// Every property in the schema has a description (directly or through the
/// definition it refers to).
#[test]
fn schema_documents_every_field() {
    fn walk(node: &Value, defs: &Value, at: &str, missing: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                // An `if` only selects (`rule_id` is described where it is defined).
                if let Some(Value::Object(props)) =
                    map.get("properties").filter(|_| !at.ends_with("/if"))
                {
                    for (name, prop) in props {
                        let described = prop.get("description").is_some()
                            || prop
                                .get("$ref")
                                .and_then(Value::as_str)
                                .and_then(|r| r.strip_prefix("#/$defs/"))
                                .is_some_and(|d| defs[d].get("description").is_some());
                        if !described {
                            missing.push(format!("{at}/properties/{name}"));
                        }
                    }
                }
                for (k, v) in map {
                    walk(v, defs, &format!("{at}/{k}"), missing);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, defs, &format!("{at}/{i}"), missing);
                }
            }
            _ => {}
        }
    }
    let schema = schema();
    let mut missing = Vec::new();
    walk(&schema, &schema["$defs"], "#", &mut missing);
    assert_eq!(missing, Vec::<String>::new());
}
