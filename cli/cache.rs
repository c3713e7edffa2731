//! The persistent layer cache of registry pulls (`--cache-dir`,
//! `--no-cache`, `--cache-max-size`): scanner's [`scanner::cache::LayerDb`],
//! the same code and file format as `imgscan serve`'s `serve.layers.db`, in
//! `DIR/layers.db`, shared by every imgscan process of the user.
//!
//! The file is opened on the first layer a registry pull asks for, so that
//! scans of local files never touch the cache directory. A cache that
//! cannot be used (a directory that cannot be created or written, a file
//! another process holds, a damaged file that cannot be replaced) is one
//! warning on stderr (none with `--quiet`) and the scan goes on without
//! it: a cache problem never fails a scan.
//!
//! Without the `cache` feature there is no cache to use: the flags are
//! accepted (an `IMGSCAN_CACHE_DIR` set for all builds must not break one)
//! and an explicit directory gets a note saying it is ignored.

use std::sync::Arc;

use scanner::source::registry::{LayerCache, LayerStore};

use crate::args::ScanArgs;

/// The layer store of a run: the cache file, unless `--no-cache` (or
/// `--no-verify`, whose layers are never stored); for several images and
/// no usable file, an in-memory cache so that layers shared between them
/// are pulled once.
pub(crate) fn store(args: &ScanArgs) -> Option<Arc<dyn LayerStore>> {
    let run = || (args.images.len() > 1).then(LayerCache::default);
    if args.cache.no_cache || args.no_verify {
        return run().map(|c| Arc::new(c) as Arc<dyn LayerStore>);
    }
    #[cfg(feature = "cache")]
    {
        Some(Arc::new(persistent::Lazy::new(args, run())))
    }
    #[cfg(not(feature = "cache"))]
    {
        use std::io::Write as _;
        if let (Some(dir), false) = (&args.cache.cache_dir, args.quiet) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "imgscan: note: this imgscan was built without the `cache` feature; the layer \
                 cache directory {} is not used",
                dir.display()
            );
        }
        run().map(|c| Arc::new(c) as Arc<dyn LayerStore>)
    }
}

#[cfg(feature = "cache")]
mod persistent {
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use scanner::cache::{CacheLimits, DbOptions, LayerDb, Level, Locking};
    use scanner::digest::Digest;
    use scanner::layer::LayerIndex;
    use scanner::source::registry::{LayerCache, LayerStore};

    use crate::args::ScanArgs;

    /// Prints warnings on stderr: the first few, then one line saying more
    /// were not shown (a cache that fails once usually fails for every layer).
    #[derive(Debug)]
    struct Warnings {
        quiet: bool,
        shown: std::sync::atomic::AtomicU32,
    }

    /// Warnings shown in full.
    const MAX_WARNINGS: u32 = 3;

    impl Warnings {
        fn warn(&self, msg: &str) {
            if self.quiet {
                return;
            }
            let n = self
                .shown
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            use std::io::Write as _;
            let mut err = std::io::stderr().lock();
            let _ = match n {
                n if n < MAX_WARNINGS => writeln!(
                    err,
                    "imgscan: warning: {msg} (the scan goes on; --no-cache turns the cache off)"
                ),
                MAX_WARNINGS => {
                    writeln!(err, "imgscan: warning: more layer cache warnings not shown")
                }
                _ => Ok(()),
            };
        }
    }

    /// The file name in the cache directory.
    const FILE: &str = "layers.db";
    /// Most entries kept: the byte bound (`--cache-max-size`) is the one
    /// that matters; this keeps the table's index small.
    const MAX_LAYERS: u64 = 100_000;
    /// How long one statement waits for another process's write.
    const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

    /// The default directory: `$XDG_CACHE_HOME/imgscan` (an absolute
    /// path, as the XDG base directory spec requires), else
    /// `$HOME/.cache/imgscan`.
    pub(super) fn default_dir() -> Option<PathBuf> {
        let var = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("XDG_CACHE_HOME")
            .filter(|p| p.is_absolute())
            .or_else(|| var("HOME").map(|h| h.join(".cache")))
            .map(|d| d.join("imgscan"))
    }

    /// The cache file, opened on first use.
    pub(super) struct Lazy {
        dir: Option<PathBuf>,
        limits: CacheLimits,
        warnings: Arc<Warnings>,
        db: OnceLock<Option<LayerDb>>,
        /// Used when the file cannot be.
        fallback: Option<LayerCache>,
    }

    impl Lazy {
        pub(super) fn new(args: &ScanArgs, fallback: Option<LayerCache>) -> Self {
            Self {
                dir: args.cache.cache_dir.clone().or_else(default_dir),
                limits: CacheLimits {
                    layers: MAX_LAYERS,
                    bytes: args.cache.cache_max_size,
                },
                warnings: Arc::new(Warnings {
                    quiet: args.quiet,
                    shown: 0.into(),
                }),
                db: OnceLock::new(),
                fallback,
            }
        }

        fn db(&self) -> Option<&LayerDb> {
            self.db
                .get_or_init(|| {
                    let Some(dir) = &self.dir else {
                        self.warnings.warn(
                            "no layer cache: neither XDG_CACHE_HOME nor HOME is set \
                             (give --cache-dir)",
                        );
                        return None;
                    };
                    match open(dir, self.limits, &self.warnings) {
                        Ok(db) => Some(db),
                        Err(e) => {
                            self.warnings
                                .warn(&format!("not using the layer cache: {e}"));
                            None
                        }
                    }
                })
                .as_ref()
        }
    }

    impl LayerStore for Lazy {
        fn get(&self, digest: &Digest) -> Option<LayerIndex> {
            match self.db() {
                Some(db) => db.get(digest),
                None => self.fallback.as_ref()?.get(digest),
            }
        }

        fn put(&self, digest: &Digest, index: &LayerIndex) {
            match (self.db(), &self.fallback) {
                (Some(db), _) => db.put(digest, index),
                (None, Some(run)) => run.put(digest, index),
                (None, None) => {}
            }
        }
    }

    /// Creates `dir` (0700) and opens `dir/layers.db` shared.
    fn open(dir: &Path, limits: CacheLimits, warnings: &Arc<Warnings>) -> Result<LayerDb, String> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let log = {
            let w = Arc::clone(warnings);
            Arc::new(move |level, msg: &str| {
                if level == Level::Warn {
                    w.warn(msg);
                }
            })
        };
        let opts = DbOptions {
            limits,
            locking: Locking::Shared,
            busy_timeout: BUSY_TIMEOUT,
            log: Some(log),
        };
        LayerDb::open(&dir.join(FILE), &opts).map_err(|e| e.to_string())
    }
}
