//! Deny events and counters.
#![warn(clippy::missing_docs_in_private_items)]

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid};
use nemoclaw_common::event::{DenyEvent, counter};

use crate::maps::{COUNTERS, EVENTS};

#[inline(always)]
/// Adds one to the `COUNTERS` entry `index` (a `nemoclaw_common::event::counter`) on this CPU.
pub fn count(index: u32) {
    if let Some(ptr) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while the program runs.
        unsafe { *ptr += 1 };
    }
}

/// Reserves a deny event with the task fields and the verdict filled in, lets `fill` add the
/// object (path or address), and submits it. A full ring buffer is counted; the deny holds.
#[inline(always)]
pub fn emit(
    hook: u32,
    cgroup_id: u64,
    slot: u32,
    rule_id: u32,
    errno: u32,
    fill: impl FnOnce(&mut DenyEvent),
) {
    count(counter::DENIED);
    let Some(mut entry) = EVENTS.reserve::<DenyEvent>(0) else {
        count(counter::EVENTS_LOST);
        return;
    };
    let ev = entry.as_mut_ptr();
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: `ev` points at reserved ring buffer memory of the right size; every scalar
    // field is written before submit, and `path` is bounded by `path_len`.
    unsafe {
        (*ev).cgroup_id = cgroup_id;
        (*ev).dev = 0;
        (*ev).ino = 0;
        (*ev).pid = pid_tgid as u32;
        (*ev).tgid = (pid_tgid >> 32) as u32;
        (*ev).uid = bpf_get_current_uid_gid() as u32;
        (*ev).rule_id = rule_id;
        (*ev).hook = hook;
        (*ev).errno = errno;
        (*ev).slot = slot;
        (*ev).port = 0;
        (*ev).family = 0;
        (*ev).addr = [0; 16];
        (*ev).proto = 0;
        (*ev).path_len = 0;
        (*ev).arg = 0;
        (*ev).target_cgroup = 0;
        (*ev).target_tgid = 0;
        (*ev)._pad_target = 0;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        fill(&mut *ev);
    }
    entry.submit(0);
}

/// The event's file object: its kernel (dev, inode) and its path by `bpf_d_path`. Only for
/// hooks where `bpf_d_path` is allowed and `file` is the hook's trusted `struct file *`.
#[inline(always)]
pub fn set_file(ev: &mut DenyEvent, file: *const core::ffi::c_void, dev: u64, ino: u64) {
    ev.dev = dev;
    ev.ino = ino;
    // SAFETY: `ev.path` is EVENT_PATH_MAX bytes of reserved ring buffer memory; `file` is
    // the hook's trusted argument.
    let len = unsafe {
        aya_ebpf::helpers::generated::bpf_d_path(
            crate::kernel::file_path(file),
            ev.path.as_mut_ptr().cast(),
            nemoclaw_common::event::EVENT_PATH_MAX as u32,
        )
    };
    ev.path_len = if len > 0 { len as u32 } else { 0 };
}
