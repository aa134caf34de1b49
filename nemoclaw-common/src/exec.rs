//! Exec rules: judged on the executed file's identity, never on its name.

use crate::sandbox::Slot;

/// Capacity of the `EXEC_RULES` map.
pub const MAX_EXEC_RULES: u32 = 65_536;

/// Key of `EXEC_RULES`: a slot and the (device, inode) of an executable file.
///
/// `dev` is the kernel's internal encoding (`sb->s_dev`: major << 20 | minor), not the
/// userspace `st_dev`; use [`kernel_dev`] to convert.
///
/// Used by the process control's LSM programs (`bprm_check_security`, `mmap_file`,
/// `file_mprotect`; BPF LSM, 5.7+) in `EXEC_RULES` and `EXEC_LIB_INODES`, and by the
/// network programs in `NET_BINARIES` (cgroup `sock_addr`, 4.17+).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecKey {
    /// The policy slot.
    pub slot: Slot,
    /// Padding, always 0.
    pub _pad: u32,
    /// The file's device, kernel encoding ([`kernel_dev`]).
    pub dev: u64,
    /// The file's inode number.
    pub ino: u64,
}

/// Converts a device's major and minor numbers to the kernel's internal `dev_t`
/// (`MKDEV` in `include/linux/kdev_t.h`).
#[must_use]
pub const fn kernel_dev(major: u32, minor: u32) -> u64 {
    ((major as u64) << 20) | (minor as u64 & 0xf_ffff)
}

/// Path bytes in an [`ExecPathKey`]: an LPM trie key holds at most 256 bytes of data
/// (`LPM_DATA_SIZE_MAX`), and the slot takes 4.
pub const EXEC_PATH_KEY_MAX: usize = 252;

/// Bits of slot every [`ExecPathKey`] matches fully before the path bytes.
pub const EXEC_PATH_SLOT_BITS: u32 = 32;

/// Capacity of the `EXEC_PREFIX` trie (`dir/**` process rules).
pub const MAX_EXEC_PREFIX_RULES: u32 = 16_384;

/// Capacity of the `EXEC_LIB_DIRS` trie.
pub const MAX_EXEC_LIB_DIRS: u32 = 1024;

/// Capacity of the `EXEC_LIB_INODES` LRU map (library files seen mapped executable).
pub const MAX_EXEC_LIB_INODES: u32 = 16_384;

/// Directories whose files any sandboxed task may map executable (`mmap_file` and
/// `file_mprotect` with `PROT_EXEC`), besides the allowed binaries themselves: shared
/// libraries, the dynamic loader and interpreter extension modules live here. Stored with a
/// trailing `/` so `/usr/lib` does not cover `/usr/lib2`. These directories must not be
/// writable from the sandbox (root-owned on every distribution).
pub const DEFAULT_LIBRARY_DIRS: [&str; 5] = [
    "/lib/",
    "/lib64/",
    "/usr/lib/",
    "/usr/lib64/",
    "/usr/local/lib/",
];

/// Trie data of `EXEC_LIB_DIRS`: a big-endian slot, then path bytes (zero-padded).
///
/// Used by `bprm_check_security` (`EXEC_PREFIX`) and `mmap_file`/`file_mprotect`
/// (`EXEC_LIB_DIRS`); LPM tries (`BPF_MAP_TYPE_LPM_TRIE`, 4.11+) read by BPF LSM programs
/// (5.7+).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecPathKey {
    /// The policy slot, big-endian (its bits come first in the trie).
    pub slot: [u8; 4],
    /// The directory's path bytes, zero-padded.
    pub path: [u8; EXEC_PATH_KEY_MAX],
}

impl ExecPathKey {
    /// The key for a directory prefix such as `/usr/lib/`, with its prefix length in bits,
    /// or `None` if the prefix is longer than [`EXEC_PATH_KEY_MAX`].
    #[must_use]
    pub fn prefix(slot: Slot, dir: &[u8]) -> Option<(u32, Self)> {
        if dir.len() > EXEC_PATH_KEY_MAX {
            return None;
        }
        let mut key = Self {
            slot: slot.to_be_bytes(),
            path: [0; EXEC_PATH_KEY_MAX],
        };
        key.path[..dir.len()].copy_from_slice(dir);
        Some((EXEC_PATH_SLOT_BITS + 8 * dir.len() as u32, key))
    }
}
