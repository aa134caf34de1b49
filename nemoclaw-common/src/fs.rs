//! Filesystem rules: map keys and values for the three path lookups (exact hash, `/dir/`
//! prefix LPM trie, reversed-suffix LPM trie) and the (device, inode) deny map.
//!
//! Kernel limits shape the keys: a hash key is at most 512 bytes (`MAX_BPF_STACK`) and an
//! LPM trie key's data at most 256 bytes (`LPM_DATA_SIZE_MAX`). So exact keys hold paths of
//! up to [`FS_EXACT_MAX`] bytes, and the tries match the first (prefix) or last (suffix)
//! [`FS_LPM_MAX`] bytes of a path. A longer path can still be judged exactly: a prefix key
//! or suffix key never exceeds those lengths (the loader refuses longer rules), and the
//! longest matching key only depends on that many bytes at the start (or end) of the path.

use crate::{rule::Verdict, sandbox::Slot};

/// Capacity of each path map and of the inode map.
pub const MAX_FS_RULES: u32 = 131_072;

/// Longest path an [`FsExactKey`] holds (the key is 512 bytes).
pub const FS_EXACT_MAX: usize = 504;

/// Path bytes in an [`FsLpmKey`] (256 bytes of trie data minus the 4-byte slot).
pub const FS_LPM_MAX: usize = 252;

/// Bits of slot every LPM key matches fully before the path bytes.
pub const FS_SLOT_BITS: u32 = 32;

/// Bytes of the kernel's path scratch buffer (`PATH_MAX`).
pub const FS_PATH_MAX: usize = 4096;

/// Access bits judged by the kernel side (same values as the compiler's `FS_READ`/`FS_WRITE`).
pub const ACCESS_READ: u32 = 1 << 0;
/// Opening for writing, truncating, appending, creating, renaming, linking or unlinking.
pub const ACCESS_WRITE: u32 = 1 << 1;

/// Key of `FS_EXACT`: a slot and a whole path, zero-padded.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FsExactKey {
    pub slot: Slot,
    /// Path length in bytes (without NUL).
    pub len: u32,
    pub path: [u8; FS_EXACT_MAX],
}

/// Trie data of `FS_PREFIX` (path bytes) and `FS_SUFFIX` (path bytes reversed). The slot is
/// big-endian so its bits come first in the trie's bit order.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FsLpmKey {
    pub slot: [u8; 4],
    pub path: [u8; FS_LPM_MAX],
}

/// Value of every path map: one verdict per access kind (`action == 0`: no rule says).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsValue {
    pub read: Verdict,
    pub write: Verdict,
}

/// Key of `FS_INODES`: files that existed under deny rules when the policy was installed.
/// `dev` is the kernel's `dev_t` (see `crate::exec::kernel_dev`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FsInodeKey {
    pub slot: Slot,
    pub _pad: u32,
    pub dev: u64,
    pub ino: u64,
}

impl FsExactKey {
    /// The key for `path`, or `None` if it is longer than [`FS_EXACT_MAX`].
    #[must_use]
    pub fn new(slot: Slot, path: &[u8]) -> Option<Self> {
        if path.len() > FS_EXACT_MAX {
            return None;
        }
        let mut key = Self {
            slot,
            len: path.len() as u32,
            path: [0; FS_EXACT_MAX],
        };
        key.path[..path.len()].copy_from_slice(path);
        Some(key)
    }
}

impl FsLpmKey {
    /// A prefix key for `path` (forwards), or `None` if longer than [`FS_LPM_MAX`]. Returns
    /// the key and its prefix length in bits.
    #[must_use]
    pub fn prefix(slot: Slot, path: &[u8]) -> Option<(u32, Self)> {
        if path.len() > FS_LPM_MAX {
            return None;
        }
        let mut key = Self {
            slot: slot.to_be_bytes(),
            path: [0; FS_LPM_MAX],
        };
        key.path[..path.len()].copy_from_slice(path);
        Some((FS_SLOT_BITS + 8 * path.len() as u32, key))
    }

    /// A suffix key for `suffix` (written forwards; stored reversed), or `None` if longer
    /// than [`FS_LPM_MAX`].
    #[must_use]
    pub fn suffix(slot: Slot, suffix: &[u8]) -> Option<(u32, Self)> {
        if suffix.len() > FS_LPM_MAX {
            return None;
        }
        let mut key = Self {
            slot: slot.to_be_bytes(),
            path: [0; FS_LPM_MAX],
        };
        for (dst, src) in key.path.iter_mut().zip(suffix.iter().rev()) {
            *dst = *src;
        }
        Some((FS_SLOT_BITS + 8 * suffix.len() as u32, key))
    }
}
