//! TODO(helper): implement.

use super::{Check, Context, Findings};
use crate::rules::RuleId;

/// Stub.
pub struct SetuidSetgid;

impl Check for SetuidSetgid {
    fn rules(&self) -> &'static [RuleId] {
        &[RuleId::SetuidBinary, RuleId::SetgidBinary]
    }
    fn run(&self, _ctx: &Context<'_>, _out: &mut Findings) {}
}
