//! The `nemoclaw` command line.

pub mod audit;
pub mod config;
pub mod daemon;
pub mod doctor;
pub mod policy;
pub mod router;
pub mod run;

use clap::{Parser, Subcommand};

/// `NemoClaw`: a kernel-enforced sandbox for AI coding agents.
#[derive(Debug, Parser)]
#[command(name = "nemoclaw", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Each subcommand's arguments are built only when it is the one invoked (`defer`):
/// building all of them costs every `nemoclaw run` its start-up time.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Run a command in a fresh sandbox under a policy (root).
    Run(run::RunArgs),
    /// The privileged policy engine: pins enforcement, serves the control socket, hot-reloads
    /// policies and writes the audit log (root).
    Daemon(daemon::DaemonArgs),
    /// The privacy router: the inference proxy sandboxes call models through (unprivileged).
    Router(router::RouterArgs),
    /// List the daemon's sandboxes.
    Ps(daemon::PsArgs),
    /// Print the audit log readably.
    Logs(daemon::LogsArgs),
    /// Check what this kernel offers `NemoClaw` and what to fix.
    Doctor(doctor::DoctorArgs),
    /// Work with audit logs.
    Audit {
        #[command(subcommand)]
        cmd: audit::AuditCommand,
    },
    /// Check the host configuration (`/etc/nemoclaw/nemoclaw.yaml`).
    Config {
        #[command(subcommand)]
        cmd: config::ConfigCommand,
    },
    /// Check, compile and query policies (no kernel needed).
    Policy {
        #[command(subcommand)]
        cmd: policy::PolicyCommand,
    },
}

/// Runs the parsed command line; returns the process exit code.
pub fn main(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Doctor(args) => Ok(doctor::doctor(&args)),
        Command::Daemon(args) => daemon::daemon(args),
        Command::Router(args) => router::router(&args),
        Command::Ps(args) => daemon::ps(&args),
        Command::Logs(args) => daemon::logs(&args),
        Command::Policy { cmd } => policy::run(cmd),
        Command::Config { cmd } => Ok(config::run(&cmd)),
        Command::Audit { cmd } => audit::run(cmd),
    }
}
