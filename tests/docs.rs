//! `docs/rules.md` is generated from the rule registry and must be current
//! (regenerate with `IMGSCAN_UPDATE_DOCS=1 cargo test --test integration docs`).

use scanner::rules::RULES;

fn render() -> String {
    let mut s = String::from(
        "# imgscan rules\n\n<!-- Generated from scanner/src/rules.rs by tests/docs.rs; do not edit. -->\n\n\
         Rule ids are a public contract: they appear in JSON (`rule_id`), SARIF (`ruleId`) and\n\
         gates, and are never renamed or reused. `imgscan explain RULE` prints the same text.\n\n\
         | code | rule | default severity |\n|---|---|---|\n",
    );
    for m in RULES {
        s.push_str(&format!(
            "| {} | [`{}`](#{}) | {} |\n",
            m.code, m.id, m.id, m.default_severity
        ));
    }
    for m in RULES {
        s.push_str(&format!(
            "\n## {}\n\n**{}** · default severity **{}**\n\n{}\n\n**Severity:** {}\n\n",
            m.id, m.code, m.default_severity, m.summary, m.severity_note
        ));
        // Demote the explanation's headings below the rule's own.
        for line in m.explanation.lines() {
            if let Some(h) = line.strip_prefix("## ") {
                s.push_str(&format!("### {h}\n"));
            } else {
                s.push_str(line);
                s.push('\n');
            }
        }
    }
    s
}

/// docs/rules.md matches the registry.
#[test]
fn rules_doc_is_current() {
    let path = crate::util::root().join("docs/rules.md");
    let want = render();
    if std::env::var_os("IMGSCAN_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/rules.md is stale: run IMGSCAN_UPDATE_DOCS=1 cargo test --test integration rules_doc_is_current"
    );
}
