//! Landlock's system calls and file-system rights, raw through libc: the one layer both
//! Landlock peers use (`peer/landlock.rs` in the micro benchmarks, `landlock_exec.rs` in the
//! macro ones).

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
};

use anyhow::{Context as _, bail};

pub const EXECUTE: u64 = 1 << 0;
pub const WRITE_FILE: u64 = 1 << 1;
pub const READ_FILE: u64 = 1 << 2;
pub const READ_DIR: u64 = 1 << 3;
pub const REMOVE_FILE: u64 = 1 << 5;
pub const MAKE_REG: u64 = 1 << 8;
/// `REMOVE_DIR` .. `MAKE_SYM` (bits 4 to 12), ABI 1.
pub const DIR_CHANGES: u64 = 0x1ff0;
pub const REFER: u64 = 1 << 13;
pub const TRUNCATE: u64 = 1 << 14;
pub const IOCTL_DEV: u64 = 1 << 15;
/// The rights a rule on a file (not a directory) may carry; the kernel refuses the others.
pub const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The running kernel's Landlock ABI version (an error if Landlock is off).
pub fn abi() -> anyhow::Result<i64> {
    // SAFETY: the documented version query: no attribute (NULL, size 0), the version flag.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if abi < 1 {
        bail!(
            "Landlock is not available on this kernel (or not in its LSM list): {}",
            io::Error::last_os_error()
        );
    }
    Ok(abi)
}

/// A ruleset being built: rules added, not yet enforced.
pub struct Ruleset {
    fd: OwnedFd,
}

impl Ruleset {
    /// A ruleset that handles the rights `handled` (what no rule allows is denied).
    pub fn create(handled: u64) -> anyhow::Result<Self> {
        let attr = RulesetAttr {
            handled_access_fs: handled,
        };
        // SAFETY: a valid attribute of the size we pass; the result is a new fd or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &raw const attr,
                size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("landlock_create_ruleset");
        }
        let fd = i32::try_from(fd).context("ruleset fd")?;
        // SAFETY: the kernel just gave us this fd.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Allows `access` beneath `path` (only the file rights of it, if `path` is a file).
    pub fn allow_beneath(&self, path: &Path, access: u64) -> anyhow::Result<()> {
        let target = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("opening {} (O_PATH)", path.display()))?;
        let is_dir = target
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .is_dir();
        let attr = PathBeneathAttr {
            allowed_access: if is_dir { access } else { access & FILE_RIGHTS },
            parent_fd: target.as_raw_fd(),
        };
        // SAFETY: a ruleset fd, the rule type and its attribute; the fd stays open for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd.as_raw_fd(),
                RULE_PATH_BENEATH,
                &raw const attr,
                0u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("landlock_add_rule {}", path.display()));
        }
        Ok(())
    }

    /// Enforces the ruleset on the calling thread: irreversible.
    pub fn restrict_self(&self) -> anyhow::Result<()> {
        // SAFETY: a ruleset fd and no flags.
        let rc =
            unsafe { libc::syscall(libc::SYS_landlock_restrict_self, self.fd.as_raw_fd(), 0u32) };
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("landlock_restrict_self");
        }
        Ok(())
    }
}
