//! The privacy router as the daemon's child (`nemoclaw daemon --router CONFIG`): started
//! once the control socket answers, as an unprivileged user (the router drops root itself
//! after reading its configuration and keys), restarted with a growing delay when it
//! exits, and stopped with the daemon (the kernel sends it SIGTERM when the daemon dies,
//! however it dies).

use std::path::PathBuf;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use std::time::Duration;

use super::notify::dlog;

/// What the daemon needs to start the router.
#[derive(Clone, Debug)]
pub struct RouterSpec {
    /// The router's configuration (`router.yaml`).
    pub config: PathBuf,
    /// The user it runs as.
    pub user: String,
}

/// The first restart delay, and the longest.
const RESTART_FIRST: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);
/// A run this long resets the delay (the router was healthy).
const HEALTHY_RUN: Duration = Duration::from_mins(1);

/// Runs the router until the daemon exits, restarting it when it stops.
/// `up` says whether it runs now (for `/healthz` and `nemoclaw_router_up`).
pub async fn supervise(spec: RouterSpec, socket: PathBuf, up: Arc<AtomicBool>) {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            dlog!(Warning, "cannot start the router: {e}");
            return;
        }
    };
    let mut delay = RESTART_FIRST;
    loop {
        let mut command = tokio::process::Command::new(&exe);
        command
            .arg("router")
            .arg("--config")
            .arg(&spec.config)
            .args(["--user", &spec.user])
            .arg("--daemon-socket")
            .arg(&socket)
            .stdin(std::process::Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // prctl(2), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let started = tokio::time::Instant::now();
        match command.spawn() {
            Ok(mut child) => {
                up.store(true, Ordering::Relaxed);
                dlog!(
                    Info,
                    "router started (pid {}, config {}, user {})",
                    child.id().unwrap_or(0),
                    spec.config.display(),
                    spec.user
                );
                match child.wait().await {
                    Ok(status) => dlog!(Warning, "router exited ({status})"),
                    Err(e) => dlog!(Warning, "router: {e}"),
                }
                up.store(false, Ordering::Relaxed);
            }
            Err(e) => dlog!(Warning, "cannot start the router: {e}"),
        }
        if started.elapsed() >= HEALTHY_RUN {
            delay = RESTART_FIRST;
        }
        dlog!(Notice, "restarting the router in {} s", delay.as_secs());
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RESTART_MAX);
    }
}
