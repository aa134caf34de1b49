//! Starts the sandboxed command: the child is born in an IPC namespace of its own, drops to
//! the sandbox user, moves itself into the sandbox cgroup, sets `no_new_privs`, then
//! execs, so the exec itself is already judged.
//!
//! The IPC namespace holds System V message queues, shared memory and semaphores (and POSIX
//! message queues): those of host processes are not there to reach from the sandbox, as
//! abstract unix sockets of the host are refused. Joining the host's namespace again
//! (`setns`) needs `CAP_SYS_ADMIN`, which `privilege_escalation: deny` refuses.
//!
//! The order matters under `privilege_escalation: deny`, which forbids any uid/gid change
//! and capability use inside the sandbox: the child changes its ids while still outside,
//! and joins through a `cgroup.procs` descriptor it opened as root. The kernel checks a
//! `cgroup.procs` write against the opener's credentials (Linux 5.16+), so the now
//! unprivileged child may still move itself in.
//!
//! The child is made as `posix_spawn` makes one: `clone(CLONE_VM | CLONE_VFORK)` on a
//! stack of its own, the parent suspended until the exec. No copy of the parent's page
//! tables is made, and none torn down at the exec, which a `fork` of this large process
//! costs at every sandbox start. Sharing the parent's memory bounds what the child may
//! do: everything it uses is prepared by the parent ([`Prepared`]), it calls no
//! allocator, takes no lock, and makes its system calls raw where glibc's wrappers would
//! touch the parent's threads (`setgroups`, `setresgid`, `setresuid` broadcast an id change
//! to every thread of the process). All signals are blocked across the `clone`, so no
//! handler of the parent runs on the child's stack; the child sets every caught signal back
//! to its default, `SIGPIPE` too (Rust ignores it), and starts the command with an empty
//! signal mask, as `std::process::Command` does.

use std::{
    ffi::{CString, OsStr, OsString},
    io,
    os::unix::{
        ffi::{OsStrExt, OsStringExt},
        process::ExitStatusExt,
    },
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::atomic::{AtomicI32, Ordering},
};

use super::user::SandboxUser;

/// The child's stack: it runs no more than the few calls below.
const CHILD_STACK: usize = 64 * 1024;

/// The sandboxed command, started.
#[derive(Debug)]
pub struct Launched {
    pid: libc::pid_t,
}

impl Launched {
    /// Waits for the command to end.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            let mut status = 0;
            // SAFETY: waits for our own child; `status` is a valid out-pointer.
            let rc = unsafe { libc::waitpid(self.pid, &raw mut status, 0) };
            if rc == self.pid {
                return Ok(ExitStatus::from_raw(status));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Everything the child reads, built by the parent: the child only reads it, and writes
/// the one error cell.
#[derive(Debug)]
struct Prepared {
    /// Where to look for the program: the one path given, or each `PATH` directory's.
    candidates: Vec<CString>,
    argv: Vec<CString>,
    env: Vec<CString>,
    procs: CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    /// The errno of the step that failed, 0 while none has.
    error: AtomicI32,
}

/// Spawns `argv` inside the cgroup whose `cgroup.procs` is `procs`, as `user`, with `PATH`
/// set to `path` (and `HOME`, `USER`, `LOGNAME` to the user's; the rest of the environment
/// as it is): the same directories the compiler resolved process names through, so a bare
/// name runs the binary the policy was compiled for. Returns once the command was
/// executed, or with the error of the step that failed.
pub fn spawn(
    argv: &[OsString],
    procs: &Path,
    user: &SandboxUser,
    path: &[PathBuf],
) -> io::Result<Launched> {
    let prepared = prepare(argv, procs, user, path)?;
    let argv_ptrs = nul_terminated(&prepared.argv);
    let env_ptrs = nul_terminated(&prepared.env);
    let mut stack = vec![0u8; CHILD_STACK];
    // The stack grows down, from its 16-byte aligned end.
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK) & !15;
    let child = Child {
        prepared: &prepared,
        argv: argv_ptrs.as_ptr(),
        env: env_ptrs.as_ptr(),
    };
    let pid = {
        let _blocked = BlockedSignals::all()?;
        // SAFETY: `child_main` gets a pointer to `child`, which outlives the call: with
        // `CLONE_VFORK` this thread is suspended until the child has exec'd or exited. The
        // child runs on `stack`, which it alone uses, and touches nothing else of ours but
        // the `error` cell (see `child_main`).
        unsafe {
            libc::clone(
                child_main,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_NEWIPC | libc::SIGCHLD,
                (&raw const child).cast_mut().cast(),
            )
        }
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut launched = Launched { pid };
    match prepared.error.load(Ordering::Acquire) {
        0 => Ok(launched),
        errno => {
            launched.wait()?;
            Err(io::Error::from_raw_os_error(errno))
        }
    }
}

fn prepare(
    argv: &[OsString],
    procs: &Path,
    user: &SandboxUser,
    path: &[PathBuf],
) -> io::Result<Prepared> {
    let (program, _) = argv
        .split_first()
        .ok_or_else(|| io::Error::other("empty command"))?;
    let cstring = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a NUL byte in the command or its environment",
            )
        })
    };
    let search = std::env::join_paths(path).map_err(io::Error::other)?;
    let candidates = if program.as_bytes().contains(&b'/') {
        vec![cstring(program.as_bytes())?]
    } else {
        path.iter()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| cstring(dir.join(program).as_os_str().as_bytes()))
            .collect::<io::Result<_>>()?
    };
    if candidates.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let set: [(&str, &OsStr); 4] = [
        ("HOME", user.home.as_os_str()),
        ("USER", OsStr::new(&user.name)),
        ("LOGNAME", OsStr::new(&user.name)),
        ("PATH", &search),
    ];
    let env = std::env::vars_os()
        .filter(|(k, _)| !set.iter().any(|(name, _)| k == name))
        .map(|(k, v)| (k, v.into_vec()))
        .chain(
            set.iter()
                .map(|(k, v)| ((*k).into(), v.as_bytes().to_vec())),
        )
        .map(|(k, v)| {
            let mut line = k.into_vec();
            line.push(b'=');
            line.extend(v);
            cstring(&line)
        })
        .collect::<io::Result<_>>()?;
    Ok(Prepared {
        candidates,
        argv: argv
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<io::Result<_>>()?,
        env,
        procs: cstring(procs.as_os_str().as_bytes())?,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups: user.groups.iter().map(|g| g.as_raw()).collect(),
        error: AtomicI32::new(0),
    })
}

/// `strings` as a NULL-terminated array of pointers (into `strings`, which must outlive it).
fn nul_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// What `child_main` gets.
struct Child<'a> {
    prepared: &'a Prepared,
    argv: *const *const libc::c_char,
    env: *const *const libc::c_char,
}

/// Every signal blocked in this thread until dropped, when the mask before is restored.
struct BlockedSignals(libc::sigset_t);

impl BlockedSignals {
    fn all() -> io::Result<Self> {
        // SAFETY: `sigset_t` is plain data, initialised by `sigfillset`/`pthread_sigmask`.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut before: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&raw mut all);
            match libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut before) {
                0 => Ok(Self(before)),
                e => Err(io::Error::from_raw_os_error(e)),
            }
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `all`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &raw const self.0, std::ptr::null_mut());
        }
    }
}

/// The child, on its own stack in the parent's memory: only system calls on what the
/// parent prepared. On a failure it records the errno and exits 127.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` `spawn` passed, alive while the parent is suspended.
    let child = unsafe { &*arg.cast::<Child<'_>>() };
    let p = child.prepared;
    // SAFETY: raw system calls and async-signal-safe libc calls on data `p` holds; the
    // pointer arrays are NULL-terminated and point into `p`'s strings.
    unsafe {
        let fail = |errno: libc::c_int| -> libc::c_int {
            p.error.store(errno.max(1), Ordering::Release);
            libc::_exit(127)
        };
        let errno = || *libc::__errno_location();
        // Caught signals back to their defaults (a handler of the parent must never run
        // here), and `SIGPIPE`, which Rust ignores; then the command's empty mask.
        for signal in 1..=libc::SIGRTMAX() {
            let mut action: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &raw mut action) == 0
                && (signal == libc::SIGPIPE
                    || (action.sa_sigaction != libc::SIG_IGN
                        && action.sa_sigaction != libc::SIG_DFL))
            {
                action.sa_sigaction = libc::SIG_DFL;
                action.sa_flags = 0;
                libc::sigaction(signal, &raw const action, std::ptr::null_mut());
            }
        }
        let fd = libc::open(p.procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return fail(errno());
        }
        if libc::syscall(libc::SYS_setgroups, p.groups.len(), p.groups.as_ptr()) != 0
            || libc::syscall(libc::SYS_setresgid, p.gid, p.gid, p.gid) != 0
            || libc::syscall(libc::SYS_setresuid, p.uid, p.uid, p.uid) != 0
        {
            return fail(errno());
        }
        if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            return fail(errno());
        }
        libc::close(fd);
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return fail(errno());
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut());
        // As `execvp` searches: the first candidate that executes; else `EACCES` if one
        // was found but not executable, else the last error.
        let mut error = libc::ENOENT;
        let mut denied = false;
        for candidate in &p.candidates {
            libc::execve(candidate.as_ptr(), child.argv, child.env);
            error = errno();
            match error {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR => {}
                _ => break,
            }
        }
        fail(if denied && matches!(error, libc::ENOENT | libc::ENOTDIR) {
            libc::EACCES
        } else {
            error
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> SandboxUser {
        SandboxUser {
            name: "dev".into(),
            uid: nix::unistd::Uid::from_raw(1000),
            gid: nix::unistd::Gid::from_raw(1000),
            groups: vec![
                nix::unistd::Gid::from_raw(1000),
                nix::unistd::Gid::from_raw(27),
            ],
            home: "/home/dev".into(),
        }
    }

    #[test]
    fn a_bare_name_is_looked_up_in_the_sandbox_path_only() {
        let argv = [OsString::from("python3"), OsString::from("-V")];
        let path = [
            PathBuf::from("/usr/local/bin"),
            PathBuf::new(),
            PathBuf::from("/usr/bin"),
        ];
        let p = prepare(&argv, Path::new("/cg/cgroup.procs"), &dev(), &path).unwrap();
        let candidates: Vec<&[u8]> = p.candidates.iter().map(CString::as_bytes).collect();
        assert_eq!(
            candidates,
            [&b"/usr/local/bin/python3"[..], &b"/usr/bin/python3"[..]]
        );
        assert_eq!(p.argv[0].as_bytes(), b"python3", "argv[0] as given");
        let p = prepare(
            &[OsString::from("./run.sh")],
            Path::new("/cg/cgroup.procs"),
            &dev(),
            &path,
        )
        .unwrap();
        assert_eq!(p.candidates.len(), 1);
        assert_eq!(
            p.candidates[0].as_bytes(),
            b"./run.sh",
            "a path is not searched"
        );
        let none = prepare(&[OsString::from("ls")], Path::new("/p"), &dev(), &[]);
        assert_eq!(none.unwrap_err().raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn the_environment_gets_the_users_names_and_the_sandbox_path_once() {
        let path = [PathBuf::from("/usr/bin"), PathBuf::from("/bin")];
        let p = prepare(&[OsString::from("true")], Path::new("/p"), &dev(), &path).unwrap();
        let env: Vec<String> = p
            .env
            .iter()
            .map(|e| e.to_str().unwrap().to_owned())
            .collect();
        for (name, value) in [
            ("HOME", "/home/dev"),
            ("USER", "dev"),
            ("LOGNAME", "dev"),
            ("PATH", "/usr/bin:/bin"),
        ] {
            let lines: Vec<&String> = env
                .iter()
                .filter(|e| e.starts_with(&format!("{name}=")))
                .collect();
            assert_eq!(lines, [&format!("{name}={value}")], "{name}");
        }
        assert_eq!(
            (p.uid, p.gid, p.groups.as_slice()),
            (1000, 1000, &[1000, 27][..])
        );
    }

    #[test]
    fn a_nul_byte_is_refused_before_any_process_is_made() {
        let argv = [OsString::from("echo"), OsString::from_vec(b"a\0b".to_vec())];
        let e = prepare(&argv, Path::new("/p"), &dev(), &[PathBuf::from("/bin")]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
