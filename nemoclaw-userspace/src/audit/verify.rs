//! Verifying a rotated log: one file alone, or a set of its files as one chain.
//!
//! The files may be given in any order: each says which part of the chain it is (its
//! continuation record's `part`; the file that starts at genesis is part 0), and they are
//! checked in that order. Between two files, the later one's continuation must name the
//! earlier one's last hash and record count; a part number skipped is a missing file.

use std::path::{Path, PathBuf};

use super::chain::{self, ChainError, Part, Start};

/// Why a set of files is not one intact chain.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("{}: {error}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    Chain { path: PathBuf, error: ChainError },
    #[error("{} and {} are both part {part} of the chain", first.display(), second.display())]
    SamePart {
        first: PathBuf,
        second: PathBuf,
        part: u64,
    },
    #[error(
        "gap in the chain: {} is part {earlier} and {} part {later}: {} missing (a rotated \
         file deleted, or not given)",
        earlier_path.display(), later_path.display(), missing(*earlier, *later)
    )]
    Gap {
        earlier_path: PathBuf,
        earlier: u64,
        later_path: PathBuf,
        later: u64,
    },
    #[error(
        "{}: line {line}: chain broken between files: it continues from {found} after \
         {found_records} records, but {} ends at {expected} after {expected_records} records; \
         the end of that file was edited or cut off, or the files are not of one log",
        path.display(), previous.display()
    )]
    Link {
        path: PathBuf,
        line: usize,
        previous: PathBuf,
        expected: String,
        expected_records: usize,
        found: String,
        found_records: u64,
    },
    #[error("no file given")]
    Empty,
}

fn missing(earlier: u64, later: u64) -> String {
    if later == earlier + 2 {
        format!("part {} is", earlier + 1)
    } else {
        format!("parts {} to {} are", earlier + 1, later - 1)
    }
}

/// One file of a verified set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChain {
    pub path: PathBuf,
    pub part: Part,
}

/// A verified set, oldest file first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetReport {
    pub files: Vec<FileChain>,
}

impl SetReport {
    /// Where the oldest file starts: at genesis, or at a hash taken on trust.
    #[must_use]
    pub fn start(&self) -> &Start {
        &self.files[0].part.start
    }

    /// The newest file's last hash: the head of the whole chain.
    #[must_use]
    pub fn head(&self) -> &str {
        &self.files[self.files.len() - 1].part.head
    }

    /// Records in all the files.
    #[must_use]
    pub fn records(&self) -> usize {
        self.files.iter().map(|f| f.part.records).sum()
    }
}

fn read(path: &Path) -> Result<String, SetError> {
    std::fs::read_to_string(path).map_err(|error| SetError::Read {
        path: path.to_owned(),
        error,
    })
}

/// Checks each file's chain, puts the files in chain order and checks every link between
/// them; `expected_head`, if given, must be the newest file's last hash.
pub fn verify_files(paths: &[PathBuf], expected_head: Option<&str>) -> Result<SetReport, SetError> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let part = chain::verify_part(&read(path)?, None).map_err(|error| SetError::Chain {
            path: path.clone(),
            error,
        })?;
        files.push(FileChain {
            path: path.clone(),
            part,
        });
    }
    files.sort_by_key(|f| f.part.number());
    for pair in files.windows(2) {
        let (earlier, later) = (&pair[0], &pair[1]);
        let (a, b) = (earlier.part.number(), later.part.number());
        if a == b {
            return Err(SetError::SamePart {
                first: earlier.path.clone(),
                second: later.path.clone(),
                part: a,
            });
        }
        if b != a + 1 {
            return Err(SetError::Gap {
                earlier_path: earlier.path.clone(),
                earlier: a,
                later_path: later.path.clone(),
                later: b,
            });
        }
        if let Start::Continues {
            line,
            prev,
            previous_records,
            ..
        } = &later.part.start
            && (*prev != earlier.part.head || *previous_records != earlier.part.records as u64)
        {
            return Err(SetError::Link {
                path: later.path.clone(),
                line: *line,
                previous: earlier.path.clone(),
                expected: earlier.part.head.clone(),
                expected_records: earlier.part.records,
                found: prev.clone(),
                found_records: *previous_records,
            });
        }
    }
    let newest = files.last().ok_or(SetError::Empty)?;
    if let Some(head) = expected_head
        && head != newest.part.head
    {
        return Err(SetError::Chain {
            path: newest.path.clone(),
            error: ChainError::Head {
                expected: head.to_owned(),
                found: newest.part.head.clone(),
            },
        });
    }
    Ok(SetReport { files })
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
