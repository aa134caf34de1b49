//! A private `nemoclaw` daemon for one measurement (`reload`, `macro`, `start`): its files
//! in a directory of ours, its own pin directory and cgroup root; on drop whatever runs in
//! its sandboxes is killed (a stopped daemon leaves its sandboxes running, by design), then
//! it is stopped (SIGTERM), unpinned and its cgroups removed.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub struct Daemon {
    child: Child,
    /// The control socket, `dir/nemoclaw.sock`.
    pub socket: PathBuf,
    /// The audit trail, `dir/daemon-audit.jsonl` (apart from a sandbox's own copy).
    pub audit: PathBuf,
    pin_dir: PathBuf,
    cgroup_root: String,
}

impl Daemon {
    /// Starts `exe daemon` with its files under `dir` (pins and cgroups named after `tag`
    /// and this process) and waits until its socket answers (the programs load slowly under
    /// emulation: up to five minutes).
    pub fn start(exe: &Path, dir: &Path, tag: &str) -> anyhow::Result<Self> {
        let name = format!("nemoclaw-bench-{tag}-{}", std::process::id());
        let socket = dir.join("nemoclaw.sock");
        let audit = dir.join("daemon-audit.jsonl");
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/{name}"));
        let child = Command::new(exe)
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .arg("--pin-dir")
            .arg(&pin_dir)
            .arg("--state")
            .arg(dir.join("state.json"))
            .arg("--audit-log")
            .arg(&audit)
            .args(["--cgroup-root", &name])
            .stderr(Stdio::null())
            .spawn()
            .context("starting the daemon")?;
        let mut daemon = Self {
            child,
            socket,
            audit,
            pin_dir,
            cgroup_root: name,
        };
        let deadline = Instant::now() + Duration::from_mins(5);
        while std::os::unix::net::UnixStream::connect(&daemon.socket).is_err() {
            if let Some(status) = daemon.child.try_wait()? {
                bail!("the daemon exited: {status}");
            }
            if Instant::now() > deadline {
                bail!("the daemon did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let root = nemoclaw::sandbox::cgroup::cgroup2_mount()
            .ok()
            .map(|mount| mount.join(&self.cgroup_root));
        let sandboxes = || {
            root.iter()
                .flat_map(std::fs::read_dir)
                .flatten()
                .flatten()
                .map(|entry| entry.path())
        };
        for sandbox in sandboxes() {
            let _ = std::fs::write(sandbox.join("cgroup.kill"), "1");
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0)),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        for sandbox in sandboxes() {
            let _ = std::fs::remove_dir(sandbox);
        }
        if let Some(root) = &root {
            let _ = std::fs::remove_dir(root);
        }
    }
}
