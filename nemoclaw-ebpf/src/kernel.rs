//! Kernel struct offsets and reads. Rust eBPF has no CO-RE, so userspace reads member
//! offsets from the running kernel's BTF and writes them into these read-only globals
//! before load; the verifier sees frozen `.rodata` as constants (see DESIGN.md, "Struct
//! offsets at load time").

use core::ffi::c_void;

use aya_ebpf::helpers::bpf_probe_read_kernel;

/// Declares a `.rodata` offset that userspace overrides (`EbpfLoader::override_global`).
macro_rules! offsets {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[unsafe(no_mangle)]
            pub(crate) static $name: u64 = 0;
        )*
    };
}

offsets! {
    /// `struct linux_binprm`, member `file`.
    LINUX_BINPRM_FILE_OFF,
    /// `struct file`, member `f_path`.
    FILE_F_PATH_OFF,
    /// `struct file`, member `f_inode`.
    FILE_F_INODE_OFF,
    /// `struct inode`, member `i_ino`.
    INODE_I_INO_OFF,
    /// `struct inode`, member `i_sb`.
    INODE_I_SB_OFF,
    /// `struct super_block`, member `s_dev`.
    SUPER_BLOCK_S_DEV_OFF,
    /// `struct file`, member `f_mode`.
    FILE_F_MODE_OFF,
    /// `struct file`, member `f_flags`.
    FILE_F_FLAGS_OFF,
    /// `struct path`, member `mnt`.
    PATH_MNT_OFF,
    /// `struct path`, member `dentry`.
    PATH_DENTRY_OFF,
    /// `struct dentry`, member `d_parent`.
    DENTRY_D_PARENT_OFF,
    /// `struct dentry`, member `d_name`.
    DENTRY_D_NAME_OFF,
    /// `struct dentry`, member `d_inode`.
    DENTRY_D_INODE_OFF,
    /// `struct qstr`, member `len`.
    QSTR_LEN_OFF,
    /// `struct qstr`, member `name`.
    QSTR_NAME_OFF,
    /// `struct vfsmount`, member `mnt_root`.
    VFSMOUNT_MNT_ROOT_OFF,
    /// `struct mount`, member `mnt` (the embedded `struct vfsmount`).
    MOUNT_MNT_OFF,
    /// `struct mount`, member `mnt_parent`.
    MOUNT_MNT_PARENT_OFF,
    /// `struct mount`, member `mnt_mountpoint`.
    MOUNT_MNT_MOUNTPOINT_OFF,
    /// `struct task_struct`, member `fs`.
    TASK_STRUCT_FS_OFF,
    /// `struct fs_struct`, member `root`.
    FS_STRUCT_ROOT_OFF,
}

#[inline(always)]
pub(crate) fn offset(global: &'static u64) -> usize {
    // SAFETY: a plain read of a static; volatile so the compiler does not fold the 0.
    unsafe { core::ptr::read_volatile(global) as usize }
}

/// `bprm->file`, kept as a BTF-typed (trusted) pointer: a direct load at a constant offset
/// from the hook's argument, which the verifier types as `struct file *`.
#[inline(always)]
pub fn bprm_file(bprm: *const c_void) -> *const c_void {
    // SAFETY: `bprm` is the hook's `struct linux_binprm *`; the verifier checks the access.
    unsafe {
        core::ptr::read_volatile(
            bprm.cast::<u8>().add(offset(&LINUX_BINPRM_FILE_OFF)).cast::<*const c_void>(),
        )
    }
}

/// `&file->f_path`, for `bpf_d_path`.
#[inline(always)]
pub fn file_path(file: *const c_void) -> *mut aya_ebpf::bindings::path {
    // SAFETY: pointer arithmetic only; the verifier checks the member type at this offset.
    unsafe { file.cast::<u8>().add(offset(&FILE_F_PATH_OFF)).cast_mut().cast() }
}

/// The kernel `dev_t` and inode number of `file`'s inode.
#[inline(always)]
pub fn file_dev_ino(file: *const c_void) -> Result<(u64, u64), i32> {
    // SAFETY: every read goes through `bpf_probe_read_kernel`, which faults safely.
    unsafe {
        let inode: *const u8 =
            bpf_probe_read_kernel(file.cast::<u8>().add(offset(&FILE_F_INODE_OFF)).cast())?;
        let ino: u64 = bpf_probe_read_kernel(inode.add(offset(&INODE_I_INO_OFF)).cast())?;
        let sb: *const u8 = bpf_probe_read_kernel(inode.add(offset(&INODE_I_SB_OFF)).cast())?;
        let dev: u32 = bpf_probe_read_kernel(sb.add(offset(&SUPER_BLOCK_S_DEV_OFF)).cast())?;
        Ok((u64::from(dev), ino))
    }
}
