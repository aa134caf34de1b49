//! Which controls a sandbox is registered with: its policy's, plus socket kinds where the
//! kernel can restrict them.

use nemoclaw_common::sandbox::controls;

use super::user::SandboxUser;
use crate::kernel::loader::control_name;

/// The names of the controls in `bits`, for messages and the audit log.
#[must_use]
pub fn names(bits: u32) -> Vec<&'static str> {
    [
        controls::EXEC,
        controls::NET,
        controls::SOCKETS,
        controls::FS,
        controls::PRIVILEGE,
    ]
    .into_iter()
    .filter(|b| bits & b != 0)
    .map(control_name)
    .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ControlsError {
    #[error(
        "the network control cannot restrict socket kinds here ({0}), and the sandbox user is root: \
         refusing, since raw and packet sockets would bypass the network rules. Run as another user \
         (--user), or on a kernel with BPF LSM (`nemoclaw doctor`)"
    )]
    RootWithoutSocketKinds(String),
}

/// The controls to register for a policy with `policy_controls` run by `user` (whose
/// programs the caller has checked are attached), given whether the enforcement restricts
/// socket kinds (`Enforcer::socket_kinds`), and a notice for the user where socket
/// kinds stay open. Refuses a network policy for a root sandbox
/// user where socket kinds cannot be restricted: root could open raw and packet sockets,
/// which no rule judges.
pub fn for_sandbox(
    policy_controls: u32,
    socket_kinds: Result<(), &str>,
    user: &SandboxUser,
) -> Result<(u32, Option<String>), ControlsError> {
    if policy_controls & controls::NET == 0 {
        return Ok((policy_controls, None));
    }
    match socket_kinds {
        Ok(()) => Ok((policy_controls | controls::SOCKETS, None)),
        Err(why) if user.uid.is_root() => {
            Err(ControlsError::RootWithoutSocketKinds(why.to_owned()))
        }
        Err(why) => Ok((
            policy_controls,
            Some(format!(
                "socket kinds are not restricted here ({why}); IPv4/IPv6 kinds no rule judges (raw, \
                 ICMP ping) are still refused by the cgroup sock_create hook, packet sockets stay \
                 closed to {} (no CAP_NET_RAW), netlink, vsock and unix sockets do not; \
                 TCP listeners on an ephemeral port of a non-loopback address (listen without \
                 bind, or after binding port 0) are not judged (the socket_listen hook); IPv6 \
                 routing headers as ancillary data of one sendmsg, and destination-overriding \
                 socket options set by 32-bit system calls, are not refused (socket_sendmsg, \
                 socket_setsockopt)",
                user.name
            )),
        )),
    }
}
