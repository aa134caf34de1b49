//! `nemoclaw doctor`: what this kernel offers and what the user must do about what it lacks.

use std::path::Path;

use crate::{
    kernel::{
        btf::{Btf, VMLINUX_BTF},
        lsm::{BPF_LSM_ACTIVE_BY_DEFAULT, BPF_LSM_MUST_BE_ADDED, LsmList},
        probe,
    },
    sandbox::cgroup::cgroup2_mount,
};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print nothing but one line; exit 0 iff BPF LSM is active and its programs load and
    /// attach here.
    #[arg(long)]
    pub quiet_lsm_check: bool,
}

struct Report {
    problems: usize,
}

impl Report {
    fn ok(what: &str, detail: &str) {
        println!("  ok    {what}: {detail}");
    }
    fn bad(&mut self, what: &str, detail: &str, fix: &str) {
        self.problems += 1;
        println!("  FAIL  {what}: {detail}\n        fix: {fix}");
    }
}

#[must_use]
pub fn doctor(args: &DoctorArgs) -> i32 {
    if args.quiet_lsm_check {
        return match probe::lsm_loadable() {
            Ok(()) => {
                println!("BPF LSM is active and its programs load and attach on this kernel");
                0
            }
            Err(e) => {
                println!("BPF LSM programs cannot run here: {e}");
                1
            }
        };
    }
    let mut r = Report { problems: 0 };
    let uname = nix::sys::utsname::uname().ok();
    let release = uname.as_ref().map_or_else(
        || "unknown".into(),
        |u| u.release().to_string_lossy().into_owned(),
    );
    println!("NemoClaw doctor");
    Report::ok("kernel", &release);
    if Path::new(VMLINUX_BTF).exists() {
        Report::ok("BTF", VMLINUX_BTF);
    } else {
        r.bad(
            "BTF",
            &format!("{VMLINUX_BTF} is missing"),
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        );
    }
    match cgroup2_mount() {
        Ok(p) => Report::ok("cgroup v2", &p.display().to_string()),
        Err(e) => r.bad("cgroup v2", &e.to_string(), "mount it: `mount -t cgroup2 none /sys/fs/cgroup` (or boot with systemd.unified_cgroup_hierarchy=1)"),
    }
    let root = nix::unistd::geteuid().is_root();
    if root {
        Report::ok("privileges", "running as root");
    } else {
        r.bad(
            "privileges",
            "not root: probes below need root",
            "run `sudo nemoclaw doctor`",
        );
    }
    match LsmList::read() {
        Ok(list) => match list.inactive_reason() {
            None => Report::ok("BPF LSM active", &list.joined()),
            Some((why, fix)) => r.bad(
                "BPF LSM active",
                &why,
                &format!(
                    "{fix}.\n        BPF LSM is active by default on {BPF_LSM_ACTIVE_BY_DEFAULT}; it must be \
                     added on {BPF_LSM_MUST_BE_ADDED}.\n        SLES: the same edit, then \
                     `grub2-mkconfig -o /boot/grub2/grub.cfg`; Flatcar: `set linux_append=\"{}\"` in \
                     /oem/grub.cfg (needs CONFIG_BPF_LSM=y, which these kernels have)",
                    list.boot_parameter_with_bpf()
                ),
            ),
        },
        Err(e) => r.bad(
            "BPF LSM active",
            &e.to_string(),
            "mount securityfs: `mount -t securityfs securityfs /sys/kernel/security`",
        ),
    }
    match probe::lsm_loadable() {
        Ok(()) => {
            Report::ok("BPF LSM loadable", "a trial program loaded and attached (process, filesystem and privilege controls available)");
            if let Ok(btf) = Btf::from_sys_fs() {
                Report::ok("path resolution", &path_resolution(&btf));
            }
        }
        Err(e) => r.bad(
            "BPF LSM loadable",
            &format!("a trial program failed: {e}"),
            "this kernel or its hypervisor forbids BPF LSM programs (e.g. BPF trampolines disabled); \
             policies with process, filesystem or privilege rules cannot run here. Use a kernel with BPF LSM; \
             developers: `cargo xtask vm`",
        ),
    }
    println!("{} problem(s)", r.problems);
    i32::from(r.problems > 0)
}

/// How the filesystem hooks build paths on this kernel: `d_path` where it lets them, else
/// the walk (the same paths, at more cost; `docs/filesystem.md`, "Paths").
fn path_resolution(btf: &Btf) -> String {
    let helper = if probe::d_path_in_path_hooks(btf) {
        "bpf_d_path in the path_* hooks but path_mknod"
    } else {
        "the path_* hooks walk (no bpf_d_path there)"
    };
    let mknod = if probe::path_d_path_kfunc(btf).is_some() {
        "the bpf_path_d_path kfunc in path_mknod"
    } else {
        "path_mknod walks (no bpf_path_d_path kfunc)"
    };
    format!("file_open: bpf_d_path; {helper}; {mknod}")
}
