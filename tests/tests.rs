//! Integration tests: the `imgscan` binary over real-builder fixtures and
//! images written in code.

mod util;

mod go_oracle;

mod archive_fidelity;
mod cli;
mod differential_json;
mod differential_tar;
mod docs;
mod edge;
mod errors;
mod fuzz_regressions;
mod hostile_fs;
mod registry;
mod registry_support;
mod runtime_oracle;
mod runtime_oracle_more;
mod runtime_oracle_red2;
mod sample;
mod serve;
mod serve_support;
mod users;
