//! Removing policy slots' entries from every map, once no sandbox is registered with them
//! (a destroyed sandbox, a reload that moved its sandbox to a fresh slot: DESIGN.md,
//! "Atomic hot reload by slots"). The daemon sweeps released slots in batches
//! (`daemon::registry::Slots`).
//!
//! The maps share one layout rule, which this relies on and `nemoclaw_common::sandbox`
//! documents: a hash map's key starts with the slot (native endian), except the
//! `FS_EXACT_*` maps, whose keys have the LPM layout; an LPM trie's data starts with the
//! slot (big endian, after the 4-byte prefix length); an array with `MAX_SLOTS` entries is
//! indexed by slot. New maps that follow it are covered unchanged.

use std::{
    collections::BTreeSet,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
};

use aya::maps::{MapData, MapType};
use nemoclaw_common::sandbox::{MAX_SLOTS, Slot};

use super::{KernelError, mapset::MapSet};

/// Maps that are not keyed by slot.
const NOT_BY_SLOT: &[&str] = &["SANDBOXES", "DNS_ORIGINAL"];

/// Hash maps whose keys have the LPM layout (a zero 4-byte header, then the big-endian
/// slot), so one scratch key serves both lookups (`nemoclaw_common::fs::FsExactKey`).
const LPM_LAYOUT_PREFIX: &str = "FS_EXACT_";

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
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

/// The slot `key` belongs to: in the LPM layout (LPM tries, `FS_EXACT_*`), or with the
/// slot first.
fn slot_of(lpm_layout: bool, key: &[u8]) -> Option<Slot> {
    if lpm_layout {
        key.get(4..8)
            .map(|b| Slot::from_be_bytes(b.try_into().expect("4 bytes")))
    } else {
        key.get(..4)
            .map(|b| Slot::from_ne_bytes(b.try_into().expect("4 bytes")))
    }
}

/// Whether `key` belongs to `slot`.
fn key_in_slot(lpm_layout: bool, key: &[u8], slot: Slot) -> bool {
    slot_of(lpm_layout, key) == Some(slot)
}

/// The keys of `slot` in one map (hash maps and tries; arrays count a non-zero value).
fn slot_keys(name: &str, data: &MapData, slot: Slot) -> Result<Vec<Vec<u8>>, KernelError> {
    let err = |e: std::io::Error| KernelError::Unsupported(format!("reading {name}: {e}"));
    let info = data.info().map_err(|e| err(std::io::Error::other(e)))?;
    let map_type = info.map_type().map_err(|e| err(std::io::Error::other(e)))?;
    let fd = data.fd().as_fd();
    match map_type {
        MapType::Hash | MapType::LruHash | MapType::LpmTrie => {
            let lpm_layout = map_type == MapType::LpmTrie || name.starts_with(LPM_LAYOUT_PREFIX);
            Ok(keys(fd, info.key_size() as usize)
                .map_err(err)?
                .into_iter()
                .filter(|k| key_in_slot(lpm_layout, k, slot))
                .collect())
        }
        MapType::Array if info.max_entries() == MAX_SLOTS => {
            let mut value = vec![0u8; info.value_size() as usize];
            let attr = ElemAttr {
                map_fd: fd.as_raw_fd().cast_unsigned(),
                key: std::ptr::from_ref(&slot) as u64,
                value_or_next_key: value.as_mut_ptr() as u64,
                ..ElemAttr::default()
            };
            bpf(BPF_MAP_LOOKUP_ELEM, &attr).map_err(err)?;
            Ok(if value.iter().any(|b| *b != 0) {
                vec![slot.to_ne_bytes().to_vec()]
            } else {
                Vec::new()
            })
        }
        _ => Ok(Vec::new()),
    }
}

/// How many entries of `slot` each map keyed by slot holds (maps with none are left out):
/// what [`remove`] must bring to nothing.
pub fn count(maps: &MapSet, slot: Slot) -> Result<Vec<(String, usize)>, KernelError> {
    let mut out = Vec::new();
    for (name, data) in maps.raw() {
        if NOT_BY_SLOT.contains(&name) {
            continue;
        }
        let n = slot_keys(name, data, slot)?.len();
        if n > 0 {
            out.push((name.to_owned(), n));
        }
    }
    Ok(out)
}

fn remove_from(name: &str, data: &MapData, slots: &BTreeSet<Slot>) -> Result<(), KernelError> {
    let err = |e: std::io::Error| {
        KernelError::Unsupported(format!("clearing slots {slots:?} of {name}: {e}"))
    };
    let info = data.info().map_err(|e| err(std::io::Error::other(e)))?;
    let map_type = info.map_type().map_err(|e| err(std::io::Error::other(e)))?;
    let fd = data.fd().as_fd();
    match map_type {
        MapType::Hash | MapType::LruHash | MapType::LpmTrie => {
            let lpm_layout = map_type == MapType::LpmTrie || name.starts_with(LPM_LAYOUT_PREFIX);
            for key in keys(fd, info.key_size() as usize).map_err(err)? {
                if !slot_of(lpm_layout, &key).is_some_and(|s| slots.contains(&s)) {
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
            for slot in slots {
                let attr = ElemAttr {
                    map_fd: fd.as_raw_fd().cast_unsigned(),
                    key: std::ptr::from_ref(slot) as u64,
                    value_or_next_key: zero.as_ptr() as u64,
                    ..ElemAttr::default()
                };
                bpf(BPF_MAP_UPDATE_ELEM, &attr).map_err(err)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Deletes every entry of `slots` from every map keyed by slot, in one scan of each map
/// (its cost is the map's size, however many slots go). Call only once no sandbox is
/// registered with any of them.
pub fn remove(maps: &MapSet, slots: &BTreeSet<Slot>) -> Result<(), KernelError> {
    if slots.is_empty() {
        return Ok(());
    }
    for (name, data) in maps.raw() {
        if !NOT_BY_SLOT.contains(&name) {
            remove_from(name, data, slots)?;
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
        assert!(key_in_slot(true, &lpm, 7));
        assert!(!key_in_slot(true, &lpm, 8));
        assert!(!key_in_slot(false, &lpm, 7));
        let mut hash = vec![0u8; 24];
        hash[..4].copy_from_slice(&7u32.to_ne_bytes());
        assert!(key_in_slot(false, &hash, 7));
        assert!(!key_in_slot(false, &hash, 6));
        // The exact-path keys: the layout the eBPF side builds them in.
        let key = nemoclaw_common::fs::FsExactKey::<56> {
            zero: 0,
            slot: 7u32.to_be_bytes(),
            path: [b'x'; 56],
        };
        // SAFETY: a plain-old-data struct viewed as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(&key).cast::<u8>(), size_of_val(&key))
        };
        assert!(key_in_slot(true, bytes, 7));
    }
}
