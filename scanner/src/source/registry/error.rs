//! How oci-client and reqwest failures become [`RegistryError`]s (defined
//! with the library's errors, [`crate::error::registry`]), said so that a
//! user knows what to do next: which host, which request, which credentials
//! were tried.
//!
//! # Security
//!
//! Messages never contain a password, token or `Authorization` header: only
//! the username and where the credentials came from. Bodies that registries
//! return are cut to a few hundred characters.

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// Shortens text from the other side (error bodies) for messages.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 300;
    let s = s.trim();
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX)
        .collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// The error's chain, joined, for matching and for messages.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// How an oci-client failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Class {
    /// Worth retrying (429, 5xx, connection reset, timeout).
    Transient,
    /// The connection could not be made at all.
    Connect,
    /// Retrying cannot help.
    #[default]
    Permanent,
}

/// A failure of one registry request, kept structured until it is turned
/// into a [`RegistryError`] with the context of the pull.
#[derive(Debug, Default)]
pub(crate) struct Failure {
    pub(crate) class: Class,
    /// HTTP status, when there was a response.
    pub(crate) status: Option<u16>,
    /// OCI error code from the body, when there was one.
    pub(crate) code: Option<String>,
    /// Description (clipped).
    pub(crate) message: String,
    /// Whether it is a TLS failure.
    pub(crate) tls: bool,
    /// Whether it is a timeout.
    pub(crate) timeout: bool,
    /// A digest mismatch found by oci-client: (expected, actual).
    pub(crate) mismatch: Option<(String, String)>,
    /// Whether the overall deadline (`--timeout`) passed.
    pub(crate) overall: bool,
}

fn code_name(c: &OciErrorCode) -> String {
    match c {
        OciErrorCode::Other(s) => s.clone(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

fn is_tls_text(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.contains("certificate")
        || l.contains("tls")
        || l.contains("handshake")
        || l.contains("invalidcontenttype")
        || l.contains("corrupt message")
        || l.contains("unknownissuer")
}

/// Classifies a reqwest error.
pub(crate) fn from_reqwest(e: &reqwest::Error) -> Failure {
    let message = clip(&chain(e));
    let tls = is_tls_text(&message);
    let class = if tls {
        Class::Permanent
    } else if e.is_connect() {
        Class::Connect
    } else if e.is_timeout() || e.is_request() || e.is_body() || e.is_decode() {
        Class::Transient
    } else if e.is_builder() || e.is_redirect() {
        Class::Permanent
    } else {
        Class::Transient
    };
    Failure {
        class,
        status: e.status().map(|s| s.as_u16()),
        message,
        tls,
        timeout: e.is_timeout(),
        ..Failure::default()
    }
}

/// The (expected, actual) pair of an oci-client digest mismatch inside an
/// I/O error from a blob stream.
pub(crate) fn io_mismatch(e: &std::io::Error) -> Option<(String, String)> {
    let inner = e.get_ref()?;
    match inner.downcast_ref::<oci_client::errors::DigestError>() {
        Some(oci_client::errors::DigestError::VerificationError { expected, actual }) => {
            Some((expected.clone(), actual.clone()))
        }
        _ => None,
    }
}

/// Classifies an I/O error from a blob stream.
pub(crate) fn from_io(e: &std::io::Error) -> Failure {
    if let Some(m) = io_mismatch(e) {
        return Failure {
            message: format!("digest mismatch: expected {}, got {}", m.0, m.1),
            mismatch: Some(m),
            ..Failure::default()
        };
    }
    if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<reqwest::Error>()) {
        let mut f = from_reqwest(r);
        // A body that stops half-way is a dropped connection: resume.
        if f.class == Class::Connect {
            f.class = Class::Transient;
        }
        return f;
    }
    Failure {
        class: Class::Transient,
        message: clip(&chain(e)),
        timeout: e.kind() == std::io::ErrorKind::TimedOut,
        ..Failure::default()
    }
}

/// Whether an HTTP status is worth retrying.
pub(crate) fn status_class(status: u16) -> Class {
    match status {
        408 | 425 | 429 | 500 | 502 | 503 | 504 => Class::Transient,
        _ => Class::Permanent,
    }
}

/// Classifies an oci-client error.
pub(crate) fn from_oci(e: &OciDistributionError) -> Failure {
    let permanent = |status: Option<u16>, code: Option<String>, message: String| Failure {
        status,
        code,
        message,
        ..Failure::default()
    };
    match e {
        OciDistributionError::RequestError(r) => from_reqwest(r),
        OciDistributionError::IoError(io) => from_io(io),
        OciDistributionError::UnauthorizedError { .. } => {
            permanent(Some(401), None, "unauthorized".into())
        }
        OciDistributionError::AuthenticationFailure(body) => permanent(
            Some(401),
            None,
            format!("the token server refused: {}", clip(body)),
        ),
        OciDistributionError::RegistryError { envelope, .. } => {
            let first = envelope.errors.first();
            let code = first.map(|e| code_name(&e.code));
            let status = match first.map(|e| &e.code) {
                Some(OciErrorCode::Unauthorized) => Some(401),
                Some(OciErrorCode::Denied) => Some(403),
                Some(
                    OciErrorCode::NameUnknown
                    | OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NotFound,
                ) => Some(404),
                Some(OciErrorCode::Toomanyrequests) => Some(429),
                _ => None,
            };
            let message = clip(
                &envelope
                    .errors
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            Failure {
                class: if status == Some(429) {
                    Class::Transient
                } else {
                    Class::Permanent
                },
                status,
                code,
                message,
                ..Failure::default()
            }
        }
        OciDistributionError::ServerError { code, message, .. } => Failure {
            class: status_class(*code),
            status: Some(*code),
            message: clip(message),
            ..Failure::default()
        },
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => Failure {
            message: format!("digest mismatch: expected {expected}, got {actual}"),
            mismatch: Some((expected.clone(), actual.clone())),
            ..Failure::default()
        },
        other => permanent(None, None, clip(&chain(other))),
    }
}
