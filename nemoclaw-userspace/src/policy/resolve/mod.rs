//! Stage one, `Policy -> RuleSet`: every rule in source order gets its id and its
//! host-dependent facts (`$HOME` expanded, programs found in PATH and identified by kernel
//! (dev, ino), directories canonicalised, host names resolved). The host is read only
//! through the [`CompileEnv`] (`policy/host.rs`). One module per control, as in
//! `nemoclaw-ebpf`: `filesystem.rs` (`fs.rs`), `process.rs` (`exec.rs`), `network.rs`
//! (`net.rs`), `privilege.rs` (`privilege.rs`).

mod filesystem;
pub mod inference;
mod network;
mod privilege;
mod process;

use std::collections::BTreeMap;
use std::path::PathBuf;

use nemoclaw_common::rule::{ACTION_ALLOW, ACTION_DENY};

use super::compile::CompileError;
use super::compiled::{NetBinary, RuleRef};
use super::explain::RuleSet;
use super::host::CompileEnv;
use super::types::{
    AnonymousExec, ExecTarget, InferenceSection, ListenRule, Located, NetDeny, NetRule, Policy,
    PrivilegeEscalation,
};
use super::{Diagnostic, Diagnostics, Mark};

pub(super) use filesystem::FsList;

/// A resolved policy and what resolving it found, before lowering.
pub(super) struct Resolution {
    pub rules: RuleSet,
    /// In the order found; any makes compilation fail.
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Resolves a validated policy against the host `env` describes.
pub fn resolve(policy: &Policy, env: &CompileEnv) -> Result<RuleSet, CompileError> {
    let resolution = resolve_all(policy, env)?;
    if resolution.errors.is_empty() {
        Ok(resolution.rules)
    } else {
        Err(CompileError::Invalid(Diagnostics(resolution.errors)))
    }
}

/// [`resolve`], keeping the errors and warnings for the caller.
pub(super) fn resolve_all(policy: &Policy, env: &CompileEnv) -> Result<Resolution, CompileError> {
    let home = env
        .home
        .to_str()
        .filter(|h| h.starts_with('/') && !h.contains(['*', '?', '[', '{', '$']))
        .ok_or_else(|| CompileError::BadHome(env.home.clone()))?;
    let mut cx = Resolving {
        policy,
        env,
        home,
        errors: Vec::new(),
        warnings: Vec::new(),
        rules: RuleSet::default(),
        net_bins: BTreeMap::new(),
    };
    cx.run();
    let Resolving {
        errors,
        warnings,
        mut rules,
        net_bins,
        ..
    } = cx;
    rules.net_binaries = net_bins
        .into_iter()
        .map(|((dev, ino), (bin, path))| NetBinary {
            dev,
            ino,
            bin,
            path,
        })
        .collect();
    Ok(Resolution {
        rules,
        errors,
        warnings,
    })
}

/// One rule in source order.
enum Item<'p> {
    Net(&'p Located<NetRule>, u32),
    Listen(&'p Located<ListenRule>),
    Fs(&'p Located<super::types::FsRule>, FsList),
    Exec(&'p Located<ExecTarget>, u32),
    Privilege(&'p Located<PrivilegeEscalation>),
    AnonymousExec(&'p Located<AnonymousExec>),
    /// The network allow for the router, citing `inference.router`.
    Router(&'p InferenceSection),
}

impl Item<'_> {
    fn mark(&self) -> Mark {
        match self {
            Self::Net(rule, _) => rule.mark,
            Self::Listen(rule) => rule.mark,
            Self::Fs(rule, _) => rule.mark,
            Self::Exec(rule, _) => rule.mark,
            Self::Privilege(rule) => rule.mark,
            Self::AnonymousExec(rule) => rule.mark,
            Self::Router(section) => inference::router_rule_ref(section).0,
        }
    }
}

/// Every rule of the policy in source order.
fn items_of(policy: &Policy) -> Vec<Item<'_>> {
    let mut items = Vec::new();
    if let Some(network) = &policy.network {
        items.extend(network.allow.iter().map(|r| Item::Net(r, ACTION_ALLOW)));
        if let NetDeny::Rules(rules) = &network.deny {
            items.extend(rules.iter().map(|r| Item::Net(r, ACTION_DENY)));
        }
        items.extend(network.listen.iter().map(Item::Listen));
    }
    if let Some(fs) = &policy.filesystem {
        items.extend(fs.allow.iter().map(|r| Item::Fs(r, FsList::Allow)));
        items.extend(fs.read_only.iter().map(|r| Item::Fs(r, FsList::ReadOnly)));
        items.extend(fs.deny.iter().map(|r| Item::Fs(r, FsList::Deny)));
    }
    if let Some(process) = &policy.process {
        items.extend(process.allow.iter().map(|r| Item::Exec(r, ACTION_ALLOW)));
        items.extend(process.deny.iter().map(|r| Item::Exec(r, ACTION_DENY)));
        items.extend(process.anonymous_exec.iter().map(Item::AnonymousExec));
    }
    if let Some(privilege) = &policy.privilege_escalation {
        items.push(Item::Privilege(privilege));
    }
    if let Some(section) = &policy.inference {
        items.push(Item::Router(section));
    }
    // Source order; marks are unique per node, so the sort is total.
    items.sort_by_key(Item::mark);
    items
}

struct Resolving<'p, 'e> {
    policy: &'p Policy,
    env: &'e CompileEnv,
    home: &'e str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    rules: RuleSet,
    /// Executables named by network rules' `binaries`: (dev, ino) -> (binary id, path).
    net_bins: BTreeMap<(u64, u64), (u16, PathBuf)>,
}

impl Resolving<'_, '_> {
    fn diagnostic(&self, mark: Mark, field: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.policy.file.clone(),
            line: mark.line,
            column: mark.column,
            field: field.to_owned(),
            message,
        }
    }

    fn error(&mut self, mark: Mark, field: &str, message: String) {
        let diagnostic = self.diagnostic(mark, field, message);
        self.errors.push(diagnostic);
    }

    fn warn(&mut self, mark: Mark, field: &str, message: String) {
        let diagnostic = self.diagnostic(mark, field, message);
        self.warnings.push(diagnostic);
    }

    fn run(&mut self) {
        let policy = self.policy;
        self.rules.controls = network::control(policy)
            | filesystem::control(policy)
            | process::control(policy)
            | privilege::control(policy);

        for (index, item) in items_of(policy).iter().enumerate() {
            let id = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let (located_mark, field, text) = match item {
                Item::Net(r, _) => (r.mark, r.field.as_str(), r.text.clone()),
                Item::Listen(r) => (r.mark, r.field.as_str(), r.text.clone()),
                Item::Fs(r, _) => (r.mark, r.field.as_str(), r.text.clone()),
                Item::Exec(r, _) => (r.mark, r.field.as_str(), r.text.clone()),
                Item::Privilege(r) => (r.mark, r.field.as_str(), r.text.clone()),
                Item::AnonymousExec(r) => (r.mark, r.field.as_str(), r.text.clone()),
                Item::Router(section) => {
                    let (mark, text) = inference::router_rule_ref(section);
                    (mark, "inference.router", text)
                }
            };
            let section = field.split('[').next().unwrap_or(field).to_owned();
            self.rules.table.push(RuleRef {
                id,
                file: policy.file.clone(),
                line: located_mark.line,
                column: located_mark.column,
                section,
                text,
            });
            match item {
                Item::Fs(rule, list) => self.fs_rule(rule, *list, id),
                Item::Exec(rule, action) => self.exec_rule(rule, *action, id),
                Item::Net(rule, action) => self.net_rule(rule, *action, id),
                Item::Listen(rule) => self.listen_rule(rule, id),
                Item::Privilege(rule) => self.privilege_rule(rule, id),
                Item::AnonymousExec(rule) => self.anonymous_exec_rule(rule, id),
                Item::Router(section) => self.router_rule(section, id),
            }
        }

        if let Some(section) = &policy.inference {
            self.inference(section);
        }

        if let Some(process) = &policy.process {
            self.rules.library_dirs = self.library_dirs(process);
            self.rules.shell = self.shell();
        }
    }
}
