//! The daemon's background work, each on its own thread: the DNS refresh of host-name
//! rules, the policy-file watcher, and the signal handler (SIGHUP reloads, SIGTERM and
//! SIGINT stop and leave enforcement pinned).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use super::{
    refresh::RefreshSpec,
    server::{self, Shared, lock},
};
use crate::audit::{
    lifecycle::{Lifecycle, now},
    reader::AuditReader,
};

/// Keeps host-name rules current: re-resolves each sandbox's names when their answers
/// expire (outside the daemon's lock: DNS may be slow) and updates its slot's network
/// entries in place. Changes are audit records (`dns_change`). Runs forever.
pub(super) fn refresh_dns(daemon: &Shared) {
    let mut due: std::collections::HashMap<String, std::time::Instant> =
        std::collections::HashMap::new();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let specs: Vec<(String, Arc<Mutex<RefreshSpec>>)> = lock(daemon)
            .sandboxes
            .iter()
            .filter_map(|(name, s)| s.dns.as_ref().map(|d| (name.clone(), Arc::clone(d))))
            .collect();
        due.retain(|name, _| specs.iter().any(|(n, _)| n == name));
        for (name, spec) in specs {
            let mut spec = spec.lock().unwrap_or_else(PoisonError::into_inner);
            let at = *due
                .entry(name.clone())
                .or_insert_with(|| spec.next_refresh());
            if std::time::Instant::now() < at {
                continue;
            }
            let slot = spec.slot;
            let lines = spec.refresh(|old, new| {
                let mut d = lock(daemon);
                // A reload since: its fresh slot was compiled from fresh answers already.
                if d.sandboxes.get(&name).is_none_or(|s| s.state.slot != slot) {
                    return Ok(());
                }
                d.enforcer.update_net(slot, old, new)
            });
            due.insert(name.clone(), spec.next_refresh());
            let d = lock(daemon);
            for change in lines {
                d.log(&Lifecycle::DnsChange {
                    time: now(),
                    sandbox: name.clone(),
                    change,
                });
            }
        }
    }
}

/// Watches the directories of the sandboxes' policy files (a directory, not the file, so
/// files renamed into place are seen too).
pub struct Watcher {
    inotify: nix::sys::inotify::Inotify,
    dirs: Mutex<std::collections::HashMap<nix::sys::inotify::WatchDescriptor, PathBuf>>,
}

impl Watcher {
    pub(super) fn new() -> nix::Result<Self> {
        use nix::sys::inotify::{InitFlags, Inotify};
        Ok(Self {
            inotify: Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?,
            dirs: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Starts watching `file`'s directory (again watching a directory is a no-op).
    pub(super) fn watch(&self, file: &Path) {
        use nix::sys::inotify::AddWatchFlags;
        let Some(dir) = file.parent() else { return };
        match self.inotify.add_watch(
            dir,
            AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
        ) {
            Ok(wd) => {
                self.dirs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(wd, dir.to_owned());
            }
            Err(e) => eprintln!(
                "nemoclaw daemon: cannot watch {}: {e}; use `nemoclaw policy apply` or SIGHUP",
                dir.display()
            ),
        }
    }

    /// Re-applies policies whose files are rewritten (closed after writing, or renamed
    /// into place). Runs forever.
    pub(super) fn run(&self, daemon: &Shared) {
        loop {
            let mut pfd = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&self.inotify),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::NONE);
            let Ok(events) = self.inotify.read_events() else {
                continue;
            };
            for event in events {
                let Some(name) = event.name else { continue };
                let Some(dir) = self
                    .dirs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&event.wd)
                    .cloned()
                else {
                    continue;
                };
                let path = dir.join(name);
                let using = lock(daemon).using_file(&path);
                for sandbox in using {
                    if lock(daemon).unchanged(&sandbox) {
                        continue;
                    }
                    if let Err(e) = server::apply(daemon, &sandbox, None, "policy file watch") {
                        eprintln!(
                            "nemoclaw daemon: {sandbox}: reload from {}: {e}",
                            path.display()
                        );
                    }
                }
            }
        }
    }
}

/// SIGHUP reloads every policy; SIGTERM and SIGINT stop the daemon.
pub(super) fn daemon_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    set
}

/// Handles the (already blocked) daemon signals in one thread. Stopping drains the audit
/// reader first (every deny event the kernel has delivered is written), then writes the
/// stop record and leaves every sandbox enforced by the pinned programs.
pub(super) fn handle_signals(
    daemon: Shared,
    reader: AuditReader,
    socket: PathBuf,
    set: nix::sys::signal::SigSet,
) {
    use nix::sys::signal::Signal;
    std::thread::spawn(move || {
        loop {
            match set.wait() {
                Ok(Signal::SIGHUP) => {
                    let r = server::reload_all(&daemon, "SIGHUP");
                    eprintln!(
                        "nemoclaw daemon: SIGHUP: {}",
                        serde_json::to_string(&r).unwrap_or_default()
                    );
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(&socket);
                    reader.finish();
                    lock(&daemon).stop_record();
                    std::process::exit(0);
                }
                Err(_) => {}
            }
        }
    });
}
