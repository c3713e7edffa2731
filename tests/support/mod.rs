//! Test support shared by the two test targets: `integration` (tests/tests.rs,
//! only the Rust toolchain needed) and `e2e` (tests/e2e.rs, real tools).
//!
//! - [`tools`]: the one check that a tool is installed, saying how to get it;
//! - [`ports`]: free ports and waiting for a service to listen;
//! - [`http`]: a blocking HTTP client (reqwest);
//! - [`fake_registry`]: an in-process distribution registry for protocol and
//!   error cases;
//! - [`proxy`]: a fault-injecting proxy (503s, dropped connections);
//! - [`rawtar`]: tars, docker-archives and OCI layouts written byte by byte;
//! - [`env`]: imgscan in a clean environment;
//! - [`sample`]: the sample image's oracle;
//! - [`serve`]: `imgscan serve` as a child process;
//! - `registry`, `podman` and `postgres` (e2e only): `docker-registry`,
//!   podman's API and a throw-away PostgreSQL server.

#![allow(dead_code)]

pub(crate) mod env;
pub(crate) mod fake_registry;
pub(crate) mod http;
pub(crate) mod ports;
pub(crate) mod proxy;
pub(crate) mod rawtar;
pub(crate) mod sample;
pub(crate) mod serve;
pub(crate) mod tools;

#[cfg(feature = "e2e")]
pub(crate) mod podman;
#[cfg(feature = "e2e")]
pub(crate) mod postgres;
#[cfg(feature = "e2e")]
pub(crate) mod registry;

/// The sample image's manifest digest (testdata/README.md).
pub(crate) const SAMPLE_DIGEST: &str =
    "sha256:a941cb347d023be3bc70e687d600ad4fc379aabe2895996abd7d6efe2dd711c2";
/// The sample image's config digest (testdata/README.md).
pub(crate) const SAMPLE_CONFIG: &str =
    "sha256:755ff705d063e27e88704d16cd7e6f6b8eeed428f869b24260eb3d0edc78b59d";
/// Its layer 1 (4.3 MB gzip).
pub(crate) const SAMPLE_LAYER1: &str =
    "sha256:f06593cda10a85ab70efa4ef443805d09853d07692225a269e23e6a8272bf48a";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
