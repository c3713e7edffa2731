//! The one-line reason a gate failed, which the binary prints on standard
//! error in every format (issue #12): a CI log then says why the job went
//! red without anyone opening a report.
//!
//! ```text
//! imgscan: gate failed: 3 findings at or above high (1 critical, 2 high) in 1 of 1 image; worst: sudo-nopasswd /etc/sudoers.d/app
//! ```
//!
//! The line is deterministic (counts, then the worst finding by the report's
//! own order: most severe, then path, rule and fingerprint; the first image
//! wins a tie) and always one line: control characters in a path are written
//! as `\u{…}`.

use scanner::model::{Finding, Report, Severity};

/// The summary line (without a line feed) when some finding of `reports` is
/// at or above `threshold`; `None` when the gate passes or is off.
pub fn summary(reports: &[Report], threshold: Option<Severity>) -> Option<String> {
    let threshold = threshold?;
    let total: usize = reports
        .iter()
        .map(|r| r.summary.at_or_above(threshold))
        .sum();
    if total == 0 {
        return None;
    }
    let images = reports
        .iter()
        .filter(|r| r.summary.at_or_above(threshold) > 0)
        .count();
    let by_severity: Vec<String> = Severity::ALL_DESC
        .iter()
        .filter(|s| **s >= threshold)
        .filter_map(|s| {
            let n: usize = reports
                .iter()
                .map(|r| {
                    r.findings
                        .iter()
                        .filter(|f| f.counts && f.severity == *s)
                        .count()
                })
                .sum();
            (n > 0).then(|| format!("{n} {s}"))
        })
        .collect();
    let mut worst: Option<(&Report, &Finding)> = None;
    for r in reports {
        // Findings are sorted most severe first: the first that counts is
        // the report's worst.
        let Some(f) = r.findings.iter().find(|f| f.counts) else {
            continue;
        };
        if worst.is_none_or(|(_, w)| f.sort_key() < w.sort_key()) {
            worst = Some((r, f));
        }
    }
    let mut line = format!(
        "imgscan: gate failed: {total} finding{} at or above {threshold} ({}) in {images} of {} image{}",
        if total == 1 { "" } else { "s" },
        by_severity.join(", "),
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
    );
    let set_aside: usize = reports
        .iter()
        .map(|r| r.summary.suppressed + r.summary.baselined)
        .sum();
    if set_aside > 0 {
        line.push_str(&format!(
            " ({set_aside} more suppressed or in the baseline do not count)"
        ));
    }
    if let Some((report, f)) = worst {
        line.push_str("; worst: ");
        line.push_str(f.rule_id.as_str());
        line.push(' ');
        line.push_str(f.path.as_deref().unwrap_or("(image config)"));
        if reports.len() > 1 {
            line.push_str(" in ");
            line.push_str(&report.image.source);
        }
    }
    Some(one_line(&line))
}

/// `s` with every control character written as `\u{…}`.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_stay_on_one_line() {
        assert_eq!(one_line("a\nb\u{1b}c"), "a\\u{a}b\\u{1b}c");
    }
}
