//! Who owns this CPU's scratch buffers (`FS_SCRATCH`, `EXEC_PATH_SCRATCH`,
//! `EXEC_LIB_KEY_SCRATCH`): the BPF stack cannot hold a path, so paths and keys are built in
//! per-CPU map values.
//!
//! BPF programs run with migration disabled, not preemption: on a kernel with full
//! preemption (`CONFIG_PREEMPT`, or `preempt=full` on a `PREEMPT_DYNAMIC` kernel such as
//! Debian's) a task can be preempted mid-program and another task's program can then
//! rewrite the same CPU's buffer; the first would go on judging the second's path. So a
//! program claims the buffers before writing them ([`claim`]) and, once its lookups are
//! done, checks that no other task claimed them since ([`intact`]). A run whose buffers
//! were taken over is denied (fail closed) and counted (`counter::SCRATCH_TAKEN`); it is
//! rare, because it needs a preemption inside the program's few microseconds.
//!
//! Every user of the buffers claims them first, so any overwrite between a claim and its
//! check changes the owner. The owner is the task's `pid_tgid`: one task never runs two of
//! these programs at once (the hooks that use the buffers run in process context only).
#![warn(clippy::missing_docs_in_private_items)]

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use nemoclaw_common::event::counter;

use crate::{event, maps::SCRATCH_OWNER};

/// Marks the current task as the owner of this CPU's scratch buffers. Call before writing
/// them.
#[inline(always)]
pub fn claim() {
    if let Some(owner) = SCRATCH_OWNER.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a per-CPU array.
        unsafe { core::ptr::write_volatile(owner, bpf_get_current_pid_tgid()) };
    }
}

/// Whether the buffers are still the current task's since its [`claim`]; counts the run
/// in `SCRATCH_TAKEN` when they are not (or the owner cannot be read).
#[inline(always)]
pub fn intact() -> bool {
    let ours = SCRATCH_OWNER
        .get_ptr(0)
        // SAFETY: this CPU's slot of a per-CPU array.
        .is_some_and(
            |owner| unsafe { core::ptr::read_volatile(owner) } == bpf_get_current_pid_tgid(),
        );
    if !ours {
        event::count(counter::SCRATCH_TAKEN);
    }
    ours
}
