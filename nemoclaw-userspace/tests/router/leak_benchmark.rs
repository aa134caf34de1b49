//! The public third-party `pii-leak-benchmark` (`PyPI` 0.6.0, `cargo xtask setup`
//! installs it) against the router, its own capture server standing in as the cloud upstream:
//!
//! - v1 (`ci`): a streamed chat request carrying an e-mail address, an SSN, a card number
//!   and three provider keys; the capture echoes what it received one character per SSE
//!   event. CLEAN means no value (in any encoding the capture decodes) reached it and the
//!   client got its prompt back byte for byte. `ci` first runs its negative control (no
//!   gateway) and requires it to report LEAK, so the instrument is proven to see leaks.
//! - v2 (`pii-leak-benchmark-v2`): 32 cases placing values in the user message, a system
//!   message, an unknown top-level field and a tool description; the capture echoes them
//!   (which must come back restored) and injects other values, whole or split across SSE
//!   events at every cut position, in the text or in an unknown field, plain or
//!   percent-encoded (which must not reach the client, not even a fragment). Outcome
//!   `pass` over all 32 cases.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::inference_policy;
use crate::support::router::{TestRouter, free_port};
use crate::support::{Scratch, root_or_skip};

const BENCH_BIN: &str = "/var/cache/nemoclaw/leak-bench-py/bin";

/// The policy the benchmark's operator would write: every category it sends masked and
/// restored (the benchmark's default duty), secrets included.
const MASK_ALL: &str = "    email: mask\n    us_ssn: mask\n    payment_card: mask\n    \
                        phone: mask\n    secret: {action: mask, restore: true}\n";

fn bench_ready(test: &str) -> Option<PathBuf> {
    if !root_or_skip(test) {
        return None;
    }
    let bin = PathBuf::from(BENCH_BIN);
    assert!(
        bin.join("pii-leak-benchmark").exists(),
        "{}: pii-leak-benchmark is missing: run `cargo xtask setup`",
        bin.display()
    );
    Some(bin)
}

/// A router without a daemon whose cloud backend is the benchmark's capture on
/// `capture_port`, under a default policy that masks every category the benchmark sends.
fn router(scratch: &Scratch, capture_port: u16) -> (TestRouter, PathBuf) {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let policy = scratch.path("mask-all.yaml");
    std::fs::write(&policy, inference_policy(listen, "capture", MASK_ALL)).expect("policy");
    let audit = scratch.path("router-audit.jsonl");
    let config = format!(
        "upstream_timeout_secs: 20\nbackends:\n  \
         capture: {{api: openai, url: 'http://127.0.0.1:{capture_port}/v1', key_env: CLOUD_KEY}}\n  \
         local: {{api: openai, url: 'http://127.0.0.1:9/v1', local: true}}\n"
    );
    let router = TestRouter::start(
        scratch,
        listen,
        &config,
        &[
            "--no-daemon",
            "--default-policy",
            policy.to_str().expect("utf-8"),
            "--audit-log",
            audit.to_str().expect("utf-8"),
        ],
    );
    (router, audit)
}

fn run(command: &mut Command) -> (bool, String) {
    let out = command
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("run the benchmark");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    (out.status.success(), text)
}

/// A seed that differs per run, so the values the benchmark draws do too.
fn seed() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{:016x}", nanos & u128::from(u64::MAX))
}

fn audit_records(audit: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["control"] == "inference")
        .collect()
}

#[test]
fn pii_leak_benchmark_v1_reports_clean() {
    let Some(bin) = bench_ready("router_leak_benchmark_v1") else {
        return;
    };
    let scratch = Scratch::new("router-leak-v1");
    let capture_port = free_port();
    let (router, audit) = router(&scratch, capture_port);
    let out = scratch.path("v1-report");
    let (ok, text) = run(Command::new(bin.join("pii-leak-benchmark"))
        .arg("ci")
        .args(["--target-base-url", &format!("{}/v1", router.base_url())])
        .args(["--capture-port", &capture_port.to_string()])
        .args(["--seed", &seed()])
        .args(["--out", out.to_str().expect("utf-8")])
        .env("BENCHMARK_SUBMISSION_SECTION", "false"));
    assert!(ok, "pii-leak-benchmark ci did not pass:\n{text}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("current.json")).expect("current.json"),
    )
    .expect("report JSON");
    assert_eq!(report["verdict"], "CLEAN", "{report:#}");
    // The router's own account: each iteration masked and restored.
    let records = audit_records(&audit);
    assert!(!records.is_empty(), "no audit record");
    for r in &records {
        assert_eq!(r["action"], "mask", "{r}");
        assert!(r["masked"].as_u64().unwrap_or(0) >= 6, "{r}");
        assert!(r["restored"].as_u64().unwrap_or(0) >= 6, "{r}");
        assert_eq!(r["ending"], "complete", "{r}");
    }
}

#[test]
fn pii_leak_benchmark_v2_passes_echo_and_injection() {
    let Some(bin) = bench_ready("router_leak_benchmark_v2") else {
        return;
    };
    let scratch = Scratch::new("router-leak-v2");
    let capture_port = free_port();
    let (router, audit) = router(&scratch, capture_port);
    let out = scratch.path("v2-report");
    let summary = scratch.path("v2-summary.json");
    let (ok, text) = run(Command::new(bin.join("pii-leak-benchmark-v2"))
        .args(["--validate", "--only", "nemoclaw"])
        // Every cut position of every split value, and fragments of values scored too.
        .args(["--exhaustive-splits", "--partial-emission"])
        .args(["--out", out.to_str().expect("utf-8")])
        .args([
            "--gateway-url",
            &format!("{}/v1/chat/completions", router.base_url()),
        ])
        .args(["--upstream-port", &capture_port.to_string()])
        .args(["--seed", &seed()])
        .args(["--json-out", summary.to_str().expect("utf-8")]));
    assert!(ok, "pii-leak-benchmark-v2 failed:\n{text}");
    // It exits 0 whatever the outcome: the summary says.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("JSON");
    let row = summary
        .as_array()
        .and_then(|rows| rows.first())
        .or_else(|| summary["rows"].as_array().and_then(|rows| rows.first()))
        .unwrap_or(&summary)
        .clone();
    assert_eq!(row["outcome"], "pass", "{summary:#}\n{text}");
    assert!(
        text.contains("n=32/32") && text.contains("outcome=pass"),
        "every case applicable and passed:\n{text}"
    );
    assert!(
        text.contains("partial-emission=0.0 "),
        "not even a fragment of an injected value reached the client:\n{text}"
    );
    let records = audit_records(&audit);
    let injected: u64 = records
        .iter()
        .filter_map(|r| r["injected"].as_object())
        .flat_map(|m| m.values().filter_map(Value::as_u64))
        .sum();
    assert!(injected >= 32, "injected values masked: {injected}");
}
