//! Socket kinds (LSM `socket_create`): only sockets the network rules can judge may be
//! created in a sandbox with a network section.

use crate::support::{PYTHON, Scratch, lsm_or_skip, root_or_skip, run_sandboxed_as};

const POLICY: &str = "network:\n  allow:\n    - \"127.0.0.1:1\"\n";

/// Prints `OK` or `ERR <errno>` for each `(family, type, protocol)`, space separated.
fn probe(kinds: &[&str]) -> String {
    let list = kinds.join(", ");
    format!(
        "import socket, errno\n\
         out = []\n\
         for f, t, p in [{list}]:\n\
         \x20   try:\n\
         \x20       socket.socket(f, t, p).close(); out.append('OK')\n\
         \x20   except OSError as e:\n\
         \x20       out.append('ERR-' + errno.errorcode.get(e.errno, str(e.errno)))\n\
         print(' '.join(out))\n"
    )
}

fn sockets(records: &[&serde_json::Value]) -> Vec<(u64, u64, u64)> {
    records
        .iter()
        .filter(|r| r["hook"] == "socket_create")
        .map(|r| {
            let o = &r["object"];
            (
                o["socket_family"].as_u64().unwrap_or(0),
                o["socket_type"].as_u64().unwrap_or(0),
                o["socket_protocol"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// As uid 0 in the sandbox: raw, packet, audit-netlink and vsock sockets are denied; TCP,
/// UDP, unix and route-netlink sockets (the allowed twins) are created.
#[test]
fn unjudgeable_socket_kinds_denied_even_for_root() {
    if !lsm_or_skip("socket_kinds_root") {
        return;
    }
    let scratch = Scratch::new("sockets-root");
    let denied = [
        "(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)",
        "(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)",
        "(socket.AF_PACKET, socket.SOCK_RAW, 0x0300)",
        "(socket.AF_NETLINK, socket.SOCK_RAW, 9)",
        "(40, socket.SOCK_STREAM, 0)",
        "(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)",
    ];
    let allowed = [
        "(socket.AF_INET, socket.SOCK_STREAM, 0)",
        "(socket.AF_INET6, socket.SOCK_DGRAM, 0)",
        "(socket.AF_UNIX, socket.SOCK_STREAM, 0)",
        "(socket.AF_NETLINK, socket.SOCK_RAW, 0)",
    ];
    let all: Vec<&str> = denied.iter().chain(&allowed).copied().collect();
    let out = run_sandboxed_as(&scratch, "root", POLICY, &[PYTHON, "-c", &probe(&all)]);
    assert_eq!(
        out.stdout.trim(),
        "ERR-EPERM ERR-EPERM ERR-EPERM ERR-EPERM ERR-EPERM ERR-EPERM OK OK OK OK",
        "{out:?}"
    );
    let got = sockets(&out.denials("network"));
    assert_eq!(
        got,
        [
            (2, 3, 1),
            (10, 3, 58),
            (17, 3, 0x0300),
            (16, 3, 9),
            (40, 1, 0),
            (2, 2, 1)
        ],
        "{out:?}"
    );
    assert!(
        out.denials("network")
            .iter()
            .all(|r| r["errno"] == "EPERM" && r["uid"] == 0),
        "{out:?}"
    );
}

/// As an ordinary user the kernel would refuse raw sockets for lack of `CAP_NET_RAW`, but
/// `NemoClaw` decides first: the denial is in the audit log.
#[test]
fn raw_socket_denial_is_audited_for_unprivileged_users() {
    if !lsm_or_skip("socket_kinds_nobody") {
        return;
    }
    let scratch = Scratch::new("sockets-nobody");
    let out = run_sandboxed_as(
        &scratch,
        "nobody",
        POLICY,
        &[
            PYTHON,
            "-c",
            &probe(&[
                "(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)",
                "(socket.AF_INET, socket.SOCK_STREAM, 0)",
            ]),
        ],
    );
    assert_eq!(out.stdout.trim(), "ERR-EPERM OK", "{out:?}");
    assert_eq!(sockets(&out.denials("network")), [(2, 3, 6)], "{out:?}");
}

/// Where socket kinds cannot be restricted (no BPF LSM), a network policy still runs for an
/// ordinary user (with a notice) but is refused for root, who could open raw sockets.
#[test]
fn without_bpf_lsm_network_policy_refused_for_root_only() {
    if !root_or_skip("socket_kinds_no_lsm") {
        return;
    }
    if crate::support::bpf_lsm_runs() {
        println!("SKIPPED socket_kinds_no_lsm: BPF LSM loads here (covered by the tests above)");
        return;
    }
    let scratch = Scratch::new("sockets-nolsm");
    let marker = scratch.path("ran");
    let script = format!("open({:?}, 'w').write('x')", marker.display().to_string());
    let root = run_sandboxed_as(&scratch, "root", POLICY, &[PYTHON, "-c", &script]);
    assert_ne!(root.code, Some(0), "{root:?}");
    assert!(
        root.stderr.contains("cannot restrict socket kinds"),
        "{}",
        root.stderr
    );
    assert!(
        !marker.exists(),
        "the command ran as root without socket-kind restriction"
    );
    let nobody = run_sandboxed_as(&scratch, "nobody", POLICY, &[PYTHON, "-c", "print('ran')"]);
    assert_eq!(nobody.stdout.trim(), "ran", "{nobody:?}");
    assert!(
        nobody
            .stderr
            .contains("socket kinds are not restricted here"),
        "{}",
        nobody.stderr
    );
}

/// `net.ipv4.ping_group_range`, set for a test and restored after it.
struct PingGroupRange(String);

const PING_GROUP_RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

impl PingGroupRange {
    fn set(value: &str) -> Self {
        let old = std::fs::read_to_string(PING_GROUP_RANGE).expect("read ping_group_range");
        std::fs::write(PING_GROUP_RANGE, value).expect("set ping_group_range");
        Self(old)
    }
}

impl Drop for PingGroupRange {
    fn drop(&mut self) {
        let _ = std::fs::write(PING_GROUP_RANGE, self.0.trim());
    }
}

/// Without BPF LSM (this host natively, the `lsm-inactive` VM runs) the cgroup
/// `sock_create` hook still refuses the IPv4/IPv6 socket kinds no rule can judge: ICMP
/// "ping" sockets, which an ordinary user may open wherever `ping_group_range` admits
/// them, would otherwise reach any host. Denied with an audit record; TCP and UDP (the
/// allowed twins) are created, and without a network section the ping sockets are too.
#[test]
fn without_bpf_lsm_the_cgroup_hook_refuses_ping_sockets() {
    if !root_or_skip("sock_create_no_lsm") {
        return;
    }
    if crate::support::bpf_lsm_runs() {
        println!(
            "SKIPPED sock_create_no_lsm: BPF LSM runs here, and its socket_create decides \
             first (covered by the tests above)"
        );
        return;
    }
    let _range = PingGroupRange::set("0 2147483647");
    let scratch = Scratch::new("sock-create");
    let kinds = [
        "(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)",
        "(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)",
        "(socket.AF_INET, socket.SOCK_STREAM, 0)",
        "(socket.AF_INET6, socket.SOCK_DGRAM, 0)",
    ];
    let code = probe(&kinds);
    let out = run_sandboxed_as(&scratch, "nobody", POLICY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR-EPERM ERR-EPERM OK OK", "{out:?}");
    let denied: Vec<(u64, u64, u64)> = out
        .denials("network")
        .iter()
        .filter(|r| r["hook"] == "sock_create" && r["errno"] == "EPERM")
        .map(|r| {
            let o = &r["object"];
            (
                o["socket_family"].as_u64().unwrap_or(0),
                o["socket_type"].as_u64().unwrap_or(0),
                o["socket_protocol"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(denied, [(2, 2, 1), (10, 2, 58)], "{out:?}");

    // Twin: the same sockets where the sandbox has no network section.
    let out = run_sandboxed_as(
        &scratch,
        "nobody",
        "name: no-network\n",
        &[PYTHON, "-c", &code],
    );
    assert_eq!(out.stdout.trim(), "OK OK OK OK", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// Tries per-packet destination overrides: an IPv6 routing header and an IPv4 loose source
/// route as socket options, a routing header as ancillary data of one `sendmsg`; then an
/// ordinary option with a value longer than a page (the cgroup `setsockopt` program must
/// hand it through: 6.1 fails it with `EFAULT` otherwise) and a plain send to the allowed
/// destination. Prints one result each.
const OVERRIDES: &str = "import socket, errno\n\
    def t(f):\n\
    \x20   try:\n\
    \x20       f(); return 'OK'\n\
    \x20   except OSError as e:\n\
    \x20       return 'ERR-' + errno.errorcode.get(e.errno, str(e.errno))\n\
    rthdr = bytes([0, 2, 2, 1, 0, 0, 0, 0]) + socket.inet_pton(socket.AF_INET6, '::1')\n\
    lsrr = bytes([131, 7, 4, 127, 0, 0, 1, 0])\n\
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
    print(t(lambda: s6.setsockopt(socket.IPPROTO_IPV6, 57, rthdr)),\n\
    \x20     t(lambda: s4.setsockopt(socket.IPPROTO_IP, 4, lsrr)),\n\
    \x20     t(lambda: s6.sendmsg([b'x'], [(socket.IPPROTO_IPV6, 57, rthdr)], 0, ('::1', 9))),\n\
    \x20     t(lambda: s4.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, (1).to_bytes(4, 'little') + bytes(5000))),\n\
    \x20     t(lambda: s6.sendto(b'x', ('::1', 9))))\n";

/// A routing header (or IPv4 source route) would take a datagram judged against an allowed
/// address on to any other: refused as socket option and as ancillary data, with audit
/// records; the plain send is allowed, and without a network section all of them work.
#[test]
fn routing_headers_and_source_routes_are_refused() {
    if !lsm_or_skip("destination_overrides") {
        return;
    }
    let scratch = Scratch::new("overrides");
    let policy = "network:\n  allow:\n    - \"[::1]:9\"\n    - \"127.0.0.1:9\"\n";
    // As root: the kernel itself lets only CAP_NET_RAW set IPv4 options.
    let out = run_sandboxed_as(&scratch, "root", policy, &[PYTHON, "-c", OVERRIDES]);
    assert_eq!(
        out.stdout.trim(),
        "ERR-EPERM ERR-EPERM ERR-EPERM OK OK",
        "{out:?}"
    );
    let got: Vec<(&str, &str)> = out
        .denials("network")
        .iter()
        .map(|r| {
            (
                r["hook"].as_str().unwrap_or_default(),
                r["object"]["option_name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("socket_setsockopt", "IPV6_RTHDR"),
            ("socket_setsockopt", "IP_OPTIONS"),
            ("socket_sendmsg", "IPV6_RTHDR"),
        ],
        "{out:?}"
    );

    // Twin: no network section, so nothing of ours judges these calls.
    let out = run_sandboxed_as(
        &scratch,
        "root",
        "name: no-network\n",
        &[PYTHON, "-c", OVERRIDES],
    );
    assert_eq!(out.stdout.trim(), "OK OK OK OK OK", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// Socket options only (what the cgroup `setsockopt` hook sees): a routing header, an
/// IPv4 source route, then the allowed twins: an ordinary option, and one whose value is
/// longer than the page a cgroup program sees (which 6.1 would fail with `EFAULT` unless
/// the program hands the caller's buffer back), then a plain send.
const OVERRIDE_OPTIONS: &str = "import socket, errno\n\
    def t(f):\n\
    \x20   try:\n\
    \x20       f(); return 'OK'\n\
    \x20   except OSError as e:\n\
    \x20       return 'ERR-' + errno.errorcode.get(e.errno, str(e.errno))\n\
    rthdr = bytes([0, 2, 2, 1, 0, 0, 0, 0]) + socket.inet_pton(socket.AF_INET6, '::1')\n\
    lsrr = bytes([131, 7, 4, 127, 0, 0, 1, 0])\n\
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
    print(t(lambda: s6.setsockopt(socket.IPPROTO_IPV6, 57, rthdr)),\n\
    \x20     t(lambda: s4.setsockopt(socket.IPPROTO_IP, 4, lsrr)),\n\
    \x20     t(lambda: s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)),\n\
    \x20     t(lambda: s4.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, (1).to_bytes(4, 'little') + bytes(5000))),\n\
    \x20     t(lambda: s6.sendto(b'x', ('::1', 9))))\n";

/// Where BPF LSM does not run, the cgroup `setsockopt` hook refuses the same options as
/// `socket_setsockopt` (a routing header would carry a datagram judged against `::1` to
/// any host), with an audit record; ordinary options, long ones included, still work, and
/// without a network section nothing of ours judges them.
#[test]
fn without_bpf_lsm_the_cgroup_hook_refuses_routing_header_options() {
    if !root_or_skip("setsockopt_no_lsm") {
        return;
    }
    if crate::support::bpf_lsm_runs() {
        println!(
            "SKIPPED setsockopt_no_lsm: BPF LSM runs here, and its socket_setsockopt decides \
             first (covered by routing_headers_and_source_routes_are_refused)"
        );
        return;
    }
    let scratch = Scratch::new("setsockopt");
    let policy = "network:\n  allow:\n    - \"[::1]:9\"\n    - \"127.0.0.1:9\"\n";
    // As `nobody`: without BPF LSM `run` refuses a network policy for root (raw frames).
    let out = run_sandboxed_as(
        &scratch,
        "nobody",
        policy,
        &[PYTHON, "-c", OVERRIDE_OPTIONS],
    );
    assert_eq!(out.stdout.trim(), "ERR-EPERM ERR-EPERM OK OK OK", "{out:?}");
    let got: Vec<(&str, &str)> = out
        .denials("network")
        .iter()
        .map(|r| {
            (
                r["hook"].as_str().unwrap_or_default(),
                r["object"]["option_name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("setsockopt", "IPV6_RTHDR"), ("setsockopt", "IP_OPTIONS")],
        "{out:?}"
    );

    // Twin: no network section. The kernel itself may refuse these two options to
    // `nobody` (IPv4 source routes need CAP_NET_RAW); no record of ours may appear.
    let out = run_sandboxed_as(
        &scratch,
        "nobody",
        "name: no-network\n",
        &[PYTHON, "-c", OVERRIDE_OPTIONS],
    );
    assert!(out.stdout.trim().ends_with("OK OK OK"), "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}
