//! One audit record per request: sandbox, route, the decision and why (categories with
//! counts and places, never values), backend and model, status, latency, tokens. Records go
//! to the daemon's hash-chained trail, or to the router's own chained file when it runs
//! without a daemon.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use super::decide::Found;
use super::directory::Directory;
use super::reply::Ending;
use super::usage::Tokens;
use crate::audit::lifecycle;
use crate::audit::sink::AuditSink;
use crate::policy::inference::Action;

/// What the audit trail keeps of one request.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InferenceRecord {
    pub time: String,
    /// Always `inference`, what `nemoclaw logs` keys on.
    pub control: &'static str,
    /// `allowed` (served by a backend) or `denied` (refused or failed).
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_sha256: Option<String>,
    /// The kernel's view of the client: its socket's cgroup and owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    pub method: String,
    pub path: String,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Why, in words: the deciding categories and places, or the error.
    pub reason: String,
    pub found: Vec<Found>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Distinct values masked before the call, placeholders restored in the reply, and
    /// values the reply carried that the request did not, masked, by category.
    pub masked: usize,
    pub restored: usize,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub injected: BTreeMap<String, usize>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending: Option<Ending>,
    /// From the request's arrival to the reply's head (what the caller waited for).
    pub first_byte_ms: f64,
    /// From arrival to the end of the reply.
    pub latency_ms: f64,
    pub tokens: Tokens,
}

/// Where records go.
#[derive(Clone)]
pub enum AuditOut {
    /// The daemon's trail (over the control socket).
    Daemon(Arc<Directory>),
    /// The router's own hash-chained file.
    File(Arc<Mutex<AuditSink>>),
}

impl AuditOut {
    pub fn file(path: &Path) -> std::io::Result<AuditOut> {
        Ok(AuditOut::File(Arc::new(Mutex::new(AuditSink::open(
            Some(path),
            false,
        )?))))
    }

    /// Writes one record (blocking: the daemon round trip or a file append). A record
    /// that cannot be written is reported on stderr, by request and error, no content.
    pub fn write(&self, mut record: InferenceRecord) {
        record.control = "inference";
        if record.time.is_empty() {
            record.time = lifecycle::now();
        }
        let result = match self {
            AuditOut::Daemon(directory) => serde_json::to_value(&record)
                .map_err(|e| e.to_string())
                .and_then(|v| directory.record(v).map_err(|e| e.to_string())),
            AuditOut::File(sink) => sink
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_record(&record)
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            eprintln!(
                "nemoclaw router: audit record for {} {} (sandbox {}) not written: {e}",
                record.method,
                record.path,
                record.sandbox.as_deref().unwrap_or("-")
            );
        }
    }
}
