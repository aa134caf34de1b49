//! Warnings: absent sections, duplicates, contradictions, rules that can never take
//! effect, and rules that break ordinary programs. Everything here is linear in the
//! number of rules (maps keyed by pattern), so 100k-rule policies lint quickly.

use std::collections::HashMap;

use nemoclaw_common::rule::{ACTION_DENY, RULE_DEFAULT_DENY};

use super::compiled::FS_READ;
use super::explain::{Query, RuleSet, explain};
use super::parse::ports_to_string;
use super::pattern::Shape;
use super::types::{ExecTarget, Host, Located, NetDeny, NetRule, Policy};
use super::{Diagnostic, Mark};

/// A stand-in home for comparing patterns: `$HOME` rules compare equal among themselves.
const HOME: &str = "/\u{0}home";

/// Lints that need only the policy.
#[must_use]
pub fn lint(policy: &Policy) -> Vec<Diagnostic> {
    let mut out = Lints {
        policy,
        out: Vec::new(),
    };
    out.sections();
    out.filesystem();
    out.network();
    out.process();
    out.inference();
    out.out
}

struct Lints<'p> {
    policy: &'p Policy,
    out: Vec<Diagnostic>,
}

impl Lints<'_> {
    fn warn(&mut self, mark: Mark, field: &str, message: String) {
        self.out.push(Diagnostic {
            file: self.policy.file.clone(),
            line: mark.line,
            column: mark.column,
            field: field.to_owned(),
            message,
        });
    }

    fn sections(&mut self) {
        let top = Mark { line: 1, column: 1 };
        let policy = self.policy;
        if policy.network.is_none() {
            self.warn(
                top,
                "network",
                "section absent: network access is unrestricted".to_owned(),
            );
        }
        if policy.filesystem.is_none() {
            let unix = if policy.network.is_some() {
                "; but with a network section, connecting to pathname unix sockets is denied \
                 (they are judged by filesystem rules, and there are none)"
            } else {
                ""
            };
            self.warn(
                top,
                "filesystem",
                format!("section absent: file access is unrestricted{unix}"),
            );
        }
        if policy.process.is_none() {
            self.warn(
                top,
                "process",
                "section absent: any program may be executed".to_owned(),
            );
        }
        if policy.privilege_escalation.is_none() {
            self.warn(
                top,
                "privilege_escalation",
                "absent: privilege escalation (setuid, capabilities) is not restricted".to_owned(),
            );
        }
    }

    fn filesystem(&mut self) {
        let Some(fs) = &self.policy.filesystem else {
            return;
        };
        if fs.allow.is_empty() && fs.read_only.is_empty() {
            self.warn(fs.mark, "filesystem", "allows nothing: every file access is denied, so no dynamically linked program can start".to_owned());
        }
        // (list, pattern) -> first rule, for duplicates and contradictions.
        let mut seen: HashMap<String, (&str, &Located<super::FsRule>)> = HashMap::new();
        let lists = [
            ("allow", &fs.allow),
            ("read_only", &fs.read_only),
            ("deny", &fs.deny),
        ];
        for (list, rules) in lists {
            for rule in rules {
                let key = rule.value.pattern.expand(HOME);
                match seen.get(&key) {
                    Some((first_list, first)) if *first_list == list => {
                        let message = format!("duplicate of line {}", first.mark.line);
                        self.warn(rule.mark, &rule.field, message);
                    }
                    Some((first_list, first)) => {
                        let outcome = match (*first_list, list) {
                            ("allow", "read_only") => "writes are denied, reads allowed",
                            (_, "deny") => "the deny wins",
                            _ => "both apply",
                        };
                        let message = format!(
                            "contradicts filesystem.{first_list} at line {} for the same path: {outcome}",
                            first.mark.line
                        );
                        self.warn(rule.mark, &rule.field, message);
                    }
                    None => {
                        seen.insert(key, (list, rule));
                    }
                }
            }
        }
        // Rules that can never take effect: an allow entirely inside a deny.
        let mut deny_exact: HashMap<String, (u32, &Located<super::FsRule>)> = HashMap::new();
        let mut deny_tree: HashMap<String, (u32, &Located<super::FsRule>)> = HashMap::new();
        let mut deny_suffix: HashMap<String, (u32, &Located<super::FsRule>)> = HashMap::new();
        let mut deny_prefix: HashMap<String, (u32, &Located<super::FsRule>)> = HashMap::new();
        for rule in &fs.deny {
            let Ok(shape) = rule.value.pattern.shape(HOME) else {
                continue;
            };
            let mask = rule.value.access.mask();
            let (map, key) = match shape {
                Shape::Exact(p) => (&mut deny_exact, p),
                Shape::Tree(d) => (&mut deny_tree, d),
                Shape::Suffix(s) => (&mut deny_suffix, s),
                Shape::Prefix(p) => (&mut deny_prefix, p),
            };
            map.entry(key)
                .and_modify(|e| e.0 |= mask)
                .or_insert((mask, rule));
        }
        for (list, rules) in [("allow", &fs.allow), ("read_only", &fs.read_only)] {
            for rule in rules {
                let Ok(shape) = rule.value.pattern.shape(HOME) else {
                    continue;
                };
                let wanted = if list == "read_only" {
                    FS_READ
                } else {
                    rule.value.access.mask()
                };
                let denies = Denies {
                    exact: &deny_exact,
                    tree: &deny_tree,
                    suffix: &deny_suffix,
                    prefix: &deny_prefix,
                };
                let covering = covering_deny(&shape, &denies, wanted);
                if let Some(deny) = covering {
                    let message = format!(
                        "can never take effect: filesystem.deny `{}` (line {}) covers every path it matches",
                        deny.text, deny.mark.line
                    );
                    self.warn(rule.mark, &rule.field, message);
                }
            }
        }
    }

    fn network(&mut self) {
        let Some(network) = &self.policy.network else {
            return;
        };
        if network.allow.is_empty() {
            self.warn(
                network.mark,
                "network",
                "allows nothing: every connection is denied".to_owned(),
            );
        }
        let key = |rule: &NetRule| {
            format!(
                "{:?}|{}|{:?}",
                rule.host,
                ports_to_string(&rule.ports),
                rule.protocol
            )
        };
        let mut seen: HashMap<String, (&str, &Located<NetRule>)> = HashMap::new();
        let empty = Vec::new();
        let denies = match &network.deny {
            NetDeny::All => &empty,
            NetDeny::Rules(rules) => rules,
        };
        for (list, rules) in [("allow", &network.allow), ("deny", denies)] {
            for rule in rules {
                match seen.get(&key(&rule.value)) {
                    Some((first_list, first)) if *first_list == list => {
                        let message = format!("duplicate of line {}", first.mark.line);
                        self.warn(rule.mark, &rule.field, message);
                    }
                    Some((_, first)) => {
                        let message = format!(
                            "contradicts network.allow at line {}: the deny wins",
                            first.mark.line
                        );
                        self.warn(rule.mark, &rule.field, message);
                    }
                    None => {
                        seen.insert(key(&rule.value), (list, rule));
                    }
                }
            }
        }
        let uses_names = network
            .allow
            .iter()
            .any(|r| matches!(r.value.host, Host::Name(_)));
        let allows_dns = network.allow.iter().any(|r| match &r.value.ports {
            super::Ports::Any => true,
            super::Ports::Ranges(ranges) => ranges
                .iter()
                .any(|&(first, last)| (first..=last).contains(&53)),
        });
        if uses_names && !allows_dns {
            self.warn(network.mark, "network", "host names are allowed but no DNS server is (nothing allows port 53): programs in the sandbox cannot resolve those names; allow your resolver, e.g. \"127.0.0.53:53\"".to_owned());
        }
    }

    fn process(&mut self) {
        let Some(process) = &self.policy.process else {
            return;
        };
        if process.allow.is_empty() {
            self.warn(
                process.mark,
                "process",
                "allows nothing: no program may be executed in the sandbox".to_owned(),
            );
        }
        let key = |target: &ExecTarget| match target {
            ExecTarget::Name(name) => name.clone(),
            ExecTarget::Path(p) | ExecTarget::Dir(p) => p.expand(HOME),
        };
        let mut seen: HashMap<String, (&str, &Located<ExecTarget>)> = HashMap::new();
        for (list, rules) in [("allow", &process.allow), ("deny", &process.deny)] {
            for rule in rules {
                match seen.get(&key(&rule.value)) {
                    Some((first_list, first)) if *first_list == list => {
                        let message = format!("duplicate of line {}", first.mark.line);
                        self.warn(rule.mark, &rule.field, message);
                    }
                    Some((_, first)) => {
                        let message = format!(
                            "contradicts process.allow at line {}: the deny wins",
                            first.mark.line
                        );
                        self.warn(rule.mark, &rule.field, message);
                    }
                    None => {
                        seen.insert(key(&rule.value), (list, rule));
                    }
                }
            }
        }
    }
}

type DenyMap<'a> = HashMap<String, (u32, &'a Located<super::FsRule>)>;

/// The deny rules by shape, keyed by their path, tree directory, suffix or byte prefix.
struct Denies<'m, 'a> {
    exact: &'m DenyMap<'a>,
    tree: &'m DenyMap<'a>,
    suffix: &'m DenyMap<'a>,
    prefix: &'m DenyMap<'a>,
}

/// A deny rule whose paths include all of `shape`'s and whose mask includes `wanted`.
fn covering_deny<'a>(
    shape: &Shape,
    denies: &Denies<'_, 'a>,
    wanted: u32,
) -> Option<&'a Located<super::FsRule>> {
    let Denies {
        exact,
        tree,
        suffix,
        prefix,
    } = *denies;
    let pick = |found: Option<&(u32, &'a Located<super::FsRule>)>| {
        found
            .filter(|(mask, _)| mask & wanted == wanted)
            .map(|(_, rule)| *rule)
    };
    // Trees covering a path: the root, then every ancestor directory and the path itself.
    let trees_over = |path: &str| {
        let mut dirs = vec![String::new()];
        dirs.extend(
            path.match_indices('/')
                .skip(1)
                .map(|(i, _)| path[..i].to_owned()),
        );
        dirs.push(path.to_owned());
        dirs.into_iter().find_map(|dir| pick(tree.get(&dir)))
    };
    let suffixes_of = |text: &str| {
        let last = text.rfind('/').map_or(0, |i| i + 1);
        let starts = text
            .match_indices('/')
            .map(|(i, _)| i)
            .chain(last..text.len());
        starts
            .filter(|i| text.is_char_boundary(*i))
            .find_map(|start| pick(suffix.get(&text[start..])))
    };
    // Byte prefixes covering every path that starts with `text`.
    let prefixes_of = |text: &str| {
        prefix
            .iter()
            .filter(|(key, _)| text.starts_with(key.as_str()))
            .find_map(|(_, found)| pick(Some(found)))
    };
    match shape {
        Shape::Exact(path) => pick(exact.get(path))
            .or_else(|| trees_over(path))
            .or_else(|| suffixes_of(path))
            .or_else(|| prefixes_of(path)),
        Shape::Tree(dir) => {
            if dir.is_empty() {
                pick(tree.get(""))
            } else {
                trees_over(dir).or_else(|| prefixes_of(dir))
            }
        }
        Shape::Suffix(text) => pick(tree.get("")).or_else(|| suffixes_of(text)),
        // `/dir/name*/**`: under a tree over `/dir`, or a shorter byte prefix.
        Shape::Prefix(text) => {
            let dir = text.rfind('/').map_or("", |at| &text[..at]);
            let over_dir = if dir.is_empty() {
                pick(tree.get(""))
            } else {
                trees_over(dir)
            };
            over_dir.or_else(|| prefixes_of(text))
        }
    }
}

/// Files ordinary programs need, and what breaks without them.
const ESSENTIAL_READS: &[(&str, &str)] = &[
    (
        "/etc/ssl/certs/ca-certificates.crt",
        "TLS certificates: HTTPS clients fail certificate verification",
    ),
    (
        "/etc/resolv.conf",
        "resolver configuration: host names do not resolve",
    ),
    (
        "/etc/nsswitch.conf",
        "name service configuration: glibc host and user lookups misbehave",
    ),
    (
        "/etc/ld.so.cache",
        "the dynamic loader's cache: dynamically linked programs start slowly or not at all",
    ),
    (
        "/usr/lib",
        "shared libraries: dynamically linked programs cannot start",
    ),
];

/// Lints that need the compiled result (resolved names, the rule table).
#[must_use]
pub fn lint_compiled(policy: &Policy, rules: &RuleSet) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    let warn_at_rule = |warnings: &mut Vec<Diagnostic>, id: u32, message: String| {
        if let Some(rule) = rules.table.iter().find(|r| r.id == id) {
            warnings.push(Diagnostic {
                file: policy.file.clone(),
                line: rule.line,
                column: rule.column,
                field: rule.section.clone(),
                message,
            });
        }
    };
    if let Some(fs) = &policy.filesystem {
        for (path, what) in ESSENTIAL_READS {
            let probe = if *path == "/usr/lib" {
                "/usr/lib/libc.so.6"
            } else {
                path
            };
            let decision = explain(
                rules,
                &Query::Open {
                    path: (*probe).to_owned(),
                    write: false,
                },
            );
            if decision.allowed() {
                continue;
            }
            if decision.verdict.rule_id == RULE_DEFAULT_DENY {
                warnings.push(Diagnostic {
                    file: policy.file.clone(),
                    line: fs.mark.line,
                    column: fs.mark.column,
                    field: "filesystem".to_owned(),
                    message: format!("nothing allows reading {path} ({what}); add it to read_only"),
                });
            } else {
                let text = rules
                    .table
                    .iter()
                    .find(|r| r.id == decision.verdict.rule_id)
                    .map_or("", |r| r.text.as_str());
                warn_at_rule(
                    &mut warnings,
                    decision.verdict.rule_id,
                    format!("`{text}` also denies {path} ({what})"),
                );
            }
        }
        let dev_null = explain(
            rules,
            &Query::Open {
                path: "/dev/null".to_owned(),
                write: true,
            },
        );
        if !dev_null.allowed() {
            warnings.push(Diagnostic {
                file: policy.file.clone(),
                line: fs.mark.line,
                column: fs.mark.column,
                field: "filesystem".to_owned(),
                message:
                    "writing /dev/null is not allowed: programs that discard output there fail"
                        .to_owned(),
            });
        }
    }
    if let Some(process) = &policy.process
        && let Some(shell) = &rules.shell
    {
        let decision = explain(
            rules,
            &Query::Exec {
                path: shell.path.clone(),
                dev: shell.dev,
                ino: shell.ino,
            },
        );
        if !decision.allowed() {
            let how = if decision.verdict.action == ACTION_DENY
                && decision.verdict.rule_id != RULE_DEFAULT_DENY
            {
                "is denied"
            } else {
                "is not allowed"
            };
            warnings.push(Diagnostic {
                file: policy.file.clone(),
                line: process.mark.line,
                column: process.mark.column,
                field: "process".to_owned(),
                message: format!("the shell (sh -> {}) {how}: programs that spawn a shell (npm scripts, git hooks, system()) fail", shell.path.display()),
            });
        }
    }
    warnings
}

impl Lints<'_> {
    /// `inference`: categories that go to the cloud unlisted under `default: allow`, and
    /// `direct` endpoints (the sandbox can bypass the router to them).
    fn inference(&mut self) {
        let Some(section) = &self.policy.inference else {
            return;
        };
        if let Some(default) = &section.default
            && default.value == super::inference::Action::Allow
        {
            for category in nemoclaw_detect::Category::BUILTIN {
                if section.categories.iter().any(|c| c.value.0 == category) {
                    continue;
                }
                self.warn(
                    default.mark,
                    &default.field,
                    format!(
                        "category {category} is not listed, so it takes `default: allow`: \
                         requests containing it go to the cloud backend as they are; list it \
                         (`{category}: allow` to keep this and silence the warning)"
                    ),
                );
            }
        }
        let allowed: Vec<&NetRule> = self
            .policy
            .network
            .iter()
            .flat_map(|n| &n.allow)
            .map(|rule| &rule.value)
            .collect();
        for entry in &section.direct {
            let (host, ports) = &entry.value;
            let trimmed = |h: &Host| match h {
                Host::Name(name) => Host::Name(name.trim_end_matches('.').to_owned()),
                other => other.clone(),
            };
            let listed = allowed
                .iter()
                .any(|rule| trimmed(&rule.host) == trimmed(host) && rule.ports == *ports);
            let message = if listed {
                format!(
                    "the sandbox may reach {} directly, bypassing the privacy router: nothing \
                     sent there is scanned or routed",
                    entry.text
                )
            } else {
                format!(
                    "network.allow does not list {}, so this has no effect: `direct` only lets \
                     an allow entry for a provider endpoint stand",
                    entry.text
                )
            };
            self.warn(entry.mark, &entry.field, message);
        }
    }
}
