//! The privileged host side: `nemoclaw daemon` (pinned enforcement, control socket, hot
//! reload), and the services that keep policies current: DNS resolution for host-name rules
//! (resolved here, never inside the sandbox) and their refresh.
//!
//! In parts: `server` (the [`server::Daemon`]'s state and operations, and [`server::run`],
//! which starts the rest), `boot` (pins, adopt or load, self-test), `control` (the control
//! socket), `tasks` (DNS refresh, policy-file watcher, signals), `persistent` (the
//! configuration's sandboxes, and reloads), `http` (`/healthz` from `health`, `/metrics`
//! from `metrics`), `notify` (systemd readiness and journald log lines), `registry` (slots,
//! state file), `protocol` (the wire requests), `error` (why an operation was refused,
//! typed), `host` (the kernel and cgroup operations the core performs, as traits: unit
//! tests run the core over `fake_host`).

mod boot;
mod control;
pub mod dns;
pub mod error;
#[cfg(test)]
mod fake_host;
pub mod follow;
pub mod health;
pub mod host;
mod http;
pub mod metrics;
pub mod notify;
mod persistent;
pub mod protocol;
pub mod refresh;
pub mod registry;
pub mod router;
pub mod server;
mod tasks;
