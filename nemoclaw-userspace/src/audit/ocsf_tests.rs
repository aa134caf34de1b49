//! Every record kind mapped and checked against the OCSF schema's required attributes,
//! types, enums and uids (`tests/data/ocsf/required-1.8.0.json`, extracted from
//! github.com/ocsf/ocsf-schema at the v1.8.0 release commit by `extract.py` beside it).

use std::{collections::BTreeMap, time::SystemTime};

use nemoclaw_common::{event::DenyEvent, hooks::EVENT_HOOKS};
use serde_json::{Value, json};

use super::*;
use crate::audit::{
    AuditRecord,
    lifecycle::{Lifecycle, PolicyRef, SelfTest},
    rotate::Continuation,
    sink::{AuditSink, SinkOptions},
};
use crate::router::audit::InferenceRecord;

const SCHEMA: &str = include_str!("../../tests/data/ocsf/required-1.8.0.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).unwrap()
}

fn at<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(event, |v, key| v.get(key))
}

fn type_ok(value: &Value, ty: &str) -> bool {
    match ty {
        "integer" => value.is_u64() || value.is_i64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    }
}

fn check_required(event: &Value, required: &Value, constraints: &Value, what: &str) {
    for r in required.as_array().unwrap() {
        let (path, ty) = (r["path"].as_str().unwrap(), r["type"].as_str().unwrap());
        let value = at(event, path).unwrap_or_else(|| panic!("{what}: required `{path}` missing"));
        assert!(type_ok(value, ty), "{what}: `{path}` is {value}, not {ty}");
    }
    for (path, c) in constraints.as_object().unwrap() {
        let objects = match at(event, path) {
            None => continue,
            // An array of objects: each one.
            Some(Value::Array(items)) => items.iter().collect(),
            Some(object) => vec![object],
        };
        for object in objects {
            let present = |keys: &Value| {
                keys.as_array()
                    .unwrap()
                    .iter()
                    .filter(|k| object.get(k.as_str().unwrap()).is_some())
                    .count()
            };
            if let Some(keys) = c.get("at_least_one") {
                assert!(present(keys) >= 1, "{what}: `{path}` needs one of {keys}");
            }
            if let Some(keys) = c.get("just_one") {
                assert_eq!(
                    present(keys),
                    1,
                    "{what}: `{path}` needs exactly one of {keys}"
                );
            }
        }
    }
}

/// Checks `event` against its class in the schema data; returns its class uid.
fn check(event: &Value, what: &str) -> u64 {
    let schema = schema();
    let class_uid = event["class_uid"].as_u64().unwrap();
    let class = &schema["classes"][class_uid.to_string()];
    assert!(
        class.is_object(),
        "{what}: class {class_uid} not in the schema data"
    );
    assert_eq!(event["category_uid"], class["category_uid"], "{what}");
    let activity = event["activity_id"].as_u64().unwrap();
    assert_eq!(
        event["type_uid"].as_u64(),
        Some(class_uid * 100 + activity),
        "{what}"
    );
    assert!(
        class["activity_ids"]
            .as_array()
            .unwrap()
            .contains(&activity.into()),
        "{what}"
    );
    assert_eq!(
        event["metadata"]["version"], schema["_source"]["version"],
        "{what}"
    );
    check_required(event, &class["required"], &class["constraints"], what);
    for (attr, req) in class["if_present"].as_object().unwrap() {
        if event.get(attr).is_some() {
            check_required(event, &req["required"], &req["constraints"], what);
        }
    }
    let attributes = class["attributes"].as_array().unwrap();
    for key in event.as_object().unwrap().keys() {
        assert!(
            attributes.contains(&key.as_str().into()),
            "{what}: `{key}` is no attribute of {class_uid}"
        );
    }
    for (path, ids) in class["enums"].as_object().unwrap() {
        if let Some(id) = at(event, path) {
            assert!(
                ids.as_array().unwrap().contains(id),
                "{what}: `{path}` {id} not in {ids}"
            );
        }
    }
    assert!(event["time"].as_u64().unwrap() > 0, "{what}");
    class_uid
}

fn blank() -> DenyEvent {
    // SAFETY: DenyEvent is plain integers and byte arrays; all-zero is valid.
    unsafe { core::mem::zeroed() }
}

fn now() -> SystemTime {
    SystemTime::now()
}

/// A deny record of every hook the kernel side reports.
fn deny_records() -> Vec<AuditRecord> {
    EVENT_HOOKS
        .iter()
        .map(|h| {
            let mut ev = blank();
            ev.hook = h.id;
            ev.errno = 1;
            ev.pid = 42;
            ev.tgid = u32::MAX;
            ev.uid = 1000;
            ev.comm[..4].copy_from_slice(b"curl");
            let path = b"/work/secret.txt\0";
            ev.path[..path.len()].copy_from_slice(path);
            ev.path_len = path.len() as u32;
            if h.control == "network" {
                ev.family = 2;
                ev.addr[..4].copy_from_slice(&[10, 0, 0, 1]);
                ev.port = 443;
                ev.proto = 6;
            }
            let mut r = AuditRecord::from_event(&ev, &[], now());
            r.sandbox = Some("agents".into());
            r.exe = Some("/usr/bin/curl".into());
            r
        })
        .collect()
}

#[test]
fn every_deny_record_maps_to_its_controls_class() {
    let mut seen = BTreeMap::new();
    for record in deny_records() {
        let value = serde_json::to_value(&record).unwrap();
        let events = events(&value);
        let what = format!("{} {}", record.control, record.hook);
        assert_eq!(events.len(), 1, "{what}");
        let class = check(&events[0], &what);
        let expected = match record.control {
            "filesystem" => 1001,
            "process" => 1007,
            "network" => 4001,
            "privilege" => 2004,
            other => panic!("a control without a class: {other}"),
        };
        assert_eq!(class, expected, "{what}");
        assert_eq!(events[0]["action"], "Denied", "{what}");
        assert_eq!(events[0]["disposition"], "Blocked", "{what}");
        *seen.entry(class).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[test]
fn the_mapping_fills_the_classes_objects_from_the_record() {
    let records = deny_records();
    let by_hook = |control: &str, hook: &str| {
        let r = records
            .iter()
            .find(|r| r.control == control && r.hook == hook)
            .unwrap();
        events(&serde_json::to_value(r).unwrap()).remove(0)
    };
    let open = by_hook("filesystem", "file_open");
    assert_eq!(
        (open["activity_name"].as_str(), open["type_uid"].as_u64()),
        (Some("Open"), Some(100_114))
    );
    assert_eq!(open["file"]["path"], "/work/secret.txt");
    assert_eq!(open["file"]["name"], "secret.txt");
    assert_eq!(open["actor"]["process"]["pid"], u32::MAX);
    assert_eq!(open["actor"]["process"]["sandbox"], "agents");
    assert_eq!(open["actor"]["user"]["uid"], "1000");
    assert_eq!(open["status_detail"], "EPERM");
    assert_eq!(
        open["unmapped"]["rule"]["text"],
        "default deny (no rule allows this)"
    );
    let exec = by_hook("process", "bprm_check_security");
    assert_eq!(exec["activity_name"], "Launch");
    assert_eq!(exec["process"]["file"]["path"], "/work/secret.txt");
    let connect = by_hook("network", "connect4");
    assert_eq!(
        connect["dst_endpoint"],
        json!({"ip": "10.0.0.1", "port": 443})
    );
    assert_eq!(connect["connection_info"]["direction"], "Outbound");
    let listen = by_hook("network", "socket_listen");
    assert_eq!(listen["activity_name"], "Listen");
    let bpf = by_hook("privilege", "bpf");
    assert_eq!(bpf["finding_info"]["types"], json!(["Tamper Attempt"]));
    assert_eq!(bpf["severity"], "High");
    let setuid = by_hook("privilege", "task_fix_setuid");
    assert_eq!(
        setuid["finding_info"]["types"],
        json!(["Privilege Escalation Attempt"])
    );
    assert_eq!(setuid["severity_id"], 3);
}

fn self_test(failed: &[(&str, &str)]) -> SelfTest {
    SelfTest {
        passed: vec!["network"],
        failed: failed
            .iter()
            .map(|(c, w)| ((*c).to_owned(), (*w).to_owned()))
            .collect(),
        micros: 900,
    }
}

fn policy() -> PolicyRef {
    PolicyRef {
        file: "/etc/nemoclaw/policies/agents.yaml".into(),
        sha256: "ab".repeat(32),
    }
}

/// Every lifecycle kind, and the classes each maps to.
fn lifecycle_records() -> Vec<(Lifecycle, Vec<u64>)> {
    let time = || "2026-12-06T06:00:00.000Z".to_owned();
    let start = |failed: &[(&str, &str)]| Lifecycle::SandboxStart {
        time: time(),
        sandbox: "agents".into(),
        cgroup: 7,
        policy: policy(),
        user: "root".into(),
        uid: 0,
        command: vec!["sh".into()],
        enforcing: vec!["network"],
        self_test: Some(self_test(failed)),
        requested_by: "uid 0".into(),
    };
    let daemon = |failed: &[(&str, &str)]| Lifecycle::DaemonStart {
        time: time(),
        pid: 1,
        adopted: false,
        controls: vec!["network"],
        self_test: self_test(failed),
        sandboxes: vec![],
    };
    let degraded = [("filesystem", "probe not denied")];
    vec![
        (start(&[]), vec![5019]),
        (start(&degraded), vec![5019, 2004]),
        (daemon(&[]), vec![]),
        (daemon(&degraded), vec![2004]),
        (
            Lifecycle::SandboxStop {
                time: time(),
                sandbox: "agents".into(),
                cgroup: 7,
                exit_code: Some(0),
                events_lost: 0,
            },
            vec![],
        ),
        (
            Lifecycle::DaemonStop {
                time: time(),
                pid: 1,
                sandboxes: vec![],
            },
            vec![],
        ),
        (
            Lifecycle::PolicyReload {
                time: time(),
                sandbox: "agents".into(),
                file: policy().file,
                old_sha256: "a".into(),
                new_sha256: "b".into(),
                added: vec!["network: x".into()],
                removed: vec![],
                requested_by: "uid 0".into(),
                enforced_monotonic_ns: 5,
            },
            vec![5019],
        ),
        (
            Lifecycle::PolicyRejected {
                time: time(),
                sandbox: "agents".into(),
                file: policy().file,
                error: "p.yaml:3:1: unknown key".into(),
                requested_by: "uid 0".into(),
            },
            vec![5019],
        ),
        (
            Lifecycle::DenialsSuppressed {
                time: time(),
                sandbox: None,
                cgroup: 7,
                suppressed: 3,
            },
            vec![],
        ),
        (
            Lifecycle::DnsChange {
                time: time(),
                sandbox: "agents".into(),
                change: "x".into(),
            },
            vec![],
        ),
        (
            Lifecycle::EventsLost {
                time: time(),
                lost: 1,
                total: 2,
            },
            vec![],
        ),
    ]
}

#[test]
fn every_lifecycle_record_maps_or_is_skipped() {
    for (record, classes) in lifecycle_records() {
        let value = serde_json::to_value(&record).unwrap();
        let what = value["event"].as_str().unwrap().to_owned();
        let events = events(&value);
        let got: Vec<u64> = events.iter().map(|e| check(e, &what)).collect();
        assert_eq!(got, classes, "{what}");
        assert!(
            events.iter().all(|e| e["time"] == 1_796_536_800_000_u64),
            "{what}"
        );
    }
    let rejected = events(&serde_json::to_value(&lifecycle_records()[7].0).unwrap()).remove(0);
    assert_eq!(
        (
            rejected["status"].as_str(),
            rejected["status_detail"].as_str()
        ),
        (Some("Failure"), Some("p.yaml:3:1: unknown key"))
    );
    let continuation = serde_json::to_value(Continuation::new("ab", 3, 1)).unwrap();
    assert!(events(&continuation).is_empty());
}

#[test]
fn router_and_dns_records_map() {
    let mut record = InferenceRecord {
        time: "2026-12-06T06:00:00.000Z".into(),
        control: "inference",
        decision: "allowed",
        sandbox: Some("agents".into()),
        cgroup: Some(7),
        uid: Some(1000),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        reason: "email: 2 masked".into(),
        backend: Some("cloud".into()),
        masked: 2,
        status: 200,
        latency_ms: 12.7,
        ..InferenceRecord::default()
    };
    let event = events(&serde_json::to_value(&record).unwrap()).remove(0);
    assert_eq!(check(&event, "inference"), 6003);
    assert_eq!(
        (event["action"].as_str(), event["status"].as_str()),
        (Some("Allowed"), Some("Success"))
    );
    assert_eq!(event["api"]["operation"], "POST /v1/chat/completions");
    assert_eq!(
        (
            event["duration"].as_u64(),
            event["unmapped"]["masked"].as_u64()
        ),
        (Some(12), Some(2))
    );
    record.decision = "denied";
    record.status = 403;
    record.uid = None;
    record.cgroup = None;
    let event = events(&serde_json::to_value(&record).unwrap()).remove(0);
    check(&event, "inference denied");
    assert_eq!(
        (event["disposition"].as_str(), event["status"].as_str()),
        (Some("Blocked"), Some("Failure"))
    );

    let dns = json!({"time": "2026-12-06T06:00:00.000Z", "decision": "deny", "control": "network",
        "hook": "dns_gateway", "rcode": "REFUSED", "reason": "not allowed", "sandbox": "agents",
        "object": {"dns_name": "evil.example", "dns_type": "A", "transport": "udp"}});
    let event = events(&dns).remove(0);
    assert_eq!(check(&event, "dns"), 4001);
    assert_eq!(
        (
            event["activity_name"].as_str(),
            event["unmapped"]["object"]["dns_name"].as_str()
        ),
        (Some("Refuse"), Some("evil.example"))
    );
    // Records of no known control are not mapped.
    assert!(events(&json!({"control": "other", "hook": "x"})).is_empty());
}

#[test]
fn the_sink_writes_ocsf_lines_beside_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (log, ocsf) = (
        dir.path().join("audit.jsonl"),
        dir.path().join("ocsf.jsonl"),
    );
    let options = SinkOptions {
        rotate_size: 0,
        keep: 10,
        ocsf: Some(ocsf.clone()),
    };
    let mut sink = AuditSink::open_with(Some(&log), false, &options).unwrap();
    for record in deny_records().iter().take(3) {
        sink.write(record).unwrap();
    }
    sink.write_record(&lifecycle_records()[2].0).unwrap(); // not mapped
    sink.write_record(&lifecycle_records()[6].0).unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&ocsf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines
            .iter()
            .all(|e| e.get("prev").is_none() && e["unmapped"].get("prev").is_none())
    );
    assert_eq!(lines[3]["class_uid"], 5019);
    assert_eq!(
        crate::audit::chain::verify(&std::fs::read_to_string(&log).unwrap(), None)
            .unwrap()
            .0,
        5
    );
}
