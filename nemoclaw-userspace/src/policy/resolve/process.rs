//! `process`: programs named by a bare name (found in the sandbox PATH) or a path,
//! identified by the kernel's (dev, ino) of their canonical path; `/dir/**` rules and
//! `process.libraries` as canonical `/dir/` keys; `anonymous_exec`; and the shell the
//! lints probe.

use std::collections::BTreeSet;
use std::path::PathBuf;

use nemoclaw_common::exec::{DEFAULT_LIBRARY_DIRS, EXEC_PATH_KEY_MAX};
use nemoclaw_common::rule::ACTION_ALLOW;
use nemoclaw_common::sandbox::controls;

use super::Resolving;
use crate::policy::Mark;
use crate::policy::explain::{ExecMatch, ExecRuleSpec, ResolvedExe};
use crate::policy::pattern::PathPattern;
use crate::policy::types::{AnonymousExec, ExecTarget, Located, Policy, ProcessSection};

/// The control bit: set by a `process` section.
pub(super) fn control(policy: &Policy) -> u32 {
    if policy.process.is_some() {
        controls::EXEC
    } else {
        0
    }
}

/// What a process rule naming a program that is not there means, for its warning.
fn missing_program_consequence(action: u32) -> &'static str {
    if action == ACTION_ALLOW {
        "nothing to allow"
    } else {
        "exec is denied by default anyway"
    }
}

impl Resolving<'_, '_> {
    pub(super) fn exec_rule(&mut self, rule: &Located<ExecTarget>, action: u32, id: u32) {
        let candidates: Vec<PathBuf> = match &rule.value {
            ExecTarget::Name(name) => self.program_by_name(rule.mark, &rule.field, name, action),
            ExecTarget::Path(pattern) => {
                let path = PathBuf::from(pattern.expand(self.home));
                self.program_by_path(rule.mark, &rule.field, path, action)
            }
            ExecTarget::Dir(pattern) => {
                let key = self.dir_key(pattern, rule.mark, &rule.field);
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
            let Some((real, file)) = self.env.identify(&candidate) else {
                continue;
            };
            let (dev, ino) = (file.dev, file.ino);
            if !seen.insert((dev, ino)) {
                continue;
            }
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

    pub(super) fn anonymous_exec_rule(&mut self, rule: &Located<AnonymousExec>, id: u32) {
        if rule.value == AnonymousExec::Deny {
            self.rules.anonymous_exec_rule = id;
        }
    }

    /// The `/dir/` key of a `/dir/**` process pattern, as the kernel sees paths: resolved
    /// (a rule on `/bin` must name `/usr/bin` where `/bin` is a symlink); as written, with a
    /// warning, when the directory does not exist.
    fn dir_key(&mut self, pattern: &PathPattern, mark: Mark, field: &str) -> String {
        let written = pattern.expand(self.home);
        let dir = written.strip_suffix("/**").unwrap_or(&written);
        let dir = if dir.is_empty() { "/" } else { dir };
        let real = if let Some(real) = self.env.files.canonicalize(dir.as_ref()) {
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
    pub(super) fn library_dirs(&mut self, process: &ProcessSection) -> Vec<String> {
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

    /// The shell the sandbox would run for `sh` (the first in PATH), for the lints.
    pub(super) fn shell(&self) -> Option<ResolvedExe> {
        let shell = self
            .env
            .path
            .iter()
            .map(|dir| dir.join("sh"))
            .find(|p| self.env.files.stat(p).is_some())?;
        let (path, info) = self.env.identify(&shell)?;
        Some(ResolvedExe {
            path,
            dev: info.dev,
            ino: info.ino,
        })
    }

    /// A program name looked up in the sandbox PATH: an allow takes the first hit (the
    /// program the sandbox would run), a deny every hit (stricter). Warns when none.
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
            .filter(|p| self.env.is_executable_file(p))
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
        if self.env.is_executable_file(&path) {
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
}
