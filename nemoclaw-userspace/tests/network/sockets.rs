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

/// As an ordinary user the kernel would refuse raw sockets for lack of CAP_NET_RAW, but
/// NemoClaw decides first: the denial is in the audit log.
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
    let lsm = std::process::Command::new(crate::support::nemoclaw())
        .args(["doctor", "--quiet-lsm-check"])
        .status()
        .is_ok_and(|s| s.success());
    if lsm {
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
