//! Where audit records go: a JSON-lines file and/or stderr.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::Path,
};

use super::AuditRecord;

/// Writes each record as one JSON line, flushed at once (a crash loses nothing written).
pub struct AuditSink {
    file: Option<File>,
    stderr: bool,
}

impl AuditSink {
    /// Appends to `file` (created 0600 if missing) and/or writes to stderr.
    pub fn open(file: Option<&Path>, stderr: bool) -> io::Result<Self> {
        let file = file
            .map(|p| {
                use std::os::unix::fs::OpenOptionsExt;
                OpenOptions::new().create(true).append(true).mode(0o600).open(p)
            })
            .transpose()?;
        Ok(Self { file, stderr })
    }

    pub fn write(&mut self, record: &AuditRecord) -> io::Result<()> {
        let mut line = serde_json::to_string(record).map_err(io::Error::other)?;
        line.push('\n');
        if let Some(f) = &mut self.file {
            f.write_all(line.as_bytes())?;
        }
        if self.stderr {
            io::stderr().write_all(format!("nemoclaw audit: {line}").as_bytes())?;
        }
        Ok(())
    }
}
