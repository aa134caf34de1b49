//! `run` refuses, before running anything, a policy whose controls this kernel cannot
//! enforce; and refuses bad policies with a located error.

use crate::support::{PYTHON, Scratch, bpf_lsm_runs, root_or_skip, run_sandboxed};

/// Where BPF LSM cannot run, a policy with a process control is refused, never run half
/// enforced: `run` exits non-zero naming `nemoclaw doctor` and the fix, and the command never
/// started. Skipped where BPF LSM loads (the VM suite enforces it there).
#[test]
fn process_policy_refused_where_bpf_lsm_cannot_load() {
    if !root_or_skip("refuse_without_lsm") {
        return;
    }
    if bpf_lsm_runs() {
        println!(
            "SKIPPED refuse_without_lsm: BPF LSM loads on this kernel (covered by the VM suite)"
        );
        return;
    }
    let scratch = Scratch::new("refuse");
    let marker = scratch.path("ran");
    let script = format!("open({:?}, 'w').write('x')", marker.display().to_string());
    let out = run_sandboxed(
        &scratch,
        "process:\n  allow:\n    - python3\n",
        &[PYTHON, "-c", &script],
    );
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("process control cannot be enforced"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nemoclaw doctor"), "{}", out.stderr);
    // Where BPF LSM is built in but not active the fix is the boot parameter
    // (`lsm_inactive` checks it); where programs cannot load at all, the VM.
    let inactive = nemoclaw::kernel::lsm::LsmList::read().is_ok_and(|l| !l.has_bpf());
    let fix = if inactive { ",bpf`" } else { "cargo xtask vm" };
    assert!(out.stderr.contains(fix), "{}", out.stderr);
    assert!(
        !marker.exists(),
        "the command ran although its policy could not be enforced"
    );
}

/// A malformed policy (an unknown key) is refused with its file and line, and the command
/// never starts.
#[test]
fn malformed_policy_is_refused_with_location() {
    if !root_or_skip("malformed_policy") {
        return;
    }
    let scratch = Scratch::new("malformed");
    let marker = scratch.path("ran");
    let script = format!("open({:?}, 'w').write('x')", marker.display().to_string());
    let out = run_sandboxed(
        &scratch,
        "network:\n  allow:\n    - \"127.0.0.1:443\"\n  bogus: 1\n",
        &[PYTHON, "-c", &script],
    );
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("policy.yaml:4:"), "{}", out.stderr);
    assert!(out.stderr.contains("bogus"), "{}", out.stderr);
    assert!(
        !marker.exists(),
        "the command ran although its policy was malformed"
    );
}
