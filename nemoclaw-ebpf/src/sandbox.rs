//! Which sandbox (if any) the current task belongs to.
#![warn(clippy::missing_docs_in_private_items)]

use aya_ebpf::helpers::generated::{bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id};
use nemoclaw_common::sandbox::{SANDBOX_CGROUP_LEVEL, SandboxEntry};

use crate::maps::SANDBOXES;

/// The current task's cgroup id and its sandbox's entry, or `None` when it is not sandboxed.
///
/// A task in a cgroup below a sandbox's (which root in the sandbox could create and move
/// into) is judged by that sandbox: sandboxes sit at a fixed depth of the cgroup v2
/// hierarchy, so its ancestor at that depth is looked up when its own cgroup is unknown.
#[inline(always)]
pub fn current() -> (u64, Option<SandboxEntry>) {
    // SAFETY: helpers without pointer arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // A nullable pointer rather than an `Option<SandboxEntry>` on each path: the verifier
    // rejects the partially-initialised discriminant LLVM makes of the latter.
    let mut entry = SANDBOXES.get_ptr(&cgroup_id);
    if entry.is_none() {
        // SAFETY: as above; 0 means the task is not that deep.
        let ancestor = unsafe { bpf_get_current_ancestor_cgroup_id(SANDBOX_CGROUP_LEVEL as i32) };
        if ancestor != 0 && ancestor != cgroup_id {
            entry = SANDBOXES.get_ptr(&ancestor);
        }
    }
    // SAFETY: a map value pointer from a successful lookup; copied out at once.
    (cgroup_id, entry.map(|p| unsafe { *p }))
}

/// [`current`] with an entry without controls when the task is not sandboxed: plain values
/// with a sentinel rather than an `Option`, for callers that pass the entry on (LLVM may
/// read the payload of a `None`, undefined, before testing it, and the verifier rejects that
/// read of an uninitialised register).
#[inline(always)]
pub fn current_entry() -> (u64, SandboxEntry) {
    let (cgroup_id, entry) = current();
    let entry = entry.unwrap_or(SandboxEntry {
        slot: 0,
        controls: 0,
    });
    (cgroup_id, entry)
}

/// The cgroup id of the sandbox a task in `cgroup_id` belongs to: its own cgroup if that is
/// registered, else its ancestor at the sandbox depth.
#[inline(always)]
pub fn sandbox_cgroup(cgroup_id: u64) -> u64 {
    if SANDBOXES.get_ptr(&cgroup_id).is_some() {
        return cgroup_id;
    }
    // SAFETY: helper without pointer arguments.
    unsafe { bpf_get_current_ancestor_cgroup_id(SANDBOX_CGROUP_LEVEL as i32) }
}
