//! Tests of the policy pipeline as a whole: load, compile, explain, evaluate.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nemoclaw_common::net::{PORT_ANY, PROTO_ANY, PROTO_TCP, PROTO_UDP};
use nemoclaw_common::rule::{ACTION_ALLOW, ACTION_DENY, Verdict};
use nemoclaw_common::sandbox::controls;

use super::compiled::ListenEntry;
use super::*;

pub(crate) struct FixedResolver(pub BTreeMap<String, Vec<IpAddr>>);

impl Resolver for FixedResolver {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        self.0
            .get(host)
            .cloned()
            .ok_or_else(|| format!("{host}: unknown host"))
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|_| panic!("bad test address {text}"))
}

pub(crate) fn test_env(path: Vec<PathBuf>) -> CompileEnv {
    let table = [
        (
            "api.openai.com",
            vec![ip("162.159.140.245"), ip("2606:4700::6812:1")],
        ),
        ("api.anthropic.com", vec![ip("160.79.104.10")]),
        ("build.nvidia.com", vec![ip("::ffff:1.2.3.4")]),
    ];
    let table = table.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    CompileEnv {
        home: "/home/agent".into(),
        path,
        resolver: Box::new(FixedResolver(table)),
        files: Box::new(SystemFiles),
    }
}

fn seed_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/examples/seed.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(text: &str) -> Result<Policy, PolicyError> {
    parse_str(Path::new("policies/x.yaml"), text)
}

fn must_parse(text: &str) -> Policy {
    parse(text).unwrap_or_else(|e| panic!("rejected:\n{e}"))
}

fn must_compile(text: &str) -> Compiled {
    compile(&must_parse(text), &test_env(Vec::new()))
        .unwrap_or_else(|e| panic!("did not compile:\n{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(error) => error.to_string().lines().map(str::to_owned).collect(),
    }
}

fn open(compiled: &Compiled, path: &str, write: bool) -> Decision {
    let query = Query::Open {
        path: path.to_owned(),
        write,
    };
    let decision = explain(&compiled.rules, &query);
    assert_eq!(
        evaluate(&compiled.policy, &query),
        decision.verdict,
        "explain and evaluate disagree on {query:?}"
    );
    decision
}

fn connect(compiled: &Compiled, addr: &str, port: u16, proto: u8) -> Decision {
    let query = Query::Connect {
        addr: ip(addr),
        port,
        proto,
        exe: None,
    };
    let decision = explain(&compiled.rules, &query);
    assert_eq!(
        evaluate(&compiled.policy, &query),
        decision.verdict,
        "explain and evaluate disagree on {query:?}"
    );
    decision
}

#[test]
fn seed_is_accepted_verbatim() {
    let policy = must_parse(&seed_text());
    assert_eq!(policy.version, 1);
    let network = policy.network.as_ref().map(|n| n.allow.len());
    assert_eq!(network, Some(3));
    assert!(matches!(
        policy.network.as_ref().map(|n| &n.deny),
        Some(NetDeny::All)
    ));
    assert_eq!(
        policy
            .filesystem
            .as_ref()
            .map(|f| (f.allow.len(), f.deny.len())),
        Some((2, 4))
    );
    assert_eq!(
        policy
            .process
            .as_ref()
            .map(|p| (p.allow.len(), p.deny.len())),
        Some((2, 4))
    );
    assert_eq!(
        policy.privilege_escalation.as_ref().map(|p| p.value),
        Some(PrivilegeEscalation::Deny)
    );
}

#[test]
fn seed_compiles_and_explains_its_own_examples() {
    let compiled = must_compile(&seed_text());
    let out = &compiled.policy;
    assert_eq!(
        out.controls,
        controls::EXEC | controls::NET | controls::FS | controls::PRIVILEGE
    );
    assert_eq!(out.rules.len(), 16);
    for (index, rule) in out.rules.iter().enumerate() {
        assert_eq!(rule.id as usize, index + 1);
    }
    let git = open(&compiled, "/workspace/repo/.git/config", false);
    assert_eq!(git.verdict.action, ACTION_DENY);
    let rule = &out.rules[git.verdict.rule_id as usize - 1];
    assert_eq!(
        (rule.text.as_str(), rule.line, rule.column),
        ("**/.git/config", 15, 5)
    );
    assert!(open(&compiled, "/workspace/repo/main.py", true).allowed());
    assert!(open(&compiled, "/tmp/openclaw", false).allowed());
    assert!(!open(&compiled, "/tmp/other", false).allowed());
    assert!(!open(&compiled, "/etc/passwd", false).allowed());
    assert!(!open(&compiled, "/home/agent/.ssh/id_ed25519", false).allowed());
    assert!(!open(&compiled, "/home/agent/.env", true).allowed());
    assert!(open(&compiled, "/workspace/.envrc", false).allowed());
    assert!(connect(&compiled, "162.159.140.245", 443, PROTO_TCP).allowed());
    assert!(connect(&compiled, "2606:4700::6812:1", 443, PROTO_TCP).allowed());
    assert!(!connect(&compiled, "162.159.140.245", 80, PROTO_TCP).allowed());
    assert!(!connect(&compiled, "8.8.8.8", 53, PROTO_UDP).allowed());
    // build.nvidia.com resolved to an IPv4-mapped address: stored and judged as IPv4.
    assert!(
        out.net4
            .iter()
            .any(|e| e.addr == [1, 2, 3, 4] && e.prefix_len == 32)
    );
    assert!(connect(&compiled, "1.2.3.4", 443, PROTO_TCP).allowed());
    assert!(connect(&compiled, "::ffff:1.2.3.4", 443, PROTO_TCP).allowed());
}

#[test]
fn seed_warns_about_what_it_breaks() {
    let compiled = must_compile(&seed_text());
    let text: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
    let has = |needle: &str| text.iter().any(|w| w.contains(needle));
    assert!(has("/etc/ssl/certs/ca-certificates.crt"), "{text:#?}");
    assert!(has("/etc/resolv.conf"), "{text:#?}");
    assert!(has("no DNS server"), "{text:#?}");
}

#[test]
fn compile_is_deterministic() {
    let a = must_compile(&seed_text());
    let b = must_compile(&seed_text());
    let json = |c: &Compiled| serde_json::to_string(&c.policy).unwrap_or_default();
    assert_eq!(json(&a), json(&b));
    assert!(!json(&a).is_empty());
}

#[test]
fn errors_name_file_line_column_and_field() {
    let lines = errors("network:\n  allow:\n  - \"a.com:443\"\n  - \"b.com:443\"\n  - \"foo\"\n");
    assert_eq!(
        lines,
        vec![r#"policies/x.yaml:5:5: network.allow[2]: expected HOST:PORT, got "foo""#]
    );

    let lines = errors("filesystem:\n  alow:\n  - /x\n");
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("policies/x.yaml:2:3: filesystem.alow: unknown field `alow`"),
        "{lines:?}"
    );

    let lines = errors("process:\n  allow: [node]\nprocess: {}\n");
    assert!(
        lines[0].starts_with("policies/x.yaml:3:1: process: duplicate key"),
        "{lines:?}"
    );

    let lines = errors("filesystem:\n  allow:\n  - /a/**/b\n  - relative/x\n  - /x/$USER\n");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("policies/x.yaml:3:5: filesystem.allow[0]: \"/a/**/b\""),
        "{lines:?}"
    );
    assert!(lines[0].contains("supported shapes"), "{lines:?}");
    assert!(lines[1].contains("relative path"), "{lines:?}");
    assert!(lines[2].contains("unsupported variable $USER"), "{lines:?}");

    let lines = errors("network:\n  allow:\n  - {host: a.com, ports: [0], color: red}\n");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("network.allow[0].color: unknown field")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("network.allow[0].ports[0]: port must be")),
        "{lines:?}"
    );

    let lines = errors("privilege_escalation: maybe\n");
    assert!(
        lines[0].starts_with("policies/x.yaml:1:23: privilege_escalation: expected deny or allow"),
        "{lines:?}"
    );
    let lines = errors("version: 2\n");
    assert!(lines[0].contains("unsupported version"), "{lines:?}");
    let lines = errors("network: [1, 2\n");
    assert!(lines[0].starts_with("policies/x.yaml:"), "{lines:?}");
    assert!(matches!(parse(""), Err(PolicyError::Empty { .. })));
    assert!(matches!(parse("- a\n"), Err(PolicyError::Invalid(_))));
}

fn listen(compiled: &Compiled, addr: &str, port: u16, proto: u8) -> Decision {
    let query = Query::Listen {
        addr: ip(addr),
        port,
        proto,
    };
    let decision = explain(&compiled.rules, &query);
    assert_eq!(
        evaluate(&compiled.policy, &query),
        decision.verdict,
        "explain and evaluate disagree on {query:?}"
    );
    decision
}

/// With a network section and no `listen`: loopback only, on any port; every other
/// address (the wildcards `0.0.0.0` and `::` included) is denied, but a UDP bind to an
/// ephemeral port (clients) is not. Without a network section nothing is restricted.
#[test]
fn listen_default_is_loopback_only() {
    let compiled = must_compile("network:\n  allow:\n  - \"10.0.0.1:443\"\n");
    assert!(compiled.policy.listen.is_empty());
    assert!(compiled.rules.listen.is_empty());
    let open = Verdict {
        action: ACTION_ALLOW,
        rule_id: 0,
    };
    let shut = Verdict {
        action: ACTION_DENY,
        rule_id: 0,
    };
    for (addr, port, proto) in [
        ("127.0.0.1", 8080, PROTO_TCP),
        ("127.1.2.3", 0, PROTO_TCP),
        ("::1", 22, PROTO_TCP),
        ("::ffff:127.0.0.1", 8080, PROTO_UDP),
        ("0.0.0.0", 0, PROTO_UDP),
        ("::", 0, PROTO_UDP),
    ] {
        let d = listen(&compiled, addr, port, proto);
        assert_eq!(d.verdict, open, "{addr}:{port}/{proto}");
        assert!(d.restricted);
    }
    for (addr, port, proto) in [
        ("0.0.0.0", 8080, PROTO_TCP),
        ("0.0.0.0", 0, PROTO_TCP),
        ("::", 8080, PROTO_UDP),
        ("10.0.0.1", 443, PROTO_TCP),
        ("::ffff:0.0.0.0", 80, PROTO_TCP),
    ] {
        assert_eq!(
            listen(&compiled, addr, port, proto).verdict,
            shut,
            "{addr}:{port}/{proto}"
        );
    }
    let text = listen(&compiled, "127.0.0.1", 80, PROTO_TCP).describe(&compiled.policy.rules);
    assert!(text.starts_with("ALLOW: listeners on loopback"), "{text}");
    let text = listen(&compiled, "0.0.0.0", 80, PROTO_TCP).describe(&compiled.policy.rules);
    assert!(text.starts_with("DENY: no rule matches"), "{text}");

    let open_all = must_compile("name: no-network\n");
    let d = listen(&open_all, "0.0.0.0", 8080, PROTO_TCP);
    assert!(d.allowed() && !d.restricted);
}

/// `network.listen` entries open their ports on every address, for their protocol; the
/// compiled keys are one per (protocol, port), the full range and `*` the any-port key.
#[test]
fn listen_entries_open_ports_on_every_address() {
    let compiled = must_compile(
        "network:\n  listen:\n  - 8080\n  - \"9000-9001\"\n  - {ports: [5353], protocol: udp}\n  - {ports: [8080, 7000], protocol: tcp}\n",
    );
    let entry = |proto, port, rule_id| ListenEntry {
        proto,
        port,
        rule_id,
    };
    assert_eq!(
        compiled.policy.listen,
        vec![
            entry(PROTO_ANY, 8080, 1),
            entry(PROTO_ANY, 9000, 2),
            entry(PROTO_ANY, 9001, 2),
            entry(PROTO_TCP, 7000, 4),
            entry(PROTO_TCP, 8080, 4),
            entry(PROTO_UDP, 5353, 3),
        ]
    );
    let rule = &compiled.policy.rules[2];
    assert_eq!(
        (
            rule.line,
            rule.column,
            rule.section.as_str(),
            rule.text.as_str()
        ),
        (5, 5, "network.listen", "{ports: [5353], protocol: udp}")
    );
    let allowed_by = |addr, port, proto| {
        let d = listen(&compiled, addr, port, proto);
        assert!(d.allowed(), "{addr}:{port}: {d:?}");
        d.verdict.rule_id
    };
    assert_eq!(allowed_by("0.0.0.0", 8080, PROTO_TCP), 1, "lowest rule id");
    assert_eq!(allowed_by("::", 8080, PROTO_UDP), 1);
    assert_eq!(allowed_by("10.1.2.3", 9001, PROTO_UDP), 2);
    assert_eq!(allowed_by("::", 5353, PROTO_UDP), 3);
    assert_eq!(allowed_by("0.0.0.0", 7000, PROTO_TCP), 4);
    for (addr, port, proto) in [
        ("::", 5353, PROTO_TCP),
        ("0.0.0.0", 7000, PROTO_UDP),
        ("0.0.0.0", 9002, PROTO_TCP),
        ("0.0.0.0", 0, PROTO_TCP),
    ] {
        let d = listen(&compiled, addr, port, proto);
        assert_eq!(
            d.verdict,
            Verdict {
                action: ACTION_DENY,
                rule_id: 0
            },
            "{addr}:{port}/{proto}"
        );
    }

    // `*` and the full range: every port, an unbound listener's port 0 included.
    for entry_text in ["\"*\"", "1-65535", "{protocol: tcp}"] {
        let compiled = must_compile(&format!("network:\n  listen:\n  - {entry_text}\n"));
        assert_eq!(compiled.policy.listen.len(), 1, "{entry_text}");
        assert_eq!(compiled.policy.listen[0].port, PORT_ANY, "{entry_text}");
        let d = listen(&compiled, "0.0.0.0", 0, PROTO_TCP);
        assert_eq!(d.verdict.rule_id, 1, "{entry_text}");
        assert!(d.allowed(), "{entry_text}");
    }
}

/// Every malformed `network.listen` entry is refused at its own line and column.
#[test]
fn listen_errors_are_located() {
    let cases: &[(&str, &str)] = &[
        (
            "network:\n  listen:\n  - 0\n",
            "policies/x.yaml:3:5: network.listen[0]: port must be 1..=65535",
        ),
        (
            "network:\n  listen:\n  - 80\n  - \"0.0.0.0:8080\"\n",
            "policies/x.yaml:4:5: network.listen[1]: listen entries name ports, not HOST:PORT",
        ),
        (
            "network:\n  listen:\n  - \"90-80\"\n",
            "policies/x.yaml:3:5: network.listen[0]: port range \"90-80\" is empty",
        ),
        (
            "network:\n  listen:\n  - ~\n",
            "policies/x.yaml:3:5: network.listen[0]: expected a port, a range FIRST-LAST or *, got null",
        ),
        (
            "network:\n  listen: 8080\n",
            "policies/x.yaml:2:11: network.listen: expected a list",
        ),
        (
            "network:\n  listen:\n  - {ports: []}\n",
            "policies/x.yaml:3:13: network.listen[0].ports: ports must list at least one port",
        ),
        (
            "network:\n  listen:\n  - {ports: [\"*\"]}\n",
            "policies/x.yaml:3:14: network.listen[0].ports[0]: `*` cannot be listed",
        ),
        (
            "network:\n  listen:\n  - {ports: [22], protocol: sctp}\n",
            "policies/x.yaml:3:29: network.listen[0].protocol: expected tcp, udp or any",
        ),
        (
            "network:\n  listen:\n  - {port: 22}\n",
            "policies/x.yaml:3:6: network.listen[0].port: unknown field `port`, expected one of `ports`, `protocol`",
        ),
    ];
    for (text, want) in cases {
        let lines = errors(text);
        assert_eq!(lines.len(), 1, "{text}: {lines:?}");
        assert!(
            lines[0].starts_with(want),
            "{text}:\n got  {}\n want {want}",
            lines[0]
        );
    }
}

#[test]
fn accepts_extensions() {
    let compiled = must_compile(
        r#"
version: 1
name: ext
description: every extension
network:
  allow:
  - "10.0.0.0/8:8000-8002"
  - "[2001:db8::1]:443"
  - "[2001:db8::/32]:*"
  - "*:53"
  - {host: api.openai.com, ports: [443, "8443"], protocol: tcp}
  - {host: "::1", protocol: udp}
  deny:
  - "10.1.0.0/16:*"
filesystem:
  allow:
  - /workspace/**
  - {path: /data/**, access: read}
  read_only:
  - /usr/**
  - ~/.config/**
  deny:
  - {path: /usr/local/**, access: write}
  - "**/*.pem"
process:
  allow: [/usr/bin/env, "/opt/tools/**"]
  deny: []
privilege_escalation: allow
"#,
    );
    let out = &compiled.policy;
    assert_eq!(out.controls, controls::EXEC | controls::NET | controls::FS);
    assert!(connect(&compiled, "10.2.3.4", 8001, PROTO_TCP).allowed());
    assert!(!connect(&compiled, "10.2.3.4", 8003, PROTO_TCP).allowed());
    let denied = connect(&compiled, "10.1.3.4", 8001, PROTO_TCP);
    assert_eq!(denied.verdict.action, ACTION_DENY);
    assert_ne!(denied.verdict.rule_id, 0);
    assert!(connect(&compiled, "2001:db8:5::7", 9, PROTO_UDP).allowed());
    assert!(connect(&compiled, "9.9.9.9", 53, PROTO_UDP).allowed());
    assert!(connect(&compiled, "162.159.140.245", 8443, PROTO_TCP).allowed());
    assert!(!connect(&compiled, "162.159.140.245", 8443, PROTO_UDP).allowed());
    assert!(connect(&compiled, "::1", 5353, PROTO_UDP).allowed());
    assert!(!connect(&compiled, "::1", 5353, PROTO_TCP).allowed());
    assert!(
        out.net4
            .iter()
            .any(|e| e.port == 53 && e.proto == PROTO_ANY && e.prefix_len == 0)
    );
    assert!(
        out.net6
            .iter()
            .any(|e| e.port == PORT_ANY && e.prefix_len == 32)
    );
    assert!(open(&compiled, "/data/x", false).allowed());
    assert!(!open(&compiled, "/data/x", true).allowed());
    assert!(open(&compiled, "/usr/lib/libc.so.6", false).allowed());
    assert!(!open(&compiled, "/usr/lib/libc.so.6", true).allowed());
    assert!(open(&compiled, "/home/agent/.config/app.toml", false).allowed());
    assert!(!open(&compiled, "/workspace/key.pem", false).allowed());
    assert!(open(&compiled, "/usr/local/lib/x", false).allowed());
    assert!(!open(&compiled, "/usr/local/lib/x", true).allowed());
    assert_eq!(
        out.exec_prefix
            .iter()
            .map(|e| e.path.as_str())
            .collect::<Vec<_>>(),
        vec!["/opt/tools/"]
    );
}

#[test]
fn host_names_in_denies_must_resolve() {
    let policy =
        must_parse("network:\n  allow: [\"1.1.1.1:443\"]\n  deny: [\"nowhere.invalid:443\"]\n");
    let error = compile(&policy, &test_env(Vec::new()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error
            .starts_with("policies/x.yaml:3:10: network.deny[0]: nowhere.invalid does not resolve"),
        "{error}"
    );
    let policy = must_parse("network:\n  allow: [\"nowhere.invalid:443\"]\n");
    let compiled = compile(&policy, &test_env(Vec::new())).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        compiled
            .warnings
            .iter()
            .any(|w| w.field == "network.allow[0]" && w.message.contains("does not resolve"))
    );
    assert!(compiled.policy.net4.is_empty());
}

#[test]
fn paths_longer_than_kernel_keys_are_refused() {
    let long = "d/".repeat(130);
    let policy = must_parse(&format!("filesystem:\n  allow: [\"/{long}**\"]\n"));
    let error = compile(&policy, &test_env(Vec::new()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("filesystem.allow[0]") && error.contains("at most 252"),
        "{error}"
    );
}

fn exe_of(path: &str) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).expect("test binary exists");
    (
        nemoclaw_common::exec::kernel_dev(libc::major(m.dev()), libc::minor(m.dev())),
        m.ino(),
    )
}

fn connect_as(compiled: &Compiled, addr: &str, port: u16, exe: Option<(u64, u64)>) -> Decision {
    let query = Query::Connect {
        addr: ip(addr),
        port,
        proto: PROTO_TCP,
        exe,
    };
    let decision = explain(&compiled.rules, &query);
    assert_eq!(
        evaluate(&compiled.policy, &query),
        decision.verdict,
        "explain and evaluate disagree on {query:?}"
    );
    decision
}

#[test]
fn binaries_restrict_an_allow_to_those_executables() {
    let policy = must_parse(
        "network:\n  allow:\n  - {host: 1.1.1.1, ports: [443], binaries: [/usr/bin/python3, env]}\n",
    );
    let env = test_env(vec!["/usr/bin".into()]);
    let compiled = compile(&policy, &env).expect("compiles");
    let python = exe_of("/usr/bin/python3");
    let env_bin = exe_of("/usr/bin/env");
    assert_eq!(compiled.policy.net_binaries.len(), 2, "{compiled:?}");
    assert!(compiled.policy.net4.iter().all(|e| e.bin != 0));
    assert!(connect_as(&compiled, "1.1.1.1", 443, Some(python)).allowed());
    assert!(connect_as(&compiled, "1.1.1.1", 443, Some(env_bin)).allowed());
    assert!(!connect_as(&compiled, "1.1.1.1", 443, Some(exe_of("/bin/sh"))).allowed());
    assert!(!connect_as(&compiled, "1.1.1.1", 443, None).allowed());
    assert!(!connect_as(&compiled, "1.1.1.1", 80, Some(python)).allowed());
}

#[test]
fn network_without_filesystem_warns_that_pathname_unix_sockets_are_denied() {
    let unix = |text: &str| {
        let compiled = compile(&must_parse(text), &test_env(Vec::new())).expect("compiles");
        compiled
            .warnings
            .iter()
            .any(|w| w.field == "filesystem" && w.message.contains("pathname unix sockets"))
    };
    assert!(unix("network:\n  allow: [\"1.1.1.1:443\"]\n"));
    assert!(!unix("process:\n  allow: [sh]\n"));
    assert!(!unix(
        "network:\n  allow: [\"1.1.1.1:443\"]\nfilesystem:\n  allow: [/tmp/**]\n"
    ));
}

#[test]
fn any_binary_deny_beats_a_per_binary_allow_and_per_binary_deny_only_hits_its_binary() {
    let policy = must_parse(
        "network:\n  allow:\n  - {host: 10.0.0.0/8, binaries: [/usr/bin/python3]}\n  - \"10.0.0.0/8:80\"\n  deny:\n  - \"10.1.0.0/16:*\"\n  - {host: 10.2.0.0/16, ports: [80], binaries: [/usr/bin/env]}\n",
    );
    let compiled = compile(&policy, &test_env(Vec::new())).expect("compiles");
    let python = Some(exe_of("/usr/bin/python3"));
    let env_bin = Some(exe_of("/usr/bin/env"));
    assert!(connect_as(&compiled, "10.9.0.1", 443, python).allowed());
    assert!(!connect_as(&compiled, "10.9.0.1", 443, env_bin).allowed());
    let d = connect_as(&compiled, "10.1.0.1", 443, python);
    assert_eq!((d.allowed(), d.verdict.rule_id), (false, 3), "{d:?}");
    assert!(connect_as(&compiled, "10.2.0.1", 80, python).allowed());
    let d = connect_as(&compiled, "10.2.0.1", 80, env_bin);
    assert_eq!((d.allowed(), d.verdict.rule_id), (false, 4), "{d:?}");
    assert!(connect_as(&compiled, "10.3.0.1", 80, env_bin).allowed());
}

#[test]
fn binaries_that_do_not_resolve() {
    let allow =
        must_parse("network:\n  allow:\n  - {host: 1.1.1.1, binaries: [/nonexistent/prog]}\n");
    let compiled = compile(&allow, &test_env(Vec::new())).expect("an allow only warns");
    assert!(compiled.policy.net4.is_empty());
    assert!(
        compiled
            .warnings
            .iter()
            .any(|w| w.field == "network.allow[0].binaries[0]"),
        "{:?}",
        compiled.warnings
    );
    let deny = must_parse(
        "network:\n  allow:\n  - \"*:*\"\n  deny:\n  - {host: 1.1.1.1, binaries: [no-such-program-here]}\n",
    );
    let error = compile(&deny, &test_env(vec!["/usr/bin".into()]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("network.deny[0].binaries[0]"), "{error}");
    let relative = must_parse("network:\n  allow:\n  - {host: 1.1.1.1, binaries: [bin/x]}\n");
    assert!(compile(&relative, &test_env(Vec::new())).is_err());
}

#[test]
fn deny_beats_allow_across_prefix_lengths() {
    let compiled = must_compile(
        "filesystem:\n  allow: [/a/b/**, /a/b/c, \"**/x\"]\n  deny: [/a/**]\nnetwork:\n  allow: [\"10.1.2.3:443\"]\n  deny: [\"10.0.0.0/8:443\"]\n",
    );
    for path in ["/a/b", "/a/b/c", "/a/b/d/e", "/a/x"] {
        let decision = open(&compiled, path, false);
        assert_eq!(
            decision.verdict,
            Verdict {
                action: ACTION_DENY,
                rule_id: 4
            },
            "{path}"
        );
    }
    assert!(open(&compiled, "/z/x", false).allowed());
    assert_eq!(
        connect(&compiled, "10.1.2.3", 443, PROTO_TCP)
            .verdict
            .action,
        ACTION_DENY
    );
    let text: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|w| w.contains("filesystem.allow[0]") && w.contains("can never take effect")),
        "{text:#?}"
    );
}

#[test]
fn name_prefix_trees_are_byte_prefixes_in_the_trie() {
    // OpenClaw's per-user directories: `/tmp/openclaw-<uid>`, `/tmp/openclaw-state-locks-<uid>`.
    let compiled = must_compile(
        "filesystem:\n  allow: [/tmp/openclaw-*/**, /tmp/openclaw-keep/**]\n  deny: [/tmp/openclaw-secret*/**]\n",
    );
    let prefix: Vec<&str> = compiled
        .policy
        .fs_prefix
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert!(prefix.contains(&"/tmp/openclaw-"), "{prefix:?}");
    assert!(prefix.contains(&"/tmp/openclaw-secret"), "{prefix:?}");
    for (path, allowed) in [
        ("/tmp/openclaw-0", true),
        ("/tmp/openclaw-0/session/a.json", true),
        ("/tmp/openclaw-state-locks-0/lock", true),
        ("/tmp/openclaw-keep", true),
        ("/tmp/openclaw-secret", false),
        ("/tmp/openclaw-secrets/key", false),
        ("/tmp/openclaw", false),
        ("/tmp/openclaw/x", false),
        ("/tmp/x-openclaw-0", false),
    ] {
        assert_eq!(open(&compiled, path, true).allowed(), allowed, "{path}");
    }
    // The rename guard covers the directory the names live in.
    assert!(
        compiled
            .policy
            .fs_subtrees
            .iter()
            .any(|e| e.subtree == super::compiled::Subtree::Directory("/tmp".into())),
        "{:?}",
        compiled.policy.fs_subtrees
    );
    // An allow under a covering deny is reported, by tree and by byte prefix.
    let shadowed = must_compile(
        "filesystem:\n  allow: [/tmp/oc-*/**, /w/oc-a/**]\n  deny: [/tmp/**, /w/oc-*/**]\n",
    );
    let text: Vec<String> = shadowed.warnings.iter().map(ToString::to_string).collect();
    for field in ["filesystem.allow[0]", "filesystem.allow[1]"] {
        assert!(
            text.iter()
                .any(|w| w.contains(field) && w.contains("can never take effect")),
            "{field}: {text:#?}"
        );
    }
}

#[test]
fn lints_duplicates_contradictions_and_absent_sections() {
    let compiled = must_compile("filesystem:\n  allow: [/w/**, /w/**]\n  deny: [/w/**]\n");
    let text: Vec<String> = compiled.warnings.iter().map(ToString::to_string).collect();
    let has = |needle: &str| text.iter().any(|w| w.contains(needle));
    assert!(has("filesystem.allow[1]: duplicate of line 2"), "{text:#?}");
    assert!(
        has("filesystem.deny[0]: contradicts filesystem.allow"),
        "{text:#?}"
    );
    assert!(has("network: section absent"), "{text:#?}");
    assert!(has("process: section absent"), "{text:#?}");
    assert!(has("privilege_escalation: absent"), "{text:#?}");
    assert_eq!(compiled.policy.controls, controls::FS);
}

#[test]
fn process_names_resolve_through_path() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bin = dir.path().join("bin");
    let other = dir.path().join("other");
    for d in [&bin, &other] {
        std::fs::create_dir(d).unwrap_or_else(|e| panic!("{e}"));
    }
    let write_exec = |path: &Path| {
        std::fs::write(path, "#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        let mut perms = std::fs::metadata(path).map_or_else(|e| panic!("{e}"), |m| m.permissions());
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(path, perms).unwrap_or_else(|e| panic!("{e}"));
    };
    write_exec(&other.join("real-tool"));
    std::os::unix::fs::symlink(other.join("real-tool"), bin.join("tool"))
        .unwrap_or_else(|e| panic!("{e}"));
    write_exec(&bin.join("curl"));
    write_exec(&other.join("curl"));
    let policy = must_parse("process:\n  allow: [tool, missing]\n  deny: [curl]\n");
    let env = test_env(vec![bin.clone(), other.clone()]);
    let compiled = compile(&policy, &env).unwrap_or_else(|e| panic!("{e}"));
    let out = &compiled.policy;
    let real = std::fs::canonicalize(other.join("real-tool")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.exec_paths
            .iter()
            .any(|(p, v)| *p == real && v.action == ACTION_ALLOW)
    );
    // A deny by name covers every hit in PATH.
    assert_eq!(
        out.exec
            .iter()
            .filter(|e| e.verdict.action == ACTION_DENY)
            .count(),
        2
    );
    assert!(
        compiled
            .warnings
            .iter()
            .any(|w| w.field == "process.allow[1]" && w.message.contains("not found"))
    );
    let stat = |p: &Path| {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{e}"));
        (
            nemoclaw_common::exec::kernel_dev(libc::major(m.dev()), libc::minor(m.dev())),
            m.ino(),
        )
    };
    let (dev, ino) = stat(&real);
    let query = Query::Exec {
        path: real.clone(),
        dev,
        ino,
    };
    assert!(explain(&compiled.rules, &query).allowed());
    assert_eq!(
        evaluate(out, &query),
        explain(&compiled.rules, &query).verdict
    );
    let curl = other.join("curl");
    let (dev, ino) = stat(&curl);
    let query = Query::Exec {
        path: curl,
        dev,
        ino,
    };
    assert_eq!(explain(&compiled.rules, &query).verdict.action, ACTION_DENY);
}

#[test]
fn library_directories_default_and_can_be_replaced() {
    let defaults = must_compile("process:\n  allow: []\n");
    let want: Vec<String> = nemoclaw_common::exec::DEFAULT_LIBRARY_DIRS
        .iter()
        .map(|d| (*d).to_owned())
        .collect();
    assert_eq!(defaults.policy.library_dirs, want);
    // No process section: no library directories (nothing is judged).
    assert!(must_compile("network: {}\n").policy.library_dirs.is_empty());

    // `/` is a directory on every machine; a missing one is kept as written (with a warning).
    let custom = must_compile(
        "process:\n  allow: []\n  libraries:\n  - /**\n  - /opt/nemoclaw-absent/lib/**\n",
    );
    assert_eq!(
        custom.policy.library_dirs,
        vec!["/".to_owned(), "/opt/nemoclaw-absent/lib/".to_owned()]
    );
    // An empty list: nothing but allowed binaries may be mapped executable.
    let none = must_compile("process:\n  allow: []\n  libraries: []\n");
    assert!(none.policy.library_dirs.is_empty());

    let lines = errors("process:\n  libraries:\n  - /usr/lib\n  - libc\n");
    assert_eq!(
        lines,
        vec![
            r#"policies/x.yaml:3:5: process.libraries[0]: "/usr/lib": a library directory is written /dir/**"#,
            r#"policies/x.yaml:4:5: process.libraries[1]: "libc": a library directory is written /dir/**"#,
        ]
    );
}

#[test]
fn anonymous_exec_deny_is_a_cited_rule_and_allow_is_the_default() {
    let default = must_compile("process:\n  allow: []\n");
    assert_eq!(default.policy.anonymous_exec_rule, 0);
    let allowed = must_compile("process:\n  allow: []\n  anonymous_exec: allow\n");
    assert_eq!(allowed.policy.anonymous_exec_rule, 0);

    let denied = must_compile("process:\n  allow:\n  - /bin/sh\n  anonymous_exec: deny\n");
    let id = denied.policy.anonymous_exec_rule;
    assert_eq!(id, 2, "source order: the allow entry is rule 1");
    let rule = &denied.policy.rules[id as usize - 1];
    assert_eq!(rule.section, "process.anonymous_exec");
    assert_eq!(rule.text, "anonymous_exec: deny");
    assert_eq!((rule.line, rule.column), (4, 19));

    let lines = errors("process:\n  anonymous_exec: never\n");
    assert_eq!(
        lines,
        vec![
            r#"policies/x.yaml:2:19: process.anonymous_exec: expected deny or allow, got "never""#
        ]
    );
}

#[test]
fn schema_json_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/schema.json");
    let generated = schema::generate();
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "policies/schema.json is stale; regenerate with `cargo run -p nemoclaw-userspace -- policy schema > policies/schema.json`"
    );
}

#[test]
fn example_policies_check_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files = Vec::new();
    for sub in [dir.clone(), dir.join("examples")] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        files.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml")),
        );
    }
    assert!(!files.is_empty());
    for file in files {
        let policy = load(&file).unwrap_or_else(|e| panic!("{e}"));
        compile(&policy, &test_env(Vec::new()))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

#[test]
fn generated_policies_compile_quickly() {
    // Correctness of the generator only; the timing is reported by the benchmark.
    let (_, _, entries) = bench::compile_generated(600).unwrap_or_else(|e| panic!("{e}"));
    assert!(entries > 500);
}

mod properties {
    use std::fmt::Write as _;

    use proptest::prelude::*;

    use super::*;
    use crate::policy::pattern::{PathPattern, glob_matches};

    const NAMES: &[&str] = &["a", "b", ".git", "config", "x.pem", "m"];

    fn path_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(NAMES), 0..5)
            .prop_map(|parts| format!("/{}", parts.join("/")))
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        let body =
            prop::collection::vec(prop::sample::select(NAMES), 1..4).prop_map(|p| p.join("/"));
        prop_oneof![
            body.clone().prop_map(|b| format!("/{b}")),
            body.clone().prop_map(|b| format!("/{b}/**")),
            body.clone().prop_map(|b| format!("**/{b}")),
            prop::sample::select(vec![".pem", "m", "g"]).prop_map(|e| format!("**/*{e}")),
            Just("/**".to_owned()),
            (
                body.clone(),
                prop::sample::select(vec!["", "c", "co", "x", "."])
            )
                .prop_map(|(b, p)| format!("/{b}/{p}*/**")),
            body.prop_map(|b| format!("$HOME/{b}")),
        ]
    }

    fn fs_entry_strategy() -> impl Strategy<Value = (u8, String, u8)> {
        (0u8..3, pattern_strategy(), 0u8..3)
    }

    const ADDRS: &[&str] = &[
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.1.2.0/24",
        "10.1.2.3",
        "0.0.0.0/0",
        "[2001:db8::/32]",
        "[2001:db8::1]",
        "[::ffff:10.1.2.3]",
        "*",
    ];
    const PORTS: &[&str] = &["*", "53", "443", "443-445"];
    const QUERY_ADDRS: &[&str] = &[
        "10.1.2.3",
        "10.1.2.4",
        "10.2.0.1",
        "192.0.2.1",
        "2001:db8::1",
        "2001:db8::2",
        "2001:db9::1",
        "::ffff:10.1.2.3",
    ];

    /// Executables every test machine has, for `binaries` (by path: the test PATH is empty).
    const BINARIES: &[&str] = &["/bin/sh", "/usr/bin/env", "/usr/bin/python3"];

    /// (deny, "addr:port", protocol 0..3, mask of `BINARIES`).
    fn net_entry_strategy() -> impl Strategy<Value = (bool, String, u8, u8)> {
        (
            any::<bool>(),
            (prop::sample::select(ADDRS), prop::sample::select(PORTS)),
            0u8..3,
            prop_oneof![Just(0u8), 0u8..8],
        )
            .prop_map(|(deny, (addr, port), proto, bins)| {
                (deny, format!("{addr}:{port}"), proto, bins)
            })
    }

    /// Kernel (dev, ino) of `BINARIES[i]`, and of none of them.
    fn exe_ids() -> Vec<Option<(u64, u64)>> {
        use std::os::unix::fs::MetadataExt as _;
        let mut out: Vec<Option<(u64, u64)>> = BINARIES
            .iter()
            .map(|p| {
                let m = std::fs::metadata(p).expect("test binary exists");
                Some((
                    nemoclaw_common::exec::kernel_dev(libc::major(m.dev()), libc::minor(m.dev())),
                    m.ino(),
                ))
            })
            .collect();
        out.push(None);
        out.push(Some((1, 2)));
        out
    }

    fn policy_text(
        fs: &[(u8, String, u8)],
        net: &[(bool, String, u8, u8)],
        dirs: &[(bool, String)],
    ) -> String {
        let mut text = String::from("filesystem:\n");
        for (list, name) in [(0u8, "allow"), (1, "read_only"), (2, "deny")] {
            let _ = writeln!(text, "  {name}:");
            for (l, pattern, access) in fs.iter().filter(|(l, ..)| *l == list) {
                let access = match (l, access) {
                    (0, 1) | (2, 2) => Some("read"),
                    (2, 1) => Some("write"),
                    _ => None,
                };
                match access {
                    Some(access) => {
                        let _ = writeln!(text, "  - {{path: \"{pattern}\", access: {access}}}");
                    }
                    None => {
                        let _ = writeln!(text, "  - \"{pattern}\"");
                    }
                }
            }
        }
        text.push_str("network:\n");
        for (deny, name) in [(false, "allow"), (true, "deny")] {
            let _ = writeln!(text, "  {name}:");
            for (_, entry, proto, bins) in net.iter().filter(|(d, ..)| *d == deny) {
                let protocol = ["any", "tcp", "udp"][usize::from(*proto)];
                let binaries: Vec<&str> = BINARIES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bins & (1 << i) != 0)
                    .map(|(_, b)| *b)
                    .collect();
                let binaries = if binaries.is_empty() {
                    String::new()
                } else {
                    format!(", binaries: [{}]", binaries.join(", "))
                };
                if *proto == 0 && binaries.is_empty() {
                    let _ = writeln!(text, "  - \"{entry}\"");
                } else {
                    let (host, port) = entry.rsplit_once(':').unwrap_or((entry, "*"));
                    let ports = if port == "*" {
                        String::new()
                    } else {
                        format!(", ports: [\"{port}\"]")
                    };
                    let _ = writeln!(
                        text,
                        "  - {{host: \"{host}\", protocol: {protocol}{ports}{binaries}}}"
                    );
                }
            }
        }
        text.push_str("process:\n");
        for (deny, name) in [(false, "allow"), (true, "deny")] {
            let _ = writeln!(text, "  {name}:");
            for (_, dir) in dirs.iter().filter(|(d, _)| *d == deny) {
                let _ = writeln!(
                    text,
                    "  - \"/nonexistent-nemoclaw{}/**\"",
                    dir.trim_end_matches('/')
                );
            }
        }
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn explain_and_evaluate_agree(
            fs in prop::collection::vec(fs_entry_strategy(), 0..12),
            net in prop::collection::vec(net_entry_strategy(), 0..10),
            dirs in prop::collection::vec((any::<bool>(), path_strategy()), 0..5),
            paths in prop::collection::vec((path_strategy(), any::<bool>()), 1..24),
            connects in prop::collection::vec((prop::sample::select(QUERY_ADDRS), prop::sample::select(&[53u16, 443, 444, 80][..]), any::<bool>(), 0usize..5), 1..16),
        ) {
            let text = policy_text(&fs, &net, &dirs);
            let policy = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            let compiled = compile(&policy, &test_env(Vec::new())).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            let home_paths = paths.iter().map(|(p, w)| (format!("/home/agent{p}"), *w));
            for (path, write) in paths.iter().cloned().chain(home_paths) {
                let path = crate::policy::pattern::normalize(&path);
                let query = Query::Open { path, write };
                prop_assert_eq!(explain(&compiled.rules, &query).verdict, evaluate(&compiled.policy, &query), "{:?}\n{}", query, text);
            }
            let exes = exe_ids();
            for (addr, port, udp, exe) in connects {
                let query = Query::Connect { addr: ip(addr), port, proto: if udp { PROTO_UDP } else { PROTO_TCP }, exe: exes[exe] };
                prop_assert_eq!(explain(&compiled.rules, &query).verdict, evaluate(&compiled.policy, &query), "{:?}\n{}", query, text);
            }
            for (path, _) in &paths {
                let path = PathBuf::from(format!("/nonexistent-nemoclaw{path}"));
                let query = Query::Exec { path, dev: 1, ino: 2 };
                prop_assert_eq!(explain(&compiled.rules, &query).verdict, evaluate(&compiled.policy, &query), "{:?}\n{}", query, text);
            }
        }

        #[test]
        fn listen_explain_and_evaluate_agree(
            entries in prop::collection::vec((prop::sample::select(&["\"*\"", "8080", "\"8080-8090\"", "53", "1-65535"][..]), 0usize..3), 0..6),
            queries in prop::collection::vec((prop::sample::select(&["0.0.0.0", "127.0.0.1", "::", "::1", "10.1.2.3", "::ffff:127.0.0.1", "::ffff:10.1.2.3"][..]), prop::sample::select(&[0u16, 53, 8080, 8085, 9000][..]), any::<bool>()), 1..16),
        ) {
            let mut text = String::from("network:\n  listen:\n");
            for (ports, proto) in &entries {
                if *proto == 0 {
                    let _ = writeln!(text, "  - {ports}");
                } else {
                    let protocol = ["any", "tcp", "udp"][*proto];
                    let ports = if *ports == "\"*\"" { String::new() } else { format!("ports: [{ports}], ") };
                    let _ = writeln!(text, "  - {{{ports}protocol: {protocol}}}");
                }
            }
            let policy = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            let compiled = compile(&policy, &test_env(Vec::new())).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            for (addr, port, udp) in queries {
                let query = Query::Listen { addr: ip(addr), port, proto: if udp { PROTO_UDP } else { PROTO_TCP } };
                prop_assert_eq!(explain(&compiled.rules, &query).verdict, evaluate(&compiled.policy, &query), "{:?}\n{}", query, text);
            }
        }

        #[test]
        fn shapes_agree_with_the_glob_definition(pattern in pattern_strategy(), path in path_strategy()) {
            let parsed = PathPattern::parse(&pattern).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let expanded = parsed.expand("/home/agent");
            let shape = parsed.shape("/home/agent").map_err(|e| TestCaseError::fail(e.to_string()))?;
            for candidate in [path.clone(), format!("/home/agent{path}")] {
                let candidate = crate::policy::pattern::normalize(&candidate);
                prop_assert_eq!(shape.matches(&candidate), glob_matches(&expanded, &candidate), "{} vs {}", pattern, candidate);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            if let Ok(policy) = parse(&text) {
                let _ = compile(&policy, &test_env(Vec::new()));
            }
        }
    }
}
