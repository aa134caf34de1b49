//! The fleet test's steps, in one run against the booted VMs: install and enforcement on
//! every host, a policy change previewed in check mode and then rolled out in waves, a
//! broken policy stopped by validation in the first wave, a policy that validates but that
//! the daemon cannot apply rolled back in the first wave, idempotency, and `ansible-lint`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};

use super::Steps;
use super::ansible::{self, Fleet, PlaybookRun};
use super::image::HOSTS_ONLY_NAME;
use super::machine::Machine;
use crate::util;

/// The daemon's persistent sandbox the role configures.
const SANDBOX: &str = "agents";
/// A file every policy here denies, and one the first policy allows and the second denies
/// (both are in the guest image).
const SECRET: &str = "/etc/nemoclaw-fleet-secret";
const PUBLIC: &str = "/etc/nemoclaw-fleet-public";
/// Where the role's daemon serves /healthz (the role's default).
const HEALTHZ: &str = "http://127.0.0.1:9464/healthz";
/// The daemon's audit log (the package's default).
const AUDIT_LOG: &str = "/var/log/nemoclaw/audit.jsonl";

/// What `cat` in the sandbox may read: programs and libraries, `/etc` but the secret.
const FS_BASE: &str = "filesystem:
  allow:
    - /dev/null
    - /tmp/**
  read_only:
    - /usr/**
    - /lib/**
    - /lib64/**
    - /etc/**
    - /proc/**
  deny:
    - /etc/nemoclaw-fleet-secret
";

/// The policies the steps roll out.
fn policies() -> [(&'static str, String); 5] {
    let v2 = format!("{FS_BASE}    - /etc/nemoclaw-fleet-public\nprivilege_escalation: deny\n");
    [
        ("v1", format!("{FS_BASE}privilege_escalation: deny\n")),
        ("v2", v2.clone()),
        ("again", v2),
        // A schema error: `nemoclaw policy check` refuses it, so the file is never written.
        (
            "broken",
            format!("{FS_BASE}privilege_escalation: deny\nprocesses:\n  allow: [cat]\n"),
        ),
        // Valid for `nemoclaw policy check`, which resolves names with the C library (the
        // guests' /etc/hosts knows this one); the daemon asks DNS, which does not: its
        // reload fails and the role must roll back.
        (
            "unappliable",
            format!(
                "{FS_BASE}    - /etc/nemoclaw-fleet-public\nprivilege_escalation: deny\n\
                 network:\n  allow:\n    - 10.0.2.2:22\n  deny:\n    - {HOSTS_ONLY_NAME}:5432\n"
            ),
        ),
    ]
}

/// The rollouts that go to the whole fleet in one wave: the install (`v1`) and, through
/// its own vars file, the idempotency check (`again`, the same policy as `v2`).
const ONE_WAVE: [&str; 2] = ["v1", "again"];

/// One policy on disk and the extra-variables file that rolls it out.
struct Rollout {
    policy: PathBuf,
    vars: PathBuf,
}

fn write_rollouts(dir: &Path, deb: &Path) -> Result<Vec<(&'static str, Rollout)>> {
    let policy_dir = dir.join("policies");
    std::fs::create_dir_all(&policy_dir)
        .with_context(|| format!("creating {}", policy_dir.display()))?;
    policies()
        .into_iter()
        .map(|(name, text)| {
            let policy = policy_dir.join(format!("{name}.yaml"));
            std::fs::write(&policy, text)
                .with_context(|| format!("writing {}", policy.display()))?;
            let vars = dir.join(format!("vars-{name}.yml"));
            let mut yaml = String::new();
            let _ = write!(
                yaml,
                "nemoclaw_deb: {}\nnemoclaw_health_retries: 60\nnemoclaw_health_delay: 2\n\
                 nemoclaw_sandboxes:\n  - name: {SANDBOX}\n    user: root\n    policy_src: {}\n",
                deb.display(),
                policy.display()
            );
            // The install and the idempotency check go to every host at once (the time of
            // a wave under emulation); the policy changes go in the playbook's waves.
            if ONE_WAVE.contains(&name) {
                yaml.push_str("nemoclaw_rollout_waves: [\"100%\"]\n");
            }
            std::fs::write(&vars, yaml).with_context(|| format!("writing {}", vars.display()))?;
            Ok((name, Rollout { policy, vars }))
        })
        .collect()
}

pub fn run(
    steps: &mut Steps,
    fleet: &Fleet,
    machines: &[Machine],
    deb: &Path,
    dir: &Path,
) -> Result<()> {
    let rollouts = write_rollouts(dir, deb)?;
    let get = |name: &str| -> Result<&Rollout> {
        rollouts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| r)
            .with_context(|| format!("no rollout {name}"))
    };
    let (v1, v2) = (get("v1")?, get("v2")?);
    let t = Target { fleet, machines };
    let result = steps_in_order(steps, &t, &get, v1, v2);
    if result.is_err() {
        t.dump_daemon_logs();
    }
    result?;
    steps.step("ansible-lint", ansible::lint)
}

fn steps_in_order<'a>(
    steps: &mut Steps,
    t: &Target<'_>,
    get: &dyn Fn(&str) -> Result<&'a Rollout>,
    v1: &Rollout,
    v2: &Rollout,
) -> Result<()> {
    steps.step("(a) install and enforce on every host", || t.install(v1))?;
    steps.step(
        "(b) change previewed with --check --diff: nothing changes",
        || t.preview(v1, v2),
    )?;
    steps.step(
        "(b) change rolled out in waves and enforced on every host",
        || t.waves(v2),
    )?;
    steps.step(
        "(c) broken policy rejected by validate in the first wave",
        || t.rejected(get("broken")?, v2),
    )?;
    steps.step(
        "(d) policy the daemon cannot apply rolled back in the first wave",
        || t.rolled_back(get("unappliable")?, v2),
    )?;
    steps.step("(e) the good policy again: changed=0 on every host", || {
        t.idempotent(get("again")?)
    })
}

/// The fleet and its hosts, in inventory order (the first is the first wave).
struct Target<'a> {
    fleet: &'a Fleet,
    machines: &'a [Machine],
}

impl Target<'_> {
    /// After a failure: each host's daemon journal, the first place to look.
    fn dump_daemon_logs(&self) {
        for m in self.machines {
            let log = m
                .run("journalctl -u nemoclaw --no-pager -n 25")
                .map_or_else(|e| format!("{e:#}"), |(_, out, err)| out + &err);
            println!("fleet: {}: journalctl -u nemoclaw:\n{log}", m.name);
        }
    }

    fn install(&self, v1: &Rollout) -> Result<()> {
        let run = self.fleet.rollout(&v1.vars, false)?;
        expect_success(&run, self.machines)?;
        for m in self.machines {
            expect_policy(m, &v1.policy)?;
            expect_denied(m, SECRET)?;
            expect_allowed(m, PUBLIC)?;
        }
        Ok(())
    }

    fn preview(&self, v1: &Rollout, v2: &Rollout) -> Result<()> {
        let run = self.fleet.rollout(&v2.vars, true)?;
        expect_success(&run, self.machines)?;
        ensure!(
            run.output.contains(&format!("+    - {PUBLIC}")),
            "check mode printed no diff adding {PUBLIC}"
        );
        for m in self.machines {
            ensure!(
                run.recap.get(&m.name).is_some_and(|r| r.changed > 0),
                "{}: check mode reported no change for a new policy",
                m.name
            );
            expect_policy(m, &v1.policy)?;
            expect_allowed(m, PUBLIC)?;
        }
        Ok(())
    }

    fn waves(&self, v2: &Rollout) -> Result<()> {
        let run = self.fleet.rollout(&v2.vars, false)?;
        expect_success(&run, self.machines)?;
        let waves = run
            .output
            .matches("PLAY [Roll NemoClaw out in waves]")
            .count();
        ensure!(
            waves >= 2,
            "expected the rollout in waves, saw {waves} batch(es)"
        );
        for m in self.machines {
            expect_policy(m, &v2.policy)?;
            expect_denied(m, PUBLIC)?;
            expect_denied(m, SECRET)?;
        }
        println!("fleet: rolled out in {waves} waves");
        Ok(())
    }

    fn rejected(&self, broken: &Rollout, v2: &Rollout) -> Result<()> {
        let run = self.fleet.rollout(&broken.vars, false)?;
        expect_stopped_at_first_wave(&run, self.machines)?;
        ensure!(
            run.output.contains("failed to validate"),
            "the first host failed, but not at validation"
        );
        for m in self.machines {
            expect_policy(m, &v2.policy)?;
        }
        Ok(())
    }

    fn rolled_back(&self, unappliable: &Rollout, v2: &Rollout) -> Result<()> {
        let run = self.fleet.rollout(&unappliable.vars, false)?;
        expect_stopped_at_first_wave(&run, self.machines)?;
        let first = &self.machines[0].name;
        ensure!(
            run.recap.get(first).is_some_and(|r| r.rescued == 1),
            "{first}: the role's rescue did not run"
        );
        ensure!(
            task_changed(&run.output, "Restore the previous policies", first),
            "{first}: the policy was not written and restored (did validation refuse it?)"
        );
        for m in self.machines {
            expect_policy(m, &v2.policy)?;
            expect_denied(m, PUBLIC)?;
        }
        Ok(())
    }

    fn idempotent(&self, again: &Rollout) -> Result<()> {
        let run = self.fleet.rollout(&again.vars, false)?;
        expect_success(&run, self.machines)?;
        for m in self.machines {
            let changed = run.recap.get(&m.name).map_or(u32::MAX, |r| r.changed);
            ensure!(
                changed == 0,
                "{}: a second run changed {changed} things",
                m.name
            );
        }
        Ok(())
    }
}

/// The run succeeded and reached every host without a failure.
fn expect_success(run: &PlaybookRun, machines: &[Machine]) -> Result<()> {
    ensure!(run.code == 0, "ansible-playbook exited with {}", run.code);
    for m in machines {
        let recap = run
            .recap
            .get(&m.name)
            .with_context(|| format!("{} is not in the PLAY RECAP", m.name))?;
        ensure!(
            recap.failed == 0 && recap.unreachable == 0,
            "{}: {recap:?}",
            m.name
        );
    }
    Ok(())
}

/// The first wave's host failed and no other host was touched.
fn expect_stopped_at_first_wave(run: &PlaybookRun, machines: &[Machine]) -> Result<()> {
    ensure!(
        run.code != 0,
        "ansible-playbook succeeded with a bad policy"
    );
    let first = &machines[0].name;
    ensure!(
        run.recap.get(first).is_some_and(|r| r.failed > 0),
        "{first}: not failed ({:?})",
        run.recap.get(first)
    );
    for m in &machines[1..] {
        ensure!(
            run.recap
                .get(&m.name)
                .is_none_or(|r| r.ok == 0 && r.changed == 0),
            "{}: reached by the rollout after the first wave failed ({:?})",
            m.name,
            run.recap.get(&m.name)
        );
    }
    Ok(())
}

/// Whether the output shows `task` reporting `changed` for `host`.
fn task_changed(output: &str, task: &str, host: &str) -> bool {
    output.split("TASK [").any(|section| {
        section.split_once(']').is_some_and(|(name, body)| {
            name.ends_with(task)
                && body
                    .lines()
                    .any(|l| l.starts_with(&format!("changed: [{host}]")))
        })
    })
}

/// `sha256sum` of a local file.
fn sha256_local(path: &Path) -> Result<String> {
    let out = util::output(Command::new("sha256sum").arg(path))?;
    Ok(out.split_whitespace().next().unwrap_or_default().to_owned())
}

/// The host's policy file is `policy`, and /healthz says the daemon enforces it, healthy.
fn expect_policy(m: &Machine, policy: &Path) -> Result<()> {
    let want = sha256_local(policy)?;
    let on_disk = m.check(&format!("sha256sum /etc/nemoclaw/policies/{SANDBOX}.yaml"))?;
    ensure!(
        on_disk.starts_with(&want),
        "{}: the policy file is not {} (sha256 {})",
        m.name,
        policy.display(),
        on_disk.trim()
    );
    let health = healthz(m)?;
    let sandbox = health["sandboxes"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == SANDBOX))
        .with_context(|| format!("{}: /healthz lists no sandbox {SANDBOX}: {health}", m.name))?;
    ensure!(
        sandbox["sha256"] == want.as_str() && health["status"] == "ok",
        "{}: /healthz should say status ok and sha256 {want} ({}): {health}",
        m.name,
        policy.display()
    );
    Ok(())
}

/// `GET /healthz` on the host (its body, whatever the status code).
fn healthz(m: &Machine) -> Result<serde_json::Value> {
    let script = format!(
        "python3 -c \"import urllib.request, urllib.error\ntry:\n  b = urllib.request.urlopen('{HEALTHZ}').read()\nexcept urllib.error.HTTPError as e:\n  b = e.read()\nprint(b.decode())\""
    );
    let body = m.check(&script)?;
    serde_json::from_str(&body).with_context(|| format!("{}: /healthz is not JSON: {body}", m.name))
}

/// `cat FILE` in the sandbox fails with EACCES, and the audit log has the denial.
fn expect_denied(m: &Machine, file: &str) -> Result<()> {
    let (code, stdout, stderr) =
        m.run(&format!("nemoclaw run --sandbox {SANDBOX} -- cat {file}"))?;
    if code == 0 || !stderr.contains("Permission denied") {
        bail!(
            "{}: `cat {file}` in sandbox {SANDBOX} should fail with EACCES; exit {code}, stdout {:?}, stderr {:?}",
            m.name,
            stdout.trim(),
            stderr.trim()
        );
    }
    let log = m.check(&format!("grep -F -- {file} {AUDIT_LOG} || true"))?;
    let recorded = log.lines().any(|line| {
        serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|r| r["decision"] == "deny" && r["sandbox"] == SANDBOX)
    });
    ensure!(
        recorded,
        "{}: no deny record for {file} in {AUDIT_LOG}",
        m.name
    );
    Ok(())
}

/// `cat FILE` in the sandbox succeeds.
fn expect_allowed(m: &Machine, file: &str) -> Result<()> {
    let (code, _, stderr) = m.run(&format!("nemoclaw run --sandbox {SANDBOX} -- cat {file}"))?;
    ensure!(
        code == 0,
        "{}: `cat {file}` in sandbox {SANDBOX} should succeed; exit {code}: {}",
        m.name,
        stderr.trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::task_changed;

    #[test]
    fn finds_a_tasks_changed_host() {
        let out = "TASK [nemoclaw.fleet.nemoclaw : Restore the previous policies] ***\n\
                   changed: [fleet1] => (item=/etc/nemoclaw/policies/agents.yaml)\n\n\
                   TASK [nemoclaw.fleet.nemoclaw : Fail the host] ***\nfatal: [fleet1]: FAILED!\n";
        assert!(task_changed(out, "Restore the previous policies", "fleet1"));
        assert!(!task_changed(
            out,
            "Restore the previous policies",
            "fleet2"
        ));
        assert!(!task_changed(out, "Fail the host", "fleet1"));
    }
}
