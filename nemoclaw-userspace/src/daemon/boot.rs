//! The daemon's boot: a bpffs for the pins, enforcement adopted from them (same object
//! only) or loaded and pinned (network-only where BPF LSM is unavailable, saying why), the
//! self-test that proves each control before it is claimed, and the single-instance lock.

use std::path::Path;

use nemoclaw_common::sandbox::controls;

use super::notify::dlog;
use super::{
    registry::StateFile,
    server::{Config, DaemonError, io_err},
};
use crate::{
    kernel::{
        Enforcer, KernelError,
        loader::{EBPF_OBJECT, LSM_CONTROLS, Lack, NetAttach},
    },
    sandbox::{cgroup::sandboxes_root, selftest},
};

/// SHA-256 of the eBPF object this binary carries.
pub(super) fn object_sha256() -> String {
    crate::audit::chain::sha256_hex(EBPF_OBJECT)
}

/// Makes sure `pin_dir` lies on a bpffs: mounts one at `/sys/fs/bpf` where nothing is
/// mounted there yet (as systemd does at boot); any other place must be a bpffs already.
fn ensure_bpffs(pin_dir: &Path) -> Result<(), DaemonError> {
    let mounts =
        std::fs::read_to_string("/proc/mounts").map_err(io_err(Path::new("/proc/mounts")))?;
    let fs_of = |dir: &Path| {
        mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (_, target, fstype) = (f.next()?, f.next()?, f.next()?);
                dir.starts_with(target)
                    .then(|| (target.len(), fstype.to_owned()))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, fstype)| fstype)
    };
    if fs_of(pin_dir).as_deref() == Some("bpf") {
        return Ok(());
    }
    let default = Path::new("/sys/fs/bpf");
    if !pin_dir.starts_with(default) {
        return Err(DaemonError::Adopt(format!(
            "{} is not on a bpf file system (mount one: mount -t bpf bpf DIR)",
            pin_dir.display()
        )));
    }
    nix::mount::mount(
        Some("bpf"),
        default,
        Some("bpf"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| io_err(default)(std::io::Error::from(e)))
}

/// Controls (bits) that are unavailable, why, and the fix.
#[derive(Clone, Debug)]
pub(super) struct Unavailable {
    pub(super) controls: u32,
    pub(super) lack: Lack,
    pub(super) why: String,
    pub(super) fix: String,
}

/// Refuses a policy with `policy_controls` when one of them is not `attached`, with the
/// reason recorded in `unavailable` for it (the same words `nemoclaw run` uses without a
/// daemon).
pub(super) fn refuse_unattached(
    policy_controls: u32,
    attached: u32,
    unavailable: &[Unavailable],
) -> Result<(), KernelError> {
    let missing = policy_controls
        & !attached
        & (controls::EXEC | controls::NET | controls::FS | controls::PRIVILEGE);
    if missing == 0 {
        return Ok(());
    }
    let (lack, why, fix) = unavailable
        .iter()
        .find(|u| u.controls & missing != 0)
        .map_or_else(
            || {
                (
                    Lack::Other,
                    "its programs were not attached when this enforcement was first loaded"
                        .to_owned(),
                    "run `nemoclaw doctor`".to_owned(),
                )
            },
            |u| (u.lack, u.why.clone(), u.fix.clone()),
        );
    Err(KernelError::ControlUnavailable {
        controls: missing,
        lack,
        why,
        fix,
    })
}

/// Loads and pins enforcement, or adopts what a previous daemon pinned.
pub(super) fn open_enforcement(
    config: &Config,
) -> Result<(Enforcer, Option<StateFile>, Vec<Unavailable>), DaemonError> {
    let sha = object_sha256();
    ensure_bpffs(&config.pin_dir)?;
    if config.pin_dir.join("maps").exists() {
        let state = StateFile::read(&config.state_file)
            .map_err(io_err(&config.state_file))?
            .ok_or_else(|| {
                DaemonError::Adopt(format!(
                    "{} holds pinned enforcement but {} is missing, so its sandboxes are unknown. \
                     If no sandbox runs, remove the pins (rm -r {}) and start again",
                    config.pin_dir.display(),
                    config.state_file.display(),
                    config.pin_dir.display()
                ))
            })?;
        if state.object_sha256 != sha {
            return Err(DaemonError::Adopt(format!(
                "the enforcement pinned at {} was loaded by another NemoClaw build (object {}, this \
                 build {sha}); stop its sandboxes and remove the pins to upgrade",
                config.pin_dir.display(),
                state.object_sha256
            )));
        }
        let enforcer = Enforcer::adopt(&config.pin_dir)?;
        return Ok((enforcer, Some(state), Vec::new()));
    }
    // A state file without pins: enforcement is gone (a reboot, with the state under
    // /var/lib), and so are the sandboxes it lists. Start clean; the state is rewritten.
    if let Ok(Some(stale)) = StateFile::read(&config.state_file)
        && !stale.sandboxes.is_empty()
    {
        dlog!(
            Notice,
            "{} lists {} sandboxes but {} holds no pinned enforcement (a reboot?): starting \
             clean; configured sandboxes are created again",
            config.state_file.display(),
            stale.sandboxes.len(),
            config.pin_dir.display()
        );
    }
    // Leftovers of an interrupted first start hold no maps, hence nothing adoptable.
    crate::kernel::loader::clear_pins(&config.pin_dir).map_err(io_err(&config.pin_dir))?;
    let all = controls::EXEC | controls::NET | controls::FS | controls::PRIVILEGE;
    let mut unavailable = Vec::new();
    let mut enforcer = match Enforcer::load_for(all, NetAttach::AboveSandboxes) {
        Ok(e) => e,
        Err(KernelError::ControlUnavailable {
            controls: missing,
            lack,
            why,
            fix,
        }) if missing & controls::NET == 0 => {
            dlog!(
                Notice,
                "{} unavailable here ({why}); policies that need BPF \
                 LSM will be refused. See `nemoclaw doctor`",
                crate::kernel::loader::controls_phrase(LSM_CONTROLS),
            );
            unavailable.push(Unavailable {
                controls: LSM_CONTROLS,
                lack,
                why,
                fix,
            });
            Enforcer::load_for(controls::NET, NetAttach::AboveSandboxes)?
        }
        Err(e) => return Err(e.into()),
    };
    let root = sandboxes_root(&config.cgroup_root)?;
    let root_dir = std::fs::File::open(&root).map_err(io_err(&root))?;
    enforcer.attach_cgroup(&root_dir)?;
    enforcer.pin(&config.pin_dir)?;
    Ok((enforcer, None, unavailable))
}

/// Runs the self-test on every control `enforcer` has attached and withdraws those whose
/// probe was not denied. A self-test that cannot run proves nothing: all fail.
pub(super) fn prove(enforcer: &mut Enforcer, cgroup_root: &str) -> selftest::Report {
    let tested = enforcer.attached();
    let started = std::time::Instant::now();
    let place = selftest::Place {
        cgroup_root,
        attach_net: false,
    };
    let report = selftest::run(enforcer, tested, &place).unwrap_or_else(|e| {
        selftest::Report::all_failed(
            tested & selftest::TESTABLE,
            &format!("the self-test could not run: {e}"),
            started.elapsed(),
        )
    });
    enforcer.withdraw(&report.failed);
    report
}

/// One daemon per state file: an exclusive `flock` on `<state>.lock`, held until exit.
pub(super) fn single_instance(
    state_file: &Path,
) -> Result<nix::fcntl::Flock<std::fs::File>, DaemonError> {
    let path = state_file.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| DaemonError::AlreadyRunning(path.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsm_inactive() -> Unavailable {
        Unavailable {
            controls: LSM_CONTROLS,
            lack: Lack::BpfLsm,
            why: "bpf is not in the active LSM list".to_owned(),
            fix: "boot with lsm=...,bpf".to_owned(),
        }
    }

    #[test]
    fn a_policy_needing_only_attached_controls_is_taken() {
        let unavailable = [lsm_inactive()];
        assert!(refuse_unattached(controls::NET, controls::NET, &unavailable).is_ok());
        // Socket kinds are not a policy's to ask for; their absence never refuses.
        let net = controls::NET | controls::SOCKETS;
        assert!(refuse_unattached(net, controls::NET, &unavailable).is_ok());
    }

    #[test]
    fn a_missing_control_is_refused_with_its_recorded_reason() {
        let unavailable = [lsm_inactive()];
        let policy = controls::NET | controls::FS | controls::EXEC;
        match refuse_unattached(policy, controls::NET, &unavailable) {
            Err(KernelError::ControlUnavailable {
                controls: missing,
                lack,
                why,
                fix,
            }) => {
                assert_eq!(
                    missing,
                    controls::FS | controls::EXEC,
                    "only the missing ones"
                );
                assert_eq!(lack, Lack::BpfLsm);
                assert_eq!(why, "bpf is not in the active LSM list");
                assert_eq!(fix, "boot with lsm=...,bpf");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // No recorded reason (an adopted enforcement loaded without it): still refused.
        match refuse_unattached(controls::PRIVILEGE, controls::NET, &[]) {
            Err(KernelError::ControlUnavailable { lack, .. }) => assert_eq!(lack, Lack::Other),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
