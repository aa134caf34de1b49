//! `cargo xtask bench --only make|untar-grep|start`: the macro benchmarks, in the VM boot
//! of the LSM benches (the 6.12 guest has `landlock`, `apparmor` and `bpf` active).
//!
//! Each is one `nemoclaw-bench` process that runs the workload under every system
//! round-robin and prints one `NEMOCLAW_BENCH` line per system (`macro_run.rs`, `start.rs`
//! in `nemoclaw-bench`): `make` (`make -j1` of a generated C project), `untar-grep` (`tar
//! -xf` of real header trees, then `grep -rn`), `start` (`/bin/true` in a fresh sandbox).
//! The report gives each system's whole-run wall time (fastest and median of the runs) and
//! its ratio to `none`'s.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::util;

/// The macro workloads, as `--only` names them.
pub const WORKLOADS: [&str; 3] = ["make", "untar-grep", "start"];

/// Timed runs per system (after one untimed round).
pub const RUNS: usize = 5;

/// The systems of the make and untar-grep runs, in round-robin order. `nemoclaw` runs
/// through a private daemon (programs loaded once, as `AppArmor`'s profile is); a
/// standalone run's start (loading its programs every time, tens of seconds
/// under TCG) is what `start` measures, and would swamp the workload here.
const MACRO_SYSTEMS: &str = "none,nemoclaw,landlock,apparmor";

/// The systems of the start run.
const START_SYSTEMS: &str = "none,nemoclaw,nemoclaw-standalone,landlock,apparmor";

/// The `nemoclaw-bench` arguments of one selected workload.
pub fn bench_args(workload: &str, runs: usize) -> Option<Vec<String>> {
    let runs = runs.to_string();
    let words: Vec<&str> = match workload {
        "make" => vec!["macro", "--scenario", "make", "--systems", MACRO_SYSTEMS],
        "untar-grep" => vec![
            "macro",
            "--scenario",
            "untar-grep",
            "--systems",
            MACRO_SYSTEMS,
        ],
        "start" => vec!["start", "--systems", START_SYSTEMS],
        _ => return None,
    };
    let mut out: Vec<String> = words.into_iter().map(str::to_string).collect();
    out.extend(["--runs".to_string(), runs]);
    Some(out)
}

/// The shell lines that run the selected macro workloads in the VM (`bin`: the
/// `nemoclaw-bench` path, the same in the guest); empty when none is selected.
pub fn vm_script(bin: &str, selects: impl Fn(&str) -> bool) -> String {
    let mut script = String::new();
    for workload in WORKLOADS.into_iter().filter(|w| selects(w)) {
        let Some(args) = bench_args(workload, RUNS) else {
            continue;
        };
        let words: Vec<String> = args.iter().map(|w| util::shell_quote(w)).collect();
        let _ = writeln!(
            script,
            "echo 'xtask bench: vm {workload} (macro)' >&2; {} {}",
            util::shell_quote(bin),
            words.join(" ")
        );
    }
    script
}

/// Extra guest time the selected macro workloads need (seconds, under TCG).
pub fn vm_seconds(selects: impl Fn(&str) -> bool) -> u64 {
    WORKLOADS
        .into_iter()
        .filter(|w| selects(w))
        .map(|w| if w == "start" { 300 } else { 900 })
        .sum()
}

fn title(workload: &str) -> &'static str {
    match workload {
        "make" => "make -j1 of a generated C project (12 units + main, gcc -O2), whole run",
        "untar-grep" => {
            "tar -xf of /usr/include/{linux,c++,llvm-14,node} (5,600 files, 98 MB) + grep -rn, whole run"
        }
        _ => "sandbox start: /bin/true in a fresh sandbox, spawn to exit",
    }
}

/// One row: fastest and median seconds, and their ratios to `none`'s.
fn row(value: &Value, none: Option<&Value>) -> String {
    if let Some(why) = value["unsupported"].as_str() {
        return format!("not measured: {why}");
    }
    if let Some(err) = value["error"].as_str() {
        return format!(
            "error: {}",
            err.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    let ns = |v: &Value, key: &str| v[key].as_f64();
    let (Some(fast), Some(median)) = (ns(value, "ns_per_op"), ns(value, "median_ns_per_op")) else {
        return "no result".to_string();
    };
    let ratio = |key: &str, own: f64| match none.and_then(|n| ns(n, key)) {
        Some(base) if base > 0.0 => format!("{:.2}", own / base),
        _ => "-".to_string(),
    };
    let runs: Vec<String> = value["rounds_ns_per_op"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .map(|ns| format!("{:.2}", ns / 1e9))
        .collect();
    format!(
        "{:>10.3} {:>10.3} {:>8} {:>8}  {}",
        fast / 1e9,
        median / 1e9,
        ratio("ns_per_op", fast),
        ratio("median_ns_per_op", median),
        runs.join(" ")
    )
}

/// The macro tables of the selected workloads from one VM run's results (keyed by
/// workload, mode, rules); false if a selected workload has no result at all.
pub fn report(
    out: &mut String,
    results: &BTreeMap<(String, String, usize), Value>,
    selects: impl Fn(&str) -> bool,
) -> bool {
    let mut all_ok = true;
    for workload in WORKLOADS.into_iter().filter(|w| selects(w)) {
        let rows: Vec<&Value> = results
            .iter()
            .filter(|((w, _, _), _)| w == workload)
            .map(|(_, v)| v)
            .collect();
        let _ = writeln!(out, "\n### {workload}: {}", title(workload));
        if rows.is_empty() {
            let _ = writeln!(out, "not available: no result (see the output above)");
            all_ok = false;
            continue;
        }
        let none = rows.iter().copied().find(|v| v["mode"] == "none");
        let _ = writeln!(
            out,
            "{:<19} {:>5} {:>10} {:>10} {:>8} {:>8}  every run (s, in order)",
            "system", "rules", "fastest s", "median s", "x none", "x none"
        );
        let order = START_SYSTEMS.split(',');
        for system in order {
            for value in rows.iter().filter(|v| v["mode"] == system) {
                let _ = writeln!(
                    out,
                    "{system:<19} {:>5} {}",
                    value["rules"].as_u64().unwrap_or(0),
                    row(value, none)
                );
            }
        }
        let runs = none
            .and_then(|n| n["rounds_ns_per_op"].as_array())
            .map_or(0, Vec::len);
        let _ = writeln!(
            out,
            "  {runs} runs per system after an untimed round, systems round-robin; x none = the\n  \
             system's fastest (median) / none's fastest (median). nemoclaw: `nemoclaw run`\n  \
             through a daemon (programs loaded once, as apparmor_parser loads the profile once);\n  \
             nemoclaw-standalone: `nemoclaw run --standalone` (loads its programs every run). Each system\n  \
             was first checked to refuse a read outside its grants. Same grants\n  \
             everywhere: work dir rw, /usr /lib /lib64 /bin /etc ro, exec of the workload's binaries."
        );
    }
    all_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_script_runs_only_the_selected_workloads() {
        let script = vm_script("/w/nemoclaw-bench", |w| w == "make" || w == "start");
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(
            "/w/nemoclaw-bench macro --scenario make --systems none,nemoclaw,landlock,apparmor --runs 5"
        ));
        assert!(lines[1].contains("/w/nemoclaw-bench start --systems "));
        assert!(vm_script("/b", |w| w == "open").is_empty());
        assert_eq!(vm_seconds(|w| w == "make" || w == "start"), 1200);
        assert_eq!(bench_args("open", 5), None);
    }

    #[test]
    fn the_report_gives_ratios_to_none() {
        let mut results = BTreeMap::new();
        let entry = |mode: &str, rules: usize, fast: u64, median: u64| {
            (
                ("make".to_string(), mode.to_string(), rules),
                json!({"workload": "make", "mode": mode, "rules": rules,
                       "ns_per_op": fast, "median_ns_per_op": median,
                       "rounds_ns_per_op": [median, fast]}),
            )
        };
        results.extend([
            entry("none", 0, 2_000_000_000, 2_500_000_000),
            entry("landlock", 21, 2_200_000_000, 2_500_000_000),
        ]);
        results.insert(
            ("make".to_string(), "apparmor".to_string(), 0),
            json!({"workload": "make", "mode": "apparmor", "rules": 0,
                   "unsupported": "apparmor_parser missing"}),
        );
        let mut out = String::new();
        assert!(report(&mut out, &results, |w| w == "make"));
        let words = |start: &str| -> Vec<String> {
            out.lines()
                .find(|l| l.starts_with(start))
                .map(|l| l.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            words("landlock"),
            [
                "landlock", "21", "2.200", "2.500", "1.10", "1.00", "2.50", "2.20"
            ]
        );
        assert_eq!(
            words("none"),
            [
                "none", "0", "2.000", "2.500", "1.00", "1.00", "2.50", "2.00"
            ]
        );
        assert_eq!(
            words("apparmor").join(" "),
            "apparmor 0 not measured: apparmor_parser missing"
        );
        let mut out = String::new();
        assert!(!report(&mut out, &results, |w| w == "start"));
    }
}
