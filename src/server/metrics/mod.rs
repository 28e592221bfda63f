//! The metrics port (`--metrics ADDR`): a second listener in the reactor's
//! own `Poll`, answering `GET /metrics` (the Prometheus text format),
//! `GET /livez` and `GET /readyz` over HTTP/1.x, one request per
//! connection.
//!
//! It lives beside the lock port, not on it: its tokens start at
//! [`LISTENER`], far above the lock port's, its connections are in their
//! own small slab, and the reactor calls in only on those tokens, at its
//! partial-line sweep (for the timeout) and once per turn to time the
//! turn's requests. With `--metrics` unset none of it exists.
//!
//! Bounds, each a named setting: `--metrics-max-connections` (more are
//! closed at once), `--metrics-max-request` (a request head that does not
//! fit is answered 400 and closed), `--metrics-timeout` (from accept to the
//! last byte of the answer; a slow client is closed when it passes). A
//! connection gets one answer, then is closed, so nothing a client sends
//! can make the server keep more than those bounds. Accepts per turn are
//! bounded too, so a connection flood cannot starve the lock port.
//!
//! What it shows comes from a [`View`] the reactor builds from its state;
//! never a name, an ID or a value (labels are fixed words: a status code,
//! the version).

mod exposition;
mod http;
mod render;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::stats::Counters;
use crate::time::{Millis, Moment};
use http::Parsed;

/// The metrics listener's token; its connections' tokens follow it. Far
/// above any lock-port token (those are a few plus a slab key).
pub const LISTENER: Token = Token(1 << (usize::BITS - 2));
/// Connection `key` of the metrics slab has token `FIRST_CONN + key`.
const FIRST_CONN: usize = LISTENER.0 + 1;
/// Most connections accepted per call, so a flood of connections yields
/// to the lock port between batches.
const ACCEPT_BATCH: usize = 64;
/// How long to stop accepting after an error such as EMFILE.
const ACCEPT_PAUSE: Millis = Millis::new(1000);

/// Whether `token` is the metrics port's (its listener or a connection).
pub fn owns(token: Token) -> bool {
    token.0 >= LISTENER.0
}

/// The metrics port's bounds, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest request head in bytes.
    pub max_request: usize,
    /// Longest a connection may stay open, from accept.
    pub timeout: Millis,
}

/// What the reactor shows of itself, built when a request arrives.
#[derive(Debug)]
pub struct View<'a> {
    /// Every PROTOCOL.md counter.
    pub counters: &'a Counters,
    /// Locks alive.
    pub locks: usize,
    /// Data items alive.
    pub items: usize,
    /// Requests waiting in lock queues.
    pub waiters: usize,
    /// Lock-port connections open.
    pub connections: usize,
    /// `--max-connections`.
    pub max_connections: usize,
    /// Bytes the memory guard counts as held.
    pub bytes_held: u64,
    /// The memory guard's cap (`--max-memory`).
    pub max_bytes: u64,
    /// The lock port is listening (false once shutdown began).
    pub listening: bool,
    /// A cluster's state; `None` for a single server (all there is today).
    pub cluster: Option<ClusterView>,
}

/// The place for a cluster member's state, for when the server replicates:
/// the reactor fills it in [`View::cluster`], `/metrics` shows it as
/// `jackrabbit_dlm_cluster_*` gauges and `/readyz` waits for a known leader.
/// No member's name or address is ever a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterView {
    /// This member's role now.
    pub role: Role,
    /// The current term.
    pub term: u64,
    /// Whether a leader is known (this member or another).
    pub leader_known: bool,
    /// The highest log index known committed.
    pub commit_index: u64,
    /// The highest log index applied to the store.
    pub applied_index: u64,
}

/// A cluster member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
}

impl Role {
    const ALL: [Role; 3] = [Role::Leader, Role::Follower, Role::Candidate];

    fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
        }
    }
}

/// One HTTP connection of the metrics port.
struct HttpConn {
    stream: TcpStream,
    /// The request head as received, `filled` bytes of it.
    input: Box<[u8]>,
    filled: usize,
    /// The whole answer, once there is one, and how much of it went out.
    output: Vec<u8>,
    sent: usize,
    accepted: Moment,
}

/// The metrics port's own counters.
#[derive(Debug, Default)]
struct PortCounters {
    /// Answers by status code: 200, 400, 404, 405, 503.
    answers: [u64; 5],
    refused: u64,
    timed_out: u64,
}

const CODES: [u16; 5] = [200, 400, 404, 405, 503];

/// Upper bounds of the latency buckets, in nanoseconds (5 µs to 1 s).
const BOUNDS_NS: [u64; 17] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// The request-latency histogram: each turn's duration, from the
/// reactor's wake-up to the end of writing the turn's replies, counted
/// once for each request answered in it (an upper bound on each of those
/// requests' time in the server). Two monotonic clock reads per turn (the
/// vDSO, no system call); nothing per request.
#[derive(Debug, Default)]
struct Latency {
    counts: [u64; BOUNDS_NS.len() + 1],
    sum_ns: u128,
}

impl Latency {
    fn observe(&mut self, turn: Duration, requests: u64) {
        let ns = u64::try_from(turn.as_nanos()).unwrap_or(u64::MAX);
        // The first bucket whose bound is at least `ns` (past the last: +Inf).
        let bucket = BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.counts[bucket] = self.counts[bucket].saturating_add(requests);
        self.sum_ns = self
            .sum_ns
            .saturating_add(u128::from(ns) * u128::from(requests));
    }
}

/// What the metrics port shows of itself.
struct Own<'a> {
    latency: &'a Latency,
    port: &'a PortCounters,
    started: f64,
    connections: usize,
}

/// The index of `code` in [`CODES`] (400 for any other).
fn code_index(code: u16) -> usize {
    CODES.iter().position(|&c| c == code).unwrap_or(1)
}

/// The metrics listener and its connections.
pub struct Metrics {
    listener: TcpListener,
    local_addr: SocketAddr,
    conns: Slab<HttpConn>,
    limits: Limits,
    latency: Latency,
    port: PortCounters,
    /// The last accept stopped at [`ACCEPT_BATCH`]: more may be queued.
    accept_more: bool,
    accept_paused_until: Option<Moment>,
    /// Seconds since the Unix epoch when the server started.
    started: f64,
}

impl Metrics {
    /// Binds `addr` and registers it in `registry`.
    pub fn bind(addr: SocketAddr, limits: Limits, registry: &Registry) -> io::Result<Metrics> {
        let mut listener = TcpListener::bind(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen for metrics on {addr}: {e}"),
            )
        })?;
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Metrics {
            local_addr: listener.local_addr()?,
            listener,
            conns: Slab::new(),
            limits,
            latency: Latency::default(),
            port: PortCounters::default(),
            accept_more: false,
            accept_paused_until: None,
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        })
    }

    /// The address the metrics port listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Handles an event on one of the metrics port's tokens.
    pub fn on_event(&mut self, event: &Event, now: Moment, view: &View<'_>, registry: &Registry) {
        if event.token() == LISTENER {
            self.accept(now, registry);
        } else {
            self.serve(event.token().0 - FIRST_CONN, view);
        }
    }

    /// Whether connections may still wait to be accepted (the reactor then
    /// polls without sleeping and calls [`Metrics::accept_backlog`]).
    pub fn has_backlog(&self) -> bool {
        self.accept_more
    }

    /// Accepts the next batch of queued connections.
    pub fn accept_backlog(&mut self, now: Moment, registry: &Registry) {
        if self.accept_more {
            self.accept(now, registry);
        }
    }

    /// Closes connections past `--metrics-timeout`; resumes accepting after
    /// a pause. Called at the reactor's sweep, once a second.
    pub fn sweep(&mut self, now: Moment, registry: &Registry) {
        let timeout = self.limits.timeout;
        let before = self.conns.len();
        self.conns
            .retain(|_, conn| now.since(conn.accepted) < timeout);
        self.port.timed_out += u64::try_from(before - self.conns.len()).unwrap_or(u64::MAX);
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            self.accept(now, registry);
        }
    }

    /// Records one turn of the reactor that answered `requests` requests.
    pub fn observe_turn(&mut self, turn: Duration, requests: u64) {
        if requests > 0 {
            self.latency.observe(turn, requests);
        }
    }

    fn accept(&mut self, now: Moment, registry: &Registry) {
        self.accept_more = false;
        if self.accept_paused_until.is_some() {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.conns.len() >= self.limits.max_connections {
                        self.port.refused += 1;
                        continue;
                    }
                    let entry = self.conns.vacant_entry();
                    let token = Token(FIRST_CONN + entry.key());
                    if let Err(e) = registry.register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register a metrics connection: {e}");
                        continue;
                    }
                    entry.insert(HttpConn {
                        stream,
                        input: vec![0; self.limits.max_request].into_boxed_slice(),
                        filled: 0,
                        output: Vec::new(),
                        sent: 0,
                        accepted: now,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    log::warn!("metrics accept failed, pausing {ACCEPT_PAUSE}: {e}");
                    self.accept_paused_until = Some(now.after(ACCEPT_PAUSE));
                    return;
                }
            }
        }
        self.accept_more = true;
    }

    /// Reads connection `key`'s request until it is whole, answers it, and
    /// writes the answer; closes the connection when it is written, broken
    /// or done.
    fn serve(&mut self, key: usize, view: &View<'_>) {
        let open_conns = self.conns.len();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut open = true;
        while conn.output.is_empty() {
            if conn.filled == conn.input.len() {
                conn.output = http::error_response(Parsed::Bad);
                self.port.answers[code_index(400)] += 1;
                break;
            }
            match conn.stream.read(&mut conn.input[conn.filled..]) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(n) => {
                    let new = &conn.input[conn.filled..conn.filled + n];
                    let line_ended = new.contains(&b'\n');
                    conn.filled += n;
                    if !line_ended {
                        continue;
                    }
                    let parsed = http::parse(&conn.input[..conn.filled]);
                    if parsed != Parsed::Partial {
                        let own = Own {
                            latency: &self.latency,
                            port: &self.port,
                            started: self.started,
                            connections: open_conns,
                        };
                        let (code, output) = render::answer(parsed, view, &own);
                        conn.output = output;
                        self.port.answers[code_index(code)] += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    open = false;
                    break;
                }
            }
        }
        while open && conn.sent < conn.output.len() {
            match conn.stream.write(&conn.output[conn.sent..]) {
                Ok(0) => open = false,
                Ok(n) => conn.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => open = false,
            }
        }
        if !open || (!conn.output.is_empty() && conn.sent == conn.output.len()) {
            // Written (or broken): one answer per connection.
            self.conns.remove(key);
        }
    }
}
