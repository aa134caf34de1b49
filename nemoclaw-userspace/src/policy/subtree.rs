//! Which directory renames would get around a filesystem rule (issue 13, class 1).
//!
//! Path rules are judged on the path at the time of access, so moving a directory moves
//! everything beneath it to new paths. A rename is safe for the objects beneath the
//! directory only if no rule can tell their old paths from their new ones:
//!
//! - an exact or `/dir/**` rule anchored at `P` tells them apart when `P` lies strictly
//!   beneath the source or the destination: every strict ancestor of `P` is a
//!   [`Subtree::Directory`] (the root excepted: it cannot be renamed);
//! - a `**/c1/c2/.../cn` rule matches a path by its last `n` components, so for an object
//!   `k < n` levels beneath the directory the rule also reads the directory's own name,
//!   which must then equal one of `c1 .. c(n-1)`: those are [`Subtree::Name`]s. A rule on
//!   the last component only (`**/name`, `**/*.ext`) never reads a directory's name.
//!
//! The kernel refuses a directory rename with `EXDEV` when the source or destination path
//! is such a directory or ends in such a name (`nemoclaw-ebpf/src/fs.rs`, `path_rename`);
//! `mv` then copies, and every copied file is judged on its own. The rename of the object
//! itself is judged as before (the source read and written, the destination written).
//! Every rule counts, allow and deny alike: moving objects out from under an allow rule
//! can move them under a weaker one, too.

use std::collections::BTreeMap;

use super::compiled::{Subtree, SubtreeEntry};
use super::explain::FsRuleSpec;
use super::pattern::Shape;

/// The `FS_SUBTREES` entries of a policy's filesystem rules, sorted, each citing the
/// lowest rule id that needs it.
#[must_use]
pub fn subtrees(rules: &[FsRuleSpec]) -> Vec<SubtreeEntry> {
    let mut out: BTreeMap<Subtree, u32> = BTreeMap::new();
    let mut add = |subtree: Subtree, id: u32| {
        out.entry(subtree)
            .and_modify(|lowest| *lowest = (*lowest).min(id))
            .or_insert(id);
    };
    for rule in rules {
        match &rule.shape {
            // `/dir/name*/**` (prefix `/dir/name`) reads the names down to `/dir`'s.
            Shape::Exact(anchor) | Shape::Tree(anchor) | Shape::Prefix(anchor) => {
                for ancestor in strict_ancestors(anchor) {
                    add(Subtree::Directory(ancestor.to_owned()), rule.id);
                }
            }
            Shape::Suffix(suffix) => {
                // `/c1/.../cn` for `**/c1/.../cn`; `.ext` (no slash) reads one component.
                if let Some(components) = suffix.strip_prefix('/') {
                    let mut names: Vec<&str> = components.split('/').collect();
                    names.pop();
                    for name in names {
                        add(Subtree::Name(name.to_owned()), rule.id);
                    }
                }
            }
        }
    }
    out.into_iter()
        .map(|(subtree, rule_id)| SubtreeEntry { subtree, rule_id })
        .collect()
}

/// `/a`, `/a/b` for `/a/b/c` (without the root); nothing for `/a` or the root.
fn strict_ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(|(at, _)| &path[..at])
        .filter(|ancestor| !ancestor.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: u32, shape: Shape) -> FsRuleSpec {
        FsRuleSpec {
            id,
            pattern: shape.to_string(),
            shape,
            allow: 0,
            deny: 0,
        }
    }

    fn dir(path: &str, rule_id: u32) -> SubtreeEntry {
        SubtreeEntry {
            subtree: Subtree::Directory(path.into()),
            rule_id,
        }
    }

    fn name(name: &str, rule_id: u32) -> SubtreeEntry {
        SubtreeEntry {
            subtree: Subtree::Name(name.into()),
            rule_id,
        }
    }

    #[test]
    fn tree_and_exact_rules_guard_their_strict_ancestors() {
        let rules = [
            rule(1, Shape::Tree("/dir/private".into())),
            rule(2, Shape::Exact("/dir/notes.txt".into())),
            rule(3, Shape::Tree(String::new())),
            rule(4, Shape::Exact("/top".into())),
        ];
        // `/dir/private` itself is not guarded: moving it is judged as reading and writing
        // it, by its own rule; `/top` and `/**` have no ancestor but the root.
        assert_eq!(
            subtrees(&rules),
            vec![dir("/dir", 1)],
            "the lower rule id is cited when two rules need the same directory"
        );
    }

    #[test]
    fn suffix_rules_guard_every_component_but_the_last() {
        let rules = [
            rule(5, Shape::Suffix("/.git/config".into())),
            rule(6, Shape::Suffix("/a/b/c".into())),
            rule(7, Shape::Suffix("/.env".into())),
            rule(8, Shape::Suffix(".pem".into())),
            rule(9, Shape::Suffix("/x/b/y".into())),
        ];
        assert_eq!(
            subtrees(&rules),
            vec![name(".git", 5), name("a", 6), name("b", 6), name("x", 9)]
        );
    }

    #[test]
    fn no_rules_no_entries() {
        assert!(subtrees(&[]).is_empty());
    }
}
