//! Renames: `path_rename` judges both ends as objects, and `path_rename_subtrees` refuses
//! (`EXDEV`) a directory move that would change which rules match the objects beneath it
//! (`docs/filesystem.md`, "Renames").

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, generated},
    programs::LsmContext,
};
use nemoclaw_common::{
    event::hook,
    fs::{
        ACCESS_READ, ACCESS_WRITE, FS_PATH_MAX, FsSubtreeKey, SUBTREE_HASH_START, slot_flags,
        subtree, subtree_hash_step,
    },
    rule::RULE_DEFAULT_DENY,
};

use super::{
    D_PATH_HELPER, FsScratch, Judged, begin, dentry_dev_ino, deny_with, flags_of, judge_entry,
    opaque, read_ptr, scratch, walk::walk_path,
};
use crate::{
    kernel::{self, offset},
    maps::FS_SUBTREES,
};

/// A directory rename that would move objects out from under a rule (or in): what Landlock
/// returns for moves its `REFER` right forbids, and what makes `mv` copy instead.
const EXDEV: i32 = 18;
/// `RENAME_EXCHANGE`: both ends are moved.
const RENAME_EXCHANGE: u32 = 2;

/// `S_IFMT`, `S_IFDIR` (`include/uapi/linux/stat.h`).
const S_IFMT: u16 = 0o170_000;
/// `S_IFDIR`.
const S_IFDIR: u16 = 0o040_000;

/// Whether `dentry` is a directory (false for a negative or unreadable dentry).
#[inline(always)]
fn is_directory(dentry: u64) -> bool {
    let Ok(inode) = read_ptr(dentry + offset(&kernel::DENTRY_D_INODE_OFF) as u64) else {
        return false;
    };
    if inode == 0 {
        return false;
    }
    // SAFETY: a probe read of a kernel pointer.
    let mode: Result<u16, i32> = unsafe {
        bpf_probe_read_kernel((inode + offset(&kernel::INODE_I_MODE_OFF) as u64) as *const u16)
    };
    mode.is_ok_and(|mode| mode & S_IFMT == S_IFDIR)
}

/// The hashes of the path in `s.path` and of its last component, built by `bpf_loop`.
#[repr(C)]
struct Hashing {
    /// FNV-1a of the whole path.
    path: u64,
    /// FNV-1a of its last component.
    name: u64,
}

/// One byte of [`Hashing`], called by `bpf_loop` with the byte's index.
#[inline(never)]
extern "C" fn hash_step(index: u64, ctx: *mut c_void) -> i64 {
    let Some(s) = scratch() else {
        return 1;
    };
    let hashing = ctx.cast::<Hashing>();
    // SAFETY: `ctx` is the `Hashing` that `subtree_rule` passed to `bpf_loop`; the index
    // into the scratch path is masked to its size.
    unsafe {
        let byte = (*s).path[opaque(s, index as usize, FS_PATH_MAX - 1)];
        (*hashing).path = subtree_hash_step((*hashing).path, byte);
        (*hashing).name = if byte == b'/' {
            SUBTREE_HASH_START
        } else {
            subtree_hash_step((*hashing).name, byte)
        };
    }
    0
}

/// The rule a rename of a directory to or from the scratch path (`path[..len]`) would get
/// around (`nemoclaw_common::fs::FsSubtreeKey`), or 0 if none; `RULE_DEFAULT_DENY` if it
/// cannot be told.
#[inline(always)]
fn subtree_rule(slot: u32, len: usize) -> u32 {
    if flags_of(slot) & slot_flags::SUBTREES == 0 {
        return 0;
    }
    if len == 0 || len >= FS_PATH_MAX {
        return RULE_DEFAULT_DENY;
    }
    let mut hashing = Hashing {
        path: SUBTREE_HASH_START,
        name: SUBTREE_HASH_START,
    };
    // SAFETY: `hash_step` only touches `hashing` and the scratch map.
    let ret = unsafe {
        generated::bpf_loop(
            len as u32,
            hash_step as *mut c_void,
            (&raw mut hashing).cast(),
            0,
        )
    };
    if ret != len as i64 || !scratch::intact() {
        return RULE_DEFAULT_DENY;
    }
    for (kind, hash) in [
        (subtree::DIRECTORY, hashing.path),
        (subtree::NAME, hashing.name),
    ] {
        let key = FsSubtreeKey { slot, kind, hash };
        // SAFETY: the value is copied out at once.
        if let Some(rule) = unsafe { FS_SUBTREES.get(&key) } {
            return *rule;
        }
    }
    0
}

/// One end of a moving directory: refused with `EXDEV` if its path is one whose rename
/// would get around a rule (`subtree_rule`).
#[inline(always)]
fn refuse_subtree_end(cgroup_id: u64, slot: u32, s: *mut FsScratch, mnt: u64, dentry: u64) -> i32 {
    let len = if mnt == 0 || dentry == 0 {
        0
    } else {
        walk_path(s, mnt, dentry)
    };
    let rule = subtree_rule(slot, len);
    if rule == 0 {
        return 0;
    }
    let (dev, ino) = dentry_dev_ino(dentry);
    let judged = Judged {
        len,
        dev,
        ino,
        deny: rule,
    };
    deny_with(hook::PATH_RENAME, cgroup_id, slot, s, &judged, rule, EXDEV)
}

/// `security_path_rename(old_dir, old_dentry, new_dir, new_dentry, flags)`: the source must
/// be readable and writable (a file you may not read cannot be moved where you could), the
/// destination writable; with `RENAME_EXCHANGE` both ends are sources.
pub fn path_rename(ctx: &LsmContext) -> i32 {
    let (cgroup_id, slot, s, early) = begin(ctx.arg(5));
    if s.is_null() {
        return early;
    }
    let flags: u32 = ctx.arg(4);
    let old_dentry = ctx.arg::<*const c_void>(1) as u64;
    let new_dentry = ctx.arg::<*const c_void>(3) as u64;
    let both = ACCESS_READ | ACCESS_WRITE;
    let ret = judge_entry::<D_PATH_HELPER>(
        hook::PATH_RENAME,
        cgroup_id,
        slot,
        s,
        ctx.arg(0),
        old_dentry,
        both,
    );
    if ret != 0 {
        return ret;
    }
    let need = if flags & RENAME_EXCHANGE != 0 {
        both
    } else {
        ACCESS_WRITE
    };
    judge_entry::<D_PATH_HELPER>(
        hook::PATH_RENAME,
        cgroup_id,
        slot,
        s,
        ctx.arg(2),
        new_dentry,
        need,
    )
}

/// `security_path_rename` again, in a program of its own (with [`path_rename`] in one, the
/// verifier's state count passed its limit): a directory moving either way (either end
/// with `RENAME_EXCHANGE`) is refused with `EXDEV` where its source or destination path is
/// one whose rename would change which rules match the objects beneath it
/// (`subtree_rule`). It runs after [`path_rename`] allowed the rename (a denial there ends
/// the hook).
#[expect(
    clippy::nonminimal_bool,
    reason = "reads as the rule: no directory at either end (the new one only in an exchange)"
)]
pub fn path_rename_subtrees(ctx: &LsmContext) -> i32 {
    let (cgroup_id, slot, s, early) = begin(ctx.arg(5));
    if s.is_null() {
        return early;
    }
    if flags_of(slot) & slot_flags::SUBTREES == 0 {
        return 0;
    }
    let flags: u32 = ctx.arg(4);
    let old_dentry = ctx.arg::<*const c_void>(1) as u64;
    let new_dentry = ctx.arg::<*const c_void>(3) as u64;
    let exchange = flags & RENAME_EXCHANGE != 0;
    if !is_directory(old_dentry) && !(exchange && is_directory(new_dentry)) {
        return 0;
    }
    let (old_mnt, _) = kernel::btf_path_parts(ctx.arg(0));
    let ret = refuse_subtree_end(cgroup_id, slot, s, old_mnt, old_dentry);
    if ret != 0 {
        return ret;
    }
    let (new_mnt, _) = kernel::btf_path_parts(ctx.arg(2));
    refuse_subtree_end(cgroup_id, slot, s, new_mnt, new_dentry)
}
