//! Kernel interfaces that change the host whatever the filesystem rules say, closed by
//! `privilege_escalation: deny` alone (the policies here have no `filesystem` section):
//! registering a `binfmt_misc` handler (identified by file system type, wherever it is
//! mounted) and the kernel keyrings, which are per uid and so shared by root inside the
//! sandbox and root on the host. Each with its twin under `privilege_escalation: allow`.

use std::{path::PathBuf, process::Command};

use super::{ALLOW, DENY, probe};
use crate::support::{PYTHON, Scratch, lsm_or_skip, run_sandboxed_as};

/// Mounts `binfmt_misc` at `dir` (outside any sandbox), loading the running kernel's module
/// from the VM's unpacked kernel tree when it is not built in.
fn mount_binfmt_misc(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("binfmt_misc mount point");
    let mount = || {
        Command::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success())
    };
    if mount() {
        return;
    }
    let release = nix::sys::utsname::uname().expect("uname");
    let release = release.release().to_string_lossy().into_owned();
    let kernels = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/nemoclaw-vm/kernels");
    let module = std::fs::read_dir(&kernels)
        .expect("the VM's kernel trees")
        .flatten()
        .map(|k| {
            k.path()
                .join(format!("lib/modules/{release}/kernel/fs/binfmt_misc.ko"))
        })
        .find_map(|ko| {
            let xz = ko.with_extension("ko.xz");
            if ko.exists() {
                Some(ko)
            } else if xz.exists() {
                let out = std::env::temp_dir().join("nemoclaw-binfmt_misc.ko");
                let data = Command::new("xz")
                    .arg("-dc")
                    .arg(&xz)
                    .output()
                    .expect("xz -dc");
                std::fs::write(&out, data.stdout).expect("write module");
                Some(out)
            } else {
                None
            }
        })
        .unwrap_or_else(|| {
            panic!(
                "no binfmt_misc module for {release} under {}",
                kernels.display()
            )
        });
    let file = std::fs::File::open(&module).expect("open module");
    // SAFETY: finit_module(2) on an open file with empty parameters.
    let loaded = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            c"".as_ptr(),
            0,
        )
    };
    assert!(
        loaded == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST),
        "finit_module {}: {}",
        module.display(),
        std::io::Error::last_os_error()
    );
    assert!(mount(), "mount binfmt_misc at {}", dir.display());
}

/// Root in the sandbox registers a `binfmt_misc` handler (a program the host's kernel would
/// run for matching files) through a `binfmt_misc` mounted at an unusual path: denied by the
/// file system type, not the path; allowed, it registers.
#[test]
fn root_cannot_register_a_binfmt_handler_wherever_binfmt_misc_is_mounted() {
    if !lsm_or_skip("privilege_binfmt_misc") {
        return;
    }
    let scratch = Scratch::new("binfmt");
    // Not the usual /proc/sys/fs/binfmt_misc: the file system type decides, not the path.
    let dir = scratch.path("bm");
    mount_binfmt_misc(&dir);
    let register = dir.join("register");
    let handler = dir.join("nemoclaw-test");
    let code = probe(&format!(
        "def register():\n    \
             with open({register:?}, 'w') as f:\n        \
                 f.write(':nemoclaw-test:E::nemoclawtest::/bin/true:')\n    \
             return os.path.exists({handler:?})\n\
         report(register)\n",
        register = register.display().to_string(),
        handler = handler.display().to_string(),
    ));
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    assert!(!handler.exists(), "a handler was registered: {out:?}");
    let d = out.denials("privilege");
    assert_eq!(d.len(), 1, "{out:?}");
    assert_eq!(d[0]["hook"], "file_open", "{out:?}");
    assert_eq!(
        d[0]["object"]["path"],
        register.display().to_string(),
        "{out:?}"
    );

    // Twin: allowed, the handler registers; then it is removed again.
    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK True", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
    std::fs::write(&handler, "-1").expect("remove the test handler");
    let _ = Command::new("umount").arg(&dir).status();
}

/// `add_key("user", DESC, "x", KEY_SPEC_USER_KEYRING)` then `keyctl(KEYCTL_UNLINK)` of it,
/// and a use of root's user keyring (`KEYCTL_GET_KEYRING_ID`).
const KEYRING_PROBE: &str = "def add():\n    \
        return check(libc.syscall(248, b'user', b'nemoclaw-test', b'x', 1, ctypes.c_int(-4)))\n\
    def use():\n    \
        return check(libc.syscall(250, 0, ctypes.c_int(-4), 0)) != 0\n\
    report(use)\n\
    report(lambda: add() > 0)\n";

/// Root in the sandbox uses the kernel keyrings it shares with the host (looks up the session
/// keyring, adds a key): refused and audited by `key_permission`; allowed, both work.
#[test]
fn root_cannot_use_the_kernel_keyrings_it_shares_with_the_host() {
    if !lsm_or_skip("privilege_keyrings") {
        return;
    }
    let scratch = Scratch::new("keyrings");
    let code = probe(KEYRING_PROBE);
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &code]);
    // The kernel turns some refusals into `ENOKEY` (a keyring it may not search is one it
    // did not find); the records say who refused.
    assert!(
        out.stdout.lines().count() == 2 && out.stdout.lines().all(|l| l.starts_with("ERR ")),
        "{out:?}"
    );
    let d = out.denials("privilege");
    let hooks: Vec<&str> = d.iter().filter_map(|d| d["hook"].as_str()).collect();
    assert!(hooks.contains(&"key_permission"), "{out:?}");
    assert!(
        hooks
            .iter()
            .all(|h| *h == "key_permission" || *h == "key_alloc"),
        "{out:?}"
    );
    for d in &d {
        assert_eq!(d["rule"]["text"], "privilege_escalation: deny", "{out:?}");
        assert_eq!(d["errno"], "EPERM", "{out:?}");
    }

    // Twin: allowed, both work; the test key is unlinked again.
    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK True\nOK True", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
    let _ = Command::new(PYTHON)
        .args([
            "-c",
            "import ctypes\nlibc = ctypes.CDLL(None)\n\
             k = libc.syscall(250, 10, ctypes.c_int(-4), b'user', b'nemoclaw-test', 0)\n\
             k > 0 and libc.syscall(250, 9, k, ctypes.c_int(-4))\n",
        ])
        .status();
}

/// `clone3(CLONE_INTO_CGROUP)` with a descriptor of the cgroup v2 root: the child would
/// start outside the sandbox (no open of `cgroup.procs` for the file hooks to see).
const CLONE_INTO_ROOT_CGROUP: &str = "class Args(ctypes.Structure):\n    \
        _fields_ = [(n, ctypes.c_uint64) for n in ('flags', 'pidfd', 'child_tid', \
        'parent_tid', 'exit_signal', 'stack', 'stack_size', 'tls', 'set_tid', \
        'set_tid_size', 'cgroup')]\n\
    root = [l.split()[1] for l in open('/proc/mounts') if l.split()[2] == 'cgroup2'][0]\n\
    def clone_into_root():\n    \
        fd = os.open(root, os.O_PATH | os.O_DIRECTORY)\n    \
        a = Args(flags=0x200000000, exit_signal=17, cgroup=fd)\n    \
        pid = check(libc.syscall(435, ctypes.byref(a), ctypes.sizeof(a)))\n    \
        if pid == 0:\n        os._exit(0)\n    \
        os.waitpid(pid, 0)\n    \
        return 'started'\n\
    report(clone_into_root)\n";

/// Root in the sandbox starts a child directly in the root cgroup (`clone3` with
/// `CLONE_INTO_CGROUP`), out of the sandbox's cgroup: denied at `task_alloc`; allowed, the
/// child really starts there.
#[test]
fn root_cannot_start_a_child_in_another_cgroup() {
    if !lsm_or_skip("privilege_clone_into_cgroup") {
        return;
    }
    let scratch = Scratch::new("clone-into-cgroup");
    let code = probe(CLONE_INTO_ROOT_CGROUP);
    let out = run_sandboxed_as(&scratch, "root", DENY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = out.denials("privilege");
    assert_eq!(d.len(), 1, "{out:?}");
    assert_eq!(d[0]["hook"], "task_alloc", "{out:?}");
    assert_eq!(
        d[0]["rule"]["text"], "privilege_escalation: deny",
        "{out:?}"
    );

    // Twin: allowed, the child really starts in the root cgroup (the escape this closes).
    let out = run_sandboxed_as(&scratch, "root", ALLOW, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK started", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}
