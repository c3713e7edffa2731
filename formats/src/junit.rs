//! JUnit XML, for the test-report views of GitLab, Jenkins and Azure
//! Pipelines.
//!
//! # Format
//!
//! The de facto JUnit dialect those readers share (Ant's and Surefire's
//! `<testsuites><testsuite><testcase><failure>`), valid against the Jenkins
//! xunit plugin's `junit-10.xsd`, which the tests vendor
//! (`formats/schema/jenkins-junit.xsd`, see `formats/schema/README.md`):
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <testsuites name="imgscan" tests="13" failures="2" errors="0">
//!   <testsuite name="docker-archive:app.tar" tests="13" failures="2" errors="0" skipped="0" time="0">
//!     <properties>…</properties>
//!     <testcase name="setuid-binary: …" classname="imgscan.setuid-binary" time="0">
//!       <failure message="…" type="high">path: /usr/local/bin/helper …</failure>
//!       <system-out>…</system-out>
//!     </testcase>
//!     …
//!   </testsuite>
//! </testsuites>
//! ```
//!
//! * one `<testsuite>` per image, named by the image's source (what was
//!   given on the command line), with the image's reference, digests,
//!   platform, verdict and the gate's threshold as `<properties>`, and the
//!   scan's warnings in its `<system-out>`;
//! * one `<testcase>` per active rule of [`RULES`], in registry order, whether
//!   or not it fired, so a rule that passes shows as a passing test and the
//!   number of tests is the same for every image: `classname` is
//!   `imgscan.<rule-id>`, `name` is `<rule-id>: <summary>`;
//! * one `<failure>` per finding at or above the gate's threshold
//!   ([`EmitOptions::fail_on`], the binary's `--fail-on`), most severe first
//!   as in the report: `message` is the finding's message, `type` its
//!   severity, and the text repeats the message on its first line, then gives
//!   rule code, path, layer, the layer's history step and fingerprint. GitLab
//!   shows a failure's text and not its attributes (its parser reads the XML
//!   with Rails' `Hash.from_xml`, which keeps only the content of an element
//!   whose `type` names no Rails type: severities name none), and joins the
//!   texts of a case's failures;
//! * the testcase's `<system-out>` lists every finding of the rule, one line
//!   each, those under the threshold marked so. Jenkins shows only the first
//!   `<failure>` of a test case (the most severe), and this list is where its
//!   users read the rest;
//! * `tests` counts test cases and `failures` the test cases with at least one
//!   `<failure>` (JUnit's meaning: a failed test), per suite and in total;
//!   `errors` and `skipped` are always 0 (an error stops the scan: no report
//!   is written). `time` is always `0` and there is no timestamp or hostname:
//!   the same reports give the same bytes.
//!
//! Text is escaped for XML 1.0 ([`escape_text`], [`escape_attr`]): the five
//! markup characters, and the characters XML 1.0 cannot carry at all (C0
//! controls other than tab, line feed and carriage return, U+FFFE and U+FFFF),
//! which image paths may hold, are written as the visible text `\u{1b}`.

use std::io::Write;

use scanner::checks::RULES;
use scanner::model::{Finding, Report, Severity};
use scanner::rules::{RuleMeta, RuleStatus};

use crate::{EmitOptions, Emitter};

/// Writes JUnit XML (see the [module docs](self)).
#[derive(Debug, Clone, Copy)]
pub struct JunitEmitter {
    fail_on: Option<Severity>,
}

impl JunitEmitter {
    /// An emitter failing test cases at `opts.fail_on`.
    pub fn new(opts: &EmitOptions) -> Self {
        Self {
            fail_on: opts.fail_on,
        }
    }
}

impl Emitter for JunitEmitter {
    fn emit(&mut self, w: &mut dyn Write, reports: &[Report]) -> anyhow::Result<()> {
        let rules: Vec<&RuleMeta> = RULES
            .iter()
            .filter(|m| matches!(m.status, RuleStatus::Active))
            .collect();
        let suites: Vec<Suite<'_>> = reports
            .iter()
            .map(|r| Suite::new(r, &rules, self.fail_on))
            .collect();
        let tests: usize = suites.iter().map(|s| s.cases.len()).sum();
        let failures: usize = suites.iter().map(Suite::failures).sum();
        writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(
            w,
            r#"<testsuites name="imgscan" tests="{tests}" failures="{failures}" errors="0">"#
        )?;
        for suite in &suites {
            suite.write(w, self.fail_on)?;
        }
        writeln!(w, "</testsuites>")?;
        Ok(())
    }
}

/// One image.
struct Suite<'a> {
    report: &'a Report,
    cases: Vec<Case<'a>>,
}

/// One rule in one image.
struct Case<'a> {
    rule: &'a RuleMeta,
    /// The rule's findings, in report order (most severe first).
    findings: Vec<&'a Finding>,
    /// How many of them fail the gate (they come first).
    failing: usize,
}

impl<'a> Suite<'a> {
    fn new(report: &'a Report, rules: &[&'a RuleMeta], fail_on: Option<Severity>) -> Self {
        let cases = rules
            .iter()
            .map(|rule| {
                let findings: Vec<&Finding> = report
                    .findings
                    .iter()
                    .filter(|f| f.rule_id == rule.id)
                    .collect();
                let failing = findings.iter().filter(|f| fails(f, fail_on)).count();
                Case {
                    rule,
                    findings,
                    failing,
                }
            })
            .collect();
        Self { report, cases }
    }

    fn failures(&self) -> usize {
        self.cases.iter().filter(|c| c.failing > 0).count()
    }

    fn write(&self, w: &mut dyn Write, fail_on: Option<Severity>) -> std::io::Result<()> {
        let image = &self.report.image;
        writeln!(
            w,
            r#"  <testsuite name="{}" tests="{}" failures="{}" errors="0" skipped="0" time="0">"#,
            escape_attr(&image.source),
            self.cases.len(),
            self.failures(),
        )?;
        writeln!(w, "    <properties>")?;
        let verdict = serde_json::to_value(self.report.escalation.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        let threshold = fail_on.map_or("none", Severity::as_str);
        let props: [(&str, Option<&str>); 9] = [
            ("imgscan.version", Some(&self.report.tool.version)),
            ("imgscan.fail-on", Some(threshold)),
            ("image.format", Some(&image.format)),
            ("image.reference", image.reference.as_deref()),
            ("image.manifest-digest", image.manifest_digest.as_deref()),
            ("image.index-digest", image.index_digest.as_deref()),
            ("image.config-digest", Some(&image.config_digest)),
            ("image.platform", Some(&image.platform)),
            ("image.verdict", verdict.as_deref()),
        ];
        for (name, value) in props {
            let Some(value) = value else { continue };
            writeln!(
                w,
                r#"      <property name="{name}" value="{}"/>"#,
                escape_attr(value)
            )?;
        }
        writeln!(w, "    </properties>")?;
        for case in &self.cases {
            case.write(w, fail_on)?;
        }
        if !self.report.warnings.is_empty() {
            let mut out = String::new();
            for warning in &self.report.warnings {
                out.push_str("warning: ");
                out.push_str(warning);
                out.push('\n');
            }
            writeln!(w, "    <system-out>{}</system-out>", escape_text(&out))?;
        }
        writeln!(w, "  </testsuite>")
    }
}

impl Case<'_> {
    fn write(&self, w: &mut dyn Write, fail_on: Option<Severity>) -> std::io::Result<()> {
        let id = self.rule.id.as_str();
        let name = format!("{id}: {}", self.rule.summary.trim_end_matches('.'));
        let open = format!(
            r#"    <testcase name="{}" classname="imgscan.{}" time="0""#,
            escape_attr(&name),
            escape_attr(id),
        );
        if self.findings.is_empty() {
            return writeln!(w, "{open}/>");
        }
        writeln!(w, "{open}>")?;
        for f in self.findings.iter().filter(|f| fails(f, fail_on)) {
            writeln!(
                w,
                r#"      <failure message="{}" type="{}">{}</failure>"#,
                escape_attr(&f.message),
                f.severity.as_str(),
                escape_text(&failure_text(self.rule, f)),
            )?;
        }
        let mut out = String::new();
        for f in &self.findings {
            let mark = if fails(f, fail_on) {
                "fails the gate".to_owned()
            } else if let Some(s) = f.suppression.as_ref().filter(|_| !f.counts) {
                format!("suppressed by {}: {}", s.entry, s.reason)
            } else if !f.counts {
                "in the baseline, does not count".to_owned()
            } else {
                match fail_on {
                    Some(t) => format!("below {t}"),
                    None => "gate off".to_owned(),
                }
            };
            out.push_str(&format!(
                "{} {} ({mark}): {}\n",
                f.severity,
                f.path.as_deref().unwrap_or("(image config)"),
                f.message
            ));
        }
        writeln!(w, "      <system-out>{}</system-out>", escape_text(&out))?;
        writeln!(w, "    </testcase>")
    }
}

/// Whether `f` counts (no ignore entry accepted it, the baseline did not
/// waive it) and is at or above the gate's threshold.
fn fails(f: &Finding, fail_on: Option<Severity>) -> bool {
    f.counts && fail_on.is_some_and(|t| f.severity >= t)
}

/// What a `<failure>` says beyond its message: where, which layer, and the
/// fingerprint an accepted finding is pinned by.
fn failure_text(rule: &RuleMeta, f: &Finding) -> String {
    let mut t = format!("{}\n", f.message);
    t.push_str(&format!("rule: {} ({})\n", rule.id, rule.code));
    t.push_str(&format!("severity: {}\n", f.severity));
    t.push_str(&format!(
        "path: {}\n",
        f.path.as_deref().unwrap_or("(image config)")
    ));
    match (f.layer_index, &f.layer_digest) {
        (Some(i), Some(d)) => t.push_str(&format!("layer: {i} ({d})\n")),
        (Some(i), None) => t.push_str(&format!("layer: {i}\n")),
        (None, _) => {}
    }
    if let Some(step) = &f.layer_created_by {
        t.push_str(&format!("created by: {step}\n"));
    }
    t.push_str(&format!("fingerprint: {}\n", f.fingerprint));
    t.push_str(&format!("explain: imgscan explain {}\n", rule.id));
    t
}

/// Whether XML 1.0 can carry `c` at all (its `Char` production, less the
/// surrogates a Rust `char` never is).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Pushes `c` as the visible text `\u{…}` when XML 1.0 cannot carry it.
fn push_replaced(out: &mut String, c: char) {
    out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
}

/// Escapes character data: `&`, `<`, `>` (so `]]>` never appears), a
/// carriage return as `&#13;` (a parser would turn a literal one into a line
/// feed), and characters XML 1.0 forbids as `\u{…}` text.
///
/// ```
/// assert_eq!(formats::junit::escape_text("a<b & c>\u{1b}"), "a&lt;b &amp; c&gt;\\u{1b}");
/// ```
pub fn escape_text(s: &str) -> String {
    escape(s, false)
}

/// Escapes an attribute value for a double-quoted attribute: what
/// [`escape_text`] escapes, plus `"` and `'`, and tab and line feed as
/// character references (attribute-value normalization would turn literal
/// ones into spaces).
///
/// ```
/// assert_eq!(formats::junit::escape_attr("say \"hi\"\n"), "say &quot;hi&quot;&#10;");
/// ```
pub fn escape_attr(s: &str) -> String {
    escape(s, true)
}

/// [`escape_text`], and with `attr` also what an attribute needs.
fn escape(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '"' if attr => out.push_str("&quot;"),
            '\'' if attr => out.push_str("&apos;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' if attr => out.push_str("&#10;"),
            c if xml_char(c) => out.push(c),
            c => push_replaced(&mut out, c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_characters_are_replaced() {
        for c in [
            '\0', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{1f}', '\u{FFFE}', '\u{FFFF}',
        ] {
            assert!(!xml_char(c), "{c:?}");
            let escaped = escape_text(&format!("a{c}b"));
            assert_eq!(escaped, format!("a\\u{{{:x}}}b", u32::from(c)));
            assert!(escape_attr(&c.to_string()).starts_with("\\u{"));
        }
        for c in [
            '\t',
            '\n',
            ' ',
            '\u{7f}',
            '\u{85}',
            '\u{D7FF}',
            '\u{E000}',
            '\u{FFFD}',
            '\u{10000}',
            '\u{10FFFF}',
        ] {
            assert!(xml_char(c), "{c:?}");
        }
        assert_eq!(escape_text("]]>"), "]]&gt;");
        assert_eq!(escape_text("a\r\nb"), "a&#13;\nb");
        assert_eq!(escape_attr("a'b\tc\r"), "a&apos;b&#9;c&#13;");
        assert_eq!(escape_text("caf\u{e9} \u{1F600}"), "caf\u{e9} \u{1F600}");
    }
}
