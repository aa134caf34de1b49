//! Loads `nemoclaw-ebpf` and keeps its programs attached while the [`Enforcer`] lives.

use std::{
    cell::OnceCell,
    fs::File,
    os::fd::{AsFd, OwnedFd},
    path::Path,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, RingBuf},
    programs::{CgroupAttachMode, Lsm, Program, links::FdLink},
};
use nemoclaw_common::{
    hooks::{LSM_PROGRAMS, LsmProgram},
    sandbox::controls,
};

use super::{btf::Btf, kfunc_call, lsm::LsmList, mapset::MapSet, offsets};

/// The eBPF object, built by `build.rs` (aya-build) from `nemoclaw-ebpf`.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nemoclaw-ebpf"));

/// What the user should do when an LSM control cannot load.
const LSM_ADVICE: &str = "run `nemoclaw doctor` for this kernel's state; BPF LSM needs \
     CONFIG_BPF_LSM=y and `bpf` in the `lsm=` kernel command line. Developers: `cargo xtask vm` \
     runs NemoClaw under a kernel that has it";

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot read this kernel's BTF ({0}); NemoClaw needs CONFIG_DEBUG_INFO_BTF=y")]
    Btf(#[from] super::btf::BtfError),
    #[error("cannot load the eBPF object: {0}")]
    Object(#[source] aya::EbpfError),
    /// A control the policy needs cannot be enforced here. `controls` is a set of
    /// [`controls`] bits (all of the policy's controls this applies to).
    #[error(
        "the {} cannot be enforced on this kernel: {why}. Refusing to start without {}. Fix: {fix}",
        controls_phrase(*controls), if controls.count_ones() > 1 { "them" } else { "it" }
    )]
    ControlUnavailable {
        controls: u32,
        /// What is missing, for a caller choosing another tier or a fix.
        lack: Lack,
        why: String,
        fix: String,
    },
    #[error("{0}: not enforced by this version of NemoClaw; refusing to run a policy that uses it")]
    NotImplemented(&'static str),
    #[error("writing map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("eBPF object has no {0}")]
    Missing(&'static str),
    #[error("process rule directory {path} is longer than the kernel's {max}-byte limit")]
    PathTooLong { path: String, max: usize },
    #[error("{0}")]
    Unsupported(String),
    #[error("pinning {path}: {reason}")]
    Pin { path: String, reason: String },
}

/// What a control that cannot be enforced lacks on this host: what the choice of a
/// fallback tier branches on (a kernel without BPF LSM can still have Landlock; a process
/// without privilege can do neither).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lack {
    /// BPF LSM: not built in, or built in but not in the active LSM list (`lsm=`).
    BpfLsm,
    /// A hook or program type this kernel does not have (too old, or compiled out).
    Hook,
    /// The kernel refused this process (capabilities, lockdown, a security module).
    Permission,
    /// The programs loaded, but the self-test did not see the denial it provoked.
    SelfTest,
    /// Anything else (the message says what).
    Other,
}

impl Lack {
    /// Classifies a load or attach failure by the first OS error in its chain.
    #[must_use]
    pub fn of(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(code) = e
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
            {
                return match code {
                    libc::EPERM | libc::EACCES => Self::Permission,
                    // ENOTSUPP (524): the kernel's "operation not supported" for attach types.
                    libc::ENOENT | libc::EOPNOTSUPP | 524 => Self::Hook,
                    _ => Self::Other,
                };
            }
            next = e.source();
        }
        Self::Other
    }
}

/// The controls enforced by BPF LSM programs (the others by cgroup programs).
pub const LSM_CONTROLS: u32 = controls::EXEC | controls::FS | controls::PRIVILEGE;

/// Controls this version enforces in the kernel.
pub const IMPLEMENTED: u32 = controls::EXEC | controls::NET | controls::PRIVILEGE | controls::FS;

fn section_name(bit: u32) -> &'static str {
    match bit {
        controls::FS => "the filesystem section",
        controls::PRIVILEGE => "privilege_escalation: deny",
        controls::EXEC => "the process section",
        _ => "the network section",
    }
}

/// The policy section that sets each control bit, for messages.
#[must_use]
pub fn control_name(bit: u32) -> &'static str {
    match bit {
        controls::EXEC => "process",
        controls::NET => "network",
        controls::FS => "filesystem",
        controls::PRIVILEGE => "privilege_escalation",
        controls::SOCKETS => "socket kinds",
        _ => "unknown",
    }
}

/// "the process control", "the process and filesystem controls", ...
#[must_use]
pub fn controls_phrase(bits: u32) -> String {
    let names = crate::sandbox::controls::names(bits);
    match names.as_slice() {
        [one] => format!("{one} control"),
        [init @ .., last] => format!("{} and {last} controls", init.join(", ")),
        [] => "(no) control".to_owned(),
    }
}

fn unavailable(
    control: u32,
    what: &str,
    err: &(dyn std::error::Error + 'static),
    advice: &'static str,
) -> KernelError {
    // aya's errors nest the syscall error as a source; show the whole chain.
    KernelError::ControlUnavailable {
        controls: control,
        lack: Lack::of(err),
        why: format!("{what} failed: {}", chain(err)),
        fix: advice.to_owned(),
    }
}

/// The LSM controls (`wanted`'s EXEC, FS and PRIVILEGE bits) refused because BPF LSM is not
/// in the active LSM list, or the list cannot be read; `Ok` when it is active.
fn lsm_active_or_refuse(lsm_wanted: u32) -> Result<(), KernelError> {
    let list = LsmList::read().map_err(|e| KernelError::ControlUnavailable {
        controls: lsm_wanted,
        lack: Lack::BpfLsm,
        why: e.to_string(),
        fix: "mount securityfs, or run `nemoclaw doctor` for this kernel's state".to_owned(),
    })?;
    match list.inactive_reason() {
        None => Ok(()),
        Some((why, fix)) => Err(KernelError::ControlUnavailable {
            controls: lsm_wanted,
            lack: Lack::BpfLsm,
            why,
            fix,
        }),
    }
}

/// Where the network (`sock_addr`) programs will be attached, which decides how they find a
/// task's sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetAttach {
    /// To each sandbox's own cgroup (`nemoclaw run`): [`Enforcer::register`] writes the
    /// sandbox's entry into that cgroup's local storage, read without a hash lookup.
    SandboxCgroup,
    /// Above the sandboxes (the daemon, at its cgroup root): the storage there names no
    /// sandbox, so the programs skip it and look the registry up.
    AboveSandboxes,
}

/// Opens the embedded object with this kernel's struct offsets (from BTF) in `.rodata`,
/// creating its maps; no program is loaded yet. The network programs are set up for
/// [`NetAttach::SandboxCgroup`].
pub fn open_object() -> Result<Ebpf, KernelError> {
    open_object_for(NetAttach::SandboxCgroup, &Btf::from_sys_fs()?)
}

/// [`open_object`] with the kernel's BTF already read (`btf`): reading it takes about half
/// a second under QEMU TCG, so a load reads it once.
fn open_object_for(net: NetAttach, btf: &Btf) -> Result<Ebpf, KernelError> {
    let offsets = offsets::resolve(btf)?;
    let mut loader = EbpfLoader::new();
    for (global, value) in &offsets {
        loader.override_global(global, value, true);
    }
    let in_storage = u64::from(net == NetAttach::SandboxCgroup);
    loader.override_global("NET_SANDBOX_IN_STORAGE", &in_storage, true);
    let d_path = u64::from(super::probe::d_path_in_path_hooks(btf));
    loader.override_global("PATH_HOOKS_D_PATH", &d_path, true);
    let kfunc = super::probe::path_d_path_kfunc(btf);
    let mknod_kfunc = u64::from(kfunc.is_some());
    loader.override_global("PATH_MKNOD_KFUNC", &mknod_kfunc, true);
    let (object, _) = kfunc_call::resolve(EBPF_OBJECT, kfunc);
    loader
        .load(kfunc_call::bytes(&object, EBPF_OBJECT.len()))
        .map_err(KernelError::Object)
}

/// Loaded programs and maps. Dropping it detaches everything this process attached, unless
/// [`Enforcer::pin`] pinned it (the daemon); [`Enforcer::adopt`] opens what is pinned.
pub struct Enforcer {
    /// The programs, when this process loaded them (absent when adopted from pins).
    ebpf: Option<Ebpf>,
    /// The maps, by name (the map writers are `super::install`).
    pub(super) maps: MapSet,
    /// Attachments made by this process, by program name.
    links: Vec<(&'static str, Attachment)>,
    /// Whether `socket_create` (socket kinds, part of the network control) is attached,
    /// or why not.
    socket_kinds: Result<(), String>,
    /// The controls whose programs are attached.
    attached: u32,
}

/// One attachment this process made: aya's link, or one made without aya
/// ([`super::raw_link`]: the cgroup `setsockopt` program's). Dropping either detaches,
/// unless it was pinned.
enum Attachment {
    Aya(FdLink),
    Raw(OwnedFd),
}

impl Attachment {
    /// Pins the attachment at `path`, returning what keeps it open.
    fn pin(self, path: &Path) -> Result<Self, String> {
        match self {
            Self::Aya(link) => link
                .pin(path)
                .map(|pinned| Self::Aya(pinned.into()))
                .map_err(|e| chain(&e)),
            Self::Raw(fd) => super::raw_link::pin(fd.as_fd(), path)
                .map(|()| Self::Raw(fd))
                .map_err(|e| e.to_string()),
        }
    }
}

/// LSM programs of the network control: socket kinds, per-packet destination overrides
/// (routing headers, next hop, IPv4 options), and unix sockets (pathname sockets
/// judged by the filesystem rules, abstract ones confined to the sandbox), and listeners on
/// non-loopback addresses (`socket_listen`).
const SOCKET_PROGRAMS: &[&str] = &[
    "socket_create",
    "unix_stream_connect",
    "unix_may_send",
    "socket_setsockopt",
    "socket_sendmsg",
    "socket_listen",
];

/// Attaches [`SOCKET_PROGRAMS`], returning their links. Only where BPF LSM works: elsewhere
/// the caller decides.
fn attach_socket_kinds(
    ebpf: &mut Ebpf,
    btf: &Result<aya::Btf, aya::BtfError>,
) -> Result<Vec<(&'static str, Attachment)>, String> {
    let btf = btf.as_ref().map_err(|e| chain(e))?;
    let mut links = Vec::new();
    for &prog in SOCKET_PROGRAMS {
        let p: &mut Lsm = ebpf
            .program_mut(prog)
            .ok_or_else(|| format!("the object has no {prog} program"))?
            .try_into()
            .map_err(|e| chain(&e))?;
        p.load(prog, btf).map_err(|e| chain(&e))?;
        let id = p.attach().map_err(|e| chain(&e))?;
        links.push((
            prog,
            Attachment::Aya(p.take_link(id).map_err(|e| chain(&e))?.into()),
        ));
    }
    Ok(links)
}

/// Programs of [`LSM_PROGRAMS`] (`nemoclaw_common::hooks`) whose hooks older supported kernels lack: they are loaded
/// where the kernel has the hook, and skipped (not required) where it has not. POSIX ACLs
/// got their own hooks in 6.2; before, they are extended attributes, judged at
/// `inode_setxattr` and `inode_removexattr`.
/// `fs_file_ioctl_compat`'s hook came in 6.8 (6.1.75+ by backport): without it 32-bit
/// `chattr` is not judged by the filesystem control (the privilege control still requires
/// the hook for its own program).
const OPTIONAL_HOOKS: &[&str] = &["inode_set_acl", "inode_remove_acl", "fs_file_ioctl_compat"];

/// Whether program `prog` (on `hook`) must be attached on this kernel: every program but an
/// [`OPTIONAL_HOOKS`] one (by program name) whose hook this kernel lacks (`btf` unreadable:
/// required).
fn hook_required(btf: Option<&Btf>, prog: &str, hook: &str) -> bool {
    !OPTIONAL_HOOKS.contains(&prog) || btf.is_none_or(|b| b.has_func(&format!("bpf_lsm_{hook}")))
}

/// The LSM controls whose every program (that this kernel needs, `required`) is pinned
/// (`has`): a program serving several controls counts for each of them.
fn attached_lsm_controls(
    has: &dyn Fn(&str) -> bool,
    required: impl Fn(&LsmProgram) -> bool,
) -> u32 {
    let mut attached = 0;
    for bit in [controls::EXEC, controls::FS, controls::PRIVILEGE] {
        if LSM_PROGRAMS
            .iter()
            .filter(|p| p.control & bit != 0 && required(p))
            .all(|p| has(p.program))
        {
            attached |= bit;
        }
    }
    attached
}

/// The network control's cgroup programs: destinations (`sock_addr`), local addresses of
/// binds (inbound, `bind4`/`bind6`) and socket kinds on every kernel (`sock_create`),
/// destination-overriding socket options where BPF LSM does not run (`setsockopt`), and
/// the DNS gateway's other half: replies and peers of redirected DNS sockets read as the
/// server addressed (`recvmsg4/6`, `getpeername4/6`).
const NET_PROGRAMS: &[&str] = &[
    "connect4",
    "connect6",
    "sendmsg4",
    "sendmsg6",
    "recvmsg4",
    "recvmsg6",
    "getpeername4",
    "getpeername6",
    "bind4",
    "bind6",
    "sock_create",
    "setsockopt",
];

/// Loads one of [`NET_PROGRAMS`].
fn load_net_program(ebpf: &mut Ebpf, prog: &'static str) -> Result<(), KernelError> {
    let loaded = match ebpf.program_mut(prog) {
        Some(Program::CgroupSockAddr(p)) => p.load(),
        Some(Program::CgroupSock(p)) => p.load(),
        Some(Program::CgroupSockopt(p)) => p.load(),
        _ => return Err(KernelError::Missing("cgroup program")),
    };
    loaded.map_err(|e| {
        unavailable(
            controls::NET,
            &format!("loading cgroup {prog}"),
            &e,
            CGROUP_ADVICE,
        )
    })
}

/// Attaches one of [`NET_PROGRAMS`] to `cgroup`, returning its link.
fn attach_net_program(
    ebpf: &mut Ebpf,
    prog: &'static str,
    cgroup: &File,
) -> Result<Attachment, KernelError> {
    let attach_err = |e: &(dyn std::error::Error + 'static)| {
        unavailable(
            controls::NET,
            &format!("attaching {prog} to cgroup"),
            e,
            CGROUP_ADVICE,
        )
    };
    match ebpf.program_mut(prog) {
        Some(Program::CgroupSockAddr(p)) => {
            let id = p
                .attach(cgroup.as_fd(), CgroupAttachMode::Single)
                .map_err(|e| attach_err(&e))?;
            let link = p.take_link(id).map_err(|e| attach_err(&e))?;
            FdLink::try_from(link)
                .map(Attachment::Aya)
                .map_err(|e| attach_err(&e))
        }
        Some(Program::CgroupSock(p)) => {
            let id = p
                .attach(cgroup.as_fd(), CgroupAttachMode::Single)
                .map_err(|e| attach_err(&e))?;
            let link = p.take_link(id).map_err(|e| attach_err(&e))?;
            FdLink::try_from(link)
                .map(Attachment::Aya)
                .map_err(|e| attach_err(&e))
        }
        Some(Program::CgroupSockopt(p)) => {
            let prog_fd = p.fd().map_err(|e| attach_err(&e))?;
            super::raw_link::link_create(
                prog_fd.as_fd(),
                cgroup.as_fd(),
                super::raw_link::ATTACH_CGROUP_SETSOCKOPT,
            )
            .map(Attachment::Raw)
            .map_err(|e| attach_err(&e))
        }
        _ => Err(KernelError::Missing("cgroup program")),
    }
}

/// The kernel side's counters (`nemoclaw_common::event::counter`), summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Operations of sandboxed tasks that a control judged.
    pub judged: u64,
    /// Of those, denied.
    pub denied: u64,
    /// Deny events dropped because the ring buffer was full (the denials still held).
    pub events_lost: u64,
    /// Judgements denied because another task took over the CPU's scratch buffer while
    /// the program was preempted (fail closed).
    pub scratch_taken: u64,
}

impl Enforcer {
    /// Loads the object with this kernel's offsets and loads (and, for LSM, attaches) every
    /// program the `wanted` controls need. Fails, naming the control, if any cannot load:
    /// a policy is never run with a control silently missing.
    pub fn load(wanted: u32) -> Result<Self, KernelError> {
        Self::load_for(wanted, NetAttach::SandboxCgroup)
    }

    /// [`Enforcer::load`], with the network programs set up for where they will be attached.
    pub fn load_for(wanted: u32, net: NetAttach) -> Result<Self, KernelError> {
        for bit in [
            controls::EXEC,
            controls::NET,
            controls::FS,
            controls::PRIVILEGE,
        ] {
            if wanted & bit != 0 && IMPLEMENTED & bit == 0 {
                return Err(KernelError::NotImplemented(section_name(bit)));
            }
        }
        let kernel_btf = Btf::from_sys_fs()?;
        let mut ebpf = open_object_for(net, &kernel_btf)?;
        let maps = MapSet::take_from(&mut ebpf);
        let mut links = Vec::new();
        // aya's reading of the same BTF, for attaching LSM programs: read once, when first
        // needed (not for a network-only policy where BPF LSM is not active).
        let aya_btf = OnceCell::new();
        let aya_btf = || aya_btf.get_or_init(aya::Btf::from_sys_fs);
        let lsm_wanted = wanted & LSM_CONTROLS;
        if lsm_wanted != 0 {
            // Programs load and attach where BPF LSM is built in but not active, and then
            // never run: only the active list (and the self-test) prove they do.
            lsm_active_or_refuse(lsm_wanted)?;
            let aya_btf = aya_btf().as_ref().map_err(|e| {
                unavailable(
                    lsm_wanted & lsm_wanted.wrapping_neg(),
                    "reading BTF for LSM",
                    e,
                    LSM_ADVICE,
                )
            })?;
            for &LsmProgram {
                program: prog,
                hook,
                control,
            } in LSM_PROGRAMS
            {
                // The wanted controls this program serves: what a failure makes unavailable.
                let bit = wanted & control;
                if bit == 0 || !hook_required(Some(&kernel_btf), prog, hook) {
                    continue;
                }
                let p: &mut Lsm = ebpf
                    .program_mut(prog)
                    .ok_or(KernelError::Missing("LSM program"))?
                    .try_into()
                    .map_err(|e| unavailable(bit, &format!("program {prog}"), &e, LSM_ADVICE))?;
                p.load(hook, aya_btf).map_err(|e| {
                    unavailable(bit, &format!("loading LSM hook {hook}"), &e, LSM_ADVICE)
                })?;
                let id = p.attach().map_err(|e| {
                    unavailable(bit, &format!("attaching LSM hook {hook}"), &e, LSM_ADVICE)
                })?;
                let link = p
                    .take_link(id)
                    .map_err(|e| unavailable(bit, &format!("LSM hook {hook}"), &e, LSM_ADVICE))?;
                links.push((prog, Attachment::Aya(link.into())));
            }
        }
        if wanted & controls::NET != 0 {
            for &prog in NET_PROGRAMS {
                load_net_program(&mut ebpf, prog)?;
            }
        }
        let socket_kinds = if wanted & controls::NET == 0 {
            Err("the policy has no network section".to_owned())
        } else if let Err(e) = lsm_active_or_refuse(controls::SOCKETS) {
            Err(match e {
                KernelError::ControlUnavailable { why, .. } => why,
                other => other.to_string(),
            })
        } else {
            attach_socket_kinds(&mut ebpf, aya_btf()).map(|socket_links| links.extend(socket_links))
        };
        Ok(Self {
            ebpf: Some(ebpf),
            maps,
            links,
            socket_kinds,
            attached: wanted & IMPLEMENTED,
        })
    }

    /// Drops the enforcer without waiting for the kernel to detach its LSM programs: a child
    /// process holds them and detaches them by exiting (`super::detach`), while this process
    /// goes on. Only LSM links are slow to detach; without any (a network-only policy) no
    /// child is started. Where none can be, they are detached here, as a drop does.
    pub fn release_in_background(self) {
        let holder = self.holds_lsm_links().then(super::detach::hand_over);
        drop(self);
        drop(holder);
    }

    /// Whether this process attached LSM programs (the filesystem, process and privilege
    /// controls' and the socket-kind programs).
    fn holds_lsm_links(&self) -> bool {
        self.links.iter().any(|(name, _)| {
            SOCKET_PROGRAMS.contains(name) || LSM_PROGRAMS.iter().any(|p| p.program == *name)
        })
    }

    /// Deny events the kernel side dropped because the ring buffer was full (summed over
    /// CPUs). The denials themselves held.
    pub fn events_lost(&self) -> Result<u64, KernelError> {
        Ok(self.counters()?.events_lost)
    }

    /// Every entry of the `COUNTERS` map, summed over CPUs (since the programs were loaded,
    /// across daemon restarts when adopted).
    pub fn counters(&self) -> Result<Counters, KernelError> {
        use nemoclaw_common::event::counter;
        let map: aya::maps::PerCpuArray<_, u64> = self.maps.typed_ref("COUNTERS")?;
        let read = |index: u32| {
            map.get(&index, 0)
                .map(|values| values.iter().sum::<u64>())
                .map_err(|source| KernelError::Map {
                    map: "COUNTERS",
                    source,
                })
        };
        Ok(Counters {
            judged: read(counter::JUDGED)?,
            denied: read(counter::DENIED)?,
            events_lost: read(counter::EVENTS_LOST)?,
            scratch_taken: read(counter::SCRATCH_TAKEN)?,
        })
    }

    /// Whether socket kinds are restricted (`controls::SOCKETS` may be set), or why not.
    pub fn socket_kinds(&self) -> Result<(), &str> {
        self.socket_kinds.as_ref().copied().map_err(String::as_str)
    }

    /// Attaches the network programs to a sandbox cgroup (they judge it and its subtree).
    pub fn attach_cgroup(&mut self, cgroup: &File) -> Result<(), KernelError> {
        let ebpf = self.ebpf.as_mut().ok_or(KernelError::Unsupported(
            "the programs were adopted from pins; they are attached already".to_owned(),
        ))?;
        for &prog in NET_PROGRAMS {
            let link = attach_net_program(ebpf, prog, cgroup)?;
            self.links.push((prog, link));
        }
        Ok(())
    }

    /// The controls whose programs are attached (plus [`controls::SOCKETS`] where socket
    /// kinds are restricted).
    #[must_use]
    pub fn attached(&self) -> u32 {
        self.attached
            | if self.socket_kinds.is_ok() {
                controls::SOCKETS
            } else {
                0
            }
    }

    /// Withdraws the controls whose self-test failed (`sandbox::selftest`), so that
    /// [`Self::attached`] and [`Self::socket_kinds`] report only what is proven to run.
    pub fn withdraw(&mut self, failed: &[(u32, String)]) {
        for (bit, why) in failed {
            if *bit == controls::SOCKETS {
                if self.socket_kinds.is_ok() {
                    self.socket_kinds = Err(why.clone());
                }
            } else {
                self.attached &= !bit;
            }
        }
    }

    /// Pins every map under `dir/maps/` and every attachment under `dir/links/` (programs
    /// under `dir/progs/`), so enforcement outlives this process. `dir` must be on a bpffs
    /// and must not hold pins already. On error, whatever was pinned is removed again.
    pub fn pin(&mut self, dir: &Path) -> Result<(), KernelError> {
        let result = self.pin_all(dir);
        if result.is_err() {
            let _ = clear_pins(dir);
        }
        result
    }

    fn pin_all(&mut self, dir: &Path) -> Result<(), KernelError> {
        let pin_err = |path: &Path, reason: String| KernelError::Pin {
            path: path.display().to_string(),
            reason,
        };
        for sub in ["maps", "links", "progs"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|e| pin_err(&path, e.to_string()))?;
        }
        self.maps.pin(&dir.join("maps"))?;
        for (name, link) in std::mem::take(&mut self.links) {
            let path = dir.join("links").join(name);
            let pinned = link.pin(&path).map_err(|reason| pin_err(&path, reason))?;
            self.links.push((name, pinned));
        }
        if let Some(ebpf) = &mut self.ebpf {
            for (name, prog) in ebpf.programs_mut() {
                if prog.fd().is_err() {
                    continue; // not loaded: its control is not in use here
                }
                let path = dir.join("progs").join(name);
                prog.pin(&path).map_err(|e| pin_err(&path, chain(&e)))?;
            }
        }
        Ok(())
    }

    /// Opens the enforcement a daemon pinned under `dir` (see [`Self::pin`]): its maps, and
    /// the attached controls read from the pinned links. Loads no program: what runs in the
    /// kernel stays the one pinned copy.
    pub fn adopt(dir: &Path) -> Result<Self, KernelError> {
        let maps = MapSet::from_pins(&dir.join("maps"))?;
        let links_dir = dir.join("links");
        let pinned: Vec<String> = std::fs::read_dir(&links_dir)
            .map_err(|e| KernelError::Pin {
                path: links_dir.display().to_string(),
                reason: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        let has = |name: &str| pinned.iter().any(|p| p == name);
        let kernel_btf = Btf::from_sys_fs().ok();
        let mut attached = attached_lsm_controls(&has, |p| {
            hook_required(kernel_btf.as_ref(), p.program, p.hook)
        });
        if NET_PROGRAMS.iter().all(|p| has(p)) {
            attached |= controls::NET;
        }
        let socket_kinds = match SOCKET_PROGRAMS.iter().find(|p| !has(p)) {
            None => Ok(()),
            Some(p) => Err(format!("{p} is not attached (not pinned)")),
        };
        Ok(Self {
            ebpf: None,
            maps,
            links: Vec::new(),
            socket_kinds,
            attached,
        })
    }

    /// The deny-event ring buffer; can be taken once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, KernelError> {
        let map = self.maps.take("EVENTS")?;
        RingBuf::try_from(map).map_err(|source| KernelError::Map {
            map: "EVENTS",
            source,
        })
    }
}

const CGROUP_ADVICE: &str = "cgroup sock_addr programs need cgroup v2 and root (CAP_BPF, \
     CAP_NET_ADMIN); run `nemoclaw doctor`";

/// An error with its sources, e.g. "`bpf_prog_load` failed: Operation not permitted".
/// Removes everything under the pin directory `dir` and keeps `dir` itself: it may be a
/// mount point (`nemoclaw.service` bind-mounts it writable inside a read-only `/sys`), which
/// cannot be removed there. A missing `dir` is nothing to clear.
pub fn clear_pins(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that wraps another, as aya's program errors wrap the syscall's.
    #[derive(Debug, thiserror::Error)]
    #[error("the BPF_PROG_LOAD syscall failed")]
    struct Wrapped(#[source] std::io::Error);

    /// `file_open` serves the filesystem and the privilege controls: without its pin
    /// neither is attached, while the process control (which does not need it) is.
    #[test]
    fn a_program_serving_two_controls_is_needed_by_both() {
        let every = |_: &LsmProgram| true;
        assert_eq!(
            attached_lsm_controls(&|_| true, every),
            controls::EXEC | controls::FS | controls::PRIVILEGE
        );
        assert_eq!(
            attached_lsm_controls(&|name| name != "file_open", every),
            controls::EXEC
        );
        assert_eq!(
            attached_lsm_controls(&|name| name != "capable", every),
            controls::EXEC | controls::FS
        );
        // A program this kernel does not need is not asked for.
        assert_eq!(
            attached_lsm_controls(&|name| name != "file_open", |p| p.program != "file_open"),
            controls::EXEC | controls::FS | controls::PRIVILEGE
        );
    }

    #[test]
    fn clearing_pins_empties_the_directory_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let pins = dir.path().join("nemoclaw");
        std::fs::create_dir_all(pins.join("maps/inner")).unwrap();
        std::fs::write(pins.join("maps/inner/SLOTS"), b"").unwrap();
        std::fs::write(pins.join("stray"), b"").unwrap();
        clear_pins(&pins).unwrap();
        assert!(pins.is_dir(), "the pin directory itself is kept");
        assert_eq!(std::fs::read_dir(&pins).unwrap().count(), 0);
        clear_pins(&dir.path().join("missing")).unwrap();
    }

    #[test]
    fn a_failure_is_classified_by_the_os_error_in_its_chain() {
        let os = |code| Wrapped(std::io::Error::from_raw_os_error(code));
        assert_eq!(Lack::of(&os(libc::EPERM)), Lack::Permission);
        assert_eq!(Lack::of(&os(libc::EACCES)), Lack::Permission);
        assert_eq!(Lack::of(&os(libc::ENOENT)), Lack::Hook);
        assert_eq!(Lack::of(&os(524)), Lack::Hook);
        assert_eq!(Lack::of(&os(libc::E2BIG)), Lack::Other);
        assert_eq!(
            Lack::of(&std::io::Error::other("no OS error anywhere")),
            Lack::Other
        );
        let refused = unavailable(controls::FS, "loading", &os(libc::EPERM), "fix");
        match refused {
            KernelError::ControlUnavailable { lack, why, .. } => {
                assert_eq!(lack, Lack::Permission);
                assert!(why.contains("BPF_PROG_LOAD syscall failed: "), "{why}");
            }
            other => panic!("{other}"),
        }
    }
}
