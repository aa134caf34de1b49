//! The `landlock` system: the process restricts itself with Landlock (raw syscalls), with N
//! path-beneath rules of which one allows the measured path. The rule targets must exist:
//! they are created under the work directory first. Landlock cannot be undone, and each
//! configuration is its own process, so the restriction comes last, just before the timed
//! rounds; what the harness does afterwards (writing `cgroup.procs` through descriptors
//! opened before, bpf syscalls, stdout) is not judged by Landlock, which checks opens.

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use crate::scenario::{Access, Scenario, WorkDir};

const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const REMOVE_FILE: u64 = 1 << 5;
const MAKE_REG: u64 = 1 << 8;
/// The handled accesses of every file scenario: all that any of them needs.
pub const HANDLED: u64 = EXECUTE | WRITE_FILE | READ_FILE | REMOVE_FILE | MAKE_REG;
/// The accesses a rule on a regular file may carry (the kernel refuses directory rights).
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE;

const RULE_PATH_BENEATH: libc::c_int = 1;
const CREATE_RULESET_VERSION: u32 = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

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

/// The kernel's Landlock ABI version (0: Landlock unavailable or disabled).
pub fn abi() -> i64 {
    // SAFETY: the documented version query (no attribute, the version flag).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// A ruleset with every rule added, not yet enforced.
pub struct Ruleset {
    fd: OwnedFd,
    pub abi: i64,
}

/// Creates the rule targets and the ruleset.
pub fn prepare(scenario: Scenario, work: &WorkDir, count: usize) -> anyhow::Result<Ruleset> {
    let abi = abi();
    if abi < 1 {
        bail!("Landlock is not available on this kernel (or not in its LSM list)");
    }
    work.make_targets(scenario, count.saturating_sub(1))?;
    let attr = RulesetAttr {
        handled_access_fs: HANDLED,
    };
    // SAFETY: a valid attribute of the given size; the result is a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &raw const attr,
            size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("landlock_create_ruleset");
    }
    let fd = i32::try_from(fd).context("ruleset fd")?;
    // SAFETY: the kernel just gave us this fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    for (path, access) in rules(scenario, work, count) {
        add_rule(&fd, &path, access)?;
    }
    Ok(Ruleset { fd, abi })
}

fn add_rule(ruleset: &OwnedFd, path: &Path, access: u64) -> anyhow::Result<()> {
    let target = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("opening {} (O_PATH)", path.display()))?;
    let access = if target.metadata().is_ok_and(|m| m.is_dir()) {
        access
    } else {
        access & FILE_RIGHTS
    };
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: target.as_raw_fd(),
    };
    // SAFETY: a ruleset fd, the rule type and its attribute.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &raw const attr,
            0u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("landlock_add_rule {}", path.display()));
    }
    Ok(())
}

impl Ruleset {
    /// Enforces the ruleset on this thread (the harness has one): irreversible.
    pub fn restrict(&self) -> anyhow::Result<()> {
        // SAFETY: a ruleset fd and no flags.
        let rc =
            unsafe { libc::syscall(libc::SYS_landlock_restrict_self, self.fd.as_raw_fd(), 0u32) };
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("landlock_restrict_self");
        }
        Ok(())
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
