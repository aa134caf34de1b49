//! Unix sockets (LSM `unix_stream_connect`, `unix_may_send`): a pathname socket is judged as
//! a write of its path by the filesystem rules (`EACCES`); an abstract one can only reach a
//! socket created in the same sandbox (`EPERM`).

use std::os::unix::{
    fs::PermissionsExt as _,
    net::{UnixDatagram, UnixListener},
};

use crate::support::{Outcome, PYTHON, Scratch, lsm_or_skip, run_sandboxed};

/// A python probe: for each `(kind, address)` connect (stream) or send (datagram) and print
/// `OK` or `ERR-<errno>`, space separated. An address starting with `@` is abstract.
fn probe(targets: &[(&str, String)]) -> String {
    let list = targets
        .iter()
        .map(|(kind, addr)| format!("({kind:?}, {addr:?})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "import socket, errno\n\
         out = []\n\
         for kind, addr in [{list}]:\n\
         \x20   a = '\\0' + addr[1:] if addr.startswith('@') else addr\n\
         \x20   t = socket.SOCK_STREAM if kind == 'stream' else socket.SOCK_DGRAM\n\
         \x20   s = socket.socket(socket.AF_UNIX, t)\n\
         \x20   try:\n\
         \x20       s.connect(a) if kind == 'stream' else s.sendto(b'x', a)\n\
         \x20       out.append('OK')\n\
         \x20   except OSError as e:\n\
         \x20       out.append('ERR-' + errno.errorcode.get(e.errno, str(e.errno)))\n\
         print(' '.join(out))\n"
    )
}

/// Socket files any sandbox user could write to by DAC, so that only `NemoClaw` can refuse.
fn open_to_all(path: &std::path::Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
}

fn unix_denials(out: &Outcome) -> Vec<(String, String, String)> {
    out.denials("network")
        .iter()
        .map(|r| {
            (
                r["hook"].as_str().unwrap_or("").to_owned(),
                r["errno"].as_str().unwrap_or("").to_owned(),
                r["object"]["unix_socket"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Host listeners (stream and datagram) outside the allowed paths are refused with
/// `EACCES` and audited; their twins in the writable workspace are reached. A network
/// policy without a filesystem section refuses every pathname socket.
#[test]
fn pathname_unix_sockets_are_judged_by_filesystem_rules() {
    if !lsm_or_skip("unix_pathname") {
        return;
    }
    let scratch = Scratch::new("unix-path");
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let work = scratch.path("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let outside_stream = scratch.path("outside.sock");
    let outside_dgram = scratch.path("outside-dgram.sock");
    let inside_stream = work.join("inside.sock");
    let inside_dgram = work.join("inside-dgram.sock");
    let _l1 = UnixListener::bind(&outside_stream).expect("bind");
    let _l2 = UnixListener::bind(&inside_stream).expect("bind");
    let _d1 = UnixDatagram::bind(&outside_dgram).expect("bind");
    let _d2 = UnixDatagram::bind(&inside_dgram).expect("bind");
    for p in [
        &outside_stream,
        &outside_dgram,
        &inside_stream,
        &inside_dgram,
    ] {
        open_to_all(p);
    }
    let show = |p: &std::path::Path| p.display().to_string();
    let targets = [
        ("stream", show(&outside_stream)),
        ("dgram", show(&outside_dgram)),
        ("stream", show(&inside_stream)),
        ("dgram", show(&inside_dgram)),
    ];
    let policy = format!(
        "network:\n  allow: [\"127.0.0.1:1\"]\nfilesystem:\n  allow:\n    - {{path: \"/**\", access: read}}\n    - \"{}/**\"\n",
        work.display()
    );
    let out = run_sandboxed(&scratch, &policy, &[PYTHON, "-c", &probe(&targets)]);
    assert_eq!(out.stdout.trim(), "ERR-EACCES ERR-EACCES OK OK", "{out:?}");
    assert_eq!(
        unix_denials(&out),
        [
            (
                "unix_stream_connect".to_owned(),
                "EACCES".to_owned(),
                show(&outside_stream)
            ),
            (
                "unix_may_send".to_owned(),
                "EACCES".to_owned(),
                show(&outside_dgram)
            ),
        ],
        "{out:?}"
    );
    let records = out.denials("network");
    assert!(records.iter().all(|r| r["rule"]["id"] == 0), "{out:?}");
    assert!(
        records
            .iter()
            .all(|r| r["object"]["ino"].as_u64().is_some_and(|i| i != 0)),
        "{out:?}"
    );

    // No filesystem section: nothing can allow a path, so even the workspace twin is refused.
    let network_only = "network:\n  allow: [\"127.0.0.1:1\"]\n";
    let out = run_sandboxed(
        &scratch,
        network_only,
        &[PYTHON, "-c", &probe(&targets[2..])],
    );
    assert_eq!(out.stdout.trim(), "ERR-EACCES ERR-EACCES", "{out:?}");
    assert_eq!(unix_denials(&out).len(), 2, "{out:?}");
}

/// An abstract socket created outside the sandbox is refused (`EPERM`, audited with the
/// listener's cgroup), for stream connects and datagram sends; two tasks inside the sandbox
/// talk over their own abstract socket.
#[test]
fn abstract_unix_sockets_stay_inside_the_sandbox() {
    if !lsm_or_skip("unix_abstract") {
        return;
    }
    let scratch = Scratch::new("unix-abstract");
    let pid = std::process::id();
    let outer = format!("nemoclaw-test-outer-{pid}");
    let outer_dgram = format!("nemoclaw-test-outer-dgram-{pid}");
    let listener = {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(outer.as_bytes())
            .expect("abstract address");
        UnixListener::bind_addr(&addr).expect("bind abstract")
    };
    let dgram = {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(outer_dgram.as_bytes())
            .expect("abstract address");
        UnixDatagram::bind_addr(&addr).expect("bind abstract")
    };
    let script = format!(
        "{}\n\
         import os, sys\n\
         sys.stdout.flush()\n\
         inner = '\\0nemoclaw-test-inner-{pid}'\n\
         l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); l.bind(inner); l.listen(1)\n\
         d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d.bind(inner + '-dgram')\n\
         if os.fork() == 0:\n\
         \x20   c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
         \x20   r = 'OK'\n\
         \x20   try:\n\
         \x20       c.connect(inner)\n\
         \x20       socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'x', inner + '-dgram')\n\
         \x20   except OSError as e:\n\
         \x20       r = 'ERR-' + errno.errorcode.get(e.errno, str(e.errno))\n\
         \x20   print('child', r, flush=True)\n\
         \x20   os._exit(0)\n\
         os.wait()\n",
        probe(&[
            ("stream", format!("@{outer}")),
            ("dgram", format!("@{outer_dgram}"))
        ])
    );
    let out = run_sandboxed(
        &scratch,
        "network:\n  allow: [\"127.0.0.1:1\"]\n",
        &[PYTHON, "-c", &script],
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, ["ERR-EPERM ERR-EPERM", "child OK"], "{out:?}");
    assert_eq!(
        unix_denials(&out),
        [
            (
                "unix_stream_connect".to_owned(),
                "EPERM".to_owned(),
                format!("@{outer}")
            ),
            (
                "unix_may_send".to_owned(),
                "EPERM".to_owned(),
                format!("@{outer_dgram}")
            ),
        ],
        "{out:?}"
    );
    let own_cgroup = {
        let text = std::fs::read_to_string("/proc/self/cgroup").expect("read cgroup");
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let records = out.denials("network");
    assert!(
        records
            .iter()
            .all(|r| r["object"]["peer_cgroup"].as_u64().is_some()
                && r["object"]["peer_cgroup"] != r["cgroup"]),
        "{out:?} (test runs in {own_cgroup})"
    );
    drop((listener, dgram));
}
