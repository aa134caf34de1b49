//! Size-based rotation of the chained log, keeping the chain verifiable across files.
//!
//! When the live file (`audit.jsonl`) would grow past the size, it is renamed
//! `audit.jsonl.1` (older ones shift to `.2` … `.N`; the oldest beyond `keep` is deleted)
//! and a fresh file starts with a [`Continuation`] record: its `prev` is the last hash of
//! the file before, so the chain runs on unbroken, and it says so in words (that hash, that
//! file's record count, and the part number), which lets one file be checked alone (its
//! start taken on trust) and a set be put in order and checked link by link
//! (`audit::verify`).

use std::{
    fs,
    io::{self, BufRead},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::chain::{self, GENESIS};

/// The `event` of a [`Continuation`] record.
pub const ROTATED_EVENT: &str = "log_rotated";

/// The first record of every file after the first: where the chain continues from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continuation {
    /// Always [`ROTATED_EVENT`].
    pub event: String,
    pub time: String,
    /// The hash of the previous file's last record (this record's `prev`).
    pub previous_head: String,
    /// Records in the previous file.
    pub previous_records: u64,
    /// This file's place in the chain: 0 for the file that starts at [`GENESIS`], one more
    /// with each rotation.
    pub part: u64,
}

impl Continuation {
    /// The record that starts part `part`, after a file of `records` ending at `head`.
    #[must_use]
    pub fn new(head: &str, records: u64, part: u64) -> Self {
        Self {
            event: ROTATED_EVENT.to_owned(),
            time: super::lifecycle::now(),
            previous_head: head.to_owned(),
            previous_records: records,
            part,
        }
    }

    /// The continuation record a parsed line is, if it is one.
    #[must_use]
    pub fn of(value: &serde_json::Value) -> Option<Self> {
        if value.get("event").and_then(serde_json::Value::as_str) != Some(ROTATED_EVENT) {
            return None;
        }
        serde_json::from_value(value.clone()).ok()
    }
}

/// What a live file holds, read when a sink opens it, so writing resumes where it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveFile {
    /// The hash the next record must carry as `prev`.
    pub head: String,
    /// Records in the file (the continuation record included).
    pub records: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its part number (see [`Continuation::part`]).
    pub part: u64,
    /// Whether its first record is a [`Continuation`].
    pub continued: bool,
}

impl LiveFile {
    /// Reads `path`: a missing file is an empty part 0 starting at [`GENESIS`].
    pub fn scan(path: &Path) -> io::Result<Self> {
        let mut live = Self {
            head: GENESIS.to_owned(),
            records: 0,
            size: 0,
            part: 0,
            continued: false,
        };
        let file = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(live),
            Err(e) => return Err(e),
        };
        live.size = file.metadata()?.len();
        // Only the last record's hash is the head: the others are counted, not hashed, so
        // opening a long log costs a read, not a hash of every line.
        let mut reader = io::BufReader::new(file);
        let (mut current, mut last) = (Vec::new(), Vec::new());
        loop {
            current.clear();
            if reader.read_until(b'\n', &mut current)? == 0 {
                break;
            }
            let text = line_text(&current)?;
            if text.is_empty() {
                continue;
            }
            if live.records == 0
                && let Some(c) = serde_json::from_str(text)
                    .ok()
                    .as_ref()
                    .and_then(Continuation::of)
            {
                live.part = c.part;
                live.continued = true;
            }
            live.records += 1;
            std::mem::swap(&mut current, &mut last);
        }
        if live.records > 0 {
            live.head = chain::line_hash(line_text(&last)?);
        }
        Ok(live)
    }

    /// Whether a line of `len` bytes (newline included) would take the file past `limit`
    /// (0: never), and rotating would help: the file holds a record besides its
    /// continuation.
    #[must_use]
    pub fn full(&self, len: u64, limit: u64) -> bool {
        limit != 0 && self.size + len > limit && self.records > u64::from(self.continued)
    }
}

/// One line as [`BufRead::lines`] gives it: without its `\n` or `\r\n`, and UTF-8 or an
/// `InvalidData` error.
fn line_text(line: &[u8]) -> io::Result<&str> {
    let line = line
        .strip_suffix(b"\n")
        .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l));
    std::str::from_utf8(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// `path` with `.n` appended: the `n`th rotated file (`audit.jsonl.1` is the newest).
#[must_use]
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Renames `path` to `path.1` after shifting `path.1` … `path.(keep-1)` up by one; the
/// file that would become `path.(keep+1)` (and any left beyond it by a larger `keep`
/// before) is deleted. With `keep` 0 the live file is deleted.
pub fn shift(path: &Path, keep: u32) -> io::Result<()> {
    let mut n = keep.max(1);
    remove_if_present(&rotated_path(path, n))?;
    loop {
        n += 1;
        let beyond = rotated_path(path, n);
        if !beyond.exists() {
            break;
        }
        remove_if_present(&beyond)?;
    }
    if keep == 0 {
        return remove_if_present(path);
    }
    for n in (1..keep).rev() {
        let from = rotated_path(path, n);
        if from.exists() {
            fs::rename(&from, rotated_path(path, n + 1))?;
        }
    }
    fs::rename(path, rotated_path(path, 1))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn shift_keeps_n_newest() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("a.log");
        for i in 0..5 {
            fs::write(&live, format!("{i}")).unwrap();
            shift(&live, 3).unwrap();
        }
        assert_eq!(names(dir.path()), ["a.log.1", "a.log.2", "a.log.3"]);
        assert_eq!(fs::read_to_string(rotated_path(&live, 1)).unwrap(), "4");
        assert_eq!(fs::read_to_string(rotated_path(&live, 3)).unwrap(), "2");
        // A smaller `keep` drops the files beyond it.
        fs::write(&live, "5").unwrap();
        shift(&live, 1).unwrap();
        assert_eq!(names(dir.path()), ["a.log.1"]);
        assert_eq!(fs::read_to_string(rotated_path(&live, 1)).unwrap(), "5");
        fs::write(&live, "6").unwrap();
        shift(&live, 0).unwrap();
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn scan_reads_part_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("a.log");
        assert_eq!(LiveFile::scan(&live).unwrap().head, GENESIS);
        let c = serde_json::to_value(Continuation::new("ab", 7, 4)).unwrap();
        fs::write(&live, format!("{c}\n{{\"x\":1}}\n")).unwrap();
        let s = LiveFile::scan(&live).unwrap();
        assert_eq!((s.part, s.records, s.continued), (4, 2, true));
        assert_eq!(s.head, chain::line_hash("{\"x\":1}"));
        assert!(s.full(1, s.size));
        assert!(!s.full(1, 0));
    }

    #[test]
    fn scan_reads_lines_as_lines_does() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("a.log");
        // Empty lines are skipped; `\r\n` ends a line; the last line may lack its `\n`.
        fs::write(&live, "{\"x\":1}\n\n{\"x\":2}\r\n{\"x\":3}").unwrap();
        let s = LiveFile::scan(&live).unwrap();
        assert_eq!((s.records, s.part, s.continued), (3, 0, false));
        assert_eq!(s.head, chain::line_hash("{\"x\":3}"));
        fs::write(&live, "{\"x\":1}\n{\"x\":2}\r\n\n").unwrap();
        let s = LiveFile::scan(&live).unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(s.head, chain::line_hash("{\"x\":2}"));
        // A line that is not UTF-8, anywhere, is an error, not a record.
        fs::write(&live, b"{\"x\":1}\n\xff\n{\"x\":3}\n").unwrap();
        let e = LiveFile::scan(&live).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
