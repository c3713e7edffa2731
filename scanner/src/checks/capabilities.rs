//! TODO(helper): implement.

use super::{Check, Context, Findings};
use crate::rules::RuleId;

/// Stub.
pub struct FileCapabilities;

impl Check for FileCapabilities {
    fn rules(&self) -> &'static [RuleId] {
        &[RuleId::FileCapability]
    }
    fn run(&self, _ctx: &Context<'_>, _out: &mut Findings) {}
}
