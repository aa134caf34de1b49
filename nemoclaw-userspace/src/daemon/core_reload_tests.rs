//! Unit tests of the daemon's reloads (the configuration's persistent sandboxes, every
//! policy file re-read) and of the restore of an earlier daemon's sandboxes (adoption),
//! over the fake kernel and cgroups of `core_tests`' harness.

use std::path::PathBuf;

use nemoclaw_common::sandbox::{SandboxEntry, controls};

use super::{
    core_tests::{FS, Harness, PRIV, Setup},
    *,
};
use crate::daemon::{
    fake_host::{FakeCgroups, KernelState, Op},
    health::SandboxReloads,
    persistent,
};

fn configured(name: &str, policy: PathBuf) -> PersistentSandbox {
    PersistentSandbox {
        name: name.to_owned(),
        policy,
        user: "root".to_owned(),
    }
}

/// A harness whose configuration names `web` and `api`, with their policy files (`PRIV`
/// both) written.
fn with_two_configured() -> Harness {
    let h = Harness::new();
    let (web, api) = (h.policy("web.yaml", PRIV), h.policy("api.yaml", PRIV));
    lock(&h.daemon).configured = vec![configured("web", web), configured("api", api)];
    h
}

fn book(h: &Harness, name: &str) -> SandboxReloads {
    lock(&h.daemon)
        .reloads
        .by_sandbox
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in the reload book"))
}

fn reload(h: &Harness) -> (Vec<String>, Vec<String>, Vec<String>) {
    match persistent::reload(&h.daemon, "reload") {
        Response::Reloaded {
            applied,
            unchanged,
            failed,
        } => (applied, unchanged, failed),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reload_creates_configured_sandboxes_and_records_each_outcome() {
    let h = with_two_configured();
    let (applied, unchanged, failed) = reload(&h);
    assert!(
        applied.is_empty() && failed.is_empty(),
        "{applied:?} {failed:?}"
    );
    assert_eq!(unchanged, ["api", "web"], "created, then found unchanged");
    let web = h.state("web");
    assert_eq!(h.kernel.state().slot_of(web.cgroup_id), Some(web.slot));
    assert_eq!(book(&h, "web").generation, 1);
    assert_eq!(h.records("sandbox_start").len(), 2);

    // One file made invalid, the other changed: one fails (its policy stays), one applies.
    h.policy("web.yaml", "privilege_escalation: maybe\n");
    h.policy("api.yaml", FS);
    let (applied, unchanged, failed) = reload(&h);
    assert_eq!(applied, ["api"]);
    assert!(unchanged.is_empty(), "{unchanged:?}");
    assert!(
        failed.len() == 1 && failed[0].starts_with("web: "),
        "{failed:?}"
    );
    assert_eq!(h.state("web"), web, "the failed sandbox keeps its policy");
    assert_eq!(h.kernel.state().slot_of(web.cgroup_id), Some(web.slot));
    let web_book = book(&h, "web");
    assert_eq!(web_book.generation, 1);
    let last = web_book.last.expect("a last reload");
    assert!(!last.ok);
    assert!(
        last.error
            .is_some_and(|e| e.contains("privilege_escalation")),
        "the error is recorded"
    );
    let api_book = book(&h, "api");
    assert_eq!(api_book.generation, 2);
    assert!(api_book.last.is_some_and(|l| l.ok && l.error.is_none()));
    assert_eq!(lock(&h.daemon).reloads.total, 2);
    assert_eq!(h.records("policy_rejected").len(), 1);
    assert_eq!(h.records("policy_reload").len(), 1);

    // The bad file rolled back to the enforced policy: unchanged, and no longer failed.
    h.policy("web.yaml", PRIV);
    let (applied, unchanged, failed) = reload(&h);
    assert!(
        applied.is_empty() && failed.is_empty(),
        "{applied:?} {failed:?}"
    );
    assert_eq!(unchanged, ["api", "web"]);
    assert!(book(&h, "web").last.is_some_and(|l| l.ok));
    assert_eq!(h.state("web"), web);
}

#[test]
fn a_configured_sandbox_that_cannot_be_created_is_recorded_as_failed() {
    let h = Harness::new();
    let missing = h.dir.path().join("missing.yaml");
    lock(&h.daemon).configured = vec![configured("api", missing.clone())];
    let (applied, unchanged, failed) = reload(&h);
    assert!(applied.is_empty() && unchanged.is_empty() && failed.is_empty());
    assert!(lock(&h.daemon).sandboxes.is_empty());
    let last = book(&h, "api").last.expect("recorded");
    assert!(!last.ok);
    assert!(last.error.is_some_and(|e| e.contains("missing.yaml")));
    assert!(h.kernel.state().calls.is_empty());

    // Once its file exists, the next reload creates it.
    std::fs::write(&missing, PRIV).expect("write policy");
    reload(&h);
    let api = h.state("api");
    assert_eq!(h.kernel.state().slot_of(api.cgroup_id), Some(api.slot));
    assert_eq!(book(&h, "api").generation, 1);
}

/// The file watcher, SIGHUP and `nemoclaw daemon reload` may all see one change of a
/// policy file at once: each of them succeeds, one applies it, and none returns before
/// the new policy's generation is counted.
#[test]
fn reloads_racing_for_one_change_all_succeed_and_count_it_once() {
    const RACERS: usize = 3;
    let h = Harness::new();
    let file = h.policy("web.yaml", PRIV);
    h.create("web", &file).expect("created");
    for round in 0..30_u64 {
        let text = if round % 2 == 0 { FS } else { PRIV };
        h.policy("web.yaml", &format!("{text}# change {round}\n"));
        let start = std::sync::Barrier::new(RACERS);
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..RACERS)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        let result = reload_from_file(&h.daemon, "web", "race");
                        let generation = book(&h, "web").generation;
                        (result.map(|r| r.is_some()), generation)
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|r| r.join().expect("racer"))
                .collect()
        });
        let generation = round + 2;
        for (result, seen) in &outcomes {
            assert!(result.is_ok(), "round {round}: {outcomes:?}");
            assert_eq!(*seen, generation, "round {round}: {outcomes:?}");
        }
        let applied = outcomes
            .iter()
            .filter(|(r, _)| matches!(r, Ok(true)))
            .count();
        assert_eq!(applied, 1, "round {round}: {outcomes:?}");
    }
    assert!(h.records("policy_rejected").is_empty());
    assert_eq!(h.records("policy_reload").len(), 30);
}

/// A sandbox an earlier daemon saved, in cgroup `cgroup` (`id`) with `slot`.
fn saved(name: &str, cgroup: PathBuf, id: u64, slot: Slot, controls: u32) -> SandboxState {
    SandboxState {
        name: name.to_owned(),
        cgroup,
        cgroup_id: id,
        slot,
        controls,
        policy: PathBuf::from("/nonexistent/policy.yaml"),
        policy_sha256: "0".repeat(64),
        user: "root".to_owned(),
        command: Vec::new(),
        ephemeral: false,
        rules: Vec::new(),
        resolv_conf: PathBuf::from("/nonexistent/resolv.conf"),
        dns_grace: 60,
        events_lost_at_start: 0,
        dns_names: vec!["example.com".to_owned()],
        dns_ports: (0, 0),
        inference: None,
    }
}

#[test]
fn slots_released_before_a_restart_are_swept_at_start_but_never_an_adopted_ones() {
    let cgroups = FakeCgroups::default();
    let kept = FakeCgroups::path_of("nemoclaw", "kept");
    let kept_id = cgroups.state().add(&kept);
    let mut kernel = KernelState::default();
    for slot in [5, 9] {
        kernel.slots.insert(slot, CompiledPolicy::default());
    }
    let h = Harness::build(Setup {
        cgroups,
        kernel,
        saved: vec![saved("kept", kept, kept_id, 5, controls::PRIVILEGE)],
        // 5 is listed too, as a damaged file might: the adopted sandbox keeps it.
        released: vec![9, 5],
        ..Setup::default()
    });
    let k = h.kernel.state();
    assert_eq!(k.calls, [Op::ClearSlot(9)]);
    assert_eq!(k.slots.keys().copied().collect::<Vec<_>>(), [5]);
    drop(k);
    assert!(h.released().is_empty());
    let policy = h.policy("priv.yaml", PRIV);
    h.create("new", &policy).expect("created");
    assert_ne!(h.state("new").slot, 5);
}

#[test]
fn restore_keeps_sandboxes_whose_cgroup_remains_and_clears_the_others() {
    let cgroups = FakeCgroups::default();
    let (kept, recreated) = (
        FakeCgroups::path_of("nemoclaw", "kept"),
        FakeCgroups::path_of("nemoclaw", "recreated"),
    );
    let kept_id = cgroups.state().add(&kept);
    let recreated_id = cgroups.state().add(&recreated);
    let gone = FakeCgroups::path_of("nemoclaw", "gone");
    let h = Harness::build(Setup {
        cgroups,
        saved: vec![
            saved("kept", kept, kept_id, 5, controls::PRIVILEGE),
            saved("gone", gone, 77, 6, controls::PRIVILEGE),
            // The same path, another cgroup: not the sandbox that was saved.
            saved("recreated", recreated, recreated_id + 100, 7, controls::FS),
        ],
        ..Setup::default()
    });
    let d = lock(&h.daemon);
    assert_eq!(d.sandboxes.keys().collect::<Vec<_>>(), ["kept"]);
    assert_eq!(d.reloads.by_sandbox["kept"].generation, 1);
    assert_eq!(
        lock_book(&d.book).get(5).map(|(name, _)| name),
        Some("kept".to_owned()),
        "its deny events are cited again"
    );
    drop(d);
    assert_eq!(
        h.kernel.state().calls,
        [
            Op::Unregister(77),
            Op::Unregister(recreated_id + 100),
            Op::ClearSlot(6),
            Op::ClearSlot(7),
        ],
        "only the sandboxes gone are cleared, in one sweep at start"
    );
    // A new sandbox takes a slot the adopted one does not use.
    let policy = h.policy("priv.yaml", PRIV);
    h.create("new", &policy).expect("created");
    let new = h.state("new");
    assert_ne!(new.slot, 5);
    assert_eq!(
        h.kernel.state().registry.get(&new.cgroup_id),
        Some(&SandboxEntry {
            slot: new.slot,
            controls: new.controls,
        })
    );
}

#[test]
fn a_restored_network_sandbox_gets_a_dns_gateway_again() {
    let cgroups = FakeCgroups::default();
    let path = FakeCgroups::path_of("nemoclaw", "net");
    let id = cgroups.state().add(&path);
    let h = Harness::build(Setup {
        cgroups,
        saved: vec![saved("net", path, id, 9, controls::NET | controls::SOCKETS)],
        ..Setup::default()
    });
    let state = h.state("net");
    let (port4, port6) = state.dns_ports;
    assert_ne!(port4, 0, "a gateway listens for it");
    assert_eq!(h.kernel.state().calls, [Op::SetDnsGate(9, port4, port6)]);
    assert_eq!(h.kernel.state().dns_gates[&9], (port4, port6));
    assert!(lock(&h.daemon).sandboxes["net"].gate.is_some());
}

#[test]
fn ps_claims_of_an_adopted_sandbox_only_the_controls_proven_here() {
    let cgroups = FakeCgroups::default();
    let path = FakeCgroups::path_of("nemoclaw", "web");
    let id = cgroups.state().add(&path);
    let h = Harness::build(Setup {
        // The filesystem control failed its self-test: withdrawn.
        kernel: KernelState {
            attached: controls::EXEC | controls::NET | controls::PRIVILEGE,
            ..KernelState::default()
        },
        cgroups,
        saved: vec![saved(
            "web",
            path,
            id,
            3,
            controls::FS | controls::PRIVILEGE,
        )],
        ..Setup::default()
    });
    let d = lock(&h.daemon);
    let info = d.info(&d.sandboxes["web"]);
    assert_eq!(info.enforcing, ["privilege_escalation"]);
    assert_eq!(
        d.sandboxes["web"].state.controls,
        controls::FS | controls::PRIVILEGE
    );
}
