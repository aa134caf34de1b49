//! A tokio task that drains the deny-event ring buffer into an [`AuditSink`], at most
//! [`RECORDS_PER_SECOND`] deny records per sandbox and second (the rest summarised).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use aya::maps::{MapData, RingBuf};
use nemoclaw_common::event::DenyEvent;
use tokio::{
    io::{Interest, unix::AsyncFd},
    runtime::Handle,
    sync::Notify,
    task::JoinHandle,
};

use super::{AuditRecord, AuditSink, lifecycle::Lifecycle};
use crate::policy::compiled::RuleRef;

/// The running reader; [`AuditReader::finish`] drains what is left and stops it.
pub struct AuditReader {
    stop: Arc<Notify>,
    task: JoinHandle<()>,
    drainer: Drain,
}

/// The ring buffer and what draining it needs, shared by the reader's task and [`Drain`]
/// handles: whoever drains writes the records, in the ring buffer's order.
struct Drainer {
    ring: RingBuf<MapData>,
    sink: SharedSink,
    citations: Box<dyn Citations>,
    limiter: Limiter,
}

/// Drains the ring buffer now, from any thread ([`AuditReader::drain_handle`]): the daemon
/// does before it writes a sandbox's stop record, so that every deny record of the
/// sandbox comes before it (a follower stops at the stop record).
#[derive(Clone)]
pub struct Drain(Arc<Mutex<Drainer>>);

impl Drain {
    /// Writes the records of every event waiting in the ring buffer.
    pub fn now(&self) {
        self.drain_then(|_| {});
    }

    /// Drains, then writes the limiter's summaries of the windows that ended (all with
    /// `all`), under one lock.
    fn now_and_summaries(&self, all: bool) {
        self.drain_then(|d| {
            for summary in d.limiter.summaries(Instant::now(), all) {
                write(&d.sink, &summary);
            }
        });
    }

    fn drain_then(&self, after: impl FnOnce(&mut Drainer)) {
        let mut d = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let d = &mut *d;
        drain(&mut d.ring, &d.sink, d.citations.as_ref(), &mut d.limiter);
        after(d);
    }
}

/// The ring buffer's descriptor, for readiness only: the ring buffer itself is in the
/// [`Drainer`], which the reader's task keeps alive for as long as this is registered.
struct RingFd(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for RingFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// How often the reader closes the limiter's windows when no event wakes it.
const SUMMARY_TICK: Duration = Duration::from_millis(250);

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

/// Deny records written per sandbox cgroup and second; beyond it, denials are counted and
/// summarised (a flooding sandbox cannot fill the disk or starve the others' records).
pub const RECORDS_PER_SECOND: u32 = 1000;

/// Per-cgroup rate limit of deny records.
#[derive(Default)]
struct Limiter(std::collections::HashMap<u64, Window>);

struct Window {
    start: Instant,
    written: u32,
    suppressed: u64,
    sandbox: Option<String>,
}

impl Limiter {
    /// Whether a record for `cgroup` may be written now.
    fn admit(&mut self, cgroup: u64, sandbox: Option<&String>, now: Instant) -> bool {
        let w = self.0.entry(cgroup).or_insert_with(|| Window {
            start: now,
            written: 0,
            suppressed: 0,
            sandbox: sandbox.cloned(),
        });
        if now.duration_since(w.start) >= Duration::from_secs(1) && w.suppressed == 0 {
            w.start = now;
            w.written = 0;
        }
        if w.written < RECORDS_PER_SECOND && w.suppressed == 0 {
            w.written += 1;
            true
        } else {
            w.suppressed += 1;
            false
        }
    }

    /// Summaries of the windows that ended (all of them with `all`), which are reset.
    fn summaries(&mut self, now: Instant, all: bool) -> Vec<Lifecycle> {
        let mut out = Vec::new();
        for (cgroup, w) in &mut self.0 {
            if w.suppressed > 0 && (all || now.duration_since(w.start) >= Duration::from_secs(1)) {
                out.push(Lifecycle::DenialsSuppressed {
                    time: super::lifecycle::now(),
                    sandbox: w.sandbox.clone(),
                    cgroup: *cgroup,
                    suppressed: w.suppressed,
                });
                w.start = now;
                w.written = 0;
                w.suppressed = 0;
            }
        }
        out
    }
}

fn write<T: serde::Serialize>(sink: &SharedSink, record: &T) {
    if let Err(e) = sink
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .write_record(record)
    {
        eprintln!("nemoclaw: writing audit record: {e}");
    }
}

fn drain(
    ring: &mut RingBuf<MapData>,
    sink: &SharedSink,
    citations: &dyn Citations,
    limiter: &mut Limiter,
) {
    while let Some(item) = ring.next() {
        if item.len() < size_of::<DenyEvent>() {
            continue;
        }
        // SAFETY: the kernel side writes whole `DenyEvent`s; read unaligned to be safe.
        let event: DenyEvent = unsafe { item.as_ptr().cast::<DenyEvent>().read_unaligned() };
        drop(item);
        let (sandbox, rules) = citations.cite(&event);
        if !limiter.admit(event.cgroup_id, sandbox.as_ref(), Instant::now()) {
            continue;
        }
        let mut record = AuditRecord::from_event(&event, &rules, SystemTime::now());
        record.sandbox = sandbox;
        write(sink, &record);
    }
}

/// Drops the events waiting in `ring` (the self-test's, before a standalone run's reader
/// starts), returning how many there were.
pub fn discard_pending(ring: &mut RingBuf<MapData>) -> usize {
    let mut n = 0;
    while ring.next().is_some() {
        n += 1;
    }
    n
}

impl AuditReader {
    /// Starts draining `ring` on `runtime`: woken through [`AsyncFd`] when the kernel
    /// submits an event, and every quarter second to close the rate limiter's windows.
    pub fn spawn(
        runtime: &Handle,
        ring: RingBuf<MapData>,
        sink: SharedSink,
        citations: impl Citations,
    ) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd as _;
        let stop = Arc::new(Notify::new());
        let stopping = Arc::clone(&stop);
        let fd = RingFd(ring.as_raw_fd());
        let drainer = Drain(Arc::new(Mutex::new(Drainer {
            ring,
            sink,
            citations: Box::new(citations),
            limiter: Limiter::default(),
        })));
        let readiness = {
            let _entered = runtime.enter();
            // SAFETY: the descriptor is the ring buffer's, open and unchanged for as long as
            // the `AsyncFd` is registered: the task drops it before its handle on the
            // ring buffer, and the reader keeps another.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?
        };
        let ours = drainer.clone();
        let task = runtime.spawn(async move {
            let mut tick = tokio::time::interval(SUMMARY_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let finish = tokio::select! {
                    ready = readiness.readable() => {
                        if let Ok(mut guard) = ready {
                            ours.now();
                            guard.clear_ready();
                        }
                        false
                    }
                    _ = tick.tick() => false,
                    () = stopping.notified() => true,
                };
                // Also on a tick: an event whose wake-up raced the last drain is not left.
                ours.now_and_summaries(finish);
                if finish {
                    break;
                }
            }
            // Deregistered before the ring buffer (and its descriptor) can be dropped.
            drop(readiness);
            drop(ours);
        });
        Ok(Self {
            stop,
            task,
            drainer,
        })
    }

    /// A handle that drains the ring buffer now, from any thread.
    #[must_use]
    pub fn drain_handle(&self) -> Drain {
        self.drainer.clone()
    }

    /// Drains the remaining events, writes the last summaries and waits for the task.
    pub async fn finish(self) {
        self.stop.notify_one();
        if self.task.await.is_err() {
            eprintln!("nemoclaw: the audit reader panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_writes_a_second_s_worth_then_summarises() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let name = Some("flood".to_owned());
        let admitted = (0..5000).filter(|_| l.admit(7, name.as_ref(), t0)).count();
        assert_eq!(admitted, RECORDS_PER_SECOND as usize);
        assert!(l.admit(8, None, t0), "another sandbox keeps its own budget");
        assert!(
            l.summaries(t0, false).is_empty(),
            "the window has not ended"
        );
        let later = t0 + Duration::from_millis(1500);
        let s = l.summaries(later, false);
        assert_eq!(
            s,
            [Lifecycle::DenialsSuppressed {
                time: match &s[0] {
                    Lifecycle::DenialsSuppressed { time, .. } => time.clone(),
                    _ => String::new(),
                },
                sandbox: name.clone(),
                cgroup: 7,
                suppressed: 4000,
            }]
        );
        assert!(
            l.admit(7, name.as_ref(), later),
            "a new window writes again"
        );
    }
}
