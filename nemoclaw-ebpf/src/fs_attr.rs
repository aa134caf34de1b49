//! Metadata writes: the `inode_*` hooks through which an object's attributes change, judged
//! as writes of the object by the filesystem rules of `fs.rs` (`judge`, `deny`):
//!
//! - `inode_setattr`: mode, owner, size and times (`utimensat`, `futimens`, `utimes`; also
//!   what the kernel changes for the task, such as clearing setuid bits on a write or the
//!   size on `O_TRUNC`);
//! - `inode_setxattr`, `inode_removexattr`: extended attributes of every namespace
//!   (`user.*`, `trusted.*`, `security.*`; on 6.1 also POSIX ACLs, `system.posix_acl_*`);
//! - `inode_set_acl`, `inode_remove_acl`: POSIX ACLs (6.2 and later).
//! - `file_ioctl`, `file_ioctl_compat`: file attribute flags (`chattr`), judged on the
//!   file's own path (these hooks have the `struct file`, so no mount search).
//!
//! These hooks give a dentry, not a `struct path`, so there is no mount to start the
//! `d_path`-like walk from. The object is judged on every path by which the task can reach
//! it: each mount of its file system (`sb->s_mounts`) that is in the task's mount namespace
//! (`current->nsproxy->mnt_ns`) and has the dentry under its root (the walk from that mount
//! reaches the mount's root before the file system's root) gives one path, and any denied
//! path denies. No such mount denies (rule 0, `unreachable::NO_MOUNT`), except on a file
//! system whose only mounts are kernel-internal (`MNT_NS_INTERNAL`: pipes, sockets,
//! `memfd`, overlayfs's private mounts of its layers), which no task can name by path. More
//! mounts than the search visits or judges, or unreadable kernel memory, deny too.
#![warn(clippy::missing_docs_in_private_items)]
// Every helper here must be inlined into its program (the verifier types the context and
// pointers only within one function), as in `fs.rs`.
#![allow(clippy::inline_always)]

use core::ffi::c_void;

use aya_ebpf::{EbpfContext as _, helpers::generated, programs::LsmContext};
use nemoclaw_common::{
    event::{hook, unreachable},
    fs::ACCESS_WRITE,
    rule::RULE_DEFAULT_DENY,
};

use crate::{
    event,
    fs::{self, ALLOWED, EACCES},
    kernel::{self, offset},
};

/// `MNT_NS_INTERNAL` (`ERR_PTR(-EINVAL)`, `fs/mount.h`): the namespace of kernel-internal
/// mounts (`kern_mount`, `clone_private_mount`).
const MNT_NS_INTERNAL: u64 = (-22i64).cast_unsigned();

/// Mounts of one file system the search visits (all namespaces). A file system with more is
/// denied: its objects cannot all be judged.
const MAX_SB_MOUNTS: u32 = 1024;

/// Mounts in the task's namespace with the object under their root that are judged; more
/// deny. Each costs one path walk.
const MAX_CANDIDATES: u32 = 16;

/// The search's state between `bpf_loop` steps, on the calling program's stack.
#[repr(C)]
struct Search {
    /// The link of the next mount to visit in `sb->s_mounts`, 0 at the end.
    node: u64,
    /// `&sb->s_mounts`.
    head: u64,
    /// The task's mount namespace.
    task_ns: u64,
    /// The object's dentry.
    dentry: u64,
    /// The object's device (kernel `dev_t`).
    dev: u64,
    /// The object's inode number.
    ino: u64,
    /// The task's cgroup id.
    cgroup_id: u64,
    /// The event id of the hook.
    hook_id: u32,
    /// The sandbox's policy slot.
    slot: u32,
    /// Mounts judged so far.
    candidates: u32,
    /// Whether the file system has a kernel-internal mount.
    internal: u32,
    /// Whether a path was denied (its event sent).
    denied: u32,
    /// [`SEARCHING`], [`SEARCH_DONE`], [`SEARCH_FAILED`] or [`SEARCH_TOO_MANY`].
    state: u32,
}

/// [`Search::state`]: more mounts to visit.
const SEARCHING: u32 = 0;
/// [`Search::state`]: every mount visited.
const SEARCH_DONE: u32 = 1;
/// [`Search::state`]: a read failed.
const SEARCH_FAILED: u32 = 2;
/// [`Search::state`]: more mounts than the search judges.
const SEARCH_TOO_MANY: u32 = 3;

/// The link after the one at `at` (`at` = `head` for the first), 0 at the end of the list.
/// Until 6.14 the list is a `list_head` ring through `mount->mnt_instance`; later a
/// NULL-terminated list of `struct mount *` through `mount->mnt_next_for_sb`.
#[inline(always)]
fn next_link(at: u64, head: u64) -> Option<u64> {
    let next = fs::read_ptr(at).ok()?;
    if offset(&kernel::SB_MOUNTS_LINKED_BY_POINTER) != 0 {
        Some(if next == 0 {
            0
        } else {
            next + offset(&kernel::MOUNT_SB_LINK_OFF) as u64
        })
    } else {
        Some(if next == head { 0 } else { next })
    }
}

/// One mount of the list, called by `bpf_loop`. Returns 1 to stop.
#[inline(never)]
extern "C" fn search_step(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Search` that `judge_reachable` passed to `bpf_loop`.
    let search = unsafe { &mut *ctx.cast::<Search>() };
    match visit(search) {
        Some(false) => 0,
        Some(true) => {
            search.state = SEARCH_DONE;
            1
        }
        None => {
            if search.state == SEARCHING {
                search.state = SEARCH_FAILED;
            }
            1
        }
    }
}

/// Visits one mount: judges the object's path through it if it is a candidate.
/// `Some(true)`: the search is over (the list's end, or a denial).
#[inline(always)]
fn visit(m: &mut Search) -> Option<bool> {
    if m.node == 0 {
        return Some(true);
    }
    let mount = m.node - offset(&kernel::MOUNT_SB_LINK_OFF) as u64;
    m.node = next_link(m.node, m.head)?;
    let ns = fs::read_ptr(mount + offset(&kernel::MOUNT_MNT_NS_OFF) as u64).ok()?;
    if ns == MNT_NS_INTERNAL {
        m.internal = 1;
        return Some(false);
    }
    if ns == 0 || ns != m.task_ns {
        return Some(false);
    }
    let s = fs::scratch()?;
    let mnt = mount + offset(&kernel::MOUNT_MNT_OFF) as u64;
    let (len, outside) = fs::walk_path_checked(s, mnt, m.dentry);
    if outside {
        return Some(false);
    }
    if m.candidates >= MAX_CANDIDATES {
        m.state = SEARCH_TOO_MANY;
        return None;
    }
    m.candidates += 1;
    let judged = fs::judge(s, m.slot, len, (m.dev, m.ino), ACCESS_WRITE);
    if judged.deny == ALLOWED {
        return Some(false);
    }
    fs::deny(m.hook_id, m.cgroup_id, m.slot, s, &judged, judged.deny);
    m.denied = 1;
    Some(true)
}

/// Denies without a path (rule 0): the event's `arg` says why (`unreachable::*`).
#[inline(always)]
fn refuse(m: &Search, reason: u64) -> i32 {
    event::emit(
        m.hook_id,
        m.cgroup_id,
        m.slot,
        RULE_DEFAULT_DENY,
        EACCES as u32,
        |ev| {
            ev.dev = m.dev;
            ev.ino = m.ino;
            ev.arg = reason;
        },
    );
    -EACCES
}

/// `current->nsproxy->mnt_ns`, 0 for a task without `nsproxy` (an exiting task), by direct
/// loads from the BTF-typed task pointer (no helper call each; a fault reads as 0).
#[inline(always)]
fn current_mnt_ns() -> u64 {
    // SAFETY: a helper without arguments; the loads are at BTF-checked constant offsets
    // from the trusted task pointer it returns.
    unsafe {
        let task = generated::bpf_get_current_task_btf().cast::<u8>();
        let nsproxy = core::ptr::read_volatile(
            task.add(offset(&kernel::TASK_STRUCT_NSPROXY_OFF))
                .cast::<*const u8>(),
        );
        if nsproxy.is_null() {
            return 0;
        }
        core::ptr::read_volatile(
            nsproxy
                .add(offset(&kernel::NSPROXY_MNT_NS_OFF))
                .cast::<u64>(),
        )
    }
}

/// The hook's `struct dentry *`, argument `at` of the context, kept BTF-typed so that its
/// members are read by direct loads. `at` is a load-time constant, 0 or 1 on the kernels
/// we know; any other position reads as 0 (refused as unreadable). Both arguments are
/// loaded, each at a constant offset (every metadata hook has at least two, and the context
/// holds the verdict after them), and `at` picks one: the verifier follows only the
/// branch this kernel takes. Volatile, so LLVM cannot merge them into one load at a
/// computed offset, which the verifier refuses ("dereference of modified ctx ptr").
#[inline(always)]
fn hook_dentry(ctx: &LsmContext, at: usize) -> u64 {
    let p = ctx.as_ptr().cast::<u64>();
    // SAFETY: the LSM context is an array of u64 arguments, at least three long here.
    let (first, second) = unsafe {
        (
            core::ptr::read_volatile(p),
            core::ptr::read_volatile(p.add(1)),
        )
    };
    match at {
        0 => first,
        1 => second,
        _ => 0,
    }
}

/// The previous LSM programs' verdict, argument `at` of the context. Read at a constant
/// offset (a context access the verifier types, with the LSM return range it needs at the
/// program's exit); `at` is a load-time constant, so the verifier only follows its own arm
/// (the others may name arguments this hook does not have on this kernel). Each arm is its
/// own subprogram: inlined, LLVM merges the arms into one load at a computed offset, which
/// the verifier refuses ("dereference of modified ctx ptr").
#[inline(always)]
fn previous_verdict(ctx: &LsmContext, at: usize) -> i32 {
    let p = ctx.as_ptr();
    match at {
        2 => verdict_2(p),
        3 => verdict_3(p),
        4 => verdict_4(p),
        6 => verdict_6(p),
        // No hook of this module has its verdict elsewhere; deny rather than guess.
        _ => -EACCES,
    }
}

/// Defines `fn $name(ctx) -> i32`, which reads context argument `$n` as the previous LSMs' verdict.
macro_rules! verdict_at {
    ($name:ident, $n:literal) => {
        /// Context argument
        #[doc = stringify!($n)]
        /// as the previous LSMs' verdict.
        #[inline(never)]
        fn $name(ctx: *mut c_void) -> i32 {
            // SAFETY: the LSM context is an array of u64 arguments; the caller only calls
            // this where the hook has this many.
            unsafe { *ctx.cast::<u64>().add($n) as i32 }
        }
    };
}
verdict_at!(verdict_2, 2);
verdict_at!(verdict_3, 3);
verdict_at!(verdict_4, 4);
verdict_at!(verdict_6, 6);

/// A metadata hook: the dentry is argument `dentry_arg`, the previous LSMs' verdict
/// argument `retval_arg` (positions from the kernel's BTF). Judged as a write on every
/// path by which the task can reach the dentry.
#[inline(always)]
fn judge_reachable(
    ctx: &LsmContext,
    hook_id: u32,
    dentry_arg: &'static u64,
    retval_arg: &'static u64,
) -> i32 {
    let (cgroup_id, slot, s, early) = fs::begin(previous_verdict(ctx, offset(retval_arg)));
    if s.is_null() {
        return early;
    }
    let dentry = hook_dentry(ctx, offset(dentry_arg));
    let (dev, ino) = if dentry == 0 {
        (0, 0)
    } else {
        kernel::btf_dentry_dev_ino(dentry)
    };
    let mut search = Search {
        node: 0,
        head: 0,
        task_ns: current_mnt_ns(),
        dentry,
        dev,
        ino,
        cgroup_id,
        hook_id,
        slot,
        candidates: 0,
        internal: 0,
        denied: 0,
        state: SEARCHING,
    };
    let sb = if dentry == 0 {
        0
    } else {
        kernel::btf_dentry_sb(dentry)
    };
    if sb == 0 || search.task_ns == 0 {
        return refuse(&search, unreachable::UNREADABLE);
    }
    search.head = sb + offset(&kernel::SUPER_BLOCK_S_MOUNTS_OFF) as u64;
    search.node = match next_link(search.head, search.head) {
        Some(node) => node,
        None => return refuse(&search, unreachable::UNREADABLE),
    };
    // SAFETY: `search_step` only touches `search`, the scratch map and the event ring.
    let ret = unsafe {
        generated::bpf_loop(
            MAX_SB_MOUNTS,
            search_step as *mut c_void,
            (&raw mut search).cast(),
            0,
        )
    };
    if search.denied != 0 {
        return -EACCES;
    }
    match search.state {
        SEARCH_DONE if ret >= 0 => {}
        SEARCH_FAILED => return refuse(&search, unreachable::UNREADABLE),
        // Out of steps, or more candidates than judged.
        _ => return refuse(&search, unreachable::TOO_MANY_MOUNTS),
    }
    if search.candidates == 0 && search.internal == 0 {
        return refuse(&search, unreachable::NO_MOUNT);
    }
    0
}

/// `security_inode_setattr([idmap,] dentry, attr)`: mode, owner, size, times.
pub fn inode_setattr(ctx: &LsmContext) -> i32 {
    judge_reachable(
        ctx,
        hook::INODE_SETATTR,
        &kernel::INODE_SETATTR_DENTRY_ARG,
        &kernel::INODE_SETATTR_RETVAL_ARG,
    )
}

/// `security_inode_setxattr(idmap or userns, dentry, name, value, size, flags)`.
pub fn inode_setxattr(ctx: &LsmContext) -> i32 {
    judge_reachable(
        ctx,
        hook::INODE_SETXATTR,
        &kernel::INODE_SETXATTR_DENTRY_ARG,
        &kernel::INODE_SETXATTR_RETVAL_ARG,
    )
}

/// `security_inode_removexattr(idmap or userns, dentry, name)`.
pub fn inode_removexattr(ctx: &LsmContext) -> i32 {
    judge_reachable(
        ctx,
        hook::INODE_REMOVEXATTR,
        &kernel::INODE_REMOVEXATTR_DENTRY_ARG,
        &kernel::INODE_REMOVEXATTR_RETVAL_ARG,
    )
}

/// `security_inode_set_acl(idmap, dentry, acl_name, kacl)` (6.2 and later).
pub fn inode_set_acl(ctx: &LsmContext) -> i32 {
    judge_reachable(
        ctx,
        hook::INODE_SET_ACL,
        &kernel::INODE_SET_ACL_DENTRY_ARG,
        &kernel::INODE_SET_ACL_RETVAL_ARG,
    )
}

/// `security_inode_remove_acl(idmap, dentry, acl_name)` (6.2 and later).
pub fn inode_remove_acl(ctx: &LsmContext) -> i32 {
    judge_reachable(
        ctx,
        hook::INODE_REMOVE_ACL,
        &kernel::INODE_REMOVE_ACL_DENTRY_ARG,
        &kernel::INODE_REMOVE_ACL_RETVAL_ARG,
    )
}

/// `FS_IOC_SETFLAGS` (`_IOW('f', 2, long)`), its 32-bit form `FS_IOC32_SETFLAGS`
/// (`_IOW('f', 2, int)`) and `FS_IOC_FSSETXATTR` (`_IOW('X', 32, struct fsxattr)`): file
/// attribute flags (`chattr`: append-only, immutable, no-dump, ...). They reach the file
/// system through `vfs_fileattr_set`, with no setattr or xattr hook on 6.1 and 6.12, and
/// need only a descriptor, which may be opened read-only.
const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
/// `FS_IOC32_SETFLAGS`: the same for 32-bit callers.
const FS_IOC32_SETFLAGS: u32 = 0x4004_6602;
/// `FS_IOC_FSSETXATTR`: the `fsxattr` flags.
const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;

/// `file_ioctl(file, cmd, arg)` and `file_ioctl_compat` (same arguments): a command that
/// changes file attribute flags is a write of the file, judged on its path (`file->f_path`,
/// so the mount is known: no mount search).
pub fn file_ioctl(ctx: &LsmContext, hook_id: u32) -> i32 {
    let retval: i32 = ctx.arg(3);
    if retval != 0 {
        return retval;
    }
    let cmd: u32 = ctx.arg(1);
    if !matches!(cmd, FS_IOC_SETFLAGS | FS_IOC32_SETFLAGS | FS_IOC_FSSETXATTR) {
        return 0;
    }
    let (cgroup_id, slot, s, early) = fs::begin(0);
    if s.is_null() {
        return early;
    }
    let file = kernel::raw_arg(ctx, 0);
    if file == 0 {
        return refuse_file(hook_id, cgroup_id, slot);
    }
    let path = file + offset(&kernel::FILE_F_PATH_OFF) as u64;
    let (mnt, dentry) = fs::path_parts(path as *const c_void);
    fs::judge_dentry(hook_id, cgroup_id, slot, s, mnt, dentry, ACCESS_WRITE)
}

/// Denies an `ioctl` whose file could not be read (rule 0, no path).
#[inline(always)]
fn refuse_file(hook_id: u32, cgroup_id: u64, slot: u32) -> i32 {
    event::emit(
        hook_id,
        cgroup_id,
        slot,
        RULE_DEFAULT_DENY,
        EACCES as u32,
        |_| {},
    );
    -EACCES
}
