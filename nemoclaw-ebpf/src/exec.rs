//! Exec control: `bprm_check_security` judges the file being executed by its (device,
//! inode), never by argv or name. For `#!` scripts the hook runs again for the interpreter,
//! so both must be allowed.
#![warn(clippy::missing_docs_in_private_items)]

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel_buf, generated::bpf_d_path},
    maps::LpmTrie,
    programs::LsmContext,
};
use nemoclaw_common::{
    event::{EVENT_PATH_MAX, counter, hook},
    exec::{EXEC_PATH_KEY_MAX, EXEC_PATH_SLOT_BITS, ExecKey, ExecPathKey},
    rule::{ACTION_ALLOW, RULE_DEFAULT_DENY, Verdict, merge},
    sandbox::controls,
};

use crate::{
    event, kernel,
    maps::{
        ANON_EXEC_RULE, EXEC_LIB_DIRS, EXEC_LIB_INODES, EXEC_LIB_KEY_SCRATCH, EXEC_PATH_SCRATCH,
        EXEC_PREFIX, EXEC_RULES, EXEC_SLOT_FLAGS,
    },
    sandbox, scratch,
};

/// `EPERM`: an LSM program refuses with its negation.
const EPERM: i32 = 1;

/// LSM `bprm_check_security(struct linux_binprm *)` (BPF LSM, 5.7+): judges the exec of
/// `bprm->file` by its (device, inode) and the slot's `dir/**` rules; each `#!` interpreter
/// comes through again.
pub fn bprm_check_security(ctx: &LsmContext) -> i32 {
    let bprm: *const c_void = ctx.arg(0);
    let retval: i32 = ctx.arg(1);
    if retval != 0 {
        return retval;
    }
    let (cgroup_id, Some(sandbox)) = sandbox::current() else {
        return 0;
    };
    if sandbox.controls & controls::EXEC == 0 {
        return 0;
    }
    event::count(counter::JUDGED);
    let file = kernel::bprm_file(bprm);
    // A file whose identity cannot be read cannot be judged: deny (fail closed).
    let (dev, ino) = kernel::btf_file_dev_ino(file);
    let key = ExecKey {
        slot: sandbox.slot,
        _pad: 0,
        dev,
        ino,
    };
    let (verdict, by_inode) = judge(file, &key);
    if verdict.action == ACTION_ALLOW {
        // The loader's executable mappings of this file skip `mmap_file`'s judgement
        // (`kernel::is_exec_loading`); remember it as `mmap_file` would have, for
        // `file_mprotect`, when a path rule allowed it.
        if !by_inode {
            remember(&key);
        }
        return 0;
    }
    let rule_id = verdict.rule_id;
    event::emit(
        hook::BPRM_CHECK_SECURITY,
        cgroup_id,
        sandbox.slot,
        rule_id,
        EPERM as u32,
        |ev| {
            event::set_file(ev, file, dev, ino);
        },
    );
    -EPERM
}

/// `PROT_EXEC`.
const PROT_EXEC: u64 = 0x4;
/// `PROT_WRITE`.
const PROT_WRITE: u64 = 0x2;

/// `EXEC_SLOT_FLAGS` bit: the slot has `dir/**` rules in `EXEC_PREFIX`.
const SLOT_HAS_PREFIX_RULES: u32 = 1;

/// The policy's verdict on executing (or mapping executable) `file`: its (device, inode)
/// entry merged with the longest `dir/**` entry covering its resolved path. `action == 0`
/// when no rule says anything. An explicit deny by identity decides without a path lookup;
/// slots without `dir/**` rules never resolve paths.
///
/// Also says whether an allow came from the identity entry (which `file_mprotect` finds
/// again in `EXEC_RULES`) rather than from a path rule.
#[inline(always)]
fn judge(file: *const c_void, key: &ExecKey) -> (Verdict, bool) {
    // SAFETY: the value is copied out at once.
    let by_inode = unsafe { EXEC_RULES.get(key) }.copied().unwrap_or_default();
    let inode_allows = by_inode.action == ACTION_ALLOW;
    if by_inode.action != 0 && !inode_allows {
        return (by_inode, false);
    }
    let has_prefix = EXEC_SLOT_FLAGS
        .get(key.slot)
        .is_some_and(|f| f & SLOT_HAS_PREFIX_RULES != 0);
    if !has_prefix {
        return (by_inode, inode_allows);
    }
    let verdict = merge(by_inode, lookup_path(file, key.slot, &EXEC_PREFIX));
    (verdict, inode_allows && verdict.action == ACTION_ALLOW)
}

/// Judges an executable file mapping of a sandboxed task: allowed for the binaries the policy
/// allows (by identity or `dir/**` rule, as exec) and, by path, for files in the library
/// directories; an explicit deny wins over the library directories. Anonymous
/// executable memory is judged only under `process.anonymous_exec: deny` (then it is
/// refused, as is any writable and executable mapping), so JITs (V8, `PyPy`) keep working by
/// default. This closes running a denied binary through an allowed loader
/// (`ld.so /usr/bin/curl`) or `dlopen` of a copy.
///
/// `mmap_file(struct file *file, unsigned long reqprot, unsigned long prot, unsigned long
/// flags)`; `bpf_d_path` is allowed here (a sleepable-listed hook).
pub fn mmap_file(ctx: &LsmContext) -> i32 {
    let prot: u64 = ctx.arg(2);
    // Cheap checks first: most mappings of every task on the system stop here. `file` is
    // null for anonymous memory (JITs).
    if prot & PROT_EXEC == 0 {
        return 0;
    }
    let file: *const c_void = ctx.arg(0);
    // The ELF loader mapping the binary `bprm_check_security` has just allowed (the same
    // judgement this hook would make): no second lookup on every exec. Only compares
    // `file` (null for anonymous memory, which never matches).
    if kernel::is_exec_loading(file) {
        return 0;
    }
    let anonymous = kernel::raw_arg(ctx, 0) == 0;
    let (cgroup_id, Some(sandbox)) = sandbox::current() else {
        return 0;
    };
    if sandbox.controls & controls::EXEC == 0 {
        return 0;
    }
    if anonymous || prot & PROT_WRITE != 0 {
        let rule_id = anonymous_exec_rule(sandbox.slot);
        if rule_id != 0 {
            return deny_anonymous(hook::MMAP_FILE, cgroup_id, sandbox.slot, rule_id, prot);
        }
        if anonymous {
            return 0;
        }
    }
    event::count(counter::JUDGED);
    let (dev, ino) = kernel::btf_file_dev_ino(file);
    let key = ExecKey {
        slot: sandbox.slot,
        _pad: 0,
        dev,
        ino,
    };
    let (verdict, by_inode) = judge(file, &key);
    let rule_id = if verdict.action == ACTION_ALLOW {
        // Allowed through a path rule: remember the file for `file_mprotect`.
        if !by_inode {
            remember(&key);
        }
        return 0;
    } else if verdict.action != 0 {
        verdict.rule_id
    } else if lookup_path(file, sandbox.slot, &EXEC_LIB_DIRS).action == ACTION_ALLOW {
        remember(&key);
        return 0;
    } else {
        RULE_DEFAULT_DENY
    };
    event::emit(
        hook::MMAP_FILE,
        cgroup_id,
        sandbox.slot,
        rule_id,
        EPERM as u32,
        |ev| {
            ev.arg = prot;
            event::set_file(ev, file, dev, ino);
        },
    );
    -EPERM
}

/// `process.anonymous_exec: deny`'s rule id for `slot`, or 0 where it is allowed.
#[inline(always)]
fn anonymous_exec_rule(slot: u32) -> u32 {
    ANON_EXEC_RULE.get(slot).copied().unwrap_or(0)
}

/// Denies executable anonymous or writable memory (`arg`: the requested protection).
#[inline(always)]
fn deny_anonymous(hook: u32, cgroup_id: u64, slot: u32, rule_id: u32, prot: u64) -> i32 {
    event::emit(hook, cgroup_id, slot, rule_id, EPERM as u32, |ev| {
        ev.arg = prot;
    });
    -EPERM
}

/// Remembers a file `mmap_file` allowed executable, so `file_mprotect` (where
/// `bpf_d_path` is not allowed) can judge it by identity. A full LRU map evicts an old
/// entry; a failed insert only costs a later denial. A file already there is not written
/// again (every process maps the same libraries; the lookup marks the entry recently used
/// as the update would).
#[inline(always)]
fn remember(key: &ExecKey) {
    // SAFETY: only the presence of the entry is used.
    if unsafe { EXEC_LIB_INODES.get(key) }.is_none() {
        let _ = EXEC_LIB_INODES.insert(key, &1, 0);
    }
}

/// The entry of `trie` (slot, directory prefix) covering `file`'s path (`bpf_d_path`:
/// symlinks, `..` and `/proc/self/fd` resolved), or no verdict (`action` 0). Unresolvable
/// paths match nothing (fail closed); deleted files and memfds resolve to paths ending in
/// ` (deleted)`. A plain `Verdict`, not an `Option`: LLVM's layout of the latter across
/// the paths below is rejected by the verifier.
#[inline(always)]
fn lookup_path(file: *const c_void, slot: u32, trie: &LpmTrie<ExecPathKey, Verdict>) -> Verdict {
    let none = Verdict::default();
    scratch::claim();
    let (Some(scratch), Some(key)) = (
        EXEC_PATH_SCRATCH.get_ptr_mut(0),
        EXEC_LIB_KEY_SCRATCH.get_ptr_mut(0),
    ) else {
        return none;
    };
    // SAFETY: per-CPU scratch buffers, claimed by this run (checked after the lookup).
    let found = unsafe {
        let len = bpf_d_path(
            kernel::file_path(file),
            scratch.cast(),
            EVENT_PATH_MAX as u32,
        );
        if len <= 1 {
            return none;
        }
        // Without the NUL; the trie only ever needs the first EXEC_PATH_KEY_MAX bytes.
        let len = ((len - 1) as usize).min(EXEC_PATH_KEY_MAX);
        if bpf_probe_read_kernel_buf(scratch.cast::<u8>(), &mut (*key).data.path).is_err() {
            return none;
        }
        (*key).data.slot = slot.to_be_bytes();
        (*key).prefix_len = EXEC_PATH_SLOT_BITS + 8 * len as u32;
        trie.get(&*key).copied().unwrap_or_default()
    };
    // Another task's path if it took the buffers over meanwhile: then no match (deny).
    if scratch::intact() { found } else { none }
}

/// `file_mprotect(struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot)`:
/// making a file mapping executable after the fact. `bpf_d_path` is not allowed here, so
/// the file is judged by identity: an allowed binary, or a file `mmap_file` already allowed
/// executable for this slot (a library, or a binary under a `dir/**` rule).
pub fn file_mprotect(ctx: &LsmContext) -> i32 {
    let vma: *const c_void = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    if prot & PROT_EXEC == 0 {
        return 0;
    }
    let (cgroup_id, Some(sandbox)) = sandbox::current() else {
        return 0;
    };
    if sandbox.controls & controls::EXEC == 0 {
        return 0;
    }
    let Ok(file) = kernel::vma_file(vma) else {
        return -EPERM;
    };
    // Under `anonymous_exec: deny`: no anonymous memory made executable, no writable and
    // executable mapping, and no file mapping whose private pages were written (they hold
    // code of the task's own making, whatever file they came from).
    let rule_id = anonymous_exec_rule(sandbox.slot);
    if rule_id != 0 && (file.is_null() || prot & PROT_WRITE != 0 || kernel::vma_has_anon_pages(vma))
    {
        return deny_anonymous(hook::FILE_MPROTECT, cgroup_id, sandbox.slot, rule_id, prot);
    }
    if file.is_null() {
        return 0;
    }
    event::count(counter::JUDGED);
    let (dev, ino) = kernel::file_dev_ino(file).unwrap_or((0, 0));
    let key = ExecKey {
        slot: sandbox.slot,
        _pad: 0,
        dev,
        ino,
    };
    // SAFETY: values are copied out at once.
    let rule_id = match unsafe { EXEC_RULES.get(&key) }.copied() {
        Some(v) if v.action == ACTION_ALLOW => return 0,
        Some(v) => v.rule_id,
        None if unsafe { EXEC_LIB_INODES.get(&key) }.is_some() => return 0,
        None => RULE_DEFAULT_DENY,
    };
    event::emit(
        hook::FILE_MPROTECT,
        cgroup_id,
        sandbox.slot,
        rule_id,
        EPERM as u32,
        |ev| {
            ev.dev = dev;
            ev.ino = ino;
            ev.arg = prot;
        },
    );
    -EPERM
}
