//! The console tables of the per-operation benches, the issues' targets judged on them,
//! and the compile and reload rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::Results;
use super::configs::Workload;

/// A target from the issues, judged on one table.
pub struct Target {
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

pub const OPEN_TARGETS: [Target; 2] = [
    Target {
        text: "issue 4: nemoclaw's added cost <= 2x the floor's (asked at 10k rules; judged at 100k)",
        check: |rows| ratio_at_most(rows, "nemoclaw 100k", 2.0),
    },
    Target {
        text: "issue 4: added cost grows <= 20% from 10 to 100k rules (asked from 100)",
        check: |rows| growth_at_most(rows, "nemoclaw 10", "nemoclaw 100k", 0.2),
    },
];

pub const EXEC_TARGETS: [Target; 2] = [
    Target {
        text: "issue 5: nemoclaw's added cost <= 1.5x the floor's (10 binaries)",
        check: |rows| ratio_at_most(rows, "nemoclaw 10", 1.5),
    },
    Target {
        text: "issue 5: nemoclaw's added cost <= 1.5x the floor's (100k binaries; asked at 10k)",
        check: |rows| ratio_at_most(rows, "nemoclaw 100k", 1.5),
    },
];

pub const NET_TARGETS: [Target; 3] = [
    Target {
        text: "issue 6: nemoclaw's added cost <= 1.5x the floor's (10 rules)",
        check: |rows| ratio_at_most(rows, "nemoclaw 10", 1.5),
    },
    Target {
        text: "issue 6: nemoclaw's added cost <= 1.5x the floor's (100k rules)",
        check: |rows| ratio_at_most(rows, "nemoclaw 100k", 1.5),
    },
    Target {
        text: "issue 6: flat in the number of rules (<= 20% from 10 to 100k)",
        check: |rows| growth_at_most(rows, "nemoclaw 10", "nemoclaw 100k", 0.2),
    },
];

/// Prints one workload's table and its targets; false if a row has no result.
pub fn table(out: &mut String, workload: &Workload, results: &Results, targets: &[Target]) -> bool {
    let _ = writeln!(out, "\n### {}", workload.title);
    let _ = writeln!(
        out,
        "{:<20} {:>11} {:>8} {:>11} {:>10} {:>10} {:>9} {:>7}  programs: ns/run (runs/op)",
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
                "{label:<20} not available: no result (see the output above)"
            );
            continue;
        };
        if let Some(err) = value["error"].as_str() {
            let _ = writeln!(out, "{label:<20} not available: {}", short(err));
            continue;
        }
        if let Some(why) = value["unsupported"].as_str() {
            let _ = writeln!(out, "{label:<20} unsupported: {why}");
            continue;
        }
        let Some(ns) = value["ns_per_op"].as_f64() else {
            ok = false;
            let _ = writeln!(out, "{label:<20} not available: result without ns_per_op");
            continue;
        };
        rows.by_label.insert(label.clone(), value);
        let spread = spread(value);
        let system = config.system;
        let enforcing = !matches!(system, "none" | "floor");
        let added = none.filter(|_| system != "none").map(|n| ns - n);
        let wall_ratio = match (enforcing, added, floor_added) {
            (true, Some(_), Some(f)) if f.abs() <= noise => "~".to_string(),
            (true, Some(a), Some(f)) => format!("{:.2}", a / f),
            _ => String::new(),
        };
        let bpf = value["bpf_ns_per_op"].as_f64().unwrap_or(0.0);
        let setup = value["setup_ns"].as_f64().unwrap_or(0.0) / 1e9;
        let bpf_ratio = match (system.starts_with("nemoclaw"), floor_bpf) {
            (true, Some(f)) if f > 0.0 => format!("{:.2}", bpf / f),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{label:<20} {ns:>11.0} {spread:>8.0} {:>11} {wall_ratio:>10} {:>10} {bpf_ratio:>9} {setup:>7.1}  {}",
            added.map_or_else(String::new, |a| format!("{a:+.0}")),
            if matches!(system, "none" | "landlock" | "apparmor") {
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

pub fn compile_row(out: &mut String, results: &Results) -> bool {
    let _ = writeln!(
        out,
        "\n### policy parse+compile of generated rules (native, release)"
    );
    let mut ok = true;
    for rules in [1000, 100_000] {
        let label = super::configs::rules_label(rules);
        let Some(value) = results.get(&("compile".to_string(), "nemoclaw".to_string(), rules))
        else {
            let _ = writeln!(
                out,
                "{label:>5}: not available: no result (see the output above)"
            );
            ok = false;
            continue;
        };
        if let Some(err) = value["error"].as_str() {
            let _ = writeln!(out, "{label:>5}: not available: {}", short(err));
            continue;
        }
        let ms = |key: &str| value[key].as_f64().unwrap_or(0.0) / 1e6;
        let (parse, compile) = (ms("parse_ns"), ms("compile_ns"));
        let _ = writeln!(
            out,
            "{label:>5}: parse+validate {parse:.1} ms, compile {compile:.1} ms, {} map entries",
            value["entries"]
        );
        if rules == 100_000 {
            let total = parse + compile;
            let verdict = if total < 1000.0 { "met" } else { "NOT met" };
            let _ = writeln!(
                out,
                "  target issue 3: compiling 100k rules takes under a second: {verdict} ({total:.0} ms parse+compile)"
            );
        }
    }
    ok
}

/// Policy-file write to enforcement, through a daemon's file watch (issue 7's target).
pub fn reload_row(out: &mut String, results: &Results) -> bool {
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

/// An error on one line, cut to a readable length (a verifier log runs to pages; the
/// whole text is in the results file).
pub fn short(err: &str) -> String {
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
