//! Host-name rules against a real DNS server (dnsmasq) on loopback: resolution on the host
//! side, the sandbox's DNS answered through its gateway whatever server it addresses, and
//! a changed answer taking effect mid-run.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{PYTHON, Scratch, nemoclaw, root_or_skip};

/// dnsmasq answers on this loopback address (port 53); nothing else uses it.
const DNS_IP: &str = "127.0.0.153";

struct Dnsmasq {
    child: Child,
}

impl Dnsmasq {
    fn start(scratch: &Scratch, hosts: &str) -> Option<Self> {
        let Ok(path) = which("dnsmasq") else {
            assert!(
                std::env::var_os("CI").is_none()
                    && std::env::var_os("NEMOCLAW_REQUIRE_LSM").is_none(),
                "dnsmasq is missing: `cargo xtask setup` installs dnsmasq-base"
            );
            println!("SKIPPED dns tests: dnsmasq not installed (cargo xtask setup installs it)");
            return None;
        };
        std::fs::write(scratch.path("hosts"), hosts).expect("write hosts");
        let child = Command::new(path)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--user=root",
            ])
            .arg(format!("--listen-address={DNS_IP}"))
            .arg(format!("--addn-hosts={}", scratch.path("hosts").display()))
            .args(["--local-ttl=1", "--port=53", "--log-facility=-"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let server = Self { child };
        // Ready when it answers a TCP connect on port 53.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((DNS_IP, 53)).is_err() {
            assert!(Instant::now() < deadline, "dnsmasq did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// Re-reads the hosts file (dnsmasq reloads `--addn-hosts` on SIGHUP).
    fn change(&self, scratch: &Scratch, hosts: &str) {
        std::fs::write(scratch.path("hosts"), hosts).expect("write hosts");
        let pid = i32::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(pid, libc::SIGHUP) };
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .ok_or(())
}

fn listen(ip: &str, port: u16) -> (TcpListener, u16) {
    let l = TcpListener::bind((ip, port)).expect("bind listener");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

/// Starts `nemoclaw run` on a probe and returns the child with piped stdout and stderr.
fn start_run(scratch: &Scratch, policy: &str, script: &str) -> Child {
    std::fs::write(scratch.path("policy.yaml"), policy).expect("write policy");
    std::fs::write(
        scratch.path("resolv.conf"),
        format!("nameserver {DNS_IP}\n"),
    )
    .expect("write resolv.conf");
    Command::new(nemoclaw())
        .arg("run")
        .arg("--policy")
        .arg(scratch.path("policy.yaml"))
        .arg("--resolv-conf")
        .arg(scratch.path("resolv.conf"))
        .args(["--dns-grace", "2", "--user", "nobody", "--audit-log"])
        .arg(scratch.path("audit.jsonl"))
        .args(["--", PYTHON, "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nemoclaw run")
}

const PROBE_LIB: &str = r"
import socket, errno, sys, time, os, struct
def connect(h, p):
    s = socket.socket(); s.settimeout(5)
    try:
        s.connect((h, p)); return 'OK'
    except OSError as e:
        return 'ERR ' + errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
def dns(server):
    q = struct.pack('>HHHHHH', 0x4242, 0x0100, 1, 0, 0, 0) + b'\x03api\x08nemoclaw\x04test\x00' + struct.pack('>HH', 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
    try:
        s.sendto(q, (server, 53)); r = s.recv(512)
        return 'OK' if r[:2] == b'\x42\x42' else 'BAD'
    except OSError as e:
        return 'ERR ' + errno.errorcode.get(e.errno, str(e.errno))
def until(f, want, limit=20):
    t0 = time.time()
    while time.time() - t0 < limit:
        if f() == want: return True
        time.sleep(0.2)
    return False
";

/// The answer changes from 127.0.0.2 to 127.0.0.3 while the sandbox runs: the new address
/// becomes allowed, the old one stays allowed for the grace period, then is denied.
#[test]
fn host_rule_follows_a_changed_dns_answer() {
    if !root_or_skip("dns_changed_answer") {
        return;
    }
    let scratch = Scratch::new("dns-change");
    let Some(dns) = Dnsmasq::start(&scratch, "127.0.0.2 api.nemoclaw.test\n") else {
        return;
    };
    let (_old, port) = listen("127.0.0.2", 0);
    let (_new, _) = listen("127.0.0.3", port);
    let flag = scratch.path("changed");
    let script = format!(
        "{PROBE_LIB}\n\
         print('old', connect('127.0.0.2', {port}), flush=True)\n\
         print('new-before', connect('127.0.0.3', {port}), flush=True)\n\
         print('dns-allowed', dns({DNS_IP:?}), flush=True)\n\
         print('dns-other', dns('127.0.0.154'), flush=True)\n\
         until(lambda: os.path.exists({flag:?}), True, 30)\n\
         print('new-after', until(lambda: connect('127.0.0.3', {port}), 'OK'), flush=True)\n\
         print('old-after-grace', until(lambda: connect('127.0.0.2', {port}), 'ERR EPERM'), flush=True)\n",
        flag = flag.display().to_string()
    );
    let policy = format!("network:\n  allow:\n    - \"api.nemoclaw.test:{port}\"\n  deny: \"*\"\n");
    let mut run = start_run(&scratch, &policy, &script);
    let stdout = run.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut got = Vec::new();
    for line in lines.by_ref() {
        let done = line.starts_with("dns-other");
        got.push(line);
        if done {
            break;
        }
    }
    dns.change(&scratch, "127.0.0.3 api.nemoclaw.test\n");
    std::fs::write(&flag, "x").expect("write flag");
    got.extend(lines);
    let out = run.wait_with_output().expect("wait for run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        got,
        [
            "old OK",
            "new-before ERR EPERM",
            "dns-allowed OK",
            "dns-other OK",
            "new-after True",
            "old-after-grace True"
        ],
        "{stderr}"
    );
    assert!(
        stderr.contains("dns: api.nemoclaw.test: now [127.0.0.3], was [127.0.0.2]"),
        "{stderr}"
    );
    let audit = std::fs::read_to_string(scratch.path("audit.jsonl")).expect("audit log");
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let denied = |addr: &str, port: u16| {
        records.iter().any(|r| {
            r["object"]["address"] == addr
                && r["object"]["port"] == u64::from(port)
                && r["errno"] == "EPERM"
        })
    };
    assert!(denied("127.0.0.3", port), "before the change: {audit}");
    assert!(
        !records.iter().any(|r| r["object"]["port"] == 53),
        "DNS to any server goes to the gateway, never refused in the kernel: {audit}"
    );
    assert!(denied("127.0.0.2", port), "after the grace period: {audit}");
}

/// The seed's three `host:443` entries, answered by the local DNS server.
#[test]
fn seed_host_entries_resolve_through_local_dns() {
    if !root_or_skip("dns_seed_hosts") {
        return;
    }
    let scratch = Scratch::new("dns-seed");
    let hosts =
        "127.0.0.11 api.openai.com\n127.0.0.12 api.anthropic.com\n127.0.0.13 build.nvidia.com\n";
    let Some(_dns) = Dnsmasq::start(&scratch, hosts) else {
        return;
    };
    let listeners: Vec<_> = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"]
        .iter()
        .map(|ip| listen(ip, 443))
        .collect();
    let script = format!(
        "{PROBE_LIB}\nprint(' '.join(connect(ip, 443).replace(' ', '-') for ip in ['127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.14']))\n"
    );
    let seed = "network:\n  allow:\n  - \"api.openai.com:443\"\n  - \"api.anthropic.com:443\"\n  - \"build.nvidia.com:443\"\n  deny: \"*\" # Everything else blocked\n";
    let out = start_run(&scratch, seed, &script)
        .wait_with_output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "OK OK OK ERR-EPERM",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(listeners);
}
