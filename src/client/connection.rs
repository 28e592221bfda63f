//! The connection to the server, and the one policy for sending a request
//! again: resend only where a repeat cannot change the answer (never
//! `Unlock` or `Erase` once it may have arrived), at most once per
//! endpoint and once more.
//!
//! [`Link`] is what a client talks through: it keeps one TCP connection for
//! the client's whole life, so a request costs a write and a read, not a
//! handshake, and it decides after each failure whether the request goes
//! out again on a new connection, to the same server or the next of its
//! [`Endpoint`]s. The rules, and why each is safe, are in the client's
//! module documentation (§ The connection); here they map onto what can
//! happen to a request in a round (send every pending line, read a reply
//! for each):
//!
//! | what happened | the server may have acted | sent again |
//! | --- | --- | --- |
//! | the old connection was closed (seen before sending) | no | yes |
//! | its line was not written in full | no | yes |
//! | the connection closed before its reply (EOF, reset) | yes | unless `Unlock` or `Erase` |
//! | its reply did not come in time, or the read broke otherwise | yes, or still may | no |
//! | the reply is `Unavailable` (a cluster node) | unknown | unless `Unlock` or `Erase`, to the next endpoint |
//!
//! A request is sent at most once more than there are endpoints (twice,
//! with one). The decisions are made by [`Exchange`], which does no I/O:
//! the blocking [`Link`] here and the tokio client's link drive the same
//! `Exchange`, so both follow one policy.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use super::error::Error;
use super::wire::{Reply, Request};
use crate::protocol::action::Action;
use crate::protocol::codec::Encoding;
use crate::protocol::reply::Status;

/// One server: a host name or address and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: String, port: u16) -> Endpoint {
        Endpoint { host, port }
    }
}

impl fmt::Display for Endpoint {
    /// `host:port`, with an IPv6 address in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The endpoints, and which one the client talks to now.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    list: Vec<Endpoint>,
    current: usize,
}

impl Endpoints {
    /// `list` must not be empty.
    pub fn new(list: Vec<Endpoint>) -> Endpoints {
        assert!(!list.is_empty(), "a client needs at least one endpoint");
        Endpoints { list, current: 0 }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn current(&self) -> &Endpoint {
        &self.list[self.current]
    }

    /// Moves on to the next endpoint, round again after the last.
    pub fn advance(&mut self) {
        self.current = (self.current + 1) % self.list.len();
    }

    /// Acts on what a round's outcome says of `connection`: drops it if it
    /// is out of step, moves on to the next endpoint if the verdict says.
    pub fn follow<C>(&mut self, verdict: Verdict, connection: &mut Option<C>) {
        if !verdict.keep_connection || verdict.next_endpoint {
            *connection = None;
        }
        if verdict.next_endpoint {
            self.advance();
        }
    }

    /// Every endpoint, for a message about all of them.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.list.iter().map(Endpoint::to_string).collect();
        names.join(", ")
    }
}

/// The connection to the server and the buffers a round trip reuses.
pub(crate) struct Link {
    endpoints: Endpoints,
    timeout: Duration,
    connection: Option<Connection>,
}

impl Link {
    /// A link to `endpoints` (at least one) with `timeout` for connecting
    /// and for each reply. It connects on its first round trip.
    pub fn new(endpoints: Vec<Endpoint>, timeout: Duration) -> Link {
        Link {
            endpoints: Endpoints::new(endpoints),
            timeout,
            connection: None,
        }
    }

    /// The server talked to now, as `host:port`, for messages.
    pub fn server(&self) -> String {
        self.endpoints.current().to_string()
    }

    /// Sends `request` and reads its reply, sending it again where the
    /// table in the module documentation says.
    pub fn round_trip(
        &mut self,
        request: &Request<'_>,
        encoding: Encoding,
    ) -> Result<Reply, Error> {
        let mut replies = self.exchange(std::slice::from_ref(request), encoding);
        replies.pop().expect("one reply per request")
    }

    /// Sends every request (pipelined: all lines, then all replies) and
    /// returns a result for each, in request order.
    pub fn exchange(
        &mut self,
        requests: &[Request<'_>],
        encoding: Encoding,
    ) -> Vec<Result<Reply, Error>> {
        let mut exchange = Exchange::new(requests, encoding, self.endpoints.len());
        let timeout = self.timeout;
        while !exchange.is_done() {
            let connection = match self.connect() {
                Ok(connection) => connection,
                Err(e) => {
                    exchange.connect_failed(&self.endpoints.describe(), &e);
                    break;
                }
            };
            let (lines, count, read_timeout) = exchange.round(timeout);
            let round = connection.exchange(lines, count, read_timeout);
            let verdict = exchange.finish_round(&self.endpoints.current().to_string(), round);
            self.endpoints.follow(verdict, &mut self.connection);
        }
        exchange.into_results()
    }

    /// The connection, if it is still fit for use, else a new one to the
    /// first endpoint that accepts, starting with the current one.
    fn connect(&mut self) -> io::Result<&mut Connection> {
        if self
            .connection
            .as_ref()
            .is_some_and(|c| is_usable(c.fd(), c.has_buffered()))
        {
            return Ok(self.connection.as_mut().expect("just checked"));
        }
        self.connection = None;
        let mut last = None;
        for _ in 0..self.endpoints.len() {
            let endpoint = self.endpoints.current();
            match Connection::open(&endpoint.host, endpoint.port, self.timeout) {
                Ok(connection) => return Ok(self.connection.insert(connection)),
                Err(e) => last = Some(e),
            }
            self.endpoints.advance();
        }
        Err(last.expect("at least one endpoint"))
    }
}

/// Whether a request that may already have been applied can be sent again
/// without changing what its answer means: every action but `Unlock` and
/// `Erase` (the client's module documentation says why).
pub(crate) fn replay_is_safe(action: Action) -> bool {
    !matches!(action, Action::Unlock | Action::Erase)
}

/// What one round did on the wire: how many bytes of its lines were
/// written, the replies read, and the error that stopped it, if any.
#[derive(Debug, Default)]
pub(crate) struct Round {
    pub written: usize,
    pub write_error: Option<io::Error>,
    pub replies: Vec<Vec<u8>>,
    pub read_error: Option<io::Error>,
}

/// What a round's outcome means for the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verdict {
    /// The connection is still in step with the server.
    pub keep_connection: bool,
    /// Move on to the next endpoint.
    pub next_endpoint: bool,
}

/// The resend policy of one exchange, without I/O: which requests are
/// still pending, what each round sends, and what each outcome means.
pub(crate) struct Exchange<'q> {
    requests: &'q [Request<'q>],
    encoding: Encoding,
    results: Vec<Option<Result<Reply, Error>>>,
    /// Indices of the requests the next round sends, in request order.
    pending: Vec<usize>,
    /// Rounds left: a request is sent at most this many more times.
    sends_left: usize,
    lines: Vec<u8>,
    /// Where each line of the round ends in `lines`.
    ends: Vec<usize>,
    scratch: Vec<u8>,
}

impl<'q> Exchange<'q> {
    pub fn new(requests: &'q [Request<'q>], encoding: Encoding, endpoints: usize) -> Exchange<'q> {
        Exchange {
            requests,
            encoding,
            results: requests.iter().map(|_| None).collect(),
            pending: (0..requests.len()).collect(),
            sends_left: endpoints + 1,
            lines: Vec::new(),
            ends: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Whether every request has its result.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// The next round's lines, how many replies to read, and how long to
    /// wait for each (`timeout`, plus the `Wait` of the requests, which the
    /// server holds back on purpose).
    pub fn round(&mut self, timeout: Duration) -> (&[u8], usize, Duration) {
        self.lines.clear();
        self.ends.clear();
        let mut read_timeout = timeout;
        for &i in &self.pending {
            let request = &self.requests[i];
            request.write_line(self.encoding, &mut self.lines, &mut self.scratch);
            self.ends.push(self.lines.len());
            read_timeout = read_timeout.saturating_add(request.wait.unwrap_or_default());
        }
        (&self.lines, self.pending.len(), read_timeout)
    }

    /// No endpoint accepted a connection: every pending request fails.
    pub fn connect_failed(&mut self, servers: &str, error: &io::Error) {
        for i in std::mem::take(&mut self.pending) {
            self.results[i] = Some(Err(Error::io(
                servers.to_owned(),
                "connect to",
                copy(error),
            )));
        }
    }

    /// Takes in what the round did on `server` and decides, for each
    /// request of it, its result or another round.
    pub fn finish_round(&mut self, server: &str, round: Round) -> Verdict {
        self.sends_left = self.sends_left.saturating_sub(1);
        let sent = std::mem::take(&mut self.pending);
        let mut verdict = Verdict {
            keep_connection: true,
            next_endpoint: false,
        };
        for (&i, line) in sent.iter().zip(&round.replies) {
            let action = self.requests[i].action;
            match Reply::parse(line, self.encoding) {
                Ok(reply) if reply.status == Status::Unavailable => {
                    verdict.next_endpoint = true;
                    if replay_is_safe(action) && self.sends_left > 0 {
                        self.pending.push(i);
                    } else {
                        self.results[i] = Some(Ok(reply));
                    }
                }
                Ok(reply) => self.results[i] = Some(Ok(reply)),
                Err(e) => {
                    // Whatever the server is, it is not in step with us.
                    verdict.keep_connection = false;
                    self.results[i] = Some(Err(e));
                }
            }
        }
        let unanswered = &sent[round.replies.len().min(sent.len())..];
        if !unanswered.is_empty() {
            verdict.keep_connection = false;
            verdict.next_endpoint = true;
            let (during, error) = match (&round.write_error, &round.read_error) {
                (Some(e), _) => ("send to", copy(e)),
                (None, Some(e)) => ("receive from", copy(e)),
                (None, None) => (
                    "receive from",
                    io::Error::new(io::ErrorKind::UnexpectedEof, "no reply"),
                ),
            };
            // A write that failed, or a connection closed, leaves the server
            // having acted on some lines or not; a timeout leaves it free to
            // act still, so nothing after one is sent again.
            let closed = round.write_error.is_some() || is_closed(&error);
            let first = round.replies.len();
            for (k, &i) in unanswered.iter().enumerate() {
                let arrived = self.ends[first + k] <= round.written;
                let resend = !arrived || (closed && replay_is_safe(self.requests[i].action));
                if resend && self.sends_left > 0 {
                    self.pending.push(i);
                } else {
                    self.results[i] = Some(Err(Error::io(server.to_owned(), during, copy(&error))));
                }
            }
            self.pending.sort_unstable();
        }
        verdict
    }

    /// A result for every request, in request order.
    pub fn into_results(self) -> Vec<Result<Reply, Error>> {
        self.results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::protocol("no reply"))))
            .collect()
    }
}

/// An I/O error like `e`, for a second request that failed the same way.
fn copy(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

/// Whether the connection on `fd` is still fit for a request: the server
/// has not closed it, and nothing unread is waiting (`buffered`, or a byte
/// on the socket: either would mean the replies are out of step with the
/// requests).
///
/// This catches the common case, a server that restarted or dropped an
/// idle connection, before anything is sent, when reconnecting is
/// certainly safe.
pub(crate) fn is_usable(fd: RawFd, buffered: bool) -> bool {
    if buffered {
        return false;
    }
    let mut byte = 0u8;
    // SAFETY: `fd` belongs to a stream the caller holds, and `byte` is a
    // valid one-byte buffer for the duration of the call.
    let got = unsafe {
        libc::recv(
            fd,
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    got < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

/// Strips the newline (and a `\r` before it) from a reply line; `false` if
/// it has none (the connection ended in the middle of a line).
pub(crate) fn strip_newline(line: &mut Vec<u8>) -> bool {
    if line.last() != Some(&b'\n') {
        return false;
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    true
}

/// The error for a connection that ended before a whole reply.
pub(crate) fn closed_early() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the server closed the connection before replying",
    )
}

/// A connected socket with a buffered reader over it.
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

    fn fd(&self) -> RawFd {
        self.reader.get_ref().as_raw_fd()
    }

    fn has_buffered(&self) -> bool {
        !self.reader.buffer().is_empty()
    }

    /// Writes `lines`, then reads `count` reply lines, each within
    /// `read_timeout`, stopping at the first failure.
    pub fn exchange(&mut self, lines: &[u8], count: usize, read_timeout: Duration) -> Round {
        let mut round = Round::default();
        let stream = self.reader.get_mut();
        while round.written < lines.len() {
            match stream.write(&lines[round.written..]) {
                Ok(0) => {
                    round.write_error = Some(io::ErrorKind::WriteZero.into());
                    return round;
                }
                Ok(n) => round.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    round.write_error = Some(e);
                    return round;
                }
            }
        }
        if read_timeout != self.read_timeout {
            if let Err(e) = stream.set_read_timeout(Some(read_timeout)) {
                round.read_error = Some(e);
                return round;
            }
            self.read_timeout = read_timeout;
        }
        for _ in 0..count {
            let mut reply = Vec::new();
            match self.reader.read_until(b'\n', &mut reply) {
                Ok(_) if strip_newline(&mut reply) => round.replies.push(reply),
                Ok(_) => {
                    round.read_error = Some(closed_early());
                    break;
                }
                Err(e) => {
                    round.read_error = Some(e);
                    break;
                }
            }
        }
        round
    }
}

/// Whether an I/O error means the peer closed or reset the connection.
pub(crate) fn is_closed(e: &io::Error) -> bool {
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
        assert!(is_usable(conn.fd(), conn.has_buffered()));
        drop(peer);
        // The FIN arrives asynchronously; give it a generous while.
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while is_usable(conn.fd(), conn.has_buffered()) {
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
        let round = conn.exchange(b"{}\n", 1, SECOND);
        server.join().unwrap();
        assert!(round.replies.is_empty(), "{round:?}");
        assert!(is_closed(round.read_error.as_ref().unwrap()), "{round:?}");
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
        Link::new(vec![local(port)], SECOND)
    }

    fn local(port: u16) -> Endpoint {
        Endpoint::new("127.0.0.1".to_owned(), port)
    }

    /// A port that was free a moment ago: nothing listens there.
    fn dead_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
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
        let mut link = Link::new(vec![local(port)], Duration::from_millis(100));
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

    const UNAVAILABLE: &str = r#"{"Status":"Unavailable"}"#;

    #[test]
    fn a_dead_endpoint_is_skipped_and_unavailable_moves_on() {
        // The first endpoint refuses connections, the second answers
        // Unavailable, the third answers: a Version gets there.
        let (busy, busy_server) = scripted_server(vec![Some(UNAVAILABLE)]);
        let (good, good_server) = scripted_server(vec![Some(VERSION_REPLY)]);
        let mut link = Link::new(vec![local(dead_port()), local(busy), local(good)], SECOND);
        let reply = link.round_trip(&VERSION, Encoding::Plain).unwrap();
        assert_eq!(reply.status, Status::Version);
        assert_eq!(
            link.server(),
            format!("127.0.0.1:{good}"),
            "stays on the one that answered"
        );
        assert_eq!(busy_server.join().unwrap().len(), 1);
        assert_eq!(good_server.join().unwrap().len(), 1);
    }

    #[test]
    fn unavailable_to_unlock_or_erase_is_the_answer() {
        for action in [Action::Unlock, Action::Erase] {
            let (busy, busy_server) = scripted_server(vec![Some(UNAVAILABLE)]);
            // The second endpoint is never asked: nothing listens there.
            let mut link = Link::new(vec![local(busy), local(dead_port())], SECOND);
            let reply = link
                .round_trip(&Request::new(action, "me", "x"), Encoding::Plain)
                .unwrap();
            assert_eq!(reply.status, Status::Unavailable, "{action:?}");
            assert_eq!(busy_server.join().unwrap().len(), 1);
        }
    }

    #[test]
    fn with_every_endpoint_down_the_error_names_them_all() {
        let (a, b) = (dead_port(), dead_port());
        let mut link = Link::new(vec![local(a), local(b)], SECOND);
        let err = link.round_trip(&VERSION, Encoding::Plain).unwrap_err();
        let expected = format!("connect to 127.0.0.1:{a}, 127.0.0.1:{b}:");
        assert!(err.to_string().starts_with(&expected), "{err}");
    }

    /// The policy alone: a round whose connection closed after the first of
    /// three replies sends the safe unanswered requests again, and gives
    /// the Unlock among them its error.
    #[test]
    fn a_closed_pipeline_resends_only_what_is_safe() {
        let requests = [
            Request::new(Action::Lock, "me", "a"),
            Request::new(Action::Unlock, "me", "b"),
            Request::new(Action::Get, "me", "c"),
        ];
        let mut exchange = Exchange::new(&requests, Encoding::Plain, 1);
        let (lines, count, _) = exchange.round(SECOND);
        let written = lines.len();
        assert_eq!(count, 3);
        let verdict = exchange.finish_round(
            "here",
            Round {
                written,
                replies: vec![br#"{"Status":"Locked","ID":"me"}"#.to_vec()],
                read_error: Some(closed_early()),
                ..Round::default()
            },
        );
        assert!(!verdict.keep_connection);
        let (lines, count, _) = exchange.round(SECOND);
        assert_eq!(count, 1, "only the Get goes again");
        assert!(String::from_utf8_lossy(lines).contains("\"Get\""));
        let written = lines.len();
        exchange.finish_round(
            "here",
            Round {
                written,
                replies: vec![br#"{"Status":"NotFound"}"#.to_vec()],
                ..Round::default()
            },
        );
        assert!(exchange.is_done());
        let results = exchange.into_results();
        assert_eq!(results[0].as_ref().unwrap().status, Status::Locked);
        assert!(results[1].as_ref().unwrap_err().is_io());
        assert_eq!(results[2].as_ref().unwrap().status, Status::NotFound);
    }

    /// A line that was not written in full never reached the server: it
    /// goes again even for Unlock; the whole lines before it are judged as
    /// arrived.
    #[test]
    fn a_line_cut_by_a_failed_write_is_sent_again() {
        let requests = [
            Request::new(Action::Erase, "me", "a"),
            Request::new(Action::Unlock, "me", "b"),
        ];
        let mut exchange = Exchange::new(&requests, Encoding::Plain, 1);
        let (lines, _, _) = exchange.round(SECOND);
        let first_line = lines.iter().position(|&b| b == b'\n').unwrap() + 1;
        exchange.finish_round(
            "here",
            Round {
                written: first_line + 3,
                write_error: Some(io::ErrorKind::BrokenPipe.into()),
                ..Round::default()
            },
        );
        let (lines, count, _) = exchange.round(SECOND);
        assert_eq!(count, 1);
        assert!(String::from_utf8_lossy(lines).contains("\"Unlock\""));
    }
}
