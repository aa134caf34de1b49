//! Stage two, `RuleSet -> CompiledPolicy`: pure (no files, no DNS, no environment). Turns
//! each control's resolved rules into the kernel's map keys and merges them so that one
//! lookup per map answers (deny beats allow, then the lower rule id). Deterministic: no
//! hash-map order reaches the output. One module per control, as in `nemoclaw-ebpf`:
//! `filesystem.rs` (`fs.rs`), `process.rs` (`exec.rs`), `network.rs` (`net.rs`);
//! `privilege_escalation` lowers to its control bit alone.

mod filesystem;
mod network;
mod process;

use super::compiled::CompiledPolicy;
use super::explain::RuleSet;

pub use network::mask_bytes;

/// The map entries of a resolved policy.
#[must_use]
pub fn lower(rules: &RuleSet) -> CompiledPolicy {
    let mut out = CompiledPolicy {
        controls: rules.controls,
        rules: rules.table.clone(),
        ..CompiledPolicy::default()
    };
    filesystem::lower(rules, &mut out);
    process::lower(rules, &mut out);
    network::lower(rules, &mut out);
    out
}
