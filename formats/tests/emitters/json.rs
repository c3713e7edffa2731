//! The JSON report: bytes, snapshot and round trip.

use formats::{EmitOptions, OutputFormat};
use scanner::model::{MultiReport, Report};

use crate::sample::{clean_report, sample_report};

pub(crate) fn render_json(reports: &[Report]) -> String {
    let bytes = formats::render(OutputFormat::Json, &EmitOptions::default(), reports).unwrap();
    String::from_utf8(bytes).unwrap()
}

/// One report is written as exactly the pretty-printed `Report` plus a newline.
#[test]
fn one_report_is_the_serialized_report() {
    let report = sample_report();
    let text = render_json(std::slice::from_ref(&report));
    assert_eq!(
        text,
        format!("{}\n", serde_json::to_string_pretty(&report).unwrap())
    );
    insta::assert_json_snapshot!("json_one", report, { ".tool.version" => "[VERSION]" });
}

/// Several reports are written as a `MultiReport` with a merged summary.
#[test]
fn several_reports_are_a_multi_report() {
    let reports = vec![sample_report(), clean_report()];
    let text = render_json(&reports);
    let multi: MultiReport = serde_json::from_str(&text).unwrap();
    assert_eq!(multi.reports, reports);
    assert_eq!(multi.summary.total, reports[0].summary.total);
    assert_eq!(
        text,
        format!("{}\n", serde_json::to_string_pretty(&multi).unwrap())
    );
    insta::assert_json_snapshot!("json_several", multi, {
        ".tool.version" => "[VERSION]",
        ".reports[].tool.version" => "[VERSION]",
    });
}

/// JSON output deserializes back into the same `Report` (the model denies
/// unknown fields, so nothing extra sneaks in).
#[test]
fn json_round_trips() {
    let report = sample_report();
    let text = render_json(std::slice::from_ref(&report));
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report);
}

/// The same input gives the same bytes.
#[test]
fn json_is_deterministic() {
    let reports = [sample_report(), clean_report()];
    assert_eq!(render_json(&reports), render_json(&reports));
}
