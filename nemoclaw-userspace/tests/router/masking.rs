//! Masking end to end: the official SDKs in sandboxes, the router masking what the policy
//! says before the cloud stand-in (which records every byte it gets and, for the models
//! `echo`, `echo-tool` and `inject`, answers with what it received, one character per SSE
//! event) and restoring it in the reply, in every request shape and both directions of
//! tool calls; values the cloud adds are masked to the caller; placeholders nobody issued,
//! or another session issued, stay text.

use nemoclaw_standin::{INJECTED_CARD, INJECTED_EMAIL};
use serde_json::{Value, json};

use super::{
    EMAIL, SECRET, Setup, anthropic_shapes, call, contains, inference_policy, sdks_ready, shapes,
};

/// E-mail addresses and cards masked and restored; secrets masked one way (the default).
const MASK: &str = "    email: mask\n    payment_card: mask\n    secret: mask\n";

/// The request shapes with `model` set to `model` (embeddings keep theirs).
fn with_model(cases: Vec<(&'static str, Value)>, model: &str) -> Vec<(&'static str, Value)> {
    cases
        .into_iter()
        .map(|(what, mut c)| {
            if c["method"] != "embeddings" {
                c["kwargs"]["model"] = json!(model);
            }
            (what, c)
        })
        .collect()
}

/// Shapes whose echoed text (the last message, plus any system text) carries the value.
fn echoes_value(what: &str) -> bool {
    !matches!(
        what,
        "chat tool call arguments" | "embeddings" | "messages tool_use input"
    )
}

fn plan(cases: &[(&'static str, Value)]) -> Value {
    json!(cases.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>())
}

/// The placeholders in `text` (`<LABEL_N_nonce>`).
fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let candidate = &rest[open..];
        if let Some(close) = candidate.find('>') {
            let inner = &candidate[1..close];
            let parts: Vec<&str> = inner.rsplitn(3, '_').collect();
            if parts.len() == 3
                && parts[0].len() == 8
                && parts[0].bytes().all(|b| b.is_ascii_hexdigit())
                && parts[1].bytes().all(|b| b.is_ascii_digit())
            {
                out.push(candidate[..=close].to_owned());
            }
        }
        rest = &candidate[1..];
    }
    out
}

#[test]
fn masked_values_never_reach_the_cloud_and_come_back_restored_in_every_shape() {
    if !sdks_ready("router_mask_shapes") {
        return;
    }
    let s = Setup::start("router-mask", "", &[]);
    let openai = with_model(shapes(EMAIL), "echo");
    let results = s.agent(
        "mask-openai",
        &inference_policy(s.router.addr, "cloud", MASK),
        &plan(&openai),
    );
    let anthropic = with_model(anthropic_shapes(EMAIL), "echo");
    let results_anthropic = s.agent(
        "mask-claude",
        &inference_policy(s.router.addr, "anthropic", MASK),
        &plan(&anthropic),
    );
    for ((what, _), r) in openai
        .iter()
        .chain(&anthropic)
        .zip(results.iter().chain(&results_anthropic))
    {
        assert_eq!(r["ok"], true, "{what}: {r}");
        let text = r["text"].as_str().unwrap();
        if echoes_value(what) {
            assert!(
                text.contains(EMAIL),
                "{what}: restored in the reply: {text}"
            );
        }
        assert!(
            placeholders(text).is_empty(),
            "{what}: a placeholder reached the caller: {text}"
        );
    }
    let cloud = s.cloud.received();
    assert!(
        !contains(&cloud, EMAIL),
        "an e-mail address reached the cloud"
    );
    assert!(
        contains(&cloud, "<EMAIL_1_"),
        "the cloud got the placeholder"
    );
    assert_eq!(s.cloud.requests().len(), openai.len() + anthropic.len());
    assert!(
        s.local.requests().is_empty(),
        "masking keeps the cloud model"
    );

    // Secrets are masked one way: the agent gets the placeholder, never the value back.
    let secret = with_model(shapes(SECRET), "echo");
    let results = s.agent(
        "mask-secret",
        &inference_policy(s.router.addr, "cloud", MASK),
        &plan(&secret[..2]),
    );
    for r in &results {
        let text = r["text"].as_str().unwrap();
        assert!(!text.contains(SECRET), "{r}");
        assert!(text.contains("<SECRET_1_"), "{r}");
    }
    assert!(
        !contains(&s.cloud.received(), SECRET),
        "a secret reached the cloud"
    );

    let records = s.inference_records();
    let masked: Vec<&Value> = records.iter().filter(|r| r["action"] == "mask").collect();
    assert_eq!(
        masked.len(),
        openai.len() + anthropic.len() + 2,
        "{records:#?}"
    );
    for r in &masked {
        assert!(r["masked"].as_u64() >= Some(1), "{r}");
        assert_eq!(r["ending"], "complete", "{r}");
        assert_eq!(
            r["backend"].as_str().map(|b| b != "local"),
            Some(true),
            "{r}"
        );
    }
    let restored: u64 = masked.iter().filter_map(|r| r["restored"].as_u64()).sum();
    assert!(restored >= 12, "restorations audited: {restored}");
    let log = std::fs::read_to_string(&s.daemon.audit).unwrap();
    assert!(
        !log.contains(EMAIL) && !log.contains(SECRET),
        "no value in the audit trail"
    );
}

#[test]
fn tool_call_arguments_are_restored_as_valid_json_in_every_api() {
    if !sdks_ready("router_mask_tools") {
        return;
    }
    let s = Setup::start("router-mask-tools", "", &[]);
    // Quotes and a backslash around the value: restored inside JSON, they must be escaped.
    let text = format!(r#"He wrote "{EMAIL}" \ done"#);
    let messages = json!([{"role": "user", "content": text}]);
    let openai = [
        call(
            "openai",
            "chat",
            json!({"model": "echo-tool", "messages": messages}),
        ),
        call(
            "openai",
            "chat",
            json!({"model": "echo-tool", "messages": messages, "stream": true}),
        ),
        call(
            "openai",
            "responses",
            json!({"model": "echo-tool", "input": text}),
        ),
        call(
            "openai",
            "responses",
            json!({"model": "echo-tool", "input": text, "stream": true}),
        ),
    ];
    let anthropic = [
        call(
            "anthropic",
            "messages",
            json!({"model": "echo-tool", "max_tokens": 64, "messages": messages}),
        ),
        call(
            "anthropic",
            "messages",
            json!({"model": "echo-tool", "max_tokens": 64, "messages": messages, "stream": true}),
        ),
    ];
    let mut results = s.agent(
        "tools-openai",
        &inference_policy(s.router.addr, "cloud", MASK),
        &json!(openai),
    );
    results.extend(s.agent(
        "tools-claude",
        &inference_policy(s.router.addr, "anthropic", MASK),
        &json!(anthropic),
    ));
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["ok"], true, "call {i}: {r}");
        let reply = r["text"].as_str().unwrap();
        let arguments = reply
            .strip_prefix("tool:")
            .unwrap_or_else(|| panic!("call {i}: not a tool call: {reply}"));
        let parsed: Value = serde_json::from_str(arguments)
            .unwrap_or_else(|e| panic!("call {i}: {e}: {arguments}"));
        assert_eq!(parsed["text"], text, "call {i}");
    }
    assert!(!contains(&s.cloud.received(), EMAIL));
}

#[test]
fn injected_values_are_masked_and_forged_or_foreign_placeholders_stay_text() {
    if !sdks_ready("router_mask_inject") {
        return;
    }
    let s = Setup::start("router-mask-inject", "", &[]);
    let policy = inference_policy(s.router.addr, "cloud", MASK);
    let prompt = format!("Mail {EMAIL} please");
    let results = s.agent(
        "inject",
        &policy,
        &json!([
            call("openai", "chat", json!({"model": "inject", "stream": true, "messages": [{"role": "user", "content": prompt}]})),
            call("openai", "chat", json!({"model": "inject", "messages": [{"role": "user", "content": prompt}]})),
        ]),
    );
    for r in &results {
        let text = r["text"].as_str().unwrap();
        assert!(
            text.contains(&prompt),
            "the caller's own value restored: {text}"
        );
        assert!(
            !text.contains(INJECTED_EMAIL),
            "injected e-mail reached the caller: {text}"
        );
        assert!(
            !text.contains(INJECTED_CARD),
            "injected card reached the caller: {text}"
        );
        assert!(
            text.contains("<EMAIL_2_") && text.contains("<PAYMENT_CARD_1_"),
            "{text}"
        );
    }
    let records = s.inference_records();
    for r in records.iter().filter(|r| r["sandbox"] == "inject") {
        assert_eq!(r["injected"], json!({"email": 1, "payment_card": 1}), "{r}");
    }

    // A placeholder the cloud got for this session's value ...
    let sent = String::from_utf8_lossy(&s.cloud.received()).into_owned();
    let issued = placeholders(&sent);
    let ours = issued
        .iter()
        .find(|p| p.starts_with("<EMAIL_1_"))
        .expect("issued placeholder")
        .clone();
    let nonce = ours
        .trim_end_matches('>')
        .rsplit('_')
        .next()
        .unwrap()
        .to_owned();
    // ... is text in another session (another sandbox), like every forgery.
    let forged = [
        ours.clone(),
        format!("<EMAIL_1_{}>", nonce.to_uppercase()),
        format!("<email_1_{nonce}>"),
        format!("<EMAIL-1-{nonce}>"),
        format!("<EMAIL__1_{nonce}>"),
        "<EMAIL_1_deadbeef>".to_owned(),
    ];
    let text = forged.join(" ");
    let results = s.agent(
        "other",
        &policy,
        &json!([
            call("openai", "chat", json!({"model": "echo", "stream": true, "messages": [{"role": "user", "content": text}]})),
            call("openai", "chat", json!({"model": "echo", "messages": [{"role": "user", "content": text}]})),
        ]),
    );
    for r in &results {
        assert_eq!(r["text"], format!("You said: {text}"), "{results:?}");
    }
}
