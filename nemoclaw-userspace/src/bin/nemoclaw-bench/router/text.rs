//! The texts the router bench sends and scans: prompts of ordinary prose that carry a few
//! values the policy masks, and a mixed corpus for the detectors' own throughput.

/// The e-mail address every prompt carries (masked by the bench policy and by `LiteLLM`'s
/// content filter; it must never reach the stand-in through either).
pub const EMAIL: &str = "jane.doe@example.com";
/// The payment card every prompt carries (the standard Visa test number: passes Luhn).
pub const CARD: &str = "4111 1111 1111 1111";

/// Ordinary prose: nothing the detectors flag.
const PROSE: &str = "The build failed because the linker could not find the symbol; rerun it with verbose output and compare the search paths. ";

/// How often (in bytes of prompt) the sentence with the sensitive values recurs.
const VALUES_EVERY: usize = 16 << 10;

/// The sentence carrying [`EMAIL`] and [`CARD`].
fn values_sentence() -> String {
    format!("Please refund the order of {EMAIL}, paid with the card {CARD}, and confirm by mail. ")
}

/// A prompt of exactly `bytes` bytes (ASCII): the sentence with the sensitive values at the
/// start and every [`VALUES_EVERY`] bytes where it fits whole, prose around it.
pub fn prompt(bytes: usize) -> String {
    let values = values_sentence();
    let mut text = String::with_capacity(bytes + PROSE.len());
    let mut next_values = 0;
    while text.len() < bytes {
        if text.len() >= next_values && text.len() + values.len() <= bytes {
            text.push_str(&values);
            next_values += VALUES_EVERY;
        } else {
            text.push_str(PROSE);
        }
    }
    text.truncate(bytes);
    text
}

/// Whether `text` contains a value a prompt carries.
pub fn carries_a_value(text: &str) -> bool {
    text.contains(EMAIL) || text.contains(CARD)
}

// The parts of the detectors' corpus. `{n}` is replaced by a counter so that repetitions
// differ.

/// Prose: nothing to find.
const NOTES: &str = "Meeting notes, sprint {n}: the team agreed to move the cache layer behind the feature flag, \
     measure the cold-start time again after the dependency upgrade to 2.{n}.1, and ask the \
     platform group whether the staging cluster can be resized before the release candidate.\n\n";
/// Source code: nothing to find.
const CODE: &str = "fn load_config(path: &Path) -> Result<Config, Error> {\n    let text = std::fs::read_to_string(path)?;\n    \
     let config: Config = serde_yaml::from_str(&text)?;\n    if config.workers == 0 {\n        \
     return Err(Error::Invalid(\"workers must be above 0\".into()));\n    }\n    Ok(config) // build {n}\n}\n\n";
/// A JSON log line: an IP address and a timestamp, a UUID and a git SHA (look-alikes).
const LOG: &str = "{\"ts\":\"2026-03-14T09:26:{n:02}Z\",\"level\":\"warn\",\"client\":\"10.20.{n}.7\",\"request_id\":\
     \"3f2b8c1e-9a4d-4e7b-b6a2-{n:012}\",\"commit\":\"9fceb02d0ae598e95dc970b74767f19372d61af8\",\
     \"msg\":\"upstream slow\",\"latency_ms\":{n}}\n";
/// A stack trace: nothing to find.
const TRACE: &str = "Traceback (most recent call last):\n  File \"/srv/app/worker.py\", line {n}, in run\n    \
     result = handler(payload)\n  File \"/srv/app/handlers.py\", line 88, in handler\n    \
     raise TimeoutError(\"queue drained after 30s\")\nTimeoutError: queue drained after 30s\n\n";
/// Configuration with an AWS key pair (AWS's documentation example).
const CONFIG: &str = "[deploy]\nregion = \"eu-west-1\"\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
     aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nreplicas = {n}\n\n";
/// A support chat: e-mail, phone, date of birth, IBAN; an order number (look-alike).
const CHAT: &str = "Customer chat, ticket #{n}: hi, this is Maria Rossi, you can reach me at maria.rossi{n}@example.org \
     or +1 415 555 0{n:03}; my date of birth is 1984-07-12 and the refund should go to \
     DE89 3704 0044 0532 0130 00. Order number 2026-{n:06}.\n\n";
/// An attachment: base64 and a SHA-256 (look-alikes).
const ATTACHMENT: &str = "attachment (base64): iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg== \
     checksum sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\n";

/// What agents send, mixed: mostly prose, code and tool output, with sensitive values in
/// about one part in three (about two findings per KiB).
pub const MIXED: &[&str] = &[
    NOTES, CODE, LOG, NOTES, CODE, TRACE, CODE, CHAT, NOTES, LOG, CODE, ATTACHMENT, CONFIG,
];
/// The worst case: only the parts with values (about ten findings per KiB).
pub const VALUES_ONLY: &[&str] = &[LOG, CONFIG, CHAT];

/// A corpus of at least `bytes` bytes made of `parts` in turn, cut at a part.
pub fn corpus(parts: &[&str], bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 1024);
    let mut n = 0_usize;
    while text.len() < bytes {
        let part = parts[n % parts.len()];
        let counter = n % 1000;
        let filled = part
            .replace("{n:012}", &format!("{counter:012}"))
            .replace("{n:06}", &format!("{counter:06}"))
            .replace("{n:03}", &format!("{counter:03}"))
            .replace("{n:02}", &format!("{:02}", counter % 60))
            .replace("{n}", &counter.to_string());
        text.push_str(&filled);
        n += 1;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_have_the_size_and_the_values() {
        for bytes in [1 << 10, 32 << 10, 256 << 10] {
            let text = prompt(bytes);
            assert_eq!(text.len(), bytes);
            assert!(text.starts_with(&values_sentence()));
            let copies = text.matches(EMAIL).count();
            assert_eq!(copies, text.matches(CARD).count());
            assert_eq!(copies, bytes.div_ceil(VALUES_EVERY));
        }
    }

    #[test]
    fn the_corpora_are_filled() {
        for parts in [MIXED, VALUES_ONLY] {
            let text = corpus(parts, 1 << 20);
            assert!(text.len() >= 1 << 20);
            assert!(!text.contains("{n"));
        }
    }
}
