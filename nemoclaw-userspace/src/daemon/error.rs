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

/// What kind of refusal an [`OpError`] is: what a caller branches on to choose an exit
/// code (the CLI) or an HTTP status (health, metrics and router endpoints), without
/// reading the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named sandbox does not exist.
    NotFound,
    /// The request conflicts with the daemon's state (the name is taken, or the sandbox
    /// changed meanwhile): the same request may succeed later.
    Conflict,
    /// The request, its policy or its user is wrong: fix it, retrying will not help.
    Invalid,
    /// This host cannot enforce what the policy asks (a control's programs are not there).
    Unsupported,
    /// Out of a resource (every policy slot in use).
    Exhausted,
    /// The host failed the daemon: kernel maps, cgroups, sockets, files it reads.
    Internal,
}

impl ErrorKind {
    /// The HTTP status an endpoint answers with.
    #[must_use]
    pub fn http_status(self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::Invalid => 422,
            Self::Unsupported => 501,
            Self::Exhausted => 503,
            Self::Internal => 500,
        }
    }

    /// The process exit code a command line tool exits with (`sysexits.h`).
    #[must_use]
    pub fn exit_code(self) -> u8 {
        match self {
            Self::NotFound => 66,    // EX_NOINPUT
            Self::Conflict => 75,    // EX_TEMPFAIL
            Self::Invalid => 65,     // EX_DATAERR
            Self::Unsupported => 69, // EX_UNAVAILABLE
            Self::Exhausted => 73,   // EX_CANTCREAT
            Self::Internal => 71,    // EX_OSERR
        }
    }
}

impl OpError {
    /// The kind of refusal, for a caller choosing a status.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoSuchSandbox(_) => ErrorKind::NotFound,
            Self::SandboxExists(_) | Self::Changed(_) => ErrorKind::Conflict,
            Self::BadRequest(_)
            | Self::User(_)
            | Self::Policy(_)
            | Self::Compile(_)
            | Self::Controls(_) => ErrorKind::Invalid,
            Self::Unavailable(_) => ErrorKind::Unsupported,
            Self::NoFreeSlot => ErrorKind::Exhausted,
            Self::Nameservers { .. } | Self::Kernel(_) | Self::Cgroup(_) | Self::Gateway(_) => {
                ErrorKind::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const KINDS: [ErrorKind; 6] = [
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Invalid,
        ErrorKind::Unsupported,
        ErrorKind::Exhausted,
        ErrorKind::Internal,
    ];

    #[test]
    fn each_kind_has_its_own_status_and_exit_code() {
        let statuses: HashSet<u16> = KINDS.iter().map(|k| k.http_status()).collect();
        let codes: HashSet<u8> = KINDS.iter().map(|k| k.exit_code()).collect();
        assert_eq!(statuses.len(), KINDS.len(), "{statuses:?}");
        assert_eq!(codes.len(), KINDS.len(), "{codes:?}");
        for kind in KINDS {
            let status = kind.http_status();
            // Only the host's own failures are server errors a client cannot fix.
            let client_side = matches!(
                kind,
                ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::Invalid
            );
            assert_eq!(
                (400..500).contains(&status),
                client_side,
                "{kind:?} {status}"
            );
            assert!(
                (64..=78).contains(&kind.exit_code()),
                "{kind:?}: not a sysexits code"
            );
        }
    }

    #[test]
    fn refusals_map_to_the_kind_a_caller_acts_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("policy.yaml");
        std::fs::write(
            &file,
            "version: 1\nnetwork:\n  allow: [\"example.com:99999\"]\n",
        )
        .expect("write policy");
        let malformed = crate::policy::load(&file).expect_err("port out of range");
        let cases = [
            (OpError::NoSuchSandbox("a".into()), ErrorKind::NotFound, 404),
            (OpError::SandboxExists("a".into()), ErrorKind::Conflict, 409),
            (OpError::Changed("a".into()), ErrorKind::Conflict, 409),
            (OpError::Policy(malformed), ErrorKind::Invalid, 422),
            (
                OpError::Unavailable(KernelError::ControlUnavailable {
                    controls: nemoclaw_common::sandbox::controls::FS,
                    lack: crate::kernel::loader::Lack::BpfLsm,
                    why: "bpf is not in the active LSM list".into(),
                    fix: "boot with lsm=...,bpf".into(),
                }),
                ErrorKind::Unsupported,
                501,
            ),
            (OpError::NoFreeSlot, ErrorKind::Exhausted, 503),
            (
                OpError::Gateway(std::io::Error::from(std::io::ErrorKind::AddrInUse)),
                ErrorKind::Internal,
                500,
            ),
        ];
        for (error, kind, status) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(error.kind().http_status(), status, "{error}");
        }
    }
}
