//! Where images come from, and how one image is picked out of a container
//! (archive, layout, stream).
//!
//! Every transport answers one call, [`open`], with the same [`Opened`]: a
//! [`Container`] that can scan each layer, and a [`Plan`] (the verified
//! config, and for each layer where its bytes are and which digests they
//! must have). Sources only open images: scanning the layers, verifying them
//! and judging the result is [`crate::scan`](mod@crate::scan)'s, for every transport alike.
//! Resolution (reading `manifest.json`, `index.json`, manifests, picking a
//! reference and a platform) is shared by all containers through the
//! [`Container`] trait.
//!
//! The network transports are cargo features of the library (both on by
//! default): `registry` (oci-client, reqwest, rustls, tokio) and `daemon`
//! (the local engine's API). A build without one refuses its inputs with
//! [`Error::NotBuilt`].

use std::path::{Path, PathBuf};

use crate::config::ImageConfig;
use crate::digest::{self, Digest};
use crate::error::{Error, RegistryError, Result};
use crate::layer::{self, LayerIndex, LayerOptions};

pub mod archive;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod layout;
mod local;
pub mod media;
pub mod oci;
pub mod platform;
pub mod registry;

pub use local::open_stream;
pub use platform::Platform;
use registry::RegistryOptions;

/// Largest JSON document (manifest, index, config) read into memory.
pub const MAX_JSON: u64 = 16 << 20;

/// What opening an image needs: a view of [`crate::ScanOptions`].
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions<'a> {
    /// Which image to pick from an index or archive.
    pub selection: &'a Selection,
    /// Per-layer limits and the image's memory budget; streams scan their
    /// layers while they are read, so opening one scans them.
    pub layer: &'a LayerOptions,
    /// Layers scanned at once while reading a stream.
    pub stream_workers: usize,
    /// Registry access (the local engine's idle limit is its
    /// `request_timeout` too).
    pub registry: &'a RegistryOptions,
}

/// An opened image: what [`crate::scan::finish`] scans.
///
/// Whatever the source needs to stay alive while its layers are read (a
/// registry's async runtime, a stream's scanned layers) is owned by the
/// container, and let go when it is dropped.
pub struct Opened {
    /// Where the layers are read from.
    pub container: Box<dyn Container>,
    /// The resolved image.
    pub plan: Plan,
    /// Layers to scan at once, when the source knows better than the CPU
    /// count: registry downloads block their thread on the network, so more
    /// may be in flight than there are CPUs (`--concurrency`).
    pub layer_workers: Option<usize>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("container", &self.container.describe())
            .field("plan", &self.plan)
            .field("layer_workers", &self.layer_workers)
            .finish()
    }
}

impl Opened {
    /// A container and its plan, scanned with the default number of workers.
    pub fn new(container: impl Container + 'static, plan: Plan) -> Self {
        Self {
            container: Box::new(container),
            plan,
            layer_workers: None,
        }
    }
}

/// Opens the image `input` names, whatever its transport.
pub fn open(input: &Input, opts: &OpenOptions<'_>) -> Result<Opened> {
    match input.transport {
        Transport::Registry => open_registry(input, opts),
        Transport::DockerDaemon => open_daemon(input, opts),
        Transport::Reference => open_reference(input, opts),
        Transport::Auto
        | Transport::DockerArchive
        | Transport::OciArchive
        | Transport::OciLayout => local::open(input, opts),
    }
}

/// A bare name: the registry first; when the image is not there (or the
/// registry cannot be reached or refuses), the local engine.
fn open_reference(input: &Input, opts: &OpenOptions<'_>) -> Result<Opened> {
    match open_registry(input, opts) {
        Err(Error::Registry(e)) if e.is_absent() => match open_daemon(input, opts) {
            Ok(o) => Ok(o),
            // Without the engine transport there is nothing else to try.
            Err(Error::NotBuilt { .. }) => Err(Error::Registry(e)),
            Err(d) => Err(Error::Registry(RegistryError::NotInEngineEither {
                registry_error: Box::new(e),
                engine: d.to_string(),
            })),
        },
        other => other,
    }
}

#[cfg(feature = "registry")]
fn open_registry(input: &Input, opts: &OpenOptions<'_>) -> Result<Opened> {
    registry::open(input, opts)
}

#[cfg(not(feature = "registry"))]
fn open_registry(input: &Input, _: &OpenOptions<'_>) -> Result<Opened> {
    Err(Error::NotBuilt {
        what: input.source.clone(),
        feature: "registry",
    })
}

#[cfg(feature = "daemon")]
fn open_daemon(input: &Input, opts: &OpenOptions<'_>) -> Result<Opened> {
    daemon::open(input, opts)
}

#[cfg(not(feature = "daemon"))]
fn open_daemon(input: &Input, _: &OpenOptions<'_>) -> Result<Opened> {
    Err(Error::NotBuilt {
        what: input.source.clone(),
        feature: "daemon",
    })
}

/// How the user named the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Detect from the content.
    Auto,
    /// `docker-archive:`.
    DockerArchive,
    /// `oci-archive:`.
    OciArchive,
    /// `oci:` (a layout directory).
    OciLayout,
    /// `docker://REF`: a registry reference.
    Registry,
    /// `docker-daemon:NAME[:TAG]`: the local engine.
    DockerDaemon,
    /// A bare name that is not a file: the registry, then the local engine.
    Reference,
}

/// A parsed image argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The argument as given.
    pub source: String,
    /// The transport prefix, if any.
    pub transport: Transport,
    /// The file or directory (`None` for standard input).
    pub path: Option<PathBuf>,
    /// `REF` after the path, if any.
    pub reference: Option<String>,
}

impl Input {
    /// Parses `-`, `PATH`, `PATH:REF`, `docker-archive:PATH[:REF]`,
    /// `oci-archive:PATH[:REF]`, `oci:DIR[:REF]`, `docker://REF`,
    /// `docker-daemon:NAME[:TAG]` and bare registry references.
    ///
    /// A bare argument is a file when a file (or `PATH:REF`) of that name
    /// exists, otherwise an image reference (`alpine`,
    /// `registry.example.com/team/app:1.4`), pulled from the registry and,
    /// when the registry does not have it or cannot be reached, from the
    /// local engine.
    pub fn parse(arg: &str) -> Result<Self> {
        for (prefix, transport) in [
            ("docker://", Transport::Registry),
            ("docker-daemon:", Transport::DockerDaemon),
        ] {
            if let Some(r) = arg.strip_prefix(prefix) {
                if transport == Transport::Registry {
                    registry::check_reference(r)?;
                } else if r.is_empty() {
                    return Err(Error::Usage(format!("`{arg}` names no image")));
                }
                return Ok(Self {
                    source: arg.to_owned(),
                    transport,
                    path: None,
                    reference: Some(r.to_owned()),
                });
            }
        }
        let (transport, rest) = if let Some(r) = arg.strip_prefix("docker-archive:") {
            (Transport::DockerArchive, r)
        } else if let Some(r) = arg.strip_prefix("oci-archive:") {
            (Transport::OciArchive, r)
        } else if let Some(r) = arg.strip_prefix("oci:") {
            (Transport::OciLayout, r)
        } else {
            (Transport::Auto, arg)
        };
        if rest == "-" {
            return Ok(Self {
                source: arg.to_owned(),
                transport,
                path: None,
                reference: None,
            });
        }
        if rest.is_empty() {
            return Err(Error::Usage(format!("`{arg}` names no file")));
        }
        // The path is the longest prefix (ending before a `:`) that exists;
        // references may contain `:` themselves (`busybox:latest`).
        let (path, reference) = if Path::new(rest).exists() {
            (rest, None)
        } else {
            let mut found = None;
            for (i, _) in rest.match_indices(':') {
                if i > 0 && Path::new(&rest[..i]).exists() {
                    found = Some((&rest[..i], Some(rest[i + 1..].to_owned())));
                    break;
                }
            }
            match found {
                Some(f) => f,
                None if transport == Transport::Auto
                    && !looks_like_path(rest)
                    && registry::is_reference(rest) =>
                {
                    return Ok(Self {
                        source: arg.to_owned(),
                        transport: Transport::Reference,
                        path: None,
                        reference: Some(rest.to_owned()),
                    });
                }
                None => {
                    return Err(Error::Io {
                        path: PathBuf::from(rest),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no such file or directory (and not an image reference such as \
                             registry.example.com/team/app:1.4)",
                        ),
                    });
                }
            }
        };
        Ok(Self {
            source: arg.to_owned(),
            transport,
            path: Some(PathBuf::from(path)),
            reference: reference.filter(|r| !r.is_empty()),
        })
    }
}

impl Input {
    /// Whether this input is standard input (`-`).
    pub fn is_stdin(&self) -> bool {
        self.path.is_none()
            && matches!(
                self.transport,
                Transport::Auto
                    | Transport::DockerArchive
                    | Transport::OciArchive
                    | Transport::OciLayout
            )
    }
}

/// Whether an argument that names nothing on disk was meant as a file: it
/// has a path shape or an archive extension. Such names get "no such file"
/// rather than a registry lookup.
fn looks_like_path(s: &str) -> bool {
    s.starts_with('/')
        || s.starts_with("./")
        || s.starts_with("../")
        || s.starts_with('~')
        || s.contains('\\')
        || [
            ".tar",
            ".tar.gz",
            ".tgz",
            ".tar.zst",
            ".tar.zstd",
            ".json",
            ".oci",
        ]
        .iter()
        .any(|ext| s.ends_with(ext))
}

/// Options for picking an image.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The platform wanted from an index.
    pub platform: Platform,
    /// Whether the user asked for it explicitly (`--platform`).
    pub platform_explicit: bool,
}

impl Default for Selection {
    fn default() -> Self {
        Self {
            platform: Platform::host_default(),
            platform_explicit: false,
        }
    }
}

/// A store of named blobs: the members of an archive or the files of a layout.
pub trait Container: Sync {
    /// How to name it in messages.
    fn describe(&self) -> String;
    /// Whether `path` (normalised, `/`-separated) exists as a file.
    fn exists(&self, path: &str) -> bool;
    /// Reads a small file whole, refusing more than `limit` bytes.
    fn read_small(&self, path: &str, limit: u64) -> Result<Vec<u8>>;
    /// Streams one layer blob through [`crate::layer::scan_layer`]. With no
    /// digest algorithms in `opts` (`--no-verify`), a container that holds
    /// the layer in a local file may seek over member data instead
    /// ([`crate::layer::scan_layer_seekable`]).
    fn scan_layer(&self, plan: &LayerPlan, opts: &LayerOptions) -> Result<LayerIndex>;
    /// The layer's stored size, if known, to schedule the largest first.
    fn layer_size(&self, plan: &LayerPlan) -> Option<u64> {
        plan.size
    }
}

/// The error for a layer that could not be read.
pub fn layer_error(plan: &LayerPlan, e: layer::LayerError) -> Error {
    let name = plan
        .digest
        .as_ref()
        .map_or_else(|| plan.path.clone(), ToString::to_string);
    Error::BadLayer {
        layer: format!("{} ({name})", plan.index),
        why: e.0,
    }
}

/// Where one layer's bytes are, and what they must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    /// Position, 0 = base.
    pub index: usize,
    /// Member path (archive, layout) of the blob.
    pub path: String,
    /// The digest of the stored bytes, when known (OCI descriptors, blob
    /// paths named by digest). Docker's legacy `<id>/layer.tar` has none.
    pub digest: Option<Digest>,
    /// `config.rootfs.diff_ids[index]`.
    pub diff_id: Digest,
    /// Media type from the manifest, if any.
    pub media_type: Option<String>,
    /// Size from the descriptor, if any.
    pub size: Option<u64>,
}

/// A resolved image: everything needed to scan it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `docker-archive`, `oci-archive` or `oci-layout`.
    pub format: &'static str,
    /// The reference picked, if the container named one.
    pub reference: Option<String>,
    /// The base image the manifest's annotations name, if any.
    pub base: Option<crate::model::BaseImage>,
    /// The manifest digest (OCI).
    pub manifest_digest: Option<Digest>,
    /// The index digest, when the manifest was picked from a nested index.
    pub index_digest: Option<Digest>,
    /// The config digest.
    pub config_digest: Digest,
    /// The parsed config.
    pub config: ImageConfig,
    /// The layers.
    pub layers: Vec<LayerPlan>,
}

/// Path of a blob in a layout (and in an oci-archive): `blobs/<alg>/<hex>`.
pub fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

/// The digest a blob path promises: `blobs/<alg>/<hex>`, or `<hex>.json` /
/// `<hex>.tar` as docker and skopeo name configs and layers.
pub fn digest_from_path(path: &str) -> Option<Digest> {
    let mut parts = path.rsplit('/');
    let last = parts.next()?;
    if let Some(alg) = parts.next()
        && parts.next() == Some("blobs")
        && let Ok(d) = Digest::parse(&format!("{alg}:{last}"))
    {
        return Some(d);
    }
    let stem = last
        .strip_suffix(".json")
        .or_else(|| last.strip_suffix(".tar"))?;
    Digest::parse(&format!("sha256:{stem}")).ok()
}

/// Reads and verifies a blob whose digest is known.
pub fn read_verified(
    c: &dyn Container,
    path: &str,
    expected: &Digest,
    what: &str,
) -> Result<Vec<u8>> {
    if !c.exists(path) {
        return Err(Error::MissingBlob {
            digest: expected.to_string(),
            what: what.to_owned(),
            container: c.describe(),
        });
    }
    let data = c.read_small(path, MAX_JSON)?;
    digest::verify_bytes(&format!("{what} ({path})"), expected, &data)?;
    Ok(data)
}

/// Which format a container holds, from its member names.
pub fn detect(c: &dyn Container, transport: Transport) -> Result<&'static str> {
    let has_manifest = c.exists("manifest.json");
    let has_index = c.exists("index.json");
    match transport {
        Transport::DockerArchive if has_manifest => Ok("docker-archive"),
        Transport::DockerArchive => Err(Error::not_an_image(
            c.describe(),
            "docker-archive without manifest.json",
        )),
        Transport::OciArchive | Transport::OciLayout if has_index => Ok("oci"),
        Transport::OciArchive | Transport::OciLayout => Err(Error::not_an_image(
            c.describe(),
            "OCI layout without index.json",
        )),
        Transport::Auto | Transport::DockerDaemon if has_manifest => Ok("docker-archive"),
        Transport::Auto | Transport::DockerDaemon if has_index => Ok("oci"),
        Transport::Auto | Transport::Registry | Transport::DockerDaemon | Transport::Reference => {
            Err(Error::not_an_image(
                c.describe(),
                "no manifest.json (docker save) or index.json (OCI layout) found",
            ))
        }
    }
}

/// Resolves the image in a container.
pub fn resolve(
    c: &dyn Container,
    transport: Transport,
    reference: Option<&str>,
    sel: &Selection,
    oci_format_name: &'static str,
) -> Result<Plan> {
    match detect(c, transport)? {
        "docker-archive" => archive::resolve_docker(c, reference),
        _ => oci::resolve_oci(c, reference, sel, oci_format_name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_from_paths() {
        let h = "6d3df9a8b5b2dc6e06fe6db8cc05b36c8a48deaa3ffb41cc6ca7ec3a8f1a3f31";
        assert_eq!(
            digest_from_path(&format!("blobs/sha256/{h}"))
                .unwrap()
                .hex(),
            h
        );
        assert_eq!(digest_from_path(&format!("{h}.tar")).unwrap().hex(), h);
        assert_eq!(digest_from_path(&format!("{h}.json")).unwrap().hex(), h);
        assert!(digest_from_path(&format!("{h}/layer.tar")).is_none());
        assert!(digest_from_path("blobs/sha256/zz").is_none());
    }

    #[test]
    fn parses_inputs() {
        let i = Input::parse("-").unwrap();
        assert_eq!(i.path, None);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("img.tar");
        std::fs::write(&f, b"x").unwrap();
        let s = f.to_str().unwrap();
        let i = Input::parse(&format!("docker-archive:{s}:busybox:latest")).unwrap();
        assert_eq!(i.transport, Transport::DockerArchive);
        assert_eq!(i.path.as_deref(), Some(f.as_path()));
        assert_eq!(i.reference.as_deref(), Some("busybox:latest"));
        let i = Input::parse(s).unwrap();
        assert_eq!(i.reference, None);
        assert!(Input::parse("/does/not/exist.tar").is_err());
        assert!(Input::parse("missing.tar").is_err());
        let i = Input::parse("127.0.0.1:5000/lab/app:v1").unwrap();
        assert_eq!(i.transport, Transport::Reference);
        assert_eq!(i.reference.as_deref(), Some("127.0.0.1:5000/lab/app:v1"));
        assert!(!i.is_stdin());
        let i = Input::parse("docker://alpine").unwrap();
        assert_eq!(i.transport, Transport::Registry);
        assert!(Input::parse("docker://Bad Ref").is_err());
        let i = Input::parse("docker-daemon:app:dev").unwrap();
        assert_eq!(i.transport, Transport::DockerDaemon);
        assert_eq!(i.reference.as_deref(), Some("app:dev"));
        assert!(Input::parse("-").unwrap().is_stdin());
    }
}
