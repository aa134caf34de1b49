//! The targets, judged on the rows (never asserted: the report says met or not).

use super::rows::{Kind, Outcome, Row, Timed, scenario_info};

/// The rule count the comparison with Landlock and `AppArmor` is made at.
pub const HEADLINE_RULES: u64 = 1000;
/// Flat: cost per operation at the most rules at most this much above the fewest's.
pub const FLAT_GROWTH: f64 = 0.20;
/// Macro workloads: at most this much above no enforcement.
pub const MACRO_OVERHEAD: f64 = 0.03;
/// Reload: p99 from the write to enforcement below this.
pub const RELOAD_P99_NS: f64 = 5e6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    /// The rows needed are missing (or cannot express the rules).
    NotJudged,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "NOT met",
            Verdict::NotJudged => "not judged",
        }
    }
}

/// One target judged on one scenario (and place).
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub target: &'static str,
    pub scenario: String,
    pub place: String,
    pub verdict: Verdict,
    pub detail: String,
}

pub const TARGET_PEERS: &str =
    "added cost at most the cheaper of Landlock and AppArmor at 1k rules";
pub const TARGET_FLAT: &str = "flat within 20% from the fewest to the most rules";
pub const TARGET_MACRO: &str = "macro workload within 3% of no enforcement";
pub const TARGET_RELOAD: &str = "reload under 5 ms p99";

/// The row of `system` at `rules` for one scenario and place.
pub fn find<'a>(
    rows: &'a [Row],
    scenario: &str,
    place: &str,
    system: &str,
    rules: u64,
) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.scenario == scenario && r.place == place && r.system == system && r.rules == rules
    })
}

pub fn timed(row: &Row) -> Option<&Timed> {
    match &row.outcome {
        Outcome::Timed(t) => Some(t),
        _ => None,
    }
}

/// No enforcement's ns/op for one scenario and place.
pub fn none_ns(rows: &[Row], scenario: &str, place: &str) -> Option<f64> {
    rows.iter()
        .filter(|r| r.scenario == scenario && r.place == place && r.system == "none")
        .find_map(timed)
        .map(|t| t.ns_per_op)
        .filter(|ns| *ns > 0.0)
}

/// `row`'s cost per op over no enforcement's (1.0 = none).
pub fn ratio(rows: &[Row], row: &Row) -> Option<f64> {
    let none = none_ns(rows, &row.scenario, &row.place)?;
    Some(timed(row)?.ns_per_op / none)
}

/// `row`'s added cost over no enforcement's cost (0.1 = 10% more than none).
pub fn added_ratio(rows: &[Row], row: &Row) -> Option<f64> {
    ratio(rows, row).map(|r| r - 1.0)
}

/// `NemoClaw`'s row: the standalone launcher's, else the daemon's.
pub fn nemoclaw<'a>(rows: &'a [Row], scenario: &str, place: &str, rules: u64) -> Option<&'a Row> {
    find(rows, scenario, place, "nemoclaw", rules)
        .or_else(|| find(rows, scenario, place, "nemoclaw-daemon", rules))
}

/// Every (scenario, place) in the rows, in report order.
pub fn groups(rows: &[Row]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, _, _) in super::rows::SCENARIOS {
        let mut places: Vec<String> = rows
            .iter()
            .filter(|r| r.scenario == *name)
            .map(|r| r.place.clone())
            .collect();
        places.sort();
        places.dedup();
        out.extend(places.into_iter().map(|p| ((*name).to_string(), p)));
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// Every target on every scenario it applies to.
pub fn judge(rows: &[Row]) -> Vec<Judgement> {
    let mut out = Vec::new();
    for (scenario, place) in groups(rows) {
        let Some((kind, _)) = scenario_info(&scenario) else {
            continue;
        };
        let judgement = |target, verdict, detail: String| Judgement {
            target,
            scenario: scenario.clone(),
            place: place.clone(),
            verdict,
            detail,
        };
        match kind {
            Kind::Micro => {
                let (verdict, detail) = peers(rows, &scenario, &place);
                out.push(judgement(TARGET_PEERS, verdict, detail));
                let (verdict, detail) = flat(rows, &scenario, &place);
                out.push(judgement(TARGET_FLAT, verdict, detail));
            }
            Kind::Macro => {
                let (verdict, detail) = macro_overhead(rows, &scenario, &place);
                out.push(judgement(TARGET_MACRO, verdict, detail));
            }
            Kind::Other if scenario == "reload" => {
                let (verdict, detail) = reload(rows, &place);
                out.push(judgement(TARGET_RELOAD, verdict, detail));
            }
            Kind::Other => {}
        }
    }
    out
}

fn peers(rows: &[Row], scenario: &str, place: &str) -> (Verdict, String) {
    let Some(own) =
        nemoclaw(rows, scenario, place, HEADLINE_RULES).and_then(|r| added_ratio(rows, r))
    else {
        return (
            Verdict::NotJudged,
            "no NemoClaw row measured at 1k rules (or no row without enforcement)".into(),
        );
    };
    let mut measured = Vec::new();
    let mut absent = Vec::new();
    for (system, name) in [("landlock", "Landlock"), ("apparmor", "AppArmor")] {
        match find(rows, scenario, place, system, HEADLINE_RULES) {
            Some(row) => match (&row.outcome, added_ratio(rows, row)) {
                (_, Some(added)) => measured.push((name, added, row)),
                (Outcome::Unsupported(_), _) => absent.push(format!("{name} cannot express them")),
                _ => absent.push(format!("{name} failed")),
            },
            None => absent.push(format!("{name} not measured")),
        }
    }
    let absent = if absent.is_empty() {
        String::new()
    } else {
        format!("; {}", absent.join(", "))
    };
    let Some((peer, cheapest, peer_row)) =
        measured.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1))
    else {
        return (
            Verdict::NotJudged,
            format!("NemoClaw adds {}{absent}", pct(own)),
        );
    };
    // Not a measured loss when the rounds overlap: NemoClaw's fastest round is no slower
    // than the peer's median round.
    let peer_median = timed(peer_row)
        .and_then(|t| t.median_ns_per_op)
        .zip(none_ns(rows, scenario, place))
        .map(|(median, none)| median / none - 1.0);
    let (verdict, within) = if own <= cheapest {
        (Verdict::Met, String::new())
    } else if peer_median.is_some_and(|median| own <= median) {
        (
            Verdict::Met,
            format!(
                " (within the noise: {peer}'s median round adds {})",
                pct(peer_median.unwrap_or_default())
            ),
        )
    } else {
        (Verdict::NotMet, String::new())
    };
    (
        verdict,
        format!(
            "NemoClaw adds {}, {peer} (the cheaper) {}{within}{absent}",
            pct(own),
            pct(cheapest)
        ),
    )
}

fn flat(rows: &[Row], scenario: &str, place: &str) -> (Verdict, String) {
    let mut measured: Vec<(u64, f64)> = rows
        .iter()
        .filter(|r| {
            r.scenario == scenario
                && r.place == place
                && r.rules > 0
                && (r.system == "nemoclaw" || r.system == "nemoclaw-daemon")
        })
        .filter_map(|r| Some((r.rules, timed(r)?.ns_per_op)))
        .collect();
    measured.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let (Some(first), Some(last)) = (measured.first(), measured.last()) else {
        return (Verdict::NotJudged, "no NemoClaw rows".into());
    };
    if first.0 == last.0 || first.1 <= 0.0 {
        return (
            Verdict::NotJudged,
            "NemoClaw measured at one rule count only".into(),
        );
    }
    let growth = last.1 / first.1 - 1.0;
    let verdict = if growth <= FLAT_GROWTH {
        Verdict::Met
    } else {
        Verdict::NotMet
    };
    (
        verdict,
        format!(
            "ns/op {} from {} to {} rules",
            pct(growth),
            super::markdown::rules_label(first.0),
            super::markdown::rules_label(last.0)
        ),
    )
}

fn macro_overhead(rows: &[Row], scenario: &str, place: &str) -> (Verdict, String) {
    let worst = rows
        .iter()
        .filter(|r| {
            r.scenario == scenario
                && r.place == place
                && (r.system == "nemoclaw" || r.system == "nemoclaw-daemon")
        })
        .filter_map(|r| Some((r.rules, added_ratio(rows, r)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let Some((rules, added)) = worst else {
        return (
            Verdict::NotJudged,
            "no NemoClaw run measured (or no run without enforcement)".into(),
        );
    };
    let verdict = if added <= MACRO_OVERHEAD {
        Verdict::Met
    } else {
        Verdict::NotMet
    };
    (
        verdict,
        format!(
            "NemoClaw adds {} at {} rules (the worst rule count)",
            pct(added),
            super::markdown::rules_label(rules)
        ),
    )
}

fn reload(rows: &[Row], place: &str) -> (Verdict, String) {
    let reload = rows
        .iter()
        .filter(|r| r.scenario == "reload" && r.place == place)
        .find_map(|r| match &r.outcome {
            Outcome::Reload(reload) => Some(reload),
            _ => None,
        });
    let Some(reload) = reload else {
        return (Verdict::NotJudged, "no reload measured".into());
    };
    let (p99, what) = match (reload.switch_p99_ns, reload.p99_ns) {
        (Some(p99), _) => (p99, "write to the daemon's switch"),
        (None, Some(p99)) => (p99, "write until a sandboxed task sees it"),
        (None, None) => return (Verdict::NotJudged, "the reload row has no p99".into()),
    };
    let verdict = if p99 < RELOAD_P99_NS {
        Verdict::Met
    } else {
        Verdict::NotMet
    };
    (
        verdict,
        format!(
            "p99 {:.2} ms ({what}, {} reloads)",
            p99 / 1e6,
            reload.reloads
        ),
    )
}
