//! `cargo xtask fleet`: rolls `NemoClaw` out with the Ansible collection in `ansible/` to
//! Debian 12 VMs (systemd, sshd on loopback ports) and checks enforcement on each.
//!
//! Parts: `tools` (the host's packages and ansible-lint), `image` (the cached root image),
//! `initramfs` (boot to the image's systemd), `machine` (one VM), `ansible` (inventory,
//! playbook runs and their recap), `scenario` (the steps and what each checks).

mod ansible;
mod image;
mod initramfs;
mod machine;
mod scenario;
mod tools;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::setup::{self, KernelVersion};
use crate::util;

/// The guests' kernel: the harness's Debian 6.12 (BPF LSM in its default list, BTF).
const KERNEL: KernelVersion = KernelVersion::V6_12;

#[derive(Args)]
pub struct FleetArgs {
    /// How many VMs (at least two: the rollout's waves need a second host).
    #[arg(long, default_value_t = 2)]
    hosts: usize,
    /// The package to roll out (default: build it with `cargo xtask package`).
    #[arg(long)]
    deb: Option<PathBuf>,
    /// Only boot the fleet, check each guest's kernel over SSH, and stop.
    #[arg(long)]
    boot_only: bool,
    /// Give up on a guest's SSH login after this many seconds.
    #[arg(long, default_value_t = 300)]
    boot_timeout: u64,
}

impl Default for FleetArgs {
    /// What `cargo xtask test --layer fleet` runs: the defaults of the command line.
    fn default() -> Self {
        Self {
            hosts: 2,
            deb: None,
            boot_only: false,
            boot_timeout: 300,
        }
    }
}

pub fn main(args: &FleetArgs) -> Result<ExitCode> {
    let mut steps = Steps::default();
    let result = run(args, &mut steps);
    println!("{}", steps.summary());
    result.map(|()| ExitCode::SUCCESS)
}

/// Each step's name and time, printed as the run goes and summed at the end.
#[derive(Default)]
pub struct Steps {
    started: Option<Instant>,
    /// Each step: its name, time, and whether it passed.
    pub done: Vec<(String, Duration, bool)>,
}

impl Steps {
    fn step<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.started.get_or_insert_with(Instant::now);
        println!("== fleet: {name} ==");
        let started = Instant::now();
        let result = f().with_context(|| format!("fleet step `{name}`"));
        let elapsed = started.elapsed();
        println!(
            "== fleet: {name}: {} in {:.1} s ==",
            if result.is_ok() { "ok" } else { "FAILED" },
            elapsed.as_secs_f64()
        );
        self.done.push((name.to_owned(), elapsed, result.is_ok()));
        result
    }

    pub fn summary(&self) -> String {
        let mut text = String::from("== fleet summary ==\n");
        for (name, elapsed, ok) in &self.done {
            let verdict = if *ok { "ok" } else { "FAILED" };
            let _ = writeln!(
                text,
                "{:>7.1} s  {verdict:6}  {name}",
                elapsed.as_secs_f64()
            );
        }
        let total = self.started.map_or(Duration::ZERO, |t| t.elapsed());
        let _ = write!(text, "{:>7.1} s  total", total.as_secs_f64());
        text
    }
}

/// The whole run, each step recorded in `steps` (with its time) as it goes.
pub fn run(args: &FleetArgs, steps: &mut Steps) -> Result<()> {
    if args.hosts < 2 {
        bail!("--hosts must be at least 2 (the rollout's second wave needs a host)");
    }
    if !util::is_root() {
        bail!("the fleet test needs root (mmdebstrap, the image cache under /var/cache)");
    }
    steps.step("tools", || {
        setup::ensure(&[KERNEL])?;
        tools::ensure()
    })?;
    let tree = setup::ensure_kernel(KERNEL)?;
    let base = steps.step("guest image", || image::ensure(&tree))?;
    let initrd = initramfs::ensure(&tree)?;
    let deb = if args.boot_only {
        None
    } else {
        Some(steps.step("package", || package(args.deb.as_deref()))?)
    };

    let dir = RunDir::create()?;
    let key = steps.step("ssh key", || ssh_key(&dir.0))?;
    let public_key =
        std::fs::read_to_string(key.with_extension("pub")).context("reading the public key")?;
    let boot = machine::Boot {
        tree: &tree,
        initrd: &initrd,
        base: &base,
        public_key: public_key.trim(),
        private_key: &key,
        dir: &dir.0,
    };
    let timeout = Duration::from_secs(args.boot_timeout);
    let machines = steps.step(&format!("boot {} VMs", args.hosts), || {
        let mut machines = (1..=args.hosts)
            .map(|i| machine::Machine::start(&boot, &format!("fleet{i}")))
            .collect::<Result<Vec<_>>>()?;
        for m in &mut machines {
            let took = m.wait_for_ssh(timeout)?;
            println!(
                "fleet: {} (ssh on 127.0.0.1:{}): boot to SSH login in {:.1} s",
                m.name,
                m.ssh_port,
                took.as_secs_f64()
            );
        }
        Ok(machines)
    })?;
    steps.step("guest kernels", || {
        for m in &machines {
            let facts = m.check(
                "uname -r; cat /sys/kernel/security/lsm; echo; \
                 test -e /sys/kernel/btf/vmlinux && echo btf; \
                 cat /sys/fs/cgroup/cgroup.controllers; ps -p 1 -o comm=",
            )?;
            println!(
                "fleet: {}: {}",
                m.name,
                facts.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            if !facts
                .lines()
                .nth(1)
                .is_some_and(|l| l.split(',').any(|x| x == "bpf"))
            {
                bail!("{}: bpf is not in the active LSM list", m.name);
            }
        }
        Ok(())
    })?;
    if let Some(deb) = deb {
        let fleet = ansible::Fleet::write(&dir.0, &machines, &key)?;
        scenario::run(steps, &fleet, &machines, &deb, &dir.0)?;
    }
    drop(machines);
    dir.remove();
    Ok(())
}

/// The package to roll out: the one given, or a fresh `cargo xtask package`.
fn package(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(deb) => std::path::absolute(deb).context("resolving --deb"),
        None => crate::package::build().context("building the package (or pass --deb)"),
    }
}

/// A fresh ed25519 key for this run (root's `authorized_keys` in every guest).
fn ssh_key(dir: &Path) -> Result<PathBuf> {
    let key = dir.join("id_ed25519");
    util::output(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "nemoclaw-fleet-test",
                "-f",
            ])
            .arg(&key),
    )?;
    Ok(key)
}

/// This run's directory (overlays, console logs, key, inventory), kept when the run fails.
struct RunDir(PathBuf);

impl RunDir {
    fn create() -> Result<Self> {
        let dir = util::vm_dir()
            .join("fleet")
            .join(format!("run-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    /// Removes the directory (after a successful run; a failed one keeps the logs).
    fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
