//! `nemoclaw-bench reload` (driven by `cargo xtask bench`; root): how long from
//! writing a policy file until the kernel enforces the new rule.
//!
//! Two figures per rewrite: when the daemon switched the sandbox to the new slot (its
//! `policy_reload` record's `enforced_monotonic_ns`), and when a sandboxed task saw it.
//!
//! A private daemon watches the file; a sandboxed Python loop sends UDP to a loopback
//! port over and over and prints the `CLOCK_MONOTONIC` time at which the outcome flips.
//! We rewrite the file (allow, then deny, ...) and take the time just before each write:
//! the difference is the whole path (inotify, parse, compile, slot fill, switch) as a
//! sandboxed task sees it.

use std::{
    io::{BufRead as _, BufReader},
    net::UdpSocket,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};

use nemoclaw::audit::lifecycle::monotonic_ns;

use crate::private_daemon::Daemon;

#[derive(Debug, clap::Args)]
pub struct ReloadBenchArgs {
    /// Policy rewrites to time.
    #[arg(long, default_value_t = 200)]
    pub reloads: usize,
    /// Pause before each rewrite (milliseconds).
    #[arg(long, default_value_t = 20)]
    pub pause_ms: u64,
    /// The `nemoclaw` binary that runs the daemon and the sandbox (default: the one next to
    /// this binary).
    #[arg(long)]
    pub nemoclaw: Option<PathBuf>,
}

/// `--nemoclaw`, or the `nemoclaw` next to this executable (cargo builds both binaries into
/// the same directory).
fn nemoclaw_exe(args: &ReloadBenchArgs) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.nemoclaw {
        return Ok(path.clone());
    }
    let own = std::env::current_exe().context("locating this executable")?;
    let path = own.with_file_name("nemoclaw");
    if !path.is_file() {
        bail!("{} not found: build it or pass --nemoclaw", path.display());
    }
    Ok(path)
}

/// The sandboxed loop: prints `<0|1> <monotonic ns>` whenever sending starts or stops
/// working. UDP: no handshake, so no listener backlog or SYN retry adds to the time.
const FLIP_LOOP: &str = r"
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
state = None
while True:
    try:
        s.sendto(b'x', ('127.0.0.1', port))
        now = 1
    except OSError:
        now = 0
    if now != state:
        state = now
        print(now, time.monotonic_ns(), flush=True)
";

fn policy(port: u16, allow: bool) -> String {
    let other = if allow { port } else { port.wrapping_add(1) };
    format!("network:\n  allow:\n    - \"127.0.0.1:{other}\"\n  deny: \"*\"\n")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let last = sorted.len().saturating_sub(1);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short vector"
    )]
    let i = ((last as f64) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

/// The daemon's own time for each write (from the write to its switch of the sandbox to
/// the new slot), from its `policy_reload` records (one per write, in order), sorted.
fn switch_times(audit: &Path, started: &[u64]) -> anyhow::Result<Vec<u64>> {
    let enforced: Vec<u64> = std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"] == "policy_reload")
        .filter_map(|r| r["enforced_monotonic_ns"].as_u64())
        .collect();
    if enforced.len() != started.len() {
        bail!(
            "{} writes but {} policy_reload records",
            started.len(),
            enforced.len()
        );
    }
    let mut switched: Vec<u64> = enforced
        .iter()
        .zip(started)
        .map(|(e, s)| e.saturating_sub(*s))
        .collect();
    switched.sort_unstable();
    Ok(switched)
}

pub fn run(args: &ReloadBenchArgs) -> anyhow::Result<i32> {
    let exe = nemoclaw_exe(args)?;
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("nemoclaw-bench-reload-{id}"));
    std::fs::create_dir_all(&dir)?;
    let d = dir.as_path();
    let daemon = Daemon::start(&exe, d, "reload")?;
    let socket = daemon.socket.clone();
    let receiver = UdpSocket::bind(("127.0.0.1", 0))?;
    let port = receiver.local_addr()?.port();
    let policy_file = d.join("policy.yaml");
    std::fs::write(&policy_file, policy(port, true))?;
    let script = d.join("flip.py");
    std::fs::write(&script, FLIP_LOOP)?;
    set_world_readable(d)?;
    let mut sandbox = Command::new(&exe)
        .arg("run")
        .arg("--socket")
        .arg(&socket)
        .args(["--name", "reload-bench", "--user", "nobody", "--policy"])
        .arg(&policy_file)
        .args(["--audit-log", "/dev/null", "--", "/usr/bin/python3"])
        .arg(&script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the sandbox")?;
    let mut lines = BufReader::new(sandbox.stdout.take().context("sandbox stdout")?).lines();
    let mut next_flip = |want: &str| -> anyhow::Result<u64> {
        loop {
            let line = lines.next().context("the sandboxed loop ended")??;
            let mut f = line.split_whitespace();
            if f.next() == Some(want) {
                return Ok(f.next().and_then(|t| t.parse().ok()).unwrap_or(0));
            }
        }
    };
    next_flip("1")?;
    let mut observed = Vec::with_capacity(args.reloads);
    let mut started = Vec::with_capacity(args.reloads);
    for i in 0..args.reloads {
        // One edit at a time: the daemon finishes the previous reload (freeing the old slot,
        // the state file, the log) before the next write, as between real edits.
        std::thread::sleep(Duration::from_millis(args.pause_ms));
        let allow = i % 2 == 1;
        let t0 = monotonic_ns();
        std::fs::write(&policy_file, policy(port, allow))?;
        let flipped = next_flip(if allow { "1" } else { "0" })?;
        started.push(t0);
        observed.push(flipped.saturating_sub(t0));
    }
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    let audit = daemon.audit.clone();
    drop(daemon);
    let switched = switch_times(&audit, &started);
    let _ = std::fs::remove_dir_all(&dir);
    let switched = switched?;
    let mut latencies = observed;
    latencies.sort_unstable();
    let result = serde_json::json!({
        "workload": "reload",
        "mode": "real",
        "rules": 1,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "reloads": latencies.len(),
        // Scheduling delays dominate the tail on a busy machine: say how busy it was.
        "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or(""),
        "p50_ns": percentile(&latencies, 0.50),
        "p99_ns": percentile(&latencies, 0.99),
        "max_ns": latencies.last().copied().unwrap_or(0),
        "switch_p50_ns": percentile(&switched, 0.50),
        "switch_p99_ns": percentile(&switched, 0.99),
        "switch_max_ns": switched.last().copied().unwrap_or(0),
    });
    println!("NEMOCLAW_BENCH {result}");
    Ok(0)
}

/// `nobody` runs the loop: it must read the script (and find its directory).
fn set_world_readable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}
