//! Integration tests: the `imgscan` binary over real-builder fixtures and
//! images written in code.

mod util;

mod go_oracle;

mod cli;
mod docs;
mod edge;
mod errors;
mod fuzz_regressions;
mod registry;
mod registry_support;
mod sample;
mod serve;
mod serve_support;
