//! The daemon's HTTP endpoint (`http.listen`, loopback by default) on its tokio runtime:
//! `GET /healthz` ([`super::health`]) and `GET /metrics` ([`super::metrics`]); anything
//! else is 404. Each connection has a deadline for its request head and one for its whole
//! life, and their number is capped: a slow or greedy client cannot hold the daemon.

use std::{
    convert::Infallible,
    net::SocketAddr,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore, task::spawn_blocking};

use super::{
    health::{self, HealthInput, RouterHealth, SandboxHealth},
    metrics::{self, Snapshot},
    notify::dlog,
    server::{Daemon, DaemonError, Shared, io_err, lock},
};
use crate::{kernel::loader::Lack, sandbox::controls as sandbox_controls};

/// A client must send its request head within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// ... and be done within this.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 32;
/// How long a probe of a router running as its own service may take.
const ROUTER_PROBE: Duration = Duration::from_secs(1);

/// Binds `listen` (before the daemon reports ready).
pub(super) async fn bind(listen: SocketAddr) -> Result<TcpListener, DaemonError> {
    let name = PathBuf::from(format!("http.listen {listen}"));
    TcpListener::bind(listen).await.map_err(io_err(&name))
}

/// Serves `/healthz` and `/metrics` until the daemon exits.
pub(super) async fn serve(listener: TcpListener, daemon: Shared) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                dlog!(Warning, "http accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let daemon = Arc::clone(&daemon);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let daemon = Arc::clone(&daemon);
                async move { Ok::<_, Infallible>(handle(&daemon, &request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(16 << 10)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
            drop(permit);
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn handle(daemon: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(path, "/healthz" | "/metrics") {
        return reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into());
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    let router = router_health(daemon).await;
    let d = Arc::clone(daemon);
    if path == "/healthz" {
        let built = spawn_blocking(move || health::report(&health_input(&lock(&d), router))).await;
        return match built {
            Ok((status, body)) => reply(
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "application/json",
                format!("{body}\n"),
            ),
            Err(_) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                String::new(),
            ),
        };
    }
    let encoded = spawn_blocking(move || {
        let (snapshot, metrics, pin_dir) = {
            let daemon = lock(&d);
            let snapshot = metrics_snapshot(&daemon, router);
            let pin_dir = daemon.config.pin_dir.clone();
            (snapshot, Arc::clone(&daemon.metrics), pin_dir)
        };
        let snapshot = Snapshot {
            programs: program_stats(&pin_dir),
            ..snapshot
        };
        metrics.encode(&snapshot)
    })
    .await;
    match encoded {
        Ok(text) => reply(StatusCode::OK, metrics::CONTENT_TYPE, text),
        Err(_) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            String::new(),
        ),
    }
}

/// The router's state: the daemon's child (running or not), or a router running as its
/// own service at `router.listen` (answers a TCP connect), or none.
async fn router_health(daemon: &Shared) -> RouterHealth {
    let (child, listen) = {
        let d = lock(daemon);
        (d.router_up.clone(), d.config.router_listen)
    };
    if let Some(up) = child {
        return RouterHealth {
            configured: true,
            up: up.load(Ordering::Relaxed),
        };
    }
    let Some(address) = listen else {
        return RouterHealth::default();
    };
    let connected = tokio::time::timeout(ROUTER_PROBE, tokio::net::TcpStream::connect(address))
        .await
        .is_ok_and(|r| r.is_ok());
    RouterHealth {
        configured: true,
        up: connected,
    }
}

/// What `/healthz` reports, from the daemon's state.
fn health_input(d: &Daemon, router: RouterHealth) -> HealthInput {
    let configured = |name: &str| d.configured.iter().any(|c| c.name == name);
    let mut sandboxes: Vec<SandboxHealth> = d
        .sandboxes
        .values()
        .map(|s| {
            let book = d.reloads.by_sandbox.get(&s.state.name);
            SandboxHealth {
                name: s.state.name.clone(),
                policy: s.state.policy.clone(),
                generation: book.map_or(1, |b| b.generation),
                sha256: Some(s.state.policy_sha256.clone()),
                configured: configured(&s.state.name),
                last_reload: book.and_then(|b| b.last.clone()),
            }
        })
        .collect();
    // Configured but not there: its creation failed (recorded as its last reload).
    for c in &d.configured {
        if !d.sandboxes.contains_key(&c.name) {
            let book = d.reloads.by_sandbox.get(&c.name);
            sandboxes.push(SandboxHealth {
                name: c.name.clone(),
                policy: c.policy.clone(),
                generation: 0,
                sha256: None,
                configured: true,
                last_reload: Some(book.and_then(|b| b.last.clone()).unwrap_or(
                    health::LastReload {
                        ok: false,
                        error: Some("not created".to_owned()),
                        at: String::new(),
                    },
                )),
            });
        }
    }
    let withdrawn = d
        .unavailable
        .iter()
        .filter(|u| u.lack == Lack::SelfTest)
        .flat_map(|u| sandbox_controls::names(u.controls))
        .map(str::to_owned)
        .collect();
    HealthInput {
        kernel: d.kernel.clone(),
        controls: sandbox_controls::names(d.enforcer.attached())
            .into_iter()
            .map(str::to_owned)
            .collect(),
        withdrawn,
        sandboxes,
        router,
        reloads: d.reloads.total,
    }
}

/// What a scrape reads from the daemon's state (the programs' run times are read after,
/// without the lock).
fn metrics_snapshot(d: &Daemon, router: RouterHealth) -> Snapshot {
    Snapshot {
        events_lost: d.enforcer.events_lost().unwrap_or(0),
        policies: d
            .sandboxes
            .values()
            .map(|s| {
                let generation = d
                    .reloads
                    .by_sandbox
                    .get(&s.state.name)
                    .map_or(1, |b| b.generation);
                (
                    s.state.name.clone(),
                    s.state.policy_sha256.clone(),
                    generation,
                )
            })
            .collect(),
        programs: Vec::new(),
        router_up: router.configured.then_some(router.up),
    }
}

/// Each pinned program's run time (ns) and run count, where `kernel.bpf_stats_enabled`
/// is 1 (the kernel counts nothing otherwise); read from the program's `fdinfo`.
fn program_stats(pin_dir: &Path) -> Vec<(String, u64, u64)> {
    let enabled = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .is_ok_and(|v| v.trim() == "1");
    if !enabled {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(pin_dir.join("progs")) else {
        return Vec::new();
    };
    let mut stats = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(fd) = aya::programs::ProgramInfo::from_pin(entry.path()).and_then(|i| i.fd()) else {
            continue;
        };
        let raw = std::os::fd::AsFd::as_fd(&fd).as_raw_fd();
        let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{raw}")) else {
            continue;
        };
        if let (Some(time), Some(runs)) = (fdinfo(&info, "run_time_ns"), fdinfo(&info, "run_cnt")) {
            stats.push((name, time, runs));
        }
    }
    stats.sort();
    stats
}

/// A numeric field of an `fdinfo` text.
fn fdinfo(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn fdinfo_fields() {
        let text = "pos:\t0\nprog_type:\t18\nrun_time_ns:\t1234\nrun_cnt:\t5\n";
        assert_eq!(super::fdinfo(text, "run_time_ns"), Some(1234));
        assert_eq!(super::fdinfo(text, "run_cnt"), Some(5));
        assert_eq!(super::fdinfo(text, "missing"), None);
    }
}
