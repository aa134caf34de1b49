//! Talking to systemd: readiness and reload notifications (`sd_notify(3)`: one datagram
//! to `$NOTIFY_SOCKET`, no library), and log lines journald files by priority (when
//! stderr is the journal, `$JOURNAL_STREAM`, each line starts with `<N>` as in
//! `sd-daemon(3)`, and carries no timestamp of its own: the journal adds one).

use std::{
    io::Write as _,
    os::unix::net::{SocketAddr, UnixDatagram},
    sync::OnceLock,
};

/// `READY=1`: the daemon is serving.
pub const READY: &str = "READY=1";
/// `RELOADING=1`: a reload started (followed by [`READY`] when done).
pub const RELOADING: &str = "RELOADING=1";
/// `STOPPING=1`: the daemon is stopping.
pub const STOPPING: &str = "STOPPING=1";

/// The address `NOTIFY_SOCKET` names: a path, or `@name` in the abstract namespace.
fn address(socket: &str) -> std::io::Result<SocketAddr> {
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt as _;
        SocketAddr::from_abstract_name(name.as_bytes())
    } else {
        SocketAddr::from_pathname(socket)
    }
}

/// Sends `state` (e.g. [`READY`]) to `socket` (a `NOTIFY_SOCKET` value).
pub fn send_to(socket: &str, state: &str) -> std::io::Result<()> {
    let datagram = UnixDatagram::unbound()?;
    datagram.send_to_addr(state.as_bytes(), &address(socket)?)?;
    Ok(())
}

/// Tells systemd `state` when it supervises this process (`NOTIFY_SOCKET` set); a
/// failure is logged, never fatal. For `RELOADING=1` the monotonic time is added, as
/// `Type=notify-reload` wants.
pub fn notify(state: &str) {
    let Ok(socket) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let message = if state == RELOADING {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map_or(0, |t| t.tv_sec() * 1_000_000 + t.tv_nsec() / 1000);
        format!("{state}\nMONOTONIC_USEC={now}")
    } else {
        state.to_owned()
    };
    if let Err(e) = send_to(&socket, &message) {
        log(
            Priority::Warning,
            &format!("sd_notify {state} to {socket}: {e}"),
        );
    }
}

/// A log line's syslog priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

/// Whether stderr is the journal: `JOURNAL_STREAM` names its device and inode.
fn stderr_is_journal() -> bool {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    *JOURNAL.get_or_init(|| {
        let Ok(value) = std::env::var("JOURNAL_STREAM") else {
            return false;
        };
        let Ok(stat) = nix::sys::stat::fstat(libc::STDERR_FILENO) else {
            return false;
        };
        value == format!("{}:{}", stat.st_dev, stat.st_ino)
    })
}

/// One line as written: `<N>` first for the journal.
#[must_use]
pub fn format_line(journal: bool, priority: Priority, text: &str) -> String {
    if journal {
        format!("<{}>nemoclaw daemon: {text}\n", priority as u8)
    } else {
        format!("nemoclaw daemon: {text}\n")
    }
}

/// Writes one daemon log line to stderr.
pub fn log(priority: Priority, text: &str) {
    let line = format_line(stderr_is_journal(), priority, text);
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// `dlog!(Priority, "format", args)`: one daemon log line (see [`log`]).
macro_rules! dlog {
    ($priority:ident, $($arg:tt)*) => {
        $crate::daemon::notify::log(
            $crate::daemon::notify::Priority::$priority,
            &format!($($arg)*),
        )
    };
}
pub(crate) use dlog;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_is_one_datagram_on_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send_to(path.to_str().unwrap(), READY).unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("nemoclaw-test-{}", std::process::id());
        let abstract_addr = address(&format!("@{name}")).unwrap();
        let listener = UnixDatagram::bind_addr(&abstract_addr).unwrap();
        send_to(&format!("@{name}"), STOPPING).unwrap();
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn journal_lines_carry_their_priority_and_no_timestamp() {
        assert_eq!(
            format_line(true, Priority::Warning, "x"),
            "<4>nemoclaw daemon: x\n"
        );
        assert_eq!(
            format_line(false, Priority::Info, "x"),
            "nemoclaw daemon: x\n"
        );
    }
}
