//! Audit records as OCSF events (schema [`OCSF_VERSION`]), for a SIEM: one JSON line per
//! event in a file beside the chained log (no chain there).
//!
//! Each record kind maps to a class, from its JSON form (the sink takes any serializable
//! record):
//!
//! | record | class |
//! |---|---|
//! | deny, `control: filesystem` | File System Activity (1001) |
//! | deny, `control: process` (exec, executable mappings) | Process Activity (1007) |
//! | deny, `control: network` (connect, send, bind, listen, sockets; the DNS gateway) | Network Activity (4001) |
//! | `control: inference` (the privacy router) | API Activity (6003) |
//! | deny, `control: privilege` (tamper and escalation attempts) | Detection Finding (2004) |
//! | `daemon_start`, `sandbox_start` whose self-test failed (controls not enforced) | Detection Finding (2004) |
//! | `sandbox_start`, `policy_reload`, `policy_rejected` (policy loads) | Device Config State Change (5019) |
//!
//! Not mapped (no class fits; they stay in the chained log only): `sandbox_stop` and
//! `daemon_stop` (no process identity: the sandbox is a cgroup, not one process),
//! `denials_suppressed` and `events_lost` (counts of records not written; the metrics
//! carry them), `dns_change` (a host-name rule's addresses), `log_rotated` (the chain's own
//! bookkeeping), and a `daemon_start` with every control proven.
//!
//! Values: only what the record holds is copied (router records hold counts and
//! categories, never prompt content), mapped fields into their OCSF places, the rest under
//! `unmapped`.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

mod findings;

use findings::{config_state, degradation, privilege_finding};

/// The OCSF schema version the events follow (and the tests check against).
pub const OCSF_VERSION: &str = "1.8.0";

/// The OCSF classes `NemoClaw` emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    FileActivity,
    ProcessActivity,
    NetworkActivity,
    ApiActivity,
    DetectionFinding,
    ConfigStateChange,
}

impl Class {
    /// `class_uid`.
    #[must_use]
    pub fn uid(self) -> u64 {
        match self {
            Class::FileActivity => 1001,
            Class::ProcessActivity => 1007,
            Class::NetworkActivity => 4001,
            Class::ApiActivity => 6003,
            Class::DetectionFinding => 2004,
            Class::ConfigStateChange => 5019,
        }
    }

    /// `category_uid`: the thousands of the class uid.
    #[must_use]
    pub fn category_uid(self) -> u64 {
        self.uid() / 1000
    }

    fn name(self) -> &'static str {
        match self {
            Class::FileActivity => "File System Activity",
            Class::ProcessActivity => "Process Activity",
            Class::NetworkActivity => "Network Activity",
            Class::ApiActivity => "API Activity",
            Class::DetectionFinding => "Detection Finding",
            Class::ConfigStateChange => "Device Config State Change",
        }
    }

    fn category_name(self) -> &'static str {
        match self.category_uid() {
            1 => "System Activity",
            2 => "Findings",
            4 => "Network Activity",
            5 => "Discovery",
            _ => "Application Activity",
        }
    }
}

/// The OCSF events of one audit record (in its JSON form): none for a kind no class fits.
#[must_use]
pub fn events(record: &Value) -> Vec<Value> {
    let str_of = |k: &str| record.get(k).and_then(Value::as_str);
    if let Some(kind) = str_of("event") {
        return lifecycle(kind, record);
    }
    let event = match (str_of("control"), str_of("hook")) {
        (Some("inference"), _) => api_activity(record),
        (Some("filesystem"), Some(hook)) => file_activity(hook, record),
        (Some("process"), Some(hook)) => process_activity(hook, record),
        (Some("network"), Some(hook)) => network_activity(hook, record),
        (Some("privilege"), Some(_)) => privilege_finding(record),
        _ => return Vec::new(),
    };
    vec![event]
}

fn lifecycle(kind: &str, record: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    if matches!(kind, "sandbox_start" | "policy_reload" | "policy_rejected") {
        out.push(config_state(kind, record));
    }
    if matches!(kind, "sandbox_start" | "daemon_start")
        && let Some(failed) = record
            .pointer("/self_test/failed")
            .and_then(Value::as_object)
            .filter(|f| !f.is_empty())
    {
        out.push(degradation(kind, record, failed));
    }
    out
}

/// Severities (`severity_id`).
const INFORMATIONAL: u64 = 1;
const LOW: u64 = 2;
const MEDIUM: u64 = 3;
const HIGH: u64 = 4;

fn severity_name(id: u64) -> &'static str {
    match id {
        INFORMATIONAL => "Informational",
        LOW => "Low",
        MEDIUM => "Medium",
        HIGH => "High",
        _ => "Unknown",
    }
}

/// This host, as `device`.
fn device() -> Value {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    let hostname = HOSTNAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    });
    json!({"hostname": hostname, "type_id": 0, "type": "Unknown", "os": {"name": "Linux", "type_id": 200, "type": "Linux"}})
}

/// The record's `time` (RFC 3339) in milliseconds since the epoch; now if it has none.
fn time_ms(record: &Value) -> u64 {
    let time = record
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or_else(std::time::SystemTime::now);
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The attributes every event has: classification, time, severity, metadata, device, and
/// `unmapped` (the record without the `taken` keys).
fn base(
    class: Class,
    activity: (u64, &str),
    severity: u64,
    record: &Value,
    taken: &[&str],
) -> Map<String, Value> {
    let (activity_id, activity_name) = activity;
    let mut unmapped = record.as_object().cloned().unwrap_or_default();
    for key in ["time", "prev"].iter().chain(taken) {
        unmapped.remove(*key);
    }
    let Value::Object(map) = json!({
        "category_uid": class.category_uid(),
        "category_name": class.category_name(),
        "class_uid": class.uid(),
        "class_name": class.name(),
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class.uid() * 100 + activity_id,
        "type_name": format!("{}: {activity_name}", class.name()),
        "severity_id": severity,
        "severity": severity_name(severity),
        "time": time_ms(record),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "NemoClaw",
                "vendor_name": "NemoClaw",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "profiles": ["host", "security_control"],
            "log_name": "audit",
        },
        "device": device(),
        "unmapped": unmapped,
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

/// `action`/`disposition` and `status` of a kernel decision: every one logged is a denial.
fn denied(event: &mut Map<String, Value>, record: &Value) {
    set_verdict(event, false);
    event.insert("status_id".into(), 2.into());
    event.insert("status".into(), "Failure".into());
    if let Some(errno) = record.get("errno") {
        event.insert("status_detail".into(), errno.clone());
    }
    if let Some(rule) = record.get("rule") {
        let text = rule.get("text").and_then(Value::as_str).unwrap_or_default();
        let source = rule.get("source").and_then(Value::as_str).unwrap_or("");
        event.insert(
            "message".into(),
            format!("denied by {} {text} {source}", rule_section(rule))
                .trim_end()
                .into(),
        );
    }
}

fn rule_section(rule: &Value) -> &str {
    rule.get("section")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("policy:")
}

fn set_verdict(event: &mut Map<String, Value>, allowed: bool) {
    let (action_id, action, disposition_id, disposition) = if allowed {
        (1, "Allowed", 1, "Allowed")
    } else {
        (2, "Denied", 2, "Blocked")
    };
    event.insert("action_id".into(), action_id.into());
    event.insert("action".into(), action.into());
    event.insert("disposition_id".into(), disposition_id.into());
    event.insert("disposition".into(), disposition.into());
}

fn basename(path: &str) -> &str {
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path)
}

/// A file object: name, path, type, and `dev:ino` as its uid.
fn file(path: &str, type_id: u64, record_object: &Value) -> Value {
    let mut file = json!({"name": basename(path), "path": path, "type_id": type_id, "type": file_type(type_id)});
    if let (Some(dev), Some(ino)) = (record_object.get("dev"), record_object.get("ino")) {
        file["uid"] = format!("{dev}:{ino}").into();
    }
    file
}

fn file_type(type_id: u64) -> &'static str {
    match type_id {
        1 => "Regular File",
        2 => "Folder",
        5 => "Local Socket",
        _ => "Unknown",
    }
}

/// The task that acted: `actor` with its process (pid, thread, command, executable,
/// sandbox) and user.
fn actor(record: &Value) -> Value {
    let user = record
        .get("uid")
        .and_then(Value::as_u64)
        .map(|uid| json!({"uid": uid.to_string()}));
    let mut process =
        json!({"pid": record.get("tgid").or(record.get("pid")).cloned().unwrap_or(Value::Null)});
    if let Some(tid) = record.get("pid") {
        process["tid"] = tid.clone();
    }
    if let Some(comm) = record.get("comm") {
        process["name"] = comm.clone();
    }
    if let Some(exe) = record.get("exe").and_then(Value::as_str) {
        process["file"] =
            json!({"name": basename(exe), "path": exe, "type_id": 1, "type": "Regular File"});
    }
    if let Some(sandbox) = record.get("sandbox") {
        process["sandbox"] = sandbox.clone();
    }
    if let Some(user) = &user {
        process["user"] = user.clone();
    }
    let mut actor = json!({"process": process});
    if let Some(user) = user {
        actor["user"] = user;
    }
    actor
}

/// Keys of a deny record mapped into every class's attributes.
const DENY_TAKEN: &[&str] = &["decision", "errno", "pid", "tgid", "uid", "comm", "exe"];

fn file_activity(hook: &str, record: &Value) -> Value {
    let (activity, type_id) = match hook {
        "file_open" => ((14, "Open"), 0),
        "path_unlink" => ((4, "Delete"), 0),
        "path_rmdir" => ((4, "Delete"), 2),
        "path_mkdir" => ((1, "Create"), 2),
        "path_mknod" | "path_link" | "path_symlink" => ((1, "Create"), 0),
        "path_rename" => ((5, "Rename"), 0),
        "path_truncate" => ((3, "Update"), 1),
        "path_chmod" | "path_chown" | "inode_setattr" | "inode_setxattr" | "inode_removexattr" => {
            ((6, "Set Attributes"), 0)
        }
        "inode_set_acl" | "inode_remove_acl" => ((7, "Set Security"), 0),
        _ => ((99, "Other"), 0),
    };
    let object = record.get("object").cloned().unwrap_or(Value::Null);
    let mut event = base(Class::FileActivity, activity, LOW, record, DENY_TAKEN);
    let file = if let Some(path) = object.get("path").and_then(Value::as_str) {
        file(path, type_id, &object)
    } else {
        // No path reaches the object (`unreachable`): named by its `dev:ino`.
        let id = format!(
            "{}:{}",
            object.get("dev").unwrap_or(&Value::Null),
            object.get("ino").unwrap_or(&Value::Null)
        );
        json!({"name": id, "uid": id, "type_id": 0, "type": "Unknown"})
    };
    event.insert("file".into(), file);
    event.insert("actor".into(), actor(record));
    denied(&mut event, record);
    Value::Object(event)
}

fn process_activity(hook: &str, record: &Value) -> Value {
    let activity = match hook {
        "bprm_check_security" => (1, "Launch"),
        _ => (99, "Other"),
    };
    let mut event = base(Class::ProcessActivity, activity, MEDIUM, record, DENY_TAKEN);
    let actor = actor(record);
    let path = record.pointer("/object/path").and_then(Value::as_str);
    let process = match (hook, path) {
        // The image it would have become: the same pid, the denied file.
        ("bprm_check_security", Some(path)) => {
            let object = record.get("object").cloned().unwrap_or(Value::Null);
            json!({"pid": actor["process"]["pid"], "name": basename(path),
                   "file": file(path, 1, &object), "sandbox": actor["process"]["sandbox"]})
        }
        // An executable mapping of its own: the file stays in `unmapped.object`.
        _ => actor["process"].clone(),
    };
    event.insert("process".into(), strip_nulls(process));
    event.insert("actor".into(), actor);
    event.insert(
        "activity_name".into(),
        activity_name(hook, activity.1).into(),
    );
    denied(&mut event, record);
    Value::Object(event)
}

fn activity_name(hook: &str, name: &str) -> String {
    match hook {
        "mmap_file" => "Map Executable".into(),
        "file_mprotect" => "Make Executable".into(),
        _ => name.into(),
    }
}

fn strip_nulls(mut value: Value) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    value
}

fn network_activity(hook: &str, record: &Value) -> Value {
    let object = record.get("object").cloned().unwrap_or(Value::Null);
    let (activity, direction) = match hook {
        "connect4" | "connect6" | "unix_stream_connect" => ((1, "Open"), (2, "Outbound")),
        "sendmsg4" | "sendmsg6" | "unix_may_send" => ((6, "Traffic"), (2, "Outbound")),
        "bind4" | "bind6" | "socket_listen" => ((7, "Listen"), (1, "Inbound")),
        "dns_gateway" if record.get("decision").and_then(Value::as_str) == Some("error") => {
            ((4, "Fail"), (2, "Outbound"))
        }
        "dns_gateway" => ((5, "Refuse"), (2, "Outbound")),
        _ => ((99, "Other"), (0, "Unknown")),
    };
    let mut event = base(Class::NetworkActivity, activity, LOW, record, DENY_TAKEN);
    let protocol = object.get("protocol").and_then(Value::as_str);
    let mut connection = json!({"direction_id": direction.0, "direction": direction.1});
    if let Some(address) = object.get("address") {
        let endpoint =
            json!({"ip": address, "port": object.get("port").cloned().unwrap_or(0.into())});
        event.insert("dst_endpoint".into(), endpoint);
    } else if let Some(socket) = object.get("unix_socket").and_then(Value::as_str) {
        event.insert("dst_endpoint".into(), json!({"name": socket}));
        connection["protocol_name"] = "unix".into();
    }
    if let Some(protocol) = protocol {
        connection["protocol_name"] = protocol.into();
        match protocol {
            "tcp" => connection["protocol_num"] = 6.into(),
            "udp" => connection["protocol_num"] = 17.into(),
            _ => {}
        }
    }
    event.insert("connection_info".into(), connection);
    if record.get("pid").is_some() {
        event.insert("actor".into(), actor(record));
    }
    denied(&mut event, record);
    if hook == "dns_gateway" {
        event.insert(
            "status_detail".into(),
            record.get("rcode").cloned().unwrap_or_default(),
        );
        event.insert(
            "message".into(),
            record.get("reason").cloned().unwrap_or_default(),
        );
    }
    Value::Object(event)
}

fn api_activity(record: &Value) -> Value {
    let method = record.get("method").and_then(Value::as_str).unwrap_or("");
    let path = record.get("path").and_then(Value::as_str).unwrap_or("");
    let activity = match method {
        "POST" => (1, "Create"),
        "GET" | "HEAD" => (2, "Read"),
        "PUT" | "PATCH" => (3, "Update"),
        "DELETE" => (4, "Delete"),
        _ => (99, "Other"),
    };
    let allowed = record.get("decision").and_then(Value::as_str) == Some("allowed");
    let severity = if allowed { INFORMATIONAL } else { LOW };
    let taken = [
        "control", "decision", "method", "path", "status", "uid", "backend",
    ];
    let mut event = base(Class::ApiActivity, activity, severity, record, &taken);
    let sandbox = record.get("sandbox").and_then(Value::as_str);
    let mut actor = json!({"app_name": sandbox.unwrap_or("unknown sandbox")});
    if let Some(uid) = record.get("uid").and_then(Value::as_u64) {
        actor["user"] = json!({"uid": uid.to_string()});
    }
    let mut src = json!({"name": sandbox.unwrap_or("unknown sandbox")});
    if let Some(cgroup) = record.get("cgroup") {
        src["uid"] = format!("cgroup:{cgroup}").into();
    }
    event.insert("actor".into(), actor);
    event.insert("src_endpoint".into(), src);
    event.insert(
        "api".into(),
        json!({"operation": format!("{method} {path}"), "service": {"name": "nemoclaw-router"}}),
    );
    if let Some(backend) = record.get("backend") {
        event.insert("dst_endpoint".into(), json!({"name": backend}));
    }
    set_verdict(&mut event, allowed);
    let status = record.get("status").and_then(Value::as_u64).unwrap_or(0);
    let ok = allowed && (200..400).contains(&status);
    event.insert("status_id".into(), if ok { 1 } else { 2 }.into());
    event.insert(
        "status".into(),
        if ok { "Success" } else { "Failure" }.into(),
    );
    event.insert("status_code".into(), status.to_string().into());
    if let Some(reason) = record.get("reason") {
        event.insert("message".into(), reason.clone());
    }
    if let Some(ms) = record.get("latency_ms").and_then(Value::as_f64) {
        // Whole milliseconds; the exact figure stays in `unmapped`.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a latency"
        )]
        event.insert("duration".into(), (ms.max(0.0) as u64).into());
    }
    Value::Object(event)
}

#[cfg(test)]
#[path = "ocsf_tests.rs"]
mod tests;
