//! Exec control: `bprm_check_security` judges the file being executed by its (device,
//! inode), never by argv or name. For `#!` scripts the hook runs again for the interpreter,
//! so both must be allowed.

use core::ffi::c_void;

use aya_ebpf::{helpers::generated::bpf_d_path, programs::LsmContext};
use nemoclaw_common::{
    event::{EVENT_PATH_MAX, counter, hook},
    exec::ExecKey,
    rule::{ACTION_ALLOW, RULE_DEFAULT_DENY},
    sandbox::controls,
};

use crate::{event, kernel, maps::EXEC_RULES, sandbox};

const EPERM: i32 = 1;

pub fn bprm_check_security(ctx: &LsmContext) -> i32 {
    let bprm: *const c_void = ctx.arg(0);
    let retval: i32 = ctx.arg(1);
    if retval != 0 {
        return retval;
    }
    let (cgroup_id, Some(sandbox)) = sandbox::current() else {
        return 0;
    };
    if sandbox.controls & controls::EXEC == 0 {
        return 0;
    }
    event::count(counter::JUDGED);
    let file = kernel::bprm_file(bprm);
    // A file whose identity cannot be read cannot be judged: deny (fail closed).
    let (dev, ino) = kernel::file_dev_ino(file).unwrap_or((0, 0));
    let key = ExecKey { slot: sandbox.slot, _pad: 0, dev, ino };
    // SAFETY: the value is copied out at once.
    let verdict = unsafe { EXEC_RULES.get(&key) }.copied();
    let rule_id = match verdict {
        Some(v) if v.action == ACTION_ALLOW => return 0,
        Some(v) => v.rule_id,
        None => RULE_DEFAULT_DENY,
    };
    event::emit(hook::BPRM_CHECK_SECURITY, cgroup_id, sandbox.slot, rule_id, EPERM as u32, |ev| {
        ev.dev = dev;
        ev.ino = ino;
        // SAFETY: `ev.path` is EVENT_PATH_MAX bytes of reserved ring buffer memory.
        let len = unsafe {
            bpf_d_path(kernel::file_path(file), ev.path.as_mut_ptr().cast(), EVENT_PATH_MAX as u32)
        };
        ev.path_len = if len > 0 { len as u32 } else { 0 };
    });
    -EPERM
}
