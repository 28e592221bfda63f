//! What the server does for systemd: adopt a listening socket passed by
//! socket activation (`LISTEN_FDS`/`LISTEN_PID`, the socket at fd 3), and
//! tell the service manager it is ready (`READY=1` on `NOTIFY_SOCKET`).
//! Both do nothing when the variables are not set, so the server runs the
//! same by hand, in a container or under another supervisor.
//!
//! The units are in `contrib/systemd/`.

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use mio::net::TcpListener;

/// The first descriptor that socket activation passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// Set once fd 3 has been taken, so that a second server in the same process
/// cannot own the same descriptor twice.
static ADOPTED: AtomicBool = AtomicBool::new(false);

/// The listening socket systemd passed this process, if it passed one.
///
/// Checked before it is trusted: `LISTEN_PID` must be this process (the
/// `sd-notify` crate checks that and marks the descriptors close-on-exec),
/// and fd 3 must be a listening TCP socket (IPv4 or IPv6). A mismatch is an
/// error rather than a silent fallback to binding, since a unit that passes
/// a socket expects it to be used. Only the first socket is used; more are
/// left alone, with a warning.
pub fn adopt_listener() -> io::Result<Option<TcpListener>> {
    let count = sd_notify::listen_fds()
        .map_err(|e| io::Error::new(e.kind(), format!("socket activation: {e}")))?
        .len();
    if count == 0 {
        return Ok(None);
    }
    if ADOPTED.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    if count > 1 {
        log::warn!("socket activation passed {count} sockets: serving the first (fd 3) only");
    }
    check_listening_tcp(FIRST_FD)?;
    // SAFETY: LISTEN_PID names this process, so systemd passed fd 3 to us
    // and nothing else in the program owns it; `ADOPTED` makes this the
    // only place that takes ownership of it, once. It was just checked to
    // be a listening TCP socket.
    let std_listener = unsafe { std::net::TcpListener::from_raw_fd(FIRST_FD) };
    std_listener.set_nonblocking(true)?;
    Ok(Some(TcpListener::from_std(std_listener)))
}

/// An error unless `fd` is a TCP (IPv4 or IPv6) socket in the listening state.
fn check_listening_tcp(fd: RawFd) -> io::Result<()> {
    let not = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket activation: fd {fd} is not {what}"),
        )
    };
    if socket_option(fd, libc::SO_TYPE).map_err(|_| not("a socket"))? != libc::SOCK_STREAM {
        return Err(not("a stream socket"));
    }
    if socket_option(fd, libc::SO_ACCEPTCONN)? == 0 {
        return Err(not("listening"));
    }
    if !matches!(
        socket_option(fd, libc::SO_DOMAIN)?,
        libc::AF_INET | libc::AF_INET6
    ) {
        return Err(not("an IPv4 or IPv6 socket"));
    }
    Ok(())
}

/// An integer `SOL_SOCKET` option of `fd`.
fn socket_option(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| io::Error::other("socklen_t"))?;
    // SAFETY: `value` and `len` are valid for writes and `len` is the size
    // of `value`; getsockopt writes at most `len` bytes and fails cleanly
    // (EBADF, ENOTSOCK) for a descriptor that is not an open socket.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Tells the service manager the server is ready (`READY=1`), for
/// `Type=notify` units: call once the listener is bound. Nothing happens
/// when `NOTIFY_SOCKET` is unset; a failure to send is logged, not fatal.
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        log::warn!("cannot notify the service manager: {e}");
    }
}

/// Tells the service manager the server is stopping (`STOPPING=1`).
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}
