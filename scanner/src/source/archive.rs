//! Tar archives of images: docker-archive (`docker save`, skopeo, Docker 25+)
//! and oci-archive, from a seekable file or from a stream.
//!
//! A seekable file is indexed first (member headers only, seeking over the
//! data), then each layer member is opened on its own file handle, so layers
//! are read in parallel. A stream (standard input, a gzipped archive) cannot
//! be revisited, and `docker save` writes `manifest.json` *after* the layers,
//! so every member that looks like a layer is scanned as it goes by, on a
//! worker thread fed through a bounded channel, and keyed by member name;
//! once the stream ends the manifest puts them in order. Nothing is spooled
//! to disk; memory is bounded by the channel sizes, the layer indexes and the
//! small members held, which are charged to the image's
//! [`MemoryBudget`].
//!
//! # Runtime fidelity
//!
//! - **One member name twice** (or a name twice after cleaning, `./x` and
//!   `x`): containers/image `docker/internal/tarfile/reader.go`
//!   `findTarComponent` reads the first match; moby
//!   `image/tarexport/load.go` extracts the archive and reads the file, which
//!   the last copy overwrote; containerd `images/archive/importer.go` keeps
//!   the last blob per name. The archive is refused ([`Error::Ambiguous`])
//!   unless every copy is a directory.
//! - **A member under a non-directory member** (`x` a symlink, then
//!   `x/manifest.json`): extraction (moby) writes through the symlink,
//!   name-matching readers (containers/image, containerd) do not. Refused.
//! - **Symlinked members** (`docker save` links a repeated layer's
//!   `layer.tar` to the first copy) resolve relative to the link's directory,
//!   as moby's extraction and containerd's `path.Join(path.Dir(name),
//!   linkname)` do. A layer may be used more than once (listed twice, or
//!   through a link), from a file or a stream.
//! - `manifest.json` is read as Go's `encoding/json` decodes it into moby's
//!   `manifestItem` / containers/image `ManifestItem` (`Config`, `RepoTags`,
//!   `Layers`, `Parent`, `LayerSources`; see [`crate::gojson`]): `"layers"` is
//!   `Layers`, two keys for one field are ambiguous.
//! - **PAX global headers** (`g` members) are skipped, as moby's
//!   `docker load` (go-archive `archive.go` `Unpack` ignores
//!   `TypeXGlobalHeader` early, before making parent directories) and
//!   containerd's import (`core/images/archive/importer.go` takes only
//!   regular files) skip them: a `g` named `manifest.json` neither replaces
//!   nor shadows the real one, and no member lies "under" it. One exception
//!   is refused ([`Error::Ambiguous`]): a `g` member before a member of the
//!   same name, because containers/image `findTarComponent` matches names
//!   whatever the type and reads the global header (no data) in the real
//!   member's place.
//! - **Other member types** (`7` contiguous files, GNU `D`/`V`/`M`, vendor
//!   types) are refused: moby's `docker load` fails on them
//!   (`createTarFile`: "unhandled tar header type"), containerd's import
//!   skips them, and containers/image's docker-archive reader takes one for
//!   a regular file (its `FileInfo().Mode()` has no type bits).
//! - The tar reader's own refusals ([`crate::tarstream`]: negative sizes,
//!   names that are not UTF-8, GNU sparse members, ...) are reported as
//!   [`Error::Ambiguous`] naming the archive.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::{Container, LayerPlan, Plan, digest_from_path, read_verified};
use crate::budget::MemoryBudget;
use crate::config::ImageConfig;
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::gojson;
use crate::layer::{self, Compression, LayerIndex, LayerOptions, normalize};
use crate::tarstream::{Header, Kind, Seekable, Streaming, TarReader};

/// Most members accepted in an image archive.
const MAX_MEMBERS: usize = 1_000_000;
/// Members up to this size that do not look like layers are kept in memory.
const SMALL: u64 = 1 << 20;

/// `busybox` → `docker.io/library/busybox:latest`, for comparing tags.
pub fn normalize_tag(t: &str) -> String {
    let (name, tag) = match t.rfind(':') {
        Some(i) if !t[i..].contains('/') => (&t[..i], &t[i..]),
        _ => (t, ":latest"),
    };
    let name = match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((host, _)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            name.to_owned()
        }
        Some(_) => format!("docker.io/{name}"),
    };
    format!("{name}{tag}")
}

#[derive(Debug, Clone)]
struct Member {
    kind: Kind,
    offset: u64,
    size: u64,
    /// Resolved target path for links.
    link: Option<String>,
}

fn link_target(member: &str, kind: Kind, raw: &[u8]) -> String {
    match kind {
        // Symlink targets are relative to the member's directory.
        Kind::Symlink if !raw.starts_with(b"/") => {
            let dir = member.rfind('/').map_or("", |i| &member[..i]);
            let mut joined = dir.as_bytes().to_vec();
            joined.push(b'/');
            joined.extend_from_slice(raw);
            normalize(&joined)
        }
        _ => normalize(raw),
    }
}

fn follow<'a, T>(
    map: &'a BTreeMap<String, T>,
    links: impl Fn(&T) -> Option<&str>,
    path: &str,
) -> Option<(String, &'a T)> {
    let mut p = path.to_owned();
    for _ in 0..40 {
        let m = map.get(&p)?;
        match links(m) {
            Some(t) => p = t.to_owned(),
            None => return Some((p, m)),
        }
    }
    None
}

/// Refuses member `name` when `names` already has it, unless both copies
/// are directories; `was_dir` tells whether a recorded entry is one.
fn check_new_name<T>(
    names: &BTreeMap<String, T>,
    was_dir: impl Fn(&T) -> bool,
    name: &str,
    is_dir: bool,
    archive: &str,
) -> Result<()> {
    match names.get(name) {
        Some(old) if was_dir(old) && is_dir => Ok(()),
        Some(_) => Err(Error::ambiguous(
            format!("member {} of {archive}", shown(name)),
            "the archive holds it twice; containers/image reads the first copy, \
             moby's and containerd's extraction keep the last",
        )),
        None => Ok(()),
    }
}

/// Refuses a member below a member that is not a directory.
fn check_parents<T>(
    names: &BTreeMap<String, T>,
    is_dir: impl Fn(&T) -> bool,
    archive: &str,
) -> Result<()> {
    for name in names.keys() {
        for (i, _) in name.match_indices('/') {
            let parent = &name[..i];
            if names.get(parent).is_some_and(|p| !is_dir(p)) {
                return Err(Error::ambiguous(
                    format!("member {} of {archive}", shown(name)),
                    format!(
                        "it lies under member {}, which is not a directory; extracting \
                         runtimes (moby) follow a symlink there, others do not",
                        shown(parent)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A member name for messages: bounded, control characters escaped.
fn shown(name: &str) -> String {
    name.chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect()
}

/// An error of the tar reader over the outer archive `archive`: its
/// `ambiguous image: ` refusals become [`Error::Ambiguous`], anything else
/// `other(e)`.
fn archive_read_error(
    archive: &str,
    e: io::Error,
    other: impl FnOnce(io::Error) -> Error,
) -> Error {
    match e.to_string().strip_prefix("ambiguous image: ") {
        Some(why) => Error::ambiguous(format!("archive {archive}"), why),
        None => other(e),
    }
}

/// Decides what the outer archive does with member `name` of header `h`
/// (module docs): `Ok(false)` skips a PAX global header (its name recorded
/// in `globals`), `Ok(true)` keeps the member, other types and a member
/// named like an earlier global header are refused.
fn outer_member(
    h: &Header,
    name: &str,
    globals: &mut BTreeSet<String>,
    archive: &str,
) -> Result<bool> {
    if h.typeflag == b'g' {
        globals.insert(name.to_owned());
        return Ok(false);
    }
    if h.kind == Kind::Other {
        return Err(Error::ambiguous(
            format!("member {} of {archive}", shown(name)),
            format!(
                "its tar type `{}` is no file type: moby's docker load refuses it (unhandled \
                 tar header type), containerd's import skips it, containers/image's \
                 docker-archive reader takes it for a regular file",
                h.typeflag.escape_ascii()
            ),
        ));
    }
    if globals.contains(name) {
        return Err(Error::ambiguous(
            format!("member {} of {archive}", shown(name)),
            "a PAX global header of the same name comes before it: moby and containerd skip \
             the global header, containers/image's docker-archive reader reads it (no data) \
             in this member's place",
        ));
    }
    Ok(true)
}

/// A seekable tar file, indexed by member name.
pub struct ArchiveContainer {
    path: PathBuf,
    members: BTreeMap<String, Member>,
}

impl ArchiveContainer {
    /// Indexes the members of `path` (headers only).
    pub fn open(path: &Path) -> Result<Self> {
        let io_err = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(Error::not_an_image(
                path.display().to_string(),
                "not a regular file (a pipe or device is read as a stream, from standard input)",
            ));
        }
        let len = meta.len();
        let mut tr = TarReader::new(Seekable::new(file, len, 64 * 1024));
        let mut members: BTreeMap<String, Member> = BTreeMap::new();
        let mut globals = BTreeSet::new();
        let archive = path.display().to_string();
        loop {
            let h = match tr.next_header() {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    return Err(archive_read_error(&archive, e, |e| {
                        Error::not_an_image(&archive, format!("reading the archive: {e}"))
                    }));
                }
            };
            if members.len() + globals.len() >= MAX_MEMBERS {
                return Err(Error::Limit {
                    what: path.display().to_string(),
                    limit: format!("{MAX_MEMBERS} members"),
                    why: "an image archive has a few files per layer".into(),
                });
            }
            let name = normalize(&h.path);
            if !outer_member(&h, &name, &mut globals, &archive)? {
                continue;
            }
            check_new_name(
                &members,
                |m| m.kind == Kind::Dir,
                &name,
                h.kind == Kind::Dir,
                &archive,
            )?;
            let link = matches!(h.kind, Kind::Symlink | Kind::Hardlink)
                .then(|| link_target(&name, h.kind, &h.link));
            if h.data_offset
                .checked_add(h.size)
                .is_none_or(|end| end > len)
            {
                return Err(Error::not_an_image(
                    path.display().to_string(),
                    format!("member {name} runs past the end of the file (truncated?)"),
                ));
            }
            members.insert(
                name,
                Member {
                    kind: h.kind,
                    offset: h.data_offset,
                    size: h.size,
                    link,
                },
            );
        }
        check_parents(&members, |m| m.kind == Kind::Dir, &archive)?;
        Ok(Self {
            path: path.to_owned(),
            members,
        })
    }

    fn member(&self, path: &str) -> Option<(String, &Member)> {
        follow(&self.members, |m| m.link.as_deref(), path).filter(|(_, m)| m.kind == Kind::File)
    }

    fn open_member(&self, path: &str) -> Result<(File, u64)> {
        let (_, m) = self.member(path).ok_or_else(|| Error::MissingBlob {
            digest: path.to_owned(),
            what: "member".into(),
            container: self.describe(),
        })?;
        let io_err = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut f = File::open(&self.path).map_err(io_err)?;
        f.seek(SeekFrom::Start(m.offset)).map_err(io_err)?;
        Ok((f, m.size))
    }
}

impl Container for ArchiveContainer {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn exists(&self, path: &str) -> bool {
        self.member(path).is_some()
    }

    fn read_small(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let (f, size) = self.open_member(path)?;
        if size > limit {
            return Err(Error::Limit {
                what: format!("{path} in {}", self.describe()),
                limit: format!("{limit} bytes"),
                why: "JSON documents of an image are small".into(),
            });
        }
        let mut v = Vec::with_capacity(size as usize);
        f.take(size)
            .read_to_end(&mut v)
            .map_err(|e| Error::read(format!("{path} in {}", self.describe()), e))?;
        Ok(v)
    }

    fn scan_layer(&self, plan: &LayerPlan, opts: &LayerOptions) -> Result<LayerIndex> {
        let (f, size) = self.open_member(&plan.path)?;
        if !opts.verifies() {
            return layer::scan_layer_seekable(f, size, opts)
                .map_err(|e| super::layer_error(plan, e));
        }
        layer::scan_layer(f.take(size), opts).map_err(|e| super::layer_error(plan, e))
    }

    fn layer_size(&self, plan: &LayerPlan) -> Option<u64> {
        self.member(&plan.path).map(|(_, m)| m.size)
    }
}

#[derive(Deserialize)]
struct DockerManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// Parses a docker-archive `manifest.json` as Go's `encoding/json` does.
fn parse_docker_manifest(bytes: &[u8], what: &str) -> Result<Vec<DockerManifestItem>> {
    gojson::decode(bytes, &gojson::DOCKER_MANIFEST, what)
}

/// What imgscan reads from a docker-archive `manifest.json` (see
/// [`crate::view::view`]).
pub fn view_docker_manifest(bytes: &[u8], what: &str) -> Result<serde_json::Value> {
    let items = parse_docker_manifest(bytes, what)?;
    Ok(serde_json::Value::Array(
        items
            .iter()
            .map(|it| {
                serde_json::json!({
                    "Config": it.config,
                    "RepoTags": it.repo_tags.clone().unwrap_or_default(),
                    "Layers": it.layers,
                })
            })
            .collect(),
    ))
}

/// Resolves the image of a docker-archive from its `manifest.json`.
pub fn resolve_docker(c: &dyn Container, reference: Option<&str>) -> Result<Plan> {
    let raw = c.read_small("manifest.json", super::MAX_JSON)?;
    let items = parse_docker_manifest(&raw, &format!("manifest.json in {}", c.describe()))?;
    if items.is_empty() {
        return Err(Error::not_an_image(
            c.describe(),
            "manifest.json lists no images",
        ));
    }
    let choices = || {
        items
            .iter()
            .enumerate()
            .map(|(i, it)| match it.repo_tags.as_deref() {
                Some([first, ..]) => first.clone(),
                _ => format!("@{i}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (idx, item) = match reference {
        Some(r) if r.starts_with('@') => {
            let i: usize = r[1..]
                .parse()
                .map_err(|_| Error::Usage(format!("bad source index `{r}`: expected @N")))?;
            let item = items.get(i).ok_or_else(|| Error::UnknownReference {
                container: c.describe(),
                reference: r.to_owned(),
                choices: choices(),
            })?;
            (i, item)
        }
        Some(r) => {
            let want = normalize_tag(r);
            items
                .iter()
                .enumerate()
                .find(|(_, it)| {
                    it.repo_tags
                        .iter()
                        .flatten()
                        .any(|t| t == r || normalize_tag(t) == want)
                })
                .ok_or_else(|| Error::UnknownReference {
                    container: c.describe(),
                    reference: r.to_owned(),
                    choices: choices(),
                })?
        }
        None if items.len() == 1 => (0, &items[0]),
        None => {
            return Err(Error::AmbiguousImage {
                container: c.describe(),
                count: items.len(),
                choices: choices(),
            });
        }
    };
    let config_path = normalize(item.config.as_bytes());
    let config_digest = digest_from_path(&config_path).ok_or_else(|| Error::Unverifiable {
        what: format!("config {config_path} in {}", c.describe()),
        why: "its name is not a digest".into(),
    })?;
    let what = format!("config {config_digest}");
    let cfg = read_verified(c, &config_path, &config_digest, &what)?;
    let config = ImageConfig::parse(&cfg, &what)?;
    if config.diff_ids.len() != item.layers.len() {
        return Err(Error::malformed(
            format!("manifest.json in {}", c.describe()),
            format!(
                "image {idx} lists {} layers but its config lists {} diff_ids",
                item.layers.len(),
                config.diff_ids.len()
            ),
        ));
    }
    let layers = item
        .layers
        .iter()
        .zip(&config.diff_ids)
        .enumerate()
        .map(|(i, (p, diff_id))| {
            let path = normalize(p.as_bytes());
            LayerPlan {
                index: i,
                digest: digest_from_path(&path),
                path,
                diff_id: diff_id.clone(),
                media_type: None,
                size: None,
            }
        })
        .collect();
    let reference = match reference {
        Some(r) if !r.starts_with('@') => Some(r.to_owned()),
        _ => item.repo_tags.as_ref().and_then(|t| t.first().cloned()),
    };
    Ok(Plan {
        format: "docker-archive",
        reference,
        base: None,
        manifest_digest: None,
        index_digest: None,
        config_digest,
        config,
        layers,
    })
}

enum Held {
    Small(Vec<u8>),
    /// Scanned on the way; the result is in `taken`.
    Scanned,
}

struct StreamMember {
    link: Option<String>,
    held: Option<Held>,
}

/// A layer scanned on the way, and how many times the archive's manifests
/// may still ask for it.
struct Taken {
    uses_left: usize,
    result: std::result::Result<LayerIndex, String>,
}

/// An archive read once from a stream; layers were scanned on the way.
pub struct StreamContainer {
    name: String,
    members: BTreeMap<String, StreamMember>,
    taken: Mutex<BTreeMap<String, Taken>>,
    budget: Arc<MemoryBudget>,
    /// Bytes charged to `budget` for what this container holds.
    charged: AtomicU64,
}

impl Drop for StreamContainer {
    fn drop(&mut self) {
        self.budget.release(*self.charged.get_mut());
    }
}

/// Charges `n` bytes for `what` to `budget`, counting them in `charged`.
fn charge(
    budget: &MemoryBudget,
    charged: &AtomicU64,
    n: u64,
    what: &str,
    archive: &str,
) -> Result<()> {
    budget.charge(n, what).map_err(|e| Error::Limit {
        what: format!("{what} in {archive}"),
        limit: format!("the memory budget of {} MiB", e.limit >> 20),
        why: "an image archive read from a stream keeps its small members in memory; \
              raise --max-memory if this image is genuine"
            .into(),
    })?;
    charged.fetch_add(n, Ordering::Relaxed);
    Ok(())
}

/// Heap bytes a layer index holds, roughly.
fn index_bytes(idx: &LayerIndex) -> u64 {
    let extras: usize = idx
        .extras
        .iter()
        .map(|e| {
            std::mem::size_of_val(e)
                + e.link.as_ref().map_or(0, |l| l.len())
                + e.caps.as_ref().map_or(0, |c| c.len())
                + e.content.as_ref().map_or(0, |c| c.data.len() + 32)
        })
        .sum();
    let boxed = |v: &[Box<str>]| v.iter().map(|s| s.len() + 16).sum::<usize>();
    (idx.paths.len()
        + std::mem::size_of_val(idx.recs.as_slice())
        + extras
        + boxed(&idx.whiteouts)
        + boxed(&idx.opaques)
        + idx.warnings.iter().map(|w| w.len() + 24).sum::<usize>()) as u64
}

/// How many times the manifests held in `members` name each layer member
/// (after links): a layer listed twice, or linked to by another layer's
/// `layer.tar`, is handed out that many times. Documents that do not parse
/// count nothing (resolution reports them).
fn count_uses(members: &BTreeMap<String, StreamMember>) -> BTreeMap<String, usize> {
    let resolve = |p: &str| follow(members, |m| m.link.as_deref(), p).map(|(k, _)| k);
    let docker_manifest = resolve("manifest.json");
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    let mut add = |p: &str| {
        if let Some(k) = resolve(p) {
            *uses.entry(k).or_insert(0) += 1;
        }
    };
    for (name, m) in members {
        let Some(Held::Small(bytes)) = &m.held else {
            continue;
        };
        if !looks_like_json(bytes) {
            continue;
        }
        if docker_manifest.as_deref() == Some(name.as_str()) {
            if let Ok(items) = parse_docker_manifest(bytes, name) {
                for l in items.iter().flat_map(|it| &it.layers) {
                    add(&normalize(l.as_bytes()));
                }
            }
        } else if let Ok(v) = gojson::canonical(bytes, &gojson::MANIFEST_OR_INDEX, name)
            && let Some(layers) = v.get("layers").and_then(|l| l.as_array())
        {
            for d in layers {
                if let Some(dg) = d
                    .get("digest")
                    .and_then(|x| x.as_str())
                    .and_then(|s| Digest::parse(s).ok())
                {
                    add(&super::blob_path(&dg));
                }
            }
        }
    }
    uses
}

impl StreamContainer {
    fn member(&self, path: &str) -> Option<(String, &StreamMember)> {
        follow(&self.members, |m| m.link.as_deref(), path)
    }
}

impl Container for StreamContainer {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn exists(&self, path: &str) -> bool {
        self.member(path).is_some_and(|(_, m)| m.held.is_some())
    }

    fn read_small(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        match self.member(path) {
            Some((
                _,
                StreamMember {
                    held: Some(Held::Small(b)),
                    ..
                },
            )) if b.len() as u64 <= limit => Ok(b.clone()),
            Some(_) => Err(Error::Limit {
                what: format!("{path} in {}", self.name),
                limit: format!("{limit} bytes"),
                why: "JSON documents of an image are small".into(),
            }),
            None => Err(Error::MissingBlob {
                digest: path.to_owned(),
                what: "member".into(),
                container: self.name.clone(),
            }),
        }
    }

    fn scan_layer(&self, plan: &LayerPlan, opts: &LayerOptions) -> Result<LayerIndex> {
        let Some((resolved, m)) = self.member(&plan.path) else {
            return Err(Error::MissingBlob {
                digest: plan
                    .digest
                    .as_ref()
                    .map_or_else(|| plan.path.clone(), ToString::to_string),
                what: format!("layer {}", plan.index),
                container: self.name.clone(),
            });
        };
        match &m.held {
            Some(Held::Small(bytes)) => {
                layer::scan_layer(&bytes[..], opts).map_err(|e| super::layer_error(plan, e))
            }
            Some(Held::Scanned) => {
                let mut taken = self
                    .taken
                    .lock()
                    .map_err(|_| Error::Usage("a layer worker panicked".into()))?;
                let r = match taken.get_mut(&resolved) {
                    // Wanted again later: hand out a copy, charged.
                    Some(t) if t.uses_left > 1 => {
                        t.uses_left -= 1;
                        if let Ok(idx) = &t.result {
                            charge(
                                &self.budget,
                                &self.charged,
                                index_bytes(idx),
                                "a copy of a layer used more than once",
                                &self.name,
                            )?;
                        }
                        Some(t.result.clone())
                    }
                    Some(_) => taken.remove(&resolved).map(|t| t.result),
                    None => None,
                };
                drop(taken);
                match r {
                    Some(Ok(idx)) => Ok(idx),
                    Some(Err(why)) => Err(Error::BadLayer {
                        layer: format!("{} ({})", plan.index, plan.path),
                        why,
                    }),
                    // More uses than the manifests have: never for a plan
                    // resolved from this container's own documents.
                    None => Err(Error::malformed(
                        format!("manifest in {}", self.name),
                        format!("layer {} is used more times than listed", plan.path),
                    )),
                }
            }
            None => Err(Error::MissingBlob {
                digest: plan.path.clone(),
                what: format!("layer {}", plan.index),
                container: self.name.clone(),
            }),
        }
    }
}

fn looks_like_json(prefix: &[u8]) -> bool {
    prefix
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[')
}

fn looks_like_layer(prefix: &[u8]) -> bool {
    Compression::sniff(prefix) != Compression::None || prefix.get(257..262) == Some(&b"ustar"[..])
}

/// Bytes charged per member name kept (map node and string header).
const NAME_OVERHEAD: u64 = 96;

/// Reads an image archive from a stream, scanning layers as they pass.
///
/// Member names and the small members kept (JSON documents, tiny layers) are
/// charged to `base_opts.budget`, and given back when the container is
/// dropped.
pub fn scan_stream(
    reader: impl Read,
    name: &str,
    base_opts: &LayerOptions,
    workers: usize,
) -> Result<StreamContainer> {
    let results: Mutex<BTreeMap<String, std::result::Result<LayerIndex, String>>> =
        Mutex::new(BTreeMap::new());
    let mut members: BTreeMap<String, StreamMember> = BTreeMap::new();
    let mut names: BTreeMap<String, bool> = BTreeMap::new();
    let budget = base_opts.budget.clone();
    // Charged so far; moved into the container, or given back on error.
    let charged = AtomicU64::new(0);
    let give_back = |charged: &AtomicU64| budget.release(charged.load(Ordering::Relaxed));
    let workers = workers.max(1);
    let (token_tx, token_rx) = crossbeam_channel::bounded::<()>(workers);
    let outcome: Result<()> = std::thread::scope(|scope| {
        let mut tr = TarReader::new(Streaming::new(reader));
        let read_err = |e: io::Error| {
            archive_read_error(name, e, |e| {
                Error::not_an_image(name, format!("reading the archive: {e}"))
            })
        };
        let mut globals = BTreeSet::new();
        while let Some(h) = tr.next_header().map_err(read_err)? {
            if names.len() + globals.len() >= MAX_MEMBERS {
                return Err(Error::Limit {
                    what: name.to_owned(),
                    limit: format!("{MAX_MEMBERS} members"),
                    why: "an image archive has a few files per layer".into(),
                });
            }
            let path = normalize(&h.path);
            charge(
                &budget,
                &charged,
                path.len() as u64 + NAME_OVERHEAD,
                "member names",
                name,
            )?;
            if !outer_member(&h, &path, &mut globals, name)? {
                continue;
            }
            let is_dir = h.kind == Kind::Dir;
            check_new_name(&names, |d| *d, &path, is_dir, name)?;
            names.insert(path.clone(), is_dir);
            match h.kind {
                Kind::Symlink | Kind::Hardlink => {
                    let link = link_target(&path, h.kind, &h.link);
                    charge(
                        &budget,
                        &charged,
                        link.len() as u64 + NAME_OVERHEAD,
                        "member names",
                        name,
                    )?;
                    members.insert(
                        path,
                        StreamMember {
                            link: Some(link),
                            held: None,
                        },
                    );
                    continue;
                }
                Kind::File => {}
                _ => continue,
            }
            let mut prefix = vec![0u8; (h.size.min(512)) as usize];
            tr.data().read_exact(&mut prefix).map_err(read_err)?;
            let json = looks_like_json(&prefix) && h.size <= super::MAX_JSON;
            let layerish = looks_like_layer(&prefix) || (!json && h.size > SMALL);
            if !layerish {
                // Charged before it is read: a stream of many documents
                // stops at the budget, not at the OOM killer.
                charge(
                    &budget,
                    &charged,
                    h.size,
                    &format!("small members kept while streaming (at {})", shown(&path)),
                    name,
                )?;
                let mut data = prefix;
                data.reserve((h.size as usize).saturating_sub(data.len()));
                tr.data().read_to_end(&mut data).map_err(read_err)?;
                members.insert(
                    path,
                    StreamMember {
                        link: None,
                        held: Some(Held::Small(data)),
                    },
                );
                continue;
            }
            // A layer: hand its bytes to a worker while we keep reading.
            let mut opts = base_opts.clone();
            opts.raw_algorithms = vec![Algorithm::Sha256];
            if path.starts_with("blobs/sha512/") {
                opts.raw_algorithms.push(Algorithm::Sha512);
            }
            opts.tar_algorithms = vec![Algorithm::Sha256];
            token_tx
                .send(())
                .map_err(|_| Error::Usage("worker pool closed".into()))?;
            let (tx, rx) = layer::channel();
            let results = &results;
            let token_rx = token_rx.clone();
            let key = path.clone();
            scope.spawn(move || {
                let r =
                    layer::scan_layer(layer::ChunkSource::new(rx, prefix), &opts).map_err(|e| e.0);
                if let Ok(mut m) = results.lock() {
                    m.insert(key, r);
                }
                let _ = token_rx.recv();
            });
            // A worker that stopped early (a bad layer) makes `pump` return:
            // the rest of the member is skipped by the next header read.
            let pumped = tx.pump(&mut tr.data(), |_| {});
            drop(tx);
            pumped.map_err(read_err)?;
            members.insert(
                path,
                StreamMember {
                    link: None,
                    held: Some(Held::Scanned),
                },
            );
        }
        check_parents(&names, |d| *d, name)?;
        // Read what follows the end-of-archive marker, so that a gzip or
        // zstd wrapper is checked to its end.
        let mut rest = tr.into_inner().into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| Error::read(name, e))?;
        Ok(())
    });
    let results = results
        .into_inner()
        .map_err(|_| Error::Usage("a layer worker panicked".into()));
    let (Ok(()), Ok(results)) = (outcome.as_ref().map(drop), results) else {
        give_back(&charged);
        return Err(match outcome {
            Err(e) => e,
            Ok(()) => Error::Usage("a layer worker panicked".into()),
        });
    };
    drop(names);
    let uses = count_uses(&members);
    let taken = results
        .into_iter()
        .map(|(k, result)| {
            let uses_left = uses.get(&k).copied().unwrap_or(1).max(1);
            (k, Taken { uses_left, result })
        })
        .collect();
    Ok(StreamContainer {
        name: name.to_owned(),
        members,
        taken: Mutex::new(taken),
        budget: budget.clone(),
        charged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_normalise_like_docker() {
        assert_eq!(normalize_tag("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize_tag("lab/test:v1"), "docker.io/lab/test:v1");
        assert_eq!(
            normalize_tag("127.0.0.1:5000/a/b"),
            "127.0.0.1:5000/a/b:latest"
        );
        assert_eq!(
            normalize_tag("docker.io/lab/test:v1"),
            "docker.io/lab/test:v1"
        );
    }

    #[test]
    fn symlink_members_resolve_relative_to_their_dir() {
        assert_eq!(
            link_target("abc/layer.tar", Kind::Symlink, b"../def.tar"),
            "def.tar"
        );
        assert_eq!(link_target("x", Kind::Hardlink, b"./y/z"), "y/z");
    }

    fn tar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, d) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, &d[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn opts_with_budget(limit: u64) -> (LayerOptions, Arc<MemoryBudget>) {
        let budget = Arc::new(MemoryBudget::new(limit));
        let opts = LayerOptions {
            budget: budget.clone(),
            ..LayerOptions::default()
        };
        (opts, budget)
    }

    /// The JSON-looking members a stream keeps are charged to the memory
    /// budget: many of them stop at it (naming it), and a container gives its
    /// charge back when dropped.
    #[test]
    fn stream_of_many_json_members_stops_at_the_memory_budget() {
        let doc = format!("{{\"a\":\"{}\"}}", "x".repeat(8 << 10)).into_bytes();
        let names: Vec<String> = (0..300).map(|i| format!("doc{i}.json")).collect();
        let members: Vec<(&str, Vec<u8>)> =
            names.iter().map(|n| (n.as_str(), doc.clone())).collect();
        let tar = tar_of(&members);
        let (opts, budget) = opts_with_budget(1 << 20);
        let Err(err) = scan_stream(&tar[..], "standard input", &opts, 1) else {
            panic!("2.4 MiB of documents fit a 1 MiB budget")
        };
        assert!(matches!(err, Error::Limit { .. }), "{err}");
        assert!(err.to_string().contains("memory budget of 1 MiB"), "{err}");
        assert_eq!(budget.used(), 0, "a failed stream gives its charge back");
        let (opts, budget) = opts_with_budget(64 << 20);
        let c = scan_stream(&tar[..], "standard input", &opts, 1).unwrap();
        assert!(budget.used() >= 300 * doc.len() as u64);
        drop(c);
        assert_eq!(budget.used(), 0);
    }

    /// Duplicate member names (after cleaning) are refused in both readers;
    /// duplicate directories are fine.
    #[test]
    fn duplicate_members_are_ambiguous() {
        let tar = tar_of(&[
            ("manifest.json", b"[]".to_vec()),
            ("./manifest.json", b"[1]".to_vec()),
        ]);
        let (opts, _) = opts_with_budget(1 << 30);
        assert!(matches!(
            scan_stream(&tar[..], "s", &opts, 1),
            Err(Error::Ambiguous { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar");
        std::fs::write(&p, &tar).unwrap();
        assert!(matches!(
            ArchiveContainer::open(&p),
            Err(Error::Ambiguous { .. })
        ));
        let names = BTreeMap::from([("blobs".to_owned(), true)]);
        check_new_name(&names, |d| *d, "blobs", true, "a").unwrap();
        assert!(check_new_name(&names, |d| *d, "blobs", false, "a").is_err());
    }

    /// manifest.json keys map to moby's manifestItem fields the Go way.
    #[test]
    fn docker_manifest_keys_are_read_as_go_reads_them() {
        let items = parse_docker_manifest(
            br#"[{"config":"c.json","LAYERS":["l"],"repotags":["t"]}]"#,
            "m",
        )
        .unwrap();
        assert_eq!(items[0].config, "c.json");
        assert_eq!(items[0].layers, ["l"]);
        assert_eq!(items[0].repo_tags.as_deref(), Some(&["t".to_owned()][..]));
        assert!(matches!(
            parse_docker_manifest(br#"[{"Config":"c","Layers":[],"layers":["l"]}]"#, "m"),
            Err(Error::Ambiguous { .. })
        ));
    }

    /// The archive file must be a regular file (a FIFO would be read twice).
    #[test]
    fn archive_container_wants_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ArchiveContainer::open(dir.path()).is_err());
    }

    /// A raw member of type `typeflag` (a PAX global header's data is its
    /// records).
    fn raw_member(b: &mut tar::Builder<Vec<u8>>, name: &str, typeflag: u8, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::new(typeflag));
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    }

    fn file_and_stream(tar: &[u8]) -> [Result<()>; 2] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar");
        std::fs::write(&p, tar).unwrap();
        let (opts, _) = opts_with_budget(1 << 30);
        [
            ArchiveContainer::open(&p).map(|c| {
                assert!(c.exists("manifest.json"));
                assert_eq!(c.read_small("manifest.json", 100).unwrap(), b"[]");
            }),
            scan_stream(tar, "s", &opts, 1).map(|c| {
                assert!(c.exists("manifest.json"));
                assert_eq!(c.read_small("manifest.json", 100).unwrap(), b"[]");
            }),
        ]
    }

    /// A PAX global header named `manifest.json` after the real one, or named
    /// like a directory above it, is skipped as moby and containerd skip it.
    #[test]
    fn pax_global_headers_are_skipped() {
        let mut b = tar::Builder::new(Vec::new());
        raw_member(&mut b, "pax_global_header", b'g', b"17 comment=hello\n");
        raw_member(&mut b, "x", b'g', b"");
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "manifest.json", &b"[]"[..]).unwrap();
        b.append_data(&mut h, "x/y.json", &b"[]"[..]).unwrap();
        raw_member(&mut b, "manifest.json", b'g', b"17 comment=hello\n");
        let tar = b.into_inner().unwrap();
        for r in file_and_stream(&tar) {
            r.unwrap();
        }
    }

    /// A PAX global header before a member of its name is refused:
    /// containers/image would read the header in the member's place.
    #[test]
    fn pax_global_header_before_its_namesake_is_ambiguous() {
        let mut b = tar::Builder::new(Vec::new());
        raw_member(&mut b, "./manifest.json", b'g', b"");
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "manifest.json", &b"[]"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        for r in file_and_stream(&tar) {
            let err = r.unwrap_err();
            assert!(matches!(err, Error::Ambiguous { .. }), "{err}");
            assert!(err.to_string().contains("PAX global header"), "{err}");
        }
    }

    /// Members of other types (`7`, GNU `V`, vendor `X`) are refused: moby
    /// fails on them, containerd skips them.
    #[test]
    fn other_member_types_are_ambiguous() {
        for t in [b'7', b'V', b'D', b'X'] {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(2);
            h.set_mode(0o644);
            b.append_data(&mut h, "manifest.json", &b"[]"[..]).unwrap();
            raw_member(&mut b, "notes", t, b"hi");
            let tar = b.into_inner().unwrap();
            for r in file_and_stream(&tar) {
                let err = r.unwrap_err();
                assert!(
                    matches!(err, Error::Ambiguous { .. }),
                    "{}: {err}",
                    t as char
                );
                assert!(err.to_string().contains("member notes"), "{err}");
            }
        }
    }

    /// The tar reader's "ambiguous image:" refusals (here a member name that
    /// is not UTF-8) reach the caller as `Error::Ambiguous`, naming the
    /// archive, and are not said twice.
    #[test]
    fn tar_reader_refusals_are_ambiguous() {
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o644);
        h.as_old_mut().name[..4].copy_from_slice(b"a\xffb\0");
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend_from_slice(&[0u8; 1024]);
        for r in file_and_stream(&tar) {
            let err = r.unwrap_err();
            assert!(matches!(err, Error::Ambiguous { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.starts_with("ambiguous image: archive "), "{msg}");
            assert_eq!(msg.matches("ambiguous image").count(), 1, "{msg}");
            assert!(msg.contains("not UTF-8"), "{msg}");
        }
    }
}
