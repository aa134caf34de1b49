//! Writes a compiled policy's network entries into the kernel maps for one slot: the IPv4
//! and IPv6 LPM tries (allow and deny entries together), the slot's group flags (which
//! lookups the kernel makes), the binary ids of executables named by `binaries`, and the
//! ports `network.listen` opens (`NET_LISTEN`).
//!
//! Every change goes "wider first": flags and binary ids of both the old and the new policy
//! are in place before entries change, and narrowed only after, so a task is never judged
//! without a group or binary id that one of the two policies has.

use aya::maps::{Array, HashMap, LpmTrie, lpm_trie::Key};
use nemoclaw_common::{
    exec::ExecKey,
    net::{
        BIN_ANY, FIXED_PREFIX_BITS, ListenKey, Net4Key, Net6Key, NetSlotFlags, PORT_ANY, PROTO_ANY,
        group_bit, port_bit,
    },
    rule::Verdict,
    sandbox::Slot,
};

use super::{KernelError, mapset::MapSet};
use crate::policy::compiled::{CompiledPolicy, ListenEntry, NetEntry};

fn map<'a, T>(maps: &'a mut MapSet, name: &'static str) -> Result<T, KernelError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    maps.typed(name)
}

/// `NET_SLOT_FLAGS` for a policy's entries.
#[must_use]
pub fn slot_flags(policy: &CompiledPolicy) -> NetSlotFlags {
    fn bits<const N: usize>(entries: &[NetEntry<N>], v6: bool) -> (u32, u64) {
        entries.iter().fold((0, 0), |(groups, ports), e| {
            let group = group_bit(
                v6,
                e.bin != BIN_ANY,
                e.proto == PROTO_ANY,
                e.port == PORT_ANY,
            );
            let port = if e.port == PORT_ANY {
                0
            } else {
                port_bit(e.port)
            };
            (groups | group, ports | port)
        })
    }
    let (groups4, ports4) = bits(&policy.net4, false);
    let (groups6, ports6) = bits(&policy.net6, true);
    NetSlotFlags {
        groups: groups4 | groups6,
        _pad: 0,
        ports4,
        ports6,
    }
}

/// Both policies' lookups: in force while a slot moves from one to the other.
fn union(a: NetSlotFlags, b: NetSlotFlags) -> NetSlotFlags {
    NetSlotFlags {
        groups: a.groups | b.groups,
        _pad: 0,
        ports4: a.ports4 | b.ports4,
        ports6: a.ports6 | b.ports6,
    }
}

fn set_flags(maps: &mut MapSet, slot: Slot, flags: NetSlotFlags) -> Result<(), KernelError> {
    let mut array: Array<_, NetSlotFlags> = map(maps, "NET_SLOT_FLAGS")?;
    array
        .set(slot, flags, 0)
        .map_err(|source| KernelError::Map {
            map: "NET_SLOT_FLAGS",
            source,
        })
}

fn binary_key(slot: Slot, dev: u64, ino: u64) -> ExecKey {
    ExecKey {
        slot,
        _pad: 0,
        dev,
        ino,
    }
}

/// Brings a slot's network entries from `old` to `new` in place (an install is an update
/// from the empty policy): flags and binary ids widened, every new or changed entry
/// written, then the entries, binary ids and flags that are gone removed.
pub fn update(
    maps: &mut MapSet,
    slot: Slot,
    old: &CompiledPolicy,
    new: &CompiledPolicy,
) -> Result<(), KernelError> {
    set_flags(maps, slot, union(slot_flags(old), slot_flags(new)))?;
    {
        let mut bins: HashMap<_, ExecKey, u32> = map(maps, "NET_BINARIES")?;
        for b in &new.net_binaries {
            bins.insert(binary_key(slot, b.dev, b.ino), u32::from(b.bin), 0)
                .map_err(|source| KernelError::Map {
                    map: "NET_BINARIES",
                    source,
                })?;
        }
    }
    sync(maps, &old.net4, &new.net4, "NET4", |e| {
        Key::new(
            FIXED_PREFIX_BITS + u32::from(e.prefix_len),
            Net4Key::new(slot, e.bin, e.proto, e.port, e.addr),
        )
    })?;
    sync(maps, &old.net6, &new.net6, "NET6", |e| {
        Key::new(
            FIXED_PREFIX_BITS + u32::from(e.prefix_len),
            Net6Key::new(slot, e.bin, e.proto, e.port, e.addr),
        )
    })?;
    sync_listen(maps, slot, &old.listen, &new.listen)?;
    {
        let mut bins: HashMap<_, ExecKey, u32> = map(maps, "NET_BINARIES")?;
        for gone in old.net_binaries.iter().filter(|o| {
            !new.net_binaries
                .iter()
                .any(|n| (n.dev, n.ino) == (o.dev, o.ino))
        }) {
            match bins.remove(&binary_key(slot, gone.dev, gone.ino)) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(source) => {
                    return Err(KernelError::Map {
                        map: "NET_BINARIES",
                        source,
                    });
                }
            }
        }
    }
    set_flags(maps, slot, slot_flags(new))
}

fn sync<const N: usize, K: aya::Pod>(
    maps: &mut MapSet,
    old: &[NetEntry<N>],
    new: &[NetEntry<N>],
    name: &'static str,
    key: impl Fn(&NetEntry<N>) -> Key<K>,
) -> Result<(), KernelError> {
    let mut trie: LpmTrie<_, K, Verdict> = map(maps, name)?;
    for e in new.iter().filter(|e| !old.contains(e)) {
        trie.insert(&key(e), e.verdict, 0)
            .map_err(|source| KernelError::Map { map: name, source })?;
    }
    // Same key means the insert above already replaced it.
    let same_key = |a: &NetEntry<N>, b: &NetEntry<N>| {
        (a.bin, a.proto, a.port, a.addr, a.prefix_len)
            == (b.bin, b.proto, b.port, b.addr, b.prefix_len)
    };
    for gone in old.iter().filter(|o| !new.iter().any(|n| same_key(o, n))) {
        match trie.remove(&key(gone)) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => return Err(KernelError::Map { map: name, source }),
        }
    }
    Ok(())
}

/// Brings the slot's `NET_LISTEN` keys from `old` to `new`: new and changed keys written
/// first, then the keys only `old` has removed. Both lists are sorted with unique
/// (protocol, port), as the compiler makes them (a range can give 65,535 entries).
fn sync_listen(
    maps: &mut MapSet,
    slot: Slot,
    old: &[ListenEntry],
    new: &[ListenEntry],
) -> Result<(), KernelError> {
    const NAME: &str = "NET_LISTEN";
    let mut listen: HashMap<_, ListenKey, u32> = map(maps, NAME)?;
    let has = |list: &[ListenEntry], e: &ListenEntry| {
        list.binary_search_by(|x| (x.proto, x.port).cmp(&(e.proto, e.port)))
            .ok()
            .map(|i| list[i])
    };
    for e in new.iter().filter(|e| has(old, e) != Some(**e)) {
        listen
            .insert(ListenKey::new(slot, e.proto, e.port), e.rule_id, 0)
            .map_err(|source| KernelError::Map { map: NAME, source })?;
    }
    for gone in old.iter().filter(|o| has(new, o).is_none()) {
        match listen.remove(&ListenKey::new(slot, gone.proto, gone.port)) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => return Err(KernelError::Map { map: NAME, source }),
        }
    }
    Ok(())
}

/// Removes every network entry, binary id and flag of `policy` from `slot`.
pub fn clear(maps: &mut MapSet, slot: Slot, policy: &CompiledPolicy) -> Result<(), KernelError> {
    update(maps, slot, policy, &CompiledPolicy::default())
}

/// `enum bpf_attach_type` values of the four `sock_addr` programs (uapi, stable).
const SOCK_ADDR_ATTACH_TYPES: [u32; 4] = [
    10, // BPF_CGROUP_INET4_CONNECT
    11, // BPF_CGROUP_INET6_CONNECT
    14, // BPF_CGROUP_UDP4_SENDMSG
    15, // BPF_CGROUP_UDP6_SENDMSG
];

/// Writes `entry` into the cgroup local storage (`NET_SANDBOX`) the network programs read
/// instead of looking the registry up. Only exists where they are attached to this cgroup;
/// elsewhere (no network section) there is nothing to write. All zeros sends the programs
/// back to the registry.
#[expect(
    deprecated,
    reason = "BPF_MAP_TYPE_CGRP_STORAGE needs 6.2; we support 6.1"
)]
pub fn set_cgroup_entry(
    maps: &mut MapSet,
    cgroup_id: u64,
    entry: nemoclaw_common::sandbox::SandboxEntry,
) -> Result<(), KernelError> {
    use aya::maps::{CgroupStorage, CgroupStorageKey};
    let mut storage: CgroupStorage<_, nemoclaw_common::sandbox::SandboxEntry> =
        maps.typed("NET_SANDBOX")?;
    for attach_type in SOCK_ADDR_ATTACH_TYPES {
        let key = CgroupStorageKey::new(cgroup_id, attach_type);
        match storage.insert(key, entry, 0) {
            Ok(()) => {}
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(source) => {
                return Err(KernelError::Map {
                    map: "NET_SANDBOX",
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use nemoclaw_common::rule::{ACTION_ALLOW, Verdict};

    use super::*;

    fn entry(bin: u16, proto: u8, port: u16) -> NetEntry<4> {
        NetEntry {
            bin,
            proto,
            port,
            addr: [10, 0, 0, 0],
            prefix_len: 8,
            verdict: Verdict {
                action: ACTION_ALLOW,
                rule_id: 1,
            },
        }
    }

    #[test]
    fn flags_name_exactly_the_groups_present() {
        let policy = CompiledPolicy {
            net4: vec![entry(0, 6, 443), entry(0, 0, 0), entry(2, 0, 53)],
            ..CompiledPolicy::default()
        };
        let flags = slot_flags(&policy);
        assert_eq!(flags.ports4, port_bit(443) | port_bit(53));
        assert_eq!(flags.ports6, 0);
        let flags = flags.groups;
        assert_eq!(
            flags,
            group_bit(false, false, false, false)
                | group_bit(false, false, true, true)
                | group_bit(false, true, true, false)
        );
        assert_eq!(flags, 0b0100_1001);
        assert_eq!(
            slot_flags(&CompiledPolicy::default()),
            NetSlotFlags::default()
        );
    }
}
