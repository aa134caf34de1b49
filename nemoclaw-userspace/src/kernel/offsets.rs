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
    // Privilege control and exec hardening.
    ("CRED_UID_OFF", "cred", "uid"),
    ("CRED_EUID_OFF", "cred", "euid"),
    ("CRED_SUID_OFF", "cred", "suid"),
    ("CRED_FSUID_OFF", "cred", "fsuid"),
    ("CRED_GID_OFF", "cred", "gid"),
    ("CRED_EGID_OFF", "cred", "egid"),
    ("CRED_SGID_OFF", "cred", "sgid"),
    ("CRED_FSGID_OFF", "cred", "fsgid"),
    ("INODE_I_MODE_OFF", "inode", "i_mode"),
    ("INODE_I_UID_OFF", "inode", "i_uid"),
    ("INODE_I_GID_OFF", "inode", "i_gid"),
    ("TASK_STRUCT_TGID_OFF", "task_struct", "tgid"),
    ("TASK_STRUCT_CGROUPS_OFF", "task_struct", "cgroups"),
    ("CSS_SET_DFL_CGRP_OFF", "css_set", "dfl_cgrp"),
    ("CGROUP_KN_OFF", "cgroup", "kn"),
    ("KERNFS_NODE_ID_OFF", "kernfs_node", "id"),
    ("VM_AREA_STRUCT_VM_FILE_OFF", "vm_area_struct", "vm_file"),
    ("VM_AREA_STRUCT_ANON_VMA_OFF", "vm_area_struct", "anon_vma"),
    ("SUPER_BLOCK_S_MAGIC_OFF", "super_block", "s_magic"),
    ("INODE_I_RDEV_OFF", "inode", "i_rdev"),
    // The current task's executable: per-binary network rules, and the exec fast path of
    // `mmap_file` (the executable that exec is loading).
    ("TASK_STRUCT_MM_OFF", "task_struct", "mm"),
    ("MM_STRUCT_EXE_FILE_OFF", "mm_struct", "exe_file"),
    // Unix sockets.
    ("SOCKET_SK_OFF", "socket", "sk"),
    ("UNIX_SOCK_ADDR_OFF", "unix_sock", "addr"),
    ("UNIX_SOCK_PATH_OFF", "unix_sock", "path"),
    ("UNIX_ADDRESS_LEN_OFF", "unix_address", "len"),
    ("UNIX_ADDRESS_NAME_OFF", "unix_address", "name"),
    ("SOCK_SK_CGRP_DATA_OFF", "sock", "sk_cgrp_data"),
    ("SOCK_CGROUP_DATA_CGROUP_OFF", "sock_cgroup_data", "cgroup"),
    ("CGROUP_LEVEL_OFF", "cgroup", "level"),
    ("CGROUP_ANCESTORS_OFF", "cgroup", "ancestors"),
    // Per-packet destination overrides in ancillary data.
    ("MSGHDR_MSG_CONTROL_OFF", "msghdr", "msg_control"),
    ("MSGHDR_MSG_CONTROLLEN_OFF", "msghdr", "msg_controllen"),
    // Inbound: what a socket listens on (`socket_listen`).
    ("SOCK_SK_COMMON_OFF", "sock", "__sk_common"),
    ("SOCK_COMMON_SKC_FAMILY_OFF", "sock_common", "skc_family"),
    ("SOCK_COMMON_SKC_NUM_OFF", "sock_common", "skc_num"),
    (
        "SOCK_COMMON_SKC_RCV_SADDR_OFF",
        "sock_common",
        "skc_rcv_saddr",
    ),
    (
        "SOCK_COMMON_SKC_V6_RCV_SADDR_OFF",
        "sock_common",
        "skc_v6_rcv_saddr",
    ),
    ("SOCKET_TYPE_OFF", "socket", "type"),
    // Metadata writes: the mounts of a dentry's file system in the task's namespace.
    ("DENTRY_D_SB_OFF", "dentry", "d_sb"),
    ("SUPER_BLOCK_S_MOUNTS_OFF", "super_block", "s_mounts"),
    ("MOUNT_MNT_NS_OFF", "mount", "mnt_ns"),
    ("TASK_STRUCT_NSPROXY_OFF", "task_struct", "nsproxy"),
    ("NSPROXY_MNT_NS_OFF", "nsproxy", "mnt_ns"),
];

/// The metadata hooks whose `struct dentry *` argument and verdict argument the eBPF side
/// reads, as (dentry position global, verdict position global, hook). The positions come
/// from the func proto of `bpf_lsm_<hook>`: `inode_setattr` has an `idmap` first from 6.3
/// on, not before. A hook this kernel lacks (`inode_set_acl` before 6.2) gets 0 and 0: its
/// program is not loaded there (`kernel::loader`, `OPTIONAL_HOOKS`).
pub const HOOK_ARGS: &[(&str, &str, &str)] = &[
    (
        "INODE_SETATTR_DENTRY_ARG",
        "INODE_SETATTR_RETVAL_ARG",
        "inode_setattr",
    ),
    (
        "INODE_SETXATTR_DENTRY_ARG",
        "INODE_SETXATTR_RETVAL_ARG",
        "inode_setxattr",
    ),
    (
        "INODE_REMOVEXATTR_DENTRY_ARG",
        "INODE_REMOVEXATTR_RETVAL_ARG",
        "inode_removexattr",
    ),
    (
        "INODE_SET_ACL_DENTRY_ARG",
        "INODE_SET_ACL_RETVAL_ARG",
        "inode_set_acl",
    ),
    (
        "INODE_REMOVE_ACL_DENTRY_ARG",
        "INODE_REMOVE_ACL_RETVAL_ARG",
        "inode_remove_acl",
    ),
];

/// The link of `sb->s_mounts` in `struct mount`: `mnt_instance` (a `list_head` ring, up to
/// 6.14) or `mnt_next_for_sb` (a NULL-terminated `struct mount *` list, later), as
/// `(MOUNT_SB_LINK_OFF, SB_MOUNTS_LINKED_BY_POINTER)`.
fn sb_mount_link(btf: &Btf) -> Result<(u64, u64), BtfError> {
    match btf.member_offset("mount", "mnt_instance") {
        Ok(off) => Ok((off, 0)),
        Err(BtfError::NoMember { .. }) => Ok((btf.member_offset("mount", "mnt_next_for_sb")?, 1)),
        Err(e) => Err(e),
    }
}

/// `(dentry position, verdict position)` of `hook`'s arguments, `None` if this kernel has no
/// such LSM hook.
pub fn hook_dentry_arg(btf: &Btf, hook: &str) -> Result<Option<(u64, u64)>, BtfError> {
    let func = format!("bpf_lsm_{hook}");
    if !btf.has_func(&func) {
        return Ok(None);
    }
    btf.func_param_pointing_to(&func, "dentry").map(Some)
}

/// One-bit bitfields the eBPF side tests, as (offset global, mask global, struct, member).
/// Optional: a kernel without one gets mask 0, which turns the fast path it enables off.
pub const OPTIONAL_BITS: &[(&str, &str, &str, &str)] = &[(
    "TASK_STRUCT_IN_EXECVE_OFF",
    "TASK_STRUCT_IN_EXECVE_MASK",
    "task_struct",
    "in_execve",
)];

/// Every offset in [`NEEDED`], in order, or the first that this kernel's BTF lacks; then
/// the byte offset and mask of each [`OPTIONAL_BITS`] member (mask 0 where it is missing),
/// the `s_mounts` link, and the [`HOOK_ARGS`] positions.
pub fn resolve(btf: &Btf) -> Result<Vec<(&'static str, u64)>, BtfError> {
    let mut out = NEEDED
        .iter()
        .map(|&(global, strukt, member)| Ok((global, btf.member_offset(strukt, member)?)))
        .collect::<Result<Vec<_>, BtfError>>()?;
    for &(off_global, mask_global, strukt, member) in OPTIONAL_BITS {
        let (off, mask) = btf.member_bit(strukt, member).unwrap_or((0, 0));
        out.push((off_global, off));
        out.push((mask_global, u64::from(mask)));
    }
    let (link, by_pointer) = sb_mount_link(btf)?;
    out.push(("MOUNT_SB_LINK_OFF", link));
    out.push(("SB_MOUNTS_LINKED_BY_POINTER", by_pointer));
    for &(dentry_global, retval_global, hook) in HOOK_ARGS {
        let (dentry, retval) = hook_dentry_arg(btf, hook)?.unwrap_or((0, 0));
        out.push((dentry_global, dentry));
        out.push((retval_global, retval));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the running kernel (where its BTF is readable): every global resolves, and the
    /// metadata hooks' dentry and verdict positions are those of its generation.
    #[test]
    fn running_kernel_resolves_metadata_hook_arguments() {
        let Ok(btf) = Btf::from_sys_fs() else {
            println!("skipped: no kernel BTF");
            return;
        };
        let all = resolve(&btf).unwrap();
        let get = |name: &str| all.iter().find(|(g, _)| *g == name).unwrap().1;
        // 6.3 and later: (idmap, dentry, attr); 6.1: (dentry, attr).
        let (dentry, retval) = hook_dentry_arg(&btf, "inode_setattr").unwrap().unwrap();
        assert!(
            (dentry, retval) == (1, 3) || (dentry, retval) == (0, 2),
            "{dentry} {retval}"
        );
        assert_eq!(get("INODE_SETATTR_DENTRY_ARG"), dentry);
        assert_eq!(get("INODE_SETATTR_RETVAL_ARG"), retval);
        assert_eq!(
            hook_dentry_arg(&btf, "inode_removexattr").unwrap(),
            Some((1, 3))
        );
        assert_eq!(hook_dentry_arg(&btf, "no_such_hook").unwrap(), None);
        assert!(get("SB_MOUNTS_LINKED_BY_POINTER") <= 1);
    }
}
