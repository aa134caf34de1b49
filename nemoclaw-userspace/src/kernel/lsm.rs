//! Whether BPF LSM is *active* on this kernel, not only built in.
//!
//! A kernel built with `CONFIG_BPF_LSM=y` whose boot-time LSM list (`lsm=`, or the built-in
//! `CONFIG_LSM`) does not name `bpf` loads and attaches LSM programs and then never runs
//! them: the shape of Ubuntu's, Flatcar's and SLES's default kernels. Loading a program
//! proves nothing there; the active list, read from securityfs, does (and the self-test in
//! `sandbox::selftest` then sees a denial happen).

use std::{fs, io, path::Path};

/// The active LSMs, comma-separated, in the order the kernel calls them.
pub const LSM_LIST: &str = "/sys/kernel/security/lsm";
const SECURITYFS: &str = "/sys/kernel/security";

/// The active LSM list, or why it cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsmList(pub Vec<String>);

#[derive(Debug, thiserror::Error)]
pub enum LsmListError {
    #[error(
        "cannot read the active LSM list {LSM_LIST} ({0}); mount securityfs \
         (`mount -t securityfs securityfs {SECURITYFS}`) so NemoClaw can check that BPF LSM runs"
    )]
    Unreadable(io::Error),
}

impl LsmList {
    /// Parses the contents of [`LSM_LIST`] (`lockdown,capability,landlock,...`).
    #[must_use]
    pub fn parse(text: &str) -> Self {
        Self(
            text.trim()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Reads the active list, mounting securityfs first where it is not mounted (root).
    /// A list that cannot be read is an error, never taken as "bpf is active".
    pub fn read() -> Result<Self, LsmListError> {
        if !Path::new(LSM_LIST).exists() {
            // Best effort: where the mount fails, the read below says why.
            let _ = nix::mount::mount(
                Some("securityfs"),
                SECURITYFS,
                Some("securityfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            );
        }
        fs::read_to_string(LSM_LIST)
            .map(|text| Self::parse(&text))
            .map_err(LsmListError::Unreadable)
    }

    /// Whether `bpf` is one of the active LSMs.
    #[must_use]
    pub fn has_bpf(&self) -> bool {
        self.0.iter().any(|l| l == "bpf")
    }

    /// The list as the kernel prints it.
    #[must_use]
    pub fn joined(&self) -> String {
        self.0.join(",")
    }

    /// The `lsm=` boot parameter that activates BPF LSM while keeping every LSM active now:
    /// `lsm=` replaces the built-in list, so `lsm=bpf` alone would switch `AppArmor` or
    /// `SELinux` off.
    #[must_use]
    pub fn boot_parameter_with_bpf(&self) -> String {
        let mut list = self.0.clone();
        if !self.has_bpf() {
            list.push("bpf".to_owned());
        }
        format!("lsm={}", list.join(","))
    }

    /// Why BPF LSM controls cannot run here and the exact fix, for refusals and `doctor`.
    /// `None` when `bpf` is active.
    #[must_use]
    pub fn inactive_reason(&self) -> Option<(String, String)> {
        if self.has_bpf() {
            return None;
        }
        Some((
            format!(
                "BPF LSM is not active on this kernel (the active LSMs are `{}`, without bpf), so \
                 LSM programs would load and attach and then never run",
                self.joined()
            ),
            format!(
                "add bpf to the kernel's LSM list, keeping the ones active now: boot with `{}` \
                 (`lsm=` replaces the whole list, so `lsm=bpf` alone would switch the others \
                 off). On GRUB systems: {}. `nemoclaw doctor` checks the result",
                self.boot_parameter_with_bpf(),
                self.grub_command()
            ),
        ))
    }

    /// The shell command that adds the parameter on a Debian-family GRUB system (Ubuntu).
    #[must_use]
    pub fn grub_command(&self) -> String {
        format!(
            "`sudo sed -i 's/^GRUB_CMDLINE_LINUX=\"/&{} /' /etc/default/grub && sudo update-grub \
             && sudo reboot`",
            self.boot_parameter_with_bpf()
        )
    }
}

/// Distributions by whether their default kernels run BPF LSM, for `doctor` and the docs.
pub const BPF_LSM_ACTIVE_BY_DEFAULT: &str = "Debian 12+, Fedora, RHEL 9 and its clones, Amazon \
     Linux 2023, Container-Optimized OS, Arch";
pub const BPF_LSM_MUST_BE_ADDED: &str = "Ubuntu 22.04/24.04 (and GKE/AKS Ubuntu nodes), \
     Flatcar, SLES";

#[cfg(test)]
mod tests {
    use super::LsmList;

    const UBUNTU: &str = "lockdown,capability,landlock,yama,integrity,apparmor\n";

    #[test]
    fn ubuntu_default_lacks_bpf_and_the_fix_keeps_the_list() {
        let list = LsmList::parse(UBUNTU);
        assert!(!list.has_bpf());
        assert_eq!(
            list.boot_parameter_with_bpf(),
            "lsm=lockdown,capability,landlock,yama,integrity,apparmor,bpf"
        );
        let (why, fix) = list.inactive_reason().expect("inactive");
        assert!(
            why.contains("`lockdown,capability,landlock,yama,integrity,apparmor`"),
            "{why}"
        );
        assert!(
            fix.contains("`lsm=lockdown,capability,landlock,yama,integrity,apparmor,bpf`"),
            "{fix}"
        );
        assert!(fix.contains("update-grub"), "{fix}");
    }

    #[test]
    fn debian_default_has_bpf() {
        let list = LsmList::parse("lockdown,capability,landlock,yama,apparmor,tomoyo,bpf\n");
        assert!(list.has_bpf());
        assert_eq!(list.inactive_reason(), None);
        assert_eq!(
            list.boot_parameter_with_bpf(),
            "lsm=lockdown,capability,landlock,yama,apparmor,tomoyo,bpf"
        );
    }

    #[test]
    fn a_name_containing_bpf_is_not_bpf() {
        assert!(!LsmList::parse("capability,notbpf, bpfx").has_bpf());
        assert!(LsmList::parse("capability, bpf ").has_bpf());
        assert!(!LsmList::parse("").has_bpf());
    }
}
