//! The typed policy: what `load` returns once a file has parsed and validated. Every rule
//! keeps where it was written so errors, lints and deny events can cite `file:line`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use nemoclaw_detect::Category;

use super::inference::{Action, OnReply};
use super::pattern::PathPattern;
pub use super::yaml::Mark;

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub mark: Mark,
    /// Field path, e.g. `network.allow[2]`.
    pub field: String,
    /// The entry as written (a long-form entry is rendered on one line).
    pub text: String,
}

/// A parsed, validated policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The file it came from (as given to `load`), for messages.
    pub file: PathBuf,
    /// Schema version; absent means 1, the only version so far.
    pub version: u32,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Absent: network unrestricted. Present: deny by default.
    pub network: Option<NetworkSection>,
    /// Absent: files unrestricted. Present: deny by default.
    pub filesystem: Option<FilesystemSection>,
    /// Absent: exec unrestricted. Present: deny by default.
    pub process: Option<ProcessSection>,
    /// Absent is the same as `allow`.
    pub privilege_escalation: Option<Located<PrivilegeEscalation>>,
    /// Absent: model calls are not routed (the `network` rules alone apply). Present: the
    /// compiler allows the router in `network` and refuses direct model-provider endpoints.
    pub inference: Option<InferenceSection>,
}

/// `inference`: how the privacy router routes this sandbox's model calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferenceSection {
    /// The `inference` key.
    pub mark: Mark,
    /// `router`: where the sandbox reaches the router; absent: `DEFAULT_ROUTER_ADDR`.
    pub router: Option<Located<SocketAddr>>,
    /// `cloud`, required.
    pub cloud: Located<Backend>,
    /// `local`: required when any action is `local`.
    pub local: Option<Located<Backend>>,
    /// `default`: the action for categories not listed; absent: `block`.
    pub default: Option<Located<Action>>,
    /// `restore` and `injected` of `default` when written as a mapping.
    pub default_options: ReplyOptions,
    /// `categories`, in source order; every name is a built-in or a defined custom one.
    pub categories: Vec<Located<(Category, Action, ReplyOptions)>>,
    /// `detect.keywords`: custom category name -> keywords (non-empty).
    pub keywords: Vec<Located<(String, Vec<String>)>>,
    /// `detect.patterns`: custom category name -> a `regex` pattern (syntax checked).
    pub patterns: Vec<Located<(String, String)>>,
    /// `detect.code`: proprietary source trees (absolute, or under `$HOME`).
    pub code: Vec<Located<PathPattern>>,
    /// `direct`: `HOST:PORT` provider endpoints `network.allow` may still list.
    pub direct: Vec<Located<(Host, Ports)>>,
}

/// `restore` and `injected` of an `inference` action written as a mapping
/// (`{action: mask, restore: false, injected: pass}`); `None` where absent (the defaults are
/// `RuledAction::restores` and `RuledAction::on_reply`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplyOptions {
    /// `restore`: only with `action: mask`.
    pub restore: Option<bool>,
    /// `injected`: with any action.
    pub injected: Option<OnReply>,
}

/// `inference.cloud` / `inference.local`: a backend of the router's host configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub backend: String,
    pub model: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSection {
    pub mark: Mark,
    pub allow: Vec<Located<NetRule>>,
    pub deny: NetDeny,
    /// `network.listen`: the ports the sandbox may bind and listen on at non-loopback
    /// addresses (every address: `0.0.0.0`, `::`, or one of the host's). Loopback
    /// (`127.0.0.0/8`, `::1`) is always open, on any port; empty: loopback only.
    pub listen: Vec<Located<ListenRule>>,
}

/// One `network.listen` entry: `PORT`, `FIRST-LAST`, `*`, or the long form
/// `{ports: [...], protocol: tcp|udp|any}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenRule {
    pub ports: Ports,
    pub protocol: Protocol,
}

/// `network.deny`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetDeny {
    /// `"*"` or absent: everything not allowed is denied (the default; nothing to emit).
    All,
    /// Explicit denies; they beat any allow.
    Rules(Vec<Located<NetRule>>),
}

/// One network entry: `host:port` or the long form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRule {
    pub host: Host,
    pub ports: Ports,
    pub protocol: Protocol,
    /// Long form `binaries`: the entry applies only to tasks running one of these programs
    /// (names resolved through PATH, or absolute paths; by inode). Empty: every program.
    pub binaries: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// A DNS name, lower-cased; resolved at compile time.
    Name(String),
    /// An address or CIDR (host bits zero). A single address has the full prefix length.
    Net { addr: IpAddr, prefix_len: u8 },
    /// `*`: any address of either family.
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ports {
    Any,
    /// Inclusive ranges, each `first <= last`, ports 1..=65535.
    Ranges(Vec<(u16, u16)>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesystemSection {
    pub mark: Mark,
    /// Read and write (long form may narrow to read).
    pub allow: Vec<Located<FsRule>>,
    /// Read allowed, write denied (the write deny beats any allow).
    pub read_only: Vec<Located<FsRule>>,
    /// Denied (long form may narrow to write).
    pub deny: Vec<Located<FsRule>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsRule {
    pub pattern: PathPattern,
    pub access: Access,
}

/// Which accesses an entry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

impl Access {
    /// As a mask of `compiled::FS_READ` / `compiled::FS_WRITE`.
    #[must_use]
    pub const fn mask(self) -> u32 {
        match self {
            Self::Read => super::compiled::FS_READ,
            Self::Write => super::compiled::FS_WRITE,
            Self::ReadWrite => super::compiled::FS_READ | super::compiled::FS_WRITE,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSection {
    pub mark: Mark,
    pub allow: Vec<Located<ExecTarget>>,
    pub deny: Vec<Located<ExecTarget>>,
    /// `libraries`: the directories whose files may be mapped executable (`/dir/**`
    /// patterns); `None` keeps `nemoclaw_common::exec::DEFAULT_LIBRARY_DIRS`.
    pub libraries: Option<Vec<Located<PathPattern>>>,
    /// `anonymous_exec`: whether executable anonymous or writable memory may be made
    /// (absent: allowed, as JIT runtimes need).
    pub anonymous_exec: Option<Located<AnonymousExec>>,
}

/// `process.anonymous_exec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonymousExec {
    Allow,
    Deny,
}

/// A `process` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecTarget {
    /// A bare name, resolved through the sandbox's PATH at compile time.
    Name(String),
    /// An absolute path (may start with `$HOME`/`~`); symlinks are followed.
    Path(PathPattern),
    /// `/dir/**`: every executable beneath a directory, judged by path.
    Dir(PathPattern),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivilegeEscalation {
    Deny,
    Allow,
}
