//! The value every rule map stores: what to do, and which policy rule said so.

/// [`Verdict::action`]: allow.
pub const ACTION_ALLOW: u32 = 1;
/// [`Verdict::action`]: deny.
pub const ACTION_DENY: u32 = 2;

/// Rule id used when no rule matched and the default (deny) decided.
pub const RULE_DEFAULT_DENY: u32 = 0;

/// A rule map value. `rule_id` indexes the compiled policy's rule table (1-based), so a deny
/// event can cite the file and line of the rule that decided.
///
/// Stored by every rule map; read by every judging program (LSM and cgroup alike).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Verdict {
    /// [`ACTION_ALLOW`], [`ACTION_DENY`], or 0 for no verdict.
    pub action: u32,
    /// The compiled policy's rule id (1-based), or [`RULE_DEFAULT_DENY`].
    pub rule_id: u32,
}

/// Merges two verdicts for the same thing: deny beats allow, then the lower rule id;
/// `action == 0` (no verdict) is the identity. The one definition for the compiler and the
/// kernel side (which must agree on every merge).
#[expect(
    clippy::inline_always,
    reason = "the eBPF programs call it on their hot paths: no BPF subprogram call"
)]
#[inline(always)]
#[must_use]
pub const fn merge(a: Verdict, b: Verdict) -> Verdict {
    if a.action == 0 {
        return b;
    }
    if b.action == 0 {
        return a;
    }
    let (a_deny, b_deny) = (a.action == ACTION_DENY, b.action == ACTION_DENY);
    if a_deny && !b_deny {
        a
    } else if b_deny && !a_deny {
        b
    } else if a.rule_id <= b.rule_id {
        a
    } else {
        b
    }
}
