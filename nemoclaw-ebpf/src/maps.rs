//! Every map of the kernel side. Userspace fills them (see `nemoclaw::kernel`).

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LpmTrie, PerCpuArray, RingBuf},
};
use nemoclaw_common::{
    exec::{ExecKey, MAX_EXEC_RULES},
    fs::{FsExactKey, FsInodeKey, FsLpmKey, FsValue, MAX_FS_RULES},
    net::{MAX_NET_RULES, Net4Key, Net6Key},
    rule::Verdict,
    sandbox::{MAX_SANDBOXES, SandboxEntry},
};

/// cgroup v2 id -> the sandbox's slot and restricted controls.
#[map]
pub static SANDBOXES: HashMap<u64, SandboxEntry> = HashMap::with_max_entries(MAX_SANDBOXES, 0);

/// (slot, dev, ino) of an executable -> verdict.
#[map]
pub static EXEC_RULES: HashMap<ExecKey, Verdict> = HashMap::with_max_entries(MAX_EXEC_RULES, 0);

/// LPM tries need `BPF_F_NO_PREALLOC`.
const NO_PREALLOC: u32 = 1;

#[map]
pub static NET4_ALLOW: LpmTrie<Net4Key, Verdict> =
    LpmTrie::with_max_entries(MAX_NET_RULES, NO_PREALLOC);
#[map]
pub static NET4_DENY: LpmTrie<Net4Key, Verdict> =
    LpmTrie::with_max_entries(MAX_NET_RULES, NO_PREALLOC);
#[map]
pub static NET6_ALLOW: LpmTrie<Net6Key, Verdict> =
    LpmTrie::with_max_entries(MAX_NET_RULES, NO_PREALLOC);
#[map]
pub static NET6_DENY: LpmTrie<Net6Key, Verdict> =
    LpmTrie::with_max_entries(MAX_NET_RULES, NO_PREALLOC);

/// Deny events (`DenyEvent`), read by the audit log.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Counters, indexed by `nemoclaw_common::event::counter::*`.
#[map]
pub static COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(nemoclaw_common::event::counter::COUNT, 0);

/// (slot, whole path) -> verdicts. An exact hit decides alone.
#[map]
pub static FS_EXACT: HashMap<FsExactKey, FsValue> = HashMap::with_max_entries(MAX_FS_RULES, 0);

/// (slot, `/dir/` prefix of the path) -> verdicts, longest match.
#[map]
pub static FS_PREFIX: LpmTrie<FsLpmKey, FsValue> =
    LpmTrie::with_max_entries(MAX_FS_RULES, NO_PREALLOC);

/// (slot, reversed path suffix) -> verdicts, longest match.
#[map]
pub static FS_SUFFIX: LpmTrie<FsLpmKey, FsValue> =
    LpmTrie::with_max_entries(MAX_FS_RULES, NO_PREALLOC);

/// (slot, dev, ino) of files that existed under deny rules at install -> verdicts.
#[map]
pub static FS_INODES: HashMap<FsInodeKey, FsValue> = HashMap::with_max_entries(MAX_FS_RULES, 0);

/// Per-CPU path scratch for the filesystem hooks.
#[map]
pub static FS_SCRATCH: PerCpuArray<crate::fs::FsScratch> = PerCpuArray::with_max_entries(1, 0);
