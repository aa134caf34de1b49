//! From the located YAML tree (`policy/yaml.rs`) to a [`NemoclawConfig`], collecting every
//! error with its line, column and key path. Unknown and duplicate keys are errors.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use super::{NemoclawConfig, PersistentSandbox, parse_size};
use crate::policy::{
    Diagnostic,
    yaml::{self, Mark, Node, NodeKind},
};

/// Reads `text`; every problem found, located, or the configuration.
pub(super) fn config(text: &str, file: &Path) -> Result<NemoclawConfig, Vec<Diagnostic>> {
    const KEYS: &[&str] = &["daemon", "audit", "http", "router", "sandboxes"];
    let mut cx = Cx {
        file,
        errors: Vec::new(),
    };
    let mut config = NemoclawConfig::default();
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => return Ok(config),
        Err(e) => {
            cx.error(e.mark, "", e.message);
            return Err(cx.errors);
        }
    };
    for (key, _, value) in cx.map(&root, "", KEYS) {
        match key.as_str() {
            "daemon" => cx.daemon(value, &mut config),
            "audit" => cx.audit(value, &mut config),
            "http" => {
                for (k, _, v) in cx.map(value, "http", &["listen"]) {
                    if k == "listen" {
                        config.http.listen = cx.address(v, "http.listen");
                    }
                }
            }
            "router" => {
                for (k, _, v) in cx.map(value, "router", &["listen"]) {
                    if k == "listen" {
                        config.router.listen = cx.address(v, "router.listen");
                    }
                }
            }
            _ => config.sandboxes = cx.sandboxes(value),
        }
    }
    if cx.errors.is_empty() {
        Ok(config)
    } else {
        Err(cx.errors)
    }
}

struct Cx<'f> {
    file: &'f Path,
    errors: Vec<Diagnostic>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Cx<'_> {
    fn error(&mut self, mark: Mark, field: &str, message: String) {
        self.errors.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: mark.line,
            column: mark.column,
            field: if field.is_empty() {
                "(file)".to_owned()
            } else {
                field.to_owned()
            },
            message,
        });
    }

    /// A mapping's entries (null: none), keys checked against `allowed` and for duplicates.
    fn map<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
        allowed: &[&str],
    ) -> Vec<(String, Mark, &'n Node)> {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            _ if node.is_null() => return Vec::new(),
            _ => {
                let what = if field.is_empty() {
                    "the configuration"
                } else {
                    field
                };
                self.error(
                    node.mark,
                    field,
                    format!("{what} must be a mapping, got {}", node.describe()),
                );
                return Vec::new();
            }
        };
        let mut out: Vec<(String, Mark, &Node)> = Vec::new();
        for (key, value) in entries {
            let NodeKind::Scalar { text, .. } = &key.kind else {
                self.error(key.mark, field, "keys must be plain names".to_owned());
                continue;
            };
            let path = join(field, text);
            if !allowed.contains(&text.as_str()) {
                self.error(
                    key.mark,
                    &path,
                    format!("unknown key; expected one of: {}", allowed.join(", ")),
                );
            } else if let Some((_, first, _)) = out.iter().find(|(k, _, _)| k == text) {
                let first = *first;
                self.error(
                    key.mark,
                    &path,
                    format!("duplicate key (first at line {})", first.line),
                );
            } else {
                out.push((text.clone(), key.mark, value));
            }
        }
        out
    }

    /// A non-null scalar's text.
    fn scalar<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n str> {
        match &node.kind {
            NodeKind::Scalar { text, .. } if !node.is_null() => Some(text),
            _ => {
                self.error(
                    node.mark,
                    field,
                    format!("expected a value, got {}", node.describe()),
                );
                None
            }
        }
    }

    fn absolute(&mut self, node: &Node, field: &str) -> Option<PathBuf> {
        let text = self.scalar(node, field)?;
        if Path::new(text).is_absolute() {
            Some(PathBuf::from(text))
        } else {
            self.error(
                node.mark,
                field,
                format!("{text:?} is not an absolute path"),
            );
            None
        }
    }

    fn number<T: std::str::FromStr>(&mut self, node: &Node, field: &str) -> Option<T> {
        let text = self.scalar(node, field)?;
        let parsed = text.parse().ok();
        if parsed.is_none() {
            self.error(
                node.mark,
                field,
                format!("{text:?} is not a whole number in range"),
            );
        }
        parsed
    }

    fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match self.scalar(node, field)? {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.error(node.mark, field, format!("{other:?} is not true or false"));
                None
            }
        }
    }

    /// An `address:port`, or null for off.
    fn address(&mut self, node: &Node, field: &str) -> Option<SocketAddr> {
        if node.is_null() {
            return None;
        }
        let text = self.scalar(node, field)?;
        let parsed = text.parse().ok();
        if parsed.is_none() {
            self.error(
                node.mark,
                field,
                format!("{text:?} is not an address:port (e.g. 127.0.0.1:9464), or null for off"),
            );
        }
        parsed
    }

    fn daemon(&mut self, node: &Node, config: &mut NemoclawConfig) {
        const KEYS: &[&str] = &[
            "socket",
            "socket_group",
            "pin_dir",
            "state",
            "cgroup_root",
            "resolv_conf",
            "dns_grace",
            "watch_policies",
        ];
        let d = &mut config.daemon;
        for (key, _, value) in self.map(node, "daemon", KEYS) {
            let field = join("daemon", &key);
            let field = field.as_str();
            match key.as_str() {
                "socket" => set(&mut d.socket, self.absolute(value, field)),
                "pin_dir" => set(&mut d.pin_dir, self.absolute(value, field)),
                "state" => set(&mut d.state, self.absolute(value, field)),
                "resolv_conf" => set(&mut d.resolv_conf, self.absolute(value, field)),
                "dns_grace" => set(&mut d.dns_grace, self.number(value, field)),
                "watch_policies" => set(&mut d.watch_policies, self.boolean(value, field)),
                "socket_group" => {
                    let group = self.scalar(value, field).map(str::to_owned);
                    if let Some(g) = &group
                        && !valid_group(g)
                    {
                        self.error(value.mark, field, format!("{g:?} is not a group name"));
                    } else {
                        set(&mut d.socket_group, group);
                    }
                }
                _ => {
                    let root = self.scalar(value, field).map(str::to_owned);
                    match root.as_deref().map(cgroup_root) {
                        Some(Err(e)) => self.error(value.mark, field, e),
                        _ => set(&mut d.cgroup_root, root),
                    }
                }
            }
        }
    }

    fn audit(&mut self, node: &Node, config: &mut NemoclawConfig) {
        const KEYS: &[&str] = &["log", "rotate_size", "keep", "ocsf"];
        let a = &mut config.audit;
        for (key, _, value) in self.map(node, "audit", KEYS) {
            let field = join("audit", &key);
            let field = field.as_str();
            match key.as_str() {
                "log" => set(&mut a.log, self.absolute(value, field)),
                "keep" => set(&mut a.keep, self.number(value, field)),
                "ocsf" => {
                    a.ocsf = if value.is_null() {
                        None
                    } else {
                        self.absolute(value, field)
                    };
                }
                _ => {
                    let size = self.scalar(value, field).map(parse_size);
                    match size {
                        Some(Ok(n)) => a.rotate_size = n,
                        Some(Err(e)) => self.error(value.mark, field, e),
                        None => {}
                    }
                }
            }
        }
    }

    fn sandboxes(&mut self, node: &Node) -> Vec<PersistentSandbox> {
        let items = match &node.kind {
            NodeKind::Seq(items) => items.as_slice(),
            _ if node.is_null() => &[],
            _ => {
                self.error(
                    node.mark,
                    "sandboxes",
                    format!("expected a list, got {}", node.describe()),
                );
                &[]
            }
        };
        let mut out: Vec<PersistentSandbox> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let at = format!("sandboxes[{index}]");
            let (mut name, mut policy, mut user) = (None, None, "root".to_owned());
            let mut name_mark = item.mark;
            let mut given: Vec<String> = Vec::new();
            for (key, _, value) in self.map(item, &at, &["name", "policy", "user"]) {
                let field = join(&at, &key);
                given.push(key.clone());
                match key.as_str() {
                    "name" => {
                        name_mark = value.mark;
                        name = self.scalar(value, &field).map(str::to_owned);
                        if let Some(n) = &name
                            && !valid_sandbox_name(n)
                        {
                            self.error(
                                value.mark,
                                &field,
                                format!("{n:?}: use 1-64 of a-z, 0-9 and '-'"),
                            );
                            name = None;
                        }
                    }
                    "policy" => policy = self.absolute(value, &field),
                    _ => set(&mut user, self.scalar(value, &field).map(str::to_owned)),
                }
            }
            if let NodeKind::Map(entries) = &item.kind {
                // Where the entry starts: its first key (a mapping's own mark is later).
                let start = entries.first().map_or(item.mark, |(k, _)| k.mark);
                for key in ["name", "policy"] {
                    if !given.iter().any(|g| g == key) {
                        self.error(start, &join(&at, key), "required".to_owned());
                    }
                }
            }
            let (Some(name), Some(policy)) = (name, policy) else {
                continue;
            };
            if out.iter().any(|s| s.name == name) {
                self.error(
                    name_mark,
                    &join(&at, "name"),
                    format!("a sandbox named {name:?} is configured already"),
                );
                continue;
            }
            out.push(PersistentSandbox { name, policy, user });
        }
        out
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// A persistent sandbox's name: `[a-z0-9-]+`, at most 64.
fn valid_sandbox_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A group name as `groupadd` takes them.
fn valid_group(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The sandboxes' parent cgroup: a plain name starting with `nemoclaw`.
pub fn cgroup_root(s: &str) -> Result<String, String> {
    crate::daemon::registry::check_name(s)?;
    if s.starts_with("nemoclaw") {
        Ok(s.to_owned())
    } else {
        Err("the sandbox parent cgroup must be named nemoclaw*".to_owned())
    }
}
