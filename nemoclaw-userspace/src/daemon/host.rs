//! What the daemon's core asks of the host once it has started: the kernel side's maps
//! ([`Kernel`], the loaded or adopted [`Enforcer`]) and its sandboxes' cgroups
//! ([`Cgroups`], under the cgroup v2 mount). The [`super::server::Daemon`] holds both as
//! trait objects, so its operations (create, apply, destroy, reload, restore) run in unit
//! tests over fakes (`fake_host`), without root or a BPF-capable kernel.
//!
//! Boot keeps the concrete [`Enforcer`] until the daemon is assembled: loading, pinning,
//! adopting, the self-test and the deny-event ring buffer are the real kernel's alone.

use std::{collections::BTreeSet, path::Path};

use nemoclaw_common::sandbox::{SandboxEntry, Slot};

use crate::{
    kernel::{Enforcer, KernelError},
    policy::CompiledPolicy,
    sandbox::{SandboxCgroup, cgroup::CgroupError},
};

/// The kernel operations the daemon's core performs on its enforcement: policy slots,
/// the cgroup registry, DNS gates and the dropped-event count. Each method is the
/// [`Enforcer`] method of the same name (see there for what it guarantees).
pub trait Kernel: Send {
    /// The controls whose programs are attached (and proven), plus `SOCKETS` where socket
    /// kinds are restricted.
    fn attached(&self) -> u32;
    /// Whether socket kinds are restricted, or why not.
    fn socket_kinds(&self) -> Result<(), &str>;
    /// Writes `policy` into `slot`'s map entries.
    fn install(&mut self, slot: Slot, policy: &CompiledPolicy) -> Result<(), KernelError>;
    /// Brings `slot`'s network entries from `old` to `new` in place (DNS refreshes).
    fn update_net(
        &mut self,
        slot: Slot,
        old: &CompiledPolicy,
        new: &CompiledPolicy,
    ) -> Result<(), KernelError>;
    /// Deletes every entry of each of `slots` (one scan of the maps for all of them).
    fn clear_slots(&self, slots: &BTreeSet<Slot>) -> Result<(), KernelError>;
    /// Sends `slot`'s DNS to the gateway on these loopback ports (0: none for a family).
    fn set_dns_gate(&mut self, slot: Slot, port4: u16, port6: u16) -> Result<(), KernelError>;
    /// Puts cgroup `cgroup_id` under `entry`'s slot and controls (or switches it).
    fn register(&mut self, cgroup_id: u64, entry: SandboxEntry) -> Result<(), KernelError>;
    /// Removes cgroup `cgroup_id` from the registry.
    fn unregister(&mut self, cgroup_id: u64) -> Result<(), KernelError>;
    /// Deny events the kernel dropped since the programs were loaded.
    fn events_lost(&self) -> Result<u64, KernelError>;
}

impl Kernel for Enforcer {
    fn attached(&self) -> u32 {
        Enforcer::attached(self)
    }

    fn socket_kinds(&self) -> Result<(), &str> {
        Enforcer::socket_kinds(self)
    }

    fn install(&mut self, slot: Slot, policy: &CompiledPolicy) -> Result<(), KernelError> {
        Enforcer::install(self, slot, policy)
    }

    fn update_net(
        &mut self,
        slot: Slot,
        old: &CompiledPolicy,
        new: &CompiledPolicy,
    ) -> Result<(), KernelError> {
        Enforcer::update_net(self, slot, old, new)
    }

    fn clear_slots(&self, slots: &BTreeSet<Slot>) -> Result<(), KernelError> {
        Enforcer::clear_slots(self, slots)
    }

    fn set_dns_gate(&mut self, slot: Slot, port4: u16, port6: u16) -> Result<(), KernelError> {
        Enforcer::set_dns_gate(self, slot, port4, port6)
    }

    fn register(&mut self, cgroup_id: u64, entry: SandboxEntry) -> Result<(), KernelError> {
        Enforcer::register(self, cgroup_id, entry)
    }

    fn unregister(&mut self, cgroup_id: u64) -> Result<(), KernelError> {
        Enforcer::unregister(self, cgroup_id)
    }

    fn events_lost(&self) -> Result<u64, KernelError> {
        Enforcer::events_lost(self)
    }
}

/// A sandbox's cgroup as the daemon's core uses it. Dropping it kills what is left inside
/// and removes it (as [`SandboxCgroup`] does).
pub trait Cgroup: Send {
    /// The cgroup id the kernel side keys the sandbox by.
    fn id(&self) -> u64;
    /// Its directory.
    fn path(&self) -> &Path;
    /// Number of tasks inside now.
    fn tasks(&self) -> usize;
    /// Kills every task inside.
    fn kill_all(&self);
}

impl Cgroup for SandboxCgroup {
    fn id(&self) -> u64 {
        SandboxCgroup::id(self)
    }

    fn path(&self) -> &Path {
        SandboxCgroup::path(self)
    }

    fn tasks(&self) -> usize {
        SandboxCgroup::tasks(self)
    }

    fn kill_all(&self) {
        SandboxCgroup::kill_all(self);
    }
}

/// Where the daemon makes its sandboxes' cgroups, and finds them again after a restart.
pub trait Cgroups: Send {
    /// Creates the cgroup `name` under the sandboxes' parent `root`.
    fn create(&self, root: &str, name: &str) -> Result<Box<dyn Cgroup>, CgroupError>;
    /// An existing sandbox cgroup.
    fn open(&self, path: &Path) -> Result<Box<dyn Cgroup>, CgroupError>;
}

/// The host's cgroup v2 hierarchy ([`SandboxCgroup`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemCgroups;

impl Cgroups for SystemCgroups {
    fn create(&self, root: &str, name: &str) -> Result<Box<dyn Cgroup>, CgroupError> {
        Ok(Box::new(SandboxCgroup::create(root, name)?))
    }

    fn open(&self, path: &Path) -> Result<Box<dyn Cgroup>, CgroupError> {
        Ok(Box::new(SandboxCgroup::open(path)?))
    }
}
