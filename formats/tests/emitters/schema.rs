//! `formats/schema/report.schema.json` against the JSON output and the model.

use std::path::Path;

use scanner::model::Severity;
use scanner::rules::RULES;
use serde_json::{Value, json};

use crate::json::render_json;
use crate::sample::{clean_report, sample_report};

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn errors(instance: &Value) -> Vec<String> {
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

/// The schema is not vacuous: it rejects unknown fields, bad enums and
/// malformed details it documents.
#[test]
fn schema_rejects_bad_reports() {
    let good: Value = serde_json::from_str(&render_json(&[sample_report()])).unwrap();
    let mut cases = Vec::new();
    let mut extra = good.clone();
    extra["surprise"] = json!(1);
    cases.push(("unknown top-level field", extra));
    let mut sev = good.clone();
    sev["findings"][0]["severity"] = json!("severe");
    cases.push(("unknown severity", sev));
    let mut rule = good.clone();
    rule["findings"][0]["rule_id"] = json!("no-such-rule");
    cases.push(("unknown rule", rule));
    let mut mode = good.clone();
    mode["findings"][0]["details"]["mode"] = json!(2541);
    cases.push(("numeric mode", mode));
    let mut caps = good.clone();
    caps["findings"][1]["details"]["capabilities"] = json!(["CAP_SETUID"]);
    cases.push(("uppercase capability", caps));
    let mut missing = good;
    missing["image"].as_object_mut().unwrap().remove("platform");
    cases.push(("missing platform", missing));
    for (what, value) in cases {
        assert!(!errors(&value).is_empty(), "schema accepted: {what}");
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
}

/// Every property in the schema has a description (directly or through the
/// definition it refers to).
#[test]
fn schema_documents_every_field() {
    fn walk(node: &Value, defs: &Value, at: &str, missing: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
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
