//! Exec rules: judged on the executed file's identity, never on its name.

use crate::sandbox::Slot;

/// Capacity of the `EXEC_RULES` map.
pub const MAX_EXEC_RULES: u32 = 65_536;

/// Key of `EXEC_RULES`: a slot and the (device, inode) of an executable file.
///
/// `dev` is the kernel's internal encoding (`sb->s_dev`: major << 20 | minor), not the
/// userspace `st_dev`; use [`kernel_dev`] to convert.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecKey {
    pub slot: Slot,
    pub _pad: u32,
    pub dev: u64,
    pub ino: u64,
}

/// Converts a device's major and minor numbers to the kernel's internal `dev_t`
/// (`MKDEV` in `include/linux/kdev_t.h`).
#[must_use]
pub const fn kernel_dev(major: u32, minor: u32) -> u64 {
    ((major as u64) << 20) | (minor as u64 & 0xf_ffff)
}
