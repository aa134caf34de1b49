//! The object's kfunc calls, which aya 0.14 cannot relocate: `nemoclaw-ebpf` writes each as
//! its instruction with a marker in `imm` (`fs/d_path.rs`, `kfunc`), and before load this
//! module writes the kfunc's BTF id in this kernel's vmlinux there, or, where the kernel
//! lacks it, replaces the call with `r0 = -EINVAL` (a verifier refuses an unknown kfunc
//! even in code it never visits; the program's `.rodata` flag keeps it from being reached).

/// `call` of a kfunc (`BPF_JMP | BPF_CALL`, `src_reg` 2 = `BPF_PSEUDO_KFUNC_CALL`) with the
/// marker `imm` `0x7fff_fff0`, as the 8 bytes of its `struct bpf_insn`.
pub const KFUNC_CALL_MARKER: [u8; 8] = [0x85, 0x20, 0, 0, 0xf0, 0xff, 0xff, 0x7f];

/// `r0 = -EINVAL` (`BPF_ALU64 | BPF_MOV | BPF_K`), what a call becomes where the kfunc is
/// missing.
const MOV_R0_EINVAL: [u8; 8] = [0xb7, 0, 0, 0, 0xea, 0xff, 0xff, 0xff];

/// The object with every marked kfunc call resolved: to BTF id `kfunc_id`, or where it is
/// `None`, replaced by `r0 = -EINVAL`. Instructions sit at offsets that are multiples of 8
/// (program sections are 8-aligned). Returned in `u64`s, so that the bytes are aligned as
/// aya's ELF parser needs; with the number of calls found.
#[must_use]
pub fn resolve(object: &[u8], kfunc_id: Option<u32>) -> (Vec<u64>, usize) {
    let mut words = vec![0u64; object.len().div_ceil(8)];
    let bytes = as_bytes_mut(&mut words);
    bytes[..object.len()].copy_from_slice(object);
    let call = kfunc_id.map(|id| {
        let mut insn = KFUNC_CALL_MARKER;
        insn[4..].copy_from_slice(&id.to_le_bytes());
        insn
    });
    let mut found = 0;
    for insn in bytes[..object.len()].chunks_exact_mut(8) {
        if insn == KFUNC_CALL_MARKER {
            insn.copy_from_slice(&call.unwrap_or(MOV_R0_EINVAL));
            found += 1;
        }
    }
    (words, found)
}

/// The bytes of `words`.
fn as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: a `u64` slice is a valid, initialized byte slice of 8 times its length, with
    // no padding; the borrow is carried over.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) }
}

/// The bytes `resolve` returned, `len` of them.
#[must_use]
pub fn bytes(words: &[u64], len: usize) -> &[u8] {
    // SAFETY: as in `as_bytes_mut`; `len` is at most the words' byte length.
    let all = unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) };
    &all[..len]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::loader::EBPF_OBJECT;

    /// An object of three instructions, the middle one a marked kfunc call, and a tail that
    /// is not a whole instruction.
    fn object() -> Vec<u8> {
        let mut o = vec![0xb7, 0, 0, 0, 0, 0, 0, 0];
        o.extend(KFUNC_CALL_MARKER);
        o.extend([0x95, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
        o
    }

    #[test]
    fn a_marked_call_gets_the_kfunc_id_and_nothing_else_changes() {
        let o = object();
        let (words, found) = resolve(&o, Some(0x0001_2345));
        assert_eq!(found, 1);
        let b = bytes(&words, o.len());
        assert_eq!(&b[8..16], &[0x85, 0x20, 0, 0, 0x45, 0x23, 0x01, 0]);
        assert_eq!(&b[..8], &o[..8]);
        assert_eq!(&b[16..], &o[16..]);
        assert_eq!(b.as_ptr().align_offset(8), 0);
    }

    #[test]
    fn without_the_kfunc_the_call_becomes_a_move_of_einval() {
        let o = object();
        let (words, found) = resolve(&o, None);
        assert_eq!(found, 1);
        assert_eq!(&bytes(&words, o.len())[8..16], &MOV_R0_EINVAL);
        // r0 = -22: imm is the two's complement of 22.
        assert_eq!(i32::from_le_bytes([0xea, 0xff, 0xff, 0xff]), -22);
    }

    #[test]
    fn a_marker_off_an_instruction_boundary_is_left_alone() {
        let mut o = vec![0; 4];
        o.extend(KFUNC_CALL_MARKER);
        o.extend([0; 4]);
        let (words, found) = resolve(&o, Some(7));
        assert_eq!(found, 0);
        assert_eq!(bytes(&words, o.len()), o.as_slice());
    }

    /// The built object has the one kfunc call `path_mknod` makes.
    #[test]
    fn the_object_has_path_mknods_kfunc_call() {
        assert_eq!(resolve(EBPF_OBJECT, Some(1)).1, 1);
    }
}
