//! The table, `imgscan rules` and `imgscan explain`.

use formats::{EmitOptions, OutputFormat};
use scanner::model::Report;
use scanner::rules::RuleId;

use crate::sample::{clean_report, sample_report};

fn render_table(reports: &[Report], color: bool) -> String {
    let bytes = formats::render(
        OutputFormat::Table,
        &EmitOptions {
            color,
            ..EmitOptions::default()
        },
        reports,
    )
    .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn assert_no_trailing_whitespace(text: &str) {
    for line in text.lines() {
        assert_eq!(line, line.trim_end(), "trailing whitespace in {line:?}");
    }
}

/// The table for one image, without colour.
#[test]
fn table_one_snapshot() {
    let text = render_table(&[sample_report()], false);
    assert_no_trailing_whitespace(&text);
    assert!(!text.contains('\x1b'));
    insta::assert_snapshot!("table_one", text);
}

/// Two images: a section each and a total.
#[test]
fn table_several_snapshot() {
    let text = render_table(&[sample_report(), clean_report()], false);
    assert_no_trailing_whitespace(&text);
    insta::assert_snapshot!("table_several", text);
}

/// Colour wraps only the severity word and does not move the columns.
#[test]
fn table_color_marks_severity_only() {
    let plain = render_table(&[sample_report()], false);
    let colored = render_table(&[sample_report()], true);
    assert!(colored.contains("\x1b[1;31mcritical\x1b[0m"));
    assert!(colored.contains("\x1b[36mlow\x1b[0m"));
    let mut stripped = colored.clone();
    for sgr in [
        "\x1b[1;31m",
        "\x1b[31m",
        "\x1b[33m",
        "\x1b[36m",
        "\x1b[2m",
        "\x1b[0m",
    ] {
        stripped = stripped.replace(sgr, "");
    }
    assert_eq!(stripped, plain);
    assert_eq!(
        colored.matches("\x1b[0m").count(),
        sample_report().findings.len()
    );
}

/// `imgscan rules` lists every rule.
#[test]
fn rules_table_snapshot() {
    let mut out = Vec::new();
    formats::human::rules_table(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_no_trailing_whitespace(&text);
    insta::assert_snapshot!("rules_table", text);
}

/// `imgscan explain setuid-binary`.
#[test]
fn explain_snapshot() {
    let mut out = Vec::new();
    formats::human::explain(&mut out, RuleId::SetuidBinary.meta()).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_no_trailing_whitespace(&text);
    insta::assert_snapshot!("explain_setuid_binary", text);
}
