//! One request, stage by stage: identify the sandbox (the kernel's socket cgroup, then the
//! daemon's rules) → read the body (bounded in size and time) → parse the API shape into
//! the text view → detect → decide → rewrite (the model; masking slots in here; an
//! Anthropic request for an OpenAI-speaking local model is translated here) → forward
//! (credentials injected) → stream the reply back (translated back when the request was)
//! → audit. Any failure before the forward means nothing is sent anywhere.

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
use super::reply::{Cut, Finish, ReplyBody};
use super::request::{InferenceRequest, Route, TextField};
use super::restore::{Counts, ReplyContext};
use super::translate;
use super::translate::stream::StreamTranslator;
use super::upstream::{Upstream, reply_headers};
use crate::policy::inference::{Action, BackendChoice};

/// The reply body type every answer has.
pub type Reply = Response<UnsyncBoxBody<Bytes, Cut>>;

/// Bodies above this are scanned on the blocking pool, not on an async worker.
const SCAN_INLINE_LIMIT: usize = 256 << 10;

/// A whole local reply larger than this is not translated (an error, nothing passes).
const MAX_TRANSLATED: usize = 64 << 20;

/// An Anthropic request sent to an OpenAI-speaking local model: what translating its reply
/// back needs.
struct Translation {
    /// The model asked of the backend.
    model: String,
    /// The request's stop sequences.
    stops: Vec<String>,
}

/// Where a reply's body comes from.
enum Source {
    /// The backend's body, as it arrives (translated on the way when the request was).
    Backend(Incoming),
    /// A whole reply the router translated.
    Whole(Bytes),
}

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
        // Anthropic's API for a local model speaking OpenAI's: translated (`backend` has
        // checked that only a `local` decision gets here).
        let translated = route.api() != backend.api;
        let (body, model, masked, translation) = outgoing(
            parsed,
            choice,
            translated,
            masking.then_some((&findings, &rules, &session)),
        )?;
        record.masked = masked;
        record.model = Some(model);
        let upstream_route = if translated {
            Route::ChatCompletions
        } else {
            route
        };
        let upstream = self
            .upstream
            .send(backend, upstream_route, body, &head.headers)
            .await?;
        record.first_byte_ms = started.elapsed().as_secs_f64() * 1e3;
        record.status = upstream.status().as_u16();
        record.decision = "allowed";
        let (parts, incoming) = upstream.into_parts();
        let (source, sse) = self
            .source(&parts, incoming, backend, translation.as_ref())
            .await
            .inspect_err(|e| record.reason = format!("{}; {e}", record.reason))?;
        let done = std::mem::take(record);
        let streaming = done.stream;
        let finish = finisher(self.audit.clone(), done, started);
        let rewriter = reply_rewriter(route, sse, &rules, session, exempt);
        let (body, headers) = self.reply_body(
            source,
            translation,
            rewriter,
            finish,
            streaming,
            &parts.headers,
        );
        let mut response = Response::new(body);
        *response.status_mut() = parts.status;
        *response.headers_mut() = headers;
        if let Ok(name) = HeaderValue::from_str(&backend.name) {
            response.headers_mut().insert("x-nemoclaw-backend", name);
        }
        Ok(response)
    }

    /// The caller's reply body from `source` (translated, when `translation` says how,
    /// and rewritten), and its headers from the backend's.
    fn reply_body(
        &self,
        source: Source,
        translation: Option<Translation>,
        rewriter: Option<ReplyRewriter>,
        finish: Finish,
        streaming: bool,
        upstream_headers: &hyper::HeaderMap,
    ) -> (UnsyncBoxBody<Bytes, Cut>, hyper::HeaderMap) {
        let mut headers = reply_headers(upstream_headers);
        if rewriter.is_some() || translation.is_some() {
            headers.remove(header::CONTENT_LENGTH);
        }
        let idle = self.upstream.timeout;
        let body = match (source, translation) {
            (Source::Whole(whole), _) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                UnsyncBoxBody::new(ReplyBody::new(
                    Full::new(whole),
                    false,
                    idle,
                    rewriter,
                    finish,
                ))
            }
            (Source::Backend(incoming), None) => {
                UnsyncBoxBody::new(ReplyBody::new(incoming, streaming, idle, rewriter, finish))
            }
            (Source::Backend(incoming), Some(t)) => UnsyncBoxBody::new(
                ReplyBody::new(incoming, streaming, idle, rewriter, finish)
                    .translating(StreamTranslator::new(&t.model, t.stops)),
            ),
        };
        (body, headers)
    }

    /// Where the caller's reply comes from, and whether it is SSE: the backend's body as
    /// it arrives, or, for a translated request whose reply is not a successful stream, the
    /// whole reply read and translated (a message, or the backend's error in Anthropic's
    /// shape).
    async fn source(
        &self,
        parts: &hyper::http::response::Parts,
        incoming: Incoming,
        backend: &Backend,
        translation: Option<&Translation>,
    ) -> Result<(Source, bool), RouterError> {
        let sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        match translation {
            Some(t) if !(sse && parts.status.is_success()) => {
                let body = self
                    .upstream
                    .read_whole(backend, incoming, MAX_TRANSLATED)
                    .await?;
                let whole =
                    translate::whole_reply(parts.status, &backend.name, &body, &t.model, &t.stops)?;
                Ok((Source::Whole(Bytes::from(whole)), false))
            }
            _ => Ok((Source::Backend(incoming), sse)),
        }
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
        // The one translation: an Anthropic request served by a local model speaking
        // OpenAI's API. A cloud backend of the other API is refused, never translated.
        let translated =
            action == Action::Local && route == Route::Messages && backend.api == Api::Openai;
        if backend.api != route.api() && !translated {
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

/// The `finish` of a served request's reply: completes its audit record `done` and writes
/// it.
fn finisher(audit: AuditOut, mut done: InferenceRecord, started: Instant) -> Finish {
    Box::new(
        move |ending, tokens, counts: Option<Counts>, failure: Option<String>| {
            done.ending = Some(ending);
            done.tokens = tokens;
            if let Some(counts) = counts {
                done.restored = counts.restored;
                done.injected = counts.injected;
            }
            if let Some(failure) = failure {
                done.reason = format!("{}; {failure}", done.reason);
            }
            done.latency_ms = started.elapsed().as_secs_f64() * 1e3;
            // The record is written off the stream's path (a daemon round trip).
            tokio::task::spawn_blocking(move || audit.write(done));
        },
    )
}

/// The body to send and what it asked: the request rewritten (see [`rewrite`]), or, when
/// `translated`, an Anthropic request translated to a chat completion for the choice's
/// model. Returns the bytes, the model, the number of values masked and what translating
/// the reply back needs.
fn outgoing(
    parsed: InferenceRequest,
    choice: &BackendChoice,
    translated: bool,
    masking: Option<Masking<'_>>,
) -> Result<(Vec<u8>, String, usize, Option<Translation>), RouterError> {
    if !translated {
        let (body, model, masked) = rewrite(parsed, choice, masking)?;
        return Ok((body, model, masked, None));
    }
    let model = choice.model.clone().unwrap_or(parsed.model);
    let chat = translate::request::chat_request(&parsed.body, &model)?;
    let body = serde_json::to_vec(&chat.body).map_err(|e| RouterError::Internal(e.to_string()))?;
    let stops = chat.stop_sequences;
    Ok((body, model.clone(), 0, Some(Translation { model, stops })))
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
