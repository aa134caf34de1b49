//! The `path_*` hooks' path by `bpf_d_path` (of a `struct path` argument, with an entry of
//! that directory appended), where the kernel allows the helper there: the walk's path
//! (`fs/walk.rs`) for less (`docs/filesystem.md`, "Paths").

use core::ffi::c_void;

use nemoclaw_common::fs::FS_PATH_MAX;

use super::{D_PATH_HELPER, D_PATH_KFUNC, FsScratch, NAME_MAX, copy, d_path_absolute, opaque};
use crate::kernel;

/// `d_path`'s mark of an unlinked object, at the end of its path.
const DELETED: &[u8; 10] = b" (deleted)";

/// 1 where this kernel lets the `path_*` hooks (all but `path_mknod`) call `bpf_d_path`, 0
/// elsewhere. Userspace probes it and sets it before load (`.rodata`, like the struct
/// offsets: `kernel::probe::d_path_in_path_hooks`); where it is 0 the verifier never visits
/// the call, which it would refuse.
#[unsafe(no_mangle)]
static PATH_HOOKS_D_PATH: u64 = 0;

/// 1 where this kernel has the `bpf_path_d_path` kfunc and lets `path_mknod` call it, 0
/// elsewhere (`kernel::probe::path_d_path_kfunc`, set before load). The loader also writes
/// the kfunc's BTF id into [`kfunc`]'s call, or, where this is 0, a move of `-EINVAL`
/// instead: a verifier refuses an unknown kfunc even in code it never visits.
#[unsafe(no_mangle)]
static PATH_MKNOD_KFUNC: u64 = 0;

/// Whether the kernel lets a hook resolving its path `BY` ([`D_PATH_HELPER`],
/// [`D_PATH_KFUNC`]) call it here.
#[inline(always)]
pub(super) fn allowed<const BY: u8>() -> bool {
    let flag = match BY {
        D_PATH_HELPER => &raw const PATH_HOOKS_D_PATH,
        D_PATH_KFUNC => &raw const PATH_MKNOD_KFUNC,
        _ => return false,
    };
    // SAFETY: a plain read of a `.rodata` static.
    unsafe { core::ptr::read_volatile(flag) != 0 }
}

/// `bpf_path_d_path(path, buf, size)`, the kfunc (6.12): `d_path` of `path` into `buf`, the
/// length with the NUL, or a negative error. It returns an `int`, and the x86-64 JIT
/// leaves the upper half of `r0` undefined, so only the low 32 bits are taken (signed).
/// aya cannot relocate a kfunc call, so the call is written as its instruction
/// (`BPF_JMP | BPF_CALL`, `src_reg` 2 = kfunc, `imm` a marker): before load, userspace
/// (`kernel::kfunc_call`, `KFUNC_CALL_MARKER`) replaces `imm` with the kfunc's BTF id in
/// this kernel's vmlinux, or the whole call with `r0 = -EINVAL`.
#[cfg(target_arch = "bpf")]
#[inline(always)]
pub(super) fn kfunc(path: *const c_void, buf: *mut u8, size: u64) -> i64 {
    let ret: i64;
    // SAFETY: the kfunc reads `path` (a trusted `struct path *`, checked by the verifier)
    // and writes at most `size` bytes at `buf`; a call clobbers r1-r5 and returns in r0.
    unsafe {
        core::arch::asm!(
            ".quad 0x7ffffff000002085",
            inout("r1") path => _,
            inout("r2") buf => _,
            inout("r3") size => _,
            lateout("r0") ret,
            out("r4") _,
            out("r5") _,
        );
    }
    i64::from(ret as i32)
}

/// [`kfunc`] where the crate is built for the host (`cargo clippy --workspace`): there is
/// no kernel to call, so `-EINVAL`, as where the kernel lacks the kfunc.
#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
pub(super) fn kfunc(_path: *const c_void, _buf: *mut u8, _size: u64) -> i64 {
    -22
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
/// tree's) root mount, as the walk does. Only for hooks where [`allowed`] says `d_path` by
/// `BY` is allowed, with `path` the hook's trusted `struct path *` argument.
#[inline(always)]
pub(super) fn path_of<const BY: u8>(s: *mut FsScratch, path: *const c_void, child: u64) -> usize {
    let len = d_path_absolute::<BY>(s, path.cast_mut().cast());
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
