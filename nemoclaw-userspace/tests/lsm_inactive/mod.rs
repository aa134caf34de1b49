//! Kernels where BPF LSM is built in but not active (Ubuntu's default `lsm=` list, booted by
//! `cargo xtask test` as the `lsm-inactive` VM runs): LSM programs load and attach there and
//! never run. Policies with process, filesystem or privilege rules must be refused with the
//! exact `lsm=` fix, standalone and through the daemon; network-only policies still run; and
//! nothing claims a control it does not enforce.
//!
//! Skipped where `bpf` is active; with `NEMOCLAW_LSM_INACTIVE=1` (those VM runs) a skip is a
//! failure.

use std::process::{Command, Output};

use nemoclaw::kernel::lsm::LsmList;

use crate::support::{PYTHON, Scratch, daemon::TestDaemon, nemoclaw, root_or_skip};

const REQUIRED: &str = "NEMOCLAW_LSM_INACTIVE";

/// The active LSM list, where it lacks `bpf`.
fn inactive_or_skip(test: &str) -> Option<LsmList> {
    let required = std::env::var_os(REQUIRED).is_some();
    if !root_or_skip(test) {
        assert!(!required, "{test}: must run as root");
        return None;
    }
    let list = LsmList::read().expect("read the active LSM list");
    if list.has_bpf() {
        assert!(
            !required,
            "{test}: {REQUIRED} is set but bpf is active: {}",
            list.joined()
        );
        println!("SKIPPED {test}: BPF LSM is active here");
        return None;
    }
    Some(list)
}

/// Policies that each need a BPF LSM control (the name the refusal gives it), and one that
/// mixes an LSM control with the network: nothing of it may run half-applied.
fn lsm_policies(marker_dir: &str) -> Vec<(&'static str, String)> {
    vec![
        ("process", "process:\n  allow:\n    - python3\n".to_owned()),
        (
            "filesystem",
            format!(
                "filesystem:\n  allow:\n    - \"/**\"\n  deny:\n    - \"{marker_dir}/secret\"\n"
            ),
        ),
        (
            "privilege_escalation",
            "privilege_escalation: deny\n".to_owned(),
        ),
        (
            "filesystem",
            "network:\n  allow:\n    - \"127.0.0.1:9\"\nfilesystem:\n  allow:\n    - \"/**\"\n"
                .to_owned(),
        ),
    ]
}

/// Checks a refusal: the command did not run, the message names the control and the
/// exact `lsm=` that keeps the active list, and nothing says "enforcing".
fn assert_refused(out: &Output, control: &str, list: &LsmList, marker: &std::path::Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{control}: ran: {stderr}");
    assert!(
        !marker.exists(),
        "{control}: the command ran although its policy cannot be enforced"
    );
    assert!(
        stderr.contains(&format!(
            "the {control} control cannot be enforced on this kernel"
        )),
        "{control}: {stderr}"
    );
    assert!(stderr.contains("BPF LSM is not active"), "{stderr}");
    let fix = format!("`{}`", list.boot_parameter_with_bpf());
    assert!(
        fix.ends_with(",bpf`") && stderr.contains(&fix),
        "{control}: the fix must keep the active list ({fix}): {stderr}"
    );
    assert!(!stderr.contains("enforcing"), "{control}: {stderr}");
}

/// `nemoclaw run` through `daemon` as `nobody`.
fn run_via(daemon: &TestDaemon, name: &str, policy: &std::path::Path, argv: &[&str]) -> Output {
    Command::new(nemoclaw())
        .arg("run")
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["--user", "nobody", "--name", name, "--policy"])
        .arg(policy)
        .arg("--")
        .args(argv)
        .output()
        .expect("nemoclaw run")
}

fn marker_script(marker: &std::path::Path) -> String {
    format!("open({:?}, 'w').write('ran')", marker.display().to_string())
}

/// Where BPF LSM is built in but not active, a standalone `run` of a policy with a
/// filesystem, process or privilege control is refused with the boot parameter that fixes it;
/// the command never starts and no start record is written.
#[test]
fn lsm_policies_are_refused_standalone_with_the_lsm_fix() {
    let Some(list) = inactive_or_skip("lsm_inactive standalone") else {
        return;
    };
    let scratch = Scratch::new("lsm-inactive-standalone");
    std::fs::write(scratch.path("secret"), "s").expect("secret");
    let marker = scratch.path("ran");
    let audit = scratch.path("audit.jsonl");
    for (i, (control, yaml)) in lsm_policies(&scratch.0.display().to_string())
        .into_iter()
        .enumerate()
    {
        let policy = scratch.path(&format!("policy-{i}.yaml"));
        std::fs::write(&policy, &yaml).expect("policy");
        let out = Command::new(nemoclaw())
            .args(["run", "--standalone", "--user", "nobody", "--policy"])
            .arg(&policy)
            .arg("--audit-log")
            .arg(&audit)
            .args(["--", PYTHON, "-c", &marker_script(&marker)])
            .output()
            .expect("nemoclaw run");
        assert_refused(&out, control, &list, &marker);
        let log = std::fs::read_to_string(&audit).unwrap_or_default();
        assert!(
            !log.contains("sandbox_start"),
            "{control}: a refused run wrote a start record: {log}"
        );
    }
}

/// Where BPF LSM is built in but not active, the daemon claims only the network control
/// (after its self-test) and refuses every sandbox whose policy needs the others, while a
/// network-only sandbox runs enforced; a restarted daemon adopts its pins and still refuses.
#[test]
fn lsm_policies_are_refused_by_the_daemon_and_network_only_runs() {
    let Some(list) = inactive_or_skip("lsm_inactive daemon") else {
        return;
    };
    let scratch = Scratch::new("lsm-inactive-daemon");
    std::fs::write(scratch.path("secret"), "s").expect("secret");
    let marker = scratch.path("ran");
    let mut daemon = TestDaemon::start(&scratch, "lsm-inactive");
    let start = daemon
        .records("daemon_start")
        .pop()
        .expect("a daemon_start record");
    let claimed: Vec<&str> = start["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(claimed, ["network"], "{start}");
    assert_eq!(
        start["self_test"]["passed"],
        serde_json::json!(["network"]),
        "{start}"
    );
    assert!(
        daemon.log().contains("BPF LSM is not active"),
        "the daemon says why: {}",
        daemon.log()
    );
    for (i, (control, yaml)) in lsm_policies(&scratch.0.display().to_string())
        .into_iter()
        .enumerate()
    {
        let policy = scratch.path(&format!("policy-{i}.yaml"));
        std::fs::write(&policy, &yaml).expect("policy");
        let out = run_via(
            &daemon,
            &format!("refused-{i}"),
            &policy,
            &[PYTHON, "-c", &marker_script(&marker)],
        );
        assert_refused(&out, control, &list, &marker);
    }
    assert!(
        daemon.records("sandbox_start").is_empty(),
        "a refused policy started a sandbox: {:?}",
        daemon.audit()
    );

    // A restarted daemon adopts its pins, checks again and still names the fix.
    daemon.kill9();
    daemon.restart();
    let restart = daemon
        .records("daemon_start")
        .pop()
        .expect("a second daemon_start");
    assert_eq!(restart["adopted"], true, "{restart}");
    assert_eq!(
        restart["controls"],
        serde_json::json!(["network"]),
        "{restart}"
    );
    let (control, yaml) = &lsm_policies(&scratch.0.display().to_string())[0];
    let policy = scratch.path("policy-after-restart.yaml");
    std::fs::write(&policy, yaml).expect("policy");
    let out = run_via(
        &daemon,
        "refused-after-restart",
        &policy,
        &[PYTHON, "-c", &marker_script(&marker)],
    );
    assert_refused(&out, control, &list, &marker);

    // A network-only policy runs, and is enforced.
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let policy = scratch.path("network.yaml");
    std::fs::write(&policy, "network:\n  allow:\n    - \"127.0.0.1:9\"\n").expect("policy");
    let script = format!(
        "import socket\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', {port}))\n    print('CONNECTED')\nexcept OSError as e:\n    print('ERR', e.errno)"
    );
    let out = run_via(&daemon, "net-only", &policy, &[PYTHON, "-c", &script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), format!("ERR {}", libc::EPERM), "{stderr}");
    let enforcing = stderr
        .lines()
        .find(|l| l.contains("enforcing: "))
        .unwrap_or_else(|| panic!("no enforcing line: {stderr}"));
    assert!(
        enforcing.ends_with("enforcing: network"),
        "only the network control is claimed: {enforcing}"
    );
    let started = daemon.records("sandbox_start");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["enforcing"], serde_json::json!(["network"]));
}

/// Where BPF LSM is built in but not active, `nemoclaw doctor` fails and says so, with the
/// boot parameter and how to set it on each distribution, so nothing is started on a kernel
/// that would not enforce.
#[test]
fn doctor_and_the_run_decision_see_bpf_lsm_inactive() {
    let Some(list) = inactive_or_skip("lsm_inactive doctor") else {
        return;
    };
    // `cargo xtask run` decides native vs VM on this check: it must fail here.
    let quiet = Command::new(nemoclaw())
        .args(["doctor", "--quiet-lsm-check"])
        .output()
        .expect("doctor");
    let text = String::from_utf8_lossy(&quiet.stdout);
    assert!(!quiet.status.success(), "{text}");
    assert!(text.contains("BPF LSM is not active"), "{text}");
    let full = Command::new(nemoclaw())
        .arg("doctor")
        .output()
        .expect("doctor");
    let text = String::from_utf8_lossy(&full.stdout);
    assert!(!full.status.success(), "{text}");
    assert!(text.contains("FAIL  BPF LSM active"), "{text}");
    assert!(
        text.contains(&format!("`{}`", list.boot_parameter_with_bpf())),
        "{text}"
    );
    assert!(text.contains("update-grub"), "{text}");
    assert!(text.contains("Ubuntu") && text.contains("Fedora"), "{text}");
}
