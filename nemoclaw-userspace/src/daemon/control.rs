//! The daemon's control socket: who may connect (root or the `nemoclaw` group, never a
//! task inside a sandbox), one JSON request per line answered by the [`Daemon`]'s
//! operations, and the event stream (`events`, replay after a restart).

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    sync::{Arc, PoisonError},
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    task::spawn_blocking,
};

use super::{
    error::OpError,
    protocol::{Request, Response},
    server::{self, CreateSpec, DaemonError, Shared, io_err, lock},
};
use crate::audit::replay;

/// Who is on the other end of a control connection.
struct Peer {
    pid: i32,
    uid: u32,
}

impl Peer {
    fn describe(&self) -> String {
        format!("uid {} (pid {})", self.uid, self.pid)
    }
}

/// Root or a member of the `nemoclaw` group, and not a task inside any sandbox (even root
/// inside one is refused: a sandbox never governs itself).
fn authorize(stream: &UnixStream, group: &str) -> Result<Peer, String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let cred = getsockopt(stream, PeerCredentials).map_err(|e| format!("SO_PEERCRED: {e}"))?;
    let peer = Peer {
        pid: cred.pid(),
        uid: cred.uid(),
    };
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", peer.pid)).unwrap_or_default();
    // Every sandbox parent is named `nemoclaw*` (see `sandbox::cgroup`).
    if cgroup.lines().any(|l| l.contains(":/nemoclaw")) {
        return Err("requests from inside a sandbox are refused".to_owned());
    }
    if peer.uid == 0 || in_control_group(peer.pid, group) {
        Ok(peer)
    } else {
        Err(format!(
            "uid {} is neither root nor in the `{group}` group",
            peer.uid
        ))
    }
}

/// Whether the task's groups (from `/proc/<pid>/status`) include the control group.
fn in_control_group(pid: i32, group: &str) -> bool {
    let Ok(Some(group)) = nix::unistd::Group::from_name(group) else {
        return false;
    };
    let gid = group.gid.as_raw().to_string();
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status.lines().any(|l| {
            (l.starts_with("Groups:") || l.starts_with("Gid:"))
                && l.split_whitespace().skip(1).any(|g| g == gid)
        })
    })
}

async fn send<W: AsyncWrite + Unpin>(out: &mut W, response: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_string(response).map_err(std::io::Error::other)?;
    line.push('\n');
    out.write_all(line.as_bytes()).await
}

fn error(message: String) -> Response {
    Response::Error { message }
}

/// A refused operation's answer: its message (the kind stays with the daemon's callers).
fn refused(e: &OpError) -> Response {
    error(e.to_string())
}

/// Serves one connection until it closes; ephemeral sandboxes it created go with it. Each
/// operation runs on the blocking pool (it may compile, resolve names, write kernel maps).
pub(super) async fn serve(daemon: Shared, stream: UnixStream) {
    let group = lock(&daemon).config.socket_group.clone();
    let peer = match authorize(&stream, &group) {
        Ok(p) => p,
        Err(e) => {
            let mut stream = stream;
            let _ = send(&mut stream, &error(e)).await;
            return;
        }
    };
    let requester = peer.describe();
    let (read_half, mut write_half) = stream.into_split();
    let mut lines = BufReader::new(read_half).lines();
    let mut held: Vec<String> = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let _ = send(&mut write_half, &error(format!("malformed request: {e}"))).await;
                continue;
            }
        };
        if let Request::Events { sandbox, after } = request {
            stream_events(&daemon, &mut write_half, sandbox.as_deref(), after.as_ref()).await;
            break;
        }
        if let Request::Destroy { name, .. } = &request {
            held.retain(|h| h != name);
        }
        let (d, by) = (Arc::clone(&daemon), requester.clone());
        let Ok((response, ephemeral)) = spawn_blocking(move || operate(&d, request, &by)).await
        else {
            break;
        };
        if let Some(name) = ephemeral {
            held.push(name);
        }
        if send(&mut write_half, &response).await.is_err() {
            break;
        }
    }
    if !held.is_empty() {
        let _ = spawn_blocking(move || release(&daemon, held)).await;
    }
}

/// Answers one request (not `events`); with the name of an ephemeral sandbox it created.
fn operate(daemon: &Shared, request: Request, requester: &str) -> (Response, Option<String>) {
    let response = match request {
        Request::Events { .. } => error("events: not here".to_owned()),
        Request::Create {
            name,
            policy,
            user,
            command,
            ephemeral,
            resolv_conf,
            dns_grace,
        } => {
            let spec = CreateSpec {
                name,
                policy,
                user,
                command,
                ephemeral,
                resolv_conf,
                dns_grace,
            };
            return match server::create(daemon, spec, requester) {
                Ok(r) => {
                    let held = match (&r, ephemeral) {
                        (Response::Created { sandbox, .. }, true) => Some(sandbox.name.clone()),
                        _ => None,
                    };
                    (r, held)
                }
                Err(e) => (refused(&e), None),
            };
        }
        Request::Destroy { name, exit_code } => lock(daemon)
            .destroy(&name, exit_code)
            .unwrap_or_else(|e| refused(&e)),
        Request::Apply { name, policy } => {
            server::apply(daemon, &name, Some(&policy), requester).unwrap_or_else(|e| refused(&e))
        }
        Request::Reload => super::persistent::reload(daemon, requester),
        Request::Inference {
            cgroup_id,
            known_sha256,
        } => {
            let d = lock(daemon);
            match d
                .sandboxes
                .values()
                .find(|s| s.state.cgroup_id == cgroup_id)
            {
                None => Response::NotASandbox,
                Some(s) => Response::Inference {
                    sandbox: s.state.name.clone(),
                    policy_sha256: s.state.policy_sha256.clone(),
                    rules: if known_sha256.as_deref() == Some(s.state.policy_sha256.as_str()) {
                        None
                    } else {
                        s.state.inference.clone()
                    },
                },
            }
        }
        Request::RecordInference { record } => match lock(daemon).record_inference(&record) {
            Ok(()) => Response::Recorded,
            Err(e) => error(e),
        },
        Request::List => {
            let d = lock(daemon);
            Response::Sandboxes {
                sandboxes: d.sandboxes.values().map(|s| d.info(s)).collect(),
            }
        }
    };
    (response, None)
}

/// A closed connection lets go of the ephemeral sandboxes it created; one no other
/// connection holds is destroyed.
fn release(daemon: &Shared, held: Vec<String>) {
    let mut d = lock(daemon);
    for name in held {
        let orphaned = d.sandboxes.get_mut(&name).is_some_and(|s| {
            s.holders = s.holders.saturating_sub(1);
            s.holders == 0
        });
        if orphaned {
            let _ = d.destroy(&name, None);
        }
    }
}

/// Streams records (of `sandbox`, or all) as they are written; with `after`, first the
/// sandbox's records the log holds after that one (see `audit::replay`).
async fn stream_events<W: AsyncWrite + Unpin>(
    daemon: &Shared,
    out: &mut W,
    sandbox: Option<&str>,
    after: Option<&serde_json::Value>,
) {
    // Subscribe before reading the log: a record written in between comes both ways, and
    // `Seen` drops the second copy.
    let (mut rx, log) = {
        let d = lock(daemon);
        let rx = d
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .subscribe();
        (rx, d.config.audit.log.clone())
    };
    let replayed = match (sandbox, after) {
        (Some(name), Some(last)) => {
            let (name, last, path) = (name.to_owned(), last.clone(), log.clone());
            match spawn_blocking(move || replay::after(&path, &name, &last)).await {
                Ok(Ok(missed)) => missed,
                Ok(Err(e)) => {
                    let _ = send(out, &error(format!("reading {}: {e}", log.display()))).await;
                    return;
                }
                Err(_) => return,
            }
        }
        _ => Vec::new(),
    };
    if send(out, &Response::Subscribed).await.is_err() {
        return;
    }
    let mut seen = replay::Seen::new(&replayed);
    for record in replayed {
        if send(out, &Response::Event { record }).await.is_err() {
            return;
        }
    }
    while let Some(line) = rx.recv().await {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(want) = sandbox
            && record.get("sandbox").and_then(|s| s.as_str()) != Some(want)
        {
            continue;
        }
        if seen.take(&record) {
            continue;
        }
        if send(out, &Response::Event { record }).await.is_err() {
            return;
        }
    }
}

/// Binds the control socket: mode 0660, group `group` (`nemoclaw`) where it exists. Called once the
/// daemon is ready, so a connectable socket means a started daemon. A leftover socket file
/// (the single-instance lock is ours, so no daemon answers there) is replaced.
pub(super) fn bind(path: &Path, group: &str) -> Result<UnixListener, DaemonError> {
    if path.exists() {
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io_err(path))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name(group) {
        nix::unistd::chown(path, None, Some(group.gid))
            .map_err(|e| io_err(path)(std::io::Error::from(e)))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(dir))?;
    }
    listener.set_nonblocking(true).map_err(io_err(path))?;
    UnixListener::from_std(listener).map_err(io_err(path))
}
