//! `privilege_escalation`: one rule, no host facts.

use nemoclaw_common::sandbox::controls;

use super::Resolving;
use crate::policy::types::{Located, Policy, PrivilegeEscalation};

/// The control bit: set by `privilege_escalation: deny` only.
pub(super) fn control(policy: &Policy) -> u32 {
    if policy
        .privilege_escalation
        .as_ref()
        .is_some_and(|p| p.value == PrivilegeEscalation::Deny)
    {
        controls::PRIVILEGE
    } else {
        0
    }
}

impl Resolving<'_, '_> {
    pub(super) fn privilege_rule(&mut self, rule: &Located<PrivilegeEscalation>, id: u32) {
        self.rules.privilege = Some((id, rule.value));
    }
}
