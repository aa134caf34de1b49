//! Where audit records go: a hash-chained JSON-lines file (rotated by size, see
//! [`super::rotate`]), an OCSF JSON-lines file beside it (see [`super::ocsf`]), and/or
//! stderr.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use serde::Serialize;

use super::{
    AuditRecord, chain, ocsf,
    rotate::{self, Continuation, LiveFile},
};

/// How the sink writes its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkOptions {
    /// Rotate a file before a line would take it past this many bytes; 0: never.
    pub rotate_size: u64,
    /// Rotated files kept (`audit.jsonl.1` … `.N`); the OCSF file's the same.
    pub keep: u32,
    /// Where to write each record also as OCSF events (one JSON line each), if anywhere.
    pub ocsf: Option<PathBuf>,
}

impl Default for SinkOptions {
    /// No rotation, no OCSF output (`keep` 10 applies once a size is set).
    fn default() -> Self {
        Self {
            rotate_size: 0,
            keep: 10,
            ocsf: None,
        }
    }
}

/// A record with its link to the previous line.
#[derive(Serialize)]
struct Chained<'a, T: Serialize> {
    #[serde(flatten)]
    record: &'a T,
    prev: &'a str,
}

fn chained<T: Serialize>(record: &T, prev: &str) -> io::Result<String> {
    serde_json::to_string(&Chained { record, prev }).map_err(io::Error::other)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The chained live file and where its chain stands.
struct Live {
    path: PathBuf,
    file: File,
    state: LiveFile,
}

impl Live {
    /// Opens `path` to continue its chain. A missing or empty live file next to a rotated
    /// one (a crash between the rename and the first write of a rotation) continues the
    /// rotated file's chain.
    fn open(path: &Path) -> io::Result<Self> {
        let state = LiveFile::scan(path)?;
        let previous = rotate::rotated_path(path, 1);
        let mut live = Self {
            path: path.to_owned(),
            file: open_append(path)?,
            state,
        };
        if live.state.records == 0 && previous.exists() {
            let before = LiveFile::scan(&previous)?;
            live.start_part(&before)?;
        }
        Ok(live)
    }

    fn append(&mut self, line: &str) -> io::Result<()> {
        self.file.write_all(format!("{line}\n").as_bytes())?;
        self.state.head = chain::line_hash(line);
        self.state.records += 1;
        self.state.size += line.len() as u64 + 1;
        Ok(())
    }

    /// Writes the continuation record that starts the part after `before`.
    fn start_part(&mut self, before: &LiveFile) -> io::Result<()> {
        self.state = LiveFile {
            head: before.head.clone(),
            records: 0,
            size: 0,
            part: before.part + 1,
            continued: true,
        };
        let record = Continuation::new(&before.head, before.records, before.part + 1);
        let line = chained(&record, &before.head)?;
        self.append(&line)
    }

    /// Moves the live file aside and starts the next part.
    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        let before = self.state.clone();
        rotate::shift(&self.path, keep)?;
        self.file = open_append(&self.path)?;
        self.start_part(&before)
    }
}

/// The OCSF file: plain lines, rotated like the live file, no chain.
struct OcsfOut {
    path: PathBuf,
    file: File,
    size: u64,
}

impl OcsfOut {
    fn open(path: &Path) -> io::Result<Self> {
        let file = open_append(path)?;
        Ok(Self {
            path: path.to_owned(),
            size: file.metadata()?.len(),
            file,
        })
    }

    fn append(&mut self, line: &str, options: &SinkOptions) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if options.rotate_size != 0 && self.size > 0 && self.size + len > options.rotate_size {
            rotate::shift(&self.path, options.keep)?;
            *self = Self::open(&self.path)?;
        }
        self.file.write_all(format!("{line}\n").as_bytes())?;
        self.size += len;
        Ok(())
    }
}

/// Writes each record as one JSON line, flushed at once (a crash loses nothing written).
pub struct AuditSink {
    file: Option<Live>,
    ocsf: Option<OcsfOut>,
    options: SinkOptions,
    stderr: bool,
    /// Receivers of every line written (the daemon's event streams).
    subscribers: Vec<UnboundedSender<String>>,
}

impl AuditSink {
    /// Appends to `file` (created 0600 if missing), continuing its hash chain, and/or
    /// writes to stderr; no rotation, no OCSF output.
    pub fn open(file: Option<&Path>, stderr: bool) -> io::Result<Self> {
        Self::open_with(file, stderr, &SinkOptions::default())
    }

    /// [`AuditSink::open`], with rotation and OCSF output as `options` say.
    pub fn open_with(file: Option<&Path>, stderr: bool, options: &SinkOptions) -> io::Result<Self> {
        Ok(Self {
            file: file.map(Live::open).transpose()?,
            ocsf: options.ocsf.as_deref().map(OcsfOut::open).transpose()?,
            options: options.clone(),
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

    /// Writes any record (deny, lifecycle) as one chained line, rotating the file first if
    /// the line would take it past the size; then its OCSF events, if asked for.
    pub fn write_record<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        if let Some(live) = &mut self.file {
            let mut line = chained(record, &live.state.head)?;
            if live
                .state
                .full(line.len() as u64 + 1, self.options.rotate_size)
            {
                live.rotate(self.options.keep)?;
                line = chained(record, &live.state.head)?;
            }
            live.append(&line)?;
        }
        if self.stderr || !self.subscribers.is_empty() {
            let line = serde_json::to_string(record).map_err(io::Error::other)?;
            self.subscribers.retain(|s| s.send(line.clone()).is_ok());
            if self.stderr {
                io::stderr().write_all(format!("nemoclaw audit: {line}\n").as_bytes())?;
            }
        }
        if let Some(out) = &mut self.ocsf {
            let value = serde_json::to_value(record).map_err(io::Error::other)?;
            for event in ocsf::events(&value) {
                out.append(&event.to_string(), &self.options)?;
            }
        }
        Ok(())
    }
}
