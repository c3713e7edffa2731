//! TODO(helper): implement.

use super::{Check, Context, Findings};
use crate::fs::FinalFs;
use crate::rules::RuleId;

/// Accounts from /etc/passwd and /etc/group.
#[derive(Debug, Default)]
pub struct Accounts;

impl Accounts {
    /// Loads them from the final filesystem.
    pub fn load(_fs: &FinalFs, _warnings: &mut Vec<String>) -> Self {
        Self
    }
}

/// Stub.
pub struct Uid0Accounts;

impl Check for Uid0Accounts {
    fn rules(&self) -> &'static [RuleId] {
        &[RuleId::Uid0Account]
    }
    fn run(&self, _ctx: &Context<'_>, _out: &mut Findings) {}
}
