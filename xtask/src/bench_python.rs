//! The Python side of `cargo xtask bench --only router`: the `LiteLLM` proxy the privacy
//! router is compared with, pinned, in a venv of its own under `/var/cache/nemoclaw`
//! (installed by the bench when the router workload is selected, not by `setup`: the tests
//! do not need it).

use std::path::PathBuf;

use anyhow::Result;

use crate::setup::{Outcome, PythonEnv, python_env};

/// `LiteLLM` with its proxy server. 1.108.7: the newest release whose `proxy` extra installs
/// from the package index here (1.108.11 and later pin `litellm-enterprise`,
/// `litellm-proxy-extras` or `litellm-proxy` versions that it does not have).
const LITELLM_PY: PythonEnv = PythonEnv {
    dir: "/var/cache/nemoclaw/litellm-py",
    packages: &["litellm[proxy]==1.108.7"],
    build_env: &[],
    what: "the LiteLLM proxy (router bench)",
};

/// The `LiteLLM` venv, installed first if missing or of another version.
pub fn litellm_venv() -> Result<PathBuf> {
    if python_env(&LITELLM_PY)? == Outcome::Installed {
        eprintln!("xtask bench: installed {}", LITELLM_PY.packages.join(" "));
    }
    Ok(PathBuf::from(LITELLM_PY.dir))
}
