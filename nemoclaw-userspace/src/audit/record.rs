//! Decoding a kernel [`DenyEvent`] into an [`AuditRecord`].

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::SystemTime,
};

use nemoclaw_common::{
    event::{DenyEvent, EVENT_PATH_MAX, hook, unreachable},
    net::{PROTO_TCP, PROTO_UDP},
    rule::RULE_DEFAULT_DENY,
};
use serde::Serialize;

use crate::policy::compiled::RuleRef;

/// The rule that decided, as cited in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleCitation {
    pub id: u32,
    /// `file:line:column`, absent for the default deny.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub section: String,
    pub text: String,
}

/// What was denied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AuditObject {
    File {
        path: String,
        dev: u64,
        ino: u64,
    },
    /// A metadata write (`inode_*` hooks) denied because no path by which the task could
    /// reach the object was found: why, and the object's (device, inode).
    Unreachable {
        unreachable: &'static str,
        dev: u64,
        ino: u64,
    },
    Address {
        address: String,
        port: u16,
        protocol: &'static str,
    },
    /// A unix socket connect or send (`unix_stream_connect`, `unix_may_send`): the socket's
    /// path (judged as a write by the filesystem rules), or `@name` for an abstract socket
    /// (empty if unnamed) with the cgroup its owner created it in.
    UnixSocket {
        unix_socket: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        dev: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ino: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer_cgroup: Option<u64>,
    },
    /// A socket of a kind the network rules cannot judge (`socket_create`).
    Socket {
        socket_family: u16,
        socket_type: u64,
        socket_protocol: u32,
    },
    /// A per-packet destination override (socket option or ancillary data).
    SocketOption {
        level: i32,
        option: i32,
        /// The option's name (`IPV6_RTHDR`, ...), or why the message was refused.
        option_name: &'static str,
    },
    /// A privilege operation (`privilege_escalation: deny`) without a file object.
    Privilege {
        operation: &'static str,
        /// Capability, module, mount point or `bpf()` command name, where there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The hook's number: capability, signal, ptrace mode, `bpf()` command, mount flags.
        #[serde(skip_serializing_if = "Option::is_none")]
        number: Option<u64>,
        /// Effective uid or gid before and after, for setuid/setgid.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<u32>,
        /// The target task (kill, ptrace) and its cgroup id.
        #[serde(skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        target_cgroup: Option<u64>,
    },
}

/// An executable by kernel (device, inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExeInode {
    pub dev: u64,
    pub ino: u64,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub time: String,
    pub decision: &'static str,
    pub control: &'static str,
    pub hook: &'static str,
    pub errno: String,
    pub rule: RuleCitation,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub comm: String,
    /// The task's executable, read from `/proc/<tgid>/exe` when the event is decoded
    /// (absent if the task is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The executable's kernel (device, inode) as the kernel side saw it, for network
    /// connects and sends (what `binaries` rules match); absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe_inode: Option<ExeInode>,
    pub cgroup: u64,
    /// The sandbox's name, where the writer knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    pub object: AuditObject,
}

/// (control, hook) of an event id, from the one table (`nemoclaw_common::hooks`).
fn hook_names(hook: u32) -> (&'static str, &'static str) {
    nemoclaw_common::hooks::event_hook(hook).map_or(("unknown", "unknown"), |h| (h.control, h.name))
}

/// The operation of a hook that acts on another task (besides `kill` and `ptrace`).
fn task_operation(h: u32) -> Option<&'static str> {
    Some(match h {
        hook::TASK_SETNICE => "priority",
        hook::TASK_SETIOPRIO => "io priority",
        hook::TASK_SETSCHEDULER => "scheduler",
        hook::TASK_SETRLIMIT => "resource limit",
        hook::TASK_MOVEMEMORY => "move memory",
        hook::FILE_SEND_SIGIOTASK => "sigio signal",
        _ => return None,
    })
}

/// The name of a destination-overriding socket option (see `nemoclaw-ebpf`'s `net.rs`).
fn socket_option_name(level: i32, option: i32) -> &'static str {
    match (level, option) {
        (0, 4) => "IP_OPTIONS",
        (0, 7) => "IP_RETOPTS",
        (41, 5) => "IPV6_2292RTHDR",
        (41, 6) => "IPV6_2292PKTOPTIONS",
        (41, 9) => "IPV6_NEXTHOP",
        (41, 57) => "IPV6_RTHDR",
        (-1, -1) => "too much or unreadable ancillary data",
        _ => "unknown",
    }
}

/// The `fcntl`/`ioctl` command that sets a `SIGIO` owner.
fn sigio_owner_command(cmd: u64) -> &'static str {
    match cmd {
        8 => "F_SETOWN",
        15 => "F_SETOWN_EX",
        0x8901 => "FIOSETOWN",
        0x8902 => "SIOCSPGRP",
        _ => "unknown",
    }
}

fn errno_name(errno: u32) -> String {
    match errno {
        1 => "EPERM".into(),
        13 => "EACCES".into(),
        18 => "EXDEV".into(),
        n => n.to_string(),
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn cite(rule_id: u32, rules: &[RuleRef]) -> RuleCitation {
    let found = (rule_id != RULE_DEFAULT_DENY)
        .then(|| rules.get(rule_id as usize - 1))
        .flatten();
    match found {
        Some(r) => RuleCitation {
            id: r.id,
            source: Some(format!("{}:{}:{}", r.file.display(), r.line, r.column)),
            section: r.section.clone(),
            text: r.text.clone(),
        },
        None => RuleCitation {
            id: rule_id,
            source: None,
            section: String::new(),
            text: if rule_id == RULE_DEFAULT_DENY {
                "default deny (no rule allows this)".into()
            } else {
                format!("unknown rule {rule_id}")
            },
        },
    }
}

/// `include/uapi/linux/capability.h`, by number.
const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `enum bpf_cmd` (`include/uapi/linux/bpf.h`), the commands worth naming.
fn bpf_command(cmd: u64) -> Option<&'static str> {
    Some(match cmd {
        0 => "BPF_MAP_CREATE",
        1 => "BPF_MAP_LOOKUP_ELEM",
        2 => "BPF_MAP_UPDATE_ELEM",
        3 => "BPF_MAP_DELETE_ELEM",
        4 => "BPF_MAP_GET_NEXT_KEY",
        5 => "BPF_PROG_LOAD",
        6 => "BPF_OBJ_PIN",
        7 => "BPF_OBJ_GET",
        8 => "BPF_PROG_ATTACH",
        9 => "BPF_PROG_DETACH",
        11 => "BPF_PROG_GET_NEXT_ID",
        12 => "BPF_MAP_GET_NEXT_ID",
        13 => "BPF_PROG_GET_FD_BY_ID",
        14 => "BPF_MAP_GET_FD_BY_ID",
        15 => "BPF_OBJ_GET_INFO_BY_FD",
        28 => "BPF_LINK_CREATE",
        _ => return None,
    })
}

/// The fields of an [`AuditObject::Privilege`] other than its operation.
#[derive(Default)]
struct Privilege {
    name: Option<String>,
    number: Option<u64>,
    from: Option<u32>,
    to: Option<u32>,
    pid: Option<u32>,
    target_cgroup: Option<u64>,
}

impl Privilege {
    /// The hook's number and nothing else.
    fn numbered(number: u64) -> Self {
        Self {
            number: Some(number),
            ..Self::default()
        }
    }

    /// The hook's number, the target task and its cgroup.
    fn on_task(event: &DenyEvent) -> Self {
        Self {
            number: Some(event.arg),
            pid: Some(event.target_tgid),
            target_cgroup: Some(event.target_cgroup),
            ..Self::default()
        }
    }

    /// Effective uid or gid before (the high half of `arg`) and after (the low half).
    fn change(arg: u64) -> Self {
        Self {
            from: Some((arg >> 32) as u32),
            to: Some(arg as u32),
            ..Self::default()
        }
    }

    fn named(self, name: Option<String>) -> Self {
        Self { name, ..self }
    }

    fn object(self, operation: &'static str) -> AuditObject {
        AuditObject::Privilege {
            operation,
            name: self.name,
            number: self.number,
            from: self.from,
            to: self.to,
            pid: self.pid,
            target_cgroup: self.target_cgroup,
        }
    }
}

/// The object of a privilege event that has no file (all but `bprm_creds_from_file`).
fn privilege_object(event: &DenyEvent, path: String) -> Option<AuditObject> {
    let arg = event.arg;
    let (operation, fields) = match event.hook {
        hook::TASK_FIX_SETUID => ("setuid", Privilege::change(arg)),
        hook::TASK_FIX_SETGID => ("setgid", Privilege::change(arg)),
        hook::CAPABLE => {
            let cap = usize::try_from(arg).ok().and_then(|i| CAPABILITIES.get(i));
            let name = cap.map_or_else(|| format!("capability {arg}"), |c| (*c).to_owned());
            ("capability", Privilege::numbered(arg).named(Some(name)))
        }
        hook::USERNS_CREATE => ("user namespace", Privilege::default()),
        hook::SB_MOUNT => {
            let mount_point = Some(path).filter(|p| !p.is_empty());
            ("mount", Privilege::numbered(arg).named(mount_point))
        }
        hook::MOVE_MOUNT => ("move mount", Privilege::default()),
        hook::SB_UMOUNT => ("unmount", Privilege::numbered(arg)),
        hook::BPF => {
            let command = bpf_command(arg).map(str::to_owned);
            ("bpf", Privilege::numbered(arg).named(command))
        }
        hook::PERF_EVENT_OPEN => ("perf_event_open", Privilege::default()),
        hook::SYSLOG => ("kernel log", Privilege::numbered(arg)),
        hook::MMAP_ADDR => ("low memory mapping", Privilege::numbered(arg)),
        hook::FILE_IOCTL | hook::FILE_IOCTL_COMPAT | hook::FILE_FCNTL
            if arg != 0x5412 && arg != 0x541c =>
        {
            let fields = Privilege {
                pid: Some(event.target_tgid),
                ..Privilege::numbered(arg)
            };
            let command = sigio_owner_command(arg).to_owned();
            ("sigio owner", fields.named(Some(command)))
        }
        h if let Some(operation) = task_operation(h) => (operation, Privilege::on_task(event)),
        hook::TASK_ALLOC => ("clone into cgroup", Privilege::numbered(arg)),
        hook::KEY_ALLOC => ("key create", Privilege::numbered(arg)),
        hook::KEY_PERMISSION => ("key use", Privilege::numbered(arg)),
        hook::FILE_IOCTL | hook::FILE_IOCTL_COMPAT => {
            let command = if arg == 0x5412 {
                "TIOCSTI"
            } else {
                "TIOCLINUX"
            };
            let fields = Privilege::numbered(arg).named(Some(command.to_owned()));
            ("terminal input injection", fields)
        }
        hook::KERNEL_MODULE_REQUEST => ("module request", Privilege::default().named(Some(path))),
        hook::PTRACE_ACCESS_CHECK => ("ptrace", Privilege::on_task(event)),
        hook::TASK_KILL => ("signal", Privilege::on_task(event)),
        _ => return None,
    };
    Some(fields.object(operation))
}

/// The filesystem control's metadata hooks (`nemoclaw-ebpf` `fs_attr.rs`).
fn is_metadata_hook(hook: u32) -> bool {
    matches!(
        hook,
        hook::INODE_SETATTR
            | hook::INODE_SETXATTR
            | hook::INODE_REMOVEXATTR
            | hook::INODE_SET_ACL
            | hook::INODE_REMOVE_ACL
    )
}

/// Why a metadata write was denied without a path (`unreachable::*`).
fn unreachable_reason(code: u64) -> &'static str {
    match code {
        unreachable::NO_MOUNT => "no mount in the sandbox's mount namespace reaches the object",
        unreachable::TOO_MANY_MOUNTS => {
            "the object's file system has more mounts than are searched"
        }
        unreachable::UNREADABLE => "the object's mounts could not be read",
        _ => "unknown",
    }
}

impl AuditRecord {
    /// Decodes `event`, citing `rules` (the compiled policy's rule table).
    #[must_use]
    pub fn from_event(event: &DenyEvent, rules: &[RuleRef], now: SystemTime) -> Self {
        let (control, hook) = hook_names(event.hook);
        let object = if matches!(
            event.hook,
            hook::SOCKET_SETSOCKOPT | hook::SETSOCKOPT | hook::SOCKET_SENDMSG
        ) {
            let (level, option) = (
                ((event.arg >> 32) as u32).cast_signed(),
                (event.arg as u32).cast_signed(),
            );
            AuditObject::SocketOption {
                level,
                option,
                option_name: socket_option_name(level, option),
            }
        } else if is_metadata_hook(event.hook) && event.arg != 0 {
            AuditObject::Unreachable {
                unreachable: unreachable_reason(event.arg),
                dev: event.dev,
                ino: event.ino,
            }
        } else if matches!(event.hook, hook::SOCKET_CREATE | hook::SOCK_CREATE) {
            AuditObject::Socket {
                socket_family: event.family,
                socket_type: event.arg,
                socket_protocol: event.proto,
            }
        } else if matches!(event.hook, hook::UNIX_STREAM_CONNECT | hook::UNIX_MAY_SEND) {
            let len = (event.path_len as usize).min(EVENT_PATH_MAX);
            let abstract_socket = event.ino == 0;
            AuditObject::UnixSocket {
                unix_socket: c_string(&event.path[..len]),
                dev: (!abstract_socket).then_some(event.dev),
                ino: (!abstract_socket).then_some(event.ino),
                peer_cgroup: abstract_socket.then_some(event.target_cgroup),
            }
        } else if event.family == 0 {
            let len = (event.path_len as usize).min(EVENT_PATH_MAX);
            let path = c_string(&event.path[..len]);
            match privilege_object(event, path.clone()) {
                Some(object) => object,
                None => AuditObject::File {
                    path,
                    dev: event.dev,
                    ino: event.ino,
                },
            }
        } else {
            let a = event.addr;
            let address = if event.family == 2 {
                Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
            } else {
                Ipv6Addr::from(a).to_string()
            };
            let protocol = match event.proto as u8 {
                PROTO_TCP => "tcp",
                PROTO_UDP => "udp",
                _ => "other",
            };
            AuditObject::Address {
                address,
                port: event.port,
                protocol,
            }
        };
        let exe = std::fs::read_link(format!("/proc/{}/exe", event.tgid))
            .ok()
            .map(|p| p.display().to_string());
        Self {
            time: humantime::format_rfc3339_millis(now).to_string(),
            decision: "deny",
            control,
            hook,
            errno: errno_name(event.errno),
            rule: cite(event.rule_id, rules),
            pid: event.pid,
            tgid: event.tgid,
            uid: event.uid,
            comm: c_string(&event.comm),
            exe,
            exe_inode: (event.family != 0 && event.ino != 0).then_some(ExeInode {
                dev: event.dev,
                ino: event.ino,
            }),
            cgroup: event.cgroup_id,
            sandbox: None,
            object,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn blank() -> DenyEvent {
        // SAFETY: DenyEvent is plain integers and byte arrays; all-zero is valid.
        unsafe { core::mem::zeroed() }
    }

    fn rules() -> Vec<RuleRef> {
        vec![RuleRef {
            id: 1,
            file: PathBuf::from("p.yaml"),
            line: 9,
            column: 5,
            section: "process.deny".into(),
            text: "curl".into(),
        }]
    }

    #[test]
    fn exec_event_cites_rule_and_path() {
        let mut ev = blank();
        ev.hook = hook::BPRM_CHECK_SECURITY;
        ev.rule_id = 1;
        ev.errno = 1;
        ev.tgid = u32::MAX; // no such process: exe stays absent
        let path = b"/usr/bin/curl\0";
        ev.path[..path.len()].copy_from_slice(path);
        ev.path_len = path.len() as u32;
        ev.comm[..6].copy_from_slice(b"python");
        let r = AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH);
        assert_eq!(r.control, "process");
        assert_eq!(r.errno, "EPERM");
        assert_eq!(r.rule.source.as_deref(), Some("p.yaml:9:5"));
        assert_eq!(r.comm, "python");
        assert_eq!(r.exe, None);
        assert_eq!(
            r.object,
            AuditObject::File {
                path: "/usr/bin/curl".into(),
                dev: 0,
                ino: 0
            }
        );
        assert_eq!(r.time, "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn network_event_default_deny() {
        let mut ev = blank();
        ev.hook = hook::CONNECT6;
        ev.family = 10;
        ev.port = 443;
        ev.proto = u32::from(PROTO_TCP);
        ev.addr[15] = 1;
        let r = AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH);
        assert_eq!(r.rule.id, 0);
        assert!(r.rule.text.starts_with("default deny"));
        assert_eq!(
            r.object,
            AuditObject::Address {
                address: "::1".into(),
                port: 443,
                protocol: "tcp"
            }
        );
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"address\":\"::1\""), "{line}");
    }

    /// Inbound denials (`bind4`/`bind6`, `socket_listen`) name the local address and port.
    #[test]
    fn inbound_events_name_the_local_address() {
        let mut ev = blank();
        ev.hook = hook::BIND6;
        ev.family = 10;
        ev.port = 8080;
        ev.proto = u32::from(PROTO_UDP);
        let r = AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH);
        assert_eq!((r.control, r.hook), ("network", "bind6"));
        assert_eq!(
            r.object,
            AuditObject::Address {
                address: "::".into(),
                port: 8080,
                protocol: "udp"
            }
        );
        ev.hook = hook::SOCKET_LISTEN;
        ev.family = 2;
        ev.port = 0;
        ev.proto = u32::from(PROTO_TCP);
        let r = AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH);
        assert_eq!(r.hook, "socket_listen");
        assert_eq!(
            r.object,
            AuditObject::Address {
                address: "0.0.0.0".into(),
                port: 0,
                protocol: "tcp"
            }
        );
        ev.hook = hook::BIND4;
        assert_eq!(
            AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH).hook,
            "bind4"
        );
    }

    #[test]
    fn privilege_events_name_their_object() {
        let mut ev = blank();
        ev.hook = hook::CAPABLE;
        ev.arg = 21;
        let r = AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH);
        assert_eq!(r.control, "privilege");
        let line = serde_json::to_string(&r.object).unwrap();
        assert_eq!(
            line,
            r#"{"operation":"capability","name":"CAP_SYS_ADMIN","number":21}"#
        );

        ev.hook = hook::TASK_KILL;
        ev.arg = 9;
        ev.target_tgid = 42;
        ev.target_cgroup = 1;
        let r = AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH);
        let line = serde_json::to_string(&r.object).unwrap();
        assert_eq!(
            line,
            r#"{"operation":"signal","number":9,"pid":42,"target_cgroup":1}"#
        );

        ev.hook = hook::TASK_FIX_SETUID;
        ev.arg = 65_534 << 32;
        let r = AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH);
        let line = serde_json::to_string(&r.object).unwrap();
        assert_eq!(line, r#"{"operation":"setuid","from":65534,"to":0}"#);

        // Exec hardening and setuid files carry a file object.
        ev.hook = hook::MMAP_FILE;
        let path = b"/usr/bin/curl\0";
        ev.path[..path.len()].copy_from_slice(path);
        ev.path_len = path.len() as u32;
        let r = AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH);
        assert_eq!((r.control, r.hook), ("process", "mmap_file"));
        assert_eq!(
            r.object,
            AuditObject::File {
                path: "/usr/bin/curl".into(),
                dev: 0,
                ino: 0
            }
        );
    }

    #[test]
    fn metadata_events_name_the_hook_and_say_why_no_path() {
        let mut ev = blank();
        ev.hook = hook::INODE_SETXATTR;
        ev.errno = 13;
        let path = b"/w/f\0";
        ev.path[..path.len()].copy_from_slice(path);
        ev.path_len = path.len() as u32;
        let r = AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH);
        assert_eq!((r.control, r.hook), ("filesystem", "inode_setxattr"));
        assert_eq!(
            r.object,
            AuditObject::File {
                path: "/w/f".into(),
                dev: 0,
                ino: 0
            }
        );
        ev.hook = hook::INODE_SETATTR;
        ev.path_len = 0;
        ev.arg = unreachable::NO_MOUNT;
        ev.dev = 7;
        ev.ino = 9;
        let r = AuditRecord::from_event(&ev, &rules(), SystemTime::UNIX_EPOCH);
        let line = serde_json::to_string(&r.object).unwrap();
        assert_eq!(
            line,
            r#"{"unreachable":"no mount in the sandbox's mount namespace reaches the object","dev":7,"ino":9}"#
        );
    }
}
