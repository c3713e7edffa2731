//! What can go wrong talking to a registry, said so that a user knows what to
//! do next: which host, which request, which credentials were tried.
//!
//! The type lives with the library's errors, not with the registry source,
//! so that [`crate::error`] depends on no source (and exists in builds
//! without the `registry` feature, whose CLI still names the type). The
//! classification of oci-client and reqwest failures into these variants is
//! the source's business: `source/registry/error.rs`.
//!
//! # Security
//!
//! Messages never contain a password, token or `Authorization` header: only
//! the username and where the credentials came from. Bodies that registries
//! return are cut to a few hundred characters.

/// Why a registry pull failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The image argument is not a valid reference.
    #[error("`{reference}` is not a valid image reference: {why}")]
    BadReference {
        /// The argument.
        reference: String,
        /// The parser's complaint.
        why: String,
    },
    /// No TCP connection (or no HTTP answer) could be had.
    #[error("cannot reach registry {registry} ({url}): {why}{hint}")]
    Unreachable {
        /// `host[:port]`.
        registry: String,
        /// The URL tried.
        url: String,
        /// The network error.
        why: String,
        /// Advice, starting with `; ` when present.
        hint: String,
    },
    /// The TLS handshake failed (unknown CA, wrong name, plain HTTP server).
    #[error("TLS connection to registry {registry} failed: {why}; {hint}")]
    Tls {
        /// `host[:port]`.
        registry: String,
        /// The TLS error.
        why: String,
        /// Advice.
        hint: String,
    },
    /// 401: no credentials, or the wrong ones.
    #[error(
        "registry {registry} refused {what} (401 unauthorized); credentials tried: {credentials}{hint}"
    )]
    Unauthorized {
        /// `host[:port]`.
        registry: String,
        /// The request (`the manifest of lab/app:1.4`).
        what: String,
        /// Which credential source was used (never the secret).
        credentials: String,
        /// Advice, starting with `; ` when present.
        hint: String,
    },
    /// 403: the credentials are valid but not allowed to pull.
    #[error("registry {registry} denied {what} (403 forbidden); credentials tried: {credentials}")]
    Forbidden {
        /// `host[:port]`.
        registry: String,
        /// The request.
        what: String,
        /// Which credential source was used.
        credentials: String,
    },
    /// 404: repository, tag, manifest or blob unknown.
    #[error("{what} was not found in registry {registry} ({code})")]
    NotFound {
        /// `host[:port]`.
        registry: String,
        /// `repository lab/app`, `tag 1.4 of lab/app`, `blob sha256:…`.
        what: String,
        /// `404 NAME_UNKNOWN` and the like.
        code: String,
    },
    /// Any other HTTP error, after retries when it was retryable.
    #[error("registry {registry} answered {status} to {what}{attempts}: {message}")]
    Http {
        /// `host[:port]`.
        registry: String,
        /// The request.
        what: String,
        /// The HTTP status (and OCI error code, if any).
        status: String,
        /// ` after N attempts` when retried.
        attempts: String,
        /// The registry's message, shortened.
        message: String,
    },
    /// A request or the whole pull took too long.
    #[error(
        "timed out {what} from registry {registry} (limit {limit}); raise --timeout or --request-timeout"
    )]
    Timeout {
        /// `host[:port]`.
        registry: String,
        /// `pulling blob sha256:…`.
        what: String,
        /// The limit that was hit.
        limit: String,
    },
    /// A connection broke and retries did not help.
    #[error("{what} from registry {registry} failed{attempts}: {why}")]
    Transfer {
        /// `host[:port]`.
        registry: String,
        /// The request.
        what: String,
        /// ` after N attempts` when retried.
        attempts: String,
        /// The last error.
        why: String,
    },
    /// The registry answered something that is not a registry answer.
    #[error("registry {registry}: {what}: {why}")]
    Protocol {
        /// `host[:port]`.
        registry: String,
        /// The request.
        what: String,
        /// What is wrong.
        why: String,
    },
    /// Credentials could not be read (a broken config file, a failing helper,
    /// an unreadable --ca-cert).
    #[error("{what}: {why}")]
    Setup {
        /// The file or helper.
        what: String,
        /// What failed.
        why: String,
    },
    /// A bare name was neither in the registry nor in the local engine.
    #[error("{registry_error}; tried the local engine too: {engine}")]
    NotInEngineEither {
        /// Why the registry pull failed.
        registry_error: Box<Self>,
        /// What the local engine said.
        engine: String,
    },
}

impl RegistryError {
    /// Whether the error means "the image is not there (or not reachable)",
    /// the cases in which a bare name falls back to the local engine.
    pub fn is_absent(&self) -> bool {
        match self {
            Self::NotFound { .. } | Self::Unreachable { .. } | Self::Tls { .. } => true,
            // Refused without credentials: a private or missing repository.
            // Refused with credentials is the user's error to see, not a
            // reason to scan some other copy.
            Self::Unauthorized { credentials, .. } | Self::Forbidden { credentials, .. } => {
                credentials.starts_with("none")
            }
            _ => false,
        }
    }
}
