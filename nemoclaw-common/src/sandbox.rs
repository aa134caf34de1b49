//! The sandbox registry: which cgroups are sandboxed, and with which policy slot.

/// A policy slot. Every rule key carries one so that a reload can fill a fresh slot and
/// switch a sandbox to it with one map update.
///
/// Layout rule for every map keyed by slot (userspace clears a slot generically by it): a
/// hash map's key starts with the slot (native endian), except the `FS_EXACT_*` maps whose
/// keys have the LPM layout; an LPM trie's data starts with it (big endian), and a per-slot
/// array has exactly [`MAX_SLOTS`] entries.
pub type Slot = u32;

/// Number of policy slots (two per sandbox is enough for atomic swaps; more lets many
/// sandboxes share one map set).
pub const MAX_SLOTS: u32 = 4096;

/// The slot of the self-test's probe policy (userspace `sandbox::selftest`): never handed
/// to a sandbox, so the self-test can run beside live sandboxes and its deny events are
/// told apart.
pub const SELF_TEST_SLOT: Slot = MAX_SLOTS - 1;

/// Depth of sandbox cgroups in the cgroup v2 hierarchy: `<root>/nemoclaw/<sandbox>`. The
/// kernel side judges a task in a cgroup below a sandbox by its ancestor at this depth.
pub const SANDBOX_CGROUP_LEVEL: u32 = 2;

/// Capacity of the `SANDBOXES` map.
pub const MAX_SANDBOXES: u32 = 1024;

/// Bits of [`SandboxEntry::controls`]: which controls the policy restricts. A control whose
/// policy section is absent is unrestricted (its bit is clear).
pub mod controls {
    /// `process` section present: exec is deny-by-default.
    pub const EXEC: u32 = 1 << 0;
    /// `network` section present: connect/sendmsg are deny-by-default.
    pub const NET: u32 = 1 << 1;
    /// `filesystem` section present.
    pub const FS: u32 = 1 << 2;
    /// `privilege_escalation: deny`.
    pub const PRIVILEGE: u32 = 1 << 3;
    /// Socket kinds are restricted (TCP, UDP, unix and netlink-route only): set with
    /// [`NET`] wherever the `socket_create` LSM program is attached.
    pub const SOCKETS: u32 = 1 << 4;
}

/// Value of `SANDBOXES`, keyed by cgroup v2 id (`u64`, the cgroup directory's inode number).
///
/// Read by every program first (is the task sandboxed, under which slot); also the value of
/// the network programs' cgroup storage `NET_SANDBOX` (`BPF_MAP_TYPE_CGROUP_STORAGE`,
/// 4.19+).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SandboxEntry {
    /// The policy slot whose rules the sandbox's tasks are judged by.
    pub slot: Slot,
    /// A set of [`controls`] bits.
    pub controls: u32,
}
