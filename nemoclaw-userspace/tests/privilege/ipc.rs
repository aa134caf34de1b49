//! System V IPC of host processes: every sandbox starts in an IPC namespace of its own
//! (`sandbox/launch.rs`), so a host process's world-accessible message queue, shared memory
//! segment and semaphore set are not there to find, while the sandbox's own IPC works; uid
//! 0 inside cannot join the host's namespace again under `privilege_escalation: deny`
//! (another task's namespace file is a ptrace check; `setns` needs `CAP_SYS_ADMIN`). The twins: the same lookups outside any sandbox, and
//! root joining the host's namespace under `privilege_escalation: allow`.

use std::process::Command;

use super::{ALLOW, DENY, NOBODY, probe};
use crate::support::{PYTHON, Scratch, lsm_or_skip, run_sandboxed, run_sandboxed_as};

/// The objects' key: fixed per test process, so a concurrent run cannot collide.
fn key() -> i64 {
    0x4e43_0000 + i64::from(std::process::id() & 0xffff)
}

/// Looks up the three objects by key and makes a private segment of its own.
fn lookups(key: i64) -> String {
    format!(
        "K = {key}\n\
         report(lambda: check(libc.msgget(K, 0)) >= 0)\n\
         report(lambda: check(libc.shmget(K, 0, 0)) >= 0)\n\
         report(lambda: check(libc.semget(K, 0, 0)) >= 0)\n\
         report(lambda: check(libc.shmget(0, 4096, 0o600)) >= 0)\n"
    )
}

/// Makes (`create`) or removes the host's three objects, outside any sandbox.
fn host_objects(key: i64, create: bool) {
    let body = if create {
        format!(
            "K = {key}\n\
             check(libc.msgget(K, 0o1666))\n\
             check(libc.shmget(K, 4096, 0o1666))\n\
             check(libc.semget(K, 1, 0o1666))\n"
        )
    } else {
        format!(
            "K = {key}\n\
             libc.msgctl(libc.msgget(K, 0), 0, None)\n\
             libc.shmctl(libc.shmget(K, 0, 0), 0, None)\n\
             libc.semctl(libc.semget(K, 0, 0), 0, 0)\n"
        )
    };
    let status = Command::new(PYTHON)
        .args(["-c", &probe(&body)])
        .status()
        .expect("run python");
    assert!(status.success(), "host IPC objects (create: {create})");
}

struct HostObjects(i64);

impl Drop for HostObjects {
    fn drop(&mut self) {
        host_objects(self.0, false);
    }
}

/// The host's System V shared memory, semaphores and message queues are out of the sandbox's
/// reach (its own IPC namespace), and root inside cannot join the host's namespace again,
/// neither through another task's namespace file nor an inherited descriptor.
#[test]
fn host_sysv_ipc_objects_are_out_of_reach() {
    if !lsm_or_skip("privilege_sysv_ipc") {
        return;
    }
    let key = key();
    host_objects(key, true);
    let _objects = HostObjects(key);
    let code = probe(&lookups(key));

    // Inside: none of the host's objects exists; the sandbox's own segment is made.
    let scratch = Scratch::new("sysv-ipc");
    let out = run_sandboxed(&scratch, DENY, &[PYTHON, "-c", &code]);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["ERR ENOENT", "ERR ENOENT", "ERR ENOENT", "OK True"],
        "{out:?}"
    );
    // Twin: outside any sandbox, as the same user, all three are found.
    let outside = {
        use std::os::unix::process::CommandExt;
        Command::new(PYTHON)
            .args(["-c", &code])
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("run outside")
    };
    assert_eq!(
        String::from_utf8_lossy(&outside.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["OK True", "OK True", "OK True", "OK True"],
        "{outside:?}"
    );

    // Root inside cannot go back to the host's namespace under `deny`: neither through
    // another task's namespace file (reading it is a ptrace check of that task) nor through
    // a descriptor of it the sandbox inherited (`setns` needs `CAP_SYS_ADMIN`) ...
    // SAFETY: open(2) of a NUL-terminated path; the descriptor is inherited on purpose.
    let host_ns = unsafe { libc::open(c"/proc/self/ns/ipc".as_ptr(), libc::O_RDONLY) };
    assert!(host_ns >= 0, "open the host's IPC namespace");
    let join = probe(&format!(
        "def join(fd):\n    check(libc.setns(fd, 0x08000000))\n    return 0\n\
         report(lambda: join(os.open('/proc/1/ns/ipc', os.O_RDONLY)))\n\
         report(lambda: join({host_ns}))\n{}",
        lookups(key)
    ));
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &join]);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "ERR EACCES",
            "ERR EPERM",
            "ERR ENOENT",
            "ERR ENOENT",
            "ERR ENOENT",
            "OK True"
        ],
        "{out:?}"
    );
    let denials = out.denials("privilege");
    assert_eq!(denials.len(), 2, "{out:?}");
    assert!(
        denials
            .iter()
            .any(|d| d["hook"] == "ptrace_access_check" && d["object"]["pid"] == 1),
        "{out:?}"
    );
    assert!(
        denials
            .iter()
            .any(|d| d["hook"] == "capable" && d["object"]["name"] == "CAP_SYS_ADMIN"),
        "{out:?}"
    );
    // ... and can under `allow` (the namespace was the only thing in the way).
    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &join]);
    // SAFETY: our own descriptor, closed once.
    unsafe { libc::close(host_ns) };
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["OK 0", "OK 0", "OK True", "OK True", "OK True", "OK True"],
        "{out:?}"
    );
}
