//! What a rule is: its stable id ([`RuleId`]) and its metadata ([`RuleMeta`]).
//!
//! Rule ids are a public contract (JSON `rule_id`, SARIF `ruleId`, `--fail-on`
//! gates, suppressions): never rename or reuse one; a rule that is dropped is
//! kept with [`RuleStatus::Retired`]. The `codes_unique` test snapshots the
//! full list so a change shows up in review.
//!
//! Each rule's metadata and Markdown documentation live with its check in
//! `checks/<module>.rs` and `checks/docs/<rule-id>.md`; the one list of rules
//! is the `registry!` macro in `checks/mod.rs`, from which this module builds
//! [`RuleId`] and `checks` builds [`crate::checks::RULES`] and the checks.
//! This module imports neither `model` nor `checks`' items: `model` needs
//! [`RuleId`], and `checks` needs `model`.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr};

use crate::severity::Severity;

/// Builds [`RuleId`] from the registry list (see `checks/mod.rs`).
macro_rules! rule_id_enum {
    ($($module:ident :: $check:ident { $($variant:ident = $meta:ident),+ $(,)? })+) => {
        /// Stable identifier of a rule, serialized in kebab-case
        /// (`RootUser` is `root-user`). Variants are in code order.
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            Serialize,
            Deserialize,
            EnumIter,
            EnumString,
            IntoStaticStr,
        )]
        #[serde(rename_all = "kebab-case")]
        #[strum(serialize_all = "kebab-case")]
        pub enum RuleId {
            $($(
                #[doc = concat!(
                    "Reported by `checks::", stringify!($module), "::", stringify!($check),
                    "`; documented by `checks::", stringify!($module), "::", stringify!($meta), "`."
                )]
                $variant,
            )+)+
        }
    };
}

registry!(rule_id_enum);

impl RuleId {
    /// The kebab-case id, as in reports.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a rule still reports findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleStatus {
    /// Reported by its check.
    Active,
    /// No longer reported. The id and code stay reserved (old reports,
    /// suppressions and gates still name them) and `imgscan explain` still
    /// documents them.
    Retired {
        /// The imgscan version that stopped reporting it.
        since: &'static str,
        /// Why, and what reports it now, if anything.
        why: &'static str,
    },
}

/// What a rule's findings are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A fact about the image (attack surface, a risky setting).
    Fact,
    /// A path to root: every finding carries `steps` and `closed_by` in its
    /// details and is one of the report's `escalation.paths`.
    Path(Reach),
}

/// Who walks a path to root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// The container's own process, as its runtime user.
    Local,
    /// Someone over the network.
    Remote,
}

/// Documentation and defaults for one rule. Each check declares the
/// `RuleMeta` of the rules it reports, next to its code.
#[derive(Debug)]
pub struct RuleMeta {
    /// Stable id.
    pub id: RuleId,
    /// Stable short code (`IS001`), never reused.
    pub code: &'static str,
    /// Title case name for SARIF `name`.
    pub name: &'static str,
    /// The severity most findings of this rule get.
    pub default_severity: Severity,
    /// One sentence: what is flagged.
    pub summary: &'static str,
    /// How the severity is chosen.
    pub severity_note: &'static str,
    /// Topic tags for SARIF `properties.tags`, after the `security` and
    /// `container` tags every rule has: a topic and, where one fits, the CWE
    /// in the `external/cwe/cwe-N` form code scanning recognises.
    pub tags: &'static [&'static str],
    /// Active or retired.
    pub status: RuleStatus,
    /// A fact, or a path to root.
    pub kind: RuleKind,
    /// The rule's Markdown documentation (`checks/docs/<rule-id>.md`):
    /// `## What it does`, `## Why is this bad?`, `## Example`, `## References`.
    /// `imgscan explain`, SARIF `help` and `docs/rules.md` all show it.
    pub explanation: &'static str,
}

impl RuleMeta {
    /// A link to this rule's section of the rules documentation.
    pub fn help_uri(&self) -> String {
        format!(
            "{}/blob/main/docs/rules.md#{}",
            env!("CARGO_PKG_REPOSITORY"),
            self.id.as_str()
        )
    }
}

/// `docs/rules.md` for `rules` (pass [`crate::checks::RULES`]): a table of
/// every rule, then each rule's summary, severity and documentation, its
/// headings demoted below the rule's own. The integration test `docs`
/// fails when the file in the repository differs from this.
pub fn render_markdown(rules: &[RuleMeta]) -> String {
    let mut s = String::from(
        "# imgscan rules\n\n<!-- Generated from scanner/src/checks by `scanner::rules::render_markdown`; \
         do not edit. Regenerate with `IMGSCAN_UPDATE_DOCS=1 cargo test --test integration docs`. -->\n\n\
         Rule ids are a public contract: they appear in JSON (`rule_id`), SARIF (`ruleId`) and\n\
         gates, and are never renamed or reused. `imgscan explain RULE` prints the same text.\n\n\
         | code | rule | default severity |\n|---|---|---|\n",
    );
    for m in rules {
        s.push_str(&format!(
            "| {} | [`{}`](#{}) | {} |\n",
            m.code, m.id, m.id, m.default_severity
        ));
    }
    for m in rules {
        s.push_str(&format!(
            "\n## {}\n\n**{}** · default severity **{}**\n\n",
            m.id, m.code, m.default_severity
        ));
        if let RuleStatus::Retired { since, why } = m.status {
            s.push_str(&format!("**Retired** in {since}: {why}\n\n"));
        }
        s.push_str(&format!(
            "{}\n\n**Severity:** {}\n\n",
            m.summary, m.severity_note
        ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::RULES;
    use strum::IntoEnumIterator;

    #[test]
    fn every_rule_has_meta_in_order() {
        let ids: Vec<RuleId> = RuleId::iter().collect();
        let meta: Vec<RuleId> = RULES.iter().map(|m| m.id).collect();
        assert_eq!(ids, meta);
    }

    #[test]
    fn codes_unique() {
        let list: Vec<String> = RULES
            .iter()
            .map(|m| format!("{} {} {}", m.code, m.id, m.default_severity))
            .collect();
        let mut codes: Vec<&str> = RULES.iter().map(|m| m.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RULES.len());
        insta::assert_snapshot!(list.join("\n"));
    }

    #[test]
    fn explanations_have_the_sections() {
        for m in RULES {
            for h in [
                "## What it does",
                "## Why is this bad?",
                "## Example",
                "## References",
            ] {
                assert!(m.explanation.contains(h), "{} lacks {h}", m.id);
            }
            assert!(m.summary.len() <= 1024 && !m.summary.is_empty());
        }
    }

    #[test]
    fn ids_round_trip() {
        for id in RuleId::iter() {
            assert_eq!(id.as_str().parse::<RuleId>().unwrap(), id);
            assert_eq!(
                serde_json::to_string(&id).unwrap(),
                format!("\"{}\"", id.as_str())
            );
        }
    }
}
