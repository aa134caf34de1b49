//! The configurations `cargo xtask bench` runs: one `nemoclaw-bench op` invocation per
//! (scenario, system, rule count), in an order that interleaves the systems (for each
//! scenario: none, floor, then for each rule count every system), so that a slow phase of
//! the machine is shared between systems rather than falling on one system's series.

use super::ROUNDS;

/// Rule counts of the per-operation scenarios.
pub const RULE_COUNTS: [usize; 3] = [10, 1000, 100_000];

/// Rule-bearing systems natively (network scenarios).
const NATIVE_SYSTEMS: [&str; 4] = ["nemoclaw", "nemoclaw-daemon", "landlock", "apparmor"];

/// Rule-bearing systems in the VM (LSM scenarios). No `nemoclaw-daemon`: LSM programs are
/// global and look the registry (`SANDBOXES`) up by cgroup id whether `nemoclaw run` or the
/// daemon loaded them (only the network programs differ, by where they are attached), so its
/// rows would repeat `nemoclaw`'s at the cost of VM time.
const VM_SYSTEMS: [&str; 3] = ["nemoclaw", "landlock", "apparmor"];

/// One `nemoclaw-bench op` invocation.
#[derive(Clone)]
pub struct Config {
    pub scenario: &'static str,
    pub system: &'static str,
    pub rules: usize,
    count: u64,
    warmup: u64,
}

impl Config {
    pub fn new(
        scenario: &'static str,
        system: &'static str,
        rules: usize,
        count: u64,
        warmup: u64,
    ) -> Self {
        Self {
            scenario,
            system,
            rules,
            count,
            warmup,
        }
    }

    pub fn args(&self, divide: u64) -> Vec<String> {
        let divide = divide.max(1);
        vec![
            "op".into(),
            "--workload".into(),
            self.scenario.into(),
            "--system".into(),
            self.system.into(),
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

    pub fn key(&self) -> (String, String, usize) {
        (
            self.scenario.to_string(),
            self.system.to_string(),
            self.rules,
        )
    }

    /// The table's row label: `none`, `floor`, or `SYSTEM RULES` (`nemoclaw 1k`).
    pub fn label(&self) -> String {
        label(self.system, self.rules)
    }
}

pub fn label(system: &str, rules: usize) -> String {
    if matches!(system, "none" | "floor") {
        system.to_string()
    } else {
        format!("{system} {}", rules_label(rules))
    }
}

pub fn rules_label(rules: usize) -> String {
    match rules {
        r if r >= 1000 && r % 1000 == 0 => format!("{}k", r / 1000),
        r => r.to_string(),
    }
}

/// A scenario's configurations in table (and run) order.
pub struct Workload {
    pub name: &'static str,
    pub title: &'static str,
    pub configs: Vec<Config>,
}

fn workload(
    name: &'static str,
    title: &'static str,
    count: u64,
    systems: &[&'static str],
) -> Workload {
    let mut configs = vec![
        Config::new(name, "none", 0, count, count / 10),
        Config::new(name, "floor", 0, count, count / 10),
    ];
    for rules in RULE_COUNTS {
        for system in systems {
            configs.push(Config::new(name, system, rules, count, count / 10));
        }
    }
    Workload {
        name,
        title,
        configs,
    }
}

/// The network benches, natively.
pub fn native_workloads() -> Vec<Workload> {
    vec![
        workload(
            "tcp",
            "TCP connect+accept+close, loopback (native)",
            20_000,
            &NATIVE_SYSTEMS,
        ),
        workload(
            "udp",
            "UDP sendto, loopback (native)",
            100_000,
            &NATIVE_SYSTEMS,
        ),
    ]
}

/// The LSM benches, in the VM. Counts keep the whole VM run near 20 minutes under TCG (an
/// open costs ~6 us there, an exec ~1 ms; the 100k-rule setups and AppArmor's profile
/// compiles take most of it).
pub fn vm_workloads() -> Vec<Workload> {
    let file = 20_000;
    let exec = 400;
    let fs = |name, title| workload(name, title, file, &VM_SYSTEMS);
    vec![
        fs(
            "open-read-d2",
            "open(O_RDONLY)+close of a tmpfs file, 2 components below /tmp",
        ),
        fs("open-read-d6", "open(O_RDONLY)+close, 6 components deep"),
        fs("open-read-d12", "open(O_RDONLY)+close, 12 components deep"),
        fs(
            "open-write-d2",
            "open(O_WRONLY)+close of a tmpfs file, 2 components below /tmp",
        ),
        fs("open-write-d6", "open(O_WRONLY)+close, 6 components deep"),
        fs("open-write-d12", "open(O_WRONLY)+close, 12 components deep"),
        workload(
            "create-unlink",
            "open(O_CREAT|O_EXCL)+close+unlink on tmpfs",
            file / 2,
            &VM_SYSTEMS,
        ),
        fs("stat", "stat of a tmpfs file"),
        workload(
            "exec",
            "fork+execve(/bin/busybox true)+wait",
            exec,
            &VM_SYSTEMS,
        ),
    ]
}

/// The compile bench: NemoClaw's policy compiler at 1k and 100k generated rules.
pub fn compile_configs() -> Vec<Config> {
    [1000, 100_000]
        .into_iter()
        .map(|rules| Config::new("compile", "nemoclaw", rules, 1, 0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_alternate_within_each_rule_count() {
        let open = &vm_workloads()[0];
        let order: Vec<String> = open.configs.iter().map(Config::label).collect();
        assert_eq!(
            order[..5],
            ["none", "floor", "nemoclaw 10", "landlock 10", "apparmor 10"]
        );
        assert_eq!(order.last().map(String::as_str), Some("apparmor 100k"));
        let tcp = &native_workloads()[0];
        assert!(
            tcp.configs
                .iter()
                .any(|c| c.label() == "nemoclaw-daemon 1k")
        );
    }

    #[test]
    fn every_scenario_of_the_schema() {
        let names: Vec<&str> = vm_workloads()
            .iter()
            .chain(native_workloads().iter())
            .map(|w| w.name)
            .collect();
        assert_eq!(names.len(), 11);
        for w in vm_workloads() {
            assert_eq!(w.configs.len(), 2 + RULE_COUNTS.len() * VM_SYSTEMS.len());
        }
        let args = compile_configs()[0].args(1);
        assert_eq!(
            args[1..7],
            [
                "--workload",
                "compile",
                "--system",
                "nemoclaw",
                "--rules",
                "1000"
            ]
        );
    }
}
