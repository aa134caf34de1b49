//! The compiler's output: plain, slot-less map entries that the kernel loader turns into
//! keys for a chosen slot. Deterministic: the same policy and environment give the same
//! bytes (vectors are sorted, no hash-map iteration order leaks out).

use std::path::PathBuf;

use nemoclaw_common::rule::Verdict;

/// Where a rule came from, so a deny event can cite `file:line`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleRef {
    /// 1-based; `Verdict::rule_id` refers to it. 0 is reserved for "default deny".
    pub id: u32,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The section path, e.g. `process.deny` or `network.allow`.
    pub section: String,
    /// The entry as written, e.g. `curl` or `10.0.0.1:443`.
    pub text: String,
}

/// An executable identified by the kernel's (device, inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ExecEntry {
    /// Kernel-internal `dev_t` (see `nemoclaw_common::exec::kernel_dev`).
    pub dev: u64,
    pub ino: u64,
    pub verdict: Verdict,
}

/// A network rule for one address family. `addr` is big-endian; `prefix_len` is the CIDR
/// prefix (32 or 128 for a single address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct NetEntry<const N: usize> {
    /// `nemoclaw_common::net::BIN_ANY` (0, every executable) or an id of [`NetBinary`].
    pub bin: u16,
    /// `nemoclaw_common::net::PROTO_*`.
    pub proto: u8,
    /// `nemoclaw_common::net::PORT_ANY` (0) or one port.
    pub port: u16,
    #[serde(serialize_with = "serialize_addr")]
    pub addr: [u8; N],
    pub prefix_len: u8,
    pub verdict: Verdict,
}

/// A port a `network.listen` entry opens on non-loopback addresses (`NET_LISTEN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ListenEntry {
    /// `nemoclaw_common::net::PROTO_TCP`, `PROTO_UDP` or `PROTO_ANY`.
    pub proto: u8,
    /// One port, or `nemoclaw_common::net::PORT_ANY` (0) for every port.
    pub port: u16,
    /// The entry's rule id (the lowest, where entries overlap).
    pub rule_id: u32,
}

/// An executable named by a network rule's `binaries`, by kernel (device, inode).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct NetBinary {
    /// Kernel-internal `dev_t` (see `nemoclaw_common::exec::kernel_dev`).
    pub dev: u64,
    pub ino: u64,
    /// The id its network entries carry (never `BIN_ANY`).
    pub bin: u16,
    /// The resolved path, for `explain` and diagnostics.
    pub path: PathBuf,
}

/// A compiled policy: what the loader writes into the kernel's maps for one slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompiledPolicy {
    /// `nemoclaw_common::sandbox::controls` bits: which sections are present.
    pub controls: u32,
    /// Rule table; `rules[i].id == i + 1`.
    pub rules: Vec<RuleRef>,
    /// Sorted by (dev, ino); a (dev, ino) appears once (deny wins when both sides name it).
    pub exec: Vec<ExecEntry>,
    /// Resolved absolute paths of exec rules, for `explain` and diagnostics, sorted.
    pub exec_paths: Vec<(PathBuf, Verdict)>,
    /// Sorted; allow and deny entries are both here, told apart by `verdict.action`.
    pub net4: Vec<NetEntry<4>>,
    pub net6: Vec<NetEntry<16>>,
    /// `network.listen`: the (protocol, port) keys opened on non-loopback addresses, each
    /// with the lowest rule id that opens it. Sorted, unique (protocol, port).
    pub listen: Vec<ListenEntry>,
    /// The executables named by network rules' `binaries`, each with the binary id its
    /// entries carry. Sorted by (dev, ino); ids are 1-based in order of first mention.
    pub net_binaries: Vec<NetBinary>,
    /// The directories (`/dir/`, resolved) whose files the process control lets a task map
    /// executable: `process.libraries`, or `nemoclaw_common::exec::DEFAULT_LIBRARY_DIRS`.
    pub library_dirs: Vec<String>,
    /// `process.anonymous_exec: deny`: the rule id its denials cite; 0 where executable
    /// anonymous and writable memory is allowed (the default, for JIT runtimes).
    pub anonymous_exec_rule: u32,
    /// Exec rules by path: `/dir/**` entries, keyed by `/dir/` (LPM over path bytes).
    /// Sorted by path; the verdict already merges every shorter covering entry.
    pub exec_prefix: Vec<PathEntry>,
    /// Filesystem rules for one exact path. Each entry's verdicts already merge every
    /// prefix and suffix rule that also matches that path, so an exact hit decides alone.
    pub fs_exact: Vec<FsEntry>,
    /// Filesystem rules for a directory and everything beneath it, keyed by `/dir/` (`/`
    /// for everything) for an LPM trie over path bytes. Merged with shorter prefixes.
    pub fs_prefix: Vec<FsEntry>,
    /// Filesystem rules by path suffix (`/.git/config`, `.pem`), written forwards; the
    /// loader reverses the bytes for the LPM trie. Merged with shorter suffixes.
    pub fs_suffix: Vec<FsEntry>,
    /// Directories whose rename would change which rules match what is beneath them
    /// (`nemoclaw_common::fs::FsSubtreeKey`), sorted; each cites the lowest such rule.
    pub fs_subtrees: Vec<SubtreeEntry>,
}

/// What a rename of a directory must not get around: a directory path with a rule anchored
/// strictly beneath it, or a component name a `**/dir/name` rule spans.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subtree {
    /// A directory path (`/a/b`).
    Directory(String),
    /// A component name (`.git`).
    Name(String),
}

/// One `FS_SUBTREES` entry: the key and the rule that made it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SubtreeEntry {
    pub subtree: Subtree,
    pub rule_id: u32,
}

/// [`FsEntry`] access bits (also used in `explain` queries).
pub const FS_READ: u32 = 1 << 0;
/// Opening for writing, creating, truncating, renaming into or unlinking.
pub const FS_WRITE: u32 = 1 << 1;

/// A filesystem map entry: one verdict per access kind. `action == 0` means no rule
/// says anything about that access here. Lookup: an exact hit decides; otherwise the
/// longest prefix and the longest suffix are combined (deny beats allow, then the lower
/// rule id); no verdict at all means the default deny (rule 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct FsEntry {
    pub path: String,
    pub read: Verdict,
    pub write: Verdict,
}

/// A path-keyed entry with one verdict (exec by directory).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PathEntry {
    pub path: String,
    pub verdict: Verdict,
}

/// Addresses appear in JSON as text (`10.0.0.1`, `::1`), not byte arrays.
fn serialize_addr<const N: usize, S: serde::Serializer>(
    addr: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let text = match addr.as_slice() {
        &[a, b, c, d] => Ipv4Addr::new(a, b, c, d).to_string(),
        bytes => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[..16.min(bytes.len())]);
            Ipv6Addr::from(octets).to_string()
        }
    };
    serializer.serialize_str(&text)
}
