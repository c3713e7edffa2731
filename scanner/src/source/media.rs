//! The media types imgscan knows, in one place: the scanner's sources and
//! `imgscan serve` (notifications, reconciliation, Harbor) read them from
//! here, so the two never disagree on what an image, an index or an
//! attestation is.
//!
//! Sources: the OCI image spec's media types
//! (<https://github.com/opencontainers/image-spec/blob/main/media-types.md>),
//! Docker's image manifest v2 schema 2
//! (<https://distribution.github.io/distribution/spec/manifest-v2-2/>), and
//! BuildKit's attestation storage
//! (<https://github.com/moby/buildkit/blob/master/docs/attestations/attestation-storage.md>).

/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// A Docker manifest list (schema 2).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// A Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// An OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Manifests that point at one image (a config and layers).
pub const IMAGE_MANIFESTS: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST];
/// Manifests that point at other manifests (one per platform).
pub const INDEXES: &[&str] = &[OCI_INDEX, DOCKER_MANIFEST_LIST];
/// Docker's schema 1 manifests, which imgscan refuses (no config, no
/// diff_ids to verify).
pub const SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// Configs that make a manifest an image rather than an artifact (a Helm
/// chart, a signature, an SBOM).
pub const IMAGE_CONFIGS: &[&str] = &[OCI_CONFIG, DOCKER_CONFIG];
/// Every manifest type a registry may answer with, indexes first: the
/// `Accept` list of a manifest request.
pub const MANIFESTS: &[&str] = &[
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];
/// [`MANIFESTS`] as one `Accept` header value.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The OCI layer type a sniffed compression stands for, when a stream gives
/// no media type of its own.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// See [`OCI_LAYER_TAR`].
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// See [`OCI_LAYER_TAR`].
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The annotation BuildKit puts on an index entry that is an attestation
/// manifest (its value is [`ATTESTATION_MANIFEST`]).
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// See [`REFERENCE_TYPE`].
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// Whether an index entry is a build attestation rather than an image:
/// BuildKit stores attestations as manifests for platform `unknown/unknown`
/// and annotates them with [`REFERENCE_TYPE`]. Either sign is enough; a
/// platform with only the os `unknown` is an image (nothing says an
/// unknown os cannot have a real architecture).
pub fn is_attestation(
    os: Option<&str>,
    architecture: Option<&str>,
    reference_type: Option<&str>,
) -> bool {
    reference_type == Some(ATTESTATION_MANIFEST)
        || (os == Some("unknown") && architecture == Some("unknown"))
}

/// Whether a layer media type is a filesystem tar (any compression).
pub fn is_layer(mt: &str) -> bool {
    matches!(
        mt,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd"
            | "application/vnd.docker.container.image.rootfs.diff+x-gtar"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_is_the_manifest_list() {
        assert_eq!(MANIFEST_ACCEPT, MANIFESTS.join(", "));
    }

    #[test]
    fn attestations_need_both_unknowns_or_the_annotation() {
        assert!(is_attestation(Some("unknown"), Some("unknown"), None));
        assert!(is_attestation(
            Some("linux"),
            Some("amd64"),
            Some(ATTESTATION_MANIFEST)
        ));
        assert!(!is_attestation(Some("unknown"), Some("amd64"), None));
        assert!(!is_attestation(Some("linux"), Some("unknown"), None));
        assert!(!is_attestation(None, None, Some("sbom")));
    }
}
