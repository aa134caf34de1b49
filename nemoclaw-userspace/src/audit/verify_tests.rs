//! Rotation by the sink and verification of the rotated set.

use std::{fs, path::Path};

use serde_json::json;

use super::*;
use crate::audit::{
    rotate::{self, rotated_path},
    sink::{AuditSink, SinkOptions},
};

fn options(rotate_size: u64, keep: u32) -> SinkOptions {
    SinkOptions {
        rotate_size,
        keep,
        ocsf: None,
    }
}

/// Writes records `from..to`, each about 110 bytes.
fn write(sink: &mut AuditSink, from: u64, to: u64) {
    for n in from..to {
        sink.write_record(&json!({"time": "2026-01-01T00:00:00.000Z", "n": n}))
            .unwrap();
    }
}

/// `log` and its rotated files, newest first (as a user lists them).
fn set(log: &Path, keep: u32) -> Vec<PathBuf> {
    let mut files = vec![log.to_owned()];
    files.extend(
        (1..=keep)
            .map(|n| rotated_path(log, n))
            .filter(|p| p.exists()),
    );
    files
}

/// The `n` of every record in `files`, in chain order.
fn numbers(report: &SetReport) -> Vec<u64> {
    report
        .files
        .iter()
        .flat_map(|f| {
            fs::read_to_string(&f.path)
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["n"].as_u64())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn rotates_at_the_size_keeps_n_and_verifies_as_a_set() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut sink = AuditSink::open_with(Some(&log), false, &options(1000, 3)).unwrap();
    write(&mut sink, 0, 60);
    let files = set(&log, 10);
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(!rotated_path(&log, 4).exists());
    for f in &files {
        let size = fs::metadata(f).unwrap().len();
        assert!(size <= 1000 && size > 500, "{}: {size} bytes", f.display());
    }
    // Any order: newest first as given here, put in chain order by the files' parts.
    let report = verify_files(&files, None).unwrap();
    let parts: Vec<u64> = report.files.iter().map(|f| f.part.number()).collect();
    let newest = parts[3];
    assert_eq!(parts, [newest - 3, newest - 2, newest - 1, newest]);
    assert_eq!(report.files[3].path, log);
    // The oldest part kept does not start at genesis: its start is taken on trust.
    assert!(matches!(report.start(), Start::Continues { line: 1, .. }));
    // Records run on without a hole to the last one written.
    let ns = numbers(&report);
    assert_eq!(ns.last(), Some(&59));
    assert!(ns.windows(2).all(|w| w[1] == w[0] + 1), "{ns:?}");
    // The head is the live file's last line, and checks as such.
    let head = chain::head_of(&log).unwrap();
    assert_eq!(report.head(), head);
    assert!(verify_files(&files, Some(&head)).is_ok());
    assert!(verify_files(&files[1..], Some(&head)).is_err());
    // One file alone verifies, from its continuation.
    let alone = verify_files(&files[1..2], None).unwrap();
    assert_eq!(alone.files[0].part.number(), newest - 1);
}

#[test]
fn a_log_that_never_rotated_is_part_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut sink = AuditSink::open(Some(&log), false).unwrap();
    write(&mut sink, 0, 50);
    assert!(!rotated_path(&log, 1).exists());
    let report = verify_files(std::slice::from_ref(&log), None).unwrap();
    assert_eq!((report.start(), report.records()), (&Start::Genesis, 50));
    // Opened with a size it already exceeds, the next record rotates it first: part 1
    // starts after the 50 records of part 0.
    drop(sink);
    let mut sink = AuditSink::open_with(Some(&log), false, &options(5000, 2)).unwrap();
    write(&mut sink, 50, 52);
    let report = verify_files(&set(&log, 2), None).unwrap();
    assert_eq!(report.start(), &Start::Genesis);
    assert!(matches!(
        report.files[1].part.start,
        Start::Continues {
            previous_records: 50,
            part: 1,
            ..
        }
    ));
}

#[test]
fn tampering_in_a_rotated_file_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut sink = AuditSink::open_with(Some(&log), false, &options(1000, 5)).unwrap();
    write(&mut sink, 0, 40);
    let files = set(&log, 5);
    let second = rotated_path(&log, 2);
    let original = fs::read_to_string(&second).unwrap();

    // An edited record inside a file: that file, the line after it.
    let lines: Vec<&str> = original.lines().collect();
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    edited[2] = edited[2].replacen("\"n\":", "\"n\":1", 1);
    fs::write(&second, edited.join("\n") + "\n").unwrap();
    let err = verify_files(&files, None).unwrap_err();
    assert!(
        matches!(&err, SetError::Chain { path, error: ChainError::Broken { line: 4, .. } } if *path == second),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{}: line 4", second.display()))
    );

    // The last record of a file cut off: the next file's first line does not link.
    fs::write(&second, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let err = verify_files(&files, None).unwrap_err();
    let first = rotated_path(&log, 1);
    assert!(
        matches!(&err, SetError::Link { path, line: 1, previous, .. } if *path == first && *previous == second),
        "{err}"
    );
    assert!(
        err.to_string().contains("chain broken between files"),
        "{err}"
    );
}

#[test]
fn a_missing_middle_file_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut sink = AuditSink::open_with(Some(&log), false, &options(1000, 5)).unwrap();
    write(&mut sink, 0, 40);
    let mut files = set(&log, 5);
    let gone = files.remove(2);
    fs::remove_file(&gone).unwrap();
    let err = verify_files(&files, None).unwrap_err();
    assert!(matches!(err, SetError::Gap { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("gap in the chain") && text.contains("missing"),
        "{text}"
    );
    assert!(
        text.contains(&rotated_path(&log, 1).display().to_string()),
        "{text}"
    );
    assert!(
        text.contains(&rotated_path(&log, 3).display().to_string()),
        "{text}"
    );
    // The same file twice is no chain either.
    let twice = [log.clone(), log.clone()];
    assert!(matches!(
        verify_files(&twice, None),
        Err(SetError::SamePart { .. })
    ));
    assert!(matches!(verify_files(&[], None), Err(SetError::Empty)));
}

#[test]
fn reopening_resumes_across_a_rotation_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let opts = options(1000, 10);
    let mut sink = AuditSink::open_with(Some(&log), false, &opts).unwrap();
    write(&mut sink, 0, 12);
    drop(sink);
    assert!(rotated_path(&log, 1).exists());
    // A daemon restart: the live file, begun by a continuation, is carried on.
    let mut sink = AuditSink::open_with(Some(&log), false, &opts).unwrap();
    write(&mut sink, 12, 30);
    drop(sink);
    // A crash between a rotation's rename and its first write: the empty live file
    // continues the rotated one.
    rotate::shift(&log, opts.keep).unwrap();
    let mut sink = AuditSink::open_with(Some(&log), false, &opts).unwrap();
    write(&mut sink, 30, 32);
    drop(sink);
    let files = set(&log, 10);
    let report = verify_files(&files, None).unwrap();
    assert_eq!(report.start(), &Start::Genesis);
    assert_eq!(numbers(&report), (0..32).collect::<Vec<_>>());
    let continuations = report.files.len() - 1;
    assert_eq!(report.records(), 32 + continuations);
    assert!(report.files.len() >= 5, "{}", report.files.len());
}
