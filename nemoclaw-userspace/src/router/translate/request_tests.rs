use serde_json::{Value, json};

use super::*;

fn translate(body: &Value) -> Result<ChatRequest, RouterError> {
    chat_request(body, "smollm2")
}

fn refusal(body: &Value) -> String {
    let e = translate(body).unwrap_err();
    assert!(
        matches!(e, RouterError::NotTranslatable(_)),
        "a 422 refusal, not {e:?}"
    );
    assert_eq!(e.status().as_u16(), 422);
    e.to_string()
}

#[test]
fn a_plain_request_keeps_its_parameters_and_takes_the_local_model() {
    let r = translate(&json!({
        "model": "claude-sonnet-4-5", "max_tokens": 64, "temperature": 0.2, "top_p": 0.9,
        "top_k": 40, "stop_sequences": ["END", "STOP"], "metadata": {"user_id": "u1"},
        "service_tier": "auto", "thinking": {"type": "disabled"},
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello"}]}))
    .unwrap();
    assert_eq!(
        r.body,
        json!({"model": "smollm2", "max_tokens": 64, "temperature": 0.2, "top_p": 0.9,
            "top_k": 40, "stop": ["END", "STOP"],
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Hello"}]})
    );
    assert_eq!(r.stop_sequences, ["END", "STOP"]);
}

#[test]
fn streaming_asks_for_usage_too() {
    let r = translate(&json!({"model": "m", "max_tokens": 5, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]}))
    .unwrap();
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["stream_options"], json!({"include_usage": true}));
    let r = translate(&json!({"model": "m", "max_tokens": 5, "stream": false,
        "messages": [{"role": "user", "content": "hi"}]}))
    .unwrap();
    assert!(r.body.get("stream").is_none());
}

#[test]
fn system_and_text_blocks_are_joined_and_cache_hints_dropped() {
    let r = translate(&json!({"model": "m", "max_tokens": 5,
        "system": [{"type": "text", "text": "One."},
                   {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}))
    .unwrap();
    assert_eq!(
        r.body["messages"],
        json!([{"role": "system", "content": "One.\nTwo."},
               {"role": "user", "content": "a\nb"}])
    );
}

#[test]
fn tool_use_and_tool_result_become_tool_calls_and_tool_messages() {
    let r = translate(&json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "clock", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
             "content": [{"type": "text", "text": "no clock"}]},
            {"type": "text", "text": "And tomorrow?"}]}]}))
    .unwrap();
    assert_eq!(
        r.body["messages"],
        json!([
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function",
                 "function": {"name": "clock", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no clock"},
            {"role": "user", "content": "And tomorrow?"}])
    );
    // An assistant turn of tool calls alone has no text: `content` is null.
    let r = translate(&json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": {"a": [1, 2]}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]}))
    .unwrap();
    assert_eq!(r.body["messages"][1]["content"], Value::Null);
    assert_eq!(
        r.body["messages"][2],
        json!({"role": "tool", "tool_call_id": "t", "content": ""})
    );
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 3);
}

#[test]
fn tools_and_every_tool_choice() {
    let tools = json!([{"name": "weather", "description": "Weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        "cache_control": {"type": "ephemeral"}},
        {"type": "custom", "name": "clock", "input_schema": {"type": "object"}}]);
    let with = |choice: Value| {
        translate(
            &json!({"model": "m", "max_tokens": 5, "tools": tools, "tool_choice": choice,
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap()
        .body
    };
    let body = with(json!({"type": "auto"}));
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {"name": "weather",
                "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
               {"type": "function", "function": {"name": "clock",
                "parameters": {"type": "object"}}}])
    );
    assert_eq!(body["tool_choice"], "auto");
    assert!(body.get("parallel_tool_calls").is_none());
    assert_eq!(with(json!({"type": "any"}))["tool_choice"], "required");
    assert_eq!(with(json!({"type": "none"}))["tool_choice"], "none");
    let body = with(json!({"type": "tool", "name": "clock", "disable_parallel_tool_use": true}));
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "clock"}})
    );
    assert_eq!(body["parallel_tool_calls"], false);
}

#[test]
fn what_cannot_be_translated_is_refused_by_name_and_place() {
    let user = |content: Value| json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": content}]});
    let e = refusal(&user(json!([{"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}])));
    assert!(e.contains("/messages/0/content/1 is `image`"), "{e}");
    let e = refusal(&user(json!([{"type": "document",
        "source": {"type": "url", "url": "https://example.com/a.pdf"}}])));
    assert!(e.contains("`document`"), "{e}");
    let e = refusal(&user(json!([{"type": "tool_result", "tool_use_id": "t",
        "content": [{"type": "image", "source": {"type": "url", "url": "https://x.test/i.png"}}]}])));
    assert!(
        e.contains("/messages/0/content/0/content/0 is `image`"),
        "{e}"
    );
    let e = refusal(&json!({"model": "m", "max_tokens": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "hi"}]}));
    assert!(e.contains("extended thinking"), "{e}");
    let e = refusal(&json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]},
        {"role": "user", "content": "go on"}]}));
    assert!(e.contains("/messages/1/content/0 is `thinking`"), "{e}");
    let e = refusal(&json!({"model": "m", "max_tokens": 5, "mcp_servers": [],
        "messages": [{"role": "user", "content": "hi"}]}));
    assert!(e.contains("the field `mcp_servers`"), "{e}");
    let e = refusal(&json!({"model": "m", "max_tokens": 5,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [{"role": "user", "content": "hi"}]}));
    assert!(e.contains("server tool `web_search_20250305`"), "{e}");
    let e = refusal(&json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure, "}]}));
    assert!(e.contains("prefill"), "{e}");
    assert!(e.contains("nothing was sent"), "{e}");
}

#[test]
fn malformed_requests_are_bad_requests() {
    let bad = |body: Value| {
        let e = translate(&body).unwrap_err();
        assert_eq!(e.status().as_u16(), 400, "{e}");
        e.to_string()
    };
    let hi = json!([{"role": "user", "content": "hi"}]);
    assert!(bad(json!({"model": "m", "messages": hi})).contains("`max_tokens`"));
    assert!(bad(json!({"model": "m", "max_tokens": 0, "messages": hi})).contains("`max_tokens`"));
    assert!(
        bad(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]})
        )
        .contains("role `system`")
    );
    assert!(
        bad(json!({"model": "m", "max_tokens": 5, "stop_sequences": "END", "messages": hi}))
            .contains("`stop_sequences`")
    );
    assert!(
        bad(json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"text": "no type"}]}]}))
        .contains("without a `type`")
    );
    assert!(
        bad(json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "s"}]},
            {"role": "user", "content": "y"}]}))
        .contains("`input` must be an object")
    );
}
