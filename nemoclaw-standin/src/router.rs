//! One request: read and record it, route it, check its credentials, answer it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use crate::body::{self, Pacing, ResponseBody};
use crate::record::Entry;
use crate::{Behaviour, Fault, MAX_BODY, State, anthropic, openai};

/// Which provider's conventions (errors, headers) a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    OpenAi,
    Anthropic,
}

/// The endpoints served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Models,
    Post(Post),
}

/// The endpoints that take a JSON body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Post {
    ChatCompletions,
    Responses,
    Embeddings,
    Messages,
    CountTokens,
}

/// A parsed POST request, what the endpoint functions build their answer from.
#[derive(Debug)]
pub(crate) struct Call {
    /// The JSON object of the body.
    pub json: Map<String, Value>,
    /// The `model` field.
    pub model: String,
    /// The `stream` field.
    pub stream: bool,
    /// The reply the model asks for.
    pub behaviour: Behaviour,
    /// The request's sequence number, for ids.
    pub n: u64,
    /// Seconds since the epoch.
    pub now: u64,
    /// The raw body length, for token counts.
    pub body_len: usize,
}

impl Call {
    /// An id such as `chatcmpl-standin00000001`.
    pub fn id(&self, prefix: &str) -> String {
        format!("{prefix}standin{:08}", self.n)
    }

    /// The input token count: a fixed function of the body length.
    pub fn input_tokens(&self) -> u64 {
        (self.body_len as u64).div_ceil(4).max(1)
    }
}

/// What an endpoint answers.
pub(crate) enum Output {
    Json(Value),
    /// SSE events, already framed.
    Stream(Vec<Bytes>),
}

/// The output token count of a reply text.
pub(crate) fn output_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, incoming) = req.into_parts();
    let n = state.counter.fetch_add(1, Ordering::Relaxed) + 1;
    let path = parts.uri.path().to_owned();
    let flavour = flavour_of(&path, &parts.headers);
    let collected = Limited::new(incoming, MAX_BODY).collect().await;
    let (body, too_large) = match collected {
        Ok(c) => (Some(c.to_bytes()), false),
        Err(err) => (
            None,
            err.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some(),
        ),
    };
    if body.is_some() || too_large {
        let entry = Entry {
            method: parts.method.as_str(),
            path: &path,
            query: parts.uri.query(),
            headers: &parts.headers,
            body: body.as_deref(),
        };
        if let Err(err) = state.recorder.record(&entry) {
            eprintln!("nemoclaw-standin: recording failed: {err:#}");
        }
    }
    let Some(body) = body else {
        let (status, message) = if too_large {
            (StatusCode::PAYLOAD_TOO_LARGE, "Request body too large.")
        } else {
            (
                StatusCode::BAD_REQUEST,
                "The request body could not be read.",
            )
        };
        return Ok(error(flavour, status, "invalid_request_error", message, n));
    };
    Ok(answer(
        &state,
        &parts.method,
        &path,
        &parts.headers,
        &body,
        flavour,
        n,
    )
    .await)
}

async fn answer(
    state: &State,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    flavour: Flavour,
    n: u64,
) -> Response<ResponseBody> {
    let endpoint = match route(method, path) {
        Ok(endpoint) => endpoint,
        Err(status) => {
            let message = match flavour {
                Flavour::OpenAi => format!("Invalid URL ({method} {path})"),
                Flavour::Anthropic => "Not Found".to_owned(),
            };
            return error(flavour, status, "not_found_error", &message, n);
        }
    };
    if let Some(response) = check_auth(flavour, headers, n) {
        return response;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let Endpoint::Post(endpoint) = endpoint else {
        let list = match flavour {
            Flavour::OpenAi => openai::models(now),
            Flavour::Anthropic => anthropic::models(),
        };
        return json_response(flavour, StatusCode::OK, &list, n);
    };
    let Ok(Value::Object(json)) = serde_json::from_slice::<Value>(body) else {
        let message = match flavour {
            Flavour::OpenAi => {
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
            }
            Flavour::Anthropic => "There was an error parsing the body of your request as JSON.",
        };
        return error(
            flavour,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message,
            n,
        );
    };
    let Some(model) = json.get("model").and_then(Value::as_str).map(str::to_owned) else {
        let message = match flavour {
            Flavour::OpenAi => "you must provide a model parameter",
            Flavour::Anthropic => "model: Field required",
        };
        return error(
            flavour,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message,
            n,
        );
    };
    let stream = json.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let fault = Fault::from_model(&model);
    match fault {
        Some(Fault::Hang) => std::future::pending::<()>().await,
        Some(Fault::Fail500) => {
            let message = match flavour {
                Flavour::OpenAi => {
                    "The server had an error while processing your request. Sorry about that!"
                }
                Flavour::Anthropic => "Internal server error",
            };
            return error(
                flavour,
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                message,
                n,
            );
        }
        _ => {}
    }
    let behaviour = Behaviour::from_model(&model);
    let call = Call {
        json,
        model,
        stream,
        behaviour,
        n,
        now,
        body_len: body.len(),
    };
    let output = match endpoint {
        Post::ChatCompletions => openai::chat_completions(&call),
        Post::Responses => openai::responses(&call),
        Post::Embeddings => openai::embeddings(&call),
        Post::Messages => anthropic::messages(&call),
        Post::CountTokens => anthropic::count_tokens(&call),
    };
    let pacing = Pacing {
        interval: if fault == Some(Fault::Slow) {
            state.slow_interval
        } else {
            Duration::default()
        },
        cut_after: (fault == Some(Fault::Cut)).then_some(2),
    };
    deliver(flavour, output, pacing, fault.is_some(), n)
}

fn route(method: &Method, path: &str) -> Result<Endpoint, StatusCode> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let (endpoint, allowed) = match path {
        "/v1/models" => (Endpoint::Models, Method::GET),
        "/v1/chat/completions" => (Endpoint::Post(Post::ChatCompletions), Method::POST),
        "/v1/responses" => (Endpoint::Post(Post::Responses), Method::POST),
        "/v1/embeddings" => (Endpoint::Post(Post::Embeddings), Method::POST),
        "/v1/messages" => (Endpoint::Post(Post::Messages), Method::POST),
        "/v1/messages/count_tokens" => (Endpoint::Post(Post::CountTokens), Method::POST),
        _ => return Err(StatusCode::NOT_FOUND),
    };
    if *method == allowed {
        Ok(endpoint)
    } else {
        Err(StatusCode::METHOD_NOT_ALLOWED)
    }
}

/// Anthropic for `/v1/messages*` and for any request with Anthropic's headers.
fn flavour_of(path: &str, headers: &HeaderMap) -> Flavour {
    if path.starts_with("/v1/messages")
        || headers.contains_key("x-api-key")
        || headers.contains_key("anthropic-version")
    {
        Flavour::Anthropic
    } else {
        Flavour::OpenAi
    }
}

/// `OpenAI`: a non-empty `authorization: Bearer` key. Anthropic: `x-api-key` or
/// `authorization: Bearer` (the `anthropic` SDK 2.x sends its key that way), then
/// `anthropic-version`. Any value is accepted (the record keeps it for the tests).
fn check_auth(flavour: Flavour, headers: &HeaderMap, n: u64) -> Option<Response<ResponseBody>> {
    let present = |name: &str| headers.get(name).is_some_and(|v| !v.is_empty());
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .is_some_and(|key| !key.trim().is_empty());
    match flavour {
        Flavour::OpenAi => {
            (!bearer).then(|| {
                error(
                    flavour,
                    StatusCode::UNAUTHORIZED,
                    "invalid_request_error",
                    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    n,
                )
            })
        }
        Flavour::Anthropic if !present("x-api-key") && !bearer => Some(error(
            flavour,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
            n,
        )),
        Flavour::Anthropic if !present("anthropic-version") => Some(error(
            flavour,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "anthropic-version: header is required",
            n,
        )),
        Flavour::Anthropic => None,
    }
}

/// The provider's error shape. `kind` is Anthropic's error type; `OpenAI` gets
/// `invalid_request_error` except for 5xx (`server_error`).
pub(crate) fn error(
    flavour: Flavour,
    status: StatusCode,
    kind: &str,
    message: &str,
    n: u64,
) -> Response<ResponseBody> {
    let value = match flavour {
        Flavour::OpenAi => {
            let kind = if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            };
            serde_json::json!({
                "error": {"message": message, "type": kind, "param": null, "code": null}
            })
        }
        Flavour::Anthropic => {
            let kind = match kind {
                "server_error" => "api_error",
                other => other,
            };
            serde_json::json!({
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": format!("req_standin{n:08}"),
            })
        }
    };
    json_response(flavour, status, &value, n)
}

fn json_response(
    flavour: Flavour,
    status: StatusCode,
    value: &Value,
    n: u64,
) -> Response<ResponseBody> {
    respond(
        flavour,
        status,
        "application/json",
        body::full(value.to_string()),
        n,
    )
}

fn respond(
    flavour: Flavour,
    status: StatusCode,
    content_type: &'static str,
    body: ResponseBody,
    n: u64,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let id_header = match flavour {
        Flavour::OpenAi => "x-request-id",
        Flavour::Anthropic => "request-id",
    };
    if let Ok(value) = HeaderValue::from_str(&format!("req_standin{n:08}")) {
        headers.insert(id_header, value);
    }
    response
}

/// Sends the output: whole, or paced in parts when streaming or under a fault.
fn deliver(
    flavour: Flavour,
    output: Output,
    pacing: Pacing,
    faulty: bool,
    n: u64,
) -> Response<ResponseBody> {
    match output {
        Output::Json(value) if !faulty => json_response(flavour, StatusCode::OK, &value, n),
        Output::Json(value) => {
            let parts = body::split_bytes(&Bytes::from(value.to_string()), 3);
            respond(
                flavour,
                StatusCode::OK,
                "application/json",
                body::paced(parts, pacing),
                n,
            )
        }
        Output::Stream(events) => {
            let content_type = match flavour {
                Flavour::OpenAi => "text/event-stream; charset=utf-8",
                Flavour::Anthropic => "text/event-stream",
            };
            respond(
                flavour,
                StatusCode::OK,
                content_type,
                body::paced(events, pacing),
                n,
            )
        }
    }
}
