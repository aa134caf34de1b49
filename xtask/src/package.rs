//! `cargo xtask package`: the Debian package, built by cargo-deb from
//! `[package.metadata.deb]` in `nemoclaw-userspace/Cargo.toml` and the files in `packaging/`,
//! and the checks the `package` test layer runs on it: its contents, control fields,
//! conffiles and maintainer scripts, the eBPF object inside the binary, the units
//! (`systemd-analyze verify`, and `systemd-analyze security` at or below the exposure measured
//! when their hardening was settled), and the two configuration files accepted by the
//! packaged binary. None of it needs root or systemd as PID 1; installing, upgrading and
//! purging for real is the fleet test's (Debian VMs with systemd).

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use clap::Args;

use crate::{setup, util};

#[derive(Args)]
pub struct PackageArgs {
    /// Also run the package layer's checks on the built package.
    #[arg(long)]
    check: bool,
}

pub fn main(args: &PackageArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let deb = build()?;
    println!(
        "package: {} ({} KiB, {:.0} s)",
        deb.display(),
        fs::metadata(&deb).map_or(0, |m| m.len() / 1024),
        started.elapsed().as_secs_f64()
    );
    if !args.check {
        return Ok(ExitCode::SUCCESS);
    }
    let (_, failed) = run_checks(&deb);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs every check of `deb`, one line each (`check NAME ... ok (detail)` or `... FAILED:
/// why`); returns how many passed and failed.
pub fn run_checks(deb: &Path) -> (u64, u64) {
    let (mut passed, mut failed) = (0, 0);
    for check in checks(deb) {
        match &check.result {
            Ok(detail) if detail.is_empty() => println!("check {} ... ok", check.name),
            Ok(detail) => println!("check {} ... ok ({detail})", check.name),
            Err(e) => println!("check {} ... FAILED: {e:#}", check.name),
        }
        if check.result.is_ok() {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    (passed, failed)
}

/// The package `nemoclaw-userspace` is built from, and the name of the Debian package.
const CRATE: &str = "nemoclaw-userspace";
const DEB_NAME: &str = "nemoclaw";

/// Builds the release binary (its build script builds and embeds the eBPF object) and the
/// package; returns `target/debian/nemoclaw_<version>_amd64.deb`. A second run rebuilds
/// nothing and only packs the archive again.
pub fn build() -> Result<PathBuf> {
    let cargo_deb = setup::ensure_package_tools()?;
    let out_dir = util::target_dir().join("debian");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut cmd = Command::new(&cargo_deb);
    cmd.current_dir(util::workspace_root())
        .args(["--package", CRATE, "--locked", "--output"])
        .arg(&out_dir)
        // cargo's progress goes through; the last line of stdout is the package's path.
        .stderr(Stdio::inherit());
    let stdout = util::output(&mut cmd).context("building the Debian package (cargo-deb)")?;
    let deb = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(PathBuf::from)
        .context("cargo-deb printed no package path")?;
    let name = deb
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    ensure!(
        deb.is_file() && name.starts_with(&format!("{DEB_NAME}_")) && name.ends_with("_amd64.deb"),
        "cargo-deb reported {}, not a {DEB_NAME}_<version>_amd64.deb file",
        deb.display()
    );
    Ok(deb)
}

/// One check of the package: what it proves, and its result (a detail to print when it
/// passed).
struct Check {
    name: &'static str,
    result: Result<String>,
}

fn check(name: &'static str, run: impl FnOnce() -> Result<String>) -> Check {
    Check {
        name,
        result: run(),
    }
}

/// Every check of the package layer, on `deb` unpacked into a scratch root.
fn checks(deb: &Path) -> Vec<Check> {
    let root = match unpack(deb) {
        Ok(root) => root,
        Err(e) => {
            return vec![Check {
                name: "unpack the package into a scratch root",
                result: Err(e),
            }];
        }
    };
    vec![
        check("contents: files, modes and owners", || contents(deb)),
        check("contents: the files are packaging/'s", || {
            same_as_sources(&root)
        }),
        check("control: name, architecture, dependencies", || control(deb)),
        check("control: conffiles", || conffiles(&root)),
        check("maintainer scripts: present, executable, sh -n", || {
            scripts(&root)
        }),
        check(
            "binary: runs, has the package's version, carries the eBPF object",
            || binary(deb, &root),
        ),
        check("units: systemd-analyze verify", || verify_units(&root)),
        check("units: systemd-analyze security exposure", || {
            exposure(&root)
        }),
        check(
            "units: the exposure check fails on a unit without hardening",
            || exposure_check_bites(&root),
        ),
        check("router.yaml: the packaged router starts with it", || {
            router_config(&root)
        }),
        check("nemoclaw.yaml: `nemoclaw config check` accepts it", || {
            daemon_config(&root)
        }),
    ]
}

/// Files the package installs, with their modes (all root's).
const FILES: [(&str, &str); 6] = [
    ("usr/bin/nemoclaw", "-rwxr-xr-x"),
    ("etc/nemoclaw/nemoclaw.yaml", "-rw-r--r--"),
    // It may hold keys: postinst gives it to the group nemoclaw-router.
    ("etc/nemoclaw/router.yaml", "-rw-r-----"),
    ("lib/systemd/system/nemoclaw.service", "-rw-r--r--"),
    ("lib/systemd/system/nemoclaw-router.service", "-rw-r--r--"),
    ("usr/share/lintian/overrides/nemoclaw", "-rw-r--r--"),
];

/// Where each packaged file comes from in the repository (the binary aside).
const SOURCES: [(&str, &str); 5] = [
    ("etc/nemoclaw/nemoclaw.yaml", "packaging/etc/nemoclaw.yaml"),
    ("etc/nemoclaw/router.yaml", "packaging/etc/router.yaml"),
    (
        "lib/systemd/system/nemoclaw.service",
        "packaging/systemd/nemoclaw.service",
    ),
    (
        "lib/systemd/system/nemoclaw-router.service",
        "packaging/systemd/nemoclaw-router.service",
    ),
    (
        "usr/share/lintian/overrides/nemoclaw",
        "packaging/lintian/nemoclaw",
    ),
];

const SCRIPTS: [&str; 3] = ["postinst", "prerm", "postrm"];

/// The units and the exposure `systemd-analyze security` (systemd 252, Debian 12) gave
/// each when its hardening was settled, in tenths (its `--threshold` scale): 3.9 and 1.3.
/// A change that weakens a unit fails the check; one that hardens it lowers the number here.
const UNITS: [(&str, u32); 2] = [("nemoclaw.service", 39), ("nemoclaw-router.service", 13)];

/// The programs of the base system the units run (`ExecStartPre=`) or that `systemd-analyze
/// verify` expects (`/bin/kill`, for the default `KillMode`).
const HOST_PROGRAMS: [&str; 2] = ["/bin/kill", "/bin/mkdir"];

/// `dpkg-deb -x` and `-e` into `target/debian/check/root`, with what `systemd-analyze
/// verify` resolves beside the units: the host's system units (targets) and
/// [`HOST_PROGRAMS`].
fn unpack(deb: &Path) -> Result<PathBuf> {
    let root = util::target_dir().join("debian").join("check").join("root");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    let units = root.join("lib/systemd");
    fs::create_dir_all(&units).with_context(|| format!("creating {}", units.display()))?;
    util::run(
        Command::new("cp")
            .arg("-a")
            .arg("/lib/systemd/system")
            .arg(&units),
    )
    .context("copying the host's system units (is systemd installed?)")?;
    fs::create_dir_all(root.join("bin"))?;
    for program in HOST_PROGRAMS {
        fs::copy(program, root.join(program.trim_start_matches('/')))
            .with_context(|| format!("copying {program}"))?;
    }
    util::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
    util::run(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(deb)
            .arg(root.join("DEBIAN")),
    )?;
    Ok(root)
}

/// One entry of `dpkg-deb --contents` (tar's long listing): mode, owner, path.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    mode: String,
    owner: String,
    path: String,
}

fn parse_contents(listing: &str) -> Vec<Entry> {
    listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let mode = words.next()?.to_owned();
            let owner = words.next()?.to_owned();
            // size, date, time, then the path (which has no spaces here).
            let path = words.nth(3)?.trim_start_matches("./").to_owned();
            Some(Entry { mode, owner, path })
        })
        .collect()
}

fn contents(deb: &Path) -> Result<String> {
    let listing = util::output(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    let entries = parse_contents(&listing);
    for (path, mode) in FILES {
        let entry = entries
            .iter()
            .find(|e| e.path == path)
            .with_context(|| format!("/{path} is not in the package"))?;
        ensure!(
            entry.mode == mode,
            "/{path} has mode {}, not {mode}",
            entry.mode
        );
    }
    // cargo-deb writes numeric owners.
    if let Some(e) = entries
        .iter()
        .find(|e| !["root/root", "0/0"].contains(&e.owner.as_str()))
    {
        bail!("/{} belongs to {}, not root", e.path, e.owner);
    }
    if let Some(e) = entries.iter().find(|e| e.path.contains("nemoclaw-bench")) {
        bail!(
            "/{} is in the package: the benchmark harness is not shipped",
            e.path
        );
    }
    Ok(format!("{} entries", entries.len()))
}

fn same_as_sources(root: &Path) -> Result<String> {
    let workspace = util::workspace_root();
    let pairs = SOURCES
        .iter()
        .map(|&(packaged, source)| (root.join(packaged), workspace.join(source)))
        .chain(SCRIPTS.iter().map(|name| {
            (
                root.join("DEBIAN").join(name),
                workspace.join("packaging/debian").join(name),
            )
        }));
    for (packaged, source) in pairs {
        let read = |p: &Path| fs::read(p).with_context(|| format!("reading {}", p.display()));
        ensure!(
            read(&packaged)? == read(&source)?,
            "{} differs from {}",
            packaged.display(),
            source.display()
        );
    }
    Ok(String::new())
}

/// A control field's value from `dpkg-deb --field`.
fn field(deb: &Path, name: &str) -> Result<String> {
    Ok(
        util::output(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))?
            .trim()
            .to_owned(),
    )
}

fn control(deb: &Path) -> Result<String> {
    ensure!(
        field(deb, "Package")? == DEB_NAME,
        "Package is not {DEB_NAME}"
    );
    ensure!(
        field(deb, "Architecture")? == "amd64",
        "Architecture is not amd64"
    );
    let depends = field(deb, "Depends")?;
    for needed in ["libc6", "adduser"] {
        ensure!(
            depends.split(',').any(|d| d.trim().starts_with(needed)),
            "Depends ({depends}) lacks {needed}"
        );
    }
    Ok(format!(
        "Version {}, Depends: {depends}",
        field(deb, "Version")?
    ))
}

fn conffiles(root: &Path) -> Result<String> {
    let path = root.join("DEBIAN/conffiles");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut listed: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    listed.sort_unstable();
    let expected = ["/etc/nemoclaw/nemoclaw.yaml", "/etc/nemoclaw/router.yaml"];
    ensure!(
        listed == expected,
        "conffiles are {listed:?}, not {expected:?}"
    );
    Ok(listed.join(" "))
}

fn scripts(root: &Path) -> Result<String> {
    for name in SCRIPTS {
        let path = root.join("DEBIAN").join(name);
        let mode = fs::metadata(&path)
            .with_context(|| format!("the package has no {name}"))?
            .permissions()
            .mode();
        ensure!(mode & 0o111 != 0, "{name} is not executable ({mode:o})");
        util::output(Command::new("sh").arg("-n").arg(&path))
            .with_context(|| format!("{name} does not parse"))?;
    }
    Ok(SCRIPTS.join(" "))
}

/// Whether `binary` holds, past its own header, a 64-bit little-endian ELF object for BPF
/// (`e_machine` 247): the eBPF object the build script embeds.
fn embeds_bpf_object(binary: &[u8]) -> bool {
    const ELF64_LE: &[u8] = b"\x7fELF\x02\x01\x01";
    const EM_BPF: [u8; 2] = 247u16.to_le_bytes();
    binary
        .windows(ELF64_LE.len())
        .enumerate()
        .skip(1)
        .any(|(at, w)| w == ELF64_LE && binary.get(at + 18..at + 20) == Some(&EM_BPF[..]))
}

fn binary(deb: &Path, root: &Path) -> Result<String> {
    let bin = root.join("usr/bin/nemoclaw");
    let version_line = util::output(Command::new(&bin).arg("--version"))?;
    let version = field(deb, "Version")?;
    ensure!(
        version_line.split_whitespace().any(|w| w == version),
        "`nemoclaw --version` says {:?}, the package is {version}",
        version_line.trim()
    );
    let bytes = fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    ensure!(
        embeds_bpf_object(&bytes),
        "{} carries no eBPF object",
        bin.display()
    );
    Ok(version_line.trim().to_owned())
}

fn systemd_analyze(root: &Path) -> Command {
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg(format!("--root={}", root.display()));
    cmd
}

/// `systemd-analyze verify`: every key known, every referenced unit and program present.
/// It only warns about unknown keys, so any output at all fails the check.
fn verify_units(root: &Path) -> Result<String> {
    let out = util::capture(
        systemd_analyze(root)
            .arg("verify")
            .args(UNITS.map(|(unit, _)| unit)),
    )?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify ({}): {}",
        out.status,
        said.trim()
    );
    Ok(String::new())
}

/// The overall exposure from `systemd-analyze security` output ("... level for U: 3.9 OK").
fn parse_exposure(output: &str) -> Option<f64> {
    output
        .lines()
        .find(|l| l.contains("Overall exposure level"))?
        .rsplit(": ")
        .next()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `systemd-analyze security --offline=yes --threshold=N UNIT`: the exposure, and whether it
/// stays at or below `threshold` tenths.
fn security(root: &Path, unit: &str, threshold: u32) -> Result<(f64, bool)> {
    let out = util::capture(
        systemd_analyze(root)
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--threshold={threshold}"))
            .arg(unit),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure = parse_exposure(&text).with_context(|| {
        format!(
            "no exposure in systemd-analyze security's output: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    Ok((exposure, out.status.success()))
}

fn exposure(root: &Path) -> Result<String> {
    let mut found = Vec::new();
    for (unit, threshold) in UNITS {
        let (exposure, within) = security(root, unit, threshold)?;
        ensure!(
            within,
            "{unit}: exposure {exposure:.1} is above {:.1}: a hardening setting was weakened",
            f64::from(threshold) / 10.0
        );
        found.push(format!("{unit} {exposure:.1}"));
    }
    Ok(found.join(", "))
}

/// Settings whose removal must push the daemon's unit over its threshold.
const HARDENING: [&str; 8] = [
    "CapabilityBoundingSet=",
    "NoNewPrivileges=",
    "Protect",
    "Private",
    "Restrict",
    "SystemCall",
    "MemoryDenyWriteExecute=",
    "LockPersonality=",
];

/// The daemon's unit without its hardening, beside it in the scratch root, must fail the
/// same check: proof that the threshold bites.
fn exposure_check_bites(root: &Path) -> Result<String> {
    let (unit, threshold) = UNITS[0];
    let dir = root.join("lib/systemd/system");
    let text = fs::read_to_string(dir.join(unit))?;
    let weakened: Vec<&str> = text
        .lines()
        .filter(|l| !HARDENING.iter().any(|h| l.starts_with(h)))
        .collect();
    let name = "nemoclaw-unhardened.service";
    fs::write(dir.join(name), weakened.join("\n"))?;
    let (exposure, within) = security(root, name, threshold)?;
    fs::remove_file(dir.join(name))?;
    ensure!(
        !within,
        "without its hardening the daemon's unit still passes (exposure {exposure:.1})"
    );
    Ok(format!("unhardened: {exposure:.1}"))
}

/// The packaged router started on the packaged `router.yaml` (on a free port, its daemon
/// socket absent: it asks the daemon only per request) must get as far as listening; a
/// configuration it refuses stops it before.
fn router_config(root: &Path) -> Result<String> {
    let mut cmd = Command::new(root.join("usr/bin/nemoclaw"));
    cmd.arg("router")
        .arg("--config")
        .arg(root.join("etc/nemoclaw/router.yaml"))
        .args(["--listen", "127.0.0.1:0", "--daemon-socket"])
        .arg(root.join("run/nemoclaw/nemoclaw.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if util::is_root() {
        // It refuses to serve as root.
        cmd.args(["--user", "nobody"]);
    }
    let mut child = cmd.spawn().context("starting the packaged router")?;
    let stdout = child.stdout.take().context("router stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let out = child.wait_with_output().context("waiting for the router")?;
    match line {
        Ok(line) if line.contains("listening on") => Ok(line.trim().to_owned()),
        _ => bail!(
            "the router did not start: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

fn daemon_config(root: &Path) -> Result<String> {
    let out = util::output(
        Command::new(root.join("usr/bin/nemoclaw"))
            .args(["config", "check"])
            .arg(root.join("etc/nemoclaw/nemoclaw.yaml")),
    )?;
    ensure!(
        out.contains("/var/lib/nemoclaw/state.json"),
        "the effective settings do not put the state in /var/lib/nemoclaw: {out}"
    );
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tar_listings() {
        let listing = "drwxr-xr-x root/root         0 2026-12-06 06:00 ./\n\
                       -rw-r----- root/root       512 2026-12-06 06:00 ./etc/nemoclaw/router.yaml\n";
        assert_eq!(
            parse_contents(listing)[1],
            Entry {
                mode: "-rw-r-----".into(),
                owner: "root/root".into(),
                path: "etc/nemoclaw/router.yaml".into(),
            }
        );
    }

    #[test]
    fn reads_the_overall_exposure() {
        let out = "  NAME   DESCRIPTION   EXPOSURE\n\
                   \u{2192} Overall exposure level for nemoclaw.service: 3.9 OK \u{1f642}\n";
        assert_eq!(parse_exposure(out), Some(3.9));
        assert_eq!(parse_exposure("nothing"), None);
    }

    #[test]
    fn finds_an_embedded_bpf_object_only_past_the_header() {
        let elf = |machine: u16| {
            let mut h = b"\x7fELF\x02\x01\x01".to_vec();
            h.resize(18, 0);
            h.extend_from_slice(&machine.to_le_bytes());
            h
        };
        let host = elf(62); // x86-64
        let mut binary = host.clone();
        binary.extend_from_slice(b"padding");
        assert!(!embeds_bpf_object(&binary));
        binary.extend_from_slice(&elf(247));
        assert!(embeds_bpf_object(&binary));
        // A BPF header at offset 0 is the file itself, not something embedded.
        assert!(!embeds_bpf_object(&elf(247)));
    }
}
