//! The streaming tar reader (`tarstream::TarReader`) over arbitrary bytes.
//!
//! Invariants: no panic; every member's data reads to exactly its size or
//! fails; a second pass over the same bytes lists the same members and ends
//! the same way; a seekable source (data skipped by seeking) lists the same
//! headers as a streaming one (data skipped by reading).
#![no_main]

use std::io::{Cursor, Read};

use libfuzzer_sys::fuzz_target;
use scanner::tarstream::{Header, Seekable, Streaming, TarReader, TarSource};

/// Members read per input at most (each takes at least one 512-byte block,
/// so this only guards against a reader that stops advancing).
const MAX_MEMBERS: usize = 100_000;

/// Every header, and for each the member data (when read) or nothing.
type Listing = (Vec<(Header, Option<Vec<u8>>)>, Option<String>);

fn list<S: TarSource>(mut r: TarReader<S>, read_data: bool, len: u64) -> Listing {
    let mut out = Vec::new();
    let mut last = 0u64;
    loop {
        assert!(out.len() <= MAX_MEMBERS, "the reader does not advance");
        let h = match r.next_header() {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => return (out, Some(e.to_string())),
        };
        assert!(r.position() <= len, "position past the end of the input");
        assert!(
            r.position() > last || out.is_empty(),
            "a member without a header block"
        );
        assert_eq!(h.data_offset, r.position(), "data does not start here");
        assert!(h.mode <= 0o7777, "mode not masked: {:o}", h.mode);
        last = r.position();
        let data = if read_data {
            let mut data = Vec::new();
            match r.data().read_to_end(&mut data) {
                Ok(n) => {
                    assert_eq!(n as u64, h.size, "member data shorter than its size");
                    assert_eq!(r.position(), h.data_offset + h.size);
                    // The reader says 0 at the end of the member, forever.
                    assert_eq!(r.read_data(&mut [0u8; 16]).unwrap(), 0);
                }
                Err(e) => {
                    assert!(
                        (h.data_offset + h.size) > len,
                        "member data failed inside the input: {e}"
                    );
                    out.push((h, Some(data)));
                    return (out, Some(e.to_string()));
                }
            }
            Some(data)
        } else {
            None
        };
        out.push((h, data));
    }
    assert!(r.position() <= len);
    // After the end, the reader stays at the end.
    assert!(matches!(r.next_header(), Ok(None)));
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let first = list(TarReader::new(Streaming::new(data)), true, len);
    let second = list(TarReader::new(Streaming::new(data)), true, len);
    assert_eq!(first, second, "two passes over the same bytes differ");

    // Skipping data by seeking must see the same headers as skipping by
    // reading (the `--no-verify` path of local layers).
    let streamed = list(TarReader::new(Streaming::new(data)), false, len);
    let seeked = list(
        TarReader::new(Seekable::new(Cursor::new(data), len, 1024)),
        false,
        len,
    );
    assert_eq!(
        streamed.0, seeked.0,
        "streaming and seekable sources list different members"
    );
    assert_eq!(
        streamed.1.is_some(),
        seeked.1.is_some(),
        "one source fails and the other does not: {:?} / {:?}",
        streamed.1,
        seeked.1
    );
    // Headers are the same whether the data was read or skipped.
    let headers: Vec<&Header> = first.0.iter().map(|(h, _)| h).collect();
    let skipped: Vec<&Header> = streamed.0.iter().map(|(h, _)| h).collect();
    if first.1.is_none() {
        assert_eq!(headers, skipped);
    }
});
