//! Inputs the fuzz targets (`fuzz/`, docs/fuzzing.md) found, replayed
//! through the same public API. (The Go oracle's `tar-loop` mode, which the
//! differential fuzz target depends on, is checked in `go_oracle.rs`.)

use scanner::tarstream::{Streaming, TarReader};

/// Every member of `tar` read to its end; the first error, if any.
fn read_all(tar: &[u8]) -> std::io::Result<usize> {
    let mut r = TarReader::new(Streaming::new(tar));
    let mut n = 0;
    while r.next_header()?.is_some() {
        std::io::copy(&mut r.data(), &mut std::io::sink())?;
        n += 1;
    }
    Ok(n)
}

/// A PAX sparse 1.0 member whose `GNU.sparse.realsize` is 2^50 bytes of
/// holes (512 bytes stored): Go's reader returns a petabyte of zeros for it
/// (`tar_vs_go` timed out in the oracle on such a member), so imgscan must
/// refuse it rather than read the 512 stored bytes as the file.
#[test]
fn pax_sparse_member_with_a_petabyte_of_holes_is_refused() {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("GNU.sparse.major", &b"1"[..]),
        ("GNU.sparse.minor", &b"0"[..]),
        ("GNU.sparse.name", &b"big"[..]),
        ("GNU.sparse.realsize", (1u64 << 50).to_string().as_bytes()),
    ])
    .unwrap();
    let mut map = b"0\n".to_vec();
    map.resize(512, 0);
    let mut h = tar::Header::new_ustar();
    h.set_size(map.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "GNUSparseFile.0/big", &map[..])
        .unwrap();
    let tar = b.into_inner().unwrap();
    assert!(
        read_all(&tar).is_err(),
        "imgscan reads a sparse member Go expands to 2^50 bytes"
    );
}
