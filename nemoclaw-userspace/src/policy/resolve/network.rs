//! `network`: host names resolved to addresses (IPv4-mapped IPv6 made IPv4, as the kernel
//! judges it), port lists as the kernel keys them, `binaries` identified by kernel
//! (dev, ino) and numbered, and `network.listen` entries.

use std::net::IpAddr;
use std::path::PathBuf;

use nemoclaw_common::net::{
    BIN_ANY, MAX_NET_BINARIES, MAX_NET_RULES, PORT_ANY, PROTO_ANY, PROTO_TCP, PROTO_UDP,
};
use nemoclaw_common::rule::{ACTION_ALLOW, ACTION_DENY};
use nemoclaw_common::sandbox::controls;

use super::Resolving;
use crate::policy::explain::{ListenRuleSpec, NetRuleSpec};
use crate::policy::types::{Host, ListenRule, Located, NetRule, Policy, Ports, Protocol};

/// The control bit: set by a `network` section.
pub(super) fn control(policy: &Policy) -> u32 {
    if policy.network.is_some() {
        controls::NET
    } else {
        0
    }
}

impl Resolving<'_, '_> {
    /// The binary ids a network rule applies to: `[BIN_ANY]` without `binaries`, else one id
    /// per distinct executable its names and paths resolve to (by inode, like `process`
    /// rules). `None` when the rule emits nothing: an allow whose binaries all fail to
    /// resolve (a warning), or any deny with a binary that does not resolve (an error: it
    /// would weaken the policy).
    fn net_binaries(
        &mut self,
        rule: &Located<NetRule>,
        action: u32,
        binaries: &[String],
    ) -> Option<Vec<u16>> {
        if binaries.is_empty() {
            return Some(vec![BIN_ANY]);
        }
        let mut ids = Vec::new();
        let mut missing = false;
        for (index, written) in binaries.iter().enumerate() {
            let field = format!("{}.binaries[{index}]", rule.field);
            let expanded = expand_home(written, self.home);
            let candidates = if expanded.starts_with('/') {
                if expanded.contains(['*', '?', '[', '{'])
                    || expanded.contains("/../")
                    || expanded.contains("/./")
                {
                    self.error(rule.mark, &field, format!("{written:?}: a binary is a program name or an absolute path without globs"));
                    return None;
                }
                let path = PathBuf::from(&expanded);
                if self.env.is_executable_file(&path) {
                    vec![path]
                } else {
                    Vec::new()
                }
            } else if written.contains('/')
                || written.is_empty()
                || written.contains('$')
                || written.starts_with('~')
            {
                self.error(rule.mark, &field, format!("{written:?}: a binary is a program name (looked up in PATH) or an absolute path"));
                return None;
            } else {
                let hits: Vec<PathBuf> = self
                    .env
                    .path
                    .iter()
                    .map(|dir| dir.join(written))
                    .filter(|p| self.env.is_executable_file(p))
                    .collect();
                if action == ACTION_ALLOW {
                    hits.into_iter().take(1).collect()
                } else {
                    hits
                }
            };
            let mut resolved = false;
            for candidate in candidates {
                let Some((real, info)) = self.env.identify(&candidate) else {
                    continue;
                };
                let key = (info.dev, info.ino);
                let next = u16::try_from(self.net_bins.len() + 1).unwrap_or(u16::MAX);
                let (bin, _) = self.net_bins.entry(key).or_insert((next, real));
                if !ids.contains(bin) {
                    ids.push(*bin);
                }
                resolved = true;
            }
            if !resolved {
                missing = true;
                if action == ACTION_ALLOW {
                    self.warn(rule.mark, &field, format!("{written:?} is not an executable file (or not in PATH): nothing allowed for it"));
                } else {
                    self.error(rule.mark, &field, format!("{written:?} is not an executable file (or not in PATH): a deny for a program that does not exist would not cover it once installed; name an existing program"));
                }
            }
        }
        if self.net_bins.len() >= usize::from(u16::MAX)
            || self.net_bins.len() > MAX_NET_BINARIES as usize
        {
            self.error(
                rule.mark,
                &rule.field,
                format!("more than {MAX_NET_BINARIES} distinct binaries in network rules"),
            );
            return None;
        }
        if action == ACTION_DENY && missing {
            return None;
        }
        if ids.is_empty() {
            return None;
        }
        ids.sort_unstable();
        Some(ids)
    }

    /// The (dev, ino) of the executables with these binary ids.
    fn inodes_of(&self, bins: &[u16]) -> Vec<(u64, u64)> {
        self.net_bins
            .iter()
            .filter(|(_, (bin, _))| bins.contains(bin))
            .map(|(&key, _)| key)
            .collect()
    }

    pub(super) fn net_rule(&mut self, rule: &Located<NetRule>, action: u32, id: u32) {
        let NetRule {
            host,
            ports,
            protocol,
            binaries,
        } = &rule.value;
        let Some(bins) = self.net_binaries(rule, action, binaries) else {
            return;
        };
        let nets: Vec<(IpAddr, u8)> = match host {
            Host::Any => vec![(IpAddr::V4(0.into()), 0), (IpAddr::V6(0.into()), 0)],
            Host::Net { addr, prefix_len } => vec![(*addr, *prefix_len)],
            Host::Name(name) => match self.env.resolver.resolve(name) {
                Ok(addrs) if !addrs.is_empty() => addrs
                    .into_iter()
                    .map(|addr| (addr, if addr.is_ipv4() { 32 } else { 128 }))
                    .collect(),
                outcome => {
                    let why = match outcome {
                        Err(error) => error,
                        Ok(_) => "no addresses".to_owned(),
                    };
                    if action == ACTION_ALLOW {
                        self.warn(
                            rule.mark,
                            &rule.field,
                            format!("{name} does not resolve ({why}): nothing allowed for it"),
                        );
                    } else {
                        self.error(rule.mark, &rule.field, format!("{name} does not resolve ({why}): a deny that matches nothing would weaken the policy; use an address or CIDR"));
                    }
                    return;
                }
            },
        };
        let protos: &[u8] = match protocol {
            Protocol::Tcp => &[PROTO_TCP],
            Protocol::Udp => &[PROTO_UDP],
            Protocol::Any => &[PROTO_ANY],
        };
        let port_list = port_ranges(ports);
        let expanded: usize = port_list
            .iter()
            .map(|&(f, l)| usize::from(l - f) + 1)
            .sum::<usize>()
            * nets.len()
            * bins.len();
        if expanded > MAX_NET_RULES as usize {
            self.error(rule.mark, &rule.field, format!("expands to {expanded} map entries (addresses x ports); the kernel map holds {MAX_NET_RULES}"));
            return;
        }
        for &(addr, prefix_len) in &nets {
            let (addr, prefix_len) = unmap(addr, prefix_len);
            for &proto in protos {
                let ports = port_list.clone();
                let binaries = (!binaries.is_empty()).then(|| self.inodes_of(&bins));
                self.rules.net.push(NetRuleSpec {
                    id,
                    action,
                    proto,
                    ports,
                    addr,
                    prefix_len,
                    binaries,
                });
            }
        }
    }

    /// A `network.listen` entry: its protocol and port ranges.
    pub(super) fn listen_rule(&mut self, rule: &Located<ListenRule>, id: u32) {
        let proto = match rule.value.protocol {
            Protocol::Tcp => PROTO_TCP,
            Protocol::Udp => PROTO_UDP,
            Protocol::Any => PROTO_ANY,
        };
        self.rules.listen.push(ListenRuleSpec {
            id,
            proto,
            ports: port_ranges(&rule.value.ports),
        });
    }
}

/// Port ranges as the kernel keys them: any port (and the full range `1-65535`) is
/// `(PORT_ANY, PORT_ANY)`.
fn port_ranges(ports: &Ports) -> Vec<(u16, u16)> {
    match ports {
        Ports::Any => vec![(PORT_ANY, PORT_ANY)],
        Ports::Ranges(ranges) => ranges
            .iter()
            .map(|&(first, last)| {
                if (first, last) == (1, u16::MAX) {
                    (PORT_ANY, PORT_ANY)
                } else {
                    (first, last)
                }
            })
            .collect(),
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, prefix >= 96) becomes IPv4: the kernel judges such
/// connections as IPv4.
pub(super) fn unmap(addr: IpAddr, prefix_len: u8) -> (IpAddr, u8) {
    if let IpAddr::V6(v6) = addr
        && prefix_len >= 96
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        return (IpAddr::V4(v4), prefix_len - 96);
    }
    (addr, prefix_len)
}

/// `$HOME`, `${HOME}` or `~` at the start of a binary's path, expanded.
fn expand_home(written: &str, home: &str) -> String {
    for lead in ["${HOME}", "$HOME", "~"] {
        if let Some(rest) = written.strip_prefix(lead)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("{home}{rest}");
        }
    }
    written.to_owned()
}
