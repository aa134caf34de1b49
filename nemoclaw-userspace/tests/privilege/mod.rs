//! `privilege_escalation: deny`: escape attempts that must fail, each with a twin that shows
//! the same operation works when the policy allows it (or inside the sandbox), so only the
//! eBPF hooks can be what stops it. Every denial must also be in the audit log, citing the
//! `privilege_escalation` rule.

use std::{
    io::{BufRead, BufReader},
    os::unix::{fs::PermissionsExt, process::CommandExt},
    process::{Child, Command, Stdio},
};

use crate::support::{
    Outcome, PYTHON, Scratch, lsm_or_skip, run_sandboxed, run_sandboxed_as,
    run_sandboxed_unchrooted,
};

mod host_interfaces;
mod ipc;
mod kernel;
mod tasks;

const DENY: &str = "process:\n  allow:\n    - python3\nprivilege_escalation: deny\n";
const ALLOW: &str = "process:\n  allow:\n    - python3\nprivilege_escalation: allow\n";
const NOBODY: u32 = 65_534;

/// A Python prologue: `libc` with errno, and `report(fn)` printing `OK <value>` or
/// `ERR <errno name>`.
const PRELUDE: &str = "import ctypes, errno, os, sys\n\
    libc = ctypes.CDLL(None, use_errno=True)\n\
    def report(f):\n    \
        try:\n        v = f()\n    \
        except OSError as e:\n        print('ERR', errno.errorcode.get(e.errno, e.errno)); return\n    \
        print('OK', v)\n\
    def check(r):\n    \
        if r == -1:\n        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n    \
        return r\n";

fn probe(body: &str) -> String {
    format!("{PRELUDE}{body}\n")
}

/// The single privilege denial of `out`, checked for what every privilege event carries.
fn one_privilege_denial<'a>(out: &'a Outcome, hook: &str) -> &'a serde_json::Value {
    let d = out.denials("privilege");
    assert_eq!(d.len(), 1, "expected one privilege denial: {out:?}");
    let d = d[0];
    assert_eq!(d["hook"], hook, "{out:?}");
    assert_eq!(d["errno"], "EPERM", "{out:?}");
    assert_eq!(d["rule"]["section"], "privilege_escalation", "{out:?}");
    assert_eq!(d["rule"]["text"], "privilege_escalation: deny", "{out:?}");
    d
}

/// A process outside any sandbox, as `uid`, that sleeps; with `ptraceable`, it first lets
/// any process of its uid trace it (Yama's `ptrace_scope=1` would otherwise refuse a
/// non-ancestor before the LSM hook runs) and says `ready`.
fn outsider(uid: u32, ptraceable: bool) -> Child {
    let code = if ptraceable {
        "import ctypes, sys, time\n\
         ctypes.CDLL(None).prctl(0x59616d61, ctypes.c_ulong(-1 & 0xffffffffffffffff), 0, 0, 0)\n\
         print('ready', flush=True)\n\
         time.sleep(120)\n"
    } else {
        "import time\nprint('ready', flush=True)\ntime.sleep(120)\n"
    };
    let mut child = Command::new(PYTHON)
        .args(["-c", code])
        .uid(uid)
        .gid(uid)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn outsider");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("outsider stdout"))
        .read_line(&mut line)
        .expect("read outsider");
    assert_eq!(line.trim(), "ready");
    child
}

fn still_running(child: &mut Child) -> bool {
    child.try_wait().expect("try_wait").is_none()
}

fn kill_probe(pid: u32) -> String {
    probe(&format!("report(lambda: os.kill({pid}, 9))"))
}

/// A signal to a process outside the sandbox running as the same user (`nobody`, then root),
/// which only the LSM hook can refuse: denied and audited, the process lives on; allowed,
/// the signal lands.
#[test]
fn kill_of_process_outside_sandbox_is_denied() {
    if !lsm_or_skip("privilege_kill_outside") {
        return;
    }
    for user in ["nobody", "root"] {
        // Same uid as the sandboxed task: only the LSM hook can refuse.
        let uid = if user == "root" { 0 } else { NOBODY };
        let mut outside = outsider(uid, false);
        let scratch = Scratch::new(&format!("kill-out-{user}"));
        let out = run_sandboxed_as(
            &scratch,
            user,
            DENY,
            &[PYTHON, "-c", &kill_probe(outside.id())],
        );
        assert_eq!(out.stdout.trim(), "ERR EPERM", "{user}: {out:?}");
        let d = one_privilege_denial(&out, "task_kill");
        assert_eq!(d["object"]["operation"], "signal");
        assert_eq!(d["object"]["number"], 9);
        assert_eq!(d["object"]["pid"], outside.id());
        assert!(
            still_running(&mut outside),
            "{user}: the outside process was killed"
        );

        // Twin: with privilege escalation allowed, the same signal lands.
        let out = run_sandboxed_as(
            &scratch,
            user,
            ALLOW,
            &[PYTHON, "-c", &kill_probe(outside.id())],
        );
        assert_eq!(out.stdout.trim(), "OK None", "{user}: {out:?}");
        assert!(out.denials("privilege").is_empty(), "{out:?}");
        let status = outside.wait().expect("wait outsider");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }
}

/// Inside the sandbox, a task may still signal its own children.
#[test]
fn kill_inside_sandbox_works() {
    if !lsm_or_skip("privilege_kill_inside") {
        return;
    }
    let scratch = Scratch::new("kill-in");
    let code = probe(
        "pid = os.fork()\n\
         if pid == 0:\n    import time; time.sleep(60); os._exit(0)\n\
         report(lambda: os.kill(pid, 9))\n\
         print('status', os.waitpid(pid, 0)[1] & 0x7f)\n",
    );
    let out = run_sandboxed(&scratch, DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK None\nstatus 9", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

const PTRACE_ATTACH: &str = "def attach(pid):\n    \
    check(libc.ptrace(16, pid, None, None))\n    \
    os.waitpid(pid, 0)\n    \
    check(libc.ptrace(17, pid, None, None))\n    \
    return 'attached'\n";

/// `PTRACE_ATTACH` to a process outside the sandbox: denied and audited, the process lives
/// on; allowed, the attach succeeds.
#[test]
fn ptrace_of_process_outside_sandbox_is_denied() {
    if !lsm_or_skip("privilege_ptrace_outside") {
        return;
    }
    let mut outside = outsider(NOBODY, true);
    let scratch = Scratch::new("ptrace-out");
    let code = probe(&format!(
        "{PTRACE_ATTACH}report(lambda: attach({}))",
        outside.id()
    ));
    let out = run_sandboxed(&scratch, DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = one_privilege_denial(&out, "ptrace_access_check");
    assert_eq!(d["object"]["operation"], "ptrace");
    assert_eq!(d["object"]["pid"], outside.id());
    assert!(still_running(&mut outside));

    // Twin: privilege escalation allowed, the same attach succeeds.
    let out = run_sandboxed(&scratch, ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK attached", "{out:?}");
    assert!(out.denials("privilege").is_empty(), "{out:?}");
    outside.kill().expect("kill outsider");
    outside.wait().expect("wait outsider");
}

/// Inside the sandbox, a debugger may still trace its own child.
#[test]
fn ptrace_inside_sandbox_works() {
    if !lsm_or_skip("privilege_ptrace_inside") {
        return;
    }
    let scratch = Scratch::new("ptrace-in");
    let code = probe(&format!(
        "{PTRACE_ATTACH}pid = os.fork()\n\
         if pid == 0:\n    import time; time.sleep(60); os._exit(0)\n\
         report(lambda: attach(pid))\n\
         os.kill(pid, 9)\n"
    ));
    let out = run_sandboxed(&scratch, DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK attached", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// `BPF_PROG_GET_NEXT_ID` (11) passes the kernel's unprivileged-BPF gate, so the `bpf` hook
/// decides for `nobody` too; as root the twin lists programs (`NemoClaw`'s own are loaded).
#[test]
fn bpf_syscall_is_denied() {
    if !lsm_or_skip("privilege_bpf") {
        return;
    }
    let code = probe(
        "attr = ctypes.create_string_buffer(16)\n\
         report(lambda: check(libc.syscall(321, 11, attr, 16)))\n",
    );
    for user in ["nobody", "root"] {
        let scratch = Scratch::new(&format!("bpf-{user}"));
        let out = run_sandboxed_as(&scratch, user, DENY, &[PYTHON, "-c", &code]);
        assert_eq!(out.stdout.trim(), "ERR EPERM", "{user}: {out:?}");
        let d = out.denials("privilege");
        let bpf: Vec<_> = d.iter().filter(|d| d["hook"] == "bpf").collect();
        assert_eq!(bpf.len(), 1, "{user}: {out:?}");
        assert_eq!(bpf[0]["rule"]["section"], "privilege_escalation");
        assert_eq!(bpf[0]["object"]["name"], "BPF_PROG_GET_NEXT_ID");
        // 6.1 first asks whether the caller is `bpf_capable()` (CAP_BPF, then CAP_SYS_ADMIN):
        // for root those checks reach the `capable` hook, which refuses and logs them too.
        for other in d.iter().filter(|d| d["hook"] != "bpf") {
            assert_eq!(other["hook"], "capable", "{user}: {out:?}");
            let cap = other["object"]["name"].as_str().unwrap_or_default();
            assert!(
                user == "root" && ["CAP_BPF", "CAP_SYS_ADMIN"].contains(&cap),
                "{user}: {out:?}"
            );
        }
    }
    let scratch = Scratch::new("bpf-twin");
    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK 0", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

fn mount_probe(dir: &str) -> String {
    probe(&format!(
        "def mnt():\n    \
             check(libc.mount(b'none', {dir:?}.encode(), b'tmpfs', 0, None))\n    \
             check(libc.umount2({dir:?}.encode(), 0))\n    \
             return 'mounted'\n\
         report(mnt)\n"
    ))
}

/// `mount -t tmpfs`: `sb_mount` runs before the kernel's `CAP_SYS_ADMIN` check, so the
/// attempt is logged for `nobody` too; as root the twin mounts and unmounts.
#[test]
fn mount_is_denied() {
    if !lsm_or_skip("privilege_mount") {
        return;
    }
    for user in ["nobody", "root"] {
        let scratch = Scratch::new(&format!("mount-{user}"));
        let dir = scratch.path("mnt");
        std::fs::create_dir(&dir).expect("mkdir");
        let dir = dir.to_str().expect("utf-8").to_owned();
        let out = run_sandboxed_as(&scratch, user, DENY, &[PYTHON, "-c", &mount_probe(&dir)]);
        assert_eq!(out.stdout.trim(), "ERR EPERM", "{user}: {out:?}");
        let d = one_privilege_denial(&out, "sb_mount");
        assert_eq!(d["object"]["operation"], "mount");
        assert_eq!(d["object"]["name"], dir.as_str());
        if user == "root" {
            let out = run_sandboxed_as(&scratch, user, ALLOW, &[PYTHON, "-c", &mount_probe(&dir)]);
            assert_eq!(out.stdout.trim(), "OK mounted", "{out:?}");
            assert!(out.all_denials().is_empty(), "{out:?}");
        }
    }
}

/// `unshare -U`, and the usual next step: a mount inside the new user namespace, where the
/// task holds `CAP_SYS_ADMIN`.
fn userns_probe(dir: &str) -> String {
    probe(&format!(
        "def userns_mount():\n    \
             check(libc.unshare(0x10000000 | 0x00020000))\n    \
             check(libc.mount(b'none', {dir:?}.encode(), b'tmpfs', 0, None))\n    \
             return 'mounted in userns'\n\
         report(userns_mount)\n"
    ))
}

/// Creating a user namespace (to become root in it and mount), as `nobody` and as root:
/// denied at `userns_create`; allowed, the mount in the namespace works.
#[test]
fn user_namespace_is_denied() {
    if !lsm_or_skip("privilege_userns") {
        return;
    }
    for user in ["nobody", "root"] {
        let scratch = Scratch::new(&format!("userns-{user}"));
        let dir = scratch.path("mnt");
        std::fs::create_dir(&dir).expect("mkdir");
        let code = userns_probe(dir.to_str().expect("utf-8"));
        let out = run_sandboxed_unchrooted(&scratch, user, DENY, &[PYTHON, "-c", &code]);
        assert_eq!(out.stdout.trim(), "ERR EPERM", "{user}: {out:?}");
        let d = one_privilege_denial(&out, "userns_create");
        assert_eq!(d["object"]["operation"], "user namespace");

        let out = run_sandboxed_unchrooted(&scratch, user, ALLOW, &[PYTHON, "-c", &code]);
        assert_eq!(out.stdout.trim(), "OK mounted in userns", "{user}: {out:?}");
        assert!(out.all_denials().is_empty(), "{out:?}");
    }
}

/// uid 0 inside the sandbox is not root: a change of uid needs `CAP_SETUID`, refused.
#[test]
fn setuid_as_root_is_denied() {
    if !lsm_or_skip("privilege_setuid") {
        return;
    }
    let code = probe("report(lambda: os.setuid(65534))\nprint(os.getuid())\n");
    let scratch = Scratch::new("setuid");
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM\n0", "{out:?}");
    let d = one_privilege_denial(&out, "capable");
    assert_eq!(d["object"]["name"], "CAP_SETUID");

    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK None\n65534", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// uid 0 inside the sandbox cannot override file permissions (`CAP_DAC_OVERRIDE`).
#[test]
fn root_cannot_override_file_permissions() {
    if !lsm_or_skip("privilege_dac_override") {
        return;
    }
    let scratch = Scratch::new("dac");
    let secret = scratch.path("secret");
    std::fs::write(&secret, "s3cret").expect("write secret");
    std::os::unix::fs::chown(&secret, Some(NOBODY), Some(NOBODY)).expect("chown");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let code = probe(&format!(
        "report(lambda: open({:?}).read())",
        secret.to_str().expect("utf-8")
    ));
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EACCES", "{out:?}");
    let d = out.denials("privilege");
    assert!(!d.is_empty(), "{out:?}");
    for d in &d {
        assert_eq!(d["hook"], "capable");
        assert_eq!(d["rule"]["section"], "privilege_escalation");
        let cap = d["object"]["name"].as_str().unwrap_or_default();
        assert!(
            cap == "CAP_DAC_OVERRIDE" || cap == "CAP_DAC_READ_SEARCH",
            "{d:?}"
        );
    }

    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK s3cret", "{out:?}");
}

/// A setuid-root copy made by root outside the sandbox gives `nobody` nothing: the exec is
/// refused (`bprm_creds_from_file`). The twin shows `no_new_privs` alone already keeps the
/// uid when privilege escalation is allowed; the hook makes the attempt fail and logged.
#[test]
fn setuid_root_copy_is_denied() {
    if !lsm_or_skip("privilege_setuid_file") {
        return;
    }
    let scratch = Scratch::new("suid");
    let copy = scratch.path("id-suid");
    std::fs::copy("/usr/bin/id", &copy).expect("copy id");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).expect("chmod u+s");
    let copy = copy.to_str().expect("utf-8").to_owned();
    let with = |priv_line: &str| {
        format!(
            "process:\n  allow:\n    - python3\n    - {copy}\nprivilege_escalation: {priv_line}\n"
        )
    };
    let code = probe(&format!(
        "import subprocess\n\
         report(lambda: subprocess.run([{copy:?}, '-u'], capture_output=True, text=True).stdout.strip())\n"
    ));
    let out = run_sandboxed(&scratch, &with("deny"), &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = one_privilege_denial(&out, "bprm_creds_from_file");
    assert_eq!(d["object"]["path"], copy.as_str());

    let out = run_sandboxed(&scratch, &with("allow"), &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK 65534", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// `socket(AF_RDS)` makes the kernel request module `net-pf-21` (built as a module on
/// Debian and never loaded in the VM): refused and logged; the socket fails either way.
#[test]
fn kernel_module_request_is_denied() {
    if !lsm_or_skip("privilege_module") {
        return;
    }
    let code =
        probe("import socket\nreport(lambda: socket.socket(21, socket.SOCK_SEQPACKET, 0))\n");
    let scratch = Scratch::new("modreq");
    let out = run_sandboxed(&scratch, DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EAFNOSUPPORT", "{out:?}");
    let d = one_privilege_denial(&out, "kernel_module_request");
    assert_eq!(d["object"]["name"], "net-pf-21");

    let out = run_sandboxed(&scratch, ALLOW, &[PYTHON, "-c", &code]);
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// uid 0 in the sandbox owns the kernel's interface files by plain permissions: writing
/// `/proc/sys/kernel/core_pattern` would run a program as root outside the sandbox, and the
/// root cgroup's `cgroup.procs` would take the task out of the sandbox. Write-opens there
/// are refused (the probe only opens, never writes); the twin opens the same files.
#[test]
fn root_cannot_write_kernel_interface_files() {
    if !lsm_or_skip("privilege_interface_files") {
        return;
    }
    let files = [
        "/proc/sys/kernel/core_pattern",
        "/sys/fs/cgroup/cgroup.procs",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ];
    let code = probe(&format!(
        "for p in {files:?}:\n    \
             report(lambda: os.close(os.open(p, os.O_WRONLY)))\n\
         report(lambda: len(open('/proc/sys/kernel/core_pattern').read()) > 0)\n"
    ));
    let scratch = Scratch::new("iface");
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &code]);
    assert_eq!(
        out.stdout.trim(),
        "ERR EPERM\nERR EPERM\nERR EPERM\nOK True",
        "{out:?}"
    );
    let d = out.denials("privilege");
    let paths: Vec<_> = d
        .iter()
        .map(|d| d["object"]["path"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(paths, files, "{out:?}");
    for d in &d {
        assert_eq!(d["hook"], "file_open");
        assert_eq!(d["rule"]["section"], "privilege_escalation");
    }

    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(
        out.stdout.trim(),
        "OK None\nOK None\nOK None\nOK True",
        "{out:?}"
    );
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// Block devices give raw access to file systems, around every file permission: no open at
/// all. The node is made outside the sandbox (major 1, the RAM disk, has no driver loaded in
/// the VM): refused before the driver is asked, while the twin reaches it (`ENXIO`).
#[test]
fn block_device_open_is_denied() {
    if !lsm_or_skip("privilege_block_device") {
        return;
    }
    let scratch = Scratch::new("blkdev");
    let node = scratch.path("disk");
    let c_node = std::ffi::CString::new(node.to_str().expect("utf-8")).expect("no NUL");
    // SAFETY: mknod on a NUL-terminated path.
    let made = unsafe { libc::mknod(c_node.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(1, 0)) };
    assert_eq!(made, 0, "mknod: {}", std::io::Error::last_os_error());
    let node = node.to_str().expect("utf-8");
    let code = probe(&format!(
        "report(lambda: os.close(os.open({node:?}, os.O_RDONLY)))"
    ));
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = one_privilege_denial(&out, "file_open");
    assert_eq!(d["object"]["path"], node);

    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR ENXIO", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// Character devices other than the harmless few (`/dev/null`, `urandom`, terminals) are
/// refused: `/dev/mem` is refused before its driver would ask for `CAP_SYS_RAWIO`, and the
/// twin (privilege escalation allowed, root) opens it.
#[test]
fn char_device_open_is_limited() {
    if !lsm_or_skip("privilege_char_device") {
        return;
    }
    let code = probe(
        "for p in ['/dev/null', '/dev/urandom', '/dev/mem']:\n    \
             report(lambda: os.close(os.open(p, os.O_RDONLY)))\n",
    );
    let scratch = Scratch::new("chardev");
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK None\nOK None\nERR EPERM", "{out:?}");
    let d = one_privilege_denial(&out, "file_open");
    assert_eq!(d["object"]["path"], "/dev/mem");

    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK None\nOK None\nOK None", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// Sets `kernel.perf_event_paranoid` for the life of the guard, restoring it on drop.
struct Paranoid(String);

impl Paranoid {
    const PATH: &'static str = "/proc/sys/kernel/perf_event_paranoid";
    fn set(value: &str) -> Self {
        let old = std::fs::read_to_string(Self::PATH).expect("read perf_event_paranoid");
        std::fs::write(Self::PATH, value).expect("write perf_event_paranoid");
        Self(old)
    }
}

impl Drop for Paranoid {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, self.0.trim());
    }
}

/// `perf_event_open` of a software counter on the task itself. Debian's default
/// `perf_event_paranoid=3` refuses that for non-root before any LSM runs, so the test sets 2
/// (the upstream default, which allows it) for its duration.
#[test]
fn perf_event_open_is_denied() {
    if !lsm_or_skip("privilege_perf") {
        return;
    }
    let _paranoid = Paranoid::set("2");
    let code = probe(
        "import struct\n\
         # perf_event_attr v0 (64 bytes): PERF_TYPE_SOFTWARE, CPU clock, disabled, exclude_kernel, exclude_hv.\n\
         attr = ctypes.create_string_buffer(struct.pack('<IIQQQQQ', 1, 64, 0, 0, 0, 0, 0x61).ljust(64, b'\\0'), 64)\n\
         report(lambda: os.close(check(libc.syscall(298, attr, 0, -1, -1, 0))))\n",
    );
    let scratch = Scratch::new("perf");
    let out = run_sandboxed(&scratch, DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = one_privilege_denial(&out, "perf_event_open");
    assert_eq!(d["object"]["operation"], "perf_event_open");

    let out = run_sandboxed(&scratch, ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK None", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// `TIOCSTI` pushes characters into a terminal's input, which the shell that started the
/// sandbox would read after it exits. The probe makes a pseudo-terminal its controlling
/// terminal (where the kernel allows `TIOCSTI` without privilege on 6.1) and tries it.
/// Twin: allowed on 6.1; 6.12 (`CONFIG_LEGACY_TIOCSTI=n`) refuses it with `EIO` itself.
#[test]
fn terminal_input_injection_is_denied() {
    if !lsm_or_skip("privilege_tiocsti") {
        return;
    }
    let code = probe(
        "import fcntl, termios\n\
         r, w = os.pipe()\n\
         if os.fork() == 0:\n    \
             os.setsid()\n    \
             master, slave = os.openpty()\n    \
             fcntl.ioctl(slave, termios.TIOCSCTTY, 0)\n    \
             def sti():\n        \
                 fcntl.ioctl(slave, termios.TIOCSTI, b'x')\n        \
                 return 'injected'\n    \
             sys.stdout = os.fdopen(w, 'w')\n    \
             report(sti)\n    \
             sys.stdout.flush(); os._exit(0)\n\
         os.close(w)\n\
         print(os.read(r, 100).decode().strip())\n",
    );
    let scratch = Scratch::new("tiocsti");
    let out = run_sandboxed(&scratch, DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = one_privilege_denial(&out, "file_ioctl");
    assert_eq!(d["object"]["name"], "TIOCSTI");

    let out = run_sandboxed(&scratch, ALLOW, &[PYTHON, "-c", &code]);
    let twin = out.stdout.trim();
    assert!(twin == "OK injected" || twin == "ERR EIO", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}
