use std::sync::{Arc, Mutex};

use nemoclaw_detect::Category;
use serde_json::{Value, json};

use super::*;
use crate::router::mask::Session;

const EMAIL: &str = "<EMAIL_1_5eed5eed>";
const VALUE: &str = "ann.lee@example.org";

fn session() -> Arc<Mutex<Session>> {
    let mut s = Session::with_nonce("5eed5eed".into());
    s.placeholder(&Category::Email, VALUE, true).unwrap();
    s.placeholder(&Category::Custom("quoted".into()), "say \"hi\"", true)
        .unwrap();
    Arc::new(Mutex::new(s))
}

fn rewriter(route: Route, sse: bool) -> ReplyRewriter {
    ReplyRewriter::new(ReplyContext::new(session(), None), route, sse)
}

/// Runs `input` through a rewriter fed in two pieces split at `cut`.
fn run(route: Route, input: &str, cut: usize) -> String {
    let mut r = rewriter(route, true);
    let mut out = r.feed(&input.as_bytes()[..cut]).unwrap();
    out.extend(r.feed(&input.as_bytes()[cut..]).unwrap());
    out.extend(r.finish().unwrap());
    String::from_utf8(out).unwrap()
}

/// The JSON data of every event in an SSE stream (each must parse).
fn events(stream: &str) -> Vec<Value> {
    stream
        .split("\n\n")
        .filter_map(|e| {
            e.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .map(|d| serde_json::from_str(d).unwrap_or_else(|_| panic!("not JSON: {d}")))
        })
        .collect()
}

fn chat_chunk(delta: &Value, finish: Option<&str>) -> String {
    let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {chunk}\n\n")
}

/// An OpenAI chat stream sending `text` one character per event, and tool-call arguments.
fn chat_stream(text: &str, args: &str) -> String {
    let mut s = chat_chunk(&json!({"role": "assistant", "content": ""}), None);
    for c in text.chars() {
        s.push_str(&chat_chunk(&json!({"content": c.to_string()}), None));
    }
    s.push_str(&chat_chunk(
        &json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "send", "arguments": ""}}]}),
        None,
    ));
    for piece in args.as_bytes().chunks(3) {
        let piece = std::str::from_utf8(piece).unwrap();
        s.push_str(&chat_chunk(
            &json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            None,
        ));
    }
    s.push_str(&chat_chunk(&json!({}), Some("tool_calls")));
    s.push_str("data: [DONE]\n\n");
    s
}

fn chat_text(stream: &str) -> (String, String) {
    let mut content = String::new();
    let mut args = String::new();
    for e in events(stream) {
        for choice in e["choices"].as_array().unwrap() {
            if let Some(c) = choice["delta"]["content"].as_str() {
                content.push_str(c);
            }
            for call in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(a) = call["function"]["arguments"].as_str() {
                    args.push_str(a);
                }
            }
        }
    }
    (content, args)
}

#[test]
fn chat_streams_are_restored_exactly_at_every_byte_split() {
    let text = format!("Mail {EMAIL} now {EMAIL}");
    let args = r#"{"to":"<EMAIL_1_5eed5eed>","note":"<QUOTED_1_5eed5eed>"}"#;
    let input = chat_stream(&text, args);
    for cut in 0..=input.len() {
        let out = run(Route::ChatCompletions, &input, cut);
        let (content, arguments) = chat_text(&out);
        assert_eq!(content, format!("Mail {VALUE} now {VALUE}"), "cut {cut}");
        let parsed: Value = serde_json::from_str(&arguments).unwrap();
        assert_eq!(parsed["to"], VALUE);
        assert_eq!(parsed["note"], "say \"hi\"");
        assert!(out.ends_with("data: [DONE]\n\n"));
    }
}

#[test]
fn a_stream_ending_inside_a_placeholder_prefix_gets_the_prefix_back() {
    let input = chat_stream("cut <EMAIL_1_5ee", "{}");
    let out = run(Route::ChatCompletions, &input, 0);
    assert_eq!(chat_text(&out).0, "cut <EMAIL_1_5ee");
}

#[test]
fn a_stream_without_a_finish_flushes_before_done() {
    let mut input = chat_chunk(&json!({"content": "to <EMAIL_1_"}), None);
    input.push_str(&chat_chunk(&json!({"content": "5eed5eed"}), None));
    input.push_str("data: [DONE]\n\n");
    let out = run(Route::ChatCompletions, &input, 0);
    assert_eq!(chat_text(&out).0, "to <EMAIL_1_5eed5eed");
    let mut input = chat_chunk(&json!({"content": "to <EMAIL_1_"}), None);
    input.push_str(&chat_chunk(&json!({"content": "5eed5eed>"}), None));
    let out = run(Route::ChatCompletions, &input, 7);
    assert_eq!(chat_text(&out).0, format!("to {VALUE}"));
}

#[test]
fn anthropic_streams_restore_text_and_tool_input_and_leave_thinking_alone() {
    let event = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let mut input = event(
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "c"}}),
    );
    input.push_str(&event(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}})));
    input.push_str(&event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": format!("the user wrote {EMAIL}")}})));
    input.push_str(&event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}})));
    input.push_str(&event(json!({"type": "content_block_stop", "index": 0})));
    input.push_str(&event(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}})));
    for c in format!("Hi {EMAIL}").chars() {
        input.push_str(&event(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": c.to_string()}})));
    }
    input.push_str(&event(json!({"type": "content_block_stop", "index": 1})));
    input.push_str(&event(json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "send", "input": {}}})));
    for piece in [
        r#"{"to": "<EMAIL_1_5ee"#,
        r#"d5eed>", "q": "<QUOTED_1_5eed5eed"#,
        r#">"}"#,
    ] {
        input.push_str(&event(json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": piece}})));
    }
    input.push_str(&event(json!({"type": "content_block_stop", "index": 2})));
    input.push_str(&event(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}})));
    input.push_str(&event(json!({"type": "message_stop"})));
    for cut in (0..=input.len()).step_by(7) {
        let out = run(Route::Messages, &input, cut);
        let (mut thinking, mut text, mut json_text) = (String::new(), String::new(), String::new());
        let mut stops_after_text = Vec::new();
        for e in events(&out) {
            match (e["type"].as_str().unwrap(), e["index"].as_u64()) {
                ("content_block_delta", Some(0)) => {
                    thinking.push_str(e["delta"]["thinking"].as_str().unwrap_or(""));
                }
                ("content_block_delta", Some(1)) => {
                    text.push_str(e["delta"]["text"].as_str().unwrap());
                }
                ("content_block_delta", Some(2)) => {
                    json_text.push_str(e["delta"]["partial_json"].as_str().unwrap());
                }
                ("content_block_stop", Some(i)) => stops_after_text.push((i, text.clone())),
                _ => {}
            }
        }
        assert_eq!(
            thinking,
            format!("the user wrote {EMAIL}"),
            "thinking passes unmodified"
        );
        assert_eq!(text, format!("Hi {VALUE}"));
        assert_eq!(
            stops_after_text[1],
            (1, format!("Hi {VALUE}")),
            "all text before its stop"
        );
        let input_value: Value = serde_json::from_str(&json_text).unwrap();
        assert_eq!(input_value, json!({"to": VALUE, "q": "say \"hi\""}));
        // Every event still names its type in the `event:` line.
        for e in out.split("\n\n").filter(|e| !e.is_empty()) {
            let name = e.lines().next().unwrap().strip_prefix("event: ").unwrap();
            let data: Value =
                serde_json::from_str(e.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                    .unwrap();
            assert_eq!(data["type"], name);
        }
    }
}

#[test]
fn responses_streams_restore_deltas_done_events_and_the_summary_once() {
    let event = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let mut input =
        event(json!({"type": "response.created", "response": {"id": "resp_1", "output": []}}));
    for piece in ["Dear <EMA", "IL_1_5eed5eed>, ", "bye"] {
        input.push_str(&event(json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": piece})));
    }
    input.push_str(&event(json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": format!("Dear {EMAIL}, bye")})));
    for piece in [r#"{"to":"<EMAIL_1"#, r#"_5eed5eed>"}"#] {
        input.push_str(&event(json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": piece})));
    }
    input.push_str(&event(json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 1, "arguments": format!(r#"{{"to":"{EMAIL}"}}"#)})));
    input.push_str(&event(json!({"type": "response.completed", "response": {"id": "resp_1", "output": [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": EMAIL}]},
        {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": format!("Dear {EMAIL}, bye")}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "send", "arguments": format!(r#"{{"to":"{EMAIL}"}}"#)}]}})));
    let mut r = rewriter(Route::Responses, true);
    let mut out = Vec::new();
    for chunk in input.as_bytes().chunks(5) {
        out.extend(r.feed(chunk).unwrap());
    }
    out.extend(r.finish().unwrap());
    assert_eq!(r.counts().restored, 2, "deltas counted, repeats not");
    let out = String::from_utf8(out).unwrap();
    let all = events(&out);
    let text: String = all
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, format!("Dear {VALUE}, bye"));
    let args: String = all
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap()["to"], VALUE);
    let done = all
        .iter()
        .find(|e| e["type"] == "response.output_text.done")
        .unwrap();
    assert_eq!(done["text"], format!("Dear {VALUE}, bye"));
    let completed = all
        .iter()
        .find(|e| e["type"] == "response.completed")
        .unwrap();
    let output = &completed["response"]["output"];
    assert_eq!(
        output[0]["summary"][0]["text"], EMAIL,
        "reasoning passes unmodified"
    );
    assert_eq!(
        output[1]["content"][0]["text"],
        format!("Dear {VALUE}, bye")
    );
    assert_eq!(
        serde_json::from_str::<Value>(output[2]["arguments"].as_str().unwrap()).unwrap()["to"],
        VALUE
    );
    assert_eq!(output[2]["call_id"], "call_1");
}

#[test]
fn whole_replies_are_restored_in_every_text_and_not_in_identifiers() {
    let body = json!({"id": EMAIL, "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant",
        "content": format!("to {EMAIL}"),
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": r#"{"q":"<QUOTED_1_5eed5eed>"}"#}}]}}]});
    let mut r = rewriter(Route::ChatCompletions, false);
    assert!(
        r.feed(body.to_string().as_bytes()).unwrap().is_empty(),
        "held to the end"
    );
    let out: Value = serde_json::from_slice(&r.finish().unwrap()).unwrap();
    assert_eq!(out["id"], EMAIL);
    assert_eq!(
        out["choices"][0]["message"]["content"],
        format!("to {VALUE}")
    );
    let args = out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(args).unwrap()["q"],
        "say \"hi\""
    );
    // Anthropic: tool_use input is an object; thinking blocks pass.
    let body = json!({"type": "message", "content": [
        {"type": "thinking", "thinking": EMAIL, "signature": "s"},
        {"type": "text", "text": EMAIL},
        {"type": "tool_use", "id": "t", "name": "f", "input": {"to": EMAIL}}]});
    let mut r = rewriter(Route::Messages, false);
    r.feed(body.to_string().as_bytes()).unwrap();
    let out: Value = serde_json::from_slice(&r.finish().unwrap()).unwrap();
    assert_eq!(out["content"][0]["thinking"], EMAIL);
    assert_eq!(out["content"][1]["text"], VALUE);
    assert_eq!(out["content"][2]["input"]["to"], VALUE);
    // An error page that is not JSON.
    let mut r = rewriter(Route::ChatCompletions, false);
    r.feed(format!("bad input near {EMAIL}").as_bytes())
        .unwrap();
    assert_eq!(
        r.finish().unwrap(),
        format!("bad input near {VALUE}").into_bytes()
    );
}

#[test]
fn an_event_that_is_not_json_fails_the_reply() {
    let mut r = rewriter(Route::ChatCompletions, true);
    let e = r.feed(b"data: {\"choices\": [\n\n").unwrap_err();
    assert!(e.contains("not JSON"), "{e}");
}

#[test]
fn comments_and_events_without_text_pass_byte_for_byte() {
    let input = ": keep-alive\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n";
    let mut r = rewriter(Route::Messages, true);
    let mut out = r.feed(input.as_bytes()).unwrap();
    out.extend(r.finish().unwrap());
    assert_eq!(String::from_utf8(out).unwrap(), input);
}
