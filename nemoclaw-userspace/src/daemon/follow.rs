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
        mpsc::{self, RecvTimeoutError},
    },
    thread::JoinHandle,
    time::Duration,
};

use serde_json::Value;

use super::protocol::{Client, ClientError, Request, Response};

/// How often a lost stream is asked for again.
const RETRY: Duration = Duration::from_millis(100);
/// How long [`Finish::finish`] waits for the stop record (a restarting daemon included).
const STOP_WAIT: Duration = Duration::from_secs(5);
/// After giving up: how often the stream is closed again, in case a subscription made just
/// before replaced it.
const CLOSE_AGAIN: Duration = Duration::from_millis(20);

/// The reading side: runs on its own thread.
pub struct Follower {
    socket: PathBuf,
    sandbox: String,
    client: Client,
    /// The last record received, for the replay after a lost stream.
    last: Option<Value>,
    shared: Arc<Shared>,
    /// Never sent on: the follower's end drops it, which wakes [`Finish::finish`] at once.
    _alive: mpsc::Sender<()>,
}

/// The owner's side: says when to stop waiting.
pub struct Finish {
    shared: Arc<Shared>,
    /// Disconnected once the follower has ended (returned or unwound).
    follower_ended: mpsc::Receiver<()>,
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
    let (alive, follower_ended) = mpsc::channel();
    Ok((
        Follower {
            socket: socket.to_owned(),
            sandbox: sandbox.to_owned(),
            client,
            last: None,
            shared: Arc::clone(&shared),
            _alive: alive,
        },
        Finish {
            shared,
            follower_ended,
        },
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
    /// gives up and closes its stream. Returns once the follower has ended: woken by its
    /// end, not by polling, so a run pays no wait past its stop record.
    pub fn finish(self, follower: JoinHandle<()>) {
        self.finish_within(follower, STOP_WAIT);
    }

    fn finish_within(self, follower: JoinHandle<()>, stop_wait: Duration) {
        let mut wait = stop_wait;
        while let Err(RecvTimeoutError::Timeout) = self.follower_ended.recv_timeout(wait) {
            self.shared.give_up.store(true, Ordering::Release);
            // Again on every pass: a subscription made just before giving up replaces the
            // stream.
            if let Some(stream) = self
                .shared
                .stream
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
            wait = CLOSE_AGAIN;
        }
        if follower.join().is_err() {
            eprintln!("nemoclaw: the audit copier panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn finish_and_alive() -> (Finish, mpsc::Sender<()>) {
        let (alive, follower_ended) = mpsc::channel();
        let shared = Arc::new(Shared {
            give_up: AtomicBool::new(false),
            stream: Mutex::new(None),
        });
        (
            Finish {
                shared,
                follower_ended,
            },
            alive,
        )
    }

    #[test]
    fn a_follower_that_ends_wakes_the_owner_without_giving_up() {
        let (finish, alive) = finish_and_alive();
        let shared = Arc::clone(&finish.shared);
        let (go, wait_for_go) = mpsc::channel::<()>();
        let follower = std::thread::spawn(move || {
            let _alive = alive;
            wait_for_go.recv().unwrap();
        });
        go.send(()).unwrap();
        finish.finish_within(follower, Duration::from_mins(10));
        assert!(!shared.give_up.load(Ordering::Acquire));
    }

    #[test]
    fn a_follower_without_a_stop_record_is_cut_off_at_the_deadline() {
        let (finish, alive) = finish_and_alive();
        let shared = Arc::clone(&finish.shared);
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        // As `Shared::track` keeps it: a clone of the follower's own stream.
        *shared.stream.lock().unwrap() = Some(ours.try_clone().unwrap());
        let follower = std::thread::spawn(move || {
            let _alive = alive;
            // Blocks until the owner shuts the stream down: no stop record ever comes.
            let mut buf = [0u8; 1];
            let _ = ours.read(&mut buf);
        });
        finish.finish_within(follower, Duration::from_millis(50));
        assert!(shared.give_up.load(Ordering::Acquire));
        drop(theirs);
    }
}
