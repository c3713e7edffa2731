//! Emitter tests: one shared sample report, a snapshot per format, the JSON
//! Schema, a round trip, and the external SARIF validator.

mod github;
mod human;
mod json;
mod sample;
mod sarif;
mod schema;
