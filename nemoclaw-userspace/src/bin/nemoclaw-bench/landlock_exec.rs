//! `nemoclaw-bench landlock-exec`: runs a command under a Landlock ruleset, the peer the
//! macro benchmarks (`macro_run.rs`, `start.rs`) compare `NemoClaw` with.
//!
//! Raw syscalls through libc (no Landlock crate): the ABI comes from
//! `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`, the ruleset handles
//! every file-system right that ABI knows, and each path gets a `path_beneath` rule:
//! `--ro` read (files and directories), `--rw` everything, `--exec` read and execute (a
//! file: Landlock judges `execve` and the ELF interpreter, opened for exec, by
//! `LANDLOCK_ACCESS_FS_EXECUTE`; shared libraries are mapped, which it does not judge).
//! Then `no_new_privs`, `landlock_restrict_self` and `execvp`. Network rights are not
//! handled: the benchmark's policies have no network section either.

use std::{
    ffi::{CString, OsString},
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use crate::landlock_sys::{
    self, DIR_CHANGES, EXECUTE, FILE_RIGHTS, IOCTL_DEV, READ_DIR, READ_FILE, REFER, TRUNCATE,
    WRITE_FILE,
};

#[derive(Debug, clap::Args)]
pub struct LandlockExecArgs {
    /// Read access beneath this path (repeatable).
    #[arg(long = "ro")]
    pub ro: Vec<PathBuf>,
    /// Every file-system access beneath this path (repeatable).
    #[arg(long = "rw")]
    pub rw: Vec<PathBuf>,
    /// Read and execute this file (repeatable).
    #[arg(long = "exec")]
    pub exec: Vec<PathBuf>,
    /// The command and its arguments (run with `execvp`).
    #[arg(required = true, last = true)]
    pub command: Vec<OsString>,
}

/// Every file-system right Landlock ABI `abi` handles.
pub fn handled_fs(abi: i64) -> u64 {
    let mut all = EXECUTE | WRITE_FILE | READ_FILE | READ_DIR | DIR_CHANGES;
    if abi >= 2 {
        all |= REFER;
    }
    if abi >= 3 {
        all |= TRUNCATE;
    }
    if abi >= 5 {
        all |= IOCTL_DEV;
    }
    all
}

/// What a rule grants, before it is cut down to the handled rights (and, for a file, to
/// the file rights).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    Read,
    ReadWrite,
    Exec,
}

/// The access mask of one rule: `grant` within `handled`, only file rights for a file.
pub fn rule_access(grant: Grant, handled: u64, is_dir: bool) -> u64 {
    let wanted = match grant {
        Grant::Read => READ_FILE | READ_DIR,
        Grant::ReadWrite => u64::MAX,
        Grant::Exec => READ_FILE | READ_DIR | EXECUTE,
    };
    let mask = if is_dir { u64::MAX } else { FILE_RIGHTS };
    wanted & handled & mask
}

/// The rules of `args` in order: (path, grant).
pub fn rules(args: &LandlockExecArgs) -> Vec<(&Path, Grant)> {
    let ro = args.ro.iter().map(|p| (p.as_path(), Grant::Read));
    let rw = args.rw.iter().map(|p| (p.as_path(), Grant::ReadWrite));
    let exec = args.exec.iter().map(|p| (p.as_path(), Grant::Exec));
    ro.chain(rw).chain(exec).collect()
}

/// Applies the ruleset to this process and executes the command; returns only on error.
pub fn run(args: &LandlockExecArgs) -> anyhow::Result<i32> {
    let handled = handled_fs(landlock_sys::abi()?);
    let ruleset = landlock_sys::Ruleset::create(handled)?;
    for (path, grant) in rules(args) {
        let is_dir = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .is_dir();
        ruleset.allow_beneath(path, rule_access(grant, handled, is_dir))?;
    }
    // SAFETY: a plain prctl.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        bail!("PR_SET_NO_NEW_PRIVS: {}", std::io::Error::last_os_error());
    }
    ruleset.restrict_self()?;
    drop(ruleset);
    let c_args: Vec<CString> = args
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .context("a NUL byte in the command")?;
    let mut ptrs: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: a NULL-terminated argv of live C strings.
    unsafe { libc::execvp(ptrs[0], ptrs.as_ptr()) };
    bail!(
        "executing {}: {}",
        args.command[0].to_string_lossy(),
        std::io::Error::last_os_error()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: LandlockExecArgs,
    }

    #[test]
    fn arguments_give_rules_in_order() {
        let cli = Cli::try_parse_from([
            "x", "--ro", "/usr", "--rw", "/tmp/w", "--exec", "/bin/sh", "--ro", "/etc", "--", "sh",
            "-c", "true",
        ])
        .expect("parses");
        let rules = rules(&cli.args);
        assert_eq!(
            rules,
            vec![
                (Path::new("/usr"), Grant::Read),
                (Path::new("/etc"), Grant::Read),
                (Path::new("/tmp/w"), Grant::ReadWrite),
                (Path::new("/bin/sh"), Grant::Exec),
            ]
        );
        assert_eq!(cli.args.command, ["sh", "-c", "true"]);
    }

    #[test]
    fn handled_rights_grow_with_the_abi() {
        assert_eq!(handled_fs(1), 0x1fff);
        assert_eq!(handled_fs(2), 0x3fff);
        assert_eq!(handled_fs(3), 0x7fff);
        assert_eq!(handled_fs(4), 0x7fff);
        assert_eq!(handled_fs(5), 0xffff);
        assert_eq!(handled_fs(7), 0xffff);
    }

    #[test]
    fn file_rules_carry_only_file_rights() {
        let handled = handled_fs(5);
        assert_eq!(rule_access(Grant::Read, handled, true), 0b1100);
        assert_eq!(rule_access(Grant::Read, handled, false), 0b0100);
        assert_eq!(rule_access(Grant::Exec, handled, false), 0b0101);
        assert_eq!(rule_access(Grant::ReadWrite, handled, true), handled);
        assert_eq!(rule_access(Grant::ReadWrite, handled, false), FILE_RIGHTS);
        // ABI 1 has no truncate right: a file's read-write rule leaves it out.
        assert_eq!(rule_access(Grant::ReadWrite, handled_fs(1), false), 0b0111);
    }
}
