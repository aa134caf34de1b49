//! Empty on purpose: the programs live in the `nemoclaw-ebpf` binary target (`main.rs`).
//! This library target only exists so that userspace can name the crate as a build
//! dependency and be rebuilt when it changes.
#![no_std]
#![warn(missing_docs)]
