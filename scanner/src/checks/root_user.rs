//! TODO(helper): implement.

use super::{Check, Context, Findings};
use crate::rules::RuleId;

/// Stub.
pub struct RootUser;

impl Check for RootUser {
    fn rules(&self) -> &'static [RuleId] {
        &[RuleId::RootUser, RuleId::UnresolvedUser, RuleId::RootGroup]
    }
    fn run(&self, _ctx: &Context<'_>, _out: &mut Findings) {}
}
