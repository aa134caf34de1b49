//! Host-side services that keep policies current: DNS resolution for host-name rules
//! (resolved here, never inside the sandbox) and their refresh.

pub mod dns;
pub mod refresh;
