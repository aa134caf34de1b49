//! The Anthropic answers: messages (whole and streamed), token counts, models, in the wire
//! formats the `anthropic` SDK parses.

use serde_json::{Value, json};

use crate::body::{byte_pieces, pieces, sse_event};
use crate::reply::{ARGUMENT_BYTES, Reply, TOOL_NAME, messages_said};
use crate::router::{Call, Output};

/// The models `GET /v1/models` lists with Anthropic headers.
const MODELS: [(&str, &str); 2] = [
    ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
    ("claude-3-5-haiku-latest", "Claude Haiku 3.5"),
];

pub(crate) fn models() -> Value {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, name)| {
            json!({"type": "model", "id": id, "display_name": name, "created_at": "2025-01-01T00:00:00Z"})
        })
        .collect();
    json!({
        "data": data,
        "has_more": false,
        "first_id": MODELS[0].0,
        "last_id": MODELS[MODELS.len() - 1].0,
    })
}

pub(crate) fn count_tokens(call: &Call) -> Output {
    Output::Json(json!({"input_tokens": call.input_tokens()}))
}

pub(crate) fn messages(call: &Call) -> Output {
    let reply = Reply::new(call, "anthropic messages", messages_said);
    let id = call.id("msg_");
    let tool_id = call.id("toolu_");
    let input_tokens = call.input_tokens();
    let output_tokens = reply.output_tokens();
    let stop_reason = match reply {
        Reply::Text { .. } => "end_turn",
        Reply::Tool { .. } => "tool_use",
    };
    let usage = |output_tokens: u64| {
        json!({
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        })
    };
    let message = |content: Value, stop_reason: Value, usage: Value| {
        json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage,
        })
    };
    if !call.stream {
        let block = match &reply {
            Reply::Text { text, .. } => json!({"type": "text", "text": text}),
            Reply::Tool { input, .. } => {
                json!({"type": "tool_use", "id": tool_id, "name": TOOL_NAME, "input": input})
            }
        };
        return Output::Json(message(
            json!([block]),
            json!(stop_reason),
            usage(output_tokens),
        ));
    }
    // The block as it starts, and its deltas.
    let (start, deltas): (Value, Vec<Value>) = match &reply {
        Reply::Text { text, delta_chars } => (
            json!({"type": "text", "text": ""}),
            pieces(text, *delta_chars)
                .into_iter()
                .map(|piece| json!({"type": "text_delta", "text": piece}))
                .collect(),
        ),
        Reply::Tool { arguments, .. } => (
            json!({"type": "tool_use", "id": tool_id, "name": TOOL_NAME, "input": {}}),
            byte_pieces(arguments, ARGUMENT_BYTES)
                .into_iter()
                .map(|piece| json!({"type": "input_json_delta", "partial_json": piece}))
                .collect(),
        ),
    };
    let mut events = vec![
        sse_event(
            "message_start",
            &json!({"type": "message_start", "message": message(json!([]), Value::Null, usage(1))}),
        ),
        sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": start}),
        ),
        sse_event("ping", &json!({"type": "ping"})),
    ];
    for delta in deltas {
        events.push(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
    }
    events.push(sse_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(sse_event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": output_tokens},
        }),
    ));
    events.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    Output::Stream(events)
}
