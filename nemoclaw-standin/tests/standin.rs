//! The stand-in end to end over TCP: recording, every endpoint's shape, stream framing,
//! faults and errors. The client is a raw `TcpStream`, so the bytes on the wire are what
//! is checked.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{SLOW, Standin, chat, messages, temp_path};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn records_every_request_byte_exact_including_non_utf8() {
    let s = Standin::start().await;
    let body: Vec<u8> = (0..=255u8).chain([0xff, 0xfe, 0x00]).collect();
    let reply = s
        .send(
            "POST",
            "/v1/chat/completions?a=1&b=%20",
            &[("Authorization", "Bearer k1"), ("X-Custom", "Mixed Case")],
            &body,
        )
        .await;
    assert_eq!(reply.status, 400, "not JSON");
    s.openai("/v1/chat/completions", &chat("gpt-4o-mini", false))
        .await;
    let records = s.records();
    assert_eq!(records.len(), 2);
    let first = &records[0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/v1/chat/completions");
    assert_eq!(first["query"], "a=1&b=%20");
    assert_eq!(first["headers"]["authorization"], "Bearer k1");
    assert_eq!(first["headers"]["x-custom"], "Mixed Case");
    assert_eq!(first["body_len"], body.len());
    assert_eq!(
        STANDARD
            .decode(first["body_b64"].as_str().unwrap())
            .unwrap(),
        body
    );
    assert_eq!(records[1]["query"], Value::Null);
    let second = STANDARD
        .decode(records[1]["body_b64"].as_str().unwrap())
        .unwrap();
    assert_eq!(second, chat("gpt-4o-mini", false).to_string().as_bytes());
}

#[tokio::test]
async fn replies_never_echo_the_request() {
    let s = Standin::start().await;
    for reply in [
        s.openai("/v1/chat/completions", &chat("gpt-4o-mini", false))
            .await,
        s.openai("/v1/chat/completions", &chat("gpt-4o-mini", true))
            .await,
        s.openai(
            "/v1/responses",
            &json!({"model": "gpt-4o-mini", "input": "SECRET-MARKER-4111"}),
        )
        .await,
        s.anthropic(&messages("claude-sonnet-4-5", false)).await,
        s.anthropic(&messages("claude-sonnet-4-5", true)).await,
    ] {
        assert_eq!(reply.status, 200);
        assert!(!String::from_utf8_lossy(&reply.body).contains("SECRET-MARKER"));
    }
}

#[tokio::test]
async fn openai_models_list() {
    let s = Standin::start().await;
    let reply = s
        .send("GET", "/v1/models", &[("authorization", "Bearer k")], b"")
        .await;
    assert_eq!(reply.status, 200);
    let v = reply.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["object"], "model");
    assert!(v["data"][0]["id"].is_string());
}

#[tokio::test]
async fn openai_chat_completion_shape() {
    let s = Standin::start().await;
    let reply = s
        .openai("/v1/chat/completions", &chat("gpt-4o-mini", false))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.complete);
    let v = reply.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].is_u64());
    assert_eq!(v["model"], "gpt-4o-mini");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "Hello from the cloud stand-in (openai chat.completions, model gpt-4o-mini)."
    );
    assert_eq!(choice["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"],
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn openai_chat_stream_framing() {
    let s = Standin::start().await;
    let whole = s
        .openai("/v1/chat/completions", &chat("gpt-4o-mini", false))
        .await
        .json();
    for include_usage in [false, true] {
        let mut body = chat("gpt-4o-mini", true);
        body["stream_options"] = json!({"include_usage": include_usage});
        let reply = s.openai("/v1/chat/completions", &body).await;
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/event-stream")
        );
        assert!(reply.complete);
        let events = reply.events();
        assert_eq!(events.last().unwrap(), &(None, "[DONE]".to_owned()));
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|(e, d)| (assert!(e.is_none()), serde_json::from_str(d).unwrap()).1)
            .collect();
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"])
        );
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(
            text,
            whole["choices"][0]["message"]["content"].as_str().unwrap()
        );
        assert!(chunks.len() > 4, "several deltas");
        let finish = if include_usage {
            &chunks[chunks.len() - 2]
        } else {
            chunks.last().unwrap()
        };
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        if include_usage {
            let last = chunks.last().unwrap();
            assert_eq!(last["choices"], json!([]));
            assert!(last["usage"]["total_tokens"].as_u64().unwrap() > 0);
        } else {
            assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        }
    }
}

#[tokio::test]
async fn openai_responses_shape_and_stream() {
    let s = Standin::start().await;
    let req = json!({"model": "gpt-4o-mini", "input": "hi"});
    let v = s.openai("/v1/responses", &req).await.json();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    let item = &v["output"][0];
    assert_eq!(
        (
            item["type"].as_str(),
            item["role"].as_str(),
            item["status"].as_str()
        ),
        (Some("message"), Some("assistant"), Some("completed"))
    );
    assert!(item["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(item["content"][0]["type"], "output_text");
    assert_eq!(item["content"][0]["annotations"], json!([]));
    let text = item["content"][0]["text"].as_str().unwrap().to_owned();
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    let reply = s.openai("/v1/responses", &streamed).await;
    assert!(reply.complete);
    let events = reply.events();
    let mut names = Vec::new();
    let mut deltas = String::new();
    for (i, (name, data)) in events.iter().enumerate() {
        let data: Value = serde_json::from_str(data).unwrap();
        let name = name.clone().expect("responses events are named");
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i);
        if name == "response.output_text.delta" {
            deltas.push_str(data["delta"].as_str().unwrap());
        }
        if name == "response.completed" {
            assert_eq!(
                data["response"]["output"][0]["content"][0]["text"],
                text.as_str()
            );
        }
        names.dedup();
        names.push(name);
    }
    names.dedup();
    assert_eq!(deltas, text);
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
}

#[tokio::test]
async fn openai_embeddings_float_and_base64() {
    let s = Standin::start().await;
    let v = s
        .openai(
            "/v1/embeddings",
            &json!({"model": "e", "input": ["a", "b", "c"]}),
        )
        .await
        .json();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[2]["object"], "embedding");
    assert_eq!(data[2]["index"], 2);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 16);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let v = s
        .openai(
            "/v1/embeddings",
            &json!({"model": "e", "input": "a", "encoding_format": "base64", "dimensions": 8}),
        )
        .await
        .json();
    let bytes = STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len(), 8 * 4, "eight little-endian f32");
    let v = s
        .openai("/v1/embeddings", &json!({"model": "e", "input": [1, 2, 3]}))
        .await
        .json();
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        1,
        "one token array is one input"
    );
}

#[tokio::test]
async fn anthropic_message_shape() {
    let s = Standin::start().await;
    let reply = s.anthropic(&messages("claude-sonnet-4-5", false)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("request-id").is_some());
    let v = reply.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(
        v["content"][0]["text"],
        "Hello from the cloud stand-in (anthropic messages, model claude-sonnet-4-5)."
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn anthropic_stream_framing() {
    let s = Standin::start().await;
    let whole = s
        .anthropic(&messages("claude-sonnet-4-5", false))
        .await
        .json();
    let reply = s.anthropic(&messages("claude-sonnet-4-5", true)).await;
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert!(reply.complete);
    let mut names = Vec::new();
    let mut text = String::new();
    for (name, data) in reply.events() {
        let data: Value = serde_json::from_str(&data).unwrap();
        let name = name.expect("anthropic events are named");
        assert_eq!(data["type"], name.as_str());
        match name.as_str() {
            "message_start" => assert_eq!(data["message"]["content"], json!([])),
            "content_block_delta" => {
                assert_eq!(data["delta"]["type"], "text_delta");
                text.push_str(data["delta"]["text"].as_str().unwrap());
            }
            "message_delta" => {
                assert_eq!(data["delta"]["stop_reason"], "end_turn");
                assert_eq!(
                    data["usage"]["output_tokens"],
                    whole["usage"]["output_tokens"]
                );
            }
            _ => {}
        }
        if names.last() != Some(&name) {
            names.push(name);
        }
    }
    assert_eq!(text, whole["content"][0]["text"].as_str().unwrap());
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
}

#[tokio::test]
async fn auth_errors_in_provider_shape_and_recorded() {
    let s = Standin::start().await;
    let body = chat("gpt-4o-mini", false).to_string();
    let reply = s
        .send("POST", "/v1/chat/completions", &[], body.as_bytes())
        .await;
    assert_eq!(reply.status, 401);
    let v = reply.json();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].is_string());

    let body = messages("claude-sonnet-4-5", false).to_string();
    let reply = s
        .send(
            "POST",
            "/v1/messages",
            &[("anthropic-version", "2023-06-01")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 401);
    let v = reply.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    let reply = s
        .send(
            "POST",
            "/v1/messages",
            &[("x-api-key", "k")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["type"], "authentication_error");
    let reply = s
        .send(
            "POST",
            "/v1/messages",
            &[
                ("authorization", "Bearer k"),
                ("anthropic-version", "2023-06-01"),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(
        reply.status, 200,
        "the anthropic SDK's Bearer key is accepted"
    );
    assert_eq!(s.records().len(), 4, "refused requests are recorded too");
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_bad_json() {
    let s = Standin::start().await;
    let reply = s
        .send("POST", "/v1/nope", &[("authorization", "Bearer k")], b"{}")
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    let reply = s
        .send(
            "POST",
            "/v1/nope",
            &[("x-api-key", "k"), ("anthropic-version", "v")],
            b"{}",
        )
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["type"], "not_found_error");
    let reply = s
        .send(
            "GET",
            "/v1/chat/completions",
            &[("authorization", "Bearer k")],
            b"",
        )
        .await;
    assert_eq!(reply.status, 405);
    assert!(reply.json()["error"]["message"].is_string());

    let reply = s
        .send(
            "POST",
            "/v1/chat/completions",
            &[("authorization", "Bearer k")],
            b"{not json",
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    let headers = [("x-api-key", "k"), ("anthropic-version", "v")];
    let reply = s.send("POST", "/v1/messages", &headers, b"[1,").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["type"], "error");
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    let reply = s
        .send("POST", "/v1/messages", &headers, b"{\"max_tokens\":1}")
        .await;
    assert_eq!(reply.status, 400, "no model");
}

#[tokio::test]
async fn fault_500_both_flavours() {
    let s = Standin::start().await;
    let reply = s
        .openai("/v1/chat/completions", &chat("fault-500", true))
        .await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["error"]["type"], "server_error");
    let reply = s.anthropic(&messages("fault-500", false)).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["error"]["type"], "api_error");
}

#[tokio::test]
async fn fault_cut_sends_two_parts_then_closes_without_terminator() {
    let s = Standin::start().await;
    let reply = s
        .openai("/v1/chat/completions", &chat("fault-cut", true))
        .await;
    assert_eq!(reply.status, 200);
    assert!(!reply.complete);
    let text = String::from_utf8(reply.body.clone()).unwrap();
    assert_eq!(text.matches("data: ").count(), 2, "{text}");
    assert!(!text.contains("[DONE]"));
    let reply = s.anthropic(&messages("fault-cut", true)).await;
    assert!(!reply.complete);
    assert_eq!(
        String::from_utf8(reply.body.clone())
            .unwrap()
            .matches("event: ")
            .count(),
        2
    );
    let reply = s
        .openai(
            "/v1/responses",
            &json!({"model": "fault-cut", "input": "x"}),
        )
        .await;
    assert!(!reply.complete, "a whole JSON body is cut too");
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
}

#[tokio::test]
async fn fault_slow_paces_the_parts() {
    let s = Standin::start().await;
    let reply = s.anthropic(&messages("fault-slow", true)).await;
    assert!(reply.complete);
    let events = reply.events().len();
    assert!(
        reply.elapsed >= SLOW * (events as u32 - 1),
        "{:?} for {events} events",
        reply.elapsed
    );
    let reply = s
        .openai("/v1/chat/completions", &chat("fault-slow", false))
        .await;
    assert!(reply.complete);
    assert!(reply.elapsed >= SLOW * 2);
    assert_eq!(reply.json()["object"], "chat.completion");
}

#[tokio::test]
async fn fault_hang_records_then_never_answers() {
    let s = Standin::start().await;
    let waited = tokio::time::timeout(
        Duration::from_millis(400),
        s.openai("/v1/chat/completions", &chat("fault-hang", false)),
    )
    .await;
    assert!(waited.is_err(), "no answer");
    let records = s.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["path"], "/v1/chat/completions");
}

#[tokio::test]
async fn binary_prints_address_and_writes_ready_file() {
    let record = temp_path("bin-record.jsonl");
    let ready = temp_path("ready");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nemoclaw-standin"))
        .args(["--listen", "127.0.0.1:0", "--record"])
        .arg(&record)
        .arg("--ready-file")
        .arg(&ready)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8(line).unwrap();
    let addr = line.strip_prefix("listening on ").expect(&line).to_owned();
    assert_eq!(std::fs::read_to_string(&ready).unwrap().trim(), addr);
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"));
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert_eq!(recorded.lines().count(), 1);
    child.kill().await.unwrap();
}
