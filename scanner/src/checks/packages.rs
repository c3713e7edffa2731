//! TODO(helper): implement.

use crate::fs::FinalFs;

/// Package ownership.
#[derive(Debug, Default)]
pub struct PackageDb;

impl PackageDb {
    /// Loads it from the final filesystem.
    pub fn load(_fs: &FinalFs, _warnings: &mut Vec<String>) -> Self {
        Self
    }
}
