//! Process control: `bprm_check_security` judges the executed file by (device, inode).

use crate::support::{PYTHON, Scratch, lsm_or_skip, run_sandboxed};

const POLICY: &str = "process:\n  allow:\n    - python3\n    - \"true\"\n  deny:\n    - cat\n";

fn exec_probe(argv: &[&str]) -> String {
    format!(
        "import subprocess, errno\n\
         try:\n    r = subprocess.run({argv:?})\n    print('OK', r.returncode)\n\
         except OSError as e:\n    print('ERR', errno.errorcode.get(e.errno, e.errno))\n"
    )
}

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

#[test]
fn exec_denied_binary_fails_with_eperm_and_cites_rule() {
    if !lsm_or_skip("exec_denied") {
        return;
    }
    let scratch = Scratch::new("exec-deny");
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", &exec_probe(&["/usr/bin/cat", "/dev/null"])]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = out.denials("process");
    assert_eq!(d.len(), 1, "{out:?}");
    assert_eq!(d[0]["hook"], "bprm_check_security");
    assert_eq!(d[0]["errno"], "EPERM");
    assert_eq!(d[0]["rule"]["section"], "process.deny");
    assert_eq!(d[0]["rule"]["text"], "cat");
    assert!(d[0]["object"]["path"].as_str().is_some_and(|p| p.ends_with("/cat")), "{d:?}");
    assert!(d[0]["exe"].as_str().is_some_and(|p| p.contains("python3")), "{d:?}");
    assert_eq!(d[0]["uid"], 65534);
}

/// A binary named nowhere in the policy is denied by default (rule 0).
#[test]
fn exec_unlisted_binary_denied_by_default() {
    if !lsm_or_skip("exec_default_deny") {
        return;
    }
    let scratch = Scratch::new("exec-default");
    let out = run_sandboxed(&scratch, POLICY, &[PYTHON, "-c", &exec_probe(&["/usr/bin/ls", "/"])]);
    assert_eq!(out.stdout.trim(), "ERR EPERM", "{out:?}");
    let d = out.denials("process");
    assert_eq!(d.len(), 1, "{out:?}");
    assert_eq!(d[0]["rule"]["id"], 0);
    assert!(d[0]["object"]["path"].as_str().is_some_and(|p| p.ends_with("/ls")), "{d:?}");
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
