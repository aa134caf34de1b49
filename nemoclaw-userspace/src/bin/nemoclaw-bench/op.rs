//! `nemoclaw-bench op` (`cargo xtask bench` drives it): the cost of one enforced
//! operation in one configuration, measured in-process.
//!
//! One run = one scenario (`crate::scenario`: file open for reading or writing at three
//! path depths, create+unlink, stat, exec, TCP connect, UDP sendto, or policy compile) under
//! one system: `none` (no BPF), `floor` (a no-op program on the same hook, the cost of
//! merely having a hook), `nemoclaw` (the [`Enforcer`] with a generated policy of `--rules`
//! rules), `nemoclaw-daemon` (the same set up as the daemon does), `landlock` or `apparmor`
//! (`crate::peer`: the same N rules). Where a system cannot express the scenario's rule set
//! the line says `unsupported` with the reason instead of measuring.
//! The process moves itself into a fresh sandbox cgroup (and, for Landlock and AppArmor,
//! restricts itself last), warms up, runs a fixed number of operations in rounds, moves back
//! out, and prints one line:
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
    fs::{self, OpenOptions},
    io::{self, Write as _},
    path::{Path, PathBuf},
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

use crate::{
    peer,
    scenario::{Operation, Scenario, WorkDir},
};
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

const SLOT: Slot = 1;

/// The system measured (`--system`; `--mode` is the old name, `real` that of `nemoclaw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// No BPF program and no other LSM policy.
    None,
    /// A no-op program on the same hook(s): the cost of having a hook.
    Floor,
    /// NemoClaw's [`Enforcer`] standalone (`nemoclaw run`) with a generated policy of
    /// `--rules` rules.
    #[value(alias = "real")]
    Nemoclaw,
    /// The same programs set up as the daemon does. For the network scenarios that differs:
    /// attached above the sandboxes, they look the registry up instead of reading the cgroup
    /// storage. For the LSM scenarios it does not: LSM programs are global and always look
    /// the registry (`SANDBOXES`) up by cgroup id, standalone as under the daemon, so this
    /// row equals `nemoclaw`'s there and `cargo xtask bench` does not run it.
    NemoclawDaemon,
    /// The process restricts itself with Landlock (the same N rules).
    Landlock,
    /// The process enters a generated AppArmor profile (the same N rules).
    Apparmor,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Floor => "floor",
            Self::Nemoclaw => "nemoclaw",
            Self::NemoclawDaemon => "nemoclaw-daemon",
            Self::Landlock => "landlock",
            Self::Apparmor => "apparmor",
        }
    }

    /// The old `mode` field: `none`, `floor`, `real` (NemoClaw), or the peer's name.
    fn mode(self) -> &'static str {
        match self {
            Self::Nemoclaw | Self::NemoclawDaemon => "real",
            s => s.name(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long, value_enum)]
    pub workload: Scenario,
    #[arg(long, visible_alias = "mode", value_enum, default_value = "none")]
    pub system: System,
    /// Rules in the generated rule set (every system but none and floor; and `compile`).
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
    /// The old spelling of `--system nemoclaw-daemon`.
    #[arg(long)]
    pub registry: bool,
    /// Where the file and exec workloads create their files (must be tmpfs).
    #[arg(long, default_value = "/tmp")]
    pub dir: PathBuf,
}

impl BenchArgs {
    fn system(&self) -> System {
        if self.registry && self.system == System::Nemoclaw {
            System::NemoclawDaemon
        } else {
            self.system
        }
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
        let system = args.system();
        obj.insert("workload".into(), args.workload.name().into());
        obj.insert("scenario".into(), args.workload.name().into());
        obj.insert("system".into(), system.name().into());
        obj.insert("mode".into(), system.mode().into());
        obj.insert("rules".into(), args.rules.into());
        if system == System::NemoclawDaemon {
            obj.insert("registry".into(), true.into());
        }
        if let Some(note) = peer::note(args.workload, system) {
            obj.insert("note".into(), note.into());
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
    let system = args.system();
    if let Some(reason) = peer::unsupported(args.workload, system, args.rules) {
        return Ok(json!({ "unsupported": reason }));
    }
    if args.workload == Scenario::Compile {
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
    if system == System::Apparmor
        && let Err(reason) = peer::apparmor::active()
    {
        return Ok(json!({ "unsupported": reason }));
    }
    let work = WorkDir::create(&args.dir, args.workload)?;
    let mut op = Operation::prepare(args.workload, &work)?;

    let cgroup = SandboxCgroup::create(
        nemoclaw::sandbox::cgroup::STANDALONE_ROOT,
        &format!("bench-{}", std::process::id()),
    )?;
    // Keep the programs (and their links) alive until the end.
    let loaded = load(args, &op, &work, &cgroup)?;
    let our_ids = own_program_ids();
    // The peers use no sandbox cgroup (no BPF): it is removed now, while this process can
    // still read and remove it, and never entered.
    let cgroup = if matches!(system, System::Landlock | System::Apparmor) {
        drop(cgroup);
        None
    } else {
        Some(cgroup)
    };

    // Open both cgroup.procs files now: once inside, a filesystem policy judges new opens.
    let mut procs = match &cgroup {
        Some(cgroup) => {
            let inside = OpenOptions::new()
                .write(true)
                .open(cgroup.procs_file())
                .with_context(|| format!("opening {}", cgroup.procs_file().display()))?;
            let home_procs = current_cgroup_procs()?;
            let home = OpenOptions::new()
                .write(true)
                .open(&home_procs)
                .with_context(|| format!("opening {}", home_procs.display()))?;
            Some((inside, home))
        }
        None => None,
    };
    let pid = std::process::id().to_string();
    // Read now: a restricted process may no longer open it.
    // Statistics on for the whole machine (`kernel.bpf_stats_enabled`): the wall-clock pass
    // had them too.
    let stats_during_wall =
        fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|v| v.trim() == "1");

    let setup = started.elapsed();
    if let Some((inside, _)) = &mut procs {
        inside
            .write_all(pid.as_bytes())
            .context("entering the sandbox cgroup")?;
    }
    // Last, the peers' restriction (irreversible: this process ends after the rounds).
    if let Some(ruleset) = &loaded.landlock {
        ruleset.restrict()?;
    }
    if let Some(profile) = &loaded.apparmor {
        peer::apparmor::enter(profile)?;
    }
    // Two passes: wall-clock time with statistics off (they add two clock reads to every
    // program run, the no-op's included), then program time with them on.
    let timed = run_timed(args, &mut op, &our_ids).and_then(|wall| {
        let _stats = enable_stats(Stats::RunTime)
            .context("enabling BPF run-time statistics (BPF_ENABLE_STATS, Linux 5.8+)")?;
        Ok((wall, run_timed(args, &mut op, &our_ids)?))
    });
    // Leave before anything else (cleanup opens and unlinks files; the cgroup's removal kills
    // whatever is inside).
    if let Some((_, home)) = &mut procs {
        home.write_all(pid.as_bytes())
            .context("leaving the sandbox cgroup")?;
    }
    let (wall_rounds, rounds) = timed?;
    let work_measured = args
        .workload
        .access()
        .map(|_| work.measured(args.workload).display().to_string());
    let abi = loaded.landlock.as_ref().map(|r| r.abi);
    drop(loaded);
    drop(op);
    drop(cgroup);
    drop(work);

    let mut result = summary(args, &wall_rounds, &rounds);
    if let Some(obj) = result.as_object_mut() {
        obj.insert("path".into(), work_measured.into());
        obj.insert("stats_during_wall".into(), stats_during_wall.into());
        obj.insert(
            "setup_ns".into(),
            u64::try_from(setup.as_nanos()).unwrap_or(u64::MAX).into(),
        );
        obj.insert("landlock_abi".into(), abi.into());
    }
    Ok(result)
}

/// The result's figures from the wall-clock rounds and the rounds with statistics on.
fn summary(args: &BenchArgs, wall_rounds: &[Round], rounds: &[Round]) -> serde_json::Value {
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
    json!({
        "ops": ops,
        "rounds_ns_per_op": wall_rounds.iter().map(|r| per_op(r.ns)).collect::<Vec<_>>(),
        "ns_per_op": ns_per_op,
        "ops_per_s": 1e9 / ns_per_op,
        "median_ns_per_op": per_op(median),
        "mean_ns_per_op": as_f64(total_ns) / as_f64(ops),
        "bpf_ns_per_op": per_op(bpf_fastest),
        "mean_bpf_ns_per_op": as_f64(bpf_total) / as_f64(ops),
        "programs": programs,
    })
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

/// What keeps the system in place for the run (dropping it detaches the programs: `floor`
/// and `real` are held for that).
struct Loaded {
    floor: Option<Ebpf>,
    real: Option<Enforcer>,
    /// Landlock's ruleset, enforced just before the rounds.
    landlock: Option<peer::landlock::Ruleset>,
    /// AppArmor's loaded profile, entered just before the rounds.
    apparmor: Option<String>,
}

fn load(
    args: &BenchArgs,
    op: &Operation,
    work: &WorkDir,
    cgroup: &SandboxCgroup,
) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded {
        floor: None,
        real: None,
        landlock: None,
        apparmor: None,
    };
    match args.system() {
        System::None => {}
        System::Floor => {
            let mut ebpf = open_object()?;
            match op {
                Operation::Open { .. } | Operation::CreateUnlink { .. } => {
                    attach_lsm(&mut ebpf, &btf()?, "noop_file_open", "file_open")?;
                }
                Operation::Stat { .. } => bail!("stat has no floor program"),
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
            loaded.floor = Some(ebpf);
        }
        system @ (System::Nemoclaw | System::NemoclawDaemon) => {
            if args.workload == Scenario::Exec {
                work.make_targets(args.workload, args.rules.saturating_sub(1))?;
            }
            let text = peer::nemoclaw::policy_text(args.workload, args.rules, work);
            let parsed = policy::parse_str(Path::new("bench.yaml"), &text)?;
            let compiled = policy::compile(&parsed, &CompileEnv::new("/root".into()))?.policy;
            let net = if system == System::NemoclawDaemon {
                NetAttach::AboveSandboxes
            } else {
                NetAttach::SandboxCgroup
            };
            let mut enforcer = Enforcer::load_for(compiled.controls, net)?;
            if matches!(args.workload, Scenario::Tcp | Scenario::Udp) {
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
            loaded.real = Some(enforcer);
        }
        System::Landlock => {
            loaded.landlock = Some(peer::landlock::prepare(args.workload, work, args.rules)?);
        }
        System::Apparmor => {
            if args.workload == Scenario::Exec {
                work.make_targets(args.workload, args.rules.saturating_sub(1))?;
            }
            loaded.apparmor = Some(peer::apparmor::load(args.workload, work, args.rules)?);
        }
    }
    Ok(loaded)
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
