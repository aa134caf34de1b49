//! Detaching a process's programs without waiting for the kernel.
//!
//! Closing the last descriptor of an LSM program's link detaches it from its hook, and the
//! kernel waits there for an RCU-tasks grace period, one link at a time (the links of all
//! hooks share `ftrace`'s direct-call mutex). A policy's programs then take seconds to
//! detach: 0.12 to 0.23 s per link under QEMU TCG (6.1 and 6.12), about 3.4 s for the
//! privilege control's programs on 6.1 and 5.5 s on 6.12. A standalone `nemoclaw run` made
//! its caller wait that long after the command had ended.
//!
//! [`hand_over`] forks a child that holds copies of every descriptor until the caller
//! closes its own (which is then quick: the child's copies keep the links) and drops the
//! returned pipe end; the child then exits, and its exit detaches the programs while the
//! caller goes on. The sandboxed tasks are gone by then, so what still runs the programs
//! for those seconds is only their sandbox lookup, which finds nothing.

use std::os::fd::{AsRawFd as _, OwnedFd};

use nix::unistd::{ForkResult, fork, pipe};

/// Forks the holder. The caller closes the descriptors it wants detached in the background,
/// then drops the returned write end: the holder then exits. `Err` (no pipe or no child):
/// the caller's own closes detach, as they would have without this.
pub fn hand_over() -> nix::Result<OwnedFd> {
    let (read_end, write_end) = pipe()?;
    // SAFETY: the child only makes async-signal-safe calls (close, read, _exit): the parent
    // may have other threads, whose locks a copy of its memory can hold.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let (read_fd, write_fd) = (read_end.as_raw_fd(), write_end.as_raw_fd());
            // SAFETY: raw system calls on descriptors this process holds; no allocation,
            // no lock, no destructor runs before `_exit`.
            unsafe {
                // Not the caller's output: whoever reads it must not wait for this child.
                libc::close(0);
                libc::close(1);
                libc::close(2);
                libc::close(write_fd);
                let mut byte = 0u8;
                // Until the caller drops its write end (or exits): end of file.
                while libc::read(read_fd, (&raw mut byte).cast(), 1) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
                libc::_exit(0)
            }
        }
        ForkResult::Parent { .. } => {
            drop(read_end);
            Ok(write_end)
        }
    }
}
