//! Tests of `cargo xtask hooks`: the committed lists, classification and doc agree; the
//! parsers handle the kernel headers' shapes.

use super::*;

fn loaded() -> (Inventory, Vec<Entry>) {
    let inventory = Inventory::load().expect("hook lists");
    (inventory, load_classification().expect("classification"))
}

#[test]
fn every_hook_is_classified() {
    let (inventory, classes) = loaded();
    let missing = inventory.unclassified(&classes);
    assert!(
        missing.is_empty(),
        "unclassified (add to xtask/data/hooks/classification.txt): {missing:?}"
    );
}

#[test]
fn every_classification_names_a_hook() {
    let (inventory, classes) = loaded();
    let stale = inventory.stale(&classes);
    assert!(
        stale.is_empty(),
        "classified but in no kernel's list: {stale:?}"
    );
}

#[test]
fn doc_is_up_to_date() {
    let (inventory, classes) = loaded();
    let committed = std::fs::read_to_string(doc_path()).unwrap_or_default();
    assert!(
        committed == render(&inventory, &classes),
        "docs/hooks.md is stale: run `cargo xtask hooks`"
    );
}

/// Every program in `nemoclaw-ebpf/src/main.rs` (but the `noop_` cost floors) is named on
/// its hook's judged row, and every program a judged row names is there, on that hook.
#[test]
fn judged_rows_match_the_ebpf_programs() {
    let attach_type = |name: &str| match name {
        "connect4" => "BPF_CGROUP_INET4_CONNECT",
        "connect6" => "BPF_CGROUP_INET6_CONNECT",
        "sendmsg4" => "BPF_CGROUP_UDP4_SENDMSG",
        "sendmsg6" => "BPF_CGROUP_UDP6_SENDMSG",
        "bind4" => "BPF_CGROUP_INET4_BIND",
        "bind6" => "BPF_CGROUP_INET6_BIND",
        "sock_create" => "BPF_CGROUP_INET_SOCK_CREATE",
        "setsockopt" => "BPF_CGROUP_SETSOCKOPT",
        "recvmsg4" => "BPF_CGROUP_UDP4_RECVMSG",
        "recvmsg6" => "BPF_CGROUP_UDP6_RECVMSG",
        "getpeername4" => "BPF_CGROUP_INET4_GETPEERNAME",
        "getpeername6" => "BPF_CGROUP_INET6_GETPEERNAME",
        other => panic!("map cgroup program kind {other} to its attach type in this test"),
    };
    let main = util::workspace_root().join("nemoclaw-ebpf/src/main.rs");
    let main = std::fs::read_to_string(main).expect("nemoclaw-ebpf/src/main.rs");
    let (mut programs, mut hook) = (BTreeSet::new(), None);
    for line in main.lines().map(str::trim) {
        if let Some(h) = line
            .strip_prefix("#[lsm(hook = \"")
            .and_then(|l| l.strip_suffix("\")]"))
        {
            hook = Some(h.to_string());
        } else if let Some(a) = line
            .strip_prefix("#[cgroup_sock_addr(")
            .or_else(|| line.strip_prefix("#[cgroup_sock("))
            .or_else(|| line.strip_prefix("#[cgroup_sockopt("))
            .and_then(|l| l.strip_suffix(")]"))
        {
            hook = Some(attach_type(a).to_string());
        } else if let (Some(f), Some(h)) = (line.strip_prefix("pub fn "), hook.take()) {
            let name = f.split('(').next().unwrap_or_default();
            if !name.starts_with("noop_") {
                programs.insert((h, name.to_string()));
            }
        }
    }
    let (_, classes) = loaded();
    let judged = classes.iter().filter(|e| e.status == "judged");
    let judged: BTreeSet<(String, String)> = judged
        .flat_map(|e| e.programs.iter().map(|p| (e.name.clone(), p.clone())))
        .collect();
    let only_doc: Vec<_> = judged.difference(&programs).collect();
    let only_ebpf: Vec<_> = programs.difference(&judged).collect();
    assert!(
        only_doc.is_empty() && only_ebpf.is_empty(),
        "(hook, program) only in classification.txt: {only_doc:?}; only in nemoclaw-ebpf: {only_ebpf:?}"
    );
}

const SAMPLE: &str = "/*
 *	LSM_HOOK(<return_type>, <default_value>, <hook_name>, args...)
 */
LSM_HOOK(int, 0, binder_set_context_mgr, const struct cred *mgr)
LSM_HOOK(int, 0, capget, const struct task_struct *target, kernel_cap_t *effective,
	 kernel_cap_t *inheritable, kernel_cap_t *permitted)
#ifdef CONFIG_SECURITY_PATH
LSM_HOOK(int, 0, path_unlink, const struct path *dir, struct dentry *dentry)
#endif /* CONFIG_SECURITY_PATH */
#if defined(CONFIG_SECURITY) && defined(CONFIG_WATCH_QUEUE)
LSM_HOOK(int, 0, post_notification, const struct cred *w_cred,
	 const struct cred *cred, struct watch_notification *n)
#endif
#ifdef CONFIG_AUDIT
#ifndef CONFIG_X
LSM_HOOK(int, 0, audit_rule_init, u32 field, u32 op, char *rulestr, // trailing
	 void **lsmrule, gfp_t gfp)
#else
LSM_HOOK(void, LSM_RET_VOID, audit_rule_free, void *lsmrule)
#endif
#endif /* CONFIG_AUDIT */
LSM_HOOK(int, 0,
	 split_name, int x)
";

#[test]
fn parses_hooks_guards_and_multiline_macros() {
    let hooks = parse_lsm_hooks(SAMPLE).expect("parse");
    let got: Vec<(&str, &str)> = hooks
        .iter()
        .map(|(n, g)| (n.as_str(), g.as_str()))
        .collect();
    let want = [
        ("binder_set_context_mgr", "-"),
        ("capget", "-"),
        ("path_unlink", "CONFIG_SECURITY_PATH"),
        ("post_notification", "CONFIG_SECURITY && CONFIG_WATCH_QUEUE"),
        ("audit_rule_init", "CONFIG_AUDIT && !CONFIG_X"),
        ("audit_rule_free", "CONFIG_AUDIT && !(!CONFIG_X)"),
        ("split_name", "-"),
    ];
    assert_eq!(got, want);
    assert!(parse_lsm_hooks("#ifdef CONFIG_A\nLSM_HOOK(int, 0, a, int)\n").is_err());
    assert!(parse_lsm_hooks("LSM_HOOK(int, 0, a,\n").is_err());
    assert!(parse_lsm_hooks("#endif\n").is_err());
}

#[test]
fn parses_cgroup_attach_types() {
    let src = "enum bpf_prog_type {\n\tBPF_CGROUP_NOT_THIS,\n};\nenum bpf_attach_type {\n\
               \tBPF_CGROUP_INET_INGRESS,\n\tBPF_SK_MSG_VERDICT, /* BPF_CGROUP_NO */\n\
               \tBPF_CGROUP_DEVICE = 6,\n\t__MAX_BPF_ATTACH_TYPE\n};\n";
    let got = parse_cgroup_attach_types(src).expect("parse");
    assert_eq!(got, ["BPF_CGROUP_INET_INGRESS", "BPF_CGROUP_DEVICE"]);
}

#[test]
fn classification_lines_are_checked() {
    let ok = "[A]\nfile_open | judged | filesystem, privilege_escalation | file_open, x_open | n\n";
    let sections = parse_classification(ok).expect("parse");
    assert_eq!(sections[0].programs, ["file_open", "x_open"]);
    for bad in [
        "a | judged | filesystem | p | x\n", // before any section
        "[A]\na | maybe | - | - | x\n",      // status
        "[A]\na | judged | - | - | x\n",     // judged without control
        "[A]\na | gap | - | - |\n",          // gap without note
        "[A]\na | gap | disk | - | x\n",     // control
        "[A]\na | gap | - | - | x\na | gap | - | - | y\n", // twice
        "[A]\na | gap | - | x\n",            // fields
    ] {
        assert!(parse_classification(bad).is_err(), "accepted: {bad}");
    }
}
