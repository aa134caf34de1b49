//! Following one sandbox's records on the daemon's event stream, across daemon restarts:
//! what `nemoclaw run` copies into its own audit log.
//!
//! A stream ends when its daemon goes away (`kill -9`, upgrade, restart). Enforcement does
//! not (the programs and maps are pinned), and a restarted daemon logs what the kernel
//! recorded meanwhile. So the follower subscribes again as soon as a daemon answers, naming
//! the last record it received: the daemon replays the sandbox's records written since
//! (`audit::replay`), and the copy has no gap. It stops at the sandbox's stop record, or
//! when its owner gives up waiting for one ([`Finish::finish`]).

use std::{
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::protocol::{Client, ClientError, Request, Response};

/// How often a lost stream is asked for again.
const RETRY: Duration = Duration::from_millis(100);
/// How long [`Finish::finish`] waits for the stop record (a restarting daemon included).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The reading side: runs on its own thread.
pub struct Follower {
    socket: PathBuf,
    sandbox: String,
    client: Client,
    /// The last record received, for the replay after a lost stream.
    last: Option<Value>,
    shared: Arc<Shared>,
}

/// The owner's side: says when to stop waiting.
pub struct Finish {
    shared: Arc<Shared>,
}

struct Shared {
    /// Stop: no new subscription is made.
    give_up: AtomicBool,
    /// The current subscription's stream, closed on giving up.
    stream: Mutex<Option<UnixStream>>,
}

impl Shared {
    fn track(&self, client: &Client) {
        *self.stream.lock().unwrap_or_else(PoisonError::into_inner) =
            client.stream().try_clone().ok();
    }
}

/// Subscribes to `sandbox`'s records on `socket`; the first subscription must succeed.
pub fn subscribe(socket: &Path, sandbox: &str) -> Result<(Follower, Finish), ClientError> {
    let client = subscription(socket, sandbox, None)?;
    let shared = Arc::new(Shared {
        give_up: AtomicBool::new(false),
        stream: Mutex::new(None),
    });
    shared.track(&client);
    Ok((
        Follower {
            socket: socket.to_owned(),
            sandbox: sandbox.to_owned(),
            client,
            last: None,
            shared: Arc::clone(&shared),
        },
        Finish { shared },
    ))
}

fn subscription(
    socket: &Path,
    sandbox: &str,
    after: Option<&Value>,
) -> Result<Client, ClientError> {
    let mut client = Client::connect(socket)?;
    match client.call(&Request::Events {
        sandbox: Some(sandbox.to_owned()),
        after: after.cloned(),
    })? {
        Response::Subscribed => Ok(client),
        other => Err(ClientError::Daemon(format!(
            "unexpected answer from the daemon: {other:?}"
        ))),
    }
}

impl Follower {
    /// Hands each record to `record` until the sandbox's stop record (included), or until
    /// the owner gives up.
    pub fn run(mut self, mut record: impl FnMut(&Value)) {
        loop {
            while let Ok(Response::Event { record: r }) = self.client.receive() {
                record(&r);
                if r.get("event").and_then(Value::as_str) == Some("sandbox_stop") {
                    return;
                }
                self.last = Some(r);
            }
            if self.shared.give_up.load(Ordering::Acquire) {
                return;
            }
            eprintln!(
                "nemoclaw: lost the daemon's event stream for {}; following again when a \
                 daemon answers",
                self.sandbox
            );
            let Some(client) = self.resubscribe() else {
                return;
            };
            eprintln!("nemoclaw: following {} again", self.sandbox);
            self.client = client;
        }
    }

    fn resubscribe(&self) -> Option<Client> {
        let mut said = String::new();
        while !self.shared.give_up.load(Ordering::Acquire) {
            match subscription(&self.socket, &self.sandbox, self.last.as_ref()) {
                Ok(client) => {
                    self.shared.track(&client);
                    return Some(client);
                }
                Err(e) => {
                    // Each new reason once, not every retry.
                    let why = e.to_string();
                    if why != said {
                        eprintln!("nemoclaw: not following {} yet: {why}", self.sandbox);
                        said = why;
                    }
                }
            }
            std::thread::sleep(RETRY);
        }
        None
    }
}

impl Finish {
    /// The sandbox is finished (its destroy was asked for): waits for the follower to see
    /// the stop record, through a daemon restart if need be, for up to [`STOP_WAIT`]; then
    /// gives up and closes its stream. Returns once the follower has ended.
    pub fn finish(self, follower: JoinHandle<()>) {
        let deadline = Instant::now() + STOP_WAIT;
        while !follower.is_finished() {
            if Instant::now() >= deadline {
                self.shared.give_up.store(true, Ordering::Release);
                // Again on every pass: a subscription made just before giving up replaces
                // the stream.
                if let Some(stream) = self
                    .shared
                    .stream
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if follower.join().is_err() {
            eprintln!("nemoclaw: the audit copier panicked");
        }
    }
}
