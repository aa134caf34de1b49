//! The fleet guests' initramfs: loads the modules the guests need (virtio-blk, ext4, the NIC),
//! mounts `/dev/vda`, writes the guest's hostname and root's `authorized_keys` from the
//! kernel command line, and hands over to the image's systemd (`switch_root`).
//!
//! Built with the VM harness's cpio writer and module resolver, cached per kernel release
//! and content hash in `target/nemoclaw-vm/fleet/`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::setup::KernelTree;
use crate::util;
use crate::vm::initramfs::{BUSYBOX, Newc, modules_with_deps, read_module};

/// The root disk's driver and file system (ext4 checksums its metadata with crc32c, which
/// the kernel finds through the crypto API: no `modprobe` here to load it on demand), and
/// the NIC's driver. These are all the modules the guests load: the image has no
/// `/lib/modules`, so udev's coldplug (dozens of emulated devices) loads nothing, which
/// under emulation saves more than the rest of the boot.
const MODULES: [&str; 4] = ["virtio_blk", "crc32c_generic", "ext4", "virtio_net"];

const APPLETS: [&str; 11] = [
    "sh",
    "mount",
    "umount",
    "insmod",
    "mkdir",
    "cat",
    "echo",
    "sleep",
    "switch_root",
    "chmod",
    "poweroff",
];

/// Kernel parameters `/init` reads: the hostname, and root's SSH public key with the space
/// between its type and its base64 body written as `:` (one word on the command line).
pub const HOST_PARAM: &str = "nemoclaw_fleet_host";
pub const KEY_PARAM: &str = "nemoclaw_fleet_key";

const INIT: &str = r#"#!/bin/sh
# NemoClaw fleet guest init: mount the root disk, personalise it, start systemd.
export PATH=/bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
mount -t sysfs sys /sys
for m in @MODULES@; do
    insmod "/lib/modules/$m.ko" || echo "nemoclaw-fleet: insmod $m failed"
done
host= key=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        @HOST@=*) host="${arg#@HOST@=}" ;;
        @KEY@=*) key="${arg#@KEY@=}" ;;
    esac
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw /dev/vda /newroot; then
    echo "nemoclaw-fleet: cannot mount /dev/vda"
    poweroff -f
fi
if [ -n "$host" ]; then
    echo "$host" > /newroot/etc/hostname
fi
if [ -n "$key" ]; then
    mkdir -p /newroot/root/.ssh
    chmod 700 /newroot/root/.ssh
    echo "${key%%:*} ${key#*:}" > /newroot/root/.ssh/authorized_keys
    chmod 600 /newroot/root/.ssh/authorized_keys
fi
umount /sys
umount /proc
umount /dev
exec switch_root /newroot /sbin/init
"#;

/// Returns the initramfs for `tree`, building it if the cached one is missing or stale.
pub fn ensure(tree: &KernelTree) -> Result<PathBuf> {
    let modules = modules_with_deps(tree, &MODULES)?;
    let names: Vec<&str> = modules.iter().map(|(name, _)| name.as_str()).collect();
    let init = INIT
        .replace("@MODULES@", &names.join(" "))
        .replace("@HOST@", HOST_PARAM)
        .replace("@KEY@", KEY_PARAM);
    let mut hasher = DefaultHasher::new();
    init.hash(&mut hasher);
    modules.hash(&mut hasher);
    let dir = util::vm_dir().join("fleet");
    let image = dir.join(format!(
        "initramfs-{}-{:016x}.cpio",
        tree.release,
        hasher.finish()
    ));
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
        cpio.file(
            &format!("lib/modules/{name}.ko"),
            0o644,
            &read_module(path)?,
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = image.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, cpio.finish()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &image).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(image)
}
