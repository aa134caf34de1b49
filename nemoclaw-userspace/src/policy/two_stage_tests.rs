//! The two stages on a fake host (`host::FakeHost`): what `resolve` reads from the host
//! ends up in the `RuleSet`, and `lower` turns that, and only that, into map entries.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nemoclaw_common::net::{BIN_ANY, PORT_ANY, PROTO_ANY, PROTO_TCP};
use nemoclaw_common::rule::{ACTION_ALLOW, ACTION_DENY, Verdict};
use nemoclaw_common::sandbox::controls;

use super::compiled::{ExecEntry, FS_READ, FS_WRITE, NetBinary, PathEntry};
use super::explain::{ExecMatch, ExecRuleSpec, FsRuleSpec, NetRuleSpec, ResolvedExe};
use super::host::FakeHost;
use super::pattern::Shape;
use super::*;

const HOME: &str = "/home/fake";

fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|_| panic!("bad test address {text}"))
}

fn policy(text: &str) -> Policy {
    parse_str(Path::new("policies/x.yaml"), text).unwrap_or_else(|e| panic!("rejected:\n{e}"))
}

/// A small machine: `/bin` a symlink to `/usr/bin`, curl (dev 5, ino 42), `sh` a symlink
/// to dash (dev 5, ino 7), a non-executable file, and two host names.
fn host() -> FakeHost {
    FakeHost::default()
        .file("/usr/bin/curl", 5, 42, true)
        .file("/usr/bin/dash", 5, 7, true)
        .link("/usr/bin/sh", "/usr/bin/dash")
        .file("/usr/bin/README", 5, 9, false)
        .file("/opt/tools/curl", 6, 1, true)
        .dir("/usr/lib")
        .link("/bin", "/usr/bin")
        .link("/lib", "/usr/lib")
        .name("api.example.com", &[ip("10.0.0.1"), ip("10.0.0.2")])
        .name(
            "v6.example.com",
            &[ip("2001:db8::1"), ip("::ffff:192.0.2.7")],
        )
}

fn env() -> CompileEnv {
    host().env(HOME, &["/bin", "/opt/tools"])
}

fn allow(id: u32) -> Verdict {
    Verdict {
        action: ACTION_ALLOW,
        rule_id: id,
    }
}

fn deny(id: u32) -> Verdict {
    Verdict {
        action: ACTION_DENY,
        rule_id: id,
    }
}

#[test]
fn an_exec_rule_lowers_to_the_inode_the_host_reports() {
    let rules = resolve(&policy("process:\n  allow: [curl]\n"), &env()).expect("resolves");
    // Found through PATH's /bin, a symlink: the canonical path, and the first hit only.
    assert_eq!(
        rules.exec,
        vec![ExecRuleSpec {
            id: 1,
            action: ACTION_ALLOW,
            target: ExecMatch::Inode {
                dev: 5,
                ino: 42,
                path: "/usr/bin/curl".into(),
            },
        }]
    );
    let out = lower(&rules);
    assert_eq!(
        out.exec,
        vec![ExecEntry {
            dev: 5,
            ino: 42,
            verdict: allow(1),
        }]
    );
    assert_eq!(
        out.exec_paths,
        vec![(PathBuf::from("/usr/bin/curl"), allow(1))]
    );
    assert_eq!(out.controls, controls::EXEC);

    // A deny by name covers every hit in PATH; a path through a symlink is the same file.
    let rules = resolve(
        &policy("process:\n  allow: [/bin/curl]\n  deny: [curl]\n"),
        &env(),
    )
    .expect("resolves");
    let out = lower(&rules);
    assert_eq!(
        out.exec,
        vec![
            ExecEntry {
                dev: 5,
                ino: 42,
                verdict: deny(2),
            },
            ExecEntry {
                dev: 6,
                ino: 1,
                verdict: deny(2),
            },
        ]
    );
}

#[test]
fn directories_are_canonical_on_the_host() {
    let rules = resolve(
        &policy("process:\n  allow: [/bin/**]\n  libraries: [/lib/**, /usr/local/lib/**]\n"),
        &env(),
    )
    .expect("resolves");
    assert_eq!(rules.library_dirs, vec!["/usr/lib/", "/usr/local/lib/"]);
    let out = lower(&rules);
    assert_eq!(
        out.exec_prefix,
        vec![PathEntry {
            path: "/usr/bin/".into(),
            verdict: allow(1),
        }]
    );
    assert_eq!(out.library_dirs, vec!["/usr/lib/", "/usr/local/lib/"]);
    let compiled = compile(
        &policy("process:\n  allow: [/bin/**]\n  libraries: [/lib/**, /usr/local/lib/**]\n"),
        &env(),
    )
    .expect("compiles");
    let missing: Vec<String> = compiled
        .warnings
        .iter()
        .filter(|w| w.message.contains("does not exist"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        missing,
        vec![
            "policies/x.yaml:3:24: process.libraries[1]: directory /usr/local/lib does not exist (yet); the rule applies to it as written"
        ]
    );
}

#[test]
fn a_host_name_with_two_addresses_gives_two_entries() {
    let rules = resolve(
        &policy("network:\n  allow: [\"api.example.com:443\"]\n"),
        &env(),
    )
    .expect("resolves");
    let addrs: Vec<(IpAddr, u8)> = rules.net.iter().map(|r| (r.addr, r.prefix_len)).collect();
    assert_eq!(addrs, vec![(ip("10.0.0.1"), 32), (ip("10.0.0.2"), 32)]);
    let out = lower(&rules);
    let entries: Vec<([u8; 4], u8, u16, u8, u16, Verdict)> = out
        .net4
        .iter()
        .map(|e| (e.addr, e.prefix_len, e.port, e.proto, e.bin, e.verdict))
        .collect();
    assert_eq!(
        entries,
        vec![
            ([10, 0, 0, 1], 32, 443, PROTO_ANY, BIN_ANY, allow(1)),
            ([10, 0, 0, 2], 32, 443, PROTO_ANY, BIN_ANY, allow(1)),
        ]
    );
    assert!(out.net6.is_empty());

    // IPv4-mapped IPv6 answers are judged as IPv4.
    let out = lower(
        &resolve(
            &policy("network:\n  allow: [\"v6.example.com:443\"]\n"),
            &env(),
        )
        .expect("resolves"),
    );
    assert_eq!(out.net4.len(), 1);
    assert_eq!(
        (out.net4[0].addr, out.net4[0].prefix_len),
        ([192, 0, 2, 7], 32)
    );
    assert_eq!(out.net6.len(), 1);
}

#[test]
fn binaries_are_numbered_by_inode() {
    let rules = resolve(
        &policy(
            "network:\n  allow:\n  - {host: 10.0.0.0/8, ports: [443], binaries: [curl, /bin/curl]}\n",
        ),
        &env(),
    )
    .expect("resolves");
    let curl = NetBinary {
        dev: 5,
        ino: 42,
        bin: 1,
        path: "/usr/bin/curl".into(),
    };
    assert_eq!(rules.net_binaries, vec![curl.clone()]);
    let out = lower(&rules);
    assert_eq!(out.net_binaries, vec![curl]);
    assert_eq!(out.net4.len(), 1);
    assert_eq!((out.net4[0].bin, out.net4[0].port), (1, 443));
}

#[test]
fn missing_programs_and_names_give_the_same_diagnostics() {
    let compiled = compile(
        &policy(
            "process:\n  allow: [/usr/bin/README, /opt/absent, absent]\nnetwork:\n  allow: [\"nowhere.example:443\"]\n",
        ),
        &env(),
    )
    .expect("an allow only warns");
    let lines: Vec<String> = compiled
        .warnings
        .iter()
        .filter(|w| w.field.starts_with("process.allow") || w.field.starts_with("network.allow"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        vec![
            "policies/x.yaml:2:11: process.allow[0]: /usr/bin/README is not an executable file: nothing to allow",
            "policies/x.yaml:2:28: process.allow[1]: /opt/absent is not an executable file: nothing to allow",
            "policies/x.yaml:2:41: process.allow[2]: \"absent\" not found in PATH /bin:/opt/tools: nothing to allow",
            "policies/x.yaml:4:11: network.allow[0]: nowhere.example does not resolve (nowhere.example: unknown host): nothing allowed for it",
        ]
    );
    assert!(compiled.policy.exec.is_empty());
    assert!(compiled.policy.net4.is_empty());
    // The real system says the same about a file that is not there.
    let text = "process:\n  allow: [/opt/nemoclaw-absent]\n";
    let on = |env: &CompileEnv| -> Vec<String> {
        compile(&policy(text), env)
            .expect("an allow only warns")
            .warnings
            .iter()
            .filter(|w| w.field == "process.allow[0]")
            .map(ToString::to_string)
            .collect()
    };
    let fake = on(&env());
    assert_eq!(fake, on(&CompileEnv::offline(HOME.into())));
    assert_eq!(
        fake,
        vec![
            "policies/x.yaml:2:11: process.allow[0]: /opt/nemoclaw-absent is not an executable file: nothing to allow"
        ]
    );

    let error = compile(
        &policy(
            "network:\n  allow: [\"*:*\"]\n  deny:\n  - {host: 1.1.1.1, binaries: [/opt/absent]}\n  - \"nowhere.example:443\"\n",
        ),
        &env(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert_eq!(
        error,
        "policies/x.yaml:4:5: network.deny[0].binaries[0]: \"/opt/absent\" is not an executable file (or not in PATH): a deny for a program that does not exist would not cover it once installed; name an existing program\n\
         policies/x.yaml:5:5: network.deny[1]: nowhere.example does not resolve (nowhere.example: unknown host): a deny that matches nothing would weaken the policy; use an address or CIDR"
    );
}

#[test]
fn the_shell_lint_reads_the_resolved_shell() {
    let rules = resolve(&policy("process:\n  allow: [curl]\n"), &env()).expect("resolves");
    assert_eq!(
        rules.shell,
        Some(ResolvedExe {
            path: "/usr/bin/dash".into(),
            dev: 5,
            ino: 7,
        })
    );
    let shell_warnings = |text: &str| -> Vec<String> {
        compile(&policy(text), &env())
            .expect("compiles")
            .warnings
            .iter()
            .filter(|w| w.message.contains("the shell"))
            .map(|w| w.message.clone())
            .collect()
    };
    assert_eq!(
        shell_warnings("process:\n  allow: [curl]\n"),
        vec![
            "the shell (sh -> /usr/bin/dash) is not allowed: programs that spawn a shell (npm scripts, git hooks, system()) fail"
        ]
    );
    assert!(shell_warnings("process:\n  allow: [sh]\n").is_empty());
    // No sh in PATH: nothing to probe.
    let none = resolve(
        &policy("process:\n  allow: [curl]\n"),
        &host().env(HOME, &["/opt/tools"]),
    )
    .expect("resolves");
    assert_eq!(none.shell, None);
}

#[test]
fn home_is_expanded_in_the_rule_set() {
    let rules = resolve(
        &policy("filesystem:\n  allow: [\"$HOME/**\"]\n  read_only: [\"~/.config/x\"]\n"),
        &env(),
    )
    .expect("resolves");
    let patterns: Vec<&str> = rules.fs.iter().map(|r| r.pattern.as_str()).collect();
    assert_eq!(patterns, vec!["/home/fake/**", "/home/fake/.config/x"]);
}

/// A rule set built by hand, without any host, lowers to the entries it says.
#[test]
fn lowering_is_pure_and_deterministic() {
    let rules = RuleSet {
        controls: controls::FS | controls::NET | controls::EXEC,
        fs: vec![
            FsRuleSpec {
                id: 1,
                pattern: "/data/**".into(),
                shape: Shape::Tree("/data".into()),
                allow: FS_READ | FS_WRITE,
                deny: 0,
            },
            FsRuleSpec {
                id: 2,
                pattern: "/data/secret".into(),
                shape: Shape::Exact("/data/secret".into()),
                allow: 0,
                deny: FS_READ | FS_WRITE,
            },
        ],
        exec: vec![ExecRuleSpec {
            id: 3,
            action: ACTION_DENY,
            target: ExecMatch::Inode {
                dev: 5,
                ino: 42,
                path: "/usr/bin/curl".into(),
            },
        }],
        net: vec![NetRuleSpec {
            id: 4,
            action: ACTION_ALLOW,
            proto: PROTO_TCP,
            ports: vec![(PORT_ANY, PORT_ANY)],
            addr: ip("10.0.0.0"),
            prefix_len: 8,
            binaries: None,
        }],
        ..RuleSet::default()
    };
    let out = lower(&rules);
    assert_eq!(out, lower(&rules.clone()));
    assert_eq!(
        serde_json::to_string(&out).expect("serialises"),
        serde_json::to_string(&lower(&rules)).expect("serialises")
    );
    let exact: Vec<(&str, Verdict, Verdict)> = out
        .fs_exact
        .iter()
        .map(|e| (e.path.as_str(), e.read, e.write))
        .collect();
    assert_eq!(
        exact,
        vec![
            ("/data", allow(1), allow(1)),
            ("/data/secret", deny(2), deny(2)),
        ]
    );
    assert_eq!(out.fs_prefix.len(), 1);
    assert_eq!(
        out.exec,
        vec![ExecEntry {
            dev: 5,
            ino: 42,
            verdict: deny(3),
        }]
    );
    assert_eq!(out.net4.len(), 1);
    assert_eq!(
        (out.net4[0].addr, out.net4[0].prefix_len, out.net4[0].proto),
        ([10, 0, 0, 0], 8, PROTO_TCP)
    );
    for query in [
        Query::Open {
            path: "/data/secret".into(),
            write: false,
        },
        Query::Open {
            path: "/data/x".into(),
            write: true,
        },
        Query::Exec {
            path: "/usr/bin/curl".into(),
            dev: 5,
            ino: 42,
        },
    ] {
        assert_eq!(
            evaluate(&out, &query),
            explain(&rules, &query).verdict,
            "{query:?}"
        );
    }
}

/// The same policy on the same host compiles to the same bytes.
#[test]
fn resolving_and_lowering_twice_is_identical() {
    let text = "network:\n  allow:\n  - api.example.com:443\n  - {host: v6.example.com, binaries: [curl]}\nprocess:\n  allow: [curl, /bin/**]\nfilesystem:\n  allow: [\"$HOME/**\"]\n  deny: [\"**/.git/config\"]\n";
    let first = compile(&policy(text), &env()).expect("compiles");
    let second = compile(&policy(text), &env()).expect("compiles");
    assert_eq!(first.rules, second.rules);
    assert_eq!(
        serde_json::to_string(&first.policy).expect("serialises"),
        serde_json::to_string(&second.policy).expect("serialises")
    );
    assert_eq!(first.policy, lower(&first.rules));
}
