use std::fmt::Write;

use serde_json::{Value, json};

use super::*;

fn chunk(delta: &Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1, "model": "smollm2",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

/// An OpenAI stream of `chunks`, with the usage chunk and `[DONE]`; `crlf` as sse-starlette
/// (llama-cpp-python's server) ends lines.
fn stream(chunks: &[Value], usage: bool, crlf: bool) -> String {
    let end = if crlf { "\r\n" } else { "\n" };
    let mut s = String::new();
    for c in chunks {
        write!(s, "data: {c}{end}{end}").unwrap();
    }
    if usage {
        let u = json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "model": "smollm2",
            "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}});
        write!(s, "data: {u}{end}{end}").unwrap();
    }
    write!(s, "data: [DONE]{end}{end}").unwrap();
    s
}

/// The translator's whole output for `input` fed in the pieces `cuts` make.
fn translate(input: &str, cuts: &[usize]) -> (String, Option<String>) {
    let mut t = StreamTranslator::new("asked", vec!["END".into()]);
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain([input.len()].iter()) {
        out.extend(t.feed(&input.as_bytes()[from..cut]));
        from = cut;
    }
    out.extend(t.finish());
    (
        String::from_utf8(out).unwrap(),
        t.failure().map(str::to_owned),
    )
}

/// The same output, whatever the split: at every byte in two pieces, and byte by byte.
fn translate_split_everywhere(input: &str) -> (String, Option<String>) {
    let whole = translate(input, &[]);
    for cut in 1..input.len() {
        assert_eq!(translate(input, &[cut]), whole, "split at byte {cut}");
    }
    let every: Vec<usize> = (1..input.len()).collect();
    assert_eq!(translate(input, &every), whole, "byte by byte");
    whole
}

/// Each event's name and data; the name must be the data's `type`.
fn events(out: &str) -> Vec<(String, Value)> {
    out.split_terminator("\n\n")
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str(), "{e}");
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn text_streams_in_anthropics_order_split_anywhere() {
    for crlf in [false, true] {
        let input = stream(
            &[
                chunk(&json!({"role": "assistant", "content": ""}), None),
                chunk(&json!({"content": "Hel"}), None),
                chunk(&json!({"content": "lo, w\u{f6}"}), None),
                chunk(&json!({"content": "rld"}), None),
                chunk(&json!({}), Some("stop")),
            ],
            true,
            crlf,
        );
        let (out, failure) = translate_split_everywhere(&input);
        assert_eq!(failure, None);
        let events = events(&out);
        assert_eq!(
            names(&events),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let start = &events[0].1["message"];
        assert_eq!(start["id"], "msg_chatcmpl-7");
        assert_eq!(start["model"], "smollm2");
        assert_eq!(start["role"], "assistant");
        assert_eq!(start["content"], json!([]));
        assert_eq!(
            events[1].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        let text: String = events[2..5]
            .iter()
            .map(|(_, d)| {
                assert_eq!(d["index"], 0);
                d["delta"]["text"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(text, "Hello, w\u{f6}rld");
        assert_eq!(
            events[6].1,
            json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": 3, "input_tokens": 7}})
        );
    }
}

#[test]
fn each_chunk_is_translated_as_it_arrives() {
    let mut t = StreamTranslator::new("asked", Vec::new());
    let first = format!(
        "data: {}\n\n",
        chunk(&json!({"role": "assistant", "content": "Hi"}), None)
    );
    let out = String::from_utf8(t.feed(first.as_bytes())).unwrap();
    assert_eq!(
        names(&events(&out)),
        [
            "message_start",
            "content_block_start",
            "content_block_delta"
        ]
    );
    // Half an event: nothing yet, and nothing lost.
    let second = format!("data: {}\n\n", chunk(&json!({"content": "!"}), None));
    let (a, b) = second.split_at(20);
    assert!(t.feed(a.as_bytes()).is_empty());
    let out = String::from_utf8(t.feed(b.as_bytes())).unwrap();
    assert_eq!(events(&out)[0].1["delta"]["text"], "!");
}

#[test]
fn a_tool_call_with_arguments_in_pieces() {
    let input = stream(
        &[
            chunk(
                &json!({"role": "assistant", "content": "Let me check."}),
                None,
            ),
            chunk(
                &json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": ""}}]}),
                None,
            ),
            chunk(
                &json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
                None,
            ),
            chunk(
                &json!({"tool_calls": [{"index": 0, "function": {"arguments": "ty\": \"Par"}}]}),
                None,
            ),
            chunk(
                &json!({"tool_calls": [{"index": 0, "function": {"arguments": "is\"}"}}]}),
                None,
            ),
            chunk(
                &json!({"tool_calls": [{"index": 1, "id": "call_2",
                    "function": {"name": "clock", "arguments": "{}"}}]}),
                None,
            ),
            chunk(&json!({}), Some("tool_calls")),
        ],
        false,
        false,
    );
    let (out, failure) = translate_split_everywhere(&input);
    assert_eq!(failure, None);
    let events = events(&out);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        events[4].1,
        json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "call_1", "name": "weather", "input": {}}})
    );
    let args: String = events[5..8]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["index"], 1);
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(events[9].1["content_block"]["name"], "clock");
    assert_eq!(events[9].1["index"], 2);
    assert_eq!(events[12].1["delta"]["stop_reason"], "tool_use");
    // No usage chunk: zero output tokens, no input count.
    assert_eq!(events[12].1["usage"], json!({"output_tokens": 0}));
}

#[test]
fn a_length_stop_is_max_tokens() {
    let input = stream(
        &[
            chunk(&json!({"content": "cut sh"}), None),
            chunk(&json!({}), Some("length")),
        ],
        true,
        false,
    );
    let (out, failure) = translate_split_everywhere(&input);
    assert_eq!(failure, None);
    let events = events(&out);
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(names(&events).last(), Some(&"message_stop"));
}

#[test]
fn an_upstream_error_mid_stream_is_an_anthropic_error_event() {
    let input = format!(
        "data: {}\n\ndata: {}\n\ndata: {}\n\n",
        chunk(&json!({"content": "Hel"}), None),
        json!({"error": {"message": "model crashed", "type": "server_error"}}),
        chunk(&json!({"content": "lo"}), None),
    );
    let (out, failure) = translate_split_everywhere(&input);
    assert_eq!(
        failure.as_deref(),
        Some("the backend sent an error event mid-stream")
    );
    let events = events(&out);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(events[3].1["error"]["type"], "api_error");
    assert!(
        events[3].1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model crashed")
    );
}

#[test]
fn arguments_that_are_not_a_json_object_end_in_an_error_not_a_stop() {
    let input = stream(
        &[
            chunk(
                &json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{\"a\": "}}]}),
                None,
            ),
            chunk(&json!({}), Some("tool_calls")),
        ],
        false,
        false,
    );
    let (out, failure) = translate_split_everywhere(&input);
    assert!(failure.unwrap().contains("tool call 0 (`f`)"));
    let events = events(&out);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
}

#[test]
fn streams_that_cannot_be_followed_fail() {
    let fails = |input: &str, why: &str| {
        let (out, failure) = translate(input, &[]);
        let failure = failure.unwrap_or_else(|| panic!("no failure for {input}"));
        assert!(failure.contains(why), "{failure}");
        let events = events(&out);
        assert_eq!(names(&events).last(), Some(&"error"), "{out}");
        assert!(!names(&events).contains(&"message_stop"));
    };
    // Ends without a finish (no `[DONE]` either).
    fails(
        &format!("data: {}\n\n", chunk(&json!({"content": "Hel"}), None)),
        "without a finish_reason",
    );
    // `[DONE]` without a finish.
    fails(
        &format!(
            "data: {}\n\ndata: [DONE]\n\n",
            chunk(&json!({"content": "x"}), None)
        ),
        "without a finish_reason",
    );
    fails("data: {not json\n\n", "not JSON");
    // Tool-call arguments interleaved: one Anthropic block cannot be reopened.
    fails(
        &stream(
            &[
                chunk(
                    &json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}}]}),
                    None,
                ),
                chunk(
                    &json!({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
                    None,
                ),
                chunk(
                    &json!({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
                    None,
                ),
                chunk(&json!({}), Some("tool_calls")),
            ],
            false,
            false,
        ),
        "tool call 0",
    );
    // A backend stream that breaks off.
    let mut t = StreamTranslator::new("m", Vec::new());
    let _ = t.feed(format!("data: {}\n\n", chunk(&json!({"content": "x"}), None)).as_bytes());
    let out = String::from_utf8(t.broken("connection reset")).unwrap();
    assert_eq!(names(&events(&out)), ["error"]);
    assert!(t.ended());
    assert!(t.failure().unwrap().contains("broke off"));
    assert!(t.broken("again").is_empty(), "one error event only");
}

#[test]
fn keep_alives_and_comments_pass_unnoticed() {
    let input = format!(
        ": ping\n\n{}",
        stream(
            &[
                chunk(&json!({"content": "ok"}), None),
                chunk(&json!({}), Some("stop"))
            ],
            false,
            false
        )
    );
    let (out, failure) = translate(&input, &[]);
    assert_eq!(failure, None);
    assert_eq!(names(&events(&out)).len(), 6);
}
