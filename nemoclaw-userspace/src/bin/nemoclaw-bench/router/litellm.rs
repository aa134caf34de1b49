//! The system the router is compared with: the `LiteLLM` proxy from a venv (`cargo xtask
//! bench` installs it, pinned), configured to route the bench's model name to the same
//! stand-in and to mask with its own in-process content filter (`litellm_content_filter`:
//! regular expressions, masked one way, never restored). Its PII masking through Presidio
//! needs Presidio servers and is not used.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::Helper;
use super::client::Connection;

/// The content filter's prebuilt patterns the bench turns on, each with `MASK`: those of
/// the categories the router's bench policy masks (e-mail, phone, payment card, US SSN,
/// secrets).
const MASKED_PATTERNS: [&str; 9] = [
    "email",
    "us_phone",
    "credit_card",
    "us_ssn",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "slack_token",
    "generic_api_key",
];

/// `LiteLLM`'s liveness probe.
const PROBE: &[u8] = b"GET /health/liveliness HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

/// How long `LiteLLM` may take to answer its liveness probe after the start (it imports
/// for several seconds).
const START_TIMEOUT: Duration = Duration::from_mins(3);

/// A running `LiteLLM` proxy.
pub struct LiteLlm {
    _process: Helper,
    pub addr: SocketAddr,
    /// The installed `litellm` package's version.
    pub version: String,
    /// Its log (stdout and stderr), shown when it fails.
    log: PathBuf,
}

impl LiteLlm {
    /// Starts `venv`'s `LiteLLM` proxy on a free loopback port with `model` routed to the
    /// stand-in at `upstream` as an `OpenAI`-compatible endpoint, `key` as its master key,
    /// no database and no telemetry; returns once it answers.
    pub fn start(
        venv: &Path,
        upstream: SocketAddr,
        model: &str,
        key: &str,
        dir: &Path,
    ) -> anyhow::Result<LiteLlm> {
        let version = installed_version(venv)?;
        let config = dir.join("litellm.yaml");
        std::fs::write(&config, config_yaml(upstream, model, key))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = dir.join("litellm.log");
        let out = std::fs::File::create(&log)?;
        let process = Helper::spawn(
            Command::new(venv.join("bin/litellm"))
                .arg("--config")
                .arg(&config)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                // Connections idle between the bench's phases stay open.
                .args(["--keepalive_timeout", "300"])
                .env("LITELLM_TELEMETRY", "False")
                .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                .env_remove("DATABASE_URL")
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out),
        )?;
        let litellm = LiteLlm {
            _process: process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            version,
            log,
        };
        litellm.wait_ready()?;
        Ok(litellm)
    }

    /// Polls `/health/liveliness` until it answers 200.
    fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if Connection::open(self.addr)
                .and_then(|mut c| c.exchange(PROBE))
                .is_ok_and(|reply| reply.status == 200)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "LiteLLM did not answer within {START_TIMEOUT:?}; its log ends with:\n{}",
            self.log_tail()
        )
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// How it is run, for the report.
    pub fn describe(&self) -> Value {
        json!({
            "version": self.version,
            "server": "litellm --config (uvicorn, 1 worker: its default), no database",
            "masking": format!(
                "litellm_content_filter pre_call, MASK: {} (one way, not restored)",
                MASKED_PATTERNS.join(", ")
            ),
        })
    }
}

/// The proxy configuration: one model, the master key, the masking content filter on for
/// every request.
fn config_yaml(upstream: SocketAddr, model: &str, key: &str) -> String {
    let mut yaml = format!(
        "model_list:\n  - model_name: {model}\n    litellm_params:\n      model: openai/{model}\n      \
         api_base: http://{upstream}/v1\n      api_key: sk-bench-upstream\n\
         general_settings:\n  master_key: {key}\n\
         guardrails:\n  - guardrail_name: bench-mask\n    litellm_params:\n      \
         guardrail: litellm_content_filter\n      mode: pre_call\n      default_on: true\n      patterns:\n"
    );
    for name in MASKED_PATTERNS {
        let _ = writeln!(
            yaml,
            "        - {{pattern_type: prebuilt, pattern_name: {name}, action: MASK}}"
        );
    }
    yaml
}

/// The `litellm` package's version in `venv`.
fn installed_version(venv: &Path) -> anyhow::Result<String> {
    let out = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ])
        .output()
        .with_context(|| format!("running {}/bin/python", venv.display()))?;
    if !out.status.success() {
        bail!(
            "litellm is not installed in {}: {}",
            venv.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Times the content filter's masking of one text (`_filter_single_text`, what the
/// guardrail runs on every message) in-process, one thread, at least 3 runs and a second,
/// on each file given after the comma-separated pattern names: prints
/// `{"bytes", "runs", "seconds", "masked"}` per file.
const DETECTOR_TIMING: &str = r#"
import json, sys, time
from litellm.proxy.guardrails.guardrail_hooks.litellm_content_filter.content_filter import ContentFilterGuardrail
names, paths = sys.argv[1].split(","), sys.argv[2:]
guard = ContentFilterGuardrail(
    guardrail_name="bench",
    patterns=[{"pattern_type": "prebuilt", "pattern_name": n, "action": "MASK"} for n in names],
)
for path in paths:
    text = open(path, encoding="utf-8").read()
    masked = guard._filter_single_text(text)
    runs, started = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - started < 1.0:
        guard._filter_single_text(text)
        runs += 1
    seconds = time.perf_counter() - started
    print(json.dumps({"bytes": len(text.encode()), "runs": runs, "seconds": seconds,
                      "masked": masked.count("_REDACTED]")}))
"#;

/// The content filter's throughput on the text of each of `corpora` (bytes per second)
/// and how many values it masked in it.
pub fn detector_throughput(venv: &Path, corpora: &[PathBuf]) -> anyhow::Result<Vec<(f64, u64)>> {
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", DETECTOR_TIMING, &MASKED_PATTERNS.join(",")])
        .args(corpora)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .output()
        .context("running LiteLLM's content filter")?;
    if !out.status.success() {
        bail!(
            "LiteLLM's content filter: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    if results.len() != corpora.len() {
        bail!("LiteLLM's content filter printed {stdout:?}");
    }
    results
        .into_iter()
        .map(|line| {
            let result: Value =
                serde_json::from_str(line).with_context(|| format!("reading {line:?}"))?;
            let number = |key: &str| result[key].as_f64().context(key.to_owned());
            let rate = number("bytes")? * number("runs")? / number("seconds")?;
            Ok((rate, result["masked"].as_u64().unwrap_or(0)))
        })
        .collect()
}
