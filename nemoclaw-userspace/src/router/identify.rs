//! Which sandbox sent a request, from the kernel: the cgroup of the socket at the other end
//! of the connection, asked of the kernel's socket diagnostics (`NETLINK_SOCK_DIAG`, an
//! exact lookup by the connection's 4-tuple; `INET_DIAG_CGROUP_ID`, kernels 5.9+). No
//! privilege needed, nothing the client sends is trusted, and a socket keeps the cgroup of
//! the task that created it, so a sandboxed agent cannot pass as a host tool.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_CGROUP_ID: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const INET_DIAG_NOCOOKIE: u32 = !0;
/// `struct inet_diag_msg`: 4 bytes, the sock id, then expires, rqueue, wqueue, uid, inode.
const MSG_LEN: usize = 4 + size_of::<SockId>() + 20;

/// `struct inet_diag_sockid`: ports and addresses in network byte order.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}

/// `struct nlmsghdr` + `struct inet_diag_req_v2`.
#[repr(C)]
struct Request {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: SockId,
}

/// The client end of a TCP connection, as the kernel sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerSocket {
    /// The cgroup v2 id (the cgroup directory's inode) of the task that created it.
    pub cgroup_id: u64,
    /// Its owner.
    pub uid: u32,
}

/// IPv4-mapped IPv6 addresses are IPv4 connections.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(addr, |v4| SocketAddr::new(IpAddr::V4(v4), addr.port())),
        IpAddr::V4(_) => addr,
    }
}

fn octets(ip: IpAddr) -> [u8; 16] {
    let mut out = [0; 16];
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

/// The socket connected from `peer` to `local` (the accepted connection's two ends).
pub fn peer_socket(local: SocketAddr, peer: SocketAddr) -> io::Result<PeerSocket> {
    let (local, peer) = (unmapped(local), unmapped(peer));
    let family = match (local.ip(), peer.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => return Err(io::Error::other("address families of the two ends differ")),
    };
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let request = Request {
        len: size_of::<Request>() as u32,
        kind: SOCK_DIAG_BY_FAMILY,
        flags: libc::NLM_F_REQUEST as u16,
        seq: 1,
        pid: 0,
        family: u8::try_from(family).unwrap_or(0),
        protocol: u8::try_from(libc::IPPROTO_TCP).unwrap_or(0),
        ext: 0,
        pad: 0,
        states: !0,
        id: SockId {
            sport: peer.port().to_be_bytes(),
            dport: local.port().to_be_bytes(),
            src: octets(peer.ip()),
            dst: octets(local.ip()),
            interface: 0,
            cookie: [INET_DIAG_NOCOOKIE; 2],
        },
    };
    // SAFETY: `request` is a plain `repr(C)` value of the given size; the kernel reads it.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            std::ptr::from_ref(&request).cast(),
            size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 8192];
    // SAFETY: receives into `buf`, whose length is passed.
    let got = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_reply(&buf[..got.cast_unsigned()])
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads the one message of an exact lookup: an error, or an `inet_diag_msg` with attributes.
fn parse_reply(reply: &[u8]) -> io::Result<PeerSocket> {
    let short = || io::Error::other("short sock_diag reply");
    let len = u32_at(reply, 0).ok_or_else(short)? as usize;
    let kind = u16_at(reply, 4).ok_or_else(short)?;
    let message = reply.get(16..len).ok_or_else(short)?;
    if kind == NLMSG_ERROR {
        let errno = u32_at(message, 0).ok_or_else(short)?.cast_signed();
        return Err(io::Error::from_raw_os_error(-errno));
    }
    if kind != SOCK_DIAG_BY_FAMILY {
        return Err(io::Error::other(format!(
            "unexpected sock_diag reply type {kind}"
        )));
    }
    let uid = u32_at(message, 4 + size_of::<SockId>() + 12).ok_or_else(short)?;
    let mut at = MSG_LEN;
    while at + 4 <= message.len() {
        let attr_len = usize::from(u16_at(message, at).ok_or_else(short)?);
        let attr_kind = u16_at(message, at + 2).ok_or_else(short)?;
        if attr_len < 4 {
            break;
        }
        if attr_kind == INET_DIAG_CGROUP_ID {
            let cgroup_id = u64_at(message, at + 4).ok_or_else(short)?;
            return Ok(PeerSocket { cgroup_id, uid });
        }
        at += (attr_len + 3) & !3;
    }
    Err(io::Error::other(
        "this kernel does not report socket cgroups (INET_DIAG_CGROUP_ID needs Linux 5.9+)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::fs::MetadataExt;

    /// This process's cgroup v2 id: the inode of its cgroup directory.
    fn own_cgroup_id() -> u64 {
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        std::fs::metadata(format!("/sys/fs/cgroup{path}"))
            .unwrap()
            .ino()
    }

    #[test]
    fn the_kernel_names_the_cgroup_of_the_connecting_socket() {
        for host in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = TcpListener::bind(host) else {
                continue; // no IPv6 loopback here
            };
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, peer) = listener.accept().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            let found = peer_socket(server.local_addr().unwrap(), peer).unwrap();
            assert_eq!(found.cgroup_id, own_cgroup_id(), "{host}");
            // SAFETY: getuid cannot fail.
            assert_eq!(found.uid, unsafe { libc::getuid() });
        }
    }

    #[test]
    fn a_connection_that_does_not_exist_is_not_found() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = peer_socket(
            listener.local_addr().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    }
}
