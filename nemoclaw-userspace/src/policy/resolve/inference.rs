//! `inference`: the router endpoint becomes a `network` allow rule citing
//! `inference.router` (so deny events and `explain` name it), `network.allow` entries that
//! reach a model provider directly are refused unless listed in `inference.direct`, and the
//! section becomes the router's [`InferenceRules`] (`$HOME` expanded in `detect.code`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use nemoclaw_common::net::PROTO_TCP;
use nemoclaw_common::rule::ACTION_ALLOW;

use super::Resolving;
use crate::policy::explain::NetRuleSpec;
use crate::policy::inference::{
    Action, BackendChoice, DEFAULT_ROUTER_ADDR, InferenceRules, RuledAction,
};
use crate::policy::types::{Backend, Host, InferenceSection, Mark, Ports, ReplyOptions};

/// Known model-provider endpoints, as host names (`*` is one DNS label), and who runs
/// them. With an `inference` section, `network.allow` may not reach them directly.
pub const MODEL_PROVIDERS: &[(&str, &str)] = &[
    ("api.openai.com", "OpenAI"),
    ("api.anthropic.com", "Anthropic"),
    ("integrate.api.nvidia.com", "NVIDIA"),
    ("generativelanguage.googleapis.com", "Google Gemini"),
    ("api.mistral.ai", "Mistral"),
    ("api.groq.com", "Groq"),
    ("api.together.xyz", "Together AI"),
    ("openrouter.ai", "OpenRouter"),
    ("api.cohere.com", "Cohere"),
    ("api.cohere.ai", "Cohere"),
    ("api.deepseek.com", "DeepSeek"),
    ("api.x.ai", "xAI"),
    ("api.fireworks.ai", "Fireworks AI"),
    ("bedrock-runtime.*.amazonaws.com", "Amazon Bedrock"),
    ("*.openai.azure.com", "Azure OpenAI"),
];

/// The address the router is reached at.
#[must_use]
pub fn router_addr(section: &InferenceSection) -> SocketAddr {
    section.router.as_ref().map_or_else(
        || {
            DEFAULT_ROUTER_ADDR
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8089)))
        },
        |router| router.value,
    )
}

/// Where the router rule is cited: `inference.router`, or the section when it is absent.
pub(super) fn router_rule_ref(section: &InferenceSection) -> (Mark, String) {
    match &section.router {
        Some(router) => (router.mark, router.text.clone()),
        None => (
            section.mark,
            format!("router: {DEFAULT_ROUTER_ADDR} (default)"),
        ),
    }
}

/// The provider a host reaches, as `(endpoint, provider)`: a name that is (or matches) a
/// provider's, or `*` / a `/0` network (every provider). Other addresses and CIDRs are not
/// matched: providers' addresses change.
#[must_use]
pub fn provider_of(host: &Host) -> Option<(String, &'static str)> {
    match host {
        Host::Any | Host::Net { prefix_len: 0, .. } => {
            Some(("every model provider".to_owned(), "any provider"))
        }
        Host::Net { .. } => None,
        Host::Name(name) => {
            let name = name.trim_end_matches('.');
            MODEL_PROVIDERS
                .iter()
                .find(|(pattern, _)| name_matches(pattern, name))
                .map(|(_, provider)| (name.to_owned(), *provider))
        }
    }
}

/// `pattern` labels against `name` labels; `*` is one non-empty label.
fn name_matches(pattern: &str, name: &str) -> bool {
    let mut pattern = pattern.split('.');
    let mut name = name.split('.');
    loop {
        match (pattern.next(), name.next()) {
            (None, None) => return true,
            (Some("*"), Some(label)) if !label.is_empty() => {}
            (Some(p), Some(label)) if p.eq_ignore_ascii_case(label) => {}
            _ => return false,
        }
    }
}

/// Hosts compared as written (names without a trailing dot).
fn same_host(a: &Host, b: &Host) -> bool {
    match (a, b) {
        (Host::Name(a), Host::Name(b)) => a.trim_end_matches('.') == b.trim_end_matches('.'),
        _ => a == b,
    }
}

/// An action with its `restore` and `injected` as written.
fn ruled(action: Action, options: ReplyOptions, rule: String) -> RuledAction {
    RuledAction {
        restore: options.restore,
        injected: options.injected,
        ..RuledAction::new(action, rule)
    }
}

fn choice(backend: &Backend) -> BackendChoice {
    BackendChoice {
        backend: backend.backend.clone(),
        model: backend.model.clone(),
    }
}

impl Resolving<'_, '_> {
    /// `file:line`, as `RuledAction::rule` cites it.
    fn cite(&self, mark: Mark) -> String {
        format!("{}:{}", self.policy.file.display(), mark.line)
    }

    /// The network allow for the router: TCP to its address and port.
    pub(super) fn router_rule(&mut self, section: &InferenceSection, id: u32) {
        let addr = router_addr(section);
        let full = if addr.is_ipv4() { 32 } else { 128 };
        let (addr_, prefix_len) = super::network::unmap(addr.ip(), full);
        self.rules.net.push(NetRuleSpec {
            id,
            action: ACTION_ALLOW,
            proto: PROTO_TCP,
            ports: vec![(addr.port(), addr.port())],
            addr: addr_,
            prefix_len,
            binaries: None,
        });
    }

    /// Refuses provider endpoints in `network.allow`, and compiles the section.
    pub(super) fn inference(&mut self, section: &InferenceSection) {
        let policy = self.policy;
        for rule in policy.network.iter().flat_map(|n| &n.allow) {
            let host = &rule.value.host;
            let Some((endpoint, provider)) = provider_of(host) else {
                continue;
            };
            let exempt = section.direct.iter().any(|d| {
                let (direct_host, direct_ports): &(Host, Ports) = &d.value;
                same_host(direct_host, host) && *direct_ports == rule.value.ports
            });
            if exempt {
                continue;
            }
            let written = match host {
                Host::Name(name) => format!(
                    "{name}:{}",
                    crate::policy::parse::ports_to_string(&rule.value.ports)
                ),
                _ => rule.text.clone(),
            };
            self.error(
                rule.mark,
                &rule.field,
                format!(
                    "reaches {endpoint} ({provider}) directly, around the privacy router: \
                     with an `inference` section model calls go through the router (point the \
                     agent at it); to allow this endpoint anyway, also list \"{written}\" in \
                     inference.direct"
                ),
            );
        }

        let home = self.home;
        let cite = |mark: Mark| self.cite(mark);
        let categories = section
            .categories
            .iter()
            .map(|entry| {
                let (category, action, options) = &entry.value;
                (category.clone(), ruled(*action, *options, cite(entry.mark)))
            })
            .collect();
        let default = section.default.as_ref().map_or_else(
            || RuledAction::new(Action::Block, cite(section.mark)),
            |d| ruled(d.value, section.default_options, cite(d.mark)),
        );
        let mut keywords: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in &section.keywords {
            keywords.insert(entry.value.0.clone(), entry.value.1.clone());
        }
        let patterns = section
            .patterns
            .iter()
            .map(|entry| entry.value.clone())
            .collect();
        let code = section
            .code
            .iter()
            .map(|entry| entry.value.expand(home))
            .collect();
        self.rules.inference = Some(InferenceRules {
            router: router_addr(section),
            cloud: choice(&section.cloud.value),
            local: section.local.as_ref().map(|l| choice(&l.value)),
            categories,
            default,
            keywords,
            patterns,
            code,
        });
    }
}
