//! Deny events, sent from the kernel side to userspace through the `EVENTS` ring buffer.

/// Bytes of path carried by an event (`PATH_MAX`).
pub const EVENT_PATH_MAX: usize = 4096;

/// Which hook decided. Stored in [`DenyEvent::hook`]. Each id names its hook (an LSM hook,
/// whose program needs BPF LSM, 5.7+, or a cgroup attach point) and, where the hook is
/// newer than that, the kernel that has it.
pub mod hook {
    /// LSM `bprm_check_security` (process control): an exec denied (BPF LSM, 5.7+).
    pub const BPRM_CHECK_SECURITY: u32 = 1;
    /// Cgroup `connect4` (`BPF_CGROUP_INET4_CONNECT`, 4.17+): an IPv4 connect denied.
    pub const CONNECT4: u32 = 2;
    /// Cgroup `connect6` (`BPF_CGROUP_INET6_CONNECT`, 4.17+): an IPv6 connect denied.
    pub const CONNECT6: u32 = 3;
    /// Cgroup `sendmsg4` (`BPF_CGROUP_UDP4_SENDMSG`, 4.18+): an unconnected IPv4 UDP send denied.
    pub const SENDMSG4: u32 = 4;
    /// Cgroup `sendmsg6` (`BPF_CGROUP_UDP6_SENDMSG`, 4.18+): an unconnected IPv6 UDP send denied.
    pub const SENDMSG6: u32 = 5;
    /// Cgroup `sock_create`: an IPv4/IPv6 socket of a kind the rules cannot judge, on
    /// every kernel (`family`, `proto`, and the type in `arg`, as for [`SOCKET_CREATE`]).
    pub const SOCK_CREATE: u32 = 6;
    /// Cgroup `bind4` / `bind6` (every kernel): a bind to a non-loopback address on a port
    /// no `network.listen` entry opens (`family`, `addr`, `port`, `proto` as for a connect).
    pub const BIND4: u32 = 7;
    /// Cgroup `bind6` (`BPF_CGROUP_INET6_BIND`, 4.17+): as [`BIND4`] for IPv6.
    pub const BIND6: u32 = 8;
    /// cgroup `setsockopt`: a destination-overriding socket option, as
    /// [`SOCKET_SETSOCKOPT`] (`arg` the same), on kernels where BPF LSM does not run (where
    /// it runs, `socket_setsockopt` refuses the option first).
    pub const SETSOCKOPT: u32 = 9;
    /// LSM `file_open` (filesystem control): an open denied (BPF LSM, 5.7+).
    pub const FILE_OPEN: u32 = 10;
    /// LSM `path_unlink`: removing a file denied (BPF LSM, 5.7+).
    pub const PATH_UNLINK: u32 = 11;
    /// LSM `path_rmdir`: removing a directory denied (BPF LSM, 5.7+).
    pub const PATH_RMDIR: u32 = 12;
    /// LSM `path_mkdir`: creating a directory denied (BPF LSM, 5.7+).
    pub const PATH_MKDIR: u32 = 13;
    /// LSM `path_mknod`: creating a file or node denied (BPF LSM, 5.7+).
    pub const PATH_MKNOD: u32 = 14;
    /// LSM `path_rename` (`path_rename` and `path_rename_subtrees`): a rename denied (BPF
    /// LSM, 5.7+).
    pub const PATH_RENAME: u32 = 15;
    /// LSM `path_link`: a hard link denied (BPF LSM, 5.7+).
    pub const PATH_LINK: u32 = 16;
    /// LSM `path_symlink`: creating a symbolic link denied (BPF LSM, 5.7+).
    pub const PATH_SYMLINK: u32 = 17;
    /// LSM `path_truncate`: a truncate by path denied (BPF LSM, 5.7+).
    pub const PATH_TRUNCATE: u32 = 18;
    /// LSM `path_chmod`: a mode change denied (BPF LSM, 5.7+).
    pub const PATH_CHMOD: u32 = 19;
    /// LSM `path_chown`: an owner change denied (BPF LSM, 5.7+).
    pub const PATH_CHOWN: u32 = 20;
    /// Metadata writes on a dentry (`nemoclaw-ebpf` `fs_attr.rs`): attributes (mode, owner,
    /// size, times), extended attributes set and removed, POSIX ACLs set and removed. Judged
    /// as writes of every path by which the task can reach the object; `arg` is a
    /// [`unreachable`] reason when no such path could be found (rule 0, no path).
    pub const INODE_SETATTR: u32 = 21;
    /// LSM `inode_setxattr`: setting an extended attribute denied (BPF LSM, 5.7+).
    pub const INODE_SETXATTR: u32 = 22;
    /// LSM `inode_removexattr`: removing an extended attribute denied (BPF LSM, 5.7+).
    pub const INODE_REMOVEXATTR: u32 = 23;
    /// LSM `inode_set_acl`: setting a POSIX ACL denied (the hook exists from 6.2).
    pub const INODE_SET_ACL: u32 = 24;
    /// LSM `inode_remove_acl`: removing a POSIX ACL denied (the hook exists from 6.2).
    pub const INODE_REMOVE_ACL: u32 = 25;
    /// File attribute flags set by `ioctl` (`FS_IOC_SETFLAGS`, `FS_IOC_FSSETXATTR`:
    /// `chattr`), judged as a write of the file's path (`fs_attr.rs`; the privilege
    /// control's `file_ioctl` program is [`FILE_IOCTL`]).
    pub const FS_FILE_IOCTL: u32 = 26;
    /// The same for 32-bit `ioctl`s (`FS_IOC32_SETFLAGS`).
    pub const FS_FILE_IOCTL_COMPAT: u32 = 27;
    /// An inotify, fanotify or dnotify watch, judged as a read of the watched path: a
    /// watch on a directory the rules deny reading would report its entries' names.
    pub const PATH_NOTIFY: u32 = 28;
    // Exec hardening (process control).
    /// LSM `mmap_file` (process control): an executable file mapping denied (BPF LSM, 5.7+).
    pub const MMAP_FILE: u32 = 30;
    /// LSM `file_mprotect` (process control): making a mapping executable denied (BPF LSM, 5.7+).
    pub const FILE_MPROTECT: u32 = 31;
    // `privilege_escalation: deny`.
    /// LSM `bprm_creds_from_file`: a setuid/setgid exec denied (the hook exists from 5.8).
    pub const BPRM_CREDS_FROM_FILE: u32 = 40;
    /// LSM `task_fix_setuid`: a uid change denied (BPF LSM, 5.7+).
    pub const TASK_FIX_SETUID: u32 = 41;
    /// LSM `task_fix_setgid`: a gid change denied (the hook exists from 5.10).
    pub const TASK_FIX_SETGID: u32 = 42;
    /// LSM `capable`: a capability check failed (`arg` the capability; BPF LSM, 5.7+).
    pub const CAPABLE: u32 = 43;
    /// LSM `userns_create`: a new user namespace denied (the hook exists from 6.1).
    pub const USERNS_CREATE: u32 = 44;
    /// LSM `sb_mount`: a mount denied (BPF LSM, 5.7+).
    pub const SB_MOUNT: u32 = 45;
    /// LSM `move_mount`: moving a mount denied (BPF LSM, 5.7+).
    pub const MOVE_MOUNT: u32 = 46;
    /// LSM `sb_umount`: an unmount denied (BPF LSM, 5.7+).
    pub const SB_UMOUNT: u32 = 47;
    /// LSM `bpf`: a `bpf()` command denied (`arg` the command; BPF LSM, 5.7+).
    pub const BPF: u32 = 48;
    /// LSM `perf_event_open`: a perf event denied (BPF LSM, 5.7+).
    pub const PERF_EVENT_OPEN: u32 = 49;
    /// LSM `kernel_module_request`: a module load request denied (BPF LSM, 5.7+).
    pub const KERNEL_MODULE_REQUEST: u32 = 50;
    /// LSM `ptrace_access_check`: tracing another task denied (`arg` the mode; BPF LSM, 5.7+).
    pub const PTRACE_ACCESS_CHECK: u32 = 51;
    /// LSM `task_kill`: a signal to a task outside the sandbox denied (`arg` the signal;
    /// BPF LSM, 5.7+).
    pub const TASK_KILL: u32 = 52;
    /// `file_open` under `privilege_escalation: deny`: kernel-interface files and block devices.
    pub const PRIVILEGE_FILE_OPEN: u32 = 53;
    /// LSM `file_ioctl` under `privilege_escalation: deny`: an `ioctl` denied (`arg` the
    /// command; BPF LSM, 5.7+).
    pub const FILE_IOCTL: u32 = 54;
    /// Acting on another task's scheduling or resources: `arg` is the nice value, I/O
    /// priority or resource number; `target_*` name the task.
    pub const TASK_SETNICE: u32 = 70;
    /// LSM `task_setioprio`: another task's I/O priority (BPF LSM, 5.7+).
    pub const TASK_SETIOPRIO: u32 = 71;
    /// LSM `task_setscheduler`: another task's scheduling policy (BPF LSM, 5.7+).
    pub const TASK_SETSCHEDULER: u32 = 72;
    /// LSM `task_setrlimit`: another task's resource limit (BPF LSM, 5.7+).
    pub const TASK_SETRLIMIT: u32 = 73;
    /// LSM `task_movememory`: moving another task's memory (BPF LSM, 5.7+).
    pub const TASK_MOVEMEMORY: u32 = 74;
    /// A `SIGIO`/`F_SETSIG` signal a sandboxed task's I/O would send to another task
    /// (`arg` the signal).
    pub const FILE_SEND_SIGIOTASK: u32 = 75;
    /// `file_fcntl`: making another task or a process group the owner of a file's `SIGIO`
    /// (`F_SETOWN`/`F_SETOWN_EX`): `arg` the command, `target_tgid` the pid asked for
    /// (negative: a process group). `ioctl`'s `FIOSETOWN`/`SIOCSPGRP` are [`FILE_IOCTL`]
    /// events with the same fields.
    pub const FILE_FCNTL: u32 = 76;
    /// Kernel keyrings: creating a key (`arg` the allocation flags) and using one (`arg`
    /// the `enum key_need_perm`).
    pub const KEY_ALLOC: u32 = 77;
    /// LSM `key_permission`: using a kernel key (BPF LSM, 5.7+).
    pub const KEY_PERMISSION: u32 = 78;
    /// `clone3` into another cgroup (`CLONE_INTO_CGROUP`; `arg` the clone flags).
    pub const TASK_ALLOC: u32 = 79;
    /// `file_ioctl_compat`: a 32-bit `ioctl`, judged as [`FILE_IOCTL`] (same fields).
    pub const FILE_IOCTL_COMPAT: u32 = 80;
    /// `syslog(2)` reading, clearing or steering the kernel log (`arg` the action).
    pub const SYSLOG: u32 = 81;
    /// A mapping below 64 KiB (`arg` the address): the kernel's own check is not a
    /// `capable` call, so uid 0 would pass it.
    pub const MMAP_ADDR: u32 = 82;
    /// `socket_create`: `family`, `proto` and (in `arg`) the socket type.
    pub const SOCKET_CREATE: u32 = 60;
    /// `unix_stream_connect`: a stream (or seqpacket) connect to a unix socket. A pathname
    /// socket is judged as a write of its path (`path`, `dev`, `ino`); an abstract or unnamed
    /// one by the listener's sandbox (`path` is `@name`, `target_cgroup` its cgroup).
    pub const UNIX_STREAM_CONNECT: u32 = 61;
    /// `unix_may_send`: a datagram connect or send to a unix socket, judged as above.
    pub const UNIX_MAY_SEND: u32 = 62;
    /// A per-packet destination override refused in a sandbox with a network section:
    /// `arg` is `level << 32 | option` (IPv6 routing header, next hop, IPv4 options), as a
    /// socket option or as ancillary data of one `sendmsg` (`-1, -1`: too many items or
    /// unreadable).
    pub const SOCKET_SETSOCKOPT: u32 = 63;
    /// LSM `socket_sendmsg`: a destination override as ancillary data of one `sendmsg`, as
    /// [`SOCKET_SETSOCKOPT`] (BPF LSM, 5.7+).
    pub const SOCKET_SENDMSG: u32 = 64;
    /// LSM `socket_listen`: a TCP listener on a non-loopback address whose port no
    /// `network.listen` entry opens (the bound address and port: `port` 0 for a socket
    /// that was never bound, which `listen` binds to an ephemeral port on every address).
    pub const SOCKET_LISTEN: u32 = 65;
}

/// Why a metadata write (`hook::INODE_*`) was denied without a path: the `arg` of its event.
pub mod unreachable {
    /// No mount of the object's file system in the task's mount namespace has the object
    /// under its root (and the file system is not a kernel-internal one).
    pub const NO_MOUNT: u64 = 1;
    /// The file system has more mounts than the search visits, or more mounts in the
    /// task's namespace with the object under their root than it judges.
    pub const TOO_MANY_MOUNTS: u64 = 2;
    /// The dentry, its file system's mount list or the task's mount namespace could not be
    /// read.
    pub const UNREADABLE: u64 = 3;
}

/// One denied operation. `rule_id` 0 means the default deny decided (no rule matched).
///
/// Written to the `EVENTS` ring buffer (`BPF_MAP_TYPE_RINGBUF`, 5.8+) by every program that
/// denies; `hook` says which.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DenyEvent {
    /// The task's cgroup v2 id (the sandbox's, or a cgroup below it).
    pub cgroup_id: u64,
    /// Kernel `dev_t` and inode of the file object (exec, files, unix socket paths); for the
    /// network hooks, of the task's executable (0 if it has none).
    pub dev: u64,
    /// See [`DenyEvent::dev`].
    pub ino: u64,
    /// The task's thread id (the kernel's `pid`).
    pub pid: u32,
    /// The task's thread-group id (userspace's process id).
    pub tgid: u32,
    /// The task's real uid.
    pub uid: u32,
    /// The rule that decided ([`crate::rule::RULE_DEFAULT_DENY`] for the default deny).
    pub rule_id: u32,
    /// Which hook decided: a [`hook`] id.
    pub hook: u32,
    /// The errno returned to the task (positive, e.g. `EPERM`).
    pub errno: u32,
    /// The policy slot the sandbox was using.
    pub slot: u32,
    /// Destination port (host order) for network hooks.
    pub port: u16,
    /// `AF_INET` or `AF_INET6` for network hooks, else 0.
    pub family: u16,
    /// Destination address: 4 bytes for IPv4, 16 for IPv6, big-endian.
    pub addr: [u8; 16],
    /// Network hooks: the protocol (`IPPROTO_*`); `socket_create`: the protocol asked for.
    pub proto: u32,
    /// Length of `path` including its NUL, as `bpf_d_path` returns, or 0.
    pub path_len: u32,
    /// The task's `comm` (NUL-padded).
    pub comm: [u8; 16],
    /// The path (NUL-terminated, [`DenyEvent::path_len`] bytes), or the abstract unix name.
    pub path: [u8; EVENT_PATH_MAX],
    /// Privilege hooks: the hook's number (capability, signal, ptrace mode, `bpf()` command;
    /// for setuid/setgid `old << 32 | new` effective id), else 0.
    pub arg: u64,
    /// Privilege hooks acting on another task (kill, ptrace): its cgroup v2 id, else 0.
    pub target_cgroup: u64,
    /// ... and its thread-group id, else 0.
    pub target_tgid: u32,
    /// Padding, always 0.
    pub _pad_target: u32,
}

/// Indexes of the `COUNTERS` per-CPU array.
pub mod counter {
    /// Operations judged for a sandboxed task.
    pub const JUDGED: u32 = 0;
    /// Operations denied.
    pub const DENIED: u32 = 1;
    /// Deny events lost because the ring buffer was full (the deny still happened).
    pub const EVENTS_LOST: u32 = 2;
    /// Judgements denied because another task took over this CPU's scratch buffer while
    /// the program was preempted (`preempt=full` kernels; see the eBPF `scratch` module).
    pub const SCRATCH_TAKEN: u32 = 3;
    /// Number of counters.
    pub const COUNT: u32 = 4;
}
