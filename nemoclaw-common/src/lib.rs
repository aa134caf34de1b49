//! Types shared by the eBPF programs and userspace: map keys and values, deny events,
//! limits. Everything is `#[repr(C)]` with explicit padding and no `bool`, so both sides
//! agree on the bytes.
#![no_std]

pub mod event;
pub mod exec;
pub mod fs;
pub mod hooks;
pub mod net;
pub mod rule;
pub mod sandbox;

/// `aya::Pod` lets userspace put these types in maps. Only the `user` feature pulls in aya.
#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type below is `#[repr(C)]`, `Copy`, made of integers and byte arrays
    // with explicit padding fields, so any bit pattern is valid.
    unsafe impl aya::Pod for crate::sandbox::SandboxEntry {}
    unsafe impl aya::Pod for crate::rule::Verdict {}
    unsafe impl aya::Pod for crate::exec::ExecKey {}
    unsafe impl aya::Pod for crate::exec::ExecPathKey {}
    unsafe impl aya::Pod for crate::net::Net4Key {}
    unsafe impl aya::Pod for crate::net::Net6Key {}
    unsafe impl aya::Pod for crate::net::NetSlotFlags {}
    unsafe impl aya::Pod for crate::net::ListenKey {}
    unsafe impl aya::Pod for crate::event::DenyEvent {}
    unsafe impl<const N: usize> aya::Pod for crate::fs::FsExactKey<N> {}
    unsafe impl aya::Pod for crate::fs::FsLpmKey {}
    unsafe impl aya::Pod for crate::fs::FsValue {}
    unsafe impl aya::Pod for crate::fs::FsInodeKey {}
    unsafe impl aya::Pod for crate::fs::FsSubtreeKey {}
}
