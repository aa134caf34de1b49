//! `cargo xtask test`: runs the test layers (unit, host, vm on each kernel) and summarises.
//!
//! cargo's and libtest's own output goes through; we count libtest's `test result:` lines.
//! A layer fails if its command fails, a test fails, or it ran no test at all.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};

use crate::escapes;
use crate::fleet;
use crate::package;
use crate::setup::{self, KernelVersion};
use crate::util;
use crate::vm;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Layer {
    /// `cargo test --lib --bins` over the workspace (no root).
    Unit,
    /// The Debian package (`cargo xtask package`) and its units (no root, no systemd).
    Package,
    /// Integration tests that run natively on this host (root).
    Host,
    /// Integration tests that need BPF LSM, run as root in the VM on each kernel.
    Vm,
    /// The Ansible rollout to Debian VMs with systemd (`cargo xtask fleet`; root).
    Fleet,
}

#[derive(Args)]
pub struct TestArgs {
    /// Layers to run (repeatable; default: all).
    #[arg(long = "layer", value_enum)]
    layers: Vec<Layer>,
    /// Kernels for the vm layer (repeatable; default: all of the matrix).
    #[arg(long = "kernel", value_enum)]
    kernels: Vec<KernelVersion>,
    /// Kill a VM run after this many seconds.
    #[arg(long, default_value_t = 1800)]
    vm_timeout: u64,
    /// Run this libtest executable in the VM instead of building the `vm` test target.
    #[arg(long, hide = true)]
    vm_test_exe: Option<PathBuf>,
}

/// libtest's totals, summed over its `test result:` lines.
#[derive(Clone, Copy, Default)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    /// Adds the numbers of a line like `test result: ok. 3 passed; 0 failed; 1 ignored; ...`.
    fn parse_line(&mut self, line: &str) {
        let line = util::strip_ansi(line);
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// What one layer (or one kernel of the vm layer) did.
struct Report {
    name: String,
    counts: Counts,
    /// Why the layer failed beyond failing tests (command error, no tests).
    problem: Option<String>,
    elapsed: Duration,
    /// The suite's column in `docs/escapes.md` with its per-test results (host and vm
    /// suites only).
    column: Option<escapes::Column>,
}

impl Report {
    fn ok(&self) -> bool {
        self.problem.is_none() && self.counts.failed == 0
    }

    /// Failures for the summary: a layer that failed without a failing test (it did not
    /// build, its command failed, or it ran nothing) counts as one, so the total never
    /// reads `0 failed` on a failing run.
    fn failures(&self) -> u64 {
        self.counts.failed + u64::from(self.problem.is_some() && self.counts.failed == 0)
    }
}

pub fn main(args: &TestArgs) -> Result<ExitCode> {
    let layers = if args.layers.is_empty() {
        vec![
            Layer::Unit,
            Layer::Package,
            Layer::Host,
            Layer::Vm,
            Layer::Fleet,
        ]
    } else {
        args.layers.clone()
    };
    let kernels = if args.kernels.is_empty() {
        KernelVersion::ALL.to_vec()
    } else {
        args.kernels.clone()
    };
    let vm_kernels: &[KernelVersion] = if layers.contains(&Layer::Vm) {
        &kernels
    } else {
        &[]
    };
    setup::ensure(vm_kernels)?;

    let mut reports = Vec::new();
    for &layer in &layers {
        match layer {
            Layer::Unit => {
                reports.push(cargo_layer(
                    "unit",
                    None,
                    util::cargo().args([
                        "test",
                        "--workspace",
                        // The eBPF crate only builds for bpfel-unknown-none.
                        "--exclude",
                        "nemoclaw-ebpf",
                        "--lib",
                        "--bins",
                    ]),
                ));
                reports.push(cargo_layer(
                    "detectors and stand-in",
                    None,
                    // Their integration tests: the detection corpus (precision and recall per
                    // category, printed) and the stand-in's wire formats.
                    util::cargo().args([
                        "test",
                        "--package",
                        "nemoclaw-detect",
                        "--package",
                        "nemoclaw-standin",
                        "--tests",
                        "--",
                        "--nocapture",
                    ]),
                ));
            }
            Layer::Package => reports.push(package_layer()),
            Layer::Host => reports.push(host_layer()),
            Layer::Fleet => reports.push(fleet_layer()),
            Layer::Vm => {
                let groups = vec![
                    vm_suites(&kernels, args.vm_test_exe.as_deref()),
                    lsm_inactive_suites(&kernels),
                ];
                reports.extend(run_vm_suites(groups, Duration::from_secs(args.vm_timeout)));
            }
        }
    }

    println!();
    println!("== test summary ==");
    let mut total = Counts::default();
    for report in &reports {
        let Counts {
            passed,
            failed,
            ignored,
        } = report.counts;
        total.passed += passed;
        total.failed += report.failures();
        let mut line = format!("{}: {passed} passed, {failed} failed", report.name);
        if ignored > 0 {
            let _ = write!(line, ", {ignored} ignored");
        }
        let _ = write!(line, " ({:.0} s)", report.elapsed.as_secs_f64());
        if let Some(problem) = &report.problem {
            let _ = write!(line, " -- FAILED: {problem}");
        }
        println!("{line}");
    }
    println!("{} passed, {} failed", total.passed, total.failed);
    publish_escapes(args, &layers, &kernels, &reports);
    Ok(if reports.iter().all(Report::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes `docs/escapes.md` from the host and vm suites when the run was the full matrix,
/// and says so; after a partial run it says why it did not (half a table would replace the
/// last full run's).
fn publish_escapes(
    args: &TestArgs,
    layers: &[Layer],
    kernels: &[KernelVersion],
    reports: &[Report],
) {
    if let Some(why) = partial_run(layers, kernels, args.vm_test_exe.is_some()) {
        println!("xtask test: docs/escapes.md not written: {why} (a partial run)");
        return;
    }
    let mut columns: Vec<&escapes::Column> =
        reports.iter().filter_map(|r| r.column.as_ref()).collect();
    // The VM suites first, in the matrix's order; this machine last.
    columns.sort_by_key(|c| c.label == escapes::HOST);
    let kernels = KernelVersion::ALL
        .iter()
        .map(|&k| match setup::ensure_kernel(k) {
            Ok(tree) => format!("{k} (`{}`)", tree.release),
            Err(_) => k.to_string(),
        })
        .collect();
    match escapes::publish(&columns, kernels) {
        Ok(totals) => println!("xtask test: wrote docs/escapes.md: {totals}"),
        Err(err) => eprintln!("xtask test: docs/escapes.md not written: {err:#}"),
    }
}

/// Why a run's suites are not the whole matrix `docs/escapes.md` tabulates, if they are not.
fn partial_run(
    layers: &[Layer],
    kernels: &[KernelVersion],
    vm_test_exe: bool,
) -> Option<&'static str> {
    if !layers.contains(&Layer::Host) || !layers.contains(&Layer::Vm) {
        Some("the run did not include both the host and the vm layer")
    } else if !KernelVersion::ALL.iter().all(|k| kernels.contains(k)) {
        Some("the vm layer did not run on every kernel")
    } else if vm_test_exe {
        Some("--vm-test-exe replaced the vm suite")
    } else {
        None
    }
}

/// The host suite; the router tests start the cloud stand-in next to `nemoclaw`, and
/// cargo builds only the package under test, so the stand-in is built first.
fn host_layer() -> Report {
    if let Err(e) = util::run(util::cargo().args(["build", "--package", "nemoclaw-standin"])) {
        eprintln!("building nemoclaw-standin: {e:#}");
    }
    cargo_layer(
        "host",
        Some(escapes::Column::new(
            escapes::HOST,
            "this machine's kernel natively: the host suite (`cargo test --test host`); its \
             tests of BPF LSM skip themselves where it is not active",
        )),
        util::cargo().args([
            "test",
            "--package",
            "nemoclaw-userspace",
            "--test",
            "host",
            "--",
            "--test-threads=1",
            // A passing test's `SKIPPED` line, for docs/escapes.md.
            "--show-output",
        ]),
    )
}

/// Builds the package, then runs each of its checks (one test each).
fn package_layer() -> Report {
    println!("== test layer package: cargo xtask package, then its checks ==");
    let started = Instant::now();
    let mut counts = Counts::default();
    let problem = match package::build() {
        Err(err) => Some(format!("{err:#}")),
        Ok(deb) => {
            (counts.passed, counts.failed) = package::run_checks(&deb);
            no_tests_problem(counts)
        }
    };
    Report {
        name: "package".to_string(),
        counts,
        problem,
        elapsed: started.elapsed(),
        column: None,
    }
}

/// The fleet test: each of its steps counts as a test.
fn fleet_layer() -> Report {
    println!("== test layer fleet: cargo xtask fleet ==");
    let started = Instant::now();
    let mut steps = fleet::Steps::default();
    let result = fleet::run(&fleet::FleetArgs::default(), &mut steps);
    println!("{}", steps.summary());
    let mut counts = Counts::default();
    for (_, _, ok) in &steps.done {
        if *ok {
            counts.passed += 1;
        } else {
            counts.failed += 1;
        }
    }
    Report {
        name: "fleet".to_string(),
        counts,
        problem: result.err().map(|err| format!("{err:#}")),
        elapsed: started.elapsed(),
        column: None,
    }
}

/// Runs a `cargo test` command, streaming its stdout and counting libtest's results (and
/// keeping each test's in `column`, if given).
fn cargo_layer(name: &str, mut column: Option<escapes::Column>, cmd: &mut Command) -> Report {
    println!("== test layer {name}: {} ==", util::describe(cmd));
    let started = Instant::now();
    let mut counts = Counts::default();
    let result = stream_lines(cmd, &mut |line| {
        println!("{line}");
        counts.parse_line(line);
        if let Some(column) = &mut column {
            column.results.parse_line(line);
        }
    });
    let problem = match result {
        Err(err) => Some(format!("{err:#}")),
        Ok(()) => no_tests_problem(counts),
    };
    Report {
        name: name.to_string(),
        counts,
        problem,
        elapsed: started.elapsed(),
        column,
    }
}

fn no_tests_problem(counts: Counts) -> Option<String> {
    (counts.passed + counts.failed == 0).then(|| "no test ran".to_string())
}

/// Runs a command with stdout piped line by line into `on_line`; fails on a non-zero exit.
fn stream_lines(cmd: &mut Command, on_line: &mut dyn FnMut(&str)) -> Result<()> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", util::describe(cmd)))?;
    let stdout = child.stdout.take().context("stdout not captured")?;
    for line in BufReader::new(stdout).lines() {
        match line {
            Ok(line) => on_line(&line),
            Err(err) => {
                eprintln!("xtask test: reading output: {err}");
                break;
            }
        }
    }
    let status = child.wait().context("waiting for the test command")?;
    if !status.success() {
        bail!("`{}` exited with {status}", util::describe(cmd));
    }
    Ok(())
}

/// One VM run of a test executable: the report's name, the kernel, its extra parameters,
/// the guest's shell command (given the executable), and its column in docs/escapes.md.
struct VmSuite {
    name: String,
    kernel: KernelVersion,
    kernel_args: Vec<String>,
    script: String,
    column: escapes::Column,
}

/// The VM suites of one build: each suite's command, or why none can run (and the names and
/// columns of the suites that then did not run).
struct VmSuites {
    built: Result<Vec<VmSuite>, String>,
    planned: Vec<(String, escapes::Column)>,
}

/// Builds an integration test binary (`build`) and lists the suites that run it (`suites`).
fn build_vm_suites(
    what: &str,
    build: impl FnOnce() -> Result<PathBuf>,
    suites: impl Fn(&Path) -> Vec<VmSuite>,
) -> VmSuites {
    println!("== test layer {what}: building ==");
    let planned = suites(Path::new("(not built)"))
        .into_iter()
        .map(|s| (s.name, s.column))
        .collect();
    VmSuites {
        built: build()
            .map(|exe| suites(&exe))
            .map_err(|err| format!("build failed: {err:#}")),
        planned,
    }
}

/// Runs every suite of `groups` in its own VM, as many at once as the host has cores (each
/// VM emulates one CPU). A suite's console output is held back and printed in one piece when
/// its VM finishes, so suites never interleave; the reports keep the order of `groups`.
fn run_vm_suites(groups: Vec<VmSuites>, timeout: Duration) -> Vec<Report> {
    let started = Instant::now();
    let mut reports: Vec<Option<Report>> = Vec::new();
    let mut queue = Vec::new();
    for group in groups {
        match group.built {
            Ok(suites) => {
                for suite in suites {
                    queue.push((reports.len(), suite));
                    reports.push(None);
                }
            }
            Err(problem) => reports.extend(group.planned.into_iter().map(|(name, column)| {
                Some(Report {
                    name,
                    counts: Counts::default(),
                    problem: Some(problem.clone()),
                    elapsed: started.elapsed(),
                    column: Some(column),
                })
            })),
        }
    }
    let jobs = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!(
        "== test layer vm: {} suites, {} at a time (output of each when it finishes) ==",
        queue.len(),
        jobs.min(queue.len().max(1))
    );
    let queue = std::sync::Mutex::new(queue.into_iter());
    let done = std::sync::Mutex::new(reports);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().expect("queue lock").next();
                    let Some((slot, suite)) = next else { break };
                    let report = run_vm_suite(suite, timeout);
                    done.lock().expect("reports lock")[slot] = Some(report);
                }
            });
        }
    });
    done.into_inner()
        .expect("reports lock")
        .into_iter()
        .flatten()
        .collect()
}

/// One suite in a fresh VM: its output printed when it is done, libtest's results counted.
fn run_vm_suite(mut suite: VmSuite, timeout: Duration) -> Report {
    let started = Instant::now();
    let mut output = format!(
        "== test layer {}: {} ==\n",
        suite.name,
        suite
            .kernel_args
            .iter()
            .fold(String::from("--test-threads=1"), |s, a| s
                + " (kernel: "
                + a
                + ")")
    );
    let guest = vm::Guest {
        kernel: suite.kernel,
        argv: vec!["sh".into(), "-c".into(), suite.script],
        // Where cargo runs integration tests: the package directory.
        cwd: util::workspace_root().join("nemoclaw-userspace"),
        env: Vec::new(),
        kernel_args: suite.kernel_args,
        timeout,
        interactive: false,
    };
    let mut counts = Counts::default();
    let result = vm::run(&guest, &mut |line| {
        output.push_str(line);
        output.push('\n');
        counts.parse_line(line);
        suite.column.results.parse_line(line);
    });
    let problem = match result {
        Ok(0) => no_tests_problem(counts),
        Ok(code) => Some(format!("test binary exited with {code}")),
        Err(err) => Some(format!("{err:#}")),
    };
    let _ = writeln!(
        output,
        "== test layer {}: {} in {:.0} s ==",
        suite.name,
        if problem.is_none() && counts.failed == 0 {
            "ok"
        } else {
            "FAILED"
        },
        started.elapsed().as_secs_f64()
    );
    // One write, so two suites finishing together do not interleave.
    print!("{output}");
    Report {
        name: suite.name,
        counts,
        problem,
        elapsed: started.elapsed(),
        column: Some(suite.column),
    }
}

/// The `vm` suite (every control, with BPF LSM) on each kernel: through a daemon on
/// [`THROUGH_DAEMON`], standalone on the others.
fn vm_suites(kernels: &[KernelVersion], given_exe: Option<&Path>) -> VmSuites {
    let build = || match given_exe {
        Some(exe) => std::path::absolute(exe).context("resolving --vm-test-exe"),
        None => util::build_userspace().and_then(|()| build_test_exe("vm")),
    };
    let suites = |exe: &Path| {
        kernels
            .iter()
            .map(|&kernel| {
                // `--show-output`: a passing test's `SKIPPED` line, for docs/escapes.md.
                let suite = format!(
                    "env NEMOCLAW_REQUIRE_LSM=1 '{}' --test-threads=1 --show-output",
                    exe.display()
                );
                let (name, script, column) = if kernel == THROUGH_DAEMON {
                    (
                        format!("vm {kernel} daemon"),
                        daemon_script(&suite),
                        escapes::Column::new(
                            format!("{kernel} bpf-lsm (daemon)"),
                            format!(
                                "Debian {kernel} in the VM, BPF LSM active: the vm suite, every \
                                 sandbox through a `nemoclaw daemon`"
                            ),
                        ),
                    )
                } else {
                    (
                        format!("vm {kernel}"),
                        suite,
                        escapes::Column::new(
                            format!("{kernel} bpf-lsm"),
                            format!(
                                "Debian {kernel} in the VM, BPF LSM active: the vm suite, \
                                 standalone `nemoclaw run`"
                            ),
                        ),
                    )
                };
                VmSuite {
                    name,
                    kernel,
                    kernel_args: Vec::new(),
                    script,
                    column,
                }
            })
            .collect()
    };
    build_vm_suites("vm", build, suites)
}

/// Ubuntu's default LSM list (22.04, 24.04): BPF LSM compiled in, not active.
pub const UBUNTU_LSM: &str = "lsm=landlock,lockdown,yama,integrity,apparmor";

/// The host suite's tests that say something about a kernel where BPF LSM is not active:
/// the refusals, what runs without BPF LSM (network), and a daemon's adoption (its
/// self-test again). The rest of the host suite (the daemon's flood and reload tests) runs
/// natively; under the VM's software emulation its timing-bound probes only get slower.
const LSM_INACTIVE_TESTS: &str = "lsm_inactive fail_closed network daemon::sigkill";

/// The host suite (what runs without BPF LSM, and the refusals of what cannot) on each
/// kernel booted with [`UBUNTU_LSM`], where LSM programs load and attach and never run.
/// `NEMOCLAW_LSM_INACTIVE=1` makes its tests of that case mandatory (not skipped).
fn lsm_inactive_suites(kernels: &[KernelVersion]) -> VmSuites {
    let build = || util::build_userspace().and_then(|()| build_test_exe("host"));
    let suites = |exe: &Path| {
        kernels
            .iter()
            .map(|&kernel| VmSuite {
                name: format!("vm {kernel} lsm-inactive"),
                kernel,
                kernel_args: vec![UBUNTU_LSM.to_owned()],
                script: format!(
                    "env NEMOCLAW_LSM_INACTIVE=1 '{}' --test-threads=1 --show-output \
                     {LSM_INACTIVE_TESTS}",
                    exe.display()
                ),
                column: escapes::Column::new(
                    format!("{kernel} lsm-inactive"),
                    format!(
                        "Debian {kernel} in the VM booted with Ubuntu's LSM list (`{UBUNTU_LSM}`): \
                         BPF LSM built in, not active, so network only and the rest refused; the \
                         host suite's `{LSM_INACTIVE_TESTS}`"
                    ),
                ),
            })
            .collect()
    };
    build_vm_suites(&format!("vm lsm-inactive ({UBUNTU_LSM})"), build, suites)
}

/// The kernel whose VM suite runs with a `nemoclaw daemon` on the default socket, so every
/// `nemoclaw run` of the suite goes through it (the other kernel runs them standalone).
const THROUGH_DAEMON: KernelVersion = KernelVersion::V6_12;

/// `suite` with a daemon on the default socket around it (the audit log on the guest's
/// tmpfs: the host's file system is read-only there); its audit chain is verified at the end.
fn daemon_script(suite: &str) -> String {
    let nemoclaw = util::nemoclaw_bin();
    let n = nemoclaw.display();
    format!(
        r#"'{n}' daemon --audit-log /tmp/nemoclaw-daemon/audit.jsonl 2>/tmp/nemoclaw-daemon.log &
DAEMON=$!
i=0
while [ ! -S /run/nemoclaw/nemoclaw.sock ]; do
  if grep -q '^State:.*Z' /proc/$DAEMON/status 2>/dev/null || [ $i -ge 1200 ]; then
    echo "the daemon did not start:"; cat /tmp/nemoclaw-daemon.log; exit 1
  fi
  sleep 0.1; i=$((i+1))
done
echo "nemoclaw daemon running (pid $DAEMON); the suite's sandboxes go through it"
{suite}
code=$?
kill -TERM $DAEMON; wait $DAEMON
'{n}' audit verify /tmp/nemoclaw-daemon/audit.jsonl || code=1
exit $code
"#
    )
}

/// `cargo test --test TARGET --no-run`, returning the test executable from cargo's JSON
/// messages.
fn build_test_exe(target: &str) -> Result<PathBuf> {
    let mut cmd = util::cargo();
    cmd.args([
        "test",
        "--package",
        "nemoclaw-userspace",
        "--test",
        target,
        "--no-run",
        "--message-format=json-diagnostic-rendered-ansi",
    ]);
    let mut exe = None;
    stream_lines(&mut cmd, &mut |line| {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        match msg["reason"].as_str() {
            Some("compiler-message") => {
                if let Some(rendered) = msg["message"]["rendered"].as_str() {
                    eprint!("{rendered}");
                }
            }
            Some("compiler-artifact")
                if msg["target"]["name"] == target
                    && msg["target"]["kind"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|k| k == "test")) =>
            {
                if let Some(path) = msg["executable"].as_str() {
                    exe = Some(PathBuf::from(path));
                }
            }
            _ => {}
        }
    })?;
    exe.with_context(|| format!("cargo built no executable for the `{target}` test target"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Counts, KernelVersion, Layer, Report, partial_run};

    #[test]
    fn a_broken_layer_counts_as_a_failure() {
        let report = |failed, problem: Option<&str>| Report {
            name: "layer".into(),
            counts: Counts {
                passed: 3,
                failed,
                ignored: 0,
            },
            problem: problem.map(str::to_owned),
            elapsed: Duration::ZERO,
            column: None,
        };
        assert_eq!(report(0, None).failures(), 0);
        assert_eq!(report(2, None).failures(), 2);
        assert_eq!(report(0, Some("build failed")).failures(), 1);
        assert_eq!(report(2, Some("exited with 101")).failures(), 2);
    }

    #[test]
    fn sums_libtest_result_lines() {
        let mut counts = Counts::default();
        counts.parse_line("test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        counts.parse_line(
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        counts.parse_line("test foo ... ok");
        counts
            .parse_line("test result: \u{1b}[32mok\u{1b}(B\u{1b}[m. 4 passed; 0 failed; 0 ignored");
        assert_eq!((counts.passed, counts.failed, counts.ignored), (9, 1, 1));
    }

    #[test]
    fn only_the_full_matrix_writes_the_escape_suite() {
        let all = KernelVersion::ALL;
        assert_eq!(partial_run(&[Layer::Host, Layer::Vm], &all, false), None);
        assert!(partial_run(&[Layer::Vm], &all, false).is_some());
        assert!(partial_run(&[Layer::Unit, Layer::Host], &all, false).is_some());
        assert!(partial_run(&[Layer::Host, Layer::Vm], &[KernelVersion::V6_12], false).is_some());
        assert!(partial_run(&[Layer::Host, Layer::Vm], &all, true).is_some());
    }
}
