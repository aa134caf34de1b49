//! `nemoclaw-bench start` (driven by `cargo xtask bench --only start`; root, in the VM):
//! how long a sandbox takes to start, as the wall time of running `/bin/true` in it, from
//! spawn to exit, next to `/bin/true` alone.
//!
//! Systems: `none` (`/bin/true`), `nemoclaw` (`nemoclaw run` through a private daemon
//! that loaded the programs once: compile, slot fill, cgroup), `nemoclaw-standalone`
//! (`nemoclaw run --standalone`: loads and attaches its programs, self-tests, compiles the
//! policy, fills the maps, every time), `landlock` (`nemoclaw-bench landlock-exec`) and
//! `apparmor` (`aa-exec -p` of a profile loaded once), each with the macro benchmarks'
//! policy (`macro_run.rs`). Round-robin, one untimed round first. Each system is first
//! checked to refuse a read outside its grants.

use serde_json::Value;

use crate::macro_run::{Systems, finish, work_dir};

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Timed runs per system (after one untimed round).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Systems, in round-robin order (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "none,nemoclaw,nemoclaw-standalone,landlock,apparmor"
    )]
    pub systems: Vec<String>,
    /// Where the work directory (policy, profile, daemon files) is made.
    #[arg(long, default_value = "/tmp")]
    pub dir: std::path::PathBuf,
}

pub fn run(args: &StartArgs) -> anyhow::Result<i32> {
    let work = work_dir(&args.dir, "start")?;
    let outcome = measure(args, &work);
    Ok(finish("start", &work, outcome))
}

fn measure(args: &StartArgs, work: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    Systems::prepare(work, &args.systems)?.measure(
        "start",
        &args.systems,
        args.runs,
        &["/bin/true"],
        || Ok(()),
        || Ok(()),
    )
}
