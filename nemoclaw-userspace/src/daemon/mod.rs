//! The privileged host side: `nemoclaw daemon` (pinned enforcement, control socket, hot
//! reload), and the services that keep policies current: DNS resolution for host-name rules
//! (resolved here, never inside the sandbox) and their refresh.

pub mod dns;
pub mod follow;
pub mod protocol;
pub mod refresh;
pub mod registry;
pub mod server;
