//! Scanning one image end to end: source → plan → layers (in parallel) →
//! verification → final filesystem → checks → [`Report`].
//!
//! This is the one orchestrator: every source ([`source::open`]) only opens
//! the image, a container and a plan, and [`finish`] here scans it, whatever
//! the transport.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::budget::{DEFAULT_MAX_MEMORY, MemoryBudget};
use crate::checks;
use crate::digest::Algorithm;
use crate::error::{Error, Result};
use crate::fs::FinalFs;
use crate::layer::{Compression, LayerIndex, LayerOptions};
use crate::model::{ImageInfo, LayerInfo, Report};
use crate::source::registry::RegistryOptions;
use crate::source::{self, Container, Input, LayerPlan, OpenOptions, Opened, Plan, Selection};

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Which image to pick from an index or archive.
    pub selection: Selection,
    /// Per-layer limits.
    pub layer: LayerOptions,
    /// Layers scanned at once when reading a stream.
    pub stream_workers: usize,
    /// Layers scanned at once from a file, layout or registry (default: the
    /// number of CPUs; the registry source uses its `concurrency`).
    pub layer_workers: usize,
    /// Registry access: credentials, TLS, timeouts, retries.
    pub registry: RegistryOptions,
    /// Verify every layer blob's digest and diff_id (the default). Turned
    /// off only by `--no-verify`, for trusted local files: uncompressed
    /// layers are then read by seeking over file contents.
    pub verify: bool,
    /// Bytes the image may make imgscan hold (`--max-memory`): every scan
    /// gets a fresh [`MemoryBudget`] of this size in `layer.budget`, which
    /// the sources, the layer indexes and the final filesystem all charge.
    pub max_memory: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            selection: Selection::default(),
            layer: LayerOptions {
                captures: checks::captures,
                ..LayerOptions::default()
            },
            stream_workers: cpus().max(2),
            layer_workers: cpus(),
            registry: RegistryOptions::default(),
            verify: true,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

pub use crate::budget::cpus;

impl ScanOptions {
    /// The part of the options that opening an image needs.
    pub fn open_options(&self) -> OpenOptions<'_> {
        OpenOptions {
            selection: &self.selection,
            layer: &self.layer,
            stream_workers: self.stream_workers,
            registry: &self.registry,
        }
    }
}

/// Scans the image named by `input`, within a fresh memory budget of
/// [`ScanOptions::max_memory`] bytes.
pub fn scan(input: &Input, opts: &ScanOptions) -> Result<Report> {
    let opts = &with_fresh_budget(opts);
    let opened = source::open(input, &opts.open_options())?;
    scan_opened(opened, input, opts)
}

/// Scans a docker-archive or oci-archive read from a stream.
pub fn scan_reader(
    reader: impl Read,
    name: &str,
    input: &Input,
    opts: &ScanOptions,
) -> Result<Report> {
    let opened = source::open_stream(reader, name, input, &opts.open_options())?;
    scan_opened(opened, input, opts)
}

/// Scans an opened image with the number of layer workers its source asks
/// for. The container (and whatever keeps it alive: a registry's runtime) is
/// dropped after the report is made.
fn scan_opened(opened: Opened, input: &Input, opts: &ScanOptions) -> Result<Report> {
    let Opened {
        container,
        plan,
        layer_workers,
    } = opened;
    match layer_workers {
        Some(layer_workers) => {
            let opts = ScanOptions {
                layer_workers,
                ..opts.clone()
            };
            finish(container.as_ref(), plan, input, &opts)
        }
        None => finish(container.as_ref(), plan, input, opts),
    }
}

/// `opts` with a new, empty budget of `max_memory` bytes: one per image.
/// `opts` with a new, empty budget of `max_memory` bytes (one per image) and
/// the checks' capture predicate.
fn with_fresh_budget(opts: &ScanOptions) -> ScanOptions {
    let mut o = opts.clone();
    o.layer.budget = std::sync::Arc::new(MemoryBudget::new(opts.max_memory));
    // The layers keep the files the checks read, whatever the caller's
    // layer options say: the checks declare them, not the caller.
    o.layer.captures = checks::captures;
    o
}

fn sniffed_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => source::media::OCI_LAYER_TAR,
        Compression::Gzip => source::media::OCI_LAYER_GZIP,
        Compression::Zstd => source::media::OCI_LAYER_ZSTD,
    }
}

/// Scans, verifies and judges the layers of a resolved image.
///
/// Layers are scanned [`ScanOptions::layer_workers`] at a time, largest
/// first so that the longest scan starts at once, on plain threads: each
/// scan blocks on I/O and channels and runs its own stage threads
/// ([`crate::layer`]). That is not work for a work-stealing pool: rayon was
/// used here first, and its idle workers spinning for work took CPU from
/// the stages (70 `sched_yield` calls in a 4 ms busybox scan). This thread
/// applies each layer to the final filesystem as soon as every layer below
/// it is done, so applying overlaps scanning and a finished layer's index
/// is freed early.
pub fn finish(c: &dyn Container, plan: Plan, input: &Input, opts: &ScanOptions) -> Result<Report> {
    let n = plan.layers.len();
    let mut order: Vec<usize> = (0..n).collect();
    let sizes: Vec<u64> = plan
        .layers
        .iter()
        .map(|lp| c.layer_size(lp).unwrap_or(0))
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let workers = opts.layer_workers.clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, Result<LayerIndex>)>();
    let mut fs = FinalFs::with_budget(opts.layer.budget.clone());
    let mut layers = Vec::with_capacity(n);
    let mut warnings = Vec::new();
    let mut errors: BTreeMap<usize, Error> = BTreeMap::new();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (order, next, abort, plan) = (&order, &next, &abort, &plan);
            scope.spawn(move || {
                loop {
                    if abort.load(Ordering::Relaxed) {
                        break;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let r = scan_one(c, &plan.layers[i], opts);
                    if r.is_err() {
                        abort.store(true, Ordering::Relaxed);
                    }
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, LayerIndex> = BTreeMap::new();
        let mut next_apply = 0;
        for (i, r) in rx {
            match r {
                Ok(idx) => {
                    pending.insert(i, idx);
                }
                Err(e) => {
                    errors.insert(i, e);
                }
            }
            if !errors.is_empty() {
                continue;
            }
            while let Some(idx) = pending.remove(&next_apply) {
                let lp = &plan.layers[next_apply];
                layers.push(layer_info(lp, &idx, &plan));
                warnings.extend(
                    idx.warnings
                        .iter()
                        .map(|w| format!("layer {}: {w}", lp.index)),
                );
                if let Err(e) = fs.try_apply(lp.index, idx) {
                    errors.insert(next_apply, source::layer_error(lp, e));
                    abort.store(true, Ordering::Relaxed);
                    break;
                }
                next_apply += 1;
            }
        }
    });
    if let Some((_, e)) = errors.into_iter().next() {
        return Err(e);
    }
    if !opts.verify {
        warnings.push(
            "layer digests were not verified (--no-verify): the findings are only as \
             trustworthy as the files"
                .to_owned(),
        );
    }
    warnings.extend(fs.warnings().iter().cloned());
    let (out, escalation, hardening) = checks::run_all(&fs, &plan.config, &layers)?;
    warnings.extend(out.warnings);
    let image = ImageInfo {
        source: input.source.clone(),
        format: plan.format.to_owned(),
        reference: plan.reference,
        manifest_digest: plan.manifest_digest.map(|d| d.to_string()),
        index_digest: plan.index_digest.map(|d| d.to_string()),
        config_digest: plan.config_digest.to_string(),
        platform: plan.config.platform(),
        user: plan.config.user.clone(),
        layers,
        base: plan.base,
    };
    Ok(Report::new(
        image,
        out.findings,
        warnings,
        escalation,
        hardening,
    ))
}

/// Scans one layer and verifies its blob digest, size and diff_id.
fn scan_one(c: &dyn Container, lp: &LayerPlan, opts: &ScanOptions) -> Result<LayerIndex> {
    let mut lo = opts.layer.clone();
    if opts.verify {
        lo.raw_algorithms = lp
            .digest
            .as_ref()
            .map_or_else(|| vec![Algorithm::Sha256], |d| vec![d.algorithm()]);
        lo.tar_algorithms = vec![lp.diff_id.algorithm()];
    } else {
        lo.raw_algorithms.clear();
        lo.tar_algorithms.clear();
    }
    let idx = c.scan_layer(lp, &lo)?;
    if !opts.verify {
        return Ok(idx);
    }
    let name = |what: &str| {
        format!(
            "layer {} {what} ({})",
            lp.index,
            lp.digest
                .as_ref()
                .map_or_else(|| lp.path.clone(), ToString::to_string)
        )
    };
    if let Some(d) = &lp.digest {
        idx.raw.verify(&name("blob"), d)?;
    }
    if let Some(size) = lp.size
        && size != idx.raw.len
    {
        return Err(Error::malformed(
            name("blob"),
            format!(
                "the manifest says {size} bytes, the blob has {}",
                idx.raw.len
            ),
        ));
    }
    idx.tar
        .verify(&name("uncompressed tar (diff_id)"), &lp.diff_id)?;
    Ok(idx)
}

fn layer_info(lp: &LayerPlan, idx: &LayerIndex, plan: &Plan) -> LayerInfo {
    let compression = idx.compression.unwrap_or(Compression::None);
    let digest = match &lp.digest {
        Some(d) => d.to_string(),
        None => idx
            .raw
            .sha256
            .as_ref()
            .map_or_else(|| lp.diff_id.to_string(), ToString::to_string),
    };
    LayerInfo {
        index: lp.index,
        digest,
        diff_id: lp.diff_id.to_string(),
        media_type: lp
            .media_type
            .clone()
            .unwrap_or_else(|| sniffed_media_type(compression).to_owned()),
        size: idx.raw.len,
        compression: compression.as_str().to_owned(),
        entries: idx.members,
        created_by: plan
            .config
            .layer_created_by
            .as_ref()
            .and_then(|h| h.get(lp.index).cloned().flatten()),
    }
}
