//! The daemon (host suite: the network control, which this host enforces natively):
//! enforcement that survives `kill -9`, adoption of the pins without a second copy of any
//! program, atomic reloads (API, file watch, SIGHUP), refused policies changing nothing,
//! and the control socket's gatekeeping. The VM suite adds the LSM controls and the tamper
//! tests (`vm_daemon`).

use std::net::TcpListener;

use nemoclaw::kernel::probe::{newest_program_id, programs_named_since};

use crate::support::{
    Scratch,
    daemon::{StepProbe, TestDaemon},
    root_or_skip,
};

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

fn net_policy(ports: &[u16]) -> String {
    let allow = ports.iter().fold(String::new(), |mut s, p| {
        use std::fmt::Write as _;
        let _ = writeln!(s, "    - \"127.0.0.1:{p}\"");
        s
    });
    format!("network:\n  allow:\n{allow}  deny: \"*\"\n")
}

/// `kill -9` of the daemon does not lift a sandbox's network policy: while no daemon runs the
/// denied port stays denied and DNS gets no answer from anywhere; a restarted daemon adopts
/// the pinned programs (no second copy), serves the sandbox's DNS gateway again and logs the
/// denial made meanwhile.
#[test]
fn sigkill_leaves_sandbox_enforced_and_restart_adopts_and_reloads() {
    if !root_or_skip("daemon sigkill") {
        return;
    }
    let scratch = Scratch::new("daemon-kill");
    let (_a, allowed) = listener();
    let (_b, denied) = listener();
    let policy = scratch.path("policy.yaml");
    std::fs::write(&policy, net_policy(&[allowed])).expect("policy");
    let mut daemon = TestDaemon::start(&scratch, "kill");
    let mut probe = StepProbe::start(&daemon, "agent", &policy, "nobody", &scratch.path("probe"));

    assert_eq!(probe.act(&format!("connect {allowed}")), "OK");
    assert_eq!(probe.act(&format!("connect {denied}")), "ERR EPERM");
    // The policy names no host: its DNS gateway refuses every name.
    assert_eq!(probe.act("dns leak.example"), "rcode=5");
    let before_restart = newest_program_id();

    daemon.kill9();
    assert_eq!(
        probe.act(&format!("connect {denied}")),
        "ERR EPERM",
        "the sandbox must stay enforced while no daemon runs"
    );
    assert_eq!(probe.act(&format!("connect {allowed}")), "OK");
    assert_eq!(
        probe.act("dns leak2.example"),
        "ERR timeout",
        "without the daemon DNS gets no answer, from anywhere"
    );

    daemon.restart();
    assert_eq!(
        programs_named_since("connect4", before_restart),
        0,
        "a restarted daemon must not load a second copy"
    );
    let ps = daemon.ctl(&["ps", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&ps.stdout).expect("ps --json");
    assert_eq!(list[0]["name"], "agent", "{list}");
    let starts = daemon.records("daemon_start");
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1]["adopted"], true);
    // Both starts, the adopting one too, proved enforcement before claiming it.
    for start in &starts {
        let passed = start["self_test"]["passed"].as_array().expect("self_test");
        assert!(passed.contains(&"network".into()), "{start}");
        assert_eq!(
            start["self_test"]["failed"],
            serde_json::json!({}),
            "{start}"
        );
        assert_eq!(start["controls"], start["self_test"]["passed"], "{start}");
    }
    assert_eq!(starts[1]["sandboxes"][0], "agent");
    // The adopting daemon serves the sandbox's DNS gateway again.
    assert_eq!(probe.act("dns leak3.example"), "rcode=5");
    // The denial made while no daemon ran was kept in the ring buffer and is logged now.
    let denials = || {
        daemon
            .audit()
            .into_iter()
            .filter(|r| r["decision"] == "deny" && r["object"]["port"] == denied)
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while denials() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(denials(), 2, "{:?}", daemon.audit());

    // A reloaded policy on the adopted enforcement.
    daemon.apply(
        "agent",
        &scratch.path("reloaded.yaml"),
        &net_policy(&[allowed, denied]),
    );
    assert_eq!(probe.act(&format!("connect {denied}")), "OK");
    let reload = daemon.records("policy_reload");
    assert_eq!(reload.len(), 1);
    assert_eq!(
        reload[0]["added"][0],
        format!("network.allow: 127.0.0.1:{denied}")
    );
    assert_eq!(
        reload[0]["requested_by"]
            .as_str()
            .map(|s| s.starts_with("uid 0")),
        Some(true)
    );

    // `nemoclaw run` follows the restarted daemon, and its own audit copy has no gap: the
    // denial made while no daemon ran (logged by the restarted daemon) and one made after
    // the restart are there too.
    let (_c, other) = listener();
    assert_eq!(probe.act(&format!("connect {other}")), "ERR EPERM");
    let out = probe.finish();
    assert!(out.status.success(), "{out:?}");
    let copy = daemon.run_log("agent");
    assert!(
        copy.iter()
            .any(|r| r["decision"] == "deny" && r["object"]["port"] == other),
        "the run's audit copy lacks the denial made after the restart: {copy:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let denied_in_copy = copy
        .iter()
        .filter(|r| r["decision"] == "deny" && r["object"]["port"] == denied)
        .count();
    assert_eq!(denied_in_copy, 2, "{copy:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("following agent again"),
        "{out:?}"
    );
}

/// SIGTERM drains the audit reader before the daemon goes: a burst of denials just
/// before the signal, more than the reader writes one by one in a second, is all
/// accounted for (the records written, the `denials_suppressed` summary the reader writes
/// when it finishes, and an `events_lost` record for any the kernel dropped: a daemon
/// that exits at once writes neither), the chain holds, and `daemon_stop` is the last
/// record.
#[test]
fn sigterm_writes_every_delivered_denial_then_the_stop_record() {
    if !root_or_skip("daemon sigterm") {
        return;
    }
    let scratch = Scratch::new("daemon-term");
    let (_a, allowed) = listener();
    let policy = scratch.path("policy.yaml");
    std::fs::write(&policy, net_policy(&[allowed])).expect("policy");
    let mut daemon = TestDaemon::start(&scratch, "term");
    let mut probe = StepProbe::start(&daemon, "agent", &policy, "nobody", &scratch.path("probe"));
    let denied = allowed.wrapping_add(1).max(1024);
    let burst = nemoclaw::audit::reader::RECORDS_PER_SECOND as usize + 200;
    assert_eq!(
        probe.act(&format!("flood {denied} {burst}")),
        format!("sent {burst} refused {burst}")
    );
    assert!(daemon.terminate(), "{}", daemon.log());
    let _ = probe.child.kill();
    let _ = probe.child.wait();
    let audit = daemon.audit();
    let written = audit
        .iter()
        .filter(|r| r["decision"] == "deny" && r["object"]["port"] == denied)
        .count();
    let summarised: u64 = audit
        .iter()
        .filter(|r| r["event"] == "denials_suppressed")
        .filter_map(|r| r["suppressed"].as_u64())
        .sum();
    // Events the kernel dropped (ring buffer full) are counted in an `events_lost` record,
    // the stopping daemon's last before `daemon_stop`.
    let lost: u64 = audit
        .iter()
        .filter(|r| r["event"] == "events_lost")
        .filter_map(|r| r["lost"].as_u64())
        .sum();
    assert_eq!(
        written as u64 + summarised + lost,
        burst as u64,
        "{written} written, {summarised} summarised, {lost} lost"
    );
    assert_eq!(
        audit.last().map(|r| r["event"].clone()),
        Some("daemon_stop".into()),
        "{:?}",
        audit.last()
    );
}

#[test]
fn invalid_policy_is_refused_with_its_location_and_changes_nothing() {
    if !root_or_skip("daemon invalid policy") {
        return;
    }
    let scratch = Scratch::new("daemon-invalid");
    let (_a, allowed) = listener();
    let (_b, other) = listener();
    let policy = scratch.path("policy.yaml");
    std::fs::write(&policy, net_policy(&[allowed])).expect("policy");
    let daemon = TestDaemon::start(&scratch, "invalid");
    let mut probe = StepProbe::start(&daemon, "agent", &policy, "nobody", &scratch.path("probe"));
    assert_eq!(probe.act(&format!("connect {allowed}")), "OK");

    let bad = scratch.path("bad.yaml");
    std::fs::write(
        &bad,
        format!("network:\n  allow:\n    - \"127.0.0.1:{other}\"\n  deny: \"*\"\n  bogus: 1\n"),
    )
    .expect("policy");
    let out = daemon.ctl(&["policy", "apply", "agent", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:5:3", bad.display())) && stderr.contains("network.bogus"),
        "{stderr}"
    );
    // Nothing changed: the old rules still decide.
    assert_eq!(probe.act(&format!("connect {allowed}")), "OK");
    assert_eq!(probe.act(&format!("connect {other}")), "ERR EPERM");
    let rejected = daemon.records("policy_rejected");
    assert_eq!(rejected.len(), 1, "{:?}", daemon.audit());
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("network.bogus")
    );
    assert!(daemon.records("policy_reload").is_empty());
    assert!(probe.finish().status.success());
}

#[test]
fn rewriting_the_policy_file_and_sighup_reload_it() {
    if !root_or_skip("daemon file watch") {
        return;
    }
    let scratch = Scratch::new("daemon-watch");
    let (_a, first) = listener();
    let (_b, second) = listener();
    let policy = scratch.path("policy.yaml");
    std::fs::write(&policy, net_policy(&[first])).expect("policy");
    let daemon = TestDaemon::start(&scratch, "watch");
    let mut probe = StepProbe::start(&daemon, "agent", &policy, "nobody", &scratch.path("probe"));
    assert_eq!(probe.act(&format!("connect {second}")), "ERR EPERM");

    // Rewritten in place: the watcher applies it.
    std::fs::write(&policy, net_policy(&[first, second])).expect("policy");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while daemon.records("policy_reload").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        daemon.records("policy_reload")[0]["requested_by"],
        "policy file watch"
    );
    assert_eq!(probe.act(&format!("connect {second}")), "OK");

    // SIGHUP re-reads every file; an unchanged one is left alone, a changed one applied.
    let hup = |d: &TestDaemon| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(d.pid()).expect("pid")),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP");
    };
    hup(&daemon);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        daemon.records("policy_reload").len(),
        1,
        "unchanged file reloaded"
    );
    // Renamed into place (as editors save), then SIGHUP: the watcher and the signal both see
    // the change, and whichever comes second finds the file unchanged: one reload.
    let tmp = scratch.path("policy.yaml.new");
    std::fs::write(&tmp, net_policy(&[second])).expect("policy");
    std::fs::rename(&tmp, &policy).expect("rename");
    hup(&daemon);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while daemon.records("policy_reload").len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        daemon.records("policy_reload").len(),
        2,
        "{:?}",
        daemon.audit()
    );
    assert_eq!(probe.act(&format!("connect {first}")), "ERR EPERM");
    assert_eq!(probe.act(&format!("connect {second}")), "OK");
    assert!(probe.finish().status.success());
}

/// An unprivileged user outside every sandbox cannot drive the daemon: the control socket is
/// mode 0660 and `nemoclaw ps` as `nobody` fails with `Permission denied`; root outside may.
#[test]
fn control_socket_refuses_unprivileged_callers() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_skip("daemon socket") {
        return;
    }
    let scratch = Scratch::new("daemon-socket");
    let daemon = TestDaemon::start(&scratch, "socket");
    let mode = std::fs::metadata(&daemon.socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "socket mode {mode:o}");
    // `nobody` outside any sandbox: the socket's mode keeps it out.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=65534", "--clear-groups", "--"])
        .arg(crate::support::nemoclaw())
        .args(["ps", "--socket"])
        .arg(&daemon.socket)
        .output()
        .expect("setpriv");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    // Root outside: allowed.
    assert!(daemon.ctl(&["ps"]).status.success());
}

/// A million denials from one sandbox: another sandbox's decisions and the daemon's answers
/// go on meanwhile, the log stays bounded, and every denial is accounted for: written,
/// summarised (`denials_suppressed`) or counted as lost by the kernel (`events_lost`).
#[test]
fn denial_flood_cannot_stall_other_sandboxes_or_the_daemon() {
    const FLOOD: u64 = 1_000_000;
    if !root_or_skip("daemon flood") {
        return;
    }
    let scratch = Scratch::new("daemon-flood");
    let (_a, allowed) = listener();
    let policy = scratch.path("policy.yaml");
    std::fs::write(&policy, net_policy(&[allowed])).expect("policy");
    let daemon = TestDaemon::start(&scratch, "flood");
    let mut calm = StepProbe::start(&daemon, "calm", &policy, "nobody", &scratch.path("calm"));
    assert_eq!(calm.act(&format!("connect {allowed}")), "OK");
    let flood = daemon.run_background(
        "flood",
        &policy,
        "nobody",
        &[
            crate::support::PYTHON,
            "-c",
            &format!(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 n = 0\nfor i in range({FLOOD}):\n    try:\n        s.sendto(b'x', ('127.0.0.1', 9))\n    \
                 except PermissionError:\n        n += 1\nprint(n)\n"
            ),
        ],
    );
    let mut flood = flood;
    let mut rounds = 0;
    while flood.try_wait().expect("flood").is_none() {
        assert_eq!(calm.act(&format!("connect {allowed}")), "OK");
        let started = std::time::Instant::now();
        assert!(
            daemon.ctl(&["ps"]).status.success(),
            "the daemon stopped answering"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the daemon took {:?} to answer",
            started.elapsed()
        );
        rounds += 1;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = flood.wait_with_output().expect("flood output");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        FLOOD.to_string(),
        "{out:?}"
    );
    assert!(rounds > 0, "the flood ended before the other sandbox acted");
    assert!(calm.finish().status.success());

    let accounted = || {
        let audit = daemon.audit();
        let written = audit
            .iter()
            .filter(|r| r["decision"] == "deny" && r["sandbox"] == "flood")
            .count() as u64;
        let sum = |event: &str, key: &str| -> u64 {
            audit
                .iter()
                .filter(|r| r["event"] == event)
                .map(|r| r[key].as_u64().unwrap_or(0))
                .sum()
        };
        (
            written,
            sum("denials_suppressed", "suppressed"),
            sum("events_lost", "lost"),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = accounted();
    while seen.0 + seen.1 + seen.2 < FLOOD && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        seen = accounted();
    }
    let (written, suppressed, lost) = seen;
    assert_eq!(
        written + suppressed + lost,
        FLOOD,
        "written {written}, suppressed {suppressed}, lost {lost}"
    );
    assert!(
        written < 100_000,
        "the log was not bounded: {written} records"
    );
}

/// A reload deletes the old slot's entries from every map generically (by the key layout
/// rule on `Slot`), and a freed slot is reused: nothing of the old policy may be left.
/// Fills one slot with a policy that reaches every kind of map (exec inodes and directories,
/// exact paths of two length classes, prefixes, suffixes, deny inodes, IPv4 and IPv6, a
/// per-binary rule, the privilege rule), clears it, and counts what is left. The maps exist
/// whether or not BPF LSM can attach here, so this runs natively.
#[test]
fn clearing_a_slot_leaves_no_entry_in_any_map() {
    if !root_or_skip("slot clearing") {
        return;
    }
    let scratch = Scratch::new("slot-clear");
    let secret = scratch.path("secret.txt");
    std::fs::write(&secret, "s").expect("secret");
    let long = format!("{}/{}", scratch.0.display(), "d".repeat(150));
    let text = format!(
        "process:\n  allow:\n    - python3\n    - \"/usr/lib/**\"\n\
         filesystem:\n  allow:\n    - \"{ws}/**\"\n    - \"{long}\"\n  read_only:\n    - \"/usr/**\"\n  \
         deny:\n    - \"{secret}\"\n    - \"**/id_rsa\"\n\
         network:\n  allow:\n    - \"127.0.0.1:443\"\n    - \"[::1]:443\"\n    \
         - {{host: 10.0.0.0/8, ports: [80], binaries: [python3]}}\n  deny: \"*\"\n\
         privilege_escalation: deny\n",
        ws = scratch.0.display(),
        secret = secret.display(),
    );
    let policy =
        nemoclaw::policy::parse_str(std::path::Path::new("p.yaml"), &text).expect("policy parses");
    let env = nemoclaw::policy::CompileEnv::new("/root".into());
    let compiled = nemoclaw::policy::compile(&policy, &env)
        .expect("compiles")
        .policy;
    let mut enforcer =
        nemoclaw::kernel::Enforcer::load(nemoclaw_common::sandbox::controls::NET).expect("load");
    let slot = 77;
    enforcer.install(slot, &compiled).expect("install");
    let filled: std::collections::BTreeMap<String, usize> = enforcer
        .slot_entries(slot)
        .expect("count")
        .into_iter()
        .collect();
    for map in [
        "EXEC_RULES",
        "EXEC_PREFIX",
        "EXEC_SLOT_FLAGS",
        "EXEC_LIB_DIRS",
        "FS_EXACT_56",
        "FS_EXACT_248",
        "FS_PREFIX",
        "FS_SUFFIX",
        "FS_INODES",
        "FS_SLOT_FLAGS",
        "NET4",
        "NET6",
        "NET_BINARIES",
        "NET_SLOT_FLAGS",
        "PRIVILEGE_RULE",
    ] {
        assert!(filled.contains_key(map), "{map} got no entry: {filled:?}");
    }
    // Another slot's entries stay.
    enforcer.install(slot + 1, &compiled).expect("install");
    enforcer.clear_slot(slot).expect("clear");
    assert_eq!(enforcer.slot_entries(slot).expect("count"), []);
    let entries =
        |enforcer: &nemoclaw::kernel::Enforcer, s| -> std::collections::BTreeMap<String, usize> {
            enforcer
                .slot_entries(s)
                .expect("count")
                .into_iter()
                .collect()
        };
    assert_eq!(
        entries(&enforcer, slot + 1),
        filled,
        "clearing one slot touched another"
    );
    // The daemon's sweep: several slots in one pass, the one between them untouched.
    enforcer.install(slot, &compiled).expect("install");
    enforcer.install(slot + 2, &compiled).expect("install");
    enforcer
        .clear_slots(&std::collections::BTreeSet::from([slot, slot + 2]))
        .expect("sweep");
    assert_eq!(enforcer.slot_entries(slot).expect("count"), []);
    assert_eq!(enforcer.slot_entries(slot + 2).expect("count"), []);
    assert_eq!(
        entries(&enforcer, slot + 1),
        filled,
        "the sweep touched a slot it was not given"
    );
    enforcer.clear_slot(slot + 1).expect("clear");
}

/// A policy is compiled without the daemon's lock: while an apply waits on a nameserver
/// that never answers (its host-name rule resolving), `ps` is answered, and the apply
/// is still pending when it is. It then completes (an allowed name that never resolves
/// allows nothing, with a warning).
#[test]
fn slow_name_resolution_does_not_hold_up_the_control_socket() {
    use std::{
        net::UdpSocket,
        process::{Command, Stdio},
        time::Duration,
    };
    if !root_or_skip("daemon slow dns") {
        return;
    }
    let scratch = Scratch::new("daemon-slowdns");
    // A nameserver that receives and never answers.
    let black_hole = UdpSocket::bind(("127.0.0.157", 53)).expect("bind the silent nameserver");
    std::fs::write(scratch.path("resolv.conf"), "nameserver 127.0.0.157\n").expect("resolv");
    let (_a, allowed) = listener();
    let policy = scratch.path("policy.yaml");
    std::fs::write(&policy, net_policy(&[allowed])).expect("policy");
    let daemon = TestDaemon::start(&scratch, "slowdns");
    let mut run = Command::new(crate::support::nemoclaw())
        .arg("run")
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["--name", "slowdns", "--user", "nobody", "--policy"])
        .arg(&policy)
        .arg("--resolv-conf")
        .arg(scratch.path("resolv.conf"))
        .args(["--", "/bin/sleep", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nemoclaw run");
    let listed = || {
        let ps = daemon.ctl(&["ps", "--json"]);
        ps.status.success() && String::from_utf8_lossy(&ps.stdout).contains("\"slowdns\"")
    };
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    while !listed() {
        assert!(std::time::Instant::now() < deadline, "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let slow = scratch.path("slow.yaml");
    std::fs::write(
        &slow,
        "network:\n  allow:\n    - \"slow.nemoclaw.test:443\"\n  deny: \"*\"\n",
    )
    .expect("slow policy");
    let mut apply = Command::new(crate::support::nemoclaw())
        .args(["policy", "apply", "slowdns"])
        .arg(&slow)
        .arg("--socket")
        .arg(&daemon.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nemoclaw policy apply");
    // The compile has asked the nameserver: the apply is waiting on it.
    black_hole
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    black_hole.recv_from(&mut buf).expect("the apply's query");
    assert!(listed(), "ps while a policy compiles: {}", daemon.log());
    assert!(
        apply.try_wait().expect("try_wait").is_none(),
        "the apply finished before ps was answered: it did not wait on the nameserver"
    );
    let out = apply.wait_with_output().expect("apply");
    assert!(out.status.success(), "{out:?}");
    let _ = run.kill();
    let _ = run.wait();
}
