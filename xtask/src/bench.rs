//! `cargo xtask bench`: what enforcement costs, as ratios measured in one run.
//!
//! Each configuration is one `nemoclaw-bench op` process (the harness binary, not part of
//! the user-facing `nemoclaw`) that moves
//! itself into a fresh sandbox cgroup and times one operation: with no BPF (`none`), with a
//! no-op program on the same hook (`floor`), and with the real programs and a generated
//! policy (`real`, at several rule counts). The network benches run natively (this host
//! loads cgroup `sock_addr` programs); the LSM benches (file open, exec) run in ONE VM boot
//! per kernel, so their ratios come from one run on one (emulated) machine.
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

use crate::bench_macro;
use crate::bench_python;
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
    /// Kill the VM after this many seconds.
    #[arg(long, default_value_t = 1200)]
    vm_timeout: u64,
    /// Run only these workloads (repeatable): `open` and `exec` (VM), `tcp` and `udp`
    /// (native), `compile`, `reload` (native, through a daemon), `router` (native: the privacy
    /// router next to the `LiteLLM` proxy, installed in its own venv on first use), `make`,
    /// `untar-grep`, `start` (VM: whole workloads and sandbox start under `NemoClaw`, Landlock,
    /// `AppArmor`; `bench_macro.rs`); default: all. `--only fs` and `--only process` are aliases
    /// of `open` and `exec`.
    #[arg(long = "only", value_parser = parse_only)]
    only: Vec<&'static str>,
}

/// A `--only` value: a workload name, or the control it measures.
fn parse_only(text: &str) -> Result<&'static str, String> {
    Ok(match text {
        "open" | "fs" | "filesystem" => "open",
        "exec" | "process" => "exec",
        "tcp" => "tcp",
        "udp" => "udp",
        "compile" => "compile",
        "reload" | "daemon" => "reload",
        "router" | "inference" => "router",
        "make" => "make",
        "untar-grep" | "untar" => "untar-grep",
        "start" => "start",
        other => {
            return Err(format!(
                "unknown workload {other:?} (open, exec, tcp, udp, compile, reload, router, make, untar-grep, start)"
            ));
        }
    })
}

impl BenchArgs {
    /// Whether `--only` selects `workload` (everything when `--only` is not given).
    fn selects(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.contains(&workload)
    }
}

/// One `nemoclaw-bench op` invocation.
#[derive(Clone)]
struct Config {
    workload: &'static str,
    mode: &'static str,
    rules: usize,
    count: u64,
    warmup: u64,
}

impl Config {
    fn new(
        workload: &'static str,
        mode: &'static str,
        rules: usize,
        count: u64,
        warmup: u64,
    ) -> Self {
        Self {
            workload,
            mode,
            rules,
            count,
            warmup,
        }
    }

    fn args(&self, divide: u64) -> Vec<String> {
        let divide = divide.max(1);
        vec![
            "op".into(),
            "--workload".into(),
            self.workload.into(),
            "--mode".into(),
            self.mode.into(),
            "--rules".into(),
            self.rules.to_string(),
            "--count".into(),
            (self.count / divide).max(ROUNDS).to_string(),
            "--warmup".into(),
            (self.warmup / divide).to_string(),
            "--rounds".into(),
            ROUNDS.to_string(),
        ]
    }

    fn key(&self) -> (String, String, usize) {
        (self.workload.to_string(), self.mode.to_string(), self.rules)
    }

    fn label(&self) -> String {
        if self.mode == "real" {
            format!("real {}", rules_label(self.rules))
        } else {
            self.mode.to_string()
        }
    }
}

fn rules_label(rules: usize) -> String {
    match rules {
        r if r >= 1000 && r % 1000 == 0 => format!("{}k", r / 1000),
        r => r.to_string(),
    }
}

/// A workload's configurations in table order, and its targets.
struct Workload {
    name: &'static str,
    title: &'static str,
    configs: Vec<Config>,
}

/// The network benches, natively: TCP connect and UDP sendto at 10 and 100k CIDR rules
/// (the sizes).
fn native_workloads() -> Vec<Workload> {
    let net = |name: &'static str, title: &'static str, count: u64| Workload {
        name,
        title,
        configs: vec![
            Config::new(name, "none", 0, count, count / 10),
            Config::new(name, "floor", 0, count, count / 10),
            Config::new(name, "real", 10, count, count / 10),
            Config::new(name, "real", 100_000, count, count / 10),
        ],
    };
    vec![
        net("tcp", "TCP connect+accept+close, loopback (native)", 20_000),
        net("udp", "UDP sendto, loopback (native)", 100_000),
    ]
}

/// The LSM benches, in the VM. Counts keep the whole VM run to a few minutes under TCG
/// (an open costs ~6 us there, an exec ~1 ms).
fn vm_workloads() -> Vec<Workload> {
    let open = 30_000;
    let exec = 400;
    vec![
        Workload {
            name: "open",
            title: "open(O_RDONLY)+close of a tmpfs file",
            configs: vec![
                Config::new("open", "none", 0, open, open / 10),
                Config::new("open", "floor", 0, open, open / 10),
                Config::new("open", "real", 0, open, open / 10),
                Config::new("open", "real", 100, open, open / 10),
                Config::new("open", "real", 10_000, open, open / 10),
                Config::new("open", "real", 100_000, open, open / 10),
            ],
        },
        Workload {
            name: "exec",
            title: "fork+execve(/bin/busybox true)+wait",
            configs: vec![
                Config::new("exec", "none", 0, exec, exec / 10),
                Config::new("exec", "floor", 0, exec, exec / 10),
                Config::new("exec", "real", 10, exec, exec / 10),
                Config::new("exec", "real", 10_000, exec, exec / 10),
            ],
        },
    ]
}

/// Results by (workload, mode, rules).
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
    let compile = Config::new("compile", "none", 100_000, 1, 0);
    for config in native
        .iter()
        .flat_map(|w| w.configs.iter())
        .chain(with_compile.then_some(&compile))
    {
        eprintln!("xtask bench: native {} {}", config.workload, config.label());
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
        all_ok &= run_router(bin, report, &mut results)?;
    }
    Ok((all_ok, results))
}

pub fn main(args: &BenchArgs) -> Result<ExitCode> {
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
                let targets: &[Target] = if workload.name == "open" {
                    &OPEN_TARGETS
                } else {
                    &EXEC_TARGETS
                };
                all_ok &= table(&mut report, workload, &results, targets);
            }
            all_ok &= bench_macro::report(&mut report, &results, |w| args.selects(w));
            saved.push((format!("vm {kernel}"), results));
        }
    }

    match save(&saved) {
        Ok(path) => {
            let _ = writeln!(report, "\nresults (JSON lines): {}", path.display());
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
  wall ratio = (real - none) / (floor - none), from wall-clock time; `~` when the floor
  adds less than the noise of none or floor (the ratio would be noise).
  setup = seconds to prepare files, compile, load and fill the maps (not timed per op).
  bpf ns/op = the programs' run_time_ns per operation (BPF_ENABLE_STATS), summed over the
  real programs, in the least disturbed round; ns/run likewise per program;
  bpf ratio = real's / the no-op's. The hook's dispatch cost is the same for
  both, so the bpf ratio bounds the added-cost ratio from above.
  wall-clock rounds run with BPF statistics off, program figures in a second pass with
  them on. Added-cost targets are judged on the wall ratio when the floor adds at least
  10x the noise (met only if (added + noise) / (floor's added - noise) is), else on the
  bpf ratio.";

/// A target from the issues, judged on one table.
struct Target {
    text: &'static str,
    check: fn(&Rows) -> Option<(bool, String)>,
}

/// One table's measured rows, by label.
struct Rows<'a> {
    by_label: BTreeMap<String, &'a Value>,
}

impl Rows<'_> {
    fn bpf(&self, label: &str) -> Option<f64> {
        self.by_label.get(label)?["bpf_ns_per_op"].as_f64()
    }

    /// real bpf ns/op over the floor's.
    fn bpf_ratio(&self, label: &str) -> Option<f64> {
        let floor = self.bpf("floor")?;
        (floor > 0.0).then(|| self.bpf(label).map(|real| real / floor))?
    }

    /// The measure itself: `label`'s wall-clock added cost over the floor's, and
    /// its pessimistic bound (the noise added to `label`'s and taken from the floor's), when
    /// the floor's added cost stands clear of the noise (at least [`CLEAR_OF_NOISE`] times
    /// the largest spread of none, floor and `label`).
    fn wall_ratio(&self, label: &str) -> Option<(f64, f64)> {
        let ns = |l: &str| self.by_label.get(l)?["ns_per_op"].as_f64();
        let none = ns("none")?;
        let floor = ns("floor")? - none;
        let added = ns(label)? - none;
        let noise = ["none", "floor", label]
            .iter()
            .filter_map(|l| self.by_label.get(*l).map(|v| spread(v)))
            .fold(1.0, f64::max);
        (floor >= CLEAR_OF_NOISE * noise)
            .then(|| (added / floor, (added + noise) / (floor - noise)))
    }

    /// Growth of the bpf cost per op from `from` to `to` (0.2 = +20%).
    fn bpf_growth(&self, from: &str, to: &str) -> Option<f64> {
        let a = self.bpf(from)?;
        (a > 0.0).then(|| self.bpf(to).map(|b| b / a - 1.0))?
    }
}

/// How far the floor's wall-clock added cost must stand above the noise for the wall ratio
/// to be judged.
const CLEAR_OF_NOISE: f64 = 10.0;

/// An added-cost ratio target: on the wall-clock ratio where it can be measured (met only if
/// its pessimistic bound is), else on the bpf ratio, which bounds it from above.
fn ratio_at_most(rows: &Rows, label: &str, limit: f64) -> Option<(bool, String)> {
    let bpf = rows.bpf_ratio(label);
    if let Some((ratio, worst)) = rows.wall_ratio(label) {
        let own = bpf.map_or_else(String::new, |b| {
            format!("; the programs' own time alone: bpf ratio {b:.2}")
        });
        return Some((
            worst <= limit,
            format!("{label}: wall ratio {ratio:.2}, at most {worst:.2} within the noise{own}"),
        ));
    }
    let ratio = bpf?;
    Some((
        ratio <= limit,
        format!("{label}: bpf ratio {ratio:.2}; wall clock too noisy to judge"),
    ))
}

fn growth_at_most(rows: &Rows, from: &str, to: &str, limit: f64) -> Option<(bool, String)> {
    let growth = rows.bpf_growth(from, to)?;
    Some((
        growth <= limit,
        format!("bpf ns/op {from} -> {to}: {:+.0}%", growth * 100.0),
    ))
}

const OPEN_TARGETS: [Target; 2] = [
    Target {
        text: "issue 4: real added cost at 10k rules <= 2x the floor's",
        check: |rows| ratio_at_most(rows, "real 10k", 2.0),
    },
    Target {
        text: "issue 4: added cost grows <= 20% from 100 to 100k rules",
        check: |rows| growth_at_most(rows, "real 100", "real 100k", 0.2),
    },
];

const EXEC_TARGETS: [Target; 2] = [
    Target {
        text: "issue 5: real added cost <= 1.5x the floor's (10 binaries)",
        check: |rows| ratio_at_most(rows, "real 10", 1.5),
    },
    Target {
        text: "issue 5: real added cost <= 1.5x the floor's (10k binaries)",
        check: |rows| ratio_at_most(rows, "real 10k", 1.5),
    },
];

const NET_TARGETS: [Target; 3] = [
    Target {
        text: "issue 6: real added cost <= 1.5x the floor's (10 rules)",
        check: |rows| ratio_at_most(rows, "real 10", 1.5),
    },
    Target {
        text: "issue 6: real added cost <= 1.5x the floor's (100k rules)",
        check: |rows| ratio_at_most(rows, "real 100k", 1.5),
    },
    Target {
        text: "issue 6: flat in the number of rules (<= 20% from 10 to 100k)",
        check: |rows| growth_at_most(rows, "real 10", "real 100k", 0.2),
    },
];

/// Prints one workload's table and its targets; false if a row has no result.
fn table(out: &mut String, workload: &Workload, results: &Results, targets: &[Target]) -> bool {
    let _ = writeln!(out, "\n### {}", workload.title);
    let _ = writeln!(
        out,
        "{:<10} {:>11} {:>8} {:>11} {:>10} {:>10} {:>9} {:>7}  programs: ns/run (runs/op)",
        "config", "ns/op", "noise", "added", "wall ratio", "bpf ns/op", "bpf ratio", "setup"
    );
    let none = results
        .get(&(workload.name.to_string(), "none".to_string(), 0))
        .and_then(|v| v["ns_per_op"].as_f64());
    let floor_added = results
        .get(&(workload.name.to_string(), "floor".to_string(), 0))
        .and_then(|v| v["ns_per_op"].as_f64())
        .zip(none)
        .map(|(f, n)| f - n);
    let noise = ["none", "floor"]
        .iter()
        .filter_map(|mode| results.get(&(workload.name.to_string(), (*mode).to_string(), 0)))
        .map(spread)
        .fold(0.0, f64::max);
    let floor_bpf = results
        .get(&(workload.name.to_string(), "floor".to_string(), 0))
        .and_then(|v| v["bpf_ns_per_op"].as_f64());
    let mut ok = true;
    let mut rows = Rows {
        by_label: BTreeMap::new(),
    };
    for config in &workload.configs {
        let label = config.label();
        let Some(value) = results.get(&config.key()) else {
            ok = false;
            let _ = writeln!(
                out,
                "{label:<10} not available: no result (see the output above)"
            );
            continue;
        };
        if let Some(err) = value["error"].as_str() {
            let _ = writeln!(out, "{label:<10} not available: {}", short(err));
            continue;
        }
        let Some(ns) = value["ns_per_op"].as_f64() else {
            ok = false;
            let _ = writeln!(out, "{label:<10} not available: result without ns_per_op");
            continue;
        };
        rows.by_label.insert(label.clone(), value);
        let spread = spread(value);
        let added = none.filter(|_| config.mode != "none").map(|n| ns - n);
        let wall_ratio = match (config.mode, added, floor_added) {
            ("real", Some(_), Some(f)) if f.abs() <= noise => "~".to_string(),
            ("real", Some(a), Some(f)) => format!("{:.2}", a / f),
            _ => String::new(),
        };
        let bpf = value["bpf_ns_per_op"].as_f64().unwrap_or(0.0);
        let setup = value["setup_ns"].as_f64().unwrap_or(0.0) / 1e9;
        let bpf_ratio = match (config.mode, floor_bpf) {
            ("real", Some(f)) if f > 0.0 => format!("{:.2}", bpf / f),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{label:<10} {ns:>11.0} {spread:>8.0} {:>11} {wall_ratio:>10} {:>10} {bpf_ratio:>9} {setup:>7.1}  {}",
            added.map_or_else(String::new, |a| format!("{a:+.0}")),
            if config.mode == "none" {
                String::new()
            } else {
                format!("{bpf:.0}")
            },
            programs(value),
        );
    }
    for target in targets {
        let verdict = match (target.check)(&rows) {
            Some((true, detail)) => format!("met ({detail})"),
            Some((false, detail)) => format!("NOT met ({detail})"),
            None => "not measured (rows missing)".to_string(),
        };
        let _ = writeln!(out, "  target {}: {verdict}", target.text);
    }
    ok
}

/// The typical disturbance of a round: the median round's ns/op minus the fastest's
/// (outlier rounds do not count, unlike the range).
fn spread(value: &Value) -> f64 {
    match (
        value["median_ns_per_op"].as_f64(),
        value["ns_per_op"].as_f64(),
    ) {
        (Some(median), Some(fastest)) => median - fastest,
        _ => 0.0,
    }
}

/// `name ns/run (runs/op)` for each program that ran.
fn programs(value: &Value) -> String {
    let ops = value["ops"].as_f64().unwrap_or(0.0);
    let mut parts = Vec::new();
    for p in value["programs"].as_array().into_iter().flatten() {
        let runs = p["run_cnt"].as_f64().unwrap_or(0.0);
        if runs == 0.0 {
            continue;
        }
        let per_op = if ops > 0.0 { runs / ops } else { 0.0 };
        parts.push(format!(
            "{} {:.0} ({per_op:.1})",
            p["name"].as_str().unwrap_or("?"),
            p["ns_per_run"].as_f64().unwrap_or(0.0),
        ));
    }
    parts.join(", ")
}

fn compile_row(out: &mut String, results: &Results) -> bool {
    let _ = writeln!(
        out,
        "\n### policy parse+compile, 100k generated rules (native, release)"
    );
    let Some(value) = results.get(&("compile".to_string(), "none".to_string(), 100_000)) else {
        let _ = writeln!(out, "not available: no result (see the output above)");
        return false;
    };
    if let Some(err) = value["error"].as_str() {
        let _ = writeln!(out, "not available: {}", short(err));
        return true;
    }
    let ms = |key: &str| value[key].as_f64().unwrap_or(0.0) / 1e6;
    let (parse, compile) = (ms("parse_ns"), ms("compile_ns"));
    let _ = writeln!(
        out,
        "parse+validate {parse:.0} ms, compile {compile:.0} ms, {} map entries",
        value["entries"]
    );
    let total = parse + compile;
    let verdict = if total < 1000.0 { "met" } else { "NOT met" };
    let _ = writeln!(
        out,
        "  target issue 3: compiling 100k rules takes under a second: {verdict} ({total:.0} ms parse+compile)"
    );
    true
}

/// Policy-file write to enforcement, through a daemon's file watch (issue 7's target).
fn reload_row(out: &mut String, results: &Results) -> bool {
    let _ = writeln!(
        out,
        "\n### policy reload: file written -> new rule enforced (native, daemon)"
    );
    let Some(value) = results.get(&("reload".to_string(), "real".to_string(), 1)) else {
        let _ = writeln!(out, "not available: no result (see the output above)");
        return false;
    };
    let ms = |key: &str| value[key].as_f64().unwrap_or(0.0) / 1e6;
    let (p50, p99, max) = (
        ms("switch_p50_ns"),
        ms("switch_p99_ns"),
        ms("switch_max_ns"),
    );
    let _ = writeln!(
        out,
        "{} reloads, write -> enforced (the daemon's switch): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        value["reloads"]
    );
    let (o50, o99, omax) = (ms("p50_ns"), ms("p99_ns"), ms("max_ns"));
    let _ = writeln!(
        out,
        "  write -> seen by a sandboxed task: p50 {o50:.2} ms, p99 {o99:.2} ms, max {omax:.2} ms (load average {})",
        value["loadavg"].as_str().unwrap_or("?")
    );
    let verdict = if p99 < 50.0 { "met" } else { "NOT met" };
    let _ = writeln!(
        out,
        "  target issue 7: p99 under 50 ms: {verdict} ({p99:.2} ms to enforcement; the peer we compare with takes about 10 s)"
    );
    true
}

/// `nemoclaw-bench router`, with `LiteLLM` installed first (its venv): adds the router
/// table to `out`; false if it has no result.
fn run_router(bin: &Path, out: &mut String, results: &mut Results) -> Result<bool> {
    let litellm = bench_python::litellm_venv();
    eprintln!(
        "xtask bench: native privacy router next to LiteLLM (latency, first token, throughput, detection)"
    );
    let mut cmd = Command::new(bin);
    cmd.arg("router").stderr(Stdio::inherit());
    match &litellm {
        Ok(venv) => {
            cmd.arg("--litellm").arg(venv);
        }
        Err(err) => eprintln!("xtask bench: LiteLLM not installed: {err:#}"),
    }
    let output = util::capture(&mut cmd)?;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        parse_line(line, results);
    }
    let install_error = litellm.err().map(|err| format!("not installed: {err:#}"));
    Ok(router_table(out, results, install_error.as_deref()))
}

/// The targets for the privacy router (judged in the report, never asserted).
const ROUTER_P50_ADDED_32K_MS: f64 = 0.5;
const ROUTER_FIRST_TOKEN_ADDED_MS: f64 = 2.0;
/// How many times less than `LiteLLM` the router must add.
const ROUTER_BELOW_LITELLM: f64 = 10.0;
const ROUTER_DETECTION_MB_S: f64 = 200.0;

/// One row of the router table: the direct call's figure, and the router's and `LiteLLM`'s
/// (for latencies: what each adds to the direct call).
struct RouterRow {
    label: String,
    direct: Option<f64>,
    nemoclaw: Option<f64>,
    litellm: Option<f64>,
    /// Each target's text and whether it is met (`None`: not measured).
    targets: Vec<(String, Option<bool>)>,
}

impl RouterRow {
    /// `LiteLLM`'s figure over the router's.
    fn ratio(&self) -> String {
        match (self.nemoclaw, self.litellm) {
            (Some(n), Some(l)) if n > 0.0 && l >= n => format!("{:.1}", l / n),
            (Some(n), Some(l)) if n > 0.0 => format!("{:.3}", l / n),
            (Some(_), Some(l)) if l > 0.0 => "inf".to_string(),
            _ => "-".to_string(),
        }
    }

    /// The [`ROUTER_BELOW_LITELLM`] target on this row's added latencies: met when `LiteLLM`
    /// adds that many times more (or adds something while the router adds nothing measurable).
    fn below_litellm(&self) -> (String, Option<bool>) {
        let met = match (self.nemoclaw, self.litellm) {
            (Some(n), Some(l)) if n > 0.0 => Some(l / n >= ROUTER_BELOW_LITELLM),
            (Some(_), Some(l)) => Some(l > 0.0),
            _ => None,
        };
        (format!(">={ROUTER_BELOW_LITELLM:.0}x below LiteLLM"), met)
    }
}

/// The p50 and p99 rows of one latency phase (`phase` has `direct`, `nemoclaw` and
/// maybe `litellm`, each with `p50_us` and `p99_us`), as added milliseconds. The targets
/// are judged on the p50 row (`p50_limit`: an at-most target in ms); a p99 of a few hundred
/// requests on a shared two-core host is shown, not judged.
fn added_rows(what: &str, phase: &Value, p50_limit: Option<f64>) -> Vec<RouterRow> {
    let ms = |system: &str, key: &str| phase[system][key].as_f64().map(|us| us / 1e3);
    ["p50", "p99"]
        .into_iter()
        .map(|p| {
            let key = format!("{p}_us");
            let direct = ms("direct", &key);
            let added = |system: &str| Some(ms(system, &key)? - direct?);
            let mut row = RouterRow {
                label: format!("{what}: {p} added (ms)"),
                direct,
                nemoclaw: added("nemoclaw"),
                litellm: added("litellm"),
                targets: Vec::new(),
            };
            if p == "p50" {
                if let Some(limit) = p50_limit {
                    let met = row.nemoclaw.map(|n| n <= limit);
                    row.targets.push((format!("<={limit} ms"), met));
                }
                row.targets.push(row.below_litellm());
            }
            row
        })
        .collect()
}

/// Every row of the router table from the `router` result.
fn router_rows(value: &Value) -> Vec<RouterRow> {
    let mut rows = Vec::new();
    for phase in value["latency"].as_array().into_iter().flatten() {
        let kib = phase["prompt_bytes"].as_u64().unwrap_or(0) >> 10;
        let limit = (kib == 32).then_some(ROUTER_P50_ADDED_32K_MS);
        let what = format!("{kib} KiB");
        rows.extend(added_rows(&what, phase, limit));
    }
    let ttft = &value["ttft"];
    let what = format!(
        "first token, {} KiB",
        ttft["prompt_bytes"].as_u64().unwrap_or(0) >> 10
    );
    rows.extend(added_rows(&what, ttft, Some(ROUTER_FIRST_TOKEN_ADDED_MS)));
    let rate = &value["throughput"];
    let rps = |system: &str| rate[system]["requests_per_s"].as_f64();
    rows.push(RouterRow {
        label: format!(
            "req/s, {} clients, {} KiB",
            rate["clients"],
            rate["prompt_bytes"].as_u64().unwrap_or(0) >> 10
        ),
        direct: rps("direct"),
        nemoclaw: rps("nemoclaw"),
        litellm: rps("litellm"),
        targets: Vec::new(),
    });
    // One row per text; the target is judged on the mixed one (what agents send).
    for text in value["detector"].as_array().into_iter().flatten() {
        let mb_s = |system: &str| text[system]["bytes_per_s"].as_f64().map(|b| b / 1e6);
        let nemoclaw = mb_s("nemoclaw");
        let name = text["text"].as_str().unwrap_or("?");
        rows.push(RouterRow {
            label: format!("detect MB/s, {name} ({}/MiB)", text["nemoclaw"]["findings"]),
            direct: None,
            nemoclaw,
            litellm: mb_s("litellm"),
            targets: if name == "mixed" {
                vec![(
                    format!(">={ROUTER_DETECTION_MB_S:.0} MB/s"),
                    nemoclaw.map(|n| n >= ROUTER_DETECTION_MB_S),
                )]
            } else {
                Vec::new()
            },
        });
    }
    rows
}

/// The privacy router next to a direct call and to `LiteLLM` (the figures and
/// targets); `litellm_missing` says why `LiteLLM` was not installed, if it was not.
fn router_table(out: &mut String, results: &Results, litellm_missing: Option<&str>) -> bool {
    let _ = writeln!(
        out,
        "\n### privacy router next to LiteLLM (native; direct, NemoClaw and LiteLLM interleaved on keep-alive connections)"
    );
    let Some(value) = results.get(&("router".to_string(), "real".to_string(), 0)) else {
        let _ = writeln!(out, "not available: no result (see the output above)");
        return false;
    };
    let litellm = &value["litellm"];
    let how = match (litellm_missing, litellm["error"].as_str()) {
        (Some(why), _) => format!("not measured: {}", short(why)),
        (None, Some(err)) => format!("not measured: {}", short(err)),
        (None, None) => format!(
            "{}, {}; {}; the stand-in received the prompt's values: {}",
            litellm["version"].as_str().unwrap_or("?"),
            litellm["server"].as_str().unwrap_or("?"),
            litellm["masking"].as_str().unwrap_or("?"),
            if litellm["masks_values"].as_bool() == Some(true) {
                "no"
            } else {
                "YES"
            },
        ),
    };
    let _ = writeln!(
        out,
        "NemoClaw: nemoclaw router as nobody, policy masks email, phone, payment_card, us_ssn, secret (restored), every detector on"
    );
    let _ = writeln!(out, "LiteLLM: {how}");
    let kib = |phase: &Value| phase["prompt_bytes"].as_u64().unwrap_or(0) >> 10;
    let counts: Vec<String> = value["latency"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|phase| format!("{} KiB {}", kib(phase), phase["requests"]))
        .chain(std::iter::once(format!(
            "streamed {} KiB {}",
            kib(&value["ttft"]),
            value["ttft"]["requests"]
        )))
        .collect();
    let _ = writeln!(out, "requests per system: {}", counts.join(", "));
    let _ = writeln!(
        out,
        "{:<36} {:>9} {:>10} {:>10} {:>9}  targets",
        "figure", "direct", "NemoClaw", "LiteLLM", "LL/NC"
    );
    let cell = |v: Option<f64>| match v {
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
        None => "-".to_string(),
    };
    for row in router_rows(value) {
        let targets: Vec<String> = row
            .targets
            .iter()
            .map(|(text, met)| {
                let verdict = match met {
                    Some(true) => "PASS",
                    Some(false) => "MISS",
                    None => "not measured",
                };
                format!("{text} {verdict}")
            })
            .collect();
        let _ = writeln!(
            out,
            "{:<36} {:>9} {:>10} {:>10} {:>9}  {}",
            row.label,
            cell(row.direct),
            cell(row.nemoclaw),
            cell(row.litellm),
            row.ratio(),
            targets.join("; ")
        );
    }
    let errors: Vec<String> = ["direct", "nemoclaw", "litellm"]
        .iter()
        .filter_map(|s| {
            let e = value["throughput"][s]["errors"].as_u64()?;
            (e > 0).then(|| format!("{s} {e}"))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "  throughput errors: {}", errors.join(", "));
    }
    let _ = writeln!(
        out,
        "  added = the system's percentile - the direct call's (direct: its own latency, ms), requests back to\n  \
         back; first token = until the first event with text; LL/NC = LiteLLM's figure / NemoClaw's (added:\n  \
         how many times more LiteLLM adds; req/s and MB/s: below 1 means LiteLLM does less); detect: findings\n  \
         of nemoclaw-detect per MiB; MB = 10^6 bytes"
    );
    true
}

/// An error on one line, cut to a readable length (a verifier log runs to pages; the
/// whole text is in the results file).
fn short(err: &str) -> String {
    const HEAD: usize = 200;
    const TAIL: usize = 120;
    let flat = err.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars: Vec<char> = flat.chars().collect();
    if chars.len() <= HEAD + TAIL {
        return flat;
    }
    let head: String = chars[..HEAD].iter().collect();
    let tail: String = chars[chars.len() - TAIL..].iter().collect();
    format!("{head} [...] {tail}")
}

/// Writes every result line (JSON) to `target/nemoclaw-bench/results.jsonl`.
fn save(all: &[(String, Results)]) -> Result<PathBuf> {
    let dir = util::target_dir().join("nemoclaw-bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("results.jsonl");
    let mut text = String::new();
    for (place, results) in all {
        for value in results.values() {
            let mut value = value.clone();
            if let Some(obj) = value.as_object_mut() {
                obj.insert("place".into(), place.clone().into());
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
    let workload = value["workload"].as_str().unwrap_or_default().to_string();
    let mode = value["mode"].as_str().unwrap_or_default().to_string();
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
            "echo 'xtask bench: vm {} {}' >&2; {} {}",
            config.workload,
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
