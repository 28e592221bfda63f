//! The event loop: one `mio::Poll`, every connection in a `Slab`.
//!
//! (One file of about 600 lines on purpose: the turn below and the serving
//! of one connection read top to bottom in the order they run.)
//!
//! Each turn, in this order:
//! 1. wait for readiness (the timeout is the nearest of the timer wheel's
//!    next deadline, the next statistics line and the next partial-line
//!    sweep; zero when work was left over);
//! 2. accept; for each ready connection (then each left over from the last
//!    turn) read and answer its complete lines through the session, up to
//!    `--batch` lines;
//! 3. expire what the wheel says is due;
//! 4. deliver the completions of parked waits (from step 2's unlocks and
//!    step 3's expiries), once;
//! 5. write each connection that has replies, once (`flush_turn`). The
//!    other writes: in step 2 a connection whose unsent replies reach
//!    `--max-output` is written at once to make room, and one whose socket
//!    reports it writable again gets what an earlier turn could not send;
//! 6. compact, write the statistics line, sweep stalled partial lines, when
//!    they are due.
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
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use super::audit::Audit;
use super::clock::Clock;
use super::cluster::Cluster;
use super::identity_dir::IdentityDir;
use super::metrics::{self, Metrics};
pub use super::start::{Control, RunMode, StartError};
use super::stats_log::StatsLog;
use super::system;
use super::systemd;
use crate::config::Config;
use crate::session::auth;
use crate::session::{Connection, Deliveries, Delivery, Served, Session};
use crate::stats::format_pairs;
use crate::store::{Store, StoreConfig};
use crate::time::{Millis, Moment};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
/// The [`Control`] handle (and a manual clock) wake the loop through this.
const WAKER: Token = Token(2);
/// Connection `key` in the slab has token `FIRST_PEER + key`.
const FIRST_PEER: usize = 3;
/// Most expired entries removed per turn, so a mass expiry cannot stall the loop.
const EXPIRE_BATCH: usize = 4096;
/// How long to stop accepting after an error such as EMFILE.
const ACCEPT_PAUSE: Millis = Millis::new(100);
/// How long replies may still be flushed after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Millis = Millis::new(1000);
/// Time between two sweeps for stalled partial lines.
const SWEEP_EVERY: Millis = Millis::new(1000);
/// The span the `Idle` counter counts: one for each of these in which no
/// request arrived (PROTOCOL.md, Counters).
const IDLE_SPAN: Millis = Millis::new(30_000);

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
    /// The client's address, for `--audit`.
    addr: IpAddr,
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
    partial_timeout: Millis,
    stats_interval: Millis,
}

/// When the periodic work is next due: set at bind, from the clock's time
/// then, so a test that moves its clock before `run` starts loses nothing.
#[derive(Debug, Clone, Copy)]
struct Housekeeping {
    next_stats: Moment,
    next_sweep: Moment,
    next_idle_check: Moment,
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Option<Signals>,
    control: Control,
    peers: Slab<Peer>,
    session: Session,
    limits: Limits,
    clock: Clock,
    log: StatsLog,
    /// Connections with work left over from the previous turn.
    backlog: Vec<usize>,
    /// Connections with replies written this turn, sent at its end.
    unflushed: Vec<usize>,
    accept_paused_until: Option<Moment>,
    shutdown_at: Option<Moment>,
    housekeeping: Housekeeping,
    /// `--close-after-reply`.
    close_after_reply: bool,
    /// `--pid-file`, written at bind and removed on a clean exit.
    pid_file: Option<std::path::PathBuf>,
    /// `--identity-dir`, watched for changes.
    identity_dir: Option<IdentityDir>,
    /// The metrics port (`--metrics`), if asked for.
    metrics: Option<Metrics>,
    /// The machine's physical memory, for `MemoryMax` (`None`: unknown, no
    /// samples).
    physical_memory: Option<u64>,
    /// `--audit`: the interval's refusals by client address.
    audit: Option<Audit>,
    /// With `--peers` or `--data-dir`: the Raft node and the members.
    cluster: Option<Cluster>,
}

impl Server {
    /// Opens the log, binds the listening socket and sets up signals, for
    /// the binary. Writes the start-up line to the log.
    pub fn bind(config: &Config) -> Result<Server, StartError> {
        Server::bind_with(config, RunMode::process(config))
    }

    /// As [`Server::bind`], run as `mode` says.
    pub fn bind_with(config: &Config, mode: RunMode) -> Result<Server, StartError> {
        let mut log = StatsLog::open(&config.log_dir, config.log_utc)?;
        let addr = system::listen_addr(&config.host, config.port)?;
        let mut listener = match systemd::adopt_listener()? {
            Some(listener) => listener,
            None => bind_listener(addr, config.backlog, &mut log)?,
        };
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let metrics = metrics_port(config, poll.registry())?;
        let signals = if mode.signals {
            let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
            poll.registry()
                .register(&mut signals, SIGNALS, Interest::READABLE)?;
            Some(signals)
        } else {
            None
        };
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        if let Clock::Manual(clock) = &mode.clock {
            clock.attach(Arc::clone(&waker));
        }
        let cluster_waker = Arc::clone(&waker);
        let control = Control::new(waker);

        // Replicated, the store runs on cluster time from 0 and its tokens
        // start where the log says (each leader's Lead entry raises them
        // past its wall clock), identically on every node.
        let replicated = config.peers.is_some() || config.data_dir.is_some();
        let store = Store::new(
            StoreConfig {
                max_bytes: config.max_memory.unwrap_or_else(system::default_max_memory),
                compact_after: config.compact_threshold(),
                first_token: if replicated {
                    crate::protocol::FencingToken::new(1)
                } else {
                    system::first_token()
                },
                max_waiters_per_lock: config.max_waiters_per_lock,
                max_waiters_total: usize::try_from(config.max_waiters_total).unwrap_or(usize::MAX),
                max_holders: config.max_holders,
            },
            if replicated {
                Moment::from_ms(0)
            } else {
                mode.clock.now()
            },
        );
        let mut session = Session::new(
            store,
            Millis::from_secs(config.max_ttl),
            usize::try_from(config.batch).unwrap_or(usize::MAX),
            usize::try_from(config.max_line).unwrap_or(usize::MAX),
        );
        let identity_dir = match &config.identity_dir {
            Some(dir) => {
                let max = usize::try_from(config.max_identities).unwrap_or(usize::MAX);
                let (watched, identities) = IdentityDir::open(dir, max)?;
                session.authenticate(auth::Policy {
                    identities,
                    anonymous_max_ttl: Millis::from_secs(config.anonymous_max_ttl),
                    anonymous_max_value: config.anonymous_max_value,
                });
                Some(watched)
            }
            None => None,
        };
        let cluster = Cluster::start(
            config,
            &mut session,
            mode.clock.now(),
            poll.registry(),
            &cluster_waker,
        )?;
        if let Some(path) = &config.pid_file {
            system::write_pid_file(path)?;
        }
        let bound_at = mode.clock.now();
        let housekeeping = Housekeeping {
            next_stats: bound_at.after(Millis::from_secs(config.stats_interval)),
            next_sweep: bound_at.after(SWEEP_EVERY),
            next_idle_check: bound_at.after(IDLE_SPAN),
        };
        log.line(&format!("{} listening on {local_addr}", banner()));
        if let Some(addr) = cluster.as_ref().and_then(Cluster::members_addr) {
            log.line(&format!("replicating on {addr}"));
        }
        let mut server = Server {
            poll,
            listener: Some(listener),
            local_addr,
            signals,
            control,
            peers: Slab::new(),
            session,
            limits: Limits {
                max_output: usize::try_from(config.max_output).unwrap_or(usize::MAX),
                max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
                partial_timeout: Millis::from_secs(config.partial_timeout),
                stats_interval: Millis::from_secs(config.stats_interval),
            },
            clock: mode.clock,
            log,
            backlog: Vec::new(),
            unflushed: Vec::new(),
            accept_paused_until: None,
            shutdown_at: None,
            housekeeping,
            close_after_reply: config.close_after_reply,
            pid_file: config.pid_file.clone(),
            identity_dir,
            metrics,
            physical_memory: system::physical_memory(),
            audit: config.audit.then(|| {
                Audit::new(usize::try_from(config.audit_max_addresses).unwrap_or(usize::MAX))
            }),
            cluster,
        };
        server.sample_memory();
        Ok(server)
    }

    /// The replication address, for a cluster member.
    pub fn members_addr(&self) -> Option<SocketAddr> {
        self.cluster.as_ref().and_then(Cluster::members_addr)
    }

    /// The metrics port's address, when `--metrics` asked for one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(Metrics::local_addr)
    }

    /// A handle that stops this server from another thread.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// The address the server listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn now(&self) -> Moment {
        self.clock.now()
    }

    /// Serves until SIGINT or SIGTERM, then flushes pending replies for at
    /// most a second and writes the shutdown line.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let Housekeeping {
            mut next_stats,
            mut next_sweep,
            mut next_idle_check,
        } = self.housekeeping;
        let mut requests_at_idle_check = 0;
        let mut expiry_behind = false;
        loop {
            let now = self.now();
            // Replicated, the store's deadlines are in cluster time: the
            // cluster says when its work is due, in local time.
            let store_wake = match &self.cluster {
                Some(cluster) => cluster.next_wake(&self.session),
                None => self.session.store.next_deadline(),
            };
            let wake = [
                Some(next_stats),
                Some(next_sweep),
                Some(next_idle_check),
                store_wake,
                self.accept_paused_until,
                self.shutdown_at,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_stats);
            let metrics_behind = self.metrics.as_ref().is_some_and(Metrics::has_backlog);
            let timeout = if !self.backlog.is_empty() || expiry_behind || metrics_behind {
                Duration::ZERO
            } else {
                Duration::from_millis(wake.since(now).as_ms())
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }

            // 2. Serve what is ready.
            let now = self.now();
            let turn = self.metrics_turn_begin();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    token if metrics::owns(token) => self.metrics_event(event, now),
                    token if Cluster::owns(token) => {
                        if let Some(cluster) = self.cluster.as_mut() {
                            cluster.on_event(event, now, self.poll.registry());
                        }
                    }
                    SIGNALS => {
                        let pending: Vec<i32> = self
                            .signals
                            .as_mut()
                            .map(|s| s.pending().collect())
                            .unwrap_or_default();
                        for signal in pending {
                            if signal == SIGHUP {
                                self.reread_identities(true);
                            } else {
                                self.begin_shutdown(now);
                            }
                        }
                    }
                    WAKER => {
                        if self.control.stop_asked() {
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
            if metrics_behind {
                self.metrics_accept_backlog(now);
            }

            // 3. to 5. Expire (replicated: the turn through the log, whose
            // entries carry the time), deliver completed waits, write.
            if self.cluster.is_some() {
                self.replicated_turn(now)?;
            } else {
                expiry_behind = self.session.store.expire(now, EXPIRE_BATCH);
            }
            self.deliver_completions();
            self.flush_turn();
            self.metrics_turn_end(turn);

            // 6. Housekeeping (replicated, compaction is part of applying).
            if self.cluster.is_none() && self.session.store.maybe_compact() {
                self.session.shrink();
            }
            if now >= next_stats {
                self.sample_memory();
                self.log.interval(&self.session.store.counters);
                self.write_audit();
                next_stats = now.after(self.limits.stats_interval);
            }
            if now >= next_idle_check {
                let counters = &mut self.session.store.counters;
                if counters.requests_in == requests_at_idle_check {
                    counters.idle += 1;
                }
                requests_at_idle_check = counters.requests_in;
                next_idle_check = now.after(IDLE_SPAN);
            }
            if now >= next_sweep {
                self.sample_memory();
                self.close_stalled(now);
                self.reread_identities(false);
                if let Some(metrics) = self.metrics.as_mut() {
                    metrics.sweep(now, self.poll.registry());
                }
                next_sweep = now.after(SWEEP_EVERY);
            }
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                self.accept(now);
            }
            if let Some(deadline) = self.shutdown_at {
                let flushed = self.peers.iter().all(|(_, p)| p.conn.unsent().is_empty());
                // A member first hands over and passes on what it holds.
                let handed_over = self.cluster.as_ref().is_none_or(|c| c.may_stop(now));
                if (flushed && handed_over) || now >= deadline {
                    break;
                }
            }
        }
        self.sample_memory();
        self.write_audit();
        let totals = format_pairs(&self.session.store.counters);
        self.log.line(&format!("{} stopped. {totals}", banner()));
        if let Some(path) = &self.pid_file {
            if let Err(e) = std::fs::remove_file(path) {
                log::warn!("cannot remove {}: {e}", path.display());
            }
        }
        Ok(())
    }

    /// Reads resident memory into `MemoryMax` (the highest since start) and
    /// the statistics log (the highest of the interval): at bind, in the
    /// once-a-second sweep and before each statistics line.
    fn sample_memory(&mut self) {
        let Some(physical) = self.physical_memory else {
            return;
        };
        if let Some(resident) = system::resident_memory() {
            let percent = system::percent_hundredths(resident, physical);
            let counters = &mut self.session.store.counters;
            counters.memory_max = counters.memory_max.max(percent);
            self.log.note_memory(percent);
        }
    }

    /// With `--audit`: the interval's audit lines, the refusals of the
    /// connections still open included (theirs from now on count in the
    /// next interval).
    fn write_audit(&mut self) {
        let Some(audit) = self.audit.as_mut() else {
            return;
        };
        for (_, peer) in &mut self.peers {
            audit.add(peer.addr, peer.conn.take_refusals());
        }
        for line in audit.lines() {
            self.log.line(&line);
        }
    }

    /// Reads the identity directory again if it changed (or always, with
    /// `force`: SIGHUP), outside any request's path.
    fn reread_identities(&mut self, force: bool) {
        if let Some(dir) = &mut self.identity_dir {
            if let Some(identities) = dir.reread(force) {
                self.session.set_identities(identities);
            }
        }
    }

    /// An event on a metrics-port token: handed to the metrics module with
    /// a view of the server.
    fn metrics_event(&mut self, event: &mio::event::Event, now: Moment) {
        let Some(metrics) = self.metrics.as_mut() else {
            return;
        };
        let store = &self.session.store;
        let view = metrics::View {
            counters: &store.counters,
            locks: store.lock_count(),
            items: store.data_count(),
            waiters: store.waiter_count(),
            connections: self.peers.len(),
            max_connections: self.limits.max_connections,
            bytes_held: store.bytes_held(),
            max_bytes: store.max_bytes(),
            listening: self.listener.is_some(),
            // The place for a cluster member's state (role, term, leader,
            // commit and apply indexes) once the server replicates.
            cluster: None,
        };
        metrics.on_event(event, now, &view, self.poll.registry());
    }

    fn metrics_accept_backlog(&mut self, now: Moment) {
        if let Some(metrics) = self.metrics.as_mut() {
            metrics.accept_backlog(now, self.poll.registry());
        }
    }

    /// With the metrics port on, the turn's start and the requests read so
    /// far, for the latency histogram (a vDSO clock read, no system call).
    fn metrics_turn_begin(&self) -> Option<(Instant, u64)> {
        self.metrics
            .as_ref()
            .map(|_| (Instant::now(), self.session.store.counters.requests_in))
    }

    fn metrics_turn_end(&mut self, turn: Option<(Instant, u64)>) {
        if let (Some(metrics), Some((start, requests_before))) = (self.metrics.as_mut(), turn) {
            let requests = self.session.store.counters.requests_in - requests_before;
            if requests > 0 {
                metrics.observe_turn(start.elapsed(), requests);
            }
        }
    }

    fn begin_shutdown(&mut self, now: Moment) {
        if self.shutdown_at.is_none() {
            log::info!("shutting down");
            systemd::notify_stopping();
            let mut grace = SHUTDOWN_GRACE;
            if let Some(cluster) = self.cluster.as_mut() {
                cluster.begin_stop();
                grace = grace.max(cluster.stop_grace());
            }
            self.shutdown_at = Some(now.after(grace));
            self.listener = None;
        }
    }

    /// Accepts every pending connection.
    fn accept(&mut self, now: Moment) {
        if self.accept_paused_until.is_some() {
            return;
        }
        let Some(listener) = self.listener.as_ref() else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    if self.peers.len() >= self.limits.max_connections {
                        self.session.store.counters.refused += 1;
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
                    let mut conn = Connection::new(self.session.max_line(), key);
                    if self.close_after_reply {
                        conn.close_after_reply();
                    }
                    if self.audit.is_some() {
                        conn.audit();
                    }
                    entry.insert(Peer {
                        stream,
                        conn,
                        readable: true,
                        eof: false,
                        hangup_seen: false,
                        output_full: false,
                        flush_queued: false,
                        addr: addr.ip(),
                    });
                    self.session.store.counters.connections += 1;
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
                    log::warn!("accept failed, pausing {ACCEPT_PAUSE}: {e}");
                    self.accept_paused_until = Some(now.after(ACCEPT_PAUSE));
                    break;
                }
            }
        }
    }

    /// Serves connection `key`: flush, answer buffered lines, read more, and
    /// so on until the socket is drained, the budget is spent, or the client
    /// must read first. Closes it when it is finished or broken.
    fn drive(&mut self, key: usize, now: Moment) {
        let fate = self.serve_peer(key, now);
        if let Fate::Close = fate {
            self.close(key);
        }
    }

    /// Closes connection `key`, withdrawing its requests from lock queues
    /// (and, replicated, from the log's replies).
    fn close(&mut self, key: usize) {
        if let Some(mut peer) = self.peers.try_remove(key) {
            peer.conn.withdraw_waits(&mut self.session);
            peer.conn.abandon_proposals(&mut self.session);
            if let Some(audit) = self.audit.as_mut() {
                audit.add(peer.addr, peer.conn.take_refusals());
            }
        }
    }

    /// The replicated turn (`cluster.rs`), then the replies it owes this
    /// node's connections, written with the rest of the turn's.
    fn replicated_turn(&mut self, now: Moment) -> io::Result<()> {
        let Some(cluster) = self.cluster.as_mut() else {
            return Ok(());
        };
        if let Err(e) = cluster.turn(&mut self.session, now, self.poll.registry()) {
            self.log
                .line(&format!("cannot write the replicated log, stopping: {e}"));
            return Err(e);
        }
        deliver(
            &mut self.peers,
            &mut self.unflushed,
            &mut self.session,
            &mut cluster.deliveries,
        );
        Ok(())
    }

    /// Delivers the replies of parked requests that were granted or timed
    /// out this turn; they are written with the rest of the turn's replies.
    /// Completing a wait writes a reply and serves no line, so one pass
    /// after expiry sees every completion of the turn.
    fn deliver_completions(&mut self) {
        let mut done = Vec::new();
        self.session.completions(&mut done);
        for (key, completion) in done {
            if let Some(peer) = self.peers.get_mut(key) {
                peer.conn.complete(&mut self.session, completion);
                if !peer.flush_queued {
                    peer.flush_queued = true;
                    self.unflushed.push(key);
                }
            }
        }
    }

    fn serve_peer(&mut self, key: usize, now: Moment) -> Fate {
        let shutting_down = self.shutdown_at.is_some();
        let max_output = self.limits.max_output;
        let Some(peer) = self.peers.get_mut(key) else {
            return Fate::Keep;
        };
        if flush(peer).is_err() {
            self.session.store.counters.bad_conn += 1;
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
            match peer.conn.serve(&mut self.session, now, max_output) {
                Served::AllLines => {}
                Served::Budget => {
                    self.backlog.push(key);
                    break;
                }
                Served::OutputFull => {
                    if flush(peer).is_err() {
                        self.session.store.counters.bad_conn += 1;
                        return Fate::Close;
                    }
                    if peer.conn.pending_output() >= max_output {
                        peer.output_full = true;
                        break;
                    }
                    continue;
                }
            }
            if peer.conn.is_done() {
                break;
            }
            if peer.eof {
                peer.conn.finish(&mut self.session, now);
                // A client that closed its side cannot be granted a lock it
                // would never hear of: its waits leave their queues and are
                // answered NotOwner, so replies behind them still go out.
                peer.conn.withdraw_waits(&mut self.session);
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
                Err(_) => {
                    // Reset by the client, or another error: a bad end.
                    self.session.store.counters.bad_conn += 1;
                    return Fate::Close;
                }
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
            let broken = flush(peer).is_err();
            if broken {
                self.session.store.counters.bad_conn += 1;
            }
            if broken || finished(peer) {
                self.close(key);
            }
        }
        keys.clear();
        self.unflushed = keys;
    }

    /// Closes connections whose unfinished line is older than
    /// `--partial-timeout`.
    fn close_stalled(&mut self, now: Moment) {
        let limit = self.limits.partial_timeout;
        let stalled: Vec<usize> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                // Not while backpressure keeps the server from reading it:
                // then what waits in its buffer is the server's doing.
                !p.output_full
                    && p.conn
                        .partial_since()
                        .is_some_and(|t| now.since(t) >= limit)
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

/// Binds the lock port's listening socket at `addr`.
fn bind_listener(
    addr: SocketAddr,
    backlog: u32,
    log: &mut StatsLog,
) -> Result<TcpListener, StartError> {
    match system::listen(addr, backlog) {
        Ok(listener) => Ok(TcpListener::from_std(listener)),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            let err = StartError::PortInUse(addr.port());
            log.line(&err.to_string());
            Err(err)
        }
        Err(e) => Err(StartError::Other(io::Error::new(
            e.kind(),
            format!("cannot listen on {addr}: {e}"),
        ))),
    }
}

/// The metrics port, bound and registered, when `--metrics` asks for it.
fn metrics_port(config: &Config, registry: &mio::Registry) -> Result<Option<Metrics>, StartError> {
    let Some(spec) = config.metrics.as_deref() else {
        return Ok(None);
    };
    let addr = system::metrics_addr(spec)?;
    let limits = metrics::Limits {
        max_connections: usize::try_from(config.metrics_max_connections).unwrap_or(usize::MAX),
        max_request: usize::try_from(config.metrics_max_request).unwrap_or(usize::MAX),
        timeout: Millis::from_secs(config.metrics_timeout),
    };
    Ok(Some(Metrics::bind(addr, limits, registry)?))
}

/// Whether a connection has nothing left to do: every reply sent, no
/// request waiting for a lock, and either its client closed its side with
/// no input left, or it answered all it will (`--close-after-reply`).
fn finished(peer: &Peer) -> bool {
    peer.conn.unsent().is_empty()
        && !peer.conn.is_waiting()
        && (peer.conn.is_done() || (peer.eof && !peer.conn.has_input()))
}

/// Hands each delivery to its connection (the replies are written by the
/// next flush) and empties `deliveries`, keeping its room.
fn deliver(
    peers: &mut Slab<Peer>,
    unflushed: &mut Vec<usize>,
    session: &mut Session,
    deliveries: &mut Deliveries,
) {
    for delivery in deliveries.list.drain(..) {
        let key = match &delivery {
            Delivery::Reply { conn, .. } | Delivery::Parked { conn, .. } => *conn,
        };
        if let Some(peer) = peers.get_mut(key) {
            peer.conn.deliver(session, delivery, &deliveries.bytes);
            if !peer.flush_queued {
                peer.flush_queued = true;
                unflushed.push(key);
            }
        }
    }
    deliveries.clear();
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
