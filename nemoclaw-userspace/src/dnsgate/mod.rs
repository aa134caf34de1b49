//! The DNS gateway: the only DNS a sandbox with a network policy can reach. The kernel
//! rewrites every port-53 destination of the sandbox to it (`nemoclaw-ebpf/src/dns.rs`);
//! it answers only the names the policy's host rules need (and their CNAME chains), by
//! asking the host's nameservers a query it rebuilds itself, and refuses and logs the
//! rest. So names looked up cannot carry data out of the sandbox (docs/network.md).

pub mod gateway;
pub mod message;
pub mod names;
