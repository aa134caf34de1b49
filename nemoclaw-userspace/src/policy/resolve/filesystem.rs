//! `filesystem`: patterns with `$HOME` expanded, their shapes (exact path, tree, suffix)
//! checked against the kernel's key sizes, and the access bits each allows and denies.

use nemoclaw_common::sandbox::controls;

use super::Resolving;
use crate::policy::compiled::{FS_READ, FS_WRITE};
use crate::policy::explain::FsRuleSpec;
use crate::policy::pattern::Shape;
use crate::policy::types::{FsRule, Located, Policy};

/// Which list of the `filesystem` section a rule is in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::policy) enum FsList {
    Allow,
    ReadOnly,
    Deny,
}

/// The control bit: set by a `filesystem` section.
pub(super) fn control(policy: &Policy) -> u32 {
    if policy.filesystem.is_some() {
        controls::FS
    } else {
        0
    }
}

impl Resolving<'_, '_> {
    pub(super) fn fs_rule(&mut self, rule: &Located<FsRule>, list: FsList, id: u32) {
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
            Shape::Suffix(suffix) | Shape::Prefix(suffix) => {
                (suffix.len(), nemoclaw_common::fs::FS_LPM_MAX)
            }
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
        self.rules.fs.push(FsRuleSpec {
            id,
            pattern: rule.value.pattern.expand(self.home),
            shape,
            allow,
            deny,
        });
    }
}
