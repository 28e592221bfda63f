//! What the server asks of the operating system at start-up: the address
//! to bind, the machine's memory, the wall clock for the first token; and,
//! once a second, the process's resident memory (`MemoryMax`).
//!
//! Kept here so that parsing the command line does no I/O and the store
//! reads no clock.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::UNIX_EPOCH;

use crate::protocol::FencingToken;

/// The address to bind for `host` (an IP address, in brackets or not, or a
/// name, resolved here) and `port`: the first that `host` resolves to.
pub fn listen_addr(host: &str, port: u16) -> io::Result<SocketAddr> {
    // '' is every IPv4 interface, as upstream's server (Python's socket
    // module) reads it.
    if host.is_empty() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    (bare, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} does not resolve to an address"),
        )
    })
}

/// The address to bind for `--metrics HOST:PORT` (`[::1]:9100` for IPv6;
/// the host resolved as in [`listen_addr`]).
pub fn metrics_addr(spec: &str) -> io::Result<SocketAddr> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--metrics {spec}: expected HOST:PORT"),
        )
    };
    let (host, port) = spec.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if host.is_empty() {
        return Err(invalid());
    }
    listen_addr(host, port)
}

/// The machine's physical memory in bytes, if it can be read.
pub fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf only reads system configuration values.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (u64::try_from(pages), u64::try_from(page_size)) {
        (Ok(pages), Ok(size)) if pages > 0 && size > 0 => Some(pages.saturating_mul(size)),
        _ => None,
    }
}

/// A third of the machine's physical memory (1 GiB if it cannot be read):
/// the default `--max-memory`.
pub fn default_max_memory() -> u64 {
    physical_memory().map_or(1 << 30, |bytes| bytes / 3)
}

/// This process's resident memory in bytes (the second field of
/// `/proc/self/statm`, in pages), if it can be read: asked once a second
/// for `MemoryMax`, never on a request's path.
pub fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system configuration value.
    let page_size = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    Some(pages.saturating_mul(page_size))
}

/// `resident` in hundredths of a percent of `physical` (what `MemoryMax`
/// keeps), rounded up, so that a process that holds any memory never shows
/// 0.00.
pub fn percent_hundredths(resident: u64, physical: u64) -> u64 {
    if physical == 0 {
        return 0;
    }
    let scaled = u128::from(resident) * 10_000;
    u64::try_from(scaled.div_ceil(u128::from(physical))).unwrap_or(u64::MAX)
}

/// The first fencing token: microseconds since the epoch on the wall clock
/// ([`super::clock::wall_now`]), so tokens keep growing across restarts
/// (PROTOCOL.md, Extensions).
pub fn first_token() -> FencingToken {
    let micros = super::clock::wall_now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(1);
    FencingToken::new(micros.max(1))
}

/// A listening TCP socket on `addr` with room for `backlog` pending
/// connections, non-blocking, with SO_REUSEADDR as std sets it.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Writes this process's ID and a newline to `path` (the `--pid-file`).
pub fn write_pid_file(path: &std::path::Path) -> io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}

/// Seconds east of UTC of local time at `at`, from the C library's time
/// zone (TZ, /etc/localtime); 0 if it cannot tell.
pub fn utc_offset(at: std::time::SystemTime) -> i64 {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX))
        .unwrap_or(0);
    // SAFETY: `tm` is plain data that localtime_r fills; both pointers are
    // to live locals, and localtime_r is the thread-safe variant.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_in_hundredths_round_up() {
        assert_eq!(percent_hundredths(1, 100), 100);
        assert_eq!(percent_hundredths(1, 8), 1250);
        assert_eq!(
            percent_hundredths(1, 1 << 40),
            1,
            "any memory is at least 0.01"
        );
        assert_eq!(percent_hundredths(0, 1 << 40), 0);
        assert_eq!(percent_hundredths(u64::MAX, u64::MAX), 10_000);
        assert_eq!(percent_hundredths(5, 0), 0);
    }

    #[test]
    fn addresses_names_and_brackets() {
        assert_eq!(
            listen_addr("::1", 4000).unwrap(),
            "[::1]:4000".parse().unwrap()
        );
        assert_eq!(
            listen_addr("[::1]", 4000).unwrap(),
            "[::1]:4000".parse().unwrap()
        );
        assert!(listen_addr("localhost", 0).unwrap().ip().is_loopback());
        assert!(listen_addr("no such host.invalid", 1).is_err());
        assert_eq!(
            listen_addr("", 37373).unwrap(),
            "0.0.0.0:37373".parse().unwrap()
        );
    }

    #[test]
    fn memory_and_tokens_are_positive() {
        assert!(default_max_memory() > 0);
        let (resident, physical) = (resident_memory().unwrap(), physical_memory().unwrap());
        assert!(
            resident > 0 && resident < physical,
            "{resident} of {physical}"
        );
        assert!(percent_hundredths(resident, physical) > 0);
        assert!(first_token().get() > 1_700_000_000_000_000);
    }
}
