//! Path resolution in the final filesystem (`fs::FinalFs`): layers of fuzzed
//! members (files, directories, symlinks with any target, hard links,
//! whiteouts, opaque markers) applied in order, then lookups of fuzzed
//! paths (`get`, `canonical`, `resolve`, `read`, `children`, `select`) and
//! every check over the result.
//!
//! Names are drawn from a few components (`a`, `b`, `..`, `etc`, ...) so
//! that members collide, replace each other and resolve through each
//! other's symlinks.
//!
//! Invariants: no panic or hang; `iter` is sorted without duplicates and
//! agrees with `get`, `children` and `select`; what `resolve` returns is
//! what `get` finds at the returned path; `read` is `resolve`'s content;
//! applying the same layers twice gives the same filesystem.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use scanner::checks::run_all;
use scanner::config::ImageConfig;
use scanner::fs::{FinalFs, Node};
use scanner::layer::{Content, Entry, LayerIndex, normalize};
use scanner::tarstream::Kind;

const COMPONENTS: &[&str] = &[
    "a",
    "b",
    "c",
    "..",
    ".",
    "",
    "etc",
    "passwd",
    "bin",
    "usr",
    "sudoers.d",
    "x",
];

/// A path from component choices; `absolute` adds a leading `/`.
#[derive(Arbitrary, Debug, Clone)]
struct P {
    absolute: bool,
    parts: Vec<u8>,
}

impl P {
    fn text(&self) -> String {
        let parts: Vec<&str> = self
            .parts
            .iter()
            .take(12)
            .map(|b| COMPONENTS[usize::from(*b) % COMPONENTS.len()])
            .collect();
        let s = parts.join("/");
        if self.absolute { format!("/{s}") } else { s }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    File {
        path: P,
        mode: u16,
        uid: u8,
        caps: bool,
        content: Option<Vec<u8>>,
    },
    Dir {
        path: P,
        mode: u16,
        uid: u8,
    },
    Symlink {
        path: P,
        target: P,
    },
    Hardlink {
        path: P,
        target: P,
        mode: u16,
    },
    Other {
        path: P,
        kind: u8,
    },
    Whiteout(P),
    Opaque(P),
}

#[derive(Arbitrary, Debug)]
struct Input {
    layers: Vec<Vec<Op>>,
    queries: Vec<(P, bool)>,
}

fn entry(path: &P, kind: Kind, mode: u16, uid: u8) -> Entry {
    Entry {
        path: normalize(path.text().as_bytes()).into(),
        kind,
        mode: u32::from(mode) & 0o7777,
        uid: u64::from(uid),
        gid: 0,
        size: 0,
        link: None,
        caps: None,
        content: None,
    }
}

fn layer(ops: &[Op]) -> LayerIndex {
    let mut entries = Vec::new();
    let (mut whiteouts, mut opaques) = (Vec::new(), Vec::new());
    for op in ops.iter().take(64) {
        match op {
            Op::File {
                path,
                mode,
                uid,
                caps,
                content,
            } => {
                let mut e = entry(path, Kind::File, *mode, *uid);
                if *caps {
                    e.caps = Some(Box::new(*b"\x00\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"));
                }
                if let Some(c) = content {
                    e.size = c.len() as u64;
                    e.content = Some(Box::new(Content {
                        data: c.clone(),
                        truncated: false,
                    }));
                }
                entries.push(e);
            }
            Op::Dir { path, mode, uid } => entries.push(entry(path, Kind::Dir, *mode, *uid)),
            Op::Symlink { path, target } => {
                let mut e = entry(path, Kind::Symlink, 0o777, 0);
                e.link = Some(target.text().into());
                entries.push(e);
            }
            Op::Hardlink { path, target, mode } => {
                let mut e = entry(path, Kind::Hardlink, *mode, 0);
                e.link = Some(normalize(target.text().as_bytes()).into());
                entries.push(e);
            }
            Op::Other { path, kind } => {
                let kind = [Kind::CharDevice, Kind::BlockDevice, Kind::Fifo, Kind::Other]
                    [usize::from(*kind) % 4];
                entries.push(entry(path, kind, 0o644, 0));
            }
            Op::Whiteout(p) => whiteouts.push(normalize(p.text().as_bytes()).into()),
            Op::Opaque(p) => opaques.push(normalize(p.text().as_bytes()).into()),
        }
    }
    let mut idx = LayerIndex::from_entries(entries);
    idx.whiteouts = whiteouts;
    idx.opaques = opaques;
    idx
}

fn build(input: &Input) -> FinalFs {
    let mut fs = FinalFs::new();
    for (i, ops) in input.layers.iter().take(6).enumerate() {
        fs.apply(i, layer(ops));
    }
    fs
}

fn listing(fs: &FinalFs) -> Vec<(String, Node)> {
    fs.iter().map(|(p, n)| (p, n.clone())).collect()
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fuzz_target!(|input: Input| {
    let fs = build(&input);
    let all: Vec<(String, &Node)> = fs.iter().collect();
    for w in all.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "iter not sorted or duplicated: {:?} {:?}",
            w[0].0,
            w[1].0
        );
    }
    assert_eq!(all.len(), fs.len());
    for (p, n) in &all {
        let got = fs
            .get(p)
            .unwrap_or_else(|| panic!("get({p:?}) finds nothing iter listed"));
        assert!(std::ptr::eq(got, *n), "get({p:?}) is another node");
        for (name, c) in fs.children(p) {
            let got = fs.get(&join(p, name));
            assert!(
                got.is_some_and(|g| std::ptr::eq(g, c)),
                "child {name:?} of {p:?}"
            );
        }
    }
    for (name, c) in fs.children("") {
        assert!(
            fs.get(name).is_some_and(|g| std::ptr::eq(g, c)),
            "child {name:?} of the root"
        );
    }
    let dirs = fs.select(|_, n| n.kind == Kind::Dir);
    let want: Vec<&(String, &Node)> = all.iter().filter(|(_, n)| n.kind == Kind::Dir).collect();
    assert_eq!(dirs.len(), want.len());
    for (a, b) in dirs.iter().zip(want) {
        assert_eq!(&a.0, &b.0);
    }
    for (q, follow) in input.queries.iter().take(16) {
        let q = q.text();
        if let Some(c) = fs.canonical(&q, *follow) {
            assert!(
                c.is_empty() || c.split('/').all(|p| !p.is_empty() && p != "." && p != ".."),
                "canonical({q:?}) = {c:?} is not canonical"
            );
        }
        let resolved = fs.resolve(&q);
        if let Some((p, n)) = &resolved {
            assert!(
                fs.get(p).is_some_and(|g| std::ptr::eq(g, *n)),
                "resolve({q:?}) = {p:?}"
            );
        }
        assert_eq!(
            fs.read(&q).map(|c| c as *const Content),
            resolved
                .and_then(|(_, n)| n.content())
                .map(|c| c as *const Content)
        );
    }
    let again = build(&input);
    assert_eq!(
        listing(&fs),
        listing(&again),
        "the same layers applied twice differ"
    );
    assert_eq!(fs.warnings(), again.warnings());
    let _ = run_all(&fs, &ImageConfig::default(), &[]);
});
