//! A streamed chat completion (OpenAI's SSE chunks) as Anthropic's streamed message, event
//! by event as the chunks arrive (nothing is held back but an incomplete SSE event):
//! `message_start` on the first chunk; per content block `content_block_start`, its
//! `content_block_delta`s (`text_delta` for the text, `input_json_delta` for a tool call's
//! arguments, passed as they come) and `content_block_stop`; then, when the backend has
//! finished (`finish_reason`, then `[DONE]` or the end of the body: the usage chunk comes
//! between them), `message_delta` (`stop_reason`, `stop_sequence`, `usage`) and
//! `message_stop`. Each event is an `event:` line and a `data:` line of JSON.
//!
//! Failing closed: an error chunk from the backend, a chunk that is not JSON, a tool call's
//! arguments that are not a JSON object (checked when its block ends), tool calls whose
//! arguments interleave, a stream that ends without a finish or a backend stream that
//! breaks: the caller gets an Anthropic `error` event (which its SDK raises) and nothing
//! more; the translator records why (never the backend's text) for the audit.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::message::parse_input;
use super::{message_id, stop_reason};
use crate::router::events::event_end;

/// An SSE event, or a tool call's arguments, larger than this fails the stream.
const MAX_HELD: usize = 16 << 20;

/// The content block being streamed.
enum Open {
    Text {
        index: u64,
    },
    Tool {
        index: u64,
        /// The call's `index` among the chunk's `tool_calls`.
        call: u64,
        name: String,
        arguments: String,
    },
}

/// Translates one streamed reply.
pub struct StreamTranslator {
    buffer: Vec<u8>,
    model: String,
    stops: Vec<String>,
    started: bool,
    open: Option<Open>,
    next_index: u64,
    /// The tool calls seen, by their `index`.
    calls: BTreeSet<u64>,
    stop: Option<(&'static str, Option<String>)>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    ended: bool,
    failure: Option<String>,
}

impl StreamTranslator {
    /// A translator for a reply of `model` (the model asked for, until a chunk names one)
    /// to a request with the stop sequences `stops`.
    #[must_use]
    pub fn new(model: &str, stops: Vec<String>) -> StreamTranslator {
        StreamTranslator {
            buffer: Vec::new(),
            model: model.to_owned(),
            stops,
            started: false,
            open: None,
            next_index: 0,
            calls: BTreeSet::new(),
            stop: None,
            input_tokens: None,
            output_tokens: None,
            ended: false,
            failure: None,
        }
    }

    /// The stream is over (translated to its end, or failed): nothing more will be sent.
    #[must_use]
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Why the stream failed, when it did (for the audit record: no reply text).
    #[must_use]
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Takes the next bytes of the backend's stream; returns the Anthropic events due now.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.buffer.extend_from_slice(bytes);
        while let Some((end, next)) = event_end(&self.buffer) {
            let event: Vec<u8> = self.buffer.drain(..next).take(end).collect();
            self.event(&event, &mut out);
            if self.ended {
                return out;
            }
        }
        if self.buffer.len() > MAX_HELD {
            self.fail(
                format!("an SSE event of the backend's stream is over {MAX_HELD} bytes"),
                &mut out,
            );
        }
        out
    }

    /// The backend's stream ended: the last events (or an error, if it never finished).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let rest = std::mem::take(&mut self.buffer);
        if !self.ended && !rest.iter().all(u8::is_ascii_whitespace) {
            self.event(&rest, &mut out);
        }
        self.end(&mut out);
        out
    }

    /// The backend's stream broke off: an error event, if the stream is not over yet.
    pub fn broken(&mut self, why: &str) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.ended {
            self.fail(format!("the backend's stream broke off: {why}"), &mut out);
        }
        out
    }

    /// One SSE event of the backend's stream (without its blank line).
    fn event(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        let Ok(text) = std::str::from_utf8(raw) else {
            return self.fail(
                "an SSE event of the backend's stream is not UTF-8".into(),
                out,
            );
        };
        let data: Vec<&str> = text
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            // A comment or a keep-alive.
            return;
        }
        let data = data.join("\n");
        if data.trim() == "[DONE]" {
            return self.end(out);
        }
        let chunk: Value = match serde_json::from_str(&data) {
            Ok(chunk) => chunk,
            Err(e) => {
                return self.fail(
                    format!("an SSE event of the backend's stream is not JSON ({e})"),
                    out,
                );
            }
        };
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let detail = error
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| error.as_str())
                .unwrap_or("(no message)");
            return self.fail_with(
                "the backend sent an error event mid-stream".into(),
                &format!("the local backend reported an error mid-stream: {detail}"),
                out,
            );
        }
        if let Err(why) = self.chunk(&chunk, out) {
            self.fail(why, out);
        }
    }

    /// One chat completion chunk.
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) -> Result<(), String> {
        if !self.started {
            self.started = true;
            if let Some(model) = chunk.get("model").and_then(Value::as_str) {
                model.clone_into(&mut self.model);
            }
            let id = message_id(chunk.get("id").and_then(Value::as_str));
            push(
                out,
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": id, "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            );
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            if let Some(n) = usage.get("prompt_tokens").and_then(Value::as_u64) {
                self.input_tokens = Some(n);
            }
            if let Some(n) = usage.get("completion_tokens").and_then(Value::as_u64) {
                self.output_tokens = Some(n);
            }
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return Ok(());
        };
        for choice in choices {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                return Err("the backend streamed more than one choice".into());
            }
            if self.stop.is_some() {
                return Err("the backend streamed content after its finish".into());
            }
            if let Some(delta) = choice.get("delta") {
                if let Some(text) = delta.get("content").and_then(Value::as_str)
                    && !text.is_empty()
                {
                    self.text(text, out)?;
                }
                if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                    for call in calls {
                        self.tool_call(call, out)?;
                    }
                }
            }
            if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
                self.close(out)?;
                let matched = choice.get("stop_reason").and_then(Value::as_str);
                self.stop = Some(stop_reason(
                    finish,
                    matched,
                    &self.stops,
                    !self.calls.is_empty(),
                ));
            }
        }
        Ok(())
    }

    /// Text: into the open text block, or a new one.
    fn text(&mut self, text: &str, out: &mut Vec<u8>) -> Result<(), String> {
        let index = if let Some(Open::Text { index }) = self.open {
            index
        } else {
            self.close(out)?;
            let index = self.start(out, &json!({"type": "text", "text": ""}));
            self.open = Some(Open::Text { index });
            index
        };
        push_delta(out, index, &json!({"type": "text_delta", "text": text}));
        Ok(())
    }

    /// A piece of a tool call: its start (id and name) opens a block, its arguments go as
    /// `input_json_delta`s.
    fn tool_call(&mut self, piece: &Value, out: &mut Vec<u8>) -> Result<(), String> {
        let call = piece.get("index").and_then(Value::as_u64).unwrap_or(0);
        let is_open = matches!(&self.open, Some(Open::Tool { call: c, .. }) if *c == call);
        if !is_open {
            if self.calls.contains(&call) {
                return Err(format!(
                    "the arguments of tool call {call} resumed after another block began"
                ));
            }
            let name = piece
                .pointer("/function/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("tool call {call} starts without a function name"))?
                .to_owned();
            let id = piece
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map_or_else(|| format!("toolu_{call}"), str::to_owned);
            self.close(out)?;
            let index = self.start(
                out,
                &json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            );
            self.calls.insert(call);
            self.open = Some(Open::Tool {
                index,
                call,
                name,
                arguments: String::new(),
            });
        }
        let Some(piece) = piece
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        else {
            return Ok(());
        };
        let Some(Open::Tool {
            index, arguments, ..
        }) = &mut self.open
        else {
            return Ok(());
        };
        if arguments.len() + piece.len() > MAX_HELD {
            return Err(format!(
                "tool call {call}'s arguments are over {MAX_HELD} bytes"
            ));
        }
        arguments.push_str(piece);
        push_delta(
            out,
            *index,
            &json!({"type": "input_json_delta", "partial_json": piece}),
        );
        Ok(())
    }

    /// Opens the next content block; returns its index.
    fn start(&mut self, out: &mut Vec<u8>, block: &Value) -> u64 {
        let index = self.next_index;
        self.next_index += 1;
        push(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    /// Closes the open block; a tool call's arguments must be a JSON object by now.
    fn close(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let index = match self.open.take() {
            None => return Ok(()),
            Some(Open::Text { index }) => index,
            Some(Open::Tool {
                index,
                call,
                name,
                arguments,
            }) => {
                parse_input(&arguments).map_err(|e| format!("tool call {call} (`{name}`): {e}"))?;
                index
            }
        };
        push(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
        Ok(())
    }

    /// The backend is done: `message_delta` and `message_stop`, if it finished.
    fn end(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        let Some((stop, sequence)) = self.stop.take() else {
            return self.fail(
                "the backend's stream ended without a finish_reason".into(),
                out,
            );
        };
        let mut usage = json!({"output_tokens": self.output_tokens.unwrap_or(0)});
        if let Some(n) = self.input_tokens {
            usage["input_tokens"] = json!(n);
        }
        push(
            out,
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": sequence}, "usage": usage}),
        );
        push(out, "message_stop", &json!({"type": "message_stop"}));
        self.ended = true;
    }

    fn fail(&mut self, why: String, out: &mut Vec<u8>) {
        let message = format!("the local model's reply cannot be translated: {why}");
        self.fail_with(why, &message, out);
    }

    /// Ends the stream with an `error` event saying `message`; `why` is for the audit.
    fn fail_with(&mut self, why: String, message: &str, out: &mut Vec<u8>) {
        push(
            out,
            "error",
            &json!({"type": "error", "error": {"type": "api_error",
                "message": format!("NemoClaw router: {message}")}}),
        );
        self.failure = Some(why);
        self.ended = true;
    }
}

/// Appends one SSE event.
fn push(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(format!("event: {name}\ndata: {data}\n\n").as_bytes());
}

/// A `content_block_delta` event carrying `delta` for the block at `index`.
fn push_delta(out: &mut Vec<u8>, index: u64, delta: &Value) {
    push(
        out,
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    );
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
