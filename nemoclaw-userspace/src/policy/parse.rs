//! From the located YAML tree to a typed [`Policy`], collecting every error with its line,
//! column and field path. Unknown keys and duplicate keys are errors.
//!
//! This module holds the walk of the document and the checked accessors every section uses
//! (`Cx`); each section is its own module, as in `resolve/` and `lower/`: `network`,
//! `filesystem`, `process` and `inference` (`privilege_escalation` is one scalar, here).

mod filesystem;
pub(super) mod inference;
mod network;
mod process;

pub use network::{parse_host, parse_host_port, parse_ports, ports_to_string};
pub use process::parse_exec_target;

use std::path::Path;

use super::Diagnostic;
use super::types::{Located, Policy, PrivilegeEscalation};
use super::yaml::{Mark, Node, NodeKind};

/// Converts a document into a policy, or every error found.
pub fn policy_from_node(file: &Path, root: &Node) -> Result<Policy, Vec<Diagnostic>> {
    const KEYS: &[&str] = &[
        "version",
        "name",
        "description",
        "network",
        "filesystem",
        "process",
        "privilege_escalation",
        "inference",
    ];
    let mut cx = Cx {
        file,
        errors: Vec::new(),
    };
    let mut policy = Policy {
        file: file.to_path_buf(),
        version: 1,
        name: None,
        description: None,
        network: None,
        filesystem: None,
        process: None,
        privilege_escalation: None,
        inference: None,
    };
    let mut network_written = false;
    let mut inference_written = None;
    let Some(entries) = cx.map(root, "", KEYS) else {
        return Err(cx.errors);
    };
    for (key, key_mark, value) in entries {
        match key.as_str() {
            "version" => match cx.scalar(value, "version").map(str::parse::<u32>) {
                Some(Ok(1)) | None => {}
                Some(_) => cx.error(
                    value.mark,
                    "version",
                    format!(
                        "unsupported version {}; this nemoclaw reads version 1",
                        value.describe()
                    ),
                ),
            },
            "name" => policy.name = cx.scalar(value, "name").map(str::to_owned),
            "description" => {
                policy.description = cx.scalar(value, "description").map(str::to_owned);
            }
            "network" => {
                network_written = true;
                policy.network = cx.network(value, key_mark);
            }
            "inference" => {
                inference_written = Some(key_mark);
                policy.inference = cx.inference(value, key_mark);
            }
            "filesystem" => policy.filesystem = cx.filesystem(value, key_mark),
            "process" => policy.process = cx.process(value, key_mark),
            "privilege_escalation" => {
                let field = "privilege_escalation";
                policy.privilege_escalation = match cx.scalar(value, field) {
                    Some("deny") => Some(PrivilegeEscalation::Deny),
                    Some("allow") => Some(PrivilegeEscalation::Allow),
                    Some(_) => {
                        cx.error(
                            value.mark,
                            field,
                            format!("expected deny or allow, got {}", value.describe()),
                        );
                        None
                    }
                    None => None,
                }
                .map(|value_| Located {
                    value: value_,
                    mark: value.mark,
                    field: field.to_owned(),
                    text: format!("privilege_escalation: {}", render(value)),
                });
            }
            _ => {}
        }
    }
    if let (Some(mark), false) = (inference_written, network_written) {
        cx.error(
            mark,
            "inference",
            "needs a `network` section: without one the sandbox may reach model endpoints \
             directly, around the router"
                .to_owned(),
        );
    }
    if cx.errors.is_empty() {
        Ok(policy)
    } else {
        Err(cx.errors)
    }
}

struct Cx<'f> {
    file: &'f Path,
    errors: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn error(&mut self, mark: Mark, field: &str, message: String) {
        self.errors.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: mark.line,
            column: mark.column,
            field: field.to_owned(),
            message,
        });
    }

    /// The entries of a mapping, keys checked against `allowed` and for duplicates.
    /// A null value counts as an empty mapping.
    fn map<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
        allowed: &[&str],
    ) -> Option<Vec<(String, Mark, &'n Node)>> {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            _ if node.is_null() => return Some(Vec::new()),
            _ => {
                let what = if field.is_empty() {
                    "the policy"
                } else {
                    field
                };
                self.error(
                    node.mark,
                    display_field(field),
                    format!("{what} must be a mapping, got {}", node.describe()),
                );
                return None;
            }
        };
        let mut seen: Vec<(String, Mark)> = Vec::new();
        let mut out = Vec::new();
        for (key, value) in entries {
            let NodeKind::Scalar { text, .. } = &key.kind else {
                self.error(
                    key.mark,
                    display_field(field),
                    format!("keys must be plain names, got {}", key.describe()),
                );
                continue;
            };
            let child = join(field, text);
            if !allowed.contains(&text.as_str()) {
                let expected = allowed
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.error(
                    key.mark,
                    &child,
                    format!("unknown field `{text}`, expected one of {expected}"),
                );
                continue;
            }
            if let Some((_, first)) = seen.iter().find(|(k, _)| k == text) {
                let first = *first;
                self.error(
                    key.mark,
                    &child,
                    format!(
                        "duplicate key (first at line {}:{})",
                        first.line, first.column
                    ),
                );
                continue;
            }
            seen.push((text.clone(), key.mark));
            out.push((text.clone(), key.mark, value));
        }
        Some(out)
    }

    fn scalar<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n str> {
        match &node.kind {
            NodeKind::Scalar { text, .. } if !node.is_null() => Some(text),
            _ => {
                self.error(
                    node.mark,
                    field,
                    format!("expected a string, got {}", node.describe()),
                );
                None
            }
        }
    }

    /// A list; null counts as empty.
    fn seq<'n>(&mut self, node: &'n Node, field: &str) -> &'n [Node] {
        match &node.kind {
            NodeKind::Seq(items) => items,
            _ if node.is_null() => &[],
            _ => {
                self.error(
                    node.mark,
                    field,
                    format!("expected a list, got {}", node.describe()),
                );
                &[]
            }
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn display_field(field: &str) -> &str {
    if field.is_empty() {
        "(top level)"
    } else {
        field
    }
}

/// Renders a node on one line, for rule texts: scalars as written, collections in flow style.
fn render(node: &Node) -> String {
    let mut out = String::new();
    render_into(node, &mut out);
    out
}

fn render_into(node: &Node, out: &mut String) {
    match &node.kind {
        NodeKind::Scalar { text, .. } => out.push_str(text),
        NodeKind::Seq(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                render_into(item, out);
            }
            out.push(']');
        }
        NodeKind::Map(entries) => {
            out.push('{');
            for (index, (key, value)) in entries.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                render_into(key, out);
                out.push_str(": ");
                render_into(value, out);
            }
            out.push('}');
        }
    }
}
