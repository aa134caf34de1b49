//! DNS redirection: every port-53 destination (TCP `connect`, UDP `connect` and `sendmsg`)
//! of a task in a sandbox with a network policy is rewritten to the sandbox's DNS gateway
//! on loopback (`DNS_GATE[slot]`), the filtering resolver `NemoClaw` serves on the host: it
//! answers only the names the policy needs, so names cannot carry data out. The socket's
//! original destination is kept by socket cookie (`DNS_ORIGINAL`), and the `recvmsg` and
//! `getpeername` programs put it back where the gateway's address would show (a stub
//! resolver drops a reply whose source is not the server it asked).
#![warn(clippy::missing_docs_in_private_items)]

use aya_ebpf::{helpers::generated::bpf_get_socket_cookie, programs::SockAddrContext};
use nemoclaw_common::net::{DNS_PORT, DnsOriginal, PROTO_TCP, PROTO_UDP};

use crate::maps::{DNS_GATE, DNS_ORIGINAL};

/// `AF_INET` (`include/linux/socket.h`), as `bpf_sock_addr.user_family` holds it.
const AF_INET: u32 = 2;
/// `AF_INET6`.
const AF_INET6: u32 = 10;
/// `127.0.0.1` as `user_ip4` holds it (network order).
const LOOPBACK4: u32 = u32::from_ne_bytes([127, 0, 0, 1]);
/// The last word of `::1` (network order); the first three are 0.
const LOOPBACK6_LAST: u32 = u32::from_ne_bytes([0, 0, 0, 1]);
/// The third word of an IPv4-mapped address, `::ffff:0:0` (network order).
const MAPPED_WORD: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// Whether `(proto, port)` is DNS: TCP or UDP to port 53.
#[inline(always)]
pub fn is_dns(proto: u8, port: u16) -> bool {
    port == DNS_PORT && (proto == PROTO_UDP || proto == PROTO_TCP)
}

/// Rewrites the destination of `ctx` to `slot`'s gateway and remembers the original; false
/// (nothing changed) when the slot has no gateway for the destination's family, and the
/// destination is then judged by the rules like any other. `V6`: the program is an IPv6
/// one (the verifier refuses IPv6 fields in IPv4 programs, so each reads only its own).
#[inline(always)]
pub fn redirect<const V6: bool>(ctx: &SockAddrContext, slot: u32) -> bool {
    let Some(&gate) = DNS_GATE.get(slot) else {
        return false;
    };
    // SAFETY: the context pointer is valid for the program's run; the verifier allows
    // reading and writing these fields in connect and sendmsg programs.
    let sa = unsafe { &mut *ctx.sock_addr };
    let mut original = DnsOriginal {
        family: if V6 { AF_INET6 } else { AF_INET },
        port: sa.user_port,
        ..DnsOriginal::default()
    };
    let gate_port;
    if V6 {
        let words = [
            sa.user_ip6[0],
            sa.user_ip6[1],
            sa.user_ip6[2],
            sa.user_ip6[3],
        ];
        let mapped = words[0] == 0 && words[1] == 0 && words[2] == MAPPED_WORD;
        // An IPv4-mapped destination is IPv4 on the wire: the IPv4 gateway, mapped.
        gate_port = if mapped {
            gate as u16
        } else {
            (gate >> 16) as u16
        };
        if gate_port == 0 {
            return false;
        }
        original.addr = words;
        sa.user_ip6[0] = 0;
        sa.user_ip6[1] = 0;
        if mapped {
            sa.user_ip6[2] = MAPPED_WORD;
            sa.user_ip6[3] = LOOPBACK4;
        } else {
            sa.user_ip6[2] = 0;
            sa.user_ip6[3] = LOOPBACK6_LAST;
        }
    } else {
        gate_port = gate as u16;
        if gate_port == 0 {
            return false;
        }
        original.addr[0] = sa.user_ip4;
        sa.user_ip4 = LOOPBACK4;
    }
    original.gate_port = u32::from(gate_port.to_be());
    sa.user_port = original.gate_port;
    // SAFETY: the helper takes the program's context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    // A full map only means the reply's source is not restored (the resolver then drops
    // it): the query still goes to the gateway and nowhere else.
    let _ = DNS_ORIGINAL.insert(&cookie, &original, 0);
    true
}

/// `recvmsg4/6`, `getpeername4/6`: where a redirected socket would see its gateway as the
/// peer, it sees the server it addressed. Always returns 1 (these hooks cannot refuse).
/// `V6` as for [`redirect`].
#[inline(always)]
pub fn restore<const V6: bool>(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the helper takes the program's context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    // SAFETY: a copy out of the map value; the pointer is valid while the program runs.
    let Some(original) = (unsafe { DNS_ORIGINAL.get(&cookie) }).copied() else {
        return 1;
    };
    // SAFETY: as in `redirect`; recvmsg and getpeername programs may read and write these.
    let sa = unsafe { &mut *ctx.sock_addr };
    if sa.user_port != original.gate_port || original.family != if V6 { AF_INET6 } else { AF_INET }
    {
        return 1;
    }
    if V6 {
        let (w2, w3) = (sa.user_ip6[2], sa.user_ip6[3]);
        let gateway = sa.user_ip6[0] == 0
            && sa.user_ip6[1] == 0
            && ((w2 == 0 && w3 == LOOPBACK6_LAST) || (w2 == MAPPED_WORD && w3 == LOOPBACK4));
        if !gateway {
            return 1;
        }
        sa.user_ip6[0] = original.addr[0];
        sa.user_ip6[1] = original.addr[1];
        sa.user_ip6[2] = original.addr[2];
        sa.user_ip6[3] = original.addr[3];
    } else {
        if sa.user_ip4 != LOOPBACK4 {
            return 1;
        }
        sa.user_ip4 = original.addr[0];
    }
    sa.user_port = original.port;
    1
}
