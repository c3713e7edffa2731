//! Images on this machine: an OCI layout directory, a docker-archive or
//! oci-archive file (plain, or compressed as `docker save | gzip` makes it),
//! and standard input.
//!
//! The format is told from the content: a directory is a layout, a file
//! starting with a gzip or zstd magic is a compressed stream (read once, like
//! standard input), anything else an archive read with seeks.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::archive::{self, ArchiveContainer};
use super::layout::LayoutContainer;
use super::{Container, Input, OpenOptions, Opened};
use crate::error::{Error, Result};
use crate::layer::Compression;

/// Opens a file, a directory or standard input (`input.path` is `None`).
pub(super) fn open(input: &Input, opts: &OpenOptions<'_>) -> Result<Opened> {
    let Some(path) = &input.path else {
        return open_stdin(input, opts);
    };
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    if meta.is_dir() {
        return resolved(LayoutContainer::open(path)?, input, opts, "oci-layout");
    }
    open_file(path, meta.len(), input, opts)
}

/// `docker save | gzip | imgscan -`: compressed on standard input too, as
/// `docker load` and `podman load` take it.
fn open_stdin(input: &Input, opts: &OpenOptions<'_>) -> Result<Opened> {
    let stdin = io::stdin();
    let mut reader = BufReader::with_capacity(256 * 1024, stdin.lock());
    let what = "standard input";
    let prefix = io::BufRead::fill_buf(&mut reader).map_err(|e| Error::read(what, e))?;
    match Compression::sniff(prefix) {
        Compression::None => open_stream(reader, what, input, opts),
        Compression::Gzip => {
            open_stream(flate2::read::MultiGzDecoder::new(reader), what, input, opts)
        }
        Compression::Zstd => {
            let r = zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| Error::read(what, e))?;
            open_stream(r, what, input, opts)
        }
    }
}

fn open_file(path: &Path, len: u64, input: &Input, opts: &OpenOptions<'_>) -> Result<Opened> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io_err)?;
    let mut prefix = [0u8; 4];
    let n = f.read(&mut prefix).map_err(io_err)?;
    match Compression::sniff(&prefix[..n]) {
        Compression::None => {
            if len == 0 {
                return Err(Error::not_an_image(
                    path.display().to_string(),
                    "the file is empty",
                ));
            }
            resolved(ArchiveContainer::open(path)?, input, opts, "oci-archive")
        }
        // `docker save | gzip`: a stream, like standard input.
        Compression::Gzip => {
            let f = File::open(path).map_err(io_err)?;
            let r = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, f));
            open_stream(r, &path.display().to_string(), input, opts)
        }
        Compression::Zstd => {
            let f = File::open(path).map_err(io_err)?;
            let r = zstd::stream::read::Decoder::new(f).map_err(io_err)?;
            open_stream(r, &path.display().to_string(), input, opts)
        }
    }
}

/// Reads a docker-archive or oci-archive from a stream (its layers are
/// scanned as they pass, see [`archive::scan_stream`]) and resolves it.
pub fn open_stream(
    reader: impl Read,
    name: &str,
    input: &Input,
    opts: &OpenOptions<'_>,
) -> Result<Opened> {
    let c = archive::scan_stream(reader, name, opts.layer, opts.stream_workers)?;
    resolved(c, input, opts, "oci-archive")
}

/// Resolves the image `input` names in a local container.
fn resolved(
    c: impl Container + 'static,
    input: &Input,
    opts: &OpenOptions<'_>,
    oci_format_name: &'static str,
) -> Result<Opened> {
    let plan = super::resolve(
        &c,
        input.transport,
        input.reference.as_deref(),
        opts.selection,
        oci_format_name,
    )?;
    Ok(Opened::new(c, plan))
}
