//! Feature probes for `nemoclaw doctor` and for choosing native vs VM runs.

use std::os::fd::{FromRawFd as _, OwnedFd};

use aya::programs::Lsm;

use super::{
    btf::Btf,
    loader::{chain, open_object},
    lsm::LsmList,
    raw_link::bpf,
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

/// `enum bpf_cmd`: `BPF_PROG_LOAD`.
const BPF_PROG_LOAD: libc::c_long = 5;
/// `enum bpf_prog_type`: `BPF_PROG_TYPE_LSM`.
const PROG_TYPE_LSM: u32 = 29;
/// `enum bpf_attach_type`: `BPF_LSM_MAC`.
const ATTACH_LSM_MAC: u32 = 27;
/// `enum bpf_func_id`: `BPF_FUNC_d_path`.
const FUNC_D_PATH: i32 = 147;

/// The `BPF_PROG_LOAD` member of `union bpf_attr` up to `attach_btf_obj_fd`.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    _pad: u32,
}

/// One `struct bpf_insn`.
const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64)
        | ((dst as u64 | (src as u64) << 4) << 8)
        | ((off.cast_unsigned() as u64) << 16)
        | ((imm.cast_unsigned() as u64) << 32)
}

/// `bpf_d_path` of the hook's argument `arg` (a `struct path *`) into 16 bytes of stack;
/// returns 0.
const fn d_path_probe(arg: u8) -> [u64; 10] {
    [
        insn(0x79, 6, 1, 8 * arg as i16, 0), // r6 = *(u64 *)(r1 + 8 * arg)
        insn(0x7a, 10, 0, -16, 0),           // *(u64 *)(r10 - 16) = 0
        insn(0x7a, 10, 0, -8, 0),            // *(u64 *)(r10 - 8) = 0
        insn(0xbf, 1, 6, 0, 0),              // r1 = r6
        insn(0xbf, 2, 10, 0, 0),             // r2 = r10
        insn(0x07, 2, 0, 0, -16),            // r2 += -16
        insn(0xb7, 3, 0, 0, 16),             // r3 = 16
        insn(0x85, 0, 0, 0, FUNC_D_PATH),    // call bpf_d_path
        insn(0xb7, 0, 0, 0, 0),              // r0 = 0
        insn(0x95, 0, 0, 0, 0),              // exit
    ]
}

/// The hooks whose programs call `bpf_d_path` where [`d_path_in_path_hooks`] says so
/// (`nemoclaw-ebpf` `fs::path_hook::<true>`, `path_notify`, `path_link` and `path_rename`),
/// each with the index of a `const struct path *` argument.
const D_PATH_HOOKS: &[(&str, u8)] = &[
    ("path_unlink", 0),
    ("path_rmdir", 0),
    ("path_mkdir", 0),
    ("path_symlink", 0),
    ("path_truncate", 0),
    ("path_chmod", 0),
    ("path_chown", 0),
    ("path_notify", 0),
    ("path_link", 1),
    ("path_rename", 0),
];

/// Whether this kernel lets LSM programs on every [`D_PATH_HOOKS`] hook call `bpf_d_path`:
/// for each, a program that does is loaded (not attached) and closed. The kernel allows
/// the helper on the hooks of its "sleepable" list: 6.12's has all of them, 6.1's none.
/// `false` wherever the answer cannot be had (a hook missing, BPF LSM not built in, no
/// privilege): the eBPF side then walks those paths itself, which costs more and judges
/// the same.
#[must_use]
pub fn d_path_in_path_hooks(btf: &Btf) -> bool {
    D_PATH_HOOKS.iter().all(|&(hook, arg)| {
        btf.func_id(&format!("bpf_lsm_{hook}"))
            .is_some_and(|id| loads_on(id, &d_path_probe(arg)))
    })
}

/// The BTF id of the `bpf_path_d_path` kfunc where this kernel has it and lets LSM programs
/// on `path_mknod` call it (6.12; the helper `bpf_d_path` is refused there): a program that
/// calls it is loaded (not attached) and closed. `None` wherever the answer cannot be had;
/// `path_mknod` then walks its path, which costs more and judges the same.
#[must_use]
pub fn path_d_path_kfunc(btf: &Btf) -> Option<u32> {
    let kfunc = btf.func_id("bpf_path_d_path")?;
    let hook = btf.func_id("bpf_lsm_path_mknod")?;
    let mut probe = d_path_probe(0);
    // call kfunc (src_reg 2: `BPF_PSEUDO_KFUNC_CALL`, imm: its id in vmlinux's BTF).
    probe[7] = insn(0x85, 0, 2, 0, kfunc.cast_signed());
    loads_on(hook, &probe).then_some(kfunc)
}

/// Whether `probe` loads as an LSM program on the hook whose `bpf_lsm_<hook>` function has
/// BTF id `attach_btf_id`.
fn loads_on(attach_btf_id: u32, probe: &[u64]) -> bool {
    let license = c"GPL";
    let mut attr = ProgLoad {
        prog_type: PROG_TYPE_LSM,
        insn_cnt: probe.len() as u32,
        insns: probe.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: ATTACH_LSM_MAC,
        attach_btf_id,
        ..ProgLoad::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => {
            // SAFETY: a successful `BPF_PROG_LOAD` returns a new descriptor we own; dropping
            // it unloads the probe.
            drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's instructions encode as the kernel's `struct bpf_insn` does
    /// (`code`, `dst_reg:4 src_reg:4`, `off`, `imm`; little-endian).
    #[test]
    fn probe_instructions_encode_as_bpf_insn() {
        let probe = d_path_probe(0);
        // r6 = *(u64 *)(r1 + 0): code 0x79, dst 6, src 1.
        assert_eq!(probe[0].to_le_bytes(), [0x79, 0x16, 0, 0, 0, 0, 0, 0]);
        // The second argument: r6 = *(u64 *)(r1 + 8).
        assert_eq!(
            d_path_probe(1)[0].to_le_bytes(),
            [0x79, 0x16, 8, 0, 0, 0, 0, 0]
        );
        // *(u64 *)(r10 - 16) = 0: off -16 = 0xfff0.
        assert_eq!(probe[1].to_le_bytes(), [0x7a, 0x0a, 0xf0, 0xff, 0, 0, 0, 0]);
        // r2 += -16: imm 0xfffffff0.
        assert_eq!(
            probe[5].to_le_bytes(),
            [0x07, 0x02, 0, 0, 0xf0, 0xff, 0xff, 0xff]
        );
        // call 147.
        assert_eq!(probe[7].to_le_bytes(), [0x85, 0, 0, 0, 147, 0, 0, 0]);
    }
}
