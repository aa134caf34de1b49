//! Which sandbox (if any) the current task belongs to.

use aya_ebpf::helpers::bpf_get_current_cgroup_id;
use nemoclaw_common::sandbox::SandboxEntry;

use crate::maps::SANDBOXES;

/// The current task's cgroup id and sandbox entry, or `None` when it is not sandboxed.
#[inline(always)]
pub fn current() -> (u64, Option<SandboxEntry>) {
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out before any other map operation.
    let entry = unsafe { SANDBOXES.get(&cgroup_id) }.copied();
    (cgroup_id, entry)
}
