//! The layer cache on PostgreSQL (issue 13): one table that every replica
//! reads and writes, so a base layer is scanned once per fleet, not once per
//! replica. The SQLite cache file (`layers.rs`) is per host; this is the
//! same cache in the shared database, behind the scanner's [`LayerStore`].
//!
//! # Entries
//!
//! The rows are those of [`scanner::cache::entry`] (the format the CLI's
//! `--cache-dir` and serve's SQLite cache file store): the layer blob
//! digest, `generation`, `data`, `sha256`, `size`, `stored_at`, `used_at`,
//! written with [`Entry::of_layer`] and read back through
//! [`entry::check`] and [`entry::decode_layer`], so both caches refuse the
//! same rows. A row of another generation, whose bytes do not match their
//! SHA-256, or that does not decode is a miss: it is deleted and the layer
//! scanned again. A layer is cached only after its blob digest and
//! `diff_id` were verified (the scanner's rule, `source/registry/blob.rs`).
//!
//! # Bounds
//!
//! `layer_cache_layers` rows and `layer_cache_mib` MiB, least recently used
//! first out, checked after every store by whichever replica stored. Two
//! replicas evicting at once may delete a row twice; that is harmless.
//!
//! # Failures
//!
//! The cache never fails a scan: a database error is logged and is a miss
//! (or a store that did not happen).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use scanner::cache::entry::{self, Entry, GENERATION, Rejected};
use scanner::digest::Digest;
use scanner::layer::LayerIndex;
use scanner::source::registry::LayerStore;

use super::layers::{CacheLimits, CacheStats};
use super::store::now_ms;
use super::store::postgres::{PgStore, db};

/// The shared layer cache.
pub(crate) struct PgLayers {
    store: Arc<PgStore>,
    limits: CacheLimits,
    generation: String,
    hits: AtomicU64,
    misses: AtomicU64,
    discarded: AtomicU64,
}

impl PgLayers {
    /// The cache in `store`'s database (its table comes with the store's
    /// migrations).
    pub(crate) fn new(store: Arc<PgStore>, limits: CacheLimits) -> Self {
        Self::with_generation(store, limits, GENERATION)
    }

    fn with_generation(store: Arc<PgStore>, limits: CacheLimits, generation: &str) -> Self {
        Self {
            store,
            limits,
            generation: generation.to_owned(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
        }
    }

    /// The entry for `digest`, decoded by `decode`; see the module docs for
    /// what is a miss. Never fails.
    pub(crate) fn lookup<T>(
        &self,
        digest: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, Rejected>,
    ) -> Option<T> {
        let row = self.store.run(async {
            let c = self.store.client().await?;
            let r = c
                .query_opt(
                    "SELECT generation, data, sha256 FROM layers WHERE digest = $1",
                    &[&digest],
                )
                .await
                .map_err(db)?;
            Ok(r.map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, Vec<u8>>(1),
                    r.get::<_, Vec<u8>>(2),
                )
            }))
        });
        let found = match row {
            Ok(None) => None,
            Ok(Some((generation, data, sum))) => {
                match entry::check(&self.generation, &generation, &data, &sum).and_then(decode) {
                    Ok(v) => Some(v),
                    Err(why) => {
                        self.discard(digest, &why.to_string());
                        None
                    }
                }
            }
            Err(e) => {
                tracing::warn!("reading the layer cache: {e:#}");
                None
            }
        };
        if found.is_some() {
            self.hits.fetch_add(1, Relaxed);
            let r = self.store.run(async {
                let c = self.store.client().await?;
                c.execute(
                    "UPDATE layers SET used_at = $2 WHERE digest = $1",
                    &[&digest, &now_ms()],
                )
                .await
                .map_err(db)
            });
            if let Err(e) = r {
                tracing::warn!("updating the layer cache: {e:#}");
            }
        } else {
            self.misses.fetch_add(1, Relaxed);
        }
        found
    }

    fn discard(&self, digest: &str, why: &str) {
        self.discarded.fetch_add(1, Relaxed);
        tracing::info!(
            "layer cache: dropping the entry for {digest} ({why}); the layer is scanned again"
        );
        let r = self.store.run(async {
            let c = self.store.client().await?;
            c.execute("DELETE FROM layers WHERE digest = $1", &[&digest])
                .await
                .map_err(db)
        });
        if let Err(e) = r {
            tracing::warn!("deleting from the layer cache: {e:#}");
        }
    }

    /// Keeps `data` as the entry for `digest`, then evicts the least
    /// recently used entries beyond the limits (never this one). An entry
    /// larger than the byte limit is not kept. Errors are logged.
    #[cfg(test)]
    pub(crate) fn keep(&self, digest: &str, data: Vec<u8>) {
        self.keep_entry(digest, &Entry::new(&self.generation, data));
    }

    fn keep_entry(&self, digest: &str, e: &Entry) {
        let size = i64::try_from(e.size()).unwrap_or(i64::MAX);
        let max_bytes = i64::try_from(self.limits.bytes).unwrap_or(i64::MAX);
        let max_rows = i64::try_from(self.limits.layers).unwrap_or(i64::MAX);
        if size > max_bytes {
            return;
        }
        let (data, sum) = (&e.data, e.sha256.as_slice());
        let r = self.store.run(async {
            let c = self.store.client().await?;
            let now = now_ms();
            c.execute(
                "INSERT INTO layers (digest, generation, data, sha256, size, stored_at, used_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)
                 ON CONFLICT (digest) DO UPDATE SET generation = $2, data = $3, sha256 = $4,
                     size = $5, stored_at = $6, used_at = $6",
                &[&digest, &e.generation, data, &sum, &size, &now],
            )
            .await
            .map_err(db)?;
            let over: bool = c
                .query_one(
                    "SELECT COUNT(*) > $1::bigint OR COALESCE(SUM(size), 0)::bigint > $2::bigint FROM layers",
                    &[&max_rows, &max_bytes],
                )
                .await
                .map_err(db)?
                .get(0);
            if over {
                // Keep the newest rows while they fit beside this one; the
                // rest go.
                c.execute(
                    "DELETE FROM layers WHERE digest IN (
                         SELECT digest FROM (
                             SELECT digest,
                                    ROW_NUMBER() OVER w AS n,
                                    (SUM(size) OVER w)::bigint AS kept
                             FROM layers WHERE digest <> $1
                             WINDOW w AS (ORDER BY used_at DESC, digest DESC)) newest
                         WHERE n > $2::bigint - 1 OR kept > $3::bigint - $4::bigint)",
                    &[&digest, &max_rows, &max_bytes, &size],
                )
                .await
                .map_err(db)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!("writing to the layer cache: {e:#}");
        }
    }

    /// Counters since start (this replica's), and what the table holds
    /// (the fleet's).
    pub(crate) fn stats(&self) -> CacheStats {
        let (layers, bytes) = self
            .store
            .run(async {
                let c = self.store.client().await?;
                let r = c
                    .query_one(
                        "SELECT COUNT(*), COALESCE(SUM(size), 0)::bigint FROM layers",
                        &[],
                    )
                    .await
                    .map_err(db)?;
                Ok((r.get::<_, i64>(0), r.get::<_, i64>(1)))
            })
            .unwrap_or((0, 0));
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            discarded: self.discarded.load(Relaxed),
            layers: u64::try_from(layers).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        }
    }
}

impl LayerStore for PgLayers {
    fn get(&self, digest: &Digest) -> Option<LayerIndex> {
        self.lookup(&digest.to_string(), entry::decode_layer)
    }

    fn put(&self, digest: &Digest, index: &LayerIndex) {
        let e = Entry::of_layer(index);
        if e.generation == self.generation {
            self.keep_entry(&digest.to_string(), &e);
        }
    }
}

#[cfg(all(test, feature = "e2e"))]
mod tests {
    use super::*;
    use crate::store::postgres::PgOptions;

    const BIG: CacheLimits = CacheLimits {
        layers: 1000,
        bytes: 1 << 30,
    };

    fn text(b: &[u8]) -> Result<String, Rejected> {
        String::from_utf8(b.to_vec()).map_err(|_| Rejected::Undecodable)
    }

    fn d(n: u8) -> String {
        format!("sha256:{n:064}")
    }

    struct Fixture {
        server: crate::store::pg_server::Postgres,
    }

    impl Fixture {
        fn new() -> Self {
            let server = crate::store::pg_server::Postgres::start();
            server.create_database("imgscan");
            Self { server }
        }

        fn store(&self, replica: &str) -> Arc<PgStore> {
            let mut config: tokio_postgres::Config = self.server.url("imgscan").parse().unwrap();
            config.password(crate::store::pg_server::PG_PASSWORD);
            Arc::new(
                PgStore::open(&PgOptions {
                    config,
                    display: self.server.url("imgscan"),
                    replica: replica.to_owned(),
                    lease: std::time::Duration::from_secs(30),
                    max_attempts: 3,
                    pool_size: 4,
                    ca_cert: None,
                })
                .unwrap(),
            )
        }

        fn digests(&self) -> Vec<String> {
            let out = self
                .server
                .psql("imgscan", "SELECT digest FROM layers ORDER BY digest");
            out.lines().map(str::to_owned).collect()
        }
    }

    /// An entry stored by one replica is a hit on another; a replaced entry
    /// reads back new; counters are per replica.
    #[test]
    fn entries_are_shared_by_the_replicas() {
        let f = Fixture::new();
        let a = PgLayers::with_generation(f.store("a"), BIG, "g1");
        let b = PgLayers::with_generation(f.store("b"), BIG, "g1");
        assert_eq!(b.lookup(&d(1), text), None);
        a.keep(&d(1), b"scan one".to_vec());
        assert_eq!(b.lookup(&d(1), text).as_deref(), Some("scan one"));
        a.keep(&d(1), b"scan one again".to_vec());
        assert_eq!(b.lookup(&d(1), text).as_deref(), Some("scan one again"));
        let s = b.stats();
        assert_eq!((s.hits, s.misses, s.discarded), (2, 1, 0));
        assert_eq!((s.layers, s.bytes), (1, 14));
        assert_eq!(a.stats().hits, 0);
    }

    /// Bytes that do not match their checksum, do not decode, or were
    /// written by another generation are misses, and deleted.
    #[test]
    fn unusable_rows_are_misses_and_are_deleted() {
        let f = Fixture::new();
        let store = f.store("a");
        let c = PgLayers::with_generation(Arc::clone(&store), BIG, "g1");
        c.keep(&d(1), b"fine".to_vec());
        c.keep(&d(2), vec![0xff, 0xfe]);
        c.keep(&d(3), b"old".to_vec());
        c.keep(&d(4), b"kept".to_vec());
        // A flipped bit: the row decodes but no longer matches its sum.
        f.server.psql(
            "imgscan",
            &format!(
                "UPDATE layers SET data = 'fime'::bytea WHERE digest = '{}'",
                d(1)
            ),
        );
        assert_eq!(c.lookup(&d(1), text), None);
        assert_eq!(c.lookup(&d(2), text), None);
        let other = PgLayers::with_generation(store, BIG, "g2");
        assert_eq!(other.lookup(&d(3), text), None);
        assert_eq!(f.digests(), [d(4)]);
        assert_eq!(c.stats().discarded, 2);
        assert_eq!(other.stats().discarded, 1);
        assert_eq!(c.lookup(&d(4), text).as_deref(), Some("kept"));
    }

    /// The table stays within both bounds, the least recently used first
    /// out, and an entry larger than the byte bound is not kept.
    #[test]
    fn the_least_recently_used_entries_go_first() {
        let f = Fixture::new();
        let c = PgLayers::with_generation(
            f.store("a"),
            CacheLimits {
                layers: 3,
                bytes: 10,
            },
            "g1",
        );
        for n in 1..=3 {
            c.keep(&d(n), b"ab".to_vec());
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        assert!(c.lookup(&d(1), text).is_some());
        std::thread::sleep(std::time::Duration::from_millis(3));
        c.keep(&d(4), b"ab".to_vec());
        assert_eq!(f.digests(), [d(1), d(3), d(4)]);
        // 6 bytes kept; 8 more need room: only the newest other (4, 2
        // bytes) fits beside them.
        std::thread::sleep(std::time::Duration::from_millis(3));
        c.keep(&d(5), b"abcdefgh".to_vec());
        assert_eq!(f.digests(), [d(4), d(5)]);
        c.keep(&d(6), b"far too many bytes".to_vec());
        assert_eq!(f.digests(), [d(4), d(5)]);
        let s = c.stats();
        assert_eq!((s.layers, s.bytes), (2, 10));
    }
}
