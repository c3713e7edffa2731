//! An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
//!
//! # Security
//!
//! Blob paths come from the image (digests) and are normalised before use;
//! a path that leaves the layout directory through a symlink is refused.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Container, LayerPlan};
use crate::error::{Error, Result};
use crate::layer::{self, LayerIndex, LayerOptions, normalize};

/// A layout directory.
pub struct LayoutContainer {
    root: PathBuf,
    canonical_root: PathBuf,
}

impl LayoutContainer {
    /// Opens the layout at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        let canonical_root = root.canonicalize().map_err(|source| Error::Io {
            path: root.to_owned(),
            source,
        })?;
        Ok(Self {
            root: root.to_owned(),
            canonical_root,
        })
    }

    fn locate(&self, path: &str) -> Result<PathBuf> {
        let rel = normalize(path.as_bytes());
        let full = self.canonical_root.join(&rel);
        let real = full.canonicalize().map_err(|_| Error::MissingBlob {
            digest: rel.clone(),
            what: "file".into(),
            container: self.describe(),
        })?;
        if !real.starts_with(&self.canonical_root) {
            return Err(Error::malformed(
                self.describe(),
                format!("{rel} points outside the layout"),
            ));
        }
        Ok(real)
    }
}

impl Container for LayoutContainer {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn exists(&self, path: &str) -> bool {
        self.locate(path).is_ok_and(|p| p.is_file())
    }

    fn read_small(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let p = self.locate(path)?;
        let io_err = |source| Error::Io {
            path: p.clone(),
            source,
        };
        let f = File::open(&p).map_err(io_err)?;
        let len = f.metadata().map_err(io_err)?.len();
        if len > limit {
            return Err(Error::Limit {
                what: p.display().to_string(),
                limit: format!("{limit} bytes"),
                why: "JSON documents of an image are small".into(),
            });
        }
        let mut v = Vec::with_capacity(len as usize);
        f.take(limit).read_to_end(&mut v).map_err(io_err)?;
        Ok(v)
    }

    fn scan_layer(&self, plan: &LayerPlan, opts: &LayerOptions) -> Result<LayerIndex> {
        let p = self.locate(&plan.path).map_err(|_| Error::MissingBlob {
            digest: plan
                .digest
                .as_ref()
                .map_or_else(|| plan.path.clone(), ToString::to_string),
            what: format!("layer {}", plan.index),
            container: self.describe(),
        })?;
        let io_err = |source| Error::Io {
            path: p.clone(),
            source,
        };
        let f = File::open(&p).map_err(io_err)?;
        if !opts.verifies() {
            let len = f.metadata().map_err(io_err)?.len();
            return layer::scan_layer_seekable(f, len, opts)
                .map_err(|e| super::layer_error(plan, e));
        }
        layer::scan_layer(f, opts).map_err(|e| super::layer_error(plan, e))
    }

    fn layer_size(&self, plan: &LayerPlan) -> Option<u64> {
        let p = self.locate(&plan.path).ok()?;
        std::fs::metadata(p).ok().map(|m| m.len())
    }
}
