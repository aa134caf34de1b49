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
    ("FILE_F_MODE_OFF", "file", "f_mode"),
    ("FILE_F_FLAGS_OFF", "file", "f_flags"),
    ("PATH_MNT_OFF", "path", "mnt"),
    ("PATH_DENTRY_OFF", "path", "dentry"),
    ("DENTRY_D_PARENT_OFF", "dentry", "d_parent"),
    ("DENTRY_D_NAME_OFF", "dentry", "d_name"),
    ("DENTRY_D_INODE_OFF", "dentry", "d_inode"),
    ("QSTR_LEN_OFF", "qstr", "len"),
    ("QSTR_NAME_OFF", "qstr", "name"),
    ("VFSMOUNT_MNT_ROOT_OFF", "vfsmount", "mnt_root"),
    ("MOUNT_MNT_OFF", "mount", "mnt"),
    ("MOUNT_MNT_PARENT_OFF", "mount", "mnt_parent"),
    ("MOUNT_MNT_MOUNTPOINT_OFF", "mount", "mnt_mountpoint"),
    ("TASK_STRUCT_FS_OFF", "task_struct", "fs"),
    ("FS_STRUCT_ROOT_OFF", "fs_struct", "root"),
];

/// Every offset in [`NEEDED`], in order, or the first that this kernel's BTF lacks.
pub fn resolve(btf: &Btf) -> Result<Vec<(&'static str, u64)>, BtfError> {
    NEEDED
        .iter()
        .map(|&(global, strukt, member)| Ok((global, btf.member_offset(strukt, member)?)))
        .collect()
}
