//! Inbound (`network.listen`): cgroup `bind4`/`bind6` judge the local address and port of
//! every bind (every kernel), LSM `socket_listen` judges the port a TCP listener really has
//! (ephemeral ports, listen without bind; BPF LSM only). Loopback is always open; other
//! addresses (`0.0.0.0` and `::` included) need a `network.listen` entry for the port. Each
//! deny has an allowed twin and its audit record; clients (connect, UDP sendto) keep working.

use std::net::{TcpListener, UdpSocket};

use crate::support::{PYTHON, Scratch, connect_probe, lsm_or_skip, root_or_skip, run_sandboxed};

/// A network section that allows one loopback destination and no `listen` entry.
const NO_LISTEN: &str = "network:\n  allow:\n    - \"127.0.0.1:1\"\n";

/// A free TCP and UDP port (on every address) right now.
fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind(("0.0.0.0", 0)).expect("bind tcp");
        let port = t.local_addr().expect("addr").port();
        if UdpSocket::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// Two different free ports.
fn two_ports() -> (u16, u16) {
    let a = free_port();
    loop {
        let b = free_port();
        if b != a {
            return (a, b);
        }
    }
}

/// A Python probe: for each `(family, type, address or None, port, listen)`, creates a
/// socket, binds it (unless the address is None), listens if asked, and prints `OK` or
/// `ERR-<errno>`; then the local ports of the successful sockets after `|`.
fn bind_probe(cases: &[(&str, &str, Option<&str>, u16, bool)]) -> String {
    let list = cases
        .iter()
        .map(|(fam, kind, addr, port, listen)| {
            let addr = addr.map_or_else(|| "None".to_owned(), |a| format!("{a:?}"));
            let listen = if *listen { "True" } else { "False" };
            format!("(socket.{fam}, socket.{kind}, {addr}, {port}, {listen})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "import socket, errno\n\
         out, ports = [], []\n\
         for f, t, a, p, l in [{list}]:\n\
         \x20   s = socket.socket(f, t)\n\
         \x20   try:\n\
         \x20       if a is not None: s.bind((a, p))\n\
         \x20       if l: s.listen(1)\n\
         \x20       out.append('OK'); ports.append(str(s.getsockname()[1]))\n\
         \x20   except OSError as e:\n\
         \x20       out.append('ERR-' + errno.errorcode.get(e.errno, str(e.errno)))\n\
         \x20   finally:\n\
         \x20       s.close()\n\
         print(' '.join(out), '|', ' '.join(ports))\n"
    )
}

/// The verdicts of [`bind_probe`] (before `|`).
fn verdicts(stdout: &str) -> String {
    stdout.split('|').next().unwrap_or("").trim().to_owned()
}

/// (hook, address, port, protocol, errno, rule id) of the network denials.
fn inbound(out: &crate::support::Outcome) -> Vec<(String, String, u64, String, String, u64)> {
    out.denials("network")
        .iter()
        .map(|r| {
            let o = &r["object"];
            let s = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_owned();
            (
                s(&r["hook"]),
                s(&o["address"]),
                o["port"].as_u64().unwrap_or(u64::MAX),
                s(&o["protocol"]),
                s(&r["errno"]),
                r["rule"]["id"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

fn rec(
    hook: &str,
    addr: &str,
    port: u16,
    proto: &str,
) -> (String, String, u64, String, String, u64) {
    (
        hook.to_owned(),
        addr.to_owned(),
        u64::from(port),
        proto.to_owned(),
        "EPERM".to_owned(),
        0,
    )
}

/// No `listen` entry: a TCP listener on `0.0.0.0` is refused at bind (EPERM, a `bind4`
/// record naming 0.0.0.0 and the port); the twins on `127.0.0.1` and `127.0.0.2` listen.
#[test]
fn tcp4_listen_on_every_address_denied_loopback_allowed() {
    if !root_or_skip("inbound_tcp4") {
        return;
    }
    let scratch = Scratch::new("inbound-tcp4");
    let port = free_port();
    let out = run_sandboxed(
        &scratch,
        NO_LISTEN,
        &[
            PYTHON,
            "-c",
            &bind_probe(&[
                ("AF_INET", "SOCK_STREAM", Some("0.0.0.0"), port, true),
                ("AF_INET", "SOCK_STREAM", Some("127.0.0.1"), port, true),
                ("AF_INET", "SOCK_STREAM", Some("127.0.0.2"), port, true),
            ]),
        ],
    );
    assert_eq!(verdicts(&out.stdout), "ERR-EPERM OK OK", "{out:?}");
    assert_eq!(
        inbound(&out),
        [rec("bind4", "0.0.0.0", port, "tcp")],
        "{out:?}"
    );
    assert_eq!(out.denials("network")[0]["uid"], 65534, "ran as nobody");

    // Twin: without a network section nothing of ours judges a bind.
    let open = run_sandboxed(
        &scratch,
        "name: no-network\n",
        &[
            PYTHON,
            "-c",
            &bind_probe(&[("AF_INET", "SOCK_STREAM", Some("0.0.0.0"), port, true)]),
        ],
    );
    assert_eq!(verdicts(&open.stdout), "OK", "{open:?}");
    assert!(open.denials("network").is_empty(), "{open:?}");
}

/// A `listen` entry opens its port on every address for its protocol, and nothing else:
/// `[P, {ports: [Q], protocol: udp}]` lets TCP and UDP bind `0.0.0.0:P` and UDP bind
/// `0.0.0.0:Q`; TCP on `Q` is refused.
#[test]
fn listen_entry_opens_its_port_and_protocol_only() {
    if !root_or_skip("inbound_listen_entry") {
        return;
    }
    let scratch = Scratch::new("inbound-entry");
    let (p, q) = two_ports();
    let policy = format!(
        "network:\n  allow:\n    - \"127.0.0.1:1\"\n  listen:\n    - {p}\n    - {{ports: [{q}], protocol: udp}}\n"
    );
    let out = run_sandboxed(
        &scratch,
        &policy,
        &[
            PYTHON,
            "-c",
            &bind_probe(&[
                ("AF_INET", "SOCK_STREAM", Some("0.0.0.0"), p, true),
                ("AF_INET", "SOCK_DGRAM", Some("0.0.0.0"), p, false),
                ("AF_INET", "SOCK_DGRAM", Some("0.0.0.0"), q, false),
                ("AF_INET", "SOCK_STREAM", Some("0.0.0.0"), q, true),
            ]),
        ],
    );
    assert_eq!(verdicts(&out.stdout), "OK OK OK ERR-EPERM", "{out:?}");
    assert_eq!(
        inbound(&out),
        [rec("bind4", "0.0.0.0", q, "tcp")],
        "{out:?}"
    );
}

/// A UDP socket bound to a non-loopback port receives datagrams from anyone: refused
/// without an entry (a `bind4` record, protocol udp). The twins: UDP on loopback, and UDP
/// bound to port 0 (an ephemeral port, as every client gets) on `0.0.0.0`.
#[test]
fn udp_bind_denied_loopback_and_ephemeral_allowed() {
    if !root_or_skip("inbound_udp") {
        return;
    }
    let scratch = Scratch::new("inbound-udp");
    let port = free_port();
    let out = run_sandboxed(
        &scratch,
        NO_LISTEN,
        &[
            PYTHON,
            "-c",
            &bind_probe(&[
                ("AF_INET", "SOCK_DGRAM", Some("0.0.0.0"), port, false),
                ("AF_INET", "SOCK_DGRAM", Some("127.0.0.1"), port, false),
                ("AF_INET", "SOCK_DGRAM", Some("0.0.0.0"), 0, false),
            ]),
        ],
    );
    assert_eq!(verdicts(&out.stdout), "ERR-EPERM OK OK", "{out:?}");
    assert_eq!(
        inbound(&out),
        [rec("bind4", "0.0.0.0", port, "udp")],
        "{out:?}"
    );
}

/// IPv6: `::` (every address, IPv4 too) is refused with a `bind6` record, `::1` listens; an
/// IPv4-mapped address is judged as IPv4 (`::ffff:0.0.0.0` refused and recorded as
/// `0.0.0.0`, `::ffff:127.0.0.1` allowed); UDP on `::` is refused too.
#[test]
fn ipv6_listen_on_every_address_denied_loopback_allowed() {
    if !root_or_skip("inbound_ipv6") {
        return;
    }
    if TcpListener::bind(("::1", 0)).is_err() {
        println!("SKIPPED inbound_ipv6: no IPv6 loopback on this machine");
        return;
    }
    let scratch = Scratch::new("inbound-ipv6");
    let port = free_port();
    let out = run_sandboxed(
        &scratch,
        NO_LISTEN,
        &[
            PYTHON,
            "-c",
            &bind_probe(&[
                ("AF_INET6", "SOCK_STREAM", Some("::"), port, true),
                ("AF_INET6", "SOCK_STREAM", Some("::1"), port, true),
                (
                    "AF_INET6",
                    "SOCK_STREAM",
                    Some("::ffff:0.0.0.0"),
                    port,
                    true,
                ),
                (
                    "AF_INET6",
                    "SOCK_STREAM",
                    Some("::ffff:127.0.0.1"),
                    port,
                    true,
                ),
                ("AF_INET6", "SOCK_DGRAM", Some("::"), port, false),
            ]),
        ],
    );
    assert_eq!(
        verdicts(&out.stdout),
        "ERR-EPERM OK ERR-EPERM OK ERR-EPERM",
        "{out:?}"
    );
    assert_eq!(
        inbound(&out),
        [
            rec("bind6", "::", port, "tcp"),
            rec("bind6", "0.0.0.0", port, "tcp"),
            rec("bind6", "::", port, "udp"),
        ],
        "{out:?}"
    );
}

/// Clients are never judged as listeners: a TCP connect (its implicit bind of an
/// ephemeral port), a connect after an explicit bind to `0.0.0.0:0`, and a UDP sendto
/// (implicit bind) all work under a policy without `listen` entries, with no denial.
#[test]
fn clients_keep_working_under_inbound_rules() {
    if !root_or_skip("inbound_clients") {
        return;
    }
    let scratch = Scratch::new("inbound-clients");
    let l = TcpListener::bind(("127.0.0.1", 0)).expect("listener");
    let tport = l.local_addr().expect("addr").port();
    let u = UdpSocket::bind(("127.0.0.1", 0)).expect("udp");
    let uport = u.local_addr().expect("addr").port();
    let policy =
        format!("network:\n  allow:\n    - \"127.0.0.1:{tport}\"\n    - \"127.0.0.1:{uport}\"\n");
    let tcp = run_sandboxed(
        &scratch,
        &policy,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET", "SOCK_STREAM", "127.0.0.1", tport),
        ],
    );
    assert_eq!(tcp.stdout.trim(), "OK", "{tcp:?}");
    let udp = run_sandboxed(
        &scratch,
        &policy,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET", "SOCK_DGRAM", "127.0.0.1", uport),
        ],
    );
    assert_eq!(udp.stdout.trim(), "OK", "{udp:?}");
    let bound = format!(
        "import socket\n\
         s = socket.socket()\n\
         s.settimeout(5)\n\
         s.bind(('0.0.0.0', 0))\n\
         s.connect(('127.0.0.1', {tport}))\n\
         print('OK')\n"
    );
    let explicit = run_sandboxed(&scratch, &policy, &[PYTHON, "-c", &bound]);
    assert_eq!(explicit.stdout.trim(), "OK", "{explicit:?}");
    for out in [&tcp, &udp, &explicit] {
        assert!(out.denials("network").is_empty(), "{out:?}");
    }
}

/// BPF LSM only: `socket_listen` judges the port a listener really has. A TCP socket
/// never bound (listen binds it to an ephemeral port on every address: port 0 in the
/// record) and one bound to `0.0.0.0:0` (its ephemeral port) are refused; `127.0.0.1:0`
/// listens. A port entry does not open ephemeral listeners; an any-port entry does.
#[test]
fn ephemeral_listeners_judged_at_listen() {
    if !lsm_or_skip("inbound_ephemeral") {
        return;
    }
    let scratch = Scratch::new("inbound-ephemeral");
    let port = free_port();
    let cases = [
        ("AF_INET", "SOCK_STREAM", None, 0, true),
        ("AF_INET", "SOCK_STREAM", Some("0.0.0.0"), 0, true),
        ("AF_INET6", "SOCK_STREAM", None, 0, true),
        ("AF_INET", "SOCK_STREAM", Some("127.0.0.1"), 0, true),
    ];
    let policy = format!("network:\n  allow:\n    - \"127.0.0.1:1\"\n  listen:\n    - {port}\n");
    let out = run_sandboxed(&scratch, &policy, &[PYTHON, "-c", &bind_probe(&cases)]);
    assert_eq!(
        verdicts(&out.stdout),
        "ERR-EPERM ERR-EPERM ERR-EPERM OK",
        "{out:?}"
    );
    let got = inbound(&out);
    assert_eq!(got.len(), 3, "{out:?}");
    assert_eq!(got[0], rec("socket_listen", "0.0.0.0", 0, "tcp"), "{out:?}");
    assert_eq!(
        (got[1].0.as_str(), got[1].1.as_str(), got[1].3.as_str()),
        ("socket_listen", "0.0.0.0", "tcp"),
        "{out:?}"
    );
    assert_ne!(got[1].2, 0, "the ephemeral port bind gave: {out:?}");
    assert_eq!(got[2], rec("socket_listen", "::", 0, "tcp"), "{out:?}");

    // Twin: an any-port TCP entry opens them all.
    let open = run_sandboxed(
        &scratch,
        "network:\n  allow:\n    - \"127.0.0.1:1\"\n  listen:\n    - {protocol: tcp}\n",
        &[PYTHON, "-c", &bind_probe(&cases)],
    );
    assert_eq!(verdicts(&open.stdout), "OK OK OK OK", "{open:?}");
    assert!(open.denials("network").is_empty(), "{open:?}");
}
