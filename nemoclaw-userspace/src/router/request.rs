//! What a request is: its route (which inference API), and one internal view of every text
//! field it carries, whatever the API's shape. The pipeline scans the view, never the raw
//! bytes, and an unknown shape is refused here, before anything is forwarded.

use serde_json::Value;

use super::config::Api;
use super::error::RouterError;

/// The inference APIs the router serves; anything else is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Route {
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST /v1/responses`.
    Responses,
    /// OpenAI `POST /v1/embeddings`.
    Embeddings,
    /// OpenAI `GET /v1/models` (answered by the router: the models this sandbox may use).
    Models,
    /// Anthropic `POST /v1/messages`.
    Messages,
}

impl Route {
    /// The route for a method and path (query ignored), if the router serves it.
    #[must_use]
    pub fn of(method: &hyper::Method, path: &str) -> Option<Route> {
        let path = path.trim_end_matches('/');
        match (method.as_str(), path) {
            ("POST", "/v1/chat/completions") => Some(Route::ChatCompletions),
            ("POST", "/v1/responses") => Some(Route::Responses),
            ("POST", "/v1/embeddings") => Some(Route::Embeddings),
            ("GET", "/v1/models") => Some(Route::Models),
            ("POST", "/v1/messages") => Some(Route::Messages),
            _ => None,
        }
    }

    /// The API family a backend must speak to serve it.
    #[must_use]
    pub fn api(self) -> Api {
        match self {
            Route::Messages => Api::Anthropic,
            _ => Api::Openai,
        }
    }

    /// The path appended to a backend's base URL (OpenAI-style base URLs end in `/v1`;
    /// Anthropic's is the host).
    #[must_use]
    pub fn upstream_path(self) -> &'static str {
        match self {
            Route::ChatCompletions => "/chat/completions",
            Route::Responses => "/responses",
            Route::Embeddings => "/embeddings",
            Route::Models => "/models",
            Route::Messages => "/v1/messages",
        }
    }

    /// As the audit log names it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Route::ChatCompletions => "/v1/chat/completions",
            Route::Responses => "/v1/responses",
            Route::Embeddings => "/v1/embeddings",
            Route::Models => "/v1/models",
            Route::Messages => "/v1/messages",
        }
    }
}

/// One piece of text in the request: where (a JSON pointer, `#key` appended for an object
/// key) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextField {
    pub pointer: String,
    pub text: String,
}

/// A parsed request body.
#[derive(Debug)]
pub struct InferenceRequest {
    pub route: Route,
    pub body: Value,
    pub model: String,
    pub stream: bool,
    /// Every string in the body (values and object keys), so nothing any shape carries,
    /// known field or not, escapes the scan.
    pub texts: Vec<TextField>,
}

/// Content parts whose payload is not text; inline payloads cannot be scanned.
const BINARY_PART_TYPES: [&str; 7] = [
    "image_url",
    "input_image",
    "input_audio",
    "input_file",
    "image",
    "document",
    "file",
];

impl InferenceRequest {
    /// Parses and checks a body for `route` (not `Models`, which has none).
    pub fn parse(route: Route, body: &[u8]) -> Result<InferenceRequest, RouterError> {
        let text = std::str::from_utf8(body).map_err(|e| {
            RouterError::BadRequest(format!(
                "the body is not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ))
        })?;
        let body: Value = serde_json::from_str(text).map_err(|e| {
            RouterError::BadRequest(format!(
                "the body is not valid JSON: {} at line {} column {}",
                classify(&e),
                e.line(),
                e.column()
            ))
        })?;
        let object = body
            .as_object()
            .ok_or_else(|| RouterError::BadRequest("the body must be a JSON object".into()))?;
        let model = match object.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(_) => return Err(RouterError::BadRequest("`model` must be a string".into())),
            None => return Err(RouterError::BadRequest("`model` is missing".into())),
        };
        let stream = match object.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RouterError::BadRequest("`stream` must be a boolean".into())),
        };
        let required = match route {
            Route::ChatCompletions | Route::Messages => "messages",
            Route::Responses | Route::Embeddings => "input",
            Route::Models => {
                return Err(RouterError::BadRequest("/v1/models takes no body".into()));
            }
        };
        match (route, object.get(required)) {
            (_, None) => {
                return Err(RouterError::BadRequest(format!("`{required}` is missing")));
            }
            (Route::ChatCompletions | Route::Messages, Some(Value::Array(m))) if !m.is_empty() => {}
            (Route::ChatCompletions | Route::Messages, Some(_)) => {
                return Err(RouterError::BadRequest(
                    "`messages` must be a non-empty array".into(),
                ));
            }
            (Route::Responses, Some(Value::String(_) | Value::Array(_))) => {}
            (Route::Embeddings, Some(input)) if embeddable(input) => {}
            (Route::Embeddings, Some(_)) => {
                return Err(RouterError::BadRequest(
                    "`input` must be a string or an array of strings (token arrays cannot be scanned)"
                        .into(),
                ));
            }
            (_, Some(_)) => {
                return Err(RouterError::BadRequest(format!(
                    "`{required}` must be a string or an array"
                )));
            }
        }
        if route == Route::Embeddings && stream {
            return Err(RouterError::BadRequest(
                "/v1/embeddings does not stream".into(),
            ));
        }
        let mut texts = Vec::new();
        collect(&body, &mut String::new(), &mut texts)?;
        Ok(InferenceRequest {
            route,
            body,
            model,
            stream,
            texts,
        })
    }
}

fn embeddable(input: &Value) -> bool {
    match input {
        Value::String(_) => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        _ => false,
    }
}

fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "it ends early",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    }
}

/// Appends every string under `value` to `out`, and refuses inline binary content (images,
/// audio, files given as data rather than as a URL): it cannot be scanned.
fn collect(
    value: &Value,
    pointer: &mut String,
    out: &mut Vec<TextField>,
) -> Result<(), RouterError> {
    match value {
        Value::String(s) => out.push(TextField {
            pointer: pointer.clone(),
            text: s.clone(),
        }),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                collect(item, pointer, out)?;
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            if let Some(Value::String(kind)) = map.get("type")
                && BINARY_PART_TYPES.contains(&kind.as_str())
                && carries_inline_data(map)
            {
                return Err(RouterError::Unscannable(format!(
                    "{pointer}: a `{kind}` part with inline data cannot be scanned for sensitive content; refused"
                )));
            }
            for (key, item) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape(key));
                out.push(TextField {
                    pointer: format!("{pointer}#key"),
                    text: key.clone(),
                });
                collect(item, pointer, out)?;
                pointer.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// A binary part carries its payload inline (base64 `data`, a `data:` URL, an uploaded
/// `file_data`), rather than by reference.
fn carries_inline_data(map: &serde_json::Map<String, Value>) -> bool {
    fn inline(v: &Value) -> bool {
        match v {
            Value::String(s) => s.starts_with("data:"),
            Value::Object(m) => {
                m.get("type").and_then(Value::as_str) == Some("base64")
                    || m.contains_key("data")
                    || m.get("url").is_some_and(inline)
            }
            _ => false,
        }
    }
    map.iter().any(|(k, v)| {
        matches!(k.as_str(), "data" | "file_data" | "input_audio") || (k != "type" && inline(v))
    })
}

/// JSON pointer escaping (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(route: Route, body: &str) -> Result<InferenceRequest, RouterError> {
        InferenceRequest::parse(route, body.as_bytes())
    }

    #[test]
    fn routes_are_exactly_the_served_apis() {
        use hyper::Method;
        assert_eq!(
            Route::of(&Method::POST, "/v1/chat/completions"),
            Some(Route::ChatCompletions)
        );
        assert_eq!(
            Route::of(&Method::POST, "/v1/messages/"),
            Some(Route::Messages)
        );
        assert_eq!(Route::of(&Method::GET, "/v1/models"), Some(Route::Models));
        assert_eq!(Route::of(&Method::GET, "/v1/chat/completions"), None);
        assert_eq!(Route::of(&Method::POST, "/v1/completions"), None);
        assert_eq!(Route::of(&Method::POST, "/v1/messages/count_tokens"), None);
    }

    #[test]
    fn every_string_is_in_the_view_wherever_the_shape_puts_it() {
        let r = parse(
            Route::ChatCompletions,
            r#"{"model":"m","stream":true,"messages":[
                {"role":"user","content":[{"type":"text","text":"part one"}]},
                {"role":"assistant","tool_calls":[{"id":"c1","type":"function",
                  "function":{"name":"f","arguments":"{\"q\":\"tool arg\"}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"tool result"}],
              "metadata":{"a/b":"meta value"},
              "unknown_future_field":{"deep":["hidden text"]}}"#,
        )
        .unwrap();
        assert!(r.stream);
        let find = |t: &str| {
            r.texts
                .iter()
                .find(|f| f.text == t)
                .map(|f| f.pointer.clone())
        };
        assert_eq!(find("part one").unwrap(), "/messages/0/content/0/text");
        assert_eq!(
            find("{\"q\":\"tool arg\"}").unwrap(),
            "/messages/1/tool_calls/0/function/arguments"
        );
        assert_eq!(find("tool result").unwrap(), "/messages/2/content");
        assert_eq!(find("meta value").unwrap(), "/metadata/a~1b");
        assert_eq!(find("a/b").unwrap(), "/metadata/a~1b#key");
        assert_eq!(find("hidden text").unwrap(), "/unknown_future_field/deep/0");
    }

    #[test]
    fn shapes_that_cannot_be_checked_are_refused() {
        let bad = |route, body: &str| parse(route, body).unwrap_err().to_string();
        assert!(bad(Route::ChatCompletions, "{").contains("ends early"));
        assert!(bad(Route::ChatCompletions, "[]").contains("JSON object"));
        assert!(bad(Route::ChatCompletions, r#"{"messages":[{}]}"#).contains("`model` is missing"));
        assert!(
            bad(Route::ChatCompletions, r#"{"model":"m","messages":[]}"#).contains("non-empty")
        );
        assert!(bad(Route::Messages, r#"{"model":"m"}"#).contains("`messages` is missing"));
        assert!(bad(Route::Responses, r#"{"model":"m","input":3}"#).contains("`input`"));
        assert!(
            bad(Route::Embeddings, r#"{"model":"m","input":[[1,2,3]]}"#).contains("token arrays")
        );
        assert!(
            bad(
                Route::ChatCompletions,
                r#"{"model":"m","stream":"yes","messages":[{}]}"#
            )
            .contains("`stream`")
        );
        let e =
            InferenceRequest::parse(Route::ChatCompletions, b"{\"model\":\"\xff\"}").unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[test]
    fn inline_images_are_refused_and_linked_ones_scanned() {
        let inline = r#"{"model":"m","messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}"#;
        let e = parse(Route::ChatCompletions, inline).unwrap_err();
        assert!(matches!(e, RouterError::Unscannable(_)), "{e}");
        let anthropic = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[
            {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}"#;
        assert!(parse(Route::Messages, anthropic).is_err());
        let linked = r#"{"model":"m","messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#;
        let r = parse(Route::ChatCompletions, linked).unwrap();
        assert!(
            r.texts
                .iter()
                .any(|t| t.text == "https://example.com/a.png")
        );
    }
}
