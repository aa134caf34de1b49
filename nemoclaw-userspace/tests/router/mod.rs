//! The privacy router, end to end: the official SDKs in a sandbox call models through
//! `nemoclaw router` (run as `nobody`), which learns the sandbox from the kernel, routes by
//! what it finds, and audits; a recording stand-in plays the cloud and proves what never
//! reached it.

mod leak_benchmark;
mod local_model;
mod masking;
mod openclaw;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::daemon::TestDaemon;
use crate::support::router::{Standin, TestRouter, client_script, free_port, router_python};
use crate::support::{PYTHON, Scratch, connect_probe, root_or_skip};

/// A GitHub token (category `secret`) and an e-mail address (category `email`).
pub const SECRET: &str = "ghp_R8bT2wQ9xLm4Vc7Zp1Ks5Nd3Hy6Jf0Ga2Uex";
pub const EMAIL: &str = "jane.doe@example.org";

fn router_config(cloud: &Standin, local: &Standin, extra: &str) -> String {
    format!(
        "upstream_timeout_secs: 3\n{extra}backends:\n  \
         cloud: {{api: openai, url: 'http://{c}/v1', key_env: CLOUD_KEY}}\n  \
         anthropic: {{api: anthropic, url: 'http://{c}', key_env: ANTHROPIC_KEY}}\n  \
         local: {{api: openai, url: 'http://{l}/v1', local: true, key_env: CLOUD_KEY}}\n",
        c = cloud.addr,
        l = local.addr
    )
}

/// A network-only policy whose inference goes through the router at `router`.
pub fn inference_policy(router: SocketAddr, cloud: &str, categories: &str) -> String {
    format!(
        "network:\n  allow: [\"127.0.0.1:9\"]\n  deny: \"*\"\ninference:\n  router: {router}\n  \
         cloud: {{backend: {cloud}}}\n  local: {{backend: local}}\n  default: allow\n  \
         categories:\n{categories}"
    )
}

const CATEGORIES: &str = "    secret: block\n    email: local\n    payment_card: block\n";

struct Setup {
    scratch: Scratch,
    daemon: TestDaemon,
    cloud: Standin,
    local: Standin,
    router: TestRouter,
}

impl Setup {
    fn start(tag: &str, extra_config: &str, router_args: &[&str]) -> Setup {
        let scratch = Scratch::new(tag);
        let daemon = TestDaemon::start(&scratch, tag);
        let cloud = Standin::start(&scratch, "cloud");
        let local = Standin::start(&scratch, "local");
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let socket = daemon.socket.to_str().expect("utf-8").to_owned();
        let mut args = vec!["--daemon-socket", socket.as_str()];
        args.extend_from_slice(router_args);
        let router = TestRouter::start(
            &scratch,
            listen,
            &router_config(&cloud, &local, extra_config),
            &args,
        );
        Setup {
            scratch,
            daemon,
            cloud,
            local,
            router,
        }
    }

    /// Runs the SDK client in sandbox `name` as `nobody` under `policy`; one JSON result per
    /// call.
    fn agent(&self, name: &str, policy: &str, plan: &Value) -> Vec<Value> {
        run_agent(
            &self.daemon,
            &self.scratch,
            &self.router.base_url(),
            name,
            policy,
            plan,
        )
    }

    fn inference_records(&self) -> Vec<Value> {
        inference_records(&self.daemon)
    }
}

/// Runs the SDK client in sandbox `name` (created through `daemon`) as `nobody` under
/// `policy`, against the router at `base_url`; one JSON result per call.
fn run_agent(
    daemon: &TestDaemon,
    scratch: &Scratch,
    base_url: &str,
    name: &str,
    policy: &str,
    plan: &Value,
) -> Vec<Value> {
    let file = scratch.path(&format!("{name}.yaml"));
    std::fs::write(&file, policy).expect("write policy");
    let plan_file = scratch.path(&format!("{name}-plan.json"));
    std::fs::write(&plan_file, plan.to_string()).expect("write plan");
    let python = router_python();
    let child = daemon.run_background(
        name,
        &file,
        "nobody",
        &[
            python.to_str().expect("utf-8"),
            client_script().to_str().expect("utf-8"),
            base_url,
            plan_file.to_str().expect("utf-8"),
        ],
    );
    let out = child.wait_with_output().expect("client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let expected = plan.as_array().map_or(0, Vec::len);
    assert_eq!(
        results.len(),
        expected,
        "client output: {stdout}\nstderr: {}\nrouter audit: {:?}",
        String::from_utf8_lossy(&out.stderr),
        inference_records(daemon)
    );
    results
}

/// The router's records in the daemon's audit trail.
fn inference_records(daemon: &TestDaemon) -> Vec<Value> {
    daemon
        .audit()
        .into_iter()
        .filter(|r| r["control"] == "inference")
        .collect()
}

fn sdks_ready(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    let python = router_python();
    let ok = std::process::Command::new(&python)
        .args(["-c", "import openai, anthropic"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{}: the openai and anthropic SDKs are missing: run `cargo xtask setup`",
        python.display()
    );
    true
}

/// One step of an agent's plan: `method` of the `sdk` client called with `kwargs`.
fn call(sdk: &str, method: &str, kwargs: Value) -> Value {
    let mut step = json!({"sdk": sdk, "method": method});
    step["kwargs"] = kwargs;
    step
}

/// An `OpenAI` chat call whose one user message holds `content`.
fn chat(content: Value, stream: bool) -> Value {
    let mut kwargs = json!({"model": "gpt-test", "stream": stream,
                            "messages": [{"role": "user"}]});
    kwargs["messages"][0]["content"] = content;
    call("openai", "chat", kwargs)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every `OpenAI` SDK call the router serves: models, chat (plain, streamed, streamed with
/// usage), responses (plain, streamed) and embeddings.
fn openai_sdk_plan() -> Value {
    json!([
        call("openai", "models", json!({})),
        chat(json!("Say hello."), false),
        call(
            "openai",
            "chat",
            json!({"model": "gpt-test", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Say hello."}]})
        ),
        call(
            "openai",
            "responses",
            json!({"model": "gpt-test", "input": "Say hello."})
        ),
        call(
            "openai",
            "responses",
            json!({"model": "gpt-test", "input": "Say hello.", "stream": true})
        ),
        call(
            "openai",
            "embeddings",
            json!({"model": "emb-test", "input": ["one", "two"]})
        ),
    ])
}

/// Anthropic SDK messages, plain and streamed.
fn anthropic_sdk_plan() -> Value {
    json!([
        call(
            "anthropic",
            "messages",
            json!({"model": "claude-test", "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hello."}]})
        ),
        call(
            "anthropic",
            "messages",
            json!({"model": "claude-test", "max_tokens": 64, "stream": true,
            "messages": [{"role": "user", "content": "Say hello."}]})
        ),
    ])
}

#[test]
fn official_sdks_reach_the_cloud_through_the_router_with_the_hosts_key() {
    if !sdks_ready("router_sdks") {
        return;
    }
    let s = Setup::start("router-sdks", "", &[]);
    let results = s.agent(
        "agent",
        &inference_policy(s.router.addr, "cloud", CATEGORIES),
        &openai_sdk_plan(),
    );
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["ok"], true, "call {i}: {r}");
    }
    assert!(
        results[1]["text"]
            .as_str()
            .unwrap()
            .contains("cloud stand-in"),
        "{results:?}"
    );
    assert!(
        results[2]["text"]
            .as_str()
            .unwrap()
            .contains("cloud stand-in"),
        "{results:?}"
    );
    assert_eq!(results[5]["text"], "2 embeddings of 16", "{results:?}");

    let results = s.agent(
        "claude",
        &inference_policy(s.router.addr, "anthropic", CATEGORIES),
        &anthropic_sdk_plan(),
    );
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["ok"], true, "call {i}: {r}");
        assert!(
            r["text"].as_str().unwrap().contains("cloud stand-in"),
            "{r}"
        );
    }

    // The cloud saw the host's keys, never the sandbox's; `models` never left the router.
    let requests = s.cloud.requests();
    assert_eq!(requests.len(), 7, "{requests:?}");
    for r in &requests {
        let h = &r["headers"];
        if r["path"] == "/v1/messages" {
            assert_eq!(h["x-api-key"], "sk-ant-host-key", "{r}");
            assert!(h.get("authorization").is_none(), "{r}");
        } else {
            assert_eq!(h["authorization"], "Bearer sk-cloud-host-key", "{r}");
            assert!(h.get("x-api-key").is_none(), "{r}");
        }
    }
    assert!(!contains(
        &s.cloud.received(),
        "sk-sandbox-key-must-not-leave"
    ));
    assert!(s.local.requests().is_empty());

    // One audit record per call, naming the sandbox the kernel identified.
    let records = s.inference_records();
    assert_eq!(records.len(), 8, "{records:#?}");
    for r in &records {
        assert_eq!(r["decision"], "allowed", "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["sandbox"] == "agent" || r["sandbox"] == "claude", "{r}");
        assert!(r["prev"].is_string(), "chained: {r}");
    }
    let streamed_chat = records
        .iter()
        .find(|r| r["path"] == "/v1/chat/completions" && r["stream"] == true)
        .expect("streamed chat record");
    assert_eq!(streamed_chat["ending"], "complete", "{streamed_chat}");
    assert!(
        streamed_chat["tokens"]["completion"].as_u64().is_some(),
        "{streamed_chat}"
    );
    assert_eq!(streamed_chat["backend"], "cloud");
}

/// Every place a request carries text, for each API.
fn shapes(value: &str) -> Vec<(&'static str, Value)> {
    let tool_args = json!({"query": value}).to_string();
    vec![
        (
            "chat string",
            chat(json!(format!("Write to {value} please")), false),
        ),
        (
            "chat string streamed",
            chat(json!(format!("Write to {value} please")), true),
        ),
        (
            "chat parts",
            chat(
                json!([{"type": "text", "text": format!("note: {value}")}]),
                false,
            ),
        ),
        (
            "chat system",
            call(
                "openai",
                "chat",
                json!({"model": "gpt-test", "messages": [
            {"role": "system", "content": format!("Contact: {value}")},
            {"role": "user", "content": "hi"}]}),
            ),
        ),
        (
            "chat tool call arguments",
            call(
                "openai",
                "chat",
                json!({"model": "gpt-test", "messages": [
            {"role": "user", "content": "look it up"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "lookup", "arguments": tool_args}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"}]}),
            ),
        ),
        (
            "chat tool result streamed",
            call(
                "openai",
                "chat",
                json!({"model": "gpt-test", "stream": true, "messages": [
            {"role": "user", "content": "look it up"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "lookup", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": format!("found {value}")}]}),
            ),
        ),
        (
            "responses string",
            call(
                "openai",
                "responses",
                json!({"model": "gpt-test", "input": format!("mail {value}")}),
            ),
        ),
        (
            "responses items streamed",
            call(
                "openai",
                "responses",
                json!({"model": "gpt-test", "stream": true,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": format!("mail {value}")}]}]}),
            ),
        ),
        (
            "responses instructions",
            call(
                "openai",
                "responses",
                json!({"model": "gpt-test",
            "instructions": format!("sign as {value}"), "input": "hi"}),
            ),
        ),
        (
            "embeddings",
            call(
                "openai",
                "embeddings",
                json!({"model": "emb", "input": ["a", format!("b {value}")]}),
            ),
        ),
    ]
}

fn anthropic_shapes(value: &str) -> Vec<(&'static str, Value)> {
    let m = |extra: Value, stream: bool| {
        let mut kwargs = json!({"model": "claude-test", "max_tokens": 64, "stream": stream});
        for (k, v) in extra.as_object().expect("extra kwargs are an object") {
            kwargs[k] = v.clone();
        }
        call("anthropic", "messages", kwargs)
    };
    vec![
        (
            "messages string",
            m(
                json!({"messages": [{"role": "user", "content": format!("to {value}")}]}),
                false,
            ),
        ),
        (
            "messages streamed",
            m(
                json!({"messages": [{"role": "user", "content": format!("to {value}")}]}),
                true,
            ),
        ),
        (
            "messages system",
            m(
                json!({"system": format!("owner {value}"),
            "messages": [{"role": "user", "content": "hi"}]}),
                false,
            ),
        ),
        (
            "messages blocks",
            m(
                json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": format!("to {value}")}]}]}),
                true,
            ),
        ),
        (
            "messages tool_use input",
            m(
                json!({"messages": [
            {"role": "user", "content": "look"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup",
                "input": {"who": value}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]}),
                false,
            ),
        ),
        (
            "messages tool_result",
            m(
                json!({"messages": [
            {"role": "user", "content": "look"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                "content": [{"type": "text", "text": format!("got {value}")}]}]}]}),
                true,
            ),
        ),
    ]
}

#[test]
fn local_and_block_categories_never_reach_the_cloud_in_any_shape() {
    if !sdks_ready("router_shapes") {
        return;
    }
    let s = Setup::start("router-shapes", "", &[]);
    let openai_policy = inference_policy(s.router.addr, "cloud", CATEGORIES);
    let anthropic_policy = inference_policy(s.router.addr, "anthropic", CATEGORIES);

    // E-mail addresses go to the local model; secrets are blocked, saying why and where.
    let email = shapes(EMAIL);
    let plan: Vec<Value> = email.iter().map(|(_, c)| c.clone()).collect();
    let results = s.agent("mail", &openai_policy, &json!(plan));
    for ((what, _), r) in email.iter().zip(&results) {
        assert_eq!(r["ok"], true, "{what}: {r}");
        let text = r["text"].as_str().unwrap();
        assert!(
            text.contains("stand-in") || text.contains("embeddings"),
            "{what}: {r}"
        );
    }
    assert_eq!(s.local.requests().len(), email.len(), "all served locally");
    let secret = shapes(SECRET);
    let plan: Vec<Value> = secret.iter().map(|(_, c)| c.clone()).collect();
    let results = s.agent("keys", &openai_policy, &json!(plan));
    for ((what, _), r) in secret.iter().zip(&results) {
        assert_eq!(r["ok"], false, "{what}: {r}");
        assert_eq!(r["status"], 403, "{what}: {r}");
        let message = r["error"].as_str().unwrap();
        assert!(message.contains("category `secret`"), "{what}: {message}");
        assert!(
            !message.contains(SECRET),
            "{what}: the value is never echoed"
        );
    }

    // Anthropic requests: blocked the same way; a local category goes to the
    // OpenAI-speaking local model, translated both ways, never to the cloud.
    let cases = anthropic_shapes(SECRET);
    let plan: Vec<Value> = cases.iter().map(|(_, c)| c.clone()).collect();
    let results = s.agent("claude", &anthropic_policy, &json!(plan));
    for ((what, _), r) in cases.iter().zip(&results) {
        assert_eq!(r["ok"], false, "{what}: {r}");
        assert_eq!(r["status"], 403, "{what}: {r}");
    }
    let translated = anthropic_shapes(EMAIL);
    let plan: Vec<Value> = translated.iter().map(|(_, c)| c.clone()).collect();
    let results = s.agent("claude-mail", &anthropic_policy, &json!(plan));
    for ((what, _), r) in translated.iter().zip(&results) {
        assert_eq!(r["ok"], true, "{what}: {r}");
        assert!(
            r["text"].as_str().unwrap().contains("stand-in"),
            "{what}: {r}"
        );
    }
    let local_requests = s.local.requests();
    assert_eq!(local_requests.len(), email.len() + translated.len());
    assert!(
        local_requests[email.len()..]
            .iter()
            .all(|r| r["path"] == "/v1/chat/completions"),
        "{local_requests:?}"
    );

    let cloud = s.cloud.received();
    assert!(
        !contains(&cloud, EMAIL),
        "an e-mail address reached the cloud"
    );
    assert!(!contains(&cloud, SECRET), "a secret reached the cloud");
    assert!(s.cloud.requests().is_empty(), "{:?}", s.cloud.requests());
    assert!(
        !contains(&s.local.received(), SECRET),
        "blocked means nowhere"
    );

    let records = s.inference_records();
    let blocked: Vec<&Value> = records
        .iter()
        .filter(|r| r["error"] == "blocked_by_policy")
        .collect();
    assert_eq!(blocked.len(), secret.len() + 6, "{records:#?}");
    for r in &blocked {
        assert_eq!(r["found"][0]["category"], "secret", "{r}");
        assert!(
            r["found"][0]["rule"].as_str().unwrap().contains(".yaml:"),
            "{r}"
        );
    }
    let local: Vec<&Value> = records.iter().filter(|r| r["backend"] == "local").collect();
    assert_eq!(local.len(), email.len() + translated.len(), "{records:#?}");
    let log = std::fs::read_to_string(&s.daemon.audit).unwrap();
    assert!(
        !log.contains(SECRET) && !log.contains(EMAIL),
        "no value in the audit trail"
    );
}

/// Sends raw bytes to `addr`, returns (status, body) of the answer (or status 0 when the
/// connection closed without one).
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("set read timeout");
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

fn post(path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: r\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A router without a daemon: clients outside every sandbox (the test itself) under a
/// default policy, audited to the router's own file.
struct Standalone {
    scratch: Scratch,
    cloud: Standin,
    local: Standin,
    router: TestRouter,
    audit: std::path::PathBuf,
}

impl Standalone {
    fn start(tag: &str, extra_config: &str) -> Standalone {
        let scratch = Scratch::new(tag);
        let cloud = Standin::start(&scratch, "cloud");
        let local = Standin::start(&scratch, "local");
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let policy = default_policy(&scratch, listen);
        let audit = scratch.path("router-audit.jsonl");
        let audit_arg = audit.to_str().expect("utf-8").to_owned();
        let router = TestRouter::start(
            &scratch,
            listen,
            &router_config(&cloud, &local, extra_config),
            &[
                "--no-daemon",
                "--default-policy",
                &policy,
                "--audit-log",
                &audit_arg,
            ],
        );
        Standalone {
            scratch,
            cloud,
            local,
            router,
            audit,
        }
    }
}

/// A host-tool default policy (clients outside every sandbox).
fn default_policy(scratch: &Scratch, router: SocketAddr) -> String {
    let file = scratch.path("default.yaml");
    std::fs::write(&file, inference_policy(router, "cloud", CATEGORIES))
        .expect("write default policy");
    file.to_str().expect("utf-8").to_owned()
}

/// Requests the router must refuse, each with its status and a phrase of its error:
/// (what, raw request, status, says).
fn bad_requests() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let chat_ok = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    vec![
        (
            "malformed JSON",
            post("/v1/chat/completions", "application/json", b"{\"model\":"),
            400,
            "not valid JSON",
        ),
        (
            "wrong content type",
            post("/v1/chat/completions", "text/plain", chat_ok),
            415,
            "application/json",
        ),
        (
            "invalid UTF-8",
            post(
                "/v1/chat/completions",
                "application/json",
                b"{\"model\":\"\xff\xfe\"}",
            ),
            400,
            "not UTF-8",
        ),
        (
            "oversized body",
            post(
                "/v1/chat/completions",
                "application/json",
                &vec![b' '; 5000],
            ),
            413,
            "limit of 4096",
        ),
        (
            "unknown path",
            post("/v1/completions", "application/json", chat_ok),
            404,
            "not served",
        ),
        (
            "wrong method",
            b"GET /v1/chat/completions HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(),
            404,
            "not served",
        ),
        (
            "unknown shape",
            post(
                "/v1/chat/completions",
                "application/json",
                br#"{"model":"m","prompt":"x"}"#,
            ),
            400,
            "`messages` is missing",
        ),
        (
            "token arrays",
            post(
                "/v1/embeddings",
                "application/json",
                br#"{"model":"m","input":[[1,2]]}"#,
            ),
            400,
            "token arrays",
        ),
        (
            "secret",
            post(
                "/v1/chat/completions",
                "application/json",
                format!(
                    r#"{{"model":"m","messages":[{{"role":"user","content":"key {SECRET}"}}]}}"#
                )
                .as_bytes(),
            ),
            403,
            "category `secret`",
        ),
    ]
}

#[test]
fn bad_input_gets_a_clear_error_and_nothing_leaves() {
    if !root_or_skip("router_bad_input") {
        return;
    }
    let Standalone {
        scratch: _scratch,
        cloud,
        local,
        router,
        audit,
    } = Standalone::start(
        "router-bad",
        "max_body_bytes: 4096\nheader_timeout_secs: 1\n",
    );
    let a = router.addr;
    let cases = bad_requests();
    for (what, request, status, says) in &cases {
        let (got, body) = http(a, request);
        assert_eq!(got, *status, "{what}: {body}");
        assert!(body.contains(says), "{what}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert!(
            error["error"]["message"].is_string(),
            "{what}: OpenAI error shape: {body}"
        );
    }
    // A client that never finishes its request head is cut off.
    let mut slow = TcpStream::connect(a).unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let started = std::time::Instant::now();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "slow client held on"
    );
    // A body that stops half-way is not forwarded.
    let mut cut = TcpStream::connect(a).unwrap();
    cut.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\":\"m\",").unwrap();
    drop(cut);
    std::thread::sleep(Duration::from_millis(300));
    assert!(cloud.requests().is_empty(), "{:?}", cloud.requests());
    assert!(!contains(&local.received(), SECRET));

    // Every refusal was audited to the router's own chained log, without the values.
    let text = std::fs::read_to_string(&audit).unwrap();
    nemoclaw::audit::chain::verify(&text, None).expect("chain holds");
    assert!(!text.contains(SECRET));
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.len() >= cases.len(), "{records:#?}");
    for r in &records {
        assert_eq!(r["decision"], "denied", "{r}");
        assert_eq!(r["sandbox"], "default", "{r}");
    }
}

#[test]
fn clients_outside_every_sandbox_are_refused_without_a_default_policy() {
    if !root_or_skip("router_unidentified") {
        return;
    }
    let s = Setup::start("router-unknown", "", &[]);
    let chat = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let (status, body) = http(
        s.router.addr,
        &post("/v1/chat/completions", "application/json", chat),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("no NemoClaw sandbox"), "{body}");
    assert!(s.cloud.requests().is_empty());
    let records = s.inference_records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["error"], "sandbox_unidentified");
}

#[test]
fn upstream_failures_are_reported_never_retried_elsewhere() {
    if !root_or_skip("router_upstream") {
        return;
    }
    let Standalone {
        scratch: _scratch,
        cloud,
        local,
        router,
        audit,
    } = Standalone::start("router-up", "");
    let ask = |model: &str, stream: bool| {
        let body = format!(
            r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        http(
            router.addr,
            &post("/v1/chat/completions", "application/json", body.as_bytes()),
        )
    };
    let (status, body) = ask("fault-hang", false);
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("did not answer within 3 s"), "{body}");
    let (status, body) = ask("fault-500", false);
    assert_eq!(
        status, 500,
        "the backend's own error passes through: {body}"
    );
    let (status, body) = ask("fault-cut", true);
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("[DONE]"),
        "a cut stream never looks complete: {body}"
    );
    // An unreachable backend: the local one after its server is gone.
    drop(local);
    let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"to {EMAIL}"}}]}}"#);
    let (status, text) = http(
        router.addr,
        &post("/v1/chat/completions", "application/json", body.as_bytes()),
    );
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("the local backend failed"), "{text}");
    assert!(
        !contains(&cloud.received(), EMAIL),
        "no fall-through to the cloud"
    );
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records.iter().any(|r| r["ending"] == "upstream_cut"),
        "{records:#?}"
    );
    assert!(records.iter().any(|r| r["error"] == "upstream_timeout"));
}

#[test]
fn the_kernel_lets_the_sandbox_reach_the_router_and_no_model_endpoint() {
    if !root_or_skip("router_kernel") {
        return;
    }
    let s = Setup::start("router-kernel", "", &[]);
    let policy = inference_policy(s.router.addr, "cloud", CATEGORIES);
    let file = s.scratch.path("k.yaml");
    std::fs::write(&file, &policy).unwrap();
    for (port, expect) in [
        (s.router.addr.port(), "OK"),
        (s.cloud.addr.port(), "ERR EPERM"),
    ] {
        let out = s
            .daemon
            .run_background(
                &format!("k{port}"),
                &file,
                "nobody",
                &[
                    PYTHON,
                    "-c",
                    &connect_probe("AF_INET", "SOCK_STREAM", "127.0.0.1", port),
                ],
            )
            .wait_with_output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            expect,
            "{out:?}"
        );
    }
    let denials: Vec<Value> = s
        .daemon
        .audit()
        .into_iter()
        .filter(|r| {
            r["control"] == "network"
                && r["decision"] == "deny"
                && r["sandbox"].as_str().is_some_and(|s| s.starts_with('k'))
        })
        .collect();
    assert_eq!(denials.len(), 1, "{denials:#?}");
    assert_eq!(denials[0]["object"]["port"], u64::from(s.cloud.addr.port()));
    assert_eq!(denials[0]["errno"], "EPERM");
}

#[test]
fn a_policy_reload_changes_routing_on_the_next_request() {
    if !sdks_ready("router_reload") {
        return;
    }
    let s = Setup::start("router-reload", "", &[]);
    let file = s.scratch.path("live.yaml");
    let allow_all = inference_policy(s.router.addr, "cloud", "    secret: block\n");
    std::fs::write(&file, &allow_all).unwrap();
    // A long-lived agent: one call, then (once the test has applied the new policy)
    // another. Two files order the steps: `first-done` from the agent, `applied` from us.
    let plan = s.scratch.path("live-plan.json");
    std::fs::write(
        &plan,
        json!([chat(json!(format!("to {EMAIL}")), false)]).to_string(),
    )
    .unwrap();
    let steps = s.scratch.path("steps");
    std::fs::create_dir_all(&steps).unwrap();
    std::fs::set_permissions(&steps, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let script = "import os,subprocess,sys,time\n\
         run=lambda: subprocess.run(sys.argv[1:5],capture_output=True,text=True).stdout\n\
         print(run(),end='',flush=True)\n\
         open(os.path.join(sys.argv[5],'first-done'),'w').close()\n\
         while not os.path.exists(os.path.join(sys.argv[5],'applied')): time.sleep(0.05)\n\
         print(run(),end='',flush=True)\n";
    let python = router_python();
    let child = s.daemon.run_background(
        "live",
        &file,
        "nobody",
        &[
            python.to_str().unwrap(),
            "-c",
            script,
            python.to_str().unwrap(),
            client_script().to_str().unwrap(),
            &s.router.base_url(),
            plan.to_str().unwrap(),
            steps.to_str().unwrap(),
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_mins(2);
    while !steps.join("first-done").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent's first call did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A new file: rewriting the watched one would race the daemon's own reload of it.
    s.daemon.apply(
        "live",
        &s.scratch.path("live-blocking.yaml"),
        &inference_policy(
            s.router.addr,
            "cloud",
            "    secret: block\n    email: block\n",
        ),
    );
    std::fs::write(steps.join("applied"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(
        lines[0]["ok"], true,
        "before the reload: allowed ({})",
        lines[0]
    );
    assert_eq!(
        lines[1]["status"], 403,
        "after the reload: blocked ({})",
        lines[1]
    );
    assert_eq!(s.cloud.requests().len(), 1);
}

#[test]
fn the_router_refuses_to_run_as_root() {
    if !root_or_skip("router_root") {
        return;
    }
    let scratch = Scratch::new("router-root");
    let config = scratch.path("r.yaml");
    std::fs::write(&config, "").unwrap();
    let out = std::process::Command::new(crate::support::nemoclaw())
        .args(["router", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not run as root"), "{err}");
}

/// Waits until something accepts on `addr` (true) or `open` is false and nothing does
/// (true), for up to a minute.
fn wait_listening(addr: SocketAddr, open: bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    while std::time::Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() == open {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn the_daemon_runs_the_router_restarts_it_and_stops_it() {
    if !sdks_ready("router_daemon_child") {
        return;
    }
    let scratch = Scratch::new("router-child");
    let cloud = Standin::start(&scratch, "cloud");
    let local = Standin::start(&scratch, "local");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // Keys in root's files: the router reads them before it drops to `nobody`.
    let key = scratch.path("cloud.key");
    std::fs::write(&key, "sk-cloud-host-key\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = scratch.path("router.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {listen}\nbackends:\n  cloud: {{api: openai, url: 'http://{c}/v1', key_file: {k}}}\n  \
             local: {{api: openai, url: 'http://{l}/v1', local: true, key_file: {k}}}\n",
            c = cloud.addr,
            l = local.addr,
            k = key.display()
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap().to_owned();
    let mut daemon = TestDaemon::start_with(&scratch, "router-child", &["--router", &config_arg]);
    assert!(
        wait_listening(listen, true),
        "the daemon did not start the router: {}",
        daemon.log()
    );
    let policy = inference_policy(listen, "cloud", CATEGORIES);
    let base = format!("http://{listen}");
    let plan = json!([chat(json!("Say hello."), false)]);
    let first = run_agent(&daemon, &scratch, &base, "child-a", &policy, &plan);
    assert_eq!(first[0]["ok"], true, "{first:?}");

    // The router dies: the daemon starts it again.
    let killed = std::process::Command::new("pkill")
        .args(["-KILL", "-f", &format!("router --config {config_arg}")])
        .status()
        .unwrap();
    assert!(killed.success(), "no router process to kill");
    assert!(wait_listening(listen, false), "the router did not die");
    assert!(
        wait_listening(listen, true),
        "not restarted: {}",
        daemon.log()
    );
    let second = run_agent(&daemon, &scratch, &base, "child-b", &policy, &plan);
    assert_eq!(second[0]["ok"], true, "{second:?}");
    assert!(
        daemon.log().contains("restarting the router"),
        "{}",
        daemon.log()
    );
    assert_eq!(cloud.requests().len(), 2);
    // It runs unprivileged.
    let status = std::process::Command::new("pgrep")
        .args([
            "-u",
            "nobody",
            "-f",
            &format!("router --config {config_arg}"),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the router does not run as nobody");

    // The daemon stops: so does the router.
    assert!(daemon.terminate());
    assert!(
        wait_listening(listen, false),
        "the router outlived the daemon"
    );
    drop(local);
}
