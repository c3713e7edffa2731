//! What can go wrong asking the local engine (Docker Engine API) for an
//! image. Defined with the library's errors so that [`crate::error`] depends
//! on no source, and exists in builds without the `daemon` feature.

use std::io;

/// Why the local engine could not provide the image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// No engine to talk to.
    #[error("no local engine found: {why}")]
    NoEngine {
        /// What was looked at.
        why: String,
    },
    /// `DOCKER_HOST` is set to something unsupported.
    #[error("DOCKER_HOST={value} is not supported: {why}")]
    BadHost {
        /// The value.
        value: String,
        /// Why.
        why: String,
    },
    /// The connection failed.
    #[error("cannot connect to the local engine at {host}: {source}")]
    Connect {
        /// The engine address.
        host: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The engine does not have the image.
    #[error("the local engine at {host} has no image {name}: {message}")]
    NotFound {
        /// The engine address.
        host: String,
        /// The image name.
        name: String,
        /// The engine's message.
        message: String,
    },
    /// Any other HTTP error.
    #[error("the local engine at {host} answered {status} to {request}: {message}")]
    Http {
        /// The engine address.
        host: String,
        /// The request line.
        request: String,
        /// The status code.
        status: u16,
        /// The engine's message.
        message: String,
    },
    /// The answer is not HTTP as expected.
    #[error("the local engine at {host} sent a malformed answer: {why}")]
    Protocol {
        /// The engine address.
        host: String,
        /// What is wrong.
        why: String,
    },
}
