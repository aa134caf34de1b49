//! Calling a backend: the request rebuilt from scratch (only the headers an inference API
//! needs pass; the caller's credentials never do; the backend's key is injected), over HTTP
//! or HTTPS (rustls, the host's trust store), within the configured timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::config::{Api, Backend};
use super::error::RouterError;
use super::request::Route;

/// Caller headers passed upstream: API versions and features, nothing that identifies or
/// authenticates the caller.
const PASSED_REQUEST_HEADERS: [&str; 3] = ["anthropic-version", "anthropic-beta", "accept"];

/// Anthropic's API needs a version; the one its SDKs send.
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// Reply headers passed back: the body's type and the provider's request id and rate
/// limits (what SDKs read); never cookies or anything else.
fn passed_reply_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "content-type"
        || n == "x-request-id"
        || n == "request-id"
        || n == "retry-after"
        || n.starts_with("x-ratelimit-")
        || n.starts_with("anthropic-ratelimit-")
}

/// The HTTP(S) client every backend call goes through.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub timeout: Duration,
}

impl Upstream {
    pub fn new(timeout: Duration) -> Result<Upstream, RouterError> {
        // No Nagle delay: a request or a streamed reply's small writes go out at once.
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| RouterError::Internal(format!("the host's TLS trust store: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_mins(1))
            .build(https);
        Ok(Upstream { client, timeout })
    }

    /// Sends `body` for `route` to `backend`; the reply's head within the timeout.
    pub async fn send(
        &self,
        backend: &Backend,
        route: Route,
        body: Vec<u8>,
        caller: &HeaderMap,
    ) -> Result<Response<Incoming>, RouterError> {
        let failed = |message: String| RouterError::Upstream {
            backend: backend.name.clone(),
            message,
        };
        let url = format!("{}{}", backend.url, route.upstream_path());
        let mut request = Request::post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT_ENCODING, "identity")
            .header(header::USER_AGENT, "nemoclaw-router")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| failed(format!("bad URL {url}: {e}")))?;
        let headers = request.headers_mut();
        for name in PASSED_REQUEST_HEADERS {
            if let Some(v) = caller.get(name) {
                headers.insert(name, v.clone());
            }
        }
        if backend.api == Api::Anthropic && !headers.contains_key("anthropic-version") {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION),
            );
        }
        if let Some(key) = &backend.key {
            let (name, value) = match backend.api {
                Api::Openai => (header::AUTHORIZATION, format!("Bearer {}", key.expose())),
                Api::Anthropic => (
                    HeaderName::from_static("x-api-key"),
                    key.expose().to_owned(),
                ),
            };
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| failed("its key is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Err(_) => Err(RouterError::UpstreamTimeout {
                backend: backend.name.clone(),
                secs: self.timeout.as_secs(),
            }),
            Ok(Err(e)) => Err(failed(describe(&e))),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

impl Upstream {
    /// A backend's whole reply body (`limit` bytes at most), within the timeout.
    pub async fn read_whole(
        &self,
        backend: &Backend,
        body: Incoming,
        limit: usize,
    ) -> Result<Bytes, RouterError> {
        let collect = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit));
        match tokio::time::timeout(self.timeout, collect).await {
            Err(_) => Err(RouterError::UpstreamTimeout {
                backend: backend.name.clone(),
                secs: self.timeout.as_secs(),
            }),
            Ok(Err(e)) => Err(RouterError::Upstream {
                backend: backend.name.clone(),
                message: if e.is::<http_body_util::LengthLimitError>() {
                    format!("its reply is over {limit} bytes, more than the router reads whole")
                } else {
                    format!("its reply broke off: {e}")
                },
            }),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }
}

/// The reply headers to pass to the caller.
#[must_use]
pub fn reply_headers(upstream: &HeaderMap) -> HeaderMap {
    upstream
        .iter()
        .filter(|(name, _)| passed_reply_header(name))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// A client error with its causes (connection refused, TLS, DNS), never a URL with
/// credentials (backend URLs carry none; keys go in headers).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
