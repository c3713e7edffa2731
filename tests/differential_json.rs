//! imgscan's reading of image JSON against Go's `encoding/json` (the Go
//! oracle, `goracle json`): hostile documents and seeded key-case/duplicate
//! variants of real-shaped configs, manifests, indexes and docker-archive
//! `manifest.json`.
//!
//! For every document: if imgscan accepts it, it reads what Go reads; if Go
//! rejects it, imgscan rejects it too. (imgscan may refuse more: ambiguous
//! keys, bad digests.)

use scanner::Error;
use scanner::view::{self, Kind};
use serde_json::Value;

use crate::go_oracle;

const SHA_A: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const SHA_B: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
const SHA_C: &str = "sha256:6d3df9a8b5b2dc6e06fe6db8cc05b36c8a48deaa3ffb41cc6ca7ec3a8f1a3f31";

/// imgscan's reading, through the parsers a scan uses.
fn imgscan(kind: &str, doc: &[u8]) -> Result<Value, Error> {
    view::view(Kind::parse(kind).expect("kind"), doc)
}

/// Go's readings of many documents, one oracle process: `Err` is Go's error.
fn go_many(docs: &[(&str, Vec<u8>)]) -> Vec<Result<Value, String>> {
    let mut input = Vec::new();
    for (kind, doc) in docs {
        input.extend_from_slice(kind.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(&u32::try_from(doc.len()).unwrap().to_be_bytes());
        input.extend_from_slice(doc);
    }
    let out = go_oracle::run(&["json", "loop"], &input);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), docs.len(), "one answer per document:\n{out}");
    lines
        .iter()
        .map(|l| match l.strip_prefix("error: ") {
            Some(e) => Err(e.to_owned()),
            None => Ok(serde_json::from_str(l).expect("oracle prints JSON")),
        })
        .collect()
}

#[derive(Default, Debug)]
struct Tally {
    same: usize,
    both_refuse: usize,
    only_imgscan_refuses: usize,
    ambiguous: usize,
}

/// Checks the rule on every document; returns what happened, for the caller
/// to assert the corpus was meaningful.
fn check_all(docs: &[(&str, Vec<u8>)]) -> Tally {
    let go = go_many(docs);
    let mut t = Tally::default();
    for ((kind, doc), go) in docs.iter().zip(go) {
        let ours = imgscan(kind, doc);
        let shown = String::from_utf8_lossy(doc);
        match (&ours, &go) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "{kind} read differently from Go:\n{shown}");
                t.same += 1;
            }
            (Ok(a), Err(e)) => {
                panic!("{kind}: Go rejects ({e}) but imgscan reads {a}:\n{shown}")
            }
            (Err(_), Err(_)) => t.both_refuse += 1,
            (Err(_), Ok(_)) => t.only_imgscan_refuses += 1,
        }
        if matches!(ours, Err(Error::Ambiguous { .. })) {
            t.ambiguous += 1;
        }
    }
    t
}

fn base_config(user_key: &str) -> String {
    format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"{user_key}":"app","ExposedPorts":{{"22/tcp":{{}}}},"Entrypoint":["/bin/sh","-c"],"Cmd":["sshd"]}},"rootfs":{{"type":"layers","diff_ids":["{SHA_A}","{SHA_B}"]}},"history":[{{"created_by":"ADD a"}},{{"created_by":"ENV x","empty_layer":true}},{{"created_by":"RUN b"}}]}}"#
    )
}

fn base_manifest() -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{SHA_C}","size":12}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{SHA_A}","size":3}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{SHA_B}","size":4}}]}}"#
    )
}

fn base_index() -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{SHA_A}","size":7,"platform":{{"architecture":"amd64","os":"linux"}},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{SHA_B}","size":8,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#
    )
}

fn base_docker_manifest() -> String {
    format!(
        r#"[{{"Config":"{}.json","RepoTags":["lab/app:v1"],"Layers":["a/layer.tar","b/layer.tar"]}}]"#,
        &SHA_C[7..]
    )
}

/// Hostile documents: each is checked against Go, and the ones runtimes
/// read differently from a naive reader are refused.
#[test]
fn hostile_documents_are_read_as_go_reads_them_or_refused() {
    let cfg = |s: &str| ("config", s.replace("DIFF", SHA_A).into_bytes());
    let table: Vec<(&str, Vec<u8>)> = vec![
        // The podman-runs-as-root case: two spellings of User.
        cfg(
            r#"{"config":{"User":"app","user":"0"},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
        ),
        cfg(
            r#"{"config":{"User":"app","User":"0"},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
        ),
        // A lone lowercase key is User to Go.
        cfg(r#"{"config":{"user":"0"},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#),
        cfg(r#"{"CONFIG":{"uSeR":"0"},"RootFS":{"Type":"layers","Diff_IDs":["DIFF"]}}"#),
        // Nested duplicates of rootfs and config.
        cfg(
            r#"{"config":{"User":"app"},"Config":{"User":"0"},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
        ),
        cfg(
            r#"{"rootfs":{"type":"layers","diff_ids":[]},"RootFS":{"type":"layers","diff_ids":["DIFF"]}}"#,
        ),
        cfg(r#"{"rootfs":{"type":"layers","diff_ids":[],"Diff_IDs":["DIFF"]}}"#),
        // Long s and Kelvin fold in every Go version; dotless i in some.
        cfg(
            "{\"config\":{\"U\u{17f}er\":\"0\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"DIFF\"]}}",
        ),
        cfg(
            "{\"config\":{\"User\":\"app\",\"u\u{17f}er\":\"0\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"DIFF\"]}}",
        ),
        cfg("{\"rootfs\":{\"type\":\"layers\",\"d\u{131}ff_ids\":[\"DIFF\"]}}"),
        // Escaped keys are unescaped before matching.
        cfg(r#"{"config":{"\u0055ser":"0"},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#),
        // Types Go refuses; strslice leniency; nulls.
        cfg(r#"{"config":{"User":5},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#),
        cfg(
            r#"{"config":{"Cmd":"/bin/sh","Entrypoint":null,"User":null},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
        ),
        cfg(r#"{"config":{"Cmd":[1]},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#),
        cfg(r#"{"config":{"Cmd":["a",null]},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#),
        cfg(
            r#"{"config":{"ExposedPorts":{"22/tcp":{},"22/tcp":{"x":1},"23/tcp":null}},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
        ),
        cfg(
            r#"{"config":{"ExposedPorts":{"22/tcp":1}},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
        ),
        cfg(r#"{"created":"not a time","rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#),
        cfg(r#"{"Size":"big","rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#),
        cfg(
            r#"{"history":[{"empty_layer":"yes"}],"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
        ),
        cfg(
            r#"{"history":[null,{"Created_By":"RUN x","EMPTY_LAYER":true}],"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
        ),
        // Syntax and text Go repairs or rejects.
        cfg(r#"{"rootfs":{"type":"layers","diff_ids":["DIFF"]}} trailing"#),
        cfg(r#"{"config":{"User":"\ud800"},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#),
        (
            "config",
            b"{\"config\":{\"User\":\"\xff\"},\"rootfs\":{}}".to_vec(),
        ),
        cfg(r#"{"unknown":1e999,"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#),
        // Manifests: Layers / layers, config / Config, sizes.
        (
            "manifest",
            base_manifest()
                .replacen("\"layers\"", "\"Layers\"", 1)
                .into_bytes(),
        ),
        (
            "manifest",
            base_manifest()
                .replacen("\"layers\":[", "\"Layers\":[],\"layers\":[", 1)
                .into_bytes(),
        ),
        (
            "manifest",
            base_manifest()
                .replacen("\"config\"", "\"CONFIG\"", 1)
                .replacen("\"digest\"", "\"Digest\"", 1)
                .into_bytes(),
        ),
        (
            "manifest",
            base_manifest()
                .replacen("\"size\":3", "\"size\":3.0", 1)
                .into_bytes(),
        ),
        (
            "manifest",
            base_manifest()
                .replacen("\"size\":3", "\"size\":\"3\"", 1)
                .into_bytes(),
        ),
        (
            "manifest",
            base_manifest()
                .replacen("\"size\":3", "\"size\":3,\"SIZE\":300", 1)
                .into_bytes(),
        ),
        // Indexes: platforms and annotations.
        (
            "index",
            base_index()
                .replacen("\"manifests\"", "\"Manifests\"", 1)
                .into_bytes(),
        ),
        (
            "index",
            base_index()
                .replacen("\"os\":\"linux\"", "\"OS\":\"linux\"", 1)
                .into_bytes(),
        ),
        (
            "index",
            base_index()
                .replacen(
                    "\"architecture\":\"amd64\"",
                    "\"architecture\":\"amd64\",\"Architecture\":\"arm64\"",
                    1,
                )
                .into_bytes(),
        ),
        (
            "index",
            base_index()
                .replacen(
                    "\"v1\"}",
                    "\"v1\",\"org.opencontainers.image.ref.name\":\"v2\"}",
                    1,
                )
                .into_bytes(),
        ),
        // docker-archive manifest.json.
        (
            "docker-manifest",
            base_docker_manifest()
                .replacen("\"Layers\"", "\"layers\"", 1)
                .into_bytes(),
        ),
        (
            "docker-manifest",
            base_docker_manifest()
                .replacen("\"Layers\":[", "\"Layers\":[],\"layers\":[", 1)
                .into_bytes(),
        ),
        (
            "docker-manifest",
            base_docker_manifest()
                .replacen("\"Config\"", "\"config\"", 1)
                .into_bytes(),
        ),
        (
            "docker-manifest",
            base_docker_manifest()
                .replacen("[\"lab/app:v1\"]", "\"lab/app:v1\"", 1)
                .into_bytes(),
        ),
        ("docker-manifest", b"{\"Config\":\"x\"}".to_vec()),
    ];
    let t = check_all(&table);
    assert!(t.same >= 10 && t.ambiguous >= 8, "{t:?}");

    // The cases the issue names, exactly.
    let user = |doc: &str| imgscan("config", doc.replace("DIFF", SHA_A).as_bytes());
    assert!(matches!(
        user(
            r#"{"config":{"User":"app","user":"0"},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#
        ),
        Err(Error::Ambiguous { .. })
    ));
    assert_eq!(
        user(r#"{"config":{"user":"0"},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#).unwrap()
            ["user"],
        "0"
    );
}

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Rewrites one key the ways Go folds (and some it does not).
fn mutate_key(key: &str, rng: &mut Rng) -> String {
    let mut out = String::new();
    for c in key.chars() {
        let r = rng.below(20);
        let c2 = match (c, r) {
            (c, 0..=3) if c.is_ascii_lowercase() => c.to_ascii_uppercase().to_string(),
            (c, 0..=3) if c.is_ascii_uppercase() => c.to_ascii_lowercase().to_string(),
            ('s' | 'S', 4) => "\u{17f}".into(),
            ('k' | 'K', 4) => "\u{212a}".into(),
            ('i' | 'I', 4) => "\u{131}".into(),
            ('i' | 'I', 5) => "\u{130}".into(),
            (c, 6) if c.is_ascii_alphabetic() => format!("\\u{:04x}", c as u32),
            (c, _) => c.to_string(),
        };
        out.push_str(&c2);
    }
    out
}

/// Splits the top-level members of a JSON object text into `"key":value`
/// strings (the base documents are written without spaces).
fn members(obj: &str) -> Vec<String> {
    let inner = &obj[1..obj.len() - 1];
    let (mut depth, mut in_str, mut esc, mut start) = (0i32, false, false, 0);
    let mut out = Vec::new();
    for (i, b) in inner.bytes().enumerate() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => {
                out.push(inner[start..i].to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner.is_empty() {
        out.push(inner[start..].to_owned());
    }
    out
}

/// A mutated copy of the JSON object text `obj`: keys recased or
/// refolded, members duplicated, nulled, retyped, unknown members added,
/// nested objects mutated in turn.
fn mutate_object(obj: &str, rng: &mut Rng, depth: usize) -> String {
    let mut ms = members(obj);
    let mut out: Vec<String> = Vec::new();
    for m in ms.drain(..) {
        let Some(colon) = m.find("\":") else {
            out.push(m);
            continue;
        };
        let (k, v) = (&m[1..colon], &m[colon + 2..]);
        let mut value = v.to_owned();
        if depth < 4 && value.starts_with('{') && rng.chance(60) {
            value = mutate_object(&value, rng, depth + 1);
        } else if depth < 4 && value.starts_with("[{") && rng.chance(50) {
            let items = members(&format!("{{{}}}", &value[1..value.len() - 1]));
            let items: Vec<String> = items
                .iter()
                .map(|it| {
                    if rng.chance(60) {
                        mutate_object(it, rng, depth + 1)
                    } else {
                        it.clone()
                    }
                })
                .collect();
            value = format!("[{}]", items.join(","));
        }
        let key = if rng.chance(25) {
            mutate_key(k, rng)
        } else {
            k.to_owned()
        };
        let value = match rng.below(30) {
            0 => "null".to_owned(),
            1 => "5".to_owned(),
            2 => "\"0\"".to_owned(),
            3 if value.starts_with('[') => "\"one\"".to_owned(),
            _ => value,
        };
        out.push(format!("\"{key}\":{value}"));
        if rng.chance(8) {
            // The same field again, under a folded or the same key.
            let k2 = if rng.chance(50) {
                mutate_key(k, rng)
            } else {
                k.to_owned()
            };
            let v2 = if v.starts_with('"') {
                "\"0\"".to_owned()
            } else {
                v.to_owned()
            };
            out.push(format!("\"{k2}\":{v2}"));
        }
    }
    if rng.chance(10) {
        out.push("\"Unknown_Key\":[1,{\"a\":null}]".to_owned());
    }
    if out.len() > 1 && rng.chance(15) {
        let (a, b) = (rng.below(out.len()), rng.below(out.len()));
        out.swap(a, b);
    }
    format!("{{{}}}", out.join(","))
}

/// Seeded key-case, fold, duplicate, null and type variants of every kind of
/// document: imgscan reads each as Go does, or refuses it.
#[test]
fn generated_variants_agree_with_go() {
    let mut rng = Rng(0x1a2b_3c4d_5e6f_7788);
    let mut docs: Vec<(&str, Vec<u8>)> = Vec::new();
    for i in 0..3000 {
        let (kind, base) = match i % 4 {
            0 => (
                "config",
                base_config(if i % 8 == 0 { "user" } else { "User" }),
            ),
            1 => ("manifest", base_manifest()),
            2 => ("index", base_index()),
            _ => ("docker-manifest", base_docker_manifest()),
        };
        let doc = if kind == "docker-manifest" {
            let inner = &base[1..base.len() - 1];
            format!("[{}]", mutate_object(inner, &mut rng, 1))
        } else {
            mutate_object(&base, &mut rng, 0)
        };
        docs.push((kind, doc.into_bytes()));
    }
    let t = check_all(&docs);
    eprintln!("{t:?}");
    assert!(t.same > 500, "too few documents both read: {t:?}");
    assert!(t.ambiguous > 100, "too few ambiguous documents: {t:?}");
    assert!(t.both_refuse > 50, "too few documents both refuse: {t:?}");
}
