//! The systems `nemoclaw-bench op` compares NemoClaw with, and what each cannot express.
//!
//! Every system is given the same rule set for a scenario: N rules of which one allows the
//! measured path (see [`crate::scenario`]), built by [`nemoclaw`], [`landlock`] and
//! [`apparmor`].

pub mod apparmor;
pub mod landlock;
pub mod nemoclaw;

use crate::{op::System, scenario::Scenario};

/// Why `system` cannot be measured on `scenario` with `rules` rules, if it cannot (the row
/// is still reported, with this reason).
pub fn unsupported(scenario: Scenario, system: System, rules: usize) -> Option<String> {
    let reason = match (system, scenario) {
        (System::Landlock | System::Apparmor, Scenario::Compile) => {
            "compile measures NemoClaw's policy compiler only"
        }
        (System::Landlock, Scenario::Tcp) => {
            "Landlock's network rules are TCP ports only (ABI 4+): no address or CIDR rules, so the rule set cannot be expressed"
        }
        (System::Landlock, Scenario::Udp) => "Landlock has no UDP rules",
        (System::Apparmor, Scenario::Tcp | Scenario::Udp) => {
            "AppArmor network rules on 6.12 are per address family and socket type, not per address or port"
        }
        (System::Floor, Scenario::Stat) => {
            "NemoClaw has no hook on stat (no inode_getattr program): no floor program to attach"
        }
        (System::Nemoclaw | System::NemoclawDaemon, Scenario::Exec)
            if rules > nemoclaw_common::exec::MAX_EXEC_RULES as usize =>
        {
            return Some(format!(
                "NemoClaw's exec rule map (EXEC_RULES) holds at most {} binaries",
                nemoclaw_common::exec::MAX_EXEC_RULES
            ));
        }
        (System::Apparmor, _) if rules > apparmor::MAX_RULES => {
            return Some(format!(
                "not measured: {}",
                apparmor::TOO_MANY_RULES.replace("MAX", &apparmor::MAX_RULES.to_string())
            ));
        }
        _ => return None,
    };
    Some(reason.to_string())
}

/// What a reader must know about a measured row (the system does not judge the operation).
pub fn note(scenario: Scenario, system: System) -> Option<&'static str> {
    match (system, scenario) {
        (System::Landlock, Scenario::Stat) => {
            Some("Landlock does not mediate stat: the process is restricted, stat is not checked")
        }
        (System::Nemoclaw | System::NemoclawDaemon, Scenario::Stat) => Some(
            "NemoClaw does not mediate stat (no inode_getattr hook): its filesystem programs are attached, stat is not checked",
        ),
        (System::Floor, Scenario::CreateUnlink) => Some(
            "floor: a no-op file_open program only (NemoClaw's own also run on path_mknod and path_unlink)",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unsupported_row_has_a_reason() {
        assert!(unsupported(Scenario::Udp, System::Landlock, 10).is_some());
        assert!(unsupported(Scenario::Tcp, System::Landlock, 10).is_some());
        assert!(unsupported(Scenario::Tcp, System::Apparmor, 10).is_some());
        assert!(unsupported(Scenario::OpenReadD2, System::Apparmor, 100_000).is_some());
        assert!(unsupported(Scenario::OpenReadD2, System::Apparmor, 1000).is_none());
        assert!(unsupported(Scenario::OpenReadD2, System::Landlock, 100_000).is_none());
        assert!(unsupported(Scenario::Tcp, System::NemoclawDaemon, 100_000).is_none());
        assert!(unsupported(Scenario::Exec, System::Nemoclaw, 100_000).is_some());
        assert!(unsupported(Scenario::Exec, System::Nemoclaw, 1000).is_none());
        let reason = unsupported(Scenario::Exec, System::Apparmor, 100_000).unwrap();
        assert!(!reason.contains("MAX"), "{reason}");
    }
}
