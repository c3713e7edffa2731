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

use std::sync::atomic::{AtomicU64, Ordering};

/// Default image-wide budget: 1 GiB (`--max-memory`).
pub const DEFAULT_MAX_MEMORY: u64 = 1 << 30;

/// Bytes the input may make imgscan hold, image-wide.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
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
        }
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
}
