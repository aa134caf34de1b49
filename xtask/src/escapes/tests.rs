use super::{
    Catalogue, Column, Control, DAEMON_ATTACKS, ESCAPE_MODULES, Outcome, PeerRef, RunInfo,
    TestResults, attack_cell, first_sentence, link_peer_refs, module_path, peer_refs, render,
    table_cell,
};

const RENAMES: &str = r#"
//! Module docs are not a test's.

/// A helper's doc comment, not a test's.
fn helper() {}

/// `{b}/ws/proj/private/**` is denied: its parent `ws/proj`
/// cannot move (e.g. by `rename(2)`). Directories elsewhere still move.
#[test]
fn fs_escape_rename_ancestor() {
    helper();
}

#[test]
/// Documented after the attribute.
#[ignore = "slow"]
pub fn fs_escape_after_attribute() {}
"#;

const NETWORK: &str = "
#[test]
fn tcp_connect_denied() {}

/// Mapped IPv6 is IPv4. Peer: Tetragon #4618.
#[test]
fn mapped() {}
";

const ROUTER: &str = "
/// The router is not an escape.
#[test]
fn routes() {}
";

const DAEMON: &str = "
/// An unprivileged caller cannot drive the daemon.
#[test]
fn control_socket_refuses_unprivileged_callers() {}

/// Reloading is not an attack.
#[test]
fn reload_works() {}
";

fn catalogue() -> Catalogue {
    Catalogue::from_sources([
        ("filesystem/renames.rs", RENAMES),
        ("network/mod.rs", NETWORK),
        ("router/mod.rs", ROUTER),
        ("daemon/mod.rs", DAEMON),
        ("vm.rs", "mod filesystem;\n"),
    ])
}

#[test]
fn module_path_follows_the_file_path() {
    assert_eq!(
        module_path("filesystem/mod.rs").as_deref(),
        Some("filesystem")
    );
    assert_eq!(
        module_path("filesystem/renames.rs").as_deref(),
        Some("filesystem::renames")
    );
    assert_eq!(
        module_path("network/dns/mod.rs").as_deref(),
        Some("network::dns")
    );
    assert_eq!(module_path("vm.rs").as_deref(), Some(""));
    assert_eq!(module_path("router/client.py"), None);
}

#[test]
fn catalogue_takes_escape_modules_and_daemon_attacks_only() {
    let c = catalogue();
    let names: Vec<&str> = c.escapes.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "filesystem::renames::fs_escape_rename_ancestor",
            "filesystem::renames::fs_escape_after_attribute",
            "network::tcp_connect_denied",
            "network::mapped",
            "daemon::control_socket_refuses_unprivileged_callers",
        ]
    );
    assert_eq!(c.escapes[0].control, Control::Filesystem);
    assert_eq!(c.escapes[2].control, Control::Network);
    assert_eq!(c.escapes[4].control, Control::Tamper);
    // The `#[test]` line, 1-based, and the file relative to the tests directory.
    assert_eq!(c.escapes[0].line, 9);
    assert_eq!(c.escapes[0].file, "filesystem/renames.rs");
}

#[test]
fn attack_is_the_first_sentence_of_a_multi_line_doc() {
    let c = catalogue();
    assert_eq!(
        c.escapes[0].attack().as_deref(),
        Some(
            "`{b}/ws/proj/private/**` is denied: its parent `ws/proj` cannot move (e.g. by \
             `rename(2)`)."
        )
    );
    assert_eq!(
        c.escapes[1].attack().as_deref(),
        Some("Documented after the attribute.")
    );
}

#[test]
fn a_test_without_a_doc_comment_is_listed_not_dropped() {
    let c = catalogue();
    let undocumented: Vec<&str> = c.undocumented().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(undocumented, ["network::tcp_connect_denied"]);
    assert!(attack_cell(&c.escapes[2]).contains("no doc comment"));
}

#[test]
fn first_sentence_skips_code_parentheses_and_abbreviations() {
    assert_eq!(
        first_sentence("`ld.so /usr/bin/curl`: denied. The twin runs."),
        "`ld.so /usr/bin/curl`: denied."
    );
    assert_eq!(
        first_sentence("Full preemption (see `a::b`. Really.) wins, i.e. denied. Next."),
        "Full preemption (see `a::b`. Really.) wins, i.e. denied."
    );
    assert_eq!(first_sentence("No full stop at all"), "No full stop at all");
    assert_eq!(
        first_sentence("Version 6.12.3 is fine. Yes."),
        "Version 6.12.3 is fine."
    );
}

#[test]
fn peer_citations_become_issue_links() {
    assert_eq!(
        link_peer_refs("symlinks (Falco #2203) and hard links (KubeArmor #988)"),
        "symlinks ([Falco #2203](https://github.com/falcosecurity/falco/issues/2203)) and hard \
         links ([KubeArmor #988](https://github.com/kubearmor/KubeArmor/issues/988))"
    );
    // Not inside code, not inside a longer name, not without a number.
    assert_eq!(
        link_peer_refs("`Falco #1` Falcon #2 Falco #x"),
        "`Falco #1` Falcon #2 Falco #x"
    );
    assert_eq!(link_peer_refs("NotFalco #3"), "NotFalco #3");
    assert_eq!(
        peer_refs("OpenShell #1169, OpenShell #1496, Tetragon #4618 and OpenShell #1169 again"),
        [
            PeerRef {
                peer: "OpenShell",
                number: 1169
            },
            PeerRef {
                peer: "OpenShell",
                number: 1496
            },
            PeerRef {
                peer: "Tetragon",
                number: 4618
            },
        ]
    );
    assert_eq!(
        PeerRef {
            peer: "OpenShell",
            number: 1496
        }
        .url(),
        "https://github.com/NVIDIA/OpenShell/issues/1496"
    );
    assert_eq!(
        PeerRef {
            peer: "Tetragon",
            number: 4618
        }
        .url(),
        "https://github.com/cilium/tetragon/issues/4618"
    );
}

#[test]
fn a_citation_after_the_first_sentence_is_appended_to_the_attack() {
    let c = catalogue();
    assert_eq!(
        attack_cell(&c.escapes[3]),
        "Mapped IPv6 is IPv4. Peer: [Tetragon #4618](https://github.com/cilium/tetragon/issues/4618)."
    );
}

#[test]
fn table_cells_escape_pipes_and_html_outside_code() {
    assert_eq!(table_cell("a | b <c> `x|<y>`"), r"a \| b &lt;c> `x\|<y>`");
}

fn results(lines: &[&str]) -> TestResults {
    let mut r = TestResults::default();
    for line in lines {
        r.parse_line(line);
    }
    r
}

#[test]
fn libtest_lines_give_each_tests_outcome() {
    let r = results(&[
        "running 7 tests",
        "test network::a ... ok",
        "test network::b ... FAILED",
        "test network::c ... ignored",
        "test network::d ... ignored, needs a tty",
        "test network::e ... \u{1b}[32mok\u{1b}(B\u{1b}[m",
        "boot| test network::f ... ok",
        "[    1.234] test network::g ... ok",
        "test network::h ... ",
        "output of a child process",
        "ok",
        "test network::i ... a child process wrote on the test's line",
        "more of its output",
        "FAILED",
        "test result: FAILED. 3 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out",
    ]);
    assert_eq!(r.outcome("network::a"), Some(Outcome::Pass));
    assert_eq!(r.outcome("network::b"), Some(Outcome::Fail));
    assert_eq!(r.outcome("network::c"), Some(Outcome::Skipped));
    assert_eq!(r.outcome("network::d"), Some(Outcome::Skipped));
    assert_eq!(r.outcome("network::e"), Some(Outcome::Pass));
    assert_eq!(r.outcome("network::f"), None);
    assert_eq!(r.outcome("network::g"), None);
    assert_eq!(r.outcome("network::h"), Some(Outcome::Pass));
    assert_eq!(r.outcome("network::i"), Some(Outcome::Fail));
    assert_eq!(r.outcome("result:"), None);
    assert_eq!(r.names().count(), 7);
}

#[test]
fn a_skipped_line_in_a_passing_tests_output_marks_it_skipped() {
    let r = results(&[
        "test fail_closed::refuse ... ok",
        "test fail_closed::other ... ok",
        "test fail_closed::broken ... FAILED",
        "",
        "successes:",
        "",
        "---- fail_closed::refuse stdout ----",
        "SKIPPED refuse_without_lsm: BPF LSM loads on this kernel",
        "",
        "---- fail_closed::other stdout ----",
        "counted 3 SKIPPED opens",
        "",
        "successes:",
        "    fail_closed::refuse",
        "    fail_closed::other",
        "",
        "failures:",
        "",
        "---- fail_closed::broken stdout ----",
        "SKIPPED something, then panicked",
        "",
        "failures:",
        "    fail_closed::broken",
        "test result: FAILED. 2 passed; 1 failed",
    ]);
    assert_eq!(r.outcome("fail_closed::refuse"), Some(Outcome::Skipped));
    assert_eq!(r.outcome("fail_closed::other"), Some(Outcome::Pass));
    assert_eq!(r.outcome("fail_closed::broken"), Some(Outcome::Fail));
}

fn run_info() -> RunInfo {
    RunInfo {
        date: "2025-01-02 03:04 UTC".into(),
        commit: "abc1234".into(),
        dirty: false,
        kernels: vec!["6.12 (`6.12.9-amd64`)".into(), "6.1".into()],
        host_kernel: "6.8.0-1-generic".into(),
    }
}

#[test]
fn a_test_run_on_some_suites_only_shows_where_it_did_not_run() {
    let c = catalogue();
    let mut vm = Column::new("6.12 bpf-lsm (daemon)", "the vm suite | daemon");
    vm.results
        .parse_line("test filesystem::renames::fs_escape_rename_ancestor ... ok");
    vm.results.parse_line("test network::mapped ... FAILED");
    let mut host = Column::new("host", "natively");
    host.results.parse_line("test network::mapped ... ok");
    host.results
        .parse_line("test network::tcp_connect_denied ... ignored");
    host.results
        .parse_line("test daemon::control_socket_refuses_unprivileged_callers ... ok");
    // Ran, but the catalogue does not know it.
    host.results.parse_line("test network::renamed_away ... ok");
    let doc = render(&c, &[&vm, &host], &run_info());

    assert!(doc.contains("at commit `abc1234`\n"), "{doc}");
    assert!(doc.contains("- Kernels: 6.12 (`6.12.9-amd64`), 6.1; host: `6.8.0-1-generic`"));
    assert!(
        doc.contains("| 6.12 bpf-lsm (daemon) | the vm suite \\| daemon |"),
        "{doc}"
    );
    assert!(doc.contains(
        "## Filesystem\n\n| test | attack | 6.12 bpf-lsm (daemon) | host |\n|---|---|---|---|\n"
    ));
    let row = |name: &str| {
        doc.lines()
            .find(|l| l.starts_with(&format!("| [`{name}`]")))
            .unwrap_or_else(|| panic!("no row for {name}: {doc}"))
            .to_owned()
    };
    assert!(
        row("filesystem::renames::fs_escape_rename_ancestor").ends_with(" | pass | — |"),
        "{doc}"
    );
    assert!(
        row("filesystem::renames::fs_escape_rename_ancestor")
            .contains("(../nemoclaw-userspace/tests/filesystem/renames.rs#L9)")
    );
    assert!(
        row("network::mapped").ends_with(" | FAIL | pass |"),
        "{doc}"
    );
    assert!(
        row("network::tcp_connect_denied").ends_with(" | — | skipped |"),
        "{doc}"
    );
    // Run by no suite: shown as not run and counted so, never as passed.
    assert!(
        row("filesystem::renames::fs_escape_after_attribute").ends_with(" | — | — |"),
        "{doc}"
    );
    assert!(doc.contains(
        "5 escape tests: 2 passed (wherever they ran, skipped in some suites at most), 1 failed \
         in at least one suite, 1 skipped themselves wherever they ran, 1 ran in no suite."
    ), "{doc}");
    assert!(
        doc.contains("| 6.12 bpf-lsm (daemon) | 1 | 1 | 0 | 3 |"),
        "{doc}"
    );
    assert!(doc.contains("| host | 2 | 0 | 1 | 2 |"), "{doc}");
    assert!(doc.contains(
        "Ran in no suite (not counted as passed):\n\n- `filesystem::renames::fs_escape_after_attribute`"
    ));
    assert!(doc.contains("Tests without a doc comment:\n\n- `network::tcp_connect_denied`"));
    assert!(doc.contains("Results of tests the catalogue lacks:\n\n- `network::renamed_away`"));
    // The router's test is no escape: no row, however it ran.
    assert!(!doc.contains("routes"));
}

#[test]
fn every_escape_test_in_the_tree_is_documented() {
    let dir = crate::util::workspace_root().join(super::TESTS_DIR);
    let c = Catalogue::load(&dir).expect("read the tests");
    let undocumented: Vec<&str> = c.undocumented().iter().map(|e| e.name.as_str()).collect();
    assert!(
        undocumented.is_empty(),
        "document these tests (`///`: the attack in the first sentence): {undocumented:?}"
    );
    for (module, _) in ESCAPE_MODULES {
        assert!(
            c.escapes
                .iter()
                .any(|e| e.name.starts_with(&format!("{module}::"))),
            "no test found in {module}"
        );
    }
    for name in DAEMON_ATTACKS {
        assert!(c.contains(name), "{name} is gone: update DAEMON_ATTACKS");
    }
    // The attacks the peers' public issues describe keep their citations.
    let cited: Vec<PeerRef> = c.escapes.iter().flat_map(|e| peer_refs(&e.doc)).collect();
    for (peer, number) in [
        ("Falco", 2203),
        ("KubeArmor", 988),
        ("Tetragon", 4618),
        ("OpenShell", 1169),
        ("OpenShell", 1496),
    ] {
        assert!(
            cited.contains(&PeerRef { peer, number }),
            "no test cites {peer} #{number}"
        );
    }
}
