//! Images in a registry (`HOST[:PORT]/REPO[:TAG|@DIGEST]`, `docker://…`),
//! pulled with the `oci-client` crate and scanned as they stream in.
//!
//! # How a pull goes
//!
//! 1. The reference is parsed and normalised as docker does (`alpine` is
//!    `docker.io/library/alpine:latest`, served by `index.docker.io`).
//! 2. `GET /v2/` (our own request) finds the scheme and the auth scheme:
//!    HTTPS first; plain HTTP only for loopback hosts and `--insecure-registry`
//!    hosts whose HTTPS handshake failed (the rule docker applies to
//!    `127.0.0.0/8`). A Basic challenge is checked with the credentials right
//!    away, so wrong ones fail before anything is pulled; a Bearer challenge
//!    goes through oci-client's token flow (realm, service, scope).
//! 3. The manifest is pulled raw and checked against its digest (oci-client
//!    checks the `Docker-Content-Digest` header and the reference digest; we
//!    check the descriptor digest and size again). An index is resolved with
//!    our own platform rules (variants, attestations skipped, an error listing
//!    the platforms offered), shared with OCI layouts.
//! 4. The config blob is pulled (at most [`super::MAX_JSON`] bytes) and its
//!    sha256 checked against the manifest.
//! 5. Layers stream from `pull_blob_stream` through a bounded channel into
//!    [`crate::layer::scan_layer`] on a small thread pool, a few layers at a time:
//!    nothing touches the disk, downloads overlap with scanning, and the same
//!    `scan::finish` as for local images verifies the blob digest and
//!    diff_id, builds the final filesystem and runs the checks: [`open`]
//!    returns the container and the plan, the scan drives them.
//!
//! Blobs are always requested by bare digest, so descriptor `urls` (foreign
//! layers) are never fetched: a hostile manifest cannot make imgscan fetch
//! arbitrary URLs.
//!
//! # Retries and timeouts
//!
//! 429, 408 and 5xx answers, timeouts and broken connections are retried with
//! exponential backoff (`Retry-After` is honoured where imgscan sees the
//! response headers, on `GET /v2/`; oci-client does not expose them for
//! manifests and blobs). A blob whose connection drops half-way resumes with a
//! `Range` request from where it stopped; our own hash covers the whole blob.
//! Each request has a connect and idle-read limit, the whole image an overall
//! one.
//!
//! # Listing
//!
//! [`listing`] walks what a registry holds (`/v2/_catalog`, `tags/list`,
//! manifest `HEAD`s) for `imgscan serve`'s reconciliation, with the pulls'
//! HTTP client settings, retry policy and credentials.
//!
//! # The `registry` feature
//!
//! The network side (oci-client, reqwest, rustls, tokio) is compiled only
//! with the library's `registry` feature (on by default). Without it this
//! module keeps the plain types a caller configures ([`RegistryOptions`],
//! [`Credentials`], [`LayerStore`], [`Progress`]), so a CLI compiles either
//! way, and registry inputs fail with [`crate::Error::NotBuilt`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(feature = "registry")]
use oci_client::Reference;

#[cfg(feature = "registry")]
use super::{Input, OpenOptions, Opened};
use crate::digest::Digest;
#[cfg(feature = "registry")]
use crate::error::Result;
use crate::layer::LayerIndex;

#[cfg(feature = "registry")]
mod auth;
#[cfg(feature = "registry")]
mod blob;
mod credentials;
#[cfg(feature = "registry")]
mod error;
#[cfg(feature = "registry")]
pub mod listing;
#[cfg(feature = "registry")]
mod session;

pub use crate::error::RegistryError;
pub use credentials::{CredentialSource, Credentials};

/// How to talk to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Explicit credentials (`--username` + `--password-stdin`). When `None`,
    /// `IMGSCAN_USERNAME`/`IMGSCAN_PASSWORD`, then the docker and podman
    /// configs are consulted.
    pub credentials: Option<Credentials>,
    /// Extra trusted root certificates (PEM files), added to the system roots.
    pub ca_certs: Vec<PathBuf>,
    /// Registries (`host` or `host:port`) reached over plain HTTP or
    /// unverified TLS.
    pub insecure: Vec<String>,
    /// Limit for one image, from the first request to the last byte.
    pub timeout: Duration,
    /// Connect limit and idle-read limit of each request.
    pub request_timeout: Duration,
    /// Tries per request for retryable failures (1 = no retries).
    pub attempts: u32,
    /// First backoff delay (doubled on each retry, capped at 8 s).
    pub backoff: Duration,
    /// Layers downloaded and scanned at once.
    pub concurrency: usize,
    /// Layer scans shared between images, by blob digest: a [`LayerCache`]
    /// for one run, or any other [`LayerStore`] (`imgscan serve` keeps them
    /// in SQLite across restarts).
    pub layer_cache: Option<Arc<dyn LayerStore>>,
    /// Receives download progress (a progress display), if any.
    pub progress: Option<ProgressSink>,
}

/// Receives download progress, for a progress display. Calls come from
/// several threads.
pub trait Progress: Send + Sync {
    /// A pull starts: the image, its layer count and their total size as
    /// stored (compressed).
    fn start(&self, image: &str, layers: usize, bytes: u64);
    /// `n` more blob bytes arrived.
    fn advance(&self, n: u64);
    /// One layer is done (scanned, or taken from the run's cache).
    fn layer_done(&self);
    /// The pull ended, well or not.
    fn finish(&self);
}

/// A shared [`Progress`] receiver.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn Progress>);

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            credentials: None,
            ca_certs: Vec::new(),
            insecure: Vec::new(),
            timeout: Duration::from_secs(30 * 60),
            request_timeout: Duration::from_secs(60),
            attempts: 5,
            backoff: Duration::from_millis(250),
            concurrency: crate::budget::cpus().max(3),
            layer_cache: None,
            progress: None,
        }
    }
}

/// Where layer scans are kept by blob digest, so that a layer shared by
/// several images is downloaded and scanned once.
///
/// A layer is stored only after its blob digest and diff_id were verified,
/// and looked up only by blob digest, so an entry is the scan of exactly
/// those bytes. Neither method can fail: a store that cannot read an entry
/// (gone, corrupt, written by another version) answers `None` and the layer
/// is scanned again; one that cannot write drops the entry.
pub trait LayerStore: Send + Sync {
    /// The scan of the layer blob `digest`, if kept.
    fn get(&self, digest: &Digest) -> Option<LayerIndex>;
    /// Keeps the scan of the layer blob `digest`.
    fn put(&self, digest: &Digest, index: &LayerIndex);
}

impl std::fmt::Debug for dyn LayerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LayerStore")
    }
}

/// A [`LayerStore`] in memory, for the images of one run. Unbounded: a run
/// scans the images it was given and ends.
#[derive(Debug, Default)]
pub struct LayerCache {
    layers: Mutex<BTreeMap<String, LayerIndex>>,
}

impl LayerStore for LayerCache {
    fn get(&self, digest: &Digest) -> Option<LayerIndex> {
        self.layers.lock().ok()?.get(&digest.to_string()).cloned()
    }

    fn put(&self, digest: &Digest, index: &LayerIndex) {
        if let Ok(mut m) = self.layers.lock() {
            m.insert(digest.to_string(), index.clone());
        }
    }
}

impl LayerCache {
    /// How many layers are cached.
    pub fn len(&self) -> usize {
        self.layers.lock().map_or(0, |m| m.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses and normalises an image reference as docker does.
#[cfg(feature = "registry")]
pub fn parse_reference(s: &str) -> std::result::Result<Reference, RegistryError> {
    s.parse::<Reference>()
        .map_err(|e| RegistryError::BadReference {
            reference: error::clip(s),
            why: e.to_string(),
        })
}

/// Checks that `s` is an image reference (`docker://REF`).
pub fn check_reference(s: &str) -> std::result::Result<(), RegistryError> {
    #[cfg(feature = "registry")]
    return parse_reference(s).map(drop);
    #[cfg(not(feature = "registry"))]
    if is_reference(s) {
        Ok(())
    } else {
        Err(RegistryError::BadReference {
            reference: s.chars().take(300).collect(),
            why: "not a registry reference".to_owned(),
        })
    }
}

/// Checks the PEM file `path` of extra root certificates (`--ca-cert`,
/// `imgscan serve`'s `ca_cert`): how many certificates it holds (at least
/// one), or a message saying why it cannot be used.
#[cfg(feature = "registry")]
pub fn check_ca_certs(path: &std::path::Path) -> std::result::Result<usize, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs.len()),
        Ok(_) => Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )),
        Err(e) => Err(format!(
            "{} is not a valid PEM certificate file: {e}",
            path.display()
        )),
    }
}

/// Whether `s` parses as an image reference.
#[cfg(feature = "registry")]
pub fn is_reference(s: &str) -> bool {
    parse_reference(s).is_ok()
}

/// Whether `s` looks like an image reference. Without the `registry`
/// feature there is no reference parser, and a looser shape check decides
/// only whether a name that is no file is refused as "no such file" or as
/// "built without the `registry` feature": both fail.
#[cfg(not(feature = "registry"))]
pub fn is_reference(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['/', '.', ':', '@', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
}

fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            registry
        }
    })
}

/// Whether the registry host is this machine (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(feature = "registry")]
fn is_insecure(registry: &str, list: &[String]) -> bool {
    list.iter().any(|i| {
        let i = i
            .trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        i == registry || i == host_of(registry)
    })
}

/// Connects to the registry `input` names and resolves its image: the
/// container downloads each layer when the scan asks for it.
///
/// The container owns the session (the async runtime and the client); when
/// it is dropped, download tasks still unwinding are dropped with the
/// runtime and the progress display is told the pull ended.
#[cfg(feature = "registry")]
pub fn open(input: &Input, opts: &OpenOptions<'_>) -> Result<Opened> {
    let raw = input.reference.as_deref().unwrap_or(&input.source);
    let reference = parse_reference(raw)?;
    let session = session::Session::connect(reference, opts.registry)?;
    let plan = session.resolve(opts.selection)?;
    if let Some(p) = &opts.registry.progress {
        let bytes = plan.layers.iter().filter_map(|l| l.size).sum();
        p.0.start(&session.net.reference.whole(), plan.layers.len(), bytes);
    }
    let container = blob::RegistryContainer::new(session, opts.registry.layer_cache.clone());
    Ok(Opened {
        // Layer downloads block their thread on the network, so more layers
        // may be in flight than there are CPUs; `concurrency` bounds them.
        layer_workers: Some(opts.registry.concurrency.max(1)),
        ..Opened::new(container, plan)
    })
}

#[cfg(all(test, feature = "registry"))]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_like_docker() {
        let r = parse_reference("alpine").unwrap();
        assert_eq!(r.whole(), "docker.io/library/alpine:latest");
        assert_eq!(r.resolve_registry(), "index.docker.io");
        let r = parse_reference("127.0.0.1:5000/lab/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "lab/app");
        assert!(r.digest().is_some());
        assert!(parse_reference("Not/Valid").is_err());
        assert!(parse_reference("/abs/path.tar").is_err());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(!is_loopback("10.0.0.1"));
    }

    #[test]
    fn insecure_list_matches_host_or_host_port() {
        let l = vec!["reg.lan".to_owned(), "http://other:5000/".to_owned()];
        assert!(is_insecure("reg.lan:443", &l));
        assert!(is_insecure("other:5000", &l));
        assert!(!is_insecure("other:6000", &l));
    }
}
