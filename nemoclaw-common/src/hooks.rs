//! The one table of hooks. Every event id the kernel side emits ([`crate::event::hook`])
//! with the control and hook name the audit log shows ([`EVENT_HOOKS`]), and every BPF LSM
//! program userspace loads with its hook and the control that needs it ([`LSM_PROGRAMS`]).
//! A new hook is a program in `nemoclaw-ebpf`, its event id, and a row in each table here;
//! `docs/hooks.md` (`cargo xtask hooks`) checks the programs against the kernels' hooks.

use crate::{event::hook, sandbox::controls};

/// What an event id means in the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHook {
    /// The event id: a [`hook`] constant.
    pub id: u32,
    /// `process`, `filesystem`, `network` or `privilege`.
    pub control: &'static str,
    /// The kernel hook (or cgroup attach point) that decided.
    pub name: &'static str,
}

/// Every event id, once.
pub const EVENT_HOOKS: &[EventHook] = &[
    EventHook {
        id: hook::BPRM_CHECK_SECURITY,
        control: "process",
        name: "bprm_check_security",
    },
    EventHook {
        id: hook::CONNECT4,
        control: "network",
        name: "connect4",
    },
    EventHook {
        id: hook::CONNECT6,
        control: "network",
        name: "connect6",
    },
    EventHook {
        id: hook::SENDMSG4,
        control: "network",
        name: "sendmsg4",
    },
    EventHook {
        id: hook::SENDMSG6,
        control: "network",
        name: "sendmsg6",
    },
    EventHook {
        id: hook::BIND4,
        control: "network",
        name: "bind4",
    },
    EventHook {
        id: hook::BIND6,
        control: "network",
        name: "bind6",
    },
    EventHook {
        id: hook::SOCKET_LISTEN,
        control: "network",
        name: "socket_listen",
    },
    EventHook {
        id: hook::FILE_OPEN,
        control: "filesystem",
        name: "file_open",
    },
    EventHook {
        id: hook::PATH_UNLINK,
        control: "filesystem",
        name: "path_unlink",
    },
    EventHook {
        id: hook::PATH_RMDIR,
        control: "filesystem",
        name: "path_rmdir",
    },
    EventHook {
        id: hook::PATH_MKDIR,
        control: "filesystem",
        name: "path_mkdir",
    },
    EventHook {
        id: hook::PATH_MKNOD,
        control: "filesystem",
        name: "path_mknod",
    },
    EventHook {
        id: hook::PATH_RENAME,
        control: "filesystem",
        name: "path_rename",
    },
    EventHook {
        id: hook::PATH_LINK,
        control: "filesystem",
        name: "path_link",
    },
    EventHook {
        id: hook::PATH_SYMLINK,
        control: "filesystem",
        name: "path_symlink",
    },
    EventHook {
        id: hook::PATH_TRUNCATE,
        control: "filesystem",
        name: "path_truncate",
    },
    EventHook {
        id: hook::PATH_CHMOD,
        control: "filesystem",
        name: "path_chmod",
    },
    EventHook {
        id: hook::PATH_CHOWN,
        control: "filesystem",
        name: "path_chown",
    },
    EventHook {
        id: hook::INODE_SETATTR,
        control: "filesystem",
        name: "inode_setattr",
    },
    EventHook {
        id: hook::INODE_SETXATTR,
        control: "filesystem",
        name: "inode_setxattr",
    },
    EventHook {
        id: hook::INODE_REMOVEXATTR,
        control: "filesystem",
        name: "inode_removexattr",
    },
    EventHook {
        id: hook::INODE_SET_ACL,
        control: "filesystem",
        name: "inode_set_acl",
    },
    EventHook {
        id: hook::INODE_REMOVE_ACL,
        control: "filesystem",
        name: "inode_remove_acl",
    },
    EventHook {
        id: hook::FS_FILE_IOCTL,
        control: "filesystem",
        name: "file_ioctl",
    },
    EventHook {
        id: hook::FS_FILE_IOCTL_COMPAT,
        control: "filesystem",
        name: "file_ioctl_compat",
    },
    EventHook {
        id: hook::PATH_NOTIFY,
        control: "filesystem",
        name: "path_notify",
    },
    EventHook {
        id: hook::MMAP_FILE,
        control: "process",
        name: "mmap_file",
    },
    EventHook {
        id: hook::FILE_MPROTECT,
        control: "process",
        name: "file_mprotect",
    },
    EventHook {
        id: hook::BPRM_CREDS_FROM_FILE,
        control: "privilege",
        name: "bprm_creds_from_file",
    },
    EventHook {
        id: hook::TASK_FIX_SETUID,
        control: "privilege",
        name: "task_fix_setuid",
    },
    EventHook {
        id: hook::TASK_FIX_SETGID,
        control: "privilege",
        name: "task_fix_setgid",
    },
    EventHook {
        id: hook::CAPABLE,
        control: "privilege",
        name: "capable",
    },
    EventHook {
        id: hook::USERNS_CREATE,
        control: "privilege",
        name: "userns_create",
    },
    EventHook {
        id: hook::SB_MOUNT,
        control: "privilege",
        name: "sb_mount",
    },
    EventHook {
        id: hook::MOVE_MOUNT,
        control: "privilege",
        name: "move_mount",
    },
    EventHook {
        id: hook::SB_UMOUNT,
        control: "privilege",
        name: "sb_umount",
    },
    EventHook {
        id: hook::BPF,
        control: "privilege",
        name: "bpf",
    },
    EventHook {
        id: hook::PERF_EVENT_OPEN,
        control: "privilege",
        name: "perf_event_open",
    },
    EventHook {
        id: hook::KERNEL_MODULE_REQUEST,
        control: "privilege",
        name: "kernel_module_request",
    },
    EventHook {
        id: hook::PTRACE_ACCESS_CHECK,
        control: "privilege",
        name: "ptrace_access_check",
    },
    EventHook {
        id: hook::TASK_KILL,
        control: "privilege",
        name: "task_kill",
    },
    EventHook {
        id: hook::PRIVILEGE_FILE_OPEN,
        control: "privilege",
        name: "file_open",
    },
    EventHook {
        id: hook::FILE_IOCTL,
        control: "privilege",
        name: "file_ioctl",
    },
    EventHook {
        id: hook::FILE_IOCTL_COMPAT,
        control: "privilege",
        name: "file_ioctl_compat",
    },
    EventHook {
        id: hook::TASK_SETNICE,
        control: "privilege",
        name: "task_setnice",
    },
    EventHook {
        id: hook::TASK_SETIOPRIO,
        control: "privilege",
        name: "task_setioprio",
    },
    EventHook {
        id: hook::TASK_SETSCHEDULER,
        control: "privilege",
        name: "task_setscheduler",
    },
    EventHook {
        id: hook::TASK_SETRLIMIT,
        control: "privilege",
        name: "task_setrlimit",
    },
    EventHook {
        id: hook::TASK_MOVEMEMORY,
        control: "privilege",
        name: "task_movememory",
    },
    EventHook {
        id: hook::FILE_SEND_SIGIOTASK,
        control: "privilege",
        name: "file_send_sigiotask",
    },
    EventHook {
        id: hook::FILE_FCNTL,
        control: "privilege",
        name: "file_fcntl",
    },
    EventHook {
        id: hook::KEY_ALLOC,
        control: "privilege",
        name: "key_alloc",
    },
    EventHook {
        id: hook::TASK_ALLOC,
        control: "privilege",
        name: "task_alloc",
    },
    EventHook {
        id: hook::KEY_PERMISSION,
        control: "privilege",
        name: "key_permission",
    },
    EventHook {
        id: hook::SYSLOG,
        control: "privilege",
        name: "syslog",
    },
    EventHook {
        id: hook::MMAP_ADDR,
        control: "privilege",
        name: "mmap_addr",
    },
    EventHook {
        id: hook::SOCKET_CREATE,
        control: "network",
        name: "socket_create",
    },
    EventHook {
        id: hook::SOCK_CREATE,
        control: "network",
        name: "sock_create",
    },
    EventHook {
        id: hook::SETSOCKOPT,
        control: "network",
        name: "setsockopt",
    },
    EventHook {
        id: hook::SOCKET_SETSOCKOPT,
        control: "network",
        name: "socket_setsockopt",
    },
    EventHook {
        id: hook::SOCKET_SENDMSG,
        control: "network",
        name: "socket_sendmsg",
    },
    EventHook {
        id: hook::UNIX_STREAM_CONNECT,
        control: "network",
        name: "unix_stream_connect",
    },
    EventHook {
        id: hook::UNIX_MAY_SEND,
        control: "network",
        name: "unix_may_send",
    },
];

/// The audit log's (control, hook) of an event id; `None` for an id no program emits.
#[must_use]
pub fn event_hook(id: u32) -> Option<&'static EventHook> {
    EVENT_HOOKS.iter().find(|h| h.id == id)
}

/// A BPF LSM program of the object: its name, the LSM hook it attaches to, and the
/// controls (a set of [`controls`] bits) whose policies need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsmProgram {
    /// The program's function name in `nemoclaw-ebpf`.
    pub program: &'static str,
    /// The LSM hook it attaches to (`bpf_lsm_<hook>`).
    pub hook: &'static str,
    /// The [`controls`] bits whose policies need it: loaded when any of them is wanted.
    pub control: u32,
}

const fn lsm(program: &'static str, hook: &'static str, control: u32) -> LsmProgram {
    LsmProgram {
        program,
        hook,
        control,
    }
}

/// Every LSM program userspace loads and attaches (the `noop_` cost floors aside).
pub const LSM_PROGRAMS: &[LsmProgram] = &[
    // Exec: every exec by identity.
    lsm("bprm_check_security", "bprm_check_security", controls::EXEC),
    // Filesystem: opens, every path mutation and watches. The `file_open` program also
    // judges opens for `privilege_escalation: deny` (kernel-interface files, devices): one
    // program run per open, not one per control.
    lsm("file_open", "file_open", controls::FS | controls::PRIVILEGE),
    lsm("path_unlink", "path_unlink", controls::FS),
    lsm("path_rmdir", "path_rmdir", controls::FS),
    lsm("path_mkdir", "path_mkdir", controls::FS),
    lsm("path_mknod", "path_mknod", controls::FS),
    lsm("path_rename", "path_rename", controls::FS),
    lsm("path_rename_subtrees", "path_rename", controls::FS),
    lsm("path_link", "path_link", controls::FS),
    lsm("path_symlink", "path_symlink", controls::FS),
    lsm("path_truncate", "path_truncate", controls::FS),
    lsm("path_chmod", "path_chmod", controls::FS),
    lsm("path_chown", "path_chown", controls::FS),
    lsm("path_notify", "path_notify", controls::FS),
    // ... metadata writes on dentries (`fs_attr.rs`): attributes, xattrs, POSIX ACLs.
    lsm("inode_setattr", "inode_setattr", controls::FS),
    lsm("inode_setxattr", "inode_setxattr", controls::FS),
    lsm("inode_removexattr", "inode_removexattr", controls::FS),
    lsm("inode_set_acl", "inode_set_acl", controls::FS),
    lsm("inode_remove_acl", "inode_remove_acl", controls::FS),
    // ... and file attribute flags set by `ioctl` (`chattr`), judged by the file's path.
    lsm("fs_file_ioctl", "file_ioctl", controls::FS),
    lsm("fs_file_ioctl_compat", "file_ioctl_compat", controls::FS),
    // Exec hardening: executable file mappings only of allowed binaries and libraries.
    lsm("mmap_file", "mmap_file", controls::EXEC),
    lsm("file_mprotect", "file_mprotect", controls::EXEC),
    // `privilege_escalation: deny`.
    lsm(
        "bprm_creds_from_file",
        "bprm_creds_from_file",
        controls::PRIVILEGE,
    ),
    lsm("task_fix_setuid", "task_fix_setuid", controls::PRIVILEGE),
    lsm("task_fix_setgid", "task_fix_setgid", controls::PRIVILEGE),
    lsm("capable", "capable", controls::PRIVILEGE),
    lsm("userns_create", "userns_create", controls::PRIVILEGE),
    lsm("sb_mount", "sb_mount", controls::PRIVILEGE),
    lsm("move_mount", "move_mount", controls::PRIVILEGE),
    lsm("sb_umount", "sb_umount", controls::PRIVILEGE),
    lsm("bpf", "bpf", controls::PRIVILEGE),
    lsm("perf_event_open", "perf_event_open", controls::PRIVILEGE),
    lsm("syslog", "syslog", controls::PRIVILEGE),
    lsm("mmap_addr", "mmap_addr", controls::PRIVILEGE),
    lsm(
        "kernel_module_request",
        "kernel_module_request",
        controls::PRIVILEGE,
    ),
    lsm(
        "ptrace_access_check",
        "ptrace_access_check",
        controls::PRIVILEGE,
    ),
    lsm("task_kill", "task_kill", controls::PRIVILEGE),
    // ... and every other way of acting on a task outside the sandbox.
    lsm("task_setnice", "task_setnice", controls::PRIVILEGE),
    lsm("task_setioprio", "task_setioprio", controls::PRIVILEGE),
    lsm(
        "task_setscheduler",
        "task_setscheduler",
        controls::PRIVILEGE,
    ),
    lsm("task_setrlimit", "task_setrlimit", controls::PRIVILEGE),
    lsm("task_movememory", "task_movememory", controls::PRIVILEGE),
    lsm(
        "file_send_sigiotask",
        "file_send_sigiotask",
        controls::PRIVILEGE,
    ),
    lsm("file_fcntl", "file_fcntl", controls::PRIVILEGE),
    // Kernel interfaces that change the host beyond files: keyrings; leaving the cgroup at fork; kernel-interface files, devices and terminals.
    lsm("key_alloc", "key_alloc", controls::PRIVILEGE),
    lsm("task_alloc", "task_alloc", controls::PRIVILEGE),
    lsm("key_permission", "key_permission", controls::PRIVILEGE),
    lsm("file_ioctl", "file_ioctl", controls::PRIVILEGE),
    // 32-bit ioctls (Linux 6.8; 6.1.75+ and 6.6.14+ by backport).
    lsm(
        "file_ioctl_compat",
        "file_ioctl_compat",
        controls::PRIVILEGE,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_and_programs_are_listed_once() {
        for (i, a) in EVENT_HOOKS.iter().enumerate() {
            assert!(
                EVENT_HOOKS[i + 1..].iter().all(|b| b.id != a.id),
                "event id {} twice",
                a.id
            );
        }
        for (i, a) in LSM_PROGRAMS.iter().enumerate() {
            assert!(
                LSM_PROGRAMS[i + 1..].iter().all(|b| b.program != a.program),
                "program {} twice",
                a.program
            );
        }
        assert_eq!(
            event_hook(hook::FILE_OPEN).map(|h| h.name),
            Some("file_open")
        );
        assert_eq!(event_hook(0), None);
    }
}
