//! The replication connections between cluster members, in the reactor's
//! `Poll`.
//!
//! Each member listens on its own `--peers` address and opens one
//! connection to every other member, which it only writes to (a `Hello`,
//! then raft messages and relayed commands, see `replication/wire.rs`); it
//! only reads from the connections others opened to it. So each direction
//! has its own connection and no two members ever race to open one.
//!
//! A broken or refused outgoing connection is opened again after
//! [`RECONNECT_AFTER`], and raft is told the member is unreachable; messages
//! that cannot be queued are dropped (raft sends again what matters).
//!
//! Bounds: `--max-peer-message` per frame read; at most
//! [`MAX_QUEUED_BYTES`] queued per outgoing connection; at most
//! [`MAX_INCOMING`] incoming connections (a member reconnecting replaces
//! its old one; strangers beyond it are closed).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::replication::wire::{self, Frame};
use crate::time::{Millis, Moment};

/// The replication listener's token; the connections' follow it.
pub const LISTENER: Token = Token(1 << (usize::BITS - 3));
/// Outgoing connection to member index `i` has token `FIRST_OUT + i`.
const FIRST_OUT: usize = LISTENER.0 + 1;
/// Incoming connection `key` has token `FIRST_IN + key`.
const FIRST_IN: usize = FIRST_OUT + (1 << 16);
/// How long to wait before opening a broken connection again.
pub const RECONNECT_AFTER: Millis = Millis::new(200);
/// Most bytes queued for one member; past it new messages are dropped.
pub const MAX_QUEUED_BYTES: usize = 256 << 20;
/// Most incoming replication connections at once.
pub const MAX_INCOMING: usize = 64;
/// Bytes read from a member's connection per call.
const READ_CHUNK: usize = 256 * 1024;

/// Whether `token` is one of the replication connections'.
pub fn owns(token: Token) -> bool {
    token.0 >= LISTENER.0 && token.0 < super::metrics::LISTENER.0
}

/// An outgoing connection to another member.
struct Outgoing {
    id: u64,
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// Connected (the first writable event came) and greeted.
    connected: bool,
    queue: Vec<u8>,
    sent: usize,
    retry_at: Option<Moment>,
}

/// An incoming connection from another member.
struct Incoming {
    stream: TcpStream,
    input: Vec<u8>,
    /// The member it said it was (its `Hello`).
    from: Option<u64>,
}

/// What a member sent, for the reactor to hand to the Raft node.
pub enum Received {
    /// A member connected, and listens for members at `addr`.
    Hello {
        node: u64,
        addr: String,
    },
    Raft(Box<raft::eraftpb::Message>),
    Relay(Vec<u8>),
}

/// Every replication connection of this member.
pub struct Members {
    me: u64,
    /// Where this member listens for the others, as its --peers entry
    /// says: sent in every `Hello`.
    advertise: String,
    /// The fingerprint of this member's store settings, sent in every
    /// `Hello`; a member whose differs is not listened to.
    settings: u64,
    /// Members already reported for other settings (reported once).
    mismatched: Vec<u64>,
    /// Scratch for reads.
    chunk: Vec<u8>,
    listener: TcpListener,
    local_addr: SocketAddr,
    outgoing: Vec<Outgoing>,
    incoming: Slab<Incoming>,
    max_message: usize,
    /// Members whose connection broke since the last call of
    /// [`Members::take_unreachable`].
    unreachable: Vec<u64>,
}

impl Members {
    /// Listens on `listen` and prepares a connection to each of `others`.
    pub fn bind(
        me: u64,
        advertise: String,
        settings: u64,
        listen: SocketAddr,
        others: Vec<(u64, SocketAddr)>,
        max_message: usize,
        registry: &Registry,
    ) -> io::Result<Members> {
        let mut listener = TcpListener::bind(listen).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen for members on {listen}: {e}"),
            )
        })?;
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        let local_addr = listener.local_addr()?;
        let outgoing = others
            .into_iter()
            .map(|(id, addr)| Outgoing {
                id,
                addr,
                stream: None,
                connected: false,
                queue: Vec::new(),
                sent: 0,
                retry_at: Some(Moment::START),
            })
            .collect();
        Ok(Members {
            me,
            advertise,
            settings,
            mismatched: Vec::new(),
            chunk: vec![0; READ_CHUNK],
            listener,
            local_addr,
            outgoing,
            incoming: Slab::new(),
            max_message,
            unreachable: Vec::new(),
        })
    }

    /// The replication address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A member added to the cluster: this node connects to it (again, if
    /// it was a member before, at its new address). At most 1 << 16
    /// members are ever added; past that the change is logged and ignored.
    pub fn add(&mut self, id: u64, addr: SocketAddr) {
        if id == self.me {
            return;
        }
        if let Some(out) = self.outgoing.iter_mut().find(|o| o.id == id) {
            if out.addr != addr || out.stream.is_none() {
                out.addr = addr;
                out.stream = None;
                out.connected = false;
                out.queue.clear();
                out.sent = 0;
                out.retry_at = Some(Moment::START);
            }
            return;
        }
        if self.outgoing.len() >= FIRST_IN - FIRST_OUT {
            log::warn!("too many members to connect to node {id}");
            return;
        }
        self.outgoing.push(Outgoing {
            id,
            addr,
            stream: None,
            connected: false,
            queue: Vec::new(),
            sent: 0,
            retry_at: Some(Moment::START),
        });
    }

    /// A member removed from the cluster: its connection is closed and not
    /// opened again (its place is kept, so the other tokens stay).
    pub fn remove(&mut self, id: u64) {
        if let Some(out) = self.outgoing.iter_mut().find(|o| o.id == id) {
            out.stream = None;
            out.connected = false;
            out.queue = Vec::new();
            out.sent = 0;
            out.retry_at = None;
        }
    }

    /// The earliest time a broken connection is to be opened again.
    pub fn next_retry(&self) -> Option<Moment> {
        self.outgoing.iter().filter_map(|o| o.retry_at).min()
    }

    /// Members whose connection broke (for `report_unreachable`).
    pub fn take_unreachable(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.unreachable)
    }

    /// Opens the connections whose retry time has come.
    pub fn reconnect(&mut self, now: Moment, registry: &Registry) {
        for (i, out) in self.outgoing.iter_mut().enumerate() {
            if out.retry_at.is_none_or(|t| now < t) {
                continue;
            }
            out.retry_at = None;
            match TcpStream::connect(out.addr) {
                Ok(mut stream) => {
                    let token = Token(FIRST_OUT + i);
                    if registry
                        .register(&mut stream, token, Interest::WRITABLE | Interest::READABLE)
                        .is_err()
                    {
                        out.retry_at = Some(now.after(RECONNECT_AFTER));
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    out.stream = Some(stream);
                    out.connected = false;
                    // Whatever was queued for the old connection may be cut
                    // anywhere: start clean, with the greeting.
                    out.queue.clear();
                    out.sent = 0;
                    wire::push_hello(&mut out.queue, self.me, self.settings, &self.advertise);
                }
                Err(_) => out.retry_at = Some(now.after(RECONNECT_AFTER)),
            }
        }
    }

    /// Queues a raft message for member `to`.
    pub fn send_raft(&mut self, message: &raft::eraftpb::Message) {
        let Some(out) = self.outgoing.iter_mut().find(|o| o.id == message.to) else {
            return;
        };
        if out.stream.is_none() || out.queue.len() - out.sent > MAX_QUEUED_BYTES {
            return;
        }
        if let Err(e) = wire::push_raft(&mut out.queue, message) {
            log::warn!("cannot encode a raft message: {e}");
        }
    }

    /// Queues relayed commands for member `to`; false if they cannot go.
    pub fn send_relay(&mut self, to: u64, commands: &[u8]) -> bool {
        let Some(out) = self.outgoing.iter_mut().find(|o| o.id == to) else {
            return false;
        };
        if out.stream.is_none() || out.queue.len() - out.sent > MAX_QUEUED_BYTES {
            return false;
        }
        wire::push_relay(&mut out.queue, commands);
        true
    }

    /// Whether everything queued for the members that are connected has
    /// been written to their sockets.
    pub fn flushed(&self) -> bool {
        self.outgoing
            .iter()
            .all(|o| o.stream.is_none() || o.sent == o.queue.len())
    }

    /// Writes what is queued on every outgoing connection that can take it.
    pub fn flush(&mut self, now: Moment) {
        for i in 0..self.outgoing.len() {
            if self.outgoing[i].connected {
                self.write_out(i, now);
            }
        }
    }

    fn write_out(&mut self, i: usize, now: Moment) {
        let out = &mut self.outgoing[i];
        let Some(stream) = out.stream.as_mut() else {
            return;
        };
        while out.sent < out.queue.len() {
            match stream.write(&out.queue[out.sent..]) {
                Ok(0) => return self.broken(i, now),
                Ok(n) => out.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.broken(i, now),
            }
        }
        if out.sent == out.queue.len() {
            out.queue.clear();
            out.sent = 0;
            if out.queue.capacity() > 1 << 20 {
                out.queue = Vec::new();
            }
        }
    }

    fn broken(&mut self, i: usize, now: Moment) {
        let out = &mut self.outgoing[i];
        if out.stream.take().is_some() {
            log::info!("replication connection to node {} lost", out.id);
        }
        out.connected = false;
        out.queue.clear();
        out.sent = 0;
        out.retry_at = Some(now.after(RECONNECT_AFTER));
        self.unreachable.push(out.id);
    }

    /// Handles an event on one of the replication tokens; what members sent
    /// is appended to `received`.
    pub fn on_event(
        &mut self,
        event: &mio::event::Event,
        now: Moment,
        registry: &Registry,
        received: &mut Vec<Received>,
    ) {
        let token = event.token().0;
        if token == LISTENER.0 {
            self.accept(registry);
        } else if token < FIRST_IN {
            let i = token - FIRST_OUT;
            if i >= self.outgoing.len() {
                return;
            }
            if event.is_error() || event.is_read_closed() || event.is_write_closed() {
                // Refused, reset, or the member closed: try again later.
                self.broken(i, now);
                return;
            }
            if event.is_writable() {
                let out = &mut self.outgoing[i];
                if !out.connected {
                    let ok = out.stream.as_ref().is_some_and(|s| {
                        s.take_error().ok().flatten().is_none() && s.peer_addr().is_ok()
                    });
                    if !ok {
                        self.broken(i, now);
                        return;
                    }
                    out.connected = true;
                }
                self.write_out(i, now);
            }
        } else {
            let key = token - FIRST_IN;
            self.read_in(key, received);
        }
    }

    fn accept(&mut self, registry: &Registry) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.incoming.len() >= MAX_INCOMING {
                        continue;
                    }
                    let entry = self.incoming.vacant_entry();
                    let token = Token(FIRST_IN + entry.key());
                    if registry
                        .register(&mut stream, token, Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    entry.insert(Incoming {
                        stream,
                        input: Vec::new(),
                        from: None,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("cannot accept a member's connection: {e}");
                    break;
                }
            }
        }
    }

    /// Reads an incoming connection until it would block, handing on every
    /// whole frame; closes it on end, error or a frame that is not valid.
    fn read_in(&mut self, key: usize, received: &mut Vec<Received>) {
        let max = self.max_message;
        let Some(conn) = self.incoming.get_mut(key) else {
            return;
        };
        let mut greeting = Greeting {
            settings: self.settings,
            mismatched: &mut self.mismatched,
        };
        let chunk = &mut self.chunk;
        let open = loop {
            match conn.stream.read(chunk) {
                Ok(0) => break false,
                Ok(n) => {
                    conn.input.extend_from_slice(&chunk[..n]);
                    if !take_frames(conn, max, &mut greeting, received) {
                        break false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        if !open {
            self.incoming.remove(key);
        }
    }
}

/// What a `Hello` is checked against.
struct Greeting<'a> {
    settings: u64,
    mismatched: &'a mut Vec<u64>,
}

/// Hands on every whole frame at the front of `conn.input`; false when the
/// connection must close (a frame that is not valid, data before the
/// `Hello`, or a `Hello` from a member with other store settings). What
/// remains is less than one frame of at most `max` bytes.
fn take_frames(
    conn: &mut Incoming,
    max: usize,
    greeting: &mut Greeting<'_>,
    received: &mut Vec<Received>,
) -> bool {
    let mut used = 0;
    let ok = loop {
        match wire::next_frame(&conn.input[used..], max) {
            Ok(Some((frame, n))) => {
                used += n;
                match frame {
                    Frame::Hello { node, settings, .. } if settings != greeting.settings => {
                        if !greeting.mismatched.contains(&node) {
                            greeting.mismatched.push(node);
                            log::error!(
                                "node {node} decides with other store settings than this node \
                                 (--max-memory, --max-holders, --max-waiters, \
                                 --max-waiters-total): not listening to it; start every member \
                                 with the same ones (--max-memory given: its default follows \
                                 each machine's memory)"
                            );
                        }
                        break false;
                    }
                    Frame::Hello { node, addr, .. } => {
                        conn.from = Some(node);
                        received.push(Received::Hello {
                            node,
                            addr: addr.to_owned(),
                        });
                    }
                    _ if conn.from.is_none() => {
                        log::warn!("a replication connection sent before its Hello");
                        break false;
                    }
                    Frame::Raft(m) => received.push(Received::Raft(m)),
                    Frame::Relay(commands) => received.push(Received::Relay(commands.to_vec())),
                }
            }
            Ok(None) => break true,
            Err(e) => {
                log::warn!("closing a replication connection: {e}");
                break false;
            }
        }
    };
    conn.input.drain(..used);
    ok
}
