//! TODO(helper): implement.

use super::{Check, Context, Findings};
use crate::rules::RuleId;

/// Stub.
pub struct WorldWritable;

impl Check for WorldWritable {
    fn rules(&self) -> &'static [RuleId] {
        &[RuleId::WorldWritablePath]
    }
    fn run(&self, _ctx: &Context<'_>, _out: &mut Findings) {}
}
