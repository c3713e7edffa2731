//! GitHub code scanning's upload rules, as our own checks.
//!
//! The SARIF schema says what a valid log is; code scanning accepts less. These
//! are the rules from GitHub's "SARIF support for code scanning"
//! (<https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning>,
//! sections "Supported SARIF output file properties" and "Upload limits"),
//! checked on every SARIF the tests render, and each shown to fail on a log
//! that breaks it.

use std::io::Write as _;

use formats::{EmitOptions, OutputFormat};
use scanner::model::Report;
use serde_json::Value;

use crate::sample::{clean_report, sample_report};

/// Upload limits (the "Upload limits" table). A file over one of these is
/// rejected as a whole.
const MAX_GZIP_BYTES: usize = 10 * 1024 * 1024;
const MAX_RUNS: usize = 20;
const MAX_RESULTS: usize = 25_000;
const MAX_RULES: usize = 25_000;
const MAX_EXTENSIONS: usize = 100;
const MAX_LOCATIONS: usize = 1_000;
const MAX_TAGS: usize = 20;
const MAX_THREAD_FLOW_LOCATIONS: usize = 10_000;
/// Kept, not rejected: past these GitHub silently drops the rest, which a
/// scanner must not let happen to its own output.
const SHOWN_RESULTS: usize = 5_000;
const KEPT_LOCATIONS: usize = 100;
const KEPT_TAGS: usize = 10;
const DESCRIPTION_CHARS: usize = 1_024;

/// What code scanning would reject (`errors`) and what it would accept but
/// show less of (`warnings`). imgscan's own output must have neither.
#[derive(Debug, Default)]
struct Verdict {
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Verdict {
    fn has_error(&self, needle: &str) -> bool {
        self.errors.iter().any(|e| e.contains(needle))
    }

    fn has_warning(&self, needle: &str) -> bool {
        self.warnings.iter().any(|e| e.contains(needle))
    }
}

fn text_of(v: &Value) -> Option<&str> {
    v.get("text").and_then(Value::as_str)
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A URI with a scheme, as RFC 3986 §3.1 reads one: `ALPHA *( ALPHA / DIGIT
/// / "+" / "-" / "." ) ":"`. Code scanning takes `file:` URIs and relative
/// paths; an image reference such as `alpine:3.19` parses as scheme `alpine`.
fn scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

fn gzip_len(sarif: &Value) -> usize {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(serde_json::to_string(sarif).unwrap().as_bytes())
        .unwrap();
    gz.finish().unwrap().len()
}

fn check_rule(v: &mut Verdict, at: &str, rule: &Value) {
    for field in ["shortDescription", "fullDescription", "help"] {
        match rule.get(field).and_then(text_of) {
            Some(t) if !t.trim().is_empty() => {
                if field != "help" && t.chars().count() > DESCRIPTION_CHARS {
                    v.warnings.push(format!(
                        "{at}.{field}.text: over {DESCRIPTION_CHARS} characters"
                    ));
                }
            }
            _ => v.errors.push(format!("{at}.{field}.text: required")),
        }
    }
    let props = rule.get("properties").cloned().unwrap_or_default();
    let tags: Vec<&str> = array(&props, "tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if tags.len() > MAX_TAGS {
        v.errors
            .push(format!("{at}.properties.tags: over {MAX_TAGS} tags"));
    } else if tags.len() > KEPT_TAGS {
        v.warnings.push(format!(
            "{at}.properties.tags: only the first {KEPT_TAGS} tags are kept"
        ));
    }
    if let Some(score) = props.get("security-severity") {
        // "a string representing a score between 0.0 and 10.0".
        let ok = score
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|s| s > 0.0 && s <= 10.0);
        if !ok {
            v.warnings.push(format!(
                "{at}.properties.security-severity: {score} is not a string score in (0.0, 10.0]"
            ));
        }
        if !tags.contains(&"security") {
            v.warnings.push(format!(
                "{at}.properties.tags: a rule with a security-severity needs the `security` tag"
            ));
        }
    }
    if rule["defaultConfiguration"]["level"] == "none" {
        v.warnings.push(format!(
            "{at}.defaultConfiguration.level: `none` is not note, warning or error"
        ));
    }
}

fn check_result(v: &mut Verdict, at: &str, result: &Value, rules: &[Value]) {
    if text_of(&result["message"]).is_none_or(|t| t.trim().is_empty()) {
        v.errors.push(format!("{at}.message.text: required"));
    }
    let rule_id = result.get("ruleId").and_then(Value::as_str);
    match rule_id {
        None => v.warnings.push(format!("{at}.ruleId: absent")),
        Some(id) if !rules.iter().any(|r| r["id"] == id) => {
            v.warnings
                .push(format!("{at}.ruleId: {id} is not in tool.driver.rules"));
        }
        Some(_) => {}
    }
    if let Some(index) = result.get("ruleIndex").and_then(Value::as_u64) {
        match rules.get(index as usize) {
            None => v.errors.push(format!(
                "{at}.ruleIndex: {index} is outside tool.driver.rules"
            )),
            Some(rule) if rule_id.is_some_and(|id| rule["id"] != id) => v.errors.push(format!(
                "{at}.ruleIndex: {index} points at rule {}, not {}",
                rule["id"],
                rule_id.unwrap_or_default()
            )),
            Some(_) => {}
        }
    }
    let locations = array(result, "locations");
    if locations.is_empty() {
        v.errors
            .push(format!("{at}.locations: at least one location is required"));
    } else if locations.len() > MAX_LOCATIONS {
        v.errors
            .push(format!("{at}.locations: over {MAX_LOCATIONS} locations"));
    } else if locations.len() > KEPT_LOCATIONS {
        v.warnings.push(format!(
            "{at}.locations: only {KEPT_LOCATIONS} locations are kept"
        ));
    }
    if let Some(first) = locations.first() {
        let physical = &first["physicalLocation"];
        match physical["artifactLocation"]["uri"].as_str() {
            None | Some("") => v.errors.push(format!(
                "{at}.locations[0].physicalLocation.artifactLocation.uri: required"
            )),
            Some(uri) => match scheme(uri) {
                Some(s) if !s.eq_ignore_ascii_case("file") => v.errors.push(format!(
                    "{at}.locations[0].physicalLocation.artifactLocation.uri: {uri:?} has scheme {s:?}"
                )),
                Some(_) => v.warnings.push(format!(
                    "{at}.locations[0].physicalLocation.artifactLocation.uri: absolute file URI"
                )),
                None if uri.starts_with('/') => v.warnings.push(format!(
                    "{at}.locations[0].physicalLocation.artifactLocation.uri: absolute path"
                )),
                None => {}
            },
        }
        if physical["region"].get("startLine").is_none() {
            v.errors.push(format!(
                "{at}.locations[0].physicalLocation.region.startLine: required"
            ));
        }
    }
    if result["partialFingerprints"]
        .get("primaryLocationLineHash")
        .is_none()
    {
        v.warnings.push(format!(
            "{at}.partialFingerprints.primaryLocationLineHash: absent (upload-sarif computes it only for files in the checkout)"
        ));
    }
    let flow_locations: usize = array(result, "codeFlows")
        .iter()
        .flat_map(|flow| array(flow, "threadFlows"))
        .map(|thread| array(thread, "locations").len())
        .sum();
    if flow_locations > MAX_THREAD_FLOW_LOCATIONS {
        v.errors.push(format!(
            "{at}.codeFlows: over {MAX_THREAD_FLOW_LOCATIONS} thread flow locations"
        ));
    }
}

/// Code scanning's verdict on `sarif`.
fn github_verdict(sarif: &Value) -> Verdict {
    let mut v = Verdict::default();
    if sarif
        .get("$schema")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        v.errors.push("$schema: required".to_owned());
    }
    if sarif["version"] != "2.1.0" {
        v.errors.push("version: must be 2.1.0".to_owned());
    }
    if gzip_len(sarif) > MAX_GZIP_BYTES {
        v.errors
            .push("the gzip-compressed file is over 10 MB".to_owned());
    }
    let runs = array(sarif, "runs");
    if runs.is_empty() {
        v.errors
            .push("runs: at least one run is required".to_owned());
    } else if runs.len() > MAX_RUNS {
        v.errors.push(format!("runs: over {MAX_RUNS} runs"));
    }
    // Since July 2025 code scanning rejects an upload with several runs of
    // one tool and one category (`automationDetails.id`).
    let mut categories = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let at = format!("runs[{i}]");
        let driver = &run["tool"]["driver"];
        if driver["name"].as_str().is_none_or(|n| n.trim().is_empty()) {
            v.errors.push(format!("{at}.tool.driver.name: required"));
        }
        let category = (
            driver["name"].clone(),
            run["automationDetails"]["id"].clone(),
        );
        if categories.contains(&category) {
            v.errors.push(format!(
                "{at}: a second run of one tool and category {}",
                category.1
            ));
        }
        categories.push(category);
        if array(&run["tool"], "extensions").len() > MAX_EXTENSIONS {
            v.errors
                .push(format!("{at}.tool.extensions: over {MAX_EXTENSIONS}"));
        }
        let rules = array(driver, "rules");
        if driver.get("rules").and_then(Value::as_array).is_none() {
            v.errors.push(format!("{at}.tool.driver.rules: required"));
        }
        if rules.len() > MAX_RULES {
            v.errors
                .push(format!("{at}.tool.driver.rules: over {MAX_RULES} rules"));
        }
        for (j, rule) in rules.iter().enumerate() {
            check_rule(&mut v, &format!("{at}.tool.driver.rules[{j}]"), rule);
        }
        let Some(results) = run.get("results").and_then(Value::as_array) else {
            v.errors.push(format!("{at}.results: required"));
            continue;
        };
        if results.len() > MAX_RESULTS {
            v.errors
                .push(format!("{at}.results: over {MAX_RESULTS} results"));
        } else if results.len() > SHOWN_RESULTS {
            v.warnings.push(format!(
                "{at}.results: only the top {SHOWN_RESULTS} results are shown"
            ));
        }
        for (k, result) in results.iter().enumerate() {
            check_result(&mut v, &format!("{at}.results[{k}]"), result, rules);
        }
    }
    v
}

fn sarif_of(reports: &[Report]) -> Value {
    let bytes = formats::render(OutputFormat::Sarif, &EmitOptions::default(), reports).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn assert_accepted(name: &str, sarif: &Value) {
    let v = github_verdict(sarif);
    assert!(
        v.errors.is_empty() && v.warnings.is_empty(),
        "{name}: code scanning would not take imgscan's SARIF as it is:\nerrors: {:#?}\nwarnings: {:#?}",
        v.errors,
        v.warnings
    );
}

/// Every SARIF imgscan renders passes every upload rule, with no warning.
#[test]
fn github_accepts_imgscan_sarif() {
    assert_accepted("one image", &sarif_of(&[sample_report()]));
    assert_accepted("no findings", &sarif_of(&[clean_report()]));
    assert_accepted("two images", &sarif_of(&[sample_report(), clean_report()]));
    // Two tags of one repository get distinct categories.
    assert_accepted(
        "one repository twice",
        &sarif_of(&[sample_report(), sample_report()]),
    );
}

/// Breaks `sarif` with `f` and expects `needle` among the errors (or the
/// warnings, when `warning`).
fn rejects(name: &str, warning: bool, needle: &str, f: impl FnOnce(&mut Value)) {
    let mut sarif = sarif_of(&[sample_report()]);
    assert_accepted("the unbroken log", &sarif);
    f(&mut sarif);
    let v = github_verdict(&sarif);
    let found = if warning {
        v.has_warning(needle)
    } else {
        v.has_error(needle)
    };
    assert!(found, "{name}: no {needle:?} in {v:#?}");
}

fn first_result(sarif: &mut Value) -> &mut Value {
    &mut sarif["runs"][0]["results"][0]
}

fn first_rule(sarif: &mut Value) -> &mut Value {
    &mut sarif["runs"][0]["tool"]["driver"]["rules"][0]
}

/// Each upload rule fails on a log that breaks it.
#[test]
fn github_rules_each_fail_on_a_broken_log() {
    rejects("no $schema", false, "$schema", |s| {
        s.as_object_mut().unwrap().remove("$schema");
    });
    rejects("wrong version", false, "version", |s| {
        s["version"] = "2.0.0".into()
    });
    rejects("no runs", false, "at least one run", |s| {
        s["runs"] = Value::Array(vec![])
    });
    rejects("21 runs", false, "over 20 runs", |s| {
        let run = s["runs"][0].clone();
        s["runs"] = (0..21)
            .map(|i| {
                let mut r = run.clone();
                r["automationDetails"]["id"] = format!("imgscan/{i}/").into();
                r
            })
            .collect();
    });
    rejects("one category twice", false, "a second run", |s| {
        let run = s["runs"][0].clone();
        s["runs"].as_array_mut().unwrap().push(run);
    });
    rejects("no driver name", false, "driver.name", |s| {
        s["runs"][0]["tool"]["driver"]["name"] = "".into();
    });
    rejects("no rules", false, "driver.rules: required", |s| {
        s["runs"][0]["tool"]["driver"]
            .as_object_mut()
            .unwrap()
            .remove("rules");
    });
    rejects("no results", false, "results: required", |s| {
        s["runs"][0].as_object_mut().unwrap().remove("results");
    });
    rejects("25,001 results", false, "over 25000 results", |s| {
        let r = first_result(s).clone();
        s["runs"][0]["results"] = vec![r; MAX_RESULTS + 1].into();
    });
    rejects("5,001 results", true, "top 5000", |s| {
        let r = first_result(s).clone();
        s["runs"][0]["results"] = vec![r; SHOWN_RESULTS + 1].into();
    });
    rejects("101 extensions", false, "extensions", |s| {
        s["runs"][0]["tool"]["extensions"] = vec![serde_json::json!({"name": "x"}); 101].into();
    });
    rejects("25,001 rules", false, "over 25000 rules", |s| {
        let r = first_rule(s).clone();
        s["runs"][0]["tool"]["driver"]["rules"] = vec![r; MAX_RULES + 1].into();
    });
    rejects(
        "empty short description",
        false,
        "shortDescription.text",
        |s| {
            first_rule(s)["shortDescription"]["text"] = " ".into();
        },
    );
    rejects("no help", false, "help.text", |s| {
        first_rule(s).as_object_mut().unwrap().remove("help");
    });
    rejects("long full description", true, "over 1024 characters", |s| {
        first_rule(s)["fullDescription"]["text"] = "x".repeat(DESCRIPTION_CHARS + 1).into();
    });
    rejects("21 tags", false, "over 20 tags", |s| {
        first_rule(s)["properties"]["tags"] = vec!["security"; 21].into();
    });
    rejects("11 tags", true, "first 10 tags", |s| {
        first_rule(s)["properties"]["tags"] = vec!["security"; 11].into();
    });
    rejects(
        "numeric security-severity",
        true,
        "security-severity",
        |s| {
            first_rule(s)["properties"]["security-severity"] = 7.5.into();
        },
    );
    rejects("security-severity 0", true, "security-severity", |s| {
        first_rule(s)["properties"]["security-severity"] = "0.0".into();
    });
    rejects("security-severity 11", true, "security-severity", |s| {
        first_rule(s)["properties"]["security-severity"] = "11".into();
    });
    rejects("no security tag", true, "`security` tag", |s| {
        first_rule(s)["properties"]["tags"] = vec!["container"].into();
    });
    rejects("level none", true, "defaultConfiguration.level", |s| {
        first_rule(s)["defaultConfiguration"]["level"] = "none".into();
    });
    rejects("empty message", false, "message.text", |s| {
        first_result(s)["message"]["text"] = "".into();
    });
    rejects("no ruleId", true, "ruleId: absent", |s| {
        first_result(s).as_object_mut().unwrap().remove("ruleId");
    });
    rejects("unknown ruleId", true, "is not in tool.driver.rules", |s| {
        first_result(s)["ruleId"] = "no-such-rule".into();
        first_result(s).as_object_mut().unwrap().remove("ruleIndex");
    });
    rejects("ruleIndex out of range", false, "outside", |s| {
        first_result(s)["ruleIndex"] = 10_000.into();
    });
    rejects("ruleIndex at another rule", false, "points at rule", |s| {
        let index = first_result(s)["ruleIndex"].as_u64().unwrap();
        first_result(s)["ruleIndex"] = (if index == 0 { 1 } else { 0 }).into();
    });
    rejects("no locations", false, "at least one location", |s| {
        first_result(s)["locations"] = Value::Array(vec![]);
    });
    rejects("1,001 locations", false, "over 1000 locations", |s| {
        let l = first_result(s)["locations"][0].clone();
        first_result(s)["locations"] = vec![l; MAX_LOCATIONS + 1].into();
    });
    rejects("101 locations", true, "only 100 locations", |s| {
        let l = first_result(s)["locations"][0].clone();
        first_result(s)["locations"] = vec![l; KEPT_LOCATIONS + 1].into();
    });
    rejects(
        "an image reference as URI",
        false,
        "has scheme \"alpine\"",
        |s| {
            first_result(s)["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] =
                "alpine:3.19/usr/bin/su".into();
        },
    );
    rejects("no URI", false, "artifactLocation.uri: required", |s| {
        first_result(s)["locations"][0]["physicalLocation"]["artifactLocation"]
            .as_object_mut()
            .unwrap()
            .remove("uri");
    });
    rejects("absolute file URI", true, "absolute file URI", |s| {
        first_result(s)["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] =
            "file:///usr/bin/su".into();
    });
    rejects("absolute path", true, "absolute path", |s| {
        first_result(s)["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] =
            "/usr/bin/su".into();
    });
    rejects("no startLine", false, "startLine", |s| {
        first_result(s)["locations"][0]["physicalLocation"]
            .as_object_mut()
            .unwrap()
            .remove("region");
    });
    rejects("no line hash", true, "primaryLocationLineHash", |s| {
        first_result(s)["partialFingerprints"]
            .as_object_mut()
            .unwrap()
            .remove("primaryLocationLineHash");
    });
    rejects("10,001 thread flow locations", false, "thread flow", |s| {
        first_result(s)["codeFlows"] = serde_json::json!([{
            "threadFlows": [{"locations": vec![serde_json::json!({}); MAX_THREAD_FLOW_LOCATIONS + 1]}]
        }]);
    });
    rejects("over 10 MB gzipped", false, "10 MB", |s| {
        // Random-looking text does not compress: ~11 MB of hex digests.
        use sha2::Digest as _;
        let mut text = String::new();
        let mut h = sha2::Sha256::digest(b"seed").to_vec();
        while text.len() < MAX_GZIP_BYTES + MAX_GZIP_BYTES / 8 {
            h = sha2::Sha256::digest(&h).to_vec();
            text.push_str(&scanner::digest::to_hex(&h));
        }
        // Hex is 4 bits a byte: twice the limit in text to beat it gzipped.
        text.push_str(&text.clone());
        first_result(s)["message"]["text"] = text.into();
    });
}

/// The URI scheme test reads schemes as RFC 3986 does.
#[test]
fn uri_schemes() {
    assert_eq!(scheme("alpine:3.19/usr/bin/su"), Some("alpine"));
    assert_eq!(scheme("file:///x"), Some("file"));
    assert_eq!(scheme("git+ssh://x"), Some("git+ssh"));
    assert_eq!(scheme("acme/app/usr/bin/su"), None);
    assert_eq!(scheme("acme/app:1/usr"), None);
    assert_eq!(scheme("1abc:x"), None);
    assert_eq!(scheme(":x"), None);
}

/// One image can have more findings than code scanning takes in a run: the
/// SARIF keeps the most severe 25,000, says so, and is still accepted.
#[test]
fn a_run_over_the_results_limit_keeps_the_most_severe() {
    let mut report = sample_report();
    let least = report.findings.last().unwrap().clone();
    let most = report.findings[0].fingerprint.clone();
    report.findings.extend((0..MAX_RESULTS).map(|i| {
        let mut f = least.clone();
        f.path = Some(format!("/many/{i:05}"));
        f.fingerprint = format!("{i:064x}");
        f
    }));
    let total = report.findings.len();
    let sarif = sarif_of(&[report]);
    let v = github_verdict(&sarif);
    assert!(v.errors.is_empty(), "{:#?}", v.errors);
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), MAX_RESULTS);
    assert_eq!(
        results[0]["partialFingerprints"]["imgscan/v1"],
        most.as_str()
    );
    let notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
        .as_array()
        .unwrap();
    let note = format!("{} of {total} results left out", total - MAX_RESULTS);
    assert!(
        notes
            .iter()
            .any(|n| n["level"] == "error"
                && n["message"]["text"].as_str().unwrap().starts_with(&note)),
        "{notes:#?}"
    );
}
