//! `cargo xtask fuzz`: a bounded cargo-fuzz run of a target in `fuzz/` (default `policy`:
//! parse + validate + compile + explain of arbitrary bytes). Fails on a crash. Not part of
//! `cargo xtask test`: a minute of fuzzing is too slow for every run.

use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, Result};
use clap::Args;

use crate::util;

#[derive(Args)]
pub struct FuzzArgs {
    /// How long libFuzzer runs (not counting the build).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// The fuzz target (a `[[bin]]` of fuzz/Cargo.toml).
    #[arg(long, default_value = "policy")]
    target: String,
}

pub fn main(args: &FuzzArgs) -> Result<ExitCode> {
    ensure_cargo_fuzz()?;
    let mut cmd = nightly_cargo();
    cmd.args(["fuzz", "run", &args.target, "--"])
        .arg(format!("-max_total_time={}", args.seconds))
        .arg("-print_final_stats=1");
    println!("== xtask fuzz: {} ==", util::describe(&cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", util::describe(&cmd)))?;
    if status.success() {
        println!(
            "xtask fuzz: {} ran {} s without a crash",
            args.target, args.seconds
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "xtask fuzz: {} failed ({status}): the crashing input is under fuzz/artifacts/{}/; \
         reproduce with `cargo +nightly fuzz run {} <file>`",
        args.target, args.target, args.target
    );
    Ok(ExitCode::FAILURE)
}

/// `cargo +nightly` through rustup, run in the workspace root (cargo-fuzz finds `fuzz/`).
/// The variables cargo set for xtask would pin the stable toolchain: drop them.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .current_dir(util::workspace_root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC");
    cmd
}

/// Installs cargo-fuzz (`cargo install cargo-fuzz --locked`) when `cargo fuzz` is missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = nightly_cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("== xtask fuzz: installing cargo-fuzz ==");
    util::run(util::cargo().args(["install", "cargo-fuzz", "--locked"]))
        .context("installing cargo-fuzz")
}
