//! The daemon's start: enforcement opened (`boot`: adopted or loaded, then proven by the
//! self-test), the audit log and reader, and the sandboxes of the state file restored
//! (their cgroups checked, rules cited again, DNS gateways reopened).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use nemoclaw_common::sandbox::{SELF_TEST_SLOT, Slot, controls};

use super::{
    Config, Daemon, DaemonCitations, DaemonError, Parts, Sandbox, Shared, io_err, lock_book,
};
use crate::{
    audit::{
        AuditSink,
        lifecycle::{Lifecycle, now},
        reader::{AuditReader, SharedSink},
    },
    daemon::{
        boot,
        host::{Cgroups, Kernel, SystemCgroups},
        notify::dlog,
        registry::{RuleBook, SandboxState},
    },
    dnsgate::{
        gateway::{Gate, GateSpec, Gateway},
        names::AllowedNames,
    },
    kernel::{
        Enforcer,
        loader::{LSM_CONTROLS, Lack},
        lsm::LsmList,
    },
    sandbox::{controls as sandbox_controls, selftest},
};

impl Daemon {
    /// Starts: single instance, enforcement loaded or adopted, sandboxes restored, audit log
    /// open. Writes the `daemon_start` record.
    /// Its tasks run on `runtime`.
    pub fn start(
        config: Config,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(Shared, AuditReader), DaemonError> {
        let (mut enforcer, state, mut unavailable) = boot::open_enforcement(&config)?;
        let adopted = state.is_some();
        if adopted {
            unavailable.extend(adopted_without_lsm(&enforcer));
        }
        // Loaded or adopted, nothing counts as enforced before its self-test denies a probe.
        let self_test = boot::prove(&mut enforcer, &config.cgroup_root);
        for (bit, why) in &self_test.failed {
            dlog!(
                Warning,
                "the {} is unavailable: {why}",
                crate::kernel::loader::controls_phrase(*bit)
            );
            unavailable.push(boot::Unavailable {
                controls: *bit,
                lack: Lack::SelfTest,
                why: why.clone(),
                fix: selftest::FIX.to_owned(),
            });
        }
        let sink: SharedSink = Arc::new(Mutex::new(
            AuditSink::open_with(Some(&config.audit.log), false, &config.audit.sink_options())
                .map_err(io_err(&config.audit.log))?,
        ));
        let book = Arc::new(Mutex::new(RuleBook::default()));
        let gateway = Gateway::on(runtime.clone());
        // The self-test's deny events reach the log after this, cited under its own name.
        lock_book(&book).set(
            SELF_TEST_SLOT,
            selftest::AUDIT_NAME,
            self_test.rules.clone(),
        );
        let cgroups = SystemCgroups;
        let (saved, mut released) =
            state.map_or_else(Default::default, |s| (s.sandboxes, s.released));
        let (sandboxes, gone) =
            restore_sandboxes(saved, &mut enforcer, &cgroups, &gateway, &sink, &book);
        let events = enforcer.take_events()?;
        let reader = AuditReader::spawn(
            runtime,
            events,
            Arc::clone(&sink),
            DaemonCitations(Arc::clone(&book)),
        )
        .map_err(|error| DaemonError::Io {
            path: PathBuf::from("the deny-event ring buffer"),
            error,
        })?;
        released.extend(gone);
        let mut daemon = Self::assemble(Parts {
            config,
            enforcer: Box::new(enforcer),
            cgroups: Box::new(cgroups),
            sandboxes,
            released,
            unavailable,
            sink,
            book,
            gateway,
        });
        let drain = reader.drain_handle();
        daemon.audit_drain = Some(Box::new(move || drain.now()));
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
}

/// Adopted enforcement that lacks the LSM controls: why, again (the first start's reason is
/// not kept across restarts), so refusals still name the fix. `None` when they are attached.
fn adopted_without_lsm(enforcer: &Enforcer) -> Option<boot::Unavailable> {
    let lsm_missing = LSM_CONTROLS & !enforcer.attached();
    if lsm_missing == 0 {
        return None;
    }
    let (lack, (why, fix)) = match LsmList::read() {
        Ok(list) => list.inactive_reason(),
        Err(e) => Some((e.to_string(), "mount securityfs".to_owned())),
    }
    .map_or_else(
        || {
            (
                Lack::Other,
                (
                    "they were not attached when this enforcement was first loaded".to_owned(),
                    "stop the sandboxes, remove the pins and start the daemon again; \
                     `nemoclaw doctor` shows this kernel's state"
                        .to_owned(),
                ),
            )
        },
        |reason| (Lack::BpfLsm, reason),
    );
    Some(boot::Unavailable {
        controls: lsm_missing,
        lack,
        why,
        fix,
    })
}

/// The saved sandboxes whose cgroups are still there, their rules cited again and their
/// DNS gateways reopened; and the slots of those gone while no daemon ran (unregistered
/// here, their entries left to the first sweep).
pub(super) fn restore_sandboxes(
    saved: Vec<SandboxState>,
    enforcer: &mut dyn Kernel,
    cgroups: &dyn Cgroups,
    gateway: &Gateway,
    sink: &SharedSink,
    book: &Mutex<RuleBook>,
) -> (BTreeMap<String, Sandbox>, Vec<Slot>) {
    let mut sandboxes = BTreeMap::new();
    let mut gone = Vec::new();
    for s in saved {
        match cgroups.open(&s.cgroup) {
            Ok(cgroup) if cgroup.id() == s.cgroup_id => {
                lock_book(book).set(s.slot, &s.name, s.rules.clone());
                let mut s = s;
                let gate = (s.controls & controls::NET != 0)
                    .then(|| reopen_gate(gateway, enforcer, sink, &mut s));
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
                // Gone while no daemon ran: nothing to enforce, its policy to clear.
                let _ = enforcer.unregister(s.cgroup_id);
                gone.push(s.slot);
            }
        }
    }
    (sandboxes, gone)
}

/// An adopted sandbox's DNS gateway, on its old ports where they are free, with the names
/// of its installed policy. Without one its port 53 goes back to the rules (denied), which
/// is logged: DNS fails, nothing unfiltered gets through.
fn reopen_gate(
    gateway: &Gateway,
    enforcer: &mut dyn Kernel,
    sink: &SharedSink,
    state: &mut SandboxState,
) -> Option<Gate> {
    let nameservers = std::fs::read_to_string(&state.resolv_conf)
        .map(|text| crate::daemon::dns::nameservers(&text))
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
            dlog!(
                Warning,
                "sandbox {}: no DNS gateway ({e}); its DNS is denied",
                state.name
            );
            (None, (0, 0))
        }
    };
    if let Err(e) = enforcer.set_dns_gate(state.slot, ports.0, ports.1) {
        dlog!(Warning, "sandbox {}: {e}", state.name);
    }
    state.dns_ports = ports;
    gate
}
