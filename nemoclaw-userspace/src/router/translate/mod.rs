//! Anthropic's Messages API served by an OpenAI-compatible local backend: a `/v1/messages`
//! request whose decision is `local` is translated to a chat completion (`request`), and the
//! backend's reply back to an Anthropic message, whole (`message`) or as Anthropic's SSE
//! events, chunk by chunk as they arrive (`stream`). Pure functions over JSON values and
//! bytes, no I/O. What cannot be translated faithfully (images, documents, extended
//! thinking, server tools, unknown request fields) is refused with a 422 naming it, never
//! dropped; a reply that cannot be translated (a tool call whose arguments are not a JSON
//! object, a stream that ends without a finish) is an error to the caller, never a guess.

pub mod message;
pub mod request;
pub mod stream;

use hyper::StatusCode;
use serde_json::{Value, json};

use super::error::{RouterError, anthropic_type};

/// The caller's body for the backend's whole reply (`status`, `body`) to a translated
/// request for `model` with the stop sequences `stops`: the Anthropic message, or the
/// backend's error in Anthropic's shape.
pub fn whole_reply(
    status: StatusCode,
    backend: &str,
    body: &[u8],
    model: &str,
    stops: &[String],
) -> Result<Vec<u8>, RouterError> {
    if !status.is_success() {
        return Ok(error_body(status, backend, body));
    }
    let message = message::message(body, model, stops).map_err(|message| {
        RouterError::ReplyNotTranslatable {
            backend: backend.to_owned(),
            message,
        }
    })?;
    serde_json::to_vec(&message).map_err(|e| RouterError::Internal(e.to_string()))
}

/// Anthropic's `stop_reason` (and `stop_sequence`) for an OpenAI choice's `finish_reason`.
/// OpenAI's API does not say which stop sequence ended a reply: a string `stop_reason` in
/// the choice (vLLM's extension) that is one of the request's `stop_sequences` is taken
/// as it; otherwise a stop is `end_turn`. A finish with tool calls is `tool_use` whatever
/// the backend called it.
#[must_use]
pub fn stop_reason(
    finish: &str,
    matched: Option<&str>,
    stops: &[String],
    tool_calls: bool,
) -> (&'static str, Option<String>) {
    match finish {
        "length" => ("max_tokens", None),
        "content_filter" => ("refusal", None),
        _ if tool_calls || finish == "tool_calls" || finish == "function_call" => {
            ("tool_use", None)
        }
        _ => match matched.filter(|m| stops.iter().any(|s| s == m)) {
            Some(sequence) => ("stop_sequence", Some(sequence.to_owned())),
            None => ("end_turn", None),
        },
    }
}

/// An Anthropic message id for the backend's completion id (`msg_` and the id, kept so
/// the local server's logs can be matched), or a fresh one.
#[must_use]
pub fn message_id(upstream: Option<&str>) -> String {
    if let Some(id) = upstream.filter(|id| !id.is_empty()) {
        return format!("msg_{id}");
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("msg_nemoclaw_{nanos:x}")
}

/// The Anthropic error body for a backend's error reply (`status`, OpenAI's error shape or
/// any text): the backend's message, under the type Anthropic's SDKs map the status to.
#[must_use]
pub fn error_body(status: StatusCode, backend: &str, body: &[u8]) -> Vec<u8> {
    let detail = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            let message = v.pointer("/error/message").or_else(|| v.get("message"))?;
            message.as_str().map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let message = format!(
        "NemoClaw router: the local backend `{backend}` answered {}: {detail}",
        status.as_u16()
    );
    json!({"type": "error", "error": {"type": anthropic_type(status), "message": message}})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        let stops = vec!["END".to_owned()];
        assert_eq!(stop_reason("stop", None, &stops, false), ("end_turn", None));
        assert_eq!(
            stop_reason("length", None, &stops, false),
            ("max_tokens", None)
        );
        assert_eq!(
            stop_reason("tool_calls", None, &stops, true),
            ("tool_use", None)
        );
        // Some servers finish a tool call with `stop`.
        assert_eq!(stop_reason("stop", None, &stops, true), ("tool_use", None));
        assert_eq!(
            stop_reason("stop", Some("END"), &stops, false),
            ("stop_sequence", Some("END".into()))
        );
        // A matched string the request did not ask for is no stop sequence.
        assert_eq!(
            stop_reason("stop", Some("</s>"), &stops, false),
            ("end_turn", None)
        );
    }

    #[test]
    fn backend_errors_take_anthropics_shape() {
        let body = br#"{"error":{"message":"Requested tokens (9000) exceed context window of 2048","type":"invalid_request_error"}}"#;
        let v: Value =
            serde_json::from_slice(&error_body(StatusCode::BAD_REQUEST, "llama", body)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("`llama` answered 400"), "{message}");
        assert!(message.contains("exceed context window"), "{message}");
        let v: Value = serde_json::from_slice(&error_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "llama",
            b"boom\n",
        ))
        .unwrap();
        assert_eq!(v["error"]["type"], "api_error");
        assert!(v["error"]["message"].as_str().unwrap().ends_with(": boom"));
    }

    #[test]
    fn message_ids_keep_the_backends() {
        assert_eq!(message_id(Some("chatcmpl-7")), "msg_chatcmpl-7");
        assert!(message_id(None).starts_with("msg_nemoclaw_"));
        assert!(message_id(Some("")).starts_with("msg_nemoclaw_"));
    }
}
