//! Compile-time benchmark: a generated policy with many rules, timed. `cargo xtask bench`
//! calls [`compile_generated`]; `cargo run --release --example policy_bench` prints it.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use super::CompileEnv;

/// YAML text of a policy with `rules` rules: two thirds filesystem (exact paths, trees,
/// suffixes, allows and denies), one third network (addresses, CIDRs, ports).
#[must_use]
pub fn generate_policy(rules: usize) -> String {
    let mut fs_allow = String::new();
    let mut fs_deny = String::new();
    let mut net_allow = String::new();
    let mut net_deny = String::new();
    for i in 0..rules {
        let (a, b, c) = (i % 251, (i / 251) % 251, i / (251 * 251));
        match i % 6 {
            0 => {
                let _ = writeln!(fs_allow, "  - /data/p{c}/d{b}/f{a}/**");
            }
            1 => {
                let _ = writeln!(fs_allow, "  - /srv/p{c}/d{b}/file{a}.txt");
            }
            2 => {
                let _ = writeln!(fs_deny, "  - \"**/secret{i}.key\"");
            }
            3 => {
                let _ = writeln!(fs_deny, "  - /data/p{c}/d{b}/f{a}/private/**");
            }
            4 => {
                let _ = writeln!(
                    net_allow,
                    "  - \"10.{}.{b}.{a}:{}\"",
                    c % 256,
                    1 + i % 60000
                );
            }
            _ => {
                let _ = writeln!(net_deny, "  - \"10.{}.{b}.0/24:*\"", c % 256);
            }
        }
    }
    format!(
        "network:\n allow:\n{net_allow} deny:\n{net_deny}filesystem:\n allow:\n{fs_allow} deny:\n{fs_deny}privilege_escalation: deny\n"
    )
}

/// Parses and compiles a generated `rules`-rule policy; returns (parse time, compile time,
/// number of map entries).
pub fn compile_generated(rules: usize) -> Result<(Duration, Duration, usize), String> {
    let text = generate_policy(rules);
    let started = Instant::now();
    let policy = super::parse_str(Path::new("generated.yaml"), &text).map_err(|e| e.to_string())?;
    let parsed = started.elapsed();
    let env = CompileEnv::offline("/home/agent".into());
    let started = Instant::now();
    let compiled = super::compile(&policy, &env).map_err(|e| e.to_string())?;
    let compile_time = started.elapsed();
    let out = &compiled.policy;
    let entries = out.fs_exact.len()
        + out.fs_prefix.len()
        + out.fs_suffix.len()
        + out.net4.len()
        + out.net6.len()
        + out.exec.len();
    Ok((parsed, compile_time, entries))
}
