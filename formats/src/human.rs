//! Text for people: the findings table, `imgscan rules` and `imgscan explain`.
//!
//! # Format
//!
//! For each image, a header (source, reference, format, platform, config
//! digest, user, layer count), then the findings in the report's order (most severe
//! first) under the columns `SEVERITY  RULE  PATH  LAYER  MESSAGE`. Column
//! widths come from the content; messages wrap within [`TABLE_WIDTH`]
//! columns, continuing under the message column. Then a summary line
//! (`3 findings: 1 critical, 2 high, 0 medium, 0 low, 0 info`, or
//! `no findings`) and the scan's warnings. Several images are separated by a
//! blank line and end with a total. Colour (ANSI SGR) marks only the severity
//! word, and only when [`EmitOptions::color`] is set. No line ends in
//! whitespace. This layout is for reading, not parsing: use the JSON report.

use std::io::{self, Write};

use scanner::checks::RULES;
use scanner::model::{
    BaselineKind, BaselineState, Closer, Escalation, EscalationPath, Finding, Reach, Report,
    Resolution, Severity, Summary, SuppressionStatus, Verdict,
};
use scanner::rules::{RuleMeta, RuleStatus};
use strum::IntoEnumIterator;

use crate::{EmitOptions, Emitter};

/// The width tables are fitted to. Messages wrap to stay within it; a row
/// is wider only when its path is.
pub const TABLE_WIDTH: usize = 120;
/// A message column never gets narrower than this, however long the paths.
const MIN_MESSAGE_WIDTH: usize = 32;
/// Width `rules` and `explain` wrap prose to.
const PROSE_WIDTH: usize = 80;
/// Space between columns.
const GAP: &str = "  ";

/// Writes the findings table (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct TableEmitter {
    color: bool,
    show_suppressed: bool,
}

impl TableEmitter {
    /// A table emitter with the given options.
    pub fn new(opts: &EmitOptions) -> Self {
        Self {
            color: opts.color,
            show_suppressed: opts.show_suppressed,
        }
    }
}

impl Emitter for TableEmitter {
    fn emit(&mut self, w: &mut dyn Write, reports: &[Report]) -> anyhow::Result<()> {
        let mut total = Summary::default();
        for (i, report) in reports.iter().enumerate() {
            if i > 0 {
                writeln!(w)?;
            }
            self.report(w, report)?;
            total.merge(&report.summary);
        }
        match reports.len() {
            0 => writeln!(w, "no images scanned")?,
            1 => {}
            n => {
                writeln!(w)?;
                writeln!(w, "total over {n} images: {}", summary_line(&total))?;
            }
        }
        Ok(())
    }
}

impl TableEmitter {
    fn report(&self, w: &mut dyn Write, report: &Report) -> io::Result<()> {
        let image = &report.image;
        writeln!(w, "image {}", image.source)?;
        for (i, line) in wrap(&verdict_line(&report.escalation), TABLE_WIDTH - 2)
            .iter()
            .enumerate()
        {
            writeln!(w, "{}{line}", if i == 0 { "  " } else { "    " })?;
        }
        let user = match image.user.as_deref() {
            None => "(not set)".to_owned(),
            Some("") => "(empty)".to_owned(),
            Some(u) => u.to_owned(),
        };
        let mut fields = Vec::with_capacity(6);
        if let Some(reference) = &image.reference {
            fields.push(("reference", reference.clone()));
        }
        fields.extend([
            ("format", image.format.clone()),
            ("platform", image.platform.clone()),
            ("config", short_digest(&image.config_digest).to_owned()),
            ("user", user),
            ("layers", image.layers.len().to_string()),
        ]);
        for (key, value) in fields {
            let key = format!("{key}:");
            writeln!(w, "  {key:<11}{}", value.trim_end())?;
        }
        writeln!(w)?;
        // Accepted findings are counted in the summary, listed only with
        // --show-suppressed.
        let shown: Vec<Finding> = report
            .findings
            .iter()
            .filter(|f| self.show_suppressed || !accepted(f))
            .cloned()
            .collect();
        if !shown.is_empty() {
            self.table(w, &shown)?;
            writeln!(w)?;
        }
        writeln!(w, "{}", summary_line(&report.summary))?;
        policy_lines(w, report)?;
        if !report.warnings.is_empty() {
            writeln!(w, "warnings:")?;
            for warning in &report.warnings {
                for (i, line) in wrap(warning, TABLE_WIDTH - 4).iter().enumerate() {
                    let bullet = if i == 0 { "  - " } else { "    " };
                    writeln!(w, "{bullet}{line}")?;
                }
            }
        }
        Ok(())
    }

    fn table(&self, w: &mut dyn Write, findings: &[Finding]) -> io::Result<()> {
        let rows: Vec<[String; 4]> = findings
            .iter()
            .map(|f| {
                [
                    f.severity.as_str().to_owned(),
                    f.rule_id.as_str().to_owned(),
                    f.path.clone().unwrap_or_else(|| "(config)".to_owned()),
                    f.layer_index
                        .map_or_else(|| "-".to_owned(), |i| i.to_string()),
                ]
            })
            .collect();
        let header = ["SEVERITY", "RULE", "PATH", "LAYER"];
        let mut widths = header.map(width);
        for row in &rows {
            for (wd, cell) in widths.iter_mut().zip(row) {
                *wd = (*wd).max(width(cell));
            }
        }
        let used: usize = widths.iter().map(|wd| wd + GAP.len()).sum();
        let message_width = TABLE_WIDTH.saturating_sub(used).max(MIN_MESSAGE_WIDTH);

        for (cell, wd) in header.iter().zip(widths) {
            write!(w, "{cell:<wd$}{GAP}")?;
        }
        writeln!(w, "MESSAGE")?;
        for (row, finding) in rows.iter().zip(findings) {
            let [sev, rule, path, layer] = row;
            // Pad outside the escape codes so colour does not shift columns.
            let pad = " ".repeat(widths[0] - width(sev));
            let painted = self.paint(finding.severity, sev);
            let (w1, w2, w3) = (widths[1], widths[2], widths[3]);
            let prefix = format!("{painted}{pad}{GAP}{rule:<w1$}{GAP}{path:<w2$}{GAP}{layer:<w3$}");
            let message = match policy_note(finding) {
                Some(note) => format!("{} [{note}]", finding.message),
                None => finding.message.clone(),
            };
            let lines = wrap(&message, message_width);
            let Some((first, rest)) = lines.split_first() else {
                writeln!(w, "{}", prefix.trim_end())?;
                continue;
            };
            writeln!(w, "{prefix}{GAP}{first}")?;
            for line in rest {
                writeln!(w, "{:used$}{line}", "")?;
            }
        }
        Ok(())
    }

    fn paint(&self, severity: Severity, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        let sgr = match severity {
            Severity::Critical => "1;31",
            Severity::High => "31",
            Severity::Medium => "33",
            Severity::Low => "36",
            Severity::Info => "2",
        };
        format!("\x1b[{sgr}m{text}\x1b[0m")
    }
}

/// `N findings: X critical, Y high, Z medium, W low, V info`, or `no findings`.
/// `imgscan harden`'s text for one image, a YAML stream (every line that
/// is not YAML is a `#` comment): the container fields for Kubernetes
/// (`securityContext`, `volumeMounts`), the pod's `volumes`, a compose
/// service, then as comments the `docker run`/`podman run` flags, the Pod
/// Security Standards *restricted* verdict, and per setting why and what it
/// breaks. `formats/tests/emitters/harden.rs` parses it and checks the
/// field names (Kubernetes' `SecurityContext`, the compose specification's
/// JSON Schema).
pub fn harden(w: &mut dyn Write, r: &Report) -> io::Result<()> {
    let h = &r.hardening;
    let comment = |w: &mut dyn Write, text: &str| -> io::Result<()> {
        let body = text.trim_start();
        let indent = &text[..text.len() - body.len()];
        for (i, line) in wrap(body, TABLE_WIDTH - 4 - indent.len())
            .iter()
            .enumerate()
        {
            let more = if i == 0 { "" } else { "  " };
            writeln!(w, "# {indent}{more}{line}")?;
        }
        Ok(())
    };
    comment(w, &format!("imgscan harden: {}", r.image.source))?;
    comment(w, &verdict_line(&r.escalation))?;
    writeln!(w, "---")?;
    writeln!(
        w,
        "# Kubernetes: fields of the container (spec.containers[])"
    )?;
    writeln!(w, "securityContext:")?;
    for s in &h.settings {
        for line in &s.kubernetes {
            writeln!(w, "  {line}")?;
        }
    }
    let names: Vec<String> = (0..h.writable_paths.len())
        .map(|i| format!("writable-{i}"))
        .collect();
    if !h.writable_paths.is_empty() {
        writeln!(w, "volumeMounts:")?;
        for (name, p) in names.iter().zip(&h.writable_paths) {
            writeln!(w, "  - name: {name}")?;
            writeln!(w, "    mountPath: {}", yaml_str(p))?;
        }
        writeln!(w, "---")?;
        writeln!(w, "# Kubernetes: the pod's volumes (spec.volumes[])")?;
        writeln!(w, "volumes:")?;
        for name in &names {
            writeln!(w, "  - name: {name}")?;
            writeln!(w, "    emptyDir: {{}}")?;
        }
    }
    writeln!(w, "---")?;
    let image = r.image.reference.as_deref().unwrap_or("IMAGE");
    let flags: Vec<&str> = h
        .settings
        .iter()
        .flat_map(|s| s.docker.iter().map(String::as_str))
        .collect();
    comment(
        w,
        &format!(
            "docker run / podman run: docker run {} {image}",
            flags.join(" ")
        ),
    )?;
    writeln!(w, "# compose (docker compose, podman-compose):")?;
    writeln!(w, "services:")?;
    writeln!(w, "  app:")?;
    writeln!(w, "    image: {}", yaml_str(image))?;
    if let (Some(u), Some(g)) = (h.run_as_user, h.run_as_group) {
        writeln!(w, "    user: \"{u}:{g}\"")?;
    }
    writeln!(w, "    security_opt: [\"no-new-privileges:true\"]")?;
    writeln!(w, "    cap_drop: [ALL]")?;
    if !h.add_capabilities.is_empty() {
        writeln!(w, "    cap_add: [{}]", h.add_capabilities.join(", "))?;
    }
    writeln!(w, "    read_only: true")?;
    writeln!(w, "    tmpfs: [/tmp]")?;
    let volumes: Vec<&String> = h.writable_paths.iter().filter(|p| *p != "/tmp").collect();
    if !volumes.is_empty() {
        writeln!(w, "    volumes:")?;
        for (i, p) in volumes.iter().enumerate() {
            writeln!(w, "      - {}", yaml_str(&format!("data-{i}:{p}")))?;
        }
        writeln!(w, "volumes:")?;
        for i in 0..volumes.len() {
            writeln!(w, "  data-{i}: {{}}")?;
        }
    }
    writeln!(w, "---")?;
    let restricted = &h.pod_security_restricted;
    if restricted.allowed {
        comment(
            w,
            "Pod Security Standards, restricted: can run with the settings above",
        )?;
    } else {
        comment(w, "Pod Security Standards, restricted: cannot run:")?;
        for reason in &restricted.reasons {
            comment(w, &format!("  - {reason}"))?;
        }
    }
    comment(w, "Each setting:")?;
    for s in &h.settings {
        let closes = match s.closes.len() {
            0 => String::new(),
            1 => " (closes 1 path to root)".to_owned(),
            n => format!(" (closes {n} paths to root)"),
        };
        comment(w, &format!("  {}{closes}", s.setting))?;
        comment(w, &format!("    why: {}", s.why))?;
        for b in &s.breaks {
            comment(w, &format!("    breaks: {b}"))?;
        }
    }
    Ok(())
}

/// A YAML scalar: plain when it is safe, double-quoted (JSON escapes,
/// which YAML reads) otherwise.
fn yaml_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        && !s.starts_with(['-', '.']);
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
    }
}

/// The verdict in one sentence: `runs as app (uid 10001): can become root,
/// 2 ways, both closed by no-new-privileges`.
pub fn verdict_line(e: &Escalation) -> String {
    let u = &e.runtime_user;
    let who = match (&u.name, u.uid) {
        (Some(n), Some(uid)) => format!("{n} (uid {uid})"),
        (None, Some(uid)) => format!("uid {uid}"),
        _ => "?".to_owned(),
    };
    let local: Vec<&EscalationPath> = e.paths.iter().filter(|p| p.reach == Reach::Local).collect();
    let remote = e.paths.len() - local.len();
    let closers = |paths: &[&EscalationPath]| -> String {
        let common: Vec<&str> = Closer::iter()
            .filter(|c| paths.iter().all(|p| p.closed_by.contains(c)))
            .map(Closer::as_str)
            .collect();
        match (paths.len(), common.is_empty()) {
            (_, true) => "no one setting closes them all".to_owned(),
            (1, false) => format!("closed by {}", common.join(" or ")),
            (2, false) => format!("both closed by {}", common.join(" or ")),
            (_, false) => format!("all closed by {}", common.join(" or ")),
        }
    };
    let mut line = match e.verdict {
        Verdict::RunsAsRoot => "runs as root (uid 0): closed by a non-root user".to_owned(),
        Verdict::CanBecomeRoot => format!(
            "runs as {who}: can become root, {} {}, {}",
            local.len(),
            if local.len() == 1 { "way" } else { "ways" },
            closers(&local)
        ),
        Verdict::NoKnownPath if u.resolution == Resolution::WillNotStart => format!(
            "does not start: {}",
            u.reason.as_deref().unwrap_or("its User does not resolve")
        ),
        Verdict::NoKnownPath => format!("runs as {who}: no known path to root"),
    };
    if remote > 0 {
        line.push_str(&format!(
            "; {remote} remote root {}",
            if remote == 1 { "login" } else { "logins" }
        ));
    }
    line
}

fn summary_line(s: &Summary) -> String {
    let mut set_aside = Vec::new();
    if s.suppressed > 0 {
        set_aside.push(format!("{} suppressed", s.suppressed));
    }
    if s.expired > 0 {
        set_aside.push(format!(
            "{} whose exception expired or no longer matches",
            s.expired
        ));
    }
    if s.baselined > 0 {
        set_aside.push(format!("{} in the baseline", s.baselined));
    }
    let tail = if set_aside.is_empty() {
        String::new()
    } else {
        format!("; {}", set_aside.join(", "))
    };
    if s.total == 0 {
        return format!("no findings{tail}");
    }
    let noun = if s.total == 1 { "finding" } else { "findings" };
    format!(
        "{} {noun}: {} critical, {} high, {} medium, {} low, {} info{tail}",
        s.total, s.critical, s.high, s.medium, s.low, s.info
    )
}

/// Whether an ignore entry accepted `f`.
fn accepted(f: &Finding) -> bool {
    f.suppression
        .as_ref()
        .is_some_and(|s| s.status == SuppressionStatus::Accepted)
}

/// What the policy or the baseline says about a finding, for its row.
fn policy_note(f: &Finding) -> Option<String> {
    let mut notes = Vec::new();
    if let Some(s) = &f.suppression {
        notes.push(match s.status {
            SuppressionStatus::Accepted => format!("suppressed: {}", s.reason),
            SuppressionStatus::Expired => format!(
                "counts again: the exception expired on {} ({})",
                s.expires.as_deref().unwrap_or("?"),
                s.entry
            ),
            SuppressionStatus::Changed => format!(
                "counts again: the exception no longer matches ({}; {})",
                s.differs.join("; "),
                s.entry
            ),
        });
    }
    match f.baseline {
        Some(BaselineState::Inherited) if f.counts || accepted(f) => {
            notes.push("inherited from the base image".to_owned());
        }
        Some(BaselineState::Inherited) => {
            notes.push("inherited from the base image: does not count".to_owned());
        }
        Some(BaselineState::Unchanged) if !f.counts => {
            notes.push("unchanged since the baseline: does not count".to_owned());
        }
        Some(BaselineState::Updated) => notes.push("more severe than in the baseline".to_owned()),
        _ => {}
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// The policy's lines under the summary: the baseline, the base image the
/// manifest names, disabled rules and stale ignore entries.
fn policy_lines(w: &mut dyn Write, r: &Report) -> io::Result<()> {
    let p = &r.policy;
    let mut lines = Vec::new();
    if let Some(b) = &p.baseline {
        let what = match (b.kind, b.base_layers, b.absent) {
            (BaselineKind::Image, Some(n), _) => format!(
                "baseline: {} (the first {n} of {} layers); {}",
                b.source,
                r.image.layers.len(),
                if b.gate_all {
                    "inherited findings count (--gate all)"
                } else {
                    "inherited findings do not count, paths to root always do"
                }
            ),
            (_, _, absent) => format!(
                "baseline: {}{}; {}",
                b.source,
                absent.map_or(String::new(), |a| format!(
                    " ({a} of its findings are gone)"
                )),
                if b.gate_all {
                    "unchanged findings count (--gate all)"
                } else {
                    "unchanged findings do not count, paths to root always do"
                }
            ),
        };
        lines.push(what);
    } else if let Some(reference) = r.image.base.as_ref().and_then(|b| b.reference()) {
        lines.push(format!(
            "base image (from the manifest's annotations): {reference}; --baseline auto judges only what this image adds"
        ));
    }
    if !p.disabled_rules.is_empty() {
        let ids: Vec<&str> = p.disabled_rules.iter().map(|r| r.as_str()).collect();
        lines.push(format!("rules disabled by the policy: {}", ids.join(", ")));
    }
    for s in &p.stale {
        lines.push(format!(
            "stale ignore entry (matched nothing): {} {} {}",
            s.entry,
            s.rule_id,
            s.path.as_deref().unwrap_or("(config)")
        ));
    }
    for line in lines {
        for (i, l) in wrap(&line, TABLE_WIDTH - 2).iter().enumerate() {
            writeln!(w, "{}{l}", if i == 0 { "" } else { "  " })?;
        }
    }
    Ok(())
}

/// Lists every rule: code, id, default severity and summary
/// (`imgscan rules`).
pub fn rules_table(w: &mut dyn Write) -> io::Result<()> {
    let header = ["CODE", "RULE", "SEVERITY"];
    let mut widths = header.map(width);
    for m in RULES {
        for (wd, cell) in
            widths
                .iter_mut()
                .zip([m.code, m.id.as_str(), m.default_severity.as_str()])
        {
            *wd = (*wd).max(width(cell));
        }
    }
    let used: usize = widths.iter().map(|wd| wd + GAP.len()).sum();
    let summary_width = TABLE_WIDTH.saturating_sub(used).max(MIN_MESSAGE_WIDTH);
    for (cell, wd) in header.iter().zip(widths) {
        write!(w, "{cell:<wd$}{GAP}")?;
    }
    writeln!(w, "SUMMARY")?;
    for m in RULES {
        let (code, id, sev) = (m.code, m.id.as_str(), m.default_severity.as_str());
        let (w0, w1, w2) = (widths[0], widths[1], widths[2]);
        write!(w, "{code:<w0$}{GAP}{id:<w1$}{GAP}{sev:<w2$}")?;
        for (j, line) in wrap(m.summary, summary_width).iter().enumerate() {
            if j == 0 {
                writeln!(w, "{GAP}{line}")?;
            } else {
                writeln!(w, "{:used$}{line}", "")?;
            }
        }
    }
    writeln!(w)?;
    writeln!(
        w,
        "Run `imgscan explain RULE` (an id or a code) for details."
    )?;
    Ok(())
}

/// Prints one rule's documentation: title with id and code, summary,
/// default severity, how the severity is chosen, the explanation and a link
/// (`imgscan explain RULE`).
pub fn explain(w: &mut dyn Write, meta: &RuleMeta) -> io::Result<()> {
    writeln!(w, "# {} ({}, {})", meta.name, meta.id, meta.code)?;
    writeln!(w)?;
    for line in wrap(meta.summary, PROSE_WIDTH) {
        writeln!(w, "{line}")?;
    }
    writeln!(w)?;
    if let RuleStatus::Retired { since, why } = meta.status {
        for line in wrap(&format!("Retired in {since}: {why}"), PROSE_WIDTH) {
            writeln!(w, "{line}")?;
        }
        writeln!(w)?;
    }
    writeln!(w, "Default severity: {}", meta.default_severity)?;
    for line in wrap(&format!("Severity: {}", meta.severity_note), PROSE_WIDTH) {
        writeln!(w, "{line}")?;
    }
    writeln!(w)?;
    for line in meta.explanation.trim().lines() {
        writeln!(w, "{}", line.trim_end())?;
    }
    writeln!(w)?;
    writeln!(w, "More: {}", meta.help_uri())?;
    Ok(())
}

/// Display width, counted in characters (imgscan's own text is ASCII; paths
/// from images rarely are not, and only misalign their own row then).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// Greedy word wrap to `max` characters per line. A word longer than a line
/// is split. Whitespace runs collapse to one space; no line ends in a space.
fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word;
        loop {
            let room = if line.is_empty() {
                max
            } else {
                max.saturating_sub(width(&line) + 1)
            };
            if width(word) <= room {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
                break;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than the whole line: split it.
            let cut = word.char_indices().nth(max).map_or(word.len(), |(i, _)| i);
            lines.push(word[..cut].to_owned());
            word = &word[cut..];
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `sha256:0123456789ab` from a full digest.
fn short_digest(digest: &str) -> &str {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => &digest[..algo.len() + 1 + 12],
        _ => digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("  spaced   out  ", 80), ["spaced out"]);
        assert_eq!(wrap("abcdefgh ij", 3), ["abc", "def", "gh", "ij"]);
        assert!(wrap("", 10).is_empty());
    }

    #[test]
    fn summary_lines() {
        assert_eq!(summary_line(&Summary::default()), "no findings");
        let one = Summary {
            high: 1,
            total: 1,
            ..Summary::default()
        };
        assert_eq!(
            summary_line(&one),
            "1 finding: 0 critical, 1 high, 0 medium, 0 low, 0 info"
        );
    }

    #[test]
    fn rules_and_explain_have_no_trailing_whitespace() {
        let mut out = Vec::new();
        rules_table(&mut out).unwrap();
        for meta in RULES {
            explain(&mut out, meta).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            assert_eq!(line, line.trim_end(), "trailing whitespace: {line:?}");
        }
    }
}
