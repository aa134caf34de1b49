//! `process`: the programs a sandbox may and may not exec, `anonymous_exec` and
//! `library_dirs`, and the program-name-or-path value syntax.

use super::{Cx, render};
use crate::policy::pattern::{PathPattern, Shape};
use crate::policy::types::{AnonymousExec, ExecTarget, Located, ProcessSection};
use crate::policy::yaml::{Mark, Node};

impl Cx<'_> {
    pub(super) fn process(&mut self, node: &Node, key_mark: Mark) -> Option<ProcessSection> {
        let entries = self.map(
            node,
            "process",
            &["allow", "deny", "libraries", "anonymous_exec"],
        )?;
        let mut section = ProcessSection {
            mark: key_mark,
            allow: Vec::new(),
            deny: Vec::new(),
            libraries: None,
            anonymous_exec: None,
        };
        for (key, _, value) in entries {
            let field = format!("process.{key}");
            if key == "libraries" {
                section.libraries = Some(self.library_dirs(value, &field));
                continue;
            }
            if key == "anonymous_exec" {
                section.anonymous_exec = self.anonymous_exec(value, field);
                continue;
            }
            let mut rules = Vec::new();
            for (index, item) in self.seq(value, &field).iter().enumerate() {
                let item_field = format!("{field}[{index}]");
                let Some(text) = self.scalar(item, &item_field) else {
                    continue;
                };
                match parse_exec_target(text) {
                    Ok(target) => rules.push(Located {
                        value: target,
                        mark: item.mark,
                        field: item_field,
                        text: text.to_owned(),
                    }),
                    Err(message) => self.error(item.mark, &item_field, message),
                }
            }
            if key == "allow" {
                section.allow = rules;
            } else {
                section.deny = rules;
            }
        }
        Some(section)
    }

    /// `process.anonymous_exec: deny | allow`.
    fn anonymous_exec(&mut self, node: &Node, field: String) -> Option<Located<AnonymousExec>> {
        let value = match self.scalar(node, &field)? {
            "deny" => AnonymousExec::Deny,
            "allow" => AnonymousExec::Allow,
            _ => {
                self.error(
                    node.mark,
                    &field,
                    format!("expected deny or allow, got {}", node.describe()),
                );
                return None;
            }
        };
        Some(Located {
            value,
            mark: node.mark,
            text: format!("anonymous_exec: {}", render(node)),
            field,
        })
    }

    /// `process.libraries`: `/dir/**` entries only.
    fn library_dirs(&mut self, node: &Node, field: &str) -> Vec<Located<PathPattern>> {
        let mut dirs = Vec::new();
        for (index, item) in self.seq(node, field).iter().enumerate() {
            let item_field = format!("{field}[{index}]");
            let Some(text) = self.scalar(item, &item_field) else {
                continue;
            };
            match parse_exec_target(text) {
                Ok(ExecTarget::Dir(pattern)) => dirs.push(Located {
                    value: pattern,
                    mark: item.mark,
                    field: item_field,
                    text: text.to_owned(),
                }),
                Ok(_) | Err(_) => self.error(
                    item.mark,
                    &item_field,
                    format!("{text:?}: a library directory is written /dir/**"),
                ),
            }
        }
        dirs
    }
}

/// `node`, `/usr/bin/node`, `$HOME/bin/tool`, `/opt/tools/**`.
pub fn parse_exec_target(text: &str) -> Result<ExecTarget, String> {
    if text.is_empty() {
        return Err("expected a program name or path, got an empty string".to_owned());
    }
    let looks_like_path = text.contains('/') || text.starts_with('$') || text.starts_with('~');
    if !looks_like_path {
        if text.contains('*') || text == "." || text == ".." || text.contains('\0') {
            return Err(format!(
                "{text:?} is not a program name; use a name, an absolute path or /dir/**"
            ));
        }
        return Ok(ExecTarget::Name(text.to_owned()));
    }
    let pattern = PathPattern::parse(text).map_err(|error| error.to_string())?;
    match pattern.shape("/home") {
        Ok(Shape::Exact(_)) => Ok(ExecTarget::Path(pattern)),
        Ok(Shape::Tree(_)) => Ok(ExecTarget::Dir(pattern)),
        Ok(Shape::Suffix(_) | Shape::Prefix(_)) | Err(_) => Err(format!(
            "{text:?}: process entries are program names, absolute paths or /dir/**"
        )),
    }
}
