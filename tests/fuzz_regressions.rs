//! Inputs the fuzz targets (`fuzz/`, docs/fuzzing.md) found, replayed
//! through the same public API, and the oracle mode the differential target
//! depends on.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use scanner::tarstream::{Streaming, TarReader};

use crate::go_oracle;

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

fn frame(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

fn small_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(5);
    h.set_mode(0o4755);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "usr/bin/su", &b"hello"[..]).unwrap();
    b.into_inner().unwrap()
}

/// `goracle tar-loop` answers each framed tar with exactly what `goracle tar`
/// prints for it (error line included), in order, until its input ends.
#[test]
fn tar_loop_frames_are_goracle_tar_listings() {
    let inputs: Vec<Vec<u8>> = vec![small_tar(), vec![b'x'; 1024], Vec::new(), small_tar()];
    let mut child = Command::new(go_oracle::binary())
        .arg("tar-loop")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run goracle tar-loop");
    let mut stdin = child.stdin.take().unwrap();
    let framed: Vec<u8> = inputs.iter().flat_map(|i| frame(i)).collect();
    let writer = std::thread::spawn(move || stdin.write_all(&framed).unwrap());
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    let mut rest = &out[..];
    for input in &inputs {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        let (listing, tail) = tail.split_at(len);
        assert_eq!(
            std::str::from_utf8(listing).unwrap(),
            go_oracle::run(&["tar"], input)
        );
        rest = tail;
    }
    assert!(rest.is_empty(), "answers past the last frame");
    // The garbage frame is refused, the tar listed.
    assert!(go_oracle::run(&["tar"], &inputs[1]).starts_with("error: "));
    assert_eq!(go_oracle::run(&["tar"], &inputs[0]).lines().count(), 1);
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
