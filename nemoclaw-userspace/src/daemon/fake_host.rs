//! Fakes of the host the daemon's core drives ([`super::host`]): a kernel that keeps its
//! slots, registry and DNS gates in memory and logs every call, and a cgroup hierarchy of
//! names and ids. Both share their state with the test that made them, which reads it
//! (and arranges failures) while the daemon holds the fake.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use nemoclaw_common::sandbox::{SandboxEntry, Slot, controls};

use super::host::{Cgroup, Cgroups, Kernel};
use crate::{kernel::KernelError, policy::CompiledPolicy, sandbox::cgroup::CgroupError};

/// A kernel operation, as the fake logs it (and as a test names the one to fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Install(Slot),
    UpdateNet(Slot),
    ClearSlot(Slot),
    SetDnsGate(Slot, u16, u16),
    Register(u64, SandboxEntry),
    Unregister(u64),
}

/// Which operation the fake kernel refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fail {
    Install,
    ClearSlots,
    SetDnsGate,
    Register,
}

/// What the fake kernel holds: the maps' contents as the daemon left them.
#[derive(Debug)]
pub(super) struct KernelState {
    /// The controls reported attached.
    pub(super) attached: u32,
    /// Whether socket kinds are restricted.
    pub(super) socket_kinds: bool,
    /// Slots with a policy installed.
    pub(super) slots: BTreeMap<Slot, CompiledPolicy>,
    /// Registered cgroups.
    pub(super) registry: BTreeMap<u64, SandboxEntry>,
    /// DNS gates per slot (cleared with the slot, as the real maps are).
    pub(super) dns_gates: BTreeMap<Slot, (u16, u16)>,
    pub(super) events_lost: u64,
    /// Every call, in order (failed ones too).
    pub(super) calls: Vec<Op>,
    /// Operations refused from now on.
    pub(super) failing: Vec<Fail>,
}

impl KernelState {
    /// The slot cgroup `id` is judged by, if registered.
    pub(super) fn slot_of(&self, id: u64) -> Option<Slot> {
        self.registry.get(&id).map(|e| e.slot)
    }

    /// The position of the first logged call `op` (panics when absent).
    pub(super) fn position(&self, op: Op) -> usize {
        self.calls
            .iter()
            .position(|c| *c == op)
            .unwrap_or_else(|| panic!("{op:?} not called: {:?}", self.calls))
    }

    fn refused(&self, fail: Fail) -> Result<(), KernelError> {
        if self.failing.contains(&fail) {
            Err(KernelError::Unsupported(format!(
                "fake kernel: {fail:?} fails"
            )))
        } else {
            Ok(())
        }
    }
}

/// Every control attached, socket kinds restricted, nothing installed.
impl Default for KernelState {
    fn default() -> Self {
        Self {
            attached: controls::EXEC | controls::NET | controls::FS | controls::PRIVILEGE,
            socket_kinds: true,
            slots: BTreeMap::new(),
            registry: BTreeMap::new(),
            dns_gates: BTreeMap::new(),
            events_lost: 0,
            calls: Vec::new(),
            failing: Vec::new(),
        }
    }
}

/// The fake kernel: a handle on a [`KernelState`] shared with the test.
#[derive(Clone, Debug, Default)]
pub(super) struct FakeKernel(pub(super) Arc<Mutex<KernelState>>);

impl FakeKernel {
    /// Its state, locked.
    pub(super) fn state(&self) -> MutexGuard<'_, KernelState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Kernel for FakeKernel {
    fn attached(&self) -> u32 {
        let s = self.state();
        s.attached | if s.socket_kinds { controls::SOCKETS } else { 0 }
    }

    fn socket_kinds(&self) -> Result<(), &str> {
        if self.state().socket_kinds {
            Ok(())
        } else {
            Err("the fake kernel does not restrict socket kinds")
        }
    }

    fn install(&mut self, slot: Slot, policy: &CompiledPolicy) -> Result<(), KernelError> {
        let mut s = self.state();
        s.calls.push(Op::Install(slot));
        s.refused(Fail::Install)?;
        s.slots.insert(slot, policy.clone());
        Ok(())
    }

    fn update_net(
        &mut self,
        slot: Slot,
        _old: &CompiledPolicy,
        new: &CompiledPolicy,
    ) -> Result<(), KernelError> {
        let mut s = self.state();
        s.calls.push(Op::UpdateNet(slot));
        s.slots.insert(slot, new.clone());
        Ok(())
    }

    fn clear_slots(&self, slots: &BTreeSet<Slot>) -> Result<(), KernelError> {
        let mut s = self.state();
        s.calls
            .extend(slots.iter().map(|slot| Op::ClearSlot(*slot)));
        s.refused(Fail::ClearSlots)?;
        for slot in slots {
            s.slots.remove(slot);
            s.dns_gates.remove(slot);
        }
        Ok(())
    }

    fn set_dns_gate(&mut self, slot: Slot, port4: u16, port6: u16) -> Result<(), KernelError> {
        let mut s = self.state();
        s.calls.push(Op::SetDnsGate(slot, port4, port6));
        s.refused(Fail::SetDnsGate)?;
        s.dns_gates.insert(slot, (port4, port6));
        Ok(())
    }

    fn register(&mut self, cgroup_id: u64, entry: SandboxEntry) -> Result<(), KernelError> {
        let mut s = self.state();
        s.calls.push(Op::Register(cgroup_id, entry));
        s.refused(Fail::Register)?;
        s.registry.insert(cgroup_id, entry);
        Ok(())
    }

    fn unregister(&mut self, cgroup_id: u64) -> Result<(), KernelError> {
        let mut s = self.state();
        s.calls.push(Op::Unregister(cgroup_id));
        s.registry.remove(&cgroup_id);
        Ok(())
    }

    fn events_lost(&self) -> Result<u64, KernelError> {
        Ok(self.state().events_lost)
    }
}

/// The fake cgroup hierarchy: directories by path, with an id and a task count.
#[derive(Debug, Default)]
pub(super) struct CgroupState {
    pub(super) dirs: BTreeMap<PathBuf, FakeDir>,
    /// Cgroups removed (dropped), in order.
    pub(super) removed: Vec<PathBuf>,
    /// Cgroups whose tasks were killed, in order.
    pub(super) killed: Vec<PathBuf>,
    next_id: u64,
}

/// One fake cgroup directory.
#[derive(Clone, Copy, Debug)]
pub(super) struct FakeDir {
    pub(super) id: u64,
    pub(super) tasks: usize,
}

impl CgroupState {
    /// Makes the directory `path` (as a cgroup left by an earlier daemon); returns its id.
    pub(super) fn add(&mut self, path: &Path) -> u64 {
        self.next_id += 1;
        let id = 1000 + self.next_id;
        self.dirs.insert(path.to_owned(), FakeDir { id, tasks: 0 });
        id
    }
}

/// The fake cgroups: a handle on a [`CgroupState`] shared with the test. Sandbox cgroups
/// are made at `/fake-cgroup/<root>/<name>`.
#[derive(Clone, Debug, Default)]
pub(super) struct FakeCgroups(pub(super) Arc<Mutex<CgroupState>>);

impl FakeCgroups {
    /// Its state, locked.
    pub(super) fn state(&self) -> MutexGuard<'_, CgroupState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where a sandbox `name`'s cgroup is made under `root`.
    pub(super) fn path_of(root: &str, name: &str) -> PathBuf {
        Path::new("/fake-cgroup").join(root).join(name)
    }

    fn handle(&self, path: &Path, id: u64) -> Box<dyn Cgroup> {
        Box::new(FakeCgroup {
            path: path.to_owned(),
            id,
            host: self.clone(),
        })
    }
}

fn missing(action: &'static str, path: &Path, kind: io::ErrorKind) -> CgroupError {
    CgroupError::Io {
        action,
        path: path.to_owned(),
        source: kind.into(),
    }
}

impl Cgroups for FakeCgroups {
    fn create(&self, root: &str, name: &str) -> Result<Box<dyn Cgroup>, CgroupError> {
        let path = Self::path_of(root, name);
        let mut s = self.state();
        if s.dirs.contains_key(&path) {
            return Err(missing("creating", &path, io::ErrorKind::AlreadyExists));
        }
        let id = s.add(&path);
        drop(s);
        Ok(self.handle(&path, id))
    }

    fn open(&self, path: &Path) -> Result<Box<dyn Cgroup>, CgroupError> {
        let id = self
            .state()
            .dirs
            .get(path)
            .map(|d| d.id)
            .ok_or_else(|| missing("reading", path, io::ErrorKind::NotFound))?;
        Ok(self.handle(path, id))
    }
}

/// A fake sandbox cgroup; dropping it removes its directory, as [`crate::sandbox::SandboxCgroup`].
struct FakeCgroup {
    path: PathBuf,
    id: u64,
    host: FakeCgroups,
}

impl Cgroup for FakeCgroup {
    fn id(&self) -> u64 {
        self.id
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn tasks(&self) -> usize {
        self.host
            .state()
            .dirs
            .get(&self.path)
            .map_or(0, |d| d.tasks)
    }

    fn kill_all(&self) {
        let mut s = self.host.state();
        s.killed.push(self.path.clone());
        if let Some(dir) = s.dirs.get_mut(&self.path) {
            dir.tasks = 0;
        }
    }
}

impl Drop for FakeCgroup {
    fn drop(&mut self) {
        let mut s = self.host.state();
        s.dirs.remove(&self.path);
        s.removed.push(self.path.clone());
    }
}
