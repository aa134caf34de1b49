//! The path walk: the path of a (mount, dentry) built the way `d_path` builds it, for the
//! hooks that cannot call `bpf_d_path` (the `path_*` hooks, the metadata hooks' mount
//! search, unix socket paths). It writes into the scratch value's `build`, then copies the
//! path to `path`, where the lookups of `fs.rs` read it (`docs/filesystem.md`, "Paths").

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_probe_read_kernel, generated};
use nemoclaw_common::fs::FS_PATH_MAX;

use super::{FsScratch, NAME_MAX, clear_short_keys, copy, opaque, read_ptr, read_u32, scratch};
use crate::kernel::{self, offset};

/// Steps of the path walk (components plus mount crossings): a 4095-byte path has at most
/// 2048 components. Deeper (mount-stacked) paths are denied.
const MAX_WALK: u32 = 4096;

/// The walk's state between `bpf_loop` steps, on the calling program's stack.
#[repr(C)]
struct Walk {
    /// The `struct vfsmount` of the current position.
    mnt: u64,
    /// Its `mnt_root`: read once per mount, not once per step.
    mnt_root: u64,
    /// The current dentry.
    dentry: u64,
    /// The task's root: its mount ...
    root_mnt: u64,
    /// ... and dentry (the walk stops there).
    root_dentry: u64,
    /// [`WALKING`], [`WALK_DONE`] or [`WALK_FAILED`].
    state: u64,
    /// Set when the walk ended at its file system's root without passing the root of the
    /// mount it was in: the dentry is not under that mount (see [`walk_path_checked`]).
    outside: u64,
}

/// [`Walk::state`]: the walk goes on.
const WALKING: u64 = 0;
/// [`Walk::state`]: the path is complete.
const WALK_DONE: u64 = 1;
/// [`Walk::state`]: a read failed or the path did not fit.
const WALK_FAILED: u64 = 2;

/// One step of the walk, called by `bpf_loop` (5.17+): the verifier checks this body once,
/// not once per iteration as it would for an unrolled or bounded loop. Returns 1 to stop.
#[inline(never)]
extern "C" fn walk_step(_index: u64, ctx: *mut c_void) -> i64 {
    let walk = ctx.cast::<Walk>();
    // SAFETY: `ctx` is the `Walk` that `walk_path` passed to `bpf_loop`.
    let state = match step(unsafe { &mut *walk }) {
        Some(false) => return 0,
        Some(true) => WALK_DONE,
        None => WALK_FAILED,
    };
    // SAFETY: as above.
    unsafe { (*walk).state = state };
    1
}

/// Bytes of a dentry read at once by [`dentry_link`]: `d_parent` and `d_name`.
const DENTRY_WINDOW: usize = 32;

/// What one step of the walk needs of a dentry: its `d_parent`, and the length and address
/// of its name (`d_name`).
struct DentryLink {
    /// `d_parent`.
    parent: u64,
    /// `d_name.len`.
    len: usize,
    /// `d_name.name`.
    name: u64,
}

/// Reads [`DentryLink`] of `dentry`. The three members sit side by side in `struct dentry`
/// on every kernel we know (`d_parent`, then `d_name`): then one `bpf_probe_read_kernel` of
/// [`DENTRY_WINDOW`] bytes from `d_parent` fetches them all, where separate reads would
/// cost three helper calls (the helper calls are the walk's main cost). The offsets are
/// `.rodata` constants, so the verifier keeps only the branch this kernel takes.
#[inline(always)]
fn dentry_link(dentry: u64) -> Option<DentryLink> {
    let base = offset(&kernel::DENTRY_D_PARENT_OFF);
    let name = offset(&kernel::DENTRY_D_NAME_OFF);
    let len_at = (name + offset(&kernel::QSTR_LEN_OFF)).wrapping_sub(base);
    let name_at = (name + offset(&kernel::QSTR_NAME_OFF)).wrapping_sub(base);
    if len_at > DENTRY_WINDOW - 4
        || name_at > DENTRY_WINDOW - 8
        || !len_at.is_multiple_of(4)
        || !name_at.is_multiple_of(8)
    {
        return Some(DentryLink {
            parent: read_ptr(dentry + base as u64).ok()?,
            len: read_u32(dentry + (base + len_at) as u64).ok()? as usize,
            name: read_ptr(dentry + (base + name_at) as u64).ok()?,
        });
    }
    // SAFETY: a probe read into a stack buffer of its size; the loads from it are at offsets
    // bounded just above.
    unsafe {
        let window: [u64; DENTRY_WINDOW / 8] =
            bpf_probe_read_kernel((dentry + base as u64) as *const _).ok()?;
        let at = window.as_ptr().cast::<u8>();
        Some(DentryLink {
            parent: window[0],
            len: core::ptr::read(at.add(len_at).cast::<u32>()) as usize,
            name: core::ptr::read(at.add(name_at).cast::<u64>()),
        })
    }
}

/// `mnt->mnt_root` of a `struct vfsmount`.
#[inline(always)]
fn mount_root(mnt: u64) -> Option<u64> {
    read_ptr(mnt + offset(&kernel::VFSMOUNT_MNT_ROOT_OFF) as u64).ok()
}

/// Prepends one component (or crosses one mount). `Some(true)`: the path is complete.
#[inline(always)]
fn step(w: &mut Walk) -> Option<bool> {
    if w.dentry == w.root_dentry && w.mnt == w.root_mnt {
        return Some(true);
    }
    let s = scratch()?;
    let link = dentry_link(w.dentry)?;
    if w.dentry == w.mnt_root || w.dentry == link.parent {
        let mount_mnt = offset(&kernel::MOUNT_MNT_OFF) as u64;
        let mount = w.mnt - mount_mnt;
        let up = read_ptr(mount + offset(&kernel::MOUNT_MNT_PARENT_OFF) as u64).ok()?;
        if up == mount || w.dentry != w.mnt_root {
            // The namespace's root mount, or a detached tree: the path is complete.
            w.outside = u64::from(w.dentry != w.mnt_root);
            return Some(true);
        }
        w.dentry = read_ptr(mount + offset(&kernel::MOUNT_MNT_MOUNTPOINT_OFF) as u64).ok()?;
        w.mnt = up + mount_mnt;
        w.mnt_root = mount_root(w.mnt)?;
        return Some(false);
    }
    let len = link.len;
    // SAFETY: `s` is the per-CPU scratch value; offsets into it are masked below.
    unsafe {
        let pos = (*s).pos as usize;
        if len == 0 || len > NAME_MAX || len + 1 > pos {
            return None;
        }
        let pos = pos - (len + 1);
        (*s).pos = pos as u64;
        let at = opaque(s, pos, FS_PATH_MAX - 1);
        // `at < FS_PATH_MAX` and `len <= NAME_MAX`; `build` is followed by more of the
        // scratch value, so the verifier's bound `at + 1 + len` stays inside it.
        let build = (*s).build.as_mut_ptr();
        *build.add(at) = b'/';
        copy(
            build.add(at + 1),
            opaque(s, len, NAME_MAX),
            link.name as *const u8,
        )
        .ok()?;
    }
    w.dentry = link.parent;
    Some(false)
}

/// The current task's root (`current->fs->root`) as (`mnt`, `dentry`), by direct loads from
/// the BTF-typed task pointer (fault-safe `PROBE_MEM` loads, no helper call each); `(0, 0)`
/// for a task without one.
#[inline(always)]
fn task_root() -> (u64, u64) {
    // SAFETY: a helper without arguments; the loads below are at BTF-checked constant
    // offsets from the trusted task pointer it returns, and a fault reads as zero.
    unsafe {
        let task = generated::bpf_get_current_task_btf().cast::<u8>();
        let fs = core::ptr::read_volatile(
            task.add(offset(&kernel::TASK_STRUCT_FS_OFF))
                .cast::<*const u8>(),
        );
        let root = fs.add(offset(&kernel::FS_STRUCT_ROOT_OFF));
        (
            core::ptr::read_volatile(root.add(offset(&kernel::PATH_MNT_OFF)).cast::<u64>()),
            core::ptr::read_volatile(root.add(offset(&kernel::PATH_DENTRY_OFF)).cast::<u64>()),
        )
    }
}

/// Writes the path of (`mnt`, `dentry`) into `s.path` the way `d_path` does, and returns its
/// length, or 0 if it cannot be built (too long, too deep, unreadable).
#[inline(always)]
pub(super) fn walk_path(s: *mut FsScratch, mnt: u64, dentry: u64) -> usize {
    walk_path_checked(s, mnt, dentry).0
}

/// [`walk_path`], and whether `dentry` turned out not to be under `mnt`'s root (the walk
/// reached the file system's root without passing it): then the path is not one by which
/// `dentry` can be reached through `mnt`.
#[inline(always)]
#[allow(clippy::inline_always)] // as every helper here: inlined for the verifier
pub(crate) fn walk_path_checked(s: *mut FsScratch, mnt: u64, dentry: u64) -> (usize, bool) {
    clear_short_keys(s);
    let mut outside = 0;
    let len = walk_path_inner(s, mnt, dentry, &mut outside).unwrap_or(0);
    (len, outside != 0)
}

#[inline(always)]
/// [`walk_path_checked`] with `?`: `None` when any read fails.
fn walk_path_inner(s: *mut FsScratch, mnt: u64, dentry: u64, outside: &mut u64) -> Option<usize> {
    let (root_mnt, root_dentry) = task_root();
    if root_mnt == 0 || root_dentry == 0 {
        return None;
    }
    // SAFETY: a plain store into the scratch value.
    unsafe { (*s).pos = FS_PATH_MAX as u64 };
    // Plain numbers from here (a hook's BTF-typed arguments would stay typed pointers, on
    // which the verifier refuses the walk's arithmetic).
    let (mnt, dentry) = (
        opaque(s, mnt as usize, usize::MAX) as u64,
        opaque(s, dentry as usize, usize::MAX) as u64,
    );
    let mut walk = Walk {
        mnt,
        mnt_root: mount_root(mnt)?,
        dentry,
        root_mnt,
        root_dentry,
        state: WALKING,
        outside: 0,
    };
    // SAFETY: `walk_step` only touches `walk` and the scratch map.
    let ret = unsafe {
        generated::bpf_loop(
            MAX_WALK,
            walk_step as *mut c_void,
            (&raw mut walk).cast(),
            0,
        )
    };
    let done = ret >= 0 && walk.state == WALK_DONE;
    *outside = walk.outside;
    if !done {
        return None;
    }
    // SAFETY: a plain load from the scratch value.
    let pos = unsafe { (*s).pos } as usize;
    if pos > FS_PATH_MAX {
        return None;
    }
    // SAFETY: offsets into the scratch value are masked; `len < FS_PATH_MAX` is checked.
    unsafe {
        let build = (*s).build.as_mut_ptr();
        let path = (*s).path.as_mut_ptr();
        if pos == FS_PATH_MAX {
            *path = b'/';
            *path.add(1) = 0;
            return Some(1);
        }
        let len = FS_PATH_MAX - pos;
        if len >= FS_PATH_MAX {
            return None;
        }
        let from = opaque(s, pos, FS_PATH_MAX - 1);
        copy(path, opaque(s, len, FS_PATH_MAX - 1), build.add(from)).ok()?;
        *path.add(opaque(s, len, FS_PATH_MAX - 1)) = 0;
        Some(len)
    }
}
