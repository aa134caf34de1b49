//! Shared helpers for the privileged test suites: run `nemoclaw run` on a policy and a
//! small Python probe, and read back the exit status, output and audit records.

#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod daemon;
pub mod router;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub const PYTHON: &str = "/usr/bin/python3";

pub fn nemoclaw() -> &'static str {
    env!("CARGO_BIN_EXE_nemoclaw")
}

/// Whether we are root; prints why a test is skipped when not.
pub fn root_or_skip(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        println!("SKIPPED {test}: needs root");
    }
    root
}

/// Whether BPF LSM is active and its programs load here (`nemoclaw doctor
/// --quiet-lsm-check`, the check `cargo xtask run` decides with).
pub fn bpf_lsm_runs() -> bool {
    Command::new(nemoclaw())
        .args(["doctor", "--quiet-lsm-check"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether BPF LSM programs load here. With `NEMOCLAW_REQUIRE_LSM=1` (the VM suite) a
/// missing BPF LSM is a failure, never a silent skip.
pub fn lsm_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        assert!(
            std::env::var_os("NEMOCLAW_REQUIRE_LSM").is_none(),
            "{test}: VM suite must run as root"
        );
        return false;
    }
    let out = Command::new(nemoclaw())
        .args(["doctor", "--quiet-lsm-check"])
        .output()
        .expect("run nemoclaw doctor");
    if out.status.success() {
        return true;
    }
    let why = String::from_utf8_lossy(&out.stdout);
    assert!(
        std::env::var_os("NEMOCLAW_REQUIRE_LSM").is_none(),
        "{test}: BPF LSM required but unavailable: {why}"
    );
    println!("SKIPPED {test}: {why}");
    false
}

/// A scratch directory under /tmp (a tmpfs in the VM), removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nemoclaw-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a sandboxed run produced.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The deny records of the audit log.
    pub audit: Vec<serde_json::Value>,
    /// Its other records (sandbox start and stop), in order.
    pub lifecycle: Vec<serde_json::Value>,
}

impl Outcome {
    /// The audit records for one control (`process`, `network`, ...).
    pub fn denials(&self, control: &str) -> Vec<&serde_json::Value> {
        self.audit
            .iter()
            .filter(|r| r["control"] == control)
            .collect()
    }

    /// Exit code, output and the number of records: for assertion messages of runs that
    /// write thousands of records (the whole `Debug` would swamp the console).
    pub fn brief(&self) -> String {
        format!(
            "exit {:?}, {} deny records\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.audit.len(),
            self.stdout,
            self.stderr
        )
    }

    /// The two counts a hammering probe printed as `NAME OK DENIED`.
    pub fn counts(&self, name: &str) -> (u64, u64) {
        let line = self
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} line: {}", self.brief()));
        let n: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().expect("count"))
            .collect();
        assert_eq!(n.len(), 2, "{line}");
        (n[0], n[1])
    }

    /// Every deny record, of any control (lifecycle records are not denials).
    pub fn all_denials(&self) -> Vec<&serde_json::Value> {
        self.audit
            .iter()
            .filter(|r| r["decision"] == "deny")
            .collect()
    }
}

/// Runs `argv` under `policy_yaml` as `nobody`, with the audit log in `scratch`.
pub fn run_sandboxed(scratch: &Scratch, policy_yaml: &str, argv: &[&str]) -> Outcome {
    run_sandboxed_as(scratch, "nobody", policy_yaml, argv)
}

/// Runs `argv` under `policy_yaml` as `user` (e.g. `root`: uid 0 inside the sandbox).
pub fn run_sandboxed_as(
    scratch: &Scratch,
    user: &str,
    policy_yaml: &str,
    argv: &[&str],
) -> Outcome {
    run_sandboxed_in(scratch, user, policy_yaml, argv, false)
}

/// Like [`run_sandboxed_as`], but outside any `chroot`. The VM runs its command in a chroot
/// of the host's root, and the kernel refuses user namespaces to chrooted tasks before any
/// LSM is asked (`create_user_ns`: `current_chrooted()`), which would hide what `NemoClaw`
/// does. So `nemoclaw run` starts in a private mount namespace whose root is the chroot's
/// root mount moved onto the namespace root, as `switch_root` does. No-op when not chrooted.
pub fn run_sandboxed_unchrooted(
    scratch: &Scratch,
    user: &str,
    policy_yaml: &str,
    argv: &[&str],
) -> Outcome {
    run_sandboxed_in(scratch, user, policy_yaml, argv, true)
}

/// Whether this process is chrooted: `/` is not the root of PID 1 (which the VM's init is not).
fn chrooted() -> bool {
    use std::os::unix::fs::MetadataExt;
    let ours = std::fs::metadata("/").expect("stat /");
    let init = std::fs::metadata("/proc/1/root/").expect("stat /proc/1/root");
    (ours.dev(), ours.ino()) != (init.dev(), init.ino())
}

/// In the child before exec: leaves the chroot (see [`run_sandboxed_unchrooted`]).
fn leave_chroot(escape_dir: &std::ffi::CStr, mount_point: &std::ffi::CStr) -> std::io::Result<()> {
    use std::io::Error;
    let check = |r: libc::c_int| {
        if r == 0 {
            Ok(())
        } else {
            Err(Error::last_os_error())
        }
    };
    // SAFETY: plain syscalls on NUL-terminated strings prepared before fork.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        // The classic way out of a chroot (we are root): chroot deeper, then walk up.
        check(libc::chroot(escape_dir.as_ptr()))?;
        for _ in 0..64 {
            check(libc::chdir(c"..".as_ptr()))?;
        }
        check(libc::chroot(c".".as_ptr()))?;
        // Now at the namespace root: move the old root mount onto it and enter it.
        check(libc::chdir(mount_point.as_ptr()))?;
        check(libc::mount(
            c".".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_MOVE,
            std::ptr::null(),
        ))?;
        check(libc::chroot(c".".as_ptr()))?;
        check(libc::chdir(c"/".as_ptr()))
    }
}

/// The mount point of the VM's root (see `xtask/src/vm/initramfs.rs`).
const VM_ROOT_MOUNT: &std::ffi::CStr = c"/newroot";

fn run_sandboxed_in(
    scratch: &Scratch,
    user: &str,
    policy_yaml: &str,
    argv: &[&str],
    unchroot: bool,
) -> Outcome {
    use std::os::unix::process::CommandExt;
    let policy = scratch.path("policy.yaml");
    std::fs::write(&policy, policy_yaml).expect("write policy");
    let audit = scratch.path("audit.jsonl");
    let _ = std::fs::remove_file(&audit);
    let mut cmd = Command::new(nemoclaw());
    cmd.arg("run")
        .arg("--policy")
        .arg(&policy)
        .args(["--user", user, "--audit-log"])
        .arg(&audit)
        .arg("--")
        .args(argv);
    if unchroot && chrooted() {
        let escape = scratch.path("chroot-escape");
        std::fs::create_dir_all(&escape).expect("create chroot escape dir");
        let escape = std::ffi::CString::new(escape.into_os_string().into_encoded_bytes())
            .expect("path without NUL");
        // SAFETY: the closure only makes syscalls on data prepared above.
        unsafe {
            cmd.pre_exec(move || leave_chroot(&escape, VM_ROOT_MOUNT));
        }
    }
    let out = cmd.output().expect("spawn nemoclaw run");
    let (denials, lifecycle) = read_audit(&audit);
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        audit: denials,
        lifecycle,
    }
}

/// The log's records split into (denials, lifecycle records); the hash chain must hold.
fn read_audit(path: &Path) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let verify = Command::new(nemoclaw())
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .expect("run audit verify");
    assert!(
        !path.exists() || verify.status.success(),
        "audit chain broken: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("audit line is JSON"))
        .partition(|r| r.get("decision").is_some())
}

/// A Python probe that connects a socket and prints `OK` or `ERR <errno name>`.
pub fn connect_probe(family: &str, kind: &str, host: &str, port: u16) -> String {
    let send = if kind == "SOCK_DGRAM" {
        "s.sendto(b'x', (h, p))"
    } else {
        "s.connect((h, p))"
    };
    format!(
        "import socket, errno\n\
         h, p = {host:?}, {port}\n\
         s = socket.socket(socket.{family}, socket.{kind})\n\
         s.settimeout(5)\n\
         try:\n    {send}\n    print('OK')\n\
         except OSError as e:\n    print('ERR', errno.errorcode.get(e.errno, e.errno))\n"
    )
}

/// The kernel's preemption mode switched to `full` for one test (`PREEMPT_DYNAMIC`
/// kernels, such as Debian's, boot `voluntary`); the previous mode comes back on drop.
pub struct FullPreemption {
    previous: String,
}

const PREEMPT_CONTROL: &str = "/sys/kernel/debug/sched/preempt";

impl FullPreemption {
    /// `None` when this kernel has no run-time preemption switch.
    pub fn switch() -> Option<Self> {
        if !Path::new(PREEMPT_CONTROL).exists() {
            let _ = std::process::Command::new("mount")
                .args(["-t", "debugfs", "debugfs", "/sys/kernel/debug"])
                .status();
        }
        // "none (voluntary) full": the current mode is in parentheses.
        let modes = std::fs::read_to_string(PREEMPT_CONTROL).ok()?;
        let previous = modes.split_once('(')?.1.split_once(')')?.0.to_owned();
        std::fs::write(PREEMPT_CONTROL, "full").expect("switch to full preemption");
        let now = std::fs::read_to_string(PREEMPT_CONTROL).expect("read preemption mode");
        assert!(now.contains("(full)"), "preemption mode: {now}");
        Some(Self { previous })
    }
}

impl Drop for FullPreemption {
    fn drop(&mut self) {
        let _ = std::fs::write(PREEMPT_CONTROL, &self.previous);
    }
}

/// A Python program for the full-preemption tests: after `setup`, it pins itself to CPU 0
/// and forks; the child repeats `op` (a statement using `name`) as `first`, the parent as
/// `second`, each for 6 s, and each prints `NAME OK DENIED` (a `PermissionError` is a
/// denial); read them with [`Outcome::counts`].
pub fn contend(setup: &str, op: &str, first: &str, second: &str) -> String {
    format!(
        "import os, time\n\
         {setup}\n\
         os.sched_setaffinity(0, {{0}})\n\
         def hammer(name, seconds):\n    \
             ok = denied = 0\n    \
             end = time.monotonic() + seconds\n    \
             while time.monotonic() < end:\n        \
                 try:\n            \
                     {op}\n            \
                     ok += 1\n        \
                 except PermissionError:\n            \
                     denied += 1\n    \
             print(name, ok, denied, flush=True)\n\
         child = os.fork()\n\
         if child == 0:\n    \
             hammer({first:?}, 6)\n    \
             os._exit(0)\n\
         hammer({second:?}, 6)\n\
         os.waitpid(child, 0)\n"
    )
}
