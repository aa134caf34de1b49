//! Two answers to "what happens to this exec, open, connect or listen?":
//!
//! - [`explain`] reads the policy's rules one by one with the language's own semantics (a
//!   general glob matcher, CIDR containment, port ranges) and reports every rule that
//!   matched and the one that decided. This is the definition.
//! - [`evaluate`] looks the query up in a [`CompiledPolicy`] the way the kernel side does
//!   (exact hash, longest prefix, longest suffix, four network groups).
//!
//! A property test checks they agree on random policies and inputs: that is the evidence
//! that the compiler's merging and key shapes are right.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nemoclaw_common::net::{
    BIN_ANY, PORT_ANY, PROTO_ANY, PROTO_TCP, PROTO_UDP, is_loopback4, is_loopback6,
};
use nemoclaw_common::rule::{ACTION_ALLOW, ACTION_DENY, RULE_DEFAULT_DENY, Verdict};
use nemoclaw_common::sandbox::controls;

use super::compile::{mask_bytes, merge};
use super::compiled::{
    CompiledPolicy, FS_READ, FS_WRITE, FsEntry, ListenEntry, NetBinary, RuleRef,
};
use super::inference::InferenceRules;
use super::pattern::{Shape, glob_matches};
use super::types::PrivilegeEscalation;

/// A policy's rules in semantic form, in rule-id order, with every fact read from the host
/// (`$HOME` expanded, programs and directories resolved, host names' addresses): the
/// output of `resolve`, the input of `lower`, `explain` and the lints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// `nemoclaw_common::sandbox::controls` bits: which sections are present.
    pub controls: u32,
    /// Where each rule came from; `table[i].id == i + 1`.
    pub table: Vec<RuleRef>,
    pub fs: Vec<FsRuleSpec>,
    pub exec: Vec<ExecRuleSpec>,
    pub net: Vec<NetRuleSpec>,
    pub listen: Vec<ListenRuleSpec>,
    pub privilege: Option<(u32, PrivilegeEscalation)>,
    /// `process.libraries` (or the defaults) as resolved `/dir/` keys; empty without a
    /// `process` section.
    pub library_dirs: Vec<String>,
    /// `process.anonymous_exec: deny`'s rule id; 0 where allowed.
    pub anonymous_exec_rule: u32,
    /// The executables network rules' `binaries` name, sorted by (dev, ino), each with its
    /// binary id (1-based, in order of first mention).
    pub net_binaries: Vec<NetBinary>,
    /// The shell `sh` resolves to in the sandbox PATH (with a `process` section), for the
    /// lints.
    pub shell: Option<ResolvedExe>,
    /// The compiled `inference` section (its router rule is in `net`); `None` without one.
    pub inference: Option<InferenceRules>,
}

/// An executable found on the host: its canonical path and kernel (dev, ino).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedExe {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

/// A filesystem rule: its expanded glob and which access bits it allows and denies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsRuleSpec {
    pub id: u32,
    pub pattern: String,
    pub shape: Shape,
    pub allow: u32,
    pub deny: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecMatch {
    /// A resolved executable.
    Inode { dev: u64, ino: u64, path: PathBuf },
    /// `/dir/` (or `/`): every path beneath.
    Dir(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRuleSpec {
    pub id: u32,
    pub action: u32,
    pub target: ExecMatch,
}

/// One (address, protocol) of a network rule; ports `(0, 0)` mean any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRuleSpec {
    pub id: u32,
    pub action: u32,
    pub proto: u8,
    pub ports: Vec<(u16, u16)>,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// `binaries`: the kernel (dev, ino) of each executable it applies to; `None` for every
    /// executable.
    pub binaries: Option<Vec<(u64, u64)>>,
}

/// A `network.listen` entry: the ports it opens on non-loopback addresses for one
/// protocol (`PROTO_ANY`: both); ports `(0, 0)` mean any (an unbound listener's port 0
/// included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenRuleSpec {
    pub id: u32,
    pub proto: u8,
    pub ports: Vec<(u16, u16)>,
}

/// An operation to judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Executing a file: its resolved path and kernel (dev, inode).
    Exec { path: PathBuf, dev: u64, ino: u64 },
    /// Opening a path (absolute, normalised) for reading, or for writing.
    Open { path: String, write: bool },
    /// Connecting (TCP) or sending (UDP) to an address, by the executable with kernel
    /// (dev, ino) `exe` (`None`: one that no `binaries` names).
    Connect {
        addr: IpAddr,
        port: u16,
        proto: u8,
        exe: Option<(u64, u64)>,
    },
    /// A listener on a local address: a TCP `listen` on a socket bound to `addr:port`
    /// (port 0: never bound, so `listen` picks an ephemeral port on every address), or a
    /// UDP bind to it (port 0: an ephemeral port, as every UDP client gets).
    Listen { addr: IpAddr, port: u16, proto: u8 },
}

/// Whether a listener is open without any `network.listen` entry: on a loopback address
/// (any port), or a UDP bind to an ephemeral port (port 0), which clients need.
#[must_use]
pub fn listen_open_by_default(addr: IpAddr, port: u16, proto: u8) -> bool {
    let loopback = match addr {
        IpAddr::V4(v4) => is_loopback4(v4.octets()),
        IpAddr::V6(v6) => is_loopback6(v6.octets()),
    };
    loopback || (proto == PROTO_UDP && port == PORT_ANY)
}

/// The outcome, and every rule that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// `ACTION_ALLOW` or `ACTION_DENY`; `rule_id` 0 when no rule matched.
    pub verdict: Verdict,
    /// False when the policy has no section for this control (everything allowed).
    pub restricted: bool,
    /// Matching rules as (id, action), in id order.
    pub matched: Vec<(u32, u32)>,
}

impl Decision {
    #[must_use]
    pub fn allowed(&self) -> bool {
        self.verdict.action == ACTION_ALLOW
    }

    /// A human explanation citing rules from `table` (`CompiledPolicy::rules`).
    #[must_use]
    pub fn describe(&self, table: &[RuleRef]) -> String {
        let cite = |id: u32| -> String {
            table.iter().find(|r| r.id == id).map_or_else(
                || format!("rule {id}"),
                |r| {
                    format!(
                        "rule {id} ({} `{}` at {}:{}:{})",
                        r.section,
                        r.text,
                        r.file.display(),
                        r.line,
                        r.column
                    )
                },
            )
        };
        let verb = if self.allowed() { "ALLOW" } else { "DENY" };
        if !self.restricted {
            return format!(
                "{verb}: the policy has no section for this control, so it is unrestricted"
            );
        }
        let mut out = if self.verdict.rule_id == RULE_DEFAULT_DENY && self.allowed() {
            format!(
                "{verb}: listeners on loopback, and UDP binds to an ephemeral port, are open \
                 without a network.listen entry"
            )
        } else if self.verdict.rule_id == RULE_DEFAULT_DENY {
            format!("{verb}: no rule matches; deny by default")
        } else {
            let why = if self.verdict.action == ACTION_DENY {
                "an explicit deny beats any allow"
            } else {
                "allowed and no deny matches"
            };
            format!("{verb} by {} — {why}", cite(self.verdict.rule_id))
        };
        let others: Vec<_> = self
            .matched
            .iter()
            .filter(|(id, _)| *id != self.verdict.rule_id)
            .collect();
        for (id, action) in others {
            let kind = if *action == ACTION_DENY {
                "deny"
            } else {
                "allow"
            };
            let _ = write!(out, "\n  also matched ({kind}): {}", cite(*id));
        }
        out
    }
}

/// Judges `query` by reading the rules (the language's definition).
#[must_use]
pub fn explain(rules: &RuleSet, query: &Query) -> Decision {
    let (control, mut matched) = matching_rules(rules, query);
    matched.sort_unstable();
    matched.dedup();
    let restricted = rules.controls & control != 0;
    let open_by_default = match query {
        Query::Listen { addr, port, proto } => listen_open_by_default(*addr, *port, *proto),
        _ => false,
    };
    let verdict = if restricted && open_by_default {
        Verdict {
            action: ACTION_ALLOW,
            rule_id: RULE_DEFAULT_DENY,
        }
    } else if restricted {
        decide(&matched)
    } else {
        Verdict {
            action: ACTION_ALLOW,
            rule_id: RULE_DEFAULT_DENY,
        }
    };
    Decision {
        verdict,
        restricted,
        matched,
    }
}

/// The control that judges `query`, and the rules that match it as (id, action), in rule
/// order.
fn matching_rules(rules: &RuleSet, query: &Query) -> (u32, Vec<(u32, u32)>) {
    match query {
        Query::Exec { path, dev, ino } => (controls::EXEC, exec_matches(rules, path, *dev, *ino)),
        Query::Open { path, write } => (controls::FS, open_matches(rules, path, *write)),
        Query::Connect {
            addr,
            port,
            proto,
            exe,
        } => (
            controls::NET,
            connect_matches(rules, *addr, *port, *proto, *exe),
        ),
        Query::Listen { addr, port, proto } => {
            let matched = if listen_open_by_default(*addr, *port, *proto) {
                Vec::new()
            } else {
                listen_matches(rules, *port, *proto)
            };
            (controls::NET, matched)
        }
    }
}

/// The process rules matching the executable at `path` with kernel (`dev`, `ino`).
fn exec_matches(rules: &RuleSet, path: &Path, dev: u64, ino: u64) -> Vec<(u32, u32)> {
    rules
        .exec
        .iter()
        .filter(|rule| match &rule.target {
            ExecMatch::Inode { dev: d, ino: i, .. } => *d == dev && *i == ino,
            ExecMatch::Dir(dir) => path.to_str().is_some_and(|p| p.starts_with(dir.as_str())),
        })
        .map(|rule| (rule.id, rule.action))
        .collect()
}

/// The filesystem rules that allow or deny opening `path` for reading or for writing.
fn open_matches(rules: &RuleSet, path: &str, write: bool) -> Vec<(u32, u32)> {
    let bit = if write { FS_WRITE } else { FS_READ };
    rules
        .fs
        .iter()
        .filter(|rule| glob_matches(&rule.pattern, path))
        .filter_map(|rule| {
            if rule.deny & bit != 0 {
                Some((rule.id, ACTION_DENY))
            } else if rule.allow & bit != 0 {
                Some((rule.id, ACTION_ALLOW))
            } else {
                None
            }
        })
        .collect()
}

/// The network rules matching a connection to `addr:port` over `proto` by `exe`.
fn connect_matches(
    rules: &RuleSet,
    addr: IpAddr,
    port: u16,
    proto: u8,
    exe: Option<(u64, u64)>,
) -> Vec<(u32, u32)> {
    let addr = unmap_query(addr);
    rules
        .net
        .iter()
        .filter(|rule| {
            let same_family = addr.is_ipv4() == rule.addr.is_ipv4();
            let in_net = same_family && mask_ip(addr, rule.prefix_len) == rule.addr;
            let proto_ok = rule.proto == PROTO_ANY || rule.proto == proto;
            let binary_ok = rule
                .binaries
                .as_ref()
                .is_none_or(|list| exe.is_some_and(|e| list.contains(&e)));
            in_net && proto_ok && port_in(&rule.ports, port) && binary_ok
        })
        .map(|rule| (rule.id, rule.action))
        .collect()
}

/// The `network.listen` entries opening `port` for `proto` (on a non-loopback address).
fn listen_matches(rules: &RuleSet, port: u16, proto: u8) -> Vec<(u32, u32)> {
    rules
        .listen
        .iter()
        .filter(|rule| {
            (rule.proto == PROTO_ANY || rule.proto == proto) && port_in(&rule.ports, port)
        })
        .map(|rule| (rule.id, ACTION_ALLOW))
        .collect()
}

/// Whether `port` is in one of `ranges` (`(PORT_ANY, PORT_ANY)`: every port).
fn port_in(ranges: &[(u16, u16)], port: u16) -> bool {
    ranges.iter().any(|&(first, last)| {
        (first, last) == (PORT_ANY, PORT_ANY) || (first..=last).contains(&port)
    })
}

/// The verdict of the `matched` rules of a restricted control: an explicit deny beats any
/// allow; deny by default when none matched.
fn decide(matched: &[(u32, u32)]) -> Verdict {
    let decided = matched
        .iter()
        .fold(Verdict::default(), |acc, &(id, action)| {
            merge(
                acc,
                Verdict {
                    action,
                    rule_id: id,
                },
            )
        });
    if decided.action == 0 {
        Verdict {
            action: ACTION_DENY,
            rule_id: RULE_DEFAULT_DENY,
        }
    } else {
        decided
    }
}

/// Judges `query` by looking it up in the compiled entries the way the kernel side does.
#[must_use]
pub fn evaluate(policy: &CompiledPolicy, query: &Query) -> Verdict {
    let (control, found) = match query {
        Query::Exec { path, dev, ino } => {
            let by_inode = policy
                .exec
                .binary_search_by(|e| (e.dev, e.ino).cmp(&(*dev, *ino)))
                .ok()
                .map_or_else(Verdict::default, |i| policy.exec[i].verdict);
            let path = path.to_string_lossy();
            let by_path = longest_prefix(&policy.exec_prefix, &path, |e| &e.path)
                .map_or_else(Verdict::default, |e| e.verdict);
            (controls::EXEC, merge(by_inode, by_path))
        }
        Query::Open { path, write } => {
            let pick = |entry: &FsEntry| if *write { entry.write } else { entry.read };
            let found = if let Ok(index) = policy
                .fs_exact
                .binary_search_by(|e| e.path.as_str().cmp(path))
            {
                pick(&policy.fs_exact[index])
            } else {
                let prefix = longest_prefix(&policy.fs_prefix, path, |e| &e.path)
                    .map_or_else(Verdict::default, pick);
                let suffix =
                    longest_suffix(&policy.fs_suffix, path).map_or_else(Verdict::default, pick);
                merge(prefix, suffix)
            };
            (controls::FS, found)
        }
        Query::Connect {
            addr,
            port,
            proto,
            exe,
        } => {
            let mut found = Verdict::default();
            let own = exe.and_then(|(dev, ino)| {
                policy
                    .net_binaries
                    .iter()
                    .find(|b| (b.dev, b.ino) == (dev, ino))
                    .map(|b| b.bin)
            });
            for bin in std::iter::once(BIN_ANY).chain(own) {
                for group_proto in [*proto, PROTO_ANY] {
                    for group_port in [*port, PORT_ANY] {
                        let group = (bin, group_proto, group_port);
                        let best = match unmap_query(*addr) {
                            IpAddr::V4(v4) => longest_net(&policy.net4, group, v4.octets()),
                            IpAddr::V6(v6) => longest_net(&policy.net6, group, v6.octets()),
                        };
                        found = merge(found, best);
                    }
                }
            }
            (controls::NET, found)
        }
        Query::Listen { addr, port, proto } => {
            let found = if listen_open_by_default(*addr, *port, *proto) {
                Verdict {
                    action: ACTION_ALLOW,
                    rule_id: RULE_DEFAULT_DENY,
                }
            } else {
                listen_lookup(&policy.listen, *proto, *port)
            };
            (controls::NET, found)
        }
    };
    if policy.controls & control == 0 {
        Verdict {
            action: ACTION_ALLOW,
            rule_id: RULE_DEFAULT_DENY,
        }
    } else if found.action == 0 {
        Verdict {
            action: ACTION_DENY,
            rule_id: RULE_DEFAULT_DENY,
        }
    } else {
        found
    }
}

/// The entry with the longest key that is a byte prefix of `path`, as the kernel's LPM trie
/// answers.
fn longest_prefix<'a, T>(
    entries: &'a [T],
    path: &str,
    key: impl Fn(&T) -> &String,
) -> Option<&'a T> {
    // Every byte length, as the kernel's trie compares bytes (`/dir/` keys and the byte
    // prefixes of `/dir/name*/**` alike), longest first.
    (1..=path.len())
        .rev()
        .filter(|end| path.is_char_boundary(*end))
        .find_map(|end| {
            let wanted = &path[..end];
            entries
                .binary_search_by(|e| key(e).as_str().cmp(wanted))
                .ok()
                .map(|i| &entries[i])
        })
}

/// The entry with the longest key that `path` ends with (LPM over the reversed path).
fn longest_suffix<'a>(entries: &'a [FsEntry], path: &str) -> Option<&'a FsEntry> {
    (0..path.len())
        .filter(|i| path.is_char_boundary(*i))
        .find_map(|start| {
            let wanted = &path[start..];
            entries
                .binary_search_by(|e| e.path.as_str().cmp(wanted))
                .ok()
                .map(|i| &entries[i])
        })
}

fn longest_net<const N: usize>(
    entries: &[super::compiled::NetEntry<N>],
    (bin, proto, port): (u16, u8, u16),
    addr: [u8; N],
) -> Verdict {
    entries
        .iter()
        .filter(|e| {
            e.bin == bin
                && e.proto == proto
                && e.port == port
                && mask_bytes(addr, e.prefix_len) == e.addr
        })
        .max_by_key(|e| e.prefix_len)
        .map_or_else(Verdict::default, |e| e.verdict)
}

/// The four `NET_LISTEN` keys of a listener, as the kernel side looks them up: an allow
/// citing the lowest rule id found, or nothing.
fn listen_lookup(entries: &[ListenEntry], proto: u8, port: u16) -> Verdict {
    let mut found = Verdict::default();
    for key in [
        (proto, port),
        (proto, PORT_ANY),
        (PROTO_ANY, port),
        (PROTO_ANY, PORT_ANY),
    ] {
        if let Ok(index) = entries.binary_search_by(|e| (e.proto, e.port).cmp(&key)) {
            found = merge(
                found,
                Verdict {
                    action: ACTION_ALLOW,
                    rule_id: entries[index].rule_id,
                },
            );
        }
    }
    found
}

fn unmap_query(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

fn mask_ip(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(mask_bytes(v4.octets(), prefix_len).into()),
        IpAddr::V6(v6) => IpAddr::V6(mask_bytes(v6.octets(), prefix_len).into()),
    }
}

/// `PROTO_TCP` or `PROTO_UDP` from a flag, for the CLI.
#[must_use]
pub const fn proto_of(udp: bool) -> u8 {
    if udp { PROTO_UDP } else { PROTO_TCP }
}

/// `explain --category NAME`: what the privacy router does with a request in which the
/// category was found, the rule that says so, and the backend that serves it. `Err` when
/// the name is neither a built-in category nor one the policy defines.
pub fn explain_category(
    rules: &InferenceRules,
    name: &str,
) -> Result<(super::inference::Action, String), String> {
    use super::inference::Action;
    use nemoclaw_detect::Category;

    let category = Category::try_from(name.to_owned())?;
    if let Category::Custom(custom) = &category
        && !rules.keywords.contains_key(custom)
        && !rules.patterns.contains_key(custom)
    {
        let builtins = Category::BUILTIN
            .iter()
            .map(Category::name)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "`{custom}` is not a built-in category ({builtins}) nor one this policy defines in \
             inference.detect"
        ));
    }
    let decided = rules.action_for(&category);
    let listed = rules.categories.contains_key(&category);
    let rule = if listed {
        format!("rule {}", decided.rule)
    } else {
        format!("not listed: inference.default, rule {}", decided.rule)
    };
    let served = |choice: &super::inference::BackendChoice| match &choice.model {
        Some(model) => format!("served by {}/{model}", choice.backend),
        None => format!("served by {} (the caller's model)", choice.backend),
    };
    let injected = match decided.on_reply() {
        super::inference::OnReply::Mask => "values the request did not carry are masked",
        super::inference::OnReply::Pass => "values the request did not carry pass",
    };
    // `injected` is said for `mask` always, for the others only when written.
    let written = |served: String| match decided.injected {
        Some(_) => format!("{served}; {injected} in replies"),
        None => served,
    };
    let outcome = match (decided.action, &rules.local) {
        (Action::Allow, _) => written(served(&rules.cloud)),
        (Action::Mask, _) => format!(
            "{}, each value replaced by a placeholder ({}); {injected} in replies",
            served(&rules.cloud),
            if decided.restores(&category) {
                "restored in the reply"
            } else {
                "not restored"
            },
        ),
        (Action::Local, Some(local)) => written(served(local)),
        (Action::Local, None) => "refused: no local backend".to_owned(),
        (Action::Block, _) => "the request is refused".to_owned(),
    };
    Ok((
        decided.action,
        format!(
            "category {category}: {} ({rule}), {outcome}",
            decided.action.name()
        ),
    ))
}
