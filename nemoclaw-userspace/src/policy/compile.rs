//! `Policy -> CompiledPolicy`: resolve names, expand `$HOME`, turn patterns into map keys,
//! merge so that one lookup per map answers (deny beats allow, then the lower rule id),
//! sort. Deterministic: no hash-map order reaches the output.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, ToSocketAddrs};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use nemoclaw_common::exec::{DEFAULT_LIBRARY_DIRS, EXEC_PATH_KEY_MAX, kernel_dev};
use nemoclaw_common::net::{
    BIN_ANY, MAX_NET_BINARIES, MAX_NET_RULES, PORT_ANY, PROTO_ANY, PROTO_TCP, PROTO_UDP,
};
use nemoclaw_common::rule::{ACTION_ALLOW, ACTION_DENY, Verdict};
use nemoclaw_common::sandbox::controls;

use super::compiled::{
    CompiledPolicy, ExecEntry, FS_READ, FS_WRITE, FsEntry, ListenEntry, NetBinary, NetEntry,
    PathEntry, RuleRef,
};
use super::explain::{ExecMatch, ExecRuleSpec, FsRuleSpec, ListenRuleSpec, NetRuleSpec, RuleSet};
use super::pattern::{PathPattern, Shape};
use super::types::{
    AnonymousExec, ExecTarget, Host, ListenRule, Located, NetDeny, NetRule, Policy, Ports,
    PrivilegeEscalation, ProcessSection, Protocol,
};
use super::{Diagnostic, Diagnostics, Mark};

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

/// What compilation depends on besides the policy: the sandbox user's home, the PATH that
/// bare program names resolve through, and a resolver for host names.
pub struct CompileEnv {
    pub home: PathBuf,
    pub path: Vec<PathBuf>,
    pub resolver: Box<dyn Resolver>,
}

impl CompileEnv {
    /// The PATH used when a sandbox sets none.
    pub const DEFAULT_PATH: &'static str = "/usr/local/bin:/usr/bin:/bin";

    /// An environment with the default PATH and the system resolver.
    #[must_use]
    pub fn new(home: PathBuf) -> Self {
        Self {
            home,
            path: std::env::split_paths(Self::DEFAULT_PATH).collect(),
            resolver: Box::new(SystemResolver),
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
}

impl std::fmt::Debug for CompileEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileEnv")
            .field("home", &self.home)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why a policy could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("no such user {0:?}")]
    UnknownUser(String),
    #[error("looking up user {0:?}: {1}")]
    UserLookup(String, String),
    #[error("home directory {0:?} must be an absolute path without glob characters")]
    BadHome(PathBuf),
    /// Rules that cannot be compiled, located. One line per problem.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// A compiled policy, the semantic rules `explain` reads, and the warnings (lints).
#[derive(Clone, Debug)]
pub struct Compiled {
    pub policy: CompiledPolicy,
    pub rules: RuleSet,
    pub warnings: Vec<Diagnostic>,
}

/// One rule in source order, before compilation.
enum Item<'p> {
    Net(&'p Located<NetRule>, u32),
    Listen(&'p Located<ListenRule>),
    Fs(&'p Located<super::types::FsRule>, FsList),
    Exec(&'p Located<ExecTarget>, u32),
    Privilege(&'p Located<PrivilegeEscalation>),
    AnonymousExec(&'p Located<AnonymousExec>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FsList {
    Allow,
    ReadOnly,
    Deny,
}

impl Item<'_> {
    fn mark(&self) -> Mark {
        match self {
            Self::Net(rule, _) => rule.mark,
            Self::Listen(rule) => rule.mark,
            Self::Fs(rule, _) => rule.mark,
            Self::Exec(rule, _) => rule.mark,
            Self::Privilege(rule) => rule.mark,
            Self::AnonymousExec(rule) => rule.mark,
        }
    }
}

pub use nemoclaw_common::rule::merge;

fn verdict(action: u32, rule_id: u32) -> Verdict {
    Verdict { action, rule_id }
}

/// What a process rule naming a program that is not there means, for its warning.
fn missing_program_consequence(action: u32) -> &'static str {
    if action == ACTION_ALLOW {
        "nothing to allow"
    } else {
        "exec is denied by default anyway"
    }
}

/// Compiles a validated policy.
pub fn compile(policy: &Policy, env: &CompileEnv) -> Result<Compiled, CompileError> {
    let home = env
        .home
        .to_str()
        .filter(|h| h.starts_with('/') && !h.contains(['*', '?', '[', '{', '$']))
        .ok_or_else(|| CompileError::BadHome(env.home.clone()))?;
    let mut cx = Compiler {
        policy,
        env,
        home,
        errors: Vec::new(),
        warnings: Vec::new(),
        out: CompiledPolicy::default(),
        rules: RuleSet::default(),
        net_bins: BTreeMap::new(),
    };
    cx.run();
    let Compiler {
        errors,
        mut warnings,
        out,
        mut rules,
        ..
    } = cx;
    if !errors.is_empty() {
        return Err(CompileError::Invalid(Diagnostics(errors)));
    }
    rules.controls = out.controls;
    warnings.extend(super::lint::lint_compiled(policy, env, &rules, &out));
    let mut all = super::lint::lint(policy);
    all.extend(warnings);
    all.sort_by(|a, b| {
        (a.line, a.column, &a.field, &a.message).cmp(&(b.line, b.column, &b.field, &b.message))
    });
    all.dedup();
    Ok(Compiled {
        policy: out,
        rules,
        warnings: all,
    })
}

struct Compiler<'p, 'e> {
    policy: &'p Policy,
    env: &'e CompileEnv,
    home: &'e str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    out: CompiledPolicy,
    rules: RuleSet,
    /// Executables named by network rules' `binaries`: (dev, ino) -> (binary id, path).
    net_bins: BTreeMap<(u64, u64), (u16, PathBuf)>,
}

#[derive(Default)]
struct FsAcc {
    exact: BTreeMap<String, (Verdict, Verdict)>,
    prefix: BTreeMap<String, (Verdict, Verdict)>,
    suffix: BTreeMap<String, (Verdict, Verdict)>,
}

fn add_fs(
    map: &mut BTreeMap<String, (Verdict, Verdict)>,
    key: String,
    read: Verdict,
    write: Verdict,
) {
    let slot = map.entry(key).or_default();
    slot.0 = merge(slot.0, read);
    slot.1 = merge(slot.1, write);
}

/// (binary id, protocol, port) -> (prefix length, address) -> verdict.
type NetGroups<const N: usize> = BTreeMap<(u16, u8, u16), BTreeMap<(u8, [u8; N]), Verdict>>;

impl Compiler<'_, '_> {
    fn diagnostic(&self, mark: Mark, field: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.policy.file.clone(),
            line: mark.line,
            column: mark.column,
            field: field.to_owned(),
            message,
        }
    }

    fn error(&mut self, mark: Mark, field: &str, message: String) {
        let diagnostic = self.diagnostic(mark, field, message);
        self.errors.push(diagnostic);
    }

    fn warn(&mut self, mark: Mark, field: &str, message: String) {
        let diagnostic = self.diagnostic(mark, field, message);
        self.warnings.push(diagnostic);
    }
}

/// Every rule of the policy in source order.
fn items_of(policy: &Policy) -> Vec<Item<'_>> {
    let mut items = Vec::new();
    if let Some(network) = &policy.network {
        items.extend(network.allow.iter().map(|r| Item::Net(r, ACTION_ALLOW)));
        if let NetDeny::Rules(rules) = &network.deny {
            items.extend(rules.iter().map(|r| Item::Net(r, ACTION_DENY)));
        }
        items.extend(network.listen.iter().map(Item::Listen));
    }
    if let Some(fs) = &policy.filesystem {
        items.extend(fs.allow.iter().map(|r| Item::Fs(r, FsList::Allow)));
        items.extend(fs.read_only.iter().map(|r| Item::Fs(r, FsList::ReadOnly)));
        items.extend(fs.deny.iter().map(|r| Item::Fs(r, FsList::Deny)));
    }
    if let Some(process) = &policy.process {
        items.extend(process.allow.iter().map(|r| Item::Exec(r, ACTION_ALLOW)));
        items.extend(process.deny.iter().map(|r| Item::Exec(r, ACTION_DENY)));
        items.extend(process.anonymous_exec.iter().map(Item::AnonymousExec));
    }
    if let Some(privilege) = &policy.privilege_escalation {
        items.push(Item::Privilege(privilege));
    }
    // Source order; marks are unique per node, so the sort is total.
    items.sort_by_key(Item::mark);
    items
}

impl Compiler<'_, '_> {
    fn run(&mut self) {
        let policy = self.policy;
        let mut controls_bits = 0;
        if policy.network.is_some() {
            controls_bits |= controls::NET;
        }
        if policy.filesystem.is_some() {
            controls_bits |= controls::FS;
        }
        if policy.process.is_some() {
            controls_bits |= controls::EXEC;
        }
        if policy
            .privilege_escalation
            .as_ref()
            .is_some_and(|p| p.value == PrivilegeEscalation::Deny)
        {
            controls_bits |= controls::PRIVILEGE;
        }
        self.out.controls = controls_bits;

        let mut fs = FsAcc::default();
        let mut exec: BTreeMap<(u64, u64), Verdict> = BTreeMap::new();
        let mut exec_paths: BTreeMap<PathBuf, Verdict> = BTreeMap::new();
        let mut exec_prefix: BTreeMap<String, Verdict> = BTreeMap::new();
        let mut net4: NetGroups<4> = BTreeMap::new();
        let mut net6: NetGroups<16> = BTreeMap::new();
        let mut listen: BTreeMap<(u8, u16), u32> = BTreeMap::new();

        let items = items_of(policy);
        for (index, item) in items.iter().enumerate() {
            let id = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let (located_mark, field, text) = match item {
                Item::Net(r, _) => (r.mark, &r.field, &r.text),
                Item::Listen(r) => (r.mark, &r.field, &r.text),
                Item::Fs(r, _) => (r.mark, &r.field, &r.text),
                Item::Exec(r, _) => (r.mark, &r.field, &r.text),
                Item::Privilege(r) => (r.mark, &r.field, &r.text),
                Item::AnonymousExec(r) => (r.mark, &r.field, &r.text),
            };
            let section = field.split('[').next().unwrap_or(field).to_owned();
            self.out.rules.push(RuleRef {
                id,
                file: policy.file.clone(),
                line: located_mark.line,
                column: located_mark.column,
                section,
                text: text.clone(),
            });
            match item {
                Item::Fs(rule, list) => self.fs_rule(rule, *list, id, &mut fs),
                Item::Exec(rule, action) => self.exec_rule(
                    rule,
                    *action,
                    id,
                    &mut exec,
                    &mut exec_paths,
                    &mut exec_prefix,
                ),
                Item::Net(rule, action) => self.net_rule(rule, *action, id, &mut net4, &mut net6),
                Item::Listen(rule) => self.listen_rule(rule, id, &mut listen),
                Item::Privilege(rule) => self.rules.privilege = Some((id, rule.value)),
                Item::AnonymousExec(rule) => {
                    if rule.value == AnonymousExec::Deny {
                        self.out.anonymous_exec_rule = id;
                    }
                }
            }
        }

        self.finish_fs(&fs);
        if let Some(process) = &policy.process {
            self.out.library_dirs = self.library_dirs(process);
        }
        self.out.exec = exec
            .into_iter()
            .map(|((dev, ino), verdict)| ExecEntry { dev, ino, verdict })
            .collect();
        self.out.exec_paths = exec_paths.into_iter().collect();
        self.out.exec_prefix = push_down_prefixes(&exec_prefix)
            .into_iter()
            .map(|(path, verdict)| PathEntry { path, verdict })
            .collect();
        self.out.net4 = flatten_net(&net4);
        self.out.net6 = flatten_net(&net6);
        self.out.listen = listen
            .into_iter()
            .map(|((proto, port), rule_id)| ListenEntry {
                proto,
                port,
                rule_id,
            })
            .collect();
        self.out.net_binaries = self
            .net_bins
            .iter()
            .map(|(&(dev, ino), (bin, path))| NetBinary {
                dev,
                ino,
                bin: *bin,
                path: path.clone(),
            })
            .collect();
        let limit = MAX_NET_RULES as usize;
        for (family, count) in [("IPv4", self.out.net4.len()), ("IPv6", self.out.net6.len())] {
            if count > limit {
                let mark = policy
                    .network
                    .as_ref()
                    .map_or_else(Mark::default, |n| n.mark);
                self.error(mark, "network", format!("{count} {family} entries after expanding hosts and port ranges; the kernel map holds {limit}"));
            }
        }
    }

    fn fs_rule(
        &mut self,
        rule: &Located<super::types::FsRule>,
        list: FsList,
        id: u32,
        fs: &mut FsAcc,
    ) {
        let shape = match rule.value.pattern.shape(self.home) {
            Ok(shape) => shape,
            Err(error) => {
                self.error(rule.mark, &rule.field, error.to_string());
                return;
            }
        };
        let (key_len, limit) = match &shape {
            Shape::Exact(path) => (path.len(), nemoclaw_common::fs::FS_EXACT_MAX),
            Shape::Tree(dir) => (dir.len() + 1, nemoclaw_common::fs::FS_LPM_MAX),
            Shape::Suffix(suffix) => (suffix.len(), nemoclaw_common::fs::FS_LPM_MAX),
        };
        if key_len > limit {
            let message =
                format!("{shape}: {key_len} bytes; the kernel map key holds at most {limit}");
            self.error(rule.mark, &rule.field, message);
            return;
        }
        let access = rule.value.access.mask();
        let (allow, deny) = match list {
            FsList::Allow => (access, 0),
            FsList::ReadOnly => (FS_READ, FS_WRITE),
            FsList::Deny => (0, access),
        };
        let bit = |mask: u32, which: u32| mask & which != 0;
        let pick = |which: u32| {
            if bit(deny, which) {
                verdict(ACTION_DENY, id)
            } else if bit(allow, which) {
                verdict(ACTION_ALLOW, id)
            } else {
                Verdict::default()
            }
        };
        let (read, write) = (pick(FS_READ), pick(FS_WRITE));
        match &shape {
            Shape::Exact(path) => add_fs(&mut fs.exact, path.clone(), read, write),
            Shape::Tree(dir) => {
                if !dir.is_empty() {
                    add_fs(&mut fs.exact, dir.clone(), read, write);
                }
                add_fs(&mut fs.prefix, format!("{dir}/"), read, write);
            }
            Shape::Suffix(suffix) => add_fs(&mut fs.suffix, suffix.clone(), read, write),
        }
        self.rules.fs.push(FsRuleSpec {
            id,
            pattern: rule.value.pattern.expand(self.home),
            shape,
            allow,
            deny,
        });
    }

    fn finish_fs(&mut self, fs: &FsAcc) {
        let entry =
            |(path, (read, write)): (String, (Verdict, Verdict))| FsEntry { path, read, write };
        let prefix: BTreeMap<String, (Verdict, Verdict)> = fs
            .prefix
            .keys()
            .map(|key| (key.clone(), lookup_prefixes(&fs.prefix, key)))
            .collect();
        let suffix: BTreeMap<String, (Verdict, Verdict)> = fs
            .suffix
            .keys()
            .map(|key| (key.clone(), lookup_suffixes(&fs.suffix, key)))
            .collect();
        let exact: BTreeMap<String, (Verdict, Verdict)> = fs
            .exact
            .iter()
            .map(|(path, own)| {
                let p = lookup_prefixes(&fs.prefix, path);
                let s = lookup_suffixes(&fs.suffix, path);
                (
                    path.clone(),
                    (merge(merge(own.0, p.0), s.0), merge(merge(own.1, p.1), s.1)),
                )
            })
            .collect();
        self.out.fs_exact = exact.into_iter().map(entry).collect();
        self.out.fs_prefix = prefix.into_iter().map(entry).collect();
        self.out.fs_suffix = suffix.into_iter().map(entry).collect();
        self.out.fs_subtrees = super::subtree::subtrees(&self.rules.fs);
    }

    fn exec_rule(
        &mut self,
        rule: &Located<ExecTarget>,
        action: u32,
        id: u32,
        exec: &mut BTreeMap<(u64, u64), Verdict>,
        exec_paths: &mut BTreeMap<PathBuf, Verdict>,
        exec_prefix: &mut BTreeMap<String, Verdict>,
    ) {
        let this = verdict(action, id);
        let candidates: Vec<PathBuf> = match &rule.value {
            ExecTarget::Name(name) => self.program_by_name(rule.mark, &rule.field, name, action),
            ExecTarget::Path(pattern) => {
                let path = PathBuf::from(pattern.expand(self.home));
                self.program_by_path(rule.mark, &rule.field, path, action)
            }
            ExecTarget::Dir(pattern) => {
                let key = self.dir_key(pattern, rule.mark, &rule.field);
                let slot = exec_prefix.entry(key.clone()).or_default();
                *slot = merge(*slot, this);
                self.rules.exec.push(ExecRuleSpec {
                    id,
                    action,
                    target: ExecMatch::Dir(key),
                });
                return;
            }
        };
        let mut seen = BTreeSet::new();
        for candidate in candidates {
            let Ok(real) = std::fs::canonicalize(&candidate) else {
                continue;
            };
            let Ok(metadata) = std::fs::metadata(&real) else {
                continue;
            };
            let dev = st_dev_to_kernel(metadata.dev());
            let ino = metadata.ino();
            if !seen.insert((dev, ino)) {
                continue;
            }
            let slot = exec.entry((dev, ino)).or_default();
            *slot = merge(*slot, this);
            let slot = exec_paths.entry(real.clone()).or_default();
            *slot = merge(*slot, this);
            self.rules.exec.push(ExecRuleSpec {
                id,
                action,
                target: ExecMatch::Inode {
                    dev,
                    ino,
                    path: real,
                },
            });
        }
    }

    /// A program name looked up in the sandbox PATH: an allow takes the first hit (the
    /// program the sandbox would run), a deny every hit (stricter). Warns when none.
    /// The `/dir/` key of a `/dir/**` process pattern, as the kernel sees paths: resolved
    /// (a rule on `/bin` must name `/usr/bin` where `/bin` is a symlink); as written, with a
    /// warning, when the directory does not exist.
    fn dir_key(&mut self, pattern: &PathPattern, mark: Mark, field: &str) -> String {
        let written = pattern.expand(self.home);
        let dir = written.strip_suffix("/**").unwrap_or(&written);
        let dir = if dir.is_empty() { "/" } else { dir };
        let real = if let Ok(real) = std::fs::canonicalize(dir) {
            real.to_string_lossy().into_owned()
        } else {
            self.warn(
                mark,
                field,
                format!("directory {dir} does not exist (yet); the rule applies to it as written"),
            );
            dir.to_owned()
        };
        if real == "/" {
            real
        } else {
            format!("{real}/")
        }
    }

    /// `process.libraries` (or the defaults) as `/dir/` keys the kernel's trie can hold.
    fn library_dirs(&mut self, process: &ProcessSection) -> Vec<String> {
        let Some(dirs) = &process.libraries else {
            return DEFAULT_LIBRARY_DIRS
                .iter()
                .map(|d| (*d).to_owned())
                .collect();
        };
        let mut keys = Vec::new();
        for dir in dirs {
            let key = self.dir_key(&dir.value, dir.mark, &dir.field);
            if key.len() > EXEC_PATH_KEY_MAX {
                self.error(
                    dir.mark,
                    &dir.field,
                    format!(
                        "{key}: longer than the {EXEC_PATH_KEY_MAX} bytes the kernel's library trie holds"
                    ),
                );
                continue;
            }
            keys.push(key);
        }
        keys.sort();
        keys.dedup();
        keys
    }

    fn program_by_name(
        &mut self,
        mark: Mark,
        field: &str,
        name: &str,
        action: u32,
    ) -> Vec<PathBuf> {
        let hits: Vec<PathBuf> = self
            .env
            .path
            .iter()
            .map(|dir| dir.join(name))
            .filter(|p| is_executable_file(p))
            .collect();
        if hits.is_empty() {
            let dirs = self
                .env
                .path
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":");
            let consequence = missing_program_consequence(action);
            self.warn(
                mark,
                field,
                format!("{name:?} not found in PATH {dirs}: {consequence}"),
            );
        }
        if action == ACTION_ALLOW {
            hits.into_iter().take(1).collect()
        } else {
            hits
        }
    }

    /// An absolute program path, if it is an executable file (else a warning).
    fn program_by_path(
        &mut self,
        mark: Mark,
        field: &str,
        path: PathBuf,
        action: u32,
    ) -> Vec<PathBuf> {
        if is_executable_file(&path) {
            return vec![path];
        }
        let consequence = missing_program_consequence(action);
        self.warn(
            mark,
            field,
            format!(
                "{} is not an executable file: {consequence}",
                path.display()
            ),
        );
        Vec::new()
    }

    /// The binary ids a network rule applies to: `[BIN_ANY]` without `binaries`, else one id
    /// per distinct executable its names and paths resolve to (by inode, like `process`
    /// rules). `None` when the rule emits nothing: an allow whose binaries all fail to
    /// resolve (a warning), or any deny with a binary that does not resolve (an error: it
    /// would weaken the policy).
    fn net_binaries(
        &mut self,
        rule: &Located<NetRule>,
        action: u32,
        binaries: &[String],
    ) -> Option<Vec<u16>> {
        if binaries.is_empty() {
            return Some(vec![BIN_ANY]);
        }
        let mut ids = Vec::new();
        let mut missing = false;
        for (index, written) in binaries.iter().enumerate() {
            let field = format!("{}.binaries[{index}]", rule.field);
            let expanded = expand_home(written, self.home);
            let candidates = if expanded.starts_with('/') {
                if expanded.contains(['*', '?', '[', '{'])
                    || expanded.contains("/../")
                    || expanded.contains("/./")
                {
                    self.error(rule.mark, &field, format!("{written:?}: a binary is a program name or an absolute path without globs"));
                    return None;
                }
                let path = PathBuf::from(&expanded);
                if is_executable_file(&path) {
                    vec![path]
                } else {
                    Vec::new()
                }
            } else if written.contains('/')
                || written.is_empty()
                || written.contains('$')
                || written.starts_with('~')
            {
                self.error(rule.mark, &field, format!("{written:?}: a binary is a program name (looked up in PATH) or an absolute path"));
                return None;
            } else {
                let hits: Vec<PathBuf> = self
                    .env
                    .path
                    .iter()
                    .map(|dir| dir.join(written))
                    .filter(|p| is_executable_file(p))
                    .collect();
                if action == ACTION_ALLOW {
                    hits.into_iter().take(1).collect()
                } else {
                    hits
                }
            };
            let mut resolved = false;
            for candidate in candidates {
                let Ok(real) = std::fs::canonicalize(&candidate) else {
                    continue;
                };
                let Ok(metadata) = std::fs::metadata(&real) else {
                    continue;
                };
                let key = (st_dev_to_kernel(metadata.dev()), metadata.ino());
                let next = u16::try_from(self.net_bins.len() + 1).unwrap_or(u16::MAX);
                let (bin, _) = self.net_bins.entry(key).or_insert((next, real));
                if !ids.contains(bin) {
                    ids.push(*bin);
                }
                resolved = true;
            }
            if !resolved {
                missing = true;
                if action == ACTION_ALLOW {
                    self.warn(rule.mark, &field, format!("{written:?} is not an executable file (or not in PATH): nothing allowed for it"));
                } else {
                    self.error(rule.mark, &field, format!("{written:?} is not an executable file (or not in PATH): a deny for a program that does not exist would not cover it once installed; name an existing program"));
                }
            }
        }
        if self.net_bins.len() >= usize::from(u16::MAX)
            || self.net_bins.len() > MAX_NET_BINARIES as usize
        {
            self.error(
                rule.mark,
                &rule.field,
                format!("more than {MAX_NET_BINARIES} distinct binaries in network rules"),
            );
            return None;
        }
        if action == ACTION_DENY && missing {
            return None;
        }
        if ids.is_empty() {
            return None;
        }
        ids.sort_unstable();
        Some(ids)
    }

    /// The (dev, ino) of the executables with these binary ids.
    fn inodes_of(&self, bins: &[u16]) -> Vec<(u64, u64)> {
        self.net_bins
            .iter()
            .filter(|(_, (bin, _))| bins.contains(bin))
            .map(|(&key, _)| key)
            .collect()
    }

    fn net_rule(
        &mut self,
        rule: &Located<NetRule>,
        action: u32,
        id: u32,
        groups4: &mut NetGroups<4>,
        groups6: &mut NetGroups<16>,
    ) {
        let NetRule {
            host,
            ports,
            protocol,
            binaries,
        } = &rule.value;
        let Some(bins) = self.net_binaries(rule, action, binaries) else {
            return;
        };
        let nets: Vec<(IpAddr, u8)> = match host {
            Host::Any => vec![(IpAddr::V4(0.into()), 0), (IpAddr::V6(0.into()), 0)],
            Host::Net { addr, prefix_len } => vec![(*addr, *prefix_len)],
            Host::Name(name) => match self.env.resolver.resolve(name) {
                Ok(addrs) if !addrs.is_empty() => addrs
                    .into_iter()
                    .map(|addr| (addr, if addr.is_ipv4() { 32 } else { 128 }))
                    .collect(),
                outcome => {
                    let why = match outcome {
                        Err(error) => error,
                        Ok(_) => "no addresses".to_owned(),
                    };
                    if action == ACTION_ALLOW {
                        self.warn(
                            rule.mark,
                            &rule.field,
                            format!("{name} does not resolve ({why}): nothing allowed for it"),
                        );
                    } else {
                        self.error(rule.mark, &rule.field, format!("{name} does not resolve ({why}): a deny that matches nothing would weaken the policy; use an address or CIDR"));
                    }
                    return;
                }
            },
        };
        let protos: &[u8] = match protocol {
            Protocol::Tcp => &[PROTO_TCP],
            Protocol::Udp => &[PROTO_UDP],
            Protocol::Any => &[PROTO_ANY],
        };
        let port_list = port_ranges(ports);
        let expanded: usize = port_list
            .iter()
            .map(|&(f, l)| usize::from(l - f) + 1)
            .sum::<usize>()
            * nets.len()
            * bins.len();
        if expanded > MAX_NET_RULES as usize {
            self.error(rule.mark, &rule.field, format!("expands to {expanded} map entries (addresses x ports); the kernel map holds {MAX_NET_RULES}"));
            return;
        }
        let this = verdict(action, id);
        for &(addr, prefix_len) in &nets {
            let (addr, prefix_len) = unmap(addr, prefix_len);
            for &proto in protos {
                for &(first, last) in &port_list {
                    for (port, &bin) in
                        (first..=last).flat_map(|p| bins.iter().map(move |b| (p, b)))
                    {
                        add_net(groups4, groups6, (bin, proto, port), addr, prefix_len, this);
                    }
                }
                let ports = port_list.clone();
                let binaries = (!binaries.is_empty()).then(|| self.inodes_of(&bins));
                self.rules.net.push(NetRuleSpec {
                    id,
                    action,
                    proto,
                    ports,
                    addr,
                    prefix_len,
                    binaries,
                });
            }
        }
    }
}

impl Compiler<'_, '_> {
    /// A `network.listen` entry: one (protocol, port) key per port (the full range
    /// `1-65535` is the any-port key), keeping the lowest rule id where entries overlap.
    fn listen_rule(
        &mut self,
        rule: &Located<ListenRule>,
        id: u32,
        listen: &mut BTreeMap<(u8, u16), u32>,
    ) {
        let proto = match rule.value.protocol {
            Protocol::Tcp => PROTO_TCP,
            Protocol::Udp => PROTO_UDP,
            Protocol::Any => PROTO_ANY,
        };
        let ranges = port_ranges(&rule.value.ports);
        for &(first, last) in &ranges {
            for port in first..=last {
                listen.entry((proto, port)).or_insert(id);
            }
        }
        self.rules.listen.push(ListenRuleSpec {
            id,
            proto,
            ports: ranges,
        });
    }
}

/// Port ranges as the kernel keys them: any port (and the full range `1-65535`) is
/// `(PORT_ANY, PORT_ANY)`.
fn port_ranges(ports: &Ports) -> Vec<(u16, u16)> {
    match ports {
        Ports::Any => vec![(PORT_ANY, PORT_ANY)],
        Ports::Ranges(ranges) => ranges
            .iter()
            .map(|&(first, last)| {
                if (first, last) == (1, u16::MAX) {
                    (PORT_ANY, PORT_ANY)
                } else {
                    (first, last)
                }
            })
            .collect(),
    }
}

/// Merges `this` into the (binary, protocol, port) group's entry for `addr/prefix_len`.
fn add_net(
    groups4: &mut NetGroups<4>,
    groups6: &mut NetGroups<16>,
    group: (u16, u8, u16),
    addr: IpAddr,
    prefix_len: u8,
    this: Verdict,
) {
    let slot = match addr {
        IpAddr::V4(v4) => groups4
            .entry(group)
            .or_default()
            .entry((prefix_len, v4.octets()))
            .or_default(),
        IpAddr::V6(v6) => groups6
            .entry(group)
            .or_default()
            .entry((prefix_len, v6.octets()))
            .or_default(),
    };
    *slot = merge(*slot, this);
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, prefix >= 96) becomes IPv4: the kernel judges such
/// connections as IPv4.
fn unmap(addr: IpAddr, prefix_len: u8) -> (IpAddr, u8) {
    if let IpAddr::V6(v6) = addr
        && prefix_len >= 96
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        return (IpAddr::V4(v4), prefix_len - 96);
    }
    (addr, prefix_len)
}

/// `$HOME`, `${HOME}` or `~` at the start of a binary's path, expanded.
fn expand_home(written: &str, home: &str) -> String {
    for lead in ["${HOME}", "$HOME", "~"] {
        if let Some(rest) = written.strip_prefix(lead)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("{home}{rest}");
        }
    }
    written.to_owned()
}

/// Userspace `st_dev` to the kernel's `MKDEV` encoding.
fn st_dev_to_kernel(st_dev: u64) -> u64 {
    kernel_dev(libc::major(st_dev), libc::minor(st_dev))
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// Every key of `map` that is a `/`-terminated prefix of `path` (a key ending in `/`
/// includes itself), merged.
fn lookup_prefixes(map: &BTreeMap<String, (Verdict, Verdict)>, path: &str) -> (Verdict, Verdict) {
    let mut acc = (Verdict::default(), Verdict::default());
    for (index, _) in path.match_indices('/') {
        if let Some(found) = map.get(&path[..=index]) {
            acc = (merge(acc.0, found.0), merge(acc.1, found.1));
        }
    }
    acc
}

/// Every key of `map` that `path` ends with, merged. Keys either start with `/` or hold
/// no `/` at all (`.ext`), so only those split points are tried.
fn lookup_suffixes(map: &BTreeMap<String, (Verdict, Verdict)>, path: &str) -> (Verdict, Verdict) {
    let mut acc = (Verdict::default(), Verdict::default());
    let last_slash = path.rfind('/').map_or(0, |i| i + 1);
    let starts = path
        .match_indices('/')
        .map(|(i, _)| i)
        .chain((last_slash..path.len()).filter(|i| path.is_char_boundary(*i)));
    let mut seen = BTreeSet::new();
    for start in starts {
        if !seen.insert(start) {
            continue;
        }
        if let Some(found) = map.get(&path[start..]) {
            acc = (merge(acc.0, found.0), merge(acc.1, found.1));
        }
    }
    acc
}

/// Merges each `/dir/` key with every shorter key that covers it.
fn push_down_prefixes(map: &BTreeMap<String, Verdict>) -> BTreeMap<String, Verdict> {
    map.keys()
        .map(|key| {
            let mut acc = Verdict::default();
            for (index, _) in key.match_indices('/') {
                if let Some(found) = map.get(&key[..=index]) {
                    acc = merge(acc, *found);
                }
            }
            (key.clone(), acc)
        })
        .collect()
}

/// Merges each network entry with the shorter prefixes of its (protocol, port) group that
/// cover it, so the LPM trie's longest match carries every covering verdict.
fn flatten_net<const N: usize>(groups: &NetGroups<N>) -> Vec<NetEntry<N>> {
    let mut out = Vec::new();
    for (&(bin, proto, port), entries) in groups {
        let lengths: BTreeSet<u8> = entries.keys().map(|(len, _)| *len).collect();
        for (&(prefix_len, addr), own) in entries {
            let mut acc = *own;
            for &shorter in lengths.range(..prefix_len) {
                if let Some(found) = entries.get(&(shorter, mask_bytes(addr, shorter))) {
                    acc = merge(acc, *found);
                }
            }
            out.push(NetEntry {
                bin,
                proto,
                port,
                addr,
                prefix_len,
                verdict: acc,
            });
        }
    }
    out.sort();
    out
}

/// Zeroes the bits of `addr` after the first `prefix_len`.
#[must_use]
pub fn mask_bytes<const N: usize>(mut addr: [u8; N], prefix_len: u8) -> [u8; N] {
    for (index, byte) in addr.iter_mut().enumerate() {
        let start = index * 8;
        let keep = usize::from(prefix_len).saturating_sub(start).min(8);
        *byte &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
    }
    addr
}
