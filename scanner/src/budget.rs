//! One memory budget for the whole image.
//!
//! Every structure that grows with the input (member records and names,
//! implicit directories, symlink targets, whiteout paths, captured file
//! contents, JSON documents held while streaming, the final filesystem)
//! charges the same [`MemoryBudget`] before it grows. Going over is an error
//! naming the budget ([`BudgetExceeded`]), which a scan turns into exit 2:
//! never the OOM killer.
//!
//! The budget counts what the input makes imgscan keep, not every transient
//! buffer: read buffers come from a fixed pool and are not charged. Charges are
//! estimates of heap bytes (payload plus per-item overhead), so the process's
//! peak RSS stays below the budget plus a fixed few tens of MiB.
//!
//! # Security
//!
//! Shared between threads (layer workers charge it concurrently); a charge
//! that would go over leaves the counter unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Default image-wide budget: 1 GiB (`--max-memory`).
pub const DEFAULT_MAX_MEMORY: u64 = 1 << 30;

/// The CPUs this process may use (1 if that cannot be told), the other
/// budget a scan divides: layer workers, stream workers, registry downloads.
/// Asked once: the answer reads cgroup files, which costs a visible part of
/// a small scan.
pub fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

/// Bytes the input may make imgscan hold, image-wide.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
    /// Bytes of captured file contents taken so far (a sub-limit, also
    /// charged to `used`).
    captured: AtomicU64,
}

/// A charge went over the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the image needs more than the memory budget of {} MiB ({what}); \
     raise --max-memory if this image is genuine",
    limit >> 20
)]
pub struct BudgetExceeded {
    /// The budget, in bytes.
    pub limit: u64,
    /// What was being stored when it ran out.
    pub what: String,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
            captured: AtomicU64::new(0),
        }
    }

    /// Takes up to `want` bytes of the image-wide capture allowance `total`
    /// (captured file contents), returning how many were granted (possibly
    /// fewer, possibly none). Granted bytes are not charged to the budget:
    /// the caller charges what it keeps.
    pub fn take_capture(&self, want: u64, total: u64) -> u64 {
        let mut granted = 0;
        let _ = self
            .captured
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                granted = want.min(total.saturating_sub(c));
                Some(c + granted)
            });
        granted
    }

    /// Takes `n` bytes for `what`, or fails leaving the budget as it was.
    pub fn charge(&self, n: u64, what: &str) -> Result<(), BudgetExceeded> {
        let limit = self.limit;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|total| *total <= limit)
            })
            .map(drop)
            .map_err(|_| BudgetExceeded {
                limit,
                what: what.to_owned(),
            })
    }

    /// Gives back `n` bytes charged earlier (a structure was freed).
    pub fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(n))
            });
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// Bytes charged to a budget on behalf of one structure, given back when it
/// is dropped (a layer's index, once applied).
///
/// A clone charges nothing and gives nothing back: clones of an index
/// (tests, caches) are not the scan's working set. Charges are batched: callers
/// add estimates with [`Charge::add`], which reaches the shared counter only
/// once per [`Charge::BATCH`] bytes, so a hot loop pays one addition and one
/// comparison per item.
#[derive(Default)]
pub struct Charge {
    budget: Option<Arc<MemoryBudget>>,
    /// Charged to the budget.
    charged: u64,
    /// Accounted but not yet charged (below one batch).
    pending: u64,
}

impl Charge {
    /// Bytes accounted before the shared counter is touched.
    pub const BATCH: u64 = 64 << 10;

    /// An empty charge against `budget`.
    pub fn new(budget: Arc<MemoryBudget>) -> Self {
        Self {
            budget: Some(budget),
            charged: 0,
            pending: 0,
        }
    }

    /// Accounts `n` more bytes for `what`; charges the budget once a batch
    /// has gathered. Fails when the budget is exceeded.
    #[inline]
    pub fn add(&mut self, n: u64, what: &str) -> Result<(), BudgetExceeded> {
        self.pending = self.pending.saturating_add(n);
        if self.pending >= Self::BATCH {
            self.flush(what)?;
        }
        Ok(())
    }

    /// Charges whatever is pending now.
    pub fn flush(&mut self, what: &str) -> Result<(), BudgetExceeded> {
        let n = std::mem::take(&mut self.pending);
        if let Some(b) = &self.budget {
            b.charge(n, what)?;
        }
        self.charged += n;
        Ok(())
    }

    /// Bytes charged or pending.
    pub fn bytes(&self) -> u64 {
        self.charged + self.pending
    }

    /// The budget charged, if any.
    pub fn budget(&self) -> Option<&Arc<MemoryBudget>> {
        self.budget.as_ref()
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.release(self.charged);
        }
    }
}

impl Clone for Charge {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Charge {
    /// Charges never make two structures differ.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Charge {}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Charge({} bytes)", self.bytes())
    }
}

/// Parses a size: bytes, or a number with a binary suffix `K`, `M`, `G`,
/// `T` (optionally followed by `iB` or `B`, any case): `512M`, `1G`,
/// `1073741824`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (try 512M, 1G or a number of bytes)"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MEMORY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_and_no_further() {
        let b = MemoryBudget::new(100);
        b.charge(60, "a").unwrap();
        let err = b.charge(41, "member names").unwrap_err();
        assert_eq!(b.used(), 60, "a failed charge takes nothing");
        assert!(err.to_string().contains("member names"), "{err}");
        b.charge(40, "b").unwrap();
        b.release(50);
        assert_eq!(b.used(), 50);
        assert!(b.charge(u64::MAX, "huge").is_err());
    }

    /// A charge reaches the counter in batches and is given back on drop.
    #[test]
    fn charges_batch_and_release_on_drop() {
        let b = Arc::new(MemoryBudget::new(1 << 20));
        let mut c = Charge::new(b.clone());
        c.add(100, "x").unwrap();
        assert_eq!(b.used(), 0, "below one batch nothing is charged");
        c.add(Charge::BATCH, "x").unwrap();
        assert_eq!(b.used(), Charge::BATCH + 100);
        assert!(c.add(2 << 20, "too much").is_err());
        drop(c);
        assert_eq!(b.used(), 0);
    }

    /// The capture allowance is shared and never over-granted.
    #[test]
    fn capture_allowance_is_image_wide() {
        let b = MemoryBudget::new(1 << 30);
        assert_eq!(b.take_capture(60, 100), 60);
        assert_eq!(b.take_capture(60, 100), 40);
        assert_eq!(b.take_capture(1, 100), 0);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
