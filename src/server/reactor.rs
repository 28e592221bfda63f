//! The event loop: one `mio::Poll`, every connection in a `Slab`.
//!
//! Each turn: wait for readiness (the timeout is the nearest of the timer
//! wheel's next deadline, the next statistics line, the next partial-line
//! sweep), accept, read, answer and write for each ready connection, then
//! expire TTLs, compact if enough was freed, and write the statistics line
//! when it is due.
//!
//! System calls are what a request costs here, so the loop avoids the ones it
//! can: sockets are registered once for both directions (edge-triggered, so
//! a writable socket does not wake the loop again and again); a read that
//! returns less than the buffer's room means the socket is drained (Linux's
//! edge-triggered epoll reports the next arrival), so no extra read to see
//! `WouldBlock`; replies are written once after a batch of requests.
//!
//! Bounds: `--max-connections` (excess closed at once, counted `Refused`),
//! `--max-output` unsent bytes per connection (past it the connection is not
//! read until its client drains it), `--batch` requests per connection per
//! turn (the rest wait for the next turn, so one pipelining client cannot
//! starve the others), `--partial-timeout`, and the line limit.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use super::connection::{Connection, Engine, Served};
use super::log::StatsLog;
use crate::config::Config;
use crate::stats::format_pairs;
use crate::store::{Store, StoreConfig};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
/// Connection `key` in the slab has token `FIRST_PEER + key`.
const FIRST_PEER: usize = 2;
/// Most expired entries removed per turn, so a mass expiry cannot stall the loop.
const EXPIRE_BATCH: usize = 4096;
/// How long to stop accepting after an error such as EMFILE.
const ACCEPT_PAUSE_MS: u64 = 100;
/// How long replies may still be flushed after SIGINT/SIGTERM.
const SHUTDOWN_GRACE_MS: u64 = 1000;

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The port is taken.
    PortInUse(u16),
    /// Anything else, with a message that says what.
    Other(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::PortInUse(port) => write!(f, "Another program is using this port: {port}"),
            StartError::Other(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Other(e)
    }
}

/// A connection and its socket's readiness as last seen.
struct Peer {
    stream: TcpStream,
    conn: Connection,
    /// The socket may have unread bytes.
    readable: bool,
    /// The client closed its side: answer what is left, then close.
    eof: bool,
    /// The poller reported the client's FIN: read on past a short read,
    /// since no further readiness event will come.
    hangup_seen: bool,
    /// Not read until its unsent replies drain below `--max-output`.
    output_full: bool,
    /// Listed in `Server::unflushed`: replies wait for the end of the turn.
    flush_queued: bool,
}

/// What `drive` decided about a connection.
enum Fate {
    Keep,
    Close,
}

/// Limits read from the configuration, in the units the loop uses.
struct Limits {
    max_output: usize,
    max_connections: usize,
    partial_timeout_ms: u64,
    stats_interval_ms: u64,
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Signals,
    peers: Slab<Peer>,
    engine: Engine,
    limits: Limits,
    clock: Instant,
    log: StatsLog,
    /// Connections with work left over from the previous turn.
    backlog: Vec<usize>,
    /// Connections with replies written this turn, sent at its end.
    unflushed: Vec<usize>,
    accept_paused_until: Option<u64>,
    shutdown_at: Option<u64>,
}

impl Server {
    /// Opens the log, binds the listening socket and sets up signals. Writes
    /// the start-up line to the log.
    pub fn bind(config: &Config) -> Result<Server, StartError> {
        let mut log = StatsLog::open(&config.log_dir)?;
        let addr = config.listen_addr()?;
        let mut listener = match TcpListener::bind(addr) {
            Ok(listener) => listener,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let err = StartError::PortInUse(addr.port());
                log.line(&err.to_string());
                return Err(err);
            }
            Err(e) => {
                return Err(StartError::Other(io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr}: {e}"),
                )));
            }
        };
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;

        let clock = Instant::now();
        let first_token = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        let store = Store::new(
            StoreConfig {
                max_bytes: config.max_memory,
                compact_after: config.compact_threshold(),
                first_token,
                max_waiters_per_lock: config.max_waiters,
                max_waiters: config.max_waiters_total as usize,
            },
            0,
        );
        let engine = Engine::new(
            store,
            config.max_ttl.saturating_mul(1000),
            config.batch as usize,
            config.max_line as usize,
        );
        log.line(&format!("{} listening on {local_addr}", banner()));
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            signals,
            peers: Slab::new(),
            engine,
            limits: Limits {
                max_output: config.max_output as usize,
                max_connections: config.max_connections as usize,
                partial_timeout_ms: config.partial_timeout.saturating_mul(1000),
                stats_interval_ms: config.stats_interval.saturating_mul(1000),
            },
            clock,
            log,
            backlog: Vec::new(),
            unflushed: Vec::new(),
            accept_paused_until: None,
            shutdown_at: None,
        })
    }

    /// The address the server listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Milliseconds since start on the monotonic clock.
    fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Serves until SIGINT or SIGTERM, then flushes pending replies for at
    /// most a second and writes the shutdown line.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_stats = self.now() + self.limits.stats_interval_ms;
        let mut next_sweep = self.now() + 1000;
        let mut expiry_behind = false;
        loop {
            let now = self.now();
            let mut wake = next_stats.min(next_sweep);
            if let Some(t) = self.engine.store.next_deadline() {
                wake = wake.min(t);
            }
            if let Some(t) = self.accept_paused_until {
                wake = wake.min(t);
            }
            if let Some(t) = self.shutdown_at {
                wake = wake.min(t);
            }
            let timeout = if !self.backlog.is_empty() || expiry_behind {
                Duration::ZERO
            } else {
                Duration::from_millis(wake.saturating_sub(now))
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }

            let now = self.now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    SIGNALS => {
                        if self.signals.pending().next().is_some() {
                            self.begin_shutdown(now);
                        }
                    }
                    Token(t) => {
                        let key = t - FIRST_PEER;
                        if let Some(peer) = self.peers.get_mut(key) {
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                peer.readable = true;
                            }
                            if event.is_read_closed() || event.is_error() {
                                peer.hangup_seen = true;
                            }
                            self.drive(key, now);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.backlog) {
                if self.peers.contains(key) {
                    self.drive(key, now);
                }
            }

            self.deliver_completions(now);
            expiry_behind = self.engine.store.expire(now, EXPIRE_BATCH);
            self.deliver_completions(now);
            self.flush_turn();
            if self.engine.store.maybe_compact() {
                self.engine.shrink();
            }
            if now >= next_stats {
                self.log.interval(&self.engine.store.counters);
                next_stats = now + self.limits.stats_interval_ms;
            }
            if now >= next_sweep {
                self.close_stalled(now);
                next_sweep = now + 1000;
            }
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                self.accept(now);
            }
            if let Some(deadline) = self.shutdown_at {
                let flushed = self.peers.iter().all(|(_, p)| p.conn.unsent().is_empty());
                if flushed || now >= deadline {
                    break;
                }
            }
        }
        let totals = format_pairs(&self.engine.store.counters);
        self.log.line(&format!("{} stopped. {totals}", banner()));
        Ok(())
    }

    fn begin_shutdown(&mut self, now: u64) {
        if self.shutdown_at.is_none() {
            log::info!("shutting down");
            self.shutdown_at = Some(now + SHUTDOWN_GRACE_MS);
            self.listener = None;
        }
    }

    /// Accepts every pending connection.
    fn accept(&mut self, now: u64) {
        if self.accept_paused_until.is_some() {
            return;
        }
        let Some(listener) = self.listener.as_ref() else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    if self.peers.len() >= self.limits.max_connections {
                        self.engine.store.counters.refused += 1;
                        drop(stream);
                        continue;
                    }
                    // Replies are small and written once per batch: send at once.
                    let _ = stream.set_nodelay(true);
                    let entry = self.peers.vacant_entry();
                    let key = entry.key();
                    let token = Token(FIRST_PEER + key);
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register a connection: {e}");
                        continue;
                    }
                    entry.insert(Peer {
                        stream,
                        conn: Connection::new(self.engine.max_line(), key),
                        readable: true,
                        eof: false,
                        hangup_seen: false,
                        output_full: false,
                        flush_queued: false,
                    });
                    self.engine.store.counters.connections += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS...: the connection stays queued
                    // in the kernel; retry shortly instead of spinning.
                    log::warn!("accept failed, pausing {ACCEPT_PAUSE_MS} ms: {e}");
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE_MS);
                    break;
                }
            }
        }
    }

    /// Serves connection `key`: flush, answer buffered lines, read more, and
    /// so on until the socket is drained, the budget is spent, or the client
    /// must read first. Closes it when it is finished or broken.
    fn drive(&mut self, key: usize, now: u64) {
        let fate = self.serve_peer(key, now);
        if let Fate::Close = fate {
            self.close(key);
        }
    }

    /// Closes connection `key`, withdrawing its requests from lock queues.
    fn close(&mut self, key: usize) {
        if let Some(mut peer) = self.peers.try_remove(key) {
            peer.conn.withdraw_waits(&mut self.engine);
        }
    }

    /// Delivers the replies of parked requests that were granted or timed
    /// out, and writes them at once. Serving a connection can complete more
    /// waits (an `Unlock` hands the lock over), so this runs until quiet.
    fn deliver_completions(&mut self, now: u64) {
        let mut done = Vec::new();
        loop {
            self.engine.completions(&mut done);
            if done.is_empty() {
                return;
            }
            for (key, completion) in done.drain(..) {
                if let Some(peer) = self.peers.get_mut(key) {
                    peer.conn.complete(&mut self.engine, completion);
                    self.drive(key, now);
                }
            }
        }
    }

    fn serve_peer(&mut self, key: usize, now: u64) -> Fate {
        let shutting_down = self.shutdown_at.is_some();
        let max_output = self.limits.max_output;
        let Some(peer) = self.peers.get_mut(key) else {
            return Fate::Keep;
        };
        if flush(peer).is_err() {
            return Fate::Close;
        }
        if peer.output_full {
            if peer.conn.pending_output() >= max_output {
                return Fate::Keep;
            }
            peer.output_full = false;
        }
        if shutting_down {
            return if peer.conn.unsent().is_empty() && peer.eof && !peer.conn.is_waiting() {
                Fate::Close
            } else {
                Fate::Keep
            };
        }
        loop {
            match peer.conn.serve(&mut self.engine, now, max_output) {
                Served::AllLines => {}
                Served::Budget => {
                    self.backlog.push(key);
                    break;
                }
                Served::OutputFull => {
                    if flush(peer).is_err() {
                        return Fate::Close;
                    }
                    if peer.conn.pending_output() >= max_output {
                        peer.output_full = true;
                        break;
                    }
                    continue;
                }
                Served::Overrun => {
                    log::debug!("line over the limit: closing connection {key}");
                    // Replies to the lines before it still go out if they can.
                    let _ = flush(peer);
                    return Fate::Close;
                }
            }
            if peer.eof {
                peer.conn.finish(&mut self.engine, now);
                // A client that closed its side cannot be granted a lock it
                // would never hear of: its waits leave their queues and are
                // answered NotOwner, so replies behind them still go out.
                peer.conn.withdraw_waits(&mut self.engine);
                break;
            }
            if !peer.readable {
                break;
            }
            let buf = peer.conn.read_buffer();
            let room = buf.len();
            match peer.stream.read(buf) {
                Ok(0) => {
                    peer.eof = true;
                    peer.readable = false;
                }
                Ok(n) => {
                    peer.conn.received(n);
                    if n < room && !peer.hangup_seen {
                        peer.readable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => peer.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Fate::Close,
            }
        }
        if !peer.conn.unsent().is_empty() {
            // Sent at the end of the turn, with every other connection's
            // replies: see `flush_turn`.
            if !peer.flush_queued {
                peer.flush_queued = true;
                self.unflushed.push(key);
            }
            return Fate::Keep;
        }
        if finished(peer) {
            return Fate::Close;
        }
        Fate::Keep
    }

    /// Sends the replies written this turn, connection by connection, and
    /// closes the connections that are done.
    ///
    /// Replies are not sent the moment a connection's lines are answered
    /// but once every ready connection has been served: a client waiting on
    /// several connections (a pipelining load generator, a pool) can then
    /// be woken once for a burst of replies rather than once per
    /// connection, and a wake-up across vCPUs is dear on the machines we
    /// measure on (BENCHMARKS.md: about 5% less CPU per request, persistent
    /// mode). A connection's replies wait at most one turn, which the
    /// per-turn line budget bounds.
    fn flush_turn(&mut self) {
        let mut keys = std::mem::take(&mut self.unflushed);
        for &key in &keys {
            let Some(peer) = self.peers.get_mut(key) else {
                continue;
            };
            peer.flush_queued = false;
            if flush(peer).is_err() || finished(peer) {
                self.close(key);
            }
        }
        keys.clear();
        self.unflushed = keys;
    }

    /// Closes connections whose unfinished line is older than
    /// `--partial-timeout`.
    fn close_stalled(&mut self, now: u64) {
        let limit = self.limits.partial_timeout_ms;
        let stalled: Vec<usize> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                // Not while backpressure keeps the server from reading it:
                // then what waits in its buffer is the server's doing.
                !p.output_full
                    && p.conn
                        .partial_since()
                        .is_some_and(|t| now.saturating_sub(t) >= limit)
            })
            .map(|(key, _)| key)
            .collect();
        for key in stalled {
            log::debug!("partial line timed out: closing connection {key}");
            self.close(key);
        }
        if self.peers.is_empty() && self.peers.capacity() > 1024 {
            self.peers.shrink_to_fit();
        }
    }
}

/// Whether a connection whose client closed its side has nothing left to
/// do: every reply sent, no input left, no request waiting for a lock.
fn finished(peer: &Peer) -> bool {
    peer.eof && peer.conn.unsent().is_empty() && !peer.conn.has_input() && !peer.conn.is_waiting()
}

/// Writes unsent replies until done or the socket would block.
fn flush(peer: &mut Peer) -> io::Result<()> {
    while !peer.conn.unsent().is_empty() {
        match peer.stream.write(peer.conn.unsent()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => peer.conn.sent(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `Jackrabbit DLM <version>`.
pub fn banner() -> String {
    format!("Jackrabbit DLM {}", env!("CARGO_PKG_VERSION"))
}
