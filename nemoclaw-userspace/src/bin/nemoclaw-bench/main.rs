//! `nemoclaw-bench`: the measurement harness `cargo xtask bench` drives (root). Kept out of
//! the `nemoclaw` binary so that its command line holds only what users run.
//!
//! - `nemoclaw-bench op`: the cost of one enforced operation in one configuration.
//! - `nemoclaw-bench reload`: policy-file rewrites timed until enforced (it runs the
//!   `nemoclaw` binary next to it as daemon and sandbox).
//!
//! Both print one `NEMOCLAW_BENCH {json}` line.

mod op;
mod reload;

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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Op(args) => op::run(&args),
        Command::Reload(args) => reload::run(&args),
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
