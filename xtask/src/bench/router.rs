//! The privacy router's table: `nemoclaw-bench router` next to a direct call and to the
//! `LiteLLM` proxy (installed first in its venv).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Result;
use serde_json::Value;

use super::{Results, parse_line, table::short};
use crate::{bench_python, util};

/// `nemoclaw-bench router`, with `LiteLLM` installed first (its venv): adds the router
/// table to `out`; false if it has no result.
pub(super) fn run_router(bin: &Path, out: &mut String, results: &mut Results) -> Result<bool> {
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
