//! `cargo xtask run`: the demo. Runs the demo agent under `nemoclaw run` with the baseline
//! policy: natively when this host can load BPF LSM programs, otherwise in the VM.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::setup::{self, KernelVersion};
use crate::util;
use crate::vm;

#[derive(Args)]
pub struct RunArgs {
    /// Do not build nemoclaw-userspace first.
    #[arg(long)]
    no_build: bool,
    /// Run in the VM even if this host can load BPF LSM programs.
    #[arg(long)]
    vm: bool,
    /// The kernel to boot when running in the VM.
    #[arg(long, value_enum, default_value = "6.12")]
    kernel: KernelVersion,
    /// The policy, relative to the workspace root.
    #[arg(long, default_value = "policies/openclaw-sandbox.yaml")]
    policy: String,
    /// Kill the VM after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// The agent command (default: `python3 demo/agent.py`).
    #[arg(last = true)]
    cmd: Vec<String>,
}

/// Where the demo runs, and why.
enum Place {
    Native,
    Vm(String),
}

pub fn main(args: &RunArgs) -> Result<ExitCode> {
    if !args.no_build {
        util::build_userspace()?;
    }
    let place = if args.vm {
        Place::Vm("--vm was given".into())
    } else {
        decide()
    };
    match &place {
        Place::Native => println!(
            "xtask run: running natively on this host: it can load BPF LSM programs (`nemoclaw doctor --quiet-lsm-check` passed)"
        ),
        Place::Vm(why) => println!(
            "xtask run: running in a QEMU VM (Debian {}): {why}",
            args.kernel
        ),
    }

    let agent = if args.cmd.is_empty() {
        vec!["python3".to_string(), "demo/agent.py".to_string()]
    } else {
        args.cmd.clone()
    };
    let mut guest_argv = vec![
        "nemoclaw".to_string(),
        "run".into(),
        "--policy".into(),
        args.policy.clone(),
        "--".into(),
    ];
    guest_argv.extend(agent);

    let code = match place {
        Place::Native => {
            if !util::is_root() {
                bail!(
                    "running natively needs root (the sandbox loads BPF programs); run as root or pass --vm"
                );
            }
            let mut cmd = Command::new(util::nemoclaw_bin());
            cmd.args(&guest_argv[1..])
                .current_dir(util::workspace_root());
            let status = cmd
                .status()
                .with_context(|| format!("could not start `{}`", util::describe(&cmd)))?;
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
        }
        Place::Vm(_) => {
            setup::ensure(&[args.kernel])?;
            let guest = vm::Guest {
                kernel: args.kernel,
                argv: guest_argv,
                cwd: util::workspace_root(),
                env: Vec::new(),
                timeout: Duration::from_secs(args.timeout),
                interactive: false,
            };
            vm::run(&guest, &mut |line| println!("{line}"))?
        }
    };
    Ok(util::exit_code(code))
}

/// Asks `nemoclaw doctor --quiet-lsm-check`, whose exit code is 0 iff BPF LSM programs load here.
fn decide() -> Place {
    let bin = util::nemoclaw_bin();
    let mut cmd = Command::new(&bin);
    cmd.args(["doctor", "--quiet-lsm-check"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match cmd.status() {
        Ok(status) if status.success() => Place::Native,
        Ok(status) => Place::Vm(format!(
            "this host cannot load BPF LSM programs (`nemoclaw doctor --quiet-lsm-check` {status})"
        )),
        Err(err) => Place::Vm(format!(
            "could not run `{} doctor --quiet-lsm-check` ({err}); falling back to the VM",
            bin.display()
        )),
    }
}
