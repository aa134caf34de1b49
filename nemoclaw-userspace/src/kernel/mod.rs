//! The "live" stage: load the eBPF object with this kernel's struct offsets, attach the
//! programs a policy needs, and write compiled policies into the maps.

pub mod btf;
mod detach;
pub mod fs;
mod install;
pub mod kfunc_call;
pub mod loader;
pub mod lsm;
pub mod mapset;
pub mod net;
pub mod offsets;
pub mod probe;
pub mod raw_link;
pub mod slots;

pub use loader::{Enforcer, KernelError};
