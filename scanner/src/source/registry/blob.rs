//! Streaming layer blobs from the registry into the layer pipeline: a
//! download task per layer feeds a bounded channel that the scanner reads on
//! its own thread; broken connections resume with `Range` requests.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use oci_client::Reference;
use oci_client::client::BlobResponse;
use tokio::sync::mpsc;

use super::LayerStore;
use super::error::{self, Class, Failure};
use super::session::{Net, Session};
use crate::error::{Error, Result};
use crate::layer::{self, LayerIndex, LayerOptions};
use crate::source::{Container, LayerPlan};

/// Chunks buffered between a download and its layer scanner (chunks are
/// what the HTTP body yields, at most a few tens of KiB each).
const CHANNEL_CHUNKS: usize = 64;
/// After a layer fails to parse, read at most this much more so that
/// oci-client's digest check can say whether the blob was corrupt.
const DRAIN_LIMIT: u64 = 256 << 20;
/// Most times one blob download resumes after a broken connection.
const MAX_RESUMES: u32 = 20;

/// Shared between a download task and the scanner reading it.
#[derive(Default)]
struct BlobState {
    /// The error that ended the download.
    fatal: Mutex<Option<Error>>,
    /// oci-client's end-of-stream digest check failed: (expected, actual).
    mismatch: Mutex<Option<(String, String)>>,
}

impl BlobState {
    fn take_fatal(&self) -> Option<Error> {
        self.fatal.lock().ok()?.take()
    }

    fn mismatch(&self) -> Option<(String, String)> {
        self.mismatch.lock().ok()?.clone()
    }
}

/// Reads the chunks a download task sends.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}

/// Aborts a task when dropped (a scanner that stops early stops its download).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a download task needs.
struct Pump {
    reference: Reference,
    digest: String,
    size: Option<u64>,
    what: String,
    tx: mpsc::Sender<io::Result<Bytes>>,
    state: Arc<BlobState>,
}

impl Net {
    /// Streams one blob into `p.tx`, resuming with `Range` requests after
    /// broken connections. Our own hash (in the layer scanner) covers the
    /// whole blob; oci-client's check runs on unresumed streams too.
    async fn pump(&self, p: Pump) {
        let mut offset: u64 = 0;
        let mut failures: u32 = 0;
        let mut resumes: u32 = 0;
        let fail = |f: Failure, n: u32| {
            let e = self.fail(f, n, &p.what);
            let msg = e.to_string();
            if let Ok(mut s) = p.state.fatal.lock() {
                *s = Some(e);
            }
            msg
        };
        'attempt: loop {
            let opened = tokio::time::timeout_at(self.deadline, async {
                if offset == 0 {
                    self.client
                        .pull_blob_stream(&p.reference, p.digest.as_str())
                        .await
                        .map(|s| (s, 0u64))
                } else {
                    match self
                        .client
                        .pull_blob_stream_partial(&p.reference, p.digest.as_str(), offset, None)
                        .await?
                    {
                        // The server ignored the range: skip what we have.
                        BlobResponse::Full(s) => Ok((s, offset)),
                        BlobResponse::Partial(s) => Ok((s, 0)),
                    }
                }
            })
            .await;
            let failure = match opened {
                Err(_) => self.overall_timeout(),
                Ok(Err(e)) => error::from_oci(&e),
                Ok(Ok((mut stream, mut skip))) => loop {
                    let Ok(next) = tokio::time::timeout_at(self.deadline, stream.next()).await
                    else {
                        break self.overall_timeout();
                    };
                    match next {
                        None => return,
                        Some(Ok(mut b)) => {
                            if skip > 0 {
                                let k = (skip as usize).min(b.len());
                                b.advance(k);
                                skip -= k as u64;
                            }
                            if b.is_empty() {
                                continue;
                            }
                            offset += b.len() as u64;
                            failures = 0;
                            if let Some(size) = p.size
                                && offset > size
                            {
                                let msg = fail(
                                    Failure {
                                        message: format!(
                                            "the registry sent more than the {size} bytes the manifest gives"
                                        ),
                                        ..Failure::default()
                                    },
                                    1,
                                );
                                let _ = p.tx.send(Err(io::Error::other(msg))).await;
                                return;
                            }
                            if let Some(progress) = &self.opts.progress {
                                progress.0.advance(b.len() as u64);
                            }
                            if p.tx.send(Ok(b)).await.is_err() {
                                // The scanner stopped.
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            if let Some(m) = error::io_mismatch(&e) {
                                // All bytes were sent; our own check decides,
                                // this one backs it up.
                                if let Ok(mut s) = p.state.mismatch.lock() {
                                    *s = Some(m);
                                }
                                return;
                            }
                            break error::from_io(&e);
                        }
                    }
                },
            };
            failures += 1;
            let resumable = offset > 0 && failure.class != Class::Permanent && !failure.overall;
            if resumable && resumes < MAX_RESUMES && failures < self.opts.attempts.max(1) {
                resumes += 1;
                self.backoff(failures, None, failure.status).await;
                continue 'attempt;
            }
            if offset == 0 && self.may_retry(&failure, failures) {
                self.backoff(failures, None, failure.status).await;
                continue 'attempt;
            }
            let msg = fail(failure, failures);
            let _ = p.tx.send(Err(io::Error::other(msg))).await;
            return;
        }
    }
}

/// The registry as a [`Container`]: layers come from the network.
///
/// It owns the session, so that the async runtime lives exactly as long as
/// the scan reads layers.
pub(super) struct RegistryContainer {
    net: Arc<Net>,
    /// Spawns the downloads on the session's runtime.
    handle: tokio::runtime::Handle,
    /// The runtime itself, shut down when the container is dropped (`None`
    /// only then).
    runtime: Option<tokio::runtime::Runtime>,
    cache: Option<Arc<dyn LayerStore>>,
}

impl RegistryContainer {
    pub(super) fn new(session: Session, cache: Option<Arc<dyn LayerStore>>) -> Self {
        Self {
            net: session.net,
            handle: session.rt.handle().clone(),
            runtime: Some(session.rt),
            cache,
        }
    }

    fn layer_done(&self) {
        if let Some(p) = &self.net.opts.progress {
            p.0.layer_done();
        }
    }
}

impl Drop for RegistryContainer {
    fn drop(&mut self) {
        if let Some(p) = &self.net.opts.progress {
            p.0.finish();
        }
        // Download tasks still unwinding are dropped with the runtime, not
        // waited for.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Container for RegistryContainer {
    fn describe(&self) -> String {
        format!("registry image {}", self.net.reference)
    }

    fn exists(&self, _path: &str) -> bool {
        false
    }

    fn read_small(&self, path: &str, _limit: u64) -> Result<Vec<u8>> {
        Err(Error::MissingBlob {
            digest: path.to_owned(),
            what: "member".into(),
            container: self.describe(),
        })
    }

    fn scan_layer(&self, plan: &LayerPlan, opts: &LayerOptions) -> Result<LayerIndex> {
        let Some(digest) = &plan.digest else {
            return Err(Error::Unverifiable {
                what: format!("layer {}", plan.index),
                why: "the manifest gives no digest".into(),
            });
        };
        if let Some(mut hit) = self.cache.as_ref().and_then(|c| c.get(digest)) {
            // Held to this scan's limits and charged to its budget, as
            // reading the blob would have been.
            hit.admit(opts)
                .map_err(|e| crate::source::layer_error(plan, e))?;
            self.layer_done();
            return Ok(hit);
        }
        let what = format!("layer {} blob {digest}", plan.index);
        let state = Arc::new(BlobState::default());
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let net = Arc::clone(&self.net);
        let pump = Pump {
            reference: net.reference.clone(),
            digest: digest.to_string(),
            size: plan.size,
            what: what.clone(),
            tx,
            state: Arc::clone(&state),
        };
        let task = self.handle.spawn(async move { net.pump(pump).await });
        let _abort = AbortOnDrop(task);
        let mut reader = ChannelReader {
            rx,
            cur: Bytes::new(),
        };
        match layer::scan_layer(&mut reader, opts) {
            Ok(idx) => {
                idx.raw.verify(&what, digest)?;
                if let Some((expected, actual)) = state.mismatch() {
                    // Our hash matched but the Docker-Content-Digest did not.
                    return Err(Error::DigestMismatch {
                        what: format!("{what} (Docker-Content-Digest)"),
                        expected,
                        actual,
                    });
                }
                // Stored only now: the blob digest (above) and the diff_id
                // (here) both verified, so the entry is the scan of exactly
                // the bytes its key names. Without verification (no
                // algorithms asked) `verify` fails and nothing is stored.
                // tests/layer_cache.rs `only_verified_layers_enter_the_cache`.
                if let Some(c) = &self.cache {
                    idx.tar
                        .verify(&format!("layer {} diff_id", plan.index), &plan.diff_id)?;
                    c.put(digest, &idx);
                }
                self.layer_done();
                Ok(idx)
            }
            Err(e) => {
                if let Some(fatal) = state.take_fatal() {
                    return Err(fatal);
                }
                // Read on so that a corrupt blob is reported as such rather
                // than as the decompression error it caused.
                let _ = io::copy(&mut (&mut reader).take(DRAIN_LIMIT), &mut io::sink());
                if let Some(fatal) = state.take_fatal() {
                    return Err(fatal);
                }
                if let Some((expected, actual)) = state.mismatch() {
                    return Err(Error::DigestMismatch {
                        what,
                        expected,
                        actual,
                    });
                }
                Err(crate::source::layer_error(plan, e))
            }
        }
    }
}
