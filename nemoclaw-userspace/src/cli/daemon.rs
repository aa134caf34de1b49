//! `nemoclaw daemon`, and the commands that talk to it: `ps`, `policy apply`, `logs`.

use std::{
    io::{BufRead as _, Seek as _},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    config::{AuditSettings, DEFAULT_CONFIG, NemoclawConfig},
    daemon::{
        protocol::{Client, DEFAULT_AUDIT_LOG, DEFAULT_SOCKET, Request, Response},
        server::{self, Config},
    },
};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DaemonArgs {
    #[command(subcommand)]
    pub action: Option<DaemonAction>,
    /// The configuration file (default: /etc/nemoclaw/nemoclaw.yaml if it exists). Flags
    /// given here override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The control socket [default: /run/nemoclaw/nemoclaw.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Where programs, links and maps are pinned (on a bpffs) [default: /sys/fs/bpf/nemoclaw].
    #[arg(long)]
    pub pin_dir: Option<PathBuf>,
    /// The daemon's record of its sandboxes [default: /run/nemoclaw/state.json].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The audit log (JSON lines, hash-chained) [default: /var/log/nemoclaw/audit.jsonl].
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// Nameservers for host-name rules; sandboxes may send DNS to these only
    /// [default: /etc/resolv.conf].
    #[arg(long)]
    pub resolv_conf: Option<PathBuf>,
    /// Seconds an address that DNS stopped returning stays allowed [default: 30].
    #[arg(long)]
    pub dns_grace: Option<u64>,
    /// The parent cgroup of the sandboxes (a name under the cgroup v2 mount, `nemoclaw*`)
    /// [default: nemoclaw].
    #[arg(long, value_parser = crate::config::cgroup_root)]
    pub cgroup_root: Option<String>,
    /// Do not re-apply policies when their files change.
    #[arg(long)]
    pub no_watch: bool,
    /// Serve /healthz and /metrics here (`off`: not at all) [default: 127.0.0.1:9464].
    #[arg(long, value_parser = http_listen)]
    pub http_listen: Option<HttpListen>,
    /// Run the privacy router with this configuration as the daemon's child (restarted when
    /// it exits, stopped with the daemon).
    #[arg(long)]
    pub router: Option<PathBuf>,
    /// The user the router runs as.
    #[arg(long, default_value = "nobody", requires = "router")]
    pub router_user: String,
}

/// What `nemoclaw daemon` does besides running.
#[derive(Debug, clap::Subcommand)]
pub enum DaemonAction {
    /// Ask the running daemon to reload: the configuration's sandboxes, then every policy
    /// file (what SIGHUP and `systemctl reload nemoclaw` do). Exit 1 if any policy failed.
    Reload(SocketArg),
}

/// `--http-listen`: an address, or off.
#[derive(Clone, Copy, Debug)]
pub struct HttpListen(pub Option<std::net::SocketAddr>);

fn http_listen(s: &str) -> Result<HttpListen, String> {
    if s == "off" {
        return Ok(HttpListen(None));
    }
    s.parse()
        .map(|a| HttpListen(Some(a)))
        .map_err(|_| format!("{s:?} is not an address:port or `off`"))
}

/// The daemon's settings: the configuration file's, with the flags given on top.
pub fn daemon_config(args: DaemonArgs) -> anyhow::Result<Config> {
    let DaemonArgs {
        action: _,
        config,
        socket,
        pin_dir,
        state,
        audit_log,
        resolv_conf,
        dns_grace,
        cgroup_root,
        no_watch,
        http_listen,
        router,
        router_user,
    } = args;
    let file = NemoclawConfig::load_or_default(config.as_deref())?;
    let config_file = match config {
        Some(path) => Some(std::path::absolute(&path)?),
        None => Path::new(DEFAULT_CONFIG)
            .exists()
            .then(|| PathBuf::from(DEFAULT_CONFIG)),
    };
    let NemoclawConfig {
        daemon: d,
        audit,
        http,
        router: router_settings,
        sandboxes,
    } = file;
    Ok(Config {
        socket: socket.unwrap_or(d.socket),
        pin_dir: pin_dir.unwrap_or(d.pin_dir),
        state_file: state.unwrap_or(d.state),
        resolv_conf: resolv_conf.unwrap_or(d.resolv_conf),
        dns_grace: Duration::from_secs(dns_grace.unwrap_or(d.dns_grace)),
        cgroup_root: cgroup_root.unwrap_or(d.cgroup_root),
        watch: d.watch_policies && !no_watch,
        router: router.map(|config| crate::daemon::router::RouterSpec {
            config,
            user: router_user,
        }),
        socket_group: d.socket_group,
        http_listen: http_listen.map_or(http.listen, |h| h.0),
        router_listen: router_settings.listen,
        sandboxes,
        config_file,
        audit: AuditSettings {
            log: audit_log.unwrap_or(audit.log),
            ..audit
        },
    })
}

/// The daemon's exit status when starting again cannot help (sysexits' `EX_CONFIG`): an
/// invalid configuration file, or pins of another build to adopt. `nemoclaw.service` names
/// it in `RestartPreventExitStatus=`, so systemd reports the failure instead of looping.
pub const EXIT_NEEDS_OPERATOR: i32 = 78;

pub fn daemon(args: DaemonArgs) -> anyhow::Result<i32> {
    if let Some(DaemonAction::Reload(socket)) = &args.action {
        return reload(&socket.socket);
    }
    let config = match daemon_config(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("nemoclaw: error: {err:#}");
            return Ok(EXIT_NEEDS_OPERATOR);
        }
    };
    match server::run(config) {
        Ok(()) => Ok(0),
        Err(err @ server::DaemonError::Adopt(_)) => {
            eprintln!("nemoclaw: error: {err}");
            Ok(EXIT_NEEDS_OPERATOR)
        }
        Err(err) => Err(err.into()),
    }
}

/// `nemoclaw daemon reload`: exit 0 when every changed policy is enforced, 1 when one was
/// refused (and kept its old policy).
fn reload(socket: &Path) -> anyhow::Result<i32> {
    let mut client = Client::connect(socket)?;
    let Response::Reloaded {
        applied,
        unchanged,
        failed,
    } = client.call(&Request::Reload)?
    else {
        anyhow::bail!("unexpected answer from the daemon");
    };
    println!(
        "applied: {}; unchanged: {}",
        if applied.is_empty() {
            "-".to_owned()
        } else {
            applied.join(", ")
        },
        if unchanged.is_empty() {
            "-".to_owned()
        } else {
            unchanged.join(", ")
        }
    );
    for f in &failed {
        eprintln!("nemoclaw: not reloaded, old policy kept: {f}");
    }
    Ok(i32::from(!failed.is_empty()))
}

/// The control socket, for client commands.
#[derive(Debug, clap::Args)]
pub struct SocketArg {
    /// The daemon's control socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn ps(args: &PsArgs) -> anyhow::Result<i32> {
    let mut client = Client::connect(&args.socket.socket)?;
    let Response::Sandboxes { sandboxes } = client.call(&Request::List)? else {
        anyhow::bail!("unexpected answer from the daemon");
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sandboxes)?);
        return Ok(0);
    }
    println!(
        "{:<20} {:>6} {:>5} {:<10} {:<36} POLICY",
        "NAME", "TASKS", "SLOT", "USER", "ENFORCING"
    );
    for s in sandboxes {
        println!(
            "{:<20} {:>6} {:>5} {:<10} {:<36} {} ({})",
            s.name,
            s.tasks,
            s.slot,
            s.user,
            s.enforcing.join(","),
            s.policy.display(),
            &s.policy_sha256[..12.min(s.policy_sha256.len())]
        );
    }
    Ok(0)
}

/// `nemoclaw policy apply SANDBOX FILE`: exit 0 when the new policy is enforced, 1 when it
/// was refused (and nothing changed).
pub fn apply(socket: &Path, sandbox: &str, file: &Path) -> anyhow::Result<i32> {
    let file = std::path::absolute(file).with_context(|| format!("{}", file.display()))?;
    let mut client = Client::connect(socket)?;
    match client.call(&Request::Apply {
        name: sandbox.to_owned(),
        policy: file.clone(),
    }) {
        Ok(Response::Applied {
            old_sha256,
            new_sha256,
            added,
            removed,
            ..
        }) => {
            println!(
                "{sandbox}: now enforcing {} ({} -> {})",
                file.display(),
                &old_sha256[..12.min(old_sha256.len())],
                &new_sha256[..12.min(new_sha256.len())]
            );
            for a in added {
                println!("  + {a}");
            }
            for r in removed {
                println!("  - {r}");
            }
            Ok(0)
        }
        Ok(other) => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
        Err(crate::daemon::protocol::ClientError::Daemon(message)) => {
            eprintln!("nemoclaw: policy not applied, nothing changed: {message}");
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The audit log.
    #[arg(long, default_value = DEFAULT_AUDIT_LOG)]
    pub file: PathBuf,
    /// Only this sandbox's records.
    #[arg(long)]
    pub sandbox: Option<String>,
    /// Keep printing records as they are appended.
    #[arg(long, short)]
    pub follow: bool,
    /// Print the JSON lines unchanged.
    #[arg(long)]
    pub json: bool,
}

fn text(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// One record, readably: time, sandbox, then what happened.
#[must_use]
pub fn readable(v: &serde_json::Value) -> String {
    let time = text(v, "time");
    let sandbox = text(v, "sandbox");
    let sandbox = if sandbox.is_empty() {
        "-".to_owned()
    } else {
        sandbox
    };
    let what = if text(v, "control") == "inference" {
        readable_inference(v)
    } else if text(v, "decision") == "deny" {
        readable_deny(v)
    } else {
        readable_event(v)
    };
    format!("{time} {sandbox} {what}")
}

/// A privacy router record: served or refused, where to, masking counts, status, latency.
fn readable_inference(v: &serde_json::Value) -> String {
    let routed = if text(v, "backend").is_empty() {
        "not forwarded".to_owned()
    } else {
        format!("to {}/{}", text(v, "backend"), text(v, "model"))
    };
    let count = |key: &str| v.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let injected: u64 = v
        .get("injected")
        .and_then(serde_json::Value::as_object)
        .map_or(0, |m| {
            m.values().filter_map(serde_json::Value::as_u64).sum()
        });
    let routed = if count("masked") + count("restored") + injected > 0 {
        format!(
            "{routed} ({} masked, {} restored, {injected} masked in the reply)",
            count("masked"),
            count("restored")
        )
    } else {
        routed
    };
    format!(
        "INFERENCE {} {} {} {routed} status {} in {:.1} ms ({})",
        if text(v, "decision") == "allowed" {
            "SERVED"
        } else {
            "REFUSED"
        },
        text(v, "method"),
        text(v, "path"),
        text(v, "status"),
        v.get("latency_ms")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
        text(v, "reason"),
    )
}

/// A kernel denial: control and hook, its object, errno, the rule that decided, the task.
fn readable_deny(v: &serde_json::Value) -> String {
    let what = deny_object(&v.get("object").cloned().unwrap_or_default());
    let rule = v.get("rule").cloned().unwrap_or_default();
    let cited = match rule.get("source").and_then(|s| s.as_str()) {
        Some(source) => format!(
            "{} {:?} at {source}",
            text(&rule, "section"),
            text(&rule, "text")
        ),
        None => "default deny".to_owned(),
    };
    let exe = text(v, "exe");
    format!(
        "DENY {}/{} {what} ({}) by {cited}; pid {} {}",
        text(v, "control"),
        text(v, "hook"),
        text(v, "errno"),
        text(v, "pid"),
        if exe.is_empty() { text(v, "comm") } else { exe },
    )
}

/// A denial's object: a path, an address with port and protocol, or an operation and its
/// name.
fn deny_object(object: &serde_json::Value) -> String {
    if let Some(path) = object.get("path") {
        path.as_str().unwrap_or_default().to_owned()
    } else if let Some(address) = object.get("address") {
        format!(
            "{}:{} {}",
            address.as_str().unwrap_or_default(),
            object.get("port").unwrap_or(&serde_json::Value::Null),
            object
                .get("protocol")
                .and_then(|p| p.as_str())
                .unwrap_or_default()
        )
    } else if let Some(op) = object.get("operation") {
        let name = object
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default();
        format!("{} {name}", op.as_str().unwrap_or_default())
    } else {
        object.to_string()
    }
}

/// A lifecycle event and its details (the record's remaining fields for other events).
fn readable_event(v: &serde_json::Value) -> String {
    let event = text(v, "event");
    let detail = match event.as_str() {
        "sandbox_start" => format!(
            "policy {} user {} command {}",
            v.get("policy").map(|p| text(p, "file")).unwrap_or_default(),
            text(v, "user"),
            v.get("command")
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        "sandbox_stop" => format!(
            "exit {} events lost {}",
            text(v, "exit_code"),
            text(v, "events_lost")
        ),
        "policy_reload" => format!(
            "{} by {}: +{} -{}",
            text(v, "file"),
            text(v, "requested_by"),
            v.get("added").map(ToString::to_string).unwrap_or_default(),
            v.get("removed")
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        "policy_rejected" => format!(
            "{} by {}: {}",
            text(v, "file"),
            text(v, "requested_by"),
            text(v, "error")
        ),
        _ => {
            let mut rest = v.clone();
            if let Some(map) = rest.as_object_mut() {
                for k in ["time", "sandbox", "event", "prev"] {
                    map.remove(k);
                }
            }
            rest.to_string()
        }
    };
    format!("{event} {detail}")
}

pub fn logs(args: &LogsArgs) -> anyhow::Result<i32> {
    let mut file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let mut reader = std::io::BufReader::new(file.try_clone()?);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            if !args.follow {
                break;
            }
            // A partial line is read again whole once its writer finishes it.
            let back = i64::try_from(n).unwrap_or(0);
            reader.seek_relative(-back)?;
            std::thread::sleep(Duration::from_millis(200));
            // Truncated or replaced (rotated): start over.
            if file.metadata().map_or(0, |m| m.len()) < reader.stream_position()? {
                file = std::fs::File::open(&args.file)?;
                reader = std::io::BufReader::new(file.try_clone()?);
            }
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim_end()) else {
            println!("(unreadable line) {}", line.trim_end());
            continue;
        };
        if let Some(want) = &args.sandbox
            && v.get("sandbox").and_then(|s| s.as_str()) != Some(want.as_str())
        {
            continue;
        }
        if args.json {
            print!("{line}");
        } else {
            println!("{}", readable(&v));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn daemon_args(args: &[&str]) -> DaemonArgs {
        let cli = crate::cli::Cli::try_parse_from(["nemoclaw", "daemon"].iter().chain(args))
            .unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            crate::cli::Command::Daemon(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_given_override_the_file_and_the_rest_comes_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nemoclaw.yaml");
        std::fs::write(
            &file,
            "daemon:\n  state: /var/lib/nemoclaw/state.json\n  dns_grace: 45\n  \
             socket_group: ops\naudit:\n  log: /srv/audit.jsonl\n  keep: 3\nhttp:\n  listen: \
             127.0.0.1:9999\nrouter:\n  listen: 127.0.0.1:8089\nsandboxes:\n  - {name: agents, \
             policy: /p.yaml}\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = daemon_config(daemon_args(&["--config", path])).unwrap();
        assert_eq!(c.state_file, Path::new("/var/lib/nemoclaw/state.json"));
        assert_eq!(c.dns_grace, Duration::from_secs(45));
        assert_eq!(c.socket_group, "ops");
        assert_eq!(c.audit.log, Path::new("/srv/audit.jsonl"));
        assert_eq!(c.audit.keep, 3);
        assert_eq!(c.http_listen, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(c.router_listen, Some("127.0.0.1:8089".parse().unwrap()));
        assert_eq!(c.sandboxes.len(), 1);
        assert_eq!(c.config_file.as_deref(), Some(file.as_path()));
        assert_eq!(
            c.socket,
            Path::new(DEFAULT_SOCKET),
            "a default where neither says"
        );
        assert!(c.watch);

        let c = daemon_config(daemon_args(&[
            "--config",
            path,
            "--state",
            "/tmp/s.json",
            "--dns-grace",
            "5",
            "--audit-log",
            "/tmp/a.jsonl",
            "--http-listen",
            "off",
            "--no-watch",
            "--cgroup-root",
            "nemoclaw-x",
        ]))
        .unwrap();
        assert_eq!(c.state_file, Path::new("/tmp/s.json"));
        assert_eq!(c.dns_grace, Duration::from_secs(5));
        assert_eq!(c.audit.log, Path::new("/tmp/a.jsonl"));
        assert_eq!(c.http_listen, None);
        assert!(!c.watch);
        assert_eq!(c.cgroup_root, "nemoclaw-x");
        assert_eq!(c.socket_group, "ops", "not overridden: still the file's");

        // An invalid file stops the daemon before it starts, with the place.
        std::fs::write(&file, "http:\n  listen: nowhere\n").unwrap();
        let e = daemon_config(daemon_args(&["--config", path])).unwrap_err();
        assert!(e.to_string().contains(":2:11: http.listen:"), "{e}");
    }

    #[test]
    fn daemon_reload_and_run_sandbox_parse() {
        assert!(matches!(
            daemon_args(&["reload", "--socket", "/s"]).action,
            Some(DaemonAction::Reload(SocketArg { .. }))
        ));
        let parse = |args: &[&str]| crate::cli::Cli::try_parse_from(args).map(|c| c.command);
        assert!(matches!(
            parse(&["nemoclaw", "run", "--sandbox", "agents", "--", "true"]),
            Ok(crate::cli::Command::Run(r)) if r.sandbox.as_deref() == Some("agents") && r.policy.is_none()
        ));
        assert!(
            parse(&["nemoclaw", "run", "--", "true"]).is_err(),
            "a policy or a sandbox"
        );
        assert!(
            parse(&[
                "nemoclaw",
                "run",
                "--policy",
                "p",
                "--sandbox",
                "a",
                "--",
                "true"
            ])
            .is_err()
        );
        assert!(parse(&["nemoclaw", "config", "check", "/f"]).is_ok());
        assert!(parse(&["nemoclaw", "daemon", "--http-listen", "nowhere"]).is_err());
    }

    #[test]
    fn deny_records_read_as_one_line() {
        let v = serde_json::json!({
            "time": "2026-11-25T02:00:00.000Z", "decision": "deny", "control": "filesystem",
            "hook": "file_open", "errno": "EACCES", "pid": 7, "comm": "cat", "exe": "/usr/bin/cat",
            "sandbox": "agent",
            "rule": {"id": 3, "source": "p.yaml:9:7", "section": "filesystem.deny", "text": "**/.git/config"},
            "object": {"path": "/w/.git/config", "dev": 1, "ino": 2},
        });
        assert_eq!(
            readable(&v),
            "2026-11-25T02:00:00.000Z agent DENY filesystem/file_open /w/.git/config (EACCES) by \
             filesystem.deny \"**/.git/config\" at p.yaml:9:7; pid 7 /usr/bin/cat"
        );
        let reload = serde_json::json!({
            "time": "t", "event": "policy_reload", "sandbox": "agent", "file": "/p.yaml",
            "requested_by": "SIGHUP", "added": ["network.allow: 1.2.3.4:443"], "removed": [],
        });
        assert_eq!(
            readable(&reload),
            "t agent policy_reload /p.yaml by SIGHUP: +[\"network.allow: 1.2.3.4:443\"] -[]"
        );
    }
}
