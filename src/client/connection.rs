//! One TCP connection to the server: send a line, read a line.
//!
//! A [`Locker`](super::Locker) keeps one of these for its whole life, so a
//! request costs a write and a read, not a handshake. What this module adds
//! over a bare `TcpStream` is telling the ways a round trip can fail apart
//! ([`Failure`]), because only some of them make it safe to send the request
//! again; the policy itself lives in the `Locker`.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How a round trip failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request did not leave in full. The server only acts on a complete
    /// line, so it did not act on this one.
    NotSent(io::Error),
    /// The server closed the connection (EOF or reset) after the request was
    /// sent and before a whole reply came back: it may or may not have acted.
    Closed(io::Error),
    /// Anything else, such as a read timeout. The connection is in an unknown
    /// state (a late reply could still arrive) and must not be reused.
    Broken(io::Error),
}

/// A connected socket with a buffered reader over it.
#[derive(Debug)]
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
    /// The socket's current read timeout, to skip setting it again.
    read_timeout: Duration,
}

impl Connection {
    /// Connects to `host:port`, trying each address the name resolves to,
    /// with `timeout` for the connect and for every read and write.
    pub fn open(host: &str, port: u16, timeout: Duration) -> io::Result<Connection> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolves to no address");
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    // Requests are single small lines answered at once;
                    // Nagle's delay would only add latency.
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    return Ok(Connection {
                        reader: BufReader::new(stream),
                        read_timeout: timeout,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Whether the connection is still fit for a request: the server has not
    /// closed it, and nothing unread is waiting (a stray byte would mean the
    /// replies are out of step with the requests).
    ///
    /// This catches the common case, a server that restarted or dropped an
    /// idle connection, before anything is sent, when reconnecting is
    /// certainly safe.
    pub fn is_usable(&self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let mut byte = 0u8;
        // SAFETY: the descriptor belongs to the stream we hold, and `byte` is
        // a valid one-byte buffer for the duration of the call.
        let got = unsafe {
            libc::recv(
                self.reader.get_ref().as_raw_fd(),
                (&raw mut byte).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        got < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }

    /// Sends `line` (which ends in a newline) and reads one reply line into
    /// `reply` (cleared first, newline removed). `read_timeout` replaces the
    /// connection's timeout for this reply, for requests the server may hold
    /// back on purpose.
    pub fn round_trip(
        &mut self,
        line: &[u8],
        reply: &mut Vec<u8>,
        read_timeout: Duration,
    ) -> Result<(), Failure> {
        let stream = self.reader.get_mut();
        stream.write_all(line).map_err(Failure::NotSent)?;
        if read_timeout != self.read_timeout {
            stream
                .set_read_timeout(Some(read_timeout))
                .map_err(Failure::Broken)?;
            self.read_timeout = read_timeout;
        }
        reply.clear();
        match self.reader.read_until(b'\n', reply) {
            Ok(_) if reply.last() == Some(&b'\n') => {
                reply.pop();
                if reply.last() == Some(&b'\r') {
                    reply.pop();
                }
                Ok(())
            }
            Ok(_) => Err(Failure::Closed(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before replying",
            ))),
            Err(e) if is_closed(&e) => Err(Failure::Closed(e)),
            Err(e) => Err(Failure::Broken(e)),
        }
    }
}

/// Whether an I/O error means the peer closed or reset the connection.
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_closed_peer_is_noticed_before_sending() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let conn = Connection::open("127.0.0.1", port, SECOND).unwrap();
        let (peer, _) = listener.accept().unwrap();
        assert!(conn.is_usable());
        drop(peer);
        // The FIN arrives asynchronously; give it a generous while.
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while conn.is_usable() {
            assert!(
                std::time::Instant::now() < give_up,
                "the close was never noticed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn eof_before_a_reply_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut conn = Connection::open("127.0.0.1", port, SECOND).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let server = std::thread::spawn(move || {
            let mut got = [0u8; 3];
            peer.read_exact(&mut got).unwrap();
            peer.write_all(b"{\"Sta").unwrap();
        });
        let mut reply = Vec::new();
        let outcome = conn.round_trip(b"{}\n", &mut reply, SECOND);
        server.join().unwrap();
        assert!(matches!(outcome, Err(Failure::Closed(_))), "{outcome:?}");
    }
}
