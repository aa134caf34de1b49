//! `nemoclaw router`: the privacy router's command line. It reads its configuration (and
//! with it the backends' keys) first, then, when started as root, drops to `--user` before
//! it touches the network: it parses untrusted HTTP and needs no privilege.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;

use crate::daemon::protocol::{CONTROL_GROUP, DEFAULT_SOCKET};
use crate::router::audit::AuditOut;
use crate::router::config::{DEFAULT_CONFIG, RouterConfig};
use crate::router::directory::{Directory, Rules};
use crate::router::pipeline::Router;
use crate::router::upstream::Upstream;

#[derive(Debug, Args)]
pub struct RouterArgs {
    /// The router's configuration: listen address, limits, backends and their keys.
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Listen here instead of the configuration's `listen`.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// The daemon's control socket, asked which sandbox each connection comes from.
    #[arg(long, default_value = DEFAULT_SOCKET, conflicts_with = "no_daemon")]
    pub daemon_socket: PathBuf,
    /// Run without a daemon: only `--default-policy` clients are served.
    #[arg(long, requires = "default_policy")]
    pub no_daemon: bool,
    /// A policy whose `inference:` section applies to clients outside every sandbox (host
    /// tools); without it such clients are refused.
    #[arg(long)]
    pub default_policy: Option<PathBuf>,
    /// Write audit records to this hash-chained file instead of the daemon's trail
    /// (required with `--no-daemon`).
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// Started as root: the user to run as (it joins the `nemoclaw` group too, for the
    /// control socket).
    #[arg(long)]
    pub user: Option<String>,
}

pub fn router(args: &RouterArgs) -> anyhow::Result<i32> {
    let env = |name: &str| std::env::var(name).ok();
    let mut config = RouterConfig::load(&args.config, &env)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let default = args
        .default_policy
        .as_deref()
        .map(crate::router::directory::default_rules)
        .transpose()?;
    if args.no_daemon && args.audit_log.is_none() {
        bail!("--no-daemon needs --audit-log: every decision is audited");
    }
    // Opened before privileges go: the log may live where only root writes.
    let audit_file = args
        .audit_log
        .as_deref()
        .map(|path| {
            AuditOut::file(path)
                .with_context(|| format!("opening the audit log {}", path.display()))
        })
        .transpose()?;
    drop_privileges(args.user.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the router's runtime")?;
    runtime.block_on(serve(args, config, default, audit_file))
}

async fn serve(
    args: &RouterArgs,
    config: RouterConfig,
    default: Option<Arc<Rules>>,
    audit_file: Option<AuditOut>,
) -> anyhow::Result<i32> {
    let daemon = (!args.no_daemon).then(|| args.daemon_socket.clone());
    let directory = Arc::new(Directory::new(daemon, default));
    let audit = audit_file.unwrap_or_else(|| AuditOut::Daemon(Arc::clone(&directory)));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let upstream = Upstream::new(config.upstream_timeout)?;
    println!(
        "nemoclaw router: listening on {} ({} backends: {})",
        listener.local_addr()?,
        config.backends.len(),
        config
            .backends
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    let router = Arc::new(Router {
        config,
        directory,
        upstream,
        audit,
        sessions: crate::router::mask::Sessions::default(),
    });
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    };
    crate::router::server::serve(router, listener, shutdown).await?;
    Ok(0)
}

/// The signal this process gets when its parent dies (0: none).
fn parent_death_signal() -> libc::c_ulong {
    let mut signal: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int through the pointer, which is valid.
    let ok = unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &raw mut signal) } == 0;
    if ok {
        libc::c_ulong::try_from(signal).unwrap_or(0)
    } else {
        0
    }
}

/// As root: become `user` (with the control group), or refuse to run. As anyone else:
/// stay.
fn drop_privileges(user: Option<&str>) -> anyhow::Result<()> {
    use nix::unistd::{Gid, Group, User, setgid, setgroups, setuid};
    if !nix::unistd::geteuid().is_root() {
        if user.is_some() {
            bail!("--user needs the router to be started as root");
        }
        return Ok(());
    }
    let Some(name) = user else {
        bail!(
            "the router does not run as root (it parses untrusted HTTP and needs no privilege): \
             start it as an ordinary user, or as root with --user USER"
        );
    };
    let account = User::from_name(name)?.with_context(|| format!("no user `{name}`"))?;
    if account.uid.is_root() {
        bail!("--user {name} is root");
    }
    let mut groups: Vec<Gid> = vec![account.gid];
    if let Some(control) = Group::from_name(CONTROL_GROUP)? {
        groups.push(control.gid);
    }
    // The kernel clears the parent-death signal when credentials change; the daemon sets
    // it so that its router stops with it, so it is armed again after the drop.
    let death_signal = parent_death_signal();
    let parent = nix::unistd::getppid();
    setgroups(&groups).context("setgroups")?;
    setgid(account.gid).context("setgid")?;
    setuid(account.uid).context("setuid")?;
    if nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
        bail!("could not drop root");
    }
    if death_signal != 0 {
        // SAFETY: prctl(2) with plain integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) } != 0 {
            bail!(
                "re-arming the parent-death signal: {}",
                std::io::Error::last_os_error()
            );
        }
        if nix::unistd::getppid() != parent {
            bail!("the process that started the router is gone");
        }
    }
    Ok(())
}
