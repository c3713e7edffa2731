//! Differential tests of imgscan's tar reader against Go's `archive/tar`.
//!
//! What this proves: for every archive here — each layer of the fixture
//! images, the docker-archive itself, one hand-written hostile archive per
//! way a tar can be read differently (`tarstream`'s "Runtime fidelity"
//! list), and a few hundred seeded mutations of valid archives —
//! [`scanner::tarstream::TarReader`] and Go's `tar.Reader` (what moby,
//! containerd, containers/storage and umoci read layers with) agree:
//!
//! - if imgscan reads the archive, Go reads it too, with the identical
//!   listing: each member's name, link name, typeflag, mode bits, owner,
//!   size, `SCHILY.xattr.*` records and the sha256 of its data;
//! - if Go rejects the archive, imgscan rejects it too;
//! - up to the first error of either, the members both returned are the
//!   same.
//!
//! imgscan may refuse what Go reads (always with `ambiguous image: ` in the
//! hand-written cases, where that is expected); it never reads something
//! else. The listing format is the one `tests/goracle/tar.go` prints.

use std::fmt::Write as _;
use std::io::Read;

use scanner::tarstream::{Header, Streaming, TarReader};
use sha2::{Digest, Sha256};

use crate::go_oracle;
use crate::util::root;

const BLOCK: usize = 512;

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn line(h: &Header, data_sha: &[u8]) -> String {
    let xattrs: Vec<String> = h
        .xattrs
        .iter()
        .map(|(k, v)| format!("\"{}\":\"{}\"", hex(k), hex(v)))
        .collect();
    format!(
        "{{\"data\":\"{}\",\"gid\":{},\"linkname\":\"{}\",\"mode\":{},\"name\":\"{}\",\"size\":{},\"typeflag\":{},\"uid\":{},\"xattrs\":{{{}}}}}",
        hex(data_sha),
        h.gid,
        hex(&h.link),
        h.mode,
        hex(&h.path),
        h.header_size,
        h.typeflag,
        h.uid,
        xattrs.join(",")
    )
}

/// A reading: the member lines, and the error that ended it, if any.
#[derive(Debug)]
struct Reading {
    lines: Vec<String>,
    error: Option<String>,
}

fn imgscan_reading(tar: &[u8]) -> Reading {
    let mut r = TarReader::new(Streaming::new(tar));
    let mut lines = Vec::new();
    loop {
        let h = match r.next_header() {
            Ok(Some(h)) => h,
            Ok(None) => return Reading { lines, error: None },
            Err(e) => {
                return Reading {
                    lines,
                    error: Some(e.to_string()),
                };
            }
        };
        let mut sum = Sha256::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.data().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => sum.update(&buf[..n]),
                Err(e) => {
                    return Reading {
                        lines,
                        error: Some(e.to_string()),
                    };
                }
            }
        }
        lines.push(line(&h, &sum.finalize()));
    }
}

fn go_reading(tar: &[u8]) -> Reading {
    let out = go_oracle::run(&["tar"], tar);
    let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
    let error = match lines.last() {
        Some(l) if l.starts_with("error: ") => lines.pop(),
        _ => None,
    };
    Reading { lines, error }
}

/// Both readings of `tar`, the rule asserted.
fn compare(what: &str, tar: &[u8]) -> (Reading, Reading) {
    let ours = imgscan_reading(tar);
    let go = go_reading(tar);
    let n = ours.lines.len().min(go.lines.len());
    assert_eq!(
        ours.lines[..n],
        go.lines[..n],
        "{what}: the members both read differ\nimgscan: {ours:#?}\ngo: {go:#?}\ntar: {}",
        hex(&tar[..tar.len().min(4096)])
    );
    if ours.error.is_none() {
        assert!(
            go.error.is_none() && ours.lines == go.lines,
            "{what}: imgscan reads the archive, Go does not read it the same way\nimgscan: {ours:#?}\ngo: {go:#?}\ntar: {}",
            hex(&tar[..tar.len().min(4096)])
        );
    }
    if go.error.is_some() {
        assert!(
            ours.error.is_some(),
            "{what}: Go rejects the archive, imgscan reads it\nimgscan: {ours:#?}\ngo: {go:#?}\ntar: {}",
            hex(&tar[..tar.len().min(4096)])
        );
    }
    (ours, go)
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    if !b.starts_with(&[0x1f, 0x8b]) {
        return b.to_vec();
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn looks_like_tar(b: &[u8]) -> bool {
    b.len() >= BLOCK && b.get(257..262) == Some(&b"ustar"[..])
}

/// Every layer of the fixtures, and the docker-archive itself, reads the same.
#[test]
fn fixture_layers_read_as_go_reads_them() {
    let outer = std::fs::read(root().join("testdata/sample-docker.tar")).unwrap();
    let (ours, _) = compare("testdata/sample-docker.tar", &outer);
    assert!(ours.error.is_none() && ours.lines.len() > 10);
    let mut layers = 0;
    let mut r = TarReader::new(Streaming::new(&outer[..]));
    while let Some(h) = r.next_header().unwrap() {
        let mut data = Vec::new();
        r.data().read_to_end(&mut data).unwrap();
        let data = gunzip(&data);
        if looks_like_tar(&data) {
            let what = format!("sample-docker.tar:{}", String::from_utf8_lossy(&h.path));
            let (ours, _) = compare(&what, &data);
            assert!(ours.error.is_none(), "{what}: {:?}", ours.error);
            layers += 1;
        }
    }
    assert!(layers >= 4, "only {layers} layers in sample-docker.tar");
    let mut blobs = 0;
    let dir = root().join("testdata/sample/oci/blobs/sha256");
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let data = gunzip(&std::fs::read(&path).unwrap());
        if looks_like_tar(&data) {
            let (ours, _) = compare(&path.display().to_string(), &data);
            assert!(ours.error.is_none(), "{}: {:?}", path.display(), ours.error);
            blobs += 1;
        }
    }
    assert!(blobs >= 3, "only {blobs} layer blobs in testdata/sample");
}

// Raw headers, written byte by byte: the hostile cases the `tar` crate will
// not write.

/// A ustar header block (checksum written by [`seal`]).
fn raw(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name);
    octal(&mut b, 100, 8, 0o644);
    octal(&mut b, 108, 8, 0);
    octal(&mut b, 116, 8, 0);
    octal(&mut b, 124, 12, size);
    octal(&mut b, 136, 12, 0);
    b[156] = typeflag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b
}

fn gnu(mut b: [u8; BLOCK]) -> [u8; BLOCK] {
    b[257..265].copy_from_slice(b"ustar  \0");
    b
}

fn octal(b: &mut [u8], at: usize, width: usize, v: u64) {
    let s = format!("{v:0w$o}\0", w = width - 1);
    b[at..at + width].copy_from_slice(s.as_bytes());
}

/// Writes a correct (unsigned) checksum.
fn seal(mut b: [u8; BLOCK]) -> [u8; BLOCK] {
    reseal(&mut b);
    b
}

fn reseal(b: &mut [u8]) {
    b[148..156].fill(b' ');
    let sum: u32 = b[..BLOCK].iter().map(|v| u32::from(*v)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// A sealed header followed by `data`, padded.
fn entry(b: [u8; BLOCK], data: &[u8]) -> Vec<u8> {
    let mut v = seal(b).to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().next_multiple_of(BLOCK), 0);
    v
}

fn pax_data(records: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3;
        let mut n = body + body.to_string().len();
        if n.to_string().len() != body.to_string().len() {
            n = body + n.to_string().len();
        }
        out.extend_from_slice(format!("{n} ").as_bytes());
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

fn ext(typeflag: u8, data: &[u8]) -> Vec<u8> {
    entry(raw(b"PaxHeaders/x", typeflag, data.len() as u64), data)
}

fn pax(records: &[(&[u8], &[u8])]) -> Vec<u8> {
    ext(b'x', &pax_data(records))
}

fn gnu_long(typeflag: u8, name: &[u8]) -> Vec<u8> {
    entry(
        gnu(raw(b"././@LongLink", typeflag, name.len() as u64)),
        name,
    )
}

fn end(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut v = parts.concat();
    v.extend_from_slice(&[0; 2 * BLOCK]);
    v
}

fn setuid_su() -> Vec<u8> {
    let mut b = raw(b"usr/bin/su", b'0', 4);
    octal(&mut b, 100, 8, 0o104755);
    entry(b, b"\x7fELF")
}

fn file(name: &[u8]) -> Vec<u8> {
    entry(raw(name, b'0', 0), b"")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Both read it, identically.
    Same,
    /// Go rejects it (and so does imgscan).
    GoRejects,
    /// Go reads it; imgscan refuses it as ambiguous.
    Ambiguous,
}

fn hostile() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let su = setuid_su();
    let n = su.len() as u64;
    let mut v = Vec::new();
    for t in [b'1', b'2', b'3', b'4', b'5', b'6'] {
        let mut with_size = entry(raw(b"innocent", t, n), b"");
        with_size.extend_from_slice(&su);
        v.push(("header-only type with a size", end(&[with_size]), Same));
    }
    let ns = n.to_string();
    v.push((
        "symlink with a PAX size",
        end(&[
            pax(&[(b"size", ns.as_bytes())]),
            entry(raw(b"l", b'2', 0), b""),
            su.clone(),
        ]),
        Same,
    ));
    let second = entry(raw(b"manifest.json", b'0', 2), b"[]");
    v.push((
        "docker-archive: a second manifest.json behind a symlink",
        end(&[
            entry(raw(b"manifest.json", b'0', 2), b"{}"),
            entry(raw(b"layer.tar", b'2', second.len() as u64), b""),
            second,
        ]),
        Same,
    ));
    let l = || gnu_long(b'L', b"from/gnu\0junk");
    let k = || gnu_long(b'K', b"gnu-target");
    let x = || pax(&[(b"path", b"from/pax"), (b"linkpath", b"pax-target")]);
    let sym = || entry(raw(b"short", b'2', 0), b"");
    v.push((
        "GNU long name before PAX path",
        end(&[l(), k(), x(), sym()]),
        Same,
    ));
    v.push((
        "PAX path before GNU long name",
        end(&[x(), l(), k(), sym()]),
        Same,
    ));
    v.push((
        "empty GNU long name",
        end(&[l(), gnu_long(b'L', b"\0"), x(), sym()]),
        Same,
    ));
    let g = pax_data(&[(b"path", b"global/name"), (b"SCHILY.xattr.user.a", b"1")]);
    v.push((
        "global header after x and L",
        end(&[
            pax(&[(b"path", b"usr/bin/su"), (b"uid", b"0")]),
            gnu_long(b'L', b"usr/bin/sudo"),
            ext(b'g', &g),
            file(b"harmless"),
        ]),
        Same,
    ));
    v.push((
        "global header with a bad uid",
        end(&[ext(b'g', &pax_data(&[(b"uid", b"x")])), file(b"a")]),
        Same,
    ));
    v.push((
        "global header with a bad uid and a path",
        end(&[
            ext(b'g', &pax_data(&[(b"uid", b"x"), (b"path", b"p")])),
            file(b"a"),
        ]),
        Ambiguous,
    ));
    v.push((
        "x then end of archive",
        end(&[file(b"a"), pax(&[(b"path", b"b")])]),
        Same,
    ));
    v.push((
        "GNU.sparse.name on a non-sparse member",
        end(&[pax(&[(b"GNU.sparse.name", b"usr/bin/su")]), file(b"a")]),
        Same,
    ));
    v.push((
        "unknown GNU sparse version",
        end(&[
            pax(&[
                (b"GNU.sparse.major", b"2"),
                (b"GNU.sparse.map", b"0,1"),
                (b"GNU.sparse.name", b"usr/bin/su"),
            ]),
            file(b"a"),
        ]),
        Same,
    ));
    v.push((
        "PAX GNU sparse 0.1",
        end(&[
            pax(&[
                (b"GNU.sparse.major", b"0"),
                (b"GNU.sparse.minor", b"1"),
                (b"GNU.sparse.numblocks", b"1"),
                (b"GNU.sparse.map", b"0,3"),
                (b"GNU.sparse.realsize", b"8"),
                (b"GNU.sparse.name", b"usr/bin/su"),
            ]),
            entry(raw(b"a", b'0', 3), b"abc"),
        ]),
        Ambiguous,
    ));
    v.push((
        "PAX GNU sparse 0.0",
        end(&[
            pax(&[
                (b"GNU.sparse.size", b"3"),
                (b"GNU.sparse.numblocks", b"1"),
                (b"GNU.sparse.offset", b"0"),
                (b"GNU.sparse.numbytes", b"3"),
            ]),
            entry(raw(b"a", b'0', 3), b"abc"),
        ]),
        Ambiguous,
    ));
    v.push((
        "misordered GNU sparse 0.0 records",
        end(&[pax(&[(b"GNU.sparse.numbytes", b"3")]), file(b"a")]),
        GoRejects,
    ));
    let mut s = gnu(raw(b"sparse", b'S', 3));
    s[386..398].copy_from_slice(b"00000000000\0");
    s[398..410].copy_from_slice(b"00000000003\0");
    octal(&mut s, 483, 12, 8);
    v.push(("old GNU sparse", end(&[entry(s, b"abc")]), Ambiguous));
    let mut d = entry(raw(b"d/", 0, n), b"");
    d.extend_from_slice(&su);
    v.push(("NUL typeflag with a trailing slash", end(&[d]), Same));
    v.push((
        "'0' typeflag with a trailing slash",
        end(&[entry(raw(b"f/", b'0', 3), b"abc")]),
        Same,
    ));
    let mut v7 = raw(b"f/", 0, 3);
    v7[257..265].fill(0);
    v.push((
        "V7 NUL typeflag with a trailing slash",
        end(&[entry(v7, b"")]),
        Same,
    ));
    let mut star = raw(b"name", b'0', 0);
    star[345..476].fill(b'p');
    star[476..500].copy_from_slice(b"00000000000\x0000000000000\0");
    v.push(("ustar 155-byte prefix", end(&[entry(star, b"")]), Same));
    star[508..512].copy_from_slice(b"tar\0");
    v.push(("STAR 131-byte prefix", end(&[entry(star, b"")]), Same));
    star[476] = b'x';
    v.push((
        "STAR atime not a number",
        end(&[entry(star, b"")]),
        GoRejects,
    ));
    let mut g1 = gnu(raw(b"name", b'0', 0));
    g1[345..369].copy_from_slice(b"00000000000\x0000000000000\0");
    v.push(("GNU: no prefix", end(&[entry(g1, b"")]), Same));
    g1[345..369].fill(0);
    g1[345..348].copy_from_slice(b"pre");
    v.push((
        "GNU: pre-Go-1.8 prefix fallback",
        end(&[entry(g1, b"")]),
        Same,
    ));
    g1[263..265].copy_from_slice(b"00");
    g1[329] = b'x';
    v.push((
        "'ustar ' with version 00 is V7",
        end(&[entry(g1, b"")]),
        Same,
    ));
    let mut signed = raw(b"\xc3\xa9t\xc3\xa9", b'0', 0);
    signed[148..156].fill(b' ');
    let sum: i32 = signed.iter().map(|v| i32::from(*v as i8)).sum();
    signed[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    v.push(("signed checksum", end(&[signed.to_vec()]), Same));
    let mut badsum = seal(raw(b"a", b'0', 0));
    badsum[150] = b' ';
    v.push((
        "checksum with a space inside",
        end(&[badsum.to_vec()]),
        GoRejects,
    ));
    let mut m = raw(b"a", b'0', 0);
    m[100..108].copy_from_slice(b"755 abc\0");
    v.push(("mode `755 abc`", end(&[entry(m, b"")]), GoRejects));
    m[100..108].copy_from_slice(b"4755\0abc");
    v.push(("mode cut at a NUL", end(&[entry(m, b"")]), Same));
    m[100..108].copy_from_slice(&[0xff; 8]);
    v.push(("negative mode", end(&[entry(m, b"")]), Ambiguous));
    let mut mt = raw(b"a", b'0', 0);
    mt[136..148].copy_from_slice(b"1 2\0\0\0\0\0\0\0\0\0");
    v.push(("mtime not a number", end(&[entry(mt, b"")]), GoRejects));
    let mut dm = raw(b"a", b'0', 0);
    dm[329] = b'9';
    v.push(("devmajor not octal", end(&[entry(dm, b"")]), GoRejects));
    dm[257..265].fill(0);
    v.push(("V7 has no devmajor", end(&[entry(dm, b"")]), Same));
    let mut b256 = raw(b"a", b'0', 0);
    b256[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
    v.push(("base-256 size", end(&[entry(b256, b"abc")]), Same));
    b256[124..136].fill(0xff);
    v.push(("negative size", end(&[entry(b256, b"")]), GoRejects));
    v.push((
        "negative PAX size",
        end(&[pax(&[(b"size", b"-1")]), file(b"a")]),
        GoRejects,
    ));
    v.push((
        "negative PAX uid",
        end(&[pax(&[(b"uid", b"-1")]), file(b"a")]),
        Ambiguous,
    ));
    let recs = |r: &[u8]| end(&[ext(b'x', r), file(b"a")]);
    v.push(("PAX NUL padding", recs(b"11 path=xy\n\0\0\0\0"), GoRejects));
    v.push(("PAX NUL in path", recs(b"11 path=\0y\n"), GoRejects));
    v.push(("PAX NUL in key", recs(b"9 a\0b=yy\n"), GoRejects));
    v.push(("PAX NUL in another value", recs(b"9 user=\0\n"), Same));
    v.push(("PAX empty key", recs(b"7 =yyy\n"), GoRejects));
    v.push(("PAX length with a sign", recs(b"+11 path=x\n"), Same));
    v.push(("PAX length past the end", recs(b"99 path=x\n"), GoRejects));
    v.push((
        "PAX duplicate, last empty",
        recs(b"10 path=b\n8 path=\n"),
        Same,
    ));
    v.push((
        "PAX duplicate, last wins",
        recs(b"8 path=\n10 path=b\n"),
        Same,
    ));
    v.push(("PAX uid with a sign", recs(b"10 uid=+7\n"), Same));
    v.push(("PAX uid not a number", recs(b"10 uid=7x\n"), GoRejects));
    v.push(("PAX mtime not a time", recs(b"13 mtime=1.x\n"), GoRejects));
    v.push((
        "PAX duplicate xattrs",
        recs(b"25 SCHILY.xattr.user.b=1\n25 SCHILY.xattr.user.a=2\n25 SCHILY.xattr.user.b=3\n"),
        Same,
    ));
    v.push((
        "PAX empty capability",
        recs(b"37 SCHILY.xattr.security.capability=\n"),
        Same,
    ));
    let big = vec![b'a'; (1 << 20) + 1];
    v.push((
        "GNU long name over 1 MiB",
        end(&[gnu_long(b'L', &big), file(b"a")]),
        GoRejects,
    ));
    let pd = pax_data(&[(b"path", b"usr/bin/su")]);
    v.push((
        "Solaris X is a member",
        end(&[entry(raw(b"x", b'X', pd.len() as u64), &pd), file(b"a")]),
        Same,
    ));
    for t in [b'7', b'D', b'V', b'M'] {
        v.push((
            "a type runtimes refuse",
            end(&[entry(raw(b"a", t, 1), b"z")]),
            Same,
        ));
    }
    let mut zero_then = file(b"a");
    zero_then.extend_from_slice(&[0; BLOCK]);
    zero_then.extend_from_slice(&su);
    v.push(("zero block then a header", zero_then, GoRejects));
    let mut one_zero = file(b"a");
    one_zero.extend_from_slice(&[0; BLOCK]);
    v.push(("one zero block then the end", one_zero, Same));
    let padded = entry(raw(b"a", b'0', 3), b"abc");
    v.push(("end inside padding", padded[..BLOCK + 100].to_vec(), Same));
    v.push(("end inside data", padded[..BLOCK + 2].to_vec(), GoRejects));
    v.push(("end inside a header", padded[..100].to_vec(), GoRejects));
    v.push((
        "non-UTF-8 names",
        end(&[file(b"usr/bin/\xff"), file(b"usr/bin/\xfe")]),
        Ambiguous,
    ));
    let mut lt = raw(b"l", b'2', 0);
    lt[157..160].copy_from_slice(b"\xfe/x");
    v.push(("non-UTF-8 link target", end(&[entry(lt, b"")]), Ambiguous));
    let mut fl = raw(b"f", b'0', 0);
    fl[157] = 0xff;
    v.push((
        "a file's link field is not a path",
        end(&[entry(fl, b"")]),
        Same,
    ));
    v
}

/// One hand-written archive per divergence class: each reads as Go reads it, or is refused as expected.
#[test]
fn hostile_archives_read_as_go_reads_them() {
    for (what, tar, expect) in hostile() {
        let (ours, go) = compare(what, &tar);
        let got = match (&ours.error, &go.error) {
            (None, None) => Expect::Same,
            (Some(_), Some(_)) => Expect::GoRejects,
            (Some(e), None) if e.starts_with("ambiguous image: ") => Expect::Ambiguous,
            _ => panic!("{what}: imgscan {:?}, go {:?}", ours.error, go.error),
        };
        assert_eq!(got, expect, "{what}: imgscan {ours:#?}, go {go:#?}");
        if expect == Expect::Same {
            assert!(!ours.lines.is_empty(), "{what}: no members");
        }
    }
}

/// A small deterministic PRNG (splitmix64): the same cases every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Valid archives the mutations start from, written with the `tar` crate.
fn bases() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for gnu_headers in [true, false] {
        let mut b = tar::Builder::new(Vec::new());
        let header = |kind, size| {
            let mut h = if gnu_headers {
                tar::Header::new_gnu()
            } else {
                tar::Header::new_ustar()
            };
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(0o755);
            h
        };
        let mut h = header(tar::EntryType::Directory, 0);
        b.append_data(&mut h, "usr/bin/", &b""[..]).unwrap();
        let mut h = header(tar::EntryType::Regular, 5);
        h.set_mode(0o4755);
        b.append_data(&mut h, "usr/bin/su", &b"hello"[..]).unwrap();
        let mut h = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "usr/bin/sh", "busybox").unwrap();
        let mut h = header(tar::EntryType::Link, 0);
        b.append_link(&mut h, "usr/bin/su2", "usr/bin/su").unwrap();
        b.append_pax_extensions([
            (
                "SCHILY.xattr.security.capability",
                &b"\x01\x00\x00\x02\x00\x20\x00\x00"[..],
            ),
            ("uid", &b"1000"[..]),
        ])
        .unwrap();
        let mut h = header(tar::EntryType::Regular, 600);
        b.append_data(&mut h, "usr/bin/ping", &[7u8; 600][..])
            .unwrap();
        let long = format!("opt/{}/tool", "x".repeat(150));
        let mut h = header(tar::EntryType::Regular, 3);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let mut h = header(tar::EntryType::Fifo, 0);
        b.append_data(&mut h, "run/fifo", &b""[..]).unwrap();
        out.push(b.into_inner().unwrap());
    }
    out
}

fn valid_checksum(b: &[u8]) -> bool {
    let field: String = b[148..156]
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| char::from(*c))
        .collect();
    let sum: u32 = b[..BLOCK]
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*v)
            }
        })
        .sum();
    u32::from_str_radix(field.trim_matches(|c| c == ' ' || c == '\0'), 8) == Ok(sum)
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut t = base.to_vec();
    let headers: Vec<usize> = (0..t.len() / BLOCK)
        .map(|i| i * BLOCK)
        .filter(|&o| t[o..o + BLOCK].iter().any(|b| *b != 0) && valid_checksum(&t[o..o + BLOCK]))
        .collect();
    for _ in 0..1 + rng.below(3) {
        let h = headers[rng.below(headers.len())];
        match rng.below(11) {
            9 | 10 => {
                // An extension header spliced in before a header.
                const KEYS: [&[u8]; 12] = [
                    b"path",
                    b"linkpath",
                    b"size",
                    b"uid",
                    b"mtime",
                    b"GNU.sparse.name",
                    b"GNU.sparse.major",
                    b"GNU.sparse.minor",
                    b"GNU.sparse.map",
                    b"GNU.sparse.offset",
                    b"SCHILY.xattr.security.capability",
                    b"SCHILY.xattr.user.x",
                ];
                const VALUES: [&[u8]; 10] = [
                    b"", b"0", b"1", b"-1", b"+3", b"512", b"1.5", b"a/b/", b"\xff", b"0,1",
                ];
                let recs: Vec<(&[u8], &[u8])> = (0..1 + rng.below(3))
                    .map(|_| (KEYS[rng.below(KEYS.len())], VALUES[rng.below(VALUES.len())]))
                    .collect();
                let name = VALUES[rng.below(VALUES.len())];
                let piece = match rng.below(4) {
                    0 => ext(b'g', &pax_data(&recs)),
                    1 => gnu_long(b'L', name),
                    2 => gnu_long(b'K', name),
                    _ => pax(&recs),
                };
                t.splice(h..h, piece);
                break;
            }
            0 | 1 => {
                // A byte anywhere in a header, the checksum fixed or not.
                let at = h + rng.below(BLOCK);
                t[at] = rng.next() as u8;
                if rng.below(4) != 0 {
                    reseal(&mut t[h..]);
                }
            }
            2 => {
                let size = [0, 1, 3, 511, 512, 513, 1024, 4096, rng.next() % 5000][rng.below(9)];
                octal(&mut t, h + 124, 12, size);
                reseal(&mut t[h..]);
            }
            3 => {
                const TYPES: &[u8] = b"\x000123456789xgLKSDXVMAN";
                t[h + 156] = TYPES[rng.below(TYPES.len())];
                reseal(&mut t[h..]);
            }
            4 => {
                const MAGICS: [&[u8; 8]; 5] = [
                    b"ustar\x0000",
                    b"ustar  \0",
                    b"ustar 00",
                    b"\0\0\0\0\0\0\0\0",
                    b"ustar\x00 \0",
                ];
                t[h + 257..h + 265].copy_from_slice(MAGICS[rng.below(MAGICS.len())]);
                if rng.below(3) == 0 {
                    t[h + 508..h + 512].copy_from_slice(b"tar\0");
                }
                reseal(&mut t[h..]);
            }
            5 => {
                // A name byte: a slash, a NUL, a non-UTF-8 byte.
                let at = h + rng.below(100);
                t[at] = [b'/', 0, 0xff, b'a'][rng.below(4)];
                reseal(&mut t[h..]);
            }
            6 => {
                let at = rng.below(t.len());
                t.truncate(at);
                break;
            }
            7 => {
                // A numeric field garbled in a way Go parses or not.
                let fields: [(usize, usize); 7] = [
                    (100, 8),
                    (108, 8),
                    (116, 8),
                    (124, 12),
                    (136, 12),
                    (329, 8),
                    (337, 8),
                ];
                let (at, w) = fields[rng.below(fields.len())];
                let junk: [&[u8]; 6] = [b" 1 2", b"\x80", b"\xff", b"   7", b"9", b"\0\x001"];
                let j = junk[rng.below(junk.len())];
                let at = h + at + rng.below(w.saturating_sub(j.len()).max(1));
                t[at..at + j.len()].copy_from_slice(j);
                reseal(&mut t[h..]);
            }
            _ => {
                // A whole block zeroed.
                let b = rng.below(t.len() / BLOCK) * BLOCK;
                t[b..b + BLOCK].fill(0);
            }
        }
    }
    t
}

/// Seeded mutations of valid archives: imgscan never reads one differently from Go.
#[test]
fn mutated_archives_read_as_go_reads_them() {
    const CASES: usize = 1000;
    let bases = bases();
    let mut rng = Rng(0x5eed_1a4e_u64);
    let (mut both, mut go_rejects, mut stricter) = (0, 0, 0);
    for case in 0..CASES {
        let base = &bases[case % bases.len()];
        let t = mutate(&mut rng, base);
        let (ours, go) = compare(&format!("mutated case {case}"), &t);
        match (ours.error.is_some(), go.error.is_some()) {
            (false, false) => both += 1,
            (true, true) => go_rejects += 1,
            _ => stricter += 1,
        }
    }
    eprintln!(
        "{CASES} mutated archives: {both} read alike, {go_rejects} rejected by both, {stricter} refused by imgscan only"
    );
    // The mutations must exercise both outcomes, or they prove little.
    assert!(
        both > CASES / 10 && go_rejects > CASES / 10,
        "read {both}, rejected {go_rejects}, refused {stricter}"
    );
}
