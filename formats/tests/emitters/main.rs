//! Emitter tests: one shared sample report, a snapshot per format, the JSON
//! Schema, a round trip, JUnit XML parsed back, and the external SARIF validator.

mod github;
mod harden;
mod human;
mod json;
mod junit;
mod policy;
mod sample;
mod sarif;
mod schema;
