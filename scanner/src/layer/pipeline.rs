//! The threads of one layer scan, and the chunk channels between them.
//!
//! A large layer is scanned by up to three threads, so that the work a scan
//! must do (hash the blob, decompress it, hash the tar, parse it) overlaps
//! across cores instead of running one step after another:
//!
//! ```text
//! compressed:    [read + blob sha256] ─► [inflate / unzstd] ─► [tar sha256] ─► [parse]
//! uncompressed:  [read] ─────────────────────────────────────► [sha256]     ─► [parse]
//! ```
//!
//! SHA-256 runs at about 1.5 GB/s with SHA-NI, as fast as the kernel copies
//! from the page cache or zstd inflates, so hashing the tar gets a thread of
//! its own: with every stage on its own thread the two cores share the
//! whole of the work instead of one stage waiting for another.
//!
//! Chunks of [`CHUNK`] bytes move through bounded channels and go back to a
//! process-wide pool when spent, so memory stays at a few MiB per layer
//! whatever its size, and a scan touches fresh memory only for its first
//! chunks (page faults cost more than the copies they would save). The
//! parsing side skips member data without copying it ([`ChunkSource`]).
//! Every byte is hashed exactly once, on the thread with the least to do.

use std::io::{self, BufRead, Read};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::digest::{Algorithm, Hasher, Hashes};
use crate::tarstream::TarSource;

/// Bytes moved between threads at a time.
pub(crate) const CHUNK: usize = 256 * 1024;
/// Chunks in flight per channel.
const IN_FLIGHT: usize = 4;
/// Spent chunks kept for reuse, process-wide (12 MiB).
const POOL: usize = 48;

static SPARE: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// A `CHUNK`-byte buffer, from the pool when it has one.
fn take_buffer() -> Vec<u8> {
    let mut b = SPARE
        .lock()
        .ok()
        .and_then(|mut p| p.pop())
        .unwrap_or_default();
    b.resize(CHUNK, 0);
    b
}

/// Returns a spent buffer to the pool (dropped when the pool is full).
fn give_back(buf: Vec<u8>) {
    if buf.capacity() >= CHUNK
        && let Ok(mut p) = SPARE.lock()
        && p.len() < POOL
    {
        p.push(buf);
    }
}

type Chunk = io::Result<Vec<u8>>;

/// Reads as much as fits in `buf`, stopping early only at the end of the stream.
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A bounded channel of chunks.
pub(crate) fn channel() -> (ChunkSender, ChunkReceiver) {
    let (tx, rx) = bounded::<Chunk>(IN_FLIGHT);
    (ChunkSender { tx }, ChunkReceiver { rx })
}

/// The sending end: hands out buffers (recycled when possible) and sends them.
pub(crate) struct ChunkSender {
    tx: Sender<Chunk>,
}

impl ChunkSender {
    /// A buffer of `CHUNK` bytes to fill.
    pub(crate) fn buffer(&self) -> Vec<u8> {
        take_buffer()
    }

    /// Sends a chunk; `false` when the receiver is gone (it stopped early and
    /// reports why itself).
    pub(crate) fn send(&self, chunk: Vec<u8>) -> bool {
        self.tx.send(Ok(chunk)).is_ok()
    }

    /// Passes an error downstream.
    pub(crate) fn fail(&self, e: &io::Error) {
        let _ = self.tx.send(Err(io::Error::new(e.kind(), e.to_string())));
    }

    /// Reads `r` to its end in chunks, calling `each` on every chunk before
    /// sending it. Errors are passed downstream too. Stops early, with
    /// `Ok`, when the receiver is gone.
    pub(crate) fn pump(&self, r: &mut impl Read, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        loop {
            let mut buf = self.buffer();
            match read_up_to(r, &mut buf) {
                Ok(0) => return Ok(()),
                Ok(k) => {
                    buf.truncate(k);
                    each(&buf);
                    if !self.send(buf) {
                        return Ok(());
                    }
                }
                Err(e) => {
                    self.fail(&e);
                    return Err(e);
                }
            }
        }
    }
}

/// Forwards every chunk from `up` to `down`, hashing it on the way. Returns the digests
/// of everything that passed (complete only if the stream was read to its
/// end, which the receiver downstream sees as the end of its stream).
pub(crate) fn relay(up: ChunkReceiver, down: ChunkSender, algorithms: &[Algorithm]) -> Hashes {
    let mut h = Hasher::new(algorithms);
    loop {
        match up.recv() {
            Ok(Some(chunk)) => {
                h.update(&chunk);
                if !down.send(chunk) {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                down.fail(&e);
                break;
            }
        }
    }
    h.finish()
}

/// The receiving end, as raw chunks.
pub(crate) struct ChunkReceiver {
    rx: Receiver<Chunk>,
}

impl ChunkReceiver {
    fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        match self.rx.recv() {
            Ok(Ok(c)) => Ok(Some(c)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }
}

/// Chunks read as one stream, with zero-copy skips: the parse side of the
/// pipeline, and the decompressor's input. Hashing is a stage of its own
/// ([`relay`]).
pub(crate) struct ChunkSource {
    rx: ChunkReceiver,
    cur: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl ChunkSource {
    /// Reads `rx`; `first` is served before anything received.
    pub(crate) fn new(rx: ChunkReceiver, first: Vec<u8>) -> Self {
        Self {
            rx,
            cur: first,
            pos: 0,
            ended: false,
        }
    }

    /// Makes the next chunk current; `false` at the end of the stream.
    fn advance(&mut self) -> io::Result<bool> {
        while self.pos == self.cur.len() {
            if self.ended {
                return Ok(false);
            }
            match self.rx.recv()? {
                Some(chunk) => {
                    let old = std::mem::replace(&mut self.cur, chunk);
                    give_back(old);
                    self.pos = 0;
                }
                None => {
                    self.ended = true;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Reads the rest of the stream, so that every stage upstream (and its
    /// hash) sees all of it.
    pub(crate) fn drain(mut self) -> io::Result<()> {
        self.pos = self.cur.len();
        while self.advance()? {
            self.pos = self.cur.len();
        }
        Ok(())
    }
}

impl Drop for ChunkSource {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.cur));
    }
}

impl Read for ChunkSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.advance()? {
            return Ok(0);
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl BufRead for ChunkSource {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if !self.advance()? {
            return Ok(&[]);
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.cur.len());
    }
}

impl TarSource for ChunkSource {
    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            if !self.advance()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "archive ends inside a member",
                ));
            }
            let k = n.min((self.cur.len() - self.pos) as u64);
            self.pos += k as usize;
            n -= k;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_reads_skips_hashes_and_drains() {
        let data: Vec<u8> = (0..(3 * CHUNK + 1000) as u32)
            .map(|i| (i % 253) as u8)
            .collect();
        let (tx, rx) = channel();
        let (hash_tx, hash_rx) = channel();
        let producer = {
            let data = data.clone();
            std::thread::spawn(move || tx.pump(&mut &data[..], |_| {}))
        };
        let hasher = std::thread::spawn(move || relay(rx, hash_tx, &[Algorithm::Sha256]));
        let mut src = ChunkSource::new(hash_rx, Vec::new());
        let mut head = [0u8; 20];
        src.read_exact(&mut head).unwrap();
        assert_eq!(&head[..], &data[..20]);
        src.skip(CHUNK as u64 + 5).unwrap();
        let mut b = [0u8; 1];
        src.read_exact(&mut b).unwrap();
        assert_eq!(b[0], data[20 + CHUNK + 5]);
        src.drain().unwrap();
        producer.join().unwrap().unwrap();
        let h = hasher.join().unwrap();
        assert_eq!(h.len, data.len() as u64);
        assert_eq!(h.sha256.unwrap(), crate::digest::Digest::sha256_of(&data));
    }

    #[test]
    fn skip_past_the_end_is_an_error() {
        let (tx, rx) = channel();
        drop(tx);
        let mut src = ChunkSource::new(rx, vec![1, 2, 3]);
        assert!(src.skip(4).is_err());
    }
}
