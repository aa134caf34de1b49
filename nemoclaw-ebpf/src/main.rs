//! `NemoClaw`'s kernel side. This file only declares the programs; each control has its own
//! module. Hooks need BPF LSM (`CONFIG_BPF_LSM=y`, `bpf` in `lsm=`) for the `#[lsm]`
//! programs and cgroup v2 for the `#[cgroup_sock_addr]` ones.
//!
//! Every program says the hook it serves and the kernel it needs: BPF LSM programs need
//! 5.7+ with BPF LSM active, some hooks are newer (noted on the program); cgroup programs
//! need cgroup v2 and the attach type's kernel. The programs on `inode_set_acl`,
//! `inode_remove_acl` and `file_ioctl_compat` are loaded only where the kernel has the hook.
//!
//! Docs: every program and the license are documented by hand; every module (maps,
//! helpers) enforces `clippy::missing_docs_in_private_items`. `missing_docs` is allowed
//! here only because aya's program macros wrap each program in an exported (`no_mangle`)
//! function that does not carry its docs, so the lint would flag every program.
#![no_std]
#![no_main]
// `asm!` on BPF: the kfunc call aya cannot relocate (`fs/d_path.rs`, `kfunc`).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]
#![allow(
    missing_docs,
    reason = "aya's program macros generate an undocumented exported wrapper per program"
)]
// Clippy allowances for the whole kernel side (`docs/architecture.md`, "Lints").
#![allow(
    clippy::inline_always,
    reason = "every helper is inlined into its program: the programs make no BPF-to-BPF \
              calls (each costs an SRSO-safe return on affected hosts, docs/network.md) and \
              the verifier tracks context and kernel pointer types only within one function"
)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "aya's program macros hand each program its context by value"
)]
#![allow(
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "kernel ABI values (errnos, ids, flags, socket fields) are reinterpreted between \
              signed and unsigned as the kernel's own C does"
)]
#![allow(
    clippy::cast_ptr_alignment,
    reason = "byte pointers into kernel structs and map values are cast at offsets the \
              kernel's layout aligns (from BTF); the loads go through \
              `bpf_probe_read_kernel` or are bounds-checked by the verifier"
)]
#![allow(
    clippy::needless_borrows_for_generic_args,
    reason = "map keys are passed by reference: by value, a key (up to 512 bytes) could be \
              copied onto the 512-byte BPF stack"
)]

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
///
/// Hook: LSM `bprm_check_security` (`bpf_lsm_bprm_check_security`); needs BPF LSM, 5.7+.
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    exec::bprm_check_security(&ctx)
}

/// A no-op `bprm_check_security` program: the cost floor for benchmarks and the program
/// `nemoclaw doctor` loads to prove BPF LSM works on this kernel.
///
/// Hook: LSM `bprm_check_security` (`bpf_lsm_bprm_check_security`); needs BPF LSM, 5.7+.
#[lsm(hook = "bprm_check_security")]
pub fn noop_bprm_check_security(_ctx: LsmContext) -> i32 {
    0
}

/// `security_file_open(struct file *)`: every open, including exec's and `io_uring`'s, by
/// the filesystem rules and then, under `privilege_escalation: deny`, the privilege
/// control's refusals (kernel-interface files, devices). One program for both controls: the
/// sandbox is looked up once, and the hook pays one program run, not two (opens are the
/// hottest hook there is).
///
/// Hook: LSM `file_open` (`bpf_lsm_file_open`); needs BPF LSM, 5.7+.
#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    let earlier: i32 = ctx.arg(1);
    if earlier != 0 {
        return earlier;
    }
    let (cgroup_id, entry) = sandbox::current_entry();
    let verdict = fs::file_open(&ctx, cgroup_id, entry);
    if verdict != 0 {
        return verdict;
    }
    privilege::file_open(&ctx, cgroup_id, entry)
}

/// A no-op `file_open` program: the cost floor for the filesystem benchmark.
///
/// Hook: LSM `file_open` (`bpf_lsm_file_open`); needs BPF LSM, 5.7+.
#[lsm(hook = "file_open")]
pub fn noop_file_open(_ctx: LsmContext) -> i32 {
    0
}

/// `security_path_unlink(const struct path *dir, struct dentry *dentry)`.
///
/// Hook: LSM `path_unlink` (`bpf_lsm_path_unlink`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_unlink")]
pub fn path_unlink(ctx: LsmContext) -> i32 {
    fs::path_hook::<{ fs::D_PATH_HELPER }>(&ctx, nemoclaw_common::event::hook::PATH_UNLINK, true, 2)
}

/// `security_path_rmdir(const struct path *dir, struct dentry *dentry)`.
///
/// Hook: LSM `path_rmdir` (`bpf_lsm_path_rmdir`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_rmdir")]
pub fn path_rmdir(ctx: LsmContext) -> i32 {
    fs::path_hook::<{ fs::D_PATH_HELPER }>(&ctx, nemoclaw_common::event::hook::PATH_RMDIR, true, 2)
}

/// `security_path_mkdir(const struct path *dir, struct dentry *dentry, umode_t mode)`.
///
/// Hook: LSM `path_mkdir` (`bpf_lsm_path_mkdir`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_mkdir")]
pub fn path_mkdir(ctx: LsmContext) -> i32 {
    fs::path_hook::<{ fs::D_PATH_HELPER }>(&ctx, nemoclaw_common::event::hook::PATH_MKDIR, true, 3)
}

/// `security_path_mknod(dir, dentry, mode, dev)`: also every `open(O_CREAT)` that creates.
///
/// Hook: LSM `path_mknod` (`bpf_lsm_path_mknod`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_mknod")]
pub fn path_mknod(ctx: LsmContext) -> i32 {
    fs::path_hook::<{ fs::D_PATH_KFUNC }>(&ctx, nemoclaw_common::event::hook::PATH_MKNOD, true, 4)
}

/// `security_path_symlink(dir, dentry, const char *old_name)`.
///
/// Hook: LSM `path_symlink` (`bpf_lsm_path_symlink`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_symlink")]
pub fn path_symlink(ctx: LsmContext) -> i32 {
    fs::path_hook::<{ fs::D_PATH_HELPER }>(
        &ctx,
        nemoclaw_common::event::hook::PATH_SYMLINK,
        true,
        3,
    )
}

/// `security_path_truncate(const struct path *path)`.
///
/// Hook: LSM `path_truncate` (`bpf_lsm_path_truncate`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_truncate")]
pub fn path_truncate(ctx: LsmContext) -> i32 {
    fs::path_hook::<{ fs::D_PATH_HELPER }>(
        &ctx,
        nemoclaw_common::event::hook::PATH_TRUNCATE,
        false,
        1,
    )
}

/// `security_path_chmod(const struct path *path, umode_t mode)`.
///
/// Hook: LSM `path_chmod` (`bpf_lsm_path_chmod`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_chmod")]
pub fn path_chmod(ctx: LsmContext) -> i32 {
    fs::path_hook::<{ fs::D_PATH_HELPER }>(&ctx, nemoclaw_common::event::hook::PATH_CHMOD, false, 2)
}

/// `security_path_chown(const struct path *path, kuid_t uid, kgid_t gid)`.
///
/// Hook: LSM `path_chown` (`bpf_lsm_path_chown`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_chown")]
pub fn path_chown(ctx: LsmContext) -> i32 {
    fs::path_hook::<{ fs::D_PATH_HELPER }>(&ctx, nemoclaw_common::event::hook::PATH_CHOWN, false, 3)
}

/// `security_path_notify(path, mask, obj_type)`: watches judged as reads of the path.
///
/// Hook: LSM `path_notify` (`bpf_lsm_path_notify`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_notify")]
pub fn path_notify(ctx: LsmContext) -> i32 {
    fs::path_notify(&ctx)
}

// Metadata writes (`fs_attr.rs`): judged as writes of every path the task can reach the
// dentry by. `inode_set_acl` and `inode_remove_acl` exist from 6.2 (loaded where present).

/// `security_inode_setattr`: attribute changes (mode, owner, size, times) on a dentry,
/// judged as writes of every path the task can reach it by (`fs_attr.rs`).
///
/// Hook: LSM `inode_setattr` (`bpf_lsm_inode_setattr`); needs BPF LSM, 5.7+.
#[lsm(hook = "inode_setattr")]
pub fn inode_setattr(ctx: LsmContext) -> i32 {
    fs_attr::inode_setattr(&ctx)
}

/// `security_inode_setxattr`: setting an extended attribute, judged as a write
/// (`fs_attr.rs`).
///
/// Hook: LSM `inode_setxattr` (`bpf_lsm_inode_setxattr`); needs BPF LSM, 5.7+.
#[lsm(hook = "inode_setxattr")]
pub fn inode_setxattr(ctx: LsmContext) -> i32 {
    fs_attr::inode_setxattr(&ctx)
}

/// `security_inode_removexattr`: removing an extended attribute, judged as a write
/// (`fs_attr.rs`).
///
/// Hook: LSM `inode_removexattr` (`bpf_lsm_inode_removexattr`); needs BPF LSM, 5.7+.
#[lsm(hook = "inode_removexattr")]
pub fn inode_removexattr(ctx: LsmContext) -> i32 {
    fs_attr::inode_removexattr(&ctx)
}

/// `security_inode_set_acl`: setting a POSIX ACL, judged as a write (`fs_attr.rs`); loaded
/// where the kernel has the hook.
///
/// Hook: LSM `inode_set_acl` (`bpf_lsm_inode_set_acl`); needs BPF LSM, 5.7+, and a kernel
/// with the hook (6.2+).
#[lsm(hook = "inode_set_acl")]
pub fn inode_set_acl(ctx: LsmContext) -> i32 {
    fs_attr::inode_set_acl(&ctx)
}

/// File attribute flags by `ioctl` (`chattr`), as the filesystem control's write.
///
/// Hook: LSM `file_ioctl` (`bpf_lsm_file_ioctl`); needs BPF LSM, 5.7+.
#[lsm(hook = "file_ioctl")]
pub fn fs_file_ioctl(ctx: LsmContext) -> i32 {
    fs_attr::file_ioctl(&ctx, nemoclaw_common::event::hook::FS_FILE_IOCTL)
}

/// The same for 32-bit `ioctl`s (where the kernel has the hook: 6.8, 6.1.75+).
///
/// Hook: LSM `file_ioctl_compat` (`bpf_lsm_file_ioctl_compat`); needs BPF LSM, 5.7+, and a
/// kernel with the hook (6.8, 6.1.75+ by backport).
#[lsm(hook = "file_ioctl_compat")]
pub fn fs_file_ioctl_compat(ctx: LsmContext) -> i32 {
    fs_attr::file_ioctl(&ctx, nemoclaw_common::event::hook::FS_FILE_IOCTL_COMPAT)
}

/// `security_inode_remove_acl`: removing a POSIX ACL, judged as a write (`fs_attr.rs`);
/// loaded where the kernel has the hook.
///
/// Hook: LSM `inode_remove_acl` (`bpf_lsm_inode_remove_acl`); needs BPF LSM, 5.7+, and a
/// kernel with the hook (6.2+).
#[lsm(hook = "inode_remove_acl")]
pub fn inode_remove_acl(ctx: LsmContext) -> i32 {
    fs_attr::inode_remove_acl(&ctx)
}

/// `security_path_rename(old_dir, old_dentry, new_dir, new_dentry, flags)`.
///
/// Hook: LSM `path_rename` (`bpf_lsm_path_rename`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_rename")]
pub fn path_rename(ctx: LsmContext) -> i32 {
    fs::path_rename(&ctx)
}

/// `security_path_rename` again: directory renames that would move objects across a rule.
///
/// Hook: LSM `path_rename` (`bpf_lsm_path_rename`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_rename")]
pub fn path_rename_subtrees(ctx: LsmContext) -> i32 {
    fs::path_rename_subtrees(&ctx)
}

/// `security_path_link(old_dentry, new_dir, new_dentry)`.
///
/// Hook: LSM `path_link` (`bpf_lsm_path_link`); needs BPF LSM, 5.7+.
#[lsm(hook = "path_link")]
pub fn path_link(ctx: LsmContext) -> i32 {
    fs::path_link(&ctx)
}

/// `security_socket_create(family, type, protocol, kern)`: socket kinds the network rules
/// cannot judge (raw, packet, netlink other than route, vsock, ...) are denied.
///
/// Hook: LSM `socket_create` (`bpf_lsm_socket_create`); needs BPF LSM, 5.7+.
#[lsm(hook = "socket_create")]
pub fn socket_create(ctx: LsmContext) -> i32 {
    net::socket_create(&ctx)
}

/// `security_unix_stream_connect(sock, other, newsk)`: pathname unix sockets are judged by
/// the filesystem rules (write), abstract ones must belong to the same sandbox.
///
/// Hook: LSM `unix_stream_connect` (`bpf_lsm_unix_stream_connect`); needs BPF LSM, 5.7+.
#[lsm(hook = "unix_stream_connect")]
pub fn unix_stream_connect(ctx: LsmContext) -> i32 {
    net::unix_stream_connect(&ctx)
}

/// `security_unix_may_send(sock, other)`: datagram connect and send, judged as above.
///
/// Hook: LSM `unix_may_send` (`bpf_lsm_unix_may_send`); needs BPF LSM, 5.7+.
#[lsm(hook = "unix_may_send")]
pub fn unix_may_send(ctx: LsmContext) -> i32 {
    net::unix_may_send(&ctx)
}

/// Cgroup `connect4`: an IPv4 `connect` (TCP, and connected UDP), judged by the network
/// rules; DNS is redirected to the sandbox's gateway.
///
/// Hook: cgroup `sock_addr` `connect4` (`BPF_CGROUP_INET4_CONNECT`), on cgroup v2; 4.17+.
#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    net::judge4(&ctx, nemoclaw_common::event::hook::CONNECT4)
}

/// Cgroup `connect6`: as [`connect4`] for IPv6 (IPv4-mapped destinations judged as IPv4).
///
/// Hook: cgroup `sock_addr` `connect6` (`BPF_CGROUP_INET6_CONNECT`), on cgroup v2; 4.17+.
#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    net::judge6(&ctx, nemoclaw_common::event::hook::CONNECT6)
}

/// Cgroup `sendmsg4`: an unconnected IPv4 UDP send, judged by the network rules.
///
/// Hook: cgroup `sock_addr` `sendmsg4` (`BPF_CGROUP_UDP4_SENDMSG`), on cgroup v2; 4.18+.
#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    net::judge4(&ctx, nemoclaw_common::event::hook::SENDMSG4)
}

/// Cgroup `sendmsg6`: as [`sendmsg4`] for IPv6.
///
/// Hook: cgroup `sock_addr` `sendmsg6` (`BPF_CGROUP_UDP6_SENDMSG`), on cgroup v2; 4.18+.
#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    net::judge6(&ctx, nemoclaw_common::event::hook::SENDMSG6)
}

/// `recvmsg4/6`: a reply from the DNS gateway reads as coming from the server the socket
/// addressed (`dns.rs`).
///
/// Hook: cgroup `sock_addr` `recvmsg4` (`BPF_CGROUP_UDP4_RECVMSG`), on cgroup v2; 5.2+.
#[cgroup_sock_addr(recvmsg4)]
pub fn recvmsg4(ctx: SockAddrContext) -> i32 {
    dns::restore::<false>(&ctx)
}

/// `recvmsg6`: as [`recvmsg4`] for IPv6.
///
/// Hook: cgroup `sock_addr` `recvmsg6` (`BPF_CGROUP_UDP6_RECVMSG`), on cgroup v2; 5.2+.
#[cgroup_sock_addr(recvmsg6)]
pub fn recvmsg6(ctx: SockAddrContext) -> i32 {
    dns::restore::<true>(&ctx)
}

/// `getpeername4/6`: a socket redirected to the DNS gateway names the server it addressed.
///
/// Hook: cgroup `sock_addr` `getpeername4` (`BPF_CGROUP_INET4_GETPEERNAME`), on cgroup v2;
/// 5.8+.
#[cgroup_sock_addr(getpeername4)]
pub fn getpeername4(ctx: SockAddrContext) -> i32 {
    dns::restore::<false>(&ctx)
}

/// `getpeername6`: as [`getpeername4`] for IPv6.
///
/// Hook: cgroup `sock_addr` `getpeername6` (`BPF_CGROUP_INET6_GETPEERNAME`), on cgroup v2;
/// 5.8+.
#[cgroup_sock_addr(getpeername6)]
pub fn getpeername6(ctx: SockAddrContext) -> i32 {
    dns::restore::<true>(&ctx)
}

/// `security_socket_setsockopt`: destination-overriding socket options (IPv6 routing
/// headers, next hop, IPv4 options) refused in a sandbox with a network section.
///
/// Hook: LSM `socket_setsockopt` (`bpf_lsm_socket_setsockopt`); needs BPF LSM, 5.7+.
#[lsm(hook = "socket_setsockopt")]
pub fn socket_setsockopt(ctx: LsmContext) -> i32 {
    net::socket_setsockopt(&ctx)
}

/// `security_socket_sendmsg`: the same options as ancillary data of one `sendmsg`.
///
/// Hook: LSM `socket_sendmsg` (`bpf_lsm_socket_sendmsg`); needs BPF LSM, 5.7+.
#[lsm(hook = "socket_sendmsg")]
pub fn socket_sendmsg(ctx: LsmContext) -> i32 {
    net::socket_sendmsg(&ctx)
}

/// Cgroup `bind4`/`bind6`: binding a non-loopback address to a port no `network.listen`
/// entry opens (every kernel).
///
/// Hook: cgroup `sock_addr` `bind4` (`BPF_CGROUP_INET4_BIND`), on cgroup v2; 4.17+.
#[cgroup_sock_addr(bind4)]
pub fn bind4(ctx: SockAddrContext) -> i32 {
    net::bind4(&ctx)
}

/// Cgroup `bind6`: as [`bind4`] for IPv6.
///
/// Hook: cgroup `sock_addr` `bind6` (`BPF_CGROUP_INET6_BIND`), on cgroup v2; 4.17+.
#[cgroup_sock_addr(bind6)]
pub fn bind6(ctx: SockAddrContext) -> i32 {
    net::bind6(&ctx)
}

/// `security_socket_listen(sock, backlog)`: a TCP listener on a non-loopback address whose
/// port no `network.listen` entry opens (ephemeral ports included).
///
/// Hook: LSM `socket_listen` (`bpf_lsm_socket_listen`); needs BPF LSM, 5.7+.
#[lsm(hook = "socket_listen")]
pub fn socket_listen(ctx: LsmContext) -> i32 {
    net::socket_listen(&ctx)
}

/// Cgroup `sock_create`: IPv4/IPv6 sockets of a kind the network rules cannot judge,
/// refused on every kernel (also where BPF LSM does not run).
///
/// Hook: cgroup `sock` `sock_create` (`BPF_CGROUP_INET_SOCK_CREATE`), on cgroup v2; 4.10+.
#[cgroup_sock(sock_create)]
pub fn sock_create(ctx: SockContext) -> i32 {
    net::sock_create(&ctx)
}

/// cgroup `setsockopt`: destination-overriding socket options (routing headers, next hop,
/// IPv4 options), refused where BPF LSM does not run as where it does.
///
/// Hook: cgroup `sockopt` `setsockopt` (`BPF_CGROUP_SETSOCKOPT`), on cgroup v2; 5.3+.
#[cgroup_sockopt(setsockopt)]
pub fn setsockopt(ctx: SockoptContext) -> i32 {
    net::setsockopt(&ctx)
}

/// A no-op `connect4` program (1 = allow): the cost floor for the network benchmark.
///
/// Hook: cgroup `sock_addr` `connect4` (`BPF_CGROUP_INET4_CONNECT`), on cgroup v2; 4.17+.
#[cgroup_sock_addr(connect4)]
pub fn noop_connect4(_ctx: SockAddrContext) -> i32 {
    1
}

/// A no-op `sendmsg4` program (1 = allow): the cost floor for the network benchmark.
///
/// Hook: cgroup `sock_addr` `sendmsg4` (`BPF_CGROUP_UDP4_SENDMSG`), on cgroup v2; 4.18+.
#[cgroup_sock_addr(sendmsg4)]
pub fn noop_sendmsg4(_ctx: SockAddrContext) -> i32 {
    1
}

// Exec hardening (process control) and `privilege_escalation: deny`: see `exec.rs` and
// `privilege.rs` for what each judges.

/// `security_mmap_file`: executable file mappings only of allowed binaries and library
/// directories; under `process.anonymous_exec: deny` no anonymous or writable executable
/// mapping.
///
/// Hook: LSM `mmap_file` (`bpf_lsm_mmap_file`); needs BPF LSM, 5.7+.
#[lsm(hook = "mmap_file")]
pub fn mmap_file(ctx: LsmContext) -> i32 {
    exec::mmap_file(&ctx)
}

/// `security_file_mprotect`: making a mapping executable later, judged as [`mmap_file`]
/// would have.
///
/// Hook: LSM `file_mprotect` (`bpf_lsm_file_mprotect`); needs BPF LSM, 5.7+.
#[lsm(hook = "file_mprotect")]
pub fn file_mprotect(ctx: LsmContext) -> i32 {
    exec::file_mprotect(&ctx)
}

/// No-op `mmap_file` and `file_mprotect` programs: with `noop_bprm_check_security`, the
/// cost floor on the same hooks as the process control, for the exec benchmark.
///
/// Hook: LSM `mmap_file` (`bpf_lsm_mmap_file`); needs BPF LSM, 5.7+.
#[lsm(hook = "mmap_file")]
pub fn noop_mmap_file(_ctx: LsmContext) -> i32 {
    0
}

/// See [`noop_mmap_file`].
///
/// Hook: LSM `file_mprotect` (`bpf_lsm_file_mprotect`); needs BPF LSM, 5.7+.
#[lsm(hook = "file_mprotect")]
pub fn noop_file_mprotect(_ctx: LsmContext) -> i32 {
    0
}

/// `security_bprm_creds_from_file`: executing a setuid/setgid file that would change the
/// task's ids.
///
/// Hook: LSM `bprm_creds_from_file` (`bpf_lsm_bprm_creds_from_file`); needs BPF LSM, 5.7+,
/// and a kernel with the hook (5.8+).
#[lsm(hook = "bprm_creds_from_file")]
pub fn bprm_creds_from_file(ctx: LsmContext) -> i32 {
    privilege::bprm_creds_from_file(&ctx)
}

/// `security_task_fix_setuid`: any uid change.
///
/// Hook: LSM `task_fix_setuid` (`bpf_lsm_task_fix_setuid`); needs BPF LSM, 5.7+.
#[lsm(hook = "task_fix_setuid")]
pub fn task_fix_setuid(ctx: LsmContext) -> i32 {
    privilege::task_fix_setuid(&ctx)
}

/// `security_task_fix_setgid`: any gid change.
///
/// Hook: LSM `task_fix_setgid` (`bpf_lsm_task_fix_setgid`); needs BPF LSM, 5.7+, and a
/// kernel with the hook (5.10+).
#[lsm(hook = "task_fix_setgid")]
pub fn task_fix_setgid(ctx: LsmContext) -> i32 {
    privilege::task_fix_setgid(&ctx)
}

/// `security_capable`: every capability check of a sandboxed task fails.
///
/// Hook: LSM `capable` (`bpf_lsm_capable`); needs BPF LSM, 5.7+.
#[lsm(hook = "capable")]
pub fn capable(ctx: LsmContext) -> i32 {
    privilege::capable(&ctx)
}

/// `security_userns_create`: no new user namespace.
///
/// Hook: LSM `userns_create` (`bpf_lsm_userns_create`); needs BPF LSM, 5.7+, and a kernel
/// with the hook (6.1+).
#[lsm(hook = "userns_create")]
pub fn userns_create(ctx: LsmContext) -> i32 {
    privilege::userns_create(&ctx)
}

/// `security_sb_mount`: no mount.
///
/// Hook: LSM `sb_mount` (`bpf_lsm_sb_mount`); needs BPF LSM, 5.7+.
#[lsm(hook = "sb_mount")]
pub fn sb_mount(ctx: LsmContext) -> i32 {
    privilege::sb_mount(&ctx)
}

/// `security_move_mount`: no moving of mounts.
///
/// Hook: LSM `move_mount` (`bpf_lsm_move_mount`); needs BPF LSM, 5.7+.
#[lsm(hook = "move_mount")]
pub fn move_mount(ctx: LsmContext) -> i32 {
    privilege::move_mount(&ctx)
}

/// `security_sb_umount`: no unmount.
///
/// Hook: LSM `sb_umount` (`bpf_lsm_sb_umount`); needs BPF LSM, 5.7+.
#[lsm(hook = "sb_umount")]
pub fn sb_umount(ctx: LsmContext) -> i32 {
    privilege::sb_umount(&ctx)
}

/// `security_bpf`: no `bpf()` command.
///
/// Hook: LSM `bpf` (`bpf_lsm_bpf`); needs BPF LSM, 5.7+.
#[lsm(hook = "bpf")]
pub fn bpf(ctx: LsmContext) -> i32 {
    privilege::bpf(&ctx)
}

/// `security_perf_event_open`: no perf event.
///
/// Hook: LSM `perf_event_open` (`bpf_lsm_perf_event_open`); needs BPF LSM, 5.7+.
#[lsm(hook = "perf_event_open")]
pub fn perf_event_open(ctx: LsmContext) -> i32 {
    privilege::perf_event_open(&ctx)
}

/// `security_syslog(type)`: reading or clearing the kernel log.
///
/// Hook: LSM `syslog` (`bpf_lsm_syslog`); needs BPF LSM, 5.7+.
#[lsm(hook = "syslog")]
pub fn syslog(ctx: LsmContext) -> i32 {
    privilege::syslog(&ctx)
}

/// `security_mmap_addr(addr)`: mappings below 64 KiB.
///
/// Hook: LSM `mmap_addr` (`bpf_lsm_mmap_addr`); needs BPF LSM, 5.7+.
#[lsm(hook = "mmap_addr")]
pub fn mmap_addr(ctx: LsmContext) -> i32 {
    privilege::mmap_addr(&ctx)
}

/// `security_kernel_module_request`: no module load request.
///
/// Hook: LSM `kernel_module_request` (`bpf_lsm_kernel_module_request`); needs BPF LSM,
/// 5.7+.
#[lsm(hook = "kernel_module_request")]
pub fn kernel_module_request(ctx: LsmContext) -> i32 {
    privilege::kernel_module_request(&ctx)
}

/// `security_ptrace_access_check`: no tracing of a task outside the sandbox.
///
/// Hook: LSM `ptrace_access_check` (`bpf_lsm_ptrace_access_check`); needs BPF LSM, 5.7+.
#[lsm(hook = "ptrace_access_check")]
pub fn ptrace_access_check(ctx: LsmContext) -> i32 {
    privilege::ptrace_access_check(&ctx)
}

/// `security_task_kill`: no signal to a task outside the sandbox.
///
/// Hook: LSM `task_kill` (`bpf_lsm_task_kill`); needs BPF LSM, 5.7+.
#[lsm(hook = "task_kill")]
pub fn task_kill(ctx: LsmContext) -> i32 {
    privilege::task_kill(&ctx)
}

/// `security_task_setnice`: no change of another task's nice value.
///
/// Hook: LSM `task_setnice` (`bpf_lsm_task_setnice`); needs BPF LSM, 5.7+.
#[lsm(hook = "task_setnice")]
pub fn task_setnice(ctx: LsmContext) -> i32 {
    privilege::task_setnice(&ctx)
}

/// `security_task_setioprio`: no change of another task's I/O priority.
///
/// Hook: LSM `task_setioprio` (`bpf_lsm_task_setioprio`); needs BPF LSM, 5.7+.
#[lsm(hook = "task_setioprio")]
pub fn task_setioprio(ctx: LsmContext) -> i32 {
    privilege::task_setioprio(&ctx)
}

/// `security_task_setscheduler`: no change of another task's scheduling.
///
/// Hook: LSM `task_setscheduler` (`bpf_lsm_task_setscheduler`); needs BPF LSM, 5.7+.
#[lsm(hook = "task_setscheduler")]
pub fn task_setscheduler(ctx: LsmContext) -> i32 {
    privilege::task_setscheduler(&ctx)
}

/// `security_task_setrlimit`: no change of another task's resource limits.
///
/// Hook: LSM `task_setrlimit` (`bpf_lsm_task_setrlimit`); needs BPF LSM, 5.7+.
#[lsm(hook = "task_setrlimit")]
pub fn task_setrlimit(ctx: LsmContext) -> i32 {
    privilege::task_setrlimit(&ctx)
}

/// `security_task_movememory`: no moving of another task's memory.
///
/// Hook: LSM `task_movememory` (`bpf_lsm_task_movememory`); needs BPF LSM, 5.7+.
#[lsm(hook = "task_movememory")]
pub fn task_movememory(ctx: LsmContext) -> i32 {
    privilege::task_movememory(&ctx)
}

/// `security_file_send_sigiotask`: no `SIGIO`/`F_SETSIG` signal to a task outside the
/// sandbox.
///
/// Hook: LSM `file_send_sigiotask` (`bpf_lsm_file_send_sigiotask`); needs BPF LSM, 5.7+.
#[lsm(hook = "file_send_sigiotask")]
pub fn file_send_sigiotask(ctx: LsmContext) -> i32 {
    privilege::file_send_sigiotask(&ctx)
}

/// `security_file_fcntl`: no `SIGIO` owner (`F_SETOWN`, `F_SETOWN_EX`) outside the sandbox.
///
/// Hook: LSM `file_fcntl` (`bpf_lsm_file_fcntl`); needs BPF LSM, 5.7+.
#[lsm(hook = "file_fcntl")]
pub fn file_fcntl(ctx: LsmContext) -> i32 {
    privilege::file_fcntl(&ctx)
}

/// `security_file_ioctl_compat`: as [`file_ioctl`] for 32-bit `ioctl`s.
///
/// Hook: LSM `file_ioctl_compat` (`bpf_lsm_file_ioctl_compat`); needs BPF LSM, 5.7+, and a
/// kernel with the hook (6.8, 6.1.75+ by backport).
#[lsm(hook = "file_ioctl_compat")]
pub fn file_ioctl_compat(ctx: LsmContext) -> i32 {
    privilege::file_ioctl_compat(&ctx)
}

/// `security_task_alloc`: no `clone3` into another cgroup (`CLONE_INTO_CGROUP`).
///
/// Hook: LSM `task_alloc` (`bpf_lsm_task_alloc`); needs BPF LSM, 5.7+.
#[lsm(hook = "task_alloc")]
pub fn task_alloc(ctx: LsmContext) -> i32 {
    privilege::task_alloc(&ctx)
}

/// `security_key_alloc`: no new kernel key.
///
/// Hook: LSM `key_alloc` (`bpf_lsm_key_alloc`); needs BPF LSM, 5.7+.
#[lsm(hook = "key_alloc")]
pub fn key_alloc(ctx: LsmContext) -> i32 {
    privilege::key_alloc(&ctx)
}

/// `security_key_permission`: no use of kernel keys.
///
/// Hook: LSM `key_permission` (`bpf_lsm_key_permission`); needs BPF LSM, 5.7+.
#[lsm(hook = "key_permission")]
pub fn key_permission(ctx: LsmContext) -> i32 {
    privilege::key_permission(&ctx)
}

/// `security_file_ioctl` under `privilege_escalation: deny`: no terminal input injection
/// (`TIOCSTI`, `TIOCLINUX`), no `SIGIO` owner outside the sandbox.
///
/// Hook: LSM `file_ioctl` (`bpf_lsm_file_ioctl`); needs BPF LSM, 5.7+.
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

/// The program license the kernel checks: GPL-only helpers (`bpf_probe_read_kernel`,
/// `bpf_d_path`, ...) need a GPL-compatible one.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
