//! `filesystem` rules to `FS_EXACT`, `FS_PREFIX`, `FS_SUFFIX` and `FS_SUBTREES` entries.
//! Each exact entry merges every prefix and suffix rule that also matches its path, each
//! prefix and suffix entry every shorter one, so one hit per map decides.

use std::collections::{BTreeMap, BTreeSet};

use nemoclaw_common::rule::{ACTION_ALLOW, ACTION_DENY, Verdict, merge};

use crate::policy::compiled::{CompiledPolicy, FS_READ, FS_WRITE, FsEntry};
use crate::policy::explain::RuleSet;
use crate::policy::pattern::Shape;

type FsMap = BTreeMap<String, (Verdict, Verdict)>;

#[derive(Default)]
struct FsAcc {
    exact: FsMap,
    prefix: FsMap,
    suffix: FsMap,
}

fn add_fs(map: &mut FsMap, key: String, read: Verdict, write: Verdict) {
    let slot = map.entry(key).or_default();
    slot.0 = merge(slot.0, read);
    slot.1 = merge(slot.1, write);
}

pub(super) fn lower(rules: &RuleSet, out: &mut CompiledPolicy) {
    let mut fs = FsAcc::default();
    for rule in &rules.fs {
        let pick = |which: u32| {
            if rule.deny & which != 0 {
                Verdict {
                    action: ACTION_DENY,
                    rule_id: rule.id,
                }
            } else if rule.allow & which != 0 {
                Verdict {
                    action: ACTION_ALLOW,
                    rule_id: rule.id,
                }
            } else {
                Verdict::default()
            }
        };
        let (read, write) = (pick(FS_READ), pick(FS_WRITE));
        match &rule.shape {
            Shape::Exact(path) => add_fs(&mut fs.exact, path.clone(), read, write),
            Shape::Tree(dir) => {
                if !dir.is_empty() {
                    add_fs(&mut fs.exact, dir.clone(), read, write);
                }
                add_fs(&mut fs.prefix, format!("{dir}/"), read, write);
            }
            Shape::Suffix(suffix) => add_fs(&mut fs.suffix, suffix.clone(), read, write),
            // A byte prefix in the same trie: the kernel's longest match needs no `/` end.
            Shape::Prefix(prefix) => add_fs(&mut fs.prefix, prefix.clone(), read, write),
        }
    }
    let byte_prefixes = ByteLengths::of(&fs.prefix);
    let entry = |(path, (read, write)): (String, (Verdict, Verdict))| FsEntry { path, read, write };
    let prefix: FsMap = fs
        .prefix
        .keys()
        .map(|key| {
            (
                key.clone(),
                lookup_prefixes(&fs.prefix, &byte_prefixes, key),
            )
        })
        .collect();
    let suffix: FsMap = fs
        .suffix
        .keys()
        .map(|key| (key.clone(), lookup_suffixes(&fs.suffix, key)))
        .collect();
    let exact: FsMap = fs
        .exact
        .iter()
        .map(|(path, own)| {
            let p = lookup_prefixes(&fs.prefix, &byte_prefixes, path);
            let s = lookup_suffixes(&fs.suffix, path);
            (
                path.clone(),
                (merge(merge(own.0, p.0), s.0), merge(merge(own.1, p.1), s.1)),
            )
        })
        .collect();
    out.fs_exact = exact.into_iter().map(entry).collect();
    out.fs_prefix = prefix.into_iter().map(entry).collect();
    out.fs_suffix = suffix.into_iter().map(entry).collect();
    out.fs_subtrees = crate::policy::subtree::subtrees(&rules.fs);
}

/// The lengths of the prefix keys that do not end in `/` (from `/dir/name*/**`): the only
/// split points besides a `/` where a key can be a prefix of a path.
struct ByteLengths(BTreeSet<usize>);

impl ByteLengths {
    fn of(map: &FsMap) -> Self {
        Self(
            map.keys()
                .filter(|key| !key.ends_with('/'))
                .map(String::len)
                .collect(),
        )
    }
}

/// Every key of `map` that is a prefix of `path` (itself included), merged: the keys ending
/// in `/` at each `/` of `path`, the byte prefixes at their lengths.
fn lookup_prefixes(map: &FsMap, bytes: &ByteLengths, path: &str) -> (Verdict, Verdict) {
    let mut acc = (Verdict::default(), Verdict::default());
    let at_slash = path.match_indices('/').map(|(index, _)| index + 1);
    let at_length = bytes
        .0
        .iter()
        .copied()
        .take_while(|len| *len <= path.len())
        .filter(|len| path.is_char_boundary(*len) && !path[..*len].ends_with('/'));
    for end in at_slash.chain(at_length) {
        if let Some(found) = map.get(&path[..end]) {
            acc = (merge(acc.0, found.0), merge(acc.1, found.1));
        }
    }
    acc
}

/// Every key of `map` that `path` ends with, merged. Keys either start with `/` or hold
/// no `/` at all (`.ext`), so only those split points are tried.
fn lookup_suffixes(map: &FsMap, path: &str) -> (Verdict, Verdict) {
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
