//! The JSON report: the serialized [`Report`], nothing added.
//!
//! # Format
//!
//! One report is written as a pretty-printed [`Report`]; several (or none) as a
//! [`MultiReport`] wrapping them in command-line order. Either way the output
//! ends with a newline. `formats/schema/report.schema.json` documents every
//! field; [`scanner::model`] is the source of truth. The bytes are
//! deterministic: fields come in declaration order, `details` is a `BTreeMap`
//! and findings are already sorted by [`Report::new`].
//!
//! Consumers tell the two shapes apart by the top-level key: `image` for a
//! single report, `reports` for several.

use std::io::Write;

use scanner::model::{MultiReport, Report};

use crate::Emitter;

/// Writes the JSON report (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonEmitter;

impl Emitter for JsonEmitter {
    fn emit(&mut self, w: &mut dyn Write, reports: &[Report]) -> anyhow::Result<()> {
        match reports {
            [one] => serde_json::to_writer_pretty(&mut *w, one)?,
            many => serde_json::to_writer_pretty(&mut *w, &MultiReport::new(many.to_vec()))?,
        }
        w.write_all(b"\n")?;
        Ok(())
    }
}
