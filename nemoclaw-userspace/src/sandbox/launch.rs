//! Starts the sandboxed command: the child enters an IPC namespace of its own, drops to the
//! sandbox user, moves itself into the sandbox cgroup, sets `no_new_privs`, then execs, so
//! the exec itself is already judged.
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

use std::{
    ffi::{CString, OsString},
    io,
    os::unix::{ffi::OsStrExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command},
};

use super::user::SandboxUser;

/// Spawns `argv` inside the cgroup whose `cgroup.procs` is `procs`, as `user`, with `PATH`
/// set to `path`: the same directories the compiler resolved process names through, so a
/// bare name runs the binary the policy was compiled for.
pub fn spawn(
    argv: &[OsString],
    procs: &Path,
    user: &SandboxUser,
    path: &[PathBuf],
) -> io::Result<Child> {
    let (program, arguments) = argv
        .split_first()
        .ok_or_else(|| io::Error::other("empty command"))?;
    let procs = CString::new(procs.as_os_str().as_bytes())?;
    let uid = user.uid.as_raw();
    let gid = user.gid.as_raw();
    let groups: Vec<libc::gid_t> = user.groups.iter().map(|g| g.as_raw()).collect();
    let mut cmd = Command::new(program);
    cmd.args(arguments)
        .env("HOME", &user.home)
        .env("USER", &user.name)
        .env("LOGNAME", &user.name)
        .env(
            "PATH",
            std::env::join_paths(path).map_err(io::Error::other)?,
        );
    // SAFETY: the closure only makes async-signal-safe syscalls on data prepared above.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWIPC) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setresgid(gid, gid, gid) != 0
                || libc::setresuid(uid, uid, uid) != 0
            {
                let err = io::Error::last_os_error();
                libc::close(fd);
                return Err(err);
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(err);
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}
