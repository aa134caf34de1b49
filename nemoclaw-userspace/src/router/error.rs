//! Why the router refuses or fails a request: a typed error with the HTTP status it maps to
//! and a body in the caller's API's own error shape, so SDKs raise their usual exceptions.
//! Messages name categories, kinds and places, never a detected value.

use hyper::StatusCode;
use serde_json::json;

use super::config::Api;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("{0}")]
    BadRequest(String),
    #[error("content type `{0}` is not accepted: send application/json")]
    MediaType(String),
    #[error("the request body is over the router's limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {secs} s")]
    SlowBody { secs: u64 },
    #[error(
        "{method} {path} is not served by the NemoClaw router (it serves POST /v1/chat/completions, /v1/responses, /v1/embeddings, /v1/messages and GET /v1/models)"
    )]
    NotFound { method: String, path: String },
    #[error("{0}")]
    Unscannable(String),
    #[error("{0}")]
    Unidentified(String),
    #[error("blocked by the sandbox's inference policy: {0}")]
    Blocked(String),
    #[error("{0}")]
    NotRoutable(String),
    /// An Anthropic request routed to an OpenAI-speaking local model that the translation
    /// cannot carry faithfully (an image, extended thinking ...).
    #[error("{0}")]
    NotTranslatable(String),
    /// The local model's reply could not be translated back to Anthropic's API.
    #[error("the {backend} backend's reply cannot be given as an Anthropic message: {message}")]
    ReplyNotTranslatable { backend: String, message: String },
    #[error("the policy directory is unavailable: {0}")]
    Directory(String),
    #[error("the {backend} backend failed: {message}")]
    Upstream { backend: String, message: String },
    #[error("the {backend} backend did not answer within {secs} s")]
    UpstreamTimeout { backend: String, secs: u64 },
    #[error("masking failed, nothing was sent: {0}")]
    Masking(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RouterError {
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            RouterError::BadRequest(_) | RouterError::Unscannable(_) => StatusCode::BAD_REQUEST,
            RouterError::MediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RouterError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RouterError::SlowBody { .. } => StatusCode::REQUEST_TIMEOUT,
            RouterError::NotFound { .. } => StatusCode::NOT_FOUND,
            RouterError::Unidentified(_) | RouterError::Blocked(_) => StatusCode::FORBIDDEN,
            RouterError::NotRoutable(_) | RouterError::NotTranslatable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RouterError::Directory(_) => StatusCode::SERVICE_UNAVAILABLE,
            RouterError::Upstream { .. } | RouterError::ReplyNotTranslatable { .. } => {
                StatusCode::BAD_GATEWAY
            }
            RouterError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            RouterError::Masking(_) | RouterError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The short name the audit record and the error body's `code` carry.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            RouterError::BadRequest(_) => "bad_request",
            RouterError::MediaType(_) => "unsupported_media_type",
            RouterError::TooLarge { .. } => "body_too_large",
            RouterError::SlowBody { .. } => "body_timeout",
            RouterError::NotFound { .. } => "not_served",
            RouterError::Unscannable(_) => "unscannable_content",
            RouterError::Unidentified(_) => "sandbox_unidentified",
            RouterError::Blocked(_) => "blocked_by_policy",
            RouterError::NotRoutable(_) => "not_routable",
            RouterError::NotTranslatable(_) => "not_translatable",
            RouterError::ReplyNotTranslatable { .. } => "reply_not_translatable",
            RouterError::Directory(_) => "policy_unavailable",
            RouterError::Upstream { .. } => "upstream_error",
            RouterError::UpstreamTimeout { .. } => "upstream_timeout",
            RouterError::Masking(_) => "masking_failed",
            RouterError::Internal(_) => "internal_error",
        }
    }

    /// The body, in the error shape of `api`.
    #[must_use]
    pub fn body(&self, api: Api) -> Vec<u8> {
        let message = format!("NemoClaw router: {self}");
        let value = match api {
            Api::Openai => json!({"error": {
                "message": message,
                "type": openai_type(self.status()),
                "param": null,
                "code": self.code(),
            }}),
            Api::Anthropic => json!({"type": "error", "error": {
                "type": anthropic_type(self.status()),
                "message": message,
            }}),
        };
        value.to_string().into_bytes()
    }
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 404 | 408 | 413 | 415 | 422 => "invalid_request_error",
        403 => "permission_error",
        _ => "api_error",
    }
}

/// Anthropic's error `type` for an HTTP status (what its SDKs expect).
pub(crate) fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        400 | 408 | 415 | 422 => "invalid_request_error",
        503 | 504 => "overloaded_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_each_apis_error_shape() {
        let e = RouterError::Blocked("category `secret` at /messages/0/content".into());
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        let o: serde_json::Value = serde_json::from_slice(&e.body(Api::Openai)).unwrap();
        assert_eq!(o["error"]["code"], "blocked_by_policy");
        assert_eq!(o["error"]["type"], "permission_error");
        assert!(
            o["error"]["message"]
                .as_str()
                .unwrap()
                .contains("category `secret`")
        );
        let a: serde_json::Value = serde_json::from_slice(&e.body(Api::Anthropic)).unwrap();
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "permission_error");
    }
}
