//! `nemoclaw-bench router`: what the privacy router adds to a model call, side by side with
//! the `LiteLLM` proxy. Starts the recording cloud stand-in, a `nemoclaw router` (as `nobody`,
//! `--default-policy` that masks e-mail, phone, payment card, US SSN and secrets, own audit
//! log) and, given its venv, a `LiteLLM` proxy on the same stand-in (masking with its content
//! filter, see [`litellm`]), all next to this binary. Then, with prompts that carry an
//! e-mail address and a card number (checked once not to reach the stand-in through either
//! proxy):
//!
//! - latency, non-streamed, 1 KiB, 32 KiB and 256 KiB prompts: the same request to the
//!   stand-in directly, through the router and through `LiteLLM`, round-robin per round on
//!   one keep-alive connection each; p50 and p99 per system;
//! - time to first token, streamed, 32 KiB prompt: until the first event with text;
//! - throughput: 64 clients, each on its own keep-alive connection, for a fixed time per
//!   system, 1 KiB prompts;
//! - the detectors' throughput on one thread over 1 MiB of mixed text, and of text with
//!   nothing but values: `nemoclaw-detect` with every built-in detector, and `LiteLLM`'s
//!   content filter with its patterns (in its venv).
//!
//! Prints one `NEMOCLAW_BENCH` line; `cargo xtask bench` computes the added figures and
//! the ratios.

mod client;
mod litellm;
mod text;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use nemoclaw_detect::{Detector, DetectorConfig};
use serde_json::{Map, Value, json};

use client::{Connection, Reply, chat_request};
use litellm::LiteLlm;

#[derive(Debug, Args)]
pub struct RouterBenchArgs {
    /// Requests per system for the 1 KiB and 32 KiB prompts and the streamed ones.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Requests per system for the 256 KiB prompt.
    #[arg(long, default_value_t = 100)]
    large_requests: usize,
    /// Concurrent clients of the throughput run.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of the throughput run, per system.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// The venv of the `LiteLLM` proxy (`bin/litellm`); without it only the stand-in and the
    /// router are measured.
    #[arg(long)]
    litellm: Option<PathBuf>,
}

/// The model name every request asks for: the stand-in answers it with its fixed text.
const MODEL: &str = "bench";
/// The prompt size of the streamed requests.
const STREAMED_BYTES: usize = 32 << 10;
/// The prompt size of the throughput run.
const THROUGHPUT_BYTES: usize = 1 << 10;
/// The size of the detectors' texts.
const CORPUS_BYTES: usize = 1 << 20;
/// Untimed rounds before each timed phase (`LiteLLM`'s first requests are slow).
const WARMUP_ROUNDS: usize = 10;

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

/// A helper process in a process group of its own (`LiteLLM`'s server may start workers);
/// the group is killed on drop.
struct Helper(Child);

impl Helper {
    fn spawn(command: &mut Command) -> anyhow::Result<Helper> {
        use std::os::unix::process::CommandExt as _;
        let child = command
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", command.get_program().to_string_lossy()))?;
        Ok(Helper(child))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// Starts `exe args`, returns it with the address from its `listening on ADDR` line.
fn start(exe: &Path, args: &[&str]) -> anyhow::Result<(Helper, SocketAddr)> {
    let mut helper = Helper::spawn(Command::new(exe).args(args).stdout(Stdio::piped()))?;
    let stdout = helper.0.stdout.take().context("stdout")?;
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

/// A free loopback address (bound, then released for the router to take).
fn free_address() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// One endpoint the same requests go to.
struct System {
    /// `direct`, `nemoclaw` or `litellm`: the key of its figures in the result.
    name: &'static str,
    addr: SocketAddr,
}

/// A random bearer token for every request: `LiteLLM`'s master key (it refuses to start
/// without a strong one); the stand-in takes any, the router forwards its own.
fn random_key() -> anyhow::Result<String> {
    let mut bytes = [0_u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let mut key = String::from("sk-");
    for byte in bytes {
        let _ = write!(key, "{byte:02x}");
    }
    Ok(key)
}

/// The router's host policy: every built-in detector runs on every request (`default:
/// allow` for the categories not listed), and these are masked, restored in the reply.
fn router_policy(listen: SocketAddr) -> String {
    format!(
        "network:\n  allow: [\"127.0.0.1:9\"]\ninference:\n  router: {listen}\n  cloud: {{backend: cloud}}\n  \
         default: allow\n  categories: {{email: mask, phone: mask, payment_card: mask, us_ssn: mask, secret: mask}}\n"
    )
}

/// Starts the router as `nobody` with [`router_policy`] and the stand-in at `cloud` as its
/// cloud backend.
fn start_router(
    nemoclaw: &Path,
    cloud: SocketAddr,
    dir: &Path,
) -> anyhow::Result<(Helper, SocketAddr)> {
    let listen = free_address()?;
    let policy = dir.join("host.yaml");
    std::fs::write(&policy, router_policy(listen))?;
    let config = dir.join("router.yaml");
    std::fs::write(
        &config,
        format!(
            "backends:\n  cloud: {{api: openai, url: 'http://{cloud}/v1', key_env: BENCH_KEY}}\n"
        ),
    )?;
    let audit = dir.join("audit.jsonl");
    // SAFETY: setting a variable before any thread reads the environment.
    unsafe { std::env::set_var("BENCH_KEY", "sk-bench-upstream") };
    let path = |p: &Path| p.to_str().map(str::to_owned).context("path");
    start(
        nemoclaw,
        &[
            "router",
            "--config",
            &path(&config)?,
            "--listen",
            &listen.to_string(),
            "--no-daemon",
            "--default-policy",
            &path(&policy)?,
            "--audit-log",
            &path(&audit)?,
            "--user",
            "nobody",
        ],
    )
}

/// The standard base64 text `text` decoded (padding and unknown characters skipped).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut out, mut bits, mut count) = (Vec::new(), 0_u32, 0);
    for sextet in text.bytes().filter_map(value) {
        bits = (bits << 6) | u32::from(sextet);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// Sends `request` through `system` once (a 200 required) and returns whether every body the
/// stand-in recorded for it is free of the prompt's values.
fn forwards_masked(system: &System, request: &[u8], record: &Path) -> anyhow::Result<bool> {
    let before = std::fs::metadata(record)?.len();
    Connection::open(system.addr)?
        .ok(request)
        .with_context(|| format!("the check request through {}", system.name))?;
    let mut file = std::fs::File::open(record)?;
    file.seek(SeekFrom::Start(before))?;
    let mut appended = String::new();
    file.read_to_string(&mut appended)?;
    let bodies: Vec<String> = appended
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|entry| entry["body_b64"].as_str().map(base64_decode))
        .map(|body| String::from_utf8_lossy(&body).into_owned())
        .collect();
    if bodies.is_empty() {
        bail!("{} forwarded nothing to the stand-in", system.name);
    }
    Ok(bodies.iter().all(|body| !text::carries_a_value(body)))
}

/// Microsecond samples of one system in one phase.
struct Samples(Vec<f64>);

impl Samples {
    /// The value at `percent` (0-100) of the samples (nearest rank).
    fn percentile(&self, percent: usize) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = (percent * sorted.len()).div_ceil(100);
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    fn summary(&self) -> Value {
        json!({
            "p50_us": self.percentile(50),
            "p99_us": self.percentile(99),
            "n": self.0.len(),
        })
    }
}

/// Sends `request` `rounds` times to every system, round-robin (each round starting one
/// system further), back to back, after [`WARMUP_ROUNDS`] untimed rounds, one fresh
/// keep-alive connection per system; returns each system's samples of `timing` (in
/// `systems`' order).
fn interleaved(
    systems: &[System],
    request: &[u8],
    rounds: usize,
    timing: fn(&Reply) -> Option<Duration>,
) -> anyhow::Result<Vec<Samples>> {
    let mut connections = systems
        .iter()
        .map(|s| Connection::open(s.addr))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut samples: Vec<Samples> = systems.iter().map(|_| Samples(Vec::new())).collect();
    for round in 0..WARMUP_ROUNDS + rounds {
        for turn in 0..systems.len() {
            let i = (round + turn) % systems.len();
            let reply = connections[i]
                .ok(request)
                .with_context(|| format!("a request through {}", systems[i].name))?;
            let time = timing(&reply)
                .with_context(|| format!("{}: a stream without text", systems[i].name))?;
            if round >= WARMUP_ROUNDS {
                samples[i].0.push(time.as_secs_f64() * 1e6);
            }
        }
    }
    Ok(samples)
}

/// `{system name: summary}` of one phase.
fn by_system(systems: &[System], samples: &[Samples]) -> Map<String, Value> {
    systems
        .iter()
        .zip(samples)
        .map(|(s, samples)| (s.name.to_owned(), samples.summary()))
        .collect()
}

/// Requests per second that `clients` concurrent keep-alive clients get from `addr` for
/// `duration` (requests still answering at the end count, over the time until the last
/// answers); non-200 answers and broken connections count as errors (the connection is
/// opened again).
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn throughput(addr: SocketAddr, request: &[u8], clients: usize, duration: Duration) -> Value {
    let request: Arc<[u8]> = request.into();
    let start = Arc::new(Barrier::new(clients + 1));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (request, start) = (Arc::clone(&request), Arc::clone(&start));
            std::thread::spawn(move || {
                let mut connection = Connection::open(addr);
                start.wait();
                let deadline = Instant::now() + duration;
                let (mut done, mut errors) = (0_u64, 0_u64);
                while Instant::now() < deadline {
                    match connection.as_mut().map(|c| c.exchange(&request)) {
                        Ok(Ok(reply)) if reply.status == 200 => done += 1,
                        Ok(Ok(_)) => errors += 1,
                        Ok(Err(_)) | Err(_) => {
                            errors += 1;
                            connection = Connection::open(addr);
                        }
                    }
                }
                (done, errors)
            })
        })
        .collect();
    start.wait();
    let started = Instant::now();
    let (mut done, mut errors) = (0, 0);
    for worker in workers {
        let (d, e) = worker.join().unwrap_or((0, 1));
        done += d;
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({
        "requests_per_s": done as f64 / seconds,
        "requests": done,
        "errors": errors,
        "seconds": seconds,
    })
}

/// `nemoclaw-detect`'s throughput, one thread, every built-in detector: bytes per second
/// over `corpus` (at least 3 scans and a second), and the findings in it.
#[allow(clippy::cast_precision_loss)] // a length far below 2^52
fn detector_throughput(corpus: &str) -> anyhow::Result<(f64, usize)> {
    let detector = Detector::new(&DetectorConfig::default()).map_err(|e| anyhow!("{e}"))?;
    let findings = detector.scan(corpus).len();
    let (mut runs, started) = (0_u32, Instant::now());
    while runs < 3 || started.elapsed() < Duration::from_secs(1) {
        std::hint::black_box(detector.scan(std::hint::black_box(corpus)));
        runs += 1;
    }
    let bytes = corpus.len() as f64 * f64::from(runs);
    Ok((bytes / started.elapsed().as_secs_f64(), findings))
}

/// The systems measured, running: the stand-in (direct), the router and, when its venv is
/// given and it starts, `LiteLLM`.
struct Bench {
    /// The bearer token of every request.
    key: String,
    /// The stand-in's record of what reached it.
    record: PathBuf,
    systems: Vec<System>,
    /// Kept running until the end.
    _helpers: Vec<Helper>,
    litellm: anyhow::Result<LiteLlm>,
    /// Removed last, after the processes that write into it.
    dir: Scratch,
}

impl Bench {
    fn start(litellm_venv: Option<&Path>) -> anyhow::Result<Bench> {
        let here: PathBuf = std::env::current_exe()?;
        let dir = Scratch::new()?;
        let key = random_key()?;
        let record = dir.path().join("cloud.jsonl");
        let (cloud_process, cloud) = start(
            &here.with_file_name("nemoclaw-standin"),
            &[
                "--listen",
                "127.0.0.1:0",
                "--record",
                record.to_str().context("path")?,
            ],
        )?;
        let (router_process, router) =
            start_router(&here.with_file_name("nemoclaw"), cloud, dir.path())?;
        let mut systems = vec![
            System {
                name: "direct",
                addr: cloud,
            },
            System {
                name: "nemoclaw",
                addr: router,
            },
        ];
        let litellm = match litellm_venv {
            None => Err(anyhow!("no LiteLLM venv given (--litellm)")),
            Some(venv) => LiteLlm::start(venv, cloud, MODEL, &key, dir.path()),
        };
        match &litellm {
            Ok(proxy) => {
                systems.push(System {
                    name: "litellm",
                    addr: proxy.addr,
                });
            }
            Err(err) => eprintln!("nemoclaw-bench router: LiteLLM not measured: {err:#}"),
        }
        Ok(Bench {
            key,
            record,
            systems,
            _helpers: vec![cloud_process, router_process],
            litellm,
            dir,
        })
    }

    /// How `LiteLLM` runs, and whether the prompt's values reached the stand-in through it
    /// (checked with `check`); or why it was not measured.
    fn litellm_info(&self, check: &[u8]) -> anyhow::Result<Value> {
        let proxy = match &self.litellm {
            Ok(proxy) => proxy,
            Err(err) => return Ok(json!({"error": format!("{err:#}")})),
        };
        let mut info = proxy.describe();
        let system = self
            .system("litellm")
            .context("LiteLLM started but not listed")?;
        info["masks_values"] = forwards_masked(system, check, &self.record)?.into();
        Ok(info)
    }

    fn system(&self, name: &str) -> Option<&System> {
        self.systems.iter().find(|s| s.name == name)
    }

    /// Each phase's p50 and p99 per system, non-streamed: `(prompt bytes, rounds)` each.
    fn latency(&self, phases: &[(usize, usize)]) -> anyhow::Result<Vec<Value>> {
        let mut rows = Vec::new();
        for &(bytes, rounds) in phases {
            eprintln!(
                "nemoclaw-bench router: {rounds} rounds, {} KiB prompt",
                bytes >> 10
            );
            let request = chat_request(MODEL, &text::prompt(bytes), false, &self.key);
            let samples = interleaved(&self.systems, &request, rounds, |r| Some(r.elapsed))?;
            let mut row = by_system(&self.systems, &samples);
            row.insert("prompt_bytes".into(), bytes.into());
            row.insert("requests".into(), rounds.into());
            rows.push(Value::Object(row));
        }
        Ok(rows)
    }

    /// Time to the first event with text, streamed, p50 and p99 per system.
    fn first_token(&self, rounds: usize) -> anyhow::Result<Value> {
        eprintln!("nemoclaw-bench router: {rounds} rounds streamed");
        let request = chat_request(MODEL, &text::prompt(STREAMED_BYTES), true, &self.key);
        let samples = interleaved(&self.systems, &request, rounds, |r| r.first_content)?;
        let mut row = by_system(&self.systems, &samples);
        row.insert("prompt_bytes".into(), STREAMED_BYTES.into());
        row.insert("requests".into(), rounds.into());
        Ok(Value::Object(row))
    }

    /// Requests per second per system under `clients` concurrent clients, one system after
    /// the other for `seconds` each.
    fn throughput(&self, request: &[u8], clients: usize, seconds: u64) -> Value {
        let mut rates = Map::new();
        for system in &self.systems {
            eprintln!(
                "nemoclaw-bench router: {clients} clients for {seconds} s through {}",
                system.name
            );
            let rate = throughput(system.addr, request, clients, Duration::from_secs(seconds));
            rates.insert(system.name.into(), rate);
        }
        rates.insert("clients".into(), clients.into());
        rates.insert("prompt_bytes".into(), THROUGHPUT_BYTES.into());
        Value::Object(rates)
    }

    /// Both detectors' throughput on the same texts: [`text::MIXED`] and
    /// [`text::VALUES_ONLY`].
    fn detectors(&self, litellm_venv: Option<&Path>) -> anyhow::Result<Value> {
        eprintln!("nemoclaw-bench router: detector throughput");
        let texts = [("mixed", text::MIXED), ("values only", text::VALUES_ONLY)];
        let mut rows = Vec::new();
        let mut paths = Vec::new();
        for (name, parts) in texts {
            let corpus = text::corpus(parts, CORPUS_BYTES);
            let (rate, findings) = detector_throughput(&corpus)?;
            rows.push(json!({
                "text": name,
                "text_bytes": corpus.len(),
                "nemoclaw": {"bytes_per_s": rate, "findings": findings},
            }));
            let path = self.dir.path().join(format!("corpus-{}.txt", paths.len()));
            std::fs::write(&path, &corpus)?;
            paths.push(path);
        }
        if let (Some(venv), Ok(_)) = (litellm_venv, &self.litellm) {
            match litellm::detector_throughput(venv, &paths) {
                Ok(rates) => {
                    for (row, (rate, masked)) in rows.iter_mut().zip(rates) {
                        row["litellm"] = json!({"bytes_per_s": rate, "masked": masked});
                    }
                }
                Err(err) => {
                    for row in &mut rows {
                        row["litellm"] = json!({"error": format!("{err:#}")});
                    }
                }
            }
        }
        Ok(Value::Array(rows))
    }
}

pub fn run(args: &RouterBenchArgs) -> anyhow::Result<i32> {
    let venv = args.litellm.as_deref();
    let bench = Bench::start(venv)?;
    let small = chat_request(MODEL, &text::prompt(THROUGHPUT_BYTES), false, &bench.key);
    let router = bench.system("nemoclaw").context("the router")?;
    if !forwards_masked(router, &small, &bench.record)? {
        bail!("the router forwarded a value its policy masks");
    }
    let litellm = bench.litellm_info(&small)?;
    let latency = bench.latency(&[
        (1 << 10, args.requests),
        (32 << 10, args.requests),
        (256 << 10, args.large_requests),
    ])?;
    let ttft = bench.first_token(args.requests)?;
    let throughput = bench.throughput(&small, args.clients, args.seconds);
    let detector = bench.detectors(venv)?;
    let result = json!({
        "workload": "router",
        "mode": "real",
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "systems": bench.systems.iter().map(|s| s.name).collect::<Vec<_>>(),
        "litellm": litellm,
        "latency": latency,
        "ttft": ttft,
        "throughput": throughput,
        "detector": detector,
    });
    println!("NEMOCLAW_BENCH {result}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_the_record_format() {
        assert_eq!(base64_decode("aGk="), b"hi");
        assert_eq!(base64_decode("eyJhIjoxfQ=="), br#"{"a":1}"#);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples = Samples((1..=300).map(f64::from).collect());
        assert!((samples.percentile(50) - 150.0).abs() < f64::EPSILON);
        assert!((samples.percentile(99) - 297.0).abs() < f64::EPSILON);
    }
}
