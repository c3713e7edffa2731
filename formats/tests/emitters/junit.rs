//! JUnit XML: snapshot, parsed back with roxmltree and counted against the
//! reports, escaping of hostile text, the threshold. (The schema check with
//! `xmllint` and the vendored Jenkins XSD is in the e2e tier,
//! `tests/junit_schema.rs`, because it needs libxml2-utils.)

use formats::{EmitOptions, OutputFormat};
use scanner::checks::RULES;
use scanner::model::{Report, Severity};
use scanner::rules::RuleStatus;

use crate::sample::{clean_report, sample_report};

pub(crate) fn render_junit(reports: &[Report], fail_on: Option<Severity>) -> String {
    let opts = EmitOptions {
        color: false,
        fail_on,
        show_suppressed: false,
    };
    let bytes = formats::render(OutputFormat::Junit, &opts, reports).unwrap();
    String::from_utf8(bytes).unwrap()
}

fn active_rules() -> usize {
    RULES
        .iter()
        .filter(|m| matches!(m.status, RuleStatus::Active))
        .count()
}

fn attr<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
    node.attribute(name)
        .unwrap_or_else(|| panic!("<{}> has no {name}", node.tag_name().name()))
}

fn count(node: roxmltree::Node<'_, '_>, name: &str) -> usize {
    attr(node, name).parse().unwrap()
}

fn children<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children().filter(move |c| c.has_tag_name(name))
}

/// Two images at the default threshold, version redacted.
#[test]
fn junit_several_snapshot() {
    let reports = [sample_report(), clean_report()];
    let xml = render_junit(&reports, Some(Severity::High)).replace(
        &format!("value=\"{}\"", reports[0].tool.version),
        "value=\"[VERSION]\"",
    );
    insta::assert_snapshot!("junit_several", xml);
}

/// Parsed back: one suite per image named by its source, one case per
/// active rule, a failure per finding at or above the threshold with the
/// finding's message, severity and fingerprint, and counts that agree.
#[test]
fn junit_parses_back_with_the_reports_counts() {
    let reports = [sample_report(), clean_report()];
    for threshold in [
        Some(Severity::Critical),
        Some(Severity::High),
        Some(Severity::Info),
        None,
    ] {
        let xml = render_junit(&reports, threshold);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        let suites: Vec<_> = children(root, "testsuite").collect();
        assert_eq!(suites.len(), reports.len());
        let mut failing_cases = 0;
        for (suite, report) in suites.iter().zip(&reports) {
            assert_eq!(attr(*suite, "name"), report.image.source);
            let cases: Vec<_> = children(*suite, "testcase").collect();
            assert_eq!(cases.len(), active_rules());
            assert_eq!(count(*suite, "tests"), cases.len());
            let failed = cases
                .iter()
                .filter(|c| children(**c, "failure").next().is_some())
                .count();
            assert_eq!(count(*suite, "failures"), failed);
            failing_cases += failed;
            let failures: Vec<_> = cases.iter().flat_map(|c| children(*c, "failure")).collect();
            let want = threshold.map_or(0, |t| report.summary.at_or_above(t));
            assert_eq!(failures.len(), want, "{threshold:?}");
            for case in &cases {
                let classname = attr(*case, "classname");
                let id = classname.strip_prefix("imgscan.").unwrap();
                assert!(attr(*case, "name").starts_with(&format!("{id}: ")));
                let mine: Vec<_> = report
                    .findings
                    .iter()
                    .filter(|f| f.rule_id.as_str() == id)
                    .collect();
                let failing: Vec<_> = mine
                    .iter()
                    .filter(|f| threshold.is_some_and(|t| f.severity >= t))
                    .collect();
                let got: Vec<_> = children(*case, "failure").collect();
                assert_eq!(got.len(), failing.len(), "{id} {threshold:?}");
                for (failure, finding) in got.iter().zip(&failing) {
                    assert_eq!(attr(*failure, "message"), finding.message);
                    assert_eq!(attr(*failure, "type"), finding.severity.as_str());
                    let text = failure.text().unwrap();
                    // GitLab shows the text only: it starts with the message.
                    assert!(
                        text.starts_with(&format!("{}\n", finding.message)),
                        "{text}"
                    );
                    assert!(text.contains(&finding.fingerprint), "{text}");
                    if let Some(path) = &finding.path {
                        assert!(text.contains(&format!("path: {path}\n")), "{text}");
                    }
                }
                // Every finding of the rule is listed in system-out.
                let out = children(*case, "system-out")
                    .next()
                    .and_then(|n| n.text())
                    .unwrap_or("");
                assert_eq!(out.lines().count(), mine.len(), "{id}: {out}");
            }
        }
        assert_eq!(count(root, "failures"), failing_cases);
        assert_eq!(count(root, "tests"), reports.len() * active_rules());
    }
}

/// Paths and messages with markup, quotes and characters XML 1.0 cannot
/// carry come out as well-formed XML that reads back as the text (forbidden
/// characters as `\u{…}`).
#[test]
fn junit_escapes_hostile_text() {
    let mut report = sample_report();
    let hostile = "/opt/<a href=\"x\">&'</a>]]>\u{1b}[31m\u{0}\ttab\r\nline";
    report.image.source = format!("docker-archive:{hostile}");
    for f in &mut report.findings {
        f.path = Some(hostile.to_owned());
        f.message = format!("message of {hostile}");
    }
    let xml = render_junit(&[report], Some(Severity::Info));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let readable = "/opt/<a href=\"x\">&'</a>]]>\\u{1b}[31m\\u{0}\ttab\r\nline";
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(attr(suite, "name"), format!("docker-archive:{readable}"));
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert!(!failures.is_empty());
    for f in failures {
        assert_eq!(attr(f, "message"), format!("message of {readable}"));
        assert!(
            f.text().unwrap().contains(&format!("path: {readable}\n")),
            "{:?}",
            f.text()
        );
    }
}

/// An image with no findings: every case passes, and nothing fails.
#[test]
fn junit_of_a_clean_image_passes() {
    let xml = render_junit(&[clean_report()], Some(Severity::Info));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(count(doc.root_element(), "failures"), 0);
    assert!(!doc.descendants().any(|n| n.has_tag_name("failure")));
    // No reports (an empty run) is still a document.
    let xml = render_junit(&[], Some(Severity::High));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(count(doc.root_element(), "tests"), 0);
}

/// The same reports give the same bytes.
#[test]
fn junit_is_deterministic() {
    let reports = [sample_report(), clean_report()];
    assert_eq!(
        render_junit(&reports, Some(Severity::High)),
        render_junit(&reports, Some(Severity::High))
    );
}

/// The gate's line: counts by severity, the worst finding, one line; none
/// when nothing reaches the threshold or the gate is off.
#[test]
fn gate_summary_line() {
    let reports = [sample_report(), clean_report()];
    let line = formats::gate::summary(&reports, Some(Severity::High)).unwrap();
    let n = reports[0].summary.at_or_above(Severity::High);
    let want = format!(
        "imgscan: gate failed: {n} findings at or above high ({} critical, {} high) in 1 of 2 images; worst: ",
        reports[0].summary.critical, reports[0].summary.high,
    );
    assert!(line.starts_with(&want), "{line}");
    let worst = &reports[0].findings[0];
    assert!(
        line.ends_with(&format!(
            "{} {} in {}",
            worst.rule_id,
            worst.path.as_deref().unwrap_or("(image config)"),
            reports[0].image.source
        )),
        "{line}"
    );
    assert_eq!(formats::gate::summary(&reports, None), None);
    assert_eq!(
        formats::gate::summary(&[clean_report()], Some(Severity::Info)),
        None
    );
    let mut one = sample_report();
    one.findings[0].path = Some("/a\nb".to_owned());
    let line = formats::gate::summary(&[one], Some(Severity::Critical)).unwrap();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.contains("in 1 of 1 image;"), "{line}");
}
