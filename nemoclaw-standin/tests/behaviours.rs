//! The models that use the request, end to end over TCP: `echo` (the request's text back,
//! one character per streamed event), `echo-tool` (an `echo` tool call, arguments streamed
//! in pieces of at most 3 bytes) and `inject` (the echo plus values never sent), for each
//! API, whole and streamed, reassembled from the bytes on the wire.

#[allow(dead_code)]
mod common;

use common::{Reply, Standin};
use nemoclaw_standin::{INJECTED_CARD, INJECTED_EMAIL};
use serde_json::{Value, json};

/// The parts of the last message: non-ASCII (`é`, a 4-byte emoji), a placeholder, quotes
/// and a backslash (escaped in the arguments JSON).
const PARTS: [&str; 2] = ["Café 😀 ok", "mail <EMAIL_1_3f9a0c2e> \"q\" \\ end"];
const SYSTEM: &str = "Be brief ☕.";

/// The text every request below says: the last message's parts, then the system text.
fn said() -> String {
    format!("{} | system: {SYSTEM}", PARTS.join("\n"))
}

fn chat_request(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [
            {"type": "text", "text": PARTS[0]},
            {"type": "text", "text": PARTS[1]},
        ]},
    ]})
}

fn messages_request(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "stream": stream, "system": SYSTEM, "messages": [
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [
            {"type": "text", "text": PARTS[0]},
            {"type": "text", "text": PARTS[1]},
        ]},
    ]})
}

fn responses_request(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "instructions": SYSTEM, "input": [
        {"role": "user", "content": "earlier"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": PARTS[0]},
            {"type": "input_text", "text": PARTS[1]},
        ]},
    ]})
}

fn inject_text(said: &str) -> String {
    format!("You said: {said}. Also contact {INJECTED_EMAIL} or card {INJECTED_CARD}.")
}

/// The data of the events, as JSON, checking each named event's `type`; `[DONE]` dropped.
fn event_data(reply: &Reply) -> Vec<(Option<String>, Value)> {
    assert_eq!(reply.status, 200);
    assert!(reply.complete);
    reply
        .events()
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(name, data)| {
            let data: Value = serde_json::from_str(&data).expect("event data is JSON");
            if let Some(name) = &name {
                assert_eq!(data["type"], name.as_str());
            }
            (name, data)
        })
        .collect()
}

/// Checks that text deltas are one character each.
fn one_char_each(deltas: &[String]) {
    assert!(deltas.iter().all(|d| d.chars().count() == 1), "{deltas:?}");
}

/// Checks that argument pieces are at most 3 bytes, or one longer character.
fn three_bytes_each(pieces: &[String]) {
    assert!(
        pieces
            .iter()
            .all(|p| !p.is_empty() && (p.len() <= 3 || p.chars().count() == 1)),
        "{pieces:?}"
    );
    assert!(pieces.iter().any(|p| p == "😀"), "the emoji is a piece");
}

/// The arguments JSON is `{"text": said}` exactly.
fn check_arguments(arguments: &str) {
    let parsed: Value = serde_json::from_str(arguments).expect("arguments are JSON");
    assert_eq!(parsed, json!({"text": said()}));
}

// --- OpenAI chat completions ---

async fn chat_text(s: &Standin, model: &str) -> (String, String) {
    let whole = s
        .openai("/v1/chat/completions", &chat_request(model, false))
        .await
        .json();
    let choice = &whole["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    let text = choice["message"]["content"]
        .as_str()
        .expect("text")
        .to_owned();
    assert_eq!(
        whole["usage"]["completion_tokens"],
        (text.chars().count() as u64).div_ceil(4)
    );
    let mut body = chat_request(model, true);
    body["stream_options"] = json!({"include_usage": true});
    let events = event_data(&s.openai("/v1/chat/completions", &body).await);
    let deltas: Vec<String> = events[1..]
        .iter()
        .filter_map(|(_, c)| c["choices"][0]["delta"]["content"].as_str())
        .map(str::to_owned)
        .collect();
    one_char_each(&deltas);
    let finish = &events[events.len() - 2].1;
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        events.last().expect("usage chunk").1["usage"]["completion_tokens"],
        whole["usage"]["completion_tokens"]
    );
    (text, deltas.concat())
}

#[tokio::test]
async fn chat_echo_and_inject() {
    let s = Standin::start().await;
    let (whole, streamed) = chat_text(&s, "echo").await;
    assert_eq!(whole, format!("You said: {}", said()));
    assert_eq!(streamed, whole);
    let (whole, streamed) = chat_text(&s, "inject").await;
    assert_eq!(whole, inject_text(&said()));
    assert!(whole.contains(INJECTED_EMAIL) && whole.contains(INJECTED_CARD));
    assert_eq!(streamed, whole);
}

#[tokio::test]
async fn chat_echo_without_system_is_the_last_message_alone() {
    let s = Standin::start().await;
    let body = json!({"model": "echo", "messages": [{"role": "user", "content": "hé 😀"}]});
    let v = s.openai("/v1/chat/completions", &body).await.json();
    assert_eq!(v["choices"][0]["message"]["content"], "You said: hé 😀");
}

#[tokio::test]
async fn chat_echo_tool() {
    let s = Standin::start().await;
    let whole = s
        .openai("/v1/chat/completions", &chat_request("echo-tool", false))
        .await
        .json();
    let choice = &whole["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let tool_call = &choice["message"]["tool_calls"][0];
    assert_eq!(tool_call["type"], "function");
    assert!(tool_call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(tool_call["function"]["name"], "echo");
    let arguments = tool_call["function"]["arguments"].as_str().unwrap();
    check_arguments(arguments);

    let events = event_data(
        &s.openai("/v1/chat/completions", &chat_request("echo-tool", true))
            .await,
    );
    let first = &events[0].1["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert!(
        first["tool_calls"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("call_")
    );
    assert_eq!(first["tool_calls"][0]["function"]["name"], "echo");
    assert_eq!(first["tool_calls"][0]["function"]["arguments"], "");
    let pieces: Vec<String> = events[1..]
        .iter()
        .filter_map(|(_, c)| {
            let call = &c["choices"][0]["delta"]["tool_calls"][0];
            assert!(call.is_null() || call["index"] == 0);
            call["function"]["arguments"].as_str().map(str::to_owned)
        })
        .collect();
    three_bytes_each(&pieces);
    assert_eq!(pieces.concat(), arguments);
    assert_eq!(
        events.last().unwrap().1["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

// --- Anthropic messages ---

async fn messages_text(s: &Standin, model: &str) -> (String, String) {
    let whole = s.anthropic(&messages_request(model, false)).await.json();
    assert_eq!(whole["stop_reason"], "end_turn");
    assert_eq!(whole["content"][0]["type"], "text");
    let text = whole["content"][0]["text"]
        .as_str()
        .expect("text")
        .to_owned();
    let events = event_data(&s.anthropic(&messages_request(model, true)).await);
    let mut deltas = Vec::new();
    for (_, data) in &events {
        if data["type"] == "content_block_delta" {
            assert_eq!(data["delta"]["type"], "text_delta");
            deltas.push(
                data["delta"]["text"]
                    .as_str()
                    .expect("text delta")
                    .to_owned(),
            );
        }
        if data["type"] == "message_delta" {
            assert_eq!(data["delta"]["stop_reason"], "end_turn");
            assert_eq!(
                data["usage"]["output_tokens"],
                whole["usage"]["output_tokens"]
            );
        }
    }
    one_char_each(&deltas);
    (text, deltas.concat())
}

#[tokio::test]
async fn messages_echo_and_inject() {
    let s = Standin::start().await;
    let (whole, streamed) = messages_text(&s, "echo").await;
    assert_eq!(whole, format!("You said: {}", said()));
    assert_eq!(streamed, whole);
    let (whole, streamed) = messages_text(&s, "inject").await;
    assert_eq!(whole, inject_text(&said()));
    assert_eq!(streamed, whole);
}

#[tokio::test]
async fn messages_echo_of_tool_results() {
    let s = Standin::start().await;
    let body = json!({"model": "echo", "max_tokens": 64, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "café"}]},
        ]},
    ]});
    let v = s.anthropic(&body).await.json();
    assert_eq!(v["content"][0]["text"], "You said: café");
}

#[tokio::test]
async fn messages_echo_tool() {
    let s = Standin::start().await;
    let whole = s
        .anthropic(&messages_request("echo-tool", false))
        .await
        .json();
    assert_eq!(whole["stop_reason"], "tool_use");
    let block = &whole["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "echo");
    assert_eq!(block["input"], json!({"text": said()}));

    let events = event_data(&s.anthropic(&messages_request("echo-tool", true)).await);
    let mut pieces = Vec::new();
    let mut names = Vec::new();
    for (name, data) in &events {
        match data["type"].as_str().unwrap() {
            "content_block_start" => {
                let start = &data["content_block"];
                assert_eq!(start["type"], "tool_use");
                assert!(start["id"].as_str().unwrap().starts_with("toolu_"));
                assert_eq!(start["name"], "echo");
                assert_eq!(start["input"], json!({}));
            }
            "content_block_delta" => {
                assert_eq!(data["delta"]["type"], "input_json_delta");
                pieces.push(data["delta"]["partial_json"].as_str().unwrap().to_owned());
            }
            "message_delta" => assert_eq!(data["delta"]["stop_reason"], "tool_use"),
            _ => {}
        }
        let name = name.clone().expect("anthropic events are named");
        if names.last() != Some(&name) {
            names.push(name);
        }
    }
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    three_bytes_each(&pieces);
    check_arguments(&pieces.concat());
}

// --- OpenAI responses ---

/// The events of a streamed response, checking names and sequence numbers; with the names
/// deduplicated.
fn responses_events(reply: &Reply) -> (Vec<Value>, Vec<String>) {
    let events = event_data(reply);
    let mut names: Vec<String> = Vec::new();
    let data = events
        .into_iter()
        .enumerate()
        .map(|(i, (name, data))| {
            assert_eq!(data["sequence_number"], i);
            let name = name.expect("responses events are named");
            if names.last() != Some(&name) {
                names.push(name);
            }
            data
        })
        .collect();
    (data, names)
}

async fn responses_text(s: &Standin, model: &str) -> (String, String) {
    let whole = s
        .openai("/v1/responses", &responses_request(model, false))
        .await
        .json();
    let item = &whole["output"][0];
    assert_eq!(item["type"], "message");
    let text = item["content"][0]["text"]
        .as_str()
        .expect("text")
        .to_owned();
    let (events, names) = responses_events(
        &s.openai("/v1/responses", &responses_request(model, true))
            .await,
    );
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let deltas: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().expect("text delta").to_owned())
        .collect();
    one_char_each(&deltas);
    let completed = &events.last().expect("response.completed")["response"];
    assert_eq!(completed["output"][0]["content"][0]["text"], text.as_str());
    assert_eq!(completed["usage"], whole["usage"]);
    (text, deltas.concat())
}

#[tokio::test]
async fn responses_echo_and_inject() {
    let s = Standin::start().await;
    let (whole, streamed) = responses_text(&s, "echo").await;
    assert_eq!(whole, format!("You said: {}", said()));
    assert_eq!(streamed, whole);
    let (whole, streamed) = responses_text(&s, "inject").await;
    assert_eq!(whole, inject_text(&said()));
    assert_eq!(streamed, whole);
}

#[tokio::test]
async fn responses_echo_of_string_input_and_function_output() {
    let s = Standin::start().await;
    let v = s
        .openai("/v1/responses", &json!({"model": "echo", "input": "é😀"}))
        .await
        .json();
    assert_eq!(v["output"][0]["content"][0]["text"], "You said: é😀");
    let body = json!({"model": "echo", "input": [
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "42 °C"},
    ]});
    let v = s.openai("/v1/responses", &body).await.json();
    assert_eq!(v["output"][0]["content"][0]["text"], "You said: 42 °C");
}

#[tokio::test]
async fn responses_echo_tool() {
    let s = Standin::start().await;
    let whole = s
        .openai("/v1/responses", &responses_request("echo-tool", false))
        .await
        .json();
    assert_eq!(whole["status"], "completed");
    let item = &whole["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["status"], "completed");
    assert_eq!(item["name"], "echo");
    assert!(item["id"].as_str().unwrap().starts_with("fc_"));
    assert!(item["call_id"].as_str().unwrap().starts_with("call_"));
    let arguments = item["arguments"].as_str().unwrap();
    check_arguments(arguments);

    let (events, names) = responses_events(
        &s.openai("/v1/responses", &responses_request("echo-tool", true))
            .await,
    );
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let added = &events[2];
    assert_eq!(added["output_index"], 0);
    assert_eq!(added["item"]["type"], "function_call");
    assert_eq!(added["item"]["status"], "in_progress");
    assert_eq!(added["item"]["arguments"], "");
    let done = &events[events.len() - 2]["item"];
    assert_eq!(added["item"]["id"], done["id"]);
    assert_eq!(added["item"]["call_id"], done["call_id"]);
    let mut pieces = Vec::new();
    for event in &events[3..events.len() - 2] {
        assert_eq!(event["item_id"], done["id"]);
        assert_eq!(event["output_index"], 0);
        if event["type"] == "response.function_call_arguments.delta" {
            pieces.push(event["delta"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(event["arguments"], arguments);
            assert_eq!(event["name"], "echo");
        }
    }
    three_bytes_each(&pieces);
    assert_eq!(pieces.concat(), arguments);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["arguments"], arguments);
    assert_eq!(events.last().unwrap()["response"]["output"], json!([done]));
}

#[tokio::test]
async fn other_models_keep_the_fixed_reply() {
    let s = Standin::start().await;
    let v = s
        .openai("/v1/chat/completions", &chat_request("gpt-4o-mini", false))
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the cloud stand-in (openai chat.completions, model gpt-4o-mini)."
    );
    let v = s.anthropic(&messages_request("echo-x", false)).await.json();
    assert_eq!(
        v["content"][0]["text"],
        "Hello from the cloud stand-in (anthropic messages, model echo-x)."
    );
}
