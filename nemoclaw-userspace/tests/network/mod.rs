//! Network control: cgroup connect4/6 and sendmsg4/6. Each deny has an allowed twin and
//! the matching audit record.

mod binaries;
mod dns;
mod dns_gateway;
mod inbound;
mod sockets;
mod unix;

use std::{
    fmt::Write as _,
    net::{TcpListener, UdpSocket},
};

use crate::support::{PYTHON, Scratch, connect_probe, root_or_skip, run_sandboxed};

fn tcp_listener(addr: &str) -> (TcpListener, u16) {
    let l = TcpListener::bind((addr, 0)).expect("bind listener");
    let port = l.local_addr().expect("local addr").port();
    (l, port)
}

fn policy(allow: &[String], deny: &[String]) -> String {
    let list = |v: &[String]| {
        v.iter().fold(String::new(), |mut s, e| {
            writeln!(s, "    - \"{e}\"").expect("write to a String");
            s
        })
    };
    let deny = if deny.is_empty() {
        "  deny: \"*\"\n".to_owned()
    } else {
        format!("  deny:\n{}", list(deny))
    };
    format!("network:\n  allow:\n{}{deny}", list(allow))
}

/// A TCP connection over IPv4 to a port no rule allows is refused with `EPERM` and an audit
/// record (default deny, as `nobody`); the allowed port connects.
#[test]
fn tcp4_connect_allowed_port_succeeds_other_port_denied() {
    if !root_or_skip("tcp4_connect") {
        return;
    }
    let scratch = Scratch::new("tcp4");
    let (_a, allowed) = tcp_listener("127.0.0.1");
    let (_b, denied) = tcp_listener("127.0.0.1");
    let p = policy(&[format!("127.0.0.1:{allowed}")], &[]);

    let ok = run_sandboxed(
        &scratch,
        &p,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET", "SOCK_STREAM", "127.0.0.1", allowed),
        ],
    );
    assert_eq!(ok.stdout.trim(), "OK", "{ok:?}");
    assert_eq!(ok.code, Some(0));
    assert!(ok.denials("network").is_empty(), "{ok:?}");

    let no = run_sandboxed(
        &scratch,
        &p,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET", "SOCK_STREAM", "127.0.0.1", denied),
        ],
    );
    assert_eq!(no.stdout.trim(), "ERR EPERM", "{no:?}");
    let d = no.denials("network");
    assert_eq!(d.len(), 1, "{no:?}");
    assert_eq!(d[0]["hook"], "connect4");
    assert_eq!(d[0]["errno"], "EPERM");
    assert_eq!(d[0]["object"]["address"], "127.0.0.1");
    assert_eq!(d[0]["object"]["port"], u64::from(denied));
    assert_eq!(d[0]["object"]["protocol"], "tcp");
    assert_eq!(d[0]["rule"]["id"], 0, "default deny decided");
    assert_eq!(d[0]["uid"], 65534, "ran as nobody");
}

/// A TCP connection over IPv6 to a port no rule allows is refused with `EPERM` and audited;
/// the allowed port connects. Skipped where the machine has no IPv6 loopback.
#[test]
fn tcp6_connect_allowed_port_succeeds_other_port_denied() {
    if !root_or_skip("tcp6_connect") {
        return;
    }
    let Ok(l) = TcpListener::bind(("::1", 0)) else {
        println!("SKIPPED tcp6_connect: no IPv6 loopback on this machine");
        return;
    };
    let allowed = l.local_addr().expect("addr").port();
    let (_b, denied) = match TcpListener::bind(("::1", 0)) {
        Ok(b) => {
            let p = b.local_addr().expect("addr").port();
            (b, p)
        }
        Err(e) => panic!("second ::1 listener: {e}"),
    };
    let scratch = Scratch::new("tcp6");
    let p = policy(&[format!("[::1]:{allowed}")], &[]);
    let ok = run_sandboxed(
        &scratch,
        &p,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET6", "SOCK_STREAM", "::1", allowed),
        ],
    );
    assert_eq!(ok.stdout.trim(), "OK", "{ok:?}");
    let no = run_sandboxed(
        &scratch,
        &p,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET6", "SOCK_STREAM", "::1", denied),
        ],
    );
    assert_eq!(no.stdout.trim(), "ERR EPERM", "{no:?}");
    let d = no.denials("network");
    assert_eq!(d.len(), 1, "{no:?}");
    assert_eq!(d[0]["hook"], "connect6");
    assert_eq!(d[0]["object"]["address"], "::1");
    drop(l);
}

/// `::ffff:127.0.0.1` is IPv4 on the wire: it must be judged by the IPv4 rules, both ways.
/// Peer: Tetragon #4618 (an IPv4 rule missed the same address written `::ffff:a.b.c.d`).
#[test]
fn ipv4_mapped_ipv6_is_judged_as_ipv4() {
    if !root_or_skip("ipv4_mapped") {
        return;
    }
    let scratch = Scratch::new("mapped");
    let (_a, allowed) = tcp_listener("127.0.0.1");
    let (_b, denied) = tcp_listener("127.0.0.1");
    let p = policy(&[format!("127.0.0.1:{allowed}")], &[]);
    let ok = run_sandboxed(
        &scratch,
        &p,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET6", "SOCK_STREAM", "::ffff:127.0.0.1", allowed),
        ],
    );
    assert_eq!(ok.stdout.trim(), "OK", "{ok:?}");
    let no = run_sandboxed(
        &scratch,
        &p,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET6", "SOCK_STREAM", "::ffff:127.0.0.1", denied),
        ],
    );
    assert_eq!(no.stdout.trim(), "ERR EPERM", "{no:?}");
    let d = no.denials("network");
    assert_eq!(d.len(), 1, "{no:?}");
    assert_eq!(d[0]["hook"], "connect6");
    assert_eq!(d[0]["object"]["address"], "127.0.0.1");
}

/// Unconnected UDP (`sendto`) goes through sendmsg4, not connect4.
#[test]
fn udp_sendto_denied_unless_allowed() {
    if !root_or_skip("udp_sendto") {
        return;
    }
    let scratch = Scratch::new("udp");
    let a = UdpSocket::bind(("127.0.0.1", 0)).expect("bind udp");
    let b = UdpSocket::bind(("127.0.0.1", 0)).expect("bind udp");
    let allowed = a.local_addr().expect("addr").port();
    let denied = b.local_addr().expect("addr").port();
    let p = policy(&[format!("127.0.0.1:{allowed}")], &[]);
    let ok = run_sandboxed(
        &scratch,
        &p,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET", "SOCK_DGRAM", "127.0.0.1", allowed),
        ],
    );
    assert_eq!(ok.stdout.trim(), "OK", "{ok:?}");
    let no = run_sandboxed(
        &scratch,
        &p,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET", "SOCK_DGRAM", "127.0.0.1", denied),
        ],
    );
    assert_eq!(no.stdout.trim(), "ERR EPERM", "{no:?}");
    let d = no.denials("network");
    assert_eq!(d.len(), 1, "{no:?}");
    assert_eq!(d[0]["hook"], "sendmsg4");
    assert_eq!(d[0]["object"]["protocol"], "udp");
}

/// An explicit deny beats a broader allow, and the record cites the deny rule.
#[test]
fn explicit_deny_beats_allow() {
    if !root_or_skip("deny_beats_allow") {
        return;
    }
    let scratch = Scratch::new("denywins");
    let (_a, port) = tcp_listener("127.0.0.1");
    let (_b, other) = tcp_listener("127.0.0.1");
    let p = policy(
        &["127.0.0.0/8:*".to_owned()],
        &[format!("127.0.0.1:{port}")],
    );
    let no = run_sandboxed(
        &scratch,
        &p,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET", "SOCK_STREAM", "127.0.0.1", port),
        ],
    );
    assert_eq!(no.stdout.trim(), "ERR EPERM", "{no:?}");
    let d = no.denials("network");
    assert_eq!(d.len(), 1, "{no:?}");
    assert_eq!(d[0]["rule"]["section"], "network.deny");
    assert!(
        d[0]["rule"]["source"]
            .as_str()
            .is_some_and(|s| s.contains("policy.yaml:")),
        "{d:?}"
    );
    let ok = run_sandboxed(
        &scratch,
        &p,
        &[
            PYTHON,
            "-c",
            &connect_probe("AF_INET", "SOCK_STREAM", "127.0.0.1", other),
        ],
    );
    assert_eq!(ok.stdout.trim(), "OK", "{ok:?}");
}

/// The sandboxed command's exit status is `run`'s.
#[test]
fn exit_status_passes_through() {
    if !root_or_skip("exit_status") {
        return;
    }
    let scratch = Scratch::new("exit");
    let out = run_sandboxed(
        &scratch,
        &policy(&["127.0.0.1:1".to_owned()], &[]),
        &[PYTHON, "-c", "raise SystemExit(7)"],
    );
    assert_eq!(out.code, Some(7), "{out:?}");
}

/// The audit log records the sandbox's start (policy hash, user, command, controls) and
/// stop (exit status, dropped events), and its hash chain verifies.
#[test]
fn audit_log_records_sandbox_lifecycle() {
    if !root_or_skip("audit_lifecycle") {
        return;
    }
    let scratch = Scratch::new("lifecycle");
    let out = run_sandboxed(
        &scratch,
        &policy(&["127.0.0.1:1".to_owned()], &[]),
        &[PYTHON, "-c", "raise SystemExit(3)"],
    );
    assert_eq!(out.code, Some(3), "{out:?}");
    let events: Vec<&str> = out
        .lifecycle
        .iter()
        .filter_map(|r| r["event"].as_str())
        .collect();
    assert_eq!(events, ["sandbox_start", "sandbox_stop"], "{out:?}");
    let start = &out.lifecycle[0];
    assert_eq!(start["user"], "nobody");
    assert_eq!(start["command"][0], PYTHON);
    assert_eq!(
        start["policy"]["sha256"].as_str().map(str::len),
        Some(64),
        "{start}"
    );
    assert!(
        start["enforcing"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "network")),
        "{start}"
    );
    assert_eq!(out.lifecycle[1]["exit_code"], 3);
    assert_eq!(out.lifecycle[1]["events_lost"], 0);
}
