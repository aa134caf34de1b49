//! A whole OpenAI chat completion as an Anthropic message: `id` (`msg_` and the
//! completion's id), `type: message`, `role: assistant`, `model`, `content` (the text as one
//! `text` block; each tool call as a `tool_use` block, its arguments parsed into `input`),
//! `stop_reason` and `stop_sequence` (see [`super::stop_reason`]), and `usage`
//! (`prompt_tokens` → `input_tokens`, `completion_tokens` → `output_tokens`). A tool
//! call whose arguments are not a JSON object is an error, never a guess.

use serde_json::{Value, json};

use super::{message_id, stop_reason};

/// Translates the chat completion `reply` (the backend's whole body); `model` names the
/// model when the reply does not, `stops` are the request's stop sequences.
pub fn message(reply: &[u8], model: &str, stops: &[String]) -> Result<Value, String> {
    let reply: Value = serde_json::from_slice(reply)
        .map_err(|e| format!("the chat completion is not JSON ({e})"))?;
    let choice = reply
        .pointer("/choices/0")
        .ok_or("the chat completion has no choice")?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or("the chat completion's choice has no message")?;
    let mut content = Vec::new();
    let text = match message.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Option<Vec<_>>>()
            .ok_or("the message's content has a part without text")?
            .concat(),
        Some(_) => return Err("the message's `content` is neither text nor parts".into()),
    };
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err("the message's `tool_calls` is not an array".into()),
    };
    for (i, call) in calls.iter().enumerate() {
        content.push(tool_use(call, i)?);
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let matched = choice.get("stop_reason").and_then(Value::as_str);
    let (stop, sequence) = stop_reason(finish, matched, stops, !calls.is_empty());
    let count = |key: &str| {
        reply
            .pointer(&format!("/usage/{key}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(json!({
        "id": message_id(reply.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": reply.get("model").and_then(Value::as_str).unwrap_or(model),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": sequence,
        "usage": {"input_tokens": count("prompt_tokens"), "output_tokens": count("completion_tokens")},
    }))
}

/// One tool call as a `tool_use` block.
fn tool_use(call: &Value, i: usize) -> Result<Value, String> {
    let name = call
        .pointer("/function/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("tool call {i} has no function name"))?;
    let arguments = call
        .pointer("/function/arguments")
        .and_then(Value::as_str)
        .unwrap_or("");
    let input = parse_input(arguments).map_err(|e| format!("tool call {i} (`{name}`): {e}"))?;
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map_or_else(|| format!("toolu_{i}"), str::to_owned);
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// A tool call's arguments as the `input` object (none at all: `{}`).
pub(super) fn parse_input(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(input @ Value::Object(_)) => Ok(input),
        Ok(_) => Err("its arguments are JSON but not an object".into()),
        Err(e) => Err(format!("its arguments are not JSON ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(message: &Value, finish: &str) -> Vec<u8> {
        json!({"id": "chatcmpl-42", "object": "chat.completion", "created": 1, "model": "smollm2",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn text_reply() {
        let m = message(
            &completion(&json!({"role": "assistant", "content": "Hello!"}), "stop"),
            "fallback",
            &[],
        )
        .unwrap();
        assert_eq!(
            m,
            json!({"id": "msg_chatcmpl-42", "type": "message", "role": "assistant",
                "model": "smollm2", "content": [{"type": "text", "text": "Hello!"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 5}})
        );
    }

    #[test]
    fn tool_calls_become_tool_use_blocks_with_parsed_input() {
        let m = message(
            &completion(
                &json!({"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_9", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}},
                    {"type": "function", "function": {"name": "clock", "arguments": ""}}]}),
                "tool_calls",
            ),
            "fallback",
            &[],
        )
        .unwrap();
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(
            m["content"],
            json!([{"type": "text", "text": "Checking."},
                   {"type": "tool_use", "id": "call_9", "name": "weather", "input": {"city": "Paris"}},
                   {"type": "tool_use", "id": "toolu_1", "name": "clock", "input": {}}])
        );
    }

    #[test]
    fn length_and_stop_sequences() {
        let reply = |finish: &str, matched: Value| {
            let mut v: Value = serde_json::from_slice(&completion(
                &json!({"role": "assistant", "content": "cut"}),
                finish,
            ))
            .unwrap();
            v["choices"][0]["stop_reason"] = matched;
            v.to_string().into_bytes()
        };
        let stops = vec!["END".to_owned()];
        let m = message(&reply("length", Value::Null), "f", &stops).unwrap();
        assert_eq!(m["stop_reason"], "max_tokens");
        let m = message(&reply("stop", json!("END")), "f", &stops).unwrap();
        assert_eq!(m["stop_reason"], "stop_sequence");
        assert_eq!(m["stop_sequence"], "END");
        let m = message(&reply("stop", json!(2)), "f", &stops).unwrap();
        assert_eq!(m["stop_reason"], "end_turn");
        assert_eq!(m["stop_sequence"], Value::Null);
    }

    #[test]
    fn arguments_that_are_not_a_json_object_are_an_error() {
        for args in ["{\"city\": \"Par", "[1, 2]", "city=Paris"] {
            let e = message(
                &completion(
                    &json!({"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "weather", "arguments": args}}]}),
                    "tool_calls",
                ),
                "f",
                &[],
            )
            .unwrap_err();
            assert!(e.contains("tool call 0 (`weather`)"), "{e}");
        }
    }

    #[test]
    fn replies_that_are_no_completion_are_an_error() {
        assert!(
            message(b"<html>", "f", &[])
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            message(br#"{"choices": []}"#, "f", &[])
                .unwrap_err()
                .contains("no choice")
        );
        // No model and no usage in the reply: the model asked for, zero counts.
        let m = message(
            br#"{"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}"#,
            "smollm2",
            &[],
        )
        .unwrap();
        assert_eq!(m["model"], "smollm2");
        assert_eq!(m["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
        assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    }
}
