//! Feature probes for `nemoclaw doctor` and for choosing native vs VM runs.

use aya::programs::Lsm;

use super::{
    loader::{chain, open_object},
    lsm::LsmList,
};

/// Whether BPF LSM programs can run here: `bpf` is in the active LSM list (where it is not,
/// programs load and attach and never run), and a trial program (the no-op) loads and
/// attaches. `Err` carries the reason.
pub fn lsm_loadable() -> Result<(), String> {
    let list = LsmList::read().map_err(|e| e.to_string())?;
    if let Some((why, fix)) = list.inactive_reason() {
        return Err(format!("{why}; fix: {fix}"));
    }
    let mut ebpf = open_object().map_err(|e| chain(&e))?;
    let aya_btf = aya::Btf::from_sys_fs().map_err(|e| chain(&e))?;
    let prog: &mut Lsm = ebpf
        .program_mut("noop_bprm_check_security")
        .ok_or("no-op program missing from the object")?
        .try_into()
        .map_err(|e| chain(&e))?;
    prog.load("bprm_check_security", &aya_btf)
        .map_err(|e| format!("load: {}", chain(&e)))?;
    prog.attach()
        .map_err(|e| format!("attach: {}", chain(&e)))?;
    Ok(())
}

/// How many programs named `name` are loaded in the kernel (all owners): a restarted daemon
/// must adopt its pinned programs, not load a second copy.
#[must_use]
pub fn loaded_programs_named(name: &str) -> usize {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str() == Some(name))
        .count()
}
