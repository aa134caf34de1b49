//! Kernel struct offsets and reads. Rust eBPF has no CO-RE, so userspace reads member
//! offsets from the running kernel's BTF and writes them into these read-only globals
//! before load; the verifier sees frozen `.rodata` as constants (see DESIGN.md, "Struct
//! offsets at load time").
#![warn(clippy::missing_docs_in_private_items)]

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
/// The value userspace wrote into an offset global before load (`.rodata`), as a `usize`.
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
            bprm.cast::<u8>()
                .add(offset(&LINUX_BINPRM_FILE_OFF))
                .cast::<*const c_void>(),
        )
    }
}

/// `&file->f_path`, for `bpf_d_path`.
#[inline(always)]
pub fn file_path(file: *const c_void) -> *mut aya_ebpf::bindings::path {
    // SAFETY: pointer arithmetic only; the verifier checks the member type at this offset.
    unsafe {
        file.cast::<u8>()
            .add(offset(&FILE_F_PATH_OFF))
            .cast_mut()
            .cast()
    }
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

// Privilege control and exec hardening (issue 5).
offsets! {
    /// `struct cred`, members `uid`, `euid`, `suid`, `fsuid` (each a `kuid_t`).
    CRED_UID_OFF,
    CRED_EUID_OFF,
    CRED_SUID_OFF,
    CRED_FSUID_OFF,
    /// `struct cred`, members `gid`, `egid`, `sgid`, `fsgid` (each a `kgid_t`).
    CRED_GID_OFF,
    CRED_EGID_OFF,
    CRED_SGID_OFF,
    CRED_FSGID_OFF,
    /// `struct inode`, members `i_mode` (`umode_t`), `i_uid`, `i_gid`.
    INODE_I_MODE_OFF,
    INODE_I_UID_OFF,
    INODE_I_GID_OFF,
    /// `struct task_struct`, members `tgid` and `cgroups` (`struct css_set *`).
    TASK_STRUCT_TGID_OFF,
    TASK_STRUCT_CGROUPS_OFF,
    /// `struct css_set`, member `dfl_cgrp` (the task's cgroup v2).
    CSS_SET_DFL_CGRP_OFF,
    /// `struct cgroup`, member `kn`.
    CGROUP_KN_OFF,
    /// `struct kernfs_node`, member `id` (what `bpf_get_current_cgroup_id` returns).
    KERNFS_NODE_ID_OFF,
    /// `struct vm_area_struct`, member `vm_file`.
    VM_AREA_STRUCT_VM_FILE_OFF,
    /// `struct super_block`, member `s_magic`.
    SUPER_BLOCK_S_MAGIC_OFF,
    /// `struct inode`, member `i_rdev` (the device number of a device node).
    INODE_I_RDEV_OFF,
    /// `struct vm_area_struct`, member `anon_vma` (set once private pages were written).
    VM_AREA_STRUCT_ANON_VMA_OFF,
    /// `struct task_struct`, member `mm`.
    TASK_STRUCT_MM_OFF,
    /// `struct mm_struct`, member `exe_file`.
    MM_STRUCT_EXE_FILE_OFF,
    /// `struct task_struct`, one-bit member `in_execve` (set while the task is in
    /// `execve`): the byte that holds it and its mask there. A mask of 0 (a kernel without
    /// the member) turns off the fast path that uses it.
    TASK_STRUCT_IN_EXECVE_OFF,
    TASK_STRUCT_IN_EXECVE_MASK,
}

/// Reads a `T` at `global`'s offset from `base`.
///
/// # Safety
/// `base` must be a kernel pointer; the read itself faults safely.
#[inline(always)]
unsafe fn read_at<T>(base: *const c_void, global: &'static u64) -> Result<T, i32> {
    // SAFETY: `bpf_probe_read_kernel` checks the address.
    unsafe { bpf_probe_read_kernel(base.cast::<u8>().add(offset(global)).cast()) }
}

/// `[uid, euid, suid, fsuid]` of a `struct cred`.
#[inline(always)]
pub fn cred_uids(cred: *const c_void) -> Result<[u32; 4], i32> {
    // SAFETY: probe reads of a kernel pointer.
    unsafe {
        Ok([
            read_at(cred, &CRED_UID_OFF)?,
            read_at(cred, &CRED_EUID_OFF)?,
            read_at(cred, &CRED_SUID_OFF)?,
            read_at(cred, &CRED_FSUID_OFF)?,
        ])
    }
}

/// `[gid, egid, sgid, fsgid]` of a `struct cred`.
#[inline(always)]
pub fn cred_gids(cred: *const c_void) -> Result<[u32; 4], i32> {
    // SAFETY: probe reads of a kernel pointer.
    unsafe {
        Ok([
            read_at(cred, &CRED_GID_OFF)?,
            read_at(cred, &CRED_EGID_OFF)?,
            read_at(cred, &CRED_SGID_OFF)?,
            read_at(cred, &CRED_FSGID_OFF)?,
        ])
    }
}

/// `(i_mode, i_uid, i_gid)` of `file`'s inode.
#[inline(always)]
pub fn file_mode_owner(file: *const c_void) -> Result<(u16, u32, u32), i32> {
    // SAFETY: probe reads of kernel pointers.
    unsafe {
        let inode: *const c_void = read_at(file, &FILE_F_INODE_OFF)?;
        Ok((
            read_at(inode, &INODE_I_MODE_OFF)?,
            read_at(inode, &INODE_I_UID_OFF)?,
            read_at(inode, &INODE_I_GID_OFF)?,
        ))
    }
}

/// A task's thread-group id.
#[inline(always)]
pub fn task_tgid(task: *const c_void) -> Result<u32, i32> {
    // SAFETY: probe read of a kernel pointer.
    unsafe { read_at(task, &TASK_STRUCT_TGID_OFF) }
}

/// A task's cgroup v2 id: `task->cgroups->dfl_cgrp->kn->id`, the value
/// `bpf_get_current_cgroup_id` gives for the current task. Probe reads: a task migrating
/// concurrently yields its old or new cgroup, or an error (callers deny on error).
#[inline(always)]
pub fn task_cgroup_id(task: *const c_void) -> Result<u64, i32> {
    // SAFETY: probe reads of kernel pointers.
    unsafe {
        let css_set: *const c_void = read_at(task, &TASK_STRUCT_CGROUPS_OFF)?;
        let cgroup: *const c_void = read_at(css_set, &CSS_SET_DFL_CGRP_OFF)?;
        let kn: *const c_void = read_at(cgroup, &CGROUP_KN_OFF)?;
        read_at(kn, &KERNFS_NODE_ID_OFF)
    }
}

/// Whether `vma` holds private pages written since it was mapped (`vma->anon_vma` is set by
/// the first copy-on-write fault): for a file mapping, code of the task's own making.
/// Unreadable reads as written (callers deny).
#[inline(always)]
pub fn vma_has_anon_pages(vma: *const c_void) -> bool {
    // SAFETY: probe read of a kernel pointer.
    (unsafe { read_at::<u64>(vma, &VM_AREA_STRUCT_ANON_VMA_OFF) }) != Ok(0)
}

/// `vma->vm_file` (null for anonymous memory).
#[inline(always)]
pub fn vma_file(vma: *const c_void) -> Result<*const c_void, i32> {
    // SAFETY: probe read of a kernel pointer.
    unsafe { read_at(vma, &VM_AREA_STRUCT_VM_FILE_OFF) }
}

/// Hook argument `n` as a plain number. The verifier types pointer arguments from BTF as
/// non-null, so `ctx.arg::<*const T>(n).is_null()` is pruned as always false even where the
/// kernel passes NULL (`mmap_file`'s file for anonymous memory, `task_kill`'s cred); a
/// probe read of the context slot yields a scalar it must test.
#[inline(always)]
pub fn raw_arg(ctx: &aya_ebpf::programs::LsmContext, n: usize) -> u64 {
    use aya_ebpf::EbpfContext as _;
    // SAFETY: the LSM context is an array of u64 arguments; the read faults safely.
    unsafe { bpf_probe_read_kernel(ctx.as_ptr().cast::<u64>().add(n)) }.unwrap_or(0)
}

/// `file->f_mode` and `file->f_flags`, by direct loads (`file` BTF-typed, as for
/// [`btf_file_dev_ino`]); a fault reads as 0.
#[inline(always)]
pub fn btf_file_mode_flags(file: *const c_void) -> (u32, u32) {
    // SAFETY: loads at BTF-checked constant offsets; faults read as zero.
    unsafe {
        let f = file.cast::<u8>();
        (
            core::ptr::read_volatile(f.add(offset(&FILE_F_MODE_OFF)).cast::<u32>()),
            core::ptr::read_volatile(f.add(offset(&FILE_F_FLAGS_OFF)).cast::<u32>()),
        )
    }
}

/// How a file is opened and what it is: `file->f_mode`, and its inode's `i_mode`, `i_rdev`
/// and file system magic.
pub struct OpenKind {
    /// `file->f_mode`.
    pub f_mode: u32,
    /// The inode's `i_mode`.
    pub i_mode: u16,
    /// The inode's `i_rdev` (device files).
    pub rdev: u32,
    /// The file system's magic (`sb->s_magic`).
    pub magic: u64,
}

#[inline(always)]
/// Reads [`OpenKind`] of `file` (a `struct file *`).
pub fn file_open_kind(file: *const c_void) -> Result<OpenKind, i32> {
    // SAFETY: probe reads of kernel pointers.
    unsafe {
        let f_mode: u32 = read_at(file, &FILE_F_MODE_OFF)?;
        let inode: *const c_void = read_at(file, &FILE_F_INODE_OFF)?;
        let i_mode: u16 = read_at(inode, &INODE_I_MODE_OFF)?;
        let rdev: u32 = read_at(inode, &INODE_I_RDEV_OFF)?;
        let sb: *const c_void = read_at(inode, &INODE_I_SB_OFF)?;
        Ok(OpenKind {
            f_mode,
            i_mode,
            rdev,
            magic: read_at(sb, &SUPER_BLOCK_S_MAGIC_OFF)?,
        })
    }
}

/// The kernel `dev_t` and inode number of `file`'s inode, by direct loads: `file` must be a
/// BTF-typed pointer (a hook argument, or a member loaded from one, such as
/// `bprm->file`). The verifier turns these into fault-safe `PROBE_MEM` loads, much cheaper
/// than a `bpf_probe_read_kernel` call each; a missing inode reads as (0, 0), which no rule
/// holds.
#[inline(always)]
pub fn btf_file_dev_ino(file: *const c_void) -> (u64, u64) {
    // SAFETY: loads at BTF-checked constant offsets; faults are handled by the verifier's
    // exception table and read as zero.
    unsafe {
        let inode = core::ptr::read_volatile(
            file.cast::<u8>()
                .add(offset(&FILE_F_INODE_OFF))
                .cast::<*const u8>(),
        );
        let ino = core::ptr::read_volatile(inode.add(offset(&INODE_I_INO_OFF)).cast::<u64>());
        let sb = core::ptr::read_volatile(inode.add(offset(&INODE_I_SB_OFF)).cast::<*const u8>());
        let dev = core::ptr::read_volatile(sb.add(offset(&SUPER_BLOCK_S_DEV_OFF)).cast::<u32>());
        (u64::from(dev), ino)
    }
}

/// The kernel `dev_t` and inode number of `dentry`'s inode by direct loads, as
/// [`btf_file_dev_ino`] does for a file: `dentry` must be BTF-typed (a hook's argument, or
/// loaded from one); `(0, 0)` for a negative dentry.
#[inline(always)]
pub fn btf_dentry_dev_ino(dentry: u64) -> (u64, u64) {
    // SAFETY: loads at BTF-checked constant offsets; faults read as zero.
    unsafe {
        let inode = core::ptr::read_volatile(
            (dentry as *const u8)
                .add(offset(&DENTRY_D_INODE_OFF))
                .cast::<*const u8>(),
        );
        if inode.is_null() {
            return (0, 0);
        }
        let ino = core::ptr::read_volatile(inode.add(offset(&INODE_I_INO_OFF)).cast::<u64>());
        let sb = core::ptr::read_volatile(inode.add(offset(&INODE_I_SB_OFF)).cast::<*const u8>());
        let dev = core::ptr::read_volatile(sb.add(offset(&SUPER_BLOCK_S_DEV_OFF)).cast::<u32>());
        (u64::from(dev), ino)
    }
}

/// `dentry->d_sb` by a direct load: `dentry` must be BTF-typed, as for
/// [`btf_dentry_dev_ino`]; 0 if it faults.
#[inline(always)]
pub fn btf_dentry_sb(dentry: u64) -> u64 {
    // SAFETY: a load at a BTF-checked constant offset; a fault reads as zero.
    unsafe {
        core::ptr::read_volatile(
            (dentry as *const u8)
                .add(offset(&DENTRY_D_SB_OFF))
                .cast::<u64>(),
        )
    }
}

/// `dentry->d_name` as (`len`, `name`) by direct loads: `dentry` must be BTF-typed, as for
/// [`btf_dentry_dev_ino`]; `(0, 0)` if it faults.
#[inline(always)]
pub fn btf_dentry_name(dentry: u64) -> (usize, u64) {
    // SAFETY: loads at BTF-checked constant offsets; faults read as zero.
    unsafe {
        let name = (dentry as *const u8).add(offset(&DENTRY_D_NAME_OFF));
        (
            core::ptr::read_volatile(name.add(offset(&QSTR_LEN_OFF)).cast::<u32>()) as usize,
            core::ptr::read_volatile(name.add(offset(&QSTR_NAME_OFF)).cast::<u64>()),
        )
    }
}

/// `path->mnt` and `path->dentry` by direct loads: `path` must be BTF-typed (a hook's
/// `const struct path *` argument); `(0, 0)` if either is missing.
#[inline(always)]
pub fn btf_path_parts(path: *const c_void) -> (u64, u64) {
    // SAFETY: loads at BTF-checked constant offsets; faults read as zero.
    let (mnt, dentry) = unsafe {
        let path = path.cast::<u8>();
        (
            core::ptr::read_volatile(path.add(offset(&PATH_MNT_OFF)).cast::<u64>()),
            core::ptr::read_volatile(path.add(offset(&PATH_DENTRY_OFF)).cast::<u64>()),
        )
    };
    if mnt == 0 || dentry == 0 {
        (0, 0)
    } else {
        (mnt, dentry)
    }
}

// Network control: unix sockets (the task's executable uses the offsets above).
offsets! {
    /// `struct socket`, member `sk`.
    SOCKET_SK_OFF,
    /// `struct unix_sock`, members `addr` (`struct unix_address *`) and `path` (the bound
    /// file system object; no dentry for abstract and unnamed sockets).
    UNIX_SOCK_ADDR_OFF,
    UNIX_SOCK_PATH_OFF,
    /// `struct unix_address`, members `len` and `name` (a `struct sockaddr_un`).
    UNIX_ADDRESS_LEN_OFF,
    UNIX_ADDRESS_NAME_OFF,
    /// `struct sock`, member `sk_cgrp_data`; `struct sock_cgroup_data`, member `cgroup`: the
    /// cgroup v2 of the task that created the socket.
    SOCK_SK_CGRP_DATA_OFF,
    SOCK_CGROUP_DATA_CGROUP_OFF,
    /// `struct cgroup`, members `level` and `ancestors` (`ancestors[i]` is the ancestor at
    /// level `i`, the cgroup itself at its own level).
    CGROUP_LEVEL_OFF,
    CGROUP_ANCESTORS_OFF,
    /// `struct msghdr`, members `msg_control` (a kernel copy of the ancillary data by the
    /// time `socket_sendmsg` runs) and `msg_controllen`.
    MSGHDR_MSG_CONTROL_OFF,
    MSGHDR_MSG_CONTROLLEN_OFF,
    /// `struct sock`, member `__sk_common`; `struct sock_common`, members `skc_family`,
    /// `skc_num` (the bound local port, host order; 0 if unbound), `skc_rcv_saddr` (the
    /// bound IPv4 address) and `skc_v6_rcv_saddr` (the bound IPv6 address): what a socket
    /// listens on, for `socket_listen`.
    SOCK_SK_COMMON_OFF,
    SOCK_COMMON_SKC_FAMILY_OFF,
    SOCK_COMMON_SKC_NUM_OFF,
    SOCK_COMMON_SKC_RCV_SADDR_OFF,
    SOCK_COMMON_SKC_V6_RCV_SADDR_OFF,
    /// `struct socket`, member `type` (`SOCK_STREAM` 1): only stream sockets listen.
    SOCKET_TYPE_OFF,
}

/// The bound local address of an IPv4 or IPv6 `struct sock`: `(family, port, address)`,
/// the address in network order (4 bytes used for `AF_INET`, 16 for `AF_INET6`).
#[inline(always)]
pub fn sock_local(sk: *const c_void) -> Result<(u16, u16, [u8; 16]), i32> {
    // SAFETY: probe reads of a kernel pointer.
    unsafe {
        let common = sk
            .cast::<u8>()
            .add(offset(&SOCK_SK_COMMON_OFF))
            .cast::<c_void>();
        let family: u16 = read_at(common, &SOCK_COMMON_SKC_FAMILY_OFF)?;
        let port: u16 = read_at(common, &SOCK_COMMON_SKC_NUM_OFF)?;
        let mut addr = [0u8; 16];
        if family == 10 {
            addr = read_at(common, &SOCK_COMMON_SKC_V6_RCV_SADDR_OFF)?;
        } else {
            let v4: [u8; 4] = read_at(common, &SOCK_COMMON_SKC_RCV_SADDR_OFF)?;
            addr[..4].copy_from_slice(&v4);
        }
        Ok((family, port, addr))
    }
}

/// `sock->type` of a `struct socket` (0 if unreadable).
#[inline(always)]
pub fn socket_type(sock: *const c_void) -> u16 {
    // SAFETY: probe read; faults read as 0.
    unsafe { read_at::<u16>(sock, &SOCKET_TYPE_OFF) }.unwrap_or(0)
}

/// `msg->msg_control` and `msg->msg_controllen` of a `struct msghdr`.
#[inline(always)]
pub fn msghdr_control(msg: *const c_void) -> Result<(u64, u64), i32> {
    // SAFETY: probe reads of a kernel pointer.
    unsafe {
        Ok((
            read_at(msg, &MSGHDR_MSG_CONTROL_OFF)?,
            read_at(msg, &MSGHDR_MSG_CONTROLLEN_OFF)?,
        ))
    }
}

/// A `struct cmsghdr` at kernel address `at`: `(cmsg_len, cmsg_level, cmsg_type)`.
#[inline(always)]
pub fn cmsghdr(at: u64) -> Result<(u64, i32, i32), i32> {
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Cmsghdr {
        len: u64,
        level: i32,
        kind: i32,
    }
    // SAFETY: `bpf_probe_read_kernel` checks the address.
    let h: Cmsghdr = unsafe { bpf_probe_read_kernel(at as *const Cmsghdr) }?;
    Ok((h.len, h.level, h.kind))
}

/// The kernel `dev_t` and inode of the current task's executable (`current->mm->exe_file`),
/// or `(0, 0)` if it has none (kernel threads) or it cannot be read.
#[inline(always)]
pub fn current_exe_dev_ino() -> (u64, u64) {
    // SAFETY: helper without arguments; the pointer is only read through probes.
    let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() } as *const c_void;
    current_exe_inner(task).unwrap_or((0, 0))
}

#[inline(always)]
/// The (device, inode) of `task`'s executable (`mm->exe_file`), or the read's error.
fn current_exe_inner(task: *const c_void) -> Result<(u64, u64), i32> {
    // SAFETY: probe reads of kernel pointers.
    unsafe {
        let mm: *const c_void = read_at(task, &TASK_STRUCT_MM_OFF)?;
        if mm.is_null() {
            return Err(0);
        }
        let file: *const c_void = read_at(mm, &MM_STRUCT_EXE_FILE_OFF)?;
        if file.is_null() {
            return Err(0);
        }
        file_dev_ino(file)
    }
}

/// `*(base + global's offset)` as a pointer-sized number (0 when unreadable).
#[inline(always)]
pub fn read_u64_at(base: u64, global: &'static u64) -> u64 {
    // SAFETY: probe read; faults read as an error.
    unsafe { read_at::<u64>(base as *const c_void, global) }.unwrap_or(0)
}

/// The cgroup v2 id of `cgroup` and of its ancestor at `level` (0 when it is not that
/// deep): `(cgroup->kn->id, cgroup->ancestors[level]->kn->id)`.
#[inline(always)]
pub fn cgroup_ids(cgroup: u64, level: u32) -> (u64, u64) {
    let id = |cg: u64| {
        let kn = read_u64_at(cg, &CGROUP_KN_OFF);
        if kn == 0 {
            0
        } else {
            read_u64_at(kn, &KERNFS_NODE_ID_OFF)
        }
    };
    if cgroup == 0 {
        return (0, 0);
    }
    let own = id(cgroup);
    // SAFETY: probe read of a kernel pointer.
    let depth: i32 = unsafe { read_at(cgroup as *const c_void, &CGROUP_LEVEL_OFF) }.unwrap_or(-1);
    if depth < level as i32 {
        return (own, 0);
    }
    let slot = cgroup + offset(&CGROUP_ANCESTORS_OFF) as u64 + 8 * u64::from(level);
    // SAFETY: probe read; `level <= depth`, so `ancestors[level]` exists.
    let ancestor = unsafe { bpf_probe_read_kernel(slot as *const u64) }.unwrap_or(0);
    (own, if ancestor == 0 { 0 } else { id(ancestor) })
}

/// Whether `file` is the executable that the current task's `execve` is loading: the task
/// is in `execve` (`in_execve`) and `file` is its new `mm->exe_file`. During `execve` the
/// task runs no code of its own, so a mapping of that file is the kernel's ELF loader
/// mapping the binary that `bprm_check_security` has just judged (it runs for the file
/// `exe_file` is set to, after every `#!` or `binfmt_misc` round). Other threads of the
/// process have their own `in_execve`. Direct loads from the BTF-typed current task: a
/// kernel thread's null `mm` reads as 0.
#[inline(always)]
pub fn is_exec_loading(file: *const c_void) -> bool {
    let mask = offset(&TASK_STRUCT_IN_EXECVE_MASK) as u8;
    if mask == 0 {
        return false;
    }
    // SAFETY: loads at BTF-checked constant offsets from the current task (a trusted
    // pointer); faults read as zero.
    unsafe {
        let task = aya_ebpf::helpers::generated::bpf_get_current_task_btf().cast::<u8>();
        let flags = core::ptr::read_volatile(task.add(offset(&TASK_STRUCT_IN_EXECVE_OFF)));
        if flags & mask == 0 {
            return false;
        }
        let mm =
            core::ptr::read_volatile(task.add(offset(&TASK_STRUCT_MM_OFF)).cast::<*const u8>());
        let exe = core::ptr::read_volatile(mm.add(offset(&MM_STRUCT_EXE_FILE_OFF)).cast::<u64>());
        exe != 0 && exe == file as u64
    }
}

// Metadata writes (`fs_attr.rs`): the mounts through which a dentry can be reached.
offsets! {
    /// `struct dentry`, member `d_sb`.
    DENTRY_D_SB_OFF,
    /// `struct super_block`, member `s_mounts`: the head of the list of the file system's
    /// mounts (a `struct list_head` until 6.14, a `struct mount *` after).
    SUPER_BLOCK_S_MOUNTS_OFF,
    /// `struct mount`, the link of that list: `mnt_instance` (a `struct list_head`) or
    /// `mnt_next_for_sb` (a `struct mount *`), as [`SB_MOUNTS_LINKED_BY_POINTER`] says.
    MOUNT_SB_LINK_OFF,
    /// 0: `s_mounts` is a `list_head` ring through `mnt_instance`; 1: a NULL-terminated
    /// singly linked list through `mnt_next_for_sb`.
    SB_MOUNTS_LINKED_BY_POINTER,
    /// `struct mount`, member `mnt_ns`.
    MOUNT_MNT_NS_OFF,
    /// `struct task_struct`, member `nsproxy`; `struct nsproxy`, member `mnt_ns`.
    TASK_STRUCT_NSPROXY_OFF,
    NSPROXY_MNT_NS_OFF,
}

// The argument positions of the metadata hooks, from the kernel's BTF (the func proto of
// `bpf_lsm_<hook>`): the `struct dentry *` argument and the previous LSMs' verdict (the
// argument after the last). `inode_setattr` gained a first argument in 6.3 (`mnt_idmap`).
offsets! {
    INODE_SETATTR_DENTRY_ARG,
    INODE_SETATTR_RETVAL_ARG,
    INODE_SETXATTR_DENTRY_ARG,
    INODE_SETXATTR_RETVAL_ARG,
    INODE_REMOVEXATTR_DENTRY_ARG,
    INODE_REMOVEXATTR_RETVAL_ARG,
    INODE_SET_ACL_DENTRY_ARG,
    INODE_SET_ACL_RETVAL_ARG,
    INODE_REMOVE_ACL_DENTRY_ARG,
    INODE_REMOVE_ACL_RETVAL_ARG,
}
