//! Writes a compiled policy's filesystem entries into the kernel maps for one slot: the
//! exact hash, the `/dir/` prefix trie, the reversed-suffix trie, and the (device, inode)
//! map of files that exist under `filesystem.deny` rules when the policy is installed.
//!
//! Inode keys defeat names the path rules cannot see: a hard link made beforehand outside
//! the sandbox, a bind mount. Only exact and `/dir/**` deny rules are keyed (a `**/name`
//! rule names no place to look); trees are walked without following symlinks or crossing
//! into other file systems, and a tree with more files than [`MAX_DENY_INODES`] is refused
//! rather than half keyed.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aya::maps::{Array, HashMap, LpmTrie, lpm_trie::Key};
use nemoclaw_common::{
    exec::kernel_dev,
    fs::{
        FS_EXACT_MAX, FS_LPM_MAX, FsExactKey, FsInodeKey, FsLpmKey, FsSubtreeKey, FsValue,
        exact_class, slot_flags, subtree, subtree_hash,
    },
    rule::{ACTION_DENY, Verdict},
    sandbox::Slot,
};

use super::{KernelError, mapset::MapSet};
use crate::policy::{
    compiled::{CompiledPolicy, FsEntry, RuleRef, Subtree},
    explain::{Query, evaluate},
};

/// Most files keyed by inode for one policy (the `FS_INODES` map holds more, shared by slots).
pub const MAX_DENY_INODES: usize = 65_536;

/// The section whose rules are also keyed by inode.
const DENY_SECTION: &str = "filesystem.deny";

fn map<'a, T>(maps: &'a mut MapSet, name: &'static str) -> Result<T, KernelError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    maps.typed(name)
}

fn value(entry: &FsEntry) -> FsValue {
    FsValue {
        read: entry.read,
        write: entry.write,
    }
}

fn too_long(kind: &str, path: &str, max: usize) -> KernelError {
    KernelError::Unsupported(format!(
        "filesystem {kind} rule {path:?} is {} bytes; the kernel maps hold at most {max}",
        path.len()
    ))
}

/// The exact-rule maps, one per `FS_EXACT_CLASSES` entry, in that order.
const EXACT_MAPS: [&str; 4] = [
    "FS_EXACT_56",
    "FS_EXACT_120",
    "FS_EXACT_248",
    "FS_EXACT_504",
];

/// Inserts `entry` into `name`, the exact map whose keys hold `N` path bytes.
fn insert_exact<const N: usize>(
    maps: &mut MapSet,
    name: &'static str,
    slot: Slot,
    entry: &FsEntry,
) -> Result<(), KernelError> {
    let mut exact: HashMap<_, FsExactKey<N>, FsValue> = map(maps, name)?;
    let key = FsExactKey::<N>::new(slot, entry.path.as_bytes())
        .ok_or_else(|| too_long("exact", &entry.path, N))?;
    exact
        .insert(key, value(entry), 0)
        .map_err(|source| KernelError::Map { map: name, source })
}

/// The `slot_flags` of a policy whose inode map gets `inodes` entries: which maps the kernel
/// must look up for its slot.
#[must_use]
pub fn flags_for(policy: &CompiledPolicy, inodes: usize) -> u32 {
    let mut flags = 0;
    for e in &policy.fs_exact {
        if let Some(class) = exact_class(e.path.len()) {
            flags |= slot_flags::EXACT << class;
        }
    }
    if !policy.fs_prefix.is_empty() {
        flags |= slot_flags::PREFIX;
    }
    if !policy.fs_suffix.is_empty() {
        flags |= slot_flags::SUFFIX;
    }
    if inodes > 0 {
        flags |= slot_flags::INODES;
    }
    if !policy.fs_subtrees.is_empty() {
        flags |= slot_flags::SUBTREES;
    }
    flags
}

/// The `FS_SUBTREES` key of one entry under `slot`.
#[must_use]
pub fn subtree_key(slot: Slot, entry: &Subtree) -> FsSubtreeKey {
    let (kind, bytes) = match entry {
        Subtree::Directory(path) => (subtree::DIRECTORY, path.as_bytes()),
        Subtree::Name(name) => (subtree::NAME, name.as_bytes()),
    };
    FsSubtreeKey {
        slot,
        kind,
        hash: subtree_hash(bytes),
    }
}

/// Writes every filesystem entry of `policy` under `slot`, then the slot's flags (the slot
/// is not in use yet: a sandbox is switched to it afterwards).
pub fn install(maps: &mut MapSet, slot: Slot, policy: &CompiledPolicy) -> Result<(), KernelError> {
    for e in &policy.fs_exact {
        match exact_class(e.path.len()) {
            Some(0) => insert_exact::<56>(maps, EXACT_MAPS[0], slot, e)?,
            Some(1) => insert_exact::<120>(maps, EXACT_MAPS[1], slot, e)?,
            Some(2) => insert_exact::<248>(maps, EXACT_MAPS[2], slot, e)?,
            Some(_) => insert_exact::<504>(maps, EXACT_MAPS[3], slot, e)?,
            None => return Err(too_long("exact", &e.path, FS_EXACT_MAX)),
        }
    }
    for (name, entries, make) in [
        (
            "FS_PREFIX",
            &policy.fs_prefix,
            FsLpmKey::prefix as fn(Slot, &[u8]) -> _,
        ),
        ("FS_SUFFIX", &policy.fs_suffix, FsLpmKey::suffix),
    ] {
        let mut trie: LpmTrie<_, FsLpmKey, FsValue> = map(maps, name)?;
        for e in entries {
            let (bits, data) = make(slot, e.path.as_bytes())
                .ok_or_else(|| too_long("directory or suffix", &e.path, FS_LPM_MAX))?;
            trie.insert(&Key::new(bits, data), value(e), 0)
                .map_err(|source| KernelError::Map { map: name, source })?;
        }
    }
    let mut subtrees: HashMap<_, FsSubtreeKey, u32> = map(maps, "FS_SUBTREES")?;
    for e in &policy.fs_subtrees {
        subtrees
            .insert(subtree_key(slot, &e.subtree), e.rule_id, 0)
            .map_err(|source| KernelError::Map {
                map: "FS_SUBTREES",
                source,
            })?;
    }
    let inodes = deny_inodes(policy)?;
    let flags = flags_for(policy, inodes.len());
    let mut map_inodes: HashMap<_, FsInodeKey, FsValue> = map(maps, "FS_INODES")?;
    for ((dev, ino), v) in inodes {
        map_inodes
            .insert(
                FsInodeKey {
                    slot,
                    _pad: 0,
                    dev,
                    ino,
                },
                v,
                0,
            )
            .map_err(|source| KernelError::Map {
                map: "FS_INODES",
                source,
            })?;
    }
    let mut map_flags: Array<_, u32> = map(maps, "FS_SLOT_FLAGS")?;
    map_flags
        .set(slot, flags, 0)
        .map_err(|source| KernelError::Map {
            map: "FS_SLOT_FLAGS",
            source,
        })
}

/// Keeps only the verdicts that deny rules decided.
fn deny_only(v: Verdict, rules: &[RuleRef]) -> Verdict {
    let from_deny = v.action == ACTION_DENY
        && v.rule_id != 0
        && rules
            .get(v.rule_id as usize - 1)
            .is_some_and(|r| r.section == DENY_SECTION);
    if from_deny { v } else { Verdict::default() }
}

/// The policy's deny verdicts for `path`, as the kernel would find them by path.
fn deny_value(policy: &CompiledPolicy, path: &str) -> FsValue {
    let judge = |write| {
        evaluate(
            policy,
            &Query::Open {
                path: path.to_owned(),
                write,
            },
        )
    };
    FsValue {
        read: deny_only(judge(false), &policy.rules),
        write: deny_only(judge(true), &policy.rules),
    }
}

fn is_denied(v: &FsValue) -> bool {
    v.read.action == ACTION_DENY || v.write.action == ACTION_DENY
}

/// (kernel dev, inode) -> deny verdicts, for every existing file under an exact or `/dir/`
/// deny rule.
pub fn deny_inodes(policy: &CompiledPolicy) -> Result<BTreeMap<(u64, u64), FsValue>, KernelError> {
    let mut out = BTreeMap::new();
    let denied = |e: &&FsEntry| {
        is_denied(&FsValue {
            read: deny_only(e.read, &policy.rules),
            write: deny_only(e.write, &policy.rules),
        })
    };
    for e in policy.fs_exact.iter().filter(denied) {
        // An exact rule names a file; follow a symlink to the content it protects.
        if let Ok(meta) = std::fs::metadata(&e.path) {
            let v = deny_value(policy, &e.path);
            if is_denied(&v) {
                out.insert((st_dev_to_kernel(meta.dev()), meta.ino()), v);
            }
        }
    }
    let mut walked: Vec<&str> = Vec::new();
    for e in policy.fs_prefix.iter().filter(denied) {
        if walked.iter().any(|w| e.path.starts_with(w)) {
            continue;
        }
        walked.push(&e.path);
        let root = PathBuf::from(if e.path == "/" {
            "/"
        } else {
            e.path.trim_end_matches('/')
        });
        let Ok(meta) = std::fs::symlink_metadata(&root) else {
            continue;
        };
        walk(policy, &root, meta.dev(), &mut out)?;
    }
    Ok(out)
}

fn walk(
    policy: &CompiledPolicy,
    dir: &Path,
    dev: u64,
    out: &mut BTreeMap<(u64, u64), FsValue>,
) -> Result<(), KernelError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != dev || meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            walk(policy, &path, dev, out)?;
            continue;
        }
        let Some(text) = path.to_str() else {
            continue;
        };
        let v = deny_value(policy, text);
        if is_denied(&v) {
            if out.len() >= MAX_DENY_INODES {
                return Err(KernelError::Unsupported(format!(
                    "more than {MAX_DENY_INODES} existing files under filesystem.deny rules \
                     (at {}); each is keyed by inode, so narrow the deny rules",
                    path.display()
                )));
            }
            out.insert((st_dev_to_kernel(meta.dev()), meta.ino()), v);
        }
    }
    Ok(())
}

/// Userspace `st_dev` to the kernel's `MKDEV` encoding.
fn st_dev_to_kernel(st_dev: u64) -> u64 {
    kernel_dev(libc::major(st_dev), libc::minor(st_dev))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compiled::RuleRef;
    use nemoclaw_common::rule::ACTION_ALLOW;

    fn rule(id: u32, section: &str) -> RuleRef {
        RuleRef {
            id,
            file: PathBuf::from("p.yaml"),
            line: 1,
            column: 1,
            section: section.into(),
            text: String::new(),
        }
    }

    fn v(action: u32, rule_id: u32) -> Verdict {
        Verdict { action, rule_id }
    }

    /// Files under a deny tree are keyed, `read_only` and `allow` trees are not, and a file an
    /// exact deny names is keyed through its symlink.
    #[test]
    fn deny_inodes_keys_only_deny_rule_files() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap().to_owned();
        std::fs::create_dir_all(format!("{base}/secret/sub")).unwrap();
        std::fs::write(format!("{base}/secret/sub/key"), "k").unwrap();
        std::fs::create_dir_all(format!("{base}/ro")).unwrap();
        std::fs::write(format!("{base}/ro/file"), "r").unwrap();
        std::fs::write(format!("{base}/target"), "t").unwrap();
        std::os::unix::fs::symlink(format!("{base}/target"), format!("{base}/link")).unwrap();
        let policy = CompiledPolicy {
            controls: nemoclaw_common::sandbox::controls::FS,
            rules: vec![
                rule(1, "filesystem.read_only"),
                rule(2, "filesystem.deny"),
                rule(3, "filesystem.deny"),
            ],
            fs_exact: vec![
                FsEntry {
                    path: format!("{base}/link"),
                    read: v(ACTION_DENY, 3),
                    write: v(ACTION_DENY, 3),
                },
                FsEntry {
                    path: format!("{base}/ro"),
                    read: v(ACTION_ALLOW, 1),
                    write: v(ACTION_DENY, 1),
                },
                FsEntry {
                    path: format!("{base}/secret"),
                    read: v(ACTION_DENY, 2),
                    write: v(ACTION_DENY, 2),
                },
            ],
            fs_prefix: vec![
                FsEntry {
                    path: format!("{base}/ro/"),
                    read: v(ACTION_ALLOW, 1),
                    write: v(ACTION_DENY, 1),
                },
                FsEntry {
                    path: format!("{base}/secret/"),
                    read: v(ACTION_DENY, 2),
                    write: v(ACTION_DENY, 2),
                },
            ],
            ..CompiledPolicy::default()
        };
        let got = deny_inodes(&policy).unwrap();
        let ino = |p: &str| std::fs::metadata(p).unwrap().ino();
        let inos: Vec<u64> = got.keys().map(|k| k.1).collect();
        assert!(
            inos.contains(&ino(&format!("{base}/secret/sub/key"))),
            "{got:?}"
        );
        assert!(inos.contains(&ino(&format!("{base}/target"))), "{got:?}");
        assert!(!inos.contains(&ino(&format!("{base}/ro/file"))), "{got:?}");
        let key = got
            .iter()
            .find(|(k, _)| k.1 == ino(&format!("{base}/secret/sub/key")))
            .unwrap()
            .1;
        assert_eq!(key.read, v(ACTION_DENY, 2));
    }

    /// Each path goes to the smallest class that holds it; the flags name exactly the maps
    /// that get entries.
    #[test]
    fn exact_classes_and_slot_flags() {
        assert_eq!(exact_class(0), Some(0));
        assert_eq!(exact_class(56), Some(0));
        assert_eq!(exact_class(57), Some(1));
        assert_eq!(exact_class(120), Some(1));
        assert_eq!(exact_class(121), Some(2));
        assert_eq!(exact_class(248), Some(2));
        assert_eq!(exact_class(249), Some(3));
        assert_eq!(exact_class(FS_EXACT_MAX), Some(3));
        assert_eq!(exact_class(FS_EXACT_MAX + 1), None);
        let entry = |path: String| FsEntry {
            path,
            read: v(ACTION_ALLOW, 1),
            write: v(ACTION_ALLOW, 1),
        };
        let mut policy = CompiledPolicy {
            fs_exact: vec![entry("/a".into()), entry(format!("/{}", "b".repeat(300)))],
            ..CompiledPolicy::default()
        };
        assert_eq!(
            flags_for(&policy, 0),
            slot_flags::EXACT | (slot_flags::EXACT << 3)
        );
        policy.fs_suffix.push(entry(".pem".into()));
        assert_eq!(
            flags_for(&policy, 2),
            slot_flags::EXACT | (slot_flags::EXACT << 3) | slot_flags::SUFFIX | slot_flags::INODES
        );
        policy.fs_exact.clear();
        policy.fs_prefix.push(entry("/w/".into()));
        assert_eq!(
            flags_for(&policy, 0),
            slot_flags::PREFIX | slot_flags::SUFFIX
        );
    }

    #[test]
    fn lpm_keys_reverse_suffixes() {
        let (bits, key) = FsLpmKey::suffix(7, b"/.git/config").unwrap();
        assert_eq!(bits, 32 + 8 * 12);
        assert_eq!(&key.path[..12], b"gifnoc/tig./");
        assert_eq!(key.slot, 7u32.to_be_bytes());
        assert!(FsLpmKey::prefix(7, &[b'a'; FS_LPM_MAX + 1]).is_none());
        assert!(FsExactKey::<FS_EXACT_MAX>::new(7, &[b'a'; FS_EXACT_MAX + 1]).is_none());
        let key = FsExactKey::<56>::new(7, b"/etc/passwd").unwrap();
        assert_eq!((key.zero, key.slot), (0, 7u32.to_be_bytes()));
        assert_eq!(&key.path[..12], b"/etc/passwd\0");
        assert!(FsExactKey::<56>::new(7, &[b'a'; 57]).is_none());
    }
}
