//! Process control: `bprm_check_security` judges the executed file by (device, inode).

use std::os::unix::fs::PermissionsExt as _;

use crate::support::{
    FullPreemption, Outcome, PYTHON, Scratch, contend, lsm_or_skip, run_sandboxed,
};

const POLICY: &str = "process:\n  allow:\n    - python3\n    - \"true\"\n  deny:\n    - cat\n";

fn exec_probe(argv: &[&str]) -> String {
    format!(
        "import subprocess, errno\n\
         try:\n    r = subprocess.run({argv:?})\n    print('OK', r.returncode)\n\
         except OSError as e:\n    print('ERR', errno.errorcode.get(e.errno, e.errno))\n"
    )
}

/// The allowed twin of the process escapes: an allowed binary runs, with no denial.
#[test]
fn exec_allowed_binary_runs() {
    if !lsm_or_skip("exec_allowed") {
        return;
    }
    let scratch = Scratch::new("exec-ok");
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", &exec_probe(&["true"])]);
    assert_eq!(out.stdout.trim(), "OK 0", "{out:?}");
    assert!(out.denials("process").is_empty(), "{out:?}");
}

/// Executing a denied binary fails with `EPERM`, and the audit record names the binary, the
/// rule, the executable that tried and the user.
#[test]
fn exec_denied_binary_fails_with_eperm_and_cites_rule() {
    if !lsm_or_skip("exec_denied") {
        return;
    }
    let scratch = Scratch::new("exec-deny");
    // The exec is tried by the probe itself, which then lives on for a moment: the audit
    // reader names the task's executable from `/proc/<tgid>/exe` while it still exists (a
    // `subprocess` child would exit at once and race it).
    let probe = "import errno, os, time\n\
                 try:\n    os.execv('/usr/bin/cat', ['cat', '/dev/null'])\n\
                 except OSError as e:\n    print('ERR', errno.errorcode.get(e.errno, e.errno), flush=True)\n\
                 time.sleep(2)\n";
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", probe]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = out.denials("process");
    assert_eq!(d.len(), 1, "{out:?}");
    assert_eq!(d[0]["hook"], "bprm_check_security");
    assert_eq!(d[0]["errno"], "EPERM");
    assert_eq!(d[0]["rule"]["section"], "process.deny");
    assert_eq!(d[0]["rule"]["text"], "cat");
    assert!(
        d[0]["object"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/cat")),
        "{d:?}"
    );
    assert!(
        d[0]["exe"].as_str().is_some_and(|p| p.contains("python3")),
        "{d:?}"
    );
    assert_eq!(d[0]["uid"], 65534);
}

/// A binary named nowhere in the policy is denied by default (rule 0).
#[test]
fn exec_unlisted_binary_denied_by_default() {
    if !lsm_or_skip("exec_default_deny") {
        return;
    }
    let scratch = Scratch::new("exec-default");
    let out = run_sandboxed(
        &scratch,
        POLICY,
        &[PYTHON, "-c", &exec_probe(&["/usr/bin/ls", "/"])],
    );
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = out.denials("process");
    assert_eq!(d.len(), 1, "{out:?}");
    assert_eq!(d[0]["rule"]["id"], 0);
    assert!(
        d[0]["object"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/ls")),
        "{d:?}"
    );
}

/// The command `run` starts is itself judged: a denied command never runs.
#[test]
fn sandbox_command_itself_is_judged() {
    if !lsm_or_skip("exec_command_judged") {
        return;
    }
    let scratch = Scratch::new("exec-cmd");
    let out = run_sandboxed(&scratch, POLICY, &["/bin/cat", "/proc/self/status"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(out.denials("process").len(), 1, "{out:?}");
}

// Escape tests: each known way around "exec judged by identity" must fail, with an allowed
// twin that shows the probe itself works.

/// A probe prologue: `report(fn)` prints `OK <value>` or `ERR <errno name>`, and `run(argv)`
/// execs through `subprocess` and returns the exit code.
const PRELUDE: &str = "import ctypes, errno, mmap, os, shutil, subprocess, sys\n\
    libc = ctypes.CDLL(None, use_errno=True)\n\
    def report(f):\n    \
        try:\n        v = f()\n    \
        except OSError as e:\n        print('ERR', errno.errorcode.get(e.errno, e.errno)); return\n    \
        print('OK', v)\n\
    def run(argv, **kw):\n    \
        return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw).returncode\n";

/// `load(path)`: `dlopen`, with ld.so's text for a refused mmap turned into `EPERM`.
const LOAD: &str = "def load(p):\n    \
    try:\n        ctypes.CDLL(p); return 'loaded'\n    \
    except OSError as e:\n        \
        if 'failed to map segment' in str(e): raise OSError(errno.EPERM, str(e))\n        \
        raise\n";

fn escape_probe(body: &str) -> String {
    format!("{PRELUDE}{body}\n")
}

/// A scratch directory the sandbox user (`nobody`) may write, like an agent's workspace.
fn workspace(scratch: &Scratch) -> std::path::PathBuf {
    let dir = scratch.path("workspace");
    std::fs::create_dir_all(&dir).expect("create workspace");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
        .expect("chmod workspace");
    dir
}

/// The one `process` denial of `out`, with its hook and path checked.
fn one_process_denial<'a>(
    out: &'a Outcome,
    hook: &str,
    path: impl Fn(&str) -> bool,
) -> &'a serde_json::Value {
    let d = out.denials("process");
    assert_eq!(d.len(), 1, "expected one process denial: {out:?}");
    assert_eq!(d[0]["hook"], hook, "{out:?}");
    assert_eq!(d[0]["errno"], "EPERM", "{out:?}");
    assert!(
        d[0]["object"]["path"].as_str().is_some_and(&path),
        "{out:?}"
    );
    d[0]
}

/// A copy of a denied binary under a new name in the workspace is a new inode, allowed by
/// nothing. The twin runs the allowed original.
#[test]
fn escape_copy_of_denied_binary_is_denied() {
    if !lsm_or_skip("escape_copy") {
        return;
    }
    let scratch = Scratch::new("esc-copy");
    let ws = workspace(&scratch);
    let code = escape_probe(&format!(
        "shutil.copy('/usr/bin/cat', {kitty:?})\nos.chmod({kitty:?}, 0o755)\n\
         report(lambda: run([{kitty:?}, '/dev/null']))\n\
         report(lambda: run(['/usr/bin/true']))\n",
        kitty = ws.join("kitty").to_str().expect("utf-8"),
    ));
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM\nOK 0", "{out:?}");
    let d = one_process_denial(&out, "bprm_check_security", |p| {
        p.ends_with("/workspace/kitty")
    });
    assert_eq!(d["rule"]["id"], 0);
}

/// A symlink named like an allowed binary, pointing to a denied one: the kernel judges the
/// file the link resolves to. The twin's link points to the allowed binary.
#[test]
fn escape_symlink_named_like_allowed_binary_is_denied() {
    if !lsm_or_skip("escape_symlink") {
        return;
    }
    let scratch = Scratch::new("esc-symlink");
    let bin = scratch.path("bin");
    std::fs::create_dir(&bin).expect("mkdir bin");
    std::os::unix::fs::symlink("/usr/bin/cat", bin.join("true")).expect("symlink");
    std::os::unix::fs::symlink("/usr/bin/true", bin.join("true-real")).expect("symlink");
    let code = escape_probe(&format!(
        "report(lambda: run([{fake:?}, '/dev/null']))\nreport(lambda: run([{real:?}]))\n",
        fake = bin.join("true").to_str().expect("utf-8"),
        real = bin.join("true-real").to_str().expect("utf-8"),
    ));
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM\nOK 0", "{out:?}");
    let d = one_process_denial(&out, "bprm_check_security", |p| p == "/usr/bin/cat");
    assert_eq!(d["rule"]["section"], "process.deny");
}

/// `ld.so /usr/bin/curl`: even with the dynamic loader allowed, it cannot map a binary the
/// policy does not allow (`mmap_file` with `PROT_EXEC`). The twin loads an allowed binary.
#[test]
fn escape_ld_so_running_denied_binary_is_denied() {
    if !lsm_or_skip("escape_ld_so") {
        return;
    }
    let policy = "process:\n  allow:\n    - python3\n    - \"true\"\n    - /lib64/ld-linux-x86-64.so.2\n  deny:\n    - curl\n";
    let scratch = Scratch::new("esc-ldso");
    let code = escape_probe(
        "ld = '/lib64/ld-linux-x86-64.so.2'\n\
         report(lambda: run([ld, '/usr/bin/curl', '--version']))\n\
         report(lambda: run([ld, '/usr/bin/true']))\n",
    );
    let out = run_sandboxed(&scratch, policy, &[PYTHON, "-c", &code]);
    // ld.so reports the failed mapping and exits 127.
    assert_eq!(out.stdout.trim(), "OK 127\nOK 0", "{out:?}");
    let d = one_process_denial(&out, "mmap_file", |p| p == "/usr/bin/curl");
    assert_eq!(d["rule"]["section"], "process.deny");
    assert_eq!(d["rule"]["text"], "curl");
}

/// `dlopen` of a library copied into the workspace: not a library directory, not an allowed
/// binary. The twin loads the same library from /usr/lib.
#[test]
fn escape_dlopen_of_workspace_library_is_denied() {
    if !lsm_or_skip("escape_dlopen") {
        return;
    }
    let scratch = Scratch::new("esc-dlopen");
    let ws = workspace(&scratch);
    let code = escape_probe(&format!(
        "shutil.copy('/usr/lib/x86_64-linux-gnu/libz.so.1', {copy:?})\n\
         {LOAD}\
         report(lambda: load({copy:?}))\n\
         report(lambda: load('libz.so.1'))\n",
        copy = ws.join("libz.so.1").to_str().expect("utf-8"),
    ));
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM\nOK loaded", "{out:?}");
    let d = one_process_denial(&out, "mmap_file", |p| p.ends_with("/workspace/libz.so.1"));
    assert_eq!(d["rule"]["id"], 0);
}

/// `process.libraries` replaces the library directories: a library in a listed workspace
/// directory loads; the same library one directory over (not listed) is refused.
#[test]
fn library_directories_from_the_policy_replace_the_defaults() {
    if !lsm_or_skip("library_directories") {
        return;
    }
    let scratch = Scratch::new("libdirs");
    let ws = workspace(&scratch);
    let listed = ws.join("lib");
    let policy = format!(
        "process:\n  allow:\n    - python3\n  libraries:\n    - /usr/lib/**\n    - \"{}/**\"\n",
        listed.display()
    );
    let code = escape_probe(&format!(
        "os.makedirs({lib:?}); os.makedirs({other:?})\n\
         for d in ({lib:?}, {other:?}):\n    \
             shutil.copy('/usr/lib/x86_64-linux-gnu/libz.so.1', d + '/libz.so.1')\n\
         {LOAD}\
         report(lambda: load({lib:?} + '/libz.so.1'))\n\
         report(lambda: load({other:?} + '/libz.so.1'))\n",
        lib = listed.to_str().expect("utf-8"),
        other = ws.join("other").to_str().expect("utf-8"),
    ));
    let out = run_sandboxed(&scratch, &policy, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK loaded\nERR EPERM", "{out:?}");
    let d = one_process_denial(&out, "mmap_file", |p| {
        p.ends_with("/workspace/other/libz.so.1")
    });
    assert_eq!(d["rule"]["id"], 0);
}

/// Full preemption (see `filesystem::fs_escape_preempted_open_judged_on_another_tasks_path`):
/// the executable-mapping check builds the file's path in a per-CPU buffer too. Two tasks of
/// one sandbox on one CPU map, for seconds, a file in a listed library directory and the
/// same file in an unlisted directory whose path has the same length. Not one executable
/// mapping of the unlisted one may succeed; the listed one keeps mapping (a run whose buffer
/// was taken over is denied: those are counted and printed).
#[test]
fn escape_preempted_mmap_judged_on_another_tasks_path() {
    if !lsm_or_skip("escape_preempted_mmap") {
        return;
    }
    let Some(_full) = FullPreemption::switch() else {
        println!("SKIPPED escape_preempted_mmap: no run-time preemption switch");
        return;
    };
    let scratch = Scratch::new("preempt-mmap");
    let ws = workspace(&scratch);
    let policy = format!(
        "process:\n  allow:\n    - python3\n  libraries:\n    - /usr/lib/**\n    - \"{}/lib/**\"\n",
        ws.display()
    );
    let setup = format!(
        "W = {ws:?}\n\
         fds = {{}}\n\
         for d in ('lib', 'bad'):\n    \
             os.makedirs(W + '/' + d)\n    \
             shutil.copy('/usr/lib/x86_64-linux-gnu/libz.so.1', W + '/' + d + '/x.so')\n    \
             fds[d] = os.open(W + '/' + d + '/x.so', os.O_RDONLY)",
        ws = ws.to_str().expect("utf-8"),
    );
    let code = escape_probe(&contend(
        &setup,
        "mmap.mmap(fds[name], 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC).close()",
        "bad",
        "lib",
    ));
    let out = run_sandboxed(&scratch, &policy, &[PYTHON, "-c", &code]);
    let (bad_ok, bad_denied) = out.counts("bad");
    let (lib_ok, lib_denied) = out.counts("lib");
    println!(
        "preempted executable mappings: unlisted {bad_ok} mapped / {bad_denied} denied; listed \
         {lib_ok} mapped / {lib_denied} denied (buffer taken over)"
    );
    assert_eq!(
        bad_ok,
        0,
        "the unlisted file was mapped executable: {}",
        out.brief()
    );
    assert!(bad_denied > 0 && lib_ok > 0, "{}", out.brief());
    assert!(
        out.denials("process")
            .iter()
            .any(|d| d["hook"] == "mmap_file"
                && d["errno"] == "EPERM"
                && d["object"]["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/workspace/bad/x.so"))),
        "no mmap_file denial of the unlisted file: {}",
        out.brief()
    );
}

/// memfd exec: a copy of an allowed binary in a memfd is a new inode. Both the `/proc/self/fd`
/// route and `execveat(fd, "", AT_EMPTY_PATH)` (Python's `os.execve(fd, ...)`) are refused,
/// and so is mapping the memfd executable. The twin runs the allowed original.
/// Peer: KubeArmor #988 (code executed from memory, not from a path).
#[test]
fn escape_memfd_exec_is_denied() {
    if !lsm_or_skip("escape_memfd") {
        return;
    }
    let scratch = Scratch::new("esc-memfd");
    let code = escape_probe(
        "fd = os.memfd_create('payload', 0)\n\
         os.write(fd, open('/usr/bin/true', 'rb').read())\n\
         report(lambda: run([f'/proc/self/fd/{fd}'], pass_fds=[fd]))\n\
         def fexec():\n    \
             pid = os.fork()\n    \
             if pid == 0:\n        \
                 try:\n            os.execve(fd, ['payload'], {})\n        \
                 except OSError as e:\n            os._exit(e.errno)\n    \
             return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n\
         print('fexecve', errno.errorcode.get(fexec()))\n\
         report(lambda: mmap.mmap(fd, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC) and 'mapped')\n\
         report(lambda: run(['/usr/bin/true']))\n",
    );
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", &code]);
    assert_eq!(
        out.stdout.trim(),
        "ERR EPERM\nfexecve EPERM\nERR EPERM\nOK 0",
        "{out:?}"
    );
    let d = out.denials("process");
    let hooks: Vec<_> = d
        .iter()
        .map(|d| d["hook"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        hooks,
        ["bprm_check_security", "bprm_check_security", "mmap_file"],
        "{out:?}"
    );
    for d in &d {
        assert!(
            d["object"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/memfd:payload")),
            "{d:?}"
        );
        assert_eq!(d["rule"]["id"], 0);
    }
}

/// A deleted file (nlink 0) still open: exec through `/proc/self/fd` is refused.
#[test]
fn escape_deleted_file_exec_is_denied() {
    if !lsm_or_skip("escape_deleted") {
        return;
    }
    let scratch = Scratch::new("esc-deleted");
    let ws = workspace(&scratch);
    let code = escape_probe(&format!(
        "shutil.copy('/usr/bin/true', {t:?})\nos.chmod({t:?}, 0o755)\n\
         fd = os.open({t:?}, os.O_RDONLY)\nos.unlink({t:?})\n\
         report(lambda: run([f'/proc/self/fd/{{fd}}'], pass_fds=[fd]))\n\
         report(lambda: run(['/usr/bin/true']))\n",
        t = ws.join("t").to_str().expect("utf-8"),
    ));
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM\nOK 0", "{out:?}");
    one_process_denial(&out, "bprm_check_security", |p| {
        p.ends_with("/workspace/t (deleted)")
    });
}

/// A `#!` script whose interpreter is denied: the kernel judges the interpreter too. The
/// twin's interpreter is allowed. Both scripts are allowed by the policy.
#[test]
fn escape_shebang_with_denied_interpreter_is_denied() {
    if !lsm_or_skip("escape_shebang") {
        return;
    }
    let scratch = Scratch::new("esc-shebang");
    let bad = scratch.path("bad.sh");
    let good = scratch.path("good.sh");
    std::fs::write(&bad, "#!/usr/bin/cat\n").expect("write script");
    std::fs::write(&good, "#!/usr/bin/true\n").expect("write script");
    for s in [&bad, &good] {
        std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let (bad, good) = (bad.to_str().expect("utf-8"), good.to_str().expect("utf-8"));
    let policy = format!(
        "process:\n  allow:\n    - python3\n    - \"true\"\n    - {bad}\n    - {good}\n  deny:\n    - cat\n"
    );
    let code = escape_probe(&format!(
        "report(lambda: run([{bad:?}]))\nreport(lambda: run([{good:?}]))\n"
    ));
    let out = run_sandboxed(&scratch, &policy, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM\nOK 0", "{policy}\n{out:?}");
    let d = one_process_denial(&out, "bprm_check_security", |p| p == "/usr/bin/cat");
    assert_eq!(d["rule"]["section"], "process.deny");
}

/// `mprotect(PROT_EXEC)` on a mapping of a file that is neither an allowed binary nor a
/// library (here a workspace copy of a denied one); the twin does it on libc, which the
/// loader mapped executable from /usr/lib.
#[test]
fn escape_mprotect_exec_of_file_mapping_is_denied() {
    if !lsm_or_skip("escape_mprotect") {
        return;
    }
    let scratch = Scratch::new("esc-mprotect");
    let ws = workspace(&scratch);
    let code = escape_probe(&format!(
        "libc.mmap.restype = ctypes.c_void_p\n\
         libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]\n\
         libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]\n\
         def mprotect_exec(path):\n    \
             fd = os.open(path, os.O_RDONLY)\n    \
             addr = libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)\n    \
             if libc.mprotect(addr, 4096, mmap.PROT_READ | mmap.PROT_EXEC) != 0:\n        \
                 e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n    \
             return 'executable'\n\
         shutil.copy('/usr/bin/cat', {copy:?})\n\
         report(lambda: mprotect_exec({copy:?}))\n\
         report(lambda: mprotect_exec('/usr/lib/x86_64-linux-gnu/libc.so.6'))\n",
        copy = ws.join("cat-copy").to_str().expect("utf-8"),
    ));
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "ERR EPERM\nOK executable", "{out:?}");
    let d = out.denials("process");
    assert_eq!(d.len(), 1, "{out:?}");
    assert_eq!(d[0]["hook"], "file_mprotect");
    assert!(
        d[0]["object"]["ino"].as_u64().is_some_and(|i| i > 0),
        "{out:?}"
    );
}

/// Anonymous executable memory stays allowed, so JITs work.
#[test]
fn anonymous_exec_memory_is_allowed() {
    if !lsm_or_skip("exec_anon_memory") {
        return;
    }
    let scratch = Scratch::new("exec-anon");
    let code = escape_probe(
        "m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n\
         m.write(b'\\xc3')\nprint('OK mapped')\n",
    );
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", &code]);
    assert_eq!(out.stdout.trim(), "OK mapped", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// The three ways to run code of the task's own making without `execve`: anonymous private
/// executable memory (as JITs make it), a writable and executable mapping, and a file mapping (here of the
/// allowed `python3` binary) whose private pages were written and then made executable.
const SELF_MADE_CODE: &str = "import mmap, ctypes, errno\n\
    libc = ctypes.CDLL(None, use_errno=True)\n\
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]\n\
    def t(f):\n\
    \x20   try:\n\
    \x20       f(); return 'OK'\n\
    \x20   except OSError as e:\n\
    \x20       return 'ERR-' + errno.errorcode.get(e.errno, str(e.errno))\n\
    def protect(m, prot):\n\
    \x20   addr = ctypes.addressof(ctypes.c_char.from_buffer(m))\n\
    \x20   if libc.mprotect(addr, mmap.PAGESIZE, prot) != 0:\n\
    \x20       e = ctypes.get_errno(); raise OSError(e, 'mprotect')\n\
    def anonymous():\n\
    \x20   m = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)\n\
    \x20   m.write(b'\\xc3'); protect(m, mmap.PROT_READ | mmap.PROT_EXEC)\n\
    def rwx():\n\
    \x20   mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n\
    def patched_library():\n\
    \x20   f = open('/proc/self/exe', 'rb')\n\
    \x20   m = mmap.mmap(f.fileno(), 4096, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)\n\
    \x20   m[0:1] = b'\\xc3'; protect(m, mmap.PROT_READ | mmap.PROT_EXEC)\n\
    print(t(anonymous), t(rwx), t(patched_library))\n";

/// `process.anonymous_exec: deny` refuses code of the task's own making (the strict
/// example policy's setting); the default (the twin, and the baseline) allows it for JITs.
#[test]
fn anonymous_exec_deny_refuses_self_made_code_and_the_default_allows_it() {
    if !lsm_or_skip("exec_anon_deny") {
        return;
    }
    let scratch = Scratch::new("exec-anon-deny");
    let strict = format!("{POLICY}  anonymous_exec: deny\n");
    let out = run_sandboxed(&scratch, &strict, &[PYTHON, "-c", SELF_MADE_CODE]);
    assert_eq!(
        out.stdout.trim(),
        "ERR-EPERM ERR-EPERM ERR-EPERM",
        "{out:?}"
    );
    let d = out.denials("process");
    let hooks: Vec<&str> = d.iter().filter_map(|r| r["hook"].as_str()).collect();
    assert_eq!(
        hooks,
        ["file_mprotect", "mmap_file", "file_mprotect"],
        "{out:?}"
    );
    for r in &d {
        assert_eq!(r["rule"]["text"], "anonymous_exec: deny", "{out:?}");
        assert_eq!(r["errno"], "EPERM", "{out:?}");
    }

    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", SELF_MADE_CODE]);
    assert_eq!(out.stdout.trim(), "OK OK OK", "{out:?}");
    assert!(out.all_denials().is_empty(), "{out:?}");
}

/// Root in the sandbox creates a cgroup below the sandbox's and moves into it: its tasks
/// are still judged by the sandbox's policy (the kernel side looks up the ancestor).
#[test]
fn moving_into_a_child_cgroup_does_not_escape() {
    if !lsm_or_skip("exec_child_cgroup") {
        return;
    }
    let scratch = Scratch::new("exec-child-cgroup");
    let script = "import os, subprocess, errno\n\
                  rel = open('/proc/self/cgroup').read().strip().split('::')[-1]\n\
                  mnt = [l.split()[1] for l in open('/proc/mounts') if l.split()[2] == 'cgroup2'][0]\n\
                  child = mnt + rel + '/escape'\n\
                  os.mkdir(child)\n\
                  open(child + '/cgroup.procs', 'w').write(str(os.getpid()))\n\
                  print('moved', open('/proc/self/cgroup').read().strip().endswith('/escape'))\n\
                  try:\n    subprocess.run(['/usr/bin/cat', '/dev/null']); print('ran')\n\
                  except OSError as e:\n    print('ERR', errno.errorcode.get(e.errno, e.errno))\n\
                  r = subprocess.run(['true']); print('twin', r.returncode)\n";
    let out = crate::support::run_sandboxed_as(&scratch, "root", POLICY, &[PYTHON, "-c", script]);
    assert_eq!(
        out.stdout.trim(),
        "moved True\nERR EPERM\ntwin 0",
        "{out:?}"
    );
    let d = out.denials("process");
    assert_eq!(d.len(), 1, "{out:?}");
    assert_eq!(d[0]["rule"]["text"], "cat");
}

/// `dir/**` rules judge the executed file's resolved path: any file beneath an allowed
/// directory runs, even one created after the policy was compiled, and also through a
/// symlink from elsewhere or through the loader; a deeper `dir/**` deny wins; a copy outside
/// is denied by default.
#[test]
fn exec_dir_rules_judge_resolved_paths() {
    if !lsm_or_skip("exec_dir_rules") {
        return;
    }
    let scratch = Scratch::new("exec-dir");
    let tools = scratch.path("tools");
    std::fs::create_dir_all(tools.join("bad")).expect("mkdir tools/bad");
    for dir in [&tools, &tools.join("bad")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    std::fs::copy("/usr/bin/true", tools.join("t1")).expect("copy");
    let ws = workspace(&scratch);
    let t = tools.to_str().expect("utf-8");
    let policy = format!(
        "process:\n  allow:\n    - python3\n    - /lib64/ld-linux-x86-64.so.2\n    - {t}/**\n  deny:\n    - {t}/bad/**\n"
    );
    let code = escape_probe(&format!(
        "tools, ws = {t:?}, {ws:?}\n\
         def place(path):\n    shutil.copy('/usr/bin/true', path); os.chmod(path, 0o755); return path\n\
         report(lambda: run([tools + '/t1']))\n\
         report(lambda: run([place(tools + '/new')]))\n\
         os.symlink(tools + '/t1', ws + '/link')\n\
         report(lambda: run([ws + '/link']))\n\
         report(lambda: run(['/lib64/ld-linux-x86-64.so.2', tools + '/t1']))\n\
         report(lambda: run([place(tools + '/bad/t2')]))\n\
         report(lambda: run([place(ws + '/t3')]))\n",
        ws = ws.to_str().expect("utf-8"),
    ));
    let out = run_sandboxed(&scratch, &policy, &[PYTHON, "-c", &code]);
    assert_eq!(
        out.stdout.trim(),
        "OK 0\nOK 0\nOK 0\nOK 0\nERR EPERM\nERR EPERM",
        "{out:?}"
    );
    let d = out.denials("process");
    assert_eq!(d.len(), 2, "{out:?}");
    assert!(
        d[0]["object"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/tools/bad/t2")),
        "{out:?}"
    );
    assert_eq!(d[0]["rule"]["section"], "process.deny");
    assert_eq!(d[0]["rule"]["text"], format!("{t}/bad/**"));
    assert!(
        d[1]["object"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/workspace/t3")),
        "{out:?}"
    );
    assert_eq!(d[1]["rule"]["id"], 0);
}
