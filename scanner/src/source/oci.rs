//! OCI image layouts (`index.json`, `blobs/`), in a directory or an archive:
//! picking the image by reference and platform, and verifying the manifest
//! and config against their digests.
//!
//! # Runtime fidelity
//!
//! `index.json`, indexes and manifests (from a layout, an archive or a
//! registry) are read the way Go's `encoding/json` decodes them into
//! image-spec `specs-go/v1` `Index`, `Manifest`, `Descriptor` and `Platform`
//! (see [`crate::gojson`]): `"Layers"` is `layers`, `"MediaType"` is
//! `mediaType`; two keys for one field (which Go resolves to the last) make
//! the document ambiguous; a type Go refuses (`"size": "1"`) makes it
//! malformed. Whether a document is an index is decided on the keys as Go
//! maps them.
//!
//! An index entry is picked as containerd's `images.Manifest`
//! (`core/images/image.go`) picks it with `platforms.Default()` or the
//! `--platform` given: attestation entries (`unknown/unknown`) are skipped,
//! the best-ranked matching platform wins ([`Platform::best`]), entries
//! without a platform come last. A lone entry for another platform is
//! refused like any other mismatch (containerd: "no match for platform in
//! manifest"; moby and containers/image refuse it too), listing what the
//! index offers.

use std::collections::BTreeMap;

use serde::Deserialize;

pub use super::blob_path;
use super::{Container, LayerPlan, Plan, Platform, Selection, read_verified};
use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::gojson;

use super::media::{IMAGE_MANIFESTS as MANIFEST_TYPES, INDEXES as INDEX_TYPES};
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

pub use super::media::is_layer as is_layer_media_type;

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    /// Media type.
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    /// Digest.
    pub digest: String,
    /// Size.
    #[serde(default)]
    pub size: Option<i64>,
    /// Annotations.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform (index entries).
    #[serde(default)]
    pub platform: Option<RawPlatform>,
}

/// A platform object as in an index.
#[derive(Debug, Clone, Deserialize)]
pub struct RawPlatform {
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// OS.
    #[serde(default)]
    pub os: String,
    /// Variant.
    #[serde(default)]
    pub variant: Option<String>,
}

impl Descriptor {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    fn platform(&self) -> Option<Platform> {
        self.platform
            .as_ref()
            .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref()))
    }

    fn is_attestation(&self) -> bool {
        let p = self.platform.as_ref();
        super::media::is_attestation(
            p.map(|p| p.os.as_str()),
            p.map(|p| p.architecture.as_str()),
            self.annotation(super::media::REFERENCE_TYPE),
        )
    }

    /// The parsed digest.
    pub fn parsed_digest(&self) -> Result<Digest> {
        Digest::parse(&self.digest)
    }
}

#[derive(Deserialize)]
pub(crate) struct Index {
    #[serde(default)]
    pub(crate) manifests: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
pub(crate) struct Manifest {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    pub(crate) config: Descriptor,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// A manifest or index document, parsed and checked.
pub(crate) enum Document {
    /// An image index / manifest list: its entries.
    Index(Vec<Descriptor>),
    /// An image manifest.
    Manifest(Box<Manifest>),
}

/// Parses a verified manifest or index. `media_type` is the one the parent
/// descriptor gave, if any (the document's own `mediaType` is used otherwise).
pub(crate) fn parse_document(
    bytes: &[u8],
    media_type: Option<&str>,
    what: &str,
) -> Result<Document> {
    let json = gojson::canonical(bytes, &gojson::MANIFEST_OR_INDEX, what)?;
    let own = json
        .get("mediaType")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    if is_index(media_type.or(own.as_deref()), &json) {
        let child: Index = gojson::from_canonical(json, what)?;
        return Ok(Document::Index(child.manifests.unwrap_or_default()));
    }
    let manifest: Manifest = gojson::from_canonical(json, what)?;
    if let Some(v) = manifest.schema_version
        && v != 2
    {
        return Err(Error::malformed(
            what,
            format!("schemaVersion {v}, expected 2"),
        ));
    }
    if let Some(mt) = &manifest.media_type
        && !MANIFEST_TYPES.contains(&mt.as_str())
    {
        return Err(Error::not_an_image(
            what,
            format!("media type {mt} is not an image manifest"),
        ));
    }
    Ok(Document::Manifest(Box::new(manifest)))
}

fn ref_matches(d: &Descriptor, want: &str) -> bool {
    let names = [d.annotation(REF_NAME), d.annotation(CONTAINERD_NAME)];
    names.iter().flatten().any(|n| {
        *n == want || super::archive::normalize_tag(n) == super::archive::normalize_tag(want)
    }) || d.digest == want
}

fn describe_ref(d: &Descriptor) -> String {
    d.annotation(REF_NAME)
        .or_else(|| d.annotation(CONTAINERD_NAME))
        .map_or_else(|| d.digest.clone(), str::to_owned)
        .chars()
        .take(200)
        .collect()
}

/// Picks among index entries by platform, as containerd's `images.Manifest`
/// does with `platforms.Default()` (or the `--platform` given): attestation
/// entries (`unknown/unknown`) never, then the best-ranked entry whose
/// platform matches, then the first entry without a platform; an index
/// whose entries are all for other platforms is refused
/// ([`Error::NoSuchPlatform`], listing them), even with one entry.
pub(crate) fn pick_platform<'a>(
    entries: &[&'a Descriptor],
    sel: &Selection,
    what: &str,
) -> Result<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = entries
        .iter()
        .copied()
        .filter(|d| !d.is_attestation())
        .collect();
    // containers/image (podman, cri-o) matches an entry's os and
    // architecture as written (`platform_matcher.go` `MatchesPlatform`),
    // containerd after normalising them (`platforms.Normalize`: `AMD64`,
    // `x86_64`, `Linux`): an entry that matches only once normalised makes
    // them pick different images, or one of them none.
    if let Some((d, p)) = candidates.iter().find_map(|d| {
        let p = d.platform.as_ref()?;
        let n = d.platform()?;
        ((n.os != p.os || n.architecture != p.architecture) && sel.platform.matches(&n))
            .then_some((d, p))
    }) {
        return Err(Error::ambiguous(
            what,
            format!(
                "entry {} names its platform `{}/{}`, which containerd reads as {} and \
                 containers/image (podman, cri-o) as written: they pick different images",
                d.digest, p.os, p.architecture, sel.platform
            ),
        ));
    }
    // The best-ranked match, as containerd picks (`Platform::best`), with or
    // without `--platform`: a lone entry for another platform is refused as
    // containerd refuses it, and entries without a platform come after
    // every match (containerd `images.Manifest` sorts them last).
    if let Some(d) = sel
        .platform
        .best(candidates.iter().map(|d| (*d, d.platform())))
    {
        return Ok(d);
    }
    if let Some(d) = candidates.iter().find(|d| d.platform.is_none()) {
        return Ok(d);
    }
    let mut choices: Vec<String> = candidates
        .iter()
        .map(|d| {
            d.platform()
                .map_or_else(|| "(no platform)".to_owned(), |p| p.to_string())
        })
        .collect();
    choices.sort();
    choices.dedup();
    Err(Error::NoSuchPlatform {
        what: what.to_owned(),
        platform: sel.platform.to_string(),
        choices: if choices.is_empty() {
            "nothing".to_owned()
        } else {
            choices.join(", ")
        },
    })
}

fn is_index(media_type: Option<&str>, json: &serde_json::Value) -> bool {
    match media_type {
        Some(mt) if INDEX_TYPES.contains(&mt) => true,
        Some(mt) if MANIFEST_TYPES.contains(&mt) => false,
        _ => json.get("manifests").is_some() && json.get("layers").is_none(),
    }
}

fn view_descriptor(d: &Descriptor) -> serde_json::Value {
    serde_json::json!({
        "mediaType": d.media_type.clone().unwrap_or_default(),
        "digest": d.digest,
        "size": d.size.unwrap_or_default(),
        "platform": d.platform.as_ref().map(|p| serde_json::json!({
            "os": p.os,
            "architecture": p.architecture,
            "variant": p.variant.clone().unwrap_or_default(),
        })),
        "annotations": d.annotations.clone().unwrap_or_default(),
    })
}

/// What imgscan reads from an image manifest (see [`crate::view::view`]).
pub fn view_manifest(bytes: &[u8], what: &str) -> Result<serde_json::Value> {
    match parse_document(bytes, Some(MANIFEST_TYPES[0]), what)? {
        Document::Manifest(m) => Ok(serde_json::json!({
            "schemaVersion": m.schema_version.unwrap_or_default(),
            "mediaType": m.media_type.clone().unwrap_or_default(),
            "config": view_descriptor(&m.config),
            "layers": m.layers.iter().map(view_descriptor).collect::<Vec<_>>(),
        })),
        Document::Index(_) => Err(Error::malformed(what, "an index, not a manifest")),
    }
}

/// What imgscan reads from an image index (see [`crate::view::view`]).
pub fn view_index(bytes: &[u8], what: &str) -> Result<serde_json::Value> {
    match parse_document(bytes, Some(INDEX_TYPES[0]), what)? {
        Document::Index(entries) => Ok(serde_json::json!({
            "manifests": entries.iter().map(view_descriptor).collect::<Vec<_>>(),
        })),
        Document::Manifest(_) => Err(Error::malformed(what, "a manifest, not an index")),
    }
}

/// Resolves the image in an OCI layout.
pub fn resolve_oci(
    c: &dyn Container,
    reference: Option<&str>,
    sel: &Selection,
    format: &'static str,
) -> Result<Plan> {
    let raw = c.read_small("index.json", super::MAX_JSON)?;
    let index: Index = gojson::decode(
        &raw,
        &gojson::MANIFEST_OR_INDEX,
        &format!("index.json in {}", c.describe()),
    )?;
    let manifests = index.manifests.unwrap_or_default();
    if manifests.is_empty() {
        return Err(Error::not_an_image(
            c.describe(),
            "index.json lists no manifests",
        ));
    }
    let usable: Vec<&Descriptor> = manifests.iter().filter(|d| !d.is_attestation()).collect();
    let picked: Vec<&Descriptor> = match reference {
        Some(r) => {
            let m: Vec<&Descriptor> = usable
                .iter()
                .copied()
                .filter(|d| ref_matches(d, r))
                .collect();
            if m.is_empty() {
                let mut choices: Vec<String> = usable.iter().map(|d| describe_ref(d)).collect();
                choices.sort();
                choices.dedup();
                return Err(Error::UnknownReference {
                    container: c.describe(),
                    reference: r.to_owned(),
                    choices: choices.join(", "),
                });
            }
            m
        }
        None => usable.clone(),
    };
    // Several entries: one image in several platforms, or several images.
    let names: std::collections::BTreeSet<Option<&str>> = picked
        .iter()
        .map(|d| {
            d.annotation(REF_NAME)
                .or_else(|| d.annotation(CONTAINERD_NAME))
        })
        .collect();
    let all_have_platforms = picked.iter().all(|d| d.platform.is_some());
    let top = if picked.len() == 1 {
        picked[0]
    } else if names.len() == 1 && all_have_platforms {
        pick_platform(&picked, sel, &format!("index.json in {}", c.describe()))?
    } else {
        let mut choices: Vec<String> = picked.iter().map(|d| describe_ref(d)).collect();
        choices.sort();
        choices.dedup();
        return Err(Error::AmbiguousImage {
            container: c.describe(),
            count: picked.len(),
            choices: choices.join(", "),
        });
    };
    let chosen_ref = top
        .annotation(REF_NAME)
        .or_else(|| top.annotation(CONTAINERD_NAME))
        .map(str::to_owned)
        .or_else(|| reference.map(str::to_owned));

    let mut desc = top.clone();
    let mut index_digest = None;
    for _depth in 0..4 {
        let digest = desc.parsed_digest()?;
        let what = format!("manifest {digest}");
        let bytes = read_verified(c, &blob_path(&digest), &digest, &what)?;
        check_size(&desc, bytes.len() as u64, &what)?;
        if desc.media_type.is_none() {
            // umoci ("descriptor does not point to ispec.MediaTypeImageManifest"),
            // containers/image and containerd's handlers all go by the
            // descriptor's media type, which the image spec requires.
            return Err(Error::malformed(
                what,
                "its descriptor has no mediaType, which container runtimes need to read it \
                 (umoci and podman refuse it)",
            ));
        }
        let manifest = match parse_document(&bytes, desc.media_type.as_deref(), &what)? {
            Document::Index(children) => {
                let refs: Vec<&Descriptor> = children.iter().collect();
                let next = pick_platform(&refs, sel, &format!("image index {digest}"))?.clone();
                index_digest = Some(digest);
                desc = next;
                continue;
            }
            Document::Manifest(m) => *m,
        };
        return plan_from_manifest(c, manifest, digest, index_digest, chosen_ref, format);
    }
    Err(Error::malformed(
        format!("index.json in {}", c.describe()),
        "indexes nested more than 4 deep",
    ))
}

/// Checks a blob's length against its descriptor.
pub(crate) fn check_size(d: &Descriptor, actual: u64, what: &str) -> Result<()> {
    match d.size {
        Some(s) if s < 0 => Err(Error::malformed(what, format!("negative size {s}"))),
        Some(s) if s as u64 != actual => Err(Error::malformed(
            what,
            format!("descriptor says {s} bytes, blob has {actual}"),
        )),
        _ => Ok(()),
    }
}

fn plan_from_manifest(
    c: &dyn Container,
    m: Manifest,
    manifest_digest: Digest,
    index_digest: Option<Digest>,
    reference: Option<String>,
    format: &'static str,
) -> Result<Plan> {
    let config_digest = m.config.parsed_digest()?;
    let what = format!("config {config_digest}");
    let cfg_bytes = read_verified(c, &blob_path(&config_digest), &config_digest, &what)?;
    plan_from_config(
        m,
        manifest_digest,
        index_digest,
        reference,
        format,
        &cfg_bytes,
    )
}

/// Builds the plan from a manifest and its config bytes (verified against
/// `m.config.digest` by the caller).
pub(crate) fn plan_from_config(
    m: Manifest,
    manifest_digest: Digest,
    index_digest: Option<Digest>,
    reference: Option<String>,
    format: &'static str,
    cfg_bytes: &[u8],
) -> Result<Plan> {
    let config_digest = m.config.parsed_digest()?;
    let what = format!("config {config_digest}");
    check_size(&m.config, cfg_bytes.len() as u64, &what)?;
    let config = ImageConfig::parse(cfg_bytes, &what)?;
    if config.diff_ids.len() != m.layers.len() {
        return Err(Error::malformed(
            format!("manifest {manifest_digest}"),
            format!(
                "{} layers but the config lists {} diff_ids",
                m.layers.len(),
                config.diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::with_capacity(m.layers.len());
    for (i, (d, diff_id)) in m.layers.iter().zip(&config.diff_ids).enumerate() {
        let digest = d.parsed_digest()?;
        if let Some(mt) = &d.media_type
            && !is_layer_media_type(mt)
        {
            return Err(Error::not_an_image(
                format!("manifest {manifest_digest}"),
                format!("layer {i} has media type {mt}, not a filesystem layer"),
            ));
        }
        if let Some(s) = d.size
            && s < 0
        {
            return Err(Error::malformed(
                format!("manifest {manifest_digest}"),
                format!("layer {i} has negative size {s}"),
            ));
        }
        layers.push(LayerPlan {
            index: i,
            path: blob_path(&digest),
            digest: Some(digest),
            diff_id: diff_id.clone(),
            media_type: d.media_type.clone(),
            size: d.size.map(|s| s as u64),
        });
    }
    // The base image the builder recorded (OCI image-spec `annotations.md`:
    // `org.opencontainers.image.base.name` and `.base.digest`, "on a
    // manifest"). Informational: `--baseline auto` pulls it.
    let base = m.annotations.as_ref().and_then(|a| {
        let name = a.get("org.opencontainers.image.base.name").cloned();
        let digest = a.get("org.opencontainers.image.base.digest").cloned();
        (name.is_some() || digest.is_some()).then_some(crate::model::BaseImage { name, digest })
    });
    Ok(Plan {
        format,
        reference,
        base,
        manifest_digest: Some(manifest_digest),
        index_digest,
        config_digest,
        config,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn doc(s: &str) -> Vec<u8> {
        s.replace("DIG", D).into_bytes()
    }

    /// `Layers`, `Config`, `Digest` are the manifest's fields to Go.
    #[test]
    fn manifest_keys_are_read_as_go_reads_them() {
        let m = doc(
            r#"{"SchemaVersion":2,"Config":{"Digest":"DIG"},"Layers":[{"digest":"DIG","SIZE":3,"MediaType":"application/vnd.oci.image.layer.v1.tar"}]}"#,
        );
        let Document::Manifest(m) = parse_document(&m, None, "m").unwrap() else {
            panic!("a manifest")
        };
        assert_eq!(m.config.digest, D);
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].size, Some(3));
        assert_eq!(
            m.layers[0].media_type.as_deref(),
            Some("application/vnd.oci.image.layer.v1.tar")
        );
    }

    /// Two spellings of `layers` (or of a descriptor field) are refused.
    #[test]
    fn manifest_duplicates_are_ambiguous() {
        for s in [
            r#"{"config":{"digest":"DIG"},"layers":[],"Layers":[{"digest":"DIG"}]}"#,
            r#"{"config":{"digest":"DIG","Digest":"DIG"},"layers":[]}"#,
            r#"{"config":{"digest":"DIG"},"layers":[{"digest":"DIG","size":1,"size":2}]}"#,
        ] {
            assert!(
                matches!(
                    parse_document(&doc(s), None, "m"),
                    Err(Error::Ambiguous { .. })
                ),
                "{s}"
            );
        }
        assert!(matches!(
            parse_document(&doc(r#"{"config":{"digest":"DIG","size":"1"}}"#), None, "m"),
            Err(Error::Malformed { .. })
        ));
    }

    /// An index whose keys are capitalised is still an index, with its
    /// platforms; a doubled platform field is refused.
    #[test]
    fn index_keys_are_read_as_go_reads_them() {
        let ix = doc(
            r#"{"Manifests":[{"Digest":"DIG","Platform":{"OS":"linux","Architecture":"arm","Variant":"v7"}}]}"#,
        );
        let Document::Index(entries) = parse_document(&ix, None, "i").unwrap() else {
            panic!("an index")
        };
        let p = entries[0].platform().unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        let dup = doc(
            r#"{"manifests":[{"digest":"DIG","platform":{"os":"linux","architecture":"amd64","ARCHITECTURE":"arm64"}}]}"#,
        );
        assert!(matches!(
            parse_document(&dup, None, "i"),
            Err(Error::Ambiguous { .. })
        ));
    }

    fn entry(platform: Option<(&str, &str)>) -> Descriptor {
        Descriptor {
            media_type: Some(MANIFEST_TYPES[0].to_owned()),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: Some(1),
            annotations: None,
            platform: platform.map(|(os, arch)| RawPlatform {
                os: os.to_owned(),
                architecture: arch.to_owned(),
                variant: None,
            }),
        }
    }

    /// A lone index entry for another platform is refused without
    /// `--platform`, naming what the index offers, as containerd refuses it.
    #[test]
    fn lone_entry_for_another_platform_is_refused() {
        let sel = Selection {
            platform: Platform::parse("linux/amd64").unwrap(),
            platform_explicit: false,
        };
        let arm = entry(Some(("linux", "arm64")));
        let att = entry(Some(("unknown", "unknown")));
        let err = pick_platform(&[&arm, &att], &sel, "index.json").unwrap_err();
        assert!(matches!(err, Error::NoSuchPlatform { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("linux/amd64") && msg.contains("offers: linux/arm64"),
            "{msg}"
        );
        assert!(
            !msg.contains("unknown"),
            "attestations are not offered: {msg}"
        );
        let amd = entry(Some(("linux", "amd64")));
        assert!(std::ptr::eq(
            pick_platform(&[&att, &amd], &sel, "i").unwrap(),
            &amd
        ));
    }

    /// Entries without a platform are taken after every match, as containerd
    /// sorts them last; attestations never.
    #[test]
    fn entries_without_platform_come_after_matches() {
        let sel = Selection::default();
        let none = entry(None);
        let host = Descriptor {
            platform: Some(RawPlatform {
                os: sel.platform.os.clone(),
                architecture: sel.platform.architecture.clone(),
                variant: None,
            }),
            ..entry(None)
        };
        let att = entry(Some(("unknown", "unknown")));
        let other = entry(Some(("windows", "s390x")));
        assert!(std::ptr::eq(
            pick_platform(&[&none, &host], &sel, "i").unwrap(),
            &host
        ));
        assert!(std::ptr::eq(
            pick_platform(&[&att, &other, &none], &sel, "i").unwrap(),
            &none
        ));
        assert!(pick_platform(&[&att], &sel, "i").is_err());
    }
}
