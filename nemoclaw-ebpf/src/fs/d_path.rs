//! The `path_*` hooks' path by `bpf_d_path` (of a `struct path` argument, with an entry of
//! that directory appended), where the kernel allows the helper there: the walk's path
//! (`fs/walk.rs`) for less (`docs/filesystem.md`, "Paths").

use core::ffi::c_void;

use nemoclaw_common::fs::FS_PATH_MAX;

use super::{FsScratch, NAME_MAX, copy, d_path_absolute, opaque};
use crate::kernel;

/// `d_path`'s mark of an unlinked object, at the end of its path.
const DELETED: &[u8; 10] = b" (deleted)";

/// 1 where this kernel lets the `path_*` hooks (all but `path_mknod`) call `bpf_d_path`, 0
/// elsewhere. Userspace probes it and sets it before load (`.rodata`, like the struct
/// offsets: `kernel::probe::d_path_in_path_hooks`); where it is 0 the verifier never visits
/// the call, which it would refuse.
#[unsafe(no_mangle)]
static PATH_HOOKS_D_PATH: u64 = 0;

/// Whether [`PATH_HOOKS_D_PATH`] says the `path_*` hooks may call `bpf_d_path` here.
#[inline(always)]
pub(super) fn allowed() -> bool {
    // SAFETY: a plain read of a `.rodata` static.
    unsafe { core::ptr::read_volatile(&raw const PATH_HOOKS_D_PATH) != 0 }
}

/// The path the walk would build for `path` (`child` 0), or for `child`, an entry of the
/// directory `path`, built from `bpf_d_path` of `path` instead, in `s.path`; its length, or
/// 0 wherever it could differ from the walk's, and the caller walks:
/// - `d_path` marks an unlinked object with ` (deleted)`; the walk gives its last name.
///   (A name that ends so is walked too, and gives the same path.)
/// - `d_path` names pseudo files (`pipe:[..]`) by the file system's own names.
/// - `d_path` gives `/` for a dentry that is not under its mount's root (moved out of a
///   bind-mounted subtree while held open, or disconnected); the walk gives its path from
///   its file system's root. So `/` itself is walked.
/// - A failure (too long), or a name the walk refuses (empty, longer than `NAME_MAX`).
///
/// Elsewhere both build the same path: `d_path` walks `d_parent` to the mount root and
/// crosses to the parent mount up to the task's root or the namespace's (or a detached
/// tree's) root mount, as the walk does. Only for hooks where `bpf_d_path` is allowed, with
/// `path` the hook's trusted `struct path *` argument.
#[inline(always)]
pub(super) fn path_of(s: *mut FsScratch, path: *const c_void, child: u64) -> usize {
    let len = d_path_absolute(s, path.cast_mut().cast());
    // "/" is walked (above).
    if len <= 1 {
        return 0;
    }
    if ends_deleted(s, len) {
        return 0;
    }
    if child == 0 {
        return len;
    }
    let (name_len, name) = kernel::btf_dentry_name(child);
    // The directory, "/" and the name, within the walk's limits.
    if name_len == 0 || name_len > NAME_MAX || name == 0 || len + 1 + name_len >= FS_PATH_MAX {
        return 0;
    }
    // SAFETY: offsets into the scratch value are masked: `at < FS_PATH_MAX` and
    // `name_len <= NAME_MAX`; `path` is followed by `build`, so `at + 1 + name_len` stays
    // inside the value.
    unsafe {
        let p = (*s).path.as_mut_ptr();
        let at = opaque(s, len, FS_PATH_MAX - 1);
        *p.add(at) = b'/';
        if copy(
            p.add(at + 1),
            opaque(s, name_len, NAME_MAX),
            name as *const u8,
        )
        .is_err()
        {
            return 0;
        }
        let total = at + 1 + name_len;
        *p.add(opaque(s, total, FS_PATH_MAX - 1)) = 0;
        total
    }
}

/// Whether the path in `s.path[..len]` ends with [`DELETED`].
#[inline(always)]
fn ends_deleted(s: *mut FsScratch, len: usize) -> bool {
    if len < DELETED.len() {
        return false;
    }
    let from = len - DELETED.len();
    let mut i = 0;
    while i < DELETED.len() {
        // SAFETY: a masked offset into `s.path`.
        let byte = unsafe { (*s).path[opaque(s, from + i, FS_PATH_MAX - 1)] };
        if byte != DELETED[i] {
            return false;
        }
        i += 1;
    }
    true
}
