//! Whose rules apply to a connection: the daemon says which sandbox a cgroup is and sends
//! that sandbox's compiled `inference:` rules (cached here by policy hash, so a reload is
//! seen on the next request); clients outside every sandbox get the `--default-policy`
//! rules or nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::error::RouterError;
use super::scan::Scanner;
use crate::daemon::protocol::{Client, Request, Response};
use crate::policy::inference::InferenceRules;

/// The rules for one client, ready to scan with.
pub struct Rules {
    /// The sandbox's name (`default` for `--default-policy` clients).
    pub sandbox: String,
    /// The policy file's sha256, as the daemon reports it.
    pub policy_sha256: String,
    pub inference: InferenceRules,
    pub scanner: Arc<Scanner>,
}

/// What the directory knows of a cgroup.
pub enum Lookup {
    /// A sandbox (or the default policy) whose rules apply.
    Rules(Arc<Rules>),
    /// A sandbox whose policy has no `inference:` section.
    NoInference { sandbox: String },
    /// Not a sandbox, and no default policy.
    Unknown,
}

/// Where rules come from.
pub struct Directory {
    daemon: Option<PathBuf>,
    default: Option<Arc<Rules>>,
    cache: Mutex<HashMap<u64, Arc<Rules>>>,
    /// A persistent connection to the daemon (reconnected when it breaks).
    client: Mutex<Option<Client>>,
}

impl Directory {
    /// `daemon`: the control socket to ask (absent: no sandbox is known);
    /// `default`: rules for clients outside every sandbox.
    #[must_use]
    pub fn new(daemon: Option<PathBuf>, default: Option<Arc<Rules>>) -> Directory {
        Directory {
            daemon,
            default,
            cache: Mutex::new(HashMap::new()),
            client: Mutex::new(None),
        }
    }

    /// Whether a lookup asks the daemon (blocking); without one it answers at once.
    #[must_use]
    pub fn asks_daemon(&self) -> bool {
        self.daemon.is_some()
    }

    /// The rules for a connection from `cgroup_id`. Blocking (a control-socket round trip):
    /// call it off the async workers.
    pub fn lookup(&self, cgroup_id: u64) -> Result<Lookup, RouterError> {
        let Some(socket) = &self.daemon else {
            return Ok(self.default_or_unknown());
        };
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&cgroup_id)
            .cloned();
        let request = Request::Inference {
            cgroup_id,
            known_sha256: cached.as_ref().map(|r| r.policy_sha256.clone()),
        };
        let response = self.call(socket, &request)?;
        match response {
            Response::Inference {
                sandbox,
                policy_sha256,
                rules,
            } => match (rules, cached) {
                (None, Some(cached)) if cached.policy_sha256 == policy_sha256 => {
                    Ok(Lookup::Rules(cached))
                }
                (None, _) => {
                    self.forget(cgroup_id);
                    Ok(Lookup::NoInference { sandbox })
                }
                (Some(inference), _) => {
                    let scanner = Scanner::new(&inference).map_err(|e| {
                        RouterError::Internal(format!("sandbox {sandbox}: detectors: {e}"))
                    })?;
                    let rules = Arc::new(Rules {
                        sandbox,
                        policy_sha256,
                        inference,
                        scanner,
                    });
                    self.cache
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(cgroup_id, Arc::clone(&rules));
                    Ok(Lookup::Rules(rules))
                }
            },
            Response::NotASandbox => {
                self.forget(cgroup_id);
                Ok(self.default_or_unknown())
            }
            Response::Error { message } => Err(RouterError::Directory(message)),
            other => Err(RouterError::Directory(format!(
                "unexpected daemon answer {other:?}"
            ))),
        }
    }

    /// Sends an audit record to the daemon's trail.
    pub fn record(&self, record: serde_json::Value) -> Result<(), RouterError> {
        let Some(socket) = &self.daemon else {
            return Err(RouterError::Directory("no daemon to record to".into()));
        };
        match self.call(socket, &Request::RecordInference { record })? {
            Response::Recorded => Ok(()),
            Response::Error { message } => Err(RouterError::Directory(message)),
            other => Err(RouterError::Directory(format!(
                "unexpected daemon answer {other:?}"
            ))),
        }
    }

    /// Every scanner in use (for the code-fingerprint refresh).
    pub fn scanners(&self) -> Vec<Weak<Scanner>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .values()
            .map(|r| Arc::downgrade(&r.scanner))
            .chain(self.default.iter().map(|r| Arc::downgrade(&r.scanner)))
            .collect()
    }

    fn default_or_unknown(&self) -> Lookup {
        self.default.clone().map_or(Lookup::Unknown, Lookup::Rules)
    }

    fn forget(&self, cgroup_id: u64) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&cgroup_id);
    }

    /// One request on the persistent connection; one reconnect if it had broken.
    fn call(&self, socket: &std::path::Path, request: &Request) -> Result<Response, RouterError> {
        let mut client = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        for attempt in 0..2 {
            if client.is_none() {
                *client = Some(
                    Client::connect(socket).map_err(|e| RouterError::Directory(e.to_string()))?,
                );
            }
            let Some(c) = client.as_mut() else { continue };
            match c.call(request) {
                Ok(response) => return Ok(response),
                Err(e) if attempt == 1 => return Err(RouterError::Directory(e.to_string())),
                Err(_) => *client = None,
            }
        }
        Err(RouterError::Directory("daemon unreachable".into()))
    }
}

/// The rules of `--default-policy FILE`: its `inference:` section, compiled for the user
/// running the router (host names resolved as for any policy).
pub fn default_rules(path: &std::path::Path) -> anyhow::Result<Arc<Rules>> {
    use anyhow::Context;
    let (parsed, source) = crate::policy::load_with_source(path)?;
    let env = crate::policy::CompileEnv::for_uid(nix::unistd::getuid().as_raw())?;
    let compiled = crate::policy::compile(&parsed, &env)?;
    let inference = compiled.inference.with_context(|| {
        format!(
            "{}: --default-policy needs an `inference:` section",
            path.display()
        )
    })?;
    let scanner = Scanner::new(&inference)
        .map_err(|e| anyhow::anyhow!("{}: inference.detect: {e}", path.display()))?;
    Ok(Arc::new(Rules {
        sandbox: "default".to_owned(),
        policy_sha256: crate::audit::chain::line_hash(&source),
        inference,
        scanner,
    }))
}
