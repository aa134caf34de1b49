//! Network rules: LPM trie keys over (slot, protocol, port, address).
//!
//! The slot, protocol and port form a fixed prefix of [`FIXED_PREFIX_BITS`]; the address
//! follows, so a CIDR is a longer prefix. Port 0 means any port and [`PROTO_ANY`] any
//! protocol: the kernel side looks up the exact (protocol, port) and the wildcards.

use crate::sandbox::Slot;

/// Capacity of each network LPM trie.
pub const MAX_NET_RULES: u32 = 65_536;

/// Bits of slot (32) + protocol (8) + padding (8) + port (16) that every key matches fully.
pub const FIXED_PREFIX_BITS: u32 = 64;

/// Protocol wildcard.
pub const PROTO_ANY: u8 = 0;
/// `IPPROTO_TCP`.
pub const PROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const PROTO_UDP: u8 = 17;
/// Port wildcard.
pub const PORT_ANY: u16 = 0;

/// LPM trie data for IPv4 rules. All fields are big-endian bytes so that prefix bits run
/// from the slot's most significant bit to the address's least significant one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Net4Key {
    pub slot: [u8; 4],
    pub proto: u8,
    pub _pad: u8,
    pub port: [u8; 2],
    pub addr: [u8; 4],
}

/// LPM trie data for IPv6 rules (IPv4-mapped addresses are judged as IPv4 instead).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Net6Key {
    pub slot: [u8; 4],
    pub proto: u8,
    pub _pad: u8,
    pub port: [u8; 2],
    pub addr: [u8; 16],
}

impl Net4Key {
    #[must_use]
    pub const fn new(slot: Slot, proto: u8, port: u16, addr: [u8; 4]) -> Self {
        Self {
            slot: slot.to_be_bytes(),
            proto,
            _pad: 0,
            port: port.to_be_bytes(),
            addr,
        }
    }
}

impl Net6Key {
    #[must_use]
    pub const fn new(slot: Slot, proto: u8, port: u16, addr: [u8; 16]) -> Self {
        Self {
            slot: slot.to_be_bytes(),
            proto,
            _pad: 0,
            port: port.to_be_bytes(),
            addr,
        }
    }
}
