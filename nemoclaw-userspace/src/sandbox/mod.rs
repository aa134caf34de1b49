//! Sandbox lifecycle: a fresh cgroup v2 directory per sandbox, and launching a command in it
//! with dropped privileges.

pub mod cgroup;
pub mod controls;
pub mod launch;
pub mod selftest;
pub mod user;

pub use cgroup::SandboxCgroup;
