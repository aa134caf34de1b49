//! `Policy -> CompiledPolicy` in two stages: [`resolve`](super::resolve::resolve) reads
//! the host (through the [`CompileEnv`]) and gives the [`RuleSet`];
//! [`lower`](super::lower::lower) turns that into map entries without reading anything.
//! Then the checks that need the lowered sizes, and the lints.

use nemoclaw_common::net::MAX_NET_RULES;

use super::compiled::CompiledPolicy;
use super::explain::RuleSet;
use super::host::CompileEnv;
use super::inference::InferenceRules;
use super::types::Policy;
use super::{Diagnostic, Diagnostics, Mark};

pub use super::lower::mask_bytes;
pub use nemoclaw_common::rule::merge;

/// Why a policy could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("no such user {0:?}")]
    UnknownUser(String),
    #[error("looking up user {0:?}: {1}")]
    UserLookup(String, String),
    #[error("home directory {0:?} must be an absolute path without glob characters")]
    BadHome(std::path::PathBuf),
    /// Rules that cannot be compiled, located. One line per problem.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// A compiled policy, the semantic rules `explain` reads, and the warnings (lints).
#[derive(Clone, Debug)]
pub struct Compiled {
    pub policy: CompiledPolicy,
    pub rules: RuleSet,
    pub warnings: Vec<Diagnostic>,
    /// The `inference` section compiled for the privacy router (the daemon sends it over
    /// the control socket); `None` without one. Its router allow rule is already in
    /// `policy`'s network entries.
    pub inference: Option<InferenceRules>,
}

/// Compiles a validated policy: `lower(resolve(policy, env))`, plus diagnostics.
pub fn compile(policy: &Policy, env: &CompileEnv) -> Result<Compiled, CompileError> {
    let super::resolve::Resolution {
        rules,
        mut errors,
        mut warnings,
    } = super::resolve::resolve_all(policy, env)?;
    let out = super::lower::lower(&rules);
    errors.extend(size_errors(policy, &out));
    if !errors.is_empty() {
        return Err(CompileError::Invalid(Diagnostics(errors)));
    }
    warnings.extend(super::lint::lint_compiled(policy, &rules));
    let mut all = super::lint::lint(policy);
    all.extend(warnings);
    all.sort_by(|a, b| {
        (a.line, a.column, &a.field, &a.message).cmp(&(b.line, b.column, &b.field, &b.message))
    });
    all.dedup();
    Ok(Compiled {
        policy: out,
        inference: rules.inference.clone(),
        rules,
        warnings: all,
    })
}

/// The network maps' size limit, on the lowered entries (host names and port ranges
/// expanded, shorter prefixes merged in).
fn size_errors(policy: &Policy, out: &CompiledPolicy) -> Vec<Diagnostic> {
    let limit = MAX_NET_RULES as usize;
    let mut errors = Vec::new();
    for (family, count) in [("IPv4", out.net4.len()), ("IPv6", out.net6.len())] {
        if count > limit {
            let mark = policy
                .network
                .as_ref()
                .map_or_else(Mark::default, |n| n.mark);
            errors.push(Diagnostic {
                file: policy.file.clone(),
                line: mark.line,
                column: mark.column,
                field: "network".to_owned(),
                message: format!("{count} {family} entries after expanding hosts and port ranges; the kernel map holds {limit}"),
            });
        }
    }
    errors
}
