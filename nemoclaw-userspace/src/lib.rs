//! `NemoClaw` userspace: policy compiler, kernel loader, sandbox launcher, audit log.

pub mod audit;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dnsgate;
pub mod kernel;
pub mod policy;
pub mod router;
pub mod sandbox;
