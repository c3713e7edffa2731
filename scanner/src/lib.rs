//! imgscan's domain: read a container image without running it and report
//! root and privilege problems.
//!
//! # Architecture
//!
//! `source` opens the image (docker-archive, OCI layout, oci-archive, standard
//! input, a registry, the local engine's API): a container of layer blobs and
//! a plan saying which digests they must have. `scan`, the one orchestrator,
//! hands each layer blob to `layer`'s pipeline, which streams it through
//! digest verification, decompression and tar parsing in parallel across
//! layers (never extracting anything). `layer` turns one layer into a compact index
//! of entries; `fs` applies the layers in order (whiteouts, opaque directories,
//! replacements, hard links) to judge the final filesystem; `checks` turn the
//! final filesystem and the image config into [`model::Finding`]s, attributed
//! to the layer that introduced them.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod budget;
pub mod cache;
pub mod capability;
// First: `rules` builds `RuleId` from the registry list macro defined here.
#[macro_use]
pub mod checks;
pub mod config;
pub mod digest;
pub mod error;
pub mod fs;
pub mod gojson;
pub mod harden;
pub mod layer;
pub mod model;
pub mod policy;
pub mod rules;
pub mod scan;
pub mod severity;
pub mod source;
pub mod tarstream;
pub mod view;

pub use error::{Error, Result};
pub use scan::{ScanOptions, scan};
pub use severity::Severity;
pub use source::Input;
