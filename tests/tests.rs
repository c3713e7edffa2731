//! The `integration` test target (`cargo test`): the `imgscan` binary over
//! committed fixtures, images written in code and an in-process fake
//! registry. It needs nothing but the Rust toolchain; the tests that run
//! real tools (registries, skopeo, umoci, podman, Go) are the `e2e` target
//! (tests/e2e.rs), which `scripts/test` runs too.

mod support;
mod util;

mod archive_fidelity;
mod ci_recipes;
mod cli;
mod docs;
mod edge;
mod errors;
mod fuzz_regressions;
mod hostile_fs;
#[cfg(feature = "cache")]
mod layer_cache;
mod policy;
#[cfg(feature = "registry")]
mod registry_listing;
mod registry_protocol;
mod sample;
#[cfg(feature = "serve")]
mod serve_api;
mod streams_and_limits;
mod users;
mod verdicts;
