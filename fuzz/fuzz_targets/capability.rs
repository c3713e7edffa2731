//! File capability decoding (`capability` module): `security.capability`
//! xattr bytes as a PAX `SCHILY.xattr` record carries them, and the base64
//! of `LIBARCHIVE.xattr` records.
//!
//! Invariants: no panic; decoding is deterministic; what decodes re-encodes
//! to bytes that decode to the same thing; names and getcap text agree with
//! the bit sets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanner::capability::{FileCaps, decode_libarchive_base64};
use scanner::checks::capabilities::caps_severity;

/// `vfs_cap_data` bytes for decoded caps (Linux `include/uapi/linux/capability.h`).
fn encode(c: &FileCaps) -> Vec<u8> {
    let magic = (u32::from(c.revision) << 24) | u32::from(c.effective);
    let mut words = vec![magic, c.permitted as u32, c.inheritable as u32];
    if c.revision >= 2 {
        words.push((c.permitted >> 32) as u32);
        words.push((c.inheritable >> 32) as u32);
    }
    if let Some(r) = c.rootid {
        words.push(r);
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn check(raw: &[u8]) {
    let parsed = FileCaps::parse(raw);
    assert_eq!(
        parsed,
        FileCaps::parse(raw),
        "decoding is not deterministic"
    );
    let Ok(c) = parsed else { return };
    assert!(matches!(c.revision, 1..=3), "revision {}", c.revision);
    assert_eq!(c.rootid.is_some(), c.revision == 3);
    if c.revision == 1 {
        assert_eq!((c.permitted >> 32, c.inheritable >> 32), (0, 0));
    }
    assert_eq!(FileCaps::parse(&encode(&c)).as_ref(), Ok(&c), "re-encoding");
    let names = c.names();
    assert_eq!(
        names.len() as u32,
        (c.permitted | c.inheritable).count_ones(),
        "one name per capability"
    );
    let text = c.getcap_text();
    assert!(!text.is_empty());
    for n in &names {
        assert!(text.contains(n.as_str()), "{n} missing from {text}");
    }
    let _ = caps_severity(&c);
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let decoded = decode_libarchive_base64(data);
    assert_eq!(decoded, decode_libarchive_base64(data));
    if let Some(raw) = decoded {
        // Base64 decodes to at most three bytes per four characters.
        assert!(raw.len() <= data.len() * 3 / 4 + 3);
        check(&raw);
    }
});
