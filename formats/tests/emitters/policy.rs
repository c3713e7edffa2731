//! Reports judged by a policy and a baseline (issue #12), in every format:
//! the JSON validates against the report schema, the SARIF against the
//! official schema (suppressions, baselineState), the JUnit fails only on
//! what counts, and the table and the gate line say what was set aside.

use formats::{EmitOptions, OutputFormat};
use scanner::model::{Report, Severity};
use scanner::policy::{self, Date, Ignore, Pins, Policy};
use scanner::rules::RuleId;
use serde_json::Value;

use crate::json::render_json;
use crate::junit::render_junit;
use crate::sample::sample_report;

fn entry(rule: RuleId, path: Option<&str>, pins: Pins, expires: Option<&str>, n: usize) -> Ignore {
    Ignore::new(
        rule,
        path.map(str::to_owned),
        pins,
        format!("reason {n}: <vendor> & \"tools\""),
        expires.map(|e| Date::parse(e).unwrap()),
        format!("imgscan.toml: ignore {n} (line {})", n * 5),
    )
    .unwrap()
}

/// The sample judged by: an accepted setuid helper (pinned by mode and
/// content), an expired `root-user`, a changed `su` (mode pin), a stale
/// entry, then against a base made of its first layer.
fn judged() -> Report {
    let mut r = sample_report();
    let sha = "5d41402abc4b2a76b9719d911017c592bc3d4b2fd4e8bbbf8e0d8a4b63a8e3c1";
    let p = Policy {
        config: Some("imgscan.toml".to_owned()),
        ignores: vec![
            entry(
                RuleId::SetuidBinary,
                Some("/usr/local/bin/*"),
                Pins {
                    mode: Some(0o4755),
                    sha256: Some(sha.to_owned()),
                    ..Pins::default()
                },
                None,
                1,
            ),
            entry(
                RuleId::RootUser,
                None,
                Pins::default(),
                Some("2001-01-01"),
                2,
            ),
            entry(
                RuleId::SetuidBinary,
                Some("/usr/bin/su"),
                Pins {
                    mode: Some(0o4711),
                    ..Pins::default()
                },
                None,
                3,
            ),
            entry(
                RuleId::SetuidBinary,
                Some("/nowhere/**"),
                Pins::default(),
                None,
                4,
            ),
        ],
        ..Policy::default()
    };
    p.apply(
        std::slice::from_mut(&mut r),
        Date::parse("2026-12-04").unwrap(),
    );
    let mut base = sample_report();
    base.image.layers.truncate(1);
    base.findings.retain(|f| f.layer_index == Some(0));
    policy::against_base(&mut r, &base, "docker.io/acme/base:1", false).unwrap();
    r
}

#[test]
fn the_json_says_what_was_set_aside_and_validates() {
    let r = judged();
    let v: Value = serde_json::from_str(&render_json(std::slice::from_ref(&r))).unwrap();
    let errors = crate::schema::errors(&v);
    assert!(errors.is_empty(), "{errors:#?}");
    let by = |rule: &str, path: Option<&str>| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule_id"] == rule && f["path"].as_str() == path)
            .unwrap()
            .clone()
    };
    let helper = by("setuid-binary", Some("/usr/local/bin/helper"));
    assert_eq!(helper["suppression"]["status"], "accepted");
    assert_eq!(helper["counts"], false);
    assert_eq!(helper["baseline"], "new");
    let root = by("root-user", None);
    assert_eq!(root["suppression"]["status"], "expired");
    assert_eq!(root["counts"], true);
    let su = by("setuid-binary", Some("/usr/bin/su"));
    assert_eq!(su["suppression"]["status"], "changed");
    assert_eq!(su["baseline"], "inherited");
    assert_eq!(su["counts"], false, "changed, but inherited from the base");
    assert_eq!(v["summary"]["suppressed"], 1);
    assert_eq!(v["summary"]["baselined"], 1);
    assert_eq!(v["summary"]["expired"], 1);
    assert_eq!(v["summary"]["total"], r.findings.len() - 2);
    assert_eq!(v["policy"]["stale"][0]["path"], "/nowhere/**");
    assert_eq!(v["policy"]["baseline"]["base_layers"], 1);
}

#[test]
fn sarif_carries_suppressions_and_baseline_states_and_validates() {
    let r = judged();
    crate::sarif::validate("policy", std::slice::from_ref(&r));
    let bytes = formats::render(OutputFormat::Sarif, &EmitOptions::default(), &[r]).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let results = v["runs"][0]["results"].as_array().unwrap();
    let suppressed: Vec<&Value> = results
        .iter()
        .filter(|x| x.get("suppressions").is_some())
        .collect();
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0]["suppressions"][0]["kind"], "external");
    assert_eq!(suppressed[0]["suppressions"][0]["status"], "accepted");
    assert_eq!(
        suppressed[0]["suppressions"][0]["justification"],
        "reason 1: <vendor> & \"tools\""
    );
    assert!(
        results
            .iter()
            .all(|x| x["baselineState"] == "new" || x["baselineState"] == "unchanged")
    );
    assert!(results.iter().any(|x| x["baselineState"] == "unchanged"));
}

#[test]
fn junit_and_the_gate_fail_only_on_what_counts() {
    let r = judged();
    let xml = render_junit(std::slice::from_ref(&r), Some(Severity::Info));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert_eq!(failures, r.findings.iter().filter(|f| f.counts).count());
    assert!(
        xml.contains("suppressed by imgscan.toml: ignore 1 (line 5): reason 1: &lt;vendor&gt;")
    );
    let line = formats::gate::summary(std::slice::from_ref(&r), Some(Severity::Info)).unwrap();
    assert!(
        line.contains("(2 more suppressed or in the baseline do not count)"),
        "{line}"
    );
    assert!(!line.contains("/usr/local/bin/helper"), "{line}");
}

#[test]
fn the_table_counts_and_explains() {
    let r = judged();
    let render = |show| {
        let opts = EmitOptions {
            show_suppressed: show,
            ..EmitOptions::default()
        };
        String::from_utf8(
            formats::render(OutputFormat::Table, &opts, std::slice::from_ref(&r)).unwrap(),
        )
        .unwrap()
    };
    let t = render(false);
    assert!(
        t.contains(
            "1 suppressed, 1 whose exception expired or no longer matches, 1 in the baseline"
        ),
        "{t}"
    );
    assert!(!t.contains("/usr/local/bin/helper"), "{t}");
    assert!(
        t.contains("stale ignore entry (matched nothing): imgscan.toml: ignore 4 (line 20)"),
        "{t}"
    );
    assert!(
        t.contains("baseline: docker.io/acme/base:1 (the first 1 of 3 layers)"),
        "{t}"
    );
    let t = render(true);
    assert!(t.contains("/usr/local/bin/helper"), "{t}");
    for line in t.lines() {
        assert_eq!(line, line.trim_end(), "trailing whitespace: {line:?}");
    }
}
