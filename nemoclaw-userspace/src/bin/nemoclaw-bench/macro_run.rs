//! `nemoclaw-bench macro` (driven by `cargo xtask bench --only make|untar-grep`; root, in
//! the VM): whole workloads under each sandbox, the peers side by side.
//!
//! - `make`: `make -j1` of a generated C project (`--files` units of real C with libc
//!   headers, one header, a Makefile; written into the work directory), `make clean`
//!   between runs (outside the timing).
//! - `untar-grep`: `tar -xf` of real source trees, then `grep -rn` through them. The trees
//!   are headers the host has (no kernel source package is cached by setup): the Linux UAPI
//!   headers (`/usr/include/linux`, Debian's `linux-libc-dev`), libstdc++'s
//!   (`/usr/include/c++`), LLVM 14's (`/usr/include/llvm-14`) and Node's
//!   (`/usr/include/node`, with V8's and OpenSSL's): about 5,600 files, 98 MB.
//!   They are put into a tarball once, untimed, in the work directory (tmpfs: in the VM,
//!   the 9p root costs ~700 us an open); the extracted tree is removed between runs.
//!
//! Systems: `none` (no enforcement), `nemoclaw` (`nemoclaw run` through a private daemon,
//! which loaded the programs once, as `apparmor_parser` loads a profile once;
//! `nemoclaw-standalone`: `nemoclaw run --standalone`, loading them every run), `landlock`
//! (`nemoclaw-bench landlock-exec`), `apparmor` (a profile loaded with `apparmor_parser
//! -r`, run through `aa-exec -p`). All grant the same: the work directory and `/dev/null`
//! read-write; `/usr`, `/lib`, `/lib64`, `/bin`, `/etc` read-only; exec of the workload's
//! binaries only (and library mappings from the library directories). Every system runs
//! as root. One untimed round first, then `--runs` rounds, each round every system in
//! turn (round-robin); the whole run's wall time. One `NEMOCLAW_BENCH` line per system.

use std::{
    fmt::Write as _,
    io::Read as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::op::LINE_PREFIX;
use crate::private_daemon::Daemon;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `make -j1` of a generated C project.
    Make,
    /// `tar -xf` of a real source tree, then `grep -rn` through it.
    UntarGrep,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Make => "make",
            Scenario::UntarGrep => "untar-grep",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct MacroArgs {
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Timed runs per system (after one untimed round).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Systems, in round-robin order (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "none,nemoclaw,landlock,apparmor"
    )]
    pub systems: Vec<String>,
    /// Translation units of the generated C project (`make`).
    #[arg(long, default_value_t = 12)]
    pub files: usize,
    /// The trees to put into the tarball to untar and grep (`untar-grep`; repeatable).
    #[arg(
        long = "tree",
        default_values = [
            "/usr/include/linux",
            "/usr/include/c++",
            "/usr/include/llvm-14",
            "/usr/include/node"
        ]
    )]
    pub trees: Vec<PathBuf>,
    /// What `untar-grep` looks for.
    #[arg(long, default_value = "ioctl")]
    pub pattern: String,
    /// Where the work directory is made (tmpfs).
    #[arg(long, default_value = "/tmp")]
    pub dir: PathBuf,
}

/// The binaries the macro workloads (and `start`) execute, by name; the compiler's own
/// programs (`cc1`, `collect2`) are asked from `gcc`.
const PROGRAMS: [&str; 11] = [
    "sh", "make", "gcc", "as", "ld", "tar", "grep", "rm", "mkdir", "true", "cat",
];

/// `name` on `/usr/bin:/bin`, canonical.
fn which(name: &str) -> anyhow::Result<PathBuf> {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return std::fs::canonicalize(&path)
                .with_context(|| format!("resolving {}", path.display()));
        }
    }
    bail!("{name} not found")
}

/// Every binary the workloads execute, canonical, sorted, without repeats.
pub fn executables() -> anyhow::Result<Vec<PathBuf>> {
    let mut out = PROGRAMS
        .iter()
        .map(|p| which(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for prog in ["cc1", "collect2"] {
        let output = Command::new("gcc")
            .arg(format!("-print-prog-name={prog}"))
            .output()
            .context("asking gcc for its programs")?;
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if !path.is_absolute() {
            bail!("gcc does not name {prog}'s path");
        }
        out.push(std::fs::canonicalize(&path).with_context(|| format!("{}", path.display()))?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Read-only directories every system grants.
pub const READ_ONLY: [&str; 5] = ["/usr", "/lib", "/lib64", "/bin", "/etc"];
/// Library directories (`NemoClaw`'s defaults for executable mappings).
pub const LIBRARY_DIRS: [&str; 5] = ["/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib"];

/// The `NemoClaw` policy: its text and its rule count (every list entry).
pub fn nemoclaw_policy(work: &Path, exec: &[PathBuf]) -> (String, usize) {
    let mut text = String::from("version: 1\nname: nemoclaw-bench-macro\nfilesystem:\n  allow:\n");
    let _ = writeln!(
        text,
        "    - {}/**\n    - /dev/null\n  read_only:",
        work.display()
    );
    for dir in READ_ONLY {
        let _ = writeln!(text, "    - {dir}/**");
    }
    text.push_str("process:\n  allow:\n");
    for path in exec {
        let _ = writeln!(text, "    - {}", path.display());
    }
    (text, 2 + READ_ONLY.len() + exec.len())
}

/// The `landlock-exec` arguments (before `--`) and their rule count; `loader` is the ELF
/// interpreter, which Landlock judges as an exec.
pub fn landlock_args(work: &Path, exec: &[PathBuf], loader: &Path) -> (Vec<String>, usize) {
    let mut args = Vec::new();
    for dir in READ_ONLY {
        args.extend(["--ro".to_string(), dir.to_string()]);
    }
    for path in [work, Path::new("/dev/null")] {
        args.extend(["--rw".to_string(), path.display().to_string()]);
    }
    for path in exec.iter().map(PathBuf::as_path).chain([loader]) {
        args.extend(["--exec".to_string(), path.display().to_string()]);
    }
    let rules = args.len() / 2;
    (args, rules)
}

/// The `AppArmor` profile `name` and its rule count. Paths are those after symlinks are
/// resolved (`AppArmor` judges those), so the exec rules name canonical binaries; `ix`:
/// the child stays in the profile.
pub fn apparmor_profile(name: &str, work: &Path, exec: &[PathBuf]) -> (String, usize) {
    let mut rules = Vec::new();
    for dir in READ_ONLY {
        rules.push(format!("{dir}/** r,"));
    }
    for dir in LIBRARY_DIRS {
        rules.push(format!("{dir}/** m,"));
    }
    rules.push("/dev/null rw,".to_string());
    rules.push(format!("{}/ r,", work.display()));
    rules.push(format!("{}/** rwlk,", work.display()));
    for path in exec {
        rules.push(format!("{} ix,", path.display()));
    }
    // `chroot_relative`: names as the confined task sees them. The VM's guest runs in a
    // chroot of the 9p root, where the namespace's names would carry the chroot's prefix;
    // outside a chroot both are the same.
    let mut text = format!("profile {name} flags=(chroot_relative) {{\n");
    for rule in &rules {
        let _ = writeln!(text, "  {rule}");
    }
    text.push_str("}\n");
    (text, rules.len())
}

/// The generated C project: (file name, contents), Makefile included. Deterministic.
pub fn c_project(files: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    out.push((
        "common.h".to_string(),
        "#ifndef COMMON_H\n#define COMMON_H\n#include <stddef.h>\n\
         unsigned long mix(unsigned long x, const char *tag);\n#endif\n"
            .to_string(),
    ));
    let mut decls = String::new();
    let mut calls = String::new();
    let mut objs = vec!["main.o".to_string()];
    for i in 0..files {
        let src = format!(
            "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"common.h\"\n\n\
             struct item{i} {{ unsigned long key; char name[32]; }};\n\n\
             static int cmp{i}(const void *a, const void *b)\n{{\n\
             \tconst struct item{i} *x = a, *y = b;\n\
             \treturn (x->key > y->key) - (x->key < y->key);\n}}\n\n\
             unsigned long unit{i}(unsigned long seed)\n{{\n\
             \tstruct item{i} items[16];\n\tunsigned long sum = 0;\n\
             \tfor (int k = 0; k < 16; k++) {{\n\
             \t\titems[k].key = (seed * {m}UL + (unsigned long)k * 2654435761UL) % 1000003UL;\n\
             \t\tsnprintf(items[k].name, sizeof items[k].name, \"u{i}-%d\", k);\n\t}}\n\
             \tqsort(items, 16, sizeof items[0], cmp{i});\n\
             \tfor (int k = 0; k < 16; k++)\n\
             \t\tsum += mix(items[k].key, items[k].name) + strlen(items[k].name);\n\
             \treturn sum;\n}}\n",
            m = 31 + 2 * i
        );
        out.push((format!("unit{i}.c"), src));
        let _ = writeln!(decls, "unsigned long unit{i}(unsigned long seed);");
        let _ = writeln!(calls, "\ttotal += unit{i}(total + {i});");
        objs.push(format!("unit{i}.o"));
    }
    out.push((
        "main.c".to_string(),
        format!(
            "#include <stdio.h>\n#include \"common.h\"\n\n{decls}\n\
             unsigned long mix(unsigned long x, const char *tag)\n{{\n\
             \tfor (; *tag; tag++)\n\t\tx = (x ^ (unsigned char)*tag) * 1099511628211UL;\n\
             \treturn x;\n}}\n\n\
             int main(void)\n{{\n\tunsigned long total = 1;\n{calls}\
             \tprintf(\"%lu\\n\", total);\n\treturn 0;\n}}\n"
        ),
    ));
    out.push((
        "Makefile".to_string(),
        format!(
            "CC = gcc\nCFLAGS = -O2 -Wall\nOBJS = {}\n\n\
             prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n\
             %.o: %.c common.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\n\n\
             clean:\n\trm -f prog $(OBJS)\n",
            objs.join(" ")
        ),
    ));
    out
}

/// The shell lines one timed run executes (inside the sandbox).
pub fn workload_script(scenario: Scenario, work: &Path, pattern: &str) -> String {
    let w = work.display();
    let env = format!("export PATH=/usr/bin:/bin TMPDIR={w}/tmp LC_ALL=C; ");
    match scenario {
        Scenario::Make => format!("{env}exec make -s -j1 -C {w}/proj"),
        Scenario::UntarGrep => format!(
            "{env}mkdir {w}/x && tar -xf {w}/tree.tar --no-same-owner -C {w}/x && \
             grep -rn '{pattern}' {w}/x > {w}/grep.out"
        ),
    }
}

/// `apparmor_parser`, where Debian puts it.
fn apparmor_parser() -> Option<PathBuf> {
    ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A loaded `AppArmor` profile; removed on drop.
pub struct Profile {
    parser: PathBuf,
    file: PathBuf,
    pub name: String,
    pub rules: usize,
}

impl Profile {
    /// Loads the profile (`apparmor_parser -r`, no cache: the root may be read-only).
    /// `Err` says why the system is not measured.
    pub fn load(name: &str, work: &Path, exec: &[PathBuf]) -> Result<Self, String> {
        let parser = apparmor_parser().ok_or("apparmor_parser missing")?;
        if which("aa-exec").is_err() {
            return Err("aa-exec missing".into());
        }
        let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
        if !lsm.split(',').any(|l| l.trim() == "apparmor") {
            return Err(format!("AppArmor is not an active LSM ({})", lsm.trim()));
        }
        let (text, rules) = apparmor_profile(name, work, exec);
        let file = work.join(format!("{name}.apparmor"));
        std::fs::write(&file, text).map_err(|e| format!("writing the profile: {e}"))?;
        let out = Command::new(&parser)
            .args(["-r", "-K"])
            .arg(&file)
            .output()
            .map_err(|e| format!("running apparmor_parser: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "apparmor_parser -r: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self {
            parser,
            file,
            name: name.to_string(),
            rules,
        })
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = Command::new(&self.parser)
            .arg("-R")
            .arg(&self.file)
            .stderr(Stdio::null())
            .status();
    }
}

/// The systems: how each runs a command, and its rule count (`Err`: why not measured).
pub struct Systems {
    work: PathBuf,
    exe: PathBuf,
    nemoclaw: PathBuf,
    policy_file: PathBuf,
    policy_rules: usize,
    landlock: Result<(Vec<String>, usize), String>,
    apparmor: Result<Profile, String>,
    daemon: Option<Result<Daemon, String>>,
}

impl Systems {
    /// Prepares every system named in `systems` (policy, ruleset arguments, profile,
    /// daemon) for commands working in `work`.
    pub fn prepare(work: &Path, systems: &[String]) -> anyhow::Result<Self> {
        let exec = executables()?;
        let exe = std::env::current_exe().context("locating this executable")?;
        let nemoclaw = exe.with_file_name("nemoclaw");
        let (policy, policy_rules) = nemoclaw_policy(work, &exec);
        let policy_file = work.join("policy.yaml");
        std::fs::write(&policy_file, policy).context("writing the policy")?;
        let loader = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2")
            .context("locating the ELF interpreter")?;
        let wants = |s: &str| systems.iter().any(|x| x == s);
        let landlock = if wants("landlock") {
            crate::landlock_sys::abi()
                .map_err(|e| format!("{e:#}"))
                .map(|_| landlock_args(work, &exec, &loader))
        } else {
            Err("not selected".into())
        };
        let apparmor = if wants("apparmor") {
            Profile::load("nemoclaw-bench-macro", work, &exec)
        } else {
            Err("not selected".into())
        };
        let daemon = wants("nemoclaw").then(|| {
            if nemoclaw.is_file() {
                Daemon::start(&nemoclaw, work, "macro").map_err(|e| format!("{e:#}"))
            } else {
                Err(format!("{} missing", nemoclaw.display()))
            }
        });
        if wants("nemoclaw-standalone") && !nemoclaw.is_file() {
            bail!("{} not found: build it", nemoclaw.display());
        }
        Ok(Self {
            work: work.to_path_buf(),
            exe,
            nemoclaw,
            policy_file,
            policy_rules,
            landlock,
            apparmor,
            daemon,
        })
    }

    /// The command running `argv` under `system`, and its rule count; `Err`: why not.
    /// `nemoclaw` is a run through the private daemon (the programs loaded once),
    /// `nemoclaw-standalone` a standalone run (it loads its own programs).
    pub fn command(&self, system: &str, argv: &[&str]) -> Result<(Command, usize), String> {
        let nemoclaw_run = |socket: Option<&Path>| {
            let mut cmd = Command::new(&self.nemoclaw);
            cmd.arg("run");
            match socket {
                Some(socket) => cmd.arg("--socket").arg(socket),
                None => cmd.arg("--standalone"),
            };
            cmd.args(["--user", "root", "--audit-log"])
                .arg(self.work.join("audit.jsonl"))
                .arg("--policy")
                .arg(&self.policy_file)
                .arg("--")
                .args(argv);
            cmd
        };
        Ok(match system {
            "none" => {
                let mut cmd = Command::new(argv[0]);
                cmd.args(&argv[1..]);
                (cmd, 0)
            }
            "nemoclaw-standalone" => (nemoclaw_run(None), self.policy_rules),
            "nemoclaw" => match &self.daemon {
                Some(Ok(daemon)) => (nemoclaw_run(Some(&daemon.socket)), self.policy_rules),
                Some(Err(e)) => return Err(e.clone()),
                None => return Err("no daemon".into()),
            },
            "landlock" => {
                let (ruleset, rules) = self.landlock.as_ref().map_err(Clone::clone)?;
                let mut cmd = Command::new(&self.exe);
                cmd.arg("landlock-exec").args(ruleset).arg("--").args(argv);
                (cmd, *rules)
            }
            "apparmor" => {
                let profile = self.apparmor.as_ref().map_err(Clone::clone)?;
                let mut cmd = Command::new("aa-exec");
                cmd.args(["-p", &profile.name, "--"]).args(argv);
                (cmd, profile.rules)
            }
            other => return Err(format!("unknown system {other}")),
        })
    }
}

/// A file outside every system's grants (Debian has it everywhere).
const OUTSIDE: &str = "/var/lib/dpkg/status";

impl Systems {
    /// Runs `argv` under each of `names`, round-robin, `runs` timed rounds after an untimed
    /// one (each system first checked to confine; `check` after every run, `between` after
    /// every round); the result lines of `scenario`. Consumes the systems: the daemon and
    /// the profile go when the runs are done.
    pub fn measure(
        self,
        scenario: &str,
        names: &[String],
        runs: usize,
        argv: &[&str],
        check: impl Fn() -> Result<(), String>,
        between: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let index = |s: &str| names.iter().position(|x| x == s).unwrap_or(0);
        let mut rules = vec![0; names.len()];
        let mut checked = vec![false; names.len()];
        let outcomes = round_robin(
            names,
            runs,
            |system| {
                if !std::mem::replace(&mut checked[index(system)], true) {
                    self.check_confines(system)?;
                }
                let (mut cmd, n) = self
                    .command(system, argv)
                    .map_err(|why| format!("unsupported: {why}"))?;
                rules[index(system)] = n;
                let ns = time_run(&mut cmd)?;
                check()?;
                Ok(ns)
            },
            between,
        )?;
        drop(self);
        Ok(names
            .iter()
            .zip(&outcomes)
            .zip(&rules)
            .map(|((system, outcome), n)| result(scenario, system, *n, outcome))
            .collect())
    }

    /// Whether `system` confines at all: reading [`OUTSIDE`] must fail under it (`Ok` for
    /// `none`, which is not asked). An error says the system is not measured or why the
    /// read went through.
    pub fn check_confines(&self, system: &str) -> Result<(), String> {
        if system == "none" {
            return Ok(());
        }
        let script = format!("exec cat {OUTSIDE}");
        let (mut cmd, _) = self
            .command(system, &["/bin/sh", "-c", &script])
            .map_err(|why| format!("unsupported: {why}"))?;
        match time_run(&mut cmd) {
            Ok(_) => Err(format!(
                "{system} let the sandbox read {OUTSIDE}: not confined"
            )),
            Err(_) => Ok(()),
        }
    }
}

/// Runs `cmd` to its end: its wall time in ns, or what went wrong (exit status and the
/// end of its stderr).
pub fn time_run(cmd: &mut Command) -> Result<u64, String> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning: {e}"))?;
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    let status = child.wait().map_err(|e| format!("waiting: {e}"))?;
    let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if status.success() {
        Ok(ns)
    } else {
        let tail: String = err
            .chars()
            .rev()
            .take(600)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(format!("{status}: {}", tail.trim()))
    }
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// One system's result line: fastest, median and every run.
pub fn result(
    scenario: &str,
    system: &str,
    rules: usize,
    outcome: &Result<Vec<u64>, String>,
) -> serde_json::Value {
    let mut value = json!({
        "scenario": scenario,
        "workload": scenario,
        "system": system,
        "mode": system,
        "rules": rules,
        "kernel": kernel_release(),
    });
    match outcome {
        Ok(rounds) if !rounds.is_empty() => {
            let mut sorted = rounds.clone();
            sorted.sort_unstable();
            value["ns_per_op"] = sorted[0].into();
            value["median_ns_per_op"] = sorted[sorted.len() / 2].into();
            value["rounds_ns_per_op"] = rounds.clone().into();
        }
        Ok(_) => value["error"] = "no runs".into(),
        Err(why) if why.starts_with("unsupported: ") => {
            value["unsupported"] = why.trim_start_matches("unsupported: ").into();
        }
        Err(why) => value["error"] = why.clone().into(),
    }
    value
}

/// Runs every system `runs` times round-robin (after one untimed round): `once(system)`
/// does one run and returns its ns; `between()` cleans up after each run. Returns each
/// system's rounds, or why it is not measured (`unsupported: ...`) or failed.
pub fn round_robin(
    systems: &[String],
    runs: usize,
    mut once: impl FnMut(&str) -> Result<u64, String>,
    mut between: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Result<Vec<u64>, String>>> {
    let mut out: Vec<Result<Vec<u64>, String>> = vec![Ok(Vec::new()); systems.len()];
    for round in 0..=runs {
        for (i, system) in systems.iter().enumerate() {
            let Ok(rounds) = &mut out[i] else { continue };
            match once(system) {
                Ok(ns) if round > 0 => rounds.push(ns),
                Ok(_) => {}
                Err(why) => out[i] = Err(why),
            }
            between()?;
        }
    }
    Ok(out)
}

/// A fresh work directory under `base`, mode 0755.
pub fn work_dir(base: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let work = base.join(format!("nemoclaw-bench-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("tmp"))
        .with_context(|| format!("creating {}", work.display()))?;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755))?;
    Ok(work)
}

pub fn run(args: &MacroArgs) -> anyhow::Result<i32> {
    let scenario = args.scenario.name();
    let work = work_dir(&args.dir, scenario)?;
    let outcome = measure(args, &work);
    Ok(finish(scenario, &work, outcome))
}

/// Removes the work directory and prints the result lines, or one error line; the exit code.
pub fn finish(scenario: &str, work: &Path, outcome: anyhow::Result<Vec<serde_json::Value>>) -> i32 {
    let _ = std::fs::remove_dir_all(work);
    match outcome {
        Ok(lines) => {
            for line in lines {
                println!("{LINE_PREFIX}{line}");
            }
            0
        }
        Err(err) => {
            let line = json!({"scenario": scenario, "workload": scenario, "system": "none",
                "mode": "none", "rules": 0, "kernel": kernel_release(), "error": format!("{err:#}")});
            println!("{LINE_PREFIX}{line}");
            1
        }
    }
}

fn measure(args: &MacroArgs, work: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let script = workload_script(args.scenario, work, &args.pattern);
    match args.scenario {
        Scenario::Make => {
            let proj = work.join("proj");
            std::fs::create_dir_all(&proj)?;
            for (name, text) in c_project(args.files) {
                std::fs::write(proj.join(&name), text)
                    .with_context(|| format!("writing {name}"))?;
            }
        }
        Scenario::UntarGrep => {
            // `-h`: a tree given as a symlink (`llvm-14`) is stored as its files.
            let mut tar = Command::new("tar");
            tar.arg("-chf").arg(work.join("tree.tar"));
            for tree in &args.trees {
                let parent = tree.parent().context("--tree has no parent")?;
                let name = tree.file_name().context("--tree has no name")?;
                tar.arg("-C").arg(parent).arg(name);
            }
            let status = tar.status().context("running tar")?;
            if !status.success() {
                bail!("making the tarball of {:?}: {status}", args.trees);
            }
        }
    }
    let check = |scenario: Scenario| -> Result<(), String> {
        match scenario {
            Scenario::Make => {
                let out = Command::new(work.join("proj/prog"))
                    .output()
                    .map_err(|e| format!("running the built program: {e}"))?;
                if out.status.success() && !out.stdout.is_empty() {
                    Ok(())
                } else {
                    Err("the built program failed".into())
                }
            }
            Scenario::UntarGrep => {
                let len = std::fs::metadata(work.join("grep.out")).map_or(0, |m| m.len());
                if len > 0 {
                    Ok(())
                } else {
                    Err("grep found nothing".into())
                }
            }
        }
    };
    let systems = Systems::prepare(work, &args.systems)?;
    systems.measure(
        args.scenario.name(),
        &args.systems,
        args.runs,
        &["/bin/sh", "-c", &script],
        || check(args.scenario),
        || {
            match args.scenario {
                Scenario::Make => {
                    let status = Command::new("make")
                        .args(["-s", "-C"])
                        .arg(work.join("proj"))
                        .arg("clean")
                        .status()?;
                    if !status.success() {
                        bail!("make clean: {status}");
                    }
                }
                Scenario::UntarGrep => {
                    let _ = std::fs::remove_dir_all(work.join("x"));
                    let _ = std::fs::remove_file(work.join("grep.out"));
                }
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> Vec<PathBuf> {
        vec![
            PathBuf::from("/usr/bin/dash"),
            PathBuf::from("/usr/bin/make"),
        ]
    }

    #[test]
    fn the_policy_grants_the_work_dir_the_system_and_the_binaries() {
        let (text, rules) = nemoclaw_policy(Path::new("/tmp/w"), &exec());
        assert_eq!(
            text,
            "version: 1\nname: nemoclaw-bench-macro\nfilesystem:\n  allow:\n    - /tmp/w/**\n    - /dev/null\n  read_only:\n    - /usr/**\n    - /lib/**\n    - /lib64/**\n    - /bin/**\n    - /etc/**\nprocess:\n  allow:\n    - /usr/bin/dash\n    - /usr/bin/make\n"
        );
        assert_eq!(rules, 9);
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
        assert_eq!(
            parsed["process"]["allow"].as_sequence().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn landlock_and_apparmor_grant_the_same() {
        let (args, rules) =
            landlock_args(Path::new("/tmp/w"), &exec(), Path::new("/usr/lib/ld.so"));
        assert_eq!(rules, 10);
        assert_eq!(&args[..2], ["--ro", "/usr"]);
        assert!(args.windows(2).any(|w| w == ["--rw", "/tmp/w"]));
        assert!(args.windows(2).any(|w| w == ["--rw", "/dev/null"]));
        assert!(args.windows(2).any(|w| w == ["--exec", "/usr/lib/ld.so"]));
        let (profile, rules) = apparmor_profile("p", Path::new("/tmp/w"), &exec());
        assert!(profile.starts_with("profile p flags=(chroot_relative) {\n  /usr/** r,\n"));
        assert!(profile.contains("  /tmp/w/** rwlk,\n"));
        assert!(profile.contains("  /usr/bin/make ix,\n"));
        assert!(profile.contains("  /usr/lib/** m,\n"));
        assert!(profile.ends_with("}\n"));
        assert_eq!(rules, 5 + 5 + 3 + 2);
    }

    #[test]
    fn the_c_project_is_deterministic_and_complete() {
        let a = c_project(3);
        assert_eq!(a, c_project(3));
        let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "common.h", "unit0.c", "unit1.c", "unit2.c", "main.c", "Makefile"
            ]
        );
        let makefile = &a[5].1;
        assert!(makefile.contains("OBJS = main.o unit0.o unit1.o unit2.o\n"));
        assert!(makefile.contains("\n\t$(CC) $(CFLAGS) -c -o $@ $<\n"));
        assert!(a[4].1.contains("total += unit2(total + 2);"));
    }

    #[test]
    fn round_robin_interleaves_and_skips_the_untimed_round() {
        let systems = vec!["a".to_string(), "b".to_string()];
        let mut order = Vec::new();
        let mut n = 0;
        let out = round_robin(
            &systems,
            2,
            |s| {
                order.push(s.to_string());
                n += 1;
                if s == "b" && n > 3 {
                    Err("broke".into())
                } else {
                    Ok(n)
                }
            },
            || Ok(()),
        )
        .expect("runs");
        assert_eq!(order, ["a", "b", "a", "b", "a"]);
        assert_eq!(out[0], Ok(vec![3, 5]));
        assert_eq!(out[1], Err("broke".to_string()));
    }

    #[test]
    fn results_carry_fastest_median_and_rounds() {
        let v = result("make", "landlock", 7, &Ok(vec![30, 10, 20]));
        assert_eq!(v["ns_per_op"], 10);
        assert_eq!(v["median_ns_per_op"], 20);
        assert_eq!(v["rounds_ns_per_op"], json!([30, 10, 20]));
        assert_eq!(v["mode"], "landlock");
        assert_eq!(v["workload"], "make");
        let v = result(
            "make",
            "apparmor",
            0,
            &Err("unsupported: apparmor_parser missing".into()),
        );
        assert_eq!(v["unsupported"], "apparmor_parser missing");
        let v = result("make", "apparmor", 0, &Err("exit status: 2".into()));
        assert_eq!(v["error"], "exit status: 2");
    }
}
