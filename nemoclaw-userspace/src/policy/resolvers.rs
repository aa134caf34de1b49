//! DNS for sandboxes: host-name rules are resolved on the host, but the programs inside
//! still resolve names themselves, so a policy with host-name rules also allows DNS (port
//! 53, UDP and TCP) to the host's nameservers, and to no other address.

use std::net::SocketAddr;

use super::types::{Host, Located, NetRule, Policy, Ports, Protocol};

/// `policy` with an allow rule per nameserver added to its `network` section (as
/// `network.resolvers[i]`, cited at the section's line) when some allow rule names a host.
/// Policies without host-name rules come back unchanged.
#[must_use]
pub fn with_resolvers(policy: &Policy, servers: &[SocketAddr], source: &str) -> Policy {
    let mut out = policy.clone();
    let Some(network) = &mut out.network else {
        return out;
    };
    if !network
        .allow
        .iter()
        .any(|r| matches!(r.value.host, Host::Name(_)))
    {
        return out;
    }
    for (i, server) in servers.iter().enumerate() {
        let addr = server.ip();
        let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
        network.allow.push(Located {
            value: NetRule {
                host: Host::Net { addr, prefix_len },
                ports: Ports::Ranges(vec![(server.port(), server.port())]),
                protocol: Protocol::Any,
                binaries: Vec::new(),
            },
            mark: network.mark,
            field: format!("network.resolvers[{i}]"),
            text: format!("nameserver {server} (from {source})"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::{CompileEnv, Resolver, compile, parse_str};

    struct Fixed;
    impl Resolver for Fixed {
        fn resolve(&self, _: &str) -> Result<Vec<std::net::IpAddr>, String> {
            Ok(vec!["10.1.2.3".parse().map_err(|_| String::new())?])
        }
    }

    fn env() -> CompileEnv {
        let mut env = CompileEnv::offline("/home/u".into());
        env.resolver = Box::new(Fixed);
        env
    }

    #[test]
    fn host_rules_bring_their_resolvers() {
        let p = parse_str(
            Path::new("p.yaml"),
            "network:\n  allow:\n    - \"api.example.com:443\"\n",
        )
        .unwrap();
        let servers: Vec<SocketAddr> = vec!["127.0.0.53:53".parse().unwrap()];
        let c = compile(&with_resolvers(&p, &servers, "/etc/resolv.conf"), &env())
            .unwrap()
            .policy;
        let dns: Vec<_> = c.net4.iter().filter(|e| e.port == 53).collect();
        assert_eq!(dns.len(), 1, "{:?}", c.net4);
        assert_eq!(dns[0].addr, [127, 0, 0, 53]);
        let rule = &c.rules[dns[0].verdict.rule_id as usize - 1];
        assert_eq!(rule.section, "network.resolvers");
        assert_eq!(
            rule.text,
            "nameserver 127.0.0.53:53 (from /etc/resolv.conf)"
        );
        assert_eq!(rule.line, 1);
    }

    #[test]
    fn address_only_policies_are_unchanged() {
        let p = parse_str(
            Path::new("p.yaml"),
            "network:\n  allow:\n    - \"10.0.0.1:443\"\n",
        )
        .unwrap();
        let servers: Vec<SocketAddr> = vec!["127.0.0.53:53".parse().unwrap()];
        assert_eq!(with_resolvers(&p, &servers, "x"), p);
        let none = parse_str(Path::new("p.yaml"), "process:\n  allow: [python3]\n").unwrap();
        assert_eq!(with_resolvers(&none, &servers, "x"), none);
    }
}
