//! VM suite (root inside QEMU, `NEMOCLAW_REQUIRE_LSM=1`): every control, with BPF LSM.

mod filesystem;
mod network;
mod privilege;
mod process;
mod support;
mod tamper;
