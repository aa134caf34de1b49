//! `inference`: the privacy router's section. Everything that can be checked on the text is
//! checked here (actions, category names, patterns, paths, the router address); what needs
//! the rest of the policy and the host (the router rule, provider endpoints in
//! `network.allow`, `$HOME`) is done by `resolve/inference.rs`.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use nemoclaw_detect::Category;

use super::{Cx, parse_host_port, render};
use crate::policy::inference::{Action, OnReply};
use crate::policy::pattern::{Base, PathPattern, Shape};
use crate::policy::types::{Backend, Host, InferenceSection, Located, Ports, ReplyOptions};
use crate::policy::yaml::{Mark, Node, NodeKind};

const KEYS: &[&str] = &[
    "router",
    "cloud",
    "local",
    "default",
    "categories",
    "detect",
    "direct",
];

/// The keys of an action written as a mapping (`{action: mask, restore: false}`).
const ACTION_KEYS: &[&str] = &["action", "restore", "injected"];

/// `inference.detect`, as parsed.
#[derive(Default)]
struct Detect {
    keywords: Vec<Located<(String, Vec<String>)>>,
    patterns: Vec<Located<(String, String)>>,
    code: Vec<Located<PathPattern>>,
}

impl Cx<'_> {
    /// The `inference` section; `None` when it is unusable (errors were recorded).
    pub(super) fn inference(&mut self, node: &Node, key_mark: Mark) -> Option<InferenceSection> {
        let entries = self.map(node, "inference", KEYS)?;
        let mut router = None;
        let mut cloud = None;
        let mut cloud_written = false;
        let mut local = None;
        let mut default = None;
        let mut default_options = ReplyOptions::default();
        let mut categories_node = None;
        let mut detect = Detect::default();
        let mut direct = Vec::new();
        for (key, _, value) in entries {
            let field = format!("inference.{key}");
            match key.as_str() {
                "router" => router = self.router(value, field),
                "cloud" => {
                    cloud_written = true;
                    cloud = self.backend(value, field);
                }
                "local" => local = self.backend(value, field),
                "default" => {
                    default = self.action_entry(value, &field).map(|(action, options)| {
                        default_options = options;
                        Located {
                            value: action,
                            mark: value.mark,
                            text: format!("default: {}", render(value)),
                            field,
                        }
                    });
                }
                "categories" => categories_node = Some(value),
                "detect" => detect = self.detect(value),
                _ => direct = self.direct(value, &field),
            }
        }
        // Categories last: custom names must be defined under `detect`, wherever it is.
        let defined: BTreeSet<&str> = detect
            .keywords
            .iter()
            .map(|k| k.value.0.as_str())
            .chain(detect.patterns.iter().map(|p| p.value.0.as_str()))
            .collect();
        let categories = categories_node.map_or_else(Vec::new, |n| self.categories(n, &defined));
        if local.is_none() {
            let uses_local = default
                .iter()
                .map(|d| (d.mark, d.field.as_str(), d.value))
                .chain(
                    categories
                        .iter()
                        .map(|c| (c.mark, c.field.as_str(), c.value.1)),
                )
                .filter(|(_, _, action)| *action == Action::Local)
                .map(|(mark, field, _)| (mark, field.to_owned()))
                .collect::<Vec<_>>();
            for (mark, field) in uses_local {
                self.error(
                    mark,
                    &field,
                    "`local` needs `inference.local`, the local backend that serves such requests"
                        .to_owned(),
                );
            }
        }
        let Some(cloud) = cloud else {
            if cloud_written {
                return None;
            }
            self.error(
                key_mark,
                "inference.cloud",
                "missing field `cloud`: the backend that serves requests (e.g. `cloud: {backend: \
                 openai, model: gpt-4o-mini}`)"
                    .to_owned(),
            );
            return None;
        };
        Some(InferenceSection {
            mark: key_mark,
            router,
            cloud,
            local,
            default,
            default_options,
            categories,
            keywords: detect.keywords,
            patterns: detect.patterns,
            code: detect.code,
            direct,
        })
    }

    /// `router: IP:PORT`.
    fn router(&mut self, node: &Node, field: String) -> Option<Located<SocketAddr>> {
        let text = self.scalar(node, &field)?;
        let message = match text.parse::<SocketAddr>() {
            Err(_) => format!(
                "expected IP:PORT where the sandbox reaches the router (e.g. 127.0.0.1:8089, \
                 [::1]:8089), got {text:?}"
            ),
            Ok(addr) if addr.port() == 0 => {
                format!("{text:?}: the router's port must be 1..=65535")
            }
            Ok(addr) if addr.ip().is_unspecified() || addr.ip().is_multicast() => format!(
                "{text:?}: the router's address must be one the sandbox can connect to (loopback \
                 or a host address)"
            ),
            Ok(addr) => {
                return Some(Located {
                    value: addr,
                    mark: node.mark,
                    text: format!("router: {text}"),
                    field,
                });
            }
        };
        self.error(node.mark, &field, message);
        None
    }

    /// `cloud` / `local`: `{backend: NAME, model: NAME}`.
    fn backend(&mut self, node: &Node, field: String) -> Option<Located<Backend>> {
        let entries = self.map(node, &field, &["backend", "model"])?;
        let mut backend = None;
        let mut model = None;
        let mut ok = true;
        for (key, _, value) in entries {
            let child = format!("{field}.{key}");
            match self.scalar(value, &child) {
                Some(text) if !text.trim().is_empty() => {
                    if key == "backend" {
                        backend = Some(text.to_owned());
                    } else {
                        model = Some(text.to_owned());
                    }
                }
                Some(_) => {
                    self.error(value.mark, &child, format!("{key} must not be empty"));
                    ok = false;
                }
                None => ok = false,
            }
        }
        if backend.is_none() && ok {
            self.error(
                node.mark,
                &field,
                "missing field `backend`: a backend name of the router's configuration".to_owned(),
            );
        }
        let value = Backend {
            backend: backend?,
            model,
        };
        ok.then(|| Located {
            value,
            mark: node.mark,
            text: format!(
                "{}: {}",
                field.trim_start_matches("inference."),
                render(node)
            ),
            field,
        })
    }

    /// `allow`, `mask`, `local` or `block`.
    fn action(&mut self, node: &Node, field: &str) -> Option<Action> {
        match self.scalar(node, field)? {
            "allow" => Some(Action::Allow),
            "mask" => Some(Action::Mask),
            "local" => Some(Action::Local),
            "block" => Some(Action::Block),
            _ => {
                self.error(
                    node.mark,
                    field,
                    format!(
                        "expected allow, mask, local or block, got {}",
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    /// An action (`inference.default`, `inference.categories.NAME`): a scalar, or the
    /// mapping `{action: ACTION, restore: BOOL, injected: mask|pass}` (`action` required,
    /// `restore` only with `mask`).
    fn action_entry(&mut self, node: &Node, field: &str) -> Option<(Action, ReplyOptions)> {
        match &node.kind {
            NodeKind::Map(_) => {}
            NodeKind::Scalar { .. } if !node.is_null() => {
                return self
                    .action(node, field)
                    .map(|action| (action, ReplyOptions::default()));
            }
            _ => {
                self.error(
                    node.mark,
                    field,
                    format!(
                        "expected allow, mask, local or block, or a mapping {{action: ACTION, \
                         restore: BOOL, injected: mask|pass}}, got {}",
                        node.describe()
                    ),
                );
                return None;
            }
        }
        let entries = self.map(node, field, ACTION_KEYS)?;
        let mut action = None;
        let mut restore = None;
        let mut injected = None;
        let mut ok = true;
        for (key, key_mark, value) in entries {
            let child = format!("{field}.{key}");
            let parsed = match key.as_str() {
                "action" => self.action(value, &child).map(|a| action = Some(a)),
                "restore" => self
                    .boolean(value, &child)
                    .map(|r| restore = Some((r, key_mark))),
                _ => self.on_reply(value, &child).map(|i| injected = Some(i)),
            };
            ok &= parsed.is_some();
        }
        let Some(action) = action else {
            if ok {
                self.error(
                    node.mark,
                    field,
                    "missing field `action`: allow, mask, local or block".to_owned(),
                );
            }
            return None;
        };
        if let Some((_, mark)) = restore
            && action != Action::Mask
        {
            self.error(
                mark,
                &format!("{field}.restore"),
                format!(
                    "`restore` applies to `mask` only (the action here is `{}`)",
                    action.name()
                ),
            );
            return None;
        }
        ok.then_some((
            action,
            ReplyOptions {
                restore: restore.map(|(r, _)| r),
                injected,
            },
        ))
    }

    /// `true` or `false`, unquoted.
    fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        if let NodeKind::Scalar {
            text,
            quoted: false,
        } = &node.kind
        {
            match text.as_str() {
                "true" | "True" | "TRUE" => return Some(true),
                "false" | "False" | "FALSE" => return Some(false),
                _ => {}
            }
        }
        self.error(
            node.mark,
            field,
            format!("expected true or false, got {}", node.describe()),
        );
        None
    }

    /// `injected`: `mask` or `pass`.
    fn on_reply(&mut self, node: &Node, field: &str) -> Option<OnReply> {
        match self.scalar(node, field)? {
            "mask" => Some(OnReply::Mask),
            "pass" => Some(OnReply::Pass),
            _ => {
                self.error(
                    node.mark,
                    field,
                    format!("expected mask or pass, got {}", node.describe()),
                );
                None
            }
        }
    }

    /// The entries of a mapping with free keys (names), duplicates refused.
    fn named_entries<'n>(&mut self, node: &'n Node, field: &str) -> Vec<(String, Mark, &'n Node)> {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            _ if node.is_null() => return Vec::new(),
            _ => {
                self.error(
                    node.mark,
                    field,
                    format!("{field} must be a mapping, got {}", node.describe()),
                );
                return Vec::new();
            }
        };
        let mut out: Vec<(String, Mark, &Node)> = Vec::new();
        for (key, value) in entries {
            let NodeKind::Scalar { text, .. } = &key.kind else {
                self.error(
                    key.mark,
                    field,
                    format!("keys must be plain names, got {}", key.describe()),
                );
                continue;
            };
            if let Some((_, first, _)) = out.iter().find(|(k, _, _)| k == text) {
                let first = *first;
                self.error(
                    key.mark,
                    &format!("{field}.{text}"),
                    format!(
                        "duplicate key (first at line {}:{})",
                        first.line, first.column
                    ),
                );
                continue;
            }
            out.push((text.clone(), key.mark, value));
        }
        out
    }

    /// `categories: {NAME: ACTION}` (or `NAME: {action: ACTION, ...}`).
    fn categories(
        &mut self,
        node: &Node,
        defined: &BTreeSet<&str>,
    ) -> Vec<Located<(Category, Action, ReplyOptions)>> {
        let mut out = Vec::new();
        for (name, key_mark, value) in self.named_entries(node, "inference.categories") {
            let field = format!("inference.categories.{name}");
            let category = match Category::try_from(name.clone()) {
                Ok(Category::Custom(custom)) if !defined.contains(custom.as_str()) => {
                    let builtins = Category::BUILTIN
                        .iter()
                        .map(Category::name)
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.error(
                        key_mark,
                        &field,
                        format!(
                            "`{custom}` is not a built-in category ({builtins}) and is not \
                             defined in inference.detect.keywords or inference.detect.patterns"
                        ),
                    );
                    None
                }
                Ok(category) => Some(category),
                Err(message) => {
                    self.error(key_mark, &field, message);
                    None
                }
            };
            let action = self.action_entry(value, &field);
            if let (Some(category), Some((action, options))) = (category, action) {
                out.push(Located {
                    value: (category, action, options),
                    mark: key_mark,
                    text: format!("{name}: {}", render(value)),
                    field,
                });
            }
        }
        out
    }

    /// A custom category name under `detect`: valid, and not a built-in one.
    fn custom_name(&mut self, name: &str, mark: Mark, field: &str) -> bool {
        match Category::try_from(name.to_owned()) {
            Ok(Category::Custom(_)) => true,
            Ok(_) => {
                self.error(
                    mark,
                    field,
                    format!(
                        "`{name}` is a built-in category; give the custom category another name"
                    ),
                );
                false
            }
            Err(message) => {
                self.error(mark, field, message);
                false
            }
        }
    }

    /// `detect: {keywords, patterns, code}`.
    fn detect(&mut self, node: &Node) -> Detect {
        let mut detect = Detect::default();
        let Some(entries) = self.map(node, "inference.detect", &["keywords", "patterns", "code"])
        else {
            return detect;
        };
        for (key, _, value) in entries {
            let field = format!("inference.detect.{key}");
            match key.as_str() {
                "keywords" => detect.keywords = self.keywords(value, &field),
                "patterns" => detect.patterns = self.patterns(value, &field),
                _ => detect.code = self.code(value, &field),
            }
        }
        detect
    }

    fn keywords(&mut self, node: &Node, field: &str) -> Vec<Located<(String, Vec<String>)>> {
        let mut out = Vec::new();
        for (name, key_mark, value) in self.named_entries(node, field) {
            let child = format!("{field}.{name}");
            let mut ok = self.custom_name(&name, key_mark, &child);
            let items = self.seq(value, &child);
            if items.is_empty() {
                self.error(
                    value.mark,
                    &child,
                    "list at least one keyword (a word or phrase, matched whole and \
                     case-insensitively)"
                        .to_owned(),
                );
                ok = false;
            }
            let mut words = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let item_field = format!("{child}[{index}]");
                match self.scalar(item, &item_field) {
                    Some(text) if !text.trim().is_empty() => words.push(text.trim().to_owned()),
                    Some(_) => {
                        self.error(
                            item.mark,
                            &item_field,
                            "a keyword must not be empty".to_owned(),
                        );
                        ok = false;
                    }
                    None => ok = false,
                }
            }
            if ok {
                out.push(Located {
                    value: (name.clone(), words),
                    mark: key_mark,
                    text: format!("{name}: {}", render(value)),
                    field: child,
                });
            }
        }
        out
    }

    fn patterns(&mut self, node: &Node, field: &str) -> Vec<Located<(String, String)>> {
        let mut out = Vec::new();
        for (name, key_mark, value) in self.named_entries(node, field) {
            let child = format!("{field}.{name}");
            let name_ok = self.custom_name(&name, key_mark, &child);
            let Some(pattern) = self.scalar(value, &child) else {
                continue;
            };
            if let Err(message) = check_pattern(pattern) {
                self.error(value.mark, &child, message);
                continue;
            }
            if name_ok {
                out.push(Located {
                    value: (name.clone(), pattern.to_owned()),
                    mark: key_mark,
                    text: format!("{name}: {pattern}"),
                    field: child,
                });
            }
        }
        out
    }

    /// `detect.code`: absolute path patterns (`/dir/**` or a file; `$HOME` allowed).
    fn code(&mut self, node: &Node, field: &str) -> Vec<Located<PathPattern>> {
        let mut out = Vec::new();
        for (index, item) in self.seq(node, field).iter().enumerate() {
            let item_field = format!("{field}[{index}]");
            let Some(text) = self.scalar(item, &item_field) else {
                continue;
            };
            let parsed = PathPattern::parse(text)
                .map_err(|error| error.to_string())
                .and_then(|pattern| {
                    let anchored = pattern.base == Base::Home || !pattern.rest.starts_with("**");
                    match pattern.shape("/home") {
                        Ok(Shape::Exact(_) | Shape::Tree(_)) if anchored => Ok(pattern),
                        _ => Err(format!(
                            "{text:?}: a source tree is an absolute path: /dir/** (the \
                             directory and everything beneath it) or one file; $HOME and ~ \
                             are allowed"
                        )),
                    }
                });
            match parsed {
                Ok(pattern) => out.push(Located {
                    value: pattern,
                    mark: item.mark,
                    field: item_field,
                    text: text.to_owned(),
                }),
                Err(message) => self.error(item.mark, &item_field, message),
            }
        }
        out
    }

    /// `direct: [HOST:PORT]`.
    fn direct(&mut self, node: &Node, field: &str) -> Vec<Located<(Host, Ports)>> {
        let mut out = Vec::new();
        for (index, item) in self.seq(node, field).iter().enumerate() {
            let item_field = format!("{field}[{index}]");
            let Some(text) = self.scalar(item, &item_field) else {
                continue;
            };
            match parse_host_port(text) {
                Ok(endpoint) => out.push(Located {
                    value: endpoint,
                    mark: item.mark,
                    field: item_field,
                    text: text.to_owned(),
                }),
                Err(message) => self.error(item.mark, &item_field, message),
            }
        }
        out
    }
}

/// A custom category's pattern: valid `regex` syntax that cannot match the empty string
/// (which would flag every request). One line, for a diagnostic.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let hir = regex_syntax::Parser::new()
        .parse(pattern)
        .map_err(|error| match error {
            regex_syntax::Error::Parse(e) => {
                format!(
                    "{pattern:?}: {} (at byte {})",
                    e.kind(),
                    e.span().start.offset
                )
            }
            regex_syntax::Error::Translate(e) => {
                format!(
                    "{pattern:?}: {} (at byte {})",
                    e.kind(),
                    e.span().start.offset
                )
            }
            other => format!("{pattern:?}: {other}"),
        })?;
    if hir.properties().minimum_len() == Some(0) {
        return Err(format!(
            "{pattern:?} matches the empty string, so it would flag every request"
        ));
    }
    Ok(())
}
