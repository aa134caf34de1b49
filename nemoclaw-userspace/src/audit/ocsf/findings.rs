//! The classes of findings and state: Detection Finding (privilege denials, degraded
//! enforcement) and Device Config State Change (policy loads).

use serde_json::{Map, Value, json};

use super::{Class, DENY_TAKEN, HIGH, INFORMATIONAL, MEDIUM, actor, base, set_verdict};
use crate::audit::chain::sha256_hex;

/// Operations that reach for the kernel, the daemon or other tasks: tampering with the
/// enforcement, not just asking for more privilege.
const TAMPER: &[&str] = &[
    "bpf",
    "perf_event_open",
    "ptrace",
    "signal",
    "module request",
    "mount",
    "move mount",
    "unmount",
    "kernel log",
    "sigio owner",
    "priority",
    "io priority",
    "scheduler",
    "resource limit",
    "move memory",
    "sigio signal",
];

pub(super) fn privilege_finding(record: &Value) -> Value {
    let object = record.get("object").cloned().unwrap_or(Value::Null);
    let hook = record.get("hook").and_then(Value::as_str).unwrap_or("");
    let operation = object.get("operation").and_then(Value::as_str);
    let tamper = operation.is_some_and(|o| TAMPER.contains(&o));
    let (title, kind, severity) = if tamper {
        ("Tamper attempt denied", "Tamper Attempt", HIGH)
    } else {
        (
            "Privilege escalation attempt denied",
            "Privilege Escalation Attempt",
            MEDIUM,
        )
    };
    let what = operation.unwrap_or(hook);
    let mut event = base(
        Class::DetectionFinding,
        (1, "Create"),
        severity,
        record,
        DENY_TAKEN,
    );
    event.insert(
        "finding_info".into(),
        json!({
            "uid": sha256_hex(record.to_string().as_bytes()),
            "title": format!("{title}: {what}"),
            "types": [kind],
            "analytic": {"name": format!("privilege_escalation/{hook}"), "type_id": 1, "type": "Rule"},
        }),
    );
    let name = object
        .get("name")
        .or(object.get("path"))
        .and_then(Value::as_str)
        .unwrap_or(what);
    event.insert(
        "resources".into(),
        json!([{"name": name, "type": operation.unwrap_or("file")}]),
    );
    event.insert("actor".into(), actor(record));
    event.insert("status_id".into(), 1.into());
    event.insert("status".into(), "New".into());
    set_verdict(&mut event, false);
    if let Some(errno) = record.get("errno") {
        event.insert("status_detail".into(), errno.clone());
    }
    Value::Object(event)
}

/// Controls not enforced at a start: the tier degraded.
pub(super) fn degradation(kind: &str, record: &Value, failed: &Map<String, Value>) -> Value {
    let controls: Vec<&str> = failed.keys().map(String::as_str).collect();
    let mut event = base(
        Class::DetectionFinding,
        (1, "Create"),
        HIGH,
        record,
        &["event"],
    );
    event.insert(
        "finding_info".into(),
        json!({
            "uid": sha256_hex(format!("degraded {record}").as_bytes()),
            "title": format!("Enforcement degraded at {kind}: not enforced: {}", controls.join(", ")),
            "types": ["Tier Degradation"],
        }),
    );
    event.insert(
        "resources".into(),
        Value::Array(
            controls
                .iter()
                .map(|c| json!({"name": c, "type": "control"}))
                .collect(),
        ),
    );
    event.insert("status_id".into(), 1.into());
    event.insert("status".into(), "New".into());
    Value::Object(event)
}

/// A policy loaded into a sandbox (created or reloaded), or one rejected.
pub(super) fn config_state(kind: &str, record: &Value) -> Value {
    let rejected = kind == "policy_rejected";
    let severity = if rejected { MEDIUM } else { INFORMATIONAL };
    let mut event = base(
        Class::ConfigStateChange,
        (1, "Log"),
        severity,
        record,
        &["requested_by"],
    );
    let sandbox = record.get("sandbox").and_then(Value::as_str).unwrap_or("");
    let file = record
        .get("file")
        .or(record.pointer("/policy/file"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = match kind {
        "sandbox_start" => format!("sandbox {sandbox} created under policy {file}"),
        "policy_reload" => format!("policy {file} applied to sandbox {sandbox}"),
        _ => format!("policy {file} rejected for sandbox {sandbox}; the previous one holds"),
    };
    event.insert("message".into(), message.into());
    let (status_id, status) = if rejected {
        (2, "Failure")
    } else {
        (1, "Success")
    };
    event.insert("status_id".into(), status_id.into());
    event.insert("status".into(), status.into());
    if let Some(error) = record.get("error") {
        event.insert("status_detail".into(), error.clone());
    }
    if let Some(by) = record.get("requested_by") {
        event.insert("actor".into(), json!({"user": {"name": by}}));
    }
    Value::Object(event)
}
