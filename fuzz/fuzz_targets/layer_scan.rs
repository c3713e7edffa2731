//! One layer blob through `layer::scan_layer` with small limits: compression
//! sniffing, gzip members (`layer/gunzip.rs`), zstd frames, the tar reader,
//! PAX records and xattrs, whiteouts, name normalisation and file capture.
//!
//! Invariants: no panic; the same bytes scan to the same index twice; every
//! indexed path is normalised; captured files respect the limits; a plain
//! tar scans to the same index when it arrives gzip- or zstd-compressed
//! (compression is transparent).
#![no_main]

use std::io::Write;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use scanner::budget::MemoryBudget;
use scanner::layer::{Compression, LayerIndex, LayerOptions, scan_layer};

fn options() -> LayerOptions {
    LayerOptions {
        max_entries: 512,
        max_names: 64 << 10,
        max_capture: 2048,
        max_capture_total: 8192,
        budget: Arc::new(MemoryBudget::new(64 << 20)),
        // What a scan captures: the files the checks read.
        captures: scanner::checks::captures,
        ..LayerOptions::default()
    }
}

fn normalised(p: &str) -> bool {
    p.is_empty()
        || (!p.starts_with('/')
            && !p.ends_with('/')
            && p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
}

fn check_index(idx: &LayerIndex, opts: &LayerOptions) {
    assert!(idx.len() as u64 <= idx.members);
    assert!(idx.members <= opts.max_entries);
    let mut captured = 0;
    for e in idx.entries() {
        assert!(normalised(&e.path), "path not normalised: {:?}", e.path);
        assert!(e.mode <= 0o7777);
        if let Some(c) = &e.content {
            assert!(c.data.len() <= opts.max_capture);
            assert_eq!(c.truncated, (c.data.len() as u64) < e.size);
            captured += c.data.len();
        }
        if e.kind == scanner::tarstream::Kind::Hardlink {
            let l = e.link.as_deref().unwrap_or("");
            assert!(normalised(l), "hard link target not normalised: {l:?}");
        }
    }
    assert!(captured <= opts.max_capture_total);
    for w in idx.whiteouts.iter().chain(&idx.opaques) {
        assert!(normalised(w), "whiteout not normalised: {w:?}");
    }
}

/// What does not depend on how the tar was compressed.
fn view(idx: &LayerIndex) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        idx.entries().collect::<Vec<_>>(),
        &idx.whiteouts,
        &idx.opaques,
        idx.members,
        &idx.tar,
        &idx.warnings,
    )
}

fuzz_target!(|data: &[u8]| {
    let opts = options();
    let first = scan_layer(data, &opts);
    let second = scan_layer(data, &opts);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "two scans of the same bytes differ"),
        (Err(a), Err(b)) => assert_eq!(a.0, b.0),
        _ => panic!("one scan fails: {first:?} / {second:?}"),
    }
    let Ok(idx) = &first else { return };
    check_index(idx, &opts);
    if idx.compression != Some(Compression::None) {
        return;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(data, 1).unwrap();
    for (what, blob, c) in [
        ("gzip", gz, Compression::Gzip),
        ("zstd", zst, Compression::Zstd),
    ] {
        match scan_layer(&blob[..], &opts) {
            Ok(z) => {
                assert_eq!(z.compression, Some(c));
                assert_eq!(
                    view(&z),
                    view(idx),
                    "the {what}-compressed tar scans differently"
                );
            }
            Err(e) => panic!(
                "the plain tar scans, the {what}-compressed one fails: {}",
                e.0
            ),
        }
    }
});
