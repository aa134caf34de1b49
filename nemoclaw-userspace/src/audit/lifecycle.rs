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

/// What the self-test (`sandbox::selftest`) proved: a probe task was denied under each
/// passed control; failed ones carry why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SelfTest {
    pub passed: Vec<&'static str>,
    /// Why, for each control whose probe was not denied.
    pub failed: std::collections::BTreeMap<String, String>,
    /// What the self-test took, in microseconds.
    pub micros: u64,
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
        /// Controls enforced: only those whose self-test passed.
        enforcing: Vec<&'static str>,
        /// The self-test of a standalone run (the daemon's is in its `daemon_start`).
        #[serde(skip_serializing_if = "Option::is_none")]
        self_test: Option<SelfTest>,
        /// Who started it: the uid of the `nemoclaw` process (and `$SUDO_USER`, if any).
        requested_by: String,
    },
    SandboxStop {
        time: String,
        sandbox: String,
        cgroup: u64,
        /// Exit code, or 128 + signal.
        exit_code: Option<i32>,
        /// Deny events dropped because the ring buffer was full (the denials still held)
        /// while the sandbox ran: the kernel counts drops for all sandboxes together.
        events_lost: u64,
    },
    /// The daemon started: with enforcement it loaded and pinned, or adopted from pins.
    DaemonStart {
        time: String,
        pid: u32,
        adopted: bool,
        /// Controls available to sandboxes: attached, and their self-test passed.
        controls: Vec<&'static str>,
        /// The self-test run at this start (also after adoption).
        self_test: SelfTest,
        sandboxes: Vec<String>,
    },
    DaemonStop {
        time: String,
        pid: u32,
        /// Sandboxes left running, still enforced by the pinned programs.
        sandboxes: Vec<String>,
    },
    /// A sandbox's policy was replaced (a fresh slot, then one map update).
    PolicyReload {
        time: String,
        sandbox: String,
        file: String,
        old_sha256: String,
        new_sha256: String,
        /// Rules (`section: entry`) in the new policy and not the old, and the reverse.
        added: Vec<String>,
        removed: Vec<String>,
        requested_by: String,
        /// `CLOCK_MONOTONIC` (ns) of the switch to the new slot: when the new rules began to
        /// be enforced (comparable with the time of a file write on the same machine).
        enforced_monotonic_ns: u64,
    },
    /// A policy that failed to load; nothing changed.
    PolicyRejected {
        time: String,
        sandbox: String,
        file: String,
        error: String,
        requested_by: String,
    },
    /// Denials of one sandbox not written one by one, beyond the per-second record limit
    /// (the denials held).
    DenialsSuppressed {
        time: String,
        sandbox: Option<String>,
        cgroup: u64,
        suppressed: u64,
    },
    /// A host-name rule's addresses changed (or their refresh failed).
    DnsChange {
        time: String,
        sandbox: String,
        change: String,
    },
    /// Deny events the kernel could not deliver since the last such record (the denials held).
    EventsLost { time: String, lost: u64, total: u64 },
}

/// `CLOCK_MONOTONIC` in nanoseconds.
#[must_use]
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux.
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        u64::try_from(ts.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(ts.tv_nsec()).unwrap_or(0)
    })
}

#[must_use]
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
