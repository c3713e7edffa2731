//! Errors of the scanning library.
//!
//! Every error means "no report": a scan either judges the whole image from
//! verified bytes or fails. Messages are lowercase, name the operation and the
//! object (a blob digest, an archive member), and never contain credentials.

use std::io;
use std::path::PathBuf;

pub mod daemon;
pub mod registry;

pub use daemon::DaemonError;
pub use registry::RegistryError;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a scan could not produce a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened or read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A stream (archive, layer, standard input) failed or ended early.
    #[error("reading {what}: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The input is not an image imgscan understands.
    #[error("{what} is not a container image: {why}")]
    NotAnImage {
        /// The input.
        what: String,
        /// What is missing or wrong.
        why: String,
    },
    /// A manifest, index or config is malformed.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// The document (with its digest or member name).
        what: String,
        /// What is wrong with it.
        why: String,
    },
    /// A layer tar is truncated or malformed.
    #[error("layer {layer}: {why}")]
    BadLayer {
        /// The layer (index and digest).
        layer: String,
        /// What is wrong with it.
        why: String,
    },
    /// A digest string is malformed or uses an unsupported algorithm.
    #[error("bad digest `{digest}`: {why}")]
    BadDigest {
        /// The digest as found.
        digest: String,
        /// What is wrong with it.
        why: String,
    },
    /// Content does not match its digest: tampering or corruption.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob or layer.
        what: String,
        /// The digest the manifest, config or file name promised.
        expected: String,
        /// The digest of the bytes actually read.
        actual: String,
    },
    /// Content cannot be verified, so it is not used.
    #[error("cannot verify {what}: {why}")]
    Unverifiable {
        /// The blob.
        what: String,
        /// Why.
        why: String,
    },
    /// A blob named by the manifest is not in the archive or layout.
    #[error("blob {digest} ({what}) is missing from {container}")]
    MissingBlob {
        /// Its digest or member path.
        digest: String,
        /// What it is (config, layer 2, ...).
        what: String,
        /// The archive or layout.
        container: String,
    },
    /// The archive or layout holds several images and none was picked.
    #[error("{container} holds {count} images; pick one with `{container}:REF`, one of: {choices}")]
    AmbiguousImage {
        /// The archive or layout.
        container: String,
        /// How many images it holds.
        count: usize,
        /// The references to pick from.
        choices: String,
    },
    /// The requested reference is not in the archive or layout.
    #[error("{container} has no image `{reference}`; it has: {choices}")]
    UnknownReference {
        /// The archive or layout.
        container: String,
        /// What was asked for.
        reference: String,
        /// What is there.
        choices: String,
    },
    /// No manifest for the requested platform.
    #[error("{what} has no image for platform {platform}; it offers: {choices}")]
    NoSuchPlatform {
        /// The index.
        what: String,
        /// The platform asked for.
        platform: String,
        /// The platforms present.
        choices: String,
    },
    /// Container runtimes would read these bytes differently from each other
    /// or from imgscan (a tar header, a JSON key, a passwd line): the image is
    /// refused rather than judged from a reading the runtime does not share.
    #[error("ambiguous image: {what} is read differently by container runtimes: {why}")]
    Ambiguous {
        /// The document, member or layer.
        what: String,
        /// What is ambiguous.
        why: String,
    },
    /// A safety limit was exceeded.
    #[error("{what} exceeds the limit of {limit}: {why}")]
    Limit {
        /// What grew too large.
        what: String,
        /// The limit.
        limit: String,
        /// Advice.
        why: String,
    },
    /// An invalid argument or configuration.
    #[error("{0}")]
    Usage(String),
    /// A registry pull failed: network, TLS, auth, not found, server errors.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The local engine (Docker Engine API) could not provide the image.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The input needs a transport this build of the library leaves out
    /// (the `registry` and `daemon` cargo features).
    #[error(
        "cannot scan {what}: this imgscan was built without the `{feature}` feature \
         (rebuild with `--features {feature}`)"
    )]
    NotBuilt {
        /// The image argument.
        what: String,
        /// The cargo feature it needs.
        feature: &'static str,
    },
}

impl Error {
    /// A [`Error::Read`] for `what`.
    pub fn read(what: impl Into<String>, source: io::Error) -> Self {
        Self::Read {
            what: what.into(),
            source,
        }
    }

    /// A [`Error::Malformed`].
    pub fn malformed(what: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Malformed {
            what: what.into(),
            why: why.into(),
        }
    }

    /// An [`Error::Ambiguous`].
    pub fn ambiguous(what: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Ambiguous {
            what: what.into(),
            why: why.into(),
        }
    }

    /// A [`Error::NotAnImage`].
    pub fn not_an_image(what: impl Into<String>, why: impl Into<String>) -> Self {
        Self::NotAnImage {
            what: what.into(),
            why: why.into(),
        }
    }
}
