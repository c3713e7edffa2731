//! Link-time settings for the `imgscan` binary.
//!
//! Release builds on Linux compress the binary's DWARF (the line tables the
//! release profile keeps) with zlib: GNU ld and lld both take
//! `--compress-debug-sections=zlib`, and Rust's backtraces read compressed
//! sections, so a panic still names file and line.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if release && linux {
        println!("cargo::rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
}
