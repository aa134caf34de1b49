//! The struct member offsets the eBPF side reads, resolved from the running kernel's BTF.

use super::btf::{Btf, BtfError};

/// (global in the eBPF object, struct, member). Keep in sync with `nemoclaw-ebpf/src/kernel.rs`.
pub const NEEDED: &[(&str, &str, &str)] = &[
    ("LINUX_BINPRM_FILE_OFF", "linux_binprm", "file"),
    ("FILE_F_PATH_OFF", "file", "f_path"),
    ("FILE_F_INODE_OFF", "file", "f_inode"),
    ("INODE_I_INO_OFF", "inode", "i_ino"),
    ("INODE_I_SB_OFF", "inode", "i_sb"),
    ("SUPER_BLOCK_S_DEV_OFF", "super_block", "s_dev"),
];

/// Every offset in [`NEEDED`], in order, or the first that this kernel's BTF lacks.
pub fn resolve(btf: &Btf) -> Result<Vec<(&'static str, u64)>, BtfError> {
    NEEDED
        .iter()
        .map(|&(global, strukt, member)| Ok((global, btf.member_offset(strukt, member)?)))
        .collect()
}
