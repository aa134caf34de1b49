use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<NemoclawConfig, ConfigError> {
    NemoclawConfig::parse(text, Path::new("/etc/nemoclaw/nemoclaw.yaml"))
}

/// The one error `text` gives, as `line:column field: message`.
fn error(text: &str) -> String {
    let e = parse(text).expect_err("accepted");
    let d = e.diagnostics();
    assert_eq!(d.len(), 1, "{e}");
    format!(
        "{}:{} {}: {}",
        d[0].line, d[0].column, d[0].field, d[0].message
    )
}

#[test]
fn an_empty_file_takes_every_default() {
    for text in ["", "# nothing\n", "daemon:\naudit: ~\n"] {
        let c = parse(text).unwrap();
        assert_eq!(c, NemoclawConfig::default());
    }
    let c = NemoclawConfig::default();
    assert_eq!(c.daemon.socket, Path::new("/run/nemoclaw/nemoclaw.sock"));
    assert_eq!(c.daemon.socket_group, "nemoclaw");
    assert_eq!(c.daemon.pin_dir, Path::new("/sys/fs/bpf/nemoclaw"));
    assert_eq!(c.daemon.state, Path::new("/run/nemoclaw/state.json"));
    assert_eq!(c.daemon.cgroup_root, "nemoclaw");
    assert_eq!(c.daemon.resolv_conf, Path::new("/etc/resolv.conf"));
    assert_eq!(c.daemon.dns_grace, 30);
    assert!(c.daemon.watch_policies);
    assert_eq!(c.audit.log, Path::new("/var/log/nemoclaw/audit.jsonl"));
    assert_eq!(c.audit.rotate_size, 64 << 20);
    assert_eq!(c.audit.keep, 10);
    assert_eq!(c.audit.ocsf, None);
    assert_eq!(c.http.listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(c.router.listen, None);
    assert!(c.sandboxes.is_empty());
}

#[test]
fn the_spec_example_reads_whole() {
    let text = "\
daemon:
  socket: /run/nemoclaw/nemoclaw.sock
  socket_group: nemoclaw
  pin_dir: /sys/fs/bpf/nemoclaw
  state: /var/lib/nemoclaw/state.json
  cgroup_root: nemoclaw
  resolv_conf: /etc/resolv.conf
  dns_grace: 45
  watch_policies: false
audit:
  log: /var/log/nemoclaw/audit.jsonl
  rotate_size: 1GiB
  keep: 3
  ocsf: /var/log/nemoclaw/ocsf.jsonl
http:
  listen: null
router:
  listen: 127.0.0.1:8089
sandboxes:
  - name: agents
    policy: /etc/nemoclaw/policies/agents.yaml
    user: root
  - name: ci-2
    policy: /etc/nemoclaw/policies/ci.yaml
";
    let c = parse(text).unwrap();
    assert_eq!(c.daemon.state, Path::new("/var/lib/nemoclaw/state.json"));
    assert_eq!(c.daemon.dns_grace, 45);
    assert!(!c.daemon.watch_policies);
    assert_eq!(c.audit.rotate_size, 1 << 30);
    assert_eq!(c.audit.keep, 3);
    assert_eq!(c.audit.ocsf, Some("/var/log/nemoclaw/ocsf.jsonl".into()));
    assert_eq!(c.http.listen, None);
    assert_eq!(c.router.listen, Some("127.0.0.1:8089".parse().unwrap()));
    assert_eq!(
        c.sandboxes,
        vec![
            PersistentSandbox {
                name: "agents".into(),
                policy: "/etc/nemoclaw/policies/agents.yaml".into(),
                user: "root".into(),
            },
            PersistentSandbox {
                name: "ci-2".into(),
                policy: "/etc/nemoclaw/policies/ci.yaml".into(),
                user: "root".into(),
            },
        ]
    );
    // What `config check` prints reads back as the same settings.
    assert_eq!(parse(&c.to_yaml()).unwrap(), c);
}

#[test]
fn every_error_names_its_place_and_key() {
    assert_eq!(
        error("daemon:\n  sockt: /x\n"),
        "2:3 daemon.sockt: unknown key; expected one of: socket, socket_group, pin_dir, \
         state, cgroup_root, resolv_conf, dns_grace, watch_policies"
    );
    assert!(error("metrics: 1\n").starts_with("1:1 metrics: unknown key"));
    assert_eq!(
        error("daemon:\n  dns_grace: soon\n"),
        "2:14 daemon.dns_grace: \"soon\" is not a whole number in range"
    );
    assert_eq!(
        error("daemon:\n  watch_policies: yes\n"),
        "2:19 daemon.watch_policies: \"yes\" is not true or false"
    );
    assert_eq!(
        error("daemon:\n  state: state.json\n"),
        "2:10 daemon.state: \"state.json\" is not an absolute path"
    );
    assert!(
        error("daemon:\n  cgroup_root: system.slice\n").starts_with("2:16 daemon.cgroup_root:")
    );
    assert!(error("daemon:\n  socket_group: 'a b'\n").starts_with("2:17 daemon.socket_group:"));
    assert_eq!(
        error("audit:\n  rotate_size: 64MB\n"),
        "2:16 audit.rotate_size: unknown size unit \"MB\": use KiB, MiB or GiB"
    );
    assert!(error("audit:\n  keep: -1\n").starts_with("2:9 audit.keep:"));
    assert!(error("http:\n  listen: localhost\n").starts_with("2:11 http.listen: \"localhost\""));
    assert!(error("http: [1]\n").starts_with("1:7 http: http must be a mapping"));
    assert!(error("sandboxes: {}\n").starts_with("1:12 sandboxes: expected a list"));
    assert_eq!(
        error("sandboxes:\n  - name: Agents\n    policy: /p.yaml\n"),
        "2:11 sandboxes[0].name: \"Agents\": use 1-64 of a-z, 0-9 and '-'"
    );
    assert_eq!(
        error("sandboxes:\n  - name: a\n"),
        "2:5 sandboxes[0].policy: required"
    );
    assert_eq!(
        error("sandboxes:\n  - {name: a, policy: /p}\n  - {name: a, policy: /q}\n"),
        "3:12 sandboxes[1].name: a sandbox named \"a\" is configured already"
    );
    assert_eq!(
        error("sandboxes:\n  - {name: a, policy: /p, group: x}\n"),
        "2:27 sandboxes[0].group: unknown key; expected one of: name, policy, user"
    );
    assert!(error("daemon:\n  socket: /a\n  socket: /b\n").contains("duplicate key"));
    assert!(error("daemon: [\n").starts_with("2:1 (file):"));
}

#[test]
fn errors_are_all_reported_with_the_file() {
    let e = parse("daemon:\n  dns_grace: x\naudit:\n  keep: y\n").unwrap_err();
    assert_eq!(e.diagnostics().len(), 2);
    let text = e.to_string();
    assert!(
        text.starts_with("/etc/nemoclaw/nemoclaw.yaml:2:14: daemon.dns_grace:"),
        "{text}"
    );
    assert!(
        text.contains("\n/etc/nemoclaw/nemoclaw.yaml:4:9: audit.keep:"),
        "{text}"
    );
}

#[test]
fn sizes() {
    assert_eq!(parse_size("0"), Ok(0));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("10KiB"), Ok(10 << 10));
    assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
    assert_eq!(parse_size("2GiB"), Ok(2 << 30));
    assert!(parse_size("MiB").is_err());
    assert!(parse_size("99999999999999GiB").is_err());
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let e = NemoclawConfig::load(Path::new("/nonexistent/nemoclaw.yaml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().starts_with("/nonexistent/nemoclaw.yaml: "));
}
