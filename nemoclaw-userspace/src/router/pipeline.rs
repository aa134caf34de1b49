//! One request, stage by stage: identify the sandbox (the kernel's socket cgroup, then the
//! daemon's rules) → read the body (bounded in size and time) → parse the API shape into
//! the text view → detect → decide → rewrite (the model; masking slots in here) → forward
//! (credentials injected) → stream the reply back → audit. Any failure before the forward
//! means nothing is sent anywhere.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::audit::{AuditOut, InferenceRecord};
use super::config::{Api, Backend, RouterConfig};
use super::decide::Decision;
use super::directory::{Directory, Lookup, Rules};
use super::error::RouterError;
use super::identify::{PeerSocket, peer_socket};
use nemoclaw_detect::Finding;

/// The client socket behind a connection `local` ← `peer`, asked of the kernel once per
/// connection (a socket keeps its cgroup for life); the error says why it is unknown.
pub fn identify(local: SocketAddr, peer: SocketAddr) -> Result<PeerSocket, String> {
    peer_socket(local, peer).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::ENOENT) {
            " (the kernel's socket diagnostics know no such socket; a kernel without the \
             tcp_diag module answers so too)"
        } else {
            ""
        };
        format!("cannot tell which sandbox this connection comes from: {e}{hint}; refused")
    })
}
use super::events::ReplyRewriter;
use super::mask::{Session, Sessions, mask_request};
use super::reply::{Cut, ReplyBody};
use super::request::{InferenceRequest, Route, TextField};
use super::restore::{Counts, ReplyContext};
use super::upstream::{Upstream, reply_headers};
use crate::policy::inference::{Action, BackendChoice};

/// The reply body type every answer has.
pub type Reply = Response<UnsyncBoxBody<Bytes, Cut>>;

/// Bodies above this are scanned on the blocking pool, not on an async worker.
const SCAN_INLINE_LIMIT: usize = 256 << 10;

/// The router's shared state.
pub struct Router {
    pub config: RouterConfig,
    pub directory: Arc<Directory>,
    pub upstream: Upstream,
    pub audit: AuditOut,
    /// Masking sessions, one per sandbox.
    pub sessions: Sessions,
}

/// How the caller's client speaks (error bodies follow it).
fn api_of(path: &str) -> Api {
    if path.trim_end_matches('/') == "/v1/messages" {
        Api::Anthropic
    } else {
        Api::Openai
    }
}

fn full(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl Router {
    /// Serves one request from a connection whose client socket is `peer` (as the kernel
    /// identified it when the connection was accepted, or why it could not).
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: &Result<PeerSocket, String>,
    ) -> Reply {
        let started = Instant::now();
        let mut record = InferenceRecord {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            ..InferenceRecord::default()
        };
        let api = api_of(request.uri().path());
        match self.serve(request, peer, started, &mut record).await {
            Ok(reply) => reply,
            Err(e) => {
                record.decision = "denied";
                record.status = e.status().as_u16();
                record.error = Some(e.code());
                if record.reason.is_empty() {
                    record.reason = e.to_string();
                }
                self.audit_answered(record, started).await;
                full(e.status(), e.body(api))
            }
        }
    }

    async fn serve(
        &self,
        request: Request<Incoming>,
        peer: &Result<PeerSocket, String>,
        started: Instant,
        record: &mut InferenceRecord,
    ) -> Result<Reply, RouterError> {
        let socket = *peer
            .as_ref()
            .map_err(|e| RouterError::Unidentified(e.clone()))?;
        record.cgroup = Some(socket.cgroup_id);
        record.uid = Some(socket.uid);
        let rules = self.rules_for(socket).await?;
        record.sandbox = Some(rules.sandbox.clone());
        record.policy_sha256 = Some(rules.policy_sha256.clone());
        // Who asked comes first, so even a request for something not served is audited
        // under its sandbox.
        let route = Route::of(request.method(), request.uri().path()).ok_or_else(|| {
            RouterError::NotFound {
                method: request.method().to_string(),
                path: request.uri().path().to_owned(),
            }
        })?;
        if route == Route::Models {
            record.decision = "allowed";
            record.status = 200;
            record.reason = "model list answered by the router".into();
            self.audit_answered(std::mem::take(record), started).await;
            return Ok(full(StatusCode::OK, models(&rules)));
        }
        check_content_type(&request)?;
        let (head, body) = request.into_parts();
        let body = self.read_body(body).await?;
        let parsed = InferenceRequest::parse(route, &body)?;
        record.stream = parsed.stream;
        let (findings, decision) = scan(&rules, &parsed).await?;
        record.action = Some(decision.action);
        record.found.clone_from(&decision.found);
        record.reason = decision.reason();
        let choice = match decision.action {
            Action::Block => return Err(RouterError::Blocked(decision.reason())),
            Action::Local => rules.inference.local.as_ref().ok_or_else(|| {
                RouterError::NotRoutable(format!(
                    "{} must stay on a local model, and this sandbox's policy names no `inference.local` backend; refused",
                    decision.reason()
                ))
            })?,
            Action::Allow | Action::Mask => &rules.inference.cloud,
        };
        let backend = self.backend(choice, decision.action, route)?;
        record.backend = Some(backend.name.clone());
        let session = self.sessions.get(socket.cgroup_id)?;
        let exempt = found_values(&parsed.texts, &findings);
        let masking = decision.action == Action::Mask;
        let (body, model, masked) = rewrite(
            parsed,
            choice,
            masking.then_some((&findings, &rules, &session)),
        )?;
        record.masked = masked;
        record.model = Some(model);
        let upstream = self
            .upstream
            .send(backend, route, body, &head.headers)
            .await?;
        record.first_byte_ms = started.elapsed().as_secs_f64() * 1e3;
        record.status = upstream.status().as_u16();
        record.decision = "allowed";
        let (parts, incoming) = upstream.into_parts();
        let audit = self.audit.clone();
        let mut done = std::mem::take(record);
        let streaming = done.stream;
        let finish = Box::new(move |ending, tokens, counts: Option<Counts>| {
            done.ending = Some(ending);
            done.tokens = tokens;
            if let Some(counts) = counts {
                done.restored = counts.restored;
                done.injected = counts.injected;
            }
            done.latency_ms = started.elapsed().as_secs_f64() * 1e3;
            // The record is written off the stream's path (a daemon round trip).
            tokio::task::spawn_blocking(move || audit.write(done));
        });
        let sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let rewriter = reply_rewriter(route, sse, &rules, session, exempt);
        let mut headers = reply_headers(&parts.headers);
        if rewriter.is_some() {
            headers.remove(header::CONTENT_LENGTH);
        }
        let reply = ReplyBody::new(incoming, streaming, self.upstream.timeout, rewriter, finish);
        let mut response = Response::new(UnsyncBoxBody::new(reply));
        *response.status_mut() = parts.status;
        *response.headers_mut() = headers;
        if let Ok(name) = HeaderValue::from_str(&backend.name) {
            response.headers_mut().insert("x-nemoclaw-backend", name);
        }
        Ok(response)
    }

    /// Writes the record of a request the router answered itself (a refusal, the model
    /// list): the whole answer was its first byte.
    async fn audit_answered(&self, mut record: InferenceRecord, started: Instant) {
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        record.first_byte_ms = elapsed;
        record.latency_ms = elapsed;
        let audit = self.audit.clone();
        let _ = tokio::task::spawn_blocking(move || audit.write(record)).await;
    }

    async fn rules_for(&self, socket: PeerSocket) -> Result<Arc<Rules>, RouterError> {
        // Without a daemon the answer is at hand; with one it is a socket round trip, made
        // off the async workers.
        let lookup = if self.directory.asks_daemon() {
            let directory = Arc::clone(&self.directory);
            tokio::task::spawn_blocking(move || directory.lookup(socket.cgroup_id))
                .await
                .map_err(|e| RouterError::Internal(e.to_string()))??
        } else {
            self.directory.lookup(socket.cgroup_id)?
        };
        match lookup {
            Lookup::Rules(rules) => Ok(rules),
            Lookup::NoInference { sandbox } => Err(RouterError::Unidentified(format!(
                "sandbox `{sandbox}` has no `inference:` section in its policy, so it may not use the router; refused"
            ))),
            Lookup::Unknown => Err(RouterError::Unidentified(format!(
                "the connection comes from cgroup {} (uid {}), which is no NemoClaw sandbox, and the router has no --default-policy; refused",
                socket.cgroup_id, socket.uid
            ))),
        }
    }

    /// The whole body, within the size limit and the body timeout.
    async fn read_body(&self, body: Incoming) -> Result<Bytes, RouterError> {
        let limit = self.config.max_body_bytes;
        let collect = Limited::new(body, limit).collect();
        match tokio::time::timeout(self.config.body_timeout, collect).await {
            Err(_) => Err(RouterError::SlowBody {
                secs: self.config.body_timeout.as_secs(),
            }),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                Err(RouterError::TooLarge { limit })
            }
            Ok(Err(e)) => Err(RouterError::BadRequest(format!(
                "the request body could not be read: {e}"
            ))),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }

    /// The backend a policy's choice names, checked against what the action needs.
    fn backend(
        &self,
        choice: &BackendChoice,
        action: Action,
        route: Route,
    ) -> Result<&Backend, RouterError> {
        let backend = self.config.backends.get(&choice.backend).ok_or_else(|| {
            RouterError::NotRoutable(format!(
                "the policy names backend `{}`, which this router's configuration does not define",
                choice.backend
            ))
        })?;
        if action == Action::Local && !backend.local {
            return Err(RouterError::NotRoutable(format!(
                "the policy's local backend `{}` is not marked `local: true` in the router's configuration; refused rather than sent off the machine",
                backend.name
            )));
        }
        if backend.api != route.api() {
            return Err(RouterError::NotRoutable(format!(
                "{} is an {} API request, and backend `{}` speaks the {} API",
                route.name(),
                route.api().name(),
                backend.name,
                backend.api.name()
            )));
        }
        Ok(backend)
    }
}

fn check_content_type(request: &Request<Incoming>) -> Result<(), RouterError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(RouterError::MediaType(if content_type.is_empty() {
            "(none)".into()
        } else {
            content_type
        }))
    }
}

/// Every value the scan found in the request, whatever its category: the caller's own,
/// which the reply guard leaves alone.
fn found_values(texts: &[TextField], findings: &[(String, Finding)]) -> HashSet<String> {
    let by_pointer: HashMap<&str, &str> = texts
        .iter()
        .map(|t| (t.pointer.as_str(), t.text.as_str()))
        .collect();
    findings
        .iter()
        .filter_map(|(pointer, f)| by_pointer.get(pointer.as_str())?.get(f.start..f.end))
        .map(str::to_owned)
        .collect()
}

/// The rewriter of a reply, when it needs one: the session has placeholders to restore, or
/// the policy masks values a reply carries that the request did not (`exempt`: the values
/// the request did carry). Embeddings carry no text back.
fn reply_rewriter(
    route: Route,
    sse: bool,
    rules: &Arc<Rules>,
    session: Arc<Mutex<Session>>,
    exempt: HashSet<String>,
) -> Option<ReplyRewriter> {
    let restoring = !session.lock().is_ok_and(|s| s.is_empty());
    let guarding = rules.inference.guards_replies();
    if !(restoring || guarding) || route == Route::Embeddings {
        return None;
    }
    let cx = ReplyContext::new(session, guarding.then(|| (Arc::clone(rules), exempt)));
    Some(ReplyRewriter::new(cx, route, sse))
}

/// What the scan found (with each finding's field) and the decision.
type Scanned = (Vec<(String, Finding)>, Decision);

/// Scans every text field and decides, off the async workers when the body is large.
async fn scan(rules: &Arc<Rules>, request: &InferenceRequest) -> Result<Scanned, RouterError> {
    let size: usize = request.texts.iter().map(|t| t.text.len()).sum();
    if size <= SCAN_INLINE_LIMIT {
        let findings = rules.scanner.scan(&request.texts)?;
        let decision = Decision::of(&rules.inference, &findings);
        return Ok((findings, decision));
    }
    let rules = Arc::clone(rules);
    let texts = request.texts.clone();
    tokio::task::spawn_blocking(move || {
        let findings = rules.scanner.scan(&texts)?;
        let decision = Decision::of(&rules.inference, &findings);
        Ok((findings, decision))
    })
    .await
    .map_err(|e| RouterError::Internal(format!("scan: {e}")))?
}

/// What masking a request needs: the findings, the sandbox's rules, its session.
type Masking<'a> = (&'a [(String, Finding)], &'a Rules, &'a Mutex<Session>);

/// The body to send: the request with the chosen model and, when the decision is `mask`,
/// every value of a `mask` category replaced by its placeholder in the session. Returns
/// the bytes, the model asked for and the number of values masked.
fn rewrite(
    request: InferenceRequest,
    choice: &BackendChoice,
    masking: Option<Masking<'_>>,
) -> Result<(Vec<u8>, String, usize), RouterError> {
    let mut body = request.body;
    let model = choice.model.clone().unwrap_or(request.model);
    if let Value::Object(map) = &mut body {
        map.insert("model".into(), Value::String(model.clone()));
    }
    if let Some((findings, rules, session)) = masking {
        let (bytes, masked) = mask_request(
            &mut body,
            &request.texts,
            findings,
            &rules.inference,
            session,
        )?;
        return Ok((bytes, model, masked.values()));
    }
    let bytes = serde_json::to_vec(&body).map_err(|e| RouterError::Internal(e.to_string()))?;
    Ok((bytes, model, 0))
}

/// `GET /v1/models`: the models this sandbox's policy routes to, in OpenAI's list shape.
fn models(rules: &Rules) -> Vec<u8> {
    let mut ids: Vec<(String, &str)> = Vec::new();
    for choice in std::iter::once(&rules.inference.cloud).chain(rules.inference.local.as_ref()) {
        if let Some(model) = &choice.model {
            ids.push((model.clone(), &choice.backend));
        }
    }
    let data: Vec<Value> = ids
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    json!({"object": "list", "data": data})
        .to_string()
        .into_bytes()
}
