//! imgscan's emitters: turn scan [`Report`]s into JSON, SARIF 2.1.0, JUnit
//! XML or a table for people.
//!
//! # Architecture
//!
//! The `scanner` crate owns the findings model ([`scanner::model`]) and the
//! rule registry ([`scanner::checks::RULES`]); this crate only reads them and
//! never the reverse (the split ruff makes between `ruff_db::diagnostic` and
//! its `render` modules). Each format lives in its own module and implements
//! [`Emitter`]:
//!
//! * [`json`]: the serialized [`Report`] (or [`scanner::model::MultiReport`]
//!   for several images), documented by `formats/schema/report.schema.json`;
//! * [`sarif`]: a hand-written SARIF 2.1.0 model shaped for GitHub code
//!   scanning (one run per image, every rule in the driver);
//! * [`junit`]: JUnit XML for GitLab, Jenkins and Azure Pipelines (one test
//!   suite per image, one test case per rule, a failure per finding at or
//!   above the gate's threshold);
//! * [`human`]: an aligned table per image, plus the `imgscan rules` and
//!   `imgscan explain` texts.
//!
//! [`gate::summary`] is the one line the binary prints on standard error when
//! the gate fails, whatever the format.
//!
//! [`emit`] dispatches over [`OutputFormat`]; [`render`] does the same into a
//! buffer. Every format is deterministic: the same reports give the same
//! bytes, so outputs can be snapshot-tested and diffed.
//!
//! # Example
//!
//! ```
//! use formats::{EmitOptions, OutputFormat};
//! use scanner::model::{ImageInfo, Report};
//!
//! let image = ImageInfo {
//!     source: "docker-archive:app.tar".to_owned(),
//!     format: "docker-archive".to_owned(),
//!     reference: Some("app:1.0".to_owned()),
//!     manifest_digest: None,
//!     index_digest: None,
//!     config_digest: format!("sha256:{}", "0".repeat(64)),
//!     platform: "linux/amd64".to_owned(),
//!     user: Some("10001".to_owned()),
//!     layers: Vec::new(),
//!     base: None,
//! };
//! let report = Report::new(image, Vec::new(), Vec::new(), Default::default(), Default::default());
//! let format: OutputFormat = "sarif".parse()?;
//! let bytes = formats::render(format, &EmitOptions::default(), &[report])?;
//! assert!(bytes.starts_with(b"{"));
//! # Ok::<(), anyhow::Error>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use scanner::model::{Report, Severity};
use serde::{Deserialize, Serialize};
use strum::IntoStaticStr;

pub mod gate;
pub mod human;
pub mod json;
pub mod junit;
pub mod sarif;

/// An output format. The binary maps its `--format` values onto this (the
/// library has no clap dependency); serde and [`FromStr`]/[`fmt::Display`]
/// use the lowercase names `table`, `json`, `sarif` and `junit`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum OutputFormat {
    /// Aligned table for a terminal ([`human::TableEmitter`]).
    #[default]
    Table,
    /// The JSON report ([`json::JsonEmitter`]).
    Json,
    /// SARIF 2.1.0 for code scanning ([`sarif::SarifEmitter`]).
    Sarif,
    /// JUnit XML for CI test reports ([`junit::JunitEmitter`]).
    Junit,
}

impl OutputFormat {
    /// Every format, in `--help` order.
    pub const ALL: [Self; 4] = [Self::Table, Self::Json, Self::Sarif, Self::Junit];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A fresh emitter for this format.
    pub fn emitter(self, opts: &EmitOptions) -> Box<dyn Emitter> {
        match self {
            Self::Table => Box::new(human::TableEmitter::new(opts)),
            Self::Json => Box::new(json::JsonEmitter),
            Self::Sarif => Box::new(sarif::SarifEmitter),
            Self::Junit => Box::new(junit::JunitEmitter::new(opts)),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`OutputFormat`] from a name it does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat {
    /// What was given.
    pub input: String,
}

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown output format `{}` (expected table, json, sarif or junit)",
            self.input
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    /// Parses `table`, `json`, `sarif` or `junit`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownFormat {
                input: s.to_owned(),
            })
    }
}

/// Options shared by the emitters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmitOptions {
    /// Colour the severity with ANSI escapes (table only). The binary decides
    /// from `--color` and whether standard output is a terminal.
    pub color: bool,
    /// The gate's threshold (the binary's `--fail-on`): JUnit writes a
    /// `<failure>` for each finding at or above it. `None` fails nothing.
    /// Default `high`, as `--fail-on`'s. Findings that do not count
    /// (accepted by an ignore entry, waived by the baseline) fail nothing.
    pub fail_on: Option<Severity>,
    /// List the findings ignore entries accepted in the table
    /// (`--show-suppressed`); the summary always counts them.
    pub show_suppressed: bool,
}

impl Default for EmitOptions {
    fn default() -> Self {
        Self {
            color: false,
            fail_on: Some(Severity::High),
            show_suppressed: false,
        }
    }
}

/// Writes reports in one format.
pub trait Emitter {
    /// Writes `reports` to `w`. One report gives the single-image form of the
    /// format; several, or none, give the multi-image form (see each module).
    fn emit(&mut self, w: &mut dyn Write, reports: &[Report]) -> anyhow::Result<()>;
}

/// Writes `reports` to `w` in `format`.
pub fn emit(
    format: OutputFormat,
    opts: &EmitOptions,
    reports: &[Report],
    w: &mut dyn Write,
) -> anyhow::Result<()> {
    format.emitter(opts).emit(w, reports)
}

/// Renders `reports` in `format` into a buffer.
pub fn render(
    format: OutputFormat,
    opts: &EmitOptions,
    reports: &[Report],
) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    emit(format, opts, reports, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in OutputFormat::ALL {
            assert_eq!(f.to_string().parse::<OutputFormat>().unwrap(), f);
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", f.as_str())
            );
        }
        assert_eq!(
            "SARIF".parse::<OutputFormat>().unwrap(),
            OutputFormat::Sarif
        );
        let err = "xml".parse::<OutputFormat>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown output format `xml` (expected table, json, sarif or junit)"
        );
    }
}
