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

/// The id of the newest loaded program (0 if none). Program ids only grow, so a program
/// loaded after this call has a higher one.
#[must_use]
pub fn newest_program_id() -> u32 {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| p.id())
        .max()
        .unwrap_or(0)
}

/// How many programs named `name` (all owners) have an id above `since` (see
/// [`newest_program_id`]): a restarted daemon must adopt its pinned programs, not load a
/// second copy. Counting the programs loaded since a point, not every program of that
/// name, leaves out older copies still being detached (a standalone run's, which a child
/// process detaches in the background: `kernel::detach`).
#[must_use]
pub fn programs_named_since(name: &str, since: u32) -> usize {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.id() > since && p.name_as_str() == Some(name))
        .count()
}
