//! The self-test: before a control is reported as enforced, a probe task proves that its
//! programs run on this kernel by being denied.
//!
//! A program that loads and attaches may still never run: on a kernel where BPF LSM is
//! built in but not in the active LSM list (Ubuntu's default), LSM programs attach and are
//! never called. So the daemon (at start and on adoption) and a standalone `run` put a probe
//! task into a throwaway cgroup under a small policy that denies one thing per control, in
//! the reserved [`SELF_TEST_SLOT`], and check the errno each attempt gets:
//!
//! | control | attempt | expected |
//! |---|---|---|
//! | filesystem | open a file the policy denies | `EACCES` |
//! | network | UDP `connect` to 127.0.0.1:9 under deny-all | `EPERM` |
//! | socket kinds | a netlink uevent socket (not an allowed kind) | `EPERM` |
//! | `privilege_escalation` | a remount of a directory that is no mount point | `EPERM` (else `EINVAL`: no side effect) |
//! | process | exec of a binary the policy denies | `EPERM` |
//!
//! Every attempt is harmless where it is not denied. A control whose attempt was not denied
//! is not available: policies that use it are refused with the reason.

use std::{
    ffi::{CStr, CString},
    fmt::Write as _,
    fs,
    io::{self, Read as _},
    os::{
        fd::AsRawFd as _,
        unix::{
            ffi::OsStrExt as _,
            fs::{DirBuilderExt as _, OpenOptionsExt as _},
            process::CommandExt as _,
        },
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nemoclaw_common::sandbox::{SELF_TEST_SLOT, SandboxEntry, controls};
use nix::errno::Errno;

use super::{
    SandboxCgroup,
    cgroup::{CgroupError, sandboxes_root},
    controls::names,
};
use crate::{
    kernel::{Enforcer, KernelError},
    policy::{self, CompileEnv, compiled::RuleRef},
};

/// The probe's cgroup, beside the sandboxes (a sandbox name never starts with '.').
const CGROUP_NAME: &str = ".self-test";

/// Name the audit log gives the self-test's denials.
pub const AUDIT_NAME: &str = "self-test";

/// What to do about a control whose self-test failed while its programs attached.
pub const FIX: &str = "run `nemoclaw doctor` for this kernel's state (BPF LSM needs \
     CONFIG_BPF_LSM=y and `bpf` in the active LSM list; cgroup programs need cgroup v2)";

/// The controls the self-test can prove.
pub const TESTABLE: u32 =
    controls::EXEC | controls::NET | controls::SOCKETS | controls::FS | controls::PRIVILEGE;

/// What the self-test found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Controls whose probe was denied as expected.
    pub proven: u32,
    /// Controls whose probe was not denied (or that could not be tested), with why.
    pub failed: Vec<(u32, String)>,
    /// The probe policy's rule table (deny records of the self-test cite it).
    pub rules: Vec<RuleRef>,
    pub elapsed: Duration,
}

impl Report {
    /// Every control of `tested` failed for the same reason (the test could not run).
    #[must_use]
    pub fn all_failed(tested: u32, why: &str, elapsed: Duration) -> Self {
        let failed = each_bit(tested).map(|bit| (bit, why.to_owned())).collect();
        Self {
            failed,
            elapsed,
            ..Self::default()
        }
    }

    /// The reason `control` failed, if it did.
    #[must_use]
    pub fn why_failed(&self, control: u32) -> Option<&str> {
        self.failed
            .iter()
            .find(|(bit, _)| *bit == control)
            .map(|(_, why)| why.as_str())
    }

    /// For the audit log: proven controls, failed ones with reasons, and the cost.
    #[must_use]
    pub fn record(&self) -> crate::audit::lifecycle::SelfTest {
        crate::audit::lifecycle::SelfTest {
            passed: names(self.proven),
            failed: self
                .failed
                .iter()
                .map(|(bit, why)| (names(*bit).join(","), why.clone()))
                .collect(),
            micros: u64::try_from(self.elapsed.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

fn each_bit(bits: u32) -> impl Iterator<Item = u32> {
    (0..32).map(|i| 1u32 << i).filter(move |b| bits & b != 0)
}

/// The errno (0 for success) each probe attempt got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub open: i32,
    pub connect: i32,
    pub socket: i32,
    pub mount: i32,
    pub exec: i32,
}

/// (control, what the probe tried, its result, the errno that proves the control runs).
fn expectations(o: &Observed) -> [(u32, &'static str, i32, Errno); 5] {
    [
        (
            controls::FS,
            "opening a file the test policy denies",
            o.open,
            Errno::EACCES,
        ),
        (
            controls::NET,
            "a UDP connect to 127.0.0.1:9 under a deny-all network policy",
            o.connect,
            Errno::EPERM,
        ),
        (
            controls::SOCKETS,
            "creating a netlink uevent socket (a kind no policy allows)",
            o.socket,
            Errno::EPERM,
        ),
        (
            controls::PRIVILEGE,
            "a mount call under privilege_escalation: deny",
            o.mount,
            Errno::EPERM,
        ),
        (
            controls::EXEC,
            "executing a binary the test policy denies",
            o.exec,
            Errno::EPERM,
        ),
    ]
}

/// Judges what the probe observed for the `tested` controls: pure, so unit-tested.
#[must_use]
pub fn judge(tested: u32, observed: &Observed) -> (u32, Vec<(u32, String)>) {
    let mut proven = 0;
    let mut failed = Vec::new();
    for (bit, attempt, got, expected) in expectations(observed) {
        if tested & bit == 0 {
            continue;
        }
        if got == expected as i32 {
            proven |= bit;
        } else {
            let got = if got == 0 {
                "success".to_owned()
            } else {
                format!("{:?}", Errno::from_raw(got))
            };
            failed.push((
                bit,
                format!(
                    "its self-test was not denied: {attempt} got {got}, not {expected:?}, so its \
                     programs do not run on this kernel"
                ),
            ));
        }
    }
    (proven, failed)
}

/// The probe policy: one denial per tested control.
fn probe_policy(tested: u32, secret: &Path, exe: &Path) -> String {
    let mut yaml = String::from("# nemoclaw self-test\n");
    if tested & controls::FS != 0 {
        let _ = write!(
            yaml,
            "filesystem:\n  allow:\n    - \"/**\"\n  deny:\n    - {:?}\n",
            secret.display().to_string()
        );
    }
    if tested & controls::EXEC != 0 {
        let _ = write!(
            yaml,
            "process:\n  allow:\n    - \"/**\"\n  deny:\n    - {:?}\n",
            exe.display().to_string()
        );
    }
    if tested & controls::NET != 0 {
        yaml.push_str("network:\n  deny: \"*\"\n");
    }
    if tested & controls::PRIVILEGE != 0 {
        yaml.push_str("privilege_escalation: deny\n");
    }
    yaml
}

#[derive(Debug, thiserror::Error)]
pub enum SelfTestError {
    #[error("{0}: {1}")]
    Io(String, io::Error),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("compiling the self-test policy: {0}")]
    Policy(String),
}

/// A private scratch directory (removed on drop) holding the file the policy denies.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self, SelfTestError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("nemoclaw-self-test-{}-{nanos}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| SelfTestError::Io(dir.display().to_string(), e))?;
        let scratch = Self(dir);
        let secret = scratch.secret();
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&secret)
            .map_err(|e| SelfTestError::Io(secret.display().to_string(), e))?;
        Ok(scratch)
    }

    fn secret(&self) -> PathBuf {
        self.0.join("secret")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Where the probe runs, and how the network programs reach it.
pub struct Place<'a> {
    /// The parent cgroup of the sandboxes (under the cgroup v2 mount).
    pub cgroup_root: &'a str,
    /// Attach the network programs to the probe's cgroup (standalone `run`, whose programs
    /// are attached per sandbox); the daemon's are attached above it already.
    pub attach_net: bool,
}

/// Proves the `tested` controls (a subset of [`TESTABLE`]) of `enforcer`. Errors only where
/// the test itself could not be set up; a control that is not denied is a failure in the
/// report. Leaves nothing behind: the slot is cleared, the cgroup and scratch removed.
pub fn run(
    enforcer: &mut Enforcer,
    tested: u32,
    place: &Place<'_>,
) -> Result<Report, SelfTestError> {
    let started = Instant::now();
    let tested = tested & TESTABLE;
    if tested == 0 {
        // A policy without sections restricts nothing: nothing to prove.
        return Ok(Report::default());
    }
    let scratch = Scratch::new()?;
    let exe = std::env::current_exe().map_err(|e| SelfTestError::Io("/proc/self/exe".into(), e))?;
    let yaml = probe_policy(tested, &scratch.secret(), &exe);
    let parsed = policy::parse_str(Path::new("<self-test policy>"), &yaml)
        .map_err(|e| SelfTestError::Policy(e.to_string()))?;
    let compiled = policy::compile(&parsed, &CompileEnv::new(PathBuf::from("/")))
        .map_err(|e| SelfTestError::Policy(e.to_string()))?
        .policy;
    // A self-test interrupted by a crash may have left entries or its cgroup behind.
    enforcer.clear_slot(SELF_TEST_SLOT)?;
    let root = sandboxes_root(place.cgroup_root)?;
    if let Ok(stale) = SandboxCgroup::open(&root.join(CGROUP_NAME)) {
        drop(stale);
    }
    let cgroup = SandboxCgroup::create(place.cgroup_root, CGROUP_NAME)?;
    let observed = (|| {
        if place.attach_net && tested & controls::NET != 0 {
            enforcer.attach_cgroup(cgroup.dir())?;
        }
        enforcer.install(SELF_TEST_SLOT, &compiled)?;
        enforcer.register(
            cgroup.id(),
            SandboxEntry {
                slot: SELF_TEST_SLOT,
                controls: tested,
            },
        )?;
        probe(&cgroup, &scratch, &exe)
    })();
    let id = cgroup.id();
    drop(cgroup);
    let _ = enforcer.unregister(id);
    let _ = enforcer.clear_slot(SELF_TEST_SLOT);
    let observed = observed?;
    let (proven, failed) = judge(tested, &observed);
    Ok(Report {
        proven,
        failed,
        rules: compiled.rules,
        elapsed: started.elapsed(),
    })
}

/// Runs the probe task in `cgroup`: it joins the cgroup, makes the attempts, reports their
/// errnos through a pipe, then execs the denied binary.
fn probe(cgroup: &SandboxCgroup, scratch: &Scratch, exe: &Path) -> Result<Observed, SelfTestError> {
    let io_err = |what: &str| {
        let what = what.to_owned();
        move |e: io::Error| SelfTestError::Io(what, e)
    };
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let procs = c(&cgroup.procs_file()).map_err(io_err("cgroup path"))?;
    let secret = c(&scratch.secret()).map_err(io_err("scratch path"))?;
    let mount_target = c(&scratch.0).map_err(io_err("scratch path"))?;
    let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SelfTestError::Io("pipe".into(), e.into()))?;
    let wfd = writer.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure makes only async-signal-safe syscalls on data prepared above.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let joined = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            let err = io::Error::last_os_error();
            libc::close(fd);
            if !joined {
                return Err(err);
            }
            let out = attempts(&secret, &mount_target);
            let bytes = size_of_val(&out);
            if libc::write(wfd, out.as_ptr().cast(), bytes).cast_unsigned() != bytes {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    drop(writer);
    let exec = match spawned {
        Ok(mut child) => {
            child.wait().map_err(io_err("waiting for the probe"))?;
            0
        }
        Err(e) => e.raw_os_error().unwrap_or(-1),
    };
    let mut bytes = Vec::new();
    let mut reader = fs::File::from(reader);
    reader
        .read_to_end(&mut bytes)
        .map_err(io_err("reading the probe's results"))?;
    let word = |i: usize| {
        bytes
            .get(i * 4..i * 4 + 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_ne_bytes)
    };
    match (word(0), word(1), word(2), word(3)) {
        (Some(open), Some(connect), Some(socket), Some(mount)) => Ok(Observed {
            open,
            connect,
            socket,
            mount,
            exec,
        }),
        _ => Err(SelfTestError::Io(
            "the probe task".into(),
            io::Error::other(format!(
                "it reported no results (start failed: errno {exec})"
            )),
        )),
    }
}

/// The probe's attempts, in the child between fork and exec: their errnos (0 for success)
/// for the file open, UDP connect, netlink socket and remount.
///
/// # Safety
///
/// Async-signal-safe syscalls only, on the given NUL-terminated strings.
unsafe fn attempts(secret: &CStr, mount_target: &CStr) -> [i32; 4] {
    let errno = || io::Error::last_os_error().raw_os_error().unwrap_or(-1);
    // SAFETY: plain syscalls on valid NUL-terminated strings and a stack sockaddr.
    unsafe {
        let file = libc::open(secret.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        let open = if file < 0 {
            errno()
        } else {
            libc::close(file);
            0
        };
        let udp = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        let connect = if udp < 0 {
            errno()
        } else {
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 9u16.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
                },
                sin_zero: [0; 8],
            };
            let connected = libc::connect(
                udp,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            let result = if connected < 0 { errno() } else { 0 };
            libc::close(udp);
            result
        };
        let netlink = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_KOBJECT_UEVENT,
        );
        let socket = if netlink < 0 {
            errno()
        } else {
            libc::close(netlink);
            0
        };
        let mounted = libc::mount(
            std::ptr::null(),
            mount_target.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            std::ptr::null(),
        );
        let mount = if mounted < 0 { errno() } else { 0 };
        [open, connect, socket, mount]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_DENIED: Observed = Observed {
        open: libc::EACCES,
        connect: libc::EPERM,
        socket: libc::EPERM,
        mount: libc::EPERM,
        exec: libc::EPERM,
    };

    #[test]
    fn every_expected_denial_proves_its_control() {
        let (proven, failed) = judge(TESTABLE, &ALL_DENIED);
        assert_eq!(proven, TESTABLE);
        assert!(failed.is_empty(), "{failed:?}");
    }

    /// The Ubuntu shape: LSM programs attached and never run; cgroup programs run.
    #[test]
    fn lsm_hooks_that_never_run_fail_only_their_controls() {
        let observed = Observed {
            open: 0,
            connect: libc::EPERM,
            socket: 0,
            mount: libc::EINVAL,
            exec: 0,
        };
        let (proven, failed) = judge(TESTABLE, &observed);
        assert_eq!(proven, controls::NET);
        let failed_bits = failed.iter().fold(0, |bits, (b, _)| bits | b);
        assert_eq!(
            failed_bits,
            controls::SOCKETS | controls::FS | controls::PRIVILEGE | controls::EXEC
        );
        assert_eq!(failed.len(), 4);
        let fs = &failed.iter().find(|(b, _)| *b == controls::FS).unwrap().1;
        assert!(fs.contains("got success, not EACCES"), "{fs}");
        let privilege = &failed
            .iter()
            .find(|(b, _)| *b == controls::PRIVILEGE)
            .unwrap()
            .1;
        assert!(privilege.contains("got EINVAL, not EPERM"), "{privilege}");
    }

    #[test]
    fn a_denial_with_the_wrong_errno_proves_nothing() {
        // EACCES from another LSM (AppArmor, say) is not our program's EPERM.
        let observed = Observed {
            exec: libc::EACCES,
            ..ALL_DENIED
        };
        let (proven, failed) = judge(controls::EXEC | controls::FS, &observed);
        assert_eq!(proven, controls::FS);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, controls::EXEC);
    }

    #[test]
    fn untested_controls_are_neither_proven_nor_failed() {
        let (proven, failed) = judge(controls::NET, &Observed::default());
        assert_eq!(proven, 0);
        assert_eq!(failed.len(), 1);
        let (proven, failed) = judge(0, &Observed::default());
        assert_eq!((proven, failed.len()), (0, 0));
    }

    #[test]
    fn probe_policy_compiles_and_has_one_section_per_control() {
        let yaml = probe_policy(
            TESTABLE,
            Path::new("/tmp/x y/secret"),
            Path::new("/usr/bin/env"),
        );
        let parsed = policy::parse_str(Path::new("probe.yaml"), &yaml).expect(&yaml);
        let compiled = policy::compile(&parsed, &CompileEnv::new(PathBuf::from("/")))
            .expect("compiles")
            .policy;
        assert_eq!(
            compiled.controls,
            controls::EXEC | controls::NET | controls::FS | controls::PRIVILEGE
        );
        let only_net = probe_policy(controls::NET, Path::new("/s"), Path::new("/e"));
        assert!(!only_net.contains("filesystem"), "{only_net}");
        assert!(!only_net.contains("process"), "{only_net}");
    }
}
