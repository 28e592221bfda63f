//! What the server asks of the operating system at start-up: the address
//! to bind, the machine's memory, the wall clock for the first token.
//!
//! Kept here so that parsing the command line does no I/O and the store
//! reads no clock.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::FencingToken;

/// The address to bind for `host` (an IP address, in brackets or not, or a
/// name, resolved here) and `port`: the first that `host` resolves to.
pub fn listen_addr(host: &str, port: u16) -> io::Result<SocketAddr> {
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

/// A third of the machine's physical memory (1 GiB if it cannot be read):
/// the default `--max-memory`.
pub fn default_max_memory() -> u64 {
    // SAFETY: sysconf only reads system configuration values.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (u64::try_from(pages), u64::try_from(page_size)) {
        (Ok(pages), Ok(size)) if pages > 0 && size > 0 => pages.saturating_mul(size) / 3,
        _ => 1 << 30,
    }
}

/// The first fencing token: microseconds since the epoch on the wall clock,
/// so tokens keep growing across restarts (PROTOCOL.md, Extensions).
pub fn first_token() -> FencingToken {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(1);
    FencingToken::new(micros.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn memory_and_tokens_are_positive() {
        assert!(default_max_memory() > 0);
        assert!(first_token().get() > 1_700_000_000_000_000);
    }
}
