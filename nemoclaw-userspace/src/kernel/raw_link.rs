//! A link aya 0.14 cannot hand out as an `FdLink`: the cgroup `setsockopt` program's
//! (`CgroupSockoptLink` has no conversion, so it could not be pinned and outlive the
//! daemon like the other cgroup links). It is made here with `BPF_LINK_CREATE` and pinned
//! with `BPF_OBJ_PIN`; once pinned it is read back like any other link (`adopt` only needs
//! its name under `links/`).

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

/// `enum bpf_cmd` (`include/uapi/linux/bpf.h`).
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `enum bpf_attach_type`: `BPF_CGROUP_SETSOCKOPT`.
pub const ATTACH_CGROUP_SETSOCKOPT: u32 = 22;

/// The `link_create` member of `union bpf_attr` up to `flags`, and the zeroed fields after
/// it that the kernel checks (the union's bytes past a command's fields must be zero; the
/// kernel zero-fills what is not passed).
#[repr(C)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
}

/// The `BPF_OBJ_*` member of `union bpf_attr`.
#[repr(C)]
struct ObjPin {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    padding: u32,
}

/// `bpf(cmd, attr, sizeof attr)`.
pub(super) fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a `#[repr(C)]` prefix of `union bpf_attr` for `cmd`, valid for the
    // size passed; the kernel copies it and does not keep the pointer.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `fd` as a `__u32` field of `union bpf_attr`. An open descriptor is never negative, so
/// this fails only if that invariant is broken.
fn attr_fd(fd: BorrowedFd) -> io::Result<u32> {
    u32::try_from(fd.as_raw_fd()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "negative file descriptor for bpf_attr",
        )
    })
}

/// Attaches the loaded program `prog` to the cgroup `cgroup` as `attach_type`, returning
/// the link (dropping it detaches, unless it is pinned).
pub fn link_create(prog: BorrowedFd, cgroup: BorrowedFd, attach_type: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreate {
        prog_fd: attr_fd(prog)?,
        target_fd: attr_fd(cgroup)?,
        attach_type,
        flags: 0,
    };
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    // SAFETY: a successful `BPF_LINK_CREATE` returns a new file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Pins `link` at `path` (on a bpffs).
pub fn pin(link: BorrowedFd, path: &Path) -> io::Result<()> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in pin path"))?;
    let mut attr = ObjPin {
        pathname: name.as_ptr() as u64,
        bpf_fd: attr_fd(link)?,
        file_flags: 0,
        path_fd: 0,
        padding: 0,
    };
    bpf(BPF_OBJ_PIN, &mut attr).map(|_| ())
}
