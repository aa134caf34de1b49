//! Builds the eBPF object (`nemoclaw-ebpf`) with aya-build and embeds it in the binary.
//! bpf-linker is looked up on PATH and where `cargo xtask setup` installs it.

use std::{env, path::PathBuf};

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let home = env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let linker_dir = home.join(".cache/nemoclaw/bpf-linker/bin");
    let path = env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env::split_paths(&path).collect();
    dirs.insert(0, linker_dir.clone());
    if !dirs.iter().any(|d| d.join("bpf-linker").is_file()) {
        return Err(anyhow!(
            "bpf-linker not found on PATH nor in {}: run `cargo xtask setup`",
            linker_dir.display()
        ));
    }
    let joined = env::join_paths(dirs).context("PATH")?;
    // SAFETY: build scripts are single-threaded; the child cargo inherits this PATH.
    unsafe { env::set_var("PATH", joined) };
    println!(
        "cargo:rerun-if-changed={}",
        linker_dir.join("bpf-linker").display()
    );

    let metadata_dir = env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = PathBuf::from(metadata_dir).join("../nemoclaw-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "nemoclaw-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
