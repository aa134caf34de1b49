//! The tamper-evident chain: every audit line carries `prev`, the SHA-256 of the previous
//! line's bytes, so an edited, removed or reordered record breaks the chain at that point.
//!
//! Limit: cutting records off the end leaves a valid shorter chain. The last hash (the
//! head, printed by `verify`) must be kept elsewhere to detect that; `verify --head` checks it.

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
        "head mismatch: the log ends at {found} but {expected} was expected; records were cut off the end"
    )]
    Head { expected: String, found: String },
}

/// Checks every link of `text`; returns the number of records and the head hash.
pub fn verify(text: &str, expected_head: Option<&str>) -> Result<(usize, String), ChainError> {
    let mut prev = GENESIS.to_owned();
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
    if let Some(head) = expected_head
        && head != prev
    {
        return Err(ChainError::Head {
            expected: head.to_owned(),
            found: prev,
        });
    }
    Ok((count, prev))
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
