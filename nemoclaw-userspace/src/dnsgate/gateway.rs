//! The DNS gateway service: per sandbox, a UDP socket and a TCP listener on `127.0.0.1`
//! and on `::1` (one port per family, `DNS_GATE[slot]` in the kernel), served on one
//! tokio runtime for all sandboxes of the process. Each query is judged
//! ([`AllowedNames`]); an allowed one is rebuilt ([`Query::upstream`]) and sent to the
//! host's nameservers, and their answer relayed with the client's id and question; a
//! refused one is answered `REFUSED` and logged (`dns_gateway` records, at most
//! [`RECORDS_PER_SECOND`] per sandbox, the rest counted).

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream, UdpSocket},
    sync::Semaphore,
    task::AbortHandle,
    time::timeout,
};

use super::{
    message::{self, Query, RCODE_FORMERR, RCODE_REFUSED, RCODE_SERVFAIL, Relayed},
    names::{AllowedNames, Refusal, type_name},
};
use crate::audit::{lifecycle, reader::SharedSink};

/// One upstream exchange (per server, per transport).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// A TCP client must send its next query within this.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Queries being answered at once, per sandbox; UDP beyond it is dropped (clients retry).
const MAX_IN_FLIGHT: usize = 128;
/// TCP connections at once, per sandbox.
const MAX_TCP_CONNECTIONS: usize = 32;
/// Audit records per second per sandbox; more are counted, and the count is written with
/// the next record.
pub const RECORDS_PER_SECOND: u32 = 50;
/// Largest DNS message over TCP.
const TCP_LIMIT: usize = 65_535;

/// Opens gateways on the process's tokio runtime (the daemon's, or `nemoclaw run`'s).
pub struct Gateway {
    runtime: tokio::runtime::Handle,
}

/// What one sandbox's gateway answers, for whom, and where its queries go.
pub struct GateSpec {
    pub sandbox: String,
    pub names: AllowedNames,
    /// The host's nameservers (`--resolv-conf`).
    pub upstreams: Vec<SocketAddr>,
    pub sink: SharedSink,
    /// Ports to try first (a restarted daemon keeps its sandboxes' ports); 0: any.
    pub ports: (u16, u16),
}

/// A sandbox's running gateway; dropping it closes its sockets.
pub struct Gate {
    /// Port on `127.0.0.1`.
    pub port4: u16,
    /// Port on `::1`; 0 where the host has no IPv6 loopback.
    pub port6: u16,
    state: Arc<GateState>,
    tasks: Vec<AbortHandle>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Transport {
    Udp,
    Tcp,
}

struct GateState {
    sandbox: String,
    names: Mutex<AllowedNames>,
    upstreams: Mutex<Vec<SocketAddr>>,
    sink: SharedSink,
    in_flight: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    limiter: Mutex<RecordLimiter>,
}

/// The audit record of a query the gateway did not answer from upstream.
#[derive(Debug, Serialize)]
struct DnsRecord<'a> {
    time: String,
    /// `deny` (refused) or `error` (the nameservers did not answer; SERVFAIL).
    decision: &'static str,
    control: &'static str,
    hook: &'static str,
    /// The DNS response code sent to the sandbox.
    rcode: &'static str,
    reason: String,
    sandbox: &'a str,
    object: DnsObject<'a>,
    /// Records left out before this one by the rate limit.
    #[serde(skip_serializing_if = "is_zero")]
    suppressed: u64,
}

#[derive(Debug, Serialize)]
struct DnsObject<'a> {
    /// The name asked for, in presentation form (odd bytes as `\DDD`); absent when the
    /// message was not a query.
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_type: Option<String>,
    transport: Transport,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Default)]
struct RecordLimiter {
    second: Option<Instant>,
    written: u32,
    suppressed: u64,
}

impl RecordLimiter {
    /// Whether a record may be written now; `Some(suppressed before it)` if so.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .second
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
        {
            self.second = Some(now);
            self.written = 0;
        }
        if self.written >= RECORDS_PER_SECOND {
            self.suppressed += 1;
            return None;
        }
        self.written += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

impl Gateway {
    /// Gateways served by `runtime` (it needs I/O and time enabled).
    #[must_use]
    pub fn on(runtime: tokio::runtime::Handle) -> Self {
        Self { runtime }
    }

    /// Binds `spec`'s sockets and starts answering on them.
    pub fn open(&self, spec: GateSpec) -> io::Result<Gate> {
        let _entered = self.runtime.enter();
        let (udp4, tcp4) = bind_pair(IpAddr::V4(Ipv4Addr::LOCALHOST), spec.ports.0)?;
        let v6 = match bind_pair(IpAddr::V6(Ipv6Addr::LOCALHOST), spec.ports.1) {
            Ok(pair) => Some(pair),
            // No IPv6 loopback on this host: IPv6 DNS stays with the rules (denied).
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => None,
            Err(e) => return Err(e),
        };
        let port4 = udp4.local_addr()?.port();
        let port6 = match &v6 {
            Some((udp, _)) => udp.local_addr()?.port(),
            None => 0,
        };
        let state = Arc::new(GateState {
            sandbox: spec.sandbox,
            names: Mutex::new(spec.names),
            upstreams: Mutex::new(spec.upstreams),
            sink: spec.sink,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            connections: Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS)),
            limiter: Mutex::new(RecordLimiter::default()),
        });
        let mut tasks = Vec::new();
        for (udp, tcp) in std::iter::once((udp4, tcp4)).chain(v6) {
            let udp = Arc::new(UdpSocket::from_std(udp)?);
            let tcp = TcpListener::from_std(tcp)?;
            tasks.push(
                self.runtime
                    .spawn(serve_udp(udp, Arc::clone(&state)))
                    .abort_handle(),
            );
            tasks.push(
                self.runtime
                    .spawn(serve_tcp(tcp, Arc::clone(&state)))
                    .abort_handle(),
            );
        }
        Ok(Gate {
            port4,
            port6,
            state,
            tasks,
        })
    }
}

impl Gate {
    /// A reloaded policy's names and nameservers, from the next query on.
    pub fn update(&self, names: AllowedNames, upstreams: Vec<SocketAddr>) {
        lock(&self.state.names).replace(names);
        *lock(&self.state.upstreams) = upstreams;
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A UDP socket and a TCP listener on the same loopback port (`port`, or any free one).
fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut last = None;
    let tries = if port == 0 { 32 } else { 1 };
    for _ in 0..tries {
        let udp = match std::net::UdpSocket::bind((ip, port)) {
            Ok(u) => u,
            Err(e) if port != 0 && e.kind() == io::ErrorKind::AddrInUse => {
                return bind_pair(ip, 0);
            }
            Err(e) => return Err(e),
        };
        let bound = udp.local_addr()?.port();
        match std::net::TcpListener::bind((ip, bound)) {
            Ok(tcp) => {
                udp.set_nonblocking(true)?;
                tcp.set_nonblocking(true)?;
                return Ok((udp, tcp));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if port != 0 {
                    return bind_pair(ip, 0);
                }
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free loopback port for the DNS gateway")))
}

async fn serve_udp(socket: Arc<UdpSocket>, state: Arc<GateState>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
            continue; // overloaded: the client retries
        };
        let message = buf[..n].to_vec();
        let socket = Arc::clone(&socket);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(reply) = state.answer(&message, Transport::Udp).await {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<GateState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&state.connections).try_acquire_owned() else {
            continue; // dropped: closes the connection
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = serve_connection(stream, &state).await;
        });
    }
}

/// Length-prefixed queries on one TCP connection until the client stops or idles.
async fn serve_connection(mut stream: TcpStream, state: &GateState) -> io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        timeout(TCP_IDLE, stream.read_exact(&mut len)).await??;
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
        timeout(TCP_IDLE, stream.read_exact(&mut message)).await??;
        let Some(reply) = state.answer(&message, Transport::Tcp).await else {
            return Ok(());
        };
        let len = u16::try_from(reply.len()).map_err(io::Error::other)?;
        let framed = [&len.to_be_bytes()[..], &reply].concat();
        timeout(TCP_IDLE, stream.write_all(&framed)).await??;
    }
}

impl GateState {
    /// The reply to one message from the sandbox (none for a message that is not a query).
    async fn answer(&self, msg: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let query = match message::parse_query(msg) {
            Ok(q) => q,
            Err(e) => {
                let reply = message::error_reply(msg, RCODE_FORMERR)?;
                self.record(
                    "deny",
                    "FORMERR",
                    format!("not a query: {e}"),
                    None,
                    transport,
                );
                return Some(reply);
            }
        };
        let judged =
            lock(&self.names).judge(&query.name, query.qtype, query.qclass, Instant::now());
        if let Err(refusal) = judged {
            let reason = match refusal {
                Refusal::Name => "default deny (no rule allows this name)".to_owned(),
                other => other.to_string(),
            };
            self.record("deny", "REFUSED", reason, Some(&query), transport);
            return Some(query.reply(RCODE_REFUSED));
        }
        let limit = match transport {
            Transport::Udp => query.udp_limit,
            Transport::Tcp => TCP_LIMIT,
        };
        let upstreams = lock(&self.upstreams).clone();
        match forward(&query, &upstreams, limit).await {
            Ok(relayed) => {
                lock(&self.names).learn(&relayed.cnames, Instant::now());
                Some(relayed.bytes)
            }
            Err(e) => {
                self.record("error", "SERVFAIL", e, Some(&query), transport);
                Some(query.reply(RCODE_SERVFAIL))
            }
        }
    }

    fn record(
        &self,
        decision: &'static str,
        rcode: &'static str,
        reason: String,
        query: Option<&Query>,
        transport: Transport,
    ) {
        let Some(suppressed) = lock(&self.limiter).admit(Instant::now()) else {
            return;
        };
        let record = DnsRecord {
            time: lifecycle::now(),
            decision,
            control: "network",
            hook: "dns_gateway",
            rcode,
            reason,
            sandbox: &self.sandbox,
            object: DnsObject {
                dns_name: query.map(|q| q.name.as_str()),
                dns_type: query.map(|q| type_name(q.qtype)),
                transport,
            },
            suppressed,
        };
        if let Err(e) = lock(&self.sink).write_record(&record) {
            eprintln!("nemoclaw: writing audit record: {e}");
        }
    }
}

/// Asks each nameserver in turn (UDP, then TCP if the answer was truncated) with the
/// rebuilt query; the first answer that matches it is relayed.
async fn forward(query: &Query, upstreams: &[SocketAddr], limit: usize) -> Result<Relayed, String> {
    let mut last = "no nameserver configured".to_owned();
    for &server in upstreams {
        let id = random_id();
        let wire = query.upstream(id);
        let reply = match exchange_udp(server, &wire, id).await {
            Ok(r) if r.get(2).is_some_and(|flags| flags & 0x02 != 0) => {
                exchange_tcp(server, &wire).await
            }
            other => other,
        };
        match reply.map_err(|e| e.to_string()).and_then(|r| {
            query
                .relay(&r, id, limit)
                .map_err(|e| format!("unusable answer: {e}"))
        }) {
            Ok(relayed) => return Ok(relayed),
            Err(e) => last = format!("nameserver {server}: {e}"),
        }
    }
    Err(last)
}

fn random_id() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}

async fn exchange_udp(server: SocketAddr, query: &[u8], id: u16) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
        // Anything but the answer to this id (a late reply, a spoof) is skipped.
        if n >= 2 && buf[..2] == id.to_be_bytes() {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn exchange_tcp(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        let len = u16::try_from(query.len()).map_err(io::Error::other)?;
        stream
            .write_all(&[&len.to_be_bytes()[..], query].concat())
            .await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).await?;
        Ok(reply)
    };
    timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer over TCP"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_limited_per_second_and_the_rest_counted() {
        let mut limiter = RecordLimiter::default();
        let t0 = Instant::now();
        for _ in 0..RECORDS_PER_SECOND {
            assert_eq!(limiter.admit(t0), Some(0));
        }
        assert_eq!(limiter.admit(t0), None);
        assert_eq!(limiter.admit(t0 + Duration::from_millis(500)), None);
        assert_eq!(limiter.admit(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(limiter.admit(t0 + Duration::from_secs(1)), Some(0));
    }
}
