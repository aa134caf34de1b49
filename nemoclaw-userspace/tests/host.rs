//! Host suite (root, native): what this host's kernel can enforce without BPF LSM, and
//! proof that `run` refuses what it cannot enforce.

mod daemon;
mod fail_closed;
mod lsm_inactive;
mod network;
mod router;
mod service;
mod support;
