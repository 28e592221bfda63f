//! The connection to the server, and the one policy for sending a request
//! again: reconnect at most once, and resend only where a repeat cannot
//! change the answer (never `Unlock` or `Erase`).
//!
//! [`Link`] is what a [`Locker`](super::Locker) talks through: it keeps one
//! TCP connection for the locker's whole life, so a request costs a write
//! and a read, not a handshake, and it decides after each failure whether
//! the request goes out again on a new connection. The rules, and why each
//! is safe, are in the client's module documentation (§ The connection);
//! here they map onto the ways a round trip can fail ([`Failure`]):
//!
//! | failure | the server may have acted | sent again |
//! | --- | --- | --- |
//! | the old connection was closed (seen before sending) | no | yes |
//! | [`Failure::NotSent`] | no | yes |
//! | [`Failure::Closed`] | yes | unless `Unlock` or `Erase` |
//! | [`Failure::Broken`] (a read timeout, ...) | yes, or still may | no |
//!
//! Either way, a request is sent at most twice.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::error::Error;
use super::wire::{Reply, Request};
use crate::protocol::action::Action;
use crate::protocol::codec::Encoding;

/// The connection to the server and the buffers a round trip reuses.
pub(super) struct Link {
    host: String,
    port: u16,
    timeout: Duration,
    connection: Option<Connection>,
    line: Vec<u8>,
    scratch: Vec<u8>,
    reply: Vec<u8>,
}

impl Link {
    /// A link to `host:port` with `timeout` for connecting and for each
    /// reply. It connects on its first round trip.
    pub(super) fn new(host: String, port: u16, timeout: Duration) -> Link {
        Link {
            host,
            port,
            timeout,
            connection: None,
            line: Vec::new(),
            scratch: Vec::new(),
            reply: Vec::new(),
        }
    }

    /// `host:port`, for messages.
    pub(super) fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Sends `request` and reads its reply, reconnecting and resending at
    /// most once, as the table in the module documentation says.
    pub(super) fn round_trip(
        &mut self,
        request: &Request<'_>,
        encoding: Encoding,
    ) -> Result<Reply, Error> {
        self.line.clear();
        request.write_line(encoding, &mut self.line, &mut self.scratch);
        // A waiting Lock is held back by the server on purpose.
        let read_timeout = self
            .timeout
            .saturating_add(request.wait.unwrap_or_default());
        let mut may_resend = true;
        loop {
            let connection = match self.connection.take() {
                Some(c) if c.is_usable() => c,
                _ => Connection::open(&self.host, self.port, self.timeout)
                    .map_err(|e| Error::io(self.server(), "connect to", e))?,
            };
            let connection = self.connection.insert(connection);
            let (resend, error) =
                match connection.round_trip(&self.line, &mut self.reply, read_timeout) {
                    Ok(()) => return Reply::parse(&self.reply, encoding),
                    Err(Failure::NotSent(e)) => (true, Error::io(self.server(), "send to", e)),
                    Err(Failure::Closed(e)) => (
                        replay_is_safe(request.action),
                        Error::io(self.server(), "receive from", e),
                    ),
                    Err(Failure::Broken(e)) => (false, Error::io(self.server(), "receive from", e)),
                };
            self.connection = None;
            if !(resend && may_resend) {
                return Err(error);
            }
            may_resend = false;
        }
    }
}

/// Whether a request that may already have been applied can be sent again
/// without changing what its answer means: every action but `Unlock` and
/// `Erase` (the client's module documentation says why).
fn replay_is_safe(action: Action) -> bool {
    !matches!(action, Action::Unlock | Action::Erase)
}

/// How a round trip failed.
#[derive(Debug)]
enum Failure {
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

/// A connected socket with a buffered reader over it: one send, one reply
/// line at a time.
#[derive(Debug)]
struct Connection {
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

    /// A scripted server: for each connection it accepts in turn, reads one
    /// request line, then answers with the script's line or, for `None`,
    /// closes without answering. Returns the requests it read.
    fn scripted_server(
        script: Vec<Option<&'static str>>,
    ) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for answer in script {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                requests.push(line);
                if let Some(answer) = answer {
                    reader.get_mut().write_all(answer.as_bytes()).unwrap();
                    reader.get_mut().write_all(b"\n").unwrap();
                }
            }
            requests
        });
        (port, server)
    }

    fn link_to(port: u16) -> Link {
        Link::new("127.0.0.1".to_owned(), port, SECOND)
    }

    const VERSION: Request<'static> = Request::new(Action::Version, "me", "x");

    const VERSION_REPLY: &str = r#"{"Status":"Version","ID":"JackrabbitDLM/test"}"#;

    #[test]
    fn a_lost_reply_is_asked_again_for_every_action_but_unlock_and_erase() {
        for action in Action::ALL {
            let safe = replay_is_safe(action);
            assert_eq!(safe, !matches!(action, Action::Unlock | Action::Erase));
            // An unsafe action gets no second connection: script only one.
            let script = if safe {
                vec![None, Some(VERSION_REPLY)]
            } else {
                vec![None]
            };
            let (port, server) = scripted_server(script);
            let outcome =
                link_to(port).round_trip(&Request::new(action, "me", "x"), Encoding::Plain);
            let requests = server.join().unwrap();
            assert_eq!(outcome.is_ok(), safe, "{action:?}");
            assert_eq!(requests.len(), if safe { 2 } else { 1 }, "{action:?}");
            assert!(requests[0].contains(action.name()), "{requests:?}");
            if safe {
                assert_eq!(requests[0], requests[1], "the same line again");
            }
        }
    }

    #[test]
    fn a_read_timeout_is_not_followed_by_a_resend() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut link = Link::new("127.0.0.1".to_owned(), port, Duration::from_millis(100));
        let client = std::thread::spawn(move || link.round_trip(&VERSION, Encoding::Plain));
        // Read the request and hold the connection open without answering.
        let (peer, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&peer).read_line(&mut line).unwrap();
        let err = client.join().unwrap().unwrap_err();
        assert!(err.is_io(), "{err}");
        assert!(err.to_string().ends_with("timed out"), "{err}");
        listener.set_nonblocking(true).unwrap();
        let second = listener.accept().map(|_| ()).unwrap_err();
        assert_eq!(
            second.kind(),
            io::ErrorKind::WouldBlock,
            "no second connection"
        );
    }

    #[test]
    fn a_second_lost_reply_is_an_error() {
        let (port, server) = scripted_server(vec![None, None]);
        let mut link = link_to(port);
        let err = link.round_trip(&VERSION, Encoding::Plain).unwrap_err();
        assert!(err.is_io(), "{err}");
        assert_eq!(server.join().unwrap().len(), 2);
    }

    #[test]
    fn a_lost_reply_to_unlock_or_erase_is_not_asked_again() {
        // The second connection is answered only if the client asks again
        // after the failed call; here it asks Version, not Unlock or Erase.
        let (port, server) = scripted_server(vec![None, None, Some(VERSION_REPLY)]);
        let mut link = link_to(port);
        for action in [Action::Unlock, Action::Erase] {
            let request = Request::new(action, "me", "x");
            assert!(
                link.round_trip(&request, Encoding::Plain)
                    .unwrap_err()
                    .is_io()
            );
        }
        assert!(link.round_trip(&VERSION, Encoding::Plain).is_ok());
        let requests = server.join().unwrap();
        assert!(requests[0].contains("\"Unlock\""), "{requests:?}");
        assert!(requests[1].contains("\"Erase\""), "{requests:?}");
        assert!(requests[2].contains("\"Version\""), "{requests:?}");
    }
}
