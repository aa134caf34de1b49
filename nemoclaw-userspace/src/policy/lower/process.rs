//! `process` rules to `EXEC` (by kernel (dev, ino)) and `EXEC_PREFIX` (`/dir/` keys, each
//! merged with the shorter keys covering it) entries, the library directories and the
//! `anonymous_exec` rule id.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nemoclaw_common::rule::{Verdict, merge};

use crate::policy::compiled::{CompiledPolicy, ExecEntry, PathEntry};
use crate::policy::explain::{ExecMatch, RuleSet};

pub(super) fn lower(rules: &RuleSet, out: &mut CompiledPolicy) {
    let mut exec: BTreeMap<(u64, u64), Verdict> = BTreeMap::new();
    let mut exec_paths: BTreeMap<PathBuf, Verdict> = BTreeMap::new();
    let mut exec_prefix: BTreeMap<String, Verdict> = BTreeMap::new();
    for rule in &rules.exec {
        let this = Verdict {
            action: rule.action,
            rule_id: rule.id,
        };
        match &rule.target {
            ExecMatch::Inode { dev, ino, path } => {
                let slot = exec.entry((*dev, *ino)).or_default();
                *slot = merge(*slot, this);
                let slot = exec_paths.entry(path.clone()).or_default();
                *slot = merge(*slot, this);
            }
            ExecMatch::Dir(key) => {
                let slot = exec_prefix.entry(key.clone()).or_default();
                *slot = merge(*slot, this);
            }
        }
    }
    out.exec = exec
        .into_iter()
        .map(|((dev, ino), verdict)| ExecEntry { dev, ino, verdict })
        .collect();
    out.exec_paths = exec_paths.into_iter().collect();
    out.exec_prefix = push_down_prefixes(&exec_prefix)
        .into_iter()
        .map(|(path, verdict)| PathEntry { path, verdict })
        .collect();
    out.library_dirs.clone_from(&rules.library_dirs);
    out.anonymous_exec_rule = rules.anonymous_exec_rule;
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
