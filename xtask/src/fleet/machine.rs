//! One fleet VM: a qcow2 overlay on the cached base image, the Debian kernel booted
//! directly with the fleet initramfs, systemd as init, sshd reachable on a loopback port
//! (QEMU user-mode networking). Killed and its overlay removed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::initramfs::{HOST_PARAM, KEY_PARAM};
use crate::setup::KernelTree;
use crate::util;
use crate::vm;

/// Everything the guests share: the kernel, the initramfs, the base image, root's key.
pub struct Boot<'a> {
    pub tree: &'a KernelTree,
    pub initrd: &'a Path,
    pub base: &'a Path,
    /// Root's public key (`ssh-ed25519 AAAA… comment`).
    pub public_key: &'a str,
    /// The private key the harness logs in with.
    pub private_key: &'a Path,
    /// Where the overlays and console logs go.
    pub dir: &'a Path,
}

pub struct Machine {
    pub name: String,
    pub ssh_port: u16,
    private_key: PathBuf,
    overlay: PathBuf,
    pub console_log: PathBuf,
    child: Child,
    started: Instant,
}

impl Machine {
    /// Starts the VM (returns once QEMU runs; see [`Machine::wait_for_ssh`]).
    pub fn start(boot: &Boot<'_>, name: &str) -> Result<Self> {
        let overlay = boot.dir.join(format!("{name}.qcow2"));
        let _ = std::fs::remove_file(&overlay);
        util::output(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                .arg(boot.base)
                .arg(&overlay),
        )
        .context("creating the VM's overlay")?;
        let ssh_port = free_port()?;
        let console_log = boot.dir.join(format!("{name}.console.log"));
        let (kind, body) = boot
            .public_key
            .split_once(' ')
            .context("the public key has no type")?;
        let body = body.split_whitespace().next().unwrap_or_default();
        let append = format!(
            "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init {HOST_PARAM}={name} {KEY_PARAM}={kind}:{body}"
        );
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1"])
            .args(["-display", "none", "-vga", "none", "-monitor", "none"])
            .arg("-serial")
            .arg(format!("file:{}", console_log.display()))
            .arg("-kernel")
            .arg(boot.tree.vmlinux.as_ref().unwrap_or(&boot.tree.vmlinuz))
            .arg("-initrd")
            .arg(boot.initrd)
            .args(["-append", &append])
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
                overlay.display()
            ))
            .arg("-nic")
            .arg(format!(
                "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        vm::die_with_parent(&mut qemu);
        let child = qemu
            .spawn()
            .with_context(|| format!("could not start `{}`", util::describe(&qemu)))?;
        Ok(Self {
            name: name.to_owned(),
            ssh_port,
            private_key: boot.private_key.to_owned(),
            overlay,
            console_log,
            child,
            started: Instant::now(),
        })
    }

    /// An `ssh` command logging in as root, running `command` (a shell line).
    pub fn ssh(&self, command: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(ssh_options(&self.private_key))
            .arg("-p")
            .arg(self.ssh_port.to_string())
            .arg("root@127.0.0.1")
            .arg(command)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `command` over SSH; its exit code, stdout and stderr.
    pub fn run(&self, command: &str) -> Result<(i32, String, String)> {
        let out = util::capture(&mut self.ssh(command))?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Runs `command` over SSH and fails unless it exits 0; its stdout.
    pub fn check(&self, command: &str) -> Result<String> {
        let (code, stdout, stderr) = self.run(command)?;
        if code != 0 {
            bail!(
                "{}: `{command}` exited with {code}: {}",
                self.name,
                stderr.trim()
            );
        }
        Ok(stdout)
    }

    /// Waits until root can log in; returns the time from QEMU's start.
    pub fn wait_for_ssh(&mut self, timeout: Duration) -> Result<Duration> {
        let deadline = self.started + timeout;
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for qemu")? {
                bail!(
                    "{}: QEMU exited ({status}) before SSH came up; console: {}",
                    self.name,
                    self.console_tail()
                );
            }
            let mut probe = self.ssh("true");
            probe.args(["-o", "ConnectTimeout=10"]);
            if util::capture(&mut probe).is_ok_and(|o| o.status.success()) {
                return Ok(self.started.elapsed());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{}: no SSH login within {} s; console: {}",
                    self.name,
                    timeout.as_secs(),
                    self.console_tail()
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The last lines of the guest's console, for error messages.
    pub fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.console_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        format!(
            "{}:\n  | {}",
            self.console_log.display(),
            tail.join("\n  | ")
        )
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.overlay);
    }
}

/// SSH options for throwaway guests: our key only, no host key checks (every guest is new),
/// no prompts.
pub fn ssh_options(private_key: &Path) -> Vec<String> {
    vec![
        "-i".into(),
        private_key.display().to_string(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ]
}

/// A loopback TCP port nobody listens on now (QEMU binds it right after).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}
