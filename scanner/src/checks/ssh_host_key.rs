//! TODO(helper): implement.

use super::{Check, Context, Findings};
use crate::rules::RuleId;

/// Stub.
pub struct SshHostKey;

impl Check for SshHostKey {
    fn rules(&self) -> &'static [RuleId] {
        &[RuleId::SshHostKey]
    }
    fn run(&self, _ctx: &Context<'_>, _out: &mut Findings) {}
}
