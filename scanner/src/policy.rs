//! What a team decided about an image's findings (issue #12): rules
//! switched off, severities changed, findings accepted for a reason and a
//! time, and a baseline (a base image, or an earlier report) whose findings
//! do not fail the gate.
//!
//! # Honest by construction
//!
//! - A finding an ignore entry accepts stays in the report, marked with the
//!   entry and its reason ([`Suppression`]); only [`Finding::counts`] turns
//!   false. An entry past its `expires` date, or whose pins (content
//!   digest, mode, owner, fingerprint) no longer hold, leaves the finding
//!   counting and says so.
//! - Entries that matched nothing are reported as stale
//!   ([`crate::model::PolicyInfo::stale`]).
//! - A path to root (a [`RuleKind::Path`] rule: `root-user`, `sudo-root`, …)
//!   is never set aside implicitly: every ignore entry names exactly one
//!   rule (no wildcards), path rules cannot be disabled, and a baseline
//!   marks them but never waives them. Accepting one takes an entry that
//!   names that rule.
//!
//! The policy file's syntax is the binary's (`imgscan.toml`); this module
//! gets it as [`Policy`] and [`Ignore`] values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use globset::{GlobBuilder, GlobMatcher};

use crate::model::{
    BaselineInfo, BaselineKind, BaselineState, Finding, Report, Severity, StaleIgnore, Suppression,
    SuppressionStatus,
};
use crate::rules::{RuleId, RuleKind};

/// A calendar date (proleptic Gregorian), for `expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

impl Date {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a date of the form YYYY-MM-DD");
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&month)
            || day == 0
            || day > u32::from(days_in_month(year as i32, month as u8))
        {
            return Err(format!("`{s}` is not a day of the calendar"));
        }
        Ok(Self {
            year: year as i32,
            month: month as u8,
            day: day as u8,
        })
    }

    /// Today in UTC, from the system clock.
    pub fn today() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::from_days((secs / 86_400) as i64)
    }

    /// The date `days` days after 1970-01-01 (Howard Hinnant's
    /// `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>).
    pub fn from_days(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Self { year, month, day }
    }

    /// Days since 1970-01-01 (`days_from_civil`, same source).
    pub fn days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// What an ignore entry pins: the finding is accepted only while each pin
/// given still holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins {
    /// The finding's fingerprint.
    pub fingerprint: Option<String>,
    /// The SHA-256 of the file's content (`details.sha256`).
    pub sha256: Option<String>,
    /// The file's permission bits, octal (`4755`).
    pub mode: Option<u32>,
    /// The file's owner: uid, and gid when given (`0:0`, `0`).
    pub owner: Option<(u64, Option<u64>)>,
}

/// One accepted finding (or family of findings).
#[derive(Debug, Clone)]
pub struct Ignore {
    /// The rule, named exactly.
    pub rule: RuleId,
    /// The path glob as written; `None` matches only findings without a
    /// path (image-config findings).
    pub path: Option<String>,
    matcher: Option<GlobMatcher>,
    /// What was accepted exactly.
    pub pins: Pins,
    /// Why (required, not empty).
    pub reason: String,
    /// The last day the entry holds; it counts again the day after.
    pub expires: Option<Date>,
    /// Where it is written, for reports: `imgscan.toml: ignore 3 (line 14)`.
    pub entry: String,
}

impl Ignore {
    /// A validated entry. `path` is a glob over absolute paths: `*` and `?`
    /// stay inside one path component, `**` crosses them, `[abc]` is a
    /// class, `\` escapes (globset's syntax with a literal separator).
    /// Errors do not name the entry: the caller says which it is.
    pub fn new(
        rule: RuleId,
        path: Option<String>,
        pins: Pins,
        reason: String,
        expires: Option<Date>,
        entry: String,
    ) -> Result<Self, String> {
        if reason.trim().is_empty() {
            return Err("`reason` is empty; say why the finding is accepted".to_owned());
        }
        let matcher = match &path {
            None => None,
            Some(p) => {
                if !p.starts_with('/') && !p.starts_with("**") {
                    return Err(format!(
                        "path `{p}` is not absolute (findings' paths start with `/`)"
                    ));
                }
                let glob = GlobBuilder::new(p)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| format!("path `{p}`: {e}"))?;
                Some(glob.compile_matcher())
            }
        };
        Ok(Self {
            rule,
            path,
            matcher,
            pins,
            reason,
            expires,
            entry,
        })
    }

    /// Whether the entry names this finding (its rule and path), pins aside.
    pub fn names(&self, f: &Finding) -> bool {
        if f.rule_id != self.rule {
            return false;
        }
        match (&self.matcher, &f.path) {
            (None, None) => true,
            (Some(m), Some(p)) => m.is_match(p),
            _ => false,
        }
    }

    /// The pins that no longer hold for `f`, described.
    fn differs(&self, f: &Finding) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(want) = &self.pins.fingerprint
            && !want.eq_ignore_ascii_case(&f.fingerprint)
        {
            out.push(format!("fingerprint: pinned {want}, now {}", f.fingerprint));
        }
        if let Some(want) = &self.pins.sha256 {
            let want = want.strip_prefix("sha256:").unwrap_or(want);
            match f.details.get("sha256").and_then(|v| v.as_str()) {
                Some(have) if have.eq_ignore_ascii_case(want) => {}
                Some(have) => out.push(format!("sha256: pinned {want}, now {have}")),
                None => out.push(format!(
                    "sha256: pinned {want}, but imgscan has no content digest for this finding"
                )),
            }
        }
        if let Some(want) = self.pins.mode {
            let have = f
                .details
                .get("mode")
                .and_then(|v| v.as_str())
                .and_then(|m| u32::from_str_radix(m, 8).ok());
            match have {
                Some(h) if h == want => {}
                Some(h) => out.push(format!("mode: pinned {want:04o}, now {h:04o}")),
                None => out.push(format!(
                    "mode: pinned {want:04o}, but the finding has no mode"
                )),
            }
        }
        if let Some((uid, gid)) = self.pins.owner {
            let have_uid = f.details.get("uid").and_then(serde_json::Value::as_u64);
            let have_gid = f.details.get("gid").and_then(serde_json::Value::as_u64);
            let pinned = match gid {
                Some(g) => format!("{uid}:{g}"),
                None => uid.to_string(),
            };
            match have_uid {
                None => out.push(format!(
                    "owner: pinned {pinned}, but the finding has no owner"
                )),
                Some(u) if u != uid || gid.is_some_and(|g| Some(g) != have_gid) => {
                    let now = match have_gid {
                        Some(g) => format!("{u}:{g}"),
                        None => u.to_string(),
                    };
                    out.push(format!("owner: pinned {pinned}, now {now}"));
                }
                Some(_) => {}
            }
        }
        out
    }
}

/// The policy's judgement of findings.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The policy file, for reports.
    pub config: Option<String>,
    /// Rules whose findings are dropped (never a path rule).
    pub disabled: BTreeSet<RuleId>,
    /// Severities replacing the rules' own.
    pub severity: BTreeMap<RuleId, Severity>,
    /// Ignore entries, in file order (the first that accepts wins).
    pub ignores: Vec<Ignore>,
}

/// Whether `rule` is a path to root.
pub fn is_path(rule: RuleId) -> bool {
    matches!(rule.meta().kind, RuleKind::Path(_))
}

impl Policy {
    /// Refuses what would hide a path to root implicitly.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(r) = self.disabled.iter().find(|r| is_path(**r)) {
            return Err(format!(
                "`{r}` is a path to root and cannot be disabled; accept its findings with an \
                 [[ignore]] entry that names `{r}` and gives a reason"
            ));
        }
        Ok(())
    }

    /// Applies the policy to every report of a run (ignore entries that
    /// match nothing in any of them are stale in all), then settles which
    /// findings count. `today` decides expiry.
    pub fn apply(&self, reports: &mut [Report], today: Date) {
        let mut used = vec![false; self.ignores.len()];
        for report in reports.iter_mut() {
            report
                .findings
                .retain(|f| !self.disabled.contains(&f.rule_id));
            for f in &mut report.findings {
                if let Some(s) = self.severity.get(&f.rule_id) {
                    f.severity = *s;
                }
                f.suppression = self.judge(f, today, &mut used);
            }
            // The escalation paths carry their finding's severity.
            for p in &mut report.escalation.paths {
                if let Some(s) = self.severity.get(&p.rule_id) {
                    p.severity = *s;
                }
            }
            report.policy.config.clone_from(&self.config);
            report.policy.disabled_rules = self.disabled.iter().copied().collect();
            report.policy.severity_overrides = self.severity.clone();
        }
        let stale: Vec<StaleIgnore> = self
            .ignores
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(i, _)| StaleIgnore {
                entry: i.entry.clone(),
                rule_id: i.rule,
                path: i.path.clone(),
                reason: i.reason.clone(),
            })
            .collect();
        for report in reports.iter_mut() {
            report.policy.stale.clone_from(&stale);
            settle(report);
        }
    }

    /// The suppression of one finding: the first entry that names it and
    /// whose pins hold and that has not expired accepts it; otherwise the
    /// first expired such entry, otherwise the first entry that names it
    /// with pins that no longer hold. Every entry that names it is used.
    fn judge(&self, f: &Finding, today: Date, used: &mut [bool]) -> Option<Suppression> {
        let mut expired: Option<&Ignore> = None;
        let mut changed: Option<(&Ignore, Vec<String>)> = None;
        let mut accepted: Option<&Ignore> = None;
        for (i, entry) in self.ignores.iter().enumerate() {
            if !entry.names(f) {
                continue;
            }
            used[i] = true;
            if accepted.is_some() {
                continue;
            }
            let differs = entry.differs(f);
            if !differs.is_empty() {
                changed.get_or_insert((entry, differs));
            } else if entry.expires.is_some_and(|e| today > e) {
                expired.get_or_insert(entry);
            } else {
                accepted = Some(entry);
            }
        }
        let make = |e: &Ignore, status, differs| Suppression {
            status,
            reason: e.reason.clone(),
            entry: e.entry.clone(),
            expires: e.expires.map(|d| d.to_string()),
            differs,
        };
        if let Some(e) = accepted {
            return Some(make(e, SuppressionStatus::Accepted, Vec::new()));
        }
        if let Some(e) = expired {
            return Some(make(e, SuppressionStatus::Expired, Vec::new()));
        }
        changed.map(|(e, d)| make(e, SuppressionStatus::Changed, d))
    }
}

/// Decides [`Finding::counts`] from the suppression and the baseline, and
/// recounts the summary. A path to root waived by nothing but the baseline
/// still counts.
pub fn settle(report: &mut Report) {
    let gate_all = report.policy.baseline.as_ref().is_some_and(|b| b.gate_all);
    for f in &mut report.findings {
        let accepted = f
            .suppression
            .as_ref()
            .is_some_and(|s| s.status == SuppressionStatus::Accepted);
        let baselined = matches!(
            f.baseline,
            Some(BaselineState::Inherited | BaselineState::Unchanged)
        ) && !gate_all
            && !is_path(f.rule_id);
        f.counts = !(accepted || baselined);
    }
    report.recount();
}

/// Marks `report`'s findings against its base image's own report `base`:
/// a finding is inherited when a base layer introduced it (its layer index
/// is below the base's layer count) and the base image reports the same
/// fingerprint; everything else is new. Fails when the base's `diff_ids`
/// are not a prefix of the image's: then it is not this image's base.
pub fn against_base(
    report: &mut Report,
    base: &Report,
    source: &str,
    gate_all: bool,
) -> Result<(), String> {
    let ours = &report.image.layers;
    let theirs = &base.image.layers;
    if theirs.len() > ours.len() {
        return Err(format!(
            "the baseline {source} has {} layers and the image {} has {}: it is not the image's base",
            theirs.len(),
            report.image.source,
            ours.len()
        ));
    }
    if let Some((i, (a, b))) = ours
        .iter()
        .zip(theirs)
        .enumerate()
        .find(|(_, (a, b))| a.diff_id != b.diff_id)
    {
        return Err(format!(
            "the baseline {source} is not the base of {}: their layer {i} differs \
             (diff_id {} in the image, {} in the baseline); a base image's diff_ids are a \
             prefix of the image's",
            report.image.source, a.diff_id, b.diff_id
        ));
    }
    let n = theirs.len();
    let fps: BTreeSet<&str> = base
        .findings
        .iter()
        .map(|f| f.fingerprint.as_str())
        .collect();
    for f in &mut report.findings {
        let inherited =
            f.layer_index.is_some_and(|l| l < n) && fps.contains(f.fingerprint.as_str());
        f.baseline = Some(if inherited {
            BaselineState::Inherited
        } else {
            BaselineState::New
        });
    }
    report.policy.baseline = Some(BaselineInfo {
        kind: BaselineKind::Image,
        source: source.to_owned(),
        base_layers: Some(n),
        absent: None,
        gate_all,
    });
    settle(report);
    Ok(())
}

/// The findings of an earlier JSON report: fingerprint → severity.
#[derive(Debug, Clone, Default)]
pub struct BaselineReport {
    findings: BTreeMap<String, Severity>,
}

impl BaselineReport {
    /// Reads a JSON report (one image, or several: every image's findings
    /// count) of any 1.x schema: only `findings[].fingerprint` and
    /// `.severity` are read.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JSON report: {e}"))?;
        let reports: Vec<&serde_json::Value> = match v.get("reports").and_then(|r| r.as_array()) {
            Some(rs) => rs.iter().collect(),
            None => vec![&v],
        };
        let mut findings = BTreeMap::new();
        for r in reports {
            let list = r
                .get("findings")
                .and_then(|f| f.as_array())
                .ok_or("not an imgscan JSON report: no `findings` list")?;
            for f in list {
                let fp = f
                    .get("fingerprint")
                    .and_then(|x| x.as_str())
                    .ok_or("a finding has no `fingerprint`")?;
                let sev: Severity = f
                    .get("severity")
                    .cloned()
                    .and_then(|s| serde_json::from_value(s).ok())
                    .ok_or("a finding has no valid `severity`")?;
                let e = findings.entry(fp.to_owned()).or_insert(sev);
                *e = (*e).max(sev);
            }
        }
        Ok(Self { findings })
    }
}

/// Marks `report`'s findings against an earlier report: unchanged (same
/// fingerprint, not more severe), updated (same fingerprint, more severe)
/// or new.
pub fn against_report(report: &mut Report, base: &BaselineReport, source: &str, gate_all: bool) {
    let mut seen = BTreeSet::new();
    for f in &mut report.findings {
        f.baseline = Some(match base.findings.get(&f.fingerprint) {
            Some(s) if f.severity > *s => BaselineState::Updated,
            Some(_) => BaselineState::Unchanged,
            None => BaselineState::New,
        });
        seen.insert(f.fingerprint.clone());
    }
    let absent = base.findings.keys().filter(|k| !seen.contains(*k)).count();
    report.policy.baseline = Some(BaselineInfo {
        kind: BaselineKind::Report,
        source: source.to_owned(),
        base_layers: None,
        absent: Some(absent),
        gate_all,
    });
    settle(report);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_refuse_nonsense() {
        for s in ["1970-01-01", "2000-02-29", "2026-12-04", "2099-12-31"] {
            let d = Date::parse(s).unwrap();
            assert_eq!(d.to_string(), s);
            assert_eq!(Date::from_days(d.days()), d);
        }
        assert_eq!(Date::parse("1970-01-02").unwrap().days(), 1);
        for s in [
            "2026-13-01",
            "2026-02-29",
            "2026-1-01",
            "26-01-01",
            "2026-01-0x",
            "",
        ] {
            assert!(Date::parse(s).is_err(), "{s}");
        }
        assert!(Date::parse("2026-12-05").unwrap() > Date::parse("2026-12-04").unwrap());
    }

    fn finding(rule: RuleId, path: Option<&str>, mode: &str) -> Finding {
        let mut details = BTreeMap::new();
        details.insert("mode".to_owned(), serde_json::json!(mode));
        details.insert("uid".to_owned(), serde_json::json!(0));
        details.insert("gid".to_owned(), serde_json::json!(0));
        Finding {
            rule_id: rule,
            severity: Severity::High,
            path: path.map(str::to_owned),
            layer_index: Some(0),
            layer_digest: None,
            layer_created_by: None,
            message: "m".to_owned(),
            details,
            fingerprint: "ab".repeat(32),
            suppression: None,
            baseline: None,
            counts: true,
        }
    }

    fn entry(path: Option<&str>, pins: Pins, expires: Option<&str>) -> Ignore {
        Ignore::new(
            RuleId::SetuidBinary,
            path.map(str::to_owned),
            pins,
            "vendor tool".to_owned(),
            expires.map(|e| Date::parse(e).unwrap()),
            "t: ignore 1".to_owned(),
        )
        .unwrap()
    }

    #[test]
    fn globs_stay_inside_components_unless_double_star() {
        let f = finding(RuleId::SetuidBinary, Some("/usr/local/bin/x"), "4755");
        assert!(entry(Some("/usr/local/bin/*"), Pins::default(), None).names(&f));
        assert!(!entry(Some("/usr/*"), Pins::default(), None).names(&f));
        assert!(entry(Some("/usr/**"), Pins::default(), None).names(&f));
        assert!(!entry(None, Pins::default(), None).names(&f));
        let cfg = finding(RuleId::SetuidBinary, None, "4755");
        assert!(entry(None, Pins::default(), None).names(&cfg));
    }

    #[test]
    fn pins_expiry_and_order() {
        let today = Date::parse("2026-12-04").unwrap();
        let f = finding(RuleId::SetuidBinary, Some("/bin/x"), "4755");
        let run = |ignores: Vec<Ignore>| {
            let p = Policy {
                ignores,
                ..Policy::default()
            };
            let mut used = vec![false; p.ignores.len()];
            (p.judge(&f, today, &mut used), used)
        };
        let pin = |mode| Pins {
            mode: Some(mode),
            owner: Some((0, Some(0))),
            ..Pins::default()
        };
        let (s, _) = run(vec![entry(Some("/bin/x"), pin(0o4755), Some("2026-12-04"))]);
        assert_eq!(
            s.unwrap().status,
            SuppressionStatus::Accepted,
            "the last day holds"
        );
        let (s, _) = run(vec![entry(Some("/bin/x"), pin(0o4755), Some("2026-12-03"))]);
        assert_eq!(s.unwrap().status, SuppressionStatus::Expired);
        let (s, _) = run(vec![entry(Some("/bin/x"), pin(0o4711), None)]);
        let s = s.unwrap();
        assert_eq!(s.status, SuppressionStatus::Changed);
        assert_eq!(s.differs, ["mode: pinned 4711, now 4755"]);
        let (s, used) = run(vec![
            entry(Some("/bin/x"), pin(0o4711), None),
            entry(Some("/bin/*"), pin(0o4755), None),
            entry(Some("/sbin/*"), pin(0o4755), None),
        ]);
        assert_eq!(s.unwrap().status, SuppressionStatus::Accepted);
        assert_eq!(used, [true, true, false]);
        let sha = Pins {
            sha256: Some("00".repeat(32)),
            ..Pins::default()
        };
        let (s, _) = run(vec![entry(Some("/bin/x"), sha, None)]);
        assert_eq!(
            s.unwrap().status,
            SuppressionStatus::Changed,
            "no digest, no acceptance"
        );
    }

    #[test]
    fn path_rules_cannot_be_disabled() {
        let p = Policy {
            disabled: [RuleId::SudoRoot].into(),
            ..Policy::default()
        };
        assert!(p.validate().unwrap_err().contains("path to root"));
        let p = Policy {
            disabled: [RuleId::WorldWritablePath].into(),
            ..Policy::default()
        };
        p.validate().unwrap();
    }

    #[test]
    fn empty_reasons_and_relative_globs_are_refused() {
        let e = |path: &str, reason: &str| {
            Ignore::new(
                RuleId::SetuidBinary,
                Some(path.to_owned()),
                Pins::default(),
                reason.to_owned(),
                None,
                "e".to_owned(),
            )
        };
        assert!(e("/x", " ").unwrap_err().contains("reason"));
        assert!(e("x", "r").unwrap_err().contains("absolute"));
        assert!(e("/[x", "r").is_err());
        e("**/x", "r").unwrap();
    }
}
