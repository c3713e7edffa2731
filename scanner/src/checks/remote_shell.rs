//! TODO(helper): implement.

use super::{Check, Context, Findings};
use crate::rules::RuleId;

/// Stub.
pub struct RemoteShellDaemon;

impl Check for RemoteShellDaemon {
    fn rules(&self) -> &'static [RuleId] {
        &[RuleId::RemoteShellDaemon]
    }
    fn run(&self, _ctx: &Context<'_>, _out: &mut Findings) {}
}
