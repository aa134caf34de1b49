//! A thread that drains the deny-event ring buffer into an [`AuditSink`].

use std::{
    os::fd::AsRawFd,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::SystemTime,
};

use aya::maps::{MapData, RingBuf};
use nemoclaw_common::event::DenyEvent;

use super::{AuditRecord, AuditSink};
use crate::policy::compiled::RuleRef;

/// The running reader; [`AuditReader::finish`] drains what is left and stops it.
pub struct AuditReader {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// The sink the reader writes deny records to, shared with whoever writes lifecycle records.
pub type SharedSink = Arc<Mutex<AuditSink>>;

/// For a deny event: the sandbox's name and the rule table of the slot that decided.
pub trait Citations: Send + 'static {
    fn cite(&self, event: &DenyEvent) -> (Option<String>, Arc<Vec<RuleRef>>);
}

/// One sandbox, one rule table (`nemoclaw run` without a daemon).
pub struct OneSandbox {
    pub name: String,
    pub rules: Arc<Vec<RuleRef>>,
}

impl Citations for OneSandbox {
    fn cite(&self, _: &DenyEvent) -> (Option<String>, Arc<Vec<RuleRef>>) {
        (Some(self.name.clone()), Arc::clone(&self.rules))
    }
}

fn drain(ring: &mut RingBuf<MapData>, sink: &SharedSink, citations: &dyn Citations) {
    while let Some(item) = ring.next() {
        if item.len() < size_of::<DenyEvent>() {
            continue;
        }
        // SAFETY: the kernel side writes whole `DenyEvent`s; read unaligned to be safe.
        let event: DenyEvent = unsafe { item.as_ptr().cast::<DenyEvent>().read_unaligned() };
        let (sandbox, rules) = citations.cite(&event);
        let mut record = AuditRecord::from_event(&event, &rules, SystemTime::now());
        record.sandbox = sandbox;
        if let Err(e) = sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(&record)
        {
            eprintln!("nemoclaw: writing audit record: {e}");
        }
    }
}

impl AuditReader {
    #[must_use]
    pub fn spawn(mut ring: RingBuf<MapData>, sink: SharedSink, citations: impl Citations) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let fd = ring.as_raw_fd();
            loop {
                let stopping = flag.load(Ordering::Acquire);
                drain(&mut ring, &sink, &citations);
                if stopping {
                    break;
                }
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; a timeout bounds the wait so `stop` is seen.
                unsafe { libc::poll(&raw mut pfd, 1, 50) };
            }
        });
        Self { stop, handle }
    }

    /// Drains the remaining events and joins the thread.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Release);
        if self.handle.join().is_err() {
            eprintln!("nemoclaw: the audit reader panicked");
        }
    }
}
