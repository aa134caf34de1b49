//! The configuration's persistent sandboxes (`sandboxes:` in `nemoclaw.yaml`): created at
//! start when not adopted, pointed at their configured policy file, and reloaded with the
//! rest. A reload (SIGHUP, `systemctl reload`, `nemoclaw daemon reload`) reads the
//! configuration file again for its list, then re-reads every policy file; each policy is
//! applied atomically by the daemon's operations, and a failure keeps the policy in force
//! and is recorded for `/healthz`.

use std::path::Path;

use super::{
    notify::{self, dlog},
    protocol::Response,
    server::{self, CreateSpec, Shared, lock},
};
use crate::config::{NemoclawConfig, PersistentSandbox};

/// Creates each configured sandbox the daemon does not have, and points each one it has
/// at its configured policy file (a changed `policy:`). Failures are logged and recorded.
pub(super) fn ensure(daemon: &Shared, requester: &str) {
    let configured = lock(daemon).configured.clone();
    for wanted in configured {
        let existing = lock(daemon)
            .sandboxes
            .get(&wanted.name)
            .map(|s| (s.state.policy.clone(), s.state.user.clone()));
        match existing {
            Some((policy, user)) => {
                if user != wanted.user {
                    dlog!(
                        Warning,
                        "sandbox {}: configured for user {} but runs for {user}; destroy it \
                         (`nemoclaw` restarts create it again) to change its user",
                        wanted.name,
                        wanted.user
                    );
                }
                if policy != wanted.policy
                    && let Err(e) =
                        server::apply(daemon, &wanted.name, Some(&wanted.policy), requester)
                {
                    dlog!(
                        Error,
                        "sandbox {}: {}: {e}; its installed policy stays",
                        wanted.name,
                        wanted.policy.display()
                    );
                }
            }
            None => create(daemon, &wanted, requester),
        }
    }
}

/// Creates one configured sandbox; a failure is recorded as its last reload.
fn create(daemon: &Shared, wanted: &PersistentSandbox, requester: &str) {
    let started = std::time::Instant::now();
    let spec = CreateSpec {
        name: Some(wanted.name.clone()),
        policy: wanted.policy.clone(),
        user: wanted.user.clone(),
        command: Vec::new(),
        ephemeral: false,
        resolv_conf: None,
        dns_grace: None,
    };
    match server::create(daemon, spec, requester) {
        Ok(Response::Created { notices, .. }) => {
            dlog!(
                Info,
                "sandbox {} created from the configuration ({})",
                wanted.name,
                wanted.policy.display()
            );
            for notice in notices {
                dlog!(Notice, "sandbox {}: {notice}", wanted.name);
            }
        }
        Ok(_) => {}
        Err(e) => {
            dlog!(
                Error,
                "sandbox {}: not created from {}: {e}",
                wanted.name,
                wanted.policy.display()
            );
            lock(daemon).reloaded(&wanted.name, Err(e.to_string()), started.elapsed());
        }
    }
}

/// A reload: systemd hears `RELOADING=1`, the configuration file (if the daemon was
/// started with one) is read again for its sandboxes (an invalid file is logged and the
/// list kept), configured sandboxes are created or re-pointed, every policy file is
/// re-read, then systemd hears `READY=1`.
pub(super) fn reload(daemon: &Shared, requester: &str) -> Response {
    notify::notify(notify::RELOADING);
    let file = lock(daemon).config.config_file.clone();
    if let Some(file) = file {
        reread(daemon, &file);
    }
    ensure(daemon, requester);
    let response = server::reload_all(daemon, requester);
    notify::notify(notify::READY);
    response
}

/// Takes the configuration file's sandboxes again; the rest of it needs a restart.
fn reread(daemon: &Shared, file: &Path) {
    match NemoclawConfig::load(file) {
        Ok(config) => {
            let mut d = lock(daemon);
            let removed: Vec<&str> = d
                .configured
                .iter()
                .filter(|old| !config.sandboxes.iter().any(|new| new.name == old.name))
                .map(|old| old.name.as_str())
                .collect();
            if !removed.is_empty() {
                dlog!(
                    Notice,
                    "no longer configured, kept until destroyed: {}",
                    removed.join(", ")
                );
            }
            d.configured = config.sandboxes;
        }
        Err(e) => dlog!(
            Error,
            "reload: {e}; the configured sandboxes stay as they were"
        ),
    }
}
