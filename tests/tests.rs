//! Integration tests: the `imgscan` binary over real-builder fixtures and
//! images written in code.

mod util;

mod go_oracle;

mod differential_tar;

mod cli;
mod docs;
mod edge;
mod errors;
mod registry;
mod registry_support;
mod runtime_oracle;
mod runtime_oracle_more;
mod sample;
mod serve;
mod serve_support;
