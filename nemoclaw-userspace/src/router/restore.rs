//! The reply side of masking, on one stream of text (a message's content, one tool call's
//! arguments): first the **guard** takes out values of the policy's categories that the
//! request did not carry (a model echoing a secret from its training data, an injected tool
//! result), then the **restorer** puts the caller's values back in place of the session's
//! placeholders. Both work on text as it streams, in pieces split anywhere:
//!
//! - the restorer holds back only a proper prefix of a placeholder the session issued (at
//!   most one, from the last `<`), never more;
//! - the guard holds back the last word, and the words before it that could belong to the
//!   same value (digit groups of a card or a phone number, the words of a multi-word
//!   keyword), up to [`MAX_HOLD`] bytes; a value the detectors still see growing at the end
//!   is held until it ends. Detection runs over the held text with up to [`CONTEXT`] bytes
//!   of what was already sent before it, for context words (`password:`, `born`).
//!
//! `finish` releases what is held at the end of the stream. Plain data in, plain data out:
//! unit-tested without a network, with every split of every placeholder.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use nemoclaw_detect::Category;

use super::directory::Rules;
use super::mask::{MAX_PLACEHOLDER, Session, json_escaped};
use super::scan::Scanner;
use crate::policy::inference::OnReply;

/// The guard never holds more than this; a longer value that has not ended yet is
/// released (and what is still held of it is masked when it ends).
pub const MAX_HOLD: usize = 1024;
/// Bytes of already-sent text the guard's detection sees before the held text.
pub const CONTEXT: usize = 256;

/// How text in a stream is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    /// Prose: a value goes back as it is.
    Plain,
    /// JSON text (tool-call arguments): a value goes back JSON-escaped.
    Json,
}

/// What one reply's rewriting shares across its streams: the session, the detectors and
/// the rules for injected values, the values the request carried, and the counts for the
/// audit record.
pub struct ReplyContext {
    session: Arc<Mutex<Session>>,
    guard: Option<Guarding>,
    pub counts: Counts,
}

/// The injected-value guard's part of a reply context.
struct Guarding {
    /// The sandbox's rules: its detectors and each category's `injected`.
    rules: Arc<Rules>,
    /// Values the request carried (the caller's own, whatever their category).
    exempt: HashSet<String>,
    /// The most words a keyword of the policy has (the guard holds that many at least).
    words: usize,
}

/// What the reply's rewriting did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Placeholders put back.
    pub restored: usize,
    /// Values the reply carried that the request did not, masked, by category.
    pub injected: BTreeMap<String, usize>,
}

impl ReplyContext {
    /// A context restoring `session`'s placeholders; with `guard`, also masking values of
    /// categories whose `injected` is `mask` that are not in `exempt`.
    #[must_use]
    pub fn new(
        session: Arc<Mutex<Session>>,
        guard: Option<(Arc<Rules>, HashSet<String>)>,
    ) -> ReplyContext {
        let guard = guard.map(|(rules, exempt)| {
            let words = rules
                .inference
                .keywords
                .values()
                .flatten()
                .map(|k| k.split_whitespace().count())
                .max()
                .unwrap_or(1)
                .max(1);
            Guarding {
                rules,
                exempt,
                words,
            }
        });
        ReplyContext {
            session,
            guard,
            counts: Counts::default(),
        }
    }

    /// Rewrites a whole string at once (a non-streamed reply, a `done` event's full text).
    pub fn whole(&mut self, text: &str, kind: TextKind) -> String {
        let mut channel = Channel::new(kind);
        let mut out = channel.push(self, text);
        out.push_str(&channel.finish(self));
        out
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One stream of text in a reply.
pub struct Channel {
    kind: TextKind,
    /// Upstream text the guard holds.
    guarded: String,
    /// What was released before it (the tail, for detection context).
    context: String,
    /// Text the restorer holds (a proper prefix of a placeholder).
    held: String,
}

impl Channel {
    #[must_use]
    pub fn new(kind: TextKind) -> Channel {
        Channel {
            kind,
            guarded: String::new(),
            context: String::new(),
            held: String::new(),
        }
    }

    /// Takes the next piece of the backend's text; returns what the caller may have now.
    pub fn push(&mut self, cx: &mut ReplyContext, piece: &str) -> String {
        self.guarded.push_str(piece);
        let released = self.guard(cx, false);
        self.restore(cx, &released, false)
    }

    /// The end of the stream: everything still held, rewritten.
    pub fn finish(&mut self, cx: &mut ReplyContext) -> String {
        let released = self.guard(cx, true);
        self.restore(cx, &released, true)
    }

    /// Releases what the guard no longer needs to hold, with injected values masked (all of
    /// it when the reply is not guarded).
    fn guard(&mut self, cx: &mut ReplyContext, end: bool) -> String {
        let Some(guarding) = &cx.guard else {
            return std::mem::take(&mut self.guarded);
        };
        let mut hold = if end {
            self.guarded.len()
        } else {
            hold_from(&self.guarded, guarding.words)
        };
        let offset = self.context.len();
        let window = format!("{}{}", self.context, self.guarded);
        let mut findings = detect(&guarding.rules.scanner, &window);
        findings.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
        // Findings still growing at the end hold the text back from where they start.
        if !end {
            for f in &findings {
                if f.end > offset + hold || f.end == window.len() {
                    hold = hold.min(f.start.saturating_sub(offset));
                }
            }
            if self.guarded.len() - hold > MAX_HOLD {
                hold = floor_boundary(&self.guarded, self.guarded.len() - MAX_HOLD);
            }
        }
        let mut out = String::new();
        let mut at = 0; // in `guarded`
        for f in &findings {
            if f.end <= offset || f.end > offset + hold {
                continue;
            }
            let start = f.start.max(offset) - offset;
            if start < at {
                continue;
            }
            if guarding.rules.inference.action_for(&f.category).on_reply() != OnReply::Mask {
                continue;
            }
            let mut session = cx.session.lock().unwrap_or_else(PoisonError::into_inner);
            if guarding.exempt.contains(&f.value) {
                continue;
            }
            // The placeholder of an injected value is never restored; when the vault is
            // full the value is still kept from the caller.
            let placeholder = session
                .placeholder(&f.category, &f.value, false)
                .unwrap_or_else(|_| "<MASKED>".to_owned());
            drop(session);
            out.push_str(&self.guarded[at..start]);
            out.push_str(&placeholder);
            at = f.end - offset;
            *cx.counts
                .injected
                .entry(f.category.name().to_owned())
                .or_default() += 1;
        }
        out.push_str(&self.guarded[at..hold]);
        self.guarded.drain(..hold);
        self.context.push_str(&out);
        if self.context.len() > CONTEXT {
            let cut = floor_boundary(&self.context, self.context.len() - CONTEXT);
            self.context.drain(..cut);
        }
        out
    }

    /// Puts the caller's values back, holding a proper prefix of a placeholder.
    fn restore(&mut self, cx: &mut ReplyContext, text: &str, end: bool) -> String {
        if self.held.is_empty() && !text.contains('<') {
            return text.to_owned();
        }
        let mut buffer = std::mem::take(&mut self.held);
        buffer.push_str(text);
        let session = cx.session();
        let mut out = String::with_capacity(buffer.len());
        let mut rest = buffer.as_str();
        let mut restored = 0;
        while let Some(open) = rest.find('<') {
            out.push_str(&rest[..open]);
            let candidate = &rest[open..];
            let close = candidate
                .bytes()
                .take(MAX_PLACEHOLDER)
                .position(|b| b == b'>');
            let next_open = candidate[1..].find('<').map(|i| i + 1);
            match close {
                Some(close) if next_open.is_none_or(|n| n > close) => {
                    let placeholder = &candidate[..=close];
                    match session.lookup(placeholder) {
                        Some(entry) if entry.restore => {
                            match self.kind {
                                TextKind::Plain => out.push_str(&entry.value),
                                TextKind::Json => out.push_str(&json_escaped(&entry.value)),
                            }
                            restored += 1;
                        }
                        _ => out.push_str(placeholder),
                    }
                    rest = &candidate[close + 1..];
                }
                _ => {
                    // No `>` ahead: a placeholder still arriving, or just a `<`.
                    let tail_end = next_open.unwrap_or(candidate.len());
                    if next_open.is_none() && !end && session.is_proper_prefix(candidate) {
                        candidate.clone_into(&mut self.held);
                        rest = "";
                        break;
                    }
                    out.push_str(&candidate[..tail_end]);
                    rest = &candidate[tail_end..];
                }
            }
        }
        out.push_str(rest);
        drop(session);
        cx.counts.restored += restored;
        out
    }
}

/// A value the guard found: where in the text (bytes), and the value itself (decoded when
/// the text carried it percent-encoded).
struct Found {
    category: Category,
    start: usize,
    end: usize,
    value: String,
}

/// The detectors' findings in `text`, and in its percent-decoded reading when it has
/// `%XX` escapes of ASCII bytes (`ann%40example.org` is an e-mail address to a model that
/// writes URLs), mapped back to the escaped text.
fn detect(scanner: &Scanner, text: &str) -> Vec<Found> {
    let mut found: Vec<Found> = scanner
        .detect(text)
        .into_iter()
        .map(|f| Found {
            value: text[f.start..f.end].to_owned(),
            category: f.category,
            start: f.start,
            end: f.end,
        })
        .collect();
    if let Some((decoded, origin)) = percent_decoded(text) {
        for f in scanner.detect(&decoded) {
            let (start, end) = (origin[f.start], origin[f.end]);
            if !found.iter().any(|g| g.start <= start && end <= g.end) {
                found.push(Found {
                    value: decoded[f.start..f.end].to_owned(),
                    category: f.category,
                    start,
                    end,
                });
            }
        }
    }
    found
}

/// `text` with its `%XX` escapes of ASCII bytes decoded, and for each byte of the result
/// (and its end) the offset in `text` it came from; `None` without such escapes.
fn percent_decoded(text: &str) -> Option<(String, Vec<usize>)> {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let escape_at = |i: usize| -> Option<u8> {
        if bytes.get(i) != Some(&b'%') {
            return None;
        }
        let byte = hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?;
        u8::try_from(byte).ok().filter(u8::is_ascii)
    };
    if !(0..bytes.len()).any(|i| escape_at(i).is_some()) {
        return None;
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut origin = Vec::with_capacity(bytes.len() + 1);
    let mut i = 0;
    while i < bytes.len() {
        if let Some(byte) = escape_at(i) {
            decoded.push(byte);
            origin.push(i);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            origin.push(i);
            i += 1;
        }
    }
    origin.push(bytes.len());
    // Only ASCII bytes were decoded, between whole characters: still UTF-8.
    String::from_utf8(decoded).ok().map(|d| (d, origin))
}

/// Where the guard's held text starts: the last word, and before it the words that could
/// be part of the same value: digit groups (cards, phones, IBANs, SSNs written with
/// spaces) and, for multi-word keywords, `words - 1` more.
fn hold_from(text: &str, words: usize) -> usize {
    let bytes = text.as_bytes();
    let mut start = bytes.len();
    // The last word (possibly empty, when the text ends in a space).
    while start > 0 && !bytes[start - 1].is_ascii_whitespace() {
        start -= 1;
    }
    let mut extra_words = words.saturating_sub(1);
    loop {
        // The word before the separator run.
        let mut sep = start;
        while sep > 0 && bytes[sep - 1].is_ascii_whitespace() {
            sep -= 1;
        }
        if sep == 0 || sep == start {
            break;
        }
        let mut word = sep;
        while word > 0 && !bytes[word - 1].is_ascii_whitespace() {
            word -= 1;
        }
        let digits = bytes[word..sep].iter().any(u8::is_ascii_digit);
        let single_separator = start - sep == 1;
        if digits && single_separator {
            start = word;
        } else if extra_words > 0 {
            extra_words -= 1;
            start = word;
        } else {
            break;
        }
    }
    start
}

/// The largest char boundary at or below `at`.
fn floor_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::inference::{Action, InferenceRules};

    const NONCE: &str = "5eed5eed";

    fn session() -> Arc<Mutex<Session>> {
        let mut s = Session::with_nonce(NONCE.into());
        s.placeholder(&Category::Email, "ann.lee@example.org", true)
            .unwrap();
        s.placeholder(&Category::Secret, "sk-one-way", false)
            .unwrap();
        s.placeholder(&Category::Custom("quoted".into()), "say \"hi\"", true)
            .unwrap();
        Arc::new(Mutex::new(s))
    }

    fn rules() -> Arc<Rules> {
        let inference = InferenceRules::for_tests(
            Action::Block,
            &[
                (Category::Email, Action::Mask),
                (Category::PaymentCard, Action::Mask),
                (Category::IpAddress, Action::Allow),
            ],
        );
        Arc::new(Rules {
            sandbox: "s".into(),
            policy_sha256: "0".into(),
            scanner: Scanner::new(&inference).unwrap(),
            inference,
        })
    }

    fn guarded(exempt: &[&str]) -> ReplyContext {
        ReplyContext::new(
            session(),
            Some((rules(), exempt.iter().map(|s| (*s).to_owned()).collect())),
        )
    }

    /// Feeds `text` in the given pieces, checks nothing is ever released that is a proper
    /// placeholder prefix, and returns the whole output.
    fn stream(cx: &mut ReplyContext, pieces: &[&str], kind: TextKind) -> String {
        let mut channel = Channel::new(kind);
        let mut out = String::new();
        for piece in pieces {
            out.push_str(&channel.push(cx, piece));
        }
        out.push_str(&channel.finish(cx));
        out
    }

    #[test]
    fn placeholders_split_at_every_byte_are_restored_exactly() {
        let reply = "Write to <EMAIL_1_5eed5eed> today; key <SECRET_1_5eed5eed>.";
        let expected = "Write to ann.lee@example.org today; key <SECRET_1_5eed5eed>.";
        for cut in 0..=reply.len() {
            for second in cut..=reply.len() {
                let mut cx = ReplyContext::new(session(), None);
                let out = stream(
                    &mut cx,
                    &[&reply[..cut], &reply[cut..second], &reply[second..]],
                    TextKind::Plain,
                );
                assert_eq!(out, expected, "cuts at {cut} and {second}");
                assert_eq!(cx.counts.restored, 1);
            }
        }
    }

    #[test]
    fn one_character_at_a_time_holds_only_a_placeholder_prefix() {
        let reply = "a <b> <EMAIL_1_5eed5eed>< <EMAIL_1_5eed5ee <EMAIL_1_5eed5eed>";
        let mut cx = ReplyContext::new(session(), None);
        let mut channel = Channel::new(TextKind::Plain);
        let mut out = String::new();
        for c in reply.chars() {
            out.push_str(&channel.push(&mut cx, &c.to_string()));
            assert!(
                channel.held.is_empty() || cx.session().is_proper_prefix(&channel.held),
                "held {:?}",
                channel.held
            );
            assert!(channel.held.len() < "<EMAIL_1_5eed5eed>".len());
        }
        out.push_str(&channel.finish(&mut cx));
        assert_eq!(
            out,
            "a <b> ann.lee@example.org< <EMAIL_1_5eed5ee ann.lee@example.org"
        );
    }

    #[test]
    fn forged_placeholders_are_never_restored() {
        let forged = [
            "<EMAIL_1_5eed5eef>",
            "<email_1_5eed5eed>",
            "<EMAIL_1_5EED5EED>",
            "<EMAIL-1-5eed5eed>",
            "<EMAIL1_5eed5eed>",
            "<EMAIL_2_5eed5eed>",
            "<EMAIL__1_5eed5eed>",
            "< EMAIL_1_5eed5eed>",
            "<EMAIL_1_5eed5eed >",
            "<<EMAIL_1_5eed5eed",
        ];
        for f in forged {
            let mut cx = ReplyContext::new(session(), None);
            assert_eq!(cx.whole(f, TextKind::Plain), f);
            assert_eq!(cx.counts.restored, 0, "{f}");
        }
        let other = Arc::new(Mutex::new(Session::with_nonce("00000000".into())));
        let mut cx = ReplyContext::new(other, None);
        assert_eq!(
            cx.whole("<EMAIL_1_5eed5eed>", TextKind::Plain),
            "<EMAIL_1_5eed5eed>",
            "another session's placeholder is text"
        );
    }

    #[test]
    fn json_text_gets_escaped_values() {
        let mut cx = ReplyContext::new(session(), None);
        let args = r#"{"q":"<QUOTED_1_5eed5eed>","to":"<EMAIL_1_5eed5eed>"}"#;
        let out = cx.whole(args, TextKind::Json);
        assert_eq!(out, r#"{"q":"say \"hi\"","to":"ann.lee@example.org"}"#);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["q"], "say \"hi\"");
    }

    #[test]
    fn injected_values_are_masked_wherever_the_stream_splits_them() {
        let reply = "Contact bob.smith@example.net or card 4111 1111 1111 1111 (ann.lee@example.org at 10.0.0.1).";
        for cut in 0..reply.len() {
            let mut cx = guarded(&["ann.lee@example.org"]);
            let out = stream(&mut cx, &[&reply[..cut], &reply[cut..]], TextKind::Plain);
            assert!(!out.contains("bob.smith"), "cut {cut}: {out}");
            assert!(!out.contains("4111 1111 1111 1111"), "cut {cut}: {out}");
            assert!(
                out.contains("ann.lee@example.org"),
                "the caller's own value: {out}"
            );
            assert!(out.contains("10.0.0.1"), "allowed category passes: {out}");
            assert_eq!(cx.counts.injected.get("email"), Some(&1));
            assert_eq!(cx.counts.injected.get("payment_card"), Some(&1));
        }
        // One character per piece.
        let mut cx = guarded(&[]);
        let chars: Vec<String> = reply.chars().map(String::from).collect();
        let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
        let out = stream(&mut cx, &pieces, TextKind::Plain);
        assert!(
            !out.contains("bob.smith") && !out.contains("4111 1111"),
            "{out}"
        );
        assert!(
            out.starts_with("Contact <EMAIL_2_5eed5eed> or card <PAYMENT_CARD_1_5eed5eed>"),
            "{out}"
        );
    }

    #[test]
    fn percent_encoded_injected_values_are_masked_too() {
        let reply = "see afznaotg%40example.com and 100%25 sure";
        for cut in 0..reply.len() {
            let mut cx = guarded(&[]);
            let out = stream(&mut cx, &[&reply[..cut], &reply[cut..]], TextKind::Plain);
            assert_eq!(out, "see <EMAIL_2_5eed5eed> and 100%25 sure", "cut {cut}");
        }
        assert_eq!(
            percent_decoded("a%40b%zz%e2").unwrap(),
            ("a@b%zz%e2".to_owned(), vec![0, 1, 4, 5, 6, 7, 8, 9, 10, 11])
        );
        assert!(percent_decoded("100% sure").is_none());
    }

    #[test]
    fn the_guard_holds_only_the_last_words() {
        let mut cx = guarded(&[]);
        let mut channel = Channel::new(TextKind::Plain);
        let out = channel.push(
            &mut cx,
            "The quick brown fox jumps over the lazy dog and then some",
        );
        assert_eq!(out, "The quick brown fox jumps over the lazy dog and then ");
        let out = channel.push(&mut cx, "thing else 12 34 56");
        assert_eq!(out, "something else ");
        assert_eq!(channel.finish(&mut cx), "12 34 56");
    }

    #[test]
    fn hold_from_keeps_digit_groups_and_keyword_words() {
        assert_eq!(hold_from("pay 4111 1111 11", 1), 4);
        assert_eq!(hold_from("call +1 555 234", 1), 5);
        assert_eq!(hold_from("hello world", 1), 6);
        assert_eq!(hold_from("hello world ", 1), 12);
        assert_eq!(hold_from("about Project Falc", 2), 6);
        assert_eq!(hold_from("x  4111", 1), 3, "two spaces part values");
    }
}
