//! An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
//!
//! # Security
//!
//! Blob paths come from the image (digests) and are normalised before use;
//! a path that leaves the layout directory through a symlink is refused.
//! Every file is opened without waiting (`O_NONBLOCK`, so a FIFO cannot
//! block the open) and checked to be a regular file on the open handle
//! (`File::metadata`, so it cannot be swapped after the check) before a
//! byte is read: a FIFO, a device (`/dev/zero` would read forever) or a
//! directory is refused.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
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

/// `O_NONBLOCK`, from `libc` (already in the dependency tree): its value
/// differs between architectures.
const O_NONBLOCK: i32 = libc::O_NONBLOCK;

/// What a file that is not a regular file is, for messages.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

impl LayoutContainer {
    /// Opens `p` (found by [`Self::locate`] for `rel`) for reading, refusing
    /// anything but a regular file; returns it with its length.
    fn open_regular(&self, p: &Path, rel: &str) -> Result<(File, u64)> {
        let io_err = |source| Error::Io {
            path: p.to_owned(),
            source,
        };
        // A FIFO found before opening is refused without opening it.
        let before = std::fs::metadata(p).map_err(io_err)?;
        if !before.is_file() {
            return Err(self.not_regular(rel, before.file_type()));
        }
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(p)
            .map_err(io_err)?;
        let meta = f.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(self.not_regular(rel, meta.file_type()));
        }
        Ok((f, meta.len()))
    }

    fn not_regular(&self, rel: &str, t: std::fs::FileType) -> Error {
        Error::malformed(
            self.describe(),
            format!(
                "{rel} is a {}, not a regular file: it is not read",
                kind_of(t)
            ),
        )
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
        let (f, len) = self.open_regular(&p, &normalize(path.as_bytes()))?;
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
        let p = self.locate(&plan.path).map_err(|e| match e {
            Error::MissingBlob { .. } => Error::MissingBlob {
                digest: plan
                    .digest
                    .as_ref()
                    .map_or_else(|| plan.path.clone(), ToString::to_string),
                what: format!("layer {}", plan.index),
                container: self.describe(),
            },
            other => other,
        })?;
        let (f, len) = self.open_regular(&p, &normalize(plan.path.as_bytes()))?;
        if !opts.verifies() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, LayoutContainer) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(dir.path().join("blobs/sha256/ok"), b"{}").unwrap();
        let c = LayoutContainer::open(dir.path()).unwrap();
        (dir, c)
    }

    /// Runs `f` on a thread and fails the test if it does not return soon:
    /// what is tested here used to block forever.
    fn soon<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("reading the layout hung")
    }

    /// A FIFO blob is refused at once instead of waiting for a writer.
    #[test]
    fn fifo_blob_is_refused_without_blocking() {
        let (dir, c) = layout();
        let fifo = dir.path().join("blobs/sha256/fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let e = soon(move || c.read_small("blobs/sha256/fifo", 1 << 20).unwrap_err());
        assert!(
            e.to_string().contains("is a FIFO, not a regular file"),
            "{e}"
        );
        drop(dir);
    }

    /// `/dev/zero` linked in, a directory, and a device inside the layout
    /// are refused, not read.
    #[test]
    fn devices_directories_and_escapes_are_refused() {
        let (dir, c) = layout();
        let b = dir.path().join("blobs/sha256");
        std::os::unix::fs::symlink("/dev/zero", b.join("zero")).unwrap();
        std::fs::create_dir(b.join("d")).unwrap();
        let c = std::sync::Arc::new(c);
        for (name, want) in [
            ("blobs/sha256/zero", "points outside the layout"),
            ("blobs/sha256/d", "is a directory, not a regular file"),
        ] {
            let c2 = c.clone();
            let e = soon(move || c2.read_small(name, 1 << 20).unwrap_err());
            assert!(e.to_string().contains(want), "{name}: {e}");
        }
        // A character device that is inside the layout (needs root to make).
        let dev = b.join("null");
        let made = std::process::Command::new("mknod")
            .arg(&dev)
            .args(["c", "1", "5"])
            .status()
            .is_ok_and(|s| s.success());
        if made {
            let c2 = c.clone();
            let e = soon(move || c2.read_small("blobs/sha256/null", 1 << 20).unwrap_err());
            assert!(e.to_string().contains("character device"), "{e}");
        }
        assert_eq!(c.read_small("blobs/sha256/ok", 10).unwrap(), b"{}");
    }
}
