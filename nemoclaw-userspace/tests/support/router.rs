//! The privacy router's test parts: the recording cloud stand-in (`nemoclaw-standin`), a
//! router process started unprivileged, and the official SDKs in a Python environment
//! (`cargo xtask setup` installs it).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Scratch, nemoclaw};

/// The Python with the `openai` and `anthropic` SDKs and llama-cpp-python (`cargo xtask
/// setup` makes it, readable by `nobody`, who runs the sandboxed clients).
pub fn router_python() -> PathBuf {
    PathBuf::from("/var/cache/nemoclaw/router-py/bin/python")
}

/// The SDK client script the sandboxed agent runs.
pub fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/router/client.py")
}

/// A port nothing listens on now (for addresses a policy must name before the listener
/// starts).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Reads `listening on ADDR` from a child's first lines of stdout.
fn wait_listening(child: &mut Child, what: &str) -> SocketAddr {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    // Keep draining stdout so the child never blocks on a full pipe.
                    std::thread::spawn(move || for _ in lines {});
                    return addr.parse().expect("listen address");
                }
            }
            _ => break,
        }
    }
    panic!("{what} did not start listening");
}

/// The recording stand-in for a cloud provider.
pub struct Standin {
    child: Child,
    pub addr: SocketAddr,
    pub record: PathBuf,
}

impl Standin {
    pub fn start(scratch: &Scratch, tag: &str) -> Standin {
        let exe = Path::new(nemoclaw()).with_file_name("nemoclaw-standin");
        assert!(
            exe.exists(),
            "{} is missing: `cargo build -p nemoclaw-standin` (cargo xtask test does)",
            exe.display()
        );
        let record = scratch.path(&format!("standin-{tag}.jsonl"));
        let mut child = Command::new(exe)
            .args(["--listen", "127.0.0.1:0", "--record"])
            .arg(&record)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn nemoclaw-standin");
        let addr = wait_listening(&mut child, "nemoclaw-standin");
        Standin {
            child,
            addr,
            record,
        }
    }

    /// Every request it received, as recorded.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("record line"))
            .collect()
    }

    /// Every byte it received: each request's body and its headers.
    pub fn received(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for r in self.requests() {
            all.extend_from_slice(r["headers"].to_string().as_bytes());
            let body = r["body_b64"].as_str().unwrap_or("");
            all.extend(base64_decode(body));
        }
        all
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (what the stand-in records bodies in).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// A `nemoclaw router` process, run as `nobody` (it refuses root).
pub struct TestRouter {
    child: Child,
    pub addr: SocketAddr,
    pub audit: Option<PathBuf>,
}

impl TestRouter {
    /// Starts a router with `config` (YAML) on `listen`; `args` are extra flags.
    pub fn start(scratch: &Scratch, listen: SocketAddr, config: &str, args: &[&str]) -> TestRouter {
        let file = scratch.path("router.yaml");
        std::fs::write(&file, config).expect("write router.yaml");
        let audit = args
            .iter()
            .position(|a| *a == "--audit-log")
            .map(|i| PathBuf::from(args[i + 1]));
        let mut child = Command::new(nemoclaw())
            .arg("router")
            .arg("--config")
            .arg(&file)
            .args(["--listen", &listen.to_string(), "--user", "nobody"])
            .args(args)
            .env("CLOUD_KEY", "sk-cloud-host-key")
            .env("ANTHROPIC_KEY", "sk-ant-host-key")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn nemoclaw router");
        let addr = wait_listening(&mut child, "nemoclaw router");
        TestRouter { child, addr, audit }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
