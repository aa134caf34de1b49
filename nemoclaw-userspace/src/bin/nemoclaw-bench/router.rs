//! `nemoclaw-bench router`: what the privacy router adds to a model call. Starts the cloud
//! stand-in and a `nemoclaw router` (as `nobody`, `--default-policy`, own audit log) next to
//! this binary, then sends the same chat completion with a prompt of `--prompt-bytes`
//! straight to the stand-in and through the router, interleaved one for one on two
//! keep-alive connections, and prints the medians and the difference: the router's added
//! latency (identify, rules, read, scan of every byte, decide, forward, stream back, audit).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;

#[derive(Debug, Args)]
pub struct RouterBenchArgs {
    /// Requests per path (direct and through the router).
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Size of the prompt text.
    #[arg(long, default_value_t = 32 << 10)]
    prompt_bytes: usize,
}

/// A private directory for the run's files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir =
            std::env::temp_dir().join(format!("nemoclaw-bench-router-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills a helper process on drop.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `exe args`, returns it with the address from its `listening on ADDR` line.
fn start(exe: &Path, args: &[&str]) -> anyhow::Result<(Helper, SocketAddr)> {
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let helper = Helper(child);
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or("").parse()?;
            std::thread::spawn(move || for _ in lines {});
            return Ok((helper, addr));
        }
    }
    bail!("{} did not start", exe.display())
}

/// A keep-alive HTTP/1.1 connection that sends one request and reads one
/// `Content-Length` reply at a time.
struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Connection {
            stream: BufReader::new(stream),
        })
    }

    /// Sends `request`, returns the time to the whole reply.
    fn round_trip(&mut self, request: &[u8]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.stream.get_mut().write_all(request)?;
        let mut status = String::new();
        self.stream.read_line(&mut status)?;
        if !status.contains(" 200 ") {
            bail!("answer: {}", status.trim());
        }
        let (mut length, mut chunked) = (0, false);
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        if chunked {
            loop {
                let mut size = String::new();
                self.stream.read_line(&mut size)?;
                let size = usize::from_str_radix(size.trim(), 16)?;
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0; length];
            self.stream.read_exact(&mut body)?;
        }
        Ok(started.elapsed())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The value at `percent` (0-100) of the sorted samples (nearest rank).
fn percentile(mut v: Vec<f64>, percent: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) * percent / 100]
}

pub fn run(args: &RouterBenchArgs) -> anyhow::Result<i32> {
    let here: PathBuf = std::env::current_exe()?;
    let dir = Scratch::new()?;
    let record = dir.path().join("cloud.jsonl");
    let (_cloud, cloud) = start(
        &here.with_file_name("nemoclaw-standin"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--record",
            record.to_str().context("path")?,
        ],
    )?;
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };
    let policy = dir.path().join("host.yaml");
    std::fs::write(
        &policy,
        format!(
            "network:\n  allow: [\"127.0.0.1:9\"]\ninference:\n  router: {listen}\n  cloud: {{backend: cloud}}\n  \
             default: block\n  categories: {{ip_address: allow, phone: allow, date_of_birth: allow}}\n"
        ),
    )?;
    let config = dir.path().join("router.yaml");
    std::fs::write(
        &config,
        format!(
            "backends:\n  cloud: {{api: openai, url: 'http://{cloud}/v1', key_env: BENCH_KEY}}\n"
        ),
    )?;
    let audit = dir.path().join("audit.jsonl");
    let nemoclaw = here.with_file_name("nemoclaw");
    // SAFETY: setting a variable before any thread reads the environment.
    unsafe { std::env::set_var("BENCH_KEY", "sk-bench") };
    let (_router, router) = start(
        &nemoclaw,
        &[
            "router",
            "--config",
            config.to_str().context("path")?,
            "--listen",
            &listen.to_string(),
            "--no-daemon",
            "--default-policy",
            policy.to_str().context("path")?,
            "--audit-log",
            audit.to_str().context("path")?,
            "--user",
            "nobody",
        ],
    )?;
    // Ordinary prose: nothing the detectors flag, so every byte is scanned and forwarded.
    let sentence = "The build failed because the linker could not find the symbol; rerun it with verbose output and compare the search paths. ";
    let prompt: String = sentence.chars().cycle().take(args.prompt_bytes).collect();
    let body =
        json!({"model": "bench", "messages": [{"role": "user", "content": prompt}]}).to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nAuthorization: Bearer sk-bench\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    let mut direct = Connection::open(cloud)?;
    let mut routed = Connection::open(router)?;
    for _ in 0..20 {
        direct.round_trip(&request)?;
        routed.round_trip(&request)?;
    }
    let (mut straight, mut through) = (Vec::new(), Vec::new());
    for _ in 0..args.requests {
        straight.push(direct.round_trip(&request)?.as_secs_f64() * 1e6);
        through.push(routed.round_trip(&request)?.as_secs_f64() * 1e6);
    }
    let result = json!({
        "workload": "router",
        "mode": "real",
        "prompt_bytes": args.prompt_bytes,
        "requests": args.requests,
        "direct_us": {"median": median(straight.clone()), "p90": percentile(straight.clone(), 90)},
        "router_us": {"median": median(through.clone()), "p90": percentile(through.clone(), 90)},
        "added_us": median(through) - median(straight),
    });
    println!("NEMOCLAW_BENCH {result}");
    Ok(0)
}
