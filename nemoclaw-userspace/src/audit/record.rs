//! Decoding a kernel [`DenyEvent`] into an [`AuditRecord`].

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::SystemTime,
};

use nemoclaw_common::{
    event::{DenyEvent, EVENT_PATH_MAX, hook},
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
    File { path: String, dev: u64, ino: u64 },
    Address { address: String, port: u16, protocol: &'static str },
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
    pub cgroup: u64,
    pub object: AuditObject,
}

fn hook_names(hook: u32) -> (&'static str, &'static str) {
    match hook {
        hook::BPRM_CHECK_SECURITY => ("process", "bprm_check_security"),
        hook::CONNECT4 => ("network", "connect4"),
        hook::CONNECT6 => ("network", "connect6"),
        hook::SENDMSG4 => ("network", "sendmsg4"),
        hook::SENDMSG6 => ("network", "sendmsg6"),
        hook::FILE_OPEN => ("filesystem", "file_open"),
        hook::PATH_UNLINK => ("filesystem", "path_unlink"),
        hook::PATH_RMDIR => ("filesystem", "path_rmdir"),
        hook::PATH_MKDIR => ("filesystem", "path_mkdir"),
        hook::PATH_MKNOD => ("filesystem", "path_mknod"),
        hook::PATH_RENAME => ("filesystem", "path_rename"),
        hook::PATH_LINK => ("filesystem", "path_link"),
        hook::PATH_SYMLINK => ("filesystem", "path_symlink"),
        hook::PATH_TRUNCATE => ("filesystem", "path_truncate"),
        hook::PATH_CHMOD => ("filesystem", "path_chmod"),
        hook::PATH_CHOWN => ("filesystem", "path_chown"),
        _ => ("unknown", "unknown"),
    }
}

fn errno_name(errno: u32) -> String {
    match errno {
        1 => "EPERM".into(),
        13 => "EACCES".into(),
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

impl AuditRecord {
    /// Decodes `event`, citing `rules` (the compiled policy's rule table).
    #[must_use]
    pub fn from_event(event: &DenyEvent, rules: &[RuleRef], now: SystemTime) -> Self {
        let (control, hook) = hook_names(event.hook);
        let object = if event.family == 0 {
            let len = (event.path_len as usize).min(EVENT_PATH_MAX);
            AuditObject::File { path: c_string(&event.path[..len]), dev: event.dev, ino: event.ino }
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
            AuditObject::Address { address, port: event.port, protocol }
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
            cgroup: event.cgroup_id,
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
        assert_eq!(r.object, AuditObject::File { path: "/usr/bin/curl".into(), dev: 0, ino: 0 });
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
        assert_eq!(r.object, AuditObject::Address { address: "::1".into(), port: 443, protocol: "tcp" });
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"address\":\"::1\""), "{line}");
    }
}
