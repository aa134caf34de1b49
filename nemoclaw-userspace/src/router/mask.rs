//! Masking sessions and the request side of masking. A session (one per sandbox, by the
//! cgroup the kernel reports for its sockets) has a random nonce and a vault: each masked
//! value gets one placeholder, `<EMAIL_1_3f9a0c2e>` (category, the session's count for it,
//! the nonce), the same one every time the session sends it again (so prompt caches still
//! hit), and only the placeholders the vault issued are ever restored (`restore`): a
//! placeholder the model or an injected prompt makes up, with another nonce, number, case
//! or separator, is text like any other, and a session never resolves another's.
//!
//! [`mask_request`] replaces, in every string of the request (values and object keys),
//! every occurrence of each value the detectors found in a `mask` category, wherever the
//! detector found it, then checks the serialized body: if any masked value is still there,
//! the request fails and nothing is sent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use nemoclaw_detect::{Category, Finding};
use serde_json::Value;

use super::error::RouterError;
use super::request::TextField;
use crate::policy::inference::{Action, InferenceRules};

/// Placeholders a session may issue; past that, masking refuses (fail closed) rather than
/// forget old ones.
const MAX_ENTRIES: usize = 1 << 20;
/// A session nobody used for this long is forgotten (its placeholders no longer restore).
const SESSION_IDLE: Duration = Duration::from_hours(24);
/// The longest placeholder: `<`, a label of at most 64 bytes, two numbers, the nonce, `>`.
pub const MAX_PLACEHOLDER: usize = 96;

/// What the vault knows of a placeholder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    /// Whether replies get the value back (`restore` of the category; never for values the
    /// router masked in a reply).
    pub restore: bool,
}

/// One sandbox's placeholders.
pub struct Session {
    nonce: String,
    by_value: HashMap<(String, String), String>,
    entries: BTreeMap<String, Entry>,
    counters: HashMap<String, u32>,
    last_used: Instant,
}

impl Session {
    /// A session with a fresh random nonce.
    pub fn new() -> Result<Session, RouterError> {
        let mut bytes = [0_u8; 4];
        // SAFETY: getrandom writes at most `len` bytes into the buffer it is given.
        let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        if usize::try_from(n).ok() != Some(bytes.len()) {
            return Err(RouterError::Masking(format!(
                "no random nonce for the session: {}",
                std::io::Error::last_os_error()
            )));
        }
        let nonce = bytes.iter().fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
        Ok(Session::with_nonce(nonce))
    }

    /// A session with a given nonce (tests).
    #[must_use]
    pub fn with_nonce(nonce: String) -> Session {
        Session {
            nonce,
            by_value: HashMap::new(),
            entries: BTreeMap::new(),
            counters: HashMap::new(),
            last_used: Instant::now(),
        }
    }

    /// The placeholder of `value` in `category`: the one issued before, or a new one.
    /// `restore` is the policy's current say for the category (a policy reload can change
    /// it; the latest wins).
    pub fn placeholder(
        &mut self,
        category: &Category,
        value: &str,
        restore: bool,
    ) -> Result<String, RouterError> {
        let label = label(category);
        let key = (label, value.to_owned());
        if let Some(placeholder) = self.by_value.get(&key) {
            if let Some(entry) = self.entries.get_mut(placeholder) {
                entry.restore = restore;
            }
            return Ok(placeholder.clone());
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(RouterError::Masking(format!(
                "the session has issued {MAX_ENTRIES} placeholders, its limit"
            )));
        }
        let counter = self.counters.entry(key.0.clone()).or_insert(0);
        *counter += 1;
        let placeholder = format!("<{}_{}_{}>", key.0, counter, self.nonce);
        self.entries.insert(
            placeholder.clone(),
            Entry {
                value: value.to_owned(),
                restore,
            },
        );
        self.by_value.insert(key, placeholder.clone());
        Ok(placeholder)
    }

    /// The entry of an exact placeholder the session issued.
    #[must_use]
    pub fn lookup(&self, placeholder: &str) -> Option<&Entry> {
        self.entries.get(placeholder)
    }

    /// Whether `text` is a proper prefix of a placeholder the session issued (a reply
    /// chunk ending in it must wait for the next one).
    #[must_use]
    pub fn is_proper_prefix(&self, text: &str) -> bool {
        self.entries
            .range::<str, _>((std::ops::Bound::Excluded(text), std::ops::Bound::Unbounded))
            .next()
            .is_some_and(|(p, _)| p.starts_with(text))
    }

    /// Whether the session has issued any placeholder.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The placeholder label of a category: its name in upper case, `-` as `_`.
fn label(category: &Category) -> String {
    category
        .name()
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The sessions of the running router, by sandbox cgroup.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<u64, Arc<Mutex<Session>>>>,
}

impl Sessions {
    /// The session of the sandbox in cgroup `key`, created on first use; sessions idle for
    /// a day are dropped on the way.
    pub fn get(&self, key: u64) -> Result<Arc<Mutex<Session>>, RouterError> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| {
            s.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .last_used
                .elapsed()
                < SESSION_IDLE
        });
        if let Some(session) = map.get(&key) {
            session
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .last_used = Instant::now();
            return Ok(Arc::clone(session));
        }
        let session = Arc::new(Mutex::new(Session::new()?));
        map.insert(key, Arc::clone(&session));
        Ok(session)
    }
}

/// What masking did to a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Masked {
    /// Distinct values replaced, by category name.
    pub by_category: BTreeMap<String, usize>,
}

impl Masked {
    /// Distinct values replaced.
    #[must_use]
    pub fn values(&self) -> usize {
        self.by_category.values().sum()
    }
}

/// Whether the string at `pointer` is JSON text (tool-call arguments), where a value
/// appears JSON-escaped.
fn is_json_text(pointer: &str) -> bool {
    pointer.ends_with("/arguments")
}

/// A value as it appears inside a JSON string literal (without the quotes).
#[must_use]
pub fn json_escaped(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or(value)
        .to_owned()
}

/// The value a finding covers in a field, unescaped when the field is JSON text.
fn value_of(field: &TextField, finding: &Finding) -> Option<String> {
    let raw = field.text.get(finding.start..finding.end)?;
    if is_json_text(&field.pointer)
        && raw.contains('\\')
        && let Ok(unescaped) = serde_json::from_str::<String>(&format!("\"{raw}\""))
    {
        return Some(unescaped);
    }
    Some(raw.to_owned())
}

/// Replaces, in every string of `body`, each value found in a category whose action is
/// `mask` with its placeholder in `session`; then checks that none is left in the body's
/// serialization. Returns the bytes to send.
pub fn mask_request(
    body: &mut Value,
    texts: &[TextField],
    findings: &[(String, Finding)],
    rules: &InferenceRules,
    session: &Mutex<Session>,
) -> Result<(Vec<u8>, Masked), RouterError> {
    let fields: HashMap<&str, &TextField> = texts.iter().map(|t| (t.pointer.as_str(), t)).collect();
    let mut masked = Masked::default();
    let mut patterns: Vec<String> = Vec::new();
    let mut replacements: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    {
        let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
        for (pointer, finding) in findings {
            let rule = rules.action_for(&finding.category);
            if rule.action != Action::Mask {
                continue;
            }
            let field = fields.get(pointer.as_str()).ok_or_else(|| {
                RouterError::Masking(format!(
                    "a finding names field {pointer}, which the request view lacks"
                ))
            })?;
            let value = value_of(field, finding).ok_or_else(|| {
                RouterError::Masking(format!(
                    "a finding at {pointer} bytes {}..{} is not inside its field",
                    finding.start, finding.end
                ))
            })?;
            if value.is_empty() || !seen.insert(value.clone()) {
                continue;
            }
            let placeholder =
                session.placeholder(&finding.category, &value, rule.restores(&finding.category))?;
            *masked
                .by_category
                .entry(finding.category.name().to_owned())
                .or_default() += 1;
            let escaped = json_escaped(&value);
            if escaped != value {
                patterns.push(escaped);
                replacements.push(placeholder.clone());
            }
            patterns.push(value);
            replacements.push(placeholder);
        }
    }
    if patterns.is_empty() {
        let bytes = serde_json::to_vec(body).map_err(|e| RouterError::Internal(e.to_string()))?;
        return Ok((bytes, masked));
    }
    // A contiguous NFA: built per request, it must be cheap to build (a DFA is not).
    let automaton = AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .match_kind(MatchKind::LeftmostLongest)
        .build(&patterns)
        .map_err(|e| RouterError::Masking(format!("the value automaton: {e}")))?;
    replace_strings(body, &automaton, &replacements);
    let bytes = serde_json::to_vec(body).map_err(|e| RouterError::Internal(e.to_string()))?;
    if let Some(m) = automaton.find(&bytes) {
        return Err(RouterError::Masking(format!(
            "a value to mask is still in the body to send at byte {} after masking",
            m.start()
        )));
    }
    Ok((bytes, masked))
}

/// Replaces every match in every string and object key under `value`.
fn replace_strings(value: &mut Value, automaton: &AhoCorasick, replacements: &[String]) {
    match value {
        Value::String(s) => {
            if automaton.is_match(s.as_str()) {
                *s = automaton.replace_all(s, replacements);
            }
        }
        Value::Array(items) => {
            for item in items {
                replace_strings(item, automaton, replacements);
            }
        }
        Value::Object(map) => {
            let renamed: Vec<String> = map
                .keys()
                .filter(|k| automaton.is_match(k.as_str()))
                .cloned()
                .collect();
            for key in renamed {
                if let Some(item) = map.remove(&key) {
                    map.insert(automaton.replace_all(&key, replacements), item);
                }
            }
            for item in map.values_mut() {
                replace_strings(item, automaton, replacements);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::inference::RuledAction;
    use crate::router::request::{InferenceRequest, Route};
    use crate::router::scan::Scanner;

    fn rules(secret_restore: Option<bool>) -> InferenceRules {
        let mut rules = InferenceRules::for_tests(
            Action::Block,
            &[
                (Category::Email, Action::Mask),
                (Category::Secret, Action::Mask),
                (Category::IpAddress, Action::Allow),
            ],
        );
        if let Some(secret) = rules.categories.get_mut(&Category::Secret) {
            secret.restore = secret_restore;
        }
        rules
    }

    /// Masks `body` (a chat request) under `rules` with the detectors `rules` defines.
    fn run(
        body: &str,
        session: &Mutex<Session>,
        rules: &InferenceRules,
    ) -> Result<(String, Masked), RouterError> {
        let parsed = InferenceRequest::parse(Route::ChatCompletions, body.as_bytes()).unwrap();
        let findings = Scanner::new(rules).unwrap().scan(&parsed.texts).unwrap();
        let mut value = parsed.body;
        let (bytes, masked) = mask_request(&mut value, &parsed.texts, &findings, rules, session)?;
        Ok((String::from_utf8(bytes).unwrap(), masked))
    }

    #[test]
    fn values_become_the_sessions_placeholders_everywhere_and_stay_stable() {
        let session = Mutex::new(Session::with_nonce("0badc0de".into()));
        let body = r#"{"model":"m","messages":[
            {"role":"user","content":"mail ann.lee@example.org or bob@example.net, server 10.1.2.3"},
            {"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"send","arguments":"{\"to\":\"ann.lee@example.org\"}"}}]},
            {"role":"user","content":[{"type":"text","text":"again: ann.lee@example.org"}]}]}"#;
        let (sent, masked) = run(body, &session, &rules(None)).unwrap();
        assert!(
            !sent.contains("example.org") && !sent.contains("example.net"),
            "{sent}"
        );
        assert!(
            sent.contains("<EMAIL_1_0badc0de> or <EMAIL_2_0badc0de>"),
            "{sent}"
        );
        assert!(
            sent.contains(r#"{\"to\":\"<EMAIL_1_0badc0de>\"}"#),
            "{sent}"
        );
        assert!(sent.contains("again: <EMAIL_1_0badc0de>"), "{sent}");
        assert!(sent.contains("10.1.2.3"), "allowed categories pass: {sent}");
        assert_eq!(masked.by_category.get("email"), Some(&2));
        // The next request of the session gets the same placeholders (prompt caches hit).
        let (again, _) = run(body, &session, &rules(None)).unwrap();
        assert_eq!(again, sent);
        let s = session.lock().unwrap();
        assert_eq!(
            s.lookup("<EMAIL_1_0badc0de>").unwrap().value,
            "ann.lee@example.org"
        );
        assert!(s.lookup("<EMAIL_1_0BADC0DE>").is_none());
        assert!(s.lookup("<EMAIL_3_0badc0de>").is_none());
        assert!(s.is_proper_prefix("<EMAIL_1_0ba"));
        assert!(s.is_proper_prefix("<"));
        assert!(!s.is_proper_prefix("<EMAIL_1_0badc0de>"));
        assert!(!s.is_proper_prefix("<EMAIL_1_0bb"));
    }

    #[test]
    fn secrets_are_one_way_unless_the_policy_says_otherwise() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"key AKIAIOSFODNN7EXAMPLF and x@example.com"}]}"#;
        for (restore, expected) in [(None, false), (Some(true), true)] {
            let session = Mutex::new(Session::with_nonce("00000001".into()));
            let (sent, _) = run(body, &session, &rules(restore)).unwrap();
            assert!(sent.contains("<SECRET_1_00000001>"), "{sent}");
            let s = session.lock().unwrap();
            assert_eq!(s.lookup("<SECRET_1_00000001>").unwrap().restore, expected);
            assert!(s.lookup("<EMAIL_1_00000001>").unwrap().restore);
        }
    }

    #[test]
    fn values_needing_json_escapes_are_masked_in_both_forms() {
        let session = Mutex::new(Session::with_nonce("00000002".into()));
        let mut rules = rules(None);
        rules
            .patterns
            .insert("quoted".into(), r#"ID"[0-9]{6}"#.into());
        rules.categories.insert(
            Category::Custom("quoted".into()),
            RuledAction::new(Action::Mask, "p:9".into()),
        );
        let body = r#"{"model":"m","messages":[{"role":"user","content":"see ID\"123456"},
            {"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"q\":\"ID\\\"123456\"}"}}]}]}"#;
        let (sent, masked) = run(body, &session, &rules).unwrap();
        assert!(!sent.contains("123456"), "{sent}");
        assert_eq!(masked.values(), 1, "one value, two spellings");
    }

    #[test]
    fn sessions_are_per_sandbox_and_nonces_differ() {
        let sessions = Sessions::default();
        let a = sessions.get(1).unwrap();
        let b = sessions.get(2).unwrap();
        assert!(Arc::ptr_eq(&a, &sessions.get(1).unwrap()));
        let pa = a
            .lock()
            .unwrap()
            .placeholder(&Category::Email, "a@b.example", true)
            .unwrap();
        let pb = b
            .lock()
            .unwrap()
            .placeholder(&Category::Email, "a@b.example", true)
            .unwrap();
        assert_ne!(pa, pb, "the nonce differs");
        assert!(b.lock().unwrap().lookup(&pa).is_none());
    }
}
