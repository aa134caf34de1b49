//! Types shared by the eBPF programs and userspace: map keys and values, deny events,
//! limits. Everything is `#[repr(C)]` with explicit padding and no `bool`, so both sides
//! agree on the bytes.
//!
//! Each kernel-facing type says which programs (hooks) use it and the kernel each needs:
//! BPF LSM programs need 5.7+ (`CONFIG_BPF_LSM=y` and `bpf` in the active LSM list), some
//! hooks are newer (`bprm_creds_from_file` 5.8, `task_fix_setgid` 5.10, `userns_create`
//! 6.1, `inode_set_acl`/`inode_remove_acl` 6.2, `file_ioctl_compat` 6.8 or 6.1.75+); the
//! cgroup programs need cgroup v2 and `connect4/6`, `bind4/6` 4.17+, `sendmsg4/6` 4.18+,
//! `recvmsg4/6` 5.2+, `getpeername4/6` 5.8+, `sock_create` 4.10+, `setsockopt` 5.3+. The
//! object as a whole needs 6.1 (`docs/architecture.md`: one object runs on 6.1 through 6.18).
#![no_std]
#![warn(missing_docs)]
#![allow(
    clippy::pub_underscore_fields,
    reason = "padding fields are public so both sides can build the `#[repr(C)]` types with a \
              literal; the underscore says they carry nothing"
)]

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
