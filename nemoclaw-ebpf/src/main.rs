//! NemoClaw's kernel side. This file only declares the programs; each control has its own
//! module. Hooks need BPF LSM (`CONFIG_BPF_LSM=y`, `bpf` in `lsm=`) for the `#[lsm]`
//! programs and cgroup v2 for the `#[cgroup_sock_addr]` ones.
#![no_std]
#![no_main]

mod dns;
mod event;
mod exec;
mod fs;
mod fs_attr;
mod kernel;
mod maps;
mod net;
mod privilege;
mod sandbox;
mod scratch;

use aya_ebpf::{
    macros::{cgroup_sock, cgroup_sock_addr, cgroup_sockopt, lsm},
    programs::{LsmContext, SockAddrContext, SockContext, SockoptContext},
};

/// `security_bprm_check_security(struct linux_binprm *bprm)`: judges every exec, including
/// each interpreter of a `#!` chain.
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    exec::bprm_check_security(&ctx)
}

/// A no-op `bprm_check_security` program: the cost floor for benchmarks and the program
/// `nemoclaw doctor` loads to prove BPF LSM works on this kernel.
#[lsm(hook = "bprm_check_security")]
pub fn noop_bprm_check_security(_ctx: LsmContext) -> i32 {
    0
}

/// `security_file_open(struct file *)`: every open, including exec's and io_uring's.
#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    fs::file_open(&ctx)
}

/// A no-op `file_open` program: the cost floor for the filesystem benchmark.
#[lsm(hook = "file_open")]
pub fn noop_file_open(_ctx: LsmContext) -> i32 {
    0
}

/// `security_path_unlink(const struct path *dir, struct dentry *dentry)`.
#[lsm(hook = "path_unlink")]
pub fn path_unlink(ctx: LsmContext) -> i32 {
    fs::path_hook(&ctx, nemoclaw_common::event::hook::PATH_UNLINK, true, 2)
}

/// `security_path_rmdir(const struct path *dir, struct dentry *dentry)`.
#[lsm(hook = "path_rmdir")]
pub fn path_rmdir(ctx: LsmContext) -> i32 {
    fs::path_hook(&ctx, nemoclaw_common::event::hook::PATH_RMDIR, true, 2)
}

/// `security_path_mkdir(const struct path *dir, struct dentry *dentry, umode_t mode)`.
#[lsm(hook = "path_mkdir")]
pub fn path_mkdir(ctx: LsmContext) -> i32 {
    fs::path_hook(&ctx, nemoclaw_common::event::hook::PATH_MKDIR, true, 3)
}

/// `security_path_mknod(dir, dentry, mode, dev)`: also every `open(O_CREAT)` that creates.
#[lsm(hook = "path_mknod")]
pub fn path_mknod(ctx: LsmContext) -> i32 {
    fs::path_hook(&ctx, nemoclaw_common::event::hook::PATH_MKNOD, true, 4)
}

/// `security_path_symlink(dir, dentry, const char *old_name)`.
#[lsm(hook = "path_symlink")]
pub fn path_symlink(ctx: LsmContext) -> i32 {
    fs::path_hook(&ctx, nemoclaw_common::event::hook::PATH_SYMLINK, true, 3)
}

/// `security_path_truncate(const struct path *path)`.
#[lsm(hook = "path_truncate")]
pub fn path_truncate(ctx: LsmContext) -> i32 {
    fs::path_hook(&ctx, nemoclaw_common::event::hook::PATH_TRUNCATE, false, 1)
}

/// `security_path_chmod(const struct path *path, umode_t mode)`.
#[lsm(hook = "path_chmod")]
pub fn path_chmod(ctx: LsmContext) -> i32 {
    fs::path_hook(&ctx, nemoclaw_common::event::hook::PATH_CHMOD, false, 2)
}

/// `security_path_chown(const struct path *path, kuid_t uid, kgid_t gid)`.
#[lsm(hook = "path_chown")]
pub fn path_chown(ctx: LsmContext) -> i32 {
    fs::path_hook(&ctx, nemoclaw_common::event::hook::PATH_CHOWN, false, 3)
}

/// `security_path_notify(path, mask, obj_type)`: watches judged as reads of the path.
#[lsm(hook = "path_notify")]
pub fn path_notify(ctx: LsmContext) -> i32 {
    fs::path_notify(&ctx)
}

// Metadata writes (`fs_attr.rs`): judged as writes of every path the task can reach the
// dentry by. `inode_set_acl` and `inode_remove_acl` exist from 6.2 (loaded where present).

#[allow(clippy::needless_pass_by_value)] // the macro's signature
#[lsm(hook = "inode_setattr")]
pub fn inode_setattr(ctx: LsmContext) -> i32 {
    fs_attr::inode_setattr(&ctx)
}

#[allow(clippy::needless_pass_by_value)] // the macro's signature
#[lsm(hook = "inode_setxattr")]
pub fn inode_setxattr(ctx: LsmContext) -> i32 {
    fs_attr::inode_setxattr(&ctx)
}

#[allow(clippy::needless_pass_by_value)] // the macro's signature
#[lsm(hook = "inode_removexattr")]
pub fn inode_removexattr(ctx: LsmContext) -> i32 {
    fs_attr::inode_removexattr(&ctx)
}

#[allow(clippy::needless_pass_by_value)] // the macro's signature
#[lsm(hook = "inode_set_acl")]
pub fn inode_set_acl(ctx: LsmContext) -> i32 {
    fs_attr::inode_set_acl(&ctx)
}

/// File attribute flags by `ioctl` (`chattr`), as the filesystem control's write.
#[allow(clippy::needless_pass_by_value)] // the macro's signature
#[lsm(hook = "file_ioctl")]
pub fn fs_file_ioctl(ctx: LsmContext) -> i32 {
    fs_attr::file_ioctl(&ctx, nemoclaw_common::event::hook::FS_FILE_IOCTL)
}

/// The same for 32-bit `ioctl`s (where the kernel has the hook: 6.8, 6.1.75+).
#[allow(clippy::needless_pass_by_value)] // the macro's signature
#[lsm(hook = "file_ioctl_compat")]
pub fn fs_file_ioctl_compat(ctx: LsmContext) -> i32 {
    fs_attr::file_ioctl(&ctx, nemoclaw_common::event::hook::FS_FILE_IOCTL_COMPAT)
}

#[allow(clippy::needless_pass_by_value)] // the macro's signature
#[lsm(hook = "inode_remove_acl")]
pub fn inode_remove_acl(ctx: LsmContext) -> i32 {
    fs_attr::inode_remove_acl(&ctx)
}

/// `security_path_rename(old_dir, old_dentry, new_dir, new_dentry, flags)`.
#[lsm(hook = "path_rename")]
pub fn path_rename(ctx: LsmContext) -> i32 {
    fs::path_rename(&ctx)
}

/// `security_path_rename` again: directory renames that would move objects across a rule.
#[lsm(hook = "path_rename")]
pub fn path_rename_subtrees(ctx: LsmContext) -> i32 {
    fs::path_rename_subtrees(&ctx)
}

/// `security_path_link(old_dentry, new_dir, new_dentry)`.
#[lsm(hook = "path_link")]
pub fn path_link(ctx: LsmContext) -> i32 {
    fs::path_link(&ctx)
}

/// `security_socket_create(family, type, protocol, kern)`: socket kinds the network rules
/// cannot judge (raw, packet, netlink other than route, vsock, ...) are denied.
#[lsm(hook = "socket_create")]
pub fn socket_create(ctx: LsmContext) -> i32 {
    net::socket_create(&ctx)
}

/// `security_unix_stream_connect(sock, other, newsk)`: pathname unix sockets are judged by
/// the filesystem rules (write), abstract ones must belong to the same sandbox.
#[lsm(hook = "unix_stream_connect")]
pub fn unix_stream_connect(ctx: LsmContext) -> i32 {
    net::unix_stream_connect(&ctx)
}

/// `security_unix_may_send(sock, other)`: datagram connect and send, judged as above.
#[lsm(hook = "unix_may_send")]
pub fn unix_may_send(ctx: LsmContext) -> i32 {
    net::unix_may_send(&ctx)
}

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    net::judge4(&ctx, nemoclaw_common::event::hook::CONNECT4)
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    net::judge6(&ctx, nemoclaw_common::event::hook::CONNECT6)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    net::judge4(&ctx, nemoclaw_common::event::hook::SENDMSG4)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    net::judge6(&ctx, nemoclaw_common::event::hook::SENDMSG6)
}

/// `recvmsg4/6`: a reply from the DNS gateway reads as coming from the server the socket
/// addressed (`dns.rs`).
#[cgroup_sock_addr(recvmsg4)]
pub fn recvmsg4(ctx: SockAddrContext) -> i32 {
    dns::restore::<false>(&ctx)
}

#[cgroup_sock_addr(recvmsg6)]
pub fn recvmsg6(ctx: SockAddrContext) -> i32 {
    dns::restore::<true>(&ctx)
}

/// `getpeername4/6`: a socket redirected to the DNS gateway names the server it addressed.
#[cgroup_sock_addr(getpeername4)]
pub fn getpeername4(ctx: SockAddrContext) -> i32 {
    dns::restore::<false>(&ctx)
}

#[cgroup_sock_addr(getpeername6)]
pub fn getpeername6(ctx: SockAddrContext) -> i32 {
    dns::restore::<true>(&ctx)
}

#[lsm(hook = "socket_setsockopt")]
pub fn socket_setsockopt(ctx: LsmContext) -> i32 {
    net::socket_setsockopt(&ctx)
}

#[lsm(hook = "socket_sendmsg")]
pub fn socket_sendmsg(ctx: LsmContext) -> i32 {
    net::socket_sendmsg(&ctx)
}

/// Cgroup `bind4`/`bind6`: binding a non-loopback address to a port no `network.listen`
/// entry opens (every kernel).
#[cgroup_sock_addr(bind4)]
pub fn bind4(ctx: SockAddrContext) -> i32 {
    net::bind4(&ctx)
}

#[cgroup_sock_addr(bind6)]
pub fn bind6(ctx: SockAddrContext) -> i32 {
    net::bind6(&ctx)
}

/// `security_socket_listen(sock, backlog)`: a TCP listener on a non-loopback address whose
/// port no `network.listen` entry opens (ephemeral ports included).
#[lsm(hook = "socket_listen")]
pub fn socket_listen(ctx: LsmContext) -> i32 {
    net::socket_listen(&ctx)
}

#[cgroup_sock(sock_create)]
pub fn sock_create(ctx: SockContext) -> i32 {
    net::sock_create(&ctx)
}

/// cgroup `setsockopt`: destination-overriding socket options (routing headers, next hop,
/// IPv4 options), refused where BPF LSM does not run as where it does.
#[cgroup_sockopt(setsockopt)]
pub fn setsockopt(ctx: SockoptContext) -> i32 {
    net::setsockopt(&ctx)
}

/// A no-op `connect4` program (1 = allow): the cost floor for the network benchmark.
#[cgroup_sock_addr(connect4)]
pub fn noop_connect4(_ctx: SockAddrContext) -> i32 {
    1
}

/// A no-op `sendmsg4` program (1 = allow): the cost floor for the network benchmark.
#[cgroup_sock_addr(sendmsg4)]
pub fn noop_sendmsg4(_ctx: SockAddrContext) -> i32 {
    1
}

// Exec hardening (process control) and `privilege_escalation: deny`: see `exec.rs` and
// `privilege.rs` for what each judges.

#[lsm(hook = "mmap_file")]
pub fn mmap_file(ctx: LsmContext) -> i32 {
    exec::mmap_file(&ctx)
}

#[lsm(hook = "file_mprotect")]
pub fn file_mprotect(ctx: LsmContext) -> i32 {
    exec::file_mprotect(&ctx)
}

/// No-op `mmap_file` and `file_mprotect` programs: with `noop_bprm_check_security`, the
/// cost floor on the same hooks as the process control, for the exec benchmark.
#[lsm(hook = "mmap_file")]
pub fn noop_mmap_file(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "file_mprotect")]
pub fn noop_file_mprotect(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "bprm_creds_from_file")]
pub fn bprm_creds_from_file(ctx: LsmContext) -> i32 {
    privilege::bprm_creds_from_file(&ctx)
}

#[lsm(hook = "task_fix_setuid")]
pub fn task_fix_setuid(ctx: LsmContext) -> i32 {
    privilege::task_fix_setuid(&ctx)
}

#[lsm(hook = "task_fix_setgid")]
pub fn task_fix_setgid(ctx: LsmContext) -> i32 {
    privilege::task_fix_setgid(&ctx)
}

#[lsm(hook = "capable")]
pub fn capable(ctx: LsmContext) -> i32 {
    privilege::capable(&ctx)
}

#[lsm(hook = "userns_create")]
pub fn userns_create(ctx: LsmContext) -> i32 {
    privilege::userns_create(&ctx)
}

#[lsm(hook = "sb_mount")]
pub fn sb_mount(ctx: LsmContext) -> i32 {
    privilege::sb_mount(&ctx)
}

#[lsm(hook = "move_mount")]
pub fn move_mount(ctx: LsmContext) -> i32 {
    privilege::move_mount(&ctx)
}

#[lsm(hook = "sb_umount")]
pub fn sb_umount(ctx: LsmContext) -> i32 {
    privilege::sb_umount(&ctx)
}

#[lsm(hook = "bpf")]
pub fn bpf(ctx: LsmContext) -> i32 {
    privilege::bpf(&ctx)
}

#[lsm(hook = "perf_event_open")]
pub fn perf_event_open(ctx: LsmContext) -> i32 {
    privilege::perf_event_open(&ctx)
}

/// `security_syslog(type)`: reading or clearing the kernel log.
#[lsm(hook = "syslog")]
pub fn syslog(ctx: LsmContext) -> i32 {
    privilege::syslog(&ctx)
}

/// `security_mmap_addr(addr)`: mappings below 64 KiB.
#[lsm(hook = "mmap_addr")]
pub fn mmap_addr(ctx: LsmContext) -> i32 {
    privilege::mmap_addr(&ctx)
}

#[lsm(hook = "kernel_module_request")]
pub fn kernel_module_request(ctx: LsmContext) -> i32 {
    privilege::kernel_module_request(&ctx)
}

#[lsm(hook = "ptrace_access_check")]
pub fn ptrace_access_check(ctx: LsmContext) -> i32 {
    privilege::ptrace_access_check(&ctx)
}

#[lsm(hook = "task_kill")]
pub fn task_kill(ctx: LsmContext) -> i32 {
    privilege::task_kill(&ctx)
}

#[lsm(hook = "task_setnice")]
pub fn task_setnice(ctx: LsmContext) -> i32 {
    privilege::task_setnice(&ctx)
}

#[lsm(hook = "task_setioprio")]
pub fn task_setioprio(ctx: LsmContext) -> i32 {
    privilege::task_setioprio(&ctx)
}

#[lsm(hook = "task_setscheduler")]
pub fn task_setscheduler(ctx: LsmContext) -> i32 {
    privilege::task_setscheduler(&ctx)
}

#[lsm(hook = "task_setrlimit")]
pub fn task_setrlimit(ctx: LsmContext) -> i32 {
    privilege::task_setrlimit(&ctx)
}

#[lsm(hook = "task_movememory")]
pub fn task_movememory(ctx: LsmContext) -> i32 {
    privilege::task_movememory(&ctx)
}

#[lsm(hook = "file_send_sigiotask")]
pub fn file_send_sigiotask(ctx: LsmContext) -> i32 {
    privilege::file_send_sigiotask(&ctx)
}

#[lsm(hook = "file_fcntl")]
pub fn file_fcntl(ctx: LsmContext) -> i32 {
    privilege::file_fcntl(&ctx)
}

#[lsm(hook = "file_ioctl_compat")]
pub fn file_ioctl_compat(ctx: LsmContext) -> i32 {
    privilege::file_ioctl_compat(&ctx)
}

#[lsm(hook = "task_alloc")]
pub fn task_alloc(ctx: LsmContext) -> i32 {
    privilege::task_alloc(&ctx)
}

#[lsm(hook = "key_alloc")]
pub fn key_alloc(ctx: LsmContext) -> i32 {
    privilege::key_alloc(&ctx)
}

#[lsm(hook = "key_permission")]
pub fn key_permission(ctx: LsmContext) -> i32 {
    privilege::key_permission(&ctx)
}

#[lsm(hook = "file_open")]
pub fn privilege_file_open(ctx: LsmContext) -> i32 {
    privilege::file_open(&ctx)
}

#[lsm(hook = "file_ioctl")]
pub fn file_ioctl(ctx: LsmContext) -> i32 {
    privilege::file_ioctl(&ctx)
}

// Only for the BPF target: a host build (`cargo clippy --workspace`) links `std` through
// the workspace's unified features, and `std` brings its own.
#[cfg(all(not(test), target_arch = "bpf"))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
