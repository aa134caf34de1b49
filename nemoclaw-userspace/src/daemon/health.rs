//! `/healthz`: what the daemon reports of itself, built from plain data (the daemon fills a
//! [`HealthInput`] under its lock; [`report`] turns it into the JSON body and the status),
//! and the [`ReloadBook`], where each sandbox's policy generation and last reload are kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What the kernel offers, read once at start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// `bpf` is in the active LSM list.
    pub bpf_lsm_active: bool,
    /// `/sys/kernel/btf/vmlinux` exists.
    pub btf: bool,
    /// A cgroup v2 hierarchy is mounted.
    pub cgroup_v2: bool,
    /// The active LSM list, in order.
    pub lsm: Vec<String>,
}

impl KernelFacts {
    /// This kernel's facts.
    #[must_use]
    pub fn read() -> Self {
        let lsm = crate::kernel::lsm::LsmList::read()
            .map(|l| l.0)
            .unwrap_or_default();
        Self {
            release: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            bpf_lsm_active: lsm.iter().any(|l| l == "bpf"),
            btf: Path::new(crate::kernel::btf::VMLINUX_BTF).exists(),
            cgroup_v2: crate::sandbox::cgroup::cgroup2_mount().is_ok(),
            lsm,
        }
    }
}

/// The outcome of a sandbox's last policy reload (or, for a configured sandbox, of its
/// creation at start).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastReload {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub at: String,
}

/// Per sandbox: how many policies it has had installed by this daemon (1 at creation or
/// adoption) and how its last reload went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxReloads {
    pub generation: u64,
    pub last: Option<LastReload>,
}

/// Every reload this daemon did, by sandbox.
#[derive(Clone, Debug, Default)]
pub struct ReloadBook {
    /// Reloads tried since the daemon started (applied or refused).
    pub total: u64,
    pub by_sandbox: BTreeMap<String, SandboxReloads>,
}

impl ReloadBook {
    /// A sandbox got its first policy (created or adopted).
    pub fn installed(&mut self, name: &str) {
        self.by_sandbox
            .entry(name.to_owned())
            .or_default()
            .generation = 1;
    }

    /// A reload of `name` was tried at `at`: `Ok` switched to the new policy, `Err` kept the
    /// old one (or, for a configured sandbox that does not exist, none).
    pub fn reloaded(&mut self, name: &str, result: Result<(), String>, at: String) {
        self.total += 1;
        let entry = self.by_sandbox.entry(name.to_owned()).or_default();
        if result.is_ok() {
            entry.generation += 1;
        }
        entry.last = Some(LastReload {
            ok: result.is_ok(),
            error: result.err(),
            at,
        });
    }

    /// `name`'s policy file is the enforced one again (e.g. a bad file rolled back): a
    /// failed last reload no longer stands.
    pub fn settled(&mut self, name: &str, at: String) {
        if let Some(entry) = self.by_sandbox.get_mut(name)
            && entry.last.as_ref().is_some_and(|l| !l.ok)
        {
            entry.last = Some(LastReload {
                ok: true,
                error: None,
                at,
            });
        }
    }

    /// A sandbox is gone.
    pub fn forget(&mut self, name: &str) {
        self.by_sandbox.remove(name);
    }
}

/// One sandbox as `/healthz` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SandboxHealth {
    pub name: String,
    pub policy: PathBuf,
    pub generation: u64,
    /// SHA-256 of the enforced policy file's bytes (as `nemoclaw ps` shows); `None` for a
    /// configured sandbox that could not be created.
    pub sha256: Option<String>,
    /// Listed under `sandboxes:` in the configuration (its failures make the daemon
    /// degraded).
    pub configured: bool,
    pub last_reload: Option<LastReload>,
}

/// The router, as far as the daemon knows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RouterHealth {
    pub configured: bool,
    pub up: bool,
}

/// Everything `/healthz` reports, gathered by the daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthInput {
    pub kernel: KernelFacts,
    /// Controls enforced (attached and proven).
    pub controls: Vec<String>,
    /// Controls whose self-test failed here (withdrawn).
    pub withdrawn: Vec<String>,
    pub sandboxes: Vec<SandboxHealth>,
    pub router: RouterHealth,
    pub reloads: u64,
}

/// The tier in use: `bpf-lsm` when the LSM controls are enforced, else `cgroup` (network
/// only).
fn tier(controls: &[String]) -> &'static str {
    if controls.iter().any(|c| {
        matches!(
            c.as_str(),
            "filesystem" | "process" | "privilege_escalation"
        )
    }) {
        "bpf-lsm"
    } else {
        "cgroup"
    }
}

/// The body of `/healthz` and its status: 200 when healthy, 503 when degraded (a
/// configured sandbox's last reload failed, a control was withdrawn, or a configured
/// router is down).
#[must_use]
pub fn report(input: &HealthInput) -> (u16, serde_json::Value) {
    let failed: Vec<&str> = input
        .sandboxes
        .iter()
        .filter(|s| s.configured && s.last_reload.as_ref().is_some_and(|l| !l.ok))
        .map(|s| s.name.as_str())
        .collect();
    let router_down = input.router.configured && !input.router.up;
    let mut reasons = Vec::new();
    if !failed.is_empty() {
        reasons.push(format!("last reload failed: {}", failed.join(", ")));
    }
    if !input.withdrawn.is_empty() {
        reasons.push(format!("withdrawn: {}", input.withdrawn.join(", ")));
    }
    if router_down {
        reasons.push("the router is down".to_owned());
    }
    let healthy = reasons.is_empty();
    let mut body = serde_json::json!({
        "status": if healthy { "ok" } else { "degraded" },
        "tier": tier(&input.controls),
        "kernel": input.kernel,
        "controls": input.controls,
        "sandboxes": input.sandboxes,
        "router": input.router,
        "reloads": input.reloads,
    });
    if !healthy {
        body["reasons"] = serde_json::json!(reasons);
    }
    (if healthy { 200 } else { 503 }, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(name: &str, configured: bool, last: Option<LastReload>) -> SandboxHealth {
        SandboxHealth {
            name: name.to_owned(),
            policy: format!("/etc/nemoclaw/policies/{name}.yaml").into(),
            generation: 1,
            sha256: Some("ab".repeat(32)),
            configured,
            last_reload: last,
        }
    }

    fn healthy() -> HealthInput {
        HealthInput {
            kernel: KernelFacts {
                release: "6.12.0".into(),
                bpf_lsm_active: true,
                btf: true,
                cgroup_v2: true,
                lsm: vec!["capability".into(), "bpf".into()],
            },
            controls: vec!["network".into(), "filesystem".into()],
            withdrawn: Vec::new(),
            sandboxes: vec![sandbox("agents", true, None)],
            router: RouterHealth {
                configured: true,
                up: true,
            },
            reloads: 4,
        }
    }

    #[test]
    fn a_healthy_daemon_answers_200_with_the_spec_s_fields() {
        let (status, body) = report(&healthy());
        assert_eq!(status, 200);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["tier"], "bpf-lsm");
        assert_eq!(body["kernel"]["release"], "6.12.0");
        assert_eq!(body["kernel"]["bpf_lsm_active"], true);
        assert_eq!(body["kernel"]["lsm"][1], "bpf");
        assert_eq!(body["controls"][0], "network");
        assert_eq!(body["sandboxes"][0]["name"], "agents");
        assert_eq!(body["sandboxes"][0]["generation"], 1);
        assert_eq!(body["sandboxes"][0]["sha256"], "ab".repeat(32));
        assert_eq!(body["router"]["up"], true);
        assert_eq!(body["reloads"], 4);
        assert!(body.get("reasons").is_none());
    }

    #[test]
    fn each_cause_degrades_to_503() {
        let failed = LastReload {
            ok: false,
            error: Some("bad".into()),
            at: "t".into(),
        };
        let mut input = healthy();
        input.sandboxes = vec![sandbox("agents", true, Some(failed.clone()))];
        let (status, body) = report(&input);
        assert_eq!((status, body["status"].as_str()), (503, Some("degraded")));
        assert_eq!(body["sandboxes"][0]["last_reload"]["error"], "bad");
        // A failed apply on a sandbox that is not configured (a client's) is its own business.
        input.sandboxes = vec![sandbox("run-1", false, Some(failed))];
        assert_eq!(report(&input).0, 200);

        let mut input = healthy();
        input.withdrawn = vec!["filesystem".into()];
        assert_eq!(report(&input).0, 503);

        let mut input = healthy();
        input.router.up = false;
        assert_eq!(report(&input).0, 503);
        input.router.configured = false;
        assert_eq!(report(&input).0, 200);

        let mut input = healthy();
        input.controls = vec!["network".into()];
        assert_eq!(report(&input).1["tier"], "cgroup");
    }

    #[test]
    fn the_book_counts_generations_and_keeps_the_last_result() {
        let mut book = ReloadBook::default();
        book.installed("a");
        book.reloaded("a", Ok(()), "t1".into());
        book.reloaded("a", Err("no".into()), "t2".into());
        let a = &book.by_sandbox["a"];
        assert_eq!(a.generation, 2, "a refused reload keeps the generation");
        assert_eq!(a.last.as_ref().map(|l| l.ok), Some(false));
        assert_eq!(book.total, 2);
        book.settled("a", "t3".into());
        assert_eq!(book.by_sandbox["a"].last.as_ref().map(|l| l.ok), Some(true));
        book.forget("a");
        assert!(book.by_sandbox.is_empty());
    }
}
