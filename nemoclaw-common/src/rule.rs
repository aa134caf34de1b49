//! The value every rule map stores: what to do, and which policy rule said so.

/// [`Verdict::action`]: allow.
pub const ACTION_ALLOW: u32 = 1;
/// [`Verdict::action`]: deny.
pub const ACTION_DENY: u32 = 2;

/// Rule id used when no rule matched and the default (deny) decided.
pub const RULE_DEFAULT_DENY: u32 = 0;

/// A rule map value. `rule_id` indexes the compiled policy's rule table (1-based), so a deny
/// event can cite the file and line of the rule that decided.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Verdict {
    pub action: u32,
    pub rule_id: u32,
}
