//! Network control: cgroup `sock_addr` hooks (connect4/6, sendmsg4/6, bind4/6) and
//! `sock_create` attached to each sandbox cgroup, and the LSM hooks for unix sockets, socket
//! kinds, listeners (`socket_listen`) and per-packet destination overrides (routing headers).
//!
//! A destination is looked up in one LPM trie per family, in every group that can match
//! (exact/any protocol x exact/any port, for any binary and for the task's executable),
//! skipping groups the slot has no entries in (`NET_SLOT_FLAGS`); the verdicts are merged
//! (an explicit deny beats any allow, then the lower rule id); nothing matching means
//! deny. IPv4-mapped IPv6 is judged as IPv4.
#![warn(clippy::missing_docs_in_private_items)]

use aya_ebpf::{
    maps::{LpmTrie, lpm_trie::Key},
    programs::{LsmContext, SockAddrContext, SockContext, SockoptContext},
};
use nemoclaw_common::{
    event::{DenyEvent, counter},
    exec::ExecKey,
    net::{
        BIN_ANY, FIXED_PREFIX_BITS, ListenKey, Net4Key, Net6Key, PER_BINARY_GROUPS, PORT_ANY,
        PROTO_ANY, PROTO_TCP, is_loopback4, is_loopback6, port_bit,
    },
    rule::{ACTION_ALLOW, RULE_DEFAULT_DENY, Verdict, merge},
    sandbox::{SandboxEntry, controls},
};

use crate::{
    event, kernel,
    maps::{NET_BINARIES, NET_LISTEN, NET_SANDBOX, NET_SLOT_FLAGS, NET4, NET6},
    sandbox,
};

/// `sock_addr` programs return 1 to allow and 0 to reject (the task sees `EPERM`).
const ALLOW: i32 = 1;
/// `sock_addr` programs: reject.
const REJECT: i32 = 0;
/// `EPERM`, as deny events record it.
const EPERM: u32 = 1;
/// An LSM program's refusal with `EPERM`.
const LSM_EPERM: i32 = -1;
/// `AF_INET`.
const AF_INET: u16 = 2;
/// `AF_INET6`.
const AF_INET6: u16 = 10;

/// Whether the `sock_addr` programs are attached to each sandbox's own cgroup, whose local
/// storage (`NET_SANDBOX`) then names the sandbox (1, the default: `nemoclaw run`), or above
/// the sandboxes (0: the daemon), where they go straight to the registry. Userspace sets it
/// before load (`.rodata`, like the struct offsets).
#[unsafe(no_mangle)]
static NET_SANDBOX_IN_STORAGE: u64 = 1;

/// A trie key of either family, built once per destination; each group's lookup rewrites
/// only its (binary id, protocol, port) with [`TrieKey::set_group`].
#[repr(C, align(8))]
struct TrieKey<K>(Key<K>);

/// Where the group fields sit in a `Key<Net4Key>` and a `Key<Net6Key>` (the same place).
const BIN_OFF: usize = 4 + core::mem::offset_of!(Net4Key, bin);
/// See [`BIN_OFF`].
const PROTO_OFF: usize = 4 + core::mem::offset_of!(Net4Key, proto);
/// See [`BIN_OFF`].
const PORT_OFF: usize = 4 + core::mem::offset_of!(Net4Key, port);
const _: () = assert!(
    BIN_OFF.is_multiple_of(2)
        && PORT_OFF.is_multiple_of(2)
        && core::mem::offset_of!(Key<Net4Key>, data) == 4
        && core::mem::offset_of!(Key<Net6Key>, data) == 4
        && core::mem::offset_of!(Net6Key, bin) == core::mem::offset_of!(Net4Key, bin)
        && core::mem::offset_of!(Net6Key, proto) == core::mem::offset_of!(Net4Key, proto)
        && core::mem::offset_of!(Net6Key, port) == core::mem::offset_of!(Net4Key, port)
);

/// The key data whose group fields [`TrieKey::set_group`] knows where to write.
trait NetKey {}
impl NetKey for Net4Key {}
impl NetKey for Net6Key {}

impl<K: NetKey> TrieKey<K> {
    /// Volatile stores: LLVM would merge a wildcard group's zero bytes into a call to
    /// `memset` (a BPF subprogram, a call and a return per lookup).
    #[inline(always)]
    fn set_group(&mut self, bin: u16, proto: u8, port: u16) {
        let base = (&raw mut self.0).cast::<u8>();
        // SAFETY: in-bounds offsets of a `Key<Net4Key>` or `Key<Net6Key>` (asserted above);
        // the binary id and port are at even offsets of this 8-aligned key.
        unsafe {
            base.add(BIN_OFF).cast::<u16>().write_volatile(bin.to_be());
            base.add(PROTO_OFF).write_volatile(proto);
            base.add(PORT_OFF)
                .cast::<u16>()
                .write_volatile(port.to_be());
        }
    }
}

/// Merges the longest matches of the groups whose bits are set in `groups` (bit 0: exact
/// protocol and port, 1: exact protocol, any port, 2: any protocol, exact port, 3: both
/// wildcards; see `nemoclaw_common::net::group_bit`) for one binary id.
#[inline(always)]
fn lookup_groups<K: NetKey>(
    groups: u32,
    bin: u16,
    proto: u8,
    port: u16,
    key: &mut TrieKey<K>,
    get: impl Fn(&Key<K>) -> Option<Verdict>,
) -> Verdict {
    let mut found = Verdict {
        action: 0,
        rule_id: 0,
    };
    let candidates = [
        (1, proto, port),
        (2, proto, PORT_ANY),
        (4, PROTO_ANY, port),
        (8, PROTO_ANY, PORT_ANY),
    ];
    for (bit, g_proto, g_port) in candidates {
        if groups & bit != 0 {
            key.set_group(bin, g_proto, g_port);
            if let Some(v) = get(&key.0) {
                found = merge(found, v);
            }
        }
    }
    found
}

/// Looks one destination up: the any-binary groups, and, if the slot has per-binary
/// entries, the groups of the task's executable. `flags` are this family's 8 group bits.
/// Returns the verdict and the executable's (dev, ino) if it was read.
#[inline(always)]
fn lookup<K: NetKey>(
    slot: u32,
    flags: u32,
    proto: u8,
    port: u16,
    key: &mut TrieKey<K>,
    get: impl Fn(&Key<K>) -> Option<Verdict>,
) -> (Verdict, (u64, u64)) {
    let mut found = lookup_groups(flags & 0xf, BIN_ANY, proto, port, key, &get);
    let mut exe = (0, 0);
    if flags & 0xf0 != 0 {
        exe = kernel::current_exe_dev_ino();
        let exe_key = ExecKey {
            slot,
            _pad: 0,
            dev: exe.0,
            ino: exe.1,
        };
        if let Some(bin) = NET_BINARIES.get_ptr(&exe_key) {
            // SAFETY: a map value pointer from a successful lookup, read at once.
            let bin = unsafe { *bin } as u16;
            found = merge(
                found,
                lookup_groups((flags >> 4) & 0xf, bin, proto, port, key, &get),
            );
        }
    }
    (found, exe)
}

/// The sandbox's slot and this family's group flags, or the verdict without a lookup:
/// `Err(ALLOW)` for an unrestricted network, `Err(REJECT)` (after the event) for a task in
/// an unknown cgroup below a sandbox.
///
/// Attached to a sandbox's own cgroup, the slot comes from that cgroup's local storage
/// (`NET_SANDBOX`): no hash lookup on the hot path. Until userspace has written it (all
/// zeros, no `NET` bit), and always where the programs are attached above the sandboxes
/// ([`NET_SANDBOX_IN_STORAGE`] is 0: the storage there names no sandbox, so it is not even
/// read), the registry `SANDBOXES` decides, as the LSM hooks do.
#[inline(always)]
fn slot_flags(hook: u32, v6: bool) -> Result<(u32, u32, u64), i32> {
    let mut entry = SandboxEntry::default();
    // SAFETY: a plain read of a static; volatile so the compiler does not fold the default
    // (the verifier sees the frozen value and drops the dead branch).
    if unsafe { core::ptr::read_volatile(&raw const NET_SANDBOX_IN_STORAGE) } != 0 {
        // SAFETY: `bpf_get_local_storage` never fails for a program that uses the map.
        entry = unsafe { *NET_SANDBOX.get_ptr_mut() };
    }
    if entry.controls & controls::NET == 0 {
        let (cgroup_id, found) = sandbox::current();
        // These programs are attached only to sandbox cgroups: a task here without an
        // entry is in a cgroup we cannot judge. Deny (fail closed).
        let Some(found) = found else {
            event::emit(hook, cgroup_id, 0, RULE_DEFAULT_DENY, EPERM, |_| {});
            return Err(REJECT);
        };
        if found.controls & controls::NET == 0 {
            return Err(ALLOW);
        }
        entry = found;
    }
    event::count(counter::JUDGED);
    let (groups, ports) = match NET_SLOT_FLAGS.get(entry.slot) {
        Some(f) if v6 => ((f.groups >> 8) & 0xff, f.ports6),
        Some(f) => (f.groups & 0xff, f.ports4),
        None => (0, 0),
    };
    Ok((entry.slot, groups, ports))
}

/// Drops the exact-port groups (bits 0 and 2 of each half) when no exact-port entry of
/// the family has `port`'s bit.
#[inline(always)]
fn with_port(groups: u32, ports: u64, port: u16) -> u32 {
    if ports & port_bit(port) == 0 {
        groups & !0b0101_0101
    } else {
        groups
    }
}

/// After the lookups: allow, or emit the deny event (naming the executable) and reject.
#[inline(always)]
fn decide(
    hook: u32,
    slot: u32,
    found: Verdict,
    exe: (u64, u64),
    fill: impl FnOnce(&mut DenyEvent),
) -> i32 {
    if found.action == ACTION_ALLOW {
        return ALLOW;
    }
    let rule_id = if found.action == 0 {
        RULE_DEFAULT_DENY
    } else {
        found.rule_id
    };
    let (dev, ino) = if exe.1 == 0 {
        kernel::current_exe_dev_ino()
    } else {
        exe
    };
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { aya_ebpf::helpers::generated::bpf_get_current_cgroup_id() };
    event::emit(hook, cgroup_id, slot, rule_id, EPERM, |ev| {
        ev.dev = dev;
        ev.ino = ino;
        fill(ev);
    });
    REJECT
}

/// The destination's protocol and port (host order) of a `sock_addr` context.
fn target(ctx: &SockAddrContext) -> (u8, u16) {
    // SAFETY: the context pointer is valid for the program's run.
    let sa = unsafe { &*ctx.sock_addr };
    (sa.protocol as u8, u16::from_be(sa.user_port as u16))
}

/// Judges one destination: `addr` (4 bytes for IPv4, 16 for IPv6) in `trie`, whose keys
/// `key` builds from (slot, binary id, protocol, port, address). DNS goes to the slot's
/// gateway instead (`dns.rs`); `V6`: the program is an IPv6 one.
#[inline(always)]
fn judge<K: NetKey, const N: usize, const V6: bool>(
    ctx: &SockAddrContext,
    hook: u32,
    addr: [u8; N],
    key: impl Fn(u32, u16, u8, u16, [u8; N]) -> K,
    trie: &LpmTrie<K, Verdict>,
) -> i32 {
    let v6 = N == 16;
    let (slot, groups, ports) = match slot_flags(hook, v6) {
        Ok(found) => found,
        Err(verdict) => return verdict,
    };
    let (proto, port) = target(ctx);
    if crate::dns::is_dns(proto, port) && crate::dns::redirect::<V6>(ctx, slot) {
        return ALLOW;
    }
    let flags = with_port(groups, ports, port);
    let prefix_len = FIXED_PREFIX_BITS + 8 * N as u32;
    let mut key = TrieKey(Key::new(prefix_len, key(slot, BIN_ANY, proto, port, addr)));
    let (found, exe) = lookup(slot, flags, proto, port, &mut key, |k| trie.get(k).copied());
    decide(hook, slot, found, exe, |ev| {
        ev.family = if v6 { AF_INET6 } else { AF_INET };
        ev.port = port;
        ev.proto = u32::from(proto);
        ev.addr[..N].copy_from_slice(&addr);
    })
}

#[inline(always)]
/// Cgroup `connect4` (4.17+) and `sendmsg4` (4.18+): judges an IPv4 destination
/// (`user_ip4`, `user_port`).
pub fn judge4(ctx: &SockAddrContext, hook: u32) -> i32 {
    // SAFETY: the context pointer is valid for the program's run.
    let ip = unsafe { (*ctx.sock_addr).user_ip4 };
    judge::<_, 4, false>(ctx, hook, ip.to_ne_bytes(), Net4Key::new, &NET4)
}

#[inline(always)]
/// Cgroup `connect6` (4.17+) and `sendmsg6` (4.18+): judges an IPv6 destination; an
/// IPv4-mapped one as IPv4.
pub fn judge6(ctx: &SockAddrContext, hook: u32) -> i32 {
    // SAFETY: the context pointer is valid for the program's run.
    let words = unsafe { (*ctx.sock_addr).user_ip6 };
    let mut addr = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    // ::ffff:a.b.c.d is IPv4 on the wire: judge it with the IPv4 rules.
    if addr[..10] == [0; 10] && addr[10] == 0xff && addr[11] == 0xff {
        let v4 = [addr[12], addr[13], addr[14], addr[15]];
        return judge::<_, 4, true>(ctx, hook, v4, Net4Key::new, &NET4);
    }
    judge::<_, 16, true>(ctx, hook, addr, Net6Key::new, &NET6)
}

/// Whether a `network.listen` entry of `slot` opens `port` for `proto` on non-loopback
/// addresses: the exact key and the three wildcard keys. Port 0 (a listener that was never
/// bound) matches only the any-port entries.
#[inline(always)]
fn listen_opened(slot: u32, proto: u8, port: u16) -> bool {
    let keys = [
        (proto, port),
        (proto, PORT_ANY),
        (PROTO_ANY, port),
        (PROTO_ANY, PORT_ANY),
    ];
    for (g_proto, g_port) in keys {
        if NET_LISTEN
            .get_ptr(ListenKey::new(slot, g_proto, g_port))
            .is_some()
        {
            return true;
        }
    }
    false
}

/// A local address as judged by the inbound hooks: an IPv4-mapped IPv6 address becomes the
/// IPv4 address (its family, its 4 bytes first). Returns (family, address, is loopback).
#[inline(always)]
fn local_address(family: u16, addr: [u8; 16]) -> (u16, [u8; 16], bool) {
    if family == AF_INET {
        return (
            AF_INET,
            addr,
            is_loopback4([addr[0], addr[1], addr[2], addr[3]]),
        );
    }
    if addr[..10] == [0; 10] && addr[10] == 0xff && addr[11] == 0xff {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&addr[12..16]);
        return (
            AF_INET,
            v4,
            is_loopback4([addr[12], addr[13], addr[14], addr[15]]),
        );
    }
    (AF_INET6, addr, is_loopback6(addr))
}

/// Cgroup `bind4`/`bind6` (every kernel): in a sandbox with a network section, binding a
/// non-loopback address (`0.0.0.0` and `::` included) to a port other than 0 needs a
/// `network.listen` entry for the port and protocol. Loopback addresses (any port) and port
/// 0 (the kernel picks an ephemeral port: a client's local address before connect, UDP)
/// stay allowed; a TCP socket bound so is judged again when it listens (`socket_listen`,
/// where BPF LSM runs). A task in a cgroup below the attach point that no sandbox owns is
/// denied, as for connect.
#[inline(always)]
fn judge_bind(ctx: &SockAddrContext, hook: u32, family: u16, addr: [u8; 16]) -> i32 {
    let (mut proto, port) = target(ctx);
    // SAFETY: the context pointer is valid for the program's run.
    if unsafe { (*ctx.sock_addr).protocol } == IPPROTO_MPTCP as u32 {
        proto = PROTO_TCP;
    }
    let (family, addr, loopback) = local_address(family, addr);
    if loopback || port == 0 {
        return ALLOW;
    }
    let fill = |ev: &mut DenyEvent| {
        ev.family = family;
        ev.port = port;
        ev.proto = u32::from(proto);
        ev.addr = addr;
    };
    // The sandbox as connect finds it (the attach cgroup's storage, else the registry):
    // unrestricted without a network section, denied (with an event) in an unknown cgroup.
    let slot = match slot_flags(hook, family == AF_INET6) {
        Ok((slot, _, _)) => slot,
        Err(verdict) => return verdict,
    };
    if listen_opened(slot, proto, port) {
        return ALLOW;
    }
    let nothing = Verdict {
        action: 0,
        rule_id: 0,
    };
    decide(hook, slot, nothing, (0, 0), fill)
}

/// Cgroup `bind4`.
#[inline(always)]
pub fn bind4(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the context pointer is valid for the program's run.
    let ip = unsafe { (*ctx.sock_addr).user_ip4 };
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&ip.to_ne_bytes());
    judge_bind(ctx, nemoclaw_common::event::hook::BIND4, AF_INET, addr)
}

/// Cgroup `bind6` (an IPv4-mapped address is judged as IPv4).
#[inline(always)]
pub fn bind6(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the context pointer is valid for the program's run.
    let words = unsafe { (*ctx.sock_addr).user_ip6 };
    let mut addr = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        addr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    judge_bind(ctx, nemoclaw_common::event::hook::BIND6, AF_INET6, addr)
}

/// `security_socket_listen(struct socket *sock, int backlog)`: in a sandbox with a network
/// section, a TCP listener on a non-loopback address needs a `network.listen` entry for its
/// bound port. This is where a listener on an ephemeral port is judged: bound to port 0 (the
/// bind hooks allow it), the socket has its ephemeral port by now; never bound, it has port
/// 0 here and `listen` binds it to an ephemeral port on every address, which only an
/// any-port entry opens. Other families (unix) are not judged here.
pub fn socket_listen(ctx: &LsmContext) -> i32 {
    let sock = ctx.arg::<*const core::ffi::c_void>(0) as u64;
    let retval: i32 = ctx.arg(2);
    if retval != 0 {
        return retval;
    }
    let Some((cgroup_id, sandbox)) = net_sandbox() else {
        return 0;
    };
    // Only stream sockets listen (the kernel refuses the others after this hook).
    if i32::from(kernel::socket_type(sock as *const core::ffi::c_void)) != SOCK_STREAM {
        return 0;
    }
    let sk = kernel::read_u64_at(sock, &kernel::SOCKET_SK_OFF);
    let hook = nemoclaw_common::event::hook::SOCKET_LISTEN;
    let Ok((family, port, addr)) = kernel::sock_local(sk as *const core::ffi::c_void) else {
        // Unreadable: fail closed.
        event::emit(
            hook,
            cgroup_id,
            sandbox.slot,
            RULE_DEFAULT_DENY,
            EPERM,
            |_| {},
        );
        return LSM_EPERM;
    };
    if family != AF_INET && family != AF_INET6 {
        return 0;
    }
    event::count(counter::JUDGED);
    let (family, addr, loopback) = local_address(family, addr);
    if loopback || listen_opened(sandbox.slot, PROTO_TCP, port) {
        return 0;
    }
    let nothing = Verdict {
        action: 0,
        rule_id: 0,
    };
    decide(hook, sandbox.slot, nothing, (0, 0), |ev| {
        ev.family = family;
        ev.port = port;
        ev.proto = u32::from(PROTO_TCP);
        ev.addr = addr;
    });
    LSM_EPERM
}

// `lookup` reads the executable for bits 4..8 of each family's byte: the common crate's
// per-binary mask must say the same.
const _: () = assert!(PER_BINARY_GROUPS == 0xf0 | 0xf000);

/// `AF_UNIX`.
const AF_UNIX: i32 = 1;
/// `AF_NETLINK`.
const AF_NETLINK: i32 = 16;
/// `SOCK_STREAM`.
const SOCK_STREAM: i32 = 1;
/// `SOCK_DGRAM`.
const SOCK_DGRAM: i32 = 2;
/// `SOCK_NONBLOCK` and `SOCK_CLOEXEC` ride in the type's high bits.
const SOCK_TYPE_MASK: i32 = 0xf;
/// `IPPROTO_TCP`.
const IPPROTO_TCP: i32 = 6;
/// `IPPROTO_UDP`.
const IPPROTO_UDP: i32 = 17;
/// `IPPROTO_MPTCP`.
const IPPROTO_MPTCP: i32 = 262;
/// `NETLINK_ROUTE`.
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

/// Cgroup `sock_create` (every kernel, IPv4 and IPv6 sockets only): the socket kinds the
/// rules cannot judge (raw, ICMP "ping", SCTP, ...) are refused in a sandbox with a network
/// section, with or without BPF LSM. Where `socket_create` (LSM) runs, it refuses them
/// first and this program never sees them. Returns 1 to allow, 0 to refuse (`EPERM`).
pub fn sock_create(ctx: &SockContext) -> i32 {
    // SAFETY: the context pointer is valid for the program's run.
    let sk = unsafe { &*ctx.sock };
    let (family, kind, protocol) = (sk.family as i32, sk.type_ as i32, sk.protocol as i32);
    let (cgroup_id, Some(sandbox)) = sandbox::current() else {
        return ALLOW;
    };
    if sandbox.controls & controls::NET == 0 {
        return ALLOW;
    }
    event::count(counter::JUDGED);
    if socket_kind_judged(family, kind, protocol) {
        return ALLOW;
    }
    event::emit(
        nemoclaw_common::event::hook::SOCK_CREATE,
        cgroup_id,
        sandbox.slot,
        RULE_DEFAULT_DENY,
        EPERM,
        |ev| {
            ev.family = family as u16;
            ev.proto = protocol as u32;
            ev.arg = kind as u64;
        },
    );
    REJECT
}

/// LSM `socket_create(family, type, protocol, kern)` (BPF LSM, 5.7+): socket kinds the
/// network rules cannot judge are denied.
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

/// Socket option levels and the options that send a packet somewhere other than the address
/// `connect`/`sendmsg` was judged on: IPv6 routing headers (`IPV6_RTHDR`, RFC 2292's
/// `IPV6_2292RTHDR` and `IPV6_2292PKTOPTIONS`), the IPv6 next hop (`IPV6_NEXTHOP`), and IPv4
/// options (`IP_OPTIONS`, as ancillary data `IP_RETOPTS`), which carry source routes.
const SOL_IP: i32 = 0;
/// `SOL_IPV6`.
const SOL_IPV6: i32 = 41;
/// `IP_OPTIONS`.
const IP_OPTIONS: i32 = 4;
/// `IP_RETOPTS`.
const IP_RETOPTS: i32 = 7;
/// `IPV6_2292RTHDR`.
const IPV6_2292RTHDR: i32 = 5;
/// `IPV6_2292PKTOPTIONS`.
const IPV6_2292PKTOPTIONS: i32 = 6;
/// `IPV6_NEXTHOP`.
const IPV6_NEXTHOP: i32 = 9;
/// `IPV6_RTHDR`.
const IPV6_RTHDR: i32 = 57;

/// Whether `(level, name)` overrides a packet's destination (as a socket option or as
/// ancillary data).
#[inline(always)]
fn overrides_destination(level: i32, name: i32) -> bool {
    match level {
        SOL_IP => name == IP_OPTIONS || name == IP_RETOPTS,
        SOL_IPV6 => matches!(
            name,
            IPV6_RTHDR | IPV6_2292RTHDR | IPV6_2292PKTOPTIONS | IPV6_NEXTHOP
        ),
        _ => false,
    }
}

/// The sandbox of the current task if it has a network section.
#[inline(always)]
fn net_sandbox() -> Option<(u64, SandboxEntry)> {
    let (cgroup_id, sandbox) = sandbox::current();
    let sandbox = sandbox?;
    (sandbox.controls & controls::NET != 0).then_some((cgroup_id, sandbox))
}

/// Denies a destination override with `EPERM` and an event (`arg`: level << 32 | option).
#[inline(always)]
fn deny_override(hook: u32, cgroup_id: u64, sandbox: SandboxEntry, level: i32, name: i32) -> i32 {
    event::emit(
        hook,
        cgroup_id,
        sandbox.slot,
        RULE_DEFAULT_DENY,
        EPERM,
        |ev| {
            ev.arg = (u64::from(level as u32) << 32) | u64::from(name as u32);
        },
    );
    -(EPERM as i32)
}

/// `socket_setsockopt(struct socket *, int level, int optname)`: no routing header, next hop
/// or IPv4 options in a sandbox with a network section.
pub fn socket_setsockopt(ctx: &LsmContext) -> i32 {
    let level: i32 = ctx.arg(1);
    let name: i32 = ctx.arg(2);
    if !overrides_destination(level, name) {
        return 0;
    }
    match net_sandbox() {
        Some((cgroup_id, sandbox)) => deny_override(
            nemoclaw_common::event::hook::SOCKET_SETSOCKOPT,
            cgroup_id,
            sandbox,
            level,
            name,
        ),
        None => 0,
    }
}

/// Bytes of an option value a cgroup `setsockopt` program sees (`PAGE_SIZE`).
const SOCKOPT_VISIBLE: i32 = 4096;

/// cgroup `setsockopt`: the same options as [`socket_setsockopt`], refused with `EPERM`
/// (the hook's errno) on every kernel, so that they are closed where BPF LSM does not run
/// too. Every other option passes unchanged: one longer than the program can see gets
/// `optlen` 0, which tells the kernel to use the caller's buffer (6.1 returns `EFAULT`
/// otherwise).
pub fn setsockopt(ctx: &SockoptContext) -> i32 {
    // SAFETY: the context pointer is valid for the program's run.
    let opt = unsafe { &mut *ctx.sockopt };
    if overrides_destination(opt.level, opt.optname)
        && let Some((cgroup_id, sandbox)) = net_sandbox()
    {
        deny_override(
            nemoclaw_common::event::hook::SETSOCKOPT,
            cgroup_id,
            sandbox,
            opt.level,
            opt.optname,
        );
        return REJECT;
    }
    if opt.optlen > SOCKOPT_VISIBLE {
        opt.optlen = 0;
    }
    ALLOW
}

/// Ancillary data items examined per `sendmsg`; a message with more is denied (a
/// sandboxed program has no reason to send that many).
const MAX_CMSGS: usize = 16;

/// `socket_sendmsg(struct socket *, struct msghdr *, int size)`: the same options as
/// ancillary data of one message. By now the kernel holds its own copy of the control
/// buffer, so what is judged is what the protocol will read.
pub fn socket_sendmsg(ctx: &LsmContext) -> i32 {
    let msg: *const core::ffi::c_void = ctx.arg(1);
    let Ok((control, len)) = kernel::msghdr_control(msg) else {
        return 0;
    };
    if len == 0 {
        return 0;
    }
    let Some((cgroup_id, sandbox)) = net_sandbox() else {
        return 0;
    };
    let hook = nemoclaw_common::event::hook::SOCKET_SENDMSG;
    let mut off: u64 = 0;
    for _ in 0..MAX_CMSGS {
        // Fewer bytes left than a header: the kernel ignores them too.
        if off + 16 > len {
            return 0;
        }
        let Ok((cmsg_len, level, name)) = kernel::cmsghdr(control + off) else {
            return deny_override(hook, cgroup_id, sandbox, -1, -1);
        };
        if overrides_destination(level, name) {
            return deny_override(hook, cgroup_id, sandbox, level, name);
        }
        if cmsg_len < 16 {
            return 0;
        }
        off += (cmsg_len + 7) & !7;
    }
    if off + 16 > len {
        return 0;
    }
    deny_override(hook, cgroup_id, sandbox, -1, -1)
}

/// `AF_UNIX` as stored in a deny event's path for an abstract name.
const ABSTRACT_MARK: u8 = b'@';
/// Longest `sun_path` (`UNIX_PATH_MAX`).
const UNIX_PATH_MAX: usize = 108;

/// `security_unix_stream_connect(struct sock *sock, struct sock *other, struct sock *newsk)`.
pub fn unix_stream_connect(ctx: &LsmContext) -> i32 {
    let other = ctx.arg::<*const core::ffi::c_void>(1) as u64;
    let retval: i32 = ctx.arg(3);
    judge_unix(
        nemoclaw_common::event::hook::UNIX_STREAM_CONNECT,
        other,
        retval,
    )
}

/// `security_unix_may_send(struct socket *sock, struct socket *other)`: datagram connect and
/// every datagram send (connected or not).
pub fn unix_may_send(ctx: &LsmContext) -> i32 {
    let other = ctx.arg::<*const core::ffi::c_void>(1) as u64;
    let retval: i32 = ctx.arg(2);
    if retval != 0 {
        return retval;
    }
    let other_sk = kernel::read_u64_at(other, &kernel::SOCKET_SK_OFF);
    judge_unix(
        nemoclaw_common::event::hook::UNIX_MAY_SEND,
        other_sk,
        retval,
    )
}

/// Judges a unix socket connect or send to the socket `other` (a `struct sock *`): a
/// pathname socket as a write of its path by the filesystem rules (`EACCES`), an abstract
/// or unnamed one by where its owner lives: only a socket created in the same sandbox may
/// be reached (`EPERM`).
#[inline(always)]
fn judge_unix(hook: u32, other: u64, retval: i32) -> i32 {
    if retval != 0 {
        return retval;
    }
    let (cgroup_id, Some(sandbox)) = sandbox::current() else {
        return 0;
    };
    if sandbox.controls & controls::SOCKETS == 0 {
        return 0;
    }
    event::count(counter::JUDGED);
    let path = other + kernel::offset(&kernel::UNIX_SOCK_PATH_OFF) as u64;
    let mnt = kernel::read_u64_at(path, &kernel::PATH_MNT_OFF);
    let dentry = kernel::read_u64_at(path, &kernel::PATH_DENTRY_OFF);
    if other != 0 && mnt != 0 && dentry != 0 {
        return crate::fs::judge_socket_path(hook, cgroup_id, sandbox.slot, mnt, dentry);
    }
    // Abstract or unnamed: the cgroup the socket was created in, and its sandbox-level
    // ancestor, against this task's sandbox.
    let cgrp_data = other + kernel::offset(&kernel::SOCK_SK_CGRP_DATA_OFF) as u64;
    let cgroup = if other == 0 {
        0
    } else {
        kernel::read_u64_at(cgrp_data, &kernel::SOCK_CGROUP_DATA_CGROUP_OFF)
    };
    let (peer, peer_ancestor) =
        kernel::cgroup_ids(cgroup, nemoclaw_common::sandbox::SANDBOX_CGROUP_LEVEL);
    let ours = sandbox::sandbox_cgroup(cgroup_id);
    if peer != 0 && (peer == ours || peer_ancestor == ours) {
        return 0;
    }
    event::emit(
        hook,
        cgroup_id,
        sandbox.slot,
        RULE_DEFAULT_DENY,
        EPERM,
        |ev| {
            ev.target_cgroup = peer;
            ev.path_len = abstract_name(other, &mut ev.path);
        },
    );
    -(EPERM as i32)
}

/// Writes `@name` (the abstract name, its leading NUL shown as `@`) NUL-terminated into
/// `out` and returns its length with the NUL, or 0 for an unnamed socket.
#[inline(always)]
fn abstract_name(other: u64, out: &mut [u8; nemoclaw_common::event::EVENT_PATH_MAX]) -> u32 {
    let addr = if other == 0 {
        0
    } else {
        kernel::read_u64_at(other, &kernel::UNIX_SOCK_ADDR_OFF)
    };
    if addr == 0 {
        return 0;
    }
    // `len` counts `sun_family` (2 bytes) and the name.
    let len = kernel::read_u64_at(addr, &kernel::UNIX_ADDRESS_LEN_OFF) as u32 as usize;
    if len <= 2 || len > 2 + UNIX_PATH_MAX {
        return 0;
    }
    let name = addr + kernel::offset(&kernel::UNIX_ADDRESS_NAME_OFF) as u64 + 2;
    let n = (len - 2) & 0x7f;
    // SAFETY: `n < 128` bytes into a 4096-byte buffer; the source read faults safely.
    let ok = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            out.as_mut_ptr().cast(),
            n as u32,
            name as *const core::ffi::c_void,
        )
    };
    if ok != 0 {
        return 0;
    }
    out[0] = ABSTRACT_MARK;
    out[n & 0x7f] = 0;
    (n + 1) as u32
}
