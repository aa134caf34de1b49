//! Removing one policy slot's entries from every map, after a reload moved its sandboxes to
//! a fresh slot (DESIGN.md, "Atomic hot reload by slots").
//!
//! The maps share one layout rule, which this relies on and `nemoclaw_common::sandbox`
//! documents: a hash map's key starts with the slot (native endian); an LPM trie's data
//! starts with the slot (big endian, after the 4-byte prefix length); an array with
//! `MAX_SLOTS` entries is indexed by slot. New maps that follow it are covered unchanged.

use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};

use aya::maps::{MapData, MapType};
use nemoclaw_common::sandbox::{MAX_SLOTS, Slot};

use super::{KernelError, mapset::MapSet};

/// Maps that are not keyed by slot.
const NOT_BY_SLOT: &[&str] = &["SANDBOXES"];

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// `union bpf_attr` as the map element commands use it.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &ElemAttr) -> std::io::Result<()> {
    // SAFETY: `attr` is a valid, fully initialised `bpf_attr` prefix of the size passed,
    // and the key/value pointers in it point to buffers of the map's key/value size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_ref(attr),
            size_of::<ElemAttr>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn keys(fd: BorrowedFd<'_>, key_size: usize) -> std::io::Result<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    let mut next = vec![0u8; key_size];
    let mut prev: Option<Vec<u8>> = None;
    loop {
        let attr = ElemAttr {
            map_fd: fd.as_raw_fd().cast_unsigned(),
            key: prev.as_ref().map_or(0, |k| k.as_ptr() as u64),
            value_or_next_key: next.as_mut_ptr() as u64,
            ..ElemAttr::default()
        };
        match bpf(BPF_MAP_GET_NEXT_KEY, &attr) {
            Ok(()) => {
                keys.push(next.clone());
                prev = Some(next.clone());
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
            Err(e) => return Err(e),
        }
    }
}

/// Whether `key` belongs to `slot` in a map of `map_type`.
fn key_in_slot(map_type: MapType, key: &[u8], slot: Slot) -> bool {
    match map_type {
        MapType::LpmTrie => key.get(4..8) == Some(&slot.to_be_bytes()[..]),
        _ => key.get(..4) == Some(&slot.to_ne_bytes()[..]),
    }
}

fn remove_from(name: &str, data: &MapData, slot: Slot) -> Result<(), KernelError> {
    let err = |e: std::io::Error| {
        KernelError::Unsupported(format!("clearing slot {slot} of {name}: {e}"))
    };
    let info = data.info().map_err(|e| err(std::io::Error::other(e)))?;
    let map_type = info.map_type().map_err(|e| err(std::io::Error::other(e)))?;
    let fd = data.fd().as_fd();
    match map_type {
        MapType::Hash | MapType::LruHash | MapType::LpmTrie => {
            for key in keys(fd, info.key_size() as usize).map_err(err)? {
                if !key_in_slot(map_type, &key, slot) {
                    continue;
                }
                let attr = ElemAttr {
                    map_fd: fd.as_raw_fd().cast_unsigned(),
                    key: key.as_ptr() as u64,
                    ..ElemAttr::default()
                };
                match bpf(BPF_MAP_DELETE_ELEM, &attr) {
                    Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(err(e)),
                    _ => {}
                }
            }
        }
        MapType::Array if info.max_entries() == MAX_SLOTS => {
            let zero = vec![0u8; info.value_size() as usize];
            let attr = ElemAttr {
                map_fd: fd.as_raw_fd().cast_unsigned(),
                key: std::ptr::from_ref(&slot) as u64,
                value_or_next_key: zero.as_ptr() as u64,
                ..ElemAttr::default()
            };
            bpf(BPF_MAP_UPDATE_ELEM, &attr).map_err(err)?;
        }
        _ => {}
    }
    Ok(())
}

/// Deletes every entry of `slot` from every map keyed by slot. Call only once no sandbox
/// is registered with `slot`.
pub fn remove(maps: &MapSet, slot: Slot) -> Result<(), KernelError> {
    for (name, data) in maps.raw() {
        if !NOT_BY_SLOT.contains(&name) {
            remove_from(name, data, slot)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_position_by_map_type() {
        let mut lpm = vec![0u8; 12];
        lpm[4..8].copy_from_slice(&7u32.to_be_bytes());
        assert!(key_in_slot(MapType::LpmTrie, &lpm, 7));
        assert!(!key_in_slot(MapType::LpmTrie, &lpm, 8));
        assert!(!key_in_slot(MapType::Hash, &lpm, 7));
        let mut hash = vec![0u8; 24];
        hash[..4].copy_from_slice(&7u32.to_ne_bytes());
        assert!(key_in_slot(MapType::Hash, &hash, 7));
        assert!(key_in_slot(MapType::LruHash, &hash, 7));
        assert!(!key_in_slot(MapType::Hash, &hash, 6));
    }
}
