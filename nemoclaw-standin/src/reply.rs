//! What an endpoint replies under the request's [`Behaviour`]: the fixed text, an echo of
//! the request's text (with injected values under `inject`), or an `echo` tool call; and the
//! request's text itself, extracted by one function per API.

use serde_json::{Map, Value, json};

use crate::router::{Call, output_tokens};
use crate::{Behaviour, INJECTED_CARD, INJECTED_EMAIL};

/// The characters per streamed text delta of the fixed reply.
const FIXED_DELTA_CHARS: usize = 8;

/// The characters per streamed text delta of the `echo` and `inject` replies: one, so a
/// consumer must reassemble text split anywhere.
const ECHO_DELTA_CHARS: usize = 1;

/// The most bytes per streamed piece of tool-call arguments (a longer character is sent
/// whole).
pub(crate) const ARGUMENT_BYTES: usize = 3;

/// The name of the tool the `echo-tool` model calls.
pub(crate) const TOOL_NAME: &str = "echo";

/// The fixed reply text of an endpoint: names the endpoint and the model, never the request.
fn fixed_text(endpoint: &str, model: &str) -> String {
    format!("Hello from the cloud stand-in ({endpoint}, model {model}).")
}

/// The reply of one request, before it is put in an API's shape.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    /// A text, streamed `delta_chars` characters per event.
    Text { text: String, delta_chars: usize },
    /// One call of the tool [`TOOL_NAME`]: its input object and that object as the
    /// arguments JSON string.
    Tool { input: Value, arguments: String },
}

impl Reply {
    /// The reply to `call` at `endpoint` (named in the fixed text), with `said` extracting
    /// the request's text when the behaviour echoes it.
    pub fn new(call: &Call, endpoint: &str, said: fn(&Map<String, Value>) -> Said) -> Self {
        match call.behaviour {
            Behaviour::Fixed => Self::Text {
                text: fixed_text(endpoint, &call.model),
                delta_chars: FIXED_DELTA_CHARS,
            },
            Behaviour::Echo => Self::Text {
                text: format!("You said: {}", said(&call.json).text()),
                delta_chars: ECHO_DELTA_CHARS,
            },
            Behaviour::Inject => Self::Text {
                text: format!(
                    "You said: {}. Also contact {INJECTED_EMAIL} or card {INJECTED_CARD}.",
                    said(&call.json).text()
                ),
                delta_chars: ECHO_DELTA_CHARS,
            },
            Behaviour::EchoTool => {
                let input = json!({"text": said(&call.json).text()});
                let arguments = input.to_string();
                Self::Tool { input, arguments }
            }
        }
    }

    /// The output token count: of the text, or of the arguments JSON.
    pub fn output_tokens(&self) -> u64 {
        match self {
            Self::Text { text, .. } => output_tokens(text),
            Self::Tool { arguments, .. } => output_tokens(arguments),
        }
    }
}

/// What a request said: the text of its last message or input, and its system text if it
/// has any.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Said {
    pub last: String,
    pub system: Option<String>,
}

impl Said {
    /// The echoed text: the last message's, then ` | system: ` and the system text if any.
    pub fn text(&self) -> String {
        match &self.system {
            Some(system) => format!("{} | system: {system}", self.last),
            None => self.last.clone(),
        }
    }
}

/// `OpenAI` chat completions: the last message's `content`; the `system` (and `developer`)
/// messages' content, joined with `\n`.
pub(crate) fn chat_said(json: &Map<String, Value>) -> Said {
    let messages = json
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let last = messages
        .last()
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let system: Vec<String> = messages
        .iter()
        .filter(|m| {
            matches!(
                m.get("role").and_then(Value::as_str),
                Some("system" | "developer")
            )
        })
        .map(|m| content_text(m.get("content")))
        .collect();
    Said {
        last,
        system: (!system.is_empty()).then(|| system.join("\n")),
    }
}

/// Anthropic messages: the last message's content (its `text` blocks and its `tool_result`
/// blocks' content); `system` (a string or text blocks).
pub(crate) fn messages_said(json: &Map<String, Value>) -> Said {
    let last = json
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    Said {
        last,
        system: present(json.get("system")).map(|s| content_text(Some(s))),
    }
}

/// `OpenAI` responses: `input` if a string, else the last input item's `content` (or a
/// `function_call_output`'s `output`); `instructions`.
pub(crate) fn responses_said(json: &Map<String, Value>) -> Said {
    let last = match json.get("input") {
        Some(Value::String(input)) => input.clone(),
        Some(Value::Array(items)) => items
            .last()
            .map(|item| {
                if item.get("type").and_then(Value::as_str) == Some("function_call_output") {
                    content_text(item.get("output"))
                } else {
                    content_text(item.get("content"))
                }
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    Said {
        last,
        system: present(json.get("instructions")).map(|s| content_text(Some(s))),
    }
}

/// A field that is there and not `null`.
fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

/// The text of a content value of any of the APIs: a string, or the parts' `text` (and a
/// `tool_result` block's content), joined with `\n`.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| {
                if part.get("type").and_then(Value::as_str) == Some("tool_result") {
                    Some(content_text(part.get("content")))
                } else {
                    part.get("text").and_then(Value::as_str).map(str::to_owned)
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn chat_last_message_parts_and_system() {
        let said = chat_said(&object(json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
            {"role": "user", "content": "first"},
            {"role": "user", "content": [
                {"type": "text", "text": "a"},
                {"type": "image_url", "image_url": {"url": "x"}},
                {"type": "text", "text": "b"},
            ]},
        ]})));
        assert_eq!(said.last, "a\nb");
        assert_eq!(said.text(), "a\nb | system: be brief\nand kind");
        let said = chat_said(&object(
            json!({"messages": [{"role": "tool", "tool_call_id": "c", "content": "42"}]}),
        ));
        assert_eq!(said.text(), "42");
        assert_eq!(chat_said(&object(json!({}))), Said::default());
    }

    #[test]
    fn messages_text_and_tool_result_blocks_and_system() {
        let said = messages_said(&object(json!({
            "system": [{"type": "text", "text": "sys1"}, {"type": "text", "text": "sys2"}],
            "messages": [
                {"role": "user", "content": "earlier"},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "plain"},
                    {"type": "tool_result", "tool_use_id": "t2",
                     "content": [{"type": "text", "text": "nested"}]},
                    {"type": "text", "text": "after"},
                ]},
            ],
        })));
        assert_eq!(said.text(), "plain\nnested\nafter | system: sys1\nsys2");
        let said = messages_said(&object(json!({
            "system": "s", "messages": [{"role": "user", "content": "hi"}],
        })));
        assert_eq!(said.text(), "hi | system: s");
    }

    #[test]
    fn responses_input_items_and_instructions() {
        let said = responses_said(&object(json!({"input": "hi", "instructions": "inst"})));
        assert_eq!(said.text(), "hi | system: inst");
        let said = responses_said(&object(json!({"input": [
            {"role": "user", "content": "old"},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "x"}, {"type": "input_text", "text": "y"}]},
        ]})));
        assert_eq!(said.text(), "x\ny");
        let said = responses_said(&object(json!({"input": [
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "result"},
        ], "instructions": null})));
        assert_eq!(said.text(), "result");
    }
}
