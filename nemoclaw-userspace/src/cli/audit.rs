//! `nemoclaw audit verify FILE... [--head HASH]`

use std::path::PathBuf;

use crate::audit::{
    chain::Start,
    verify::{self, SetReport},
};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the log's hash chain; report the first edited, removed or reordered record.
    ///
    /// A rotated log is one chain over its files: give them all, in any order (for
    /// example `audit.jsonl.3 audit.jsonl.2 audit.jsonl.1 audit.jsonl`), to check the
    /// links between them too; a missing file is reported as a gap. A file given alone
    /// that continues a rotated one is checked from its first record, whose link to the
    /// file before is taken on trust (and printed).
    Verify {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The head hash recorded earlier: also detects records cut off the end (of the
        /// newest file).
        #[arg(long)]
        head: Option<String>,
    },
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<i32> {
    match cmd {
        AuditCommand::Verify { files, head } => {
            match verify::verify_files(&files, head.as_deref()) {
                Ok(report) => {
                    print!("{}", describe(&report));
                    Ok(0)
                }
                Err(e) => {
                    println!("{e}");
                    Ok(1)
                }
            }
        }
    }
}

/// What a verified set is: one line per file, and where the chain starts, for a set.
fn describe(report: &SetReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for f in &report.files {
        let _ = writeln!(
            out,
            "{}: {} records, chain intact; head {}",
            f.path.display(),
            f.part.records,
            f.part.head
        );
    }
    if report.files.len() > 1 {
        let _ = writeln!(
            out,
            "{} files, {} records, one chain; head {}",
            report.files.len(),
            report.records(),
            report.head()
        );
    }
    if let Start::Continues {
        prev,
        previous_records,
        part,
        ..
    } = report.start()
    {
        let _ = writeln!(
            out,
            "{}: continues part {} of the log ({previous_records} records ending at {prev}), \
             taken on trust: give the older files to check that link",
            report.files[0].path.display(),
            part - 1
        );
    }
    out
}
