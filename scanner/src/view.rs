//! What imgscan reads from each kind of JSON document, through the same
//! parsers a scan uses, for the tests that compare imgscan's reading with
//! Go's (`tests/differential_json.rs`).
//!
//! It sits above [`crate::gojson`] (the decoder) and its users
//! ([`crate::config`], [`crate::source::oci`], [`crate::source::archive`]),
//! so that the decoder does not import the modules it serves.

use serde_json::Value;

use crate::error::Result;

/// The documents [`view()`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image config.
    Config,
    /// An image manifest.
    Manifest,
    /// An image index (or `index.json`).
    Index,
    /// A docker-archive `manifest.json`.
    DockerManifest,
}

impl Kind {
    /// `config`, `manifest`, `index`, `docker-manifest`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "config" => Self::Config,
            "manifest" => Self::Manifest,
            "index" => Self::Index,
            "docker-manifest" => Self::DockerManifest,
            _ => return None,
        })
    }
}

/// What imgscan reads from a document, through the same parsers a scan
/// uses, as canonical JSON (the fields the Go oracle prints): for tests that
/// compare imgscan's reading with Go's.
pub fn view(kind: Kind, bytes: &[u8]) -> Result<Value> {
    use serde_json::json;
    let what = "document";
    Ok(match kind {
        Kind::Config => {
            let c = crate::config::ImageConfig::parse(bytes, what)?;
            json!({
                "architecture": c.architecture,
                "os": c.os,
                "variant": c.variant.unwrap_or_default(),
                "user": c.user.unwrap_or_default(),
                "exposed_ports": c.exposed_ports,
                "entrypoint": c.entrypoint,
                "cmd": c.cmd,
                "diff_ids": c.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "layer_created_by": c.layer_created_by.map(|v| {
                    v.into_iter().map(Option::unwrap_or_default).collect::<Vec<_>>()
                }),
            })
        }
        Kind::Manifest => crate::source::oci::view_manifest(bytes, what)?,
        Kind::Index => crate::source::oci::view_index(bytes, what)?,
        Kind::DockerManifest => crate::source::archive::view_docker_manifest(bytes, what)?,
    })
}
