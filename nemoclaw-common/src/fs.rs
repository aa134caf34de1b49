//! Filesystem rules: map keys and values for the three path lookups (exact hashes, `/dir/`
//! prefix LPM trie, reversed-suffix LPM trie) and the (device, inode) deny map.
//!
//! Kernel limits shape the keys: a hash key is at most 512 bytes (`MAX_BPF_STACK`) and an
//! LPM trie key's data at most 256 bytes (`LPM_DATA_SIZE_MAX`). So exact keys hold paths of
//! up to [`FS_EXACT_MAX`] bytes, and the tries match the first (prefix) or last (suffix)
//! [`FS_LPM_MAX`] bytes of a path. A longer path can still be judged exactly: a prefix key
//! or suffix key never exceeds those lengths (the loader refuses longer rules), and the
//! longest matching key only depends on that many bytes at the start (or end) of the path.
//!
//! Exact rules are split by path length into four hash maps ([`FS_EXACT_CLASSES`]): the
//! kernel hashes and compares the whole key on every lookup, so a short path is looked up
//! with a 64-byte key rather than a 512-byte one. A path of length `n` can only equal a key
//! of its own class (the smallest that holds `n` bytes), so one lookup still decides.

use crate::{rule::Verdict, sandbox::Slot};

/// Capacity of each path map and of the inode map.
pub const MAX_FS_RULES: u32 = 131_072;

/// Path bytes of each exact-rule key class, shortest first: keys of 64, 128, 256 and 512
/// bytes (8 bytes of header).
pub const FS_EXACT_CLASSES: [usize; 4] = [56, 120, 248, 504];

/// Longest path an exact key holds (the largest class; its key is 512 bytes).
pub const FS_EXACT_MAX: usize = FS_EXACT_CLASSES[3];

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

/// Key of the exact-rule map of class `N` (`FS_EXACT_56` .. `FS_EXACT_504`): a slot and a
/// whole path, zero-padded (a path holds no NUL, so the padding is unambiguous).
///
/// The layout lets the kernel look a path up in place: its scratch buffer holds a 4-byte
/// header word, the big-endian slot and then the path, so the same bytes are an exact key
/// (header 0) and an LPM key (header = prefix length) with no copying.
///
/// Used by the filesystem control's LSM programs (`file_open`, `path_*`, the `fs_attr`
/// metadata hooks; BPF LSM, 5.7+).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FsExactKey<const N: usize> {
    /// Always 0.
    pub zero: u32,
    /// Big-endian, as in [`FsLpmKey`].
    pub slot: [u8; 4],
    /// The path bytes, zero-padded.
    pub path: [u8; N],
}

/// The index in [`FS_EXACT_CLASSES`] of the class that holds a path of `len` bytes, or
/// `None` if no exact key can hold it.
#[must_use]
pub const fn exact_class(len: usize) -> Option<usize> {
    let mut i = 0;
    while i < FS_EXACT_CLASSES.len() {
        if len <= FS_EXACT_CLASSES[i] {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Bits of the `FS_SLOT_FLAGS` entry of a slot: which filesystem maps hold entries for it.
/// The kernel skips a lookup whose map has nothing for the slot (a miss either way). The
/// loader writes the flags with the slot's entries, before any sandbox uses the slot.
pub mod slot_flags {
    /// `FS_EXACT_<class>` has entries: bit `EXACT << class index`.
    pub const EXACT: u32 = 1 << 0;
    /// `FS_PREFIX` has entries.
    pub const PREFIX: u32 = 1 << 4;
    /// `FS_SUFFIX` has entries.
    pub const SUFFIX: u32 = 1 << 5;
    /// `FS_INODES` has entries.
    pub const INODES: u32 = 1 << 6;
    /// `FS_SUBTREES` has entries.
    pub const SUBTREES: u32 = 1 << 7;
    /// Every map: what the kernel assumes when a slot's flags cannot be read.
    pub const ALL: u32 = 0xf | PREFIX | SUFFIX | INODES | SUBTREES;
}

/// Trie data of `FS_PREFIX` (path bytes) and `FS_SUFFIX` (path bytes reversed). The slot is
/// big-endian so its bits come first in the trie's bit order.
///
/// Used by the filesystem control's LSM programs (`file_open`, `path_*`, metadata hooks;
/// BPF LSM, 5.7+).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FsLpmKey {
    /// The policy slot, big-endian.
    pub slot: [u8; 4],
    /// Path bytes (reversed in `FS_SUFFIX`), zero-padded.
    pub path: [u8; FS_LPM_MAX],
}

/// Value of every path map: one verdict per access kind (`action == 0`: no rule says).
///
/// Used by the filesystem control's LSM programs (`file_open`, `path_*`, metadata hooks;
/// BPF LSM, 5.7+).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsValue {
    /// The verdict for reads.
    pub read: Verdict,
    /// The verdict for writes.
    pub write: Verdict,
}

/// Key of `FS_INODES`: files that existed under deny rules when the policy was installed.
/// `dev` is the kernel's `dev_t` (see `crate::exec::kernel_dev`).
///
/// Used by the filesystem control's LSM programs (`file_open`, `path_*`, metadata hooks;
/// BPF LSM, 5.7+).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FsInodeKey {
    /// The policy slot.
    pub slot: Slot,
    /// Padding, always 0.
    pub _pad: u32,
    /// The file's device, kernel encoding.
    pub dev: u64,
    /// The file's inode number.
    pub ino: u64,
}

impl<const N: usize> FsExactKey<N> {
    /// The key for `path`, or `None` if it is longer than `N`.
    #[must_use]
    pub fn new(slot: Slot, path: &[u8]) -> Option<Self> {
        if path.len() > N {
            return None;
        }
        let mut key = Self {
            zero: 0,
            slot: slot.to_be_bytes(),
            path: [0; N],
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

/// What an [`FsSubtreeKey`] names: a directory with rules anchored beneath it, or a
/// component name that a `**/dir/name` rule spans.
pub mod subtree {
    /// The key hashes a whole directory path (`/a/b`): an exact or `/dir/**` rule names a
    /// path strictly beneath it, so moving the directory would move that rule's objects out
    /// from under the rule (or, at the destination, other objects in).
    pub const DIRECTORY: u32 = 1;
    /// The key hashes one component name (`b`): a `**/.../b/...` suffix rule reaches past
    /// the last component into a directory of that name, so renaming a directory to or
    /// from that name changes which of its descendants the rule matches.
    pub const NAME: u32 = 2;
}

/// Key of `FS_SUBTREES`: directories whose rename (or move, or exchange) would change which
/// rules match the objects beneath them. The value is the id of a rule that makes it so;
/// the kernel refuses such a rename with `EXDEV`, as Landlock does for moves its `REFER`
/// right forbids, so tools fall back to copying, which is judged file by file.
///
/// The key holds a 64-bit [`subtree_hash`] of the path or name rather than its bytes: one
/// map for every length, and a collision can only make a rename refused, never allowed.
///
/// Used by `path_rename_subtrees` (LSM `path_rename`; BPF LSM, 5.7+).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FsSubtreeKey {
    /// The policy slot.
    pub slot: Slot,
    /// [`subtree::DIRECTORY`] or [`subtree::NAME`].
    pub kind: u32,
    /// The [`subtree_hash`] of the path or name.
    pub hash: u64,
}

/// FNV-1a's offset basis: the [`subtree_hash`] of no bytes.
pub const SUBTREE_HASH_START: u64 = 0xcbf2_9ce4_8422_2325;

/// One byte of the [`subtree_hash`] (FNV-1a, 64 bits); the kernel side folds a path in
/// byte by byte with this same step.
#[expect(
    clippy::inline_always,
    reason = "the eBPF programs call it per path byte: no BPF subprogram call"
)]
#[inline(always)]
#[must_use]
pub const fn subtree_hash_step(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3)
}

/// The hash an [`FsSubtreeKey`] holds for `bytes` (a path or one component name).
#[must_use]
pub const fn subtree_hash(bytes: &[u8]) -> u64 {
    let mut hash = SUBTREE_HASH_START;
    let mut i = 0;
    while i < bytes.len() {
        hash = subtree_hash_step(hash, bytes[i]);
        i += 1;
    }
    hash
}
