//! Acting on a task outside the sandbox by any hook but `kill` and `ptrace` (those are in
//! the parent module): priority, I/O priority, scheduler, resource limits, and making it
//! the owner of a file's `SIGIO` (by `fcntl` and by `ioctl`), which would let I/O signal it
//! later from any context. As root in the sandbox against a root process outside, so plain
//! permissions allow all of it and only the LSM hooks can refuse; the twin under
//! `privilege_escalation: allow` shows each operation works.

use std::fmt::Write as _;

use super::{ALLOW, DENY, outsider, probe, still_running};
use crate::support::{PYTHON, Scratch, lsm_or_skip, run_sandboxed_as};

/// (label, Python expression acting on `pid`, the hook that must refuse it).
const OPERATIONS: &[(&str, &str, &str)] = &[
    (
        "setpriority",
        "os.setpriority(os.PRIO_PROCESS, pid, 19)",
        "task_setnice",
    ),
    // ioprio_set(IOPRIO_WHO_PROCESS, pid, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0)).
    (
        "ioprio_set",
        "check(libc.syscall(251, 1, pid, 3 << 13))",
        "task_setioprio",
    ),
    (
        "sched_setaffinity",
        "os.sched_setaffinity(pid, {0})",
        "task_setscheduler",
    ),
    (
        "prlimit",
        "__import__('resource').prlimit(pid, __import__('resource').RLIMIT_NOFILE, (64, 64))",
        "task_setrlimit",
    ),
    (
        "F_SETOWN",
        "__import__('fcntl').fcntl(os.pipe()[0], __import__('fcntl').F_SETOWN, pid)",
        "file_fcntl",
    ),
    // F_SETOWN_EX with struct f_owner_ex { F_OWNER_PID, pid }.
    (
        "F_SETOWN_EX",
        "check(libc.fcntl(os.pipe()[0], 15, ctypes.byref((ctypes.c_int * 2)(1, pid))))",
        "file_fcntl",
    ),
    (
        "FIOSETOWN",
        "__import__('fcntl').ioctl(__import__('socket').socket().detach(), 0x8901, __import__('struct').pack('i', pid))",
        "file_ioctl",
    ),
    (
        "SIOCSPGRP",
        "__import__('fcntl').ioctl(__import__('socket').socket().detach(), 0x8902, __import__('struct').pack('i', -pid))",
        "file_ioctl",
    ),
];

fn script(pid: u32) -> String {
    let mut body = format!("pid = {pid}\n");
    for (label, expr, _) in OPERATIONS {
        let _ = writeln!(body, "print('{label}', end=' '); report(lambda: {expr})");
    }
    // Its own SIGIO stays its own: owner = itself.
    body.push_str(
        "print('own', end=' '); report(lambda: __import__('fcntl').fcntl(os.pipe()[0], __import__('fcntl').F_SETOWN, os.getpid()))\n",
    );
    probe(&body)
}

fn result<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no result for {label}: {stdout}"))
}

/// Root in the sandbox acts on a root process outside it through every task hook (nice,
/// I/O priority, CPU affinity, resource limits, `SIGIO` ownership by `fcntl` and `ioctl`):
/// each is denied and audited naming the process; on its own task it works and, allowed,
/// every operation works.
#[test]
fn acting_on_a_task_outside_the_sandbox_is_denied_by_every_hook() {
    if !lsm_or_skip("privilege_task_hooks") {
        return;
    }
    let mut outside = outsider(0, false);
    let scratch = Scratch::new("task-hooks");
    let out = run_sandboxed_as(
        &scratch,
        "root",
        DENY,
        &[PYTHON, "-c", &script(outside.id())],
    );
    let denials = out.denials("privilege");
    for (label, _, hook) in OPERATIONS {
        assert_eq!(result(&out.stdout, label), "ERR EPERM", "{label}: {out:?}");
        let pid = if *label == "SIOCSPGRP" {
            // A process group: recorded as the (negative) number asked for.
            serde_json::json!(
                i32::try_from(outside.id())
                    .expect("pid")
                    .wrapping_neg()
                    .cast_unsigned()
            )
        } else {
            serde_json::json!(outside.id())
        };
        assert!(
            denials.iter().any(|d| d["hook"] == *hook
                && d["object"]["pid"] == pid
                && d["errno"] == "EPERM"
                && d["rule"]["text"] == "privilege_escalation: deny"),
            "{label}: no {hook} denial naming pid {pid}: {out:?}"
        );
    }
    assert_eq!(result(&out.stdout, "own"), "OK 0", "{out:?}");
    assert_eq!(denials.len(), OPERATIONS.len(), "{out:?}");
    assert!(still_running(&mut outside));

    // Twin: allowed, every operation works on the same process.
    let out = run_sandboxed_as(
        &scratch,
        "root",
        ALLOW,
        &[PYTHON, "-c", &script(outside.id())],
    );
    for (label, _, _) in OPERATIONS {
        assert!(
            result(&out.stdout, label).starts_with("OK"),
            "{label}: {out:?}"
        );
    }
    assert!(out.denials("privilege").is_empty(), "{out:?}");
    let _ = outside.kill();
    let _ = outside.wait();
}

/// `ioctl(fd, cmd, arg)` made as a 32-bit system call (`int 0x80`, number 54), from a few
/// bytes of machine code in anonymous executable memory; `arg` points below 4 GiB.
const COMPAT_IOCTL: &str = "import mmap, struct, socket\n\
    code = bytes([0x53, 0x89, 0xfb, 0x89, 0xf1, 0xb8, 0x36, 0, 0, 0, 0xcd, 0x80, 0x5b, 0xc3])\n\
    text = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n\
    text.write(code)\n\
    ioctl32 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint)(\n\
    \x20   ctypes.addressof(ctypes.c_char.from_buffer(text)))\n\
    low = libc.mmap(None, 4096, 3, 0x22 | 0x40, -1, 0)\n\
    def fiosetown(pid):\n\
    \x20   s = socket.socket()\n\
    \x20   ctypes.memmove(low, struct.pack('i', pid), 4)\n\
    \x20   r = ioctl32(s.fileno(), 0x8901, low)\n\
    \x20   if r < 0:\n\
    \x20       raise OSError(-r, 'ioctl32')\n\
    \x20   return r\n\
    report(lambda: fiosetown(pid))\n";

/// A 32-bit `ioctl` (`FIOSETOWN` to a task outside) is judged like a 64-bit one
/// (`file_ioctl_compat`); the twin shows the compat call itself works.
#[test]
fn a_32_bit_ioctl_does_not_go_around_the_ioctl_judgement() {
    if !lsm_or_skip("privilege_compat_ioctl") {
        return;
    }
    let mut outside = outsider(0, false);
    let scratch = Scratch::new("compat-ioctl");
    let code = probe(&format!(
        "pid = {}\nlibc.mmap.restype = ctypes.c_void_p\n{COMPAT_IOCTL}",
        outside.id()
    ));
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = out.denials("privilege");
    assert_eq!(d.len(), 1, "{out:?}");
    assert_eq!(d[0]["hook"], "file_ioctl_compat", "{out:?}");
    assert_eq!(d[0]["object"]["name"], "FIOSETOWN", "{out:?}");

    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK 0", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
    let _ = outside.kill();
    let _ = outside.wait();
}
