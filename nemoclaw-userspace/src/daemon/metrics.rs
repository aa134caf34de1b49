//! `/metrics`: the daemon's Prometheus metrics (`prometheus-client`, `OpenMetrics` text).
//!
//! Counted as they happen: decisions and denials from the audit records the daemon writes
//! (its own subscription to the sink, [`Metrics::observe`]: kernel denials, DNS gateway
//! refusals, the router's request records), reloads from the apply operations
//! ([`Metrics::reload`]). Read at each scrape ([`Snapshot`]): events the kernel dropped,
//! the policies in force, BPF program run time (where `kernel.bpf_stats_enabled=1`), the
//! router's state. No label carries a path, an address or a value from a request: only
//! sandbox names, controls, verdicts, routes, status codes, program names and hashes.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError, atomic::AtomicU64},
    time::{Duration, SystemTime},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    control: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SandboxLabel {
    sandbox: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    sandbox: String,
    sha256: String,
    generation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProgramLabel {
    program: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatusLabels {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

type SecondsCounter = Counter<f64, AtomicU64>;
type SecondsGauge = Gauge<f64, AtomicU64>;

fn latency_histogram() -> Histogram {
    // 5 ms to about 80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// What a scrape reads from the daemon's state (taken under its lock, encoded without it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The kernel's count of deny events it could not deliver (since the programs loaded).
    pub events_lost: u64,
    /// Per sandbox: name, policy sha256, generation.
    pub policies: Vec<(String, String, u64)>,
    /// Per pinned program: name, total run time in ns, runs (only where BPF stats are on).
    pub programs: Vec<(String, u64, u64)>,
    /// `None`: no router configured.
    pub router_up: Option<bool>,
}

/// Absolute kernel counts already added to the counters (they only ever grow, also across
/// daemon restarts when enforcement is adopted).
#[derive(Default)]
struct Seen {
    events_lost: u64,
    programs: HashMap<String, (u64, u64)>,
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    denials: Family<SandboxLabel, Counter>,
    events_lost: Counter,
    reloads: Family<ResultLabel, Counter>,
    last_reload_time: SecondsGauge,
    last_reload_duration: SecondsGauge,
    policy_info: Family<PolicyLabels, Gauge>,
    program_time: Family<ProgramLabel, SecondsCounter>,
    program_runs: Family<ProgramLabel, Counter>,
    router_requests: Family<RouteStatusLabels, Counter>,
    router_duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    router_up: Gauge,
    sandboxes: Gauge,
    seen: Mutex<Seen>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics, registered under `nemoclaw_`, all at zero.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nemoclaw");
        let m = Self {
            decisions: Family::default(),
            denials: Family::default(),
            events_lost: Counter::default(),
            reloads: Family::default(),
            last_reload_time: SecondsGauge::default(),
            last_reload_duration: SecondsGauge::default(),
            policy_info: Family::default(),
            program_time: Family::default(),
            program_runs: Family::default(),
            router_requests: Family::default(),
            router_duration: Family::new_with_constructor(latency_histogram),
            router_up: Gauge::default(),
            sandboxes: Gauge::default(),
            seen: Mutex::new(Seen::default()),
            registry: Registry::default(),
        };
        // Counters get their `_total` suffix from the encoder.
        let r = &mut registry;
        r.register(
            "decisions",
            "Decisions recorded, by control and verdict",
            m.decisions.clone(),
        );
        r.register("denials", "Denials, by sandbox", m.denials.clone());
        r.register(
            "events_lost",
            "Deny events the kernel could not deliver",
            m.events_lost.clone(),
        );
        r.register(
            "reloads",
            "Policy reloads, by result (ok, failed)",
            m.reloads.clone(),
        );
        r.register(
            "last_reload_timestamp_seconds",
            "When the last policy reload finished (Unix time)",
            m.last_reload_time.clone(),
        );
        r.register(
            "last_reload_duration_seconds",
            "How long the last policy reload took",
            m.last_reload_duration.clone(),
        );
        r.register(
            "policy_info",
            "The policy each sandbox enforces (always 1)",
            m.policy_info.clone(),
        );
        r.register(
            "bpf_program_run_time_seconds",
            "Time the kernel spent in each program (kernel.bpf_stats_enabled=1)",
            m.program_time.clone(),
        );
        r.register(
            "bpf_program_runs",
            "Runs of each program (kernel.bpf_stats_enabled=1)",
            m.program_runs.clone(),
        );
        r.register(
            "router_requests",
            "Privacy router requests, by route and status",
            m.router_requests.clone(),
        );
        r.register(
            "router_request_duration_seconds",
            "Privacy router request latency, by route",
            m.router_duration.clone(),
        );
        r.register(
            "router_up",
            "Whether the privacy router answers (0 when not configured)",
            m.router_up.clone(),
        );
        r.register(
            "sandboxes",
            "Sandboxes the daemon keeps",
            m.sandboxes.clone(),
        );
        // Both results exist from the start, at 0 (a rate over them is defined).
        for result in ["ok", "failed"] {
            let _ = m.reloads.get_or_create(&ResultLabel {
                result: result.to_owned(),
            });
        }
        Self { registry, ..m }
    }

    /// Counts one audit record (as the sink wrote it): a decision by control and verdict;
    /// a denial by sandbox (also those a per-second limit summarised); a router request
    /// by route and status, with its latency.
    pub fn observe(&self, record: &serde_json::Value) {
        let text = |key: &str| record.get(key).and_then(serde_json::Value::as_str);
        let sandbox = || SandboxLabel {
            sandbox: text("sandbox").unwrap_or("-").to_owned(),
        };
        if text("event") == Some("denials_suppressed") {
            let n = record
                .get("suppressed")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            self.denials.get_or_create(&sandbox()).inc_by(n);
            return;
        }
        let (Some(control), Some(verdict)) = (text("control"), text("decision")) else {
            return;
        };
        self.decisions
            .get_or_create(&DecisionLabels {
                control: control.to_owned(),
                verdict: verdict.to_owned(),
            })
            .inc();
        if verdict == "deny" {
            self.denials.get_or_create(&sandbox()).inc();
        }
        if control == "inference" {
            let route = route_of(text("method").unwrap_or(""), text("path").unwrap_or(""));
            let status = record
                .get("status")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            self.router_requests
                .get_or_create(&RouteStatusLabels {
                    route: route.to_owned(),
                    status: status.to_string(),
                })
                .inc();
            if let Some(ms) = record.get("latency_ms").and_then(serde_json::Value::as_f64) {
                self.router_duration
                    .get_or_create(&RouteLabel {
                        route: route.to_owned(),
                    })
                    .observe(ms / 1000.0);
            }
        }
    }

    /// Counts one policy reload that finished at `at` after `took`.
    pub fn reload(&self, ok: bool, at: SystemTime, took: Duration) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
        let since_epoch = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_reload_time.set(since_epoch.as_secs_f64());
        self.last_reload_duration.set(took.as_secs_f64());
    }

    /// The metrics as `OpenMetrics` text, with `snapshot`'s values brought in first.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        self.take(snapshot);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            out = format!("# encoding failed: {e}\n# EOF\n");
        }
        out
    }

    fn take(&self, snapshot: &Snapshot) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        self.events_lost
            .inc_by(snapshot.events_lost.saturating_sub(seen.events_lost));
        seen.events_lost = seen.events_lost.max(snapshot.events_lost);
        self.policy_info.clear();
        for (sandbox, sha256, generation) in &snapshot.policies {
            self.policy_info
                .get_or_create(&PolicyLabels {
                    sandbox: sandbox.clone(),
                    sha256: sha256.clone(),
                    generation: generation.to_string(),
                })
                .set(1);
        }
        self.sandboxes
            .set(i64::try_from(snapshot.policies.len()).unwrap_or(i64::MAX));
        for (program, time_ns, runs) in &snapshot.programs {
            let (seen_ns, seen_runs) = seen.programs.entry(program.clone()).or_default();
            let label = ProgramLabel {
                program: program.clone(),
            };
            // A program replaced meanwhile (counts went down) starts over.
            let (added_ns, added_runs) = if *time_ns < *seen_ns || *runs < *seen_runs {
                (*time_ns, *runs)
            } else {
                (time_ns - *seen_ns, runs - *seen_runs)
            };
            #[allow(clippy::cast_precision_loss)] // nanoseconds as seconds: f64 is plenty
            self.program_time
                .get_or_create(&label)
                .inc_by(added_ns as f64 / 1e9);
            self.program_runs.get_or_create(&label).inc_by(added_runs);
            (*seen_ns, *seen_runs) = (*time_ns, *runs);
        }
        self.router_up
            .set(i64::from(snapshot.router_up == Some(true)));
    }
}

/// A router request's route, from the fixed set the router serves (anything else is
/// `other`: a path a client sent never becomes a label).
fn route_of(method: &str, path: &str) -> &'static str {
    hyper::Method::from_bytes(method.as_bytes())
        .ok()
        .and_then(|m| crate::router::request::Route::of(&m, path))
        .map_or("other", crate::router::request::Route::name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn records_and_snapshots_encode_as_the_named_metrics() {
        let m = Metrics::new();
        let deny = serde_json::json!({"decision": "deny", "control": "network",
            "sandbox": "agents", "object": {"address": "10.0.0.1", "port": 443}});
        m.observe(&deny);
        m.observe(&deny);
        m.observe(
            &serde_json::json!({"event": "denials_suppressed", "sandbox": "agents",
            "suppressed": 5}),
        );
        m.observe(
            &serde_json::json!({"control": "inference", "decision": "allowed",
            "sandbox": "agents", "method": "POST", "path": "/v1/chat/completions",
            "status": 200, "latency_ms": 12.5}),
        );
        m.observe(
            &serde_json::json!({"control": "inference", "decision": "denied",
            "method": "POST", "path": "/secret/customer-42", "status": 404, "latency_ms": 1.0}),
        );
        m.observe(&serde_json::json!({"event": "sandbox_start", "sandbox": "agents"}));
        m.reload(
            true,
            SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            Duration::from_millis(250),
        );
        m.reload(
            false,
            SystemTime::UNIX_EPOCH + Duration::from_secs(200),
            Duration::from_millis(5),
        );
        let snap = Snapshot {
            events_lost: 7,
            policies: vec![("agents".into(), "ab12".into(), 3)],
            programs: vec![("connect4".into(), 2_000_000_000, 10)],
            router_up: Some(true),
        };
        let text = m.encode(&snap);
        let has = |l: &str| assert!(text.lines().any(|x| x == l), "missing {l:?} in\n{text}");
        has(r#"nemoclaw_decisions_total{control="network",verdict="deny"} 2"#);
        has(r#"nemoclaw_decisions_total{control="inference",verdict="allowed"} 1"#);
        has(r#"nemoclaw_denials_total{sandbox="agents"} 7"#);
        has("nemoclaw_events_lost_total 7");
        has(r#"nemoclaw_reloads_total{result="ok"} 1"#);
        has(r#"nemoclaw_reloads_total{result="failed"} 1"#);
        has("nemoclaw_last_reload_timestamp_seconds 200.0");
        has("nemoclaw_last_reload_duration_seconds 0.005");
        has(r#"nemoclaw_policy_info{sandbox="agents",sha256="ab12",generation="3"} 1"#);
        has(r#"nemoclaw_bpf_program_run_time_seconds_total{program="connect4"} 2.0"#);
        has(r#"nemoclaw_bpf_program_runs_total{program="connect4"} 10"#);
        has(r#"nemoclaw_router_requests_total{route="/v1/chat/completions",status="200"} 1"#);
        has(r#"nemoclaw_router_requests_total{route="other",status="404"} 1"#);
        has(r#"nemoclaw_router_request_duration_seconds_count{route="/v1/chat/completions"} 1"#);
        has("nemoclaw_router_up 1");
        has("nemoclaw_sandboxes 1");
        assert!(text.ends_with("# EOF\n"));
        assert!(
            !text.contains("10.0.0.1") && !text.contains("secret"),
            "no values: {text}"
        );

        // Kernel counts are absolute: a second scrape adds only what grew; a new policy
        // replaces the old info line.
        let snap = Snapshot {
            events_lost: 9,
            policies: vec![("agents".into(), "cd34".into(), 4)],
            programs: vec![("connect4".into(), 3_000_000_000, 15)],
            router_up: Some(false),
        };
        let text = m.encode(&snap);
        assert_eq!(
            line_of(&text, "nemoclaw_events_lost_total"),
            Some("nemoclaw_events_lost_total 9")
        );
        assert!(!text.contains("ab12"), "{text}");
        assert!(text.contains(r#"sha256="cd34",generation="4"} 1"#));
        assert!(text.contains(r#"nemoclaw_bpf_program_runs_total{program="connect4"} 15"#));
        assert!(text.contains("nemoclaw_router_up 0"));
    }
}
