//! NemoClaw's kernel side. This file only declares the programs; each control has its own
//! module. Hooks need BPF LSM (`CONFIG_BPF_LSM=y`, `bpf` in `lsm=`) for the `#[lsm]`
//! programs and cgroup v2 for the `#[cgroup_sock_addr]` ones.
#![no_std]
#![no_main]

mod event;
mod exec;
mod kernel;
mod maps;
mod net;
mod sandbox;

use aya_ebpf::{
    macros::{cgroup_sock_addr, lsm},
    programs::{LsmContext, SockAddrContext},
};

/// `security_bprm_check_security(struct linux_binprm *bprm)`: judges every exec, including
/// each interpreter of a `#!` chain.
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    exec::bprm_check_security(&ctx)
}

/// A no-op `bprm_check_security` program: the cost floor for benchmarks and the program
/// `nemoclaw doctor` loads to prove BPF LSM works on this kernel.
#[lsm(hook = "bprm_check_security")]
pub fn noop_bprm_check_security(_ctx: LsmContext) -> i32 {
    0
}

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    net::judge4(&ctx, nemoclaw_common::event::hook::CONNECT4)
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    net::judge6(&ctx, nemoclaw_common::event::hook::CONNECT6)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    net::judge4(&ctx, nemoclaw_common::event::hook::SENDMSG4)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    net::judge6(&ctx, nemoclaw_common::event::hook::SENDMSG6)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
