//! The tamper-evident chain: every audit line carries `prev`, the SHA-256 of the previous
//! line's bytes, so an edited, removed or reordered record breaks the chain at that point.
//!
//! Limit: cutting records off the end leaves a valid shorter chain. The last hash (the
//! head, printed by `verify`) must be kept elsewhere to detect that; `verify --head` checks it.
//!
//! A rotated log (`super::rotate`) is one chain over several files: every file after the
//! first starts with a continuation record whose `prev` is the last hash of the file before.
//! [`verify_part`] checks one such file, taking its start on trust.

use std::{
    fs,
    io::{self, BufRead},
    path::Path,
};

use sha2::{Digest, Sha256};

/// `prev` of the first record of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hex SHA-256 of one line (without its newline).
#[must_use]
pub fn line_hash(line: &str) -> String {
    sha256_hex(line.as_bytes())
}

/// Hex SHA-256 of some bytes.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The hash the next record must carry as `prev`: that of the file's last line, or
/// [`GENESIS`] for a missing or empty file.
pub fn head_of(path: &Path) -> io::Result<String> {
    match fs::File::open(path) {
        Ok(f) => {
            let mut last = None;
            for line in io::BufReader::new(f).lines() {
                let line = line?;
                if !line.is_empty() {
                    last = Some(line);
                }
            }
            Ok(last.map_or_else(|| GENESIS.to_owned(), |l| line_hash(&l)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(GENESIS.to_owned()),
        Err(e) => Err(e),
    }
}

/// Where and how a chain breaks.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("line {line}: not a JSON object: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("line {line}: has no `prev` hash")]
    MissingPrev { line: usize },
    #[error(
        "line {line}: chain broken: `prev` is {found} but the record before hashes to {expected}; \
         the record before was edited, or records were removed or reordered here"
    )]
    Broken {
        line: usize,
        expected: String,
        found: String,
    },
    #[error(
        "line {line}: a continuation record whose `prev` ({prev}) is not the \
         `previous_head` it names ({previous_head})"
    )]
    Continuation {
        line: usize,
        prev: String,
        previous_head: String,
    },
    #[error(
        "head mismatch: the log ends at {found} but {expected} was expected; records were cut off the end"
    )]
    Head { expected: String, found: String },
}

/// Where a file's chain starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// At [`GENESIS`]: the first file of the log.
    Genesis,
    /// At a continuation record (line `line`): after `previous_records` records of part
    /// `part - 1` ending at `prev`, which this file alone cannot prove.
    Continues {
        line: usize,
        prev: String,
        previous_records: u64,
        part: u64,
    },
}

/// One file's chain, intact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub start: Start,
    /// Records in the file (a continuation record included).
    pub records: usize,
    /// The hash of its last record (where it starts, if it has none).
    pub head: String,
}

impl Part {
    /// Its place in the chain: 0 for the file that starts at [`GENESIS`].
    #[must_use]
    pub fn number(&self) -> u64 {
        match self.start {
            Start::Genesis => 0,
            Start::Continues { part, .. } => part,
        }
    }
}

/// Checks every link of `text`, a whole log from [`GENESIS`]; returns the number of
/// records and the head hash.
pub fn verify(text: &str, expected_head: Option<&str>) -> Result<(usize, String), ChainError> {
    let (count, prev) = links(text, GENESIS.to_owned(), false)?.1;
    check_head(expected_head, prev).map(|head| (count, head))
}

/// Checks every link of `text`, one file of a rotated log: it starts at [`GENESIS`] or at
/// a continuation record (whose `prev` is taken on trust and reported in [`Start`]).
pub fn verify_part(text: &str, expected_head: Option<&str>) -> Result<Part, ChainError> {
    let (start, (records, prev)) = links(text, GENESIS.to_owned(), true)?;
    let head = check_head(expected_head, prev)?;
    Ok(Part {
        start,
        records,
        head,
    })
}

fn check_head(expected: Option<&str>, found: String) -> Result<String, ChainError> {
    match expected {
        Some(head) if head != found => Err(ChainError::Head {
            expected: head.to_owned(),
            found,
        }),
        _ => Ok(found),
    }
}

/// The links of `text` from `prev`; with `continued`, a first record that is a
/// continuation sets `prev` itself.
fn links(
    text: &str,
    mut prev: String,
    continued: bool,
) -> Result<(Start, (usize, String)), ChainError> {
    let mut start = Start::Genesis;
    let mut count = 0;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let n = i + 1;
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| ChainError::Malformed {
                line: n,
                reason: e.to_string(),
            })?;
        let found = value
            .get("prev")
            .and_then(serde_json::Value::as_str)
            .ok_or(ChainError::MissingPrev { line: n })?;
        let continuation = (continued && count == 0)
            .then(|| super::rotate::Continuation::of(&value))
            .flatten();
        if let Some(c) = continuation {
            if c.previous_head != found {
                return Err(ChainError::Continuation {
                    line: n,
                    prev: found.to_owned(),
                    previous_head: c.previous_head,
                });
            }
            found.clone_into(&mut prev);
            start = Start::Continues {
                line: n,
                prev: found.to_owned(),
                previous_records: c.previous_records,
                part: c.part,
            };
        }
        if found != prev {
            return Err(ChainError::Broken {
                line: n,
                expected: prev,
                found: found.to_owned(),
            });
        }
        prev = line_hash(line);
        count += 1;
    }
    Ok((start, (count, prev)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(records: &[&str]) -> Vec<String> {
        let mut prev = GENESIS.to_owned();
        records
            .iter()
            .map(|r| {
                let line = format!("{{\"r\":{r:?},\"prev\":\"{prev}\"}}");
                prev = line_hash(&line);
                line
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let lines = chain(&["a", "b", "c"]);
        let (n, head) = verify(&lines.join("\n"), None).unwrap();
        assert_eq!(n, 3);
        assert_eq!(head, line_hash(&lines[2]));
        assert!(verify(&lines.join("\n"), Some(&head)).is_ok());
        assert_eq!(verify("", None).unwrap(), (0, GENESIS.to_owned()));
    }

    #[test]
    fn edit_is_found_at_the_next_record() {
        let mut lines = chain(&["a", "b", "c"]);
        lines[1] = lines[1].replace("\"b\"", "\"B\"");
        assert!(matches!(
            verify(&lines.join("\n"), None),
            Err(ChainError::Broken { line: 3, .. })
        ));
    }

    #[test]
    fn removal_and_reordering_are_found() {
        let lines = chain(&["a", "b", "c", "d"]);
        let removed = [&lines[0], &lines[2], &lines[3]]
            .map(String::as_str)
            .join("\n");
        assert!(matches!(
            verify(&removed, None),
            Err(ChainError::Broken { line: 2, .. })
        ));
        let swapped = [&lines[0], &lines[2], &lines[1], &lines[3]]
            .map(String::as_str)
            .join("\n");
        assert!(matches!(
            verify(&swapped, None),
            Err(ChainError::Broken { line: 2, .. })
        ));
    }

    #[test]
    fn truncation_needs_the_head() {
        let lines = chain(&["a", "b", "c"]);
        let (_, head) = verify(&lines.join("\n"), None).unwrap();
        let cut = lines[..2].join("\n");
        assert!(verify(&cut, None).is_ok());
        assert!(matches!(
            verify(&cut, Some(&head)),
            Err(ChainError::Head { .. })
        ));
    }

    #[test]
    fn a_part_starts_at_genesis_or_a_continuation() {
        let lines = chain(&["a", "b"]);
        let part = verify_part(&lines.join("\n"), None).unwrap();
        assert_eq!(
            (part.number(), part.records, part.start),
            (0, 2, Start::Genesis)
        );
        let head = line_hash(&lines[1]);
        let c = serde_json::to_value(crate::audit::rotate::Continuation::new(&head, 2, 1)).unwrap();
        let mut first = c.clone();
        first["prev"] = head.clone().into();
        let next = format!(
            "{{\"r\":\"c\",\"prev\":\"{}\"}}",
            line_hash(&first.to_string())
        );
        let text = format!("{first}\n{next}");
        let part = verify_part(&text, None).unwrap();
        assert_eq!(part.number(), 1);
        assert_eq!(part.head, line_hash(&next));
        assert!(
            matches!(part.start, Start::Continues { line: 1, ref prev, previous_records: 2, part: 1 } if *prev == head)
        );
        // A whole-log check does not take the continuation's start.
        assert!(matches!(
            verify(&text, None),
            Err(ChainError::Broken { line: 1, .. })
        ));
        // Nor does a part check take a start that disagrees with the record's words.
        first["previous_head"] = GENESIS.into();
        assert!(matches!(
            verify_part(&first.to_string(), None),
            Err(ChainError::Continuation { line: 1, .. })
        ));
        // A first record that is no continuation must start at genesis.
        assert!(matches!(
            verify_part(&next, None),
            Err(ChainError::Broken { line: 1, .. })
        ));
    }

    #[test]
    fn garbage_and_missing_prev_are_errors() {
        assert!(matches!(
            verify("not json", None),
            Err(ChainError::Malformed { line: 1, .. })
        ));
        assert!(matches!(
            verify("{\"a\":1}", None),
            Err(ChainError::MissingPrev { line: 1 })
        ));
    }
}
