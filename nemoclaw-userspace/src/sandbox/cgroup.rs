//! One cgroup v2 directory per sandbox. Its id (the directory's inode number) is the key
//! the kernel side looks the policy up by.

use std::{
    fs::{self, File},
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup v2 file system is mounted (looked for type cgroup2 in /proc/mounts)")]
    NoCgroup2,
    #[error("reading /proc/mounts: {0}")]
    Mounts(io::Error),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The mount point of the first `cgroup2` file system in a `/proc/mounts` text.
#[must_use]
pub fn cgroup2_mount_in(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_src, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount(target)))
    })
}

/// `/proc/mounts` escapes space, tab, newline and backslash as octal.
fn unescape_mount(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        if let Some(c) = code {
            out.push(char::from(c));
            rest = &rest[i + 4..];
        } else {
            out.push('\\');
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// The running system's cgroup v2 mount point.
pub fn cgroup2_mount() -> Result<PathBuf, CgroupError> {
    let mounts = fs::read_to_string("/proc/mounts").map_err(CgroupError::Mounts)?;
    cgroup2_mount_in(&mounts).ok_or(CgroupError::NoCgroup2)
}

/// The parent cgroup of the sandboxes `nemoclaw run` creates without a daemon.
pub const STANDALONE_ROOT: &str = "nemoclaw-run";
/// The daemon's default parent cgroup. Every sandbox parent is named `nemoclaw*`: the
/// daemon refuses control requests from tasks under any of them.
pub const DAEMON_ROOT: &str = "nemoclaw";

/// `<cgroup2>/<root>`, created if missing: the parent of sandbox cgroups. The daemon
/// attaches the network programs there once for all its sandboxes, which judge every
/// cgroup below it; standalone runs therefore live under a parent of their own.
pub fn sandboxes_root(root: &str) -> Result<PathBuf, CgroupError> {
    let parent = cgroup2_mount()?.join(root);
    fs::create_dir_all(&parent).map_err(io_err("creating", &parent))?;
    Ok(parent)
}

/// A sandbox's cgroup. Dropping it kills whatever is left inside and removes the directory.
pub struct SandboxCgroup {
    path: PathBuf,
    id: u64,
    dir: File,
}

impl SandboxCgroup {
    /// Creates `<cgroup2>/<root>/<name>`; `name` must be unique (e.g. `run-<pid>`). The
    /// depth is `nemoclaw_common::sandbox::SANDBOX_CGROUP_LEVEL`, which the kernel side
    /// relies on to judge cgroups created below a sandbox.
    pub fn create(root: &str, name: &str) -> Result<Self, CgroupError> {
        let path = sandboxes_root(root)?.join(name);
        fs::create_dir(&path).map_err(io_err("creating", &path))?;
        Self::open(&path)
    }

    /// An existing sandbox cgroup (a restarted daemon's).
    pub fn open(path: &Path) -> Result<Self, CgroupError> {
        let id = fs::metadata(path).map_err(io_err("reading", path))?.ino();
        let dir = File::open(path).map_err(io_err("opening", path))?;
        Ok(Self {
            path: path.to_owned(),
            id,
            dir,
        })
    }

    /// Number of tasks inside now.
    #[must_use]
    pub fn tasks(&self) -> usize {
        fs::read_to_string(self.procs_file()).map_or(0, |p| p.lines().count())
    }

    /// The cgroup id: what `bpf_get_current_cgroup_id()` returns for tasks inside.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An open descriptor of the directory, for attaching cgroup programs.
    #[must_use]
    pub fn dir(&self) -> &File {
        &self.dir
    }

    /// `cgroup.procs`: writing a pid (or "0" for the writer itself) moves it inside.
    #[must_use]
    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// Kills every task left in the cgroup (`cgroup.kill`, Linux 5.14+; else one by one).
    pub fn kill_all(&self) {
        if fs::write(self.path.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        if let Ok(procs) = fs::read_to_string(self.procs_file()) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: plain syscall; a stale pid at worst gets ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    fn is_empty(&self) -> bool {
        fs::read_to_string(self.procs_file()).is_ok_and(|p| p.trim().is_empty())
    }
}

/// Removes a cgroup and the cgroups a sandboxed task created below it, deepest first
/// (cgroupfs only removes empty directories; their files go with them).
fn remove_tree(path: &Path) -> io::Result<()> {
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    fs::remove_dir(path)
}

impl Drop for SandboxCgroup {
    fn drop(&mut self) {
        self.kill_all();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if let Err(e) = remove_tree(&self.path) {
            eprintln!(
                "nemoclaw: could not remove sandbox cgroup {}: {e}",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_hybrid_layout() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs ro 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nsdelegate 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n";
        assert_eq!(
            cgroup2_mount_in(mounts),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn no_cgroup2_is_none_and_escapes_decode() {
        assert_eq!(cgroup2_mount_in("proc /proc proc rw 0 0\n"), None);
        assert_eq!(
            cgroup2_mount_in("none /mnt/with\\040space cgroup2 rw 0 0"),
            Some(PathBuf::from("/mnt/with space"))
        );
    }
}
