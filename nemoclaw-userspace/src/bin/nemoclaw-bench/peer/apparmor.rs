//! The `apparmor` system: a generated profile with the scenario's N file rules (one of
//! them allowing the measured path), loaded with `apparmor_parser -r` and entered by
//! writing `changeprofile NAME` to `/proc/thread-self/attr/apparmor/current` (allowed from
//! unconfined), last, just before the timed rounds.
//!
//! Paths are taken relative to the process's root (`chroot_relative`): the VM runs the
//! bench chrooted into the host's root.
//!
//! Besides the N rules the profile grants what the harness itself needs outside the work
//! directory (capabilities for the bpf syscalls, `/proc`, `/sys` for leaving the sandbox
//! cgroup through descriptors AppArmor revalidates, `/dev` for the console): none of it
//! covers the measured path.

use std::{
    fmt::Write as _,
    fs,
    io::Write as _,
    os::unix::fs::FileExt as _,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::scenario::{Access, Scenario, WorkDir};

/// The most rules a generated profile gets: `apparmor_parser`'s compile time and memory grow
/// fast with the rule count.
pub const MAX_RULES: usize = 10_000;

/// Why larger profiles are not measured (`MAX` is replaced by [`MAX_RULES`]).
pub const TOO_MANY_RULES: &str = "profiles above MAX rules are not compiled: apparmor_parser 3.0.8 took 53 s and 576 MB natively for 20k generated file rules (2 s for 1k), so 100k would outgrow the VM's 2 GB and the TCG time budget";

const PARSER: &str = "/usr/sbin/apparmor_parser";

/// The profile's name for this process.
pub fn profile_name() -> String {
    format!("nemoclaw-bench-{}", std::process::id())
}

/// The profile text: the harness's own needs, then the N rules (the measured path's last).
pub fn profile_text(name: &str, scenario: Scenario, work: &WorkDir, rules: usize) -> String {
    let mut text = format!(
        "profile {name} flags=(attach_disconnected, chroot_relative) {{\n  \
         # what the harness itself needs (not among the N rules)\n  \
         capability,\n  network,\n  signal,\n  unix,\n  \
         /proc/** rw,\n  /sys/** rw,\n  /dev/** rw,\n  \
         # the {rules} rules\n"
    );
    for i in 0..rules.saturating_sub(1) {
        let target = work.target(scenario, i);
        if scenario == Scenario::Exec {
            let _ = writeln!(text, "  {} rmix,", target.display());
        } else {
            let _ = writeln!(text, "  {}/** rw,", target.display());
        }
    }
    let measured = work.measured(scenario);
    let rule = match scenario.access() {
        Some(Access::Read) => format!("{} r,", measured.display()),
        Some(Access::Write) => format!("{} rw,", measured.display()),
        Some(Access::CreateRemove) => format!("{}/** rw,", measured.display()),
        Some(Access::Execute) => format!("{} rmix,", measured.display()),
        None => String::new(),
    };
    let _ = writeln!(text, "  {rule}\n}}");
    text
}

/// Whether AppArmor is active on this kernel; why not if not.
pub fn active() -> Result<(), String> {
    let lsm = fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    if !lsm.split(',').any(|l| l.trim() == "apparmor") {
        return Err(format!(
            "AppArmor is not active on this kernel (LSM list: {})",
            if lsm.is_empty() {
                "unreadable"
            } else {
                lsm.trim()
            }
        ));
    }
    if !Path::new(PARSER).is_file() {
        return Err(format!(
            "{PARSER} is missing (the Debian package apparmor; cargo xtask setup)"
        ));
    }
    Ok(())
}

/// Writes, compiles and loads the profile (`apparmor_parser -r`, no cache: the root may be
/// read-only); returns its name.
pub fn load(scenario: Scenario, work: &WorkDir, rules: usize) -> anyhow::Result<String> {
    active().map_err(anyhow::Error::msg)?;
    let name = profile_name();
    let path = work.path.join("profile.apparmor");
    fs::write(&path, profile_text(&name, scenario, work, rules))
        .with_context(|| format!("writing {}", path.display()))?;
    let out = Command::new(PARSER)
        .args(["--replace", "--skip-cache", "--quiet"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {PARSER}"))?;
    if !out.status.success() {
        bail!(
            "{PARSER} -r {}: {}: {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(name)
}

/// Moves this thread into the profile (irreversible for the process), and checks that it
/// is in it (read back through the same descriptor: opening it again would be judged by the
/// profile).
pub fn enter(name: &str) -> anyhow::Result<()> {
    let attr = [
        "/proc/thread-self/attr/apparmor/current",
        "/proc/thread-self/attr/current",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .context("no /proc/thread-self/attr/apparmor/current")?;
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(attr)
        .with_context(|| format!("opening {attr}"))?;
    file.write_all(format!("changeprofile {name}").as_bytes())
        .with_context(|| format!("writing changeprofile {name} to {attr}"))?;
    let mut buf = [0u8; 256];
    let n = file
        .read_at(&mut buf, 0)
        .with_context(|| format!("reading {attr} back"))?;
    let now = String::from_utf8_lossy(&buf[..n]);
    if !now.starts_with(name) {
        bail!("still {:?} after changeprofile {name}", now.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn work() -> std::mem::ManuallyDrop<WorkDir> {
        std::mem::ManuallyDrop::new(WorkDir {
            path: PathBuf::from("/tmp/nemoclaw-bench-1"),
        })
    }

    #[test]
    fn profile_has_n_rules_and_allows_the_measured_path() {
        let w = work();
        let text = profile_text("p", Scenario::OpenReadD6, &w, 10);
        let rules: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.contains("the 10 rules"))
            .skip(1)
            .filter(|l| l.trim_end().ends_with(','))
            .collect();
        assert_eq!(rules.len(), 10, "{text}");
        assert_eq!(
            rules.last().unwrap().trim(),
            "/tmp/nemoclaw-bench-1/p1/p2/p3/p4/f.txt r,"
        );
        assert!(text.contains("/tmp/nemoclaw-bench-1/r/d8/** rw,"));
        assert!(text.starts_with("profile p flags=(attach_disconnected, chroot_relative) {"));
        assert!(text.trim_end().ends_with('}'));
        let exec = profile_text("p", Scenario::Exec, &w, 3);
        assert!(exec.contains("/tmp/nemoclaw-bench-1/bin/b1 rmix,"));
        let busybox = w.measured(Scenario::Exec);
        assert!(exec.contains(&format!("{} rmix,", busybox.display())));
        let create = profile_text("p", Scenario::CreateUnlink, &w, 1);
        assert!(create.contains("/tmp/nemoclaw-bench-1/c/** rw,"));
    }

    #[test]
    fn nothing_but_the_rules_reaches_the_work_dir() {
        let w = work();
        let text = profile_text("p", Scenario::OpenWriteD2, &w, 1);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("/tmp/")).collect();
        assert_eq!(lines, ["  /tmp/nemoclaw-bench-1/f.txt rw,"]);
    }
}
