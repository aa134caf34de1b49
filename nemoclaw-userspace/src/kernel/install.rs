//! The map writers: a compiled policy's entries written under its slot, a slot's entries
//! counted and cleared, and a sandbox's cgroup registered with its slot and controls. The
//! [`Enforcer`] that loaded or adopted the programs (`loader.rs`) holds the maps.

use std::collections::BTreeSet;

use aya::maps::{Array, HashMap, LpmTrie, lpm_trie::Key};
use nemoclaw_common::{
    exec::{EXEC_PATH_KEY_MAX, ExecKey, ExecPathKey},
    rule::{ACTION_ALLOW, RULE_DEFAULT_DENY, Verdict},
    sandbox::{SandboxEntry, Slot, controls},
};

use super::{Enforcer, KernelError};
use crate::policy::compiled::{CompiledPolicy, PathEntry};

impl Enforcer {
    /// Writes every entry of `policy` under `slot`. Call before [`Self::register`] so no task
    /// is ever judged by a half-written policy.
    pub fn install(&mut self, slot: Slot, policy: &CompiledPolicy) -> Result<(), KernelError> {
        let CompiledPolicy {
            controls: policy_controls,
            rules,
            exec,
            exec_paths: _,
            net4: _,
            net6: _,
            net_binaries: _,
            listen: _,
            exec_prefix,
            library_dirs,
            anonymous_exec_rule,
            fs_exact: _,
            fs_prefix: _,
            fs_suffix: _,
            fs_subtrees: _,
        } = policy;
        self.install_exec_prefix(slot, exec_prefix)?;
        {
            let mut map: HashMap<_, ExecKey, Verdict> = self.map("EXEC_RULES")?;
            for e in exec {
                let key = ExecKey {
                    slot,
                    _pad: 0,
                    dev: e.dev,
                    ino: e.ino,
                };
                map.insert(key, e.verdict, 0)
                    .map_err(|source| KernelError::Map {
                        map: "EXEC_RULES",
                        source,
                    })?;
            }
        }
        if policy_controls & controls::EXEC != 0 {
            self.install_library_dirs(slot, library_dirs)?;
            if *anonymous_exec_rule != 0 {
                self.set_slot_word("ANON_EXEC_RULE", slot, *anonymous_exec_rule)?;
            }
        }
        if policy_controls & controls::PRIVILEGE != 0 {
            // The rule every privilege denial cites (0, the default deny, if absent).
            let rule_id = rules
                .iter()
                .find(|r| r.section == "privilege_escalation")
                .map_or(0, |r| r.id);
            self.set_slot_word("PRIVILEGE_RULE", slot, rule_id)?;
        }
        // The filesystem entries (`fs_exact`, `fs_prefix`, `fs_suffix`, `fs_subtrees`) and
        // the inodes of files under deny rules.
        super::fs::install(&mut self.maps, slot, policy)?;
        // A fresh slot is an update from nothing: every entry inserted, none removed.
        self.update_net(slot, &CompiledPolicy::default(), policy)
    }

    /// `dir/**` process rules, and the slot flag that makes the kernel look them up.
    fn install_exec_prefix(
        &mut self,
        slot: Slot,
        entries: &[PathEntry],
    ) -> Result<(), KernelError> {
        if entries.is_empty() {
            return Ok(());
        }
        {
            let mut map: LpmTrie<_, ExecPathKey, Verdict> = self.map("EXEC_PREFIX")?;
            for e in entries {
                let (bits, key) = ExecPathKey::prefix(slot, e.path.as_bytes()).ok_or(
                    KernelError::PathTooLong {
                        path: e.path.clone(),
                        max: EXEC_PATH_KEY_MAX,
                    },
                )?;
                map.insert(&Key::new(bits, key), e.verdict, 0)
                    .map_err(|source| KernelError::Map {
                        map: "EXEC_PREFIX",
                        source,
                    })?;
            }
        }
        self.set_slot_word("EXEC_SLOT_FLAGS", slot, 1)
    }

    /// The directories whose files `mmap_file` lets the slot map executable.
    fn install_library_dirs(&mut self, slot: Slot, dirs: &[String]) -> Result<(), KernelError> {
        let mut map: LpmTrie<_, ExecPathKey, Verdict> = self.map("EXEC_LIB_DIRS")?;
        for dir in dirs {
            let (bits, key) = ExecPathKey::prefix(slot, dir.as_bytes())
                .ok_or(KernelError::Missing("short library directory"))?;
            let verdict = Verdict {
                action: ACTION_ALLOW,
                rule_id: RULE_DEFAULT_DENY,
            };
            map.insert(&Key::new(bits, key), verdict, 0)
                .map_err(|source| KernelError::Map {
                    map: "EXEC_LIB_DIRS",
                    source,
                })?;
        }
        Ok(())
    }

    /// Brings a slot's network entries from `old` to `new` in place: first every new or
    /// changed entry, then the removal of those that are gone. At every moment an address is
    /// judged by either its old or its new entry; meant for DNS refreshes, where both are
    /// legitimate answers (whole-policy reloads take a fresh slot instead).
    pub fn update_net(
        &mut self,
        slot: Slot,
        old: &CompiledPolicy,
        new: &CompiledPolicy,
    ) -> Result<(), KernelError> {
        super::net::update(&mut self.maps, slot, old, new)
    }

    /// How many entries `slot` has, per map (see `kernel::slots::count`).
    pub fn slot_entries(&self, slot: Slot) -> Result<Vec<(String, usize)>, KernelError> {
        super::slots::count(&self.maps, slot)
    }

    /// Deletes every entry of `slot` (see `kernel::slots`); only once no sandbox uses it.
    pub fn clear_slot(&self, slot: Slot) -> Result<(), KernelError> {
        self.clear_slots(&BTreeSet::from([slot]))
    }

    /// Deletes every entry of each of `slots`, in one scan of each map (see
    /// `kernel::slots`); only once no sandbox uses any of them.
    pub fn clear_slots(&self, slots: &BTreeSet<Slot>) -> Result<(), KernelError> {
        super::slots::remove(&self.maps, slots)
    }

    /// Sends `slot`'s DNS (every port-53 destination) to the gateway on these loopback
    /// ports (`dnsgate`); 0 for a family leaves its port 53 to the rules. Written before
    /// the slot is registered or switched to, and cleared with the slot.
    pub fn set_dns_gate(&mut self, slot: Slot, port4: u16, port6: u16) -> Result<(), KernelError> {
        self.set_slot_word(
            "DNS_GATE",
            slot,
            nemoclaw_common::net::dns_gate(port4, port6),
        )
    }

    /// Writes `value` as `slot`'s entry of the per-slot array `name`.
    fn set_slot_word(
        &mut self,
        name: &'static str,
        slot: Slot,
        value: u32,
    ) -> Result<(), KernelError> {
        let mut map: Array<_, u32> = self.map(name)?;
        map.set(slot, value, 0)
            .map_err(|source| KernelError::Map { map: name, source })
    }

    /// Puts a cgroup under a slot's policy: one map update, the moment enforcement starts.
    pub fn register(&mut self, cgroup_id: u64, entry: SandboxEntry) -> Result<(), KernelError> {
        let mut map: HashMap<_, u64, SandboxEntry> = self.map("SANDBOXES")?;
        map.insert(cgroup_id, entry, 0)
            .map_err(|source| KernelError::Map {
                map: "SANDBOXES",
                source,
            })?;
        // The network programs' copy (cgroup local storage), where they are attached.
        super::net::set_cgroup_entry(&mut self.maps, cgroup_id, entry)
    }

    /// Removes a cgroup from the registry.
    pub fn unregister(&mut self, cgroup_id: u64) -> Result<(), KernelError> {
        super::net::set_cgroup_entry(&mut self.maps, cgroup_id, SandboxEntry::default())?;
        let mut map: HashMap<_, u64, SandboxEntry> = self.map("SANDBOXES")?;
        match map.remove(&cgroup_id) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(KernelError::Map {
                map: "SANDBOXES",
                source,
            }),
        }
    }

    fn map<'a, T>(&'a mut self, name: &'static str) -> Result<T, KernelError>
    where
        T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        self.maps.typed(name)
    }
}
