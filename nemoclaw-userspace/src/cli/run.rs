//! `nemoclaw run --policy FILE [--user USER] -- CMD...`, and
//! `nemoclaw run --sandbox NAME -- CMD...` (in a persistent sandbox the daemon keeps).

use std::{
    ffi::OsString,
    net::SocketAddr,
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    process::ExitStatus,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context as _, bail};
use aya::maps::{MapData, RingBuf};
use nemoclaw_common::sandbox::{SandboxEntry, Slot, controls};

use crate::{
    audit::{
        AuditSink,
        lifecycle::{self, Lifecycle, PolicyRef},
        reader::{AuditReader, OneSandbox, SharedSink},
    },
    daemon::{
        dns,
        follow::{self, Follower},
        protocol::{Client, ClientError, Request, Response},
        refresh::{self, RefreshSpec, Refresher, Shared, TtlResolver},
    },
    dnsgate::{
        gateway::{Gate, GateSpec, Gateway},
        names::AllowedNames,
    },
    kernel::{Enforcer, KernelError},
    policy::{self, CompileEnv, CompiledPolicy, Policy},
    sandbox::{SandboxCgroup, launch, selftest, user::SandboxUser},
};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The policy file (YAML).
    #[arg(long, required_unless_present = "sandbox", conflicts_with = "sandbox")]
    pub policy: Option<PathBuf>,
    /// Run in this persistent sandbox of the daemon (`sandboxes:` in its configuration)
    /// under the policy it enforces, as its user; no new sandbox is made.
    #[arg(long, conflicts_with_all = ["name", "standalone"])]
    pub sandbox: Option<String>,
    /// Run as this user (default: `$SUDO_USER`, else nobody).
    #[arg(long)]
    pub user: Option<String>,
    /// Append audit records (JSON lines) to this file.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// Also write audit records to stderr (the default when no --audit-log is given).
    #[arg(long)]
    pub audit_stderr: bool,
    /// Nameservers for host-name rules (resolved here, never in the sandbox) and for the
    /// sandbox's DNS gateway, the only DNS it can reach.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// Seconds an address that DNS stopped returning stays allowed.
    #[arg(long, default_value_t = 30)]
    pub dns_grace: u64,
    /// Name of the sandbox (with a daemon; default `run-<pid>`).
    #[arg(long)]
    pub name: Option<String>,
    /// The daemon's control socket: used when a daemon answers there.
    #[arg(long, default_value = crate::daemon::protocol::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Load a private copy of the programs instead of asking a running daemon.
    #[arg(long)]
    pub standalone: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<OsString>,
}

/// `run` owns its object, so one slot is enough; the daemon will allocate slots.
const RUN_SLOT: Slot = 1;

fn log(sink: &SharedSink, record: &Lifecycle) {
    if let Err(e) = sink
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .write_record(record)
    {
        eprintln!("nemoclaw: writing audit record: {e}");
    }
}

pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    if let Some(name) = &args.sandbox {
        let client = Client::connect(&args.socket)
            .with_context(|| format!("--sandbox {name} runs in a sandbox of the daemon"))?;
        return run_in_sandbox(args, client, name);
    }
    if !args.standalone && args.socket.exists() {
        match Client::connect(&args.socket) {
            Ok(client) => return run_via_daemon(args, client),
            Err(e) => {
                eprintln!("nemoclaw: notice: {e}; loading a private copy of the programs instead");
            }
        }
    }
    run_standalone(args)
}

/// Loads a private copy of the programs, runs the command in a sandbox of its own and
/// audits it until it exits.
fn run_standalone(args: &RunArgs) -> anyhow::Result<i32> {
    let Prepared {
        user,
        policy,
        policy_ref,
        servers,
        env,
        resolver,
        compiled,
    } = prepare(args)?;
    let Armed {
        mut enforcer,
        self_test,
        controls: sandbox_controls,
        cgroup,
        events,
    } = arm(&compiled, &user)?;
    let sink: SharedSink = Arc::new(Mutex::new(open_audit_sink(args)?));
    let name = format!("run-{}", std::process::id());
    // The audit reader and the DNS gateway run on one small runtime beside the sandbox.
    let runtime = side_runtime()?;
    let reader = AuditReader::spawn(
        runtime.handle(),
        events,
        Arc::clone(&sink),
        OneSandbox {
            name: name.clone(),
            rules: Arc::new(compiled.rules.clone()),
        },
    )
    .context("watching the deny-event ring buffer")?;
    // The sandbox's only DNS: its gateway, pointed at before the sandbox is registered.
    let dns_gate = if compiled.controls & controls::NET == 0 {
        None
    } else {
        let spec = GateSpec {
            sandbox: name.clone(),
            names: AllowedNames::from_policy(&policy),
            upstreams: servers,
            sink: Arc::clone(&sink),
            ports: (0, 0),
        };
        Some(open_dns_gate(&mut enforcer, runtime.handle(), spec)?)
    };
    let id = cgroup.id();
    enforcer.register(
        id,
        SandboxEntry {
            slot: RUN_SLOT,
            controls: sandbox_controls,
        },
    )?;
    log(
        &sink,
        &Lifecycle::SandboxStart {
            time: lifecycle::now(),
            sandbox: name.clone(),
            cgroup: id,
            policy: policy_ref,
            user: user.name.clone(),
            uid: user.uid.as_raw(),
            command: command_line(args),
            enforcing: crate::sandbox::controls::names(sandbox_controls),
            self_test: Some(self_test.record()),
            requested_by: requester(),
        },
    );
    eprintln!(
        "nemoclaw: sandbox {} (cgroup id {id}) as user {}; enforcing: {}",
        cgroup.path().display(),
        user.name,
        crate::sandbox::controls::names(sandbox_controls).join(", "),
    );

    let sandbox_path = env.path.clone();
    let keeper = keep_enforcer(enforcer, &compiled, policy, env, resolver);
    let status = launch::spawn(&args.command, &cgroup.procs_file(), &user, &sandbox_path)
        .with_context(|| format!("starting \"{}\"", args.command[0].display()))
        .and_then(|mut child| child.wait().context("waiting for the sandboxed command"));
    // Kill stragglers before lifting the policy: nothing runs unconfined.
    cgroup.kill_all();
    drop(cgroup);
    let events_lost = release_enforcer(keeper, id);
    drop(dns_gate);
    runtime.block_on(reader.finish());
    let code = status.as_ref().ok().copied().map(exit_code);
    log(
        &sink,
        &Lifecycle::SandboxStop {
            time: lifecycle::now(),
            sandbox: name,
            cgroup: id,
            exit_code: code,
            events_lost,
        },
    );
    status?;
    Ok(code.unwrap_or(1))
}

/// The policy compiled for the sandbox user, and what the DNS refresher compiles it again
/// with.
struct Prepared {
    user: SandboxUser,
    policy: Policy,
    policy_ref: PolicyRef,
    /// The host's nameservers: for host-name rules and behind the DNS gateway.
    servers: Vec<SocketAddr>,
    env: CompileEnv,
    resolver: Arc<TtlResolver>,
    compiled: CompiledPolicy,
}

/// Resolves the user, loads and compiles the policy (printing its warnings).
fn prepare(args: &RunArgs) -> anyhow::Result<Prepared> {
    let user = SandboxUser::resolve(args.user.as_deref())?;
    let file = policy_file(args)?;
    let policy = policy::load(file)?;
    let policy_ref = PolicyRef::of(file).with_context(|| format!("reading {}", file.display()))?;
    let servers = read_nameservers(args, &policy)?;
    let resolver = Arc::new(TtlResolver::new(
        servers.clone(),
        Duration::from_secs(args.dns_grace),
    ));
    let mut env = CompileEnv::new(user.home.clone());
    env.resolver = Box::new(Shared(Arc::clone(&resolver)));
    let compiled = policy::compile(&policy, &env)?;
    for warning in &compiled.warnings {
        eprintln!("nemoclaw: warning: {warning}");
    }
    Ok(Prepared {
        user,
        policy,
        policy_ref,
        servers,
        env,
        resolver,
        compiled: compiled.policy,
    })
}

/// The nameservers of `--resolv-conf`; none when it cannot be read and the policy has no
/// host-name rules (which need them).
fn read_nameservers(args: &RunArgs, policy: &Policy) -> anyhow::Result<Vec<SocketAddr>> {
    match std::fs::read_to_string(&args.resolv_conf) {
        Ok(text) => Ok(dns::nameservers(&text)),
        Err(e) if refresh::has_host_names(policy) => {
            bail!(
                "reading {} for the host-name rules: {e}",
                args.resolv_conf.display()
            )
        }
        Err(_) => Ok(Vec::new()),
    }
}

/// The programs loaded and proven on this kernel, and the policy installed for the
/// sandbox's new cgroup.
struct Armed {
    enforcer: Enforcer,
    self_test: selftest::Report,
    /// The controls to register for the sandbox.
    controls: u32,
    cgroup: SandboxCgroup,
    /// The deny-event ring buffer, emptied of the self-test's events.
    events: RingBuf<MapData>,
}

/// Everything that can fail on this kernel fails here, before anything runs.
fn arm(compiled: &CompiledPolicy, user: &SandboxUser) -> anyhow::Result<Armed> {
    if !nix::unistd::geteuid().is_root() {
        bail!("`nemoclaw run` must run as root: it loads eBPF programs and creates cgroups");
    }
    let mut enforcer = Enforcer::load(compiled.controls)?;
    let self_test = prove(&mut enforcer, compiled.controls)?;
    let (controls, notice) =
        crate::sandbox::controls::for_sandbox(compiled.controls, enforcer.socket_kinds(), user)?;
    if let Some(notice) = notice {
        eprintln!("nemoclaw: notice: {notice}");
    }
    let cgroup = SandboxCgroup::create(
        crate::sandbox::cgroup::STANDALONE_ROOT,
        &format!("run-{}", std::process::id()),
    )?;
    if compiled.controls & controls::NET != 0 {
        enforcer.attach_cgroup(cgroup.dir())?;
    }
    enforcer.install(RUN_SLOT, compiled)?;
    let mut events = enforcer.take_events()?;
    // The self-test's denials are not the sandbox's: its summary goes in the start record.
    crate::audit::reader::discard_pending(&mut events);
    Ok(Armed {
        enforcer,
        self_test,
        controls,
        cgroup,
        events,
    })
}

/// The audit sink `--audit-log` and `--audit-stderr` ask for (stderr without a log file).
fn open_audit_sink(args: &RunArgs) -> anyhow::Result<AuditSink> {
    AuditSink::open(
        args.audit_log.as_deref(),
        args.audit_stderr || args.audit_log.is_none(),
    )
    .with_context(|| format!("opening audit log {:?}", args.audit_log))
}

/// The one-thread runtime the audit reader and the DNS gateway run on.
fn side_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("nemoclaw-run")
        .enable_all()
        .build()
        .context("starting the audit reader's runtime")
}

/// Opens the sandbox's DNS gateway on `runtime` and points the sandbox's DNS at it.
fn open_dns_gate(
    enforcer: &mut Enforcer,
    runtime: &tokio::runtime::Handle,
    spec: GateSpec,
) -> anyhow::Result<Gate> {
    let gate = Gateway::on(runtime.clone())
        .open(spec)
        .context("starting the sandbox's DNS gateway")?;
    enforcer.set_dns_gate(RUN_SLOT, gate.port4, gate.port6)?;
    Ok(gate)
}

/// With host-name rules a refresher holds the enforcer while the sandbox runs (`Err`);
/// otherwise it stays here (`Ok`).
fn keep_enforcer(
    enforcer: Enforcer,
    compiled: &CompiledPolicy,
    policy: Policy,
    env: CompileEnv,
    resolver: Arc<TtlResolver>,
) -> Result<Enforcer, Refresher> {
    if compiled.controls & controls::NET != 0 && refresh::has_host_names(&policy) {
        let spec = RefreshSpec {
            policy,
            env,
            resolver,
            current: compiled.clone(),
            slot: RUN_SLOT,
        };
        Err(Refresher::spawn(enforcer, spec))
    } else {
        Ok(enforcer)
    }
}

/// Takes the enforcer back (stopping the refresher, if any), removes the sandbox `id`'s
/// entry, lets its programs detach in the background, and returns how many deny events
/// were lost.
fn release_enforcer(keeper: Result<Enforcer, Refresher>, id: u64) -> u64 {
    match keeper.or_else(Refresher::stop) {
        Ok(mut enforcer) => {
            let events_lost = enforcer.events_lost().unwrap_or_else(|e| {
                eprintln!("nemoclaw: {e}");
                0
            });
            if let Err(e) = enforcer.unregister(id) {
                eprintln!("nemoclaw: {e}");
            }
            enforcer.release_in_background();
            events_lost
        }
        Err(e) => {
            eprintln!("nemoclaw: {e}");
            0
        }
    }
}

/// The command and its arguments, for the audit log.
fn command_line(args: &RunArgs) -> Vec<String> {
    args.command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The command's exit code, or 128 + the signal that ended it.
fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Runs the self-test on the controls `policy_controls` needs (and socket kinds, where
/// attached): a control whose probe is not denied refuses the run; socket kinds that fail
/// are withdrawn (`sandbox::controls::for_sandbox` then decides).
fn prove(enforcer: &mut Enforcer, policy_controls: u32) -> anyhow::Result<selftest::Report> {
    let sockets = if enforcer.socket_kinds().is_ok() {
        controls::SOCKETS
    } else {
        0
    };
    let place = selftest::Place {
        cgroup_root: crate::sandbox::cgroup::STANDALONE_ROOT,
        attach_net: true,
    };
    let report = selftest::run(enforcer, policy_controls | sockets, &place)
        .context("running the enforcement self-test")?;
    enforcer.withdraw(&report.failed);
    let refused = policy_controls & !report.proven & !controls::SOCKETS;
    if refused != 0 {
        let first = refused & refused.wrapping_neg();
        return Err(KernelError::ControlUnavailable {
            controls: refused,
            lack: crate::kernel::loader::Lack::SelfTest,
            why: report
                .why_failed(first)
                .unwrap_or("its self-test failed")
                .to_owned(),
            fix: selftest::FIX.to_owned(),
        }
        .into());
    }
    Ok(report)
}

/// Who asked for the sandbox, for the audit log.
fn requester() -> String {
    let uid = nix::unistd::getuid();
    match std::env::var("SUDO_USER") {
        Ok(u) if !u.is_empty() => format!("uid {uid} (sudo by {u})"),
        _ => format!("uid {uid}"),
    }
}

/// Asks the daemon for an ephemeral sandbox, runs the command in it, and copies the
/// sandbox's audit records into `--audit-log` (or stderr) as they arrive.
fn run_via_daemon(args: &RunArgs, mut client: Client) -> anyhow::Result<i32> {
    let user_name = SandboxUser::requested(args.user.as_deref());
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    let file = policy_file(args)?;
    let policy = std::path::absolute(file).with_context(|| format!("{}", file.display()))?;
    let sink = open_audit_sink(args)?;
    // Subscribe first, so the sandbox's first records are not missed.
    let (follower, finish) = follow::subscribe(&args.socket, &name)?;
    let copier = std::thread::spawn(move || copy_events(follower, sink));
    let created = client.call(&Request::Create {
        name: Some(name.clone()),
        policy,
        user: user_name.clone(),
        command: command_line(args),
        ephemeral: true,
        resolv_conf: Some(std::path::absolute(&args.resolv_conf)?),
        dns_grace: Some(args.dns_grace),
    })?;
    let Response::Created {
        sandbox,
        notices,
        account,
    } = created
    else {
        bail!("unexpected answer from the daemon: {created:?}");
    };
    let user = match account {
        Some(account) => account.into_user(user_name),
        None => SandboxUser::resolve(Some(&user_name))?,
    };
    for notice in notices {
        eprintln!("nemoclaw: notice: {notice}");
    }
    eprintln!(
        "nemoclaw: sandbox {name} ({}, cgroup id {}) from the daemon, as user {}; enforcing: {}",
        sandbox.cgroup.display(),
        sandbox.cgroup_id,
        user.name,
        sandbox.enforcing.join(", "),
    );
    let path = CompileEnv::new(user.home.clone()).path;
    let status = launch::spawn(
        &args.command,
        &sandbox.cgroup.join("cgroup.procs"),
        &user,
        &path,
    )
    .with_context(|| format!("starting \"{}\"", args.command[0].display()))
    .and_then(|mut child| child.wait().context("waiting for the sandboxed command"));
    let code = status.as_ref().ok().copied().map(exit_code);
    let destroy = Request::Destroy {
        name: name.clone(),
        exit_code: code,
    };
    // The daemon may have restarted meanwhile: then ask on a fresh connection. A sandbox it
    // already tidied away (empty, creator gone) needs nothing more.
    let destroyed = client
        .call(&destroy)
        .or_else(|_| Client::connect(&args.socket).and_then(|mut c| c.call(&destroy)));
    match destroyed {
        Ok(_) => {}
        Err(ClientError::Daemon(m)) if m.starts_with("no sandbox named") => {}
        Err(e) => eprintln!("nemoclaw: removing sandbox {name}: {e}"),
    }
    // The copier ends with the sandbox's stop record.
    finish.finish(copier);
    status?;
    Ok(code.unwrap_or(1))
}

/// Writes each of the sandbox's records into `sink`, across daemon restarts, until its stop
/// record.
fn copy_events(follower: Follower, mut sink: AuditSink) {
    follower.run(|record| {
        if let Err(e) = sink.write_record(record) {
            eprintln!("nemoclaw: writing audit record: {e}");
        }
        if record.get("event").and_then(|e| e.as_str()) == Some("dns_change") {
            let change = record.get("change").and_then(|c| c.as_str()).unwrap_or("");
            eprintln!("nemoclaw: dns: {change}");
        }
    });
}

/// `--policy` (clap makes sure it is there without `--sandbox`).
fn policy_file(args: &RunArgs) -> anyhow::Result<&std::path::Path> {
    args.policy
        .as_deref()
        .context("give --policy FILE or --sandbox NAME")
}

/// Runs the command in the daemon's persistent sandbox `name`: its cgroup and user from
/// the daemon, the child written into the cgroup before it executes. The sandbox stays;
/// its records go to the daemon's audit log.
fn run_in_sandbox(args: &RunArgs, mut client: Client, name: &str) -> anyhow::Result<i32> {
    let Response::Sandboxes { sandboxes } = client.call(&Request::List)? else {
        bail!("unexpected answer from the daemon");
    };
    let Some(sandbox) = sandboxes.into_iter().find(|s| s.name == name) else {
        bail!("the daemon has no sandbox named {name} (see `nemoclaw ps`)");
    };
    if let Some(user) = &args.user
        && *user != sandbox.user
    {
        bail!(
            "sandbox {name} runs commands as {}, not {user} (its policy was compiled for that user)",
            sandbox.user
        );
    }
    let user = SandboxUser::resolve(Some(&sandbox.user))?;
    let path = CompileEnv::new(user.home.clone()).path;
    let status = launch::spawn(
        &args.command,
        &sandbox.cgroup.join("cgroup.procs"),
        &user,
        &path,
    )
    .with_context(|| {
        format!(
            "starting \"{}\" in sandbox {name}",
            args.command[0].display()
        )
    })
    .and_then(|mut child| child.wait().context("waiting for the sandboxed command"))?;
    Ok(exit_code(status))
}
