//! The bench's results file (JSON lines) read into [`Row`]s: today's rows (`scenario`,
//! `system`) and the older ones (`workload`, `mode`) mapped onto them.

use serde_json::Value;

/// One measured configuration: a scenario under one system at one rule count, in one place.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub scenario: String,
    pub system: String,
    pub rules: u64,
    /// `native`, `vm 6.12`, `vm 6.1`.
    pub place: String,
    /// The kernel release the row ran on (empty if the row does not say).
    pub kernel: String,
    /// Whether the harness interleaved this configuration's rounds with the other
    /// configurations' of its scenario (`None`: the row does not say).
    pub interleaved: Option<bool>,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A timed operation (or, for the macro scenarios, a timed whole run).
    Timed(Timed),
    /// `compile`: the policy compiler's stages.
    Compile {
        parse_ns: f64,
        compile_ns: f64,
        entries: u64,
    },
    /// `reload`: policy rewrites timed until enforced (`nemoclaw-bench reload`).
    Reload(Reload),
    /// The system cannot express this rule set; why.
    Unsupported(String),
    /// The configuration failed.
    Error(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Timed {
    /// The fastest round's ns per operation.
    pub ns_per_op: f64,
    pub median_ns_per_op: Option<f64>,
    pub rounds: Vec<f64>,
    /// The programs' own time per operation (`bpf_stats`).
    pub bpf_ns_per_op: Option<f64>,
    /// Per program: name and ns per run.
    pub programs: Vec<(String, f64)>,
    pub setup_ns: Option<f64>,
    /// Timed operations over all rounds.
    pub ops: Option<u64>,
}

impl Timed {
    /// The median round's ns/op minus the fastest's (0 when the median is unknown).
    pub fn spread(&self) -> f64 {
        self.median_ns_per_op
            .map_or(0.0, |m| (m - self.ns_per_op).max(0.0))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Reload {
    pub reloads: u64,
    /// Write to the daemon's switch to the new slot (its `policy_reload` record).
    pub switch_p50_ns: Option<f64>,
    pub switch_p99_ns: Option<f64>,
    pub switch_max_ns: Option<f64>,
    /// Write until a sandboxed task sees the new verdict.
    pub p50_ns: Option<f64>,
    pub p99_ns: Option<f64>,
    pub max_ns: Option<f64>,
    pub loadavg: String,
}

/// The scenarios in report order; `micro` ones are judged per operation against Landlock
/// and `AppArmor`, `macro` ones as whole runs against no enforcement.
pub const SCENARIOS: &[(&str, Kind, &str)] = &[
    (
        "open-read-d2",
        Kind::Micro,
        "open(O_RDONLY)+close, file 2 directories deep",
    ),
    (
        "open-read-d6",
        Kind::Micro,
        "open(O_RDONLY)+close, file 6 directories deep",
    ),
    (
        "open-read-d12",
        Kind::Micro,
        "open(O_RDONLY)+close, file 12 directories deep",
    ),
    (
        "open-write-d2",
        Kind::Micro,
        "open(O_WRONLY)+close, file 2 directories deep",
    ),
    (
        "open-write-d6",
        Kind::Micro,
        "open(O_WRONLY)+close, file 6 directories deep",
    ),
    (
        "open-write-d12",
        Kind::Micro,
        "open(O_WRONLY)+close, file 12 directories deep",
    ),
    (
        "create-unlink",
        Kind::Micro,
        "create+close+unlink of a file",
    ),
    ("stat", Kind::Micro, "stat of a file"),
    ("exec", Kind::Micro, "fork+execve+wait of a static binary"),
    ("tcp", Kind::Micro, "TCP connect+accept+close, loopback"),
    ("udp", Kind::Micro, "UDP sendto, loopback"),
    (
        "make",
        Kind::Macro,
        "make -j1 of a small C project (whole run)",
    ),
    (
        "untar-grep",
        Kind::Macro,
        "untar then grep a source tree (whole run)",
    ),
    ("start", Kind::Other, "sandbox start"),
    ("compile", Kind::Other, "policy compile"),
    (
        "reload",
        Kind::Other,
        "policy reload: file write until enforced",
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Micro,
    Macro,
    Other,
}

/// The kind and title of `scenario` (`None`: not a scenario of this report).
pub fn scenario_info(scenario: &str) -> Option<(Kind, &'static str)> {
    SCENARIOS
        .iter()
        .find(|(name, _, _)| *name == scenario)
        .map(|(_, kind, title)| (*kind, *title))
}

/// The systems in report order.
pub const SYSTEMS: &[&str] = &[
    "none",
    "floor",
    "nemoclaw",
    "nemoclaw-daemon",
    "landlock",
    "apparmor",
];

/// Position of `system` in [`SYSTEMS`] (unknown ones last).
pub fn system_order(system: &str) -> usize {
    SYSTEMS
        .iter()
        .position(|s| *s == system)
        .unwrap_or(SYSTEMS.len())
}

/// Every row of a JSON-lines text; lines that are not JSON objects, and rows of other
/// kinds (the privacy router's), are skipped: the count of skipped lines comes second.
pub fn parse(text: &str) -> (Vec<Row>, usize) {
    let mut rows = Vec::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| row(&v))
        {
            Some(r) => rows.push(r),
            None => skipped += 1,
        }
    }
    (rows, skipped)
}

/// Today's `workload` as a scenario: `nemoclaw-bench op --workload open` opens
/// `<tmp>/nemoclaw-bench-<pid>/bench.txt` read-only, a file two directories deep.
fn legacy_scenario(workload: &str) -> Option<&'static str> {
    Some(match workload {
        "open" => "open-read-d2",
        "exec" => "exec",
        "tcp" => "tcp",
        "udp" => "udp",
        "compile" => "compile",
        "reload" => "reload",
        _ => return None,
    })
}

/// Today's `mode` as a system (`reload` runs through a daemon).
fn legacy_system(mode: &str, scenario: &str) -> Option<&'static str> {
    Some(match mode {
        "none" => "none",
        "floor" => "floor",
        "real" if scenario == "reload" => "nemoclaw-daemon",
        "real" => "nemoclaw",
        _ => return None,
    })
}

fn num(value: &Value, key: &str) -> Option<f64> {
    value.get(key)?.as_f64()
}

/// One row from one JSON object (`None`: not a row of this report).
pub fn row(value: &Value) -> Option<Row> {
    let (scenario, system) = if let (Some(scenario), Some(system)) =
        (value["scenario"].as_str(), value["system"].as_str())
    {
        (scenario.to_string(), system.to_string())
    } else {
        let scenario = legacy_scenario(value["workload"].as_str()?)?;
        let system = legacy_system(value["mode"].as_str()?, scenario)?;
        // Today's compile row runs with mode `none`: it is NemoClaw's compiler.
        let system = if scenario == "compile" {
            "nemoclaw"
        } else {
            system
        };
        (scenario.to_string(), system.to_string())
    };
    scenario_info(&scenario)?;
    let outcome = outcome(&scenario, value)?;
    Some(Row {
        scenario,
        system,
        rules: value["rules"].as_u64().unwrap_or(0),
        place: value["place"].as_str().unwrap_or("native").to_string(),
        kernel: value["kernel"].as_str().unwrap_or("").trim().to_string(),
        interleaved: value["interleaved"].as_bool(),
        outcome,
    })
}

fn outcome(scenario: &str, value: &Value) -> Option<Outcome> {
    if let Some(why) = value["unsupported"].as_str() {
        return Some(Outcome::Unsupported(one_line(why)));
    }
    if let Some(err) = value.get("error").filter(|e| !e.is_null()) {
        let text = err.as_str().map_or_else(|| err.to_string(), str::to_string);
        return Some(Outcome::Error(text));
    }
    if scenario == "compile" {
        return Some(Outcome::Compile {
            parse_ns: num(value, "parse_ns")?,
            compile_ns: num(value, "compile_ns")?,
            entries: value["entries"].as_u64().unwrap_or(0),
        });
    }
    if scenario == "reload" {
        return Some(Outcome::Reload(Reload {
            reloads: value["reloads"].as_u64().unwrap_or(0),
            switch_p50_ns: num(value, "switch_p50_ns"),
            switch_p99_ns: num(value, "switch_p99_ns"),
            switch_max_ns: num(value, "switch_max_ns"),
            p50_ns: num(value, "p50_ns"),
            p99_ns: num(value, "p99_ns"),
            max_ns: num(value, "max_ns"),
            loadavg: value["loadavg"].as_str().unwrap_or("").to_string(),
        }));
    }
    let rounds = value
        .get("rounds_ns_per_op")
        .or_else(|| value.get("rounds"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    // Programs that did not run (another hook's, or another family's) are left out.
    let ran = |p: &Value| p["run_cnt"].as_u64() != Some(0);
    let programs = value["programs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| ran(p))
                .filter_map(|p| Some((p["name"].as_str()?.to_string(), num(p, "ns_per_run")?)))
                .collect()
        })
        .or_else(|| {
            // The per-program stats as an object: name -> {ns_per_run, ...}.
            value["programs"].as_object().map(|o| {
                o.iter()
                    .filter(|(_, p)| ran(p))
                    .filter_map(|(name, p)| Some((name.clone(), num(p, "ns_per_run")?)))
                    .collect()
            })
        })
        .unwrap_or_default();
    Some(Outcome::Timed(Timed {
        ns_per_op: num(value, "ns_per_op")?,
        median_ns_per_op: num(value, "median_ns_per_op"),
        rounds,
        bpf_ns_per_op: num(value, "bpf_ns_per_op").filter(|b| *b > 0.0),
        programs,
        setup_ns: num(value, "setup_ns"),
        ops: value["ops"].as_u64(),
    }))
}

/// `text` on one line, cut to a readable length.
pub fn one_line(text: &str) -> String {
    const MAX: usize = 240;
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX {
        return flat;
    }
    let head: String = flat.chars().take(MAX).collect();
    format!("{head} [...]")
}
