//! A private `nemoclaw daemon` for a test: its own socket, pins, state, audit log and
//! sandbox parent cgroup, so tests (and a daemon already running) never share anything.
//! Also a step-driven probe: a sandboxed Python loop that performs one action per `go-N`
//! file and answers in `res-N`, so a test can act between steps (kill the daemon, reload).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use super::{Scratch, nemoclaw};

pub struct TestDaemon {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub pin_dir: PathBuf,
    pub state: PathBuf,
    pub audit: PathBuf,
    pub cgroup_root: String,
    /// More `nemoclaw daemon` flags (e.g. `--router CONFIG`).
    extra_args: Vec<String>,
    /// More environment for it (e.g. `NOTIFY_SOCKET`).
    env: Vec<(String, String)>,
    child: Option<Child>,
}

/// Generous: the VM runs under TCG.
const STARTUP: Duration = Duration::from_mins(2);

impl TestDaemon {
    /// Starts a daemon whose files live in `scratch/daemon-<tag>/`.
    pub fn start(scratch: &Scratch, tag: &str) -> Self {
        Self::start_with(scratch, tag, &[])
    }

    /// [`Self::start`] with more `nemoclaw daemon` flags.
    pub fn start_with(scratch: &Scratch, tag: &str, extra_args: &[&str]) -> Self {
        Self::start_with_env(scratch, tag, extra_args, &[])
    }

    /// [`Self::start_with`] with more environment variables.
    pub fn start_with_env(
        scratch: &Scratch,
        tag: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = scratch.path(&format!("daemon-{tag}"));
        std::fs::create_dir_all(&dir).expect("create daemon dir");
        let id = format!("{tag}-{}", std::process::id());
        let mut d = Self {
            socket: dir.join("run/nemoclaw.sock"),
            state: dir.join("run/state.json"),
            audit: dir.join("log/audit.jsonl"),
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/nemoclaw-test-{id}")),
            cgroup_root: format!("nemoclaw-test-{id}"),
            dir,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join(format!(
            "daemon-{}.log",
            self.child.as_ref().map_or(0, Child::id)
        )))
        .expect("daemon log");
        let child = Command::new(nemoclaw())
            .arg("daemon")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--state")
            .arg(&self.state)
            .arg("--audit-log")
            .arg(&self.audit)
            .args(["--cgroup-root", &self.cgroup_root])
            .args(self.isolation())
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nemoclaw daemon");
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("daemon exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Without a `--config` of the test's own: not the host's configuration file (its
    /// sandboxes), and no HTTP endpoint (parallel daemons would want one port).
    fn isolation(&self) -> &'static [&'static str] {
        if self.extra_args.iter().any(|a| a == "--config") {
            &[]
        } else {
            &["--config", "/dev/null", "--http-listen", "off"]
        }
    }

    /// Everything the daemon printed so far (all its runs).
    pub fn log(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_log = Path::new(&name)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("log"));
            if name.starts_with("daemon-") && is_log {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and waits for it to exit; returns whether it exited with status 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap_or(0)),
            nix::sys::signal::Signal::SIGTERM,
        );
        c.wait().is_ok_and(|s| s.success())
    }

    /// Starts it again on the same files (it must adopt what is pinned).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart after kill9");
        self.spawn();
    }

    /// `nemoclaw ARGS... --socket S`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(nemoclaw())
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .expect("run nemoclaw")
    }

    /// Writes `text` to `file` and applies it to sandbox `name` (`nemoclaw policy apply`),
    /// which must succeed.
    pub fn apply(&self, name: &str, file: &Path, text: &str) {
        std::fs::write(file, text).expect("write policy");
        let out = self.ctl(&["policy", "apply", name, file.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "policy apply: {out:?}");
    }

    /// `nemoclaw run --name NAME --policy P --user U -- ARGV` through this daemon, in the
    /// background; its local audit copy goes to `<dir>/<name>.jsonl`.
    pub fn run_background(&self, name: &str, policy: &Path, user: &str, argv: &[&str]) -> Child {
        Command::new(nemoclaw())
            .arg("run")
            .arg("--socket")
            .arg(&self.socket)
            .args(["--name", name, "--user", user, "--policy"])
            .arg(policy)
            .arg("--audit-log")
            .arg(self.dir.join(format!("{name}.jsonl")))
            .arg("--")
            .args(argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nemoclaw run")
    }

    /// The daemon's audit log (its hash chain must hold).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        read_verified(&self.audit)
    }

    /// The audit copy `nemoclaw run --name NAME` (started by [`Self::run_background`])
    /// wrote; its hash chain must hold.
    pub fn run_log(&self, name: &str) -> Vec<serde_json::Value> {
        read_verified(&self.dir.join(format!("{name}.jsonl")))
    }

    /// Records of one kind (`event` field), e.g. `policy_reload`.
    pub fn records(&self, event: &str) -> Vec<serde_json::Value> {
        self.audit()
            .into_iter()
            .filter(|r| r["event"] == event)
            .collect()
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // SIGTERM: the daemon stops and leaves its pins, which we remove below.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap_or(0)),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        if let Ok(mount) = nemoclaw::sandbox::cgroup::cgroup2_mount() {
            let root = mount.join(&self.cgroup_root);
            for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    let _ = std::fs::write(entry.path().join("cgroup.kill"), "1");
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
            let _ = std::fs::remove_dir(&root);
        }
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

/// A sandboxed probe that acts one step at a time (see the module docs). Actions:
/// `connect PORT` (TCP to 127.0.0.1), `read PATH`, `write PATH`, `dns NAME` (an A query
/// over UDP to 192.0.2.53:53, which the sandbox's DNS gateway answers: `rcode=N`, or
/// `ERR timeout` after 2 s), `flood PORT N` (N UDP sends to 127.0.0.1:PORT, paced at about
/// 5k a second: `sent S refused R`), `exit`. Other answers are `OK` or `ERR <errno name>`.
pub struct StepProbe {
    pub dir: PathBuf,
    step: usize,
    pub child: Child,
}

pub const STEP_PROBE: &str = r#"
import errno, os, socket, struct, sys, time
d = sys.argv[1]
step = 0
def dns(name):
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\x00\x00\x01\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(q, ("192.0.2.53", 53))
    try:
        return "rcode=%d" % (s.recv(512)[3] & 0xf)
    except socket.timeout:
        return "ERR timeout"
def flood(port, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    refused = 0
    for i in range(n):
        try:
            s.sendto(b"x", ("127.0.0.1", port))
        except OSError:
            refused += 1
        if i % 5 == 4:
            time.sleep(0.001)
    return "sent %d refused %d" % (n, refused)
def act(words):
    try:
        if words[0] == "dns":
            return dns(words[1])
        if words[0] == "flood":
            return flood(int(words[1]), int(words[2]))
        if words[0] == "connect":
            s = socket.socket()
            s.settimeout(10)
            s.connect(("127.0.0.1", int(words[1])))
            s.close()
        elif words[0] == "read":
            open(words[1]).read()
        elif words[0] == "write":
            open(words[1], "a").write("x")
        return "OK"
    except OSError as e:
        return "ERR " + errno.errorcode.get(e.errno, str(e.errno))
while True:
    step += 1
    go = "%s/go-%d" % (d, step)
    while not os.path.exists(go):
        time.sleep(0.02)
    words = open(go).read().split()
    if words[0] == "exit":
        break
    res = "%s/res-%d" % (d, step)
    with open(res + ".tmp", "w") as f:
        f.write(act(words))
    os.rename(res + ".tmp", res)
"#;

impl StepProbe {
    /// Starts the probe as `nemoclaw run` through `daemon`, in sandbox `name` under `policy`.
    /// `dir` must be readable and writable under the policy.
    pub fn start(daemon: &TestDaemon, name: &str, policy: &Path, user: &str, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("probe dir");
        let script = dir.join("probe.py");
        std::fs::write(&script, STEP_PROBE).expect("write probe");
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("a+rwX")
            .arg(dir)
            .status();
        let child = daemon.run_background(
            name,
            policy,
            user,
            &[
                super::PYTHON,
                script.to_str().expect("utf-8 path"),
                dir.to_str().expect("utf-8 path"),
            ],
        );
        Self {
            dir: dir.to_owned(),
            step: 0,
            child,
        }
    }

    /// Hands step `self.step` its action: written aside and renamed into place, so the probe
    /// (which polls for the name) never reads a half-written or empty step.
    fn post(&self, action: &str) {
        let go = self.dir.join(format!("go-{}", self.step));
        let tmp = self.dir.join(format!(".go-{}.tmp", self.step));
        std::fs::write(&tmp, action).expect("write step");
        std::fs::rename(&tmp, &go).expect("publish step");
    }

    /// Performs one action inside the sandbox and returns its answer.
    pub fn act(&mut self, action: &str) -> String {
        self.step += 1;
        self.post(action);
        let res = self.dir.join(format!("res-{}", self.step));
        let deadline = Instant::now() + Duration::from_mins(2);
        loop {
            if let Ok(answer) = std::fs::read_to_string(&res) {
                return answer;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let out =
                    std::mem::replace(&mut self.child, Command::new("true").spawn().expect("true"))
                        .wait_with_output()
                        .expect("probe output");
                panic!(
                    "probe exited ({status}) before step {}: {}",
                    self.step,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(Instant::now() < deadline, "probe step {action} timed out");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the probe; returns `nemoclaw run`'s output.
    pub fn finish(mut self) -> Output {
        self.step += 1;
        self.post("exit");
        self.child.wait_with_output().expect("probe output")
    }
}

/// An audit log's records, after `nemoclaw audit verify` has checked its hash chain.
fn read_verified(log: &Path) -> Vec<serde_json::Value> {
    let verify = Command::new(nemoclaw())
        .args(["audit", "verify"])
        .arg(log)
        .output()
        .expect("run audit verify");
    assert!(
        verify.status.success(),
        "audit chain of {} broken: {}",
        log.display(),
        String::from_utf8_lossy(&verify.stdout)
    );
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}
