//! `nemoclaw daemon`: the [`Daemon`]'s state and operations (create, destroy, apply,
//! reload). Its start (`start`: enforcement adopted or loaded and proven, sandboxes
//! restored) and [`run`] (the runtime and the tasks around the daemon) are the children
//! `server/start.rs` and `server/serve.rs`.
//!
//! One tokio runtime runs it all as tasks: the accept loop (a task per connection,
//! `control`), the signals, the policy-file watcher, the DNS refresh and the housekeeper
//! (`tasks`), the audit reader (`audit::reader`) and every sandbox's DNS gateway
//! (`dnsgate`). All share one [`Daemon`] behind a mutex, which is held only for short
//! state changes; the operations (compile, resolve, kernel maps, cgroups) run on tokio's
//! blocking pool. Decisions themselves are taken in the kernel and never wait for any of
//! them.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use nemoclaw_common::{
    event::DenyEvent,
    sandbox::{SandboxEntry, Slot, controls},
};

use super::notify::dlog;
use super::{
    boot,
    error::OpError,
    health::{KernelFacts, ReloadBook},
    host::{Cgroup, Cgroups, Kernel},
    metrics::Metrics,
    protocol::{Account, Response, SandboxInfo},
    refresh::{self, RefreshSpec, TtlResolver},
    registry::{RuleBook, SandboxState, Slots, StateFile, check_name, generate_name, rule_changes},
    tasks,
};
use crate::{
    audit::{
        chain::line_hash,
        lifecycle::{Lifecycle, PolicyRef, now},
        reader::{Citations, SharedSink},
    },
    config::{AuditSettings, PersistentSandbox},
    dnsgate::{
        gateway::{Gate, GateSpec, Gateway},
        names::AllowedNames,
    },
    kernel::KernelError,
    policy::{self, CompileEnv, CompiledPolicy, compiled::RuleRef},
    sandbox::{cgroup::CgroupError, controls as sandbox_controls, user::SandboxUser},
};

/// Where the daemon keeps things.
#[derive(Clone, Debug)]
pub struct Config {
    pub socket: PathBuf,
    pub pin_dir: PathBuf,
    pub state_file: PathBuf,
    pub resolv_conf: PathBuf,
    /// How long an address DNS stopped returning stays allowed.
    pub dns_grace: Duration,
    /// The parent cgroup of this daemon's sandboxes (under the cgroup v2 mount).
    pub cgroup_root: String,
    /// Re-apply a sandbox's policy when its file is rewritten.
    pub watch: bool,
    /// The privacy router to run as a child, if any.
    pub router: Option<super::router::RouterSpec>,
    /// The control socket's group (mode 0660), where it exists.
    pub socket_group: String,
    /// Where `/healthz` and `/metrics` are served, if anywhere.
    pub http_listen: Option<SocketAddr>,
    /// A router running as its own service, probed by `/healthz` (when not a child).
    pub router_listen: Option<SocketAddr>,
    /// The persistent sandboxes of the configuration (created at start, re-applied on
    /// reload).
    pub sandboxes: Vec<PersistentSandbox>,
    /// The configuration file, read again on reload for its `sandboxes` (none: flags only).
    pub config_file: Option<PathBuf>,
    /// The audit trail: the chained log, its rotation and the OCSF output.
    pub audit: AuditSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the daemon must run as root: it loads eBPF programs and creates cgroups")]
    NotRoot,
    #[error("another daemon holds {0}")]
    AlreadyRunning(PathBuf),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("{0}")]
    Adopt(String),
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |error| DaemonError::Io {
        path: path.to_owned(),
        error,
    }
}

/// What a new sandbox is made of (the control socket's `create` request, checked).
pub(super) struct CreateSpec {
    /// Its name; `None`: the daemon picks a free one.
    pub name: Option<String>,
    /// The policy file (absolute).
    pub policy: PathBuf,
    pub user: String,
    /// For the record: what the caller will run in it.
    pub command: Vec<String>,
    /// Destroyed when the connection that made it closes.
    pub ephemeral: bool,
    /// Nameservers for its host-name rules and DNS gateway (default: the daemon's).
    pub resolv_conf: Option<PathBuf>,
    /// Seconds a vanished address stays allowed (default: the daemon's).
    pub dns_grace: Option<u64>,
}

/// A policy compiled by the daemon.
struct Compiled {
    policy: CompiledPolicy,
    sha256: String,
    notices: Vec<String>,
    dns: Option<RefreshSpec>,
    /// What its DNS gateway answers, and where it asks.
    names: AllowedNames,
    nameservers: Vec<SocketAddr>,
    /// Its compiled `inference:` section, for the privacy router.
    inference: Option<crate::policy::inference::InferenceRules>,
}

pub(super) struct Sandbox {
    pub(super) state: SandboxState,
    /// Host-name rules: what the DNS refresh works from (not kept across restarts; an
    /// adopting daemon re-applies such policies).
    pub(super) dns: Option<Arc<Mutex<RefreshSpec>>>,
    cgroup: Box<dyn Cgroup>,
    /// Its DNS gateway (policies with a network section).
    gate: Option<Gate>,
    /// Open connections that created it (an ephemeral sandbox goes when none is left).
    pub(super) holders: usize,
}

/// Everything the daemon owns.
pub struct Daemon {
    pub(super) config: Config,
    /// The kernel side: the loaded or adopted [`Enforcer`] (a fake in unit tests).
    pub(super) enforcer: Box<dyn Kernel>,
    /// Where sandbox cgroups are made (the cgroup v2 hierarchy; a fake in unit tests).
    cgroups: Box<dyn Cgroups>,
    pub(super) sandboxes: BTreeMap<String, Sandbox>,
    slots: Slots,
    book: Arc<Mutex<RuleBook>>,
    pub(super) sink: SharedSink,
    object_sha256: String,
    events_lost_seen: u64,
    watcher: Option<Arc<tasks::Watcher>>,
    /// Held by each reload from a policy file ([`reload_from_file`]).
    file_reloads: Arc<Mutex<()>>,
    /// Why controls are unavailable here (not attached, or their self-test failed).
    pub(super) unavailable: Vec<boot::Unavailable>,
    /// Serves every sandbox's DNS gateway.
    gateway: Gateway,
    /// Told when a sandbox's host-name rules are replaced (the DNS refresh reschedules).
    dns_changed: Arc<tokio::sync::Notify>,
    /// Each sandbox's policy generation and last reload (for `/healthz`).
    pub(super) reloads: ReloadBook,
    /// What `/metrics` exports.
    pub(super) metrics: Arc<Metrics>,
    /// This kernel's features, read at start (for `/healthz`).
    pub(super) kernel: KernelFacts,
    /// The persistent sandboxes the configuration names now.
    pub(super) configured: Vec<PersistentSandbox>,
    /// Whether the router the daemon runs as its child is running (`None`: no child).
    pub(super) router_up: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Drains the deny-event ring buffer into the audit log (the audit reader's
    /// [`Drain`](crate::audit::reader::Drain); `None` in unit tests unless one sets it): before a sandbox's stop
    /// record, so that its deny records all come first.
    pub(super) audit_drain: Option<Box<dyn Fn() + Send>>,
}

pub type Shared = Arc<Mutex<Daemon>>;

/// What a [`Daemon`] is assembled from: the host parts [`Daemon::start`] opens (or a unit
/// test's fakes) and the sandboxes restored with them.
pub(super) struct Parts {
    pub(super) config: Config,
    pub(super) enforcer: Box<dyn Kernel>,
    pub(super) cgroups: Box<dyn Cgroups>,
    pub(super) sandboxes: BTreeMap<String, Sandbox>,
    /// Slots to sweep before any is handed out: those the state file lists as released,
    /// and those of saved sandboxes gone while no daemon ran.
    pub(super) released: Vec<Slot>,
    pub(super) unavailable: Vec<boot::Unavailable>,
    pub(super) sink: SharedSink,
    pub(super) book: Arc<Mutex<RuleBook>>,
    pub(super) gateway: Gateway,
}

pub(super) fn lock(d: &Shared) -> MutexGuard<'_, Daemon> {
    d.lock().unwrap_or_else(PoisonError::into_inner)
}

struct DaemonCitations(Arc<Mutex<RuleBook>>);

impl Citations for DaemonCitations {
    fn cite(&self, event: &DenyEvent) -> (Option<String>, Arc<Vec<RuleRef>>) {
        let book = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match book.get(event.slot) {
            Some((name, rules)) => (Some(name), rules),
            None => (None, Arc::new(Vec::new())),
        }
    }
}

impl Daemon {
    /// The daemon over `parts`: its slots those of the restored sandboxes, the released
    /// ones swept, the kernel's dropped-event count taken as seen.
    pub(super) fn assemble(parts: Parts) -> Self {
        let Parts {
            config,
            enforcer,
            cgroups,
            sandboxes,
            released,
            unavailable,
            sink,
            book,
            gateway,
        } = parts;
        let events_lost_seen = enforcer.events_lost().unwrap_or(0);
        let mut reloads = ReloadBook::default();
        for name in sandboxes.keys() {
            reloads.installed(name);
        }
        let configured = config.sandboxes.clone();
        let router_up = config
            .router
            .as_ref()
            .map(|_| Arc::new(std::sync::atomic::AtomicBool::new(false)));
        let mut daemon = Self {
            reloads,
            metrics: Arc::new(Metrics::new()),
            kernel: KernelFacts::read(),
            configured,
            router_up,
            slots: Slots::with_used(sandboxes.values().map(|s: &Sandbox| s.state.slot)),
            config,
            enforcer,
            cgroups,
            sandboxes,
            book,
            sink,
            object_sha256: boot::object_sha256(),
            events_lost_seen,
            watcher: None,
            file_reloads: Arc::default(),
            unavailable,
            gateway,
            dns_changed: Arc::new(tokio::sync::Notify::new()),
            audit_drain: None,
        };
        // Never a slot an adopted sandbox uses, whatever the file said.
        let now = Instant::now();
        for slot in released {
            if !daemon.sandboxes.values().any(|s| s.state.slot == slot) {
                daemon.slots.release(slot, now);
            }
        }
        daemon.sweep();
        daemon
    }

    pub(super) fn log<T: serde::Serialize>(&self, record: &T) {
        if let Err(e) = self
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_record(record)
        {
            dlog!(Error, "writing the audit log: {e}");
        }
    }

    /// Appends the privacy router's record of one request to the trail. Only router
    /// records (`control: inference`) are taken: a control-socket client cannot write
    /// records that pass for the kernel's.
    pub(super) fn record_inference(&self, record: &serde_json::Value) -> Result<(), String> {
        if record.get("control").and_then(serde_json::Value::as_str) != Some("inference") {
            return Err("only `control: inference` records are accepted".to_owned());
        }
        self.sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_record(record)
            .map_err(|e| format!("writing the audit log: {e}"))
    }

    fn persist(&self) {
        let state = StateFile {
            object_sha256: self.object_sha256.clone(),
            sandboxes: self.sandboxes.values().map(|s| s.state.clone()).collect(),
            released: self.slots.released().into_iter().collect(),
        };
        if let Err(e) = state.write(&self.config.state_file) {
            dlog!(Error, "writing {}: {e}", self.config.state_file.display());
        }
    }

    /// What `ps` shows of a sandbox: of its controls, only those proven here (an adopted
    /// sandbox keeps its registration, but a control whose self-test failed is not claimed).
    pub(super) fn info(&self, s: &Sandbox) -> SandboxInfo {
        let SandboxState {
            name,
            cgroup,
            cgroup_id,
            slot,
            controls,
            policy,
            policy_sha256,
            user,
            ..
        } = &s.state;
        SandboxInfo {
            name: name.clone(),
            cgroup: cgroup.clone(),
            cgroup_id: *cgroup_id,
            slot: *slot,
            policy: policy.clone(),
            policy_sha256: policy_sha256.clone(),
            user: user.clone(),
            enforcing: sandbox_controls::names(*controls & self.enforcer.attached())
                .into_iter()
                .map(str::to_owned)
                .collect(),
            tasks: s.cgroup.tasks(),
        }
    }

    /// Refuses a policy that needs a control whose programs are not attached, with the
    /// kernel's reason (the same words `nemoclaw run` uses without a daemon).
    fn check_attached(&self, policy_controls: u32) -> Result<(), OpError> {
        boot::refuse_unattached(policy_controls, self.enforcer.attached(), &self.unavailable)
            .map_err(OpError::Unavailable)
    }

    /// Writes `compiled` into a fresh slot; on an error the slot is released (its partial
    /// entries swept). Released slots are swept and the install tried once more when no
    /// slot is free or the install failed (their entries may be what filled a map).
    fn install(&mut self, compiled: &CompiledPolicy) -> Result<Slot, OpError> {
        match self.install_once(compiled) {
            Err(_) if !self.slots.released().is_empty() => {
                self.sweep();
                self.install_once(compiled)
            }
            done => done,
        }
    }

    fn install_once(&mut self, compiled: &CompiledPolicy) -> Result<Slot, OpError> {
        let slot = self.slots.allocate().ok_or(OpError::NoFreeSlot)?;
        if let Err(e) = self.enforcer.install(slot, compiled) {
            self.slots.release(slot, Instant::now());
            return Err(OpError::Kernel(e));
        }
        Ok(slot)
    }

    /// Starts `name`'s DNS gateway and sends `slot`'s port 53 to it.
    fn open_gate(
        &mut self,
        name: &str,
        names: AllowedNames,
        nameservers: Vec<SocketAddr>,
        slot: Slot,
    ) -> Result<Gate, OpError> {
        let gate = self
            .gateway
            .open(GateSpec {
                sandbox: name.to_owned(),
                names,
                upstreams: nameservers,
                sink: Arc::clone(&self.sink),
                ports: (0, 0),
            })
            .map_err(OpError::Gateway)?;
        self.enforcer
            .set_dns_gate(slot, gate.port4, gate.port6)
            .map_err(OpError::Kernel)?;
        Ok(gate)
    }

    /// Registers the sandbox in cgroup `cgroup_id` with `slot` and `controls`; on error the
    /// slot is released.
    fn register_slot(&mut self, cgroup_id: u64, slot: Slot, controls: u32) -> Result<(), OpError> {
        if let Err(e) = self
            .enforcer
            .register(cgroup_id, SandboxEntry { slot, controls })
        {
            self.release(slot);
            return Err(OpError::Kernel(e));
        }
        Ok(())
    }

    /// `name`, or a free one picked for the sandbox; refused when malformed or taken.
    fn new_sandbox_name(&self, name: Option<String>) -> Result<String, OpError> {
        let name = match name {
            Some(n) => n,
            None => generate_name(&|n| self.sandboxes.contains_key(n)),
        };
        check_name(&name).map_err(OpError::BadRequest)?;
        if self.sandboxes.contains_key(&name) {
            return Err(OpError::SandboxExists(name));
        }
        Ok(name)
    }

    /// Lets go of `slot`, with which no sandbox is registered any more: its entries wait
    /// for a sweep (see `registry::Slots`), made now if one is due.
    fn release(&mut self, slot: Slot) {
        self.slots.release(slot, Instant::now());
        if self.slots.sweep_due(Instant::now()) {
            self.sweep();
        }
    }

    /// Deletes the released slots' entries (one scan of the maps for all of them) and frees
    /// the slots. On failure they stay released, and in use, for a later sweep: no slot is
    /// handed out while another policy's entries may be left in it.
    pub(super) fn sweep(&mut self) {
        let slots = self.slots.released();
        if slots.is_empty() {
            return;
        }
        match self.enforcer.clear_slots(&slots) {
            Ok(()) => self.slots.swept(&slots),
            Err(e) => {
                dlog!(
                    Error,
                    "clearing released policy slots {slots:?}: {e}; they stay in use until a \
                     later sweep clears them"
                );
                self.slots.sweep_failed(Instant::now());
            }
        }
    }

    /// The second half of [`create`], under the lock: everything that touches the kernel,
    /// cgroups and the daemon's state.
    fn create_compiled(
        &mut self,
        spec: CreateSpec,
        user: &SandboxUser,
        compiled: Compiled,
        requester: &str,
    ) -> Result<Response, OpError> {
        let CreateSpec {
            name,
            policy: policy_path,
            command,
            ephemeral,
            resolv_conf,
            dns_grace,
            ..
        } = spec;
        let resolv_conf = resolv_conf.unwrap_or_else(|| self.config.resolv_conf.clone());
        let dns_grace = dns_grace.unwrap_or(self.config.dns_grace.as_secs());
        let name = self.new_sandbox_name(name)?;
        let Compiled {
            policy: compiled,
            sha256: sha,
            mut notices,
            dns,
            names,
            nameservers,
            inference,
        } = compiled;
        self.check_attached(compiled.controls)?;
        let (bits, notice) =
            sandbox_controls::for_sandbox(compiled.controls, self.enforcer.socket_kinds(), user)?;
        notices.extend(notice);
        let cgroup = self.cgroups.create(&self.config.cgroup_root, &name)?;
        let slot = self.install(&compiled)?;
        let dns_names = names.names();
        let gate = if compiled.controls & controls::NET == 0 {
            None
        } else {
            match self.open_gate(&name, names, nameservers, slot) {
                Ok(gate) => Some(gate),
                Err(e) => {
                    self.release(slot);
                    return Err(e);
                }
            }
        };
        lock_book(&self.book).set(slot, &name, compiled.rules.clone());
        self.register_slot(cgroup.id(), slot, bits)?;
        let state = SandboxState {
            name: name.clone(),
            cgroup: cgroup.path().to_owned(),
            cgroup_id: cgroup.id(),
            slot,
            controls: bits,
            policy: policy_path.clone(),
            policy_sha256: sha.clone(),
            user: user.name.clone(),
            command: command.clone(),
            ephemeral,
            rules: compiled.rules,
            resolv_conf,
            dns_grace,
            events_lost_at_start: self.enforcer.events_lost().unwrap_or(0),
            dns_ports: gate.as_ref().map_or((0, 0), |g| (g.port4, g.port6)),
            dns_names,
            inference,
        };
        let sandbox = Sandbox {
            state,
            dns: with_slot(dns, slot),
            cgroup,
            gate,
            holders: usize::from(ephemeral),
        };
        let info = self.info(&sandbox);
        if let Some(w) = &self.watcher {
            w.watch(&policy_path);
        }
        self.sandboxes.insert(name.clone(), sandbox);
        self.reloads.installed(&name);
        self.persist();
        self.dns_changed.notify_one();
        self.log(&Lifecycle::SandboxStart {
            time: now(),
            sandbox: name,
            cgroup: info.cgroup_id,
            policy: PolicyRef {
                file: policy_path.display().to_string(),
                sha256: sha,
            },
            user: user.name.clone(),
            uid: user.uid.as_raw(),
            command,
            enforcing: sandbox_controls::names(bits),
            self_test: None,
            requested_by: requester.to_owned(),
        });
        Ok(Response::Created {
            sandbox: info,
            notices,
            account: Some(Account::of(user)),
        })
    }

    pub(super) fn destroy(
        &mut self,
        name: &str,
        exit_code: Option<i32>,
    ) -> Result<Response, OpError> {
        let sandbox = self
            .sandboxes
            .remove(name)
            .ok_or_else(|| OpError::NoSuchSandbox(name.to_owned()))?;
        let Sandbox { state, cgroup, .. } = sandbox;
        // Kill before lifting the policy: nothing runs unconfined.
        cgroup.kill_all();
        drop(cgroup);
        if let Err(e) = self.enforcer.unregister(state.cgroup_id) {
            dlog!(Warning, "{e}");
        }
        self.release(state.slot);
        self.reloads.forget(name);
        self.persist();
        // The sandbox's deny events still in the ring buffer are written before its stop
        // record: a follower (`nemoclaw run`) stops copying at that record.
        if let Some(drain) = &self.audit_drain {
            drain();
        }
        self.log(&Lifecycle::SandboxStop {
            time: now(),
            sandbox: name.to_owned(),
            cgroup: state.cgroup_id,
            exit_code,
            events_lost: self
                .enforcer
                .events_lost()
                .unwrap_or(0)
                .saturating_sub(state.events_lost_at_start),
        });
        Ok(Response::Destroyed {
            name: name.to_owned(),
        })
    }

    /// Whether a sandbox's policy file still has the installed policy's hash.
    pub(super) fn unchanged(&self, name: &str) -> bool {
        self.sandboxes.get(name).is_some_and(|s| {
            std::fs::read_to_string(&s.state.policy)
                .is_ok_and(|text| line_hash(&text) == s.state.policy_sha256)
        })
    }

    /// A `policy_rejected` record for a refused apply.
    fn rejected(&self, name: &str, path: &Path, requester: &str, error: OpError) -> OpError {
        self.log(&Lifecycle::PolicyRejected {
            time: now(),
            sandbox: name.to_owned(),
            file: path.display().to_string(),
            error: error.to_string(),
            requested_by: requester.to_owned(),
        });
        error
    }

    /// The second half of [`apply`], under the lock: the switch to a fresh slot. `old` is
    /// the state the policy was compiled against; a sandbox changed since (another apply
    /// got there first) is refused, to be applied again.
    fn apply_compiled(
        &mut self,
        name: &str,
        old: &SandboxState,
        path: &Path,
        user: &SandboxUser,
        compiled: Compiled,
        requester: &str,
    ) -> Result<Response, OpError> {
        let rejected = |this: &Self, error: OpError| this.rejected(name, path, requester, error);
        let current = self.sandboxes.get(name).map(|s| s.state.slot);
        if current != Some(old.slot) {
            let e = match current {
                None => OpError::NoSuchSandbox(name.to_owned()),
                Some(_) => OpError::Changed(name.to_owned()),
            };
            return Err(rejected(self, e));
        }
        let old = old.clone();
        let path = path.to_owned();
        let Compiled {
            policy: compiled,
            sha256: sha,
            dns,
            names,
            nameservers,
            inference,
            ..
        } = compiled;
        self.check_attached(compiled.controls)
            .map_err(|e| rejected(self, e))?;
        let (bits, _) =
            sandbox_controls::for_sandbox(compiled.controls, self.enforcer.socket_kinds(), user)
                .map_err(|e| rejected(self, e.into()))?;
        let slot = self.install(&compiled).map_err(|e| rejected(self, e))?;
        // The DNS gateway: the running one serves the new slot too (its names change at
        // the switch), or one is started for a policy that gained a network section.
        let dns_names = names.names();
        let running = self.sandboxes.get(name).and_then(|s| s.gate.as_ref());
        let running_ports = running.map(|g| (g.port4, g.port6));
        let mut new_gate = None;
        let mut pending_names = None;
        if compiled.controls & controls::NET != 0 {
            let pointed = match running_ports {
                Some((port4, port6)) => {
                    pending_names = Some((names, nameservers));
                    self.enforcer
                        .set_dns_gate(slot, port4, port6)
                        .map_err(OpError::Kernel)
                }
                None => self
                    .open_gate(name, names, nameservers, slot)
                    .map(|g| new_gate = Some(g)),
            };
            if let Err(e) = pointed {
                self.release(slot);
                return Err(rejected(self, e));
            }
        }
        lock_book(&self.book).set(slot, name, compiled.rules.clone());
        // The switch: one map update. Before it every access is judged by the old slot,
        // after it by the new one, both complete.
        self.register_slot(old.cgroup_id, slot, bits)
            .map_err(|e| rejected(self, e))?;
        let enforced_monotonic_ns = crate::audit::lifecycle::monotonic_ns();
        self.release(old.slot);
        if let Some(w) = &self.watcher {
            w.watch(&path);
        }
        let (added, removed) = rule_changes(&old.rules, &compiled.rules);
        if let Some(s) = self.sandboxes.get_mut(name) {
            if let (Some(gate), Some((names, nameservers))) = (&s.gate, pending_names) {
                gate.update(names, nameservers);
            }
            if compiled.controls & controls::NET == 0 {
                s.gate = None;
            } else if new_gate.is_some() {
                s.gate = new_gate;
            }
            s.state.dns_ports = s.gate.as_ref().map_or((0, 0), |g| (g.port4, g.port6));
            s.state.dns_names = dns_names;
            s.dns = with_slot(dns, slot);
            s.state.slot = slot;
            s.state.controls = bits;
            s.state.policy.clone_from(&path);
            s.state.policy_sha256.clone_from(&sha);
            s.state.rules = compiled.rules;
            s.state.inference = inference;
        }
        self.persist();
        self.dns_changed.notify_one();
        self.log(&Lifecycle::PolicyReload {
            time: now(),
            sandbox: name.to_owned(),
            file: path.display().to_string(),
            old_sha256: old.policy_sha256.clone(),
            new_sha256: sha.clone(),
            added: added.clone(),
            removed: removed.clone(),
            requested_by: requester.to_owned(),
            enforced_monotonic_ns,
        });
        Ok(Response::Applied {
            name: name.to_owned(),
            old_sha256: old.policy_sha256,
            new_sha256: sha,
            added,
            removed,
        })
    }

    /// Records a reload of `name` that took `took`: its result for `/healthz`, and the
    /// reload metrics.
    pub(super) fn reloaded(&mut self, name: &str, result: Result<(), String>, took: Duration) {
        let ok = result.is_ok();
        self.reloads.reloaded(name, result, now());
        self.metrics.reload(ok, std::time::SystemTime::now(), took);
    }

    /// Sandboxes whose policy file is `path`.
    pub(super) fn using_file(&self, path: &Path) -> Vec<String> {
        self.sandboxes
            .values()
            .filter(|s| s.state.policy == path)
            .map(|s| s.state.name.clone())
            .collect()
    }

    /// Housekeeping: ephemeral sandboxes with no creator left and no task inside go; a
    /// rise in dropped events is recorded.
    pub(super) fn tidy(&mut self) {
        let orphans: Vec<String> = self
            .sandboxes
            .values()
            .filter(|s| s.state.ephemeral && s.holders == 0 && s.cgroup.tasks() == 0)
            .map(|s| s.state.name.clone())
            .collect();
        for name in orphans {
            let _ = self.destroy(&name, None);
        }
        if self.slots.sweep_due(Instant::now()) {
            self.sweep();
        }
        self.record_events_lost();
    }

    /// An `events_lost` record when the kernel dropped deny events since the last one.
    fn record_events_lost(&mut self) {
        if let Ok(total) = self.enforcer.events_lost()
            && total > self.events_lost_seen
        {
            self.log(&Lifecycle::EventsLost {
                time: now(),
                lost: total - self.events_lost_seen,
                total,
            });
            self.events_lost_seen = total;
        }
    }

    /// The last records of a stopping daemon (after the audit reader has finished): the
    /// deny events the kernel dropped since the last count, then `daemon_stop`.
    pub(super) fn stop_record(&mut self) {
        self.record_events_lost();
        self.log(&Lifecycle::DaemonStop {
            time: now(),
            pid: std::process::id(),
            sandboxes: self.sandboxes.keys().cloned().collect(),
        });
    }
}

/// Creates a sandbox: the policy is compiled without the daemon's lock (names may take a
/// while to resolve), then installed, registered and recorded under it.
pub(super) fn create(
    daemon: &Shared,
    spec: CreateSpec,
    requester: &str,
) -> Result<Response, OpError> {
    let config = lock(daemon).config.clone();
    let policy = absolute(&spec.policy)?;
    let user = SandboxUser::resolve(Some(&spec.user))?;
    let resolv_conf = spec
        .resolv_conf
        .clone()
        .unwrap_or_else(|| config.resolv_conf.clone());
    let dns_grace = spec.dns_grace.unwrap_or(config.dns_grace.as_secs());
    let compiled = compile(
        &config,
        &policy,
        &user,
        &resolv_conf,
        Duration::from_secs(dns_grace),
    )?;
    let spec = CreateSpec { policy, ..spec };
    lock(daemon).create_compiled(spec, &user, compiled, requester)
}

/// Replaces a sandbox's policy with `policy_path` (or re-reads its own file): compiled
/// without the lock, switched to under it (refused if another apply switched first). The
/// outcome and its duration are counted (`/healthz`, `/metrics`) under the lock of the
/// switch, so nobody sees the new policy with the old generation.
pub(super) fn apply(
    daemon: &Shared,
    name: &str,
    policy_path: Option<&Path>,
    requester: &str,
) -> Result<Response, OpError> {
    let started = std::time::Instant::now();
    let (mut d, result) = apply_once(daemon, name, policy_path, requester);
    if !matches!(result, Err(OpError::NoSuchSandbox(_))) {
        d.reloaded(
            name,
            result.as_ref().map(|_| ()).map_err(ToString::to_string),
            started.elapsed(),
        );
    }
    result
}

/// [`apply`]'s work; returns the daemon's lock it ended under with the result.
fn apply_once<'d>(
    daemon: &'d Shared,
    name: &str,
    policy_path: Option<&Path>,
    requester: &str,
) -> (MutexGuard<'d, Daemon>, Result<Response, OpError>) {
    let (config, old) = {
        let d = lock(daemon);
        let Some(sandbox) = d.sandboxes.get(name) else {
            return (d, Err(OpError::NoSuchSandbox(name.to_owned())));
        };
        (d.config.clone(), sandbox.state.clone())
    };
    let path = match policy_path.map(absolute).transpose() {
        Ok(p) => p.unwrap_or_else(|| old.policy.clone()),
        Err(e) => return (lock(daemon), Err(e)),
    };
    let prepared = SandboxUser::resolve(Some(&old.user))
        .map_err(OpError::from)
        .and_then(|user| {
            compile(
                &config,
                &path,
                &user,
                &old.resolv_conf,
                Duration::from_secs(old.dns_grace),
            )
            .map(|compiled| (user, compiled))
        });
    let mut d = lock(daemon);
    let result = match prepared {
        Ok((user, compiled)) => d.apply_compiled(name, &old, &path, &user, compiled, requester),
        Err(e) => Err(d.rejected(name, &path, requester, e)),
    };
    (d, result)
}

/// Brings sandbox `name` up to its policy file: `Ok(None)` when the file still holds the
/// enforced policy (a failed reload before it no longer stands), else the file applied.
/// One at a time: the file watcher, SIGHUP and `nemoclaw daemon reload` may all see one
/// change, and the later one then finds it enforced instead of losing the race to the
/// switch ([`OpError::Changed`]).
pub(super) fn reload_from_file(
    daemon: &Shared,
    name: &str,
    requester: &str,
) -> Result<Option<Response>, OpError> {
    let serial = Arc::clone(&lock(daemon).file_reloads);
    let _one_at_a_time = serial.lock().unwrap_or_else(PoisonError::into_inner);
    {
        let mut d = lock(daemon);
        if d.unchanged(name) {
            d.reloads.settled(name, now());
            return Ok(None);
        }
    }
    apply(daemon, name, None, requester).map(Some)
}

/// Re-reads every sandbox's policy file; unchanged files are left alone.
pub(super) fn reload_all(daemon: &Shared, requester: &str) -> Response {
    let (mut applied, mut unchanged, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    let names: Vec<String> = lock(daemon).sandboxes.keys().cloned().collect();
    for name in names {
        match reload_from_file(daemon, &name, requester) {
            Ok(None) => unchanged.push(name),
            Ok(Some(_)) => applied.push(name),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    Response::Reloaded {
        applied,
        unchanged,
        failed,
    }
}

/// Parses, validates and compiles `path` for `user`: the policy, its sha256, notices,
/// and (for host-name rules) what the DNS refresh recompiles from. The slot in the
/// refresh spec is filled in once one is allocated. Runs without the daemon's lock: name
/// resolution may be slow, and nothing else need wait for it.
fn compile(
    config: &Config,
    path: &Path,
    user: &SandboxUser,
    resolv_conf: &Path,
    dns_grace: Duration,
) -> Result<Compiled, OpError> {
    let (parsed, source) = policy::load_with_source(path)?;
    let nameservers = match std::fs::read_to_string(resolv_conf) {
        Ok(text) => super::dns::nameservers(&text),
        Err(source) if refresh::has_host_names(&parsed) => {
            return Err(OpError::Nameservers {
                file: resolv_conf.to_owned(),
                source,
            });
        }
        Err(_) => Vec::new(),
    };
    let names = AllowedNames::from_policy(&parsed);
    let c = config;
    // The pin directory is the daemon's alone; the other files may share a directory
    // with anything (e.g. an audit log in /tmp), so they are guarded one by one.
    let lock = c.state_file.with_extension("lock");
    let files = [
        c.socket.as_path(),
        c.state_file.as_path(),
        lock.as_path(),
        c.audit.log.as_path(),
        path,
    ];
    let dirs = [c.pin_dir.as_path()];
    let parsed = policy::guard::with_daemon_guard(&parsed, &dirs, &files);
    let mut env = CompileEnv::new(user.home.clone());
    let resolver = Arc::new(TtlResolver::new(nameservers.clone(), dns_grace));
    env.resolver = Box::new(refresh::Shared(Arc::clone(&resolver)));
    let compiled = policy::compile(&parsed, &env)?;
    let mut notices: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
    if compiled.policy.controls & controls::FS == 0 {
        notices.push(format!(
            "{}: no filesystem section, so the daemon's files ({}) are not shielded from \
             this sandbox by the kernel (only by their owner and mode)",
            path.display(),
            dirs.iter()
                .chain(&files)
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if compiled.policy.controls & controls::PRIVILEGE == 0 {
        notices.push(format!(
            "{}: privilege_escalation is not denied, so a root task in this sandbox could use \
             bpf(), mounts or signals against the host and the daemon",
            path.display()
        ));
    }
    let dns = refresh::has_host_names(&parsed).then(|| RefreshSpec {
        policy: parsed,
        env,
        resolver,
        current: compiled.policy.clone(),
        slot: 0,
    });
    Ok(Compiled {
        policy: compiled.policy,
        sha256: line_hash(&source),
        notices,
        dns,
        names,
        nameservers,
        inference: compiled.inference,
    })
}

fn with_slot(dns: Option<RefreshSpec>, slot: Slot) -> Option<Arc<Mutex<RefreshSpec>>> {
    dns.map(|mut spec| {
        spec.slot = slot;
        Arc::new(Mutex::new(spec))
    })
}

fn lock_book(book: &Mutex<RuleBook>) -> MutexGuard<'_, RuleBook> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

fn absolute(path: &Path) -> Result<PathBuf, OpError> {
    if path.is_absolute() {
        Ok(path.to_owned())
    } else {
        Err(OpError::BadRequest(format!(
            "{}: the daemon needs an absolute policy path",
            path.display()
        )))
    }
}

mod serve;
mod start;

pub use serve::run;

#[cfg(test)]
#[path = "core_tests.rs"]
mod core_tests;

#[cfg(test)]
#[path = "core_reload_tests.rs"]
mod core_reload_tests;
