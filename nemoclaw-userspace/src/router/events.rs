//! Where text travels in a reply, per API, and the rewriting of a reply in place: a
//! streamed reply is read as SSE events, each text delta goes through its stream's
//! [`Channel`] (OpenAI chat: `content`, `refusal`, each tool call's `arguments`; Anthropic:
//! each content block's `text_delta` or `input_json_delta`; Responses: each output text,
//! refusal and function call's `arguments`), and what a channel still holds when its stream
//! ends is sent in one more delta event of the same shape just before the event that ends
//! it. Every other event, and a non-streamed reply, is rewritten as a JSON tree (every
//! string but identifiers). Anthropic `thinking` / `redacted_thinking` blocks and reasoning
//! items pass unmodified (their signatures cover them). An event that is not JSON where
//! JSON belongs fails the reply: the caller's connection is cut, never left half-restored
//! without a word.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::request::Route;
use super::restore::{Channel, Counts, ReplyContext, TextKind};

/// A streamed event larger than this (still unterminated) fails the reply.
const MAX_EVENT: usize = 16 << 20;
/// A non-streamed reply larger than this fails.
const MAX_WHOLE: usize = 64 << 20;

/// Object keys whose strings are identifiers and metadata, never text to rewrite.
const METADATA_KEYS: [&str; 17] = [
    "id",
    "object",
    "model",
    "type",
    "role",
    "created",
    "finish_reason",
    "stop_reason",
    "system_fingerprint",
    "item_id",
    "call_id",
    "tool_call_id",
    "status",
    "signature",
    "encrypted_content",
    "service_tier",
    "data",
];

/// Chat delta fields that are not text streams: identifiers, and reasoning, which passes
/// unmodified like Anthropic's thinking.
const UNGUARDED_DELTA_FIELDS: [&str; 4] = ["role", "reasoning_content", "reasoning", "type"];

/// Block and item types that pass unmodified.
const UNMODIFIED_TYPES: [&str; 3] = ["thinking", "redacted_thinking", "reasoning"];

/// One text stream of a streamed reply.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// OpenAI chat: a choice's `content`, `refusal`, or any other text field of its deltas
    /// (an extension field is text the caller's client may show too).
    Chat { choice: u64, field: String },
    /// OpenAI chat: a choice's tool call's `arguments`.
    ChatTool { choice: u64, tool: u64 },
    /// Anthropic: a content block (`text_delta` or `input_json_delta`).
    Block { index: u64, json: bool },
    /// Responses: an output text or refusal part.
    Part {
        item: String,
        output: u64,
        content: u64,
        refusal: bool,
    },
    /// Responses: a function call's arguments.
    Arguments { item: String, output: u64 },
}

impl Key {
    fn kind(&self) -> TextKind {
        match self {
            Key::ChatTool { .. } | Key::Block { json: true, .. } | Key::Arguments { .. } => {
                TextKind::Json
            }
            _ => TextKind::Plain,
        }
    }
}

/// A reply being rewritten.
pub struct ReplyRewriter {
    cx: ReplyContext,
    route: Route,
    sse: bool,
    buffer: Vec<u8>,
    channels: BTreeMap<Key, Channel>,
    /// OpenAI chat: the top-level fields of the last chunk (id, model, created ...), for
    /// the chunks the rewriter adds.
    template: Map<String, Value>,
    /// Anthropic: blocks that pass unmodified (thinking).
    unmodified: BTreeSet<u64>,
}

impl ReplyRewriter {
    /// A rewriter for a reply to `route`, streamed as SSE or whole.
    #[must_use]
    pub fn new(cx: ReplyContext, route: Route, sse: bool) -> ReplyRewriter {
        ReplyRewriter {
            cx,
            route,
            sse,
            buffer: Vec::new(),
            channels: BTreeMap::new(),
            template: Map::new(),
            unmodified: BTreeSet::new(),
        }
    }

    /// What the rewriting did so far.
    #[must_use]
    pub fn counts(&self) -> &Counts {
        &self.cx.counts
    }

    /// Takes the next bytes of the backend's reply; returns what the caller may have now.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        self.buffer.extend_from_slice(bytes);
        if !self.sse {
            if self.buffer.len() > MAX_WHOLE {
                return Err(format!(
                    "the backend's reply is over {MAX_WHOLE} bytes, more than the router rewrites"
                ));
            }
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        while let Some((end, next)) = event_end(&self.buffer) {
            let event: Vec<u8> = self.buffer.drain(..next).take(end).collect();
            self.event(&event, &mut out)?;
        }
        if self.buffer.len() > MAX_EVENT {
            return Err(format!(
                "an SSE event of the backend's reply is over {MAX_EVENT} bytes"
            ));
        }
        Ok(out)
    }

    /// The end of the backend's reply: the rest, rewritten.
    pub fn finish(&mut self) -> Result<Vec<u8>, String> {
        let rest = std::mem::take(&mut self.buffer);
        let mut out = Vec::new();
        if !self.sse {
            return Ok(self.whole(&rest));
        }
        if !rest.iter().all(u8::is_ascii_whitespace) {
            self.event(&rest, &mut out)?;
        }
        self.flush_all(&mut out);
        Ok(out)
    }

    /// A non-streamed reply: the JSON tree rewritten, or the text when it is not JSON (an
    /// error page quoting the request).
    fn whole(&mut self, body: &[u8]) -> Vec<u8> {
        if let Ok(mut value) = serde_json::from_slice::<Value>(body) {
            rewrite_tree(&mut self.cx, &mut value, TextKind::Plain);
            return serde_json::to_vec(&value).unwrap_or_else(|_| body.to_vec());
        }
        match std::str::from_utf8(body) {
            Ok(text) => self.cx.whole(text, TextKind::Plain).into_bytes(),
            Err(_) => body.to_vec(),
        }
    }

    /// One SSE event (without its blank line): rewritten into `out`.
    fn event(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let text = std::str::from_utf8(raw)
            .map_err(|_| "an SSE event of the backend's reply is not UTF-8".to_owned())?;
        let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
        let data: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            push_raw(out, raw);
            return Ok(());
        }
        let data = data.join("\n");
        if data.trim() == "[DONE]" {
            self.flush_all(out);
            push_raw(out, raw);
            return Ok(());
        }
        let mut value: Value = serde_json::from_str(&data).map_err(|e| {
            format!("an SSE event of the backend's reply is not JSON ({e}); the reply cannot be restored")
        })?;
        let mut before = Vec::new();
        let changed = match self.route {
            Route::ChatCompletions => self.chat(&mut value),
            Route::Messages => self.messages(&mut value, &mut before),
            Route::Responses => self.responses(&mut value, &mut before),
            Route::Embeddings | Route::Models => {
                rewrite_tree(&mut self.cx, &mut value, TextKind::Plain)
            }
        };
        out.extend_from_slice(&before);
        if changed {
            let mut wrote_data = false;
            for line in &lines {
                if line.starts_with("data:") {
                    if !wrote_data {
                        out.extend_from_slice(b"data: ");
                        out.extend_from_slice(value.to_string().as_bytes());
                        out.push(b'\n');
                        wrote_data = true;
                    }
                } else if !line.is_empty() {
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
            }
            out.push(b'\n');
        } else {
            push_raw(out, raw);
        }
        Ok(())
    }

    /// Pushes `text` through the channel `key`; returns the text to send instead.
    fn push(&mut self, key: Key, text: &str) -> String {
        let kind = key.kind();
        let channel = self
            .channels
            .entry(key)
            .or_insert_with(|| Channel::new(kind));
        channel.push(&mut self.cx, text)
    }

    /// Ends the channel `key`; returns what it still held.
    fn flush(&mut self, key: &Key) -> String {
        match self.channels.remove(key) {
            Some(mut channel) => channel.finish(&mut self.cx),
            None => String::new(),
        }
    }

    /// Ends every channel, each rest in one more event of its API's shape.
    fn flush_all(&mut self, out: &mut Vec<u8>) {
        let keys: Vec<Key> = self.channels.keys().cloned().collect();
        for key in keys {
            let rest = self.flush(&key);
            if !rest.is_empty() {
                out.extend_from_slice(&self.delta_event(&key, &rest));
            }
        }
    }

    /// An event carrying `text` for the channel `key`, in the API's delta shape.
    fn delta_event(&self, key: &Key, text: &str) -> Vec<u8> {
        let (name, value) = match key {
            Key::Chat { choice, field } => {
                let mut chunk = self.template.clone();
                chunk.insert(
                    "choices".into(),
                    json!([{"index": choice, "delta": {field.as_str(): text}, "finish_reason": null}]),
                );
                (None, Value::Object(chunk))
            }
            Key::ChatTool { choice, tool } => {
                let mut chunk = self.template.clone();
                chunk.insert(
                    "choices".into(),
                    json!([{"index": choice, "delta": {"tool_calls": [{"index": tool, "function": {"arguments": text}}]}, "finish_reason": null}]),
                );
                (None, Value::Object(chunk))
            }
            Key::Block { index, json } => {
                let delta = if *json {
                    json!({"type": "input_json_delta", "partial_json": text})
                } else {
                    json!({"type": "text_delta", "text": text})
                };
                (
                    Some("content_block_delta"),
                    json!({"type": "content_block_delta", "index": index, "delta": delta}),
                )
            }
            Key::Part {
                item,
                output,
                content,
                refusal,
            } => {
                let kind = if *refusal {
                    "response.refusal.delta"
                } else {
                    "response.output_text.delta"
                };
                (
                    Some(kind),
                    json!({"type": kind, "item_id": item, "output_index": output, "content_index": content, "delta": text}),
                )
            }
            Key::Arguments { item, output } => (
                Some("response.function_call_arguments.delta"),
                json!({"type": "response.function_call_arguments.delta", "item_id": item, "output_index": output, "delta": text}),
            ),
        };
        let mut event = Vec::new();
        if let Some(name) = name {
            event.extend_from_slice(format!("event: {name}\n").as_bytes());
        }
        event.extend_from_slice(format!("data: {value}\n\n").as_bytes());
        event
    }

    /// An OpenAI chat chunk; returns whether it changed.
    fn chat(&mut self, chunk: &mut Value) -> bool {
        let Some(object) = chunk.as_object_mut() else {
            return false;
        };
        for (k, v) in object.iter() {
            if k != "choices" && k != "usage" {
                self.template.insert(k.clone(), v.clone());
            }
        }
        let Some(Value::Array(choices)) = object.get_mut("choices") else {
            return false;
        };
        let mut changed = false;
        for choice in choices {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let finished = choice.get("finish_reason").is_some_and(|f| !f.is_null());
            let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) else {
                continue;
            };
            let fields: Vec<String> = delta
                .iter()
                .filter(|(k, v)| v.is_string() && !UNGUARDED_DELTA_FIELDS.contains(&k.as_str()))
                .map(|(k, _)| k.clone())
                .collect();
            for field in fields {
                let Some(Value::String(text)) = delta.get(&field) else {
                    continue;
                };
                let text = text.clone();
                let key = Key::Chat {
                    choice: index,
                    field: field.clone(),
                };
                let out = self.push(key, &text);
                if out != text {
                    delta.insert(field, Value::String(out));
                    changed = true;
                }
            }
            if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
                for call in calls.iter_mut() {
                    let tool = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                    if let Some(Value::String(args)) = call.pointer("/function/arguments") {
                        let args = args.clone();
                        let out = self.push(
                            Key::ChatTool {
                                choice: index,
                                tool,
                            },
                            &args,
                        );
                        if out != args {
                            call["function"]["arguments"] = Value::String(out);
                            changed = true;
                        }
                    }
                }
            }
            if finished {
                changed |= self.finish_choice(index, delta);
            }
        }
        changed
    }

    /// A finished choice: what its channels held goes into its last delta.
    fn finish_choice(&mut self, index: u64, delta: &mut Map<String, Value>) -> bool {
        let keys: Vec<Key> = self
            .channels
            .keys()
            .filter(|k| matches!(k, Key::Chat { choice, .. } | Key::ChatTool { choice, .. } if *choice == index))
            .cloned()
            .collect();
        let mut changed = false;
        for key in keys {
            let rest = self.flush(&key);
            if rest.is_empty() {
                continue;
            }
            changed = true;
            match key {
                Key::Chat { field, .. } => {
                    let before = delta.get(&field).and_then(Value::as_str).unwrap_or("");
                    let joined = format!("{before}{rest}");
                    delta.insert(field, Value::String(joined));
                }
                Key::ChatTool { tool, .. } => {
                    let calls = delta
                        .entry("tool_calls")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(calls) = calls {
                        calls.push(json!({"index": tool, "function": {"arguments": rest}}));
                    }
                }
                _ => {}
            }
        }
        changed
    }

    /// An Anthropic event; extra events to send before it go to `before`.
    fn messages(&mut self, event: &mut Value, before: &mut Vec<u8>) -> bool {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind.as_str() {
            "content_block_start" => {
                let block_type = event
                    .pointer("/content_block/type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if UNMODIFIED_TYPES.contains(&block_type) {
                    self.unmodified.insert(index);
                    return false;
                }
                let json = block_type != "text";
                if let Some(Value::String(text)) = event.pointer("/content_block/text") {
                    let text = text.clone();
                    let out = self.push(Key::Block { index, json }, &text);
                    if out != text {
                        event["content_block"]["text"] = Value::String(out);
                        return true;
                    }
                    return false;
                }
                let Some(block) = event.get_mut("content_block") else {
                    return false;
                };
                rewrite_tree(&mut self.cx, block, TextKind::Plain)
            }
            "content_block_delta" if !self.unmodified.contains(&index) => {
                let (field, json) = match event.pointer("/delta/type").and_then(Value::as_str) {
                    Some("text_delta") => ("text", false),
                    Some("input_json_delta") => ("partial_json", true),
                    _ => return false,
                };
                let Some(Value::String(text)) = event.pointer(&format!("/delta/{field}")) else {
                    return false;
                };
                let text = text.clone();
                let out = self.push(Key::Block { index, json }, &text);
                if out == text {
                    return false;
                }
                event["delta"][field] = Value::String(out);
                true
            }
            "content_block_stop" => {
                for json in [false, true] {
                    let key = Key::Block { index, json };
                    let rest = self.flush(&key);
                    if !rest.is_empty() {
                        before.extend_from_slice(&self.delta_event(&key, &rest));
                    }
                }
                false
            }
            "content_block_delta" | "ping" | "message_stop" | "message_delta" => false,
            _ => rewrite_tree(&mut self.cx, event, TextKind::Plain),
        }
    }

    /// A Responses event; extra events to send before it go to `before`.
    fn responses(&mut self, event: &mut Value, before: &mut Vec<u8>) -> bool {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let item = event
            .get("item_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let output = event
            .get("output_index")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let content = event
            .get("content_index")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let part = |refusal| Key::Part {
            item: item.clone(),
            output,
            content,
            refusal,
        };
        let arguments = Key::Arguments {
            item: item.clone(),
            output,
        };
        let (key, whole_field) = match kind.as_str() {
            "response.output_text.delta" => (Some(part(false)), None),
            "response.refusal.delta" => (Some(part(true)), None),
            "response.function_call_arguments.delta" => (Some(arguments), None),
            "response.output_text.done" => (None, Some((part(false), "text"))),
            "response.refusal.done" => (None, Some((part(true), "refusal"))),
            "response.function_call_arguments.done" => (None, Some((arguments, "arguments"))),
            _ => (None, None),
        };
        if let Some(key) = key {
            let Some(Value::String(text)) = event.get("delta") else {
                return false;
            };
            let text = text.clone();
            let out = self.push(key, &text);
            if out == text {
                return false;
            }
            event["delta"] = Value::String(out);
            return true;
        }
        // A `done` event or a summary (`response.completed` ...) repeats text that went by
        // in deltas: rewritten the same way, not counted twice.
        if let Some((key, _)) = &whole_field {
            let rest = self.flush(key);
            if !rest.is_empty() {
                before.extend_from_slice(&self.delta_event(key, &rest));
            }
        }
        let counted = self.cx.counts.clone();
        let kind = match &whole_field {
            Some((key, _)) => key.kind(),
            None => TextKind::Plain,
        };
        let changed = match whole_field {
            Some((_, field)) => match event.get(field) {
                Some(Value::String(text)) => {
                    let text = text.clone();
                    let out = self.cx.whole(&text, kind);
                    let changed = out != text;
                    event[field] = Value::String(out);
                    changed
                }
                _ => false,
            },
            None => rewrite_tree(&mut self.cx, event, TextKind::Plain),
        };
        self.cx.counts = counted;
        changed
    }
}

/// Rewrites every text string under `value` (not identifiers, not thinking or reasoning
/// blocks); returns whether anything changed.
fn rewrite_tree(cx: &mut ReplyContext, value: &mut Value, kind: TextKind) -> bool {
    match value {
        Value::String(text) => {
            let out = cx.whole(text, kind);
            if out == *text {
                return false;
            }
            *text = out;
            true
        }
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= rewrite_tree(cx, item, kind);
            }
            changed
        }
        Value::Object(map) => {
            if map
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| UNMODIFIED_TYPES.contains(&t))
            {
                return false;
            }
            let mut changed = false;
            for (key, item) in map.iter_mut() {
                if METADATA_KEYS.contains(&key.as_str()) {
                    continue;
                }
                let kind = if key == "arguments" || key == "partial_json" {
                    TextKind::Json
                } else {
                    kind
                };
                changed |= rewrite_tree(cx, item, kind);
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The end of the first complete event in `buffer`: (end of its content, start of the
/// next event).
pub(crate) fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buffer.len() {
        if buffer[i] == b'\n' {
            if buffer[i + 1] == b'\n' {
                return Some((i, i + 2));
            }
            if buffer[i + 1] == b'\r' && buffer.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// An event passed as the backend sent it, with its blank line.
fn push_raw(out: &mut Vec<u8>, raw: &[u8]) {
    out.extend_from_slice(raw);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
