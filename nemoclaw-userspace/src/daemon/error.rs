//! Why a daemon operation was refused, by kind: the control socket sends the text, an HTTP
//! endpoint (health, metrics, the router) can choose a status from the variant, and every
//! cause keeps its source.

use crate::{
    kernel::KernelError,
    policy::{CompileError, PolicyError},
    sandbox::{cgroup::CgroupError, controls::ControlsError, user::UserError},
};

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("no sandbox named {0}")]
    NoSuchSandbox(String),
    #[error("a sandbox named {0} exists already")]
    SandboxExists(String),
    /// Another apply switched the sandbox while this policy was compiled.
    #[error("sandbox {0} changed while this policy was compiled; apply it again")]
    Changed(String),
    /// A request the daemon cannot take as given: a bad sandbox name, a relative path.
    #[error("{0}")]
    BadRequest(String),
    /// The sandbox user does not exist.
    #[error(transparent)]
    User(#[from] UserError),
    /// The policy file cannot be read or parsed (the message locates the error).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The policy does not compile (resolution, limits; located).
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The host's nameservers could not be read for the policy's host-name rules.
    #[error("reading {file} for the host-name rules: {source}")]
    Nameservers {
        file: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The policy needs a control this kernel or this daemon cannot enforce (the variant
    /// holds why and the fix).
    #[error(transparent)]
    Unavailable(KernelError),
    /// The policy's controls cannot be enforced for this user (root without socket kinds).
    #[error(transparent)]
    Controls(#[from] ControlsError),
    #[error("every policy slot is in use; destroy a sandbox first")]
    NoFreeSlot,
    /// The kernel refused a map update or a registration.
    #[error("writing the policy into the kernel maps: {0}")]
    Kernel(#[source] KernelError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("starting the sandbox's DNS gateway: {0}")]
    Gateway(#[source] std::io::Error),
}
