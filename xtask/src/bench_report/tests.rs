//! The report writer on synthetic rows: parsing of each row kind, unsupported rows, the
//! target verdicts, the plots.

use serde_json::json;

use super::rows::{Outcome, parse, row};
use super::targets::{TARGET_FLAT, TARGET_MACRO, TARGET_PEERS, TARGET_RELOAD, Verdict, judge};
use super::{RunFacts, render};

fn facts() -> RunFacts {
    RunFacts {
        date: "2026-12-06 23:00 UTC".into(),
        commit: "0123456789abcdef".into(),
        source: "target/nemoclaw-bench/results.jsonl".into(),
    }
}

fn timed(scenario: &str, system: &str, rules: u64, place: &str, ns: f64) -> String {
    json!({
        "scenario": scenario, "system": system, "rules": rules, "place": place,
        "kernel": if place == "native" { "6.8.0-test" } else { "6.12.48+deb13-amd64" },
        "ns_per_op": ns, "median_ns_per_op": ns * 1.1,
        "rounds_ns_per_op": [ns, ns * 1.1, ns * 1.2],
        "bpf_ns_per_op": if system == "none" { 0.0 } else { ns / 20.0 },
        "programs": {"file_open": {"ns_per_run": 12.5, "run_cnt": 100}},
        "setup_ns": 1000,
    })
    .to_string()
}

fn unsupported(scenario: &str, system: &str, rules: u64, why: &str) -> String {
    json!({"scenario": scenario, "system": system, "rules": rules, "place": "vm 6.12",
           "kernel": "6.12.48+deb13-amd64", "unsupported": why})
    .to_string()
}

/// A run where `NemoClaw` beats both peers on open-read-d2 but not `AppArmor` on exec, stays
/// flat on open-read-d2 but not on exec, meets the macro target on make but not on
/// untar-grep, and reloads within the target.
fn sample() -> String {
    let vm = "vm 6.12";
    let mut lines = vec![
        timed("open-read-d2", "none", 0, vm, 1000.0),
        timed("open-read-d2", "floor", 0, vm, 1050.0),
        timed("open-read-d2", "nemoclaw", 10, vm, 1100.0),
        timed("open-read-d2", "nemoclaw", 1000, vm, 1110.0),
        timed("open-read-d2", "nemoclaw", 100_000, vm, 1150.0),
        timed("open-read-d2", "landlock", 10, vm, 1150.0),
        timed("open-read-d2", "landlock", 1000, vm, 1300.0),
        unsupported(
            "open-read-d2",
            "landlock",
            100_000,
            "more rules than the ruleset's limit",
        ),
        timed("open-read-d2", "apparmor", 1000, vm, 1200.0),
        timed("exec", "none", 0, vm, 100_000.0),
        timed("exec", "nemoclaw", 10, vm, 110_000.0),
        timed("exec", "nemoclaw", 1000, vm, 150_000.0),
        timed("exec", "nemoclaw", 100_000, vm, 150_000.0),
        timed("exec", "apparmor", 1000, vm, 120_000.0),
        unsupported(
            "exec",
            "landlock",
            1000,
            "Landlock has no exec rule by inode",
        ),
        timed("make", "none", 0, vm, 2e9),
        timed("make", "nemoclaw", 1000, vm, 2.02e9),
        timed("untar-grep", "none", 0, vm, 1e9),
        timed("untar-grep", "nemoclaw", 1000, vm, 1.1e9),
    ];
    lines.push(
        json!({"scenario": "reload", "system": "nemoclaw-daemon", "rules": 1, "place": "native",
               "kernel": "6.8.0-test", "reloads": 200, "p50_ns": 900_000, "p99_ns": 6_000_000,
               "max_ns": 9_000_000, "switch_p50_ns": 500_000, "switch_p99_ns": 2_000_000,
               "switch_max_ns": 3_000_000, "loadavg": "1.50"})
        .to_string(),
    );
    lines.push(
        json!({"scenario": "compile", "system": "nemoclaw", "rules": 100_000, "place": "native",
               "kernel": "6.8.0-test", "parse_ns": 5_000_000, "compile_ns": 80_000_000,
               "entries": 100_004})
        .to_string(),
    );
    lines.push(
        json!({"scenario": "tcp", "system": "landlock", "rules": 1000, "place": "native",
               "error": "landlock: ruleset\ncreation failed"})
        .to_string(),
    );
    lines.push(json!({"workload": "router", "mode": "real", "rules": 0}).to_string());
    lines.push("not json".into());
    lines.join("\n")
}

#[test]
fn parses_each_row_kind() {
    let (rows, skipped) = parse(&sample());
    assert_eq!(skipped, 2, "the router row and the non-JSON line");
    let open = rows
        .iter()
        .find(|r| r.scenario == "open-read-d2" && r.system == "nemoclaw" && r.rules == 1000)
        .unwrap();
    let Outcome::Timed(t) = &open.outcome else {
        panic!("{open:?}")
    };
    assert!((t.ns_per_op - 1110.0).abs() < 1e-9);
    assert_eq!(t.rounds.len(), 3);
    assert_eq!(t.programs, vec![("file_open".to_string(), 12.5)]);
    assert!((t.spread() - 111.0).abs() < 1e-6);
    assert!(rows.iter().any(|r| matches!(
        &r.outcome,
        Outcome::Compile {
            entries: 100_004,
            ..
        }
    )));
    assert!(rows.iter().any(|r| matches!(&r.outcome,
        Outcome::Reload(reload) if reload.switch_p99_ns == Some(2e6))));
    assert!(rows.iter().any(|r| matches!(&r.outcome,
        Outcome::Unsupported(why) if why == "Landlock has no exec rule by inode")));
    assert!(rows.iter().any(|r| matches!(&r.outcome,
        Outcome::Error(e) if e.contains("creation failed"))));
}

#[test]
fn maps_todays_rows() {
    let open = row(
        &json!({"workload": "open", "mode": "real", "rules": 100, "place": "vm 6.12",
        "kernel": "6.12.48", "ns_per_op": 900.0, "median_ns_per_op": 950.0,
        "rounds": [900.0, 950.0], "bpf_ns_per_op": 40.0,
        "programs": [{"name": "file_open", "ns_per_run": 39.0, "run_cnt": 10}]}),
    )
    .unwrap();
    assert_eq!(
        (open.scenario.as_str(), open.system.as_str()),
        ("open-read-d2", "nemoclaw")
    );
    let Outcome::Timed(t) = &open.outcome else {
        panic!()
    };
    assert_eq!(t.rounds, vec![900.0, 950.0]);
    assert_eq!(t.programs, vec![("file_open".to_string(), 39.0)]);
    let compile = row(
        &json!({"workload": "compile", "mode": "none", "rules": 100_000,
        "parse_ns": 1, "compile_ns": 2, "entries": 3}),
    )
    .unwrap();
    assert_eq!(
        (compile.system.as_str(), compile.place.as_str()),
        ("nemoclaw", "native")
    );
    let reload = row(
        &json!({"workload": "reload", "mode": "real", "rules": 1, "reloads": 2,
        "p99_ns": 5, "switch_p99_ns": 4}),
    )
    .unwrap();
    assert_eq!(reload.system, "nemoclaw-daemon");
    let floor =
        row(&json!({"workload": "udp", "mode": "floor", "rules": 0, "ns_per_op": 1.0})).unwrap();
    assert_eq!(
        (floor.scenario.as_str(), floor.system.as_str()),
        ("udp", "floor")
    );
    assert!(row(&json!({"workload": "router", "mode": "real"})).is_none());
}

#[test]
fn unsupported_rows_appear_in_the_tables() {
    let (rows, _) = parse(&sample());
    let report = render(&rows, &facts()).unwrap();
    assert!(
        report
            .markdown
            .contains("| Landlock | 100k | cannot express: more rules than the ruleset's limit |"),
        "{}",
        report.markdown
    );
    assert!(
        report
            .markdown
            .contains("cannot express: Landlock has no exec rule by inode")
    );
    assert!(
        report
            .markdown
            .contains("| Landlock | 1k | error: landlock: ruleset creation failed |")
    );
    assert!(
        report
            .markdown
            .contains("One command reproduces it: `cargo xtask bench`.")
    );
    assert!(report.markdown.contains("commit `0123456789abcdef`"));
    assert!(report.markdown.contains("(docs/bench/open-read-d2.svg)"));
}

#[test]
fn verdicts_met_and_missed() {
    let (rows, _) = parse(&sample());
    let verdicts = judge(&rows);
    let verdict = |target: &str, scenario: &str| {
        verdicts
            .iter()
            .find(|j| j.target == target && j.scenario == scenario)
            .map(|j| j.verdict)
    };
    // open: NemoClaw +11% against Landlock's +30% and AppArmor's +20%.
    assert_eq!(verdict(TARGET_PEERS, "open-read-d2"), Some(Verdict::Met));
    // exec: NemoClaw +50% against AppArmor's +20% (Landlock cannot express the rules).
    assert_eq!(verdict(TARGET_PEERS, "exec"), Some(Verdict::NotMet));
    assert_eq!(verdict(TARGET_FLAT, "open-read-d2"), Some(Verdict::Met));
    assert_eq!(verdict(TARGET_FLAT, "exec"), Some(Verdict::NotMet));
    assert_eq!(verdict(TARGET_MACRO, "make"), Some(Verdict::Met));
    assert_eq!(verdict(TARGET_MACRO, "untar-grep"), Some(Verdict::NotMet));
    assert_eq!(verdict(TARGET_RELOAD, "reload"), Some(Verdict::Met));
    let markdown = render(&rows, &facts()).unwrap().markdown;
    assert!(markdown.contains(&format!(
        "- **{TARGET_PEERS}: NOT met** (1 of 2 judged met)"
    )));
    assert!(markdown.contains(&format!("- **{TARGET_RELOAD}: met** (1 of 1 judged met)")));
    assert!(markdown.contains("| exec | vm 6.12 | +50.0% | cannot express | +20.0% | NOT met |"));
}

#[test]
fn peers_met_when_the_difference_is_within_the_noise() {
    let vm = "vm 6.12";
    // NemoClaw's fastest round (+12%) is faster than Landlock's median round (+21%).
    let text = [
        timed("stat", "none", 0, vm, 1000.0),
        timed("stat", "nemoclaw", 1000, vm, 1120.0),
        timed("stat", "landlock", 1000, vm, 1100.0),
    ]
    .join("\n");
    let (rows, _) = parse(&text);
    let verdicts = judge(&rows);
    let peers = verdicts.iter().find(|j| j.target == TARGET_PEERS).unwrap();
    assert_eq!(peers.verdict, Verdict::Met, "{peers:?}");
    assert!(peers.detail.contains("within the noise"), "{peers:?}");
}

#[test]
fn peers_not_judged_when_none_can_express() {
    let lines = [
        timed("stat", "none", 0, "vm 6.12", 100.0),
        timed("stat", "nemoclaw", 1000, "vm 6.12", 110.0),
        unsupported("stat", "landlock", 1000, "no stat right"),
    ]
    .join("\n");
    let (rows, _) = parse(&lines);
    let verdicts = judge(&rows);
    let peers = verdicts.iter().find(|j| j.target == TARGET_PEERS).unwrap();
    assert_eq!(peers.verdict, Verdict::NotJudged);
    assert!(
        peers.detail.contains("Landlock cannot express them"),
        "{}",
        peers.detail
    );
}

#[test]
fn plots_name_every_system() {
    let (rows, _) = parse(&sample());
    let report = render(&rows, &facts()).unwrap();
    let plot = |name: &str| {
        &report
            .plots
            .iter()
            .find(|(path, _)| path == &format!("docs/bench/{name}.svg"))
            .unwrap_or_else(|| panic!("no {name} plot"))
            .1
    };
    let open = plot("open-read-d2");
    assert!(open.starts_with("<svg"), "{open}");
    for name in [
        "none",
        "floor (no-op BPF)",
        "NemoClaw",
        "Landlock",
        "AppArmor",
    ] {
        assert!(open.contains(&format!("\n{name}")), "{name} missing");
    }
    assert!(open.contains("cannot express 100k rules"));
    let exec = plot("exec");
    assert!(exec.contains("Landlock: cannot express 1k rules"));
    let overview = plot("overview");
    for name in [
        "NemoClaw",
        "Landlock",
        "AppArmor",
        "open-read-d2",
        "untar-grep",
    ] {
        assert!(overview.contains(name), "{name} missing from the overview");
    }
    // Compile and reload have no baseline: no plot.
    assert!(
        !report
            .plots
            .iter()
            .any(|(p, _)| p.contains("compile") || p.contains("reload"))
    );
}

#[test]
fn rendering_is_deterministic() {
    let (rows, _) = parse(&sample());
    assert_eq!(
        render(&rows, &facts()).unwrap(),
        render(&rows, &facts()).unwrap()
    );
    let (mut reversed, _) = parse(&sample());
    reversed.reverse();
    let (a, b) = (
        render(&rows, &facts()).unwrap(),
        render(&reversed, &facts()).unwrap(),
    );
    assert_eq!(a.markdown, b.markdown);
    for ((pa, a), (pb, b)) in a.plots.iter().zip(&b.plots) {
        assert_eq!(pa, pb);
        if a != b {
            let at = a
                .bytes()
                .zip(b.bytes())
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            panic!(
                "{pa}: {}\n{}",
                &a[at.saturating_sub(200)..at + 200],
                &b[at.saturating_sub(200)..at + 200]
            );
        }
    }
}

#[test]
fn writer_puts_the_report_in_the_tree() {
    let root = std::env::temp_dir().join(format!("nemoclaw-bench-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("docs/bench")).unwrap();
    std::fs::write(root.join("docs/bench/stale.svg"), "<svg/>").unwrap();
    let results = root.join("results.jsonl");
    std::fs::write(&results, sample()).unwrap();
    let written = super::write_from(&results, &root).unwrap();
    let markdown = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap();
    assert!(
        markdown.contains("`--report-from results.jsonl`"),
        "{markdown}"
    );
    assert!(root.join("docs/bench/overview.svg").is_file());
    assert!(!root.join("docs/bench/stale.svg").exists());
    assert_eq!(
        written.len(),
        1 + 5,
        "BENCHMARKS.md, 4 scenario plots and the overview"
    );
    let again = super::write_from(&results, &root).unwrap();
    assert_eq!(written, again);
    assert_eq!(
        markdown,
        std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap()
    );
    // A commit recorded in the results wins over the tree's.
    let recorded = format!("{}\n{}", json!({"commit": "feedface"}), sample());
    std::fs::write(&results, recorded).unwrap();
    super::write_from(&results, &root).unwrap();
    let markdown = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap();
    assert!(markdown.contains("at commit `feedface`"));
    std::fs::remove_dir_all(&root).unwrap();
}
