//! The `OpenAI` (and OpenAI-compatible) answers: models, chat completions, responses,
//! embeddings, in the wire formats the `openai` SDK parses.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::body::{byte_pieces, pieces, sse_data, sse_event};
use crate::reply::{ARGUMENT_BYTES, Reply, TOOL_NAME, chat_said, responses_said};
use crate::router::{Call, Output};

/// The models `GET /v1/models` lists.
const MODELS: [&str; 4] = [
    "gpt-4o-mini",
    "gpt-4o",
    "text-embedding-3-small",
    "meta/llama-3.1-8b-instruct",
];

pub(crate) fn models(now: u64) -> Value {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": now, "owned_by": "nemoclaw-standin"}))
        .collect();
    json!({"object": "list", "data": data})
}

pub(crate) fn chat_completions(call: &Call) -> Output {
    let reply = Reply::new(call, "openai chat.completions", chat_said);
    let id = call.id("chatcmpl-");
    let call_id = call.id("call_");
    let prompt_tokens = call.input_tokens();
    let completion_tokens = reply.output_tokens();
    let finish_reason = match reply {
        Reply::Text { .. } => "stop",
        Reply::Tool { .. } => "tool_calls",
    };
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    });
    if !call.stream {
        return Output::Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": call.now,
            "model": call.model,
            "choices": [{
                "index": 0,
                "message": chat_message(&reply, &call_id),
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": null,
        }));
    }
    let include_usage = call
        .json
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let chunk = |choices: Value| {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": call.now,
            "model": call.model,
            "service_tier": "default",
            "system_fingerprint": null,
            "choices": choices,
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    let (first, deltas) = chat_deltas(&reply, &call_id);
    let mut events = vec![sse_data(&chunk(choice(first, Value::Null)))];
    for delta in deltas {
        events.push(sse_data(&chunk(choice(delta, Value::Null))));
    }
    events.push(sse_data(&chunk(choice(json!({}), json!(finish_reason)))));
    if include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = usage;
        events.push(sse_data(&last));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Output::Stream(events)
}

/// The assistant message of a whole chat completion.
fn chat_message(reply: &Reply, call_id: &str) -> Value {
    match reply {
        Reply::Text { text, .. } => {
            json!({"role": "assistant", "content": text, "refusal": null, "annotations": []})
        }
        Reply::Tool { arguments, .. } => json!({
            "role": "assistant",
            "content": null,
            "refusal": null,
            "annotations": [],
            "tool_calls": [{
                "id": call_id,
                "type": "function",
                "function": {"name": TOOL_NAME, "arguments": arguments},
            }],
        }),
    }
}

/// The first delta of a streamed chat completion (the role, and the tool call's id and
/// name), then the deltas of the text or of the arguments.
fn chat_deltas(reply: &Reply, call_id: &str) -> (Value, Vec<Value>) {
    match reply {
        Reply::Text { text, delta_chars } => (
            json!({"role": "assistant", "content": "", "refusal": null}),
            pieces(text, *delta_chars)
                .into_iter()
                .map(|piece| json!({"content": piece}))
                .collect(),
        ),
        Reply::Tool { arguments, .. } => (
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "index": 0,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": TOOL_NAME, "arguments": ""},
                }],
                "refusal": null,
            }),
            byte_pieces(arguments, ARGUMENT_BYTES)
                .into_iter()
                .map(
                    |piece| json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                )
                .collect(),
        ),
    }
}

pub(crate) fn responses(call: &Call) -> Output {
    let reply = Reply::new(call, "openai responses", responses_said);
    let resp_id = call.id("resp_");
    let input_tokens = call.input_tokens();
    let output_tokens = reply.output_tokens();
    let response = |status: &str, output: Value, usage: Value| {
        response_object(call, &resp_id, status, &output, &usage)
    };
    let usage = json!({
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    });
    let (item_id, started_item, done_item) = output_item(call, &reply);
    let completed = response("completed", json!([done_item]), usage);
    if !call.stream {
        return Output::Json(completed);
    }
    let mut seq = 0u64;
    let mut events = Vec::new();
    let mut push = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        events.push(sse_event(kind, &data));
    };
    let started = response("in_progress", json!([]), Value::Null);
    push("response.created", json!({"response": started}));
    push("response.in_progress", json!({"response": started}));
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": started_item}),
    );
    match &reply {
        Reply::Text { text, delta_chars } => {
            let at = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
            let with = |extra: Value| {
                let mut data = at.clone();
                if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
                    data.extend(extra);
                }
                data
            };
            push(
                "response.content_part.added",
                with(json!({"part": output_text("")})),
            );
            for piece in pieces(text, *delta_chars) {
                push(
                    "response.output_text.delta",
                    with(json!({"delta": piece, "logprobs": []})),
                );
            }
            push(
                "response.output_text.done",
                with(json!({"text": text, "logprobs": []})),
            );
            push(
                "response.content_part.done",
                with(json!({"part": output_text(text)})),
            );
        }
        Reply::Tool { arguments, .. } => {
            for piece in byte_pieces(arguments, ARGUMENT_BYTES) {
                push(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": 0, "delta": piece}),
                );
            }
            push(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": 0, "name": TOOL_NAME, "arguments": arguments}),
            );
        }
    }
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": done_item}),
    );
    push("response.completed", json!({"response": completed}));
    Output::Stream(events)
}

/// A response object.
fn response_object(call: &Call, id: &str, status: &str, output: &Value, usage: &Value) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": call.now,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": call.json.get("instructions").cloned().unwrap_or(Value::Null),
        "max_output_tokens": call.json.get("max_output_tokens").cloned().unwrap_or(Value::Null),
        "model": call.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "service_tier": "default",
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": {},
    })
}

/// The response's one output item, a message with one text part or a function call: its
/// id, the item as it starts (in progress, empty) and as it ends (completed).
fn output_item(call: &Call, reply: &Reply) -> (String, Value, Value) {
    match reply {
        Reply::Text { text, .. } => {
            let msg_id = call.id("msg_");
            let message = |status: &str, content: Value| json!({"id": msg_id, "type": "message", "status": status, "role": "assistant", "content": content});
            let started = message("in_progress", json!([]));
            let done = message("completed", json!([output_text(text)]));
            (msg_id, started, done)
        }
        Reply::Tool { arguments, .. } => {
            let fc_id = call.id("fc_");
            let call_id = call.id("call_");
            let function_call = |status: &str, arguments: &str| json!({"id": fc_id, "type": "function_call", "status": status, "arguments": arguments, "call_id": call_id, "name": TOOL_NAME});
            let started = function_call("in_progress", "");
            let done = function_call("completed", arguments);
            (fc_id, started, done)
        }
    }
}

/// A responses `output_text` content part.
fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

/// The number of inputs: a string or a token array is one, an array of those is many.
fn input_count(input: Option<&Value>) -> usize {
    match input {
        Some(Value::Array(items)) if items.first().is_some_and(Value::is_number) => 1,
        Some(Value::Array(items)) => items.len(),
        _ => 1,
    }
}

/// The default embedding width; `dimensions` (up to 4096) overrides it.
const DEFAULT_DIMENSIONS: usize = 16;

pub(crate) fn embeddings(call: &Call) -> Output {
    let count = input_count(call.json.get("input"));
    let dims = call
        .json
        .get("dimensions")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_DIMENSIONS, |d| (d as usize).clamp(1, 4096));
    let base64 = call.json.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = (0..count)
        .map(|index| {
            let vector = vector(index, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = call.input_tokens();
    Output::Json(json!({
        "object": "list",
        "data": data,
        "model": call.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

/// A fixed unit-ish vector per input index.
fn vector(index: usize, dims: usize) -> Vec<f32> {
    (0..dims)
        .map(|j| {
            let v = f32::from(((index * 31 + j * 7) % 97) as u8) / 97.0;
            v - 0.5
        })
        .collect()
}
