//! The daemon's own files, denied to every sandbox whose policy has a filesystem section:
//! its pins, control socket, state and audit log, and the policy files themselves. Added by
//! the daemon before compiling (as `filesystem.daemon_guard[i]`, cited at the section's
//! line), so no policy can open them to a sandbox by accident.

use std::path::Path;

use super::{
    pattern::PathPattern,
    types::{Access, FsRule, Located, Policy},
};

/// `policy` with a read-and-write deny rule for each of `dirs` (the directory and everything
/// below) and `files`. Policies without a filesystem section come back unchanged: their
/// files are unrestricted, which the daemon tells the user.
#[must_use]
pub fn with_daemon_guard(policy: &Policy, dirs: &[&Path], files: &[&Path]) -> Policy {
    let mut out = policy.clone();
    let Some(fs) = &mut out.filesystem else {
        return out;
    };
    let mut patterns: Vec<String> = dirs
        .iter()
        .flat_map(|d| {
            let d = d.display().to_string();
            [d.clone(), format!("{}/**", d.trim_end_matches('/'))]
        })
        .chain(files.iter().map(|f| f.display().to_string()))
        .collect();
    // The socket and the state file usually share a directory.
    patterns.sort();
    patterns.dedup();
    for text in patterns {
        // A path the pattern language cannot express (e.g. with glob characters) is guarded
        // by its directory's rule instead.
        let Ok(pattern) = PathPattern::parse(&text) else {
            continue;
        };
        let i = fs.deny.len();
        fs.deny.push(Located {
            value: FsRule {
                pattern,
                access: Access::ReadWrite,
            },
            mark: fs.mark,
            field: format!("filesystem.daemon_guard[{i}]"),
            text: format!("{text} (NemoClaw daemon's own files)"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use nemoclaw_common::rule::{ACTION_ALLOW, ACTION_DENY};

    use super::*;
    use crate::policy::{CompileEnv, Query, compile, explain::evaluate, parse_str};

    #[test]
    fn daemon_files_are_denied_and_cited() {
        let p = parse_str(
            Path::new("p.yaml"),
            "filesystem:\n  allow:\n    - \"/**\"\n",
        )
        .unwrap();
        let guarded = with_daemon_guard(
            &p,
            &[
                Path::new("/run/nemoclaw"),
                Path::new("/sys/fs/bpf/nemoclaw"),
            ],
            &[Path::new("/etc/nemoclaw/agent.yaml")],
        );
        let compiled = compile(&guarded, &CompileEnv::offline("/home/u".into())).unwrap();
        let guard_warnings: Vec<_> = compiled
            .warnings
            .iter()
            .filter(|w| w.field.starts_with("filesystem"))
            .collect();
        assert!(guard_warnings.is_empty(), "{guard_warnings:?}");
        let c = compiled.policy;
        for (path, write) in [
            ("/run/nemoclaw/nemoclaw.sock", true),
            ("/run/nemoclaw", false),
            ("/sys/fs/bpf/nemoclaw/maps/SANDBOXES", false),
            ("/etc/nemoclaw/agent.yaml", true),
        ] {
            let v = evaluate(
                &c,
                &Query::Open {
                    path: path.into(),
                    write,
                },
            );
            assert_eq!(v.action, ACTION_DENY, "{path}");
            let rule = &c.rules[v.rule_id as usize - 1];
            assert_eq!(rule.section, "filesystem.daemon_guard", "{path}");
        }
        let other = Query::Open {
            path: "/etc/nemoclaw/other.yaml".into(),
            write: false,
        };
        assert_eq!(evaluate(&c, &other).action, ACTION_ALLOW);
        let none = parse_str(Path::new("p.yaml"), "process:\n  allow: [python3]\n").unwrap();
        assert_eq!(
            with_daemon_guard(&none, &[Path::new("/run/nemoclaw")], &[]),
            none
        );
    }
}
