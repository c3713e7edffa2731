//! The seam between the service and the scanner: "scan the image
//! `REGISTRY/REPOSITORY@DIGEST` with these credentials and return a
//! [`Report`]".
//!
//! [`RegistryScanner`] implements it with the scanner crate's registry
//! source (`scanner::scan` on a `docker://` input, issue 3). Tests and other
//! sources can plug in their own [`ImageScanner`].
//!
//! # Security
//!
//! The pull reference is built only from the allowlist entry (scheme, host,
//! port, credentials) plus the repository and digest, both validated by the
//! caller: nothing from an event's URL reaches the network. A registry name
//! without a dot or port (`harbor-core`) would be read by docker's reference
//! rules as a Docker Hub namespace, so the default port is added and the
//! parsed registry checked before any request.

use std::sync::Arc;

use anyhow::{Result, bail};
use scanner::model::Report;
use scanner::source::registry::{self, Credentials, LayerStore, RegistryError};
use scanner::source::{Input, Selection};
use scanner::{Error, ScanOptions};

use super::config::{RegistryEntry, Secret, ServeConfig};

/// Pull credentials for one scan.
#[derive(Debug, Clone)]
pub(crate) enum PullAuth {
    /// The allowlist entry's own credentials (or, when it has none, the
    /// docker config of the user running imgscan, else anonymous).
    Configured,
    /// A username and password given with the request (Harbor's robot
    /// account).
    Basic {
        username: String,
        password: Secret,
        origin: &'static str,
    },
}

/// What to scan.
#[derive(Debug, Clone)]
pub(crate) struct ScanTarget {
    pub(crate) registry: RegistryEntry,
    pub(crate) repository: String,
    pub(crate) digest: String,
    pub(crate) auth: PullAuth,
}

impl ScanTarget {
    /// `host[:port]/repository@digest`, with a port added when the host
    /// alone would be mistaken for a Docker Hub namespace.
    pub(crate) fn reference(&self) -> String {
        let a = &self.registry.authority;
        let authority = if a.contains(['.', ':']) || a == "localhost" {
            a.clone()
        } else if self.registry.scheme == "http" {
            format!("{a}:80")
        } else {
            format!("{a}:443")
        };
        format!("{authority}/{}@{}", self.repository, self.digest)
    }
}

/// Scans one image in a registry.
pub(crate) trait ImageScanner: Send + Sync {
    /// Pulls and scans `target`.
    fn scan(&self, target: &ScanTarget) -> Result<Report>;
}

/// Whether a scan error may clear by itself (the registry was down, slow or
/// overloaded), so the job is worth retrying later.
pub(crate) fn is_transient(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        matches!(
            c.downcast_ref::<Error>(),
            Some(Error::Registry(
                RegistryError::Unreachable { .. }
                    | RegistryError::Timeout { .. }
                    | RegistryError::Transfer { .. }
                    | RegistryError::Http { .. }
            ))
        ) || matches!(
            c.downcast_ref::<RegistryError>(),
            Some(
                RegistryError::Unreachable { .. }
                    | RegistryError::Timeout { .. }
                    | RegistryError::Transfer { .. }
                    | RegistryError::Http { .. }
            )
        )
    })
}

/// [`ImageScanner`] over `scanner::scan` with a `docker://` input.
pub(crate) struct RegistryScanner {
    base: ScanOptions,
}

impl RegistryScanner {
    /// `layers` keeps layer scans between images, by blob digest, so that
    /// a base layer shared by many images is scanned once (the persisted
    /// [`super::layers::LayerDb`]; `None` for no cache).
    pub(crate) fn new(cfg: &ServeConfig, layers: Option<Arc<dyn LayerStore>>) -> Self {
        let mut base = ScanOptions::default();
        if let Some(p) = &cfg.platform {
            base.selection = Selection {
                platform: p.clone(),
                platform_explicit: true,
            };
        }
        base.registry.timeout = cfg.scan_timeout;
        base.registry.layer_cache = layers;
        Self { base }
    }
}

impl ImageScanner for RegistryScanner {
    fn scan(&self, t: &ScanTarget) -> Result<Report> {
        let reference = t.reference();
        // Never pull from anywhere but the allowlisted registry.
        let parsed = registry::parse_reference(&reference)?;
        let want = reference.split('/').next().unwrap_or_default();
        if !parsed.registry().eq_ignore_ascii_case(want) {
            bail!(
                "refusing to pull `{reference}`: it parses as registry `{}`, not `{want}`",
                parsed.registry()
            );
        }
        let input = Input::parse(&format!("docker://{reference}"))?;
        let mut opts = self.base.clone();
        if t.registry.insecure {
            opts.registry.insecure = vec![t.registry.authority.clone()];
        }
        // The entry's private CA, on top of the system's roots.
        opts.registry.ca_certs = t.registry.ca_cert.iter().cloned().collect();
        opts.registry.credentials = match &t.auth {
            PullAuth::Basic {
                username,
                password,
                origin,
            } => Some(Credentials {
                username: username.clone(),
                password: password.expose().to_owned(),
                origin: (*origin).to_owned(),
            }),
            PullAuth::Configured => t.registry.credentials(),
        };
        Ok(scanner::scan(&input, &opts)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(scheme: &str, authority: &str) -> RegistryEntry {
        RegistryEntry {
            name: "r".into(),
            scheme: scheme.into(),
            authority: authority.into(),
            hosts: vec![authority.into()],
            username: None,
            password: None,
            insecure: false,
            ca_cert: None,
            reconcile_every: None,
        }
    }

    #[test]
    fn references_always_name_the_registry() {
        let t = |scheme, authority| ScanTarget {
            registry: entry(scheme, authority),
            repository: "lab/app".into(),
            digest: "sha256:00".into(),
            auth: PullAuth::Configured,
        };
        assert_eq!(
            t("http", "127.0.0.1:5000").reference(),
            "127.0.0.1:5000/lab/app@sha256:00"
        );
        assert_eq!(
            t("https", "harbor-core").reference(),
            "harbor-core:443/lab/app@sha256:00"
        );
        assert_eq!(
            t("http", "localhost").reference(),
            "localhost/lab/app@sha256:00"
        );
    }
}
