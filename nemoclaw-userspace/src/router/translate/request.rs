//! An Anthropic Messages request as an OpenAI chat completion request, for a local
//! OpenAI-compatible server (llama.cpp, Ollama, vLLM).
//!
//! Translated: `system` (a string, or text blocks) → the first, `system` message;
//! `messages` (a string, or blocks: `text`; `tool_use` → the assistant's `tool_calls`, the
//! input as a JSON string; `tool_result` → a `tool` message with its `tool_call_id`, ahead
//! of the turn's other text) → messages, text blocks joined with a newline; `max_tokens`,
//! `temperature`, `top_p`, `top_k`, `stop_sequences` → `stop`; `tools` (`input_schema` →
//! `function.parameters`); `tool_choice` (`auto`, `any` → `required`, `tool` → the named
//! function, `none`; `disable_parallel_tool_use` → `parallel_tool_calls: false`);
//! `stream` (with `stream_options.include_usage`, so the reply's token counts come too).
//! Dropped, as they change nothing the local model does: `metadata`, `service_tier`,
//! `cache_control` anywhere, a text block's `citations`, `thinking: {type: disabled}`.
//! Refused (422, naming the field or the block and its place): images, documents and every
//! other block type, extended `thinking` and thinking blocks, server tools (`web_search`,
//! `bash` ...), a final assistant message (prefill: a chat completion starts a new turn,
//! it does not continue one), and any other top-level field.

use serde_json::{Map, Value, json};

use crate::router::error::RouterError;

/// Top-level fields the translation carries over.
const TRANSLATED: [&str; 11] = [
    "model",
    "messages",
    "system",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "tools",
    "tool_choice",
];

/// Top-level fields dropped: hints and bookkeeping for Anthropic's service.
const DROPPED: [&str; 3] = ["metadata", "service_tier", "cache_control"];

/// The translated request.
#[derive(Debug)]
pub struct ChatRequest {
    /// The chat completion request body.
    pub body: Value,
    /// The request's `stop_sequences` (to tell a stop sequence from an end of turn).
    pub stop_sequences: Vec<String>,
}

fn refused(what: &str) -> RouterError {
    RouterError::NotTranslatable(format!(
        "this Anthropic request must go to the local model, which speaks OpenAI's API, and {what}; refused, nothing was sent"
    ))
}

fn malformed(what: &str) -> RouterError {
    RouterError::BadRequest(format!("/v1/messages: {what}"))
}

/// Translates an Anthropic Messages request `body` for the local model `model`.
pub fn chat_request(body: &Value, model: &str) -> Result<ChatRequest, RouterError> {
    let object = body
        .as_object()
        .ok_or_else(|| malformed("the body must be a JSON object"))?;
    for (key, value) in object {
        let harmless = DROPPED.contains(&key.as_str())
            || (key == "thinking" && value.get("type").and_then(Value::as_str) == Some("disabled"));
        if !TRANSLATED.contains(&key.as_str()) && !harmless {
            return Err(refused(&if key == "thinking" {
                "extended thinking (`thinking`) has no equivalent there".to_owned()
            } else {
                format!("the field `{key}` has no equivalent there")
            }));
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_owned()));
    let mut messages = Vec::new();
    if let Some(system) = object.get("system") {
        let text = match system {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => joined_text(blocks, "/system")?,
            _ => return Err(malformed("`system` must be a string or an array of blocks")),
        };
        messages.push(json!({"role": "system", "content": text}));
    }
    let list = object
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("`messages` must be an array"))?;
    for (i, message) in list.iter().enumerate() {
        translate_message(message, i, i + 1 == list.len(), &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    match object.get("max_tokens") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {
            out.insert("max_tokens".into(), Value::Number(n.clone()));
        }
        _ => return Err(malformed("`max_tokens` must be a positive integer")),
    }
    for key in ["temperature", "top_p", "top_k"] {
        match object.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                out.insert(key.into(), Value::Number(n.clone()));
            }
            Some(_) => return Err(malformed(&format!("`{key}` must be a number"))),
        }
    }
    let stop_sequences = match object.get("stop_sequences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("`stop_sequences` must be an array of strings"))?,
        Some(_) => return Err(malformed("`stop_sequences` must be an array of strings")),
    };
    if !stop_sequences.is_empty() {
        out.insert("stop".into(), json!(stop_sequences));
    }
    if object.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), Value::Bool(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = object.get("tools").filter(|t| !t.is_null()) {
        let tools = tools
            .as_array()
            .ok_or_else(|| malformed("`tools` must be an array"))?;
        let translated = tools
            .iter()
            .enumerate()
            .map(|(i, t)| tool(t, i))
            .collect::<Result<Vec<_>, _>>()?;
        if !translated.is_empty() {
            out.insert("tools".into(), Value::Array(translated));
        }
    }
    if let Some(choice) = object.get("tool_choice").filter(|c| !c.is_null()) {
        tool_choice(choice, &mut out)?;
    }
    Ok(ChatRequest {
        body: Value::Object(out),
        stop_sequences,
    })
}

/// One Anthropic message, appended to `out` as one or more chat messages.
fn translate_message(
    message: &Value,
    i: usize,
    last: bool,
    out: &mut Vec<Value>,
) -> Result<(), RouterError> {
    let role = message
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(&format!("/messages/{i} has no `role`")))?;
    let content = message
        .get("content")
        .ok_or_else(|| malformed(&format!("/messages/{i} has no `content`")))?;
    match role {
        "user" => user(content, i, out),
        "assistant" if last => Err(refused(&format!(
            "/messages/{i} is a final assistant message (a prefill), which a chat completion cannot continue"
        ))),
        "assistant" => assistant(content, i, out),
        other => Err(malformed(&format!(
            "/messages/{i} has role `{other}` (Anthropic's roles are `user` and `assistant`)"
        ))),
    }
}

/// Message `i`'s content blocks; a plain string is the whole turn, pushed as `role`'s
/// message at once (`None`: nothing left to translate).
fn blocks_or_text<'a>(
    content: &'a Value,
    role: &str,
    i: usize,
    out: &mut Vec<Value>,
) -> Result<Option<&'a Vec<Value>>, RouterError> {
    match content {
        Value::String(text) => {
            out.push(json!({"role": role, "content": text}));
            Ok(None)
        }
        Value::Array(blocks) => Ok(Some(blocks)),
        _ => Err(malformed(&format!(
            "/messages/{i}/content must be a string or an array"
        ))),
    }
}

/// A user turn: its tool results (as `tool` messages, in order), then its text.
fn user(content: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), RouterError> {
    let Some(blocks) = blocks_or_text(content, "user", i, out)? else {
        return Ok(());
    };
    let mut texts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let place = format!("/messages/{i}/content/{j}");
        match block_type(block, &place)? {
            "text" => texts.push(text_of(block, &place)?),
            "tool_result" => out.push(tool_result(block, &place)?),
            other => return Err(unsupported_block(other, &place)),
        }
    }
    if !texts.is_empty() || blocks.is_empty() {
        out.push(json!({"role": "user", "content": texts.join("\n")}));
    }
    Ok(())
}

/// An assistant turn: its text and its tool calls, in one message.
fn assistant(content: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), RouterError> {
    let Some(blocks) = blocks_or_text(content, "assistant", i, out)? else {
        return Ok(());
    };
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let place = format!("/messages/{i}/content/{j}");
        match block_type(block, &place)? {
            "text" => texts.push(text_of(block, &place)?),
            "tool_use" => {
                let id = string_field(block, "id", &place)?;
                let name = string_field(block, "name", &place)?;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                if !input.is_object() {
                    return Err(malformed(&format!("{place}: `input` must be an object")));
                }
                calls.push(json!({"id": id, "type": "function",
                    "function": {"name": name, "arguments": input.to_string()}}));
            }
            other => return Err(unsupported_block(other, &place)),
        }
    }
    let mut message = json!({"role": "assistant"});
    message["content"] = if texts.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(texts.join("\n"))
    };
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    out.push(message);
    Ok(())
}

/// A `tool_result` block as a `tool` message (`is_error` results start with `Error: `).
fn tool_result(block: &Value, place: &str) -> Result<Value, RouterError> {
    let id = string_field(block, "tool_use_id", place)?;
    let text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => joined_text(blocks, &format!("{place}/content"))?,
        Some(_) => {
            return Err(malformed(&format!(
                "{place}: `content` must be a string or an array"
            )));
        }
    };
    let text = if block.get("is_error").and_then(Value::as_bool) == Some(true) {
        format!("Error: {text}")
    } else {
        text
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// Text blocks (a system prompt, a tool result) as one string; any other block refused.
fn joined_text(blocks: &[Value], place: &str) -> Result<String, RouterError> {
    let mut texts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let place = format!("{place}/{j}");
        match block_type(block, &place)? {
            "text" => texts.push(text_of(block, &place)?),
            other => return Err(unsupported_block(other, &place)),
        }
    }
    Ok(texts.join("\n"))
}

fn block_type<'a>(block: &'a Value, place: &str) -> Result<&'a str, RouterError> {
    block
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(&format!("{place} is a content block without a `type`")))
}

fn text_of(block: &Value, place: &str) -> Result<String, RouterError> {
    string_field(block, "text", place)
}

fn string_field(block: &Value, key: &str, place: &str) -> Result<String, RouterError> {
    block
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| malformed(&format!("{place}: `{key}` must be a string")))
}

fn unsupported_block(kind: &str, place: &str) -> RouterError {
    let why = match kind {
        "image" => "an image block, which the local model cannot be given",
        "document" => "a document block, which the local model cannot be given",
        "thinking" | "redacted_thinking" => {
            "a thinking block (extended thinking has no equivalent there)"
        }
        _ => "a block of a type the translation does not know",
    };
    refused(&format!("{place} is `{kind}`: {why}"))
}

/// One tool definition as an OpenAI function.
fn tool(tool: &Value, i: usize) -> Result<Value, RouterError> {
    let place = format!("/tools/{i}");
    if let Some(kind) = tool.get("type").and_then(Value::as_str)
        && kind != "custom"
    {
        return Err(refused(&format!(
            "{place} is the server tool `{kind}`, which only Anthropic runs"
        )));
    }
    let name = string_field(tool, "name", &place)?;
    let schema = tool
        .get("input_schema")
        .filter(|s| s.is_object())
        .ok_or_else(|| malformed(&format!("{place}: `input_schema` must be an object")))?;
    let mut function = json!({"name": name, "parameters": schema});
    if let Some(description) = tool.get("description").and_then(Value::as_str) {
        function["description"] = Value::String(description.to_owned());
    }
    Ok(json!({"type": "function", "function": function}))
}

/// `tool_choice` into `out` (`tool_choice`, and `parallel_tool_calls` when disabled).
fn tool_choice(choice: &Value, out: &mut Map<String, Value>) -> Result<(), RouterError> {
    let kind = choice
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("`tool_choice` must be an object with a `type`"))?;
    let translated = match kind {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = string_field(choice, "name", "/tool_choice")?;
            json!({"type": "function", "function": {"name": name}})
        }
        other => {
            return Err(refused(&format!(
                "`tool_choice` of type `{other}` has no equivalent there"
            )));
        }
    };
    out.insert("tool_choice".into(), translated);
    if choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
        && out.contains_key("tools")
    {
        out.insert("parallel_tool_calls".into(), Value::Bool(false));
    }
    Ok(())
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
