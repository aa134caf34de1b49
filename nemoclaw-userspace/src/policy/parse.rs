//! From the located YAML tree to a typed [`Policy`], collecting every error with its line,
//! column and field path. Unknown keys and duplicate keys are errors.

pub(super) mod inference;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use super::Diagnostic;
use super::pattern::{PathPattern, Shape};
use super::types::{
    Access, AnonymousExec, ExecTarget, FilesystemSection, FsRule, Host, ListenRule, Located,
    NetDeny, NetRule, NetworkSection, Policy, Ports, PrivilegeEscalation, ProcessSection, Protocol,
};
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

    fn network(&mut self, node: &Node, key_mark: Mark) -> Option<NetworkSection> {
        let entries = self.map(node, "network", &["allow", "deny", "listen"])?;
        let mut section = NetworkSection {
            mark: key_mark,
            allow: Vec::new(),
            deny: NetDeny::All,
            listen: Vec::new(),
        };
        for (key, _, value) in entries {
            let field = format!("network.{key}");
            if key == "listen" {
                section.listen = self.listen_rules(value, &field);
                continue;
            }
            if let (true, NodeKind::Scalar { text, .. }) = (key == "deny", &value.kind) {
                if text != "*" && !value.is_null() {
                    self.error(
                        value.mark,
                        &field,
                        format!(
                            "expected \"*\" or a list of entries, got {}",
                            value.describe()
                        ),
                    );
                }
                continue;
            }
            let mut rules = Vec::new();
            for (index, item) in self.seq(value, &field).iter().enumerate() {
                let item_field = format!("{field}[{index}]");
                if let Some(rule) = self.net_rule(item, &item_field) {
                    rules.push(Located {
                        value: rule,
                        mark: item.mark,
                        field: item_field,
                        text: render(item),
                    });
                }
            }
            if key == "allow" {
                section.allow = rules;
            } else {
                section.deny = NetDeny::Rules(rules);
            }
        }
        Some(section)
    }

    /// `network.listen`: a list of ports, ranges or `*`, or long-form entries.
    fn listen_rules(&mut self, node: &Node, field: &str) -> Vec<Located<ListenRule>> {
        let mut rules = Vec::new();
        for (index, item) in self.seq(node, field).iter().enumerate() {
            let item_field = format!("{field}[{index}]");
            if let Some(rule) = self.listen_rule(item, &item_field) {
                rules.push(Located {
                    value: rule,
                    mark: item.mark,
                    field: item_field,
                    text: render(item),
                });
            }
        }
        rules
    }

    /// One `network.listen` entry.
    fn listen_rule(&mut self, node: &Node, field: &str) -> Option<ListenRule> {
        if let NodeKind::Scalar { text, .. } = &node.kind {
            if node.is_null() {
                self.error(
                    node.mark,
                    field,
                    "expected a port, a range FIRST-LAST or *, got null".to_owned(),
                );
                return None;
            }
            if text.contains(':') {
                self.error(
                    node.mark,
                    field,
                    format!(
                        "listen entries name ports, not HOST:PORT (got {text:?}): a listed port \
                         is open on every address, and loopback is open on every port anyway"
                    ),
                );
                return None;
            }
            return match parse_ports(text) {
                Ok(ports) => Some(ListenRule {
                    ports,
                    protocol: Protocol::Any,
                }),
                Err(message) => {
                    self.error(node.mark, field, message);
                    None
                }
            };
        }
        let entries = self.map(node, field, &["ports", "protocol"])?;
        let mut rule = ListenRule {
            ports: Ports::Any,
            protocol: Protocol::Any,
        };
        let mut ok = true;
        for (key, _, value) in &entries {
            let child = format!("{field}.{key}");
            if key == "ports" {
                match self.port_list(value, &child) {
                    Some(ports) => rule.ports = ports,
                    None => ok = false,
                }
            } else {
                match self.protocol(value, &child) {
                    Some(protocol) => rule.protocol = protocol,
                    None => ok = false,
                }
            }
        }
        ok.then_some(rule)
    }

    /// A long-form `ports` list: at least one port or range, no `*`.
    fn port_list(&mut self, value: &Node, field: &str) -> Option<Ports> {
        let items = self.seq(value, field);
        let mut ok = true;
        if items.is_empty() {
            self.error(
                value.mark,
                field,
                "ports must list at least one port; omit it for any port".to_owned(),
            );
            ok = false;
        }
        let mut ranges = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_field = format!("{field}[{index}]");
            match self.scalar(item, &item_field).map(parse_ports) {
                Some(Ok(Ports::Ranges(mut more))) => ranges.append(&mut more),
                Some(Ok(Ports::Any)) => {
                    self.error(
                        item.mark,
                        &item_field,
                        "`*` cannot be listed; omit ports for any port".to_owned(),
                    );
                    ok = false;
                }
                Some(Err(message)) => {
                    self.error(item.mark, &item_field, message);
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(Ports::Ranges(ranges))
    }

    /// `tcp`, `udp` or `any`.
    fn protocol(&mut self, value: &Node, field: &str) -> Option<Protocol> {
        match self.scalar(value, field) {
            Some("tcp") => Some(Protocol::Tcp),
            Some("udp") => Some(Protocol::Udp),
            Some("any") => Some(Protocol::Any),
            Some(_) => {
                self.error(
                    value.mark,
                    field,
                    format!("expected tcp, udp or any, got {}", value.describe()),
                );
                None
            }
            None => None,
        }
    }

    fn net_rule(&mut self, node: &Node, field: &str) -> Option<NetRule> {
        if let NodeKind::Scalar { text, .. } = &node.kind {
            if node.is_null() {
                self.error(node.mark, field, "expected HOST:PORT, got null".to_owned());
                return None;
            }
            return match parse_host_port(text) {
                Ok((host, ports)) => Some(NetRule {
                    host,
                    ports,
                    protocol: Protocol::Any,
                    binaries: Vec::new(),
                }),
                Err(message) => {
                    self.error(node.mark, field, message);
                    None
                }
            };
        }
        let entries = self.map(node, field, &["host", "ports", "protocol", "binaries"])?;
        let mut host = None;
        let mut ports = Ports::Any;
        let mut protocol = Protocol::Any;
        let mut binaries = Vec::new();
        let mut ok = true;
        for (key, _, value) in &entries {
            let child = format!("{field}.{key}");
            match key.as_str() {
                "host" => match self.scalar(value, &child).map(parse_host) {
                    Some(Ok(parsed)) => host = Some(parsed),
                    Some(Err(message)) => {
                        self.error(value.mark, &child, message);
                        ok = false;
                    }
                    None => ok = false,
                },
                "ports" => match self.port_list(value, &child) {
                    Some(list) => ports = list,
                    None => ok = false,
                },
                "protocol" => match self.protocol(value, &child) {
                    Some(p) => protocol = p,
                    None => ok = false,
                },
                "binaries" => {
                    for (index, item) in self.seq(value, &child).iter().enumerate() {
                        if let Some(text) = self.scalar(item, &format!("{child}[{index}]")) {
                            binaries.push(text.to_owned());
                        } else {
                            ok = false;
                        }
                    }
                }
                _ => {}
            }
        }
        if host.is_none() && ok {
            self.error(node.mark, field, "missing field `host`".to_owned());
        }
        Some(NetRule {
            host: host?,
            ports,
            protocol,
            binaries,
        })
        .filter(|_| ok)
    }

    fn filesystem(&mut self, node: &Node, key_mark: Mark) -> Option<FilesystemSection> {
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

    fn process(&mut self, node: &Node, key_mark: Mark) -> Option<ProcessSection> {
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
}

impl Cx<'_> {
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
        Ok(Shape::Suffix(_)) | Err(_) => Err(format!(
            "{text:?}: process entries are program names, absolute paths or /dir/**"
        )),
    }
}

/// `HOST:PORT` with HOST a DNS name, IPv4, `[IPv6]`, a CIDR or `*`, and PORT a number,
/// `FIRST-LAST` or `*`.
pub fn parse_host_port(text: &str) -> Result<(Host, Ports), String> {
    let expected = || format!("expected HOST:PORT, got {text:?}");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(expected)?;
        let port = after.strip_prefix(':').ok_or_else(expected)?;
        let host = parse_host(inside)?;
        if !matches!(
            host,
            Host::Net {
                addr: IpAddr::V6(_),
                ..
            }
        ) {
            return Err(format!("{text:?}: brackets hold an IPv6 address or CIDR"));
        }
        (host, port)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
        if host.contains(':') {
            return Err(format!(
                "{text:?}: write IPv6 addresses in brackets, e.g. [::1]:443"
            ));
        }
        (parse_host(host)?, port)
    };
    Ok((
        host,
        parse_ports(port).map_err(|message| format!("{text:?}: {message}"))?,
    ))
}

/// A host as in the long form: DNS name, IPv4, IPv6 (bare or bracketed), CIDR or `*`.
pub fn parse_host(text: &str) -> Result<Host, String> {
    if text == "*" {
        return Ok(Host::Any);
    }
    let unbracketed = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Some((addr, len)) = unbracketed.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?}: not an IP address before `/`"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len: u8 = len
            .parse()
            .ok()
            .filter(|len| *len <= max)
            .ok_or_else(|| format!("{text:?}: prefix length must be 0..={max}"))?;
        let masked = mask(addr, prefix_len);
        if masked != addr {
            return Err(format!(
                "{text:?} has host bits set; did you mean {masked}/{prefix_len}?"
            ));
        }
        return Ok(Host::Net { addr, prefix_len });
    }
    if let Ok(addr) = unbracketed.parse::<IpAddr>() {
        let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
        return Ok(Host::Net { addr, prefix_len });
    }
    validate_dns_name(text)?;
    Ok(Host::Name(text.to_ascii_lowercase()))
}

fn validate_dns_name(text: &str) -> Result<(), String> {
    if text.contains('*') {
        return Err(format!(
            "{text:?}: wildcard host names are not supported (names resolve to addresses at compile time)"
        ));
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "{text:?} is not a valid host name, IP address or CIDR"
        ));
    }
    Ok(())
}

/// Zeroes the host bits of `addr` beyond `prefix_len`.
#[must_use]
pub fn mask(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let masked = if prefix_len == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - u32::from(prefix_len)))
            };
            IpAddr::V4(masked.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let masked = if prefix_len == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - u32::from(prefix_len)))
            };
            IpAddr::V6(masked.into())
        }
    }
}

/// `443`, `8000-8100` or `*`.
pub fn parse_ports(text: &str) -> Result<Ports, String> {
    if text == "*" {
        return Ok(Ports::Any);
    }
    let port = |part: &str| -> Result<u16, String> {
        match part.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!(
                "port must be 1..=65535, a range FIRST-LAST or *, got {text:?}"
            )),
            Ok(port) => Ok(port),
        }
    };
    let (first, last) = if let Some((first, last)) = text.split_once('-') {
        (port(first)?, port(last)?)
    } else {
        let single = port(text)?;
        (single, single)
    };
    if first > last {
        return Err(format!("port range {text:?} is empty (first > last)"));
    }
    Ok(Ports::Ranges(vec![(first, last)]))
}

/// Renders ports for messages.
#[must_use]
pub fn ports_to_string(ports: &Ports) -> String {
    match ports {
        Ports::Any => "*".to_owned(),
        Ports::Ranges(ranges) => {
            let mut out = String::new();
            for (index, (first, last)) in ranges.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                if first == last {
                    let _ = write!(out, "{first}");
                } else {
                    let _ = write!(out, "{first}-{last}");
                }
            }
            out
        }
    }
}
