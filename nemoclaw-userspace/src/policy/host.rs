//! Everything the compiler asks the host: file facts ([`Files`]: canonical paths, and the
//! kernel (dev, ino) and executability of a file) and host names ([`Resolver`]). The
//! resolver (`resolve/`) reads the host only through a [`CompileEnv`]; the lowering
//! (`lower/`) not at all. Unit tests put a [`FakeHost`] behind both traits.
//!
//! Two traits rather than one: the daemon and `nemoclaw run` replace only the resolver
//! (a caching, TTL-aware one shared with the DNS refresher) and keep the system's files.
//! The user database is read only by the constructors [`CompileEnv::for_user`] and
//! [`CompileEnv::for_uid`], to find the sandbox user's home before compiling.

use std::net::{IpAddr, ToSocketAddrs};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use nemoclaw_common::exec::kernel_dev;

use super::compile::CompileError;

/// Resolves host names for network rules. Tests inject a fixed table.
pub trait Resolver: Send + Sync {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String>;
}

/// The system resolver (`getaddrinfo` through `ToSocketAddrs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let addrs = (host, 0)
            .to_socket_addrs()
            .map_err(|error| error.to_string())?;
        let mut ips: Vec<IpAddr> = addrs.map(|addr| addr.ip()).collect();
        ips.sort_unstable();
        ips.dedup();
        Ok(ips)
    }
}

/// Resolves nothing, for compiling without the network (fuzzing, benchmarks): allow rules
/// by host name then warn, deny rules by host name fail.
#[derive(Clone, Copy, Debug, Default)]
pub struct OfflineResolver;

impl Resolver for OfflineResolver {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        Err(format!("{host}: not resolving host names offline"))
    }
}

/// What the compiler needs to know about a file (symlinks followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Kernel-internal `dev_t` (see `nemoclaw_common::exec::kernel_dev`), as the kernel
    /// side keys executables.
    pub dev: u64,
    pub ino: u64,
    /// A regular file with an execute bit set.
    pub executable_file: bool,
}

/// The file facts compilation reads from the host.
pub trait Files: Send + Sync {
    /// The absolute path with every symlink, `.` and `..` resolved; `None` where it does
    /// not exist.
    fn canonicalize(&self, path: &Path) -> Option<PathBuf>;
    /// The file `path` names (symlinks followed); `None` where there is none.
    fn stat(&self, path: &Path) -> Option<FileInfo>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemFiles;

impl Files for SystemFiles {
    fn canonicalize(&self, path: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(path).ok()
    }

    fn stat(&self, path: &Path) -> Option<FileInfo> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(FileInfo {
            dev: st_dev_to_kernel(metadata.dev()),
            ino: metadata.ino(),
            executable_file: metadata.is_file() && metadata.mode() & 0o111 != 0,
        })
    }
}

/// Userspace `st_dev` to the kernel's `MKDEV` encoding.
fn st_dev_to_kernel(st_dev: u64) -> u64 {
    kernel_dev(libc::major(st_dev), libc::minor(st_dev))
}

/// What compilation depends on besides the policy: the sandbox user's home, the PATH that
/// bare program names resolve through, a resolver for host names and the file system.
pub struct CompileEnv {
    pub home: PathBuf,
    pub path: Vec<PathBuf>,
    pub resolver: Box<dyn Resolver>,
    pub files: Box<dyn Files>,
}

impl CompileEnv {
    /// The PATH used when a sandbox sets none.
    pub const DEFAULT_PATH: &'static str = "/usr/local/bin:/usr/bin:/bin";

    /// An environment with the default PATH, the system resolver and the real files.
    #[must_use]
    pub fn new(home: PathBuf) -> Self {
        Self {
            home,
            path: std::env::split_paths(Self::DEFAULT_PATH).collect(),
            resolver: Box::new(SystemResolver),
            files: Box::new(SystemFiles),
        }
    }

    /// An environment that touches neither PATH nor DNS: no program name resolves, no host
    /// name resolves. For fuzzing and benchmarks.
    #[must_use]
    pub fn offline(home: PathBuf) -> Self {
        Self {
            home,
            path: Vec::new(),
            resolver: Box::new(OfflineResolver),
            files: Box::new(SystemFiles),
        }
    }

    /// The real system for a sandbox user whose home is `home`.
    #[must_use]
    pub fn system(home: &Path) -> Self {
        Self::new(home.to_path_buf())
    }

    /// The real system for the sandbox user `name` (its home from the password database).
    pub fn for_user(name: &str) -> Result<Self, CompileError> {
        match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => Ok(Self::new(user.dir)),
            Ok(None) => Err(CompileError::UnknownUser(name.to_owned())),
            Err(error) => Err(CompileError::UserLookup(name.to_owned(), error.to_string())),
        }
    }

    /// The real system for the user with id `uid`.
    pub fn for_uid(uid: u32) -> Result<Self, CompileError> {
        match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(user)) => Ok(Self::new(user.dir)),
            Ok(None) => Err(CompileError::UnknownUser(uid.to_string())),
            Err(error) => Err(CompileError::UserLookup(uid.to_string(), error.to_string())),
        }
    }

    /// Whether `path` is an executable regular file (symlinks followed).
    pub(super) fn is_executable_file(&self, path: &Path) -> bool {
        self.files
            .stat(path)
            .is_some_and(|info| info.executable_file)
    }

    /// The canonical path of `path` and the (dev, ino) of the file there.
    pub(super) fn identify(&self, path: &Path) -> Option<(PathBuf, FileInfo)> {
        let real = self.files.canonicalize(path)?;
        let info = self.files.stat(&real)?;
        Some((real, info))
    }
}

impl std::fmt::Debug for CompileEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileEnv")
            .field("home", &self.home)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// An in-memory host for unit tests: files, directories and symlinks by absolute path, and
/// a table of host names.
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub struct FakeHost {
    entries: std::collections::BTreeMap<PathBuf, FakeEntry>,
    names: std::collections::BTreeMap<String, Vec<IpAddr>>,
}

#[cfg(test)]
#[derive(Clone, Debug)]
enum FakeEntry {
    File(FileInfo),
    Dir,
    Link(PathBuf),
}

#[cfg(test)]
impl FakeHost {
    /// A file at `path` (its parent directories too) with kernel (dev, ino).
    #[must_use]
    pub fn file(mut self, path: &str, dev: u64, ino: u64, executable: bool) -> Self {
        self.add_parents(Path::new(path));
        let file = FileInfo {
            dev,
            ino,
            executable_file: executable,
        };
        self.entries.insert(path.into(), FakeEntry::File(file));
        self
    }

    /// A directory at `path` (and its parents).
    #[must_use]
    pub fn dir(mut self, path: &str) -> Self {
        self.add_parents(Path::new(path));
        self.entries.insert(path.into(), FakeEntry::Dir);
        self
    }

    /// A symlink at `path` to the absolute `target`.
    #[must_use]
    pub fn link(mut self, path: &str, target: &str) -> Self {
        self.add_parents(Path::new(path));
        self.entries
            .insert(path.into(), FakeEntry::Link(target.into()));
        self
    }

    /// A host name and its addresses.
    #[must_use]
    pub fn name(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.names.insert(host.to_owned(), addrs.to_vec());
        self
    }

    /// An environment on this host.
    #[must_use]
    pub fn env(self, home: &str, path: &[&str]) -> CompileEnv {
        CompileEnv {
            home: home.into(),
            path: path.iter().map(PathBuf::from).collect(),
            resolver: Box::new(self.clone()),
            files: Box::new(self),
        }
    }

    fn add_parents(&mut self, path: &Path) {
        for parent in path.ancestors().skip(1) {
            self.entries.entry(parent.into()).or_insert(FakeEntry::Dir);
        }
    }

    /// Resolves symlinks component by component (at most 40, as the kernel).
    fn real(&self, path: &Path) -> Option<PathBuf> {
        let mut pending: Vec<std::ffi::OsString> = path
            .components()
            .rev()
            .filter_map(|c| match c {
                std::path::Component::Normal(name) => Some(name.to_owned()),
                std::path::Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect();
        let mut out = PathBuf::from("/");
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                out.pop();
                continue;
            }
            let next = out.join(&name);
            match self.entries.get(&next)? {
                FakeEntry::Link(target) => {
                    links += 1;
                    if links > 40 {
                        return None;
                    }
                    pending.extend(target.components().rev().filter_map(|c| match c {
                        std::path::Component::Normal(n) => Some(n.to_owned()),
                        std::path::Component::ParentDir => Some("..".into()),
                        _ => None,
                    }));
                    out = PathBuf::from("/");
                }
                FakeEntry::File(_) | FakeEntry::Dir => out = next,
            }
        }
        Some(out)
    }
}

#[cfg(test)]
impl Files for FakeHost {
    fn canonicalize(&self, path: &Path) -> Option<PathBuf> {
        self.real(path)
    }

    fn stat(&self, path: &Path) -> Option<FileInfo> {
        match self.entries.get(&self.real(path)?)? {
            FakeEntry::File(info) => Some(*info),
            FakeEntry::Dir => Some(FileInfo {
                dev: 0,
                ino: 0,
                executable_file: false,
            }),
            FakeEntry::Link(_) => None,
        }
    }
}

#[cfg(test)]
impl Resolver for FakeHost {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        self.names
            .get(host)
            .cloned()
            .ok_or_else(|| format!("{host}: unknown host"))
    }
}
