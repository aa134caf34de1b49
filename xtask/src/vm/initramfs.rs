//! The VM's initramfs: static busybox, the 9p modules, and an `/init` that mounts the host's
//! `/` read-only over 9p, prepares it, and runs the guest script in a chroot.
//!
//! The archive is written here in the cpio "newc" format (so `/dev/console` can be a device
//! node without root or `mknod`) and cached per kernel release and content hash.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::setup::KernelTree;
use crate::util;

/// Printed by `/init` right before it runs the guest script.
pub const START_MARKER: &str = "@@nemoclaw-vm-start@@";
/// Printed by `/init` as `<prefix><nonce>:<exit code>` after the guest script.
pub const EXIT_MARKER_PREFIX: &str = "@@nemoclaw-vm-exit:";

/// The modules we ask for; their `depends=` closure is loaded first. Built-in ones are skipped.
/// `tcp_diag` (with `inet_diag`): the privacy router asks socket diagnostics which cgroup a
/// client socket belongs to; a Debian system loads it on demand through `modprobe`, which
/// this initramfs does not have.
const WANTED_MODULES: [&str; 4] = ["virtio_pci", "9pnet_virtio", "9p", "tcp_diag"];

/// The static busybox every initramfs is built around (package busybox-static).
pub(crate) const BUSYBOX: &str = "/bin/busybox";
const APPLETS: [&str; 15] = [
    "sh", "mount", "insmod", "mkdir", "chroot", "poweroff", "cat", "echo", "ip", "setsid",
    "cttyhack", "sleep", "ls", "sync", "env",
];

const INIT: &str = r#"#!/bin/sh
# NemoClaw VM init: mount the host's / (read-only, 9p), prepare it, run the guest script.
export PATH=/bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
mount -t sysfs sys /sys
for m in @MODULES@; do
    insmod "/lib/modules/$m.ko" || echo "nemoclaw-vm: insmod $m failed"
done
script= nonce= interactive=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        nemoclaw_script=*) script="${arg#nemoclaw_script=}" ;;
        nemoclaw_nonce=*) nonce="${arg#nemoclaw_nonce=}" ;;
        nemoclaw_interactive=1) interactive=1 ;;
    esac
done
finish() {
    echo "@EXIT@$nonce:$1"
    sync
    # Give the UART time to drain before the machine disappears.
    sleep 0.2
    poweroff -f
}
R=/newroot
mkdir -p $R
# cache=loose: the guest only reads the host tree during one short command; caching makes
# repeated opens (python's start-up, test binaries) about five times faster under TCG.
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot $R; then
    echo "nemoclaw-vm: cannot mount the host root over 9p"
    finish 124
fi
mount -t proc proc $R/proc
mount -t sysfs sys $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=1777 tmp $R/tmp
mount -t tmpfs -o mode=0755 run $R/run
mount -t securityfs securityfs $R/sys/kernel/security
mount -t bpf bpf $R/sys/fs/bpf
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
ip link set lo up
echo "@START@"
# `env -i`: the kernel hands unknown command-line words to init as environment variables;
# the guest script sets the environment the command gets.
if [ -n "$interactive" ]; then
    setsid cttyhack env -i /bin/chroot $R /bin/sh "$script"
else
    env -i /bin/chroot $R /bin/sh "$script" </dev/null
fi
finish $?
"#;

/// Returns the initramfs for this kernel, building it if the cached one is missing or stale.
pub fn ensure(tree: &KernelTree) -> Result<PathBuf> {
    let modules = module_load_order(tree)?;
    let names: Vec<&str> = modules.iter().map(|(name, _)| name.as_str()).collect();
    let init = INIT
        .replace("@MODULES@", &names.join(" "))
        .replace("@EXIT@", EXIT_MARKER_PREFIX)
        .replace("@START@", START_MARKER);

    let busybox_meta = std::fs::metadata(BUSYBOX)
        .with_context(|| format!("{BUSYBOX} missing (package busybox-static)"))?;
    let mut hasher = DefaultHasher::new();
    init.hash(&mut hasher);
    modules.hash(&mut hasher);
    busybox_meta.len().hash(&mut hasher);
    busybox_meta.modified().ok().hash(&mut hasher);
    let dir = util::vm_dir().join("initramfs");
    let image = dir.join(format!("{}-{:016x}.cpio", tree.release, hasher.finish()));
    if image.is_file() {
        return Ok(image);
    }

    let mut cpio = Newc::default();
    for d in ["bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"] {
        cpio.dir(d);
    }
    cpio.char_device("dev/console", 0o600, 5, 1);
    let busybox = std::fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX}"))?;
    cpio.file("bin/busybox", 0o755, &busybox);
    for applet in APPLETS {
        cpio.symlink(&format!("bin/{applet}"), "busybox");
    }
    cpio.file("init", 0o755, init.as_bytes());
    for (name, path) in &modules {
        let bytes = read_module(path)?;
        cpio.file(&format!("lib/modules/{name}.ko"), 0o644, &bytes);
    }
    let bytes = cpio.finish();

    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Drop this kernel's stale images (an older init or module set).
    let stale_prefix = format!("{}-", tree.release);
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let is_image = path.extension().is_some_and(|e| e == "cpio");
        if is_image
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with(&stale_prefix)
        {
            let _ = std::fs::remove_file(&path);
        }
    }
    // Unique per process: two VMs may start at once.
    let tmp = image.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &image).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(image)
}

/// Module names compare with `-` and `_` equal; the kernel uses `_`.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a `.ko`, `.ko.xz` or `.ko.zst` path.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file
        .strip_suffix(".ko")
        .or_else(|| file.strip_suffix(".ko.xz"))
        .or_else(|| file.strip_suffix(".ko.zst"))?;
    Some(normalize(stem))
}

fn index_modules(dir: &Path, index: &mut HashMap<String, PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            index_modules(&path, index)?;
        } else if let Some(name) = module_name(&path) {
            index.insert(name, path);
        }
    }
    Ok(())
}

/// [`WANTED_MODULES`] and their dependencies, in load order.
fn module_load_order(tree: &KernelTree) -> Result<Vec<(String, PathBuf)>> {
    modules_with_deps(tree, &WANTED_MODULES)
}

/// The `wanted` modules and their dependencies (from each module's `depends=`), dependencies
/// first, skipping those built into the kernel. The packages carry no modules.dep.
pub(crate) fn modules_with_deps(
    tree: &KernelTree,
    wanted: &[&str],
) -> Result<Vec<(String, PathBuf)>> {
    let builtin_list = tree.modules_dir.join("modules.builtin");
    let builtin: HashSet<String> = std::fs::read_to_string(&builtin_list)
        .with_context(|| format!("reading {}", builtin_list.display()))?
        .lines()
        .filter_map(|l| module_name(Path::new(l.trim())))
        .collect();
    let mut index = HashMap::new();
    index_modules(&tree.modules_dir.join("kernel"), &mut index)?;

    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for name in wanted {
        visit(&normalize(name), &builtin, &index, &mut seen, &mut order)?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    builtin: &HashSet<String>,
    index: &HashMap<String, PathBuf>,
    seen: &mut HashSet<String>,
    order: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    if builtin.contains(name) || !seen.insert(name.to_string()) {
        return Ok(());
    }
    let path = index
        .get(name)
        .with_context(|| format!("module {name} is neither built in nor shipped"))?;
    for dep in depends(&read_module(path)?) {
        visit(&normalize(&dep), builtin, index, seen, order)?;
    }
    order.push((name.to_string(), path.clone()));
    Ok(())
}

/// The `depends=` entry of a module's `.modinfo` section.
fn depends(module: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = module.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &module[start + KEY.len()..];
    let value = &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())];
    String::from_utf8_lossy(value)
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// A module's bytes, decompressed (`insmod` in busybox cannot read `.ko.xz`).
pub(crate) fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let decompressor = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else {
        return std::fs::read(path).with_context(|| format!("reading {name}"));
    };
    let out = util::capture(Command::new(decompressor).arg("-dc").arg(path))?;
    if !out.status.success() {
        bail!("{decompressor} -dc {name} failed ({})", out.status);
    }
    Ok(out.stdout)
}

/// A cpio archive in the "newc" format the kernel unpacks.
#[derive(Default)]
pub(crate) struct Newc {
    bytes: Vec<u8>,
    next_ino: u32,
}

impl Newc {
    pub(crate) fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[], (0, 0));
    }

    pub(crate) fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | perm, data, (0, 0));
    }

    pub(crate) fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120_777, target.as_bytes(), (0, 0));
    }

    pub(crate) fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, 0o020_000 | perm, &[], (major, minor));
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.next_ino += 1;
        let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        let fields = [
            self.next_ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(data.len()).unwrap_or(u32::MAX),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
            0, // check
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::{Newc, depends, module_name};
    use std::path::Path;

    #[test]
    fn reads_modinfo_depends() {
        assert_eq!(
            depends(b"xx\0license=GPL\0depends=netfs,9pnet\0intree=Y\0"),
            ["netfs", "9pnet"]
        );
        assert!(depends(b"\0depends=\0").is_empty());
        assert!(depends(b"nothing here").is_empty());
    }

    #[test]
    fn names_modules_like_the_kernel() {
        assert_eq!(
            module_name(Path::new("a/virtio-rng.ko.xz")).as_deref(),
            Some("virtio_rng")
        );
        assert_eq!(module_name(Path::new("9p.ko")).as_deref(), Some("9p"));
        assert_eq!(module_name(Path::new("modules.order")), None);
    }

    #[test]
    fn newc_entries_are_aligned() {
        let mut cpio = Newc::default();
        cpio.file("init", 0o755, b"abcde");
        let bytes = cpio.finish();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
