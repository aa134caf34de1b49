//! Unit tests of the daemon's core (create, apply, destroy, tidy) over a fake kernel and
//! fake cgroups (`fake_host`): no root, no BPF. Policies are real files in a temporary
//! directory, compiled by the daemon's own `compile`; the audit log is a file there too.
//! Reloads and adoption are in `core_reload_tests`.

use std::path::PathBuf;

use nemoclaw_common::sandbox::{SELF_TEST_SLOT, SandboxEntry, Slot, controls};
use serde_json::Value;

use super::{start::restore_sandboxes, *};
use crate::{
    audit::AuditSink,
    config::AuditSettings,
    daemon::{
        error::ErrorKind,
        fake_host::{Fail, FakeCgroups, FakeKernel, KernelState, Op},
        registry::SWEEP_BATCH,
    },
    kernel::loader::Lack,
};

/// A privilege policy (no network: no DNS gateway).
pub(super) const PRIV: &str = "privilege_escalation: deny\n";
/// A filesystem policy.
pub(super) const FS: &str = "filesystem:\n  allow: [\"/tmp/**\"]\nprivilege_escalation: deny\n";
/// A network policy (by address: nothing to resolve), which gets a DNS gateway.
pub(super) const NET: &str = "network:\n  allow: [\"10.0.0.1:443\"]\n";

/// A daemon over fakes, its files in a temporary directory.
pub(super) struct Harness {
    pub(super) daemon: Shared,
    pub(super) kernel: FakeKernel,
    pub(super) cgroups: FakeCgroups,
    /// Runs the DNS gateways (dropped after the daemon, whose gates it serves).
    _runtime: tokio::runtime::Runtime,
    pub(super) dir: tempfile::TempDir,
}

/// What a [`Harness`]'s daemon starts with.
#[derive(Default)]
pub(super) struct Setup {
    pub(super) kernel: KernelState,
    /// Controls not attached here, and why.
    pub(super) unavailable: Vec<boot::Unavailable>,
    /// The configuration's persistent sandboxes.
    pub(super) configured: Vec<PersistentSandbox>,
    /// The cgroups there are.
    pub(super) cgroups: FakeCgroups,
    /// Sandboxes of the state file an earlier daemon left, restored as at start.
    pub(super) saved: Vec<SandboxState>,
    /// Slots that state file lists as released.
    pub(super) released: Vec<Slot>,
}

impl Harness {
    /// Every control attached, no sandbox, none configured.
    pub(super) fn new() -> Self {
        Self::build(Setup::default())
    }

    /// A daemon assembled as [`Daemon::start`] does, over fakes set up as `setup` says.
    pub(super) fn build(setup: Setup) -> Self {
        let Setup {
            kernel,
            unavailable,
            configured,
            cgroups,
            saved,
            mut released,
        } = setup;
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let resolv_conf = dir.path().join("resolv.conf");
        std::fs::write(&resolv_conf, "nameserver 127.0.0.1\n").expect("resolv.conf");
        let config = Config {
            socket: dir.path().join("control.sock"),
            pin_dir: dir.path().join("pins"),
            state_file: dir.path().join("state.json"),
            resolv_conf,
            dns_grace: Duration::from_mins(1),
            cgroup_root: "nemoclaw".to_owned(),
            watch: false,
            router: None,
            socket_group: String::new(),
            http_listen: None,
            router_listen: None,
            sandboxes: configured,
            config_file: None,
            audit: AuditSettings {
                log: dir.path().join("audit.jsonl"),
                rotate_size: 0,
                keep: 1,
                ocsf: None,
            },
        };
        let sink =
            AuditSink::open_with(Some(&config.audit.log), false, &config.audit.sink_options())
                .expect("audit log");
        let sink: SharedSink = Arc::new(Mutex::new(sink));
        let mut kernel = FakeKernel(Arc::new(Mutex::new(kernel)));
        let gateway = Gateway::on(runtime.handle().clone());
        let book = Arc::default();
        let (sandboxes, gone) =
            restore_sandboxes(saved, &mut kernel, &cgroups, &gateway, &sink, &book);
        released.extend(gone);
        let daemon = Daemon::assemble(Parts {
            config,
            enforcer: Box::new(kernel.clone()),
            cgroups: Box::new(cgroups.clone()),
            sandboxes,
            released,
            unavailable,
            sink,
            book,
            gateway,
        });
        Self {
            daemon: Arc::new(Mutex::new(daemon)),
            kernel,
            cgroups,
            _runtime: runtime,
            dir,
        }
    }

    /// Writes the policy file `name` with `text`; its absolute path.
    pub(super) fn policy(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write policy");
        path
    }

    /// Creates sandbox `name` from the policy file `policy`, for root, as `test`.
    pub(super) fn create(&self, name: &str, policy: &Path) -> Result<Response, OpError> {
        self.create_spec(name, policy, false)
    }

    fn create_spec(&self, name: &str, policy: &Path, ephemeral: bool) -> Result<Response, OpError> {
        let spec = CreateSpec {
            name: Some(name.to_owned()),
            policy: policy.to_owned(),
            user: "root".to_owned(),
            command: vec!["sh".to_owned()],
            ephemeral,
            resolv_conf: None,
            dns_grace: None,
        };
        create(&self.daemon, spec, "test")
    }

    /// Applies the policy file `policy` to sandbox `name`, as `test`.
    pub(super) fn apply(&self, name: &str, policy: &Path) -> Result<Response, OpError> {
        apply(&self.daemon, name, Some(policy), "test")
    }

    /// The slots released and not yet swept.
    pub(super) fn released(&self) -> Vec<Slot> {
        lock(&self.daemon).slots.released().into_iter().collect()
    }

    /// Sweeps the released slots now (as a due sweep does).
    pub(super) fn sweep(&self) {
        lock(&self.daemon).sweep();
    }

    /// Sandbox `name`'s recorded state.
    pub(super) fn state(&self, name: &str) -> SandboxState {
        let d = lock(&self.daemon);
        let sandbox = d.sandboxes.get(name);
        sandbox.map_or_else(|| panic!("no sandbox {name}"), |s| s.state.clone())
    }

    /// The audit records of kind `event`, in order.
    pub(super) fn records(&self, event: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("an audit line is JSON"))
            .filter(|r| r["event"] == event)
            .collect()
    }

    /// The sandboxes the state file lists.
    pub(super) fn persisted(&self) -> Vec<String> {
        let state = StateFile::read(&self.dir.path().join("state.json"))
            .expect("state file")
            .expect("state file written");
        state.sandboxes.into_iter().map(|s| s.name).collect()
    }
}

/// Marks every slot but those in `free` used.
fn only_free(daemon: &mut Daemon, free: &[Slot]) {
    daemon.slots = Slots::with_used((1..SELF_TEST_SLOT).filter(|s| !free.contains(s)));
}

#[test]
fn create_installs_the_policy_then_registers_its_cgroup_and_records_it() {
    let h = Harness::new();
    let policy = h.policy("web.yaml", FS);
    let Ok(Response::Created {
        sandbox, account, ..
    }) = h.create("web", &policy)
    else {
        panic!("not created");
    };
    // The account the command is to run as: the one the policy was compiled for.
    let root = SandboxUser::resolve(Some("root")).expect("root");
    assert_eq!(account, Some(Account::of(&root)));
    let path = FakeCgroups::path_of("nemoclaw", "web");
    let id = h.cgroups.state().dirs[&path].id;
    assert_eq!((sandbox.cgroup, sandbox.cgroup_id), (path, id));
    let state = h.state("web");
    let k = h.kernel.state();
    let installed = &k.slots[&state.slot];
    assert_ne!(installed.controls & controls::FS, 0, "{installed:?}");
    assert_eq!(state.controls, installed.controls);
    let entry = SandboxEntry {
        slot: state.slot,
        controls: installed.controls,
    };
    assert_eq!(k.registry.get(&id), Some(&entry));
    assert!(k.position(Op::Install(state.slot)) < k.position(Op::Register(id, entry)));
    assert_eq!(k.slots.len(), 1);
    assert!(k.dns_gates.is_empty(), "no network section, no gateway");
    drop(k);
    assert_eq!(h.persisted(), ["web"]);
    assert_eq!(lock(&h.daemon).reloads.by_sandbox["web"].generation, 1);
    let started = h.records("sandbox_start");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["sandbox"], "web");
    assert_eq!(started[0]["cgroup"], id);
    assert_eq!(started[0]["requested_by"], "test");
    assert_eq!(started[0]["policy"]["sha256"], state.policy_sha256);
}

#[test]
fn a_network_policy_points_its_dns_at_a_gateway_before_registering() {
    let h = Harness::new();
    let policy = h.policy("net.yaml", NET);
    h.create("net", &policy).expect("created");
    let state = h.state("net");
    let k = h.kernel.state();
    let (port4, port6) = k.dns_gates[&state.slot];
    assert_ne!(port4, 0, "the gateway listens on 127.0.0.1");
    assert_eq!(state.dns_ports, (port4, port6));
    // Socket kinds are restricted here, so they are registered with the network rules.
    assert_eq!(state.controls, controls::NET | controls::SOCKETS);
    let entry = SandboxEntry {
        slot: state.slot,
        controls: state.controls,
    };
    let gate = k.position(Op::SetDnsGate(state.slot, port4, port6));
    assert!(gate < k.position(Op::Register(state.cgroup_id, entry)));
}

#[test]
fn a_policy_needing_an_unattached_control_is_refused_with_its_reason_and_changes_nothing() {
    let kernel = KernelState {
        attached: controls::EXEC | controls::NET | controls::PRIVILEGE,
        ..KernelState::default()
    };
    let why = "bpf is not in the active LSM list";
    let unavailable = vec![boot::Unavailable {
        controls: controls::FS,
        lack: Lack::BpfLsm,
        why: why.to_owned(),
        fix: "boot with lsm=...,bpf".to_owned(),
    }];
    let h = Harness::build(Setup {
        kernel,
        unavailable,
        ..Setup::default()
    });
    let fs = h.policy("fs.yaml", FS);
    let error = h.create("web", &fs).expect_err("FS is not attached");
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    assert!(
        matches!(
            &error,
            OpError::Unavailable(KernelError::ControlUnavailable {
                controls: controls::FS,
                lack: Lack::BpfLsm,
                ..
            })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains(why), "{error}");
    assert!(
        h.kernel.state().calls.is_empty(),
        "the kernel was not touched"
    );
    assert!(h.cgroups.state().dirs.is_empty() && h.cgroups.state().removed.is_empty());
    assert!(lock(&h.daemon).sandboxes.is_empty());
    assert!(h.records("sandbox_start").is_empty());

    // Applied to a running sandbox: refused the same way, the installed policy stays.
    let privilege = h.policy("priv.yaml", PRIV);
    h.create("web", &privilege).expect("created");
    let before = h.state("web");
    let calls = h.kernel.state().calls.len();
    let error = h.apply("web", &fs).expect_err("FS is not attached");
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    assert_eq!(
        h.kernel.state().calls.len(),
        calls,
        "the kernel was not touched"
    );
    assert_eq!(h.state("web"), before);
    let rejected = h.records("policy_rejected");
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains(why)),
        "{rejected:?}"
    );
}

#[test]
fn a_network_policy_for_root_is_refused_where_socket_kinds_stay_open() {
    let h = Harness::build(Setup {
        kernel: KernelState {
            socket_kinds: false,
            ..KernelState::default()
        },
        ..Setup::default()
    });
    let error = h
        .create("net", &h.policy("net.yaml", NET))
        .expect_err("root, raw sockets");
    assert!(matches!(error, OpError::Controls(_)), "{error:?}");
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert!(
        h.kernel.state().calls.is_empty(),
        "the kernel was not touched"
    );
    assert!(h.cgroups.state().removed.is_empty(), "no cgroup was made");
}

#[test]
fn apply_switches_to_a_fresh_slot_before_clearing_the_old_one() {
    let h = Harness::new();
    let (privilege, fs) = (h.policy("priv.yaml", PRIV), h.policy("fs.yaml", FS));
    h.create("web", &privilege).expect("created");
    let old = h.state("web");
    let Ok(Response::Applied {
        old_sha256,
        new_sha256,
        ..
    }) = h.apply("web", &fs)
    else {
        panic!("not applied");
    };
    let new = h.state("web");
    assert_ne!(new.slot, old.slot);
    assert_eq!(
        (old_sha256, &new_sha256),
        (old.policy_sha256.clone(), &new.policy_sha256)
    );
    assert_eq!(
        (new.policy.as_path(), new.cgroup_id),
        (fs.as_path(), old.cgroup_id)
    );
    // The old slot is released: no cgroup points at it, its entries wait for a sweep.
    assert_eq!(h.released(), [old.slot]);
    assert!(!h.kernel.state().calls.contains(&Op::ClearSlot(old.slot)));
    h.sweep();
    assert!(h.released().is_empty());
    let k = h.kernel.state();
    assert_eq!(
        k.slots.keys().copied().collect::<Vec<_>>(),
        [new.slot],
        "old slot cleared"
    );
    assert_ne!(k.slots[&new.slot].controls & controls::FS, 0);
    let entry = SandboxEntry {
        slot: new.slot,
        controls: new.controls,
    };
    assert_eq!(k.registry.get(&old.cgroup_id), Some(&entry));
    // No gap: the new slot is complete before the switch, the old one cleared after it.
    let switch = k.position(Op::Register(old.cgroup_id, entry));
    assert!(k.position(Op::Install(new.slot)) < switch);
    assert!(switch < k.position(Op::ClearSlot(old.slot)));
    drop(k);
    let book = &lock(&h.daemon).reloads.by_sandbox["web"];
    assert_eq!(book.generation, 2);
    assert!(book.last.as_ref().is_some_and(|l| l.ok));
    let reloads = h.records("policy_reload");
    assert_eq!(reloads.len(), 1);
    assert_eq!(reloads[0]["new_sha256"], new_sha256.as_str());
    assert_eq!(reloads[0]["old_sha256"], old.policy_sha256.as_str());
}

#[test]
fn a_failed_install_during_apply_keeps_the_old_slot_and_frees_the_new_one() {
    let h = Harness::new();
    let (privilege, fs) = (h.policy("priv.yaml", PRIV), h.policy("fs.yaml", FS));
    h.create("web", &privilege).expect("created");
    let old = h.state("web");
    // One slot left: if the failed apply kept it, the next apply would find none.
    let spare = old.slot + 1;
    only_free(&mut lock(&h.daemon), &[spare]);
    h.kernel.state().failing.push(Fail::Install);
    let error = h.apply("web", &fs).expect_err("install fails");
    assert!(matches!(error, OpError::Kernel(_)), "{error:?}");
    assert_eq!(error.kind(), ErrorKind::Internal);
    assert_eq!(h.state("web"), old, "the old policy stays");
    {
        let k = h.kernel.state();
        assert_eq!(k.slot_of(old.cgroup_id), Some(old.slot));
        assert_eq!(k.slots.keys().copied().collect::<Vec<_>>(), [old.slot]);
        assert_eq!(k.slots[&old.slot].controls, controls::PRIVILEGE);
        // The failed slot was released and, being the one that could be taken, swept at
        // once for the retry; the retry failed too and released it again.
        assert!(k.calls.contains(&Op::ClearSlot(spare)), "{:?}", k.calls);
        assert!(!k.calls.contains(&Op::ClearSlot(old.slot)));
        assert!(
            !k.calls
                .iter()
                .any(|c| matches!(c, Op::Register(_, e) if e.slot == spare))
        );
    }
    let book = lock(&h.daemon).reloads.by_sandbox["web"].clone();
    assert_eq!(book.generation, 1);
    assert!(book.last.is_some_and(|l| !l.ok && l.error.is_some()));
    assert_eq!(h.records("policy_rejected").len(), 1);
    assert!(h.records("policy_reload").is_empty());

    assert_eq!(
        h.released(),
        [spare],
        "its partial entries wait for a sweep"
    );
    h.kernel.state().failing.clear();
    h.apply("web", &fs)
        .expect("the released slot is swept and taken again");
    assert_eq!(h.state("web").slot, spare);
    assert_eq!(h.kernel.state().slot_of(old.cgroup_id), Some(spare));
}

#[test]
fn a_failed_switch_during_apply_keeps_the_old_registration_and_clears_the_new_slot() {
    let h = Harness::new();
    let (privilege, fs) = (h.policy("priv.yaml", PRIV), h.policy("fs.yaml", FS));
    h.create("web", &privilege).expect("created");
    let old = h.state("web");
    h.kernel.state().failing.push(Fail::Register);
    let error = h.apply("web", &fs).expect_err("register fails");
    assert_eq!(error.kind(), ErrorKind::Internal, "{error}");
    assert_eq!(h.state("web"), old);
    assert_eq!(h.kernel.state().slot_of(old.cgroup_id), Some(old.slot));
    let new_slot = old.slot + 1;
    assert_eq!(h.released(), [new_slot], "the new slot is released");
    h.sweep();
    assert_eq!(
        h.kernel.state().slots.keys().copied().collect::<Vec<_>>(),
        [old.slot],
        "new slot cleared"
    );
}

/// Deny events still waiting in the kernel's ring buffer when a sandbox is destroyed are
/// written before its stop record (the drain runs first): `nemoclaw run` stops copying at
/// that record, so a denial written after it would be missing from the run's copy.
#[test]
fn a_destroyed_sandbox_s_waiting_denials_are_written_before_its_stop_record() {
    let h = Harness::new();
    let policy = h.policy("priv.yaml", PRIV);
    h.create("web", &policy).expect("created");
    let sink = Arc::clone(&lock(&h.daemon).sink);
    // Stands for the reader's drain: writes the one deny record the ring buffer held.
    lock(&h.daemon).audit_drain = Some(Box::new(move || {
        let record = serde_json::json!({"event": "waiting_denial", "sandbox": "web"});
        sink.lock().unwrap().write_record(&record).expect("write");
    }));
    lock(&h.daemon).destroy("web", Some(0)).expect("destroyed");
    let text = std::fs::read_to_string(h.dir.path().join("audit.jsonl")).expect("audit log");
    let events: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["event"].to_string())
        .collect();
    let at = |event: &str| events.iter().position(|e| e == &format!("\"{event}\""));
    let (denial, stop) = (at("waiting_denial"), at("sandbox_stop"));
    assert!(
        denial.is_some() && denial < stop,
        "the denial before the stop record: {events:?}"
    );
}

#[test]
fn destroy_kills_the_tasks_then_unregisters_and_clears_the_slot() {
    let h = Harness::new();
    let policy = h.policy("priv.yaml", PRIV);
    h.create("web", &policy).expect("created");
    let state = h.state("web");
    let path = FakeCgroups::path_of("nemoclaw", "web");
    h.cgroups.state().dirs.get_mut(&path).expect("cgroup").tasks = 2;
    h.kernel.state().events_lost = 5;
    let Ok(Response::Destroyed { name }) = lock(&h.daemon).destroy("web", Some(0)) else {
        panic!("not destroyed");
    };
    assert_eq!(name, "web");
    assert!(h.kernel.state().registry.is_empty());
    // Released: unreachable (no cgroup registered with it) and not handed out before a
    // sweep has cleared it.
    assert_eq!(h.released(), [state.slot]);
    let persisted = StateFile::read(&h.dir.path().join("state.json"))
        .expect("state file")
        .expect("written");
    assert_eq!(
        persisted.released,
        [state.slot],
        "a restarted daemon sweeps it"
    );
    h.sweep();
    let k = h.kernel.state();
    assert!(k.slots.is_empty());
    assert!(k.position(Op::Unregister(state.cgroup_id)) < k.position(Op::ClearSlot(state.slot)));
    drop(k);
    let c = h.cgroups.state();
    assert_eq!(
        (c.killed.as_slice(), c.removed.as_slice()),
        ([path.clone()].as_slice(), [path].as_slice())
    );
    drop(c);
    assert!(lock(&h.daemon).sandboxes.is_empty());
    assert!(!lock(&h.daemon).reloads.by_sandbox.contains_key("web"));
    assert!(h.persisted().is_empty());
    let stopped = h.records("sandbox_stop");
    assert_eq!(stopped.len(), 1);
    assert_eq!(
        (&stopped[0]["sandbox"], &stopped[0]["exit_code"]),
        (&"web".into(), &0.into())
    );
    assert_eq!(stopped[0]["events_lost"], 5, "dropped while it ran");
    let error = lock(&h.daemon).destroy("web", None).expect_err("gone");
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

#[test]
fn released_slots_are_swept_together_once_a_batch_waits() {
    let h = Harness::new();
    let policy = h.policy("priv.yaml", PRIV);
    let mut slots = Vec::new();
    for i in 0..SWEEP_BATCH {
        let name = format!("s{i}");
        h.create(&name, &policy).expect("created");
        slots.push(h.state(&name).slot);
        lock(&h.daemon).destroy(&name, Some(0)).expect("destroyed");
        if i + 1 < SWEEP_BATCH {
            assert_eq!(h.released(), slots, "released, not yet swept");
        }
    }
    assert!(h.released().is_empty(), "the batch was swept");
    let k = h.kernel.state();
    assert!(k.slots.is_empty());
    // One sweep cleared them all, after the last release.
    let first_clear = k
        .calls
        .iter()
        .position(|c| matches!(c, Op::ClearSlot(_)))
        .expect("a sweep");
    let clears: Vec<Slot> = k.calls[first_clear..]
        .iter()
        .map(|c| match c {
            Op::ClearSlot(s) => *s,
            other => panic!("not one sweep: {other:?}"),
        })
        .collect();
    assert_eq!(clears, slots);
}

#[test]
fn a_slot_whose_sweep_failed_is_never_handed_out_until_a_sweep_clears_it() {
    let h = Harness::new();
    let policy = h.policy("priv.yaml", PRIV);
    h.create("a", &policy).expect("created");
    let slot = h.state("a").slot;
    lock(&h.daemon).destroy("a", Some(0)).expect("destroyed");
    h.kernel.state().failing.push(Fail::ClearSlots);
    h.sweep();
    assert_eq!(
        h.released(),
        [slot],
        "still released after the failed sweep"
    );
    assert!(
        h.kernel.state().slots.contains_key(&slot),
        "its entries are still there"
    );
    // Every other slot taken: the only candidate is the one with another policy's entries.
    {
        let mut d = lock(&h.daemon);
        while d.slots.allocate().is_some() {}
    }
    let before = h.kernel.state().calls.len();
    let error = h.create("b", &policy).expect_err("no clean slot");
    assert_eq!(error.kind(), ErrorKind::Exhausted, "{error}");
    assert!(
        !h.kernel.state().calls[before..]
            .iter()
            .any(|c| matches!(c, Op::Install(_))),
        "nothing installed on top of the old entries"
    );
    h.kernel.state().failing.clear();
    h.create("b", &policy).expect("swept, then taken");
    assert_eq!(h.state("b").slot, slot);
    assert!(h.released().is_empty());
}

#[test]
fn with_every_slot_in_use_create_and_apply_are_refused_as_exhausted() {
    let h = Harness::new();
    let (privilege, fs) = (h.policy("priv.yaml", PRIV), h.policy("fs.yaml", FS));
    h.create("web", &privilege).expect("created");
    let old = h.state("web");
    only_free(&mut lock(&h.daemon), &[]);
    let calls = h.kernel.state().calls.len();
    let error = h.create("api", &privilege).expect_err("no slot");
    assert!(matches!(error, OpError::NoFreeSlot), "{error:?}");
    assert_eq!(error.kind(), ErrorKind::Exhausted);
    let api = FakeCgroups::path_of("nemoclaw", "api");
    assert!(
        h.cgroups.state().removed.contains(&api),
        "its cgroup went again"
    );
    assert!(!lock(&h.daemon).sandboxes.contains_key("api"));
    let error = h.apply("web", &fs).expect_err("no slot");
    assert_eq!(error.kind(), ErrorKind::Exhausted);
    assert_eq!(
        h.kernel.state().calls.len(),
        calls,
        "the kernel was not touched"
    );
    assert_eq!(h.state("web"), old);
}

#[test]
fn an_apply_compiled_against_a_sandbox_switched_since_is_refused_as_changed() {
    let h = Harness::new();
    let (privilege, fs) = (h.policy("priv.yaml", PRIV), h.policy("fs.yaml", FS));
    h.create("web", &privilege).expect("created");
    let stale = h.state("web");
    // Compiled against `stale` (as `apply` does without the lock)...
    let config = lock(&h.daemon).config.clone();
    let user = SandboxUser::resolve(Some("root")).expect("root");
    let compiled =
        compile(&config, &fs, &user, &config.resolv_conf, config.dns_grace).expect("compiles");
    // ...while another apply switched the sandbox.
    h.apply("web", &fs).expect("applied");
    let current = h.state("web");
    let calls = h.kernel.state().calls.len();
    let error = lock(&h.daemon)
        .apply_compiled("web", &stale, &fs, &user, compiled, "test")
        .expect_err("stale");
    assert!(
        matches!(&error, OpError::Changed(n) if n == "web"),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert_eq!(
        h.kernel.state().calls.len(),
        calls,
        "the kernel was not touched"
    );
    assert_eq!(h.state("web"), current);
    assert_eq!(h.records("policy_rejected").len(), 1);
}

#[test]
fn a_taken_name_is_refused_as_a_conflict_and_a_malformed_one_as_invalid() {
    let h = Harness::new();
    let policy = h.policy("priv.yaml", PRIV);
    h.create("web", &policy).expect("created");
    let calls = h.kernel.state().calls.len();
    let error = h.create("web", &policy).expect_err("taken");
    assert!(
        matches!(&error, OpError::SandboxExists(n) if n == "web"),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Conflict);
    let error = h.create("Not A Name", &policy).expect_err("malformed");
    assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");
    assert_eq!(
        h.kernel.state().calls.len(),
        calls,
        "the kernel was not touched"
    );
    assert_eq!(h.cgroups.state().dirs.len(), 1);
    assert_eq!(h.records("sandbox_start").len(), 1);
}

#[test]
fn a_failed_registration_at_create_frees_the_slot_and_the_cgroup() {
    let h = Harness::new();
    let policy = h.policy("priv.yaml", PRIV);
    h.kernel.state().failing.push(Fail::Register);
    let error = h.create("web", &policy).expect_err("register fails");
    assert_eq!(error.kind(), ErrorKind::Internal, "{error}");
    let Some(Op::Install(slot)) = h.kernel.state().calls.first().copied() else {
        panic!("{:?}", h.kernel.state().calls);
    };
    assert_eq!(h.released(), [slot]);
    h.sweep();
    let k = h.kernel.state();
    assert!(k.slots.is_empty() && k.registry.is_empty(), "{k:?}");
    assert!(k.calls.contains(&Op::ClearSlot(slot)));
    drop(k);
    assert!(h.cgroups.state().dirs.is_empty(), "its cgroup went again");
    assert!(lock(&h.daemon).sandboxes.is_empty());
    assert!(h.records("sandbox_start").is_empty());
}

#[test]
fn tidy_destroys_abandoned_ephemeral_sandboxes_and_records_dropped_events() {
    let h = Harness::new();
    let policy = h.policy("priv.yaml", PRIV);
    for name in ["idle", "busy", "held"] {
        h.create_spec(name, &policy, true).expect("created");
    }
    h.create("kept", &policy).expect("created");
    {
        let mut d = lock(&h.daemon);
        for name in ["idle", "busy"] {
            d.sandboxes.get_mut(name).expect("sandbox").holders = 0;
        }
    }
    let busy = FakeCgroups::path_of("nemoclaw", "busy");
    h.cgroups.state().dirs.get_mut(&busy).expect("cgroup").tasks = 1;
    h.kernel.state().events_lost = 3;
    lock(&h.daemon).tidy();
    let left: Vec<String> = lock(&h.daemon).sandboxes.keys().cloned().collect();
    assert_eq!(left, ["busy", "held", "kept"]);
    assert_eq!(h.records("sandbox_stop").len(), 1);
    let lost = h.records("events_lost");
    assert_eq!(lost.len(), 1);
    assert_eq!(
        (&lost[0]["lost"], &lost[0]["total"]),
        (&3.into(), &3.into())
    );
    lock(&h.daemon).tidy();
    assert_eq!(h.records("events_lost").len(), 1, "recorded once");
}
