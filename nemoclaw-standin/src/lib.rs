//! A recording cloud stand-in for `NemoClaw`'s tests and demo.
//!
//! It answers the `OpenAI` (and OpenAI-compatible) and Anthropic inference endpoints in
//! their real wire formats, streaming included, and it appends every request it receives,
//! byte for byte, to a record file ([`record::Recorder`]), so a test can assert what did and
//! did not reach "the cloud".
//!
//! Endpoints: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/responses`,
//! `POST /v1/embeddings` (`OpenAI`); `POST /v1/messages`, `POST /v1/messages/count_tokens`
//! and `GET /v1/models` with Anthropic headers (Anthropic).
//!
//! The request's `model` chooses the reply. Most models get a fixed text that never echoes
//! the request. Three [`Behaviour`]s, for the privacy router's masking tests, do use it:
//! `echo` replies `You said: ` and the text of the request's last message (and its system
//! text), `echo-tool` replies with an `echo` tool call carrying that text, and `inject` echoes
//! it and adds values that were never in the request ([`INJECTED_EMAIL`],
//! [`INJECTED_CARD`]). Other model names choose a [`Fault`].

mod anthropic;
pub mod body;
mod openai;
pub mod record;
mod reply;
mod router;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use record::Recorder;

/// The largest request body read; a larger one is answered 413 and recorded without body.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// The pause between streamed parts under [`Fault::Slow`] unless configured otherwise.
pub const DEFAULT_SLOW_INTERVAL: Duration = Duration::from_secs(1);

/// A misbehaviour chosen by the request's `model` field, for the router's failure tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `fault-hang`: the request is read and recorded, then never answered.
    Hang,
    /// `fault-500`: HTTP 500 with the provider's server-error JSON.
    Fail500,
    /// `fault-cut`: two parts of the body (two SSE events when streaming, two pieces of
    /// the JSON otherwise) are sent, then the connection closes without the terminator.
    Cut,
    /// `fault-slow`: the body's parts (SSE events, or three pieces of the JSON) are sent
    /// one slow interval apart.
    Slow,
}

impl Fault {
    /// The fault a model name asks for, if any.
    #[must_use]
    pub fn from_model(model: &str) -> Option<Self> {
        match model {
            "fault-hang" => Some(Self::Hang),
            "fault-500" => Some(Self::Fail500),
            "fault-cut" => Some(Self::Cut),
            "fault-slow" => Some(Self::Slow),
            _ => None,
        }
    }
}

/// The e-mail address the `inject` model adds to its reply.
pub const INJECTED_EMAIL: &str = "leaked.person@example.net";

/// The card number the `inject` model adds to its reply.
pub const INJECTED_CARD: &str = "4111 1111 1111 1111";

/// How the reply is built, chosen by the request's `model` field.
///
/// "The request's text" `T` is, per API: the last message's content (a string, or its
/// parts' `text` and its `tool_result` blocks' content, joined with `\n`) for chat
/// completions and messages; for responses, `input` if a string, else the last input item's
/// `content` (likewise) or a `function_call_output`'s `output`. When the request has system
/// text (`OpenAI` `system` / `developer` messages, Anthropic `system`, responses
/// `instructions`), ` | system: ` and that text are appended to `T`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// Any other model: a fixed text naming the endpoint and the model, never the request,
    /// streamed a few characters per event.
    #[default]
    Fixed,
    /// `echo`: the text `You said: T`, streamed one character per event.
    Echo,
    /// `echo-tool`: one tool (function) call named `echo` with the arguments
    /// `{"text": T}`, its arguments JSON streamed in pieces of at most 3 bytes (whole
    /// characters).
    EchoTool,
    /// `inject`: the text `You said: T. Also contact <INJECTED_EMAIL> or card
    /// <INJECTED_CARD>.`, values never in the request; streamed one character per event.
    Inject,
}

impl Behaviour {
    /// The behaviour a model name asks for.
    #[must_use]
    pub fn from_model(model: &str) -> Self {
        match model {
            "echo" => Self::Echo,
            "echo-tool" => Self::EchoTool,
            "inject" => Self::Inject,
            _ => Self::Fixed,
        }
    }
}

/// What the server shares between connections.
#[derive(Debug)]
pub struct State {
    recorder: Recorder,
    counter: AtomicU64,
    slow_interval: Duration,
}

impl State {
    /// A state recording to `recorder`, pausing `slow_interval` between parts under
    /// [`Fault::Slow`].
    #[must_use]
    pub fn new(recorder: Recorder, slow_interval: Duration) -> Self {
        Self {
            recorder,
            counter: AtomicU64::new(0),
            slow_interval,
        }
    }
}

/// Accepts connections on `listener` and serves each on its own task, forever.
pub async fn serve(listener: TcpListener, state: Arc<State>) -> anyhow::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            // No Nagle delay: streamed events go out as they are written, as a provider's do.
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                (stream, peer)
            }
            Err(err) => {
                eprintln!("nemoclaw-standin: accept: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req| router::handle(Arc::clone(&state), req));
            // Errors here are clients going away and `fault-cut` closing on purpose.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A stand-in served on a task of the current tokio runtime, for in-process tests.
/// Dropping it stops accepting connections.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `listen` (e.g. `127.0.0.1:0`), records to `record`, and serves on a task.
    pub async fn start(
        listen: SocketAddr,
        record: &Path,
        slow_interval: Duration,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(Recorder::open(record)?, slow_interval));
        let task = tokio::spawn(async move {
            if let Err(err) = serve(listener, state).await {
                eprintln!("nemoclaw-standin: {err:#}");
            }
        });
        Ok(Self { addr, task })
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
