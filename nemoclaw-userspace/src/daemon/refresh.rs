//! Host-name rules stay current: a resolver that caches answers for their TTL, keeps
//! addresses that disappear for a grace period (connections in flight keep working), and
//! says when to look again; the sandbox's policy is recompiled and swapped by slot when
//! the addresses change.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use super::dns;
use crate::policy::Resolver;

/// Answers are re-queried no sooner than this, whatever their TTL says.
const MIN_TTL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
struct Cached {
    addr: IpAddr,
    expires: Instant,
    /// When DNS stopped returning it; kept until `dropped + grace`.
    dropped: Option<Instant>,
}

#[derive(Default)]
struct State {
    names: HashMap<String, Vec<Cached>>,
    changes: Vec<String>,
}

/// A caching, TTL-aware [`Resolver`] over the nameservers of a resolv.conf.
pub struct TtlResolver {
    servers: Vec<SocketAddr>,
    grace: Duration,
    state: Mutex<State>,
}

fn list(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl TtlResolver {
    #[must_use]
    pub fn new(servers: Vec<SocketAddr>, grace: Duration) -> Self {
        Self {
            servers,
            grace,
            state: Mutex::default(),
        }
    }

    #[must_use]
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When a cached answer expires or a graced address must go: the next refresh.
    #[must_use]
    pub fn next_refresh(&self) -> Option<Instant> {
        let st = self.state();
        st.names
            .values()
            .flatten()
            .map(|c| c.dropped.map_or(c.expires, |d| d + self.grace))
            .min()
    }

    /// Address changes seen since the last call, for the log.
    pub fn take_changes(&self) -> Vec<String> {
        std::mem::take(&mut self.state().changes)
    }

    fn resolve_at(&self, host: &str, now: Instant) -> Result<Vec<IpAddr>, String> {
        let mut st = self.state();
        let fresh = st.names.get(host).is_some_and(|c| {
            c.iter().any(|c| c.dropped.is_none())
                && c.iter()
                    .filter(|c| c.dropped.is_none())
                    .all(|c| c.expires > now)
        });
        if !fresh {
            match dns::resolve(&self.servers, host) {
                Ok(answers) => {
                    let cached = st.names.entry(host.to_owned()).or_default();
                    let before: Vec<IpAddr> = cached
                        .iter()
                        .filter(|c| c.dropped.is_none())
                        .map(|c| c.addr)
                        .collect();
                    for c in cached.iter_mut() {
                        if c.dropped.is_none() && !answers.iter().any(|a| a.addr == c.addr) {
                            c.dropped = Some(now);
                        }
                    }
                    for a in &answers {
                        let expires = now + Duration::from_secs(a.ttl.into()).max(MIN_TTL);
                        match cached.iter_mut().find(|c| c.addr == a.addr) {
                            Some(c) => {
                                c.expires = expires;
                                c.dropped = None;
                            }
                            None => cached.push(Cached {
                                addr: a.addr,
                                expires,
                                dropped: None,
                            }),
                        }
                    }
                    let mut after: Vec<IpAddr> = answers.iter().map(|a| a.addr).collect();
                    after.sort_unstable();
                    after.dedup();
                    let mut before = before;
                    before.sort_unstable();
                    if before != after {
                        let change =
                            format!("{host}: now [{}], was [{}]", list(&after), list(&before));
                        st.changes.push(change);
                    }
                }
                // Keep what we had (stale answers beat none: both directions are logged).
                Err(e) if st.names.get(host).is_some_and(|c| !c.is_empty()) => {
                    st.changes.push(format!(
                        "{host}: refresh failed ({e}); keeping the previous addresses"
                    ));
                    for c in st.names.get_mut(host).into_iter().flatten() {
                        c.expires = now + MIN_TTL.max(Duration::from_secs(5));
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let grace = self.grace;
        let cached = st
            .names
            .get_mut(host)
            .map(std::mem::take)
            .unwrap_or_default();
        let kept: Vec<Cached> = cached
            .into_iter()
            .filter(|c| c.dropped.is_none_or(|d| d + grace > now))
            .collect();
        let mut addrs: Vec<IpAddr> = kept.iter().map(|c| c.addr).collect();
        st.names.insert(host.to_owned(), kept);
        addrs.sort_unstable();
        addrs.dedup();
        Ok(addrs)
    }
}

impl Resolver for TtlResolver {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        self.resolve_at(host, Instant::now())
    }
}

/// Shares one [`TtlResolver`] between the compiler environment and the refresher.
pub struct Shared(pub Arc<TtlResolver>);

impl Resolver for Shared {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        self.0.resolve(host)
    }
}

/// A thread that re-resolves a running sandbox's host-name rules when their answers expire
/// and rewrites the slot's network entries when the addresses change.
pub struct Refresher {
    stop: std::sync::mpsc::Sender<()>,
    handle: std::thread::JoinHandle<crate::kernel::Enforcer>,
}

/// What the refresher recompiles from.
pub struct RefreshSpec {
    pub policy: crate::policy::Policy,
    pub env: crate::policy::CompileEnv,
    pub resolver: Arc<TtlResolver>,
    pub current: crate::policy::CompiledPolicy,
    pub slot: nemoclaw_common::sandbox::Slot,
}

/// Without an answer to wait for (nothing resolved yet), look again this often.
const RETRY: Duration = Duration::from_secs(30);

/// Whether any network rule names a host, so that refreshing has something to do.
#[must_use]
pub fn has_host_names(policy: &crate::policy::Policy) -> bool {
    use crate::policy::{Host, NetDeny};
    policy.network.as_ref().is_some_and(|n| {
        let deny: &[_] = match &n.deny {
            NetDeny::Rules(r) => r,
            NetDeny::All => &[],
        };
        n.allow
            .iter()
            .chain(deny)
            .any(|r| matches!(r.value.host, Host::Name(_)))
    })
}

impl RefreshSpec {
    /// When to look again.
    #[must_use]
    pub fn next_refresh(&self) -> Instant {
        let wait = self
            .resolver
            .next_refresh()
            .map_or(RETRY, |at| at.saturating_duration_since(Instant::now()))
            .clamp(MIN_TTL, RETRY);
        Instant::now() + wait
    }

    /// Re-resolves (through the caching resolver) and, when the addresses changed, brings
    /// the slot's network entries up to date with `update(old, new)`. Returns the DNS
    /// changes seen and what happened to the rules, as lines for a log.
    pub fn refresh(
        &mut self,
        update: impl FnOnce(
            &crate::policy::CompiledPolicy,
            &crate::policy::CompiledPolicy,
        ) -> Result<(), crate::kernel::KernelError>,
    ) -> Vec<String> {
        let next = match crate::policy::compile(&self.policy, &self.env) {
            Ok(c) => c.policy,
            Err(e) => {
                return vec![format!(
                    "refresh: recompiling failed, keeping the current rules: {e}"
                )];
            }
        };
        let mut log = self.resolver.take_changes();
        if next.net4 == self.current.net4
            && next.net6 == self.current.net6
            && next.net_binaries == self.current.net_binaries
        {
            return log;
        }
        match update(&self.current, &next) {
            Ok(()) => {
                log.push(format!(
                    "network rules updated ({} IPv4, {} IPv6 entries)",
                    next.net4.len(),
                    next.net6.len()
                ));
                self.current = next;
            }
            Err(e) => log.push(format!("refresh: updating the network rules failed: {e}")),
        }
        log
    }
}

impl Refresher {
    /// Takes the enforcer for the sandbox's lifetime; [`Refresher::stop`] gives it back.
    #[must_use]
    pub fn spawn(mut enforcer: crate::kernel::Enforcer, mut spec: RefreshSpec) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            loop {
                let wait = spec
                    .next_refresh()
                    .saturating_duration_since(Instant::now());
                match stopped.recv_timeout(wait) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
                let slot = spec.slot;
                for line in spec.refresh(|old, new| enforcer.update_net(slot, old, new)) {
                    eprintln!("nemoclaw: dns: {line}");
                }
            }
            enforcer
        });
        Self { stop, handle }
    }

    /// Stops refreshing and returns the enforcer.
    pub fn stop(self) -> Result<crate::kernel::Enforcer, String> {
        let _ = self.stop.send(());
        self.handle
            .join()
            .map_err(|_| "the DNS refresher panicked".to_owned())
    }
}
