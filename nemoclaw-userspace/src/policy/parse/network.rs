//! `network`: outbound rules (`allow`, `deny`), inbound `listen` rules, and the
//! `HOST:PORT` value syntax other sections share (`inference.router`).

use std::fmt::Write as _;
use std::net::IpAddr;

use super::{Cx, render};
use crate::policy::types::{
    Host, ListenRule, Located, NetDeny, NetRule, NetworkSection, Ports, Protocol,
};
use crate::policy::yaml::{Mark, Node, NodeKind};

impl Cx<'_> {
    pub(super) fn network(&mut self, node: &Node, key_mark: Mark) -> Option<NetworkSection> {
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
