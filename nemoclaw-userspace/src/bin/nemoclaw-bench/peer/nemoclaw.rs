//! NemoClaw's generated policy for a scenario: the same N rules as the other systems'
//! (N-1 other targets, one rule allowing the measured path), or for the network scenarios
//! N CIDR rules (Landlock and AppArmor cannot express those).

use std::fmt::Write as _;

use crate::scenario::{Access, Scenario, WorkDir};

/// The policy text for `rules` rules (the exec scenario's targets must exist: see
/// [`WorkDir::make_targets`]).
pub fn policy_text(scenario: Scenario, rules: usize, work: &WorkDir) -> String {
    let mut text = String::new();
    match scenario.access() {
        Some(Access::Execute) => {
            let _ = writeln!(text, "process:\n  allow:");
            for i in 0..rules.saturating_sub(1) {
                let _ = writeln!(text, "  - {}", work.target(scenario, i).display());
            }
            let _ = writeln!(text, "  - {}", work.measured(scenario).display());
        }
        Some(access) => {
            let _ = writeln!(text, "filesystem:\n  allow:");
            for i in 0..rules.saturating_sub(1) {
                let _ = writeln!(text, "  - {}/**", work.target(scenario, i).display());
            }
            let measured = work.measured(scenario);
            let _ = match access {
                Access::Read => {
                    writeln!(text, "  - {{path: {}, access: read}}", measured.display())
                }
                Access::Write => writeln!(text, "  - {}", measured.display()),
                _ => writeln!(text, "  - {}/**", measured.display()),
            };
        }
        None if matches!(scenario, Scenario::Tcp | Scenario::Udp) => {
            // Half allow (CIDR, one port), half deny (CIDR, any port): two lookup groups.
            let mut deny = String::new();
            text.push_str("network:\n  allow:\n  - \"127.0.0.1:*\"\n");
            for i in 0..rules {
                let j = i / 2;
                let (hi, mid, lo) = (j >> 16, (j >> 8) & 255, j & 255);
                if i % 2 == 0 {
                    let _ = writeln!(text, "  - \"{}.{mid}.{lo}.0/24:443\"", 10 + hi);
                } else {
                    let _ = writeln!(deny, "  - \"{}.{mid}.{lo}.0/24:*\"", 20 + hi);
                }
            }
            if !deny.is_empty() {
                let _ = write!(text, "  deny:\n{deny}");
            }
        }
        None => {}
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn compiles(text: &str) -> nemoclaw::policy::CompiledPolicy {
        let parsed = nemoclaw::policy::parse_str(Path::new("bench.yaml"), text).unwrap();
        nemoclaw::policy::compile(&parsed, &nemoclaw::policy::CompileEnv::new("/root".into()))
            .unwrap()
            .policy
    }

    #[test]
    fn the_same_n_rules_as_the_peers() {
        let work = std::mem::ManuallyDrop::new(WorkDir {
            path: PathBuf::from("/tmp/nemoclaw-bench-1"),
        });
        let text = policy_text(Scenario::OpenReadD12, 100, &work);
        assert_eq!(text.lines().filter(|l| l.starts_with("  - ")).count(), 100);
        assert!(text.contains("{path: /tmp/nemoclaw-bench-1/p1/"));
        let compiled = compiles(&text);
        // `dir/**` is two entries (the directory itself, and the prefix).
        assert_eq!(
            compiled.fs_exact.len() + compiled.fs_prefix.len(),
            2 * 99 + 1
        );
        let write = policy_text(Scenario::CreateUnlink, 10, &work);
        assert!(write.contains("  - /tmp/nemoclaw-bench-1/c/**\n"));
        compiles(&write);
        let exec = policy_text(Scenario::Exec, 10, &work);
        let busybox = work.measured(Scenario::Exec);
        let tail = format!(
            "  - /tmp/nemoclaw-bench-1/bin/b8\n  - {}\n",
            busybox.display()
        );
        assert!(exec.ends_with(&tail), "{exec}");
        let net = policy_text(Scenario::Tcp, 1000, &work);
        assert!(!compiles(&net).net4.is_empty());
    }
}
