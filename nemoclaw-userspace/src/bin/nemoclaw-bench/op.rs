//! `nemoclaw-bench op` (`cargo xtask bench` drives it): the cost of one enforced
//! operation in one configuration, measured in-process.
//!
//! One run = one workload (file open, exec, TCP connect, UDP sendto, or policy compile) in
//! one mode: `none` (no BPF), `floor` (a no-op program on the same hook, the cost of merely
//! having a hook) or `real` (the [`Enforcer`] with a generated policy of `--rules` rules).
//! The process moves itself into a fresh sandbox cgroup, warms up, runs a fixed number of
//! operations in rounds, moves back out, and prints one line:
//! `NEMOCLAW_BENCH {json}` with ns/op (the fastest round: on a busy or emulated machine,
//! noise only ever adds time; the median is reported too) and, per loaded program, the
//! kernel's `run_time_ns`/`run_cnt` (`BPF_ENABLE_STATS`, the same switch as
//! `kernel.bpf_stats_enabled`; per run and per op: the fastest round's, the mean too). The
//! wall-clock rounds run with statistics off (they add two clock reads to every program
//! run), then the same rounds again with them on for the program figures. A failure prints
//! the same prefix with an `error`.
//!
//! Never run this under a time assertion: the numbers are for ratios within one run.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::{self, OpenOptions},
    io::{self, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    os::{fd::AsRawFd as _, unix::fs::OpenOptionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    programs::{CgroupAttachMode, CgroupSockAddr, Lsm, loaded_programs},
    sys::{Stats, enable_stats},
};
use nemoclaw_common::sandbox::{SandboxEntry, Slot};
use serde_json::json;

use nemoclaw::{
    kernel::{
        Enforcer,
        loader::{NetAttach, open_object},
    },
    policy::{self, CompileEnv},
    sandbox::{SandboxCgroup, cgroup::cgroup2_mount},
};

/// The line prefix `cargo xtask bench` looks for.
pub const LINE_PREFIX: &str = "NEMOCLAW_BENCH ";

/// The static binary the exec workload runs (Debian's busybox-static).
const BUSYBOX: &str = "/bin/busybox";

const SLOT: Slot = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// `open(file, O_RDONLY)` + `close` of a file on tmpfs (LSM `file_open`).
    Open,
    /// fork + `execve("/bin/busybox", ["true"])` + wait (LSM `bprm_check_security`).
    Exec,
    /// TCP connect to a loopback listener, accept, close (cgroup `connect4`).
    Tcp,
    /// Unconnected UDP `sendto` to a loopback socket (cgroup `sendmsg4`).
    Udp,
    /// Parse and compile a generated `--rules`-rule policy (no kernel involved).
    Compile,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// No BPF program at all.
    None,
    /// A no-op program on the same hook(s): the cost of having a hook.
    Floor,
    /// The real programs with a generated policy of `--rules` rules.
    Real,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long, value_enum)]
    pub workload: Workload,
    #[arg(long, value_enum, default_value = "none")]
    pub mode: Mode,
    /// Rules in the generated policy (`real` and `compile`).
    #[arg(long, default_value_t = 0)]
    pub rules: usize,
    /// Timed operations (split into `--rounds` rounds).
    #[arg(long, default_value_t = 20_000)]
    pub count: u64,
    /// Untimed operations first.
    #[arg(long, default_value_t = 1_000)]
    pub warmup: u64,
    /// Timed rounds; ns/op is the fastest round's (the median is reported too).
    #[arg(long, default_value_t = 10)]
    pub rounds: u64,
    /// tcp/udp `real`: set the network programs up as the daemon does (attached above the
    /// sandboxes: they look the registry up instead of reading the cgroup storage).
    #[arg(long)]
    pub registry: bool,
    /// Where the open and exec workloads create their files (must be tmpfs).
    #[arg(long, default_value = "/tmp")]
    pub dir: PathBuf,
}

fn workload_name(w: Workload) -> &'static str {
    match w {
        Workload::Open => "open",
        Workload::Exec => "exec",
        Workload::Tcp => "tcp",
        Workload::Udp => "udp",
        Workload::Compile => "compile",
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::None => "none",
        Mode::Floor => "floor",
        Mode::Real => "real",
    }
}

/// Runs one configuration and prints its result line; returns the exit code.
pub fn run(args: &BenchArgs) -> anyhow::Result<i32> {
    let mut line = match measure(args) {
        Ok(result) => result,
        Err(err) => {
            json!({ "error": format!("{err:#}") })
        }
    };
    let failed = line.get("error").is_some();
    if let Some(obj) = line.as_object_mut() {
        obj.insert("workload".into(), workload_name(args.workload).into());
        obj.insert("mode".into(), mode_name(args.mode).into());
        obj.insert("rules".into(), args.rules.into());
        if args.registry {
            obj.insert("registry".into(), true.into());
        }
        obj.insert("kernel".into(), kernel_release().into());
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{LINE_PREFIX}{line}").context("writing the result")?;
    Ok(i32::from(failed))
}

fn kernel_release() -> String {
    nix::sys::utsname::uname().map_or_else(
        |_| "unknown".into(),
        |u| u.release().to_string_lossy().into_owned(),
    )
}

fn measure(args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    if args.workload == Workload::Compile {
        let (parse, compile, entries) =
            policy::bench::compile_generated(args.rules).map_err(|e| anyhow::anyhow!(e))?;
        return Ok(json!({
            "parse_ns": u64::try_from(parse.as_nanos()).unwrap_or(u64::MAX),
            "compile_ns": u64::try_from(compile.as_nanos()).unwrap_or(u64::MAX),
            "entries": entries,
        }));
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("`nemoclaw-bench op` must run as root: it loads eBPF programs and creates cgroups");
    }
    if args.rounds == 0 || args.count < args.rounds {
        bail!("--count must be at least --rounds (and --rounds at least 1)");
    }
    let started = Instant::now();
    let work = WorkDir::create(&args.dir, args.workload)?;
    let mut op = Operation::prepare(args.workload, &work.path)?;

    let cgroup = SandboxCgroup::create(
        nemoclaw::sandbox::cgroup::STANDALONE_ROOT,
        &format!("bench-{}", std::process::id()),
    )?;
    // Keep the programs (and their links) alive until the end.
    let _programs = load(args, &op, &work, &cgroup)?;
    let our_ids = own_program_ids();

    // Open both cgroup.procs files now: once inside, a filesystem policy judges new opens.
    let mut inside = OpenOptions::new()
        .write(true)
        .open(cgroup.procs_file())
        .with_context(|| format!("opening {}", cgroup.procs_file().display()))?;
    let home_procs = current_cgroup_procs()?;
    let mut home = OpenOptions::new()
        .write(true)
        .open(&home_procs)
        .with_context(|| format!("opening {}", home_procs.display()))?;
    let pid = std::process::id().to_string();

    let setup = started.elapsed();
    inside
        .write_all(pid.as_bytes())
        .context("entering the sandbox cgroup")?;
    // Two passes: wall-clock time with statistics off (they add two clock reads to every
    // program run, the no-op's included), then program time with them on.
    let timed = run_timed(args, &mut op, &our_ids).and_then(|wall| {
        let _stats = enable_stats(Stats::RunTime)
            .context("enabling BPF run-time statistics (BPF_ENABLE_STATS, Linux 5.8+)")?;
        Ok((wall, run_timed(args, &mut op, &our_ids)?))
    });
    // Leave before anything else (cleanup opens and unlinks files; the cgroup's removal kills
    // whatever is inside).
    home.write_all(pid.as_bytes())
        .context("leaving the sandbox cgroup")?;
    let (wall_rounds, rounds) = timed?;
    drop(op);
    drop(cgroup);
    drop(work);

    let per_round = args.count / args.rounds;
    let ops = per_round * args.rounds;
    let per_op = |ns: u64| as_f64(ns) / as_f64(per_round);
    let mut wall: Vec<u64> = wall_rounds.iter().map(|r| r.ns).collect();
    wall.sort_unstable();
    let fastest = wall.first().copied().unwrap_or_default();
    let median = wall.get(wall.len() / 2).copied().unwrap_or_default();
    let ns_per_op = per_op(fastest);
    let total_ns: u64 = wall.iter().sum();
    // Program time per op: the least disturbed round, and the mean over all.
    let bpf_per_round: Vec<u64> = rounds
        .iter()
        .map(|r| r.programs.values().map(|(_, ns, _)| ns).sum())
        .collect();
    let bpf_fastest = bpf_per_round.iter().copied().min().unwrap_or_default();
    let bpf_total: u64 = bpf_per_round.iter().sum();
    let mut programs = Vec::new();
    for (id, (name, _, _)) in rounds.first().map(|r| &r.programs).into_iter().flatten() {
        let per_round: Vec<(u64, u64)> = rounds
            .iter()
            .filter_map(|r| r.programs.get(id).map(|(_, ns, cnt)| (*ns, *cnt)))
            .collect();
        let run_ns: u64 = per_round.iter().map(|(ns, _)| ns).sum();
        let run_cnt: u64 = per_round.iter().map(|(_, cnt)| cnt).sum();
        let fastest_run = per_round
            .iter()
            .filter(|(_, cnt)| *cnt > 0)
            .map(|(ns, cnt)| as_f64(*ns) / as_f64(*cnt))
            .fold(f64::INFINITY, f64::min);
        programs.push(json!({
            "name": name,
            "run_time_ns": run_ns,
            "run_cnt": run_cnt,
            "ns_per_run": if run_cnt == 0 { 0.0 } else { fastest_run },
            "mean_ns_per_run": if run_cnt == 0 { 0.0 } else { as_f64(run_ns) / as_f64(run_cnt) },
        }));
    }
    Ok(json!({
        "ops": ops,
        "rounds": wall_rounds.iter().map(|r| per_op(r.ns)).collect::<Vec<_>>(),
        // Statistics on for the whole machine (`kernel.bpf_stats_enabled`): the wall-clock
        // pass had them too.
        "stats_during_wall": fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
            .is_ok_and(|v| v.trim() == "1"),
        "ns_per_op": ns_per_op,
        "ops_per_s": 1e9 / ns_per_op,
        "median_ns_per_op": per_op(median),
        "mean_ns_per_op": as_f64(total_ns) / as_f64(ops),
        "setup_ns": u64::try_from(setup.as_nanos()).unwrap_or(u64::MAX),
        "bpf_ns_per_op": per_op(bpf_fastest),
        "mean_bpf_ns_per_op": as_f64(bpf_total) / as_f64(ops),
        "programs": programs,
    }))
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts and nanoseconds far below 2^52"
)]
fn as_f64(x: u64) -> f64 {
    x as f64
}

/// (program name, `run_time_ns`, `run_cnt`) by program id.
type ProgStats = BTreeMap<u32, (String, u64, u64)>;

/// One timed round: its wall-clock time and each program's statistics over it.
struct Round {
    ns: u64,
    programs: ProgStats,
}

/// Warm-up, then the timed rounds, each bracketed by statistics snapshots (so a round the
/// machine disturbed can be told apart, for program time as for wall-clock time).
fn run_timed(args: &BenchArgs, op: &mut Operation, ids: &[u32]) -> anyhow::Result<Vec<Round>> {
    for _ in 0..args.warmup {
        op.once()?;
    }
    let per_round = args.count / args.rounds;
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        let before = program_stats(ids);
        let started = Instant::now();
        for _ in 0..per_round {
            op.once()?;
        }
        let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let after = program_stats(ids);
        let programs = after
            .into_iter()
            .map(|(id, (name, run_ns, run_cnt))| {
                let (_, ns0, cnt0) = before.get(&id).cloned().unwrap_or_default();
                (
                    id,
                    (
                        name,
                        run_ns.saturating_sub(ns0),
                        run_cnt.saturating_sub(cnt0),
                    ),
                )
            })
            .collect();
        rounds.push(Round { ns, programs });
    }
    Ok(rounds)
}

/// The ids of the BPF programs this process holds (from `/proc/self/fdinfo`).
fn own_program_ids() -> Vec<u32> {
    let mut ids = Vec::new();
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return ids;
    };
    for entry in dir.flatten() {
        let is_prog =
            fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf-prog");
        if !is_prog {
            continue;
        }
        let info = fs::read_to_string(Path::new("/proc/self/fdinfo").join(entry.file_name()))
            .unwrap_or_default();
        let id = info
            .lines()
            .find_map(|l| l.strip_prefix("prog_id:"))
            .and_then(|v| v.trim().parse().ok());
        if let Some(id) = id {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Current run-time statistics of the given programs (bpf syscalls only: no file opens, so
/// it works inside a filesystem sandbox).
fn program_stats(ids: &[u32]) -> ProgStats {
    loaded_programs()
        .flatten()
        .filter(|info| ids.contains(&info.id()))
        .map(|info| {
            let name = info.name_as_str().unwrap_or("?").to_owned();
            let ns = u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX);
            (info.id(), (name, ns, info.run_count()))
        })
        .collect()
}

/// `cgroup.procs` of the cgroup v2 this process is in now.
fn current_cgroup_procs() -> anyhow::Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("no cgroup v2 entry in /proc/self/cgroup")?;
    let mount = cgroup2_mount()?;
    Ok(mount.join(rel.trim_start_matches('/')).join("cgroup.procs"))
}

/// A private directory for the workload's files; removed when dropped.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn create(base: &Path, workload: Workload) -> anyhow::Result<Self> {
        let path = base.join(format!("nemoclaw-bench-{}", std::process::id()));
        if matches!(workload, Workload::Open | Workload::Exec) {
            let fs_type = nix::sys::statfs::statfs(base)
                .with_context(|| format!("statfs {}", base.display()))?;
            if fs_type.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
                bail!(
                    "{} is not a tmpfs: file costs there would swamp the hook's (pass --dir)",
                    base.display()
                );
            }
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    fn file(&self) -> PathBuf {
        self.path.join("bench.txt")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// One benchmarked operation and what it needs.
enum Operation {
    Open {
        path: std::ffi::CString,
    },
    Exec,
    Tcp {
        listener: TcpListener,
        addr: SocketAddr,
    },
    Udp {
        /// Created by the first operation, inside the sandbox: cgroup `sock_addr` programs
        /// judge a socket by the cgroup it was created in, not by the caller's.
        sender: Option<UdpSocket>,
        receiver: UdpSocket,
        addr: SocketAddr,
        sent: u64,
    },
}

impl Operation {
    fn prepare(workload: Workload, dir: &Path) -> anyhow::Result<Self> {
        let loopback = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        Ok(match workload {
            Workload::Open => {
                let path = dir.join("bench.txt");
                fs::write(&path, b"nemoclaw bench\n")
                    .with_context(|| format!("writing {}", path.display()))?;
                let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                    .context("file path")?;
                Self::Open { path }
            }
            Workload::Exec => {
                if !Path::new(BUSYBOX).is_file() {
                    bail!("{BUSYBOX} is missing: install busybox-static");
                }
                Self::Exec
            }
            Workload::Tcp => {
                let listener =
                    TcpListener::bind(loopback).context("binding a loopback listener")?;
                let addr = listener.local_addr().context("listener address")?;
                Self::Tcp { listener, addr }
            }
            Workload::Udp => {
                let receiver =
                    UdpSocket::bind(loopback).context("binding a loopback UDP socket")?;
                receiver
                    .set_nonblocking(true)
                    .context("non-blocking receiver")?;
                let addr = receiver.local_addr().context("receiver address")?;
                Self::Udp {
                    sender: None,
                    receiver,
                    addr,
                    sent: 0,
                }
            }
            Workload::Compile => bail!("compile is not an in-kernel operation"),
        })
    }

    fn once(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Open { path } => {
                // Explicit flags: `O_PATH` would skip `security_file_open` entirely.
                // SAFETY: a NUL-terminated path and plain flags; the fd is closed below.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd < 0 {
                    return Err(io::Error::last_os_error()).context("open");
                }
                // SAFETY: we own `fd`.
                unsafe { libc::close(fd) };
            }
            Self::Exec => {
                let status = Command::new(BUSYBOX)
                    .arg("true")
                    .stdin(Stdio::inherit())
                    .status()
                    .with_context(|| format!("running {BUSYBOX} true"))?;
                if !status.success() {
                    bail!("{BUSYBOX} true: {status}");
                }
            }
            Self::Tcp { listener, addr } => {
                let client = TcpStream::connect(*addr).context("connect")?;
                let (server, _) = listener.accept().context("accept")?;
                // Reset instead of FIN: no TIME_WAIT, so the ephemeral ports never run out.
                set_linger_zero(&client)?;
                drop(client);
                drop(server);
            }
            Self::Udp {
                sender,
                receiver,
                addr,
                sent,
            } => {
                let sender = match sender {
                    Some(sender) => sender,
                    None => sender.insert(
                        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
                            .context("binding the UDP sender")?,
                    ),
                };
                sender.send_to(b"nemoclaw bench", *addr).context("sendto")?;
                *sent += 1;
                if *sent % 64 == 0 {
                    let mut buf = [0u8; 64];
                    while receiver.recv(&mut buf).is_ok() {}
                }
            }
        }
        Ok(())
    }
}

fn set_linger_zero(stream: &TcpStream) -> anyhow::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            libc::socklen_t::try_from(size_of::<libc::linger>()).unwrap_or(8),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("SO_LINGER");
    }
    Ok(())
}

/// What keeps programs attached for the run (dropping it detaches them).
struct Loaded {
    _floor: Option<Ebpf>,
    _real: Option<Enforcer>,
}

fn load(
    args: &BenchArgs,
    op: &Operation,
    work: &WorkDir,
    cgroup: &SandboxCgroup,
) -> anyhow::Result<Loaded> {
    match args.mode {
        Mode::None => Ok(Loaded {
            _floor: None,
            _real: None,
        }),
        Mode::Floor => {
            let mut ebpf = open_object()?;
            match op {
                Operation::Open { .. } => {
                    attach_lsm(&mut ebpf, &btf()?, "noop_file_open", "file_open")?;
                }
                Operation::Exec => {
                    // The hooks the process control attaches.
                    let btf = btf()?;
                    for (prog, hook) in [
                        ("noop_bprm_check_security", "bprm_check_security"),
                        ("noop_mmap_file", "mmap_file"),
                        ("noop_file_mprotect", "file_mprotect"),
                    ] {
                        attach_lsm(&mut ebpf, &btf, prog, hook)?;
                    }
                }
                Operation::Tcp { .. } | Operation::Udp { .. } => {
                    for prog in ["noop_connect4", "noop_sendmsg4"] {
                        let p: &mut CgroupSockAddr = ebpf
                            .program_mut(prog)
                            .with_context(|| format!("the eBPF object has no {prog}"))?
                            .try_into()?;
                        p.load().with_context(|| format!("loading {prog}"))?;
                        p.attach(cgroup.dir(), CgroupAttachMode::Single)
                            .with_context(|| format!("attaching {prog}"))?;
                    }
                }
            }
            Ok(Loaded {
                _floor: Some(ebpf),
                _real: None,
            })
        }
        Mode::Real => {
            let text = generated_policy(args.workload, args.rules, work)?;
            let parsed = policy::parse_str(Path::new("bench.yaml"), &text)?;
            let compiled = policy::compile(&parsed, &CompileEnv::new("/root".into()))?.policy;
            let net = if args.registry {
                NetAttach::AboveSandboxes
            } else {
                NetAttach::SandboxCgroup
            };
            let mut enforcer = Enforcer::load_for(compiled.controls, net)?;
            if matches!(args.workload, Workload::Tcp | Workload::Udp) {
                enforcer.attach_cgroup(cgroup.dir())?;
            }
            enforcer.install(SLOT, &compiled)?;
            enforcer.register(
                cgroup.id(),
                SandboxEntry {
                    slot: SLOT,
                    controls: compiled.controls,
                },
            )?;
            Ok(Loaded {
                _floor: None,
                _real: Some(enforcer),
            })
        }
    }
}

fn attach_lsm(ebpf: &mut Ebpf, btf: &aya::Btf, prog: &str, hook: &str) -> anyhow::Result<()> {
    let p: &mut Lsm = ebpf
        .program_mut(prog)
        .with_context(|| format!("the eBPF object has no {prog}"))?
        .try_into()?;
    p.load(hook, btf)
        .with_context(|| format!("loading {prog} (BPF LSM)"))?;
    p.attach().with_context(|| format!("attaching {prog}"))?;
    Ok(())
}

fn btf() -> anyhow::Result<aya::Btf> {
    aya::Btf::from_sys_fs().context("reading the kernel's BTF")
}

/// The policy for `real`: only the section the workload exercises, with `rules` generated
/// rules besides the one the workload needs.
fn generated_policy(workload: Workload, rules: usize, work: &WorkDir) -> anyhow::Result<String> {
    let mut text = String::new();
    match workload {
        Workload::Open => {
            // Mixed shapes: exact allows, `dir/**` allows, `**/name` denies.
            let _ = write!(
                text,
                "filesystem:\n  allow:\n  - {}\n",
                work.file().display()
            );
            let mut deny = String::new();
            for i in 0..rules {
                let (a, b, c) = (i % 251, (i / 251) % 251, i / (251 * 251));
                match i % 3 {
                    0 => {
                        let _ = writeln!(text, "  - /srv/p{c}/d{b}/file{a}.txt");
                    }
                    1 => {
                        let _ = writeln!(text, "  - /data/p{c}/d{b}/f{a}/**");
                    }
                    _ => {
                        let _ = writeln!(deny, "  - \"**/secret{i}.key\"");
                    }
                }
            }
            if !deny.is_empty() {
                let _ = write!(text, "  deny:\n{deny}");
            }
        }
        Workload::Exec => {
            // N distinct executables (distinct inodes: copies, not hard links).
            let bin = work.path.join("bin");
            fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
            let _ = write!(text, "process:\n  allow:\n  - {BUSYBOX}\n");
            for i in 0..rules {
                let path = bin.join(format!("b{i}"));
                let mut file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o755)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                file.write_all(b"#!/bin/true\n")
                    .with_context(|| format!("writing {}", path.display()))?;
                let _ = writeln!(text, "  - {}", path.display());
            }
        }
        Workload::Tcp | Workload::Udp => {
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
        Workload::Compile => {}
    }
    Ok(text)
}
