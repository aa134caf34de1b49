//! The measured operations of `nemoclaw-bench op` and the files they need: the work
//! directory, the measured path, and the rule targets every system's rule set names (so
//! NemoClaw, Landlock and AppArmor are given the same N rules).
//!
//! Layout under the work directory `W` = `--dir`/`nemoclaw-bench-PID` (tmpfs):
//! - the measured file of `open-read-dK`/`open-write-dK`: K path components below `--dir`
//!   (`W` counts as one): `W/f.txt` at depth 2, `W/p1/.../p10/f.txt` at depth 12;
//! - `create-unlink`: `W/c/new.txt`, created and unlinked (the rule allows `W/c`);
//! - `stat`: `W/s/f.txt`;
//! - the N-1 other rules: directories `W/r/dI` (created only for systems whose rules need
//!   existing files: Landlock), or for `exec` N-1 distinct executables `W/bin/bI`.

use std::{
    ffi::CString,
    fs::{self, OpenOptions},
    io::{self, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    os::{fd::AsRawFd as _, unix::fs::OpenOptionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

/// The static binary the exec workload runs (Debian's busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

/// One benchmarked operation (`--workload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `open(O_RDONLY)` + `close` of a tmpfs file 2 components below `--dir` (`open` is the
    /// old name).
    #[value(name = "open-read-d2", alias = "open")]
    OpenReadD2,
    /// The same, 6 components deep.
    #[value(name = "open-read-d6")]
    OpenReadD6,
    /// The same, 12 components deep.
    #[value(name = "open-read-d12")]
    OpenReadD12,
    /// `open(O_WRONLY)` + `close`, 2 components deep.
    #[value(name = "open-write-d2")]
    OpenWriteD2,
    /// The same, 6 components deep.
    #[value(name = "open-write-d6")]
    OpenWriteD6,
    /// The same, 12 components deep.
    #[value(name = "open-write-d12")]
    OpenWriteD12,
    /// `open(O_CREAT|O_EXCL|O_WRONLY)` + `close` + `unlink`.
    CreateUnlink,
    /// `stat` of a tmpfs file.
    Stat,
    /// fork + `execve("/bin/busybox", ["true"])` + wait (LSM `bprm_check_security`).
    Exec,
    /// TCP connect to a loopback listener, accept, close (cgroup `connect4`).
    Tcp,
    /// Unconnected UDP `sendto` to a loopback socket (cgroup `sendmsg4`).
    Udp,
    /// Parse and compile a generated `--rules`-rule policy (no kernel involved).
    Compile,
}

/// What a file scenario's measured rule must allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Opening the file for reading (and `stat`).
    Read,
    /// Opening the file for writing.
    Write,
    /// Creating and removing files in the directory.
    CreateRemove,
    /// Executing the file.
    Execute,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenReadD2 => "open-read-d2",
            Self::OpenReadD6 => "open-read-d6",
            Self::OpenReadD12 => "open-read-d12",
            Self::OpenWriteD2 => "open-write-d2",
            Self::OpenWriteD6 => "open-write-d6",
            Self::OpenWriteD12 => "open-write-d12",
            Self::CreateUnlink => "create-unlink",
            Self::Stat => "stat",
            Self::Exec => "exec",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Compile => "compile",
        }
    }

    /// File and exec scenarios (LSM hooks; measured in the VM, on tmpfs).
    pub fn is_lsm(self) -> bool {
        !matches!(self, Self::Tcp | Self::Udp | Self::Compile)
    }

    /// Path components of the measured file below `--dir` (open scenarios).
    fn depth(self) -> Option<usize> {
        match self {
            Self::OpenReadD2 | Self::OpenWriteD2 => Some(2),
            Self::OpenReadD6 | Self::OpenWriteD6 => Some(6),
            Self::OpenReadD12 | Self::OpenWriteD12 => Some(12),
            _ => None,
        }
    }

    /// What the measured rule allows (`None`: network and compile).
    pub fn access(self) -> Option<Access> {
        match self {
            Self::OpenReadD2 | Self::OpenReadD6 | Self::OpenReadD12 | Self::Stat => {
                Some(Access::Read)
            }
            Self::OpenWriteD2 | Self::OpenWriteD6 | Self::OpenWriteD12 => Some(Access::Write),
            Self::CreateUnlink => Some(Access::CreateRemove),
            Self::Exec => Some(Access::Execute),
            Self::Tcp | Self::Udp | Self::Compile => None,
        }
    }
}

/// A private directory for the workload's files; removed when dropped (best effort: a
/// process confined by Landlock or AppArmor may no longer remove it; `cargo xtask bench`
/// removes what is left).
pub struct WorkDir {
    pub path: PathBuf,
}

impl WorkDir {
    pub fn create(base: &Path, scenario: Scenario) -> anyhow::Result<Self> {
        let path = base.join(format!("nemoclaw-bench-{}", std::process::id()));
        if scenario.is_lsm() {
            let fs_type = nix::sys::statfs::statfs(base)
                .with_context(|| format!("statfs {}", base.display()))?;
            if fs_type.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
                bail!(
                    "{} is not a tmpfs: file costs there would swamp the hook's (pass --dir)",
                    base.display()
                );
            }
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The path the measured rule names: the file (open, stat, exec) or the directory
    /// (create-unlink).
    pub fn measured(&self, scenario: Scenario) -> PathBuf {
        match scenario {
            Scenario::CreateUnlink => self.path.join("c"),
            Scenario::Stat => self.path.join("s").join("f.txt"),
            // The real path (`/bin` is a link to `/usr/bin` on merged-/usr systems):
            // AppArmor matches the resolved path.
            Scenario::Exec => fs::canonicalize(BUSYBOX).unwrap_or_else(|_| BUSYBOX.into()),
            s => {
                let mut p = self.path.clone();
                for i in 1..s.depth().unwrap_or(2).saturating_sub(1) {
                    p.push(format!("p{i}"));
                }
                p.join("f.txt")
            }
        }
    }

    /// The i-th of the other rules' targets (not created here: see [`WorkDir::make_targets`]).
    pub fn target(&self, scenario: Scenario, i: usize) -> PathBuf {
        if scenario == Scenario::Exec {
            self.path.join("bin").join(format!("b{i}"))
        } else {
            self.path.join("r").join(format!("d{i}"))
        }
    }

    /// Creates the `count` other rule targets: distinct executables (distinct inodes:
    /// copies, not hard links) for exec, empty directories otherwise.
    pub fn make_targets(&self, scenario: Scenario, count: usize) -> anyhow::Result<()> {
        for i in 0..count {
            let path = self.target(scenario, i);
            if i == 0
                && let Some(parent) = path.parent()
            {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            if scenario == Scenario::Exec {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o755)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                file.write_all(b"#!/bin/true\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            } else {
                fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
            }
        }
        Ok(())
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// One benchmarked operation and what it needs.
pub enum Operation {
    Open {
        path: CString,
        flags: libc::c_int,
    },
    CreateUnlink {
        path: CString,
    },
    Stat {
        path: CString,
    },
    Exec,
    Tcp {
        listener: TcpListener,
        addr: SocketAddr,
    },
    Udp {
        /// Created by the first operation, inside the sandbox: cgroup `sock_addr` programs
        /// judge a socket by the cgroup it was created in, not by the caller's.
        sender: Option<UdpSocket>,
        receiver: UdpSocket,
        addr: SocketAddr,
        sent: u64,
    },
}

fn c_path(path: &Path) -> anyhow::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes()).context("file path")
}

fn write_file(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(path, b"nemoclaw bench\n").with_context(|| format!("writing {}", path.display()))
}

impl Operation {
    pub fn prepare(scenario: Scenario, work: &WorkDir) -> anyhow::Result<Self> {
        let loopback = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        let measured = work.measured(scenario);
        Ok(match scenario {
            Scenario::OpenReadD2
            | Scenario::OpenReadD6
            | Scenario::OpenReadD12
            | Scenario::OpenWriteD2
            | Scenario::OpenWriteD6
            | Scenario::OpenWriteD12 => {
                write_file(&measured)?;
                let flags = if scenario.access() == Some(Access::Write) {
                    libc::O_WRONLY
                } else {
                    libc::O_RDONLY
                };
                Self::Open {
                    path: c_path(&measured)?,
                    flags: flags | libc::O_CLOEXEC,
                }
            }
            Scenario::CreateUnlink => {
                fs::create_dir_all(&measured)
                    .with_context(|| format!("creating {}", measured.display()))?;
                Self::CreateUnlink {
                    path: c_path(&measured.join("new.txt"))?,
                }
            }
            Scenario::Stat => {
                write_file(&measured)?;
                Self::Stat {
                    path: c_path(&measured)?,
                }
            }
            Scenario::Exec => {
                if !Path::new(BUSYBOX).is_file() {
                    bail!("{BUSYBOX} is missing: install busybox-static");
                }
                Self::Exec
            }
            Scenario::Tcp => {
                let listener =
                    TcpListener::bind(loopback).context("binding a loopback listener")?;
                let addr = listener.local_addr().context("listener address")?;
                Self::Tcp { listener, addr }
            }
            Scenario::Udp => {
                let receiver =
                    UdpSocket::bind(loopback).context("binding a loopback UDP socket")?;
                receiver
                    .set_nonblocking(true)
                    .context("non-blocking receiver")?;
                let addr = receiver.local_addr().context("receiver address")?;
                Self::Udp {
                    sender: None,
                    receiver,
                    addr,
                    sent: 0,
                }
            }
            Scenario::Compile => bail!("compile is not an in-kernel operation"),
        })
    }

    pub fn once(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Open { path, flags } => {
                // Explicit flags: `O_PATH` would skip `security_file_open` entirely.
                // SAFETY: a NUL-terminated path and plain flags; the fd is closed below.
                let fd = unsafe { libc::open(path.as_ptr(), *flags) };
                if fd < 0 {
                    return Err(io::Error::last_os_error()).context("open");
                }
                // SAFETY: we own `fd`.
                unsafe { libc::close(fd) };
            }
            Self::CreateUnlink { path } => {
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
                // SAFETY: a NUL-terminated path, plain flags and a mode; closed below.
                let fd = unsafe { libc::open(path.as_ptr(), flags, 0o600) };
                if fd < 0 {
                    return Err(io::Error::last_os_error()).context("create");
                }
                // SAFETY: we own `fd`; the path is NUL-terminated.
                unsafe { libc::close(fd) };
                // SAFETY: as above.
                if unsafe { libc::unlink(path.as_ptr()) } != 0 {
                    return Err(io::Error::last_os_error()).context("unlink");
                }
            }
            Self::Stat { path } => {
                let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
                // SAFETY: a NUL-terminated path and a buffer of the right type.
                if unsafe { libc::stat(path.as_ptr(), st.as_mut_ptr()) } != 0 {
                    return Err(io::Error::last_os_error()).context("stat");
                }
            }
            Self::Exec => {
                let status = Command::new(BUSYBOX)
                    .arg("true")
                    .stdin(Stdio::inherit())
                    .status()
                    .with_context(|| format!("running {BUSYBOX} true"))?;
                if !status.success() {
                    bail!("{BUSYBOX} true: {status}");
                }
            }
            Self::Tcp { listener, addr } => {
                let client = TcpStream::connect(*addr).context("connect")?;
                let (server, _) = listener.accept().context("accept")?;
                // Reset instead of FIN: no TIME_WAIT, so the ephemeral ports never run out.
                set_linger_zero(&client)?;
                drop(client);
                drop(server);
            }
            Self::Udp {
                sender,
                receiver,
                addr,
                sent,
            } => {
                let sender = match sender {
                    Some(sender) => sender,
                    None => sender.insert(
                        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
                            .context("binding the UDP sender")?,
                    ),
                };
                sender.send_to(b"nemoclaw bench", *addr).context("sendto")?;
                *sent += 1;
                if *sent % 64 == 0 {
                    let mut buf = [0u8; 64];
                    while receiver.recv(&mut buf).is_ok() {}
                }
            }
        }
        Ok(())
    }
}

fn set_linger_zero(stream: &TcpStream) -> anyhow::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            libc::socklen_t::try_from(size_of::<libc::linger>()).unwrap_or(8),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("SO_LINGER");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work() -> WorkDir {
        WorkDir {
            path: PathBuf::from("/nonexistent/nemoclaw-bench-1"),
        }
    }

    #[test]
    fn measured_paths_have_their_depth_below_the_base() {
        let w = work();
        let base_parts = Path::new("/nonexistent").components().count();
        for (s, depth) in [
            (Scenario::OpenReadD2, 2),
            (Scenario::OpenWriteD6, 6),
            (Scenario::OpenReadD12, 12),
        ] {
            let p = w.measured(s);
            assert_eq!(
                p.components().count() - base_parts,
                depth,
                "{}",
                p.display()
            );
            assert!(p.ends_with("f.txt"));
        }
        assert!(w.measured(Scenario::Exec).ends_with("bin/busybox"));
        let _ = std::mem::ManuallyDrop::new(w);
    }

    #[test]
    fn targets_are_distinct() {
        let w = std::mem::ManuallyDrop::new(work());
        assert_ne!(
            w.target(Scenario::Stat, 1),
            w.target(Scenario::Stat, 2),
            "distinct"
        );
        assert!(w.target(Scenario::Exec, 3).ends_with("bin/b3"));
    }
}
