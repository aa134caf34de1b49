//! Network control: cgroup `sock_addr` hooks (connect4/6, sendmsg4/6) attached to each
//! sandbox cgroup. Deny tries are consulted first (an explicit deny beats any allow), then
//! allow tries; nothing matching means deny. IPv4-mapped IPv6 is judged as IPv4.

use aya_ebpf::{
    maps::lpm_trie::Key,
    programs::{LsmContext, SockAddrContext},
};
use nemoclaw_common::{
    event::counter,
    net::{FIXED_PREFIX_BITS, Net4Key, Net6Key, PORT_ANY, PROTO_ANY},
    rule::{RULE_DEFAULT_DENY, Verdict},
    sandbox::controls,
};

use crate::{
    event,
    maps::{NET4_ALLOW, NET4_DENY, NET6_ALLOW, NET6_DENY},
    sandbox,
};

/// `sock_addr` programs return 1 to allow and 0 to reject (the task sees `EPERM`).
const ALLOW: i32 = 1;
const REJECT: i32 = 0;
const EPERM: u32 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

struct Target {
    proto: u8,
    port: u16,
}

/// Looks (proto, port), (proto, any), (any, port), (any, any) up in one trie.
#[inline(always)]
fn lookup<K: Copy>(
    target: &Target,
    make: impl Fn(u8, u16) -> Key<K>,
    get: impl Fn(&Key<K>) -> Option<Verdict>,
) -> Option<Verdict> {
    for proto in [target.proto, PROTO_ANY] {
        for port in [target.port, PORT_ANY] {
            if let Some(v) = get(&make(proto, port)) {
                return Some(v);
            }
        }
    }
    None
}

fn target(ctx: &SockAddrContext) -> Target {
    // SAFETY: the context pointer is valid for the program's run.
    let sa = unsafe { &*ctx.sock_addr };
    Target {
        proto: sa.protocol as u8,
        port: u16::from_be(sa.user_port as u16),
    }
}

/// Common decision after the address-specific lookups.
#[inline(always)]
fn decide(
    hook: u32,
    cgroup_id: u64,
    slot: u32,
    deny: Option<Verdict>,
    allow: Option<Verdict>,
    fill: impl FnOnce(&mut nemoclaw_common::event::DenyEvent),
) -> i32 {
    let rule_id = match (deny, allow) {
        (Some(d), _) => d.rule_id,
        (None, Some(_)) => return ALLOW,
        (None, None) => RULE_DEFAULT_DENY,
    };
    event::emit(hook, cgroup_id, slot, rule_id, EPERM, fill);
    REJECT
}

fn judge_v4_addr(ctx: &SockAddrContext, hook: u32, addr: [u8; 4]) -> i32 {
    let (cgroup_id, entry) = sandbox::current();
    // These programs are attached only to sandbox cgroups: a task here without an entry
    // is in a descendant cgroup, which we cannot judge. Deny (fail closed).
    let Some(sandbox) = entry else {
        event::emit(hook, cgroup_id, 0, RULE_DEFAULT_DENY, EPERM, |_| {});
        return REJECT;
    };
    if sandbox.controls & controls::NET == 0 {
        return ALLOW;
    }
    event::count(counter::JUDGED);
    let t = target(ctx);
    let slot = sandbox.slot;
    let make = |proto, port| {
        Key::new(
            FIXED_PREFIX_BITS + 32,
            Net4Key::new(slot, proto, port, addr),
        )
    };
    let deny = lookup(&t, make, |k| NET4_DENY.get(k).copied());
    let allow = if deny.is_none() {
        lookup(&t, make, |k| NET4_ALLOW.get(k).copied())
    } else {
        None
    };
    decide(hook, cgroup_id, slot, deny, allow, |ev| {
        ev.family = AF_INET;
        ev.port = t.port;
        ev.proto = u32::from(t.proto);
        ev.addr[..4].copy_from_slice(&addr);
    })
}

pub fn judge4(ctx: &SockAddrContext, hook: u32) -> i32 {
    // SAFETY: the context pointer is valid for the program's run.
    let ip = unsafe { (*ctx.sock_addr).user_ip4 };
    judge_v4_addr(ctx, hook, ip.to_ne_bytes())
}

pub fn judge6(ctx: &SockAddrContext, hook: u32) -> i32 {
    // SAFETY: the context pointer is valid for the program's run.
    let words = unsafe { (*ctx.sock_addr).user_ip6 };
    let mut addr = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    // ::ffff:a.b.c.d is IPv4 on the wire: judge it with the IPv4 rules.
    if addr[..10] == [0; 10] && addr[10] == 0xff && addr[11] == 0xff {
        return judge_v4_addr(ctx, hook, [addr[12], addr[13], addr[14], addr[15]]);
    }
    let (cgroup_id, entry) = sandbox::current();
    let Some(sandbox) = entry else {
        event::emit(hook, cgroup_id, 0, RULE_DEFAULT_DENY, EPERM, |_| {});
        return REJECT;
    };
    if sandbox.controls & controls::NET == 0 {
        return ALLOW;
    }
    event::count(counter::JUDGED);
    let t = target(ctx);
    let slot = sandbox.slot;
    let make = |proto, port| {
        Key::new(
            FIXED_PREFIX_BITS + 128,
            Net6Key::new(slot, proto, port, addr),
        )
    };
    let deny = lookup(&t, make, |k| NET6_DENY.get(k).copied());
    let allow = if deny.is_none() {
        lookup(&t, make, |k| NET6_ALLOW.get(k).copied())
    } else {
        None
    };
    decide(hook, cgroup_id, slot, deny, allow, |ev| {
        ev.family = AF_INET6;
        ev.port = t.port;
        ev.proto = u32::from(t.proto);
        ev.addr = addr;
    })
}

const AF_UNIX: i32 = 1;
const AF_NETLINK: i32 = 16;
const SOCK_STREAM: i32 = 1;
const SOCK_DGRAM: i32 = 2;
/// `SOCK_NONBLOCK` and `SOCK_CLOEXEC` ride in the type's high bits.
const SOCK_TYPE_MASK: i32 = 0xf;
const IPPROTO_TCP: i32 = 6;
const IPPROTO_UDP: i32 = 17;
const IPPROTO_MPTCP: i32 = 262;
const NETLINK_ROUTE: i32 = 0;

/// Whether the network rules can judge this kind of socket: TCP and UDP over IPv4/IPv6
/// (connect/sendmsg hooks), unix sockets, and route netlink (address and interface queries).
fn socket_kind_judged(family: i32, kind: i32, protocol: i32) -> bool {
    match family {
        AF_UNIX => true,
        f if f == i32::from(AF_INET) || f == i32::from(AF_INET6) => match kind {
            SOCK_STREAM => matches!(protocol, 0 | IPPROTO_TCP | IPPROTO_MPTCP),
            SOCK_DGRAM => matches!(protocol, 0 | IPPROTO_UDP),
            _ => false,
        },
        AF_NETLINK => protocol == NETLINK_ROUTE,
        _ => false,
    }
}

pub fn socket_create(ctx: &LsmContext) -> i32 {
    let family: i32 = ctx.arg(0);
    let kind: i32 = ctx.arg(1);
    let protocol: i32 = ctx.arg(2);
    let kern: i32 = ctx.arg(3);
    let retval: i32 = ctx.arg(4);
    if retval != 0 {
        return retval;
    }
    if kern != 0 {
        return 0;
    }
    let (cgroup_id, Some(sandbox)) = sandbox::current() else {
        return 0;
    };
    if sandbox.controls & controls::SOCKETS == 0 {
        return 0;
    }
    event::count(counter::JUDGED);
    if socket_kind_judged(family, kind & SOCK_TYPE_MASK, protocol) {
        return 0;
    }
    event::emit(
        nemoclaw_common::event::hook::SOCKET_CREATE,
        cgroup_id,
        sandbox.slot,
        RULE_DEFAULT_DENY,
        EPERM,
        |ev| {
            ev.family = family as u16;
            ev.proto = protocol as u32;
            ev.arg = (kind & SOCK_TYPE_MASK) as u64;
        },
    );
    -(EPERM as i32)
}
