//! `network` rules to `NET4`/`NET6` LPM entries per (binary id, protocol, port) group, each
//! merged with the shorter prefixes of its group that cover it; `network.listen` to
//! `NET_LISTEN` keys; and the table of `binaries`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use nemoclaw_common::net::BIN_ANY;
use nemoclaw_common::rule::{Verdict, merge};

use crate::policy::compiled::{CompiledPolicy, ListenEntry, NetEntry};
use crate::policy::explain::RuleSet;

/// (binary id, protocol, port) -> (prefix length, address) -> verdict.
type NetGroups<const N: usize> = BTreeMap<(u16, u8, u16), BTreeMap<(u8, [u8; N]), Verdict>>;

pub(super) fn lower(rules: &RuleSet, out: &mut CompiledPolicy) {
    let mut net4: NetGroups<4> = BTreeMap::new();
    let mut net6: NetGroups<16> = BTreeMap::new();
    for rule in &rules.net {
        let mut bins: Vec<u16> = match &rule.binaries {
            None => vec![BIN_ANY],
            Some(inodes) => rules
                .net_binaries
                .iter()
                .filter(|b| inodes.contains(&(b.dev, b.ino)))
                .map(|b| b.bin)
                .collect(),
        };
        bins.sort_unstable();
        let this = Verdict {
            action: rule.action,
            rule_id: rule.id,
        };
        for &(first, last) in &rule.ports {
            for port in first..=last {
                for &bin in &bins {
                    let group = (bin, rule.proto, port);
                    add_net(
                        &mut net4,
                        &mut net6,
                        group,
                        rule.addr,
                        rule.prefix_len,
                        this,
                    );
                }
            }
        }
    }
    out.net4 = flatten_net(&net4);
    out.net6 = flatten_net(&net6);

    let mut listen: BTreeMap<(u8, u16), u32> = BTreeMap::new();
    for rule in &rules.listen {
        for &(first, last) in &rule.ports {
            for port in first..=last {
                listen.entry((rule.proto, port)).or_insert(rule.id);
            }
        }
    }
    out.listen = listen
        .into_iter()
        .map(|((proto, port), rule_id)| ListenEntry {
            proto,
            port,
            rule_id,
        })
        .collect();
    out.net_binaries.clone_from(&rules.net_binaries);
}

/// Merges `this` into the (binary, protocol, port) group's entry for `addr/prefix_len`.
fn add_net(
    groups4: &mut NetGroups<4>,
    groups6: &mut NetGroups<16>,
    group: (u16, u8, u16),
    addr: IpAddr,
    prefix_len: u8,
    this: Verdict,
) {
    let slot = match addr {
        IpAddr::V4(v4) => groups4
            .entry(group)
            .or_default()
            .entry((prefix_len, v4.octets()))
            .or_default(),
        IpAddr::V6(v6) => groups6
            .entry(group)
            .or_default()
            .entry((prefix_len, v6.octets()))
            .or_default(),
    };
    *slot = merge(*slot, this);
}

/// Merges each network entry with the shorter prefixes of its (protocol, port) group that
/// cover it, so the LPM trie's longest match carries every covering verdict.
fn flatten_net<const N: usize>(groups: &NetGroups<N>) -> Vec<NetEntry<N>> {
    let mut out = Vec::new();
    for (&(bin, proto, port), entries) in groups {
        let lengths: BTreeSet<u8> = entries.keys().map(|(len, _)| *len).collect();
        for (&(prefix_len, addr), own) in entries {
            let mut acc = *own;
            for &shorter in lengths.range(..prefix_len) {
                if let Some(found) = entries.get(&(shorter, mask_bytes(addr, shorter))) {
                    acc = merge(acc, *found);
                }
            }
            out.push(NetEntry {
                bin,
                proto,
                port,
                addr,
                prefix_len,
                verdict: acc,
            });
        }
    }
    out.sort();
    out
}

/// Zeroes the bits of `addr` after the first `prefix_len`.
#[must_use]
pub fn mask_bytes<const N: usize>(mut addr: [u8; N], prefix_len: u8) -> [u8; N] {
    for (index, byte) in addr.iter_mut().enumerate() {
        let start = index * 8;
        let keep = usize::from(prefix_len).saturating_sub(start).min(8);
        *byte &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
    }
    addr
}
