//! Parse + validate + compile + explain arbitrary bytes: nothing may panic.
//! `cargo +nightly fuzz run policy -- -max_total_time=60`
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nemoclaw::policy::{self, CompileEnv, Query};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = policy::parse_str(Path::new("fuzz.yaml"), &text) else {
        return;
    };
    let env = CompileEnv::offline("/home/fuzz".into());
    let Ok(compiled) = policy::compile(&parsed, &env) else {
        return;
    };
    for query in [
        Query::Open {
            path: "/home/fuzz/.ssh/id_rsa".to_owned(),
            write: false,
        },
        Query::Open {
            path: "/workspace/a/.git/config".to_owned(),
            write: true,
        },
        Query::Connect {
            addr: [10, 1, 2, 3].into(),
            port: 443,
            proto: 6,
            exe: None,
        },
    ] {
        let decision = policy::explain(&compiled.rules, &query);
        assert_eq!(decision.verdict, policy::evaluate(&compiled.policy, &query));
    }
});
