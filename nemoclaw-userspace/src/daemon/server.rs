//! `nemoclaw daemon`: owns the pinned enforcement, the sandboxes and the audit log, and
//! serves the control socket.
//!
//! Threads: the accept loop (one thread per connection), the signal thread (SIGHUP reloads,
//! SIGTERM/SIGINT stop), the policy-file watcher, the audit reader and the housekeeper
//! (ephemeral sandboxes whose creator is gone, dropped-event counts). All share one
//! [`Daemon`] behind a mutex; decisions themselves are taken in the kernel and never wait
//! for any of them.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    os::unix::{
        fs::PermissionsExt,
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use nemoclaw_common::{
    event::DenyEvent,
    sandbox::{SELF_TEST_SLOT, SandboxEntry, Slot, controls},
};

use super::{
    protocol::{CONTROL_GROUP, Request, Response, SandboxInfo},
    refresh::{self, RefreshSpec, TtlResolver},
    registry::{RuleBook, SandboxState, Slots, StateFile, check_name, generate_name, rule_changes},
};
use crate::{
    audit::{
        AuditSink,
        chain::line_hash,
        lifecycle::{Lifecycle, PolicyRef, now},
        reader::{AuditReader, Citations, SharedSink},
        replay,
    },
    dnsgate::{
        gateway::{Gate, GateSpec, Gateway},
        names::AllowedNames,
    },
    kernel::{
        Enforcer, KernelError,
        loader::{EBPF_OBJECT, LSM_CONTROLS, NetAttach},
        lsm::LsmList,
    },
    policy::{self, CompileEnv, CompiledPolicy, compiled::RuleRef},
    sandbox::{
        SandboxCgroup,
        cgroup::{CgroupError, sandboxes_root},
        controls as sandbox_controls, selftest,
        user::SandboxUser,
    },
};

/// Where the daemon keeps things.
#[derive(Clone, Debug)]
pub struct Config {
    pub socket: PathBuf,
    pub pin_dir: PathBuf,
    pub state_file: PathBuf,
    pub audit_log: PathBuf,
    pub resolv_conf: PathBuf,
    /// How long an address DNS stopped returning stays allowed.
    pub dns_grace: Duration,
    /// The parent cgroup of this daemon's sandboxes (under the cgroup v2 mount).
    pub cgroup_root: String,
    /// Re-apply a sandbox's policy when its file is rewritten.
    pub watch: bool,
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

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |error| DaemonError::Io {
        path: path.to_owned(),
        error,
    }
}

/// SHA-256 of the eBPF object this binary carries.
fn object_sha256() -> String {
    crate::audit::chain::sha256_hex(EBPF_OBJECT)
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
}

struct Sandbox {
    state: SandboxState,
    /// Host-name rules: what the DNS refresh works from (not kept across restarts; an
    /// adopting daemon re-applies such policies).
    dns: Option<Arc<Mutex<RefreshSpec>>>,
    cgroup: SandboxCgroup,
    /// Its DNS gateway (policies with a network section).
    gate: Option<Gate>,
    /// Open connections that created it (an ephemeral sandbox goes when none is left).
    holders: usize,
}

/// Everything the daemon owns.
pub struct Daemon {
    config: Config,
    enforcer: Enforcer,
    sandboxes: BTreeMap<String, Sandbox>,
    slots: Slots,
    book: Arc<Mutex<RuleBook>>,
    sink: SharedSink,
    object_sha256: String,
    events_lost_seen: u64,
    watcher: Option<Arc<Watcher>>,
    /// Why controls are unavailable here (not attached, or their self-test failed).
    unavailable: Vec<Unavailable>,
    /// Serves every sandbox's DNS gateway.
    gateway: Gateway,
}

pub type Shared = Arc<Mutex<Daemon>>;

fn lock(d: &Shared) -> MutexGuard<'_, Daemon> {
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

/// Makes sure `pin_dir` lies on a bpffs: mounts one at `/sys/fs/bpf` where nothing is
/// mounted there yet (as systemd does at boot); any other place must be a bpffs already.
fn ensure_bpffs(pin_dir: &Path) -> Result<(), DaemonError> {
    let mounts =
        std::fs::read_to_string("/proc/mounts").map_err(io_err(Path::new("/proc/mounts")))?;
    let fs_of = |dir: &Path| {
        mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (_, target, fstype) = (f.next()?, f.next()?, f.next()?);
                dir.starts_with(target)
                    .then(|| (target.len(), fstype.to_owned()))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, fstype)| fstype)
    };
    if fs_of(pin_dir).as_deref() == Some("bpf") {
        return Ok(());
    }
    let default = Path::new("/sys/fs/bpf");
    if !pin_dir.starts_with(default) {
        return Err(DaemonError::Adopt(format!(
            "{} is not on a bpf file system (mount one: mount -t bpf bpf DIR)",
            pin_dir.display()
        )));
    }
    nix::mount::mount(
        Some("bpf"),
        default,
        Some("bpf"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| io_err(default)(std::io::Error::from(e)))
}

/// Controls (bits) that are unavailable, why, and the fix.
#[derive(Clone, Debug)]
struct Unavailable {
    controls: u32,
    why: String,
    fix: String,
}

/// Loads and pins enforcement, or adopts what a previous daemon pinned.
fn open_enforcement(
    config: &Config,
) -> Result<(Enforcer, Option<StateFile>, Vec<Unavailable>), DaemonError> {
    let sha = object_sha256();
    ensure_bpffs(&config.pin_dir)?;
    if config.pin_dir.join("maps").exists() {
        let state = StateFile::read(&config.state_file)
            .map_err(io_err(&config.state_file))?
            .ok_or_else(|| {
                DaemonError::Adopt(format!(
                    "{} holds pinned enforcement but {} is missing, so its sandboxes are unknown. \
                     If no sandbox runs, remove the pins (rm -r {}) and start again",
                    config.pin_dir.display(),
                    config.state_file.display(),
                    config.pin_dir.display()
                ))
            })?;
        if state.object_sha256 != sha {
            return Err(DaemonError::Adopt(format!(
                "the enforcement pinned at {} was loaded by another NemoClaw build (object {}, this \
                 build {sha}); stop its sandboxes and remove the pins to upgrade",
                config.pin_dir.display(),
                state.object_sha256
            )));
        }
        let enforcer = Enforcer::adopt(&config.pin_dir)?;
        return Ok((enforcer, Some(state), Vec::new()));
    }
    // Leftovers of an interrupted first start hold no maps, hence nothing adoptable.
    if config.pin_dir.exists() {
        std::fs::remove_dir_all(&config.pin_dir).map_err(io_err(&config.pin_dir))?;
    }
    let all = controls::EXEC | controls::NET | controls::FS | controls::PRIVILEGE;
    let mut unavailable = Vec::new();
    let mut enforcer = match Enforcer::load_for(all, NetAttach::AboveSandboxes) {
        Ok(e) => e,
        Err(KernelError::ControlUnavailable {
            controls: missing,
            why,
            fix,
        }) if missing & controls::NET == 0 => {
            eprintln!(
                "nemoclaw daemon: notice: {} unavailable here ({why}); policies that need BPF \
                 LSM will be refused. See `nemoclaw doctor`",
                crate::kernel::loader::controls_phrase(LSM_CONTROLS),
            );
            unavailable.push(Unavailable {
                controls: LSM_CONTROLS,
                why,
                fix,
            });
            Enforcer::load_for(controls::NET, NetAttach::AboveSandboxes)?
        }
        Err(e) => return Err(e.into()),
    };
    let root = sandboxes_root(&config.cgroup_root)?;
    let root_dir = std::fs::File::open(&root).map_err(io_err(&root))?;
    enforcer.attach_cgroup(&root_dir)?;
    enforcer.pin(&config.pin_dir)?;
    Ok((enforcer, None, unavailable))
}

/// Runs the self-test on every control `enforcer` has attached and withdraws those whose
/// probe was not denied. A self-test that cannot run proves nothing: all fail.
fn prove(enforcer: &mut Enforcer, cgroup_root: &str) -> selftest::Report {
    let tested = enforcer.attached();
    let started = std::time::Instant::now();
    let place = selftest::Place {
        cgroup_root,
        attach_net: false,
    };
    let report = selftest::run(enforcer, tested, &place).unwrap_or_else(|e| {
        selftest::Report::all_failed(
            tested & selftest::TESTABLE,
            &format!("the self-test could not run: {e}"),
            started.elapsed(),
        )
    });
    enforcer.withdraw(&report.failed);
    report
}

impl Daemon {
    /// Starts: single instance, enforcement loaded or adopted, sandboxes restored, audit log
    /// open. Writes the `daemon_start` record.
    pub fn start(config: Config) -> Result<(Shared, AuditReader), DaemonError> {
        let (mut enforcer, state, mut unavailable) = open_enforcement(&config)?;
        let adopted = state.is_some();
        // Adopted enforcement that lacks the LSM controls: say why again (the first start's
        // reason is not kept across restarts), so refusals still name the fix.
        let lsm_missing = LSM_CONTROLS & !enforcer.attached();
        if adopted && lsm_missing != 0 {
            let (why, fix) = match LsmList::read() {
                Ok(list) => list.inactive_reason(),
                Err(e) => Some((e.to_string(), "mount securityfs".to_owned())),
            }
            .unwrap_or_else(|| {
                (
                    "they were not attached when this enforcement was first loaded".to_owned(),
                    "stop the sandboxes, remove the pins and start the daemon again; \
                     `nemoclaw doctor` shows this kernel's state"
                        .to_owned(),
                )
            });
            unavailable.push(Unavailable {
                controls: lsm_missing,
                why,
                fix,
            });
        }
        // Loaded or adopted, nothing counts as enforced before its self-test denies a probe.
        let self_test = prove(&mut enforcer, &config.cgroup_root);
        for (bit, why) in &self_test.failed {
            eprintln!(
                "nemoclaw daemon: the {} is unavailable: {why}",
                crate::kernel::loader::controls_phrase(*bit)
            );
            unavailable.push(Unavailable {
                controls: *bit,
                why: why.clone(),
                fix: selftest::FIX.to_owned(),
            });
        }
        let sink: SharedSink = Arc::new(Mutex::new(
            AuditSink::open(Some(&config.audit_log), false).map_err(io_err(&config.audit_log))?,
        ));
        let book = Arc::new(Mutex::new(RuleBook::default()));
        let gateway = Gateway::start().map_err(|error| DaemonError::Io {
            path: PathBuf::from("DNS gateway runtime"),
            error,
        })?;
        // The self-test's deny events reach the log after this, cited under its own name.
        lock_book(&book).set(
            SELF_TEST_SLOT,
            selftest::AUDIT_NAME,
            self_test.rules.clone(),
        );
        let mut sandboxes = BTreeMap::new();
        for s in state.map(|s| s.sandboxes).unwrap_or_default() {
            match SandboxCgroup::open(&s.cgroup) {
                Ok(cgroup) if cgroup.id() == s.cgroup_id => {
                    lock_book(&book).set(s.slot, &s.name, s.rules.clone());
                    let mut s = s;
                    let gate = (s.controls & controls::NET != 0)
                        .then(|| reopen_gate(&gateway, &mut enforcer, &sink, &mut s));
                    sandboxes.insert(
                        s.name.clone(),
                        Sandbox {
                            state: s,
                            dns: None,
                            cgroup,
                            gate: gate.flatten(),
                            holders: 0,
                        },
                    );
                }
                _ => {
                    // Gone while no daemon ran: nothing to enforce, clear its policy.
                    let _ = enforcer.unregister(s.cgroup_id);
                    let _ = enforcer.clear_slot(s.slot);
                }
            }
        }
        let events = enforcer.take_events()?;
        let reader = AuditReader::spawn(
            events,
            Arc::clone(&sink),
            DaemonCitations(Arc::clone(&book)),
        );
        let events_lost_seen = enforcer.events_lost().unwrap_or(0);
        let daemon = Self {
            slots: Slots::with_used(sandboxes.values().map(|s: &Sandbox| s.state.slot)),
            config,
            enforcer,
            sandboxes,
            book,
            sink,
            object_sha256: object_sha256(),
            events_lost_seen,
            watcher: None,
            unavailable,
            gateway,
        };
        daemon.persist();
        daemon.log(&Lifecycle::DaemonStart {
            time: now(),
            pid: std::process::id(),
            adopted,
            controls: sandbox_controls::names(daemon.enforcer.attached()),
            self_test: self_test.record(),
            sandboxes: daemon.sandboxes.keys().cloned().collect(),
        });
        Ok((Arc::new(Mutex::new(daemon)), reader))
    }

    fn log<T: serde::Serialize>(&self, record: &T) {
        if let Err(e) = self
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_record(record)
        {
            eprintln!("nemoclaw daemon: writing the audit log: {e}");
        }
    }

    fn persist(&self) {
        let state = StateFile {
            object_sha256: self.object_sha256.clone(),
            sandboxes: self.sandboxes.values().map(|s| s.state.clone()).collect(),
        };
        if let Err(e) = state.write(&self.config.state_file) {
            eprintln!(
                "nemoclaw daemon: writing {}: {e}",
                self.config.state_file.display()
            );
        }
    }

    /// What `ps` shows of a sandbox: of its controls, only those proven here (an adopted
    /// sandbox keeps its registration, but a control whose self-test failed is not claimed).
    fn info(&self, s: &Sandbox) -> SandboxInfo {
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

    /// Parses, validates and compiles `path` for `user`: the policy, its sha256, notices,
    /// and (for host-name rules) what the DNS refresh recompiles from. The slot in the
    /// refresh spec is filled in once one is allocated.
    fn compile(
        &self,
        path: &Path,
        user: &SandboxUser,
        resolv_conf: &Path,
        dns_grace: Duration,
    ) -> Result<Compiled, String> {
        let (parsed, source) = policy::load_with_source(path).map_err(|e| e.to_string())?;
        let nameservers = match std::fs::read_to_string(resolv_conf) {
            Ok(text) => super::dns::nameservers(&text),
            Err(e) if refresh::has_host_names(&parsed) => {
                return Err(format!(
                    "reading {} for the host-name rules: {e}",
                    resolv_conf.display()
                ));
            }
            Err(_) => Vec::new(),
        };
        let names = AllowedNames::from_policy(&parsed);
        let c = &self.config;
        // The pin directory is the daemon's alone; the other files may share a directory
        // with anything (e.g. an audit log in /tmp), so they are guarded one by one.
        let lock = c.state_file.with_extension("lock");
        let files = [
            c.socket.as_path(),
            c.state_file.as_path(),
            lock.as_path(),
            c.audit_log.as_path(),
            path,
        ];
        let dirs = [c.pin_dir.as_path()];
        let parsed = policy::guard::with_daemon_guard(&parsed, &dirs, &files);
        let mut env = CompileEnv::new(user.home.clone());
        let resolver = Arc::new(TtlResolver::new(nameservers.clone(), dns_grace));
        env.resolver = Box::new(refresh::Shared(Arc::clone(&resolver)));
        let compiled = policy::compile(&parsed, &env).map_err(|e| e.to_string())?;
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
        })
    }

    /// Refuses a policy that needs a control whose programs are not attached, with the
    /// kernel's reason (the same words `nemoclaw run` uses without a daemon).
    fn check_attached(&self, policy_controls: u32) -> Result<(), String> {
        let missing = policy_controls
            & !self.enforcer.attached()
            & (controls::EXEC | controls::NET | controls::FS | controls::PRIVILEGE);
        if missing == 0 {
            return Ok(());
        }
        let (why, fix) = self
            .unavailable
            .iter()
            .find(|u| u.controls & missing != 0)
            .map_or_else(
                || {
                    (
                        "its programs were not attached when this enforcement was first loaded"
                            .to_owned(),
                        "run `nemoclaw doctor`".to_owned(),
                    )
                },
                |u| (u.why.clone(), u.fix.clone()),
            );
        Err(KernelError::ControlUnavailable {
            controls: missing,
            why,
            fix,
        }
        .to_string())
    }

    /// Writes `compiled` into a fresh slot; on any error the slot is cleared and freed.
    fn install(&mut self, compiled: &CompiledPolicy) -> Result<Slot, String> {
        let slot = self
            .slots
            .allocate()
            .ok_or("every policy slot is in use; destroy a sandbox first")?;
        if let Err(e) = self.enforcer.install(slot, compiled) {
            let _ = self.enforcer.clear_slot(slot);
            self.slots.free(slot);
            return Err(format!("writing the policy into the kernel maps: {e}"));
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
    ) -> Result<Gate, String> {
        let gate = self
            .gateway
            .open(GateSpec {
                sandbox: name.to_owned(),
                names,
                upstreams: nameservers,
                sink: Arc::clone(&self.sink),
                ports: (0, 0),
            })
            .map_err(|e| format!("starting the sandbox's DNS gateway: {e}"))?;
        self.enforcer
            .set_dns_gate(slot, gate.port4, gate.port6)
            .map_err(|e| e.to_string())?;
        Ok(gate)
    }

    fn release(&mut self, slot: Slot) {
        if let Err(e) = self.enforcer.clear_slot(slot) {
            eprintln!("nemoclaw daemon: {e}");
        }
        self.slots.free(slot);
    }

    fn create(&mut self, request: Request, requester: &str) -> Result<Response, String> {
        let Request::Create {
            name,
            policy: policy_path,
            user,
            command,
            ephemeral,
            resolv_conf,
            dns_grace,
        } = request
        else {
            return Err("not a create request".to_owned());
        };
        let resolv_conf = resolv_conf.unwrap_or_else(|| self.config.resolv_conf.clone());
        let dns_grace = dns_grace.unwrap_or(self.config.dns_grace.as_secs());
        let name = match name {
            Some(n) => n,
            None => generate_name(&|n| self.sandboxes.contains_key(n)),
        };
        check_name(&name)?;
        if self.sandboxes.contains_key(&name) {
            return Err(format!("a sandbox named {name} exists already"));
        }
        let policy_path = absolute(&policy_path)?;
        let user = SandboxUser::resolve(Some(&user)).map_err(|e| e.to_string())?;
        let Compiled {
            policy: compiled,
            sha256: sha,
            mut notices,
            dns,
            names,
            nameservers,
        } = self.compile(
            &policy_path,
            &user,
            &resolv_conf,
            Duration::from_secs(dns_grace),
        )?;
        self.check_attached(compiled.controls)?;
        let (bits, notice) =
            sandbox_controls::for_sandbox(compiled.controls, &self.enforcer, &user)
                .map_err(|e| e.to_string())?;
        notices.extend(notice);
        let cgroup =
            SandboxCgroup::create(&self.config.cgroup_root, &name).map_err(|e| e.to_string())?;
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
        if let Err(e) = self.enforcer.register(
            cgroup.id(),
            SandboxEntry {
                slot,
                controls: bits,
            },
        ) {
            self.release(slot);
            return Err(e.to_string());
        }
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
        self.persist();
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
        })
    }

    fn destroy(&mut self, name: &str, exit_code: Option<i32>) -> Result<Response, String> {
        let sandbox = self
            .sandboxes
            .remove(name)
            .ok_or_else(|| format!("no sandbox named {name}"))?;
        let Sandbox { state, cgroup, .. } = sandbox;
        // Kill before lifting the policy: nothing runs unconfined.
        cgroup.kill_all();
        drop(cgroup);
        if let Err(e) = self.enforcer.unregister(state.cgroup_id) {
            eprintln!("nemoclaw daemon: {e}");
        }
        self.release(state.slot);
        self.persist();
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
    fn unchanged(&self, name: &str) -> bool {
        self.sandboxes.get(name).is_some_and(|s| {
            std::fs::read_to_string(&s.state.policy)
                .is_ok_and(|text| line_hash(&text) == s.state.policy_sha256)
        })
    }

    /// Replaces a sandbox's policy with `policy_path` (or re-reads its own file).
    fn apply(
        &mut self,
        name: &str,
        policy_path: Option<&Path>,
        requester: &str,
    ) -> Result<Response, String> {
        let sandbox = self
            .sandboxes
            .get(name)
            .ok_or_else(|| format!("no sandbox named {name}"))?;
        let path = match policy_path {
            Some(p) => absolute(p)?,
            None => sandbox.state.policy.clone(),
        };
        let old = sandbox.state.clone();
        let rejected = |this: &Self, error: String| {
            this.log(&Lifecycle::PolicyRejected {
                time: now(),
                sandbox: name.to_owned(),
                file: path.display().to_string(),
                error: error.clone(),
                requested_by: requester.to_owned(),
            });
            error
        };
        let user =
            SandboxUser::resolve(Some(&old.user)).map_err(|e| rejected(self, e.to_string()))?;
        let Compiled {
            policy: compiled,
            sha256: sha,
            dns,
            names,
            nameservers,
            ..
        } = self
            .compile(
                &path,
                &user,
                &old.resolv_conf,
                Duration::from_secs(old.dns_grace),
            )
            .map_err(|e| rejected(self, e))?;
        self.check_attached(compiled.controls)
            .map_err(|e| rejected(self, e))?;
        let (bits, _) = sandbox_controls::for_sandbox(compiled.controls, &self.enforcer, &user)
            .map_err(|e| rejected(self, e.to_string()))?;
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
                        .map_err(|e| e.to_string())
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
        if let Err(e) = self.enforcer.register(
            old.cgroup_id,
            SandboxEntry {
                slot,
                controls: bits,
            },
        ) {
            self.release(slot);
            return Err(rejected(self, e.to_string()));
        }
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
        }
        self.persist();
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

    /// Re-reads every sandbox's policy file; unchanged files are left alone.
    fn reload_all(&mut self, requester: &str) -> Response {
        let (mut applied, mut unchanged, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        let names: Vec<String> = self.sandboxes.keys().cloned().collect();
        for name in names {
            if self.unchanged(&name) {
                unchanged.push(name);
                continue;
            }
            match self.apply(&name, None, requester) {
                Ok(_) => applied.push(name),
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
        Response::Reloaded {
            applied,
            unchanged,
            failed,
        }
    }

    /// Sandboxes whose policy file is `path`.
    fn using_file(&self, path: &Path) -> Vec<String> {
        self.sandboxes
            .values()
            .filter(|s| s.state.policy == path)
            .map(|s| s.state.name.clone())
            .collect()
    }

    /// Housekeeping: ephemeral sandboxes with no creator left and no task inside go; a
    /// rise in dropped events is recorded.
    fn tidy(&mut self) {
        let orphans: Vec<String> = self
            .sandboxes
            .values()
            .filter(|s| s.state.ephemeral && s.holders == 0 && s.cgroup.tasks() == 0)
            .map(|s| s.state.name.clone())
            .collect();
        for name in orphans {
            let _ = self.destroy(&name, None);
        }
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

    fn stop_record(&self) {
        self.log(&Lifecycle::DaemonStop {
            time: now(),
            pid: std::process::id(),
            sandboxes: self.sandboxes.keys().cloned().collect(),
        });
    }
}

/// An adopted sandbox's DNS gateway, on its old ports where they are free, with the names
/// of its installed policy. Without one its port 53 goes back to the rules (denied), which
/// is logged: DNS fails, nothing unfiltered gets through.
fn reopen_gate(
    gateway: &Gateway,
    enforcer: &mut Enforcer,
    sink: &SharedSink,
    state: &mut SandboxState,
) -> Option<Gate> {
    let nameservers = std::fs::read_to_string(&state.resolv_conf)
        .map(|text| super::dns::nameservers(&text))
        .unwrap_or_default();
    let opened = gateway.open(GateSpec {
        sandbox: state.name.clone(),
        names: AllowedNames::from_names(state.dns_names.iter().cloned()),
        upstreams: nameservers,
        sink: Arc::clone(sink),
        ports: state.dns_ports,
    });
    let (gate, ports) = match opened {
        Ok(gate) => {
            let ports = (gate.port4, gate.port6);
            (Some(gate), ports)
        }
        Err(e) => {
            eprintln!(
                "nemoclaw daemon: sandbox {}: no DNS gateway ({e}); its DNS is denied",
                state.name
            );
            (None, (0, 0))
        }
    };
    if let Err(e) = enforcer.set_dns_gate(state.slot, ports.0, ports.1) {
        eprintln!("nemoclaw daemon: sandbox {}: {e}", state.name);
    }
    state.dns_ports = ports;
    gate
}

fn with_slot(dns: Option<RefreshSpec>, slot: Slot) -> Option<Arc<Mutex<RefreshSpec>>> {
    dns.map(|mut spec| {
        spec.slot = slot;
        Arc::new(Mutex::new(spec))
    })
}

/// Keeps host-name rules current: re-resolves each sandbox's names when their answers
/// expire (outside the daemon's lock: DNS may be slow) and updates its slot's network
/// entries in place. Changes are audit records (`dns_change`). Runs forever.
fn refresh_dns(daemon: &Shared) {
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

fn lock_book(book: &Mutex<RuleBook>) -> MutexGuard<'_, RuleBook> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    if path.is_absolute() {
        Ok(path.to_owned())
    } else {
        Err(format!(
            "{}: the daemon needs an absolute policy path",
            path.display()
        ))
    }
}

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
fn authorize(stream: &UnixStream) -> Result<Peer, String> {
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
    if peer.uid == 0 || in_control_group(peer.pid) {
        Ok(peer)
    } else {
        Err(format!(
            "uid {} is neither root nor in the `{CONTROL_GROUP}` group",
            peer.uid
        ))
    }
}

/// Whether the task's groups (from `/proc/<pid>/status`) include the control group.
fn in_control_group(pid: i32) -> bool {
    let Ok(Some(group)) = nix::unistd::Group::from_name(CONTROL_GROUP) else {
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

fn send(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_string(response).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())
}

fn error(message: String) -> Response {
    Response::Error { message }
}

/// Serves one connection until it closes; ephemeral sandboxes it created go with it.
fn serve(daemon: &Shared, mut stream: UnixStream) {
    let peer = match authorize(&stream) {
        Ok(p) => p,
        Err(e) => {
            let _ = send(&mut stream, &error(e));
            return;
        }
    };
    let requester = peer.describe();
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut held: Vec<String> = Vec::new();
    for line in BufReader::new(read_half).lines() {
        let Ok(line) = line else { break };
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let _ = send(&mut stream, &error(format!("malformed request: {e}")));
                continue;
            }
        };
        let response = match request {
            Request::Events { sandbox, after } => {
                stream_events(daemon, &mut stream, sandbox.as_deref(), after.as_ref());
                break;
            }
            request @ Request::Create { .. } => {
                let ephemeral = matches!(
                    request,
                    Request::Create {
                        ephemeral: true,
                        ..
                    }
                );
                let r = lock(daemon).create(request, &requester);
                if let (true, Ok(Response::Created { sandbox, .. })) = (ephemeral, &r) {
                    held.push(sandbox.name.clone());
                }
                r.unwrap_or_else(error)
            }
            Request::Destroy { name, exit_code } => {
                held.retain(|h| *h != name);
                lock(daemon).destroy(&name, exit_code).unwrap_or_else(error)
            }
            Request::Apply { name, policy } => lock(daemon)
                .apply(&name, Some(&policy), &requester)
                .unwrap_or_else(error),
            Request::Reload => lock(daemon).reload_all(&requester),
            Request::List => {
                let d = lock(daemon);
                Response::Sandboxes {
                    sandboxes: d.sandboxes.values().map(|s| d.info(s)).collect(),
                }
            }
        };
        if send(&mut stream, &response).is_err() {
            break;
        }
    }
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
fn stream_events(
    daemon: &Shared,
    stream: &mut UnixStream,
    sandbox: Option<&str>,
    after: Option<&serde_json::Value>,
) {
    // Subscribe before reading the log: a record written in between comes both ways, and
    // `Seen` drops the second copy.
    let (rx, log) = {
        let d = lock(daemon);
        let rx = d
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .subscribe();
        (rx, d.config.audit_log.clone())
    };
    let replayed = match (sandbox, after) {
        (Some(name), Some(last)) => match replay::after(&log, name, last) {
            Ok(missed) => missed,
            Err(e) => {
                let _ = send(stream, &error(format!("reading {}: {e}", log.display())));
                return;
            }
        },
        _ => Vec::new(),
    };
    if send(stream, &Response::Subscribed).is_err() {
        return;
    }
    let mut seen = replay::Seen::new(&replayed);
    for record in replayed {
        if send(stream, &Response::Event { record }).is_err() {
            return;
        }
    }
    for line in rx {
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
        if send(stream, &Response::Event { record }).is_err() {
            return;
        }
    }
}

/// One daemon per state file: an exclusive `flock` on `<state>.lock`, held until exit.
fn single_instance(state_file: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, DaemonError> {
    let path = state_file.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| DaemonError::AlreadyRunning(path.clone()))
}

/// Binds the control socket: mode 0660, group `nemoclaw` where it exists. Called once the
/// daemon is ready, so a connectable socket means a started daemon. A leftover socket file
/// (the single-instance lock is ours, so no daemon answers there) is replaced.
fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    if path.exists() {
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    let listener = UnixListener::bind(path).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io_err(path))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name(CONTROL_GROUP) {
        nix::unistd::chown(path, None, Some(group.gid))
            .map_err(|e| io_err(path)(std::io::Error::from(e)))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(dir))?;
    }
    Ok(listener)
}

/// Watches the directories of the sandboxes' policy files (a directory, not the file, so
/// files renamed into place are seen too).
pub struct Watcher {
    inotify: nix::sys::inotify::Inotify,
    dirs: Mutex<std::collections::HashMap<nix::sys::inotify::WatchDescriptor, PathBuf>>,
}

impl Watcher {
    fn new() -> nix::Result<Self> {
        use nix::sys::inotify::{InitFlags, Inotify};
        Ok(Self {
            inotify: Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?,
            dirs: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Starts watching `file`'s directory (again watching a directory is a no-op).
    fn watch(&self, file: &Path) {
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
    fn run(&self, daemon: &Shared) {
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
                let mut d = lock(daemon);
                for sandbox in d.using_file(&path) {
                    if d.unchanged(&sandbox) {
                        continue;
                    }
                    if let Err(e) = d.apply(&sandbox, None, "policy file watch") {
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
fn daemon_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    set
}

/// Handles the (already blocked) daemon signals in one thread. Stopping leaves every
/// sandbox enforced by the pinned programs.
fn handle_signals(daemon: Shared, socket: PathBuf, set: nix::sys::signal::SigSet) {
    use nix::sys::signal::Signal;
    std::thread::spawn(move || {
        loop {
            match set.wait() {
                Ok(Signal::SIGHUP) => {
                    let r = lock(&daemon).reload_all("SIGHUP");
                    eprintln!(
                        "nemoclaw daemon: SIGHUP: {}",
                        serde_json::to_string(&r).unwrap_or_default()
                    );
                }
                Ok(_) => {
                    lock(&daemon).stop_record();
                    let _ = std::fs::remove_file(&socket);
                    std::process::exit(0);
                }
                Err(_) => {}
            }
        }
    });
}

/// Runs the daemon until a stop signal.
pub fn run(config: Config) -> Result<(), DaemonError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DaemonError::NotRoot);
    }
    for dir in [
        config.socket.parent(),
        config.state_file.parent(),
        config.audit_log.parent(),
    ]
    .into_iter()
    .flatten()
    {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let _lock = single_instance(&config.state_file)?;
    let socket = config.socket.clone();
    let watch_files = config.watch;
    // Block the signals before any thread exists, so they all inherit the mask.
    let set = daemon_signals();
    set.thread_block()
        .map_err(|e| io_err(&socket)(std::io::Error::from(e)))?;
    let (daemon, _reader) = Daemon::start(config)?;
    handle_signals(Arc::clone(&daemon), socket.clone(), set);
    if watch_files {
        match Watcher::new() {
            Ok(w) => {
                let w = Arc::new(w);
                let mut d = lock(&daemon);
                for s in d.sandboxes.values() {
                    w.watch(&s.state.policy);
                }
                d.watcher = Some(Arc::clone(&w));
                drop(d);
                let d = Arc::clone(&daemon);
                std::thread::spawn(move || w.run(&d));
            }
            Err(e) => eprintln!(
                "nemoclaw daemon: inotify unavailable ({e}); policy files are not watched"
            ),
        }
    }
    {
        let d = Arc::clone(&daemon);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                lock(&d).tidy();
            }
        });
    }
    {
        let d = Arc::clone(&daemon);
        std::thread::spawn(move || refresh_dns(&d));
    }
    {
        // Adopted sandboxes: a policy file changed while no daemon ran is applied now, and
        // host-name rules are resolved afresh (their refresh state did not survive).
        let mut d = lock(&daemon);
        let names: Vec<String> = d.sandboxes.keys().cloned().collect();
        for name in names {
            let Some(policy) = d.sandboxes.get(&name).map(|s| s.state.policy.clone()) else {
                continue;
            };
            let host_names = policy::load(&policy).is_ok_and(|p| refresh::has_host_names(&p));
            if d.unchanged(&name) && !host_names {
                continue;
            }
            if let Err(e) = d.apply(&name, None, "daemon restart") {
                eprintln!("nemoclaw daemon: {name}: {e}; its installed policy stays");
            }
        }
    }
    let listener = bind(&socket)?;
    {
        let d = lock(&daemon);
        eprintln!(
            "nemoclaw daemon: listening on {}; enforcing {} ({} sandboxes adopted)",
            socket.display(),
            sandbox_controls::names(d.enforcer.attached()).join(", "),
            d.sandboxes.len()
        );
    }
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let d = Arc::clone(&daemon);
                std::thread::spawn(move || serve(&d, stream));
            }
            Err(e) => eprintln!("nemoclaw daemon: accept: {e}"),
        }
    }
    Ok(())
}
