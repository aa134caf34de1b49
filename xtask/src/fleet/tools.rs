//! What the fleet test needs on this machine, installed only when missing (Debian's
//! packages: `ansible-core` 2.14 and `ansible-lint` 6.13 work together).

use anyhow::Result;

use crate::setup::{self, Outcome};

/// `mmdebstrap` builds the guests' root, `e2fsprogs` makes it an image, `qemu-utils`
/// (`qemu-img`) the per-VM overlays; Ansible and SSH drive the guests.
pub const APT_PACKAGES: [&str; 6] = [
    "mmdebstrap",
    "e2fsprogs",
    "qemu-utils",
    "openssh-client",
    "ansible-core",
    "ansible-lint",
];

pub fn ensure() -> Result<()> {
    if setup::ensure_apt_packages(&APT_PACKAGES)? == Outcome::Installed {
        println!("fleet: installed {}", APT_PACKAGES.join(" "));
    }
    Ok(())
}
