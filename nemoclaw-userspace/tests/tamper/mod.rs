//! The daemon under BPF LSM (VM suite): enforcement of every control survives `kill -9` of
//! the daemon and a restarted daemon adopts the pins; and a sandboxed root cannot reach the
//! daemon: each tamper attempt is a named test, all made from one sandbox run as uid 0.

use std::{path::Path, sync::OnceLock};

use nemoclaw::kernel::probe::{newest_program_id, programs_named_since};

use crate::support::{
    PYTHON, Scratch,
    daemon::{StepProbe, TestDaemon},
    lsm_or_skip,
};

/// Python, its libraries, the probe's directory; one secret file; no privilege escalation.
/// How many `file_open` and `bprm_check_security` programs were loaded after program id
/// `since` (`newest_program_id`).
fn lsm_programs_since(since: u32) -> [usize; 2] {
    ["file_open", "bprm_check_secu"].map(|name| programs_named_since(name, since))
}

fn lsm_policy(probe_dir: &Path, secret: &Path, secret_allowed: bool) -> String {
    let secret_rule = if secret_allowed {
        format!(
            "  allow:\n    - \"{}/**\"\n    - \"{}\"\n",
            probe_dir.display(),
            secret.display()
        )
    } else {
        format!(
            "  allow:\n    - \"{}/**\"\n  deny:\n    - \"{}\"\n",
            probe_dir.display(),
            secret.display()
        )
    };
    format!(
        "process:\n  allow:\n    - python3\nfilesystem:\n{secret_rule}  read_only:\n    - /usr/**\n    \
         - /etc/**\n    - /proc/**\n    - /dev/**\nprivilege_escalation: deny\n"
    )
}

/// `kill -9` of the daemon does not lift the LSM controls: a denied file stays denied while no
/// daemon runs, and a restarted daemon adopts the pinned programs (no second copy) and
/// reloads the sandbox's policy.
#[test]
fn daemon_sigkill_keeps_lsm_enforcement_and_restart_adopts_pins_and_reloads() {
    if !lsm_or_skip("daemon_sigkill_lsm") {
        return;
    }
    let scratch = Scratch::new("daemon-lsm");
    let probe_dir = scratch.path("probe");
    let secret = scratch.path("secret.txt");
    std::fs::write(&secret, "s3cret").expect("secret");
    let _ = std::process::Command::new("chmod")
        .arg("a+r")
        .arg(&secret)
        .status();
    let policy = scratch.path("policy.yaml");
    std::fs::write(&policy, lsm_policy(&probe_dir, &secret, false)).expect("policy");
    let mut daemon = TestDaemon::start(&scratch, "lsm");
    let mut probe = StepProbe::start(&daemon, "agent", &policy, "nobody", &probe_dir);
    let read_secret = format!("read {}", secret.display());
    assert_eq!(probe.act(&read_secret), "ERR EACCES");
    assert!(
        programs_named_since("file_open", 0) >= 1,
        "file_open is not loaded"
    );
    let before_restart = newest_program_id();

    daemon.kill9();
    assert_eq!(
        probe.act(&read_secret),
        "ERR EACCES",
        "the sandbox must stay enforced while no daemon runs"
    );
    assert_eq!(
        probe.act(&format!("write {}/note", probe_dir.display())),
        "OK"
    );

    daemon.restart();
    assert_eq!(
        lsm_programs_since(before_restart),
        [0, 0],
        "a restarted daemon must adopt the pinned programs, not load a second copy"
    );
    let starts = daemon.records("daemon_start");
    assert_eq!(starts.len(), 2, "{:?}", daemon.audit());
    assert_eq!(starts[1]["adopted"], true);
    let controls: Vec<_> = starts[1]["controls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in ["process", "network", "filesystem", "privilege_escalation"] {
        assert!(
            controls.iter().any(|x| x == c),
            "{c} not adopted: {controls:?}"
        );
    }
    // Adopted enforcement is proven again: every control's probe was denied.
    for start in &starts {
        assert_eq!(
            start["self_test"]["passed"],
            serde_json::json!([
                "process",
                "network",
                "socket kinds",
                "filesystem",
                "privilege_escalation"
            ]),
            "{start}"
        );
        assert_eq!(
            start["self_test"]["failed"],
            serde_json::json!({}),
            "{start}"
        );
    }
    // The self-test's denials are in the log under their own name, citing its policy.
    let self_test: Vec<_> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["decision"] == "deny" && r["sandbox"] == "self-test")
        .collect();
    assert!(
        self_test.len() >= 2 * 5,
        "five denials per start: {self_test:?}"
    );

    daemon.apply(
        "agent",
        &scratch.path("reloaded.yaml"),
        &lsm_policy(&probe_dir, &secret, true),
    );
    assert_eq!(probe.act(&read_secret), "OK");
    let reload = daemon.records("policy_reload");
    assert_eq!(reload.len(), 1, "{:?}", daemon.audit());
    // Both denials (before and during the outage) reached the log, citing the deny rule.
    let denials: Vec<_> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["decision"] == "deny" && r["object"]["path"] == secret.to_str().unwrap_or(""))
        .collect();
    assert_eq!(denials.len(), 2, "{denials:?}");
    assert!(
        denials
            .iter()
            .all(|d| d["rule"]["section"] == "filesystem.deny" && d["sandbox"] == "agent")
    );
    assert!(probe.finish().status.success());
}

/// Every attempt, made in order by uid 0 inside one sandbox whose policy allows the whole
/// file system (so only the daemon's guard and `privilege_escalation: deny` stand in the
/// way). Prints `<label> OK ...` or `<label> ERR <errno>` per attempt.
const TAMPER_PROBE: &str = r##"
import ctypes, errno, json, os, signal, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
daemon_pid, pin_dir, policy, audit, sock, cgroup2 = sys.argv[1:7]
pid_arg = int(daemon_pid)
def t(label, f):
    try:
        r = f()
        print(label, "OK", "" if r is None else r, flush=True)
    except OSError as e:
        print(label, "ERR", errno.errorcode.get(e.errno, e.errno), flush=True)
def check(r):
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r
t("bpf", lambda: check(libc.syscall(321, 11, ctypes.create_string_buffer(16), 16)))
t("bpffs_list", lambda: os.listdir(pin_dir))
t("bpffs_read", lambda: open(pin_dir + "/maps/SANDBOXES", "rb").read())
t("bpffs_mkdir", lambda: os.mkdir(pin_dir + "/x"))
t("bpffs_unlink", lambda: os.unlink(pin_dir + "/links/file_open"))
t("kill", lambda: os.kill(pid_arg, signal.SIGKILL))
t("ptrace", lambda: check(libc.ptrace(16, pid_arg, None, None)))
t("cgroup_procs", lambda: open(cgroup2 + "/cgroup.procs", "w").write(str(os.getpid())))
os.makedirs("/tmp/tamper-mnt", exist_ok=True)
t("mount", lambda: check(libc.mount(b"none", b"/tmp/tamper-mnt", b"tmpfs", 0, None)))
t("umount", lambda: check(libc.umount2(b"/sys/fs/bpf", 0)))
t("policy_write", lambda: open(policy, "a").write("# x\n"))
t("policy_unlink", lambda: os.unlink(policy))
t("audit_write", lambda: open(audit, "a").write("{}\n"))
t("audit_unlink", lambda: os.unlink(audit))
def ask():
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b'{"op":"list"}\n')
    return json.loads(s.makefile().readline()).get("message", "ANSWERED")
t("control_socket", ask)
"##;

struct Tampering {
    stdout: String,
    /// The daemon's deny records for the sandbox.
    denials: Vec<serde_json::Value>,
    daemon_survived: bool,
    files_intact: bool,
}

/// Runs the attempts once (under TCG a sandbox start costs seconds) for every named test.
fn tampering() -> Option<&'static Tampering> {
    static RESULT: OnceLock<Option<Tampering>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            if !lsm_or_skip("tamper") {
                return None;
            }
            let scratch = Scratch::new("tamper");
            let daemon = TestDaemon::start(&scratch, "tamper");
            let policy = scratch.path("policy.yaml");
            let text = "process:\n  allow:\n    - python3\nfilesystem:\n  allow:\n    - \"/**\"\n\
                        network:\n  deny: \"*\"\nprivilege_escalation: deny\n";
            std::fs::write(&policy, text).expect("policy");
            let script = scratch.path("tamper.py");
            std::fs::write(&script, TAMPER_PROBE).expect("probe");
            let cgroup2 = nemoclaw::sandbox::cgroup::cgroup2_mount().expect("cgroup2");
            let pid = daemon.pid().to_string();
            let args = [
                PYTHON,
                script.to_str().expect("utf-8"),
                &pid,
                daemon.pin_dir.to_str().expect("utf-8"),
                policy.to_str().expect("utf-8"),
                daemon.audit.to_str().expect("utf-8"),
                daemon.socket.to_str().expect("utf-8"),
                cgroup2.to_str().expect("utf-8"),
            ];
            let out = daemon
                .run_background("tamper", &policy, "root", &args)
                .wait_with_output()
                .expect("run");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "{out:?}");
            let daemon_survived = daemon.ctl(&["ps"]).status.success();
            let files_intact =
                std::fs::read_to_string(&policy).is_ok_and(|t| t == text) && daemon.audit.exists();
            let denials = daemon
                .audit()
                .into_iter()
                .filter(|r| r["decision"] == "deny" && r["sandbox"] == "tamper")
                .collect();
            Some(Tampering {
                stdout,
                denials,
                daemon_survived,
                files_intact,
            })
        })
        .as_ref()
}

/// The attempt's printed outcome, e.g. `ERR EPERM`.
fn outcome(t: &Tampering, label: &str) -> String {
    t.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{label} ")))
        .unwrap_or_else(|| panic!("{label} not attempted: {}", t.stdout))
        .trim()
        .to_owned()
}

/// The denials logged by `hook`.
fn denied_by<'a>(t: &'a Tampering, hook: &str) -> Vec<&'a serde_json::Value> {
    t.denials.iter().filter(|d| d["hook"] == hook).collect()
}

/// Root in a sandbox calls `bpf()` (here to enumerate the loaded programs, the first step to
/// reading or detaching the sandbox's): denied and audited.
#[test]
fn tamper_bpf_syscall_is_denied() {
    let Some(t) = tampering() else { return };
    assert_eq!(outcome(t, "bpf"), "ERR EPERM");
    assert!(!denied_by(t, "bpf").is_empty(), "{:?}", t.denials);
}

/// Root in a sandbox whose policy allows the whole file system lists, reads, adds to and
/// unlinks the daemon's pins in bpffs: each is denied by the daemon's guard.
#[test]
fn tamper_bpffs_pins_cannot_be_read_or_changed() {
    let Some(t) = tampering() else { return };
    assert_eq!(outcome(t, "bpffs_list"), "ERR EACCES");
    assert_eq!(outcome(t, "bpffs_read"), "ERR EACCES");
    assert_eq!(outcome(t, "bpffs_mkdir"), "ERR EACCES");
    assert_eq!(outcome(t, "bpffs_unlink"), "ERR EACCES");
    for hook in ["file_open", "path_mkdir", "path_unlink"] {
        let d = denied_by(t, hook);
        assert!(
            d.iter()
                .any(|d| d["rule"]["section"] == "filesystem.daemon_guard"),
            "{hook}: {:?}",
            t.denials
        );
    }
}

/// Root in a sandbox sends `SIGKILL` to the daemon: denied and audited, the daemon lives.
#[test]
fn tamper_signal_to_daemon_is_denied() {
    let Some(t) = tampering() else { return };
    assert_eq!(outcome(t, "kill"), "ERR EPERM");
    assert!(!denied_by(t, "task_kill").is_empty(), "{:?}", t.denials);
    assert!(t.daemon_survived, "the daemon died");
}

/// Root in a sandbox attaches to the daemon with `ptrace`: denied and audited.
#[test]
fn tamper_ptrace_of_daemon_is_denied() {
    let Some(t) = tampering() else { return };
    assert_eq!(outcome(t, "ptrace"), "ERR EPERM");
    assert!(
        !denied_by(t, "ptrace_access_check").is_empty(),
        "{:?}",
        t.denials
    );
}

/// Root in a sandbox moves itself into the root cgroup by writing `cgroup.procs`: denied,
/// the sandbox stays in its cgroup.
#[test]
fn tamper_cgroup_procs_escape_is_denied() {
    let Some(t) = tampering() else { return };
    assert_eq!(outcome(t, "cgroup_procs"), "ERR EPERM");
    assert!(
        t.denials.iter().any(|d| d["hook"] == "file_open"
            && d["rule"]["section"] == "privilege_escalation"
            && d["object"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/cgroup.procs"))),
        "{:?}",
        t.denials
    );
}

/// Root in a sandbox mounts a file system or unmounts `/sys/fs/bpf` (the daemon's pins):
/// both denied and audited.
#[test]
fn tamper_mount_and_umount_are_denied() {
    let Some(t) = tampering() else { return };
    assert_eq!(outcome(t, "mount"), "ERR EPERM");
    assert_eq!(outcome(t, "umount"), "ERR EPERM");
    assert!(!denied_by(t, "sb_mount").is_empty(), "{:?}", t.denials);
    // umount asks for CAP_SYS_ADMIN (`may_mount`) before `sb_umount`: the capable hook
    // refuses it first.
    assert!(
        !denied_by(t, "sb_umount").is_empty()
            || denied_by(t, "capable")
                .iter()
                .any(|d| d["object"]["name"] == "CAP_SYS_ADMIN"),
        "{:?}",
        t.denials
    );
}

/// Root in a sandbox whose policy allows the whole file system writes to or deletes the
/// daemon's policy file and audit log: each is denied, both files stay intact.
#[test]
fn tamper_policy_and_audit_files_cannot_be_written_or_deleted() {
    let Some(t) = tampering() else { return };
    for label in [
        "policy_write",
        "policy_unlink",
        "audit_write",
        "audit_unlink",
    ] {
        assert_eq!(outcome(t, label), "ERR EACCES", "{label}");
    }
    assert!(t.files_intact, "the policy or the audit log changed");
    assert!(denied_by(t, "path_unlink").len() >= 2, "{:?}", t.denials);
}

/// The socket's path is judged as a write by the filesystem rules, where the daemon's guard
/// denies it. (Behind that, the daemon itself refuses any peer inside a sandbox.)
#[test]
fn tamper_control_socket_is_unreachable() {
    let Some(t) = tampering() else { return };
    assert_eq!(outcome(t, "control_socket"), "ERR EACCES");
    assert!(
        denied_by(t, "unix_stream_connect")
            .iter()
            .any(|d| d["rule"]["section"] == "filesystem.daemon_guard"),
        "{:?}",
        t.denials
    );
}
