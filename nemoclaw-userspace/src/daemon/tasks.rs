//! The daemon's background work, as tokio tasks: the DNS refresh of host-name rules, the
//! policy-file watcher, the housekeeper, and the signals (SIGHUP reloads, SIGTERM and
//! SIGINT stop and leave enforcement pinned). Blocking work (DNS, compiling, the kernel
//! maps, cgroups) runs on tokio's blocking pool, never on a task's thread.

use std::{
    collections::HashMap,
    os::fd::{AsFd as _, AsRawFd, RawFd},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{Signal, SignalKind, signal},
    sync::Notify,
    task::spawn_blocking,
    time::Instant,
};

use super::notify::dlog;
use super::{
    refresh::RefreshSpec,
    server::{self, Shared, lock},
};
use crate::audit::{
    lifecycle::{Lifecycle, now},
    reader::AuditReader,
};

/// How often the housekeeper looks for ephemeral sandboxes whose creator is gone and for
/// deny events the kernel dropped.
const TIDY_EVERY: Duration = Duration::from_secs(1);

/// Keeps host-name rules current: re-resolves each sandbox's names when their answers
/// expire (on the blocking pool: DNS may be slow, and the daemon's lock is not held
/// meanwhile) and updates its slot's network entries in place. Changes are audit records
/// (`dns_change`). Sleeps until the next answer expires, or until `changed` says a
/// sandbox's host-name rules were replaced. Runs forever.
pub(super) async fn refresh_dns(daemon: Shared, changed: Arc<Notify>) {
    // Per sandbox: which spec (by its allocation: a reload replaces it) is due when.
    let mut due: HashMap<String, (usize, Instant)> = HashMap::new();
    loop {
        let specs: Vec<(String, Arc<Mutex<RefreshSpec>>)> = lock(&daemon)
            .sandboxes
            .iter()
            .filter_map(|(name, s)| s.dns.as_ref().map(|d| (name.clone(), Arc::clone(d))))
            .collect();
        due.retain(|name, _| specs.iter().any(|(n, _)| n == name));
        let mut next: Option<Instant> = None;
        for (name, spec) in specs {
            let id = Arc::as_ptr(&spec) as usize;
            let at = match due.get(&name) {
                Some(&(known, at)) if known == id => at,
                _ => Instant::from_std(spec_of(&spec).next_refresh()),
            };
            let at = if Instant::now() < at {
                at
            } else {
                let (d, n) = (Arc::clone(&daemon), name.clone());
                spawn_blocking(move || refresh_one(&d, &n, &spec))
                    .await
                    .map_or_else(|_| Instant::now() + TIDY_EVERY, Instant::from_std)
            };
            due.insert(name, (id, at));
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        let wake = next.unwrap_or_else(|| Instant::now() + Duration::from_hours(1));
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = changed.notified() => {}
        }
    }
}

fn spec_of(spec: &Mutex<RefreshSpec>) -> std::sync::MutexGuard<'_, RefreshSpec> {
    spec.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One sandbox's refresh; returns when it is due next.
fn refresh_one(daemon: &Shared, name: &str, spec: &Mutex<RefreshSpec>) -> std::time::Instant {
    let mut spec = spec_of(spec);
    let slot = spec.slot;
    let lines = spec.refresh(|old, new| {
        let mut d = lock(daemon);
        // A reload since: its fresh slot was compiled from fresh answers already.
        if d.sandboxes.get(name).is_none_or(|s| s.state.slot != slot) {
            return Ok(());
        }
        d.enforcer.update_net(slot, old, new)
    });
    let d = lock(daemon);
    for change in lines {
        d.log(&Lifecycle::DnsChange {
            time: now(),
            sandbox: name.to_owned(),
            change,
        });
    }
    spec.next_refresh()
}

/// Destroys ephemeral sandboxes whose creator is gone, and records deny events the kernel
/// dropped. Runs forever.
pub(super) async fn tidy(daemon: Shared) {
    let mut tick = tokio::time::interval(TIDY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let d = Arc::clone(&daemon);
        let _ = spawn_blocking(move || lock(&d).tidy()).await;
    }
}

/// The inotify instance, as a descriptor tokio can wait on.
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Watches the directories of the sandboxes' policy files (a directory, not the file, so
/// files renamed into place are seen too).
pub struct Watcher {
    inotify: AsyncFd<InotifyFd>,
    dirs: Mutex<HashMap<WatchDescriptor, PathBuf>>,
}

impl Watcher {
    /// A watcher on the current tokio runtime.
    pub(super) fn new() -> std::io::Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        // SAFETY: `InotifyFd` owns the inotify descriptor and returns that same one for as
        // long as the `AsyncFd` owns it.
        let inotify =
            unsafe { AsyncFd::register_with_interest(InotifyFd(inotify), Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
        Ok(Self {
            inotify,
            dirs: Mutex::new(HashMap::new()),
        })
    }

    /// Starts watching `file`'s directory (again watching a directory is a no-op).
    pub(super) fn watch(&self, file: &Path) {
        let Some(dir) = file.parent() else { return };
        match self.inotify.get_ref().0.add_watch(
            dir,
            AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
        ) {
            Ok(wd) => {
                self.dirs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(wd, dir.to_owned());
            }
            Err(e) => dlog!(
                Warning,
                "cannot watch {}: {e}; use `nemoclaw policy apply` or SIGHUP",
                dir.display()
            ),
        }
    }

    /// The files named by the events waiting now (empty when there were none after all).
    fn take_paths(
        &self,
        guard: &mut tokio::io::unix::AsyncFdReadyGuard<'_, InotifyFd>,
    ) -> Vec<PathBuf> {
        let Ok(Ok(events)) =
            guard.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from))
        else {
            return Vec::new();
        };
        let dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
        events
            .into_iter()
            .filter_map(|event| Some(dirs.get(&event.wd)?.join(event.name?)))
            .collect()
    }

    /// Re-applies policies whose files are rewritten (closed after writing, or renamed
    /// into place). Runs forever.
    pub(super) async fn run(self: Arc<Self>, daemon: Shared) {
        loop {
            let Ok(mut guard) = self.inotify.readable().await else {
                return;
            };
            let paths = self.take_paths(&mut guard);
            drop(guard);
            if paths.is_empty() {
                continue;
            }
            let d = Arc::clone(&daemon);
            let _ = spawn_blocking(move || reapply(&d, &paths)).await;
        }
    }
}

/// Applies again the policy of every sandbox using one of `paths` whose file changed.
fn reapply(daemon: &Shared, paths: &[PathBuf]) {
    for path in paths {
        let using = lock(daemon).using_file(path);
        for sandbox in using {
            if let Err(e) = server::reload_from_file(daemon, &sandbox, "policy file watch") {
                dlog!(Warning, "{sandbox}: reload from {}: {e}", path.display());
            }
        }
    }
}

/// The signals the daemon handles, registered before it starts (a SIGTERM that arrives
/// while it loads waits for the handler instead of killing it half-started).
pub(super) struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    pub(super) fn register() -> std::io::Result<Self> {
        Ok(Self {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }
}

/// SIGHUP reloads every policy; SIGTERM and SIGINT stop the daemon. Stopping drains the
/// audit reader first (every deny event the kernel has delivered is written), then writes
/// the stop record and leaves every sandbox enforced by the pinned programs.
pub(super) async fn handle_signals(
    daemon: Shared,
    reader: AuditReader,
    socket: PathBuf,
    mut signals: Signals,
) {
    loop {
        tokio::select! {
            _ = signals.hangup.recv() => {
                let d = Arc::clone(&daemon);
                if let Ok(r) = spawn_blocking(move || super::persistent::reload(&d, "SIGHUP")).await {
                    dlog!(
                        Info, "SIGHUP: {}",
                        serde_json::to_string(&r).unwrap_or_default()
                    );
                }
            }
            _ = signals.terminate.recv() => break,
            _ = signals.interrupt.recv() => break,
        }
    }
    super::notify::notify(super::notify::STOPPING);
    let _ = std::fs::remove_file(&socket);
    reader.finish().await;
    let _ = spawn_blocking(move || lock(&daemon).stop_record()).await;
    std::process::exit(0);
}
