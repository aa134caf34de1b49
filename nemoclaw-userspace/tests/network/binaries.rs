//! Per-binary rules (`binaries:`): an entry applies only to tasks whose executable is one of
//! the named programs, by (device, inode). A copy of an allowed program is another program.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use crate::support::{PYTHON, Scratch, root_or_skip, run_sandboxed};

use super::tcp_listener;

/// A copy of python3 (a new inode) that the sandbox user may execute.
fn python_copy(scratch: &Scratch) -> std::path::PathBuf {
    let real = std::fs::canonicalize(PYTHON).expect("resolve python3");
    let copy = scratch.path("python-copy");
    std::fs::copy(&real, &copy).expect("copy python3");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}

/// Connects to 127.0.0.1:`port`, prints `OK` or `ERR <errno>`, then stays alive a moment so
/// that the audit log can read its `/proc/<pid>/exe`.
fn probe(port: u16) -> String {
    format!(
        "import socket, errno, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         s.settimeout(5)\n\
         try:\n    s.connect(('127.0.0.1', {port}))\n    print('OK', flush=True)\n\
         except OSError as e:\n    print('ERR', errno.errorcode.get(e.errno, e.errno), flush=True)\n\
         time.sleep(1)\n"
    )
}

/// (kernel dev, inode) of `path`, as the deny event's `exe_inode` carries it.
fn kernel_id(path: &std::path::Path) -> (u64, u64) {
    let m = std::fs::metadata(path).expect("stat");
    (
        nemoclaw_common::exec::kernel_dev(libc::major(m.dev()), libc::minor(m.dev())),
        m.ino(),
    )
}

fn assert_denied_for(out: &crate::support::Outcome, copy: &std::path::Path, port: u16, rule: u64) {
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = out.denials("network");
    assert_eq!(d.len(), 1, "{out:?}");
    assert_eq!(d[0]["hook"], "connect4");
    assert_eq!(d[0]["errno"], "EPERM");
    assert_eq!(d[0]["object"]["address"], "127.0.0.1");
    assert_eq!(d[0]["object"]["port"], u64::from(port));
    assert_eq!(d[0]["rule"]["id"], rule, "{out:?}");
    let (dev, ino) = kernel_id(copy);
    assert_eq!(d[0]["exe_inode"]["dev"], dev, "{out:?}");
    assert_eq!(d[0]["exe_inode"]["ino"], ino, "{out:?}");
    assert_eq!(d[0]["exe"], copy.display().to_string(), "{out:?}");
}

/// `binaries: [python3]` allows python3 and nothing else: the allowed twin connects, a copy
/// of the same program (another inode) is denied by default (rule 0) with an audit record
/// naming the copy.
/// Peer: OpenShell #1496 (binary identity read from `/proc/<pid>/exe` paths).
#[test]
fn per_binary_allow_admits_only_that_binary() {
    if !root_or_skip("per_binary_allow") {
        return;
    }
    let scratch = Scratch::new("bin-allow");
    let copy = python_copy(&scratch);
    let (_l, port) = tcp_listener("127.0.0.1");
    let policy = format!(
        "network:\n  allow:\n    - {{host: 127.0.0.1, ports: [{port}], protocol: tcp, binaries: [python3]}}\n"
    );
    let ok = run_sandboxed(&scratch, &policy, &[PYTHON, "-c", &probe(port)]);
    assert_eq!(ok.stdout.trim(), "OK", "{ok:?}");
    assert!(ok.denials("network").is_empty(), "{ok:?}");

    let copy_arg = copy.display().to_string();
    let no = run_sandboxed(&scratch, &policy, &[&copy_arg, "-c", &probe(port)]);
    assert_denied_for(&no, &copy, port, 0);
}

/// A per-binary deny hits only its binary: with the port allowed for everyone, the copy named
/// in `deny` is refused (citing that rule) while python3 connects.
#[test]
fn per_binary_deny_hits_only_that_binary() {
    if !root_or_skip("per_binary_deny") {
        return;
    }
    let scratch = Scratch::new("bin-deny");
    let copy = python_copy(&scratch);
    let (_l, port) = tcp_listener("127.0.0.1");
    let policy = format!(
        "network:\n  allow:\n    - \"127.0.0.1:{port}\"\n  deny:\n    - {{host: 127.0.0.1, ports: [{port}], binaries: [{}]}}\n",
        copy.display()
    );
    let ok = run_sandboxed(&scratch, &policy, &[PYTHON, "-c", &probe(port)]);
    assert_eq!(ok.stdout.trim(), "OK", "{ok:?}");
    assert!(ok.denials("network").is_empty(), "{ok:?}");

    let copy_arg = copy.display().to_string();
    let no = run_sandboxed(&scratch, &policy, &[&copy_arg, "-c", &probe(port)]);
    assert_denied_for(&no, &copy, port, 2);
}
