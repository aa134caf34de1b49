//! `nemoclaw-bench`: the measurement harness `cargo xtask bench` drives (root). Kept out of
//! the `nemoclaw` binary so that its command line holds only what users run.
//!
//! - `nemoclaw-bench op`: the cost of one enforced operation in one configuration.
//! - `nemoclaw-bench reload`: policy-file rewrites timed until enforced (it runs the
//!   `nemoclaw` binary next to it as daemon and sandbox).
//! - `nemoclaw-bench router`: the privacy router's added latency against a direct call,
//!   time to first token, throughput and detector speed, side by side with the `LiteLLM`
//!   proxy (the `nemoclaw` and `nemoclaw-standin` binaries next to it, `LiteLLM`'s venv).
//! - `nemoclaw-bench macro`: whole workloads (`make`, `untar-grep`) under `NemoClaw`,
//!   Landlock and `AppArmor`; `nemoclaw-bench start`: sandbox start time;
//!   `nemoclaw-bench landlock-exec`: the Landlock wrapper they use.
//!
//! Each prints one `NEMOCLAW_BENCH {json}` line.

mod landlock_exec;
mod landlock_sys;
mod macro_run;
mod op;
mod peer;
mod private_daemon;
mod reload;
mod router;
mod scenario;
mod start;

use clap::{Parser, Subcommand};

/// The benchmark harness of `nemoclaw` (driven by `cargo xtask bench`; root).
#[derive(Debug, Parser)]
#[command(name = "nemoclaw-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure one benchmark configuration.
    Op(op::BenchArgs),
    /// Time policy-file rewrites until enforced.
    Reload(reload::ReloadBenchArgs),
    /// The privacy router's cost (latency, time to first token, throughput, detection)
    /// next to a direct call and to the `LiteLLM` proxy.
    Router(router::RouterBenchArgs),
    /// Time a whole workload (make, untar-grep) under each sandbox, round-robin.
    Macro(macro_run::MacroArgs),
    /// Time a sandbox's start (`/bin/true` in it) under each system, round-robin.
    Start(start::StartArgs),
    /// Run a command under a Landlock ruleset (the macro benchmarks' peer).
    LandlockExec(landlock_exec::LandlockExecArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Op(args) => op::run(&args),
        Command::Reload(args) => reload::run(&args),
        Command::Router(args) => router::run(&args),
        Command::Macro(args) => macro_run::run(&args),
        Command::Start(args) => start::run(&args),
        Command::LandlockExec(args) => landlock_exec::run(&args),
    };
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("nemoclaw-bench: error: {err:#}");
            1
        }
    };
    std::process::exit(code);
}
