//! The image config (`application/vnd.oci.image.config.v1+json` and Docker's
//! `application/vnd.docker.container.image.v1+json`): the fields imgscan reads.
//!
//! Parsing is lenient where the Go types runtimes decode into are (`null`
//! leaves a field empty, moby's `strslice.StrSlice` takes a string for
//! `Entrypoint`/`Cmd`) and strict where the scan depends on it
//! (`rootfs.diff_ids` must be valid digests, one per layer).
//!
//! # Runtime fidelity
//!
//! The config is read the way Go's `encoding/json` decodes it into
//! image-spec `specs-go/v1` `Image` and moby's `Image` / `container.Config`
//! (see [`crate::gojson`]): `"user"` is `User`, `"RootFS"` is `rootfs`; an
//! object where two keys reach one field (`"User"` and `"user"`, which Go
//! resolves to the last) is refused as ambiguous; a value of a type Go
//! refuses (`"User": 5`) is refused as malformed, since no runtime would run
//! the image.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::gojson;

/// The parts of an image config imgscan uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `architecture`.
    pub architecture: String,
    /// `os`.
    pub os: String,
    /// `variant`.
    pub variant: Option<String>,
    /// `config.User`, as written; `None` when absent.
    pub user: Option<String>,
    /// `config.ExposedPorts` keys (`22/tcp`), sorted.
    pub exposed_ports: Vec<String>,
    /// `config.Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `config.Cmd`.
    pub cmd: Vec<String>,
    /// `config.Volumes` keys (`/var/lib/data`), sorted.
    pub volumes: Vec<String>,
    /// `rootfs.diff_ids`.
    pub diff_ids: Vec<Digest>,
    /// `created_by` of each non-empty history step, in order; `None` when the
    /// history does not line up with the layers.
    pub layer_created_by: Option<Vec<Option<String>>>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<RawContainer>,
    #[serde(default)]
    rootfs: Option<RawRootfs>,
    #[serde(default)]
    history: Option<Vec<RawHistory>>,
}

#[derive(Deserialize)]
struct RawContainer {
    #[serde(rename = "User", default)]
    user: Option<String>,
    #[serde(rename = "ExposedPorts", default)]
    exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Volumes", default)]
    volumes: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawHistory {
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    empty_layer: Option<bool>,
}

impl ImageConfig {
    /// Parses a config blob; `what` names it in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let raw: Raw = gojson::decode(bytes, &gojson::IMAGE, what)?;
        let rootfs = raw
            .rootfs
            .ok_or_else(|| Error::malformed(what, "no `rootfs` (is this an image config?)"))?;
        if let Some(kind) = &rootfs.kind
            && kind != "layers"
        {
            return Err(Error::malformed(
                what,
                format!("rootfs.type is `{kind}`, expected `layers`"),
            ));
        }
        let diff_ids = rootfs
            .diff_ids
            .iter()
            .map(|d| Digest::parse(d))
            .collect::<Result<Vec<_>>>()?;
        let layer_created_by = raw.history.and_then(|h| {
            let v: Vec<Option<String>> = h
                .into_iter()
                .filter(|e| e.empty_layer != Some(true))
                .map(|e| e.created_by)
                .collect();
            (v.len() == diff_ids.len()).then_some(v)
        });
        let (user, exposed_ports, entrypoint, cmd, volumes) = match raw.config {
            Some(c) => (
                c.user,
                c.exposed_ports
                    .map(|m| m.into_keys().collect())
                    .unwrap_or_default(),
                c.entrypoint.unwrap_or_default(),
                c.cmd.unwrap_or_default(),
                c.volumes
                    .map(|m| m.into_keys().collect())
                    .unwrap_or_default(),
            ),
            None => (None, Vec::new(), Vec::new(), Vec::new(), Vec::new()),
        };
        Ok(Self {
            architecture: raw.architecture.unwrap_or_default(),
            os: raw.os.unwrap_or_default(),
            variant: raw.variant.filter(|v| !v.is_empty()),
            user,
            exposed_ports,
            entrypoint,
            cmd,
            volumes,
            diff_ids,
            layer_created_by,
        })
    }

    /// `os/arch[/variant]`.
    pub fn platform(&self) -> String {
        let mut p = format!("{}/{}", self.os, self.architecture);
        if let Some(v) = &self.variant {
            p.push('/');
            p.push_str(v);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_config_with_history() {
        let cfg = br#"{"architecture":"amd64","os":"linux","config":{"User":"app","ExposedPorts":{"23/tcp":{},"22/tcp":{}},"Cmd":"/bin/sh","Entrypoint":null},
        "rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
        "history":[{"created_by":"ENV x=1","empty_layer":true},{"created_by":"ADD rootfs"}]}"#;
        let c = ImageConfig::parse(cfg, "config").unwrap();
        assert_eq!(c.user.as_deref(), Some("app"));
        assert_eq!(c.exposed_ports, ["22/tcp", "23/tcp"]);
        assert_eq!(c.cmd, ["/bin/sh"]);
        assert!(c.entrypoint.is_empty());
        assert_eq!(c.layer_created_by, Some(vec![Some("ADD rootfs".into())]));
        assert_eq!(c.platform(), "linux/amd64");
    }

    #[test]
    fn rejects_non_configs() {
        assert!(ImageConfig::parse(b"[]", "x").is_err());
        assert!(ImageConfig::parse(b"{}", "x").is_err());
        assert!(
            ImageConfig::parse(br#"{"rootfs":{"type":"layers","diff_ids":["md5:1"]}}"#, "x")
                .is_err()
        );
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(doc: &str) -> Result<ImageConfig> {
        ImageConfig::parse(doc.replace("DIFF", D).as_bytes(), "config")
    }

    /// A lone `user` (any case) is `User` to Go, and so to imgscan.
    #[test]
    fn lowercase_keys_are_the_go_fields() {
        let c = parse(
            r#"{"CONFIG":{"user":"0","cmd":"sh"},"RootFS":{"TYPE":"layers","Diff_IDs":["DIFF"]}}"#,
        )
        .unwrap();
        assert_eq!(c.user.as_deref(), Some("0"));
        assert_eq!(c.cmd, ["sh"]);
        assert_eq!(c.diff_ids.len(), 1);
    }

    /// Two keys for `User` (Go keeps the last, serde the first): refused.
    #[test]
    fn two_spellings_of_a_field_are_ambiguous() {
        for doc in [
            r#"{"config":{"User":"app","user":"0"},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
            r#"{"config":{"User":"app"},"Config":{"User":"0"},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
            r#"{"rootfs":{"type":"layers","diff_ids":[]},"rootFS":{"type":"layers","diff_ids":["DIFF"]}}"#,
            r#"{"rootfs":{"type":"layers","diff_ids":["DIFF"],"Diff_Ids":[]}}"#,
            r#"{"history":[{"created_by":"a","Created_By":"b"}],"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
        ] {
            assert!(matches!(parse(doc), Err(Error::Ambiguous { .. })), "{doc}");
        }
    }

    /// Values Go cannot decode make every runtime fail: refused.
    #[test]
    fn go_type_errors_are_refused() {
        for doc in [
            r#"{"config":{"User":5},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
            r#"{"config":{"Cmd":[1]},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
            r#"{"config":{"Entrypoint":{}},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#,
            r#"{"rootfs":{"type":"layers","diff_ids":"DIFF"}}"#,
        ] {
            assert!(matches!(parse(doc), Err(Error::Malformed { .. })), "{doc}");
        }
        let c = parse(r#"{"config":{"Cmd":["a",null],"User":null},"rootfs":{"type":"layers","diff_ids":["DIFF"]}}"#)
            .unwrap();
        assert_eq!(c.cmd, ["a", ""], "a null element is Go's empty string");
        assert_eq!(c.user, None);
    }
}
