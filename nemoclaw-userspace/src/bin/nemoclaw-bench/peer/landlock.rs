//! The `landlock` system: the process restricts itself with Landlock (raw syscalls), with N
//! path-beneath rules of which one allows the measured path. The rule targets must exist:
//! they are created under the work directory first. Landlock cannot be undone, and each
//! configuration is its own process, so the restriction comes last, just before the timed
//! rounds; what the harness does afterwards (writing `cgroup.procs` through descriptors
//! opened before, bpf syscalls, stdout) is not judged by Landlock, which checks opens.

use std::path::PathBuf;

use crate::landlock_sys::{self, EXECUTE, MAKE_REG, READ_FILE, REMOVE_FILE, WRITE_FILE};
use crate::scenario::{Access, Scenario, WorkDir};

/// The handled accesses of every file scenario: all that any of them needs.
pub const HANDLED: u64 = EXECUTE | WRITE_FILE | READ_FILE | REMOVE_FILE | MAKE_REG;

/// The rule set: (path, allowed accesses), the measured path's rule last.
pub fn rules(scenario: Scenario, work: &WorkDir, rules: usize) -> Vec<(PathBuf, u64)> {
    let others = if scenario == Scenario::Exec {
        EXECUTE | READ_FILE
    } else {
        HANDLED
    };
    let mut out: Vec<(PathBuf, u64)> = (0..rules.saturating_sub(1))
        .map(|i| (work.target(scenario, i), others))
        .collect();
    let measured = match scenario.access() {
        Some(Access::Read) => READ_FILE,
        Some(Access::Write) => READ_FILE | WRITE_FILE,
        Some(Access::CreateRemove) => HANDLED,
        Some(Access::Execute) => EXECUTE | READ_FILE,
        None => 0,
    };
    out.push((work.measured(scenario), measured));
    out
}

/// A ruleset with every rule added, not yet enforced.
pub struct Ruleset {
    ruleset: landlock_sys::Ruleset,
    pub abi: i64,
}

/// Creates the rule targets and the ruleset.
pub fn prepare(scenario: Scenario, work: &WorkDir, count: usize) -> anyhow::Result<Ruleset> {
    let abi = landlock_sys::abi()?;
    work.make_targets(scenario, count.saturating_sub(1))?;
    let ruleset = landlock_sys::Ruleset::create(HANDLED)?;
    for (path, access) in rules(scenario, work, count) {
        ruleset.allow_beneath(&path, access)?;
    }
    Ok(Ruleset { ruleset, abi })
}

impl Ruleset {
    /// Enforces the ruleset on this thread (the harness has one): irreversible.
    pub fn restrict(&self) -> anyhow::Result<()> {
        self.ruleset.restrict_self()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_rules_one_of_them_the_measured_path() {
        let work = std::mem::ManuallyDrop::new(WorkDir {
            path: PathBuf::from("/nonexistent/nemoclaw-bench-1"),
        });
        for (scenario, access) in [
            (Scenario::OpenReadD6, READ_FILE),
            (Scenario::OpenWriteD2, READ_FILE | WRITE_FILE),
            (Scenario::CreateUnlink, HANDLED),
            (Scenario::Exec, EXECUTE | READ_FILE),
        ] {
            let set = rules(scenario, &work, 1000);
            assert_eq!(set.len(), 1000);
            let (last, got) = set.last().unwrap();
            assert_eq!(*last, work.measured(scenario));
            assert_eq!(*got, access);
            let distinct: std::collections::BTreeSet<_> = set.iter().map(|(p, _)| p).collect();
            assert_eq!(distinct.len(), 1000);
        }
    }
}
