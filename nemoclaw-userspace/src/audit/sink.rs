//! Where audit records go: a hash-chained JSON-lines file and/or stderr.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use serde::Serialize;

use super::{AuditRecord, chain};

/// A record with its link to the previous line.
#[derive(Serialize)]
struct Chained<'a, T: Serialize> {
    #[serde(flatten)]
    record: &'a T,
    prev: &'a str,
}

/// Writes each record as one JSON line, flushed at once (a crash loses nothing written).
pub struct AuditSink {
    file: Option<(File, String)>,
    stderr: bool,
    /// Receivers of every line written (the daemon's event streams).
    subscribers: Vec<UnboundedSender<String>>,
}

impl AuditSink {
    /// Appends to `file` (created 0600 if missing), continuing its hash chain, and/or
    /// writes to stderr.
    pub fn open(file: Option<&Path>, stderr: bool) -> io::Result<Self> {
        let file = file
            .map(|p| {
                let head = chain::head_of(p)?;
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)?;
                Ok::<_, io::Error>((f, head))
            })
            .transpose()?;
        Ok(Self {
            file,
            stderr,
            subscribers: Vec::new(),
        })
    }

    /// Every record written from now on, as its JSON line (without the chain link).
    pub fn subscribe(&mut self) -> UnboundedReceiver<String> {
        let (tx, rx) = unbounded_channel();
        self.subscribers.push(tx);
        rx
    }

    /// Writes a deny record.
    pub fn write(&mut self, record: &AuditRecord) -> io::Result<()> {
        self.write_record(record)
    }

    /// Writes any record (deny, lifecycle) as one chained line.
    pub fn write_record<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        if let Some((f, head)) = &mut self.file {
            let line =
                serde_json::to_string(&Chained { record, prev: head }).map_err(io::Error::other)?;
            f.write_all(format!("{line}\n").as_bytes())?;
            *head = chain::line_hash(&line);
        }
        if self.stderr || !self.subscribers.is_empty() {
            let line = serde_json::to_string(record).map_err(io::Error::other)?;
            self.subscribers.retain(|s| s.send(line.clone()).is_ok());
            if self.stderr {
                io::stderr().write_all(format!("nemoclaw audit: {line}\n").as_bytes())?;
            }
        }
        Ok(())
    }
}
