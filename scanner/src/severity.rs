//! How bad a finding is: the one type the model and the rule registry share.
//!
//! It lives on its own so that neither `model` nor `rules` has to import the
//! other for it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
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
    Default,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a problem by itself.
    #[default]
    Info,
    /// Weakens defence in depth.
    Low,
    /// A privilege problem that needs another bug to matter.
    Medium,
    /// A direct route to more privilege.
    High,
    /// Root for whoever finds it, or almost certainly not intended.
    Critical,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL_DESC: [Self; 5] = [
        Self::Critical,
        Self::High,
        Self::Medium,
        Self::Low,
        Self::Info,
    ];

    /// Lowercase name, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// One step more severe (saturating at critical).
    pub fn raised(self) -> Self {
        match self {
            Self::Info => Self::Low,
            Self::Low => Self::Medium,
            Self::Medium => Self::High,
            Self::High | Self::Critical => Self::Critical,
        }
    }

    /// One step less severe (saturating at info).
    pub fn lowered(self) -> Self {
        match self {
            Self::Critical => Self::High,
            Self::High => Self::Medium,
            Self::Medium => Self::Low,
            Self::Low | Self::Info => Self::Info,
        }
    }

    /// The CVSS-like score GitHub code scanning reads from SARIF
    /// `security-severity` (over 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium,
    /// 0.1-3.9 low).
    pub fn security_severity(self) -> &'static str {
        match self {
            Self::Critical => "9.5",
            Self::High => "8.0",
            Self::Medium => "5.5",
            Self::Low => "3.0",
            Self::Info => "0.5",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Self::Info),
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            "critical" => Ok(Self::Critical),
            other => Err(format!(
                "unknown severity `{other}` (expected critical, high, medium, low or info)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Severity;

    /// The names are the JSON report's (serde) and the CLI's.
    #[test]
    fn names_match_the_report() {
        for s in Severity::ALL_DESC {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Severity::Critical.as_str(), "critical");
    }
}
