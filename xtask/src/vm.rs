//! `cargo xtask vm`: boots a Debian kernel under QEMU (TCG) with the host's `/` shared
//! read-only over 9p, and runs one command as root in a chroot of it.
//!
//! The command reaches the guest as a shell script under `target/nemoclaw-vm/` (the guest
//! sees the host tree at the same path), named on the kernel command line. The guest's
//! `/init` prints a marker with the command's exit code before powering off; we parse it.

pub(crate) mod initramfs;

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::setup::{self, KernelTree, KernelVersion};
use crate::util;

/// Set to 1 to see the firmware's and kernel's boot messages (normally hidden unless the
/// guest fails before running the command).
const BOOT_LOG_ENV: &str = "XTASK_VM_BOOT_LOG";

/// How long we wait for QEMU to exit after the guest reported its exit code.
const POWEROFF_GRACE: Duration = Duration::from_secs(20);

#[derive(Args)]
pub struct VmArgs {
    /// Which Debian kernel to boot.
    #[arg(long, value_enum, default_value = "6.12")]
    kernel: KernelVersion,
    /// Do not build nemoclaw-userspace first.
    #[arg(long)]
    no_build: bool,
    /// Kill the VM after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// An extra kernel parameter (repeatable), e.g. `--kernel-arg
    /// lsm=landlock,lockdown,yama,integrity,apparmor` for Ubuntu's LSM list (BPF LSM built in,
    /// not active).
    #[arg(long = "kernel-arg")]
    kernel_args: Vec<String>,
    /// The command to run in the guest (default: an interactive shell, if stdin is a terminal).
    #[arg(last = true)]
    cmd: Vec<String>,
}

pub fn main(args: &VmArgs) -> Result<ExitCode> {
    let interactive = args.cmd.is_empty();
    if interactive && !std::io::stdin().is_terminal() {
        bail!("no command given and stdin is not a terminal: pass one after `--`");
    }
    setup::ensure(&[args.kernel])?;
    if !args.no_build {
        util::build_userspace()?;
    }
    let guest = Guest {
        kernel: args.kernel,
        argv: args.cmd.clone(),
        cwd: util::workspace_root(),
        env: Vec::new(),
        kernel_args: args.kernel_args.clone(),
        timeout: Duration::from_secs(args.timeout),
        interactive,
    };
    let code = run(&guest, &mut |line| println!("{line}"))?;
    Ok(util::exit_code(code))
}

/// One command to run as root in a fresh VM.
pub struct Guest {
    pub kernel: KernelVersion,
    /// The command; empty means a login shell (with `interactive`).
    pub argv: Vec<String>,
    /// The working directory in the guest (host paths are the same there).
    pub cwd: PathBuf,
    /// Extra environment, on top of `PATH`, `HOME` and the host's `NEMOCLAW_*`.
    pub env: Vec<(String, String)>,
    /// Extra kernel parameters (appended after ours; the kernel takes the last of a repeated
    /// one).
    pub kernel_args: Vec<String>,
    pub timeout: Duration,
    /// Connect the guest's console to our terminal (stdin raw) instead of `/dev/null`.
    pub interactive: bool,
}

/// The guest kernel's command line: console, verbosity (`show_boot`: the whole boot log),
/// the script and nonce for the initramfs, and `guest.kernel_args`.
fn kernel_command_line(
    guest: &Guest,
    show_boot: bool,
    script_path: &str,
    nonce: &str,
) -> Result<String> {
    let verbosity = if show_boot {
        "loglevel=7 printk.time=1"
    } else {
        "quiet loglevel=0"
    };
    let mut append = format!(
        "console=ttyS0 {verbosity} panic=-1 rdinit=/init nemoclaw_script={script_path} nemoclaw_nonce={nonce}"
    );
    if guest.interactive {
        append.push_str(" nemoclaw_interactive=1");
    }
    for arg in &guest.kernel_args {
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            bail!("a kernel argument must be one word without whitespace: {arg:?}");
        }
        append.push(' ');
        append.push_str(arg);
    }
    Ok(append)
}

/// Boots the VM, runs the command, passes each line of its console output (without `\r`)
/// to `on_line`, and returns the command's exit code.
pub fn run(guest: &Guest, on_line: &mut dyn FnMut(&str)) -> Result<i32> {
    let tree = setup::ensure_kernel(guest.kernel)?;
    let initrd = initramfs::ensure(&tree)?;
    let nonce = nonce();
    let script = GuestScript::write(guest, &nonce)?;
    let script_path = script.0.to_str().context("script path is not UTF-8")?;
    if script_path.contains(char::is_whitespace) {
        bail!("the workspace path must not contain whitespace: {script_path}");
    }
    let show_boot = std::env::var_os(BOOT_LOG_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    let append = kernel_command_line(guest, show_boot, script_path, &nonce)?;

    let mut qemu = qemu_command(&tree, &initrd, &append, guest.interactive);
    let started = Instant::now();
    let mut child = qemu
        .spawn()
        .with_context(|| format!("could not start `{}`", util::describe(&qemu)))?;
    let stdout = child.stdout.take().context("qemu stdout not captured")?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });

    let exit_prefix = format!("{}{nonce}:", initramfs::EXIT_MARKER_PREFIX);
    let mut console = Console {
        interactive: guest.interactive,
        show_boot,
        started: false,
        started_at: None,
        boot_log: Vec::new(),
        pending: Vec::new(),
        exit_code: None,
        exit_prefix,
    };
    let deadline = started + guest.timeout;
    loop {
        let wait = if guest.interactive {
            Duration::from_hours(1)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match rx.recv_timeout(wait) {
            Ok(chunk) => {
                console.feed(&chunk, on_line);
                if console.exit_code.is_some() {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if guest.interactive => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill(&mut child);
                console.dump_boot_log();
                bail!(
                    "the VM ({}) did not finish within {} s; killed it",
                    guest.kernel,
                    guest.timeout.as_secs()
                );
            }
        }
    }
    console.flush(on_line);
    let qemu_status = wait_with_grace(&mut child, POWEROFF_GRACE)?;
    if let Some(code) = console.exit_code {
        eprintln!(
            "xtask vm: guest ({} {}) finished in {:.1} s (boot {:.1} s) with exit code {code}",
            guest.kernel,
            tree.release,
            started.elapsed().as_secs_f64(),
            console
                .started_at
                .map_or(0.0, |t| t.duration_since(started).as_secs_f64())
        );
        return Ok(code);
    }
    console.dump_boot_log();
    bail!(
        "the VM ({}) stopped without reporting an exit code (kernel panic or init failure?); qemu: {}",
        guest.kernel,
        qemu_status.map_or_else(
            || "killed after the grace period".to_string(),
            |s| s.to_string()
        )
    )
}

/// Splits the console stream into lines, hides the boot noise, and finds the exit marker.
struct Console {
    interactive: bool,
    /// Print the boot output live instead of only on failure.
    show_boot: bool,
    /// Whether `/init` printed the start marker (everything before is firmware/boot noise).
    started: bool,
    /// When the start marker arrived (the boot took until then).
    started_at: Option<Instant>,
    boot_log: Vec<String>,
    pending: Vec<u8>,
    exit_code: Option<i32>,
    exit_prefix: String,
}

impl Console {
    fn feed(&mut self, chunk: &[u8], on_line: &mut dyn FnMut(&str)) {
        if self.interactive && self.started {
            // A shell prompt has no newline: pass bytes through as they come. Keep a copy of
            // the current line to spot the exit marker.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(chunk);
            let _ = out.flush();
        }
        // Only new bytes are searched for a newline: a long line (a test's huge panic message)
        // arriving in many chunks must not be rescanned from its start each time.
        let mut from = self.pending.len();
        self.pending.extend_from_slice(chunk);
        while let Some(rel) = self.pending[from..].iter().position(|&b| b == b'\n') {
            let pos = from + rel;
            from = 0;
            let raw: Vec<u8> = self.pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw).replace('\r', "");
            let line = line.trim_end_matches('\n');
            self.line(line, on_line);
            if self.exit_code.is_some() {
                return;
            }
        }
    }

    fn line(&mut self, line: &str, on_line: &mut dyn FnMut(&str)) {
        if let Some(pos) = line.find(&self.exit_prefix) {
            let code = line[pos + self.exit_prefix.len()..].trim();
            self.exit_code = Some(code.parse().unwrap_or(-1));
            // The command's output may lack a final newline; keep what precedes the marker.
            let before = &line[..pos];
            if !before.is_empty() && self.started && !self.interactive {
                on_line(before);
            }
            return;
        }
        if !self.started {
            if line.contains(initramfs::START_MARKER) {
                self.started = true;
                self.started_at = Some(Instant::now());
            } else {
                if self.show_boot {
                    eprintln!("boot| {line}");
                }
                self.boot_log.push(line.to_string());
            }
            return;
        }
        if !self.interactive {
            on_line(line);
        }
    }

    fn flush(&mut self, on_line: &mut dyn FnMut(&str)) {
        if !self.pending.is_empty() && self.started && !self.interactive {
            let rest = String::from_utf8_lossy(&self.pending).replace('\r', "");
            on_line(&rest);
        }
        self.pending.clear();
    }

    fn dump_boot_log(&self) {
        if !self.started && !self.boot_log.is_empty() {
            eprintln!("xtask vm: console output before the guest command started:");
            for line in &self.boot_log {
                eprintln!("  | {line}");
            }
        }
    }
}

/// The QEMU invocation: TCG (`/dev/kvm` is unusable here), serial console on stdio, host `/`
/// read-only over 9p. No NIC and no VGA: the guest needs only loopback, and their option ROMs
/// cost boot time under emulation.
fn qemu_command(tree: &KernelTree, initrd: &Path, append: &str, interactive: bool) -> Command {
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "1"])
        .args(["-nographic", "-no-reboot", "-nic", "none", "-vga", "none"])
        .arg("-kernel")
        .arg(tree.vmlinux.as_ref().unwrap_or(&tree.vmlinuz))
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", append])
        .args([
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ])
        .stdin(if interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    die_with_parent(&mut qemu);
    qemu
}

/// Makes the child die with us: a killed xtask must not leave a VM burning a core.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no shared state.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for QEMU to exit; kills it after `grace`. `None` means we had to kill it.
fn wait_with_grace(child: &mut Child, grace: Duration) -> Result<Option<std::process::ExitStatus>> {
    let until = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait().context("waiting for qemu")? {
            return Ok(Some(status));
        }
        if Instant::now() >= until {
            kill(child);
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", std::process::id(), nanos)
}

/// The guest script file; removed when dropped.
struct GuestScript(PathBuf);

impl GuestScript {
    fn write(guest: &Guest, nonce: &str) -> Result<Self> {
        let path_var = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            util::target_dir().join("debug").display()
        );
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), path_var),
            ("HOME".into(), "/root".into()),
            (
                "TERM".into(),
                // The guest's stdout is the serial console, a terminal: without a terminal
                // on our side, ask for no colours so the output parses and logs cleanly.
                if guest.interactive {
                    std::env::var("TERM").unwrap_or_else(|_| "linux".into())
                } else {
                    "dumb".into()
                },
            ),
        ];
        env.extend(std::env::vars().filter(|(k, _)| k.starts_with("NEMOCLAW_")));
        env.extend(guest.env.iter().cloned());

        let mut text =
            String::from("#!/bin/sh\n# Written by `cargo xtask vm`; run as root in the guest.\n");
        for (key, value) in &env {
            let _ = writeln!(text, "export {key}={}", util::shell_quote(value));
        }
        let _ = writeln!(
            text,
            "cd {} || exit 125",
            util::shell_quote(&guest.cwd.to_string_lossy())
        );
        if guest.argv.is_empty() {
            text.push_str(
                "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi\n",
            );
        } else {
            let words: Vec<String> = guest.argv.iter().map(|w| util::shell_quote(w)).collect();
            let _ = writeln!(text, "exec {}", words.join(" "));
        }

        let dir = util::vm_dir().join("scripts");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Scripts of runs that were interrupted (Ctrl-C) are left behind; drop old ones.
        let day = Duration::from_hours(24);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > day));
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let path = dir.join(format!("guest-{nonce}.sh"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for GuestScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
