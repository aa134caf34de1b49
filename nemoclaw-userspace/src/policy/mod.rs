//! The "spec" stage: parse, validate and compile policies into plain data. No kernel needed.
//!
//! `load` reads a YAML file into a typed [`Policy`] (every error located by file, line,
//! column and field); `compile` turns it into a [`CompiledPolicy`] of sorted map entries
//! plus warnings, in two stages: [`resolve`] reads the host (files, PATH, DNS, through the
//! traits of [`host`]) into a [`RuleSet`], and [`lower`] turns that into map entries
//! without reading anything; `explain` answers "what would happen to this exec/open/connect, and
//! which rule decides", and `evaluate` does the same by looking entries up the way the
//! kernel side does (the two are property-tested to agree). The language is documented in
//! `docs/policy.md`.

pub mod bench;
mod compile;
pub mod compiled;
pub mod explain;
pub mod guard;
pub mod host;
pub mod inference;
mod lint;
pub mod lower;
mod parse;
pub mod pattern;
pub mod resolve;
pub mod schema;
mod subtree;
mod types;
pub(crate) mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

pub use compile::{CompileError, Compiled, compile};
pub use compiled::CompiledPolicy;
pub use explain::{Decision, Query, RuleSet, evaluate, explain, explain_category};
pub use host::{
    CompileEnv, FileInfo, Files, OfflineResolver, Resolver, SystemFiles, SystemResolver,
};
pub use lint::lint;
pub use lower::lower;
pub use parse::{parse_exec_target, parse_host, parse_host_port, parse_ports};
pub use resolve::resolve;
pub use types::{
    Access, AnonymousExec, Backend, ExecTarget, FilesystemSection, FsRule, Host, InferenceSection,
    ListenRule, Located, Mark, NetDeny, NetRule, NetworkSection, Policy, Ports,
    PrivilegeEscalation, ProcessSection, Protocol,
};

/// Largest policy file accepted; a 100k-rule policy is about 3 MiB.
pub const MAX_POLICY_BYTES: u64 = 64 << 20;

/// One located message: an error, or a warning (lint).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the message is about the file as a whole.
    pub line: usize,
    /// 1-based.
    pub column: usize,
    /// Field path, e.g. `network.allow[2]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            file,
            line,
            column,
            field,
            message,
        } = self;
        write!(f, "{}:{line}:{column}: {field}: {message}", file.display())
    }
}

/// Several diagnostics, one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The message carries the I/O error itself, which is therefore not a `source`:
    /// printed as a chain, it would be said twice.
    #[error("{}: {error}", file.display())]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: policy is larger than {MAX_POLICY_BYTES} bytes", file.display())]
    TooLarge { file: PathBuf },
    #[error("{}: policy is empty", file.display())]
    Empty { file: PathBuf },
    /// YAML syntax, or a value the schema does not accept. One line per problem.
    #[error("{0}")]
    Invalid(Diagnostics),
}

impl PolicyError {
    /// Every located problem (empty for I/O errors).
    #[must_use]
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Invalid(Diagnostics(list)) => list,
            Self::Read { .. } | Self::TooLarge { .. } | Self::Empty { .. } => &[],
        }
    }
}

/// Reads, parses and validates a policy file.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    load_with_source(path).map(|(policy, _)| policy)
}

/// [`load`], also returning the exact text parsed (so its hash names what was compiled).
pub fn load_with_source(path: &Path) -> Result<(Policy, String), PolicyError> {
    let read_error = |error| PolicyError::Read {
        file: path.to_path_buf(),
        error,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if metadata.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            file: path.to_path_buf(),
        });
    }
    let source = std::fs::read_to_string(path).map_err(read_error)?;
    parse_str(path, &source).map(|policy| (policy, source))
}

/// Parses and validates policy text; `file` is only used in messages.
pub fn parse_str(file: &Path, source: &str) -> Result<Policy, PolicyError> {
    let root = match yaml::parse(source) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(PolicyError::Empty {
                file: file.to_path_buf(),
            });
        }
        Err(error) => {
            return Err(PolicyError::Invalid(Diagnostics(vec![Diagnostic {
                file: file.to_path_buf(),
                line: error.mark.line,
                column: error.mark.column,
                field: "(yaml)".to_owned(),
                message: error.message,
            }])));
        }
    };
    if root.is_null() {
        return Err(PolicyError::Empty {
            file: file.to_path_buf(),
        });
    }
    parse::policy_from_node(file, &root).map_err(|mut errors| {
        errors.sort_by_key(|d| (d.line, d.column));
        PolicyError::Invalid(Diagnostics(errors))
    })
}

#[cfg(test)]
mod inference_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod two_stage_tests;
