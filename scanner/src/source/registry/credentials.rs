//! Registry credentials as the caller gives them ([`Credentials`]) and as a
//! pull reports which were used ([`CredentialSource`]). Plain data, present
//! in builds without the `registry` feature too, so that a CLI's options
//! compile either way; finding them in docker and podman configs is
//! `auth.rs`'s.

use std::fmt;

/// A username and password (or token) given explicitly.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password or access token. Never printed.
    pub password: String,
    /// Where they came from, for messages (`--username and --password-stdin`).
    pub origin: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("origin", &self.origin)
            .finish()
    }
}

impl Credentials {
    /// `IMGSCAN_USERNAME` and `IMGSCAN_PASSWORD`, when both are set.
    pub fn from_env() -> Option<Self> {
        let username = std::env::var("IMGSCAN_USERNAME").ok()?;
        let password = std::env::var("IMGSCAN_PASSWORD").ok()?;
        (!username.is_empty()).then(|| Self {
            username,
            password,
            origin: "IMGSCAN_USERNAME and IMGSCAN_PASSWORD".to_owned(),
        })
    }
}

/// Which credentials a pull uses, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// None were found.
    Anonymous {
        /// What was looked at, and any problems found on the way.
        searched: String,
    },
    /// Given explicitly.
    Explicit {
        /// The username.
        username: String,
        /// `--username and --password-stdin` or the environment variables.
        origin: String,
    },
    /// From a docker or podman config.
    Config {
        /// The username.
        username: String,
        /// `auths in /root/.docker/config.json`,
        /// `credential helper docker-credential-x (credHelpers in …)`.
        origin: String,
    },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous { searched } => write!(f, "none (anonymous; {searched})"),
            Self::Explicit { username, origin } | Self::Config { username, origin } => {
                write!(f, "user `{username}` from {origin}")
            }
        }
    }
}

impl CredentialSource {
    /// Whether any credentials are used.
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous { .. })
    }
}
