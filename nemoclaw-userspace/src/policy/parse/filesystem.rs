//! `filesystem`: `allow`, `read_only` and `deny` path rules.

use super::{Cx, render};
use crate::policy::pattern::PathPattern;
use crate::policy::types::{Access, FilesystemSection, FsRule, Located};
use crate::policy::yaml::{Mark, Node, NodeKind};

impl Cx<'_> {
    pub(super) fn filesystem(&mut self, node: &Node, key_mark: Mark) -> Option<FilesystemSection> {
        let entries = self.map(node, "filesystem", &["allow", "read_only", "deny"])?;
        let mut section = FilesystemSection {
            mark: key_mark,
            allow: Vec::new(),
            read_only: Vec::new(),
            deny: Vec::new(),
        };
        for (key, _, value) in entries {
            let field = format!("filesystem.{key}");
            let default_access = if key == "read_only" {
                Access::Read
            } else {
                Access::ReadWrite
            };
            let mut rules = Vec::new();
            for (index, item) in self.seq(value, &field).iter().enumerate() {
                let item_field = format!("{field}[{index}]");
                if let Some(rule) = self.fs_rule(item, &item_field, &key, default_access) {
                    rules.push(Located {
                        value: rule,
                        mark: item.mark,
                        field: item_field,
                        text: render(item),
                    });
                }
            }
            match key.as_str() {
                "allow" => section.allow = rules,
                "read_only" => section.read_only = rules,
                _ => section.deny = rules,
            }
        }
        Some(section)
    }

    fn fs_rule(
        &mut self,
        node: &Node,
        field: &str,
        list: &str,
        default_access: Access,
    ) -> Option<FsRule> {
        let (path_node, path_field, access) = if let NodeKind::Map(_) = &node.kind {
            let entries = self.map(node, field, &["path", "access"])?;
            let mut path = None;
            let mut access = default_access;
            let mut ok = true;
            for (key, _, value) in &entries {
                let child = format!("{field}.{key}");
                if key == "path" {
                    path = Some((*value, child));
                    continue;
                }
                let allowed: &[(&str, Access)] = match list {
                    "allow" => &[("read", Access::Read), ("read-write", Access::ReadWrite)],
                    "read_only" => &[("read", Access::Read)],
                    _ => &[
                        ("read", Access::Read),
                        ("write", Access::Write),
                        ("read-write", Access::ReadWrite),
                    ],
                };
                match self.scalar(value, &child) {
                    Some(text) => {
                        if let Some((_, parsed)) = allowed.iter().find(|(name, _)| *name == text) {
                            access = *parsed;
                        } else {
                            let names = allowed
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(" or ");
                            self.error(
                                value.mark,
                                &child,
                                format!("expected {names}, got {}", value.describe()),
                            );
                            ok = false;
                        }
                    }
                    None => ok = false,
                }
            }
            let Some((path_node, path_field)) = path else {
                self.error(node.mark, field, "missing field `path`".to_owned());
                return None;
            };
            if !ok {
                return None;
            }
            (path_node, path_field, access)
        } else {
            (node, field.to_owned(), default_access)
        };
        let text = self.scalar(path_node, &path_field)?;
        match PathPattern::parse(text) {
            Ok(pattern) => Some(FsRule { pattern, access }),
            Err(error) => {
                self.error(path_node.mark, &path_field, error.to_string());
                None
            }
        }
    }
}
