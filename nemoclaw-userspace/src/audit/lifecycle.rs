//! Audit records besides denials: a sandbox starting (with the policy's hash and what is
//! enforced) and stopping (exit status, events the kernel could not deliver).

use std::{path::Path, time::SystemTime};

use serde::Serialize;

use super::chain::line_hash;

/// The policy a sandbox runs under: its file and the SHA-256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    pub file: String,
    pub sha256: String,
}

impl PolicyRef {
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        Ok(Self {
            file: path.display().to_string(),
            sha256: line_hash(&String::from_utf8_lossy(&bytes)),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Lifecycle {
    SandboxStart {
        time: String,
        sandbox: String,
        cgroup: u64,
        policy: PolicyRef,
        user: String,
        uid: u32,
        command: Vec<String>,
        enforcing: Vec<&'static str>,
        /// Who started it: the uid of the `nemoclaw` process (and `$SUDO_USER`, if any).
        requested_by: String,
    },
    SandboxStop {
        time: String,
        sandbox: String,
        cgroup: u64,
        /// Exit code, or 128 + signal.
        exit_code: Option<i32>,
        /// Deny events dropped because the ring buffer was full (the denials still held).
        events_lost: u64,
    },
}

#[must_use]
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
