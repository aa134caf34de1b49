//! Filesystem control: `file_open` and the `path_*` mutation hooks judge the full path of
//! the object (and, for existing files, its (device, inode)) against the slot's rules.
//!
//! Paths: `file_open` uses `bpf_d_path` on `&file->f_path` (allowed for `file_open` on 6.1
//! and 6.12). The `path_*` hooks build the path themselves the way `d_path` does (the walk,
//! `fs/walk.rs`: `d_parent` up to the mount root, across to the parent mount at its
//! mountpoint, stopped at the task's root), except where the kernel lets them call
//! `bpf_d_path` (`fs/d_path.rs`: 6.12 lists every `path_*` hook but `path_mknod` as
//! "sleepable"; 6.1 lists none). There the one-object hooks take `bpf_d_path` of their
//! `struct path` (and append the new or removed entry's name), which is cheaper than the
//! walk, and walk whenever that result is not the walk's.
//!
//! Lookup (the compiler's `FsEntry` contract, mirrored by `policy::explain::evaluate`): an
//! exact hit decides; else the longest `/dir/` prefix and the longest suffix are merged
//! (deny beats allow, then the lower rule id); no verdict is the default deny. The
//! (device, inode) deny map is merged on top. Anything that cannot be judged (path too
//! long or too deep, unreadable kernel memory, a missing scratch buffer, a scratch buffer another
//! task took over mid-run: see `crate::scratch`) is denied.
#![warn(clippy::missing_docs_in_private_items)]

mod d_path;
mod rename;
mod walk;

pub use rename::{path_rename, path_rename_subtrees};
use walk::walk_path;
pub(crate) use walk::walk_path_checked;

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_probe_read_kernel,
        generated::{self, bpf_d_path},
    },
    maps::lpm_trie::Key,
    programs::LsmContext,
};
use nemoclaw_common::{
    event::{EVENT_PATH_MAX, counter, hook},
    fs::{
        ACCESS_READ, ACCESS_WRITE, FS_EXACT_CLASSES, FS_EXACT_MAX, FS_LPM_MAX, FS_PATH_MAX,
        FS_SLOT_BITS, FsExactKey, FsInodeKey, FsLpmKey, FsValue, slot_flags,
    },
    rule::{ACTION_ALLOW, RULE_DEFAULT_DENY, merge},
    sandbox::{SandboxEntry, controls},
};

use crate::{
    event,
    kernel::{self, offset},
    maps::{
        FS_EXACT_56, FS_EXACT_120, FS_EXACT_248, FS_EXACT_504, FS_INODES, FS_PREFIX, FS_SCRATCH,
        FS_SLOT_FLAGS, FS_SUFFIX,
    },
    sandbox, scratch,
};

/// The one errno every filesystem denial returns (what DAC and Landlock return for files),
/// but for the `EXDEV` of a refused directory move (`rename`).
pub(crate) const EACCES: i32 = 13;
/// `FMODE_READ`, `FMODE_WRITE` (`include/linux/fs.h`).
const FMODE_READ: u32 = 1;
/// `FMODE_WRITE`.
const FMODE_WRITE: u32 = 2;
/// `O_TRUNC`, `O_APPEND` (x86-64 and the generic values).
const O_TRUNC: u32 = 0o1000;
/// `O_APPEND`.
const O_APPEND: u32 = 0o2000;
/// Bytes of [`FsScratch::lead`].
const LEAD: usize = 256;
/// Longest component name (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// Path bytes [`clear_short_keys`] zeroes: the two shortest exact key classes.
const CLEARED: usize = FS_EXACT_CLASSES[1];

/// Per-CPU working memory: the BPF stack (512 bytes) cannot hold a path.
///
/// `head`, `slot` and `path` are laid out as the exact and prefix keys are, so both lookups
/// use the path where `bpf_d_path` (or the walk) left it, without copying: with `head` 0
/// they are an `FsExactKey` of any class (the path's bytes after its NUL must be zero up
/// to the class's size), with `head` = prefix length in bits a `Key<FsLpmKey>` (the trie
/// only reads that many bits).
#[repr(C)]
pub struct FsScratch {
    /// Room before `path`: the suffix key is built from 8-byte loads that may start up to
    /// [`LEAD`] bytes before the path (those bytes land past the key's prefix length).
    lead: [u8; LEAD],
    /// The keys' header word: 0 for an exact key, the prefix length for the prefix trie.
    head: u32,
    /// The slot, big-endian.
    slot: [u8; 4],
    /// The path being judged, from the start, NUL-terminated; zero after the NUL up to
    /// [`CLEARED`] bytes (or up to the exact key class when a longer path is looked up).
    path: [u8; FS_PATH_MAX],
    /// The walk builds a path backwards so that it ends at `FS_PATH_MAX`.
    build: [u8; FS_PATH_MAX],
    /// The suffix trie's key: slot and the path reversed.
    suffix: Key<FsLpmKey>,
    /// Never written: the source of the zero padding of the longer exact keys.
    zeros: [u8; FS_EXACT_MAX],
    /// The walk's write position in `build` (the path is `build[pos..]`).
    pos: u64,
    /// See [`opaque`].
    launder: u64,
}

/// What a hook decided about one object.
pub(crate) struct Judged {
    /// Length of the path in `FsScratch::path` (without NUL); 0 if none could be read.
    pub(crate) len: usize,
    /// The object's device (kernel `dev_t`), 0 if unknown.
    pub(crate) dev: u64,
    /// The object's inode number, 0 if unknown.
    pub(crate) ino: u64,
    /// The rule id to deny with, or [`ALLOWED`].
    pub(crate) deny: u32,
}

/// [`Judged::deny`] when the operation is allowed.
pub(crate) const ALLOWED: u32 = u32::MAX;

/// This CPU's scratch value, already claimed by this run (the path walk's steps).
#[inline(always)]
pub(crate) fn scratch() -> Option<*mut FsScratch> {
    FS_SCRATCH.get_ptr_mut(0)
}

/// Claims this CPU's scratch value for this run (see `crate::scratch`); a hook's first use.
#[inline(always)]
fn claim_scratch() -> Option<*mut FsScratch> {
    scratch::claim();
    scratch()
}

/// Every hook's start, given the verdict of the LSMs before us (`retval`): the task's
/// cgroup id, slot and claimed scratch value; or a null scratch value and the verdict to
/// return at once (an earlier LSM's denial, 0 for a task the filesystem rules do not
/// restrict, `-EACCES` without a scratch buffer).
#[inline(always)]
pub(crate) fn begin(retval: i32) -> (u64, u32, *mut FsScratch, i32) {
    if retval != 0 {
        return (0, 0, core::ptr::null_mut(), retval);
    }
    let (cgroup_id, entry) = sandbox::current_entry();
    begin_for(cgroup_id, entry)
}

/// [`begin`] for a task whose sandbox entry the program already looked up (`controls` 0:
/// not sandboxed).
#[inline(always)]
fn begin_for(cgroup_id: u64, entry: SandboxEntry) -> (u64, u32, *mut FsScratch, i32) {
    let null = core::ptr::null_mut();
    if entry.controls & controls::FS == 0 {
        return (0, 0, null, 0);
    }
    event::count(counter::JUDGED);
    match claim_scratch() {
        Some(s) => (cgroup_id, entry.slot, s, 0),
        None => (0, 0, null, -EACCES),
    }
}

/// `value & mask`, with `value` passed through memory so that LLVM cannot drop the mask
/// from what it already knows about `value` (older verifiers, e.g. 6.1, lose such bounds
/// across register copies and then reject a helper's size or offset).
#[inline(always)]
fn opaque(s: *mut FsScratch, value: usize, mask: usize) -> usize {
    // SAFETY: a store and a load of a field of the scratch value.
    unsafe {
        let slot = &raw mut (*s).launder;
        core::ptr::write_volatile(slot, value as u64);
        core::ptr::read_volatile(slot) as usize & mask
    }
}

/// Zeroes the first [`CLEARED`] bytes of `s.path`, before a path is written there: a path
/// of up to that length is then zero-padded to its exact key class for free.
#[inline(always)]
fn clear_short_keys(s: *mut FsScratch) {
    // SAFETY: aligned 8-byte stores inside `s.path` (it starts 8-byte aligned: 256 + 8).
    unsafe {
        let words = (*s).path.as_mut_ptr().cast::<u64>();
        for i in 0..CLEARED / 8 {
            // Volatile: one store each, never a `memset` call (BPF has none).
            core::ptr::write_volatile(words.add(i), 0);
        }
    }
}

/// The slot's `slot_flags`; every flag if they cannot be read (no lookup skipped).
#[inline(always)]
fn flags_of(slot: u32) -> u32 {
    FS_SLOT_FLAGS.get(slot).copied().unwrap_or(slot_flags::ALL)
}

#[inline(always)]
/// Reads a kernel word (a pointer or a `u64` field) at `addr` with `bpf_probe_read_kernel`.
pub(crate) fn read_ptr(addr: u64) -> Result<u64, i32> {
    // SAFETY: bpf_probe_read_kernel faults safely on a bad address.
    unsafe { bpf_probe_read_kernel(addr as *const u64) }
}

#[inline(always)]
/// Reads a kernel `u32` at `addr` with `bpf_probe_read_kernel`.
fn read_u32(addr: u64) -> Result<u32, i32> {
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel(addr as *const u32) }
}

/// `bpf_probe_read_kernel` into `dst` (`len` already bounded by the caller).
#[inline(always)]
fn copy(dst: *mut u8, len: usize, src: *const u8) -> Result<(), i32> {
    // SAFETY: the verifier checks `dst..dst+len` against the map value's bounds.
    let ret = unsafe { generated::bpf_probe_read_kernel(dst.cast(), len as u32, src.cast()) };
    if ret == 0 { Ok(()) } else { Err(ret as i32) }
}

/// The kernel `dev_t` and inode number of `dentry`'s inode, `(0, 0)` for a negative dentry.
#[inline(always)]
fn dentry_dev_ino(dentry: u64) -> (u64, u64) {
    dentry_dev_ino_inner(dentry).unwrap_or((0, 0))
}

#[inline(always)]
/// [`dentry_dev_ino`], `None` for a negative dentry or a failed read.
fn dentry_dev_ino_inner(dentry: u64) -> Option<(u64, u64)> {
    let inode = read_ptr(dentry + offset(&kernel::DENTRY_D_INODE_OFF) as u64).ok()?;
    if inode == 0 {
        return None;
    }
    let ino = read_ptr(inode + offset(&kernel::INODE_I_INO_OFF) as u64).ok()?;
    let sb = read_ptr(inode + offset(&kernel::INODE_I_SB_OFF) as u64).ok()?;
    let dev = read_u32(sb + offset(&kernel::SUPER_BLOCK_S_DEV_OFF) as u64).ok()?;
    Some((u64::from(dev), ino))
}

/// `path` as (`mnt`, `dentry`), `(0, 0)` if unreadable.
#[inline(always)]
pub(crate) fn path_parts(path: *const c_void) -> (u64, u64) {
    let path = path as u64;
    let mnt = read_ptr(path + offset(&kernel::PATH_MNT_OFF) as u64).unwrap_or(0);
    let dentry = read_ptr(path + offset(&kernel::PATH_DENTRY_OFF) as u64).unwrap_or(0);
    if mnt == 0 || dentry == 0 {
        (0, 0)
    } else {
        (mnt, dentry)
    }
}

#[inline(always)]
/// Merges two path verdicts, each access kind by [`merge`].
fn merge_value(a: FsValue, b: FsValue) -> FsValue {
    FsValue {
        read: merge(a.read, b.read),
        write: merge(a.write, b.write),
    }
}

/// The exact entry for the path in `s.path[..len]` (`head` and `slot` already set), or
/// null. Only the map of the path's length class can hold it, and only if the slot has
/// entries there.
#[inline(always)]
fn lookup_exact(s: *mut FsScratch, flags: u32, len: usize) -> *const FsValue {
    let none = core::ptr::null();
    // SAFETY: the key pointer is `s.head`, followed by the slot and `FS_PATH_MAX` path
    // bytes, more than any class's key; offsets into the scratch value are masked.
    unsafe {
        let key = (&raw const (*s).head).cast::<u8>();
        if len <= FS_EXACT_CLASSES[0] {
            if flags & slot_flags::EXACT == 0 {
                return none;
            }
            return FS_EXACT_56
                .get_ptr(&*key.cast::<FsExactKey<56>>())
                .unwrap_or(none);
        }
        if len <= FS_EXACT_CLASSES[1] {
            if flags & (slot_flags::EXACT << 1) == 0 {
                return none;
            }
            return FS_EXACT_120
                .get_ptr(&*key.cast::<FsExactKey<120>>())
                .unwrap_or(none);
        }
        let (class, bit) = if len <= FS_EXACT_CLASSES[2] {
            (FS_EXACT_CLASSES[2], slot_flags::EXACT << 2)
        } else {
            (FS_EXACT_MAX, slot_flags::EXACT << 3)
        };
        if len > FS_EXACT_MAX || flags & bit == 0 {
            return none;
        }
        // Past `CLEARED`: zero the key's padding, from the NUL to the class's end.
        let n = opaque(s, len, 511);
        let path = (*s).path.as_mut_ptr();
        if copy(path.add(n), opaque(s, class - n, 511), (*s).zeros.as_ptr()).is_err() {
            return none;
        }
        if class == FS_EXACT_MAX {
            FS_EXACT_504
                .get_ptr(&*key.cast::<FsExactKey<504>>())
                .unwrap_or(none)
        } else {
            FS_EXACT_248
                .get_ptr(&*key.cast::<FsExactKey<248>>())
                .unwrap_or(none)
        }
    }
}

/// The rules' verdicts for the path in `s.path[..len]`.
#[inline(always)]
fn lookup_path(s: *mut FsScratch, slot: u32, flags: u32, len: usize) -> FsValue {
    // SAFETY: every index into the scratch value is bounded by a mask or a loop limit.
    unsafe {
        (*s).head = 0;
        (*s).slot = slot.to_be_bytes();
        let found = lookup_exact(s, flags, len);
        if !found.is_null() {
            return *found;
        }
        let n = if len < FS_LPM_MAX { len } else { FS_LPM_MAX };
        let bits = FS_SLOT_BITS + 8 * n as u32;
        let by_prefix = if flags & slot_flags::PREFIX == 0 {
            FsValue::default()
        } else {
            // The path in place is the trie key: `head` is its prefix length.
            (*s).head = bits;
            let key = (&raw const (*s).head).cast::<Key<FsLpmKey>>();
            FS_PREFIX.get(&*key).copied().unwrap_or_default()
        };
        if flags & slot_flags::SUFFIX == 0 {
            return by_prefix;
        }
        let suffix = &raw mut (*s).suffix;
        (*suffix).prefix_len = bits;
        (*suffix).data.slot = slot.to_be_bytes();
        // The last FS_LPM_MAX bytes reversed, 8 at a time (a load and a byte swap), without
        // a data-dependent exit: the trie only compares the first `bits`, so bytes from
        // before the path (in `lead`, `head`, `slot`) are harmless.
        // `rev[i + j] = path[len - 1 - i - j]`; the path starts `LEAD + 8` bytes in.
        let rev = (*suffix).data.path.as_mut_ptr();
        let base = (&raw const (*s).lead).cast::<u8>();
        let end = LEAD + 8 + len;
        for i in (0..FS_LPM_MAX - 4).step_by(8) {
            let at = opaque(s, end - i - 8, 8191);
            let v = core::ptr::read_unaligned(base.add(at).cast::<u64>());
            core::ptr::write_unaligned(rev.add(i).cast::<u64>(), v.swap_bytes());
        }
        let at = opaque(s, end - FS_LPM_MAX, 8191);
        let v = core::ptr::read_unaligned(base.add(at).cast::<u32>());
        core::ptr::write_unaligned(rev.add(FS_LPM_MAX - 4).cast::<u32>(), v.swap_bytes());
        let by_suffix = FS_SUFFIX.get(&*suffix).copied().unwrap_or_default();
        merge_value(by_prefix, by_suffix)
    }
}

/// Applies the verdicts to the `need`ed accesses: the rule id to deny with, or [`ALLOWED`].
#[inline(always)]
fn decide(value: FsValue, need: u32) -> u32 {
    for (bit, verdict) in [(ACCESS_READ, value.read), (ACCESS_WRITE, value.write)] {
        if need & bit != 0 && verdict.action != ACTION_ALLOW {
            return if verdict.action == 0 {
                RULE_DEFAULT_DENY
            } else {
                verdict.rule_id
            };
        }
    }
    ALLOWED
}

/// Judges the path now in `s.path[..len]` (an unreadable path when `len` is 0), with the
/// object's (dev, inode) if it exists (`ino != 0`).
#[inline(always)]
pub(crate) fn judge(
    s: *mut FsScratch,
    slot: u32,
    len: usize,
    (dev, ino): (u64, u64),
    need: u32,
) -> Judged {
    if len == 0 {
        return Judged {
            len: 0,
            dev,
            ino,
            deny: RULE_DEFAULT_DENY,
        };
    }
    let flags = flags_of(slot);
    let mut value = lookup_path(s, slot, flags, len);
    // The lookups read the path and keys in the scratch value: if another task took it
    // over meanwhile they judged that task's path. Deny.
    if !scratch::intact() {
        return Judged {
            len: 0,
            dev,
            ino,
            deny: RULE_DEFAULT_DENY,
        };
    }
    if ino != 0 && flags & slot_flags::INODES != 0 {
        let key = FsInodeKey {
            slot,
            _pad: 0,
            dev,
            ino,
        };
        // SAFETY: the value is copied out at once.
        if let Some(found) = unsafe { FS_INODES.get(&key) } {
            value = merge_value(value, *found);
        }
    }
    Judged {
        len,
        dev,
        ino,
        deny: decide(value, need),
    }
}

/// Emits the deny event for `judged` (its path is in `s.path`) and returns `-EACCES`.
#[inline(always)]
pub(crate) fn deny(
    hook_id: u32,
    cgroup_id: u64,
    slot: u32,
    s: *mut FsScratch,
    judged: &Judged,
    rule_id: u32,
) -> i32 {
    deny_with(hook_id, cgroup_id, slot, s, judged, rule_id, EACCES)
}

/// Emits the deny event for `judged` (its path is in `s.path`) and returns `-errno`.
#[inline(always)]
fn deny_with(
    hook_id: u32,
    cgroup_id: u64,
    slot: u32,
    s: *mut FsScratch,
    judged: &Judged,
    rule_id: u32,
    errno: i32,
) -> i32 {
    event::emit(hook_id, cgroup_id, slot, rule_id, errno as u32, |ev| {
        ev.dev = judged.dev;
        ev.ino = judged.ino;
        let n = judged.len;
        if n > 0 && n < EVENT_PATH_MAX {
            // SAFETY: both buffers hold EVENT_PATH_MAX bytes; `n + 1` is bounded by the mask.
            let ok = unsafe {
                copy(
                    ev.path.as_mut_ptr(),
                    opaque(s, n + 1, EVENT_PATH_MAX - 1),
                    (*s).path.as_ptr(),
                )
            };
            ev.path_len = if ok.is_ok() { (n + 1) as u32 } else { 0 };
        }
    });
    -errno
}

/// `security_file_open(struct file *file)` for the task in `cgroup_id` with sandbox entry
/// `entry` (looked up once by the `file_open` program, which also runs the privilege
/// control's check): reads need read access, writes (write mode, `O_TRUNC`, `O_APPEND`)
/// write access. Opens with neither mode are judged as reads.
#[inline(always)]
pub fn file_open(ctx: &LsmContext, cgroup_id: u64, entry: SandboxEntry) -> i32 {
    let file: *const c_void = ctx.arg(0);
    let (cgroup_id, slot, s, early) = begin_for(cgroup_id, entry);
    if s.is_null() {
        return early;
    }
    let (mode, flags) = kernel::btf_file_mode_flags(file);
    let mut need = 0;
    if mode & FMODE_WRITE != 0 || flags & (O_TRUNC | O_APPEND) != 0 {
        need |= ACCESS_WRITE;
    }
    if mode & FMODE_READ != 0 || need == 0 {
        need |= ACCESS_READ;
    }
    // Anything but an absolute path (an error, or `pipe:[..]` of a pseudo file reopened
    // through /proc) cannot match a rule: default deny.
    let len = d_path_absolute::<D_PATH_HELPER>(s, kernel::file_path(file));
    let dev_ino = kernel::btf_file_dev_ino(file);
    let judged = judge(s, slot, len, dev_ino, need);
    if judged.deny == ALLOWED {
        return 0;
    }
    deny(hook::FILE_OPEN, cgroup_id, slot, s, &judged, judged.deny)
}

/// A `path_*` hook resolves its path by the `bpf_d_path` helper where
/// [`d_path::allowed`] says the kernel allows it there (every one but `path_mknod`).
pub const D_PATH_HELPER: u8 = 1;
/// A `path_*` hook resolves its path by the `bpf_path_d_path` kfunc where
/// [`d_path::allowed`] says the kernel has it (6.12: `path_mknod`, where the helper is
/// refused).
pub const D_PATH_KFUNC: u8 = 2;

/// `d_path` of `path` (a trusted `struct path *`: a hook's argument or derived from one)
/// into `s.path`, short keys cleared first, by the helper ([`D_PATH_HELPER`]) or the
/// kfunc ([`D_PATH_KFUNC`]); its length if it is absolute, else 0 (an error, or a pseudo
/// file's `pipe:[..]`). Only where the hook may call the one chosen.
#[inline(always)]
fn d_path_absolute<const BY: u8>(s: *mut FsScratch, path: *mut aya_ebpf::bindings::path) -> usize {
    clear_short_keys(s);
    // SAFETY: `s.path` holds FS_PATH_MAX bytes. (`d_path` leaves the path at the start of
    // the buffer; it only writes elsewhere near the buffer's end.)
    let ret = unsafe {
        let buf = (*s).path.as_mut_ptr();
        if BY == D_PATH_KFUNC {
            d_path::kfunc(path.cast_const().cast(), buf, FS_PATH_MAX as u64)
        } else {
            bpf_d_path(path, buf.cast(), FS_PATH_MAX as u32)
        }
    };
    // `ret` counts the NUL.
    // SAFETY: reading the first byte of the scratch path.
    if ret > 1 && unsafe { (*s).path[0] } == b'/' {
        (ret - 1) as usize
    } else {
        0
    }
}

/// Judges (`mnt`, `dentry`) for `need` and denies with `hook_id` if the rules say so.
/// `dentry` may be any kernel address (read by probes); see [`judge_object`].
#[inline(always)]
pub(crate) fn judge_dentry(
    hook_id: u32,
    cgroup_id: u64,
    slot: u32,
    s: *mut FsScratch,
    mnt: u64,
    dentry: u64,
    need: u32,
) -> i32 {
    judge_object::<false>(hook_id, cgroup_id, slot, s, mnt, dentry, need)
}

/// [`judge_dentry`], with the object's (dev, inode) read by direct loads if `BTF_TYPED`
/// (a hook's argument, or loaded from one: no probe calls), else by probes.
#[inline(always)]
fn judge_object<const BTF_TYPED: bool>(
    hook_id: u32,
    cgroup_id: u64,
    slot: u32,
    s: *mut FsScratch,
    mnt: u64,
    dentry: u64,
    need: u32,
) -> i32 {
    let dev_ino = if dentry == 0 {
        (0, 0)
    } else if BTF_TYPED {
        kernel::btf_dentry_dev_ino(dentry)
    } else {
        dentry_dev_ino(dentry)
    };
    judge_walked(hook_id, cgroup_id, slot, s, (mnt, dentry), dev_ino, need)
}

/// Walks (`mnt`, `dentry`)'s path and judges it with the object's (dev, inode).
#[inline(always)]
fn judge_walked(
    hook_id: u32,
    cgroup_id: u64,
    slot: u32,
    s: *mut FsScratch,
    (mnt, dentry): (u64, u64),
    dev_ino: (u64, u64),
    need: u32,
) -> i32 {
    let len = if mnt == 0 || dentry == 0 {
        0
    } else {
        walk_path(s, mnt, dentry)
    };
    judge_resolved(hook_id, cgroup_id, slot, s, len, dev_ino, need)
}

/// Judges the path in `s.path[..len]` with the object's (dev, inode), and denies with
/// `hook_id` if the rules say so.
#[inline(always)]
fn judge_resolved(
    hook_id: u32,
    cgroup_id: u64,
    slot: u32,
    s: *mut FsScratch,
    len: usize,
    dev_ino: (u64, u64),
    need: u32,
) -> i32 {
    let judged = judge(s, slot, len, dev_ino, need);
    if judged.deny == ALLOWED {
        return 0;
    }
    deny(hook_id, cgroup_id, slot, s, &judged, judged.deny)
}

/// The `path_*` hooks that judge one object: `(const struct path *dir, struct dentry *)`
/// when `with_dentry`, else `(const struct path *path, ...)`. Every one needs write access.
/// `BY`: how the hook resolves its path where the kernel allows it ([`D_PATH_HELPER`],
/// [`D_PATH_KFUNC`]); elsewhere it walks.
#[inline(always)]
pub fn path_hook<const BY: u8>(
    ctx: &LsmContext,
    hook_id: u32,
    with_dentry: bool,
    retval_arg: usize,
) -> i32 {
    judge_path_arg::<BY>(ctx, hook_id, with_dentry, retval_arg, ACCESS_WRITE)
}

/// [`path_hook`] for `need`: the hook's `struct path *` first, and with `with_dentry` the
/// entry of that directory it acts on ([`judge_entry`]).
#[inline(always)]
fn judge_path_arg<const BY: u8>(
    ctx: &LsmContext,
    hook_id: u32,
    with_dentry: bool,
    retval_arg: usize,
    need: u32,
) -> i32 {
    let (cgroup_id, slot, s, early) = begin(ctx.arg(retval_arg));
    if s.is_null() {
        return early;
    }
    let child = if with_dentry {
        ctx.arg::<*const c_void>(1) as u64
    } else {
        0
    };
    judge_entry::<BY>(hook_id, cgroup_id, slot, s, ctx.arg(0), child, need)
}

/// Judges `path` (a hook's trusted `struct path *`), or with `child` non-zero the entry
/// `child` of that directory, for `need`. The path comes from `d_path` (by `BY`) where
/// [`d_path::allowed`] says this kernel allows it in this hook ([`d_path::path_of`]), else
/// by the walk.
#[inline(always)]
fn judge_entry<const BY: u8>(
    hook_id: u32,
    cgroup_id: u64,
    slot: u32,
    s: *mut FsScratch,
    path: *const c_void,
    child: u64,
    need: u32,
) -> i32 {
    let (mnt, path_dentry) = kernel::btf_path_parts(path);
    let dentry = if child == 0 { path_dentry } else { child };
    let dev_ino = if dentry == 0 {
        (0, 0)
    } else {
        kernel::btf_dentry_dev_ino(dentry)
    };
    let by_d_path = if d_path::allowed::<BY>() && mnt != 0 && dentry != 0 {
        d_path::path_of::<BY>(s, path, child)
    } else {
        0
    };
    if by_d_path != 0 {
        return judge_resolved(hook_id, cgroup_id, slot, s, by_d_path, dev_ino, need);
    }
    judge_walked(hook_id, cgroup_id, slot, s, (mnt, dentry), dev_ino, need)
}

/// `security_path_notify(const struct path *, u64 mask, unsigned int obj_type)`: an
/// inotify, fanotify or dnotify watch is judged as a read of the watched path (`/a/**`
/// covers `/a` itself, so a denied directory cannot be watched for its entries' names).
pub fn path_notify(ctx: &LsmContext) -> i32 {
    judge_path_arg::<D_PATH_HELPER>(ctx, hook::PATH_NOTIFY, false, 3, ACCESS_READ)
}

/// `security_path_link(old_dentry, new_dir, new_dentry)`: the source must be readable and
/// writable, the new name writable. Hard links never cross mounts (`EXDEV` is checked
/// first), so the source's mount is `new_dir`'s. The source has no `struct path` of its
/// own, so it is walked; the new name is judged as an entry of `new_dir`.
pub fn path_link(ctx: &LsmContext) -> i32 {
    let (cgroup_id, slot, s, early) = begin(ctx.arg(3));
    if s.is_null() {
        return early;
    }
    let new_dir: *const c_void = ctx.arg(1);
    let (mnt, _) = kernel::btf_path_parts(new_dir);
    let old_dentry = ctx.arg::<*const c_void>(0) as u64;
    let new_dentry = ctx.arg::<*const c_void>(2) as u64;
    let both = ACCESS_READ | ACCESS_WRITE;
    let ret = judge_object::<true>(hook::PATH_LINK, cgroup_id, slot, s, mnt, old_dentry, both);
    if ret != 0 {
        return ret;
    }
    judge_entry::<D_PATH_HELPER>(
        hook::PATH_LINK,
        cgroup_id,
        slot,
        s,
        new_dir,
        new_dentry,
        ACCESS_WRITE,
    )
}

/// A unix socket's bound path (`mnt`, `dentry`), judged as a write: the network control's
/// `unix_stream_connect` and `unix_may_send` (see `net.rs`) use the filesystem rules.
pub fn judge_socket_path(hook_id: u32, cgroup_id: u64, slot: u32, mnt: u64, dentry: u64) -> i32 {
    let Some(s) = claim_scratch() else {
        return -EACCES;
    };
    judge_dentry(hook_id, cgroup_id, slot, s, mnt, dentry, ACCESS_WRITE)
}
