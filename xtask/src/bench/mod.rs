//! `cargo xtask bench`: what enforcement costs, as ratios measured in one run.
//!
//! Each configuration is one `nemoclaw-bench op` process (the harness binary, not part of
//! the user-facing `nemoclaw`) that moves
//! itself into a fresh sandbox cgroup and times one operation (a scenario) under one system:
//! no BPF (`none`), a no-op program on the same hook (`floor`), NemoClaw with a generated
//! policy (`nemoclaw`, and `nemoclaw-daemon` set up as the daemon does), and the peers
//! with the same N rules (`landlock`, `apparmor`), at 10, 1k and 100k rules, interleaved
//! (`configs`). Where a system cannot express a scenario's rules the row says
//! `unsupported` with the reason. The network benches run natively (this host loads cgroup
//! `sock_addr` programs); the LSM benches (file opens, create, stat, exec) run in ONE VM
//! boot per kernel, so their ratios come from one run on one (emulated) machine.
//!
//! `configs`: what runs, in which order; `table`: the console tables and the issues'
//! targets; `router`: the privacy router's table.
//!
//! The numbers are never asserted on: the report says whether the issues' targets are met.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use serde_json::Value;

mod configs;
mod router;
mod table;

use configs::{Workload, compile_configs, native_workloads, vm_workloads};
use table::{EXEC_TARGETS, NET_TARGETS, OPEN_TARGETS, Target, compile_row, reload_row, table};

use crate::bench_macro;
use crate::bench_report;
use crate::setup::{self, KernelVersion};
use crate::util;
use crate::vm;

/// Timed rounds per configuration. Short rounds: on a loaded host (and under TCG, whose
/// guest clock runs while QEMU is descheduled) some rounds escape disturbance, and the
/// fastest round is the estimate.
const ROUNDS: u64 = 40;

/// The prefix of `nemoclaw-bench`'s result lines.
const LINE_PREFIX: &str = "NEMOCLAW_BENCH ";

#[derive(Args)]
pub struct BenchArgs {
    /// Kernels for the LSM benches, one VM boot each (repeatable; default: 6.12).
    #[arg(long = "kernel", value_enum)]
    kernels: Vec<KernelVersion>,
    /// Do not build nemoclaw and nemoclaw-bench (release) first.
    #[arg(long)]
    no_build: bool,
    /// Skip the native (network, compile) benches.
    #[arg(long)]
    no_native: bool,
    /// Skip the VM (file open, exec) benches.
    #[arg(long)]
    no_vm: bool,
    /// Divide every operation count by this (a quick look; noisier).
    #[arg(long, default_value_t = 1)]
    divide: u64,
    /// Kill the VM after this many seconds (the full LSM series takes about 15-25 minutes
    /// under TCG, most of it the 100k-rule setups, which `--divide` does not shorten).
    #[arg(long, default_value_t = 2400)]
    vm_timeout: u64,
    /// Run only these workloads (repeatable): a scenario (`open-read-d2`, ..., `create-unlink`,
    /// `stat`, `exec` in the VM; `tcp`, `udp` natively), `open` (every open scenario), `fs`
    /// (every file scenario), `process` (= `exec`), `compile`, `reload` (native, through a
    /// daemon), `router` (native: the privacy router next to the `LiteLLM` proxy, installed
    /// in its own venv on first use), `make`, `untar-grep`, `start` (VM: whole workloads and
    /// sandbox start under `NemoClaw`, Landlock and `AppArmor`; `bench_macro.rs`); default: all.
    #[arg(long = "only", value_parser = parse_only)]
    only: Vec<&'static str>,
    /// Only write `BENCHMARKS.md` and `docs/bench/` from this results file (JSON lines).
    #[arg(long, value_name = "FILE")]
    report_from: Option<PathBuf>,
}

/// Every scenario name `--only` accepts besides the groups.
const SCENARIOS: [&str; 12] = [
    "open-read-d2",
    "open-read-d6",
    "open-read-d12",
    "open-write-d2",
    "open-write-d6",
    "open-write-d12",
    "create-unlink",
    "stat",
    "exec",
    "tcp",
    "udp",
    "compile",
];

/// A `--only` value: a scenario or group name, or the control it measures.
fn parse_only(text: &str) -> Result<&'static str, String> {
    Ok(match text {
        "open" => "open",
        "fs" | "filesystem" => "fs",
        "exec" | "process" => "exec",
        "reload" | "daemon" => "reload",
        "router" | "inference" => "router",
        "make" => "make",
        "untar-grep" | "untar" => "untar-grep",
        "start" => "start",
        other => {
            return SCENARIOS.into_iter().find(|s| *s == other).ok_or_else(|| {
                format!(
                    "unknown workload {other:?} ({}, open, fs, reload, router, make, untar-grep, start)",
                    SCENARIOS.join(", ")
                )
            });
        }
    })
}

impl BenchArgs {
    /// Whether `--only` selects `workload` (everything when `--only` is not given).
    fn selects(&self, workload: &str) -> bool {
        self.only.is_empty()
            || self.only.iter().any(|only| {
                *only == workload
                    || (*only == "open" && workload.starts_with("open-"))
                    || (*only == "fs"
                        && (workload.starts_with("open-")
                            || matches!(workload, "create-unlink" | "stat")))
            })
    }
}

/// Results by (scenario, system, rules); the reload and router results by (workload, mode,
/// rules).
type Results = BTreeMap<(String, String, usize), Value>;

/// The native workloads `args` selects (`native`: the per-operation ones; compile, reload
/// and router by name), their report section appended to `report`; whether every row is
/// there, and the results.
fn native_benches(
    args: &BenchArgs,
    bin: &Path,
    native: &[Workload],
    report: &mut String,
) -> Result<(bool, Results)> {
    let with_compile = args.selects("compile");
    let mut all_ok = true;
    let mut results = Results::new();
    let compile = if with_compile {
        compile_configs()
    } else {
        Vec::new()
    };
    for config in native
        .iter()
        .flat_map(|w| w.configs.iter())
        .chain(compile.iter())
    {
        eprintln!("xtask bench: native {} {}", config.scenario, config.label());
        let mut cmd = Command::new(bin);
        cmd.args(config.args(args.divide)).stderr(Stdio::inherit());
        let out = util::capture(&mut cmd)?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            parse_line(line, &mut results);
        }
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let _ = writeln!(report, "\n## native (this host, kernel {})", kernel.trim());
    for workload in native {
        all_ok &= table(report, workload, &results, &NET_TARGETS);
    }
    if with_compile {
        all_ok &= compile_row(report, &results);
    }
    if args.selects("reload") {
        eprintln!("xtask bench: native policy reload latency");
        let out = util::capture(Command::new(bin).args(["reload", "--reloads", "200"]))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            parse_line(line, &mut results);
        }
        all_ok &= reload_row(report, &results);
    }
    if args.selects("router") {
        all_ok &= router::run_router(bin, report, &mut results)?;
    }
    Ok((all_ok, results))
}

pub fn main(args: &BenchArgs) -> Result<ExitCode> {
    if let Some(file) = &args.report_from {
        bench_report::main(file)?;
        return Ok(ExitCode::SUCCESS);
    }
    let kernels = if args.kernels.is_empty() {
        vec![KernelVersion::V6_12]
    } else {
        args.kernels.clone()
    };
    if !util::is_root() {
        bail!("`cargo xtask bench` needs root: it loads BPF programs and creates cgroups");
    }
    let native = native_workloads()
        .into_iter()
        .filter(|w| args.selects(w.name))
        .collect::<Vec<_>>();
    let run_native = !args.no_native
        && (!native.is_empty()
            || ["compile", "reload", "router"]
                .iter()
                .any(|w| args.selects(w)));
    let run_vm_benches = !args.no_vm
        && (vm_workloads().iter().any(|w| args.selects(w.name))
            || bench_macro::WORKLOADS.iter().any(|w| args.selects(w)));
    if run_vm_benches {
        setup::ensure(&kernels)?;
    }
    // The commit measured (what the binaries are built from), recorded in every row.
    let commit = bench_report::head_commit(&util::workspace_root());
    let bin = if args.no_build {
        release_bin()
    } else {
        build_release()?
    };
    let mut report = String::new();
    let mut all_ok = true;
    let mut saved = Vec::new();

    if run_native {
        let (ok, results) = native_benches(args, &bin, &native, &mut report)?;
        all_ok &= ok;
        saved.push(("native".to_string(), results));
    }

    if run_vm_benches {
        for kernel in kernels {
            let results = run_vm(kernel, &bin, args)?;
            let release = results
                .values()
                .find_map(|v| v["kernel"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(
                report,
                "\n## VM: Debian {kernel} ({release}), QEMU TCG -smp 1: times are inflated, compare ratios"
            );
            for workload in vm_workloads().iter().filter(|w| args.selects(w.name)) {
                let targets: &[Target] = match workload.name {
                    "open-read-d2" => &OPEN_TARGETS,
                    "exec" => &EXEC_TARGETS,
                    _ => &[],
                };
                all_ok &= table(&mut report, workload, &results, targets);
            }
            all_ok &= bench_macro::report(&mut report, &results, |w| args.selects(w));
            saved.push((format!("vm {kernel}"), results));
        }
    }

    // A partial run (`--only`, `--no-native`, `--no-vm`) is saved apart and leaves the
    // published report alone: it would replace every table and plot with its few rows.
    let partial = !args.only.is_empty() || args.no_native || args.no_vm;
    let file = if partial {
        "results-partial.jsonl"
    } else {
        "results.jsonl"
    };
    match save(&saved, &commit, file) {
        Ok(path) if partial => {
            let _ = writeln!(
                report,
                "\nresults (JSON lines): {}\n(a partial run: BENCHMARKS.md is left as it is;                  `cargo xtask bench --report-from {}` writes it from these rows alone)",
                path.display(),
                path.display()
            );
        }
        Ok(path) => {
            let _ = writeln!(report, "\nresults (JSON lines): {}", path.display());
            if let Err(err) = bench_report::main(&path) {
                eprintln!("xtask bench: BENCHMARKS.md: {err:#}");
            }
        }
        Err(err) => eprintln!("xtask bench: {err:#}"),
    }
    println!("{report}");
    println!("{}", NOTES.replace("ROUNDS", &ROUNDS.to_string()));
    // The bench itself succeeded even when a target is missed; a missing row is a failure.
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

const NOTES: &str = "\
notes: ns/op is the fastest of ROUNDS timed rounds after a warm-up (noise only adds time);
  noise = the median round's ns/op - the fastest's; added = ns/op - none's.
  wall ratio = (system - none) / (floor - none), from wall-clock time; `~` when the floor
  adds less than the noise of none or floor (the ratio would be noise).
  rows are `none`, `floor`, then SYSTEM RULES: nemoclaw (standalone), nemoclaw-daemon
  (network only: in the VM it equals nemoclaw, see xtask/src/bench/configs.rs), landlock and
  apparmor with the same N rules (one of them allowing the measured path); `unsupported`:
  the system cannot express the rule set (the reason follows).
  setup = seconds to prepare files, compile, load and fill the maps (not timed per op).
  bpf ns/op = the programs' run_time_ns per operation (BPF_ENABLE_STATS), summed over the
  real programs, in the least disturbed round; ns/run likewise per program;
  bpf ratio = real's / the no-op's. The hook's dispatch cost is the same for
  both, so the bpf ratio bounds the added-cost ratio from above.
  wall-clock rounds run with BPF statistics off, program figures in a second pass with
  them on. Added-cost targets are judged on the wall ratio when the floor adds at least
  10x the noise (met only if (added + noise) / (floor's added - noise) is), else on the
  bpf ratio.";

/// Writes every result line (JSON) to `target/nemoclaw-bench/FILE`.
fn save(all: &[(String, Results)], commit: &str, file: &str) -> Result<PathBuf> {
    let dir = util::target_dir().join("nemoclaw-bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(file);
    let mut text = String::new();
    for (place, results) in all {
        for value in results.values() {
            let mut value = value.clone();
            if let Some(obj) = value.as_object_mut() {
                obj.insert("place".into(), place.clone().into());
                obj.insert("commit".into(), commit.into());
            }
            let _ = writeln!(text, "{value}");
        }
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn parse_line(line: &str, results: &mut Results) {
    let Some(pos) = line.find(LINE_PREFIX) else {
        return;
    };
    let Ok(value) = serde_json::from_str::<Value>(&line[pos + LINE_PREFIX.len()..]) else {
        return;
    };
    let text = |key: &str, or: &str| {
        value[key]
            .as_str()
            .or_else(|| value[or].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (workload, mode) = (text("scenario", "workload"), text("system", "mode"));
    let rules = value["rules"]
        .as_u64()
        .and_then(|r| usize::try_from(r).ok())
        .unwrap_or_default();
    results.insert((workload, mode, rules), value);
}

/// Runs every LSM configuration in one VM boot; returns their results.
fn run_vm(kernel: KernelVersion, bin: &Path, args: &BenchArgs) -> Result<Results> {
    let bin_str = bin
        .to_str()
        .context("the nemoclaw-bench path is not UTF-8")?;
    let mut script = String::new();
    for config in vm_workloads()
        .iter()
        .filter(|w| args.selects(w.name))
        .flat_map(|w| w.configs.iter())
    {
        let words: Vec<String> = config
            .args(args.divide)
            .iter()
            .map(|w| util::shell_quote(w))
            .collect();
        let _ = writeln!(
            script,
            "echo \"xtask bench: vm {} {} (guest uptime $(cut -d' ' -f1 /proc/uptime) s)\" >&2; {} {}; rm -rf /tmp/nemoclaw-bench-*",
            config.scenario,
            config.label(),
            util::shell_quote(bin_str),
            words.join(" ")
        );
    }
    script.push_str(&bench_macro::vm_script(bin_str, |w| args.selects(w)));
    script.push_str("exit 0\n");
    let guest = vm::Guest {
        kernel,
        argv: vec!["sh".into(), "-c".into(), script],
        cwd: util::workspace_root(),
        env: Vec::new(),
        kernel_args: Vec::new(),
        timeout: Duration::from_secs(
            args.vm_timeout + bench_macro::vm_seconds(|w| args.selects(w)),
        ),
        interactive: false,
    };
    let mut results = Results::new();
    let code = vm::run(&guest, &mut |line| {
        if line.contains(LINE_PREFIX) {
            parse_line(line, &mut results);
        } else {
            println!("vm| {line}");
        }
    })?;
    if code != 0 {
        eprintln!("xtask bench: the VM script exited with {code}");
    }
    Ok(results)
}

/// The harness; `nemoclaw-bench reload` runs the `nemoclaw` next to it.
fn release_bin() -> PathBuf {
    util::target_dir().join("release").join("nemoclaw-bench")
}

/// `cargo build --release -p nemoclaw-userspace` (both `nemoclaw` and `nemoclaw-bench`): the
/// bench measures optimised code.
fn build_release() -> Result<PathBuf> {
    util::run(util::cargo().args([
        "build",
        "--release",
        "--package",
        "nemoclaw-userspace",
        "--package",
        "nemoclaw-standin",
    ]))
    .context("building nemoclaw (release; use --no-build to skip)")?;
    Ok(release_bin())
}
