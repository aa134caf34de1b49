//! Every map of the kernel side. Userspace fills them (see `nemoclaw::kernel`).
#![warn(clippy::missing_docs_in_private_items)]

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LpmTrie, PerCpuArray, RingBuf},
};
use nemoclaw_common::{
    exec::{ExecKey, MAX_EXEC_RULES},
    fs::{FsExactKey, FsInodeKey, FsLpmKey, FsSubtreeKey, FsValue, MAX_FS_RULES},
    net::{ListenKey, MAX_LISTEN_ENTRIES, MAX_NET_BINARIES, MAX_NET_RULES, Net4Key, Net6Key},
    rule::Verdict,
    sandbox::{MAX_SANDBOXES, SandboxEntry},
};

/// cgroup v2 id -> the sandbox's slot and restricted controls.
///
/// Read by every program first. `BPF_MAP_TYPE_HASH`.
#[map]
pub static SANDBOXES: HashMap<u64, SandboxEntry> = HashMap::with_max_entries(MAX_SANDBOXES, 0);

/// (slot, dev, ino) of an executable -> verdict.
///
/// Read by the process control (`bprm_check_security`, `mmap_file`, `file_mprotect`; BPF
/// LSM, 5.7+). `BPF_MAP_TYPE_HASH`.
#[map]
pub static EXEC_RULES: HashMap<ExecKey, Verdict> = HashMap::with_max_entries(MAX_EXEC_RULES, 0);

/// `BPF_F_NO_PREALLOC`: LPM tries need it; hash maps with it allocate entries on insert.
const NO_PREALLOC: u32 = 1;

/// (slot, binary id, protocol, port, IPv4 prefix) -> verdict (allow and deny entries).
///
/// Read by the cgroup `connect4/6` (4.17+) and `sendmsg4/6` (4.18+) programs.
/// `BPF_MAP_TYPE_LPM_TRIE` (4.11+).
#[map]
pub static NET4: LpmTrie<Net4Key, Verdict> = LpmTrie::with_max_entries(MAX_NET_RULES, NO_PREALLOC);
/// (slot, binary id, protocol, port, IPv6 prefix) -> verdict.
///
/// Read by the cgroup `connect4/6` (4.17+) and `sendmsg4/6` (4.18+) programs.
/// `BPF_MAP_TYPE_LPM_TRIE` (4.11+).
#[map]
pub static NET6: LpmTrie<Net6Key, Verdict> = LpmTrie::with_max_entries(MAX_NET_RULES, NO_PREALLOC);

/// (slot, protocol, port) a `network.listen` entry opens on non-loopback addresses -> the
/// entry's rule id. Read by the cgroup `bind4`/`bind6` programs and LSM `socket_listen`.
///
/// `BPF_MAP_TYPE_HASH`; `bind4/6` need 4.17+, `socket_listen` BPF LSM (5.7+).
#[map]
pub static NET_LISTEN: HashMap<ListenKey, u32> =
    HashMap::with_max_entries(MAX_LISTEN_ENTRIES, NO_PREALLOC);

/// The sandbox entry of the cgroup a `sock_addr` program is attached to (cgroup local
/// storage: read without a lookup, and the same for tasks in cgroups below it). Userspace
/// writes it after attaching; all zeros (not yet written) sends the programs to `SANDBOXES`.
///
/// Read by the cgroup `sock_addr` programs. `BPF_MAP_TYPE_CGROUP_STORAGE` (4.19+).
#[expect(
    deprecated,
    reason = "BPF_MAP_TYPE_CGRP_STORAGE needs 6.2; we support 6.1"
)]
#[map]
pub static NET_SANDBOX: aya_ebpf::maps::CgroupStorage<SandboxEntry> =
    aya_ebpf::maps::CgroupStorage::new();

/// Slot -> which network lookup groups have entries (`nemoclaw_common::net::group_bit`).
///
/// Read by the cgroup `connect4/6` (4.17+) and `sendmsg4/6` (4.18+) programs.
/// `BPF_MAP_TYPE_ARRAY`.
#[map]
pub static NET_SLOT_FLAGS: aya_ebpf::maps::Array<nemoclaw_common::net::NetSlotFlags> =
    aya_ebpf::maps::Array::with_max_entries(nemoclaw_common::sandbox::MAX_SLOTS, 0);

/// Slot -> the loopback ports of the sandbox's DNS gateway (`nemoclaw_common::net::dns_gate`).
///
/// Read by the cgroup `connect4/6` (4.17+) and `sendmsg4/6` (4.18+) programs.
/// `BPF_MAP_TYPE_ARRAY`.
#[map]
pub static DNS_GATE: aya_ebpf::maps::Array<u32> =
    aya_ebpf::maps::Array::with_max_entries(nemoclaw_common::sandbox::MAX_SLOTS, 0);

/// Socket cookie -> where a DNS socket redirected to its gateway meant to send.
///
/// Written by the cgroup `connect4/6` (4.17+) and `sendmsg4/6` (4.18+) programs, read by
/// `recvmsg4/6` (5.2+) and `getpeername4/6` (5.8+). `BPF_MAP_TYPE_LRU_HASH` (4.10+).
#[map]
pub static DNS_ORIGINAL: aya_ebpf::maps::LruHashMap<u64, nemoclaw_common::net::DnsOriginal> =
    aya_ebpf::maps::LruHashMap::with_max_entries(nemoclaw_common::net::MAX_DNS_SOCKETS, 0);

/// (slot, dev, ino) of an executable named by a network rule's `binaries` -> its binary id.
///
/// Read by the cgroup `sock_addr` programs for per-binary rules. `BPF_MAP_TYPE_HASH`.
#[map]
pub static NET_BINARIES: HashMap<ExecKey, u32> = HashMap::with_max_entries(MAX_NET_BINARIES, 0);

/// Deny events (`DenyEvent`), read by the audit log.
///
/// Written by every program that denies. `BPF_MAP_TYPE_RINGBUF` (5.8+).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Counters, indexed by `nemoclaw_common::event::counter::*`.
///
/// Written by every judging program. `BPF_MAP_TYPE_PERCPU_ARRAY`.
#[map]
pub static COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(nemoclaw_common::event::counter::COUNT, 0);

/// The task (`pid_tgid`) that last claimed this CPU's scratch buffers (`crate::scratch`).
///
/// Used by the programs that borrow per-CPU scratch buffers. `BPF_MAP_TYPE_PERCPU_ARRAY`.
#[map]
pub static SCRATCH_OWNER: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// (slot, whole path) -> verdicts, one map per key length class (`FS_EXACT_CLASSES`): a
/// path is looked up only in its class's map. An exact hit decides alone. Not preallocated:
/// memory follows the rules present, not the capacity.
///
/// Read by the filesystem programs (`file_open`, `path_*`, the metadata hooks; BPF LSM,
/// 5.7+). `BPF_MAP_TYPE_HASH`.
#[map]
pub static FS_EXACT_56: HashMap<FsExactKey<56>, FsValue> =
    HashMap::with_max_entries(MAX_FS_RULES, NO_PREALLOC);
/// Exact filesystem rules, paths of 57 to 120 bytes (see [`FS_EXACT_56`]).
///
/// Read by the filesystem programs (`file_open`, `path_*`, the metadata hooks; BPF LSM,
/// 5.7+). `BPF_MAP_TYPE_HASH`.
#[map]
pub static FS_EXACT_120: HashMap<FsExactKey<120>, FsValue> =
    HashMap::with_max_entries(MAX_FS_RULES, NO_PREALLOC);
/// Exact filesystem rules, paths of 121 to 248 bytes (see [`FS_EXACT_56`]).
///
/// Read by the filesystem programs (`file_open`, `path_*`, the metadata hooks; BPF LSM,
/// 5.7+). `BPF_MAP_TYPE_HASH`.
#[map]
pub static FS_EXACT_248: HashMap<FsExactKey<248>, FsValue> =
    HashMap::with_max_entries(MAX_FS_RULES, NO_PREALLOC);
/// Exact filesystem rules, paths of 249 to 504 bytes (see [`FS_EXACT_56`]).
///
/// Read by the filesystem programs (`file_open`, `path_*`, the metadata hooks; BPF LSM,
/// 5.7+). `BPF_MAP_TYPE_HASH`.
#[map]
pub static FS_EXACT_504: HashMap<FsExactKey<504>, FsValue> =
    HashMap::with_max_entries(MAX_FS_RULES, NO_PREALLOC);

/// Slot -> `nemoclaw_common::fs::slot_flags`: which filesystem maps hold entries for the
/// slot, so lookups that cannot hit are skipped.
///
/// Read by the filesystem programs (`file_open`, `path_*`, the metadata hooks; BPF LSM,
/// 5.7+). `BPF_MAP_TYPE_ARRAY`.
#[map]
pub static FS_SLOT_FLAGS: aya_ebpf::maps::Array<u32> =
    aya_ebpf::maps::Array::with_max_entries(nemoclaw_common::sandbox::MAX_SLOTS, 0);

/// (slot, `/dir/` prefix of the path) -> verdicts, longest match.
///
/// Read by the filesystem programs (`file_open`, `path_*`, the metadata hooks; BPF LSM,
/// 5.7+). `BPF_MAP_TYPE_LPM_TRIE` (4.11+).
#[map]
pub static FS_PREFIX: LpmTrie<FsLpmKey, FsValue> =
    LpmTrie::with_max_entries(MAX_FS_RULES, NO_PREALLOC);

/// (slot, reversed path suffix) -> verdicts, longest match.
///
/// Read by the filesystem programs (`file_open`, `path_*`, the metadata hooks; BPF LSM,
/// 5.7+). `BPF_MAP_TYPE_LPM_TRIE` (4.11+).
#[map]
pub static FS_SUFFIX: LpmTrie<FsLpmKey, FsValue> =
    LpmTrie::with_max_entries(MAX_FS_RULES, NO_PREALLOC);

/// (slot, dev, ino) of files that existed under deny rules at install -> verdicts.
///
/// Read by the filesystem programs (`file_open`, `path_*`, the metadata hooks; BPF LSM,
/// 5.7+). `BPF_MAP_TYPE_HASH`.
#[map]
pub static FS_INODES: HashMap<FsInodeKey, FsValue> = HashMap::with_max_entries(MAX_FS_RULES, 0);

/// (slot, kind, hash of a directory path or name) -> id of a rule that a rename of such a
/// directory would get around (see `nemoclaw_common::fs::FsSubtreeKey`).
///
/// Read by `path_rename_subtrees` (LSM `path_rename`; BPF LSM, 5.7+). `BPF_MAP_TYPE_HASH`.
#[map]
pub static FS_SUBTREES: HashMap<FsSubtreeKey, u32> = HashMap::with_max_entries(MAX_FS_RULES, 0);

/// Per-CPU path scratch for the filesystem hooks.
///
/// Used by the filesystem programs (`file_open`, `path_*`, the metadata hooks; BPF LSM,
/// 5.7+). `BPF_MAP_TYPE_PERCPU_ARRAY`.
#[map]
pub static FS_SCRATCH: PerCpuArray<crate::fs::FsScratch> = PerCpuArray::with_max_entries(1, 0);

/// Slot -> the rule id of the policy's `privilege_escalation: deny` entry, cited by every
/// privilege denial.
///
/// Read by the privilege programs (BPF LSM, 5.7+). `BPF_MAP_TYPE_ARRAY`.
#[map]
pub static PRIVILEGE_RULE: aya_ebpf::maps::Array<u32> =
    aya_ebpf::maps::Array::with_max_entries(nemoclaw_common::sandbox::MAX_SLOTS, 0);

/// (slot, directory prefix) -> verdict: library directories whose files may be mapped
/// executable (`mmap_file`, `file_mprotect`). See `nemoclaw_common::exec::DEFAULT_LIBRARY_DIRS`.
///
/// Read by `mmap_file` and `file_mprotect` (BPF LSM, 5.7+). `BPF_MAP_TYPE_LPM_TRIE`
/// (4.11+).
#[map]
pub static EXEC_LIB_DIRS: LpmTrie<nemoclaw_common::exec::ExecPathKey, Verdict> =
    LpmTrie::with_max_entries(nemoclaw_common::exec::MAX_EXEC_LIB_DIRS, NO_PREALLOC);

/// (slot, dev, ino) of files `mmap_file` allowed executable from a library directory, so
/// that `file_mprotect` (where `bpf_d_path` is not allowed) can judge them by identity.
///
/// Written by `mmap_file`, read by `file_mprotect` (BPF LSM, 5.7+). `BPF_MAP_TYPE_LRU_HASH`
/// (4.10+).
#[map]
pub static EXEC_LIB_INODES: aya_ebpf::maps::LruHashMap<ExecKey, u32> =
    aya_ebpf::maps::LruHashMap::with_max_entries(nemoclaw_common::exec::MAX_EXEC_LIB_INODES, 0);

/// Per-CPU scratch for `mmap_file`: the whole `bpf_d_path` output (the BPF stack is 512 bytes).
///
/// Used by the process control (`bprm_check_security`, `mmap_file`, `file_mprotect`; BPF
/// LSM, 5.7+). `BPF_MAP_TYPE_PERCPU_ARRAY`.
#[map]
pub static EXEC_PATH_SCRATCH: PerCpuArray<[u8; nemoclaw_common::event::EVENT_PATH_MAX]> =
    PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch for the `EXEC_LIB_DIRS` lookup key.
///
/// Used by `mmap_file` and `file_mprotect` (BPF LSM, 5.7+). `BPF_MAP_TYPE_PERCPU_ARRAY`.
#[map]
pub static EXEC_LIB_KEY_SCRATCH: PerCpuArray<
    aya_ebpf::maps::lpm_trie::Key<nemoclaw_common::exec::ExecPathKey>,
> = PerCpuArray::with_max_entries(1, 0);

/// (slot, `/dir/` prefix) -> verdict: `process` rules written `dir/**`, judged on the resolved
/// path of the executed (or executably mapped) file.
///
/// Read by the process control (`bprm_check_security`, `mmap_file`, `file_mprotect`; BPF
/// LSM, 5.7+). `BPF_MAP_TYPE_LPM_TRIE` (4.11+).
#[map]
pub static EXEC_PREFIX: LpmTrie<nemoclaw_common::exec::ExecPathKey, Verdict> =
    LpmTrie::with_max_entries(nemoclaw_common::exec::MAX_EXEC_PREFIX_RULES, NO_PREALLOC);

/// Slot -> flags (`1`: the slot has `EXEC_PREFIX` entries), so slots without `dir/**` rules
/// never pay for a path lookup on exec.
///
/// Read by the process control (`bprm_check_security`, `mmap_file`, `file_mprotect`; BPF
/// LSM, 5.7+). `BPF_MAP_TYPE_ARRAY`.
#[map]
pub static EXEC_SLOT_FLAGS: aya_ebpf::maps::Array<u32> =
    aya_ebpf::maps::Array::with_max_entries(nemoclaw_common::sandbox::MAX_SLOTS, 0);

/// Per slot: the rule id of `process.anonymous_exec: deny`, or 0 where executable anonymous
/// and writable memory is allowed (`mmap_file`, `file_mprotect`).
///
/// Read by `mmap_file` and `file_mprotect` (BPF LSM, 5.7+). `BPF_MAP_TYPE_ARRAY`.
#[map]
pub static ANON_EXEC_RULE: aya_ebpf::maps::Array<u32> =
    aya_ebpf::maps::Array::with_max_entries(nemoclaw_common::sandbox::MAX_SLOTS, 0);
