//! Shared helpers for the privileged test suites: run `nemoclaw run` on a policy and a
//! small Python probe, and read back the exit status, output and audit records.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub const PYTHON: &str = "/usr/bin/python3";

pub fn nemoclaw() -> &'static str {
    env!("CARGO_BIN_EXE_nemoclaw")
}

/// Whether we are root; prints why a test is skipped when not.
pub fn root_or_skip(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        println!("SKIPPED {test}: needs root");
    }
    root
}

/// Whether BPF LSM programs load here. With `NEMOCLAW_REQUIRE_LSM=1` (the VM suite) a
/// missing BPF LSM is a failure, never a silent skip.
pub fn lsm_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        assert!(std::env::var_os("NEMOCLAW_REQUIRE_LSM").is_none(), "{test}: VM suite must run as root");
        return false;
    }
    let out = Command::new(nemoclaw()).args(["doctor", "--quiet-lsm-check"]).output().expect("run nemoclaw doctor");
    if out.status.success() {
        return true;
    }
    let why = String::from_utf8_lossy(&out.stdout);
    assert!(std::env::var_os("NEMOCLAW_REQUIRE_LSM").is_none(), "{test}: BPF LSM required but unavailable: {why}");
    println!("SKIPPED {test}: {why}");
    false
}

/// A scratch directory under /tmp (a tmpfs in the VM), removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nemoclaw-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a sandboxed run produced.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub audit: Vec<serde_json::Value>,
}

impl Outcome {
    /// The audit records for one control (`process`, `network`, ...).
    pub fn denials(&self, control: &str) -> Vec<&serde_json::Value> {
        self.audit.iter().filter(|r| r["control"] == control).collect()
    }
}

/// Runs `argv` under `policy_yaml` as `nobody`, with the audit log in `scratch`.
pub fn run_sandboxed(scratch: &Scratch, policy_yaml: &str, argv: &[&str]) -> Outcome {
    let policy = scratch.path("policy.yaml");
    std::fs::write(&policy, policy_yaml).expect("write policy");
    let audit = scratch.path("audit.jsonl");
    let _ = std::fs::remove_file(&audit);
    let out = Command::new(nemoclaw())
        .arg("run")
        .arg("--policy")
        .arg(&policy)
        .args(["--user", "nobody", "--audit-log"])
        .arg(&audit)
        .arg("--")
        .args(argv)
        .output()
        .expect("spawn nemoclaw run");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        audit: read_audit(&audit),
    }
}

fn read_audit(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

/// A Python probe that connects a socket and prints `OK` or `ERR <errno name>`.
pub fn connect_probe(family: &str, kind: &str, host: &str, port: u16) -> String {
    let send = if kind == "SOCK_DGRAM" { "s.sendto(b'x', (h, p))" } else { "s.connect((h, p))" };
    format!(
        "import socket, errno\n\
         h, p = {host:?}, {port}\n\
         s = socket.socket(socket.{family}, socket.{kind})\n\
         s.settimeout(5)\n\
         try:\n    {send}\n    print('OK')\n\
         except OSError as e:\n    print('ERR', errno.errorcode.get(e.errno, e.errno))\n"
    )
}
