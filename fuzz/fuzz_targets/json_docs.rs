//! The JSON documents of an image: the config (`config::ImageConfig::parse`),
//! an OCI `index.json`, manifests and nested indexes (through
//! `source::oci::resolve_oci`, whose document parser is private) and a
//! docker-archive `manifest.json` (`source::archive::resolve_docker`), served
//! from an in-memory container.
//!
//! Input: a mode byte, then up to three documents separated by the bytes
//! `0xff 0x00` (never in JSON). Every document is stored as a blob under its
//! own digest (`blobs/sha256/HEX` and `HEX.json`); in documents 0 and 1,
//! `@1@`/`@2@` are replaced by `sha256:HEX` of document 1/2 and `#1#`/`#2#`
//! by `HEX`, so that seeds can chain index → manifest → config with digests
//! that verify. Mode bits 0-1: config, OCI layout, docker-archive; bit 2:
//! ask for reference `sample`; bit 3: an explicit platform (linux/arm64).
//!
//! Invariants: no panic; the same documents resolve to the same plan (or
//! the same error) twice; a plan has one diff_id per layer.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use scanner::config::ImageConfig;
use scanner::digest::Digest;
use scanner::layer::{LayerIndex, LayerOptions};
use scanner::source::archive::resolve_docker;
use scanner::source::oci::resolve_oci;
use scanner::source::{Container, LayerPlan, Platform, Selection};

struct Blobs(BTreeMap<String, Vec<u8>>);

impl Container for Blobs {
    fn describe(&self) -> String {
        "the fuzz container".into()
    }
    fn exists(&self, path: &str) -> bool {
        self.0.contains_key(path)
    }
    fn read_small(&self, path: &str, limit: u64) -> scanner::Result<Vec<u8>> {
        match self.0.get(path) {
            Some(b) if b.len() as u64 <= limit => Ok(b.clone()),
            Some(_) => Err(scanner::Error::malformed(path, "too large")),
            None => Err(scanner::Error::malformed(path, "missing")),
        }
    }
    fn scan_layer(&self, _: &LayerPlan, _: &LayerOptions) -> scanner::Result<LayerIndex> {
        Ok(LayerIndex::default())
    }
}

fn replace(doc: &[u8], from: &str, to: &str) -> Vec<u8> {
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut out = Vec::with_capacity(doc.len());
    let mut i = 0;
    while i < doc.len() {
        if doc[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(doc[i]);
            i += 1;
        }
    }
    out
}

fn documents(data: &[u8]) -> Vec<Vec<u8>> {
    let mut docs: Vec<Vec<u8>> = Vec::new();
    let mut rest = data;
    while docs.len() < 2 {
        match rest.windows(2).position(|w| w == b"\xff\x00") {
            Some(i) => {
                docs.push(rest[..i].to_vec());
                rest = &rest[i + 2..];
            }
            None => break,
        }
    }
    docs.push(rest.to_vec());
    // Later documents first, so that earlier ones can name their digests.
    for i in (0..docs.len()).rev() {
        for j in i + 1..docs.len() {
            let d = Digest::sha256_of(&docs[j]);
            let full = replace(&docs[i], &format!("@{j}@"), &d.to_string());
            docs[i] = replace(&full, &format!("#{j}#"), d.hex());
        }
    }
    docs
}

fn run(mode: u8, docs: &[Vec<u8>]) -> String {
    let mut blobs = BTreeMap::new();
    for d in docs {
        let digest = Digest::sha256_of(d);
        blobs.insert(format!("blobs/sha256/{}", digest.hex()), d.clone());
        blobs.insert(format!("{}.json", digest.hex()), d.clone());
    }
    let reference = (mode & 4 != 0).then_some("sample");
    let sel = Selection {
        platform: if mode & 8 != 0 {
            Platform::new("linux", "arm64", None)
        } else {
            Platform::new("linux", "amd64", None)
        },
        platform_explicit: mode & 8 != 0,
    };
    let plan = match mode & 3 {
        0 | 3 => {
            return match ImageConfig::parse(&docs[0], "config") {
                Ok(c) => {
                    if let Some(h) = &c.layer_created_by {
                        assert_eq!(h.len(), c.diff_ids.len());
                    }
                    format!("{c:?} {}", c.platform())
                }
                Err(e) => e.to_string(),
            };
        }
        1 => {
            blobs.insert("index.json".into(), docs[0].clone());
            resolve_oci(&Blobs(blobs), reference, &sel, "oci-layout")
        }
        _ => {
            blobs.insert("manifest.json".into(), docs[0].clone());
            resolve_docker(&Blobs(blobs), reference)
        }
    };
    match plan {
        Ok(p) => {
            assert_eq!(
                p.config.diff_ids.len(),
                p.layers.len(),
                "a diff_id per layer"
            );
            for (i, l) in p.layers.iter().enumerate() {
                assert_eq!(l.index, i);
                assert_eq!(l.diff_id, p.config.diff_ids[i]);
            }
            format!("{p:?}")
        }
        Err(e) => e.to_string(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let docs = documents(rest);
    let first = run(mode, &docs);
    let second = run(mode, &docs);
    assert_eq!(first, second, "the same documents resolve differently");
});
