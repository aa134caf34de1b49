//! The fleet guests' root image: Debian 12 from Debian's packages (`mmdebstrap`), with
//! systemd as init, sshd and Python for Ansible; made an ext4 image without mounting anything (`mke2fs -d`).
//!
//! Cached under `/var/cache/nemoclaw/fleet/`, named by a hash of everything that goes into
//! it (this recipe and the kernel release): built once per recipe, and each VM boots a qcow2
//! overlay on it, so the base stays clean.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::setup::KernelTree;
use crate::util;

/// Where the images are kept (outside the checkout: CI clones afresh and reuses them).
pub const CACHE_DIR: &str = "/var/cache/nemoclaw/fleet";

/// The Debian release of the guests.
const SUITE: &str = "bookworm";

/// What the guests need besides the `apt` variant: systemd as init (and udev, which
/// systemd-networkd waits for), sshd, Python with apt's bindings (Ansible's `apt` module),
/// sudo (the playbook's `become`), and adduser (the package's dependency, on every Debian
/// installation but not in the `apt` variant).
const PACKAGES: [&str; 9] = [
    "systemd-sysv",
    "sudo",
    "adduser",
    "udev",
    "openssh-server",
    "python3",
    "python3-apt",
    "kmod",
    "iproute2",
];

/// The guest's address under QEMU's user-mode network (always the same there), its
/// gateway and DNS forwarder.
const NETWORK: &str =
    "[Match]\nName=en* eth*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n";

/// A name only the guests' `/etc/hosts` knows: `nemoclaw policy check` resolves names with
/// the C library (which reads `/etc/hosts`), the daemon asks the nameservers of its
/// `resolv.conf` directly. The fleet test's "validates but fails to apply" policy denies it.
pub const HOSTS_ONLY_NAME: &str = "fleet-db.nemoclaw.internal";

/// Files written into the root after `mmdebstrap`: (path, content).
fn files() -> Vec<(&'static str, String)> {
    vec![
        (
            "etc/fstab",
            "/dev/vda / ext4 rw,errors=remount-ro 0 1\n".into(),
        ),
        ("etc/hostname", "fleet\n".into()),
        // What the fleet test's policies deny and allow (`cat` in the sandbox).
        (
            "etc/nemoclaw-fleet-secret",
            "the fleet test's secret\n".into(),
        ),
        (
            "etc/nemoclaw-fleet-public",
            "the fleet test's public file\n".into(),
        ),
        ("etc/resolv.conf", "nameserver 10.0.2.3\n".into()),
        (
            "etc/hosts",
            format!("127.0.0.1 localhost\n10.0.2.50 {HOSTS_ONLY_NAME}\n"),
        ),
        ("etc/systemd/network/10-qemu-user.network", NETWORK.into()),
        (
            "etc/ssh/sshd_config.d/nemoclaw-fleet.conf",
            "PermitRootLogin prohibit-password\nUseDNS no\n".into(),
        ),
        // Nothing in the guests needs a real clock sync, periodic apt runs or scrubbing:
        // under emulation they only slow the test down.
        (
            "etc/systemd/journald.conf.d/nemoclaw-fleet.conf",
            "[Journal]\nStorage=volatile\n".into(),
        ),
    ]
}

/// Units enabled (`wants` directory, unit) and masked.
const ENABLE: [(&str, &str); 2] = [
    ("multi-user.target.wants", "systemd-networkd.service"),
    ("sockets.target.wants", "systemd-networkd.socket"),
];
/// Masked: under emulation every unit costs; the guests need none of these (no timers, no
/// console logins, no module loading: the initramfs loads the few modules they use).
const MASK: [&str; 19] = [
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "getty@tty1.service",
    "serial-getty@ttyS0.service",
    "getty-static.service",
    "systemd-networkd-wait-online.service",
    "modprobe@dm_mod.service",
    "modprobe@efi_pstore.service",
    "modprobe@fuse.service",
    "modprobe@loop.service",
    "modprobe@drm.service",
    "systemd-modules-load.service",
    "kmod-static-nodes.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-pstore.service",
];

/// The image's size (sparse: only what is written takes space).
const IMAGE_SIZE: &str = "3G";

/// Returns the cached base image for guests booted with `tree`, building it if needed.
pub fn ensure(tree: &KernelTree) -> Result<PathBuf> {
    let dir = PathBuf::from(CACHE_DIR);
    let image = dir.join(format!("debian-{SUITE}-{:016x}.ext4", recipe_hash(tree)));
    if image.is_file() {
        return Ok(image);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = Instant::now();
    println!(
        "fleet: building the guest image {} (mmdebstrap, once per recipe)",
        image.display()
    );
    let root = dir.join(format!("root.tmp{}", std::process::id()));
    let result = build(tree, &root, &image);
    let _ = std::fs::remove_dir_all(&root);
    result?;
    // Older recipes' images are dead weight (about 700 MB each).
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path != image && path.extension().is_some_and(|e| e == "ext4") {
            let _ = std::fs::remove_file(&path);
        }
    }
    println!(
        "fleet: guest image built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(image)
}

fn recipe_hash(tree: &KernelTree) -> u64 {
    let mut hasher = DefaultHasher::new();
    (SUITE, PACKAGES, files(), ENABLE, MASK, IMAGE_SIZE).hash(&mut hasher);
    tree.release.hash(&mut hasher);
    hasher.finish()
}

fn build(tree: &KernelTree, root: &Path, image: &Path) -> Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    util::run(
        Command::new("mmdebstrap")
            .args([
                "--variant=apt",
                "--mode=root",
                "--format=directory",
                "--quiet",
            ])
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg(SUITE)
            .arg(root),
    )
    .context("building the guest root with mmdebstrap")?;
    customize(tree, root)?;
    let tmp = image.with_extension(format!("tmp{}", std::process::id()));
    util::run(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L", "nemoclaw-fleet", "-d"])
            .arg(root)
            .arg(&tmp)
            .arg(IMAGE_SIZE),
    )
    .context("making the ext4 image (mke2fs -d)")?;
    std::fs::rename(&tmp, image).with_context(|| format!("renaming {}", tmp.display()))
}

/// Writes [`files`], enables and masks units.
fn customize(tree: &KernelTree, root: &Path) -> Result<()> {
    for (path, content) in files() {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        // resolv.conf may be a symlink: replace it, not its target.
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    let units = root.join("etc/systemd/system");
    for (wants, unit) in ENABLE {
        let dir = units.join(wants);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        symlink(&format!("/lib/systemd/system/{unit}"), &dir.join(unit))?;
    }
    for unit in MASK {
        symlink("/dev/null", &units.join(unit))?;
    }
    let mut motd = String::new();
    let _ = writeln!(
        motd,
        "NemoClaw fleet test guest (Debian {SUITE}, kernel {})",
        tree.release
    );
    std::fs::write(root.join("etc/motd"), motd).context("writing motd")
}

fn symlink(target: &str, link: &Path) -> Result<()> {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} -> {target}", link.display()))
}
