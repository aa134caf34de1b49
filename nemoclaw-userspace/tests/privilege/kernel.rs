//! What the kernel itself offers a task, closed by `privilege_escalation: deny`: reading
//! the kernel log with `syslog(2)` (whatever the host's `dmesg_restrict`), and mapping the
//! NULL page as root (the kernel's own check is no `capable` call). Twins under `allow`.

use super::{ALLOW, DENY, one_privilege_denial, probe};
use crate::support::{PYTHON, Scratch, lsm_or_skip, run_sandboxed, run_sandboxed_as};

const DMESG_RESTRICT: &str = "/proc/sys/kernel/dmesg_restrict";

/// `kernel.dmesg_restrict` set for one test; the previous value comes back on drop.
struct DmesgRestrict(String);

impl DmesgRestrict {
    fn set(value: &str) -> Self {
        let previous = std::fs::read_to_string(DMESG_RESTRICT).expect("read dmesg_restrict");
        std::fs::write(DMESG_RESTRICT, value).expect("write dmesg_restrict");
        Self(previous)
    }
}

impl Drop for DmesgRestrict {
    fn drop(&mut self) {
        let _ = std::fs::write(DMESG_RESTRICT, self.0.trim());
    }
}

/// Reading the kernel log (`klogctl`) with the host's `dmesg_restrict` off is denied and
/// audited; asking only for its size works.
#[test]
fn kernel_log_cannot_be_read() {
    if !lsm_or_skip("privilege_syslog") {
        return;
    }
    // With the restriction off, any user may read the log: only NemoClaw can refuse.
    let _restrict = DmesgRestrict::set("0");
    let code = probe(
        "buf = ctypes.create_string_buffer(4096)\n\
         report(lambda: check(libc.klogctl(3, buf, 4096)) >= 0)\n\
         report(lambda: check(libc.klogctl(10, None, 0)) > 0)\n",
    );
    let scratch = Scratch::new("syslog");
    let out = run_sandboxed(&scratch, DENY, &[PYTHON, "-c", &code]);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["ERR EPERM", "OK True"],
        "{out:?}"
    );
    let d = one_privilege_denial(&out, "syslog");
    assert_eq!(d["object"]["operation"], "kernel log", "{out:?}");
    assert_eq!(d["object"]["number"], 3, "{out:?}");

    let out = run_sandboxed(&scratch, ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["OK True", "OK True"],
        "{out:?}"
    );
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// Root in the sandbox maps memory at a low address (page 1, what a kernel NULL-dereference
/// exploit needs): denied at `mmap_addr`; an ordinary address maps.
#[test]
fn root_cannot_map_the_null_page() {
    if !lsm_or_skip("privilege_mmap_addr") {
        return;
    }
    let code = probe(
        "libc.mmap.restype = ctypes.c_void_p\n\
         libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]\n\
         def low(addr):\n    \
             p = libc.mmap(addr, 4096, 3, 0x22 | 0x10, -1, 0)\n    \
             if p is None or p == 2**64 - 1:\n        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n    \
             return hex(p)\n\
         report(lambda: low(0x1000))\n\
         report(lambda: low(0x10000000))\n",
    );
    let scratch = Scratch::new("mmap-addr");
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &code]);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["ERR EPERM", "OK 0x10000000"],
        "{out:?}"
    );
    let d = one_privilege_denial(&out, "mmap_addr");
    assert_eq!(d["object"]["operation"], "low memory mapping", "{out:?}");
    assert_eq!(d["object"]["number"], 4096, "{out:?}");

    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["OK 0x1000", "OK 0x10000000"],
        "{out:?}"
    );
    assert!(out.all_denials().is_empty(), "{out:?}");
}
