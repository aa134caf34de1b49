//! [`run`]: the daemon's runtime, and the tasks it starts around the [`Daemon`] (signals,
//! policy-file watcher, housekeeper, DNS refresh, audit-record counter, `/healthz` and
//! `/metrics`, the privacy router's supervisor) before it accepts control connections.

use std::{
    path::Path,
    sync::{Arc, PoisonError},
    time::Duration,
};

use super::{Config, Daemon, DaemonError, Shared, apply, io_err, lock};
use crate::{
    daemon::{boot, control, notify::dlog, refresh, tasks},
    policy,
    sandbox::controls as sandbox_controls,
};

/// Runs the daemon until a stop signal.
pub fn run(config: Config) -> Result<(), DaemonError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DaemonError::NotRoot);
    }
    for dir in [
        config.socket.parent(),
        config.state_file.parent(),
        config.audit.log.parent(),
    ]
    .into_iter()
    .flatten()
    {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let _lock = boot::single_instance(&config.state_file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("nemoclaw-daemon")
        .enable_all()
        .build()
        .map_err(io_err(Path::new("the daemon's tokio runtime")))?;
    runtime.block_on(serve(config))
}

/// Starts the daemon and its tasks on the current runtime, then accepts control
/// connections until a signal stops the process.
async fn serve(config: Config) -> Result<(), DaemonError> {
    let socket = config.socket.clone();
    let socket_group = config.socket_group.clone();
    let http_listen = config.http_listen;
    let watch_files = config.watch;
    let router = config.router.clone();
    let signals = tasks::Signals::register().map_err(io_err(&socket))?;
    let runtime = tokio::runtime::Handle::current();
    let (daemon, reader) = tokio::task::block_in_place(|| Daemon::start(config, &runtime))?;
    tokio::spawn(count_records(Arc::clone(&daemon)));
    tokio::spawn(tasks::handle_signals(
        Arc::clone(&daemon),
        reader,
        socket.clone(),
        signals,
    ));
    if watch_files {
        match tasks::Watcher::new() {
            Ok(w) => {
                let w = Arc::new(w);
                let mut d = lock(&daemon);
                for s in d.sandboxes.values() {
                    w.watch(&s.state.policy);
                }
                d.watcher = Some(Arc::clone(&w));
                drop(d);
                tokio::spawn(w.run(Arc::clone(&daemon)));
            }
            Err(e) => dlog!(
                Warning,
                "inotify unavailable ({e}); policy files are not watched"
            ),
        }
    }
    tokio::spawn(tasks::tidy(Arc::clone(&daemon)));
    let changed = Arc::clone(&lock(&daemon).dns_changed);
    tokio::spawn(tasks::refresh_dns(Arc::clone(&daemon), changed));
    {
        // Adopted sandboxes: a policy file changed while no daemon ran is applied now, and
        // host-name rules are resolved afresh (their refresh state did not survive).
        let d = Arc::clone(&daemon);
        let _ = tokio::task::spawn_blocking(move || {
            reapply_adopted(&d);
            // The configuration's persistent sandboxes, where not adopted.
            crate::daemon::persistent::ensure(&d, "configuration");
        })
        .await;
    }
    let listener = control::bind(&socket, &socket_group)?;
    // Enforcement does not wait on its observers: an address in use is logged, not fatal.
    if let Some(listen) = http_listen {
        match crate::daemon::http::bind(listen).await {
            Ok(http) => {
                dlog!(Info, "serving /healthz and /metrics on http://{listen}");
                tokio::spawn(crate::daemon::http::serve(http, Arc::clone(&daemon)));
            }
            Err(e) => dlog!(Error, "{e}; no /healthz or /metrics"),
        }
    }
    {
        let d = lock(&daemon);
        dlog!(
            Info,
            "listening on {}; enforcing {} ({} sandboxes adopted)",
            socket.display(),
            sandbox_controls::names(d.enforcer.attached()).join(", "),
            d.sandboxes.len()
        );
    }
    if let Some(spec) = router {
        let up = lock(&daemon).router_up.clone().unwrap_or_default();
        tokio::spawn(crate::daemon::router::supervise(spec, socket.clone(), up));
    }
    crate::daemon::notify::notify(crate::daemon::notify::READY);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(control::serve(Arc::clone(&daemon), stream));
            }
            Err(e) => {
                dlog!(Warning, "accept: {e}");
                // Out of descriptors, say: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Counts every audit record the daemon writes into its metrics. Runs forever.
async fn count_records(daemon: Shared) {
    let (mut records, metrics) = {
        let d = lock(&daemon);
        let records = d
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .subscribe();
        (records, Arc::clone(&d.metrics))
    };
    while let Some(line) = records.recv().await {
        if let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) {
            metrics.observe(&record);
        }
    }
}

/// Applies again each adopted sandbox's policy whose file changed while no daemon ran, or
/// which has host-name rules to resolve afresh.
fn reapply_adopted(daemon: &Shared) {
    let names: Vec<String> = lock(daemon).sandboxes.keys().cloned().collect();
    for name in names {
        let Some(policy) = lock(daemon)
            .sandboxes
            .get(&name)
            .map(|s| s.state.policy.clone())
        else {
            continue;
        };
        let host_names = policy::load(&policy).is_ok_and(|p| refresh::has_host_names(&p));
        if lock(daemon).unchanged(&name) && !host_names {
            continue;
        }
        if let Err(e) = apply(daemon, &name, None, "daemon restart") {
            dlog!(Warning, "{name}: {e}; its installed policy stays");
        }
    }
}
