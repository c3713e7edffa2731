//! TODO(helper): implement.

use super::{Check, Context, Findings};
use crate::rules::RuleId;

/// Stub.
pub struct SudoersNopasswd;

impl Check for SudoersNopasswd {
    fn rules(&self) -> &'static [RuleId] {
        &[RuleId::SudoersNopasswd]
    }
    fn run(&self, _ctx: &Context<'_>, _out: &mut Findings) {}
}
