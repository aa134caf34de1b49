//! `nemoclaw daemon`, and the commands that talk to it: `ps`, `policy apply`, `logs`.

use std::{
    io::{BufRead as _, Seek as _},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;

use crate::daemon::{
    protocol::{
        Client, DEFAULT_AUDIT_LOG, DEFAULT_PIN_DIR, DEFAULT_SOCKET, DEFAULT_STATE, Request,
        Response,
    },
    server::{self, Config},
};

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// The control socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Where programs, links and maps are pinned (on a bpffs).
    #[arg(long, default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// The daemon's record of its sandboxes.
    #[arg(long, default_value = DEFAULT_STATE)]
    pub state: PathBuf,
    /// The audit log (JSON lines, hash-chained).
    #[arg(long, default_value = DEFAULT_AUDIT_LOG)]
    pub audit_log: PathBuf,
    /// Nameservers for host-name rules; sandboxes may send DNS to these only.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// Seconds an address that DNS stopped returning stays allowed.
    #[arg(long, default_value_t = 30)]
    pub dns_grace: u64,
    /// The parent cgroup of the sandboxes (a name under the cgroup v2 mount, `nemoclaw*`).
    #[arg(long, default_value = crate::sandbox::cgroup::DAEMON_ROOT, value_parser = cgroup_root)]
    pub cgroup_root: String,
    /// Do not re-apply policies when their files change.
    #[arg(long)]
    pub no_watch: bool,
    /// Run the privacy router with this configuration as the daemon's child (restarted when
    /// it exits, stopped with the daemon).
    #[arg(long)]
    pub router: Option<PathBuf>,
    /// The user the router runs as.
    #[arg(long, default_value = "nobody", requires = "router")]
    pub router_user: String,
}

fn cgroup_root(s: &str) -> Result<String, String> {
    crate::daemon::registry::check_name(s)?;
    if s.starts_with("nemoclaw") {
        Ok(s.to_owned())
    } else {
        Err("the sandbox parent cgroup must be named nemoclaw*".to_owned())
    }
}

pub fn daemon(args: DaemonArgs) -> anyhow::Result<i32> {
    let DaemonArgs {
        socket,
        pin_dir,
        state,
        audit_log,
        resolv_conf,
        dns_grace,
        cgroup_root,
        no_watch,
        router,
        router_user,
    } = args;
    server::run(Config {
        socket,
        pin_dir,
        state_file: state,
        audit_log,
        resolv_conf,
        dns_grace: Duration::from_secs(dns_grace),
        cgroup_root,
        watch: !no_watch,
        router: router.map(|config| crate::daemon::router::RouterSpec {
            config,
            user: router_user,
        }),
    })?;
    Ok(0)
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
