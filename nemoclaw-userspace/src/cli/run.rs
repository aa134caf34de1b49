//! `nemoclaw run --policy FILE [--user USER] -- CMD...`

use std::{
    ffi::OsString,
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context as _, bail};
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
        gateway::{GateSpec, Gateway},
        names::AllowedNames,
    },
    kernel::{Enforcer, KernelError},
    policy::{self, CompileEnv},
    sandbox::{SandboxCgroup, launch, selftest, user::SandboxUser},
};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The policy file (YAML).
    #[arg(long)]
    pub policy: PathBuf,
    /// Run as this user (default: $SUDO_USER, else nobody).
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
    if !args.standalone && args.socket.exists() {
        match Client::connect(&args.socket) {
            Ok(client) => return run_via_daemon(args, client),
            Err(e) => {
                eprintln!("nemoclaw: notice: {e}; loading a private copy of the programs instead");
            }
        }
    }
    let user = SandboxUser::resolve(args.user.as_deref())?;
    let policy = policy::load(&args.policy)?;
    let policy_ref = PolicyRef::of(&args.policy)
        .with_context(|| format!("reading {}", args.policy.display()))?;
    let servers = match std::fs::read_to_string(&args.resolv_conf) {
        Ok(text) => dns::nameservers(&text),
        Err(e) if refresh::has_host_names(&policy) => {
            bail!(
                "reading {} for the host-name rules: {e}",
                args.resolv_conf.display()
            )
        }
        Err(_) => Vec::new(),
    };
    let names = AllowedNames::from_policy(&policy);
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
    let compiled = compiled.policy;
    if !nix::unistd::geteuid().is_root() {
        bail!("`nemoclaw run` must run as root: it loads eBPF programs and creates cgroups");
    }
    // Everything that can fail on this kernel fails here, before anything runs.
    let mut enforcer = Enforcer::load(compiled.controls)?;
    let self_test = prove(&mut enforcer, compiled.controls)?;
    let (sandbox_controls, notice) =
        crate::sandbox::controls::for_sandbox(compiled.controls, &enforcer, &user)?;
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
    enforcer.install(RUN_SLOT, &compiled)?;
    let mut events = enforcer.take_events()?;
    // The self-test's denials are not the sandbox's: its summary goes in the start record.
    crate::audit::reader::discard_pending(&mut events);
    let sink: SharedSink = Arc::new(Mutex::new(
        AuditSink::open(
            args.audit_log.as_deref(),
            args.audit_stderr || args.audit_log.is_none(),
        )
        .with_context(|| format!("opening audit log {:?}", args.audit_log))?,
    ));
    let name = format!("run-{}", std::process::id());
    // The audit reader and the DNS gateway run on one small runtime beside the sandbox.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("nemoclaw-run")
        .enable_all()
        .build()
        .context("starting the audit reader's runtime")?;
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
        let gate = Gateway::on(runtime.handle().clone())
            .open(GateSpec {
                sandbox: name.clone(),
                names,
                upstreams: servers,
                sink: Arc::clone(&sink),
                ports: (0, 0),
            })
            .context("starting the sandbox's DNS gateway")?;
        enforcer.set_dns_gate(RUN_SLOT, gate.port4, gate.port6)?;
        Some(gate)
    };
    enforcer.register(
        cgroup.id(),
        SandboxEntry {
            slot: RUN_SLOT,
            controls: sandbox_controls,
        },
    )?;
    let id = cgroup.id();
    log(
        &sink,
        &Lifecycle::SandboxStart {
            time: lifecycle::now(),
            sandbox: name.clone(),
            cgroup: id,
            policy: policy_ref,
            user: user.name.clone(),
            uid: user.uid.as_raw(),
            command: args
                .command
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
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
    // With host-name rules the refresher holds the enforcer while the sandbox runs.
    let keeper = if compiled.controls & controls::NET != 0 && refresh::has_host_names(&policy) {
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
    };
    let status = launch::spawn(&args.command, &cgroup.procs_file(), &user, &sandbox_path)
        .with_context(|| format!("starting {:?}", args.command[0]))
        .and_then(|mut child| child.wait().context("waiting for the sandboxed command"));
    // Kill stragglers before lifting the policy: nothing runs unconfined.
    cgroup.kill_all();
    drop(cgroup);
    let mut events_lost = 0;
    match keeper.or_else(Refresher::stop) {
        Ok(mut enforcer) => {
            events_lost = enforcer.events_lost().unwrap_or_else(|e| {
                eprintln!("nemoclaw: {e}");
                0
            });
            if let Err(e) = enforcer.unregister(id) {
                eprintln!("nemoclaw: {e}");
            }
        }
        Err(e) => eprintln!("nemoclaw: {e}"),
    }
    drop(dns_gate);
    runtime.block_on(reader.finish());
    let code = status
        .as_ref()
        .ok()
        .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)));
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
    let user = SandboxUser::resolve(args.user.as_deref())?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    let policy =
        std::path::absolute(&args.policy).with_context(|| format!("{}", args.policy.display()))?;
    let sink = AuditSink::open(
        args.audit_log.as_deref(),
        args.audit_stderr || args.audit_log.is_none(),
    )
    .with_context(|| format!("opening audit log {:?}", args.audit_log))?;
    // Subscribe first, so the sandbox's first records are not missed.
    let (follower, finish) = follow::subscribe(&args.socket, &name)?;
    let copier = std::thread::spawn(move || copy_events(follower, sink));
    let created = client.call(&Request::Create {
        name: Some(name.clone()),
        policy,
        user: user.name.clone(),
        command: args
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        ephemeral: true,
        resolv_conf: Some(std::path::absolute(&args.resolv_conf)?),
        dns_grace: Some(args.dns_grace),
    })?;
    let Response::Created { sandbox, notices } = created else {
        bail!("unexpected answer from the daemon: {created:?}");
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
    .with_context(|| format!("starting {:?}", args.command[0]))
    .and_then(|mut child| child.wait().context("waiting for the sandboxed command"));
    let code = status
        .as_ref()
        .ok()
        .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)));
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
