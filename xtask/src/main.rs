//! Developer tasks for `NemoClaw`: `cargo xtask <command>`.
//!
//! Each subcommand lives in its own module; `util` holds the few helpers they share.

mod bench;
mod bench_macro;
mod bench_python;
mod bench_report;
mod escapes;
mod fleet;
mod fuzz;
mod hooks;
mod package;
mod run;
mod setup;
mod test;
mod util;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "NemoClaw developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install (idempotently) everything the other commands need.
    Setup(setup::SetupArgs),
    /// Boot a Debian kernel in QEMU with the host's `/` read-only and run a command as root.
    ///
    /// The guest writes only to tmpfs (/tmp, /run). Exits with the command's exit code.
    /// Set `XTASK_VM_BOOT_LOG=1` to see the firmware's and kernel's boot messages.
    Vm(vm::VmArgs),
    /// Run the test layers (unit, host, vm) and print a summary.
    Test(test::TestArgs),
    /// Run the demo agent in the baseline sandbox (natively if BPF LSM loads here, else in the VM).
    Run(run::RunArgs),
    /// Measure enforcement cost: no BPF vs a no-op hook vs the real policy, as ratios from
    /// one run (network natively, file open and exec in one VM boot per kernel).
    Bench(bench::BenchArgs),
    /// Fuzz a target in fuzz/ (default `policy`) for a bounded time; fails on a crash.
    Fuzz(fuzz::FuzzArgs),
    /// Roll `NemoClaw` out with the Ansible collection (ansible/) to Debian VMs with systemd
    /// and check enforcement on each host (install, waves, a rejected and a rolled-back
    /// policy, idempotency).
    Fleet(fleet::FleetArgs),
    /// Build the Debian package: target/debian/nemoclaw_<version>_amd64.deb (the release
    /// binary with its eBPF object, configuration, systemd units, maintainer scripts).
    Package(package::PackageArgs),
    /// Regenerate docs/hooks.md: every LSM hook and cgroup attach type of the supported
    /// kernels with what the sandbox does with it; fails if one is unclassified.
    Hooks(hooks::HooksArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup(args) => setup::main(&args),
        Command::Vm(args) => vm::main(&args),
        Command::Test(args) => test::main(&args),
        Command::Run(args) => run::main(&args),
        Command::Bench(args) => bench::main(&args),
        Command::Fuzz(args) => fuzz::main(&args),
        Command::Hooks(args) => hooks::main(&args),
        Command::Package(args) => package::main(&args),
        Command::Fleet(args) => fleet::main(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
