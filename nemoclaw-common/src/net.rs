//! Network rules: LPM trie keys over (slot, binary, protocol, port, address).
//!
//! The slot, binary id, protocol and port form a fixed prefix of [`FIXED_PREFIX_BITS`]; the
//! address follows, so a CIDR is a longer prefix. Port 0 means any port, [`PROTO_ANY`] any
//! protocol and [`BIN_ANY`] any executable: the kernel side looks up the exact values and
//! the wildcards (only the groups the slot has, see [`group_bit`]) and merges the verdicts.
//! One trie per address family holds allow and deny entries alike.

use crate::sandbox::Slot;

/// Capacity of each network LPM trie (allocated per entry, so a large limit costs nothing).
pub const MAX_NET_RULES: u32 = 262_144;

/// Bits of slot (32) + binary id (16) + protocol (8) + padding (8) + port (16) that every
/// key matches fully.
pub const FIXED_PREFIX_BITS: u32 = 80;

/// Protocol wildcard.
pub const PROTO_ANY: u8 = 0;
/// `IPPROTO_TCP`.
pub const PROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const PROTO_UDP: u8 = 17;
/// Port wildcard.
pub const PORT_ANY: u16 = 0;
/// Binary wildcard: the entry applies to every executable.
pub const BIN_ANY: u16 = 0;

/// Capacity of `NET_BINARIES`: (slot, dev, ino) of the executables named by `binaries:`.
pub const MAX_NET_BINARIES: u32 = 16_384;

/// Bit of `NET_SLOT_FLAGS[slot]` saying the slot has entries in one lookup group, so the
/// kernel skips the lookups of groups that are empty. `v6`: IPv6 trie; `per_binary`: the
/// group of the task's own binary id (else [`BIN_ANY`]); `any_proto`, `any_port`: the
/// wildcard halves of the group.
#[must_use]
#[expect(
    clippy::fn_params_excessive_bools,
    reason = "four independent yes/no halves of one lookup group"
)]
pub const fn group_bit(v6: bool, per_binary: bool, any_proto: bool, any_port: bool) -> u32 {
    let index =
        (v6 as u32) << 3 | (per_binary as u32) << 2 | (any_proto as u32) << 1 | any_port as u32;
    1 << index
}

/// Value of `NET_SLOT_FLAGS[slot]`: which lookups can find anything for this slot.
///
/// Read by the cgroup `connect4/6` (4.17+) and `sendmsg4/6` (4.18+) programs before their
/// trie lookups.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetSlotFlags {
    /// [`group_bit`]s of the groups that have entries.
    pub groups: u32,
    /// Padding, always 0.
    pub _pad: u32,
    /// Bit `port % 64` is set for every port of an exact-port entry, IPv4 and IPv6: a
    /// destination port whose bit is clear skips the exact-port lookups (no false negative;
    /// a false positive costs one lookup that misses).
    pub ports4: u64,
    /// The same for IPv6 exact-port entries.
    pub ports6: u64,
}

/// The bit of `port` in [`NetSlotFlags::ports4`] / [`NetSlotFlags::ports6`].
#[must_use]
pub const fn port_bit(port: u16) -> u64 {
    1 << (port & 63)
}

/// `NET_SLOT_FLAGS` mask of every per-binary group: the kernel reads the task's executable
/// only when one of these is set.
pub const PER_BINARY_GROUPS: u32 = 0xf0 | 0xf000;

/// LPM trie data for IPv4 rules. All fields are big-endian bytes so that prefix bits run
/// from the slot's most significant bit to the address's least significant one.
///
/// Key of `NET4`, read by the cgroup `connect4` (4.17+) and `sendmsg4` (4.18+) programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Net4Key {
    /// The policy slot, big-endian.
    pub slot: [u8; 4],
    /// The binary id (`NET_BINARIES` value), or [`BIN_ANY`]; big-endian.
    pub bin: [u8; 2],
    /// `IPPROTO_*`, or [`PROTO_ANY`].
    pub proto: u8,
    /// Padding, always 0.
    pub _pad: u8,
    /// Destination port, big-endian, or [`PORT_ANY`].
    pub port: [u8; 2],
    /// The IPv4 address, network order (the prefix's last bits).
    pub addr: [u8; 4],
}

/// LPM trie data for IPv6 rules (IPv4-mapped addresses are judged as IPv4 instead).
///
/// Key of `NET6`, read by the cgroup `connect6` (4.17+) and `sendmsg6` (4.18+) programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Net6Key {
    /// The policy slot, big-endian.
    pub slot: [u8; 4],
    /// The binary id (`NET_BINARIES` value), or [`BIN_ANY`]; big-endian.
    pub bin: [u8; 2],
    /// `IPPROTO_*`, or [`PROTO_ANY`].
    pub proto: u8,
    /// Padding, always 0.
    pub _pad: u8,
    /// Destination port, big-endian, or [`PORT_ANY`].
    pub port: [u8; 2],
    /// The IPv6 address, network order (the prefix's last bits).
    pub addr: [u8; 16],
}

impl Net4Key {
    #[must_use]
    /// The key for (slot, binary id, protocol, port, address); the fields are stored big-endian.
    pub const fn new(slot: Slot, bin: u16, proto: u8, port: u16, addr: [u8; 4]) -> Self {
        Self {
            slot: slot.to_be_bytes(),
            bin: bin.to_be_bytes(),
            proto,
            _pad: 0,
            port: port.to_be_bytes(),
            addr,
        }
    }
}

impl Net6Key {
    #[must_use]
    /// The key for (slot, binary id, protocol, port, address); the fields are stored big-endian.
    pub const fn new(slot: Slot, bin: u16, proto: u8, port: u16, addr: [u8; 16]) -> Self {
        Self {
            slot: slot.to_be_bytes(),
            bin: bin.to_be_bytes(),
            proto,
            _pad: 0,
            port: port.to_be_bytes(),
            addr,
        }
    }
}

/// Capacity of `NET_LISTEN`, shared by every slot (allocated per entry). One policy has at
/// most 3 x 65,535 entries (a protocol and a port each; the full range is stored as
/// [`PORT_ANY`]), so a single policy always fits.
pub const MAX_LISTEN_ENTRIES: u32 = 262_144;

/// Key of `NET_LISTEN`: the ports a slot's `network.listen` entries open on non-loopback
/// addresses. `proto` is [`PROTO_TCP`], [`PROTO_UDP`] or [`PROTO_ANY`]; `port` is one port
/// or [`PORT_ANY`]. The value is the rule id of the (first) entry that opens it. The kernel
/// looks up the four (exact/any protocol x exact/any port) keys of a bind or listen.
///
/// Read by the cgroup `bind4`/`bind6` programs (4.17+) and LSM `socket_listen` (BPF LSM,
/// 5.7+).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenKey {
    /// The policy slot.
    pub slot: Slot,
    /// [`PROTO_TCP`], [`PROTO_UDP`] or [`PROTO_ANY`].
    pub proto: u8,
    /// Always 0 (keys are hashed as bytes): only [`ListenKey::new`] builds a key.
    _pad: u8,
    /// The port (host order), or [`PORT_ANY`].
    pub port: u16,
}

impl ListenKey {
    #[must_use]
    /// The key for (slot, protocol, port).
    pub const fn new(slot: Slot, proto: u8, port: u16) -> Self {
        Self {
            slot,
            proto,
            _pad: 0,
            port,
        }
    }
}

/// Whether a local IPv4 address (network order bytes) is loopback (`127.0.0.0/8`): where
/// binding and listening are always allowed.
#[must_use]
pub const fn is_loopback4(addr: [u8; 4]) -> bool {
    addr[0] == 127
}

/// Whether a local IPv6 address is loopback: `::1`, or an IPv4-mapped `::ffff:127.x.y.z`.
#[must_use]
pub const fn is_loopback6(addr: [u8; 16]) -> bool {
    matches!(
        addr,
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
            | [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, _, _, _]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_127_8_and_ipv6_one_and_mapped_127() {
        assert!(is_loopback4([127, 0, 0, 1]));
        assert!(is_loopback4([127, 255, 3, 9]));
        assert!(!is_loopback4([0, 0, 0, 0]));
        assert!(!is_loopback4([10, 0, 0, 1]));
        let mut one = [0u8; 16];
        one[15] = 1;
        assert!(is_loopback6(one));
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2];
        assert!(is_loopback6(mapped));
        assert!(!is_loopback6([0; 16]), "`::` is every address");
        let mapped_any = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];
        assert!(!is_loopback6(mapped_any));
        let mut link_local = [0u8; 16];
        link_local[0] = 0xfe;
        link_local[1] = 0x80;
        link_local[15] = 1;
        assert!(!is_loopback6(link_local));
    }
}

/// `DNS_GATE[slot]`: the loopback ports of the sandbox's DNS gateway (the filtering
/// resolver its `NemoClaw` host process serves): IPv4 (`127.0.0.1`) in the low 16 bits,
/// IPv6 (`::1`) in the high 16 bits, 0 for none. Every port-53 destination of a sandbox
/// whose slot has a gateway is rewritten to it.
#[must_use]
pub const fn dns_gate(port4: u16, port6: u16) -> u32 {
    (port6 as u32) << 16 | port4 as u32
}

/// The DNS port, whose every destination goes to the sandbox's gateway.
pub const DNS_PORT: u16 = 53;

/// Capacity of `DNS_ORIGINAL` (an LRU map: a socket's entry lives while it is in use).
pub const MAX_DNS_SOCKETS: u32 = 16_384;

/// `DNS_ORIGINAL[socket cookie]`: where a redirected DNS socket meant to send, so the
/// replies' source (`recvmsg`) and the peer (`getpeername`) read as that server again
/// (resolvers such as glibc's drop a reply whose source is not the server they asked).
/// Fields as in `struct bpf_sock_addr`: family, address words and port in network order.
///
/// Written by `connect4/6` (4.17+) and `sendmsg4/6` (4.18+) when they redirect to the
/// gateway; read by `recvmsg4/6` (5.2+) and `getpeername4/6` (5.8+).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsOriginal {
    /// `AF_INET` or `AF_INET6`, as the socket addressed it.
    pub family: u32,
    /// The original destination port (network order, low 16 bits).
    pub port: u32,
    /// The gateway port the destination was rewritten to (network order, low 16 bits).
    pub gate_port: u32,
    /// The original address: `user_ip4` in word 0, or the four `user_ip6` words.
    pub addr: [u32; 4],
}
