//! The `inference` section: parsing into `InferenceRules`, every error located, the router
//! rule, model-provider endpoints in `network.allow`, lints and `explain_category`.

use std::collections::BTreeMap;
use std::path::Path;

use nemoclaw_common::net::PROTO_TCP;
use nemoclaw_common::rule::{ACTION_ALLOW, ACTION_DENY};
use nemoclaw_detect::Category;

use super::inference::{Action, BackendChoice, InferenceRules, OnReply, RuledAction};
use super::tests::test_env;
use super::*;

const FULL: &str = r#"network:
  allow: ["github.com:443"]
inference:
  router: 127.0.0.1:8089
  cloud: {backend: openai, model: gpt-4o-mini}
  local: {backend: local, model: smollm2}
  default: block
  categories:
    secret: block
    email: local
    phone: local
    ip_address: allow
    code: local
    customers: block
  detect:
    keywords:
      customers: ["Acme Corp", "Globex"]
    patterns:
      project_ids: "PRJ-[0-9]{6}"
    code: ["/workspace/core/**", "$HOME/src/**"]
  direct: ["api.openai.com:443"]
"#;

fn parse(text: &str) -> Result<Policy, PolicyError> {
    parse_str(Path::new("policies/x.yaml"), text)
}

fn must_compile(text: &str) -> Compiled {
    let policy = parse(text).unwrap_or_else(|e| panic!("rejected:\n{e}"));
    compile(&policy, &test_env(Vec::new())).unwrap_or_else(|e| panic!("did not compile:\n{e}"))
}

/// The parse errors of `text`, one line each.
fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(error) => error.to_string().lines().map(str::to_owned).collect(),
    }
}

/// The compile errors of `text` (which parses), one line each.
fn compile_errors(text: &str) -> Vec<String> {
    let policy = parse(text).unwrap_or_else(|e| panic!("rejected:\n{e}"));
    match compile(&policy, &test_env(Vec::new())) {
        Ok(_) => panic!("compiled:\n{text}"),
        Err(error) => error.to_string().lines().map(str::to_owned).collect(),
    }
}

/// `network` + `inference` with `cloud`, then `rest` (indented under `inference`).
fn with_inference(rest: &str) -> String {
    format!("network:\n  allow: []\ninference:\n  cloud: {{backend: openai}}\n{rest}")
}

fn ruled(action: Action, line: usize) -> RuledAction {
    RuledAction::new(action, format!("policies/x.yaml:{line}"))
}

#[test]
fn full_section_compiles_to_the_router_rules() {
    let compiled = must_compile(FULL);
    let expected = InferenceRules {
        router: "127.0.0.1:8089".parse().expect("address"),
        cloud: BackendChoice {
            backend: "openai".into(),
            model: Some("gpt-4o-mini".into()),
        },
        local: Some(BackendChoice {
            backend: "local".into(),
            model: Some("smollm2".into()),
        }),
        categories: BTreeMap::from([
            (Category::Secret, ruled(Action::Block, 9)),
            (Category::Email, ruled(Action::Local, 10)),
            (Category::Phone, ruled(Action::Local, 11)),
            (Category::IpAddress, ruled(Action::Allow, 12)),
            (Category::Code, ruled(Action::Local, 13)),
            (
                Category::Custom("customers".into()),
                ruled(Action::Block, 14),
            ),
        ]),
        default: ruled(Action::Block, 7),
        keywords: BTreeMap::from([(
            "customers".into(),
            vec!["Acme Corp".into(), "Globex".into()],
        )]),
        patterns: BTreeMap::from([("project_ids".into(), "PRJ-[0-9]{6}".into())]),
        code: vec!["/workspace/core/**".into(), "/home/agent/src/**".into()],
    };
    assert_eq!(compiled.inference.as_ref(), Some(&expected));
    assert_eq!(compiled.rules.inference.as_ref(), Some(&expected));
    // A defined custom category without an action takes the default.
    assert_eq!(
        expected.action_for(&Category::Custom("project_ids".into())),
        &ruled(Action::Block, 7)
    );
    // Deterministic, and serialisable for the control socket.
    let again = must_compile(FULL);
    assert_eq!(
        serde_json::to_string(&compiled.inference).expect("serialises"),
        serde_json::to_string(&again.inference).expect("serialises")
    );
}

#[test]
fn minimal_section_defaults() {
    let compiled = must_compile(&with_inference(""));
    let rules = compiled.inference.expect("inference");
    assert_eq!(rules.router.to_string(), inference::DEFAULT_ROUTER_ADDR);
    assert_eq!(rules.local, None);
    assert_eq!(rules.default, ruled(Action::Block, 3));
    assert!(rules.categories.is_empty());
    assert_eq!(rules.cloud.model, None);
}

#[test]
fn without_inference_nothing_changes() {
    let text = "network:\n  allow: [\"api.openai.com:443\"]\n";
    let compiled = must_compile(text);
    assert_eq!(compiled.inference, None);
    assert_eq!(compiled.rules.inference, None);
    assert_eq!(compiled.policy.rules.len(), 1);
}

#[test]
fn router_is_allowed_in_network_and_cited() {
    let compiled = must_compile(FULL);
    let rule = compiled
        .policy
        .rules
        .iter()
        .find(|r| r.section == "inference.router")
        .expect("router rule");
    assert_eq!((rule.id, rule.line, rule.column), (2, 4, 11));
    assert_eq!(rule.text, "router: 127.0.0.1:8089");
    let query = Query::Connect {
        addr: "127.0.0.1".parse().expect("address"),
        port: 8089,
        proto: PROTO_TCP,
        exe: None,
    };
    let decision = explain(&compiled.rules, &query);
    assert_eq!(decision.verdict.action, ACTION_ALLOW);
    assert_eq!(decision.verdict.rule_id, 2);
    assert_eq!(evaluate(&compiled.policy, &query), decision.verdict);
    assert!(
        decision
            .describe(&compiled.policy.rules)
            .contains("inference.router `router: 127.0.0.1:8089` at policies/x.yaml:4:11"),
        "{}",
        decision.describe(&compiled.policy.rules)
    );
    // Another port of the router's address is still denied.
    let other = Query::Connect {
        addr: "127.0.0.1".parse().expect("address"),
        port: 8090,
        proto: PROTO_TCP,
        exe: None,
    };
    assert_eq!(explain(&compiled.rules, &other).verdict.action, ACTION_DENY);

    // Without `router`: the default address, cited at the section.
    let compiled = must_compile(&with_inference(""));
    let rule = &compiled.policy.rules[0];
    assert_eq!(rule.section, "inference.router");
    assert_eq!(rule.line, 3);
    assert_eq!(rule.text, "router: 127.0.0.1:8089 (default)");

    // A host address and IPv6 work too.
    let compiled = must_compile(&with_inference("  router: \"[::1]:9000\"\n"));
    let query = Query::Connect {
        addr: "::1".parse().expect("address"),
        port: 9000,
        proto: PROTO_TCP,
        exe: None,
    };
    assert_eq!(
        explain(&compiled.rules, &query).verdict,
        evaluate(&compiled.policy, &query)
    );
    assert!(explain(&compiled.rules, &query).allowed());
}

#[test]
fn router_must_be_ip_and_port() {
    for (written, wanted) in [
        ("localhost:8089", "expected IP:PORT"),
        ("127.0.0.1", "expected IP:PORT"),
        ("127.0.0.1:0", "port must be 1..=65535"),
        ("0.0.0.0:8089", "loopback or a host address"),
    ] {
        let lines = errors(&with_inference(&format!("  router: \"{written}\"\n")));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("policies/x.yaml:5:11: inference.router: "),
            "{lines:?}"
        );
        assert!(lines[0].contains(wanted), "{lines:?}");
    }
}

#[test]
fn inference_needs_a_network_section() {
    let lines = errors("inference:\n  cloud: {backend: openai}\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("policies/x.yaml:1:1: inference: needs a `network` section"),
        "{lines:?}"
    );
}

#[test]
fn cloud_is_required_and_keys_are_checked() {
    let lines = errors("network: {}\ninference:\n  default: block\n");
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:2:1: inference.cloud: missing field `cloud`: the backend that \
             serves requests (e.g. `cloud: {backend: openai, model: gpt-4o-mini}`)"
        ]
    );
    let lines = errors(&with_inference("  routing: x\n"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("policies/x.yaml:5:3: inference.routing: unknown field `routing`"),
        "{lines:?}"
    );
    let lines = errors("network: {}\ninference:\n  cloud: {model: gpt}\n");
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:3:10: inference.cloud: missing field `backend`: a backend name of \
             the router's configuration"
        ]
    );
    let lines = errors(&with_inference("  detect: {keyword: {a: [x]}}\n"));
    assert!(
        lines[0].starts_with("policies/x.yaml:5:12: inference.detect.keyword: unknown field"),
        "{lines:?}"
    );
}

#[test]
fn actions_are_allow_mask_local_block() {
    let lines = errors(&with_inference("  categories:\n    email: deny\n"));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:6:12: inference.categories.email: expected allow, mask, local or \
             block, got \"deny\""
        ]
    );
    let lines = errors(&with_inference("  default: [mask]\n"));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:5:12: inference.default: expected allow, mask, local or block, or \
             a mapping {action: ACTION, restore: BOOL, injected: mask|pass}, got a list"
        ]
    );
    let lines = errors(&with_inference("  categories:\n    email:\n"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(": inference.categories.email: expected allow, mask, local or block, or")
            && lines[0].ends_with("got null"),
        "{lines:?}"
    );
}

#[test]
fn mask_compiles_in_both_forms() {
    // `mask` needs no local backend; the scalar form leaves `restore` and `injected` unset.
    let compiled = must_compile(&with_inference(
        "  default: mask\n  categories:\n    email: mask\n    phone: {action: mask}\n    \
         iban: {action: mask, restore: false, injected: pass}\n    secret: {action: mask, \
         restore: true}\n    ip_address: {action: allow, injected: mask}\n    us_ssn: \
         {action: block, injected: pass}\n",
    ));
    let rules = compiled.inference.expect("inference");
    let with = |action, line, restore, injected| RuledAction {
        restore,
        injected,
        ..ruled(action, line)
    };
    assert_eq!(rules.default, ruled(Action::Mask, 5));
    assert_eq!(
        rules.categories,
        BTreeMap::from([
            (Category::Email, ruled(Action::Mask, 7)),
            (Category::Phone, ruled(Action::Mask, 8)),
            (
                Category::Iban,
                with(Action::Mask, 9, Some(false), Some(OnReply::Pass))
            ),
            (Category::Secret, with(Action::Mask, 10, Some(true), None)),
            (
                Category::IpAddress,
                with(Action::Allow, 11, None, Some(OnReply::Mask))
            ),
            (
                Category::UsSsn,
                with(Action::Block, 12, None, Some(OnReply::Pass))
            ),
        ])
    );
    // `restore: true` on `secret` is taken as written, silently.
    assert!(rules.categories[&Category::Secret].restores(&Category::Secret));
    assert!(!rules.categories[&Category::Iban].restores(&Category::Iban));
    assert!(
        !compiled
            .warnings
            .iter()
            .any(|w| w.field.starts_with("inference")),
        "{:?}",
        compiled.warnings
    );

    // `default` takes the mapping form too.
    let compiled = must_compile(&with_inference(
        "  default: {action: mask, restore: false, injected: pass}\n",
    ));
    assert_eq!(
        compiled.inference.expect("inference").default,
        RuledAction {
            restore: Some(false),
            injected: Some(OnReply::Pass),
            ..ruled(Action::Mask, 5)
        }
    );
}

#[test]
fn action_mapping_errors_are_located() {
    let lines = errors(&with_inference(
        "  categories:\n    email: {action: local, restore: false}\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:6:28: inference.categories.email.restore: `restore` applies to \
             `mask` only (the action here is `local`)"
        ]
    );
    let lines = errors(&with_inference(
        "  default:\n    action: allow\n    restore: true\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:7:5: inference.default.restore: `restore` applies to `mask` only \
             (the action here is `allow`)"
        ]
    );
    let lines = errors(&with_inference(
        "  categories:\n    email: {action: mask, restores: false}\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:6:27: inference.categories.email.restores: unknown field \
             `restores`, expected one of `action`, `restore`, `injected`"
        ]
    );
    let lines = errors(&with_inference(
        "  categories:\n    email: {restore: false}\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:6:12: inference.categories.email: missing field `action`: allow, \
             mask, local or block"
        ]
    );
    let lines = errors(&with_inference(
        "  categories:\n    email: {action: mask, injected: restore}\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:6:37: inference.categories.email.injected: expected mask or pass, \
             got \"restore\""
        ]
    );
    let lines = errors(&with_inference(
        "  categories:\n    email: {action: mask, restore: \"no\"}\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:6:36: inference.categories.email.restore: expected true or false, \
             got \"no\""
        ]
    );
    let lines = errors(&with_inference(
        "  categories:\n    email: {action: hide}\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:6:21: inference.categories.email.action: expected allow, mask, \
             local or block, got \"hide\""
        ]
    );
    // `local` in the mapping form still needs a local backend.
    let lines = errors(&with_inference(
        "  categories:\n    email: {action: local}\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:6:5: inference.categories.email: `local` needs `inference.local`, \
             the local backend that serves such requests"
        ]
    );
}

#[test]
fn category_names_are_builtin_or_defined() {
    let lines = errors(&with_inference("  categories:\n    customers: block\n"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "policies/x.yaml:6:5: inference.categories.customers: `customers` is not a \
             built-in category (email, phone,"
        ),
        "{lines:?}"
    );
    let lines = errors(&with_inference("  categories:\n    Bad Name: block\n"));
    assert!(
        lines[0].contains("inference.categories.Bad Name: `Bad Name` is not a category name"),
        "{lines:?}"
    );
    // Defined under `detect` after `categories`: order does not matter.
    let compiled = must_compile(&with_inference(
        "  categories:\n    acme: block\n  detect:\n    patterns:\n      acme: \"ACME-[0-9]+\"\n",
    ));
    assert_eq!(
        compiled.inference.expect("inference").categories[&Category::Custom("acme".into())],
        ruled(Action::Block, 6)
    );
    // A custom name may not be a built-in one.
    let lines = errors(&with_inference(
        "  detect:\n    keywords:\n      email: [x]\n    patterns:\n      phone: \"x+\"\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:7:7: inference.detect.keywords.email: `email` is a built-in \
             category; give the custom category another name",
            "policies/x.yaml:9:7: inference.detect.patterns.phone: `phone` is a built-in \
             category; give the custom category another name",
        ]
    );
    // Duplicate keys.
    let lines = errors(&with_inference(
        "  categories:\n    email: block\n    email: allow\n",
    ));
    assert_eq!(
        lines,
        vec!["policies/x.yaml:7:5: inference.categories.email: duplicate key (first at line 6:5)"]
    );
}

#[test]
fn local_action_needs_a_local_backend() {
    let lines = errors(&with_inference(
        "  default: local\n  categories:\n    email: local\n    phone: block\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:5:12: inference.default: `local` needs `inference.local`, the \
             local backend that serves such requests",
            "policies/x.yaml:7:5: inference.categories.email: `local` needs `inference.local`, \
             the local backend that serves such requests",
        ]
    );
    must_compile(&with_inference(
        "  local: {backend: ollama}\n  default: local\n",
    ));
}

#[test]
fn patterns_must_compile_and_keywords_be_non_empty() {
    let lines = errors(&with_inference(
        "  detect:\n    patterns:\n      ids: \"PRJ-[0-9\"\n      all: \"x*\"\n",
    ));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("policies/x.yaml:7:12: inference.detect.patterns.ids: \"PRJ-[0-9\": "),
        "{lines:?}"
    );
    assert!(lines[0].contains("unclosed character class"), "{lines:?}");
    assert_eq!(
        lines[1],
        "policies/x.yaml:8:12: inference.detect.patterns.all: \"x*\" matches the empty string, \
         so it would flag every request"
    );
    let lines = errors(&with_inference(
        "  detect:\n    keywords:\n      acme: []\n      globex: [\"Globex\", \" \"]\n",
    ));
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:7:13: inference.detect.keywords.acme: list at least one keyword (a \
             word or phrase, matched whole and case-insensitively)",
            "policies/x.yaml:8:26: inference.detect.keywords.globex[1]: a keyword must not be \
             empty",
        ]
    );
}

#[test]
fn code_trees_are_absolute() {
    let lines = errors(&with_inference(
        "  detect:\n    code:\n    - src/**\n    - \"**/*.rs\"\n    - /a/*/b\n    - ~/ok/**\n",
    ));
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("policies/x.yaml:7:7: inference.detect.code[0]: relative path"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(
            "policies/x.yaml:8:7: inference.detect.code[1]: \"**/*.rs\": a source tree is an \
             absolute path"
        ),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("policies/x.yaml:9:7: inference.detect.code[2]: "),
        "{lines:?}"
    );
}

#[test]
fn provider_endpoints_are_refused_unless_direct() {
    let text = "network:\n  allow:\n  - \"github.com:443\"\n  - \"api.openai.com:443\"\n  - \
                {host: API.Anthropic.com, ports: [443]}\n  - \"my-res.openai.azure.com:443\"\n  \
                - \"bedrock-runtime.us-east-1.amazonaws.com:443\"\n  - \"*:443\"\n  - \
                \"10.0.0.0/8:443\"\ninference:\n  cloud: {backend: openai}\n";
    let lines = compile_errors(text);
    assert_eq!(lines.len(), 5, "{lines:?}");
    let wanted = [
        (
            "4:5",
            "network.allow[1]",
            "api.openai.com (OpenAI)",
            "\"api.openai.com:443\"",
        ),
        (
            "5:5",
            "network.allow[2]",
            "api.anthropic.com (Anthropic)",
            "\"api.anthropic.com:443\"",
        ),
        (
            "6:5",
            "network.allow[3]",
            "my-res.openai.azure.com (Azure OpenAI)",
            "\"my-res.openai.azure.com:443\"",
        ),
        (
            "7:5",
            "network.allow[4]",
            "bedrock-runtime.us-east-1.amazonaws.com (Amazon Bedrock)",
            "\"bedrock-runtime.us-east-1.amazonaws.com:443\"",
        ),
        (
            "8:5",
            "network.allow[5]",
            "every model provider (any provider)",
            "\"*:443\"",
        ),
    ];
    for (line, (at, field, provider, direct)) in lines.iter().zip(wanted) {
        assert!(
            line.starts_with(&format!(
                "policies/x.yaml:{at}: {field}: reaches {provider} directly, around the privacy router"
            )),
            "{line}"
        );
        assert!(
            line.contains(&format!("also list {direct} in inference.direct")),
            "{line}"
        );
    }

    // Listed in `direct` with the same host and port: allowed, with a warning.
    let text = "network:\n  allow:\n  - \"api.openai.com:443\"\ninference:\n  cloud: {backend: \
                openai}\n  direct: [\"api.openai.com:443\"]\n";
    let compiled = must_compile(text);
    let query = Query::Connect {
        addr: "162.159.140.245".parse().expect("address"),
        port: 443,
        proto: PROTO_TCP,
        exe: None,
    };
    assert!(explain(&compiled.rules, &query).allowed());
    assert!(
        compiled.warnings.iter().any(|w| w.line == 6
            && w.field == "inference.direct[0]"
            && w.message.contains("bypassing the privacy router")),
        "{:?}",
        compiled.warnings
    );
    // A `direct` entry without its allow entry does nothing, and says so.
    let compiled = must_compile(&with_inference("  direct: [\"api.openai.com:443\"]\n"));
    assert!(
        compiled.warnings.iter().any(|w| w.line == 5
            && w.field == "inference.direct[0]"
            && w.message.contains("so this has no effect")),
        "{:?}",
        compiled.warnings
    );
    // Another port is not the same endpoint.
    let text = "network:\n  allow:\n  - \"api.openai.com:8443\"\ninference:\n  cloud: {backend: \
                openai}\n  direct: [\"api.openai.com:443\"]\n";
    let lines = compile_errors(text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("policies/x.yaml:3:5: network.allow[0]: reaches api.openai.com"));
}

#[test]
fn default_allow_warns_about_unlisted_builtins() {
    let compiled = must_compile(&with_inference(
        "  default: allow\n  categories:\n    secret: block\n    email: allow\n",
    ));
    let unlisted: Vec<&Diagnostic> = compiled
        .warnings
        .iter()
        .filter(|w| w.field == "inference.default")
        .collect();
    assert_eq!(unlisted.len(), Category::BUILTIN.len() - 2, "{unlisted:?}");
    assert!(unlisted.iter().all(|w| w.line == 5));
    assert!(
        unlisted.iter().any(|w| w
            .message
            .starts_with("category phone is not listed, so it takes `default: allow`")),
        "{unlisted:?}"
    );
    assert!(
        !unlisted
            .iter()
            .any(|w| w.message.contains("category secret "))
    );
    // `default: block` warns about nothing.
    let compiled = must_compile(&with_inference("  default: block\n"));
    assert!(
        !compiled
            .warnings
            .iter()
            .any(|w| w.field.starts_with("inference")),
        "{:?}",
        compiled.warnings
    );
}

#[test]
fn explain_category_names_action_rule_and_backend() {
    let compiled = must_compile(FULL);
    let rules = compiled.inference.expect("inference");
    let answer = |name: &str| explain_category(&rules, name);
    assert_eq!(
        answer("email"),
        Ok((
            Action::Local,
            "category email: local (rule policies/x.yaml:10), served by local/smollm2".into()
        ))
    );
    assert_eq!(
        answer("ip_address"),
        Ok((
            Action::Allow,
            "category ip_address: allow (rule policies/x.yaml:12), served by openai/gpt-4o-mini"
                .into()
        ))
    );
    assert_eq!(
        answer("iban"),
        Ok((
            Action::Block,
            "category iban: block (not listed: inference.default, rule policies/x.yaml:7), the \
             request is refused"
                .into()
        ))
    );
    assert_eq!(
        answer("project_ids").map(|(action, _)| action),
        Ok(Action::Block)
    );
    assert!(answer("unknown").is_err());
    assert!(answer("Bad Name").is_err());
}

#[test]
fn explain_category_says_what_mask_does() {
    let compiled = must_compile(&with_inference(
        "  default: mask\n  categories:\n    email: mask\n    secret: mask\n    iban: \
         {action: mask, restore: false, injected: pass}\n    ip_address: {action: allow, \
         injected: mask}\n",
    ));
    let rules = compiled.inference.expect("inference");
    let answer = |name: &str| explain_category(&rules, name);
    assert_eq!(
        answer("email"),
        Ok((
            Action::Mask,
            "category email: mask (rule policies/x.yaml:7), served by openai (the caller's \
             model), each value replaced by a placeholder (restored in the reply); values the \
             request did not carry are masked in replies"
                .into()
        ))
    );
    assert_eq!(
        answer("secret").map(|(_, text)| text),
        Ok(
            "category secret: mask (rule policies/x.yaml:8), served by openai (the caller's \
            model), each value replaced by a placeholder (not restored); values the request \
            did not carry are masked in replies"
                .into()
        )
    );
    assert_eq!(
        answer("iban").map(|(_, text)| text),
        Ok(
            "category iban: mask (rule policies/x.yaml:9), served by openai (the caller's \
            model), each value replaced by a placeholder (not restored); values the request \
            did not carry pass in replies"
                .into()
        )
    );
    assert_eq!(
        answer("phone").map(|(_, text)| text),
        Ok(
            "category phone: mask (not listed: inference.default, rule policies/x.yaml:5), \
            served by openai (the caller's model), each value replaced by a placeholder \
            (restored in the reply); values the request did not carry are masked in replies"
                .into()
        )
    );
    // `injected` is named for another action only where it is written.
    assert_eq!(
        answer("ip_address").map(|(_, text)| text),
        Ok(
            "category ip_address: allow (rule policies/x.yaml:10), served by openai (the \
            caller's model); values the request did not carry are masked in replies"
                .into()
        )
    );
}
