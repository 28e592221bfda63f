//! The reactor's replicated turn: the Raft node, the members' connections,
//! and the glue between them and the session.
//!
//! With `--peers` (a cluster) or `--data-dir` (one durable server) every
//! request the store decides goes through the Raft log. Each turn, after
//! the connections were served, [`Cluster::turn`]: ticks raft's clock, hands
//! it what members sent, proposes the session's commands of the turn as
//! one entry (a follower relays them to the leader), persists and syncs
//! once, applies what was committed (the session writes the replies owed to
//! this node's clients), answers `Unavailable` what outlived
//! `--commit-timeout`, and sends what raft has for other members.
//!
//! Boundary: the only code that moves data between the Raft node, the
//! members' sockets and the session; the store is reached only through the
//! session.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use mio::{Registry, event::Event};

use super::members::{self, Members, Received};
use crate::config::Config;
use crate::replication::node::{Applied, MemberChange, Outgoing, Replica, Settings};
use crate::replication::storage::DiskStorage;
use crate::session::{Delivery, Replicated, Session};
use crate::time::{Millis, Moment};

/// What the Raft node keeps its log in.
pub type Storage = DiskStorage;

/// Most bytes of commands kept while no leader is known.
const MAX_WAITING_COMMANDS: usize = 64 << 20;
/// Heartbeats without one from the leader before a follower campaigns.
const ELECTION_TICKS: usize = 10;

/// How long a member that stopped leading stays, passing on what followers
/// still relay to it, before it stops: this many heartbeats (the new
/// leader's first appends tell the others within one).
const LINGER_HEARTBEATS: u64 = 2;
/// How long a member may take to stop, in election timeouts: time for a
/// leader to hand over and for what waited to go on.
const STOP_ELECTIONS: u64 = 3;

/// A member asked to stop (SIGTERM).
#[derive(Debug, Default)]
struct Stopping {
    /// When this node was first seen not leading, since the stop began.
    not_leading_since: Option<Moment>,
    /// It leads and has no follower to hand over to.
    nobody_to_hand_to: bool,
}

/// The reads of one turn, waiting for their read index.
struct ReadBatch {
    context: u64,
    asked: Moment,
    index: Option<u64>,
    commands: Vec<u8>,
}

/// The replicated part of a server.
pub struct Cluster {
    replica: Replica<Storage>,
    /// `None` for a single server with `--data-dir`.
    members: Option<Members>,
    received: Vec<Received>,
    /// Replies and parkings owed to this node's connections.
    pub deliveries: Vec<Delivery>,
    /// The turn's commands, taken from the session (kept for its capacity).
    commands: Vec<u8>,
    /// Reads waiting for their read index: (context, local time asked,
    /// the index once known, the reads as commands).
    reads: Vec<ReadBatch>,
    next_read: u64,
    /// Scratch for a turn's reads.
    turn_reads: Vec<u8>,
    /// `--commit-timeout`, after which a read batch is dropped (its
    /// requests were answered `Unavailable`).
    commit_timeout: Millis,
    /// `--snapshot-after`: applied entries between two snapshots.
    snapshot_after: u64,
    /// The index of the last snapshot.
    snapshot_at: u64,
    heartbeat: Millis,
    stopping: Option<Stopping>,
    /// The (leader, term) of the last turn, to notice a change.
    last_reign: (u64, u64),
    /// Changes of membership applied this turn.
    changes: Vec<MemberChange>,
    /// Take a snapshot at the end of this turn (a member was added: it
    /// starts from one, which carries the membership).
    snapshot_now: bool,
}

impl Cluster {
    /// Sets up replication when the configuration asks for it, and puts
    /// the session in replicated mode.
    pub fn start(
        config: &Config,
        session: &mut Session,
        now: Moment,
        registry: &Registry,
    ) -> io::Result<Option<Cluster>> {
        let (me, voters, peers) = match (&config.peers, config.node_id) {
            (Some(peers), Some(id)) => (
                id,
                peers.0.iter().map(|&(id, _)| u64::from(id)).collect(),
                Some(peers),
            ),
            _ if config.data_dir.is_some() => (1, vec![1], None),
            _ => return Ok(None),
        };
        let dir = config
            .data_dir
            .as_ref()
            .ok_or_else(|| io::Error::other("replication needs --data-dir"))?;
        let mut storage = DiskStorage::open(dir).map_err(|e| io::Error::other(e.to_string()))?;
        if storage.is_fresh() {
            storage
                .bootstrap(&voters)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        // Nothing is applied at start-up but what the snapshot holds: the
        // committed entries after it are applied again, on a store made
        // from the snapshot, so the store ends where it was.
        let snapshot = storage.latest_snapshot();
        let applied = snapshot.get_metadata().index;
        let mut cluster_time = Moment::from_ms(0);
        if applied > 0 {
            cluster_time = restore(session, snapshot.get_data()).map_err(|e| {
                io::Error::other(format!(
                    "{}: the snapshot at index {applied} does not restore: {e}",
                    dir.display()
                ))
            })?;
        }
        let settings = Settings {
            id: u64::from(me),
            heartbeat: Millis::new(config.heartbeat_ms),
            election_ticks: ELECTION_TICKS,
            max_waiting: MAX_WAITING_COMMANDS,
            applied,
            cluster_time,
        };

        let mut replica =
            Replica::new(&settings, storage, now, wall_micros).map_err(io::Error::other)?;
        if voters == [u64::from(me)] {
            replica.campaign().map_err(io::Error::other)?;
        }
        let members = match peers {
            Some(peers) => {
                let mut listen = None;
                let mut others = Vec::new();
                for (id, addr) in &peers.0 {
                    let resolved = resolve(addr)?;
                    if *id == me {
                        listen = Some(resolved);
                    } else {
                        others.push((u64::from(*id), resolved));
                    }
                }
                let listen =
                    listen.ok_or_else(|| io::Error::other("--node-id is not among --peers"))?;
                let max = usize::try_from(config.max_peer_message).unwrap_or(usize::MAX);
                Some(Members::bind(u64::from(me), listen, others, max, registry)?)
            }
            None => None,
        };
        let mut replicated =
            Replicated::new(me, Millis::from_secs(config.commit_timeout), wall_micros());
        replicated.cluster_time = cluster_time;
        session.replicate(replicated);
        Ok(Some(Cluster {
            replica,
            members,
            received: Vec::new(),
            deliveries: Vec::new(),
            commands: Vec::new(),
            reads: Vec::new(),
            next_read: 0,
            turn_reads: Vec::new(),
            commit_timeout: Millis::from_secs(config.commit_timeout),
            snapshot_after: config.snapshot_after,
            snapshot_at: applied,
            heartbeat: Millis::new(config.heartbeat_ms),
            stopping: None,
            last_reign: (0, 0),
            changes: Vec::new(),
            snapshot_now: false,
        }))
    }

    /// The replication address, in a cluster.
    pub fn members_addr(&self) -> Option<SocketAddr> {
        self.members.as_ref().map(Members::local_addr)
    }

    /// The earliest local time the cluster has work: raft's next tick, the
    /// leader's next store deadline, a reconnection, a commit timeout.
    pub fn next_wake(&self, session: &Session) -> Option<Moment> {
        let deadline = self.replica.wake_for(session.store.next_deadline());
        let timeout = session
            .replicated
            .as_ref()
            .and_then(Replicated::next_timeout);
        let retry = self.members.as_ref().and_then(Members::next_retry);
        // Reads sent back to the log wait for a turn: the next, at once.
        let pending = session
            .replicated
            .as_ref()
            .filter(|r| !r.turn_commands().is_empty())
            .map(|_| Moment::from_ms(0));
        [
            Some(self.replica.next_tick()),
            deadline,
            timeout,
            retry,
            pending,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The server was asked to stop: a leader hands leadership to an
    /// up-to-date follower first, so the others go on without an election
    /// timeout (a rolling restart).
    pub fn begin_stop(&mut self) {
        if self.stopping.is_none() {
            self.stopping = Some(Stopping::default());
            self.hand_over();
        }
    }

    fn hand_over(&mut self) {
        let Some(stopping) = self.stopping.as_mut() else {
            return;
        };
        if self.members.is_none() || !self.replica.is_leader() {
            return;
        }
        match self.replica.hand_over() {
            Some(to) => log::info!("stopping: handing leadership to node {to}"),
            None => stopping.nobody_to_hand_to = !self.replica.is_handing_over(),
        }
    }

    /// How long a stopping member may take before it stops anyway.
    pub fn stop_grace(&self) -> Millis {
        Millis::new(
            self.heartbeat
                .as_ms()
                .saturating_mul(ELECTION_TICKS as u64 * STOP_ELECTIONS),
        )
    }

    /// Whether a stopping member may stop at local time `now`: it no longer
    /// leads (or has nobody to hand over to), what waited here went on,
    /// everything queued for the members is written, and it lingered a
    /// little after the change so relays sent before it still go on.
    pub fn may_stop(&self, now: Moment) -> bool {
        let Some(stopping) = &self.stopping else {
            return false;
        };
        let Some(members) = &self.members else {
            return true;
        };
        if self.replica.is_leader() {
            return stopping.nobody_to_hand_to;
        }
        let lingered = stopping.not_leading_since.is_some_and(|since| {
            now.since(since).as_ms() >= self.heartbeat.as_ms() * LINGER_HEARTBEATS
        });
        lingered && !self.replica.has_waiting() && members.flushed()
    }

    /// An event on a replication token.
    pub fn on_event(&mut self, event: &Event, now: Moment, registry: &Registry) {
        if let Some(members) = self.members.as_mut() {
            members.on_event(event, now, registry, &mut self.received);
        }
    }

    /// Whether `token` is one of the replication connections'.
    pub fn owns(token: mio::Token) -> bool {
        members::owns(token)
    }

    /// The replicated turn (see the module's doc). Fails only when the log
    /// cannot be written: the server must then stop, since it could no
    /// longer keep what it acknowledges.
    pub fn turn(
        &mut self,
        session: &mut Session,
        now: Moment,
        registry: &Registry,
    ) -> io::Result<()> {
        self.replica.tick(now);
        for received in self.received.drain(..) {
            match received {
                Received::Raft(m) => self.replica.step(*m),
                Received::Relay(commands) => self.replica.relayed(&commands),
            }
        }
        if let Some(members) = self.members.as_mut() {
            for id in members.take_unreachable() {
                self.replica.report_unreachable(id);
            }
        }
        if let Some(replicated) = session.replicated.as_mut() {
            self.commands.clear();
            self.commands.extend_from_slice(replicated.turn_commands());
            replicated.clear_turn();
            replicated.take_reads(&mut self.turn_reads);
            if !self.turn_reads.is_empty() {
                self.next_read += 1;
                self.replica.read_index(self.next_read);
                self.reads.push(ReadBatch {
                    context: self.next_read,
                    asked: now,
                    index: None,
                    commands: std::mem::take(&mut self.turn_reads),
                });
            }
        }
        let deadline = session.store.next_deadline();
        let deliveries = &mut self.deliveries;
        let changes = &mut self.changes;
        let mut failed: Option<crate::store::SnapshotError> = None;
        self.replica.end_turn(
            now,
            &self.commands,
            deadline,
            &mut |applied| match applied {
                Applied::Entry { at, data, .. } => session.apply_entry(at, data, deliveries),
                Applied::Membership(change) => changes.push(change),
                Applied::Snapshot { index, data } => match restore(session, data) {
                    Ok(_) => log::info!("installed the leader's snapshot at index {index}"),
                    // The leader's own store wrote it: a snapshot that does
                    // not restore is a bug or a corrupt transfer, and
                    // serving on from a store that is not the log's would
                    // give wrong answers.
                    Err(e) => failed = Some(e),
                },
            },
        )?;
        if let Some(e) = failed {
            return Err(io::Error::other(format!(
                "cannot install the leader's snapshot: {e}"
            )));
        }
        self.answer_reads(session, now);
        self.follow_membership();
        let applied = self.replica.applied();
        if self.snapshot_now || applied >= self.snapshot_at.saturating_add(self.snapshot_after) {
            self.snapshot_now = false;
            let mut data = Vec::new();
            let at = session
                .replicated
                .as_ref()
                .map_or(Moment::from_ms(0), |r| r.cluster_time);
            session.store.write_snapshot(at, &mut data);
            self.replica.compact(data)?;
            self.snapshot_at = applied;
        }
        session.expire_proposals(now, &mut self.deliveries);
        let place = self.replica.place();
        if let Some(replicated) = session.replicated.as_mut() {
            replicated.set_place(place);
        }
        if (place.leader, place.term) != self.last_reign {
            self.last_reign = (place.leader, place.term);
            self.reads_through_log(session);
        }
        if self.stopping.is_some() {
            self.hand_over();
            if let Some(stopping) = self.stopping.as_mut() {
                if !place.is_leader && stopping.not_leading_since.is_none() {
                    stopping.not_leading_since = Some(now);
                }
            }
        }
        let outbox = std::mem::take(&mut self.replica.outbox);
        if let Some(members) = self.members.as_mut() {
            for out in outbox {
                match out {
                    Outgoing::Raft(m) => members.send_raft(&m),
                    Outgoing::Relay { to, commands } => {
                        if !members.send_relay(to, &commands) {
                            self.replica.requeue(&commands);
                        }
                    }
                }
            }
            members.flush(now);
            members.reconnect(now, registry);
        }
        Ok(())
    }
}

impl Cluster {
    /// Follows the changes of membership applied this turn: connections
    /// to added members are opened, those to removed ones closed.
    fn follow_membership(&mut self) {
        for change in std::mem::take(&mut self.changes) {
            if let Some(why) = &change.refused {
                log::warn!(
                    "membership change at index {} (node {}) refused: {why}",
                    change.index,
                    change.node
                );
                continue;
            }
            log::info!(
                "node {} {} at index {}; voters now {:?}",
                change.node,
                if change.added { "joined" } else { "left" },
                change.index,
                self.replica.voters()
            );
            let Some(members) = self.members.as_mut() else {
                continue;
            };
            if change.added {
                match resolve(&change.addr) {
                    Ok(addr) => members.add(change.node, addr),
                    Err(e) => log::warn!("node {}: {e}", change.node),
                }
                // A member that joins has no log: it starts from a snapshot
                // (the leader sends one only for what it compacted).
                self.snapshot_now = true;
            } else {
                members.remove(change.node);
            }
        }
    }

    /// The leader or the term changed: a read index asked of the old
    /// leader may never come, so the reads still waiting for one go
    /// through the log instead (as linearizable, one commit later).
    fn reads_through_log(&mut self, session: &mut Session) {
        let Some(replicated) = session.replicated.as_mut() else {
            return;
        };
        self.reads.retain(|batch| {
            if batch.index.is_some() {
                return true;
            }
            replicated.through_log(&batch.commands);
            false
        });
    }

    /// Answers the reads whose read index is applied; those that must go
    /// through the log after all are proposed at once. Batches older than
    /// the commit timeout (a read index lost with a leader) are dropped:
    /// their requests were answered `Unavailable`.
    fn answer_reads(&mut self, session: &mut Session, now: Moment) {
        for (context, index) in self.replica.read_states.drain(..) {
            if let Some(batch) = self.reads.iter_mut().find(|b| b.context == context) {
                batch.index = Some(index);
            }
        }
        let applied = self.replica.applied();
        let timeout = self.commit_timeout;
        let mut answered = Vec::new();
        self.reads.retain_mut(|batch| {
            if batch.index.is_some_and(|i| i <= applied) {
                answered.push(std::mem::take(&mut batch.commands));
                return false;
            }
            now.since(batch.asked) < timeout
        });
        for commands in answered {
            session.answer_reads(&commands, &mut self.deliveries);
        }
    }
}

/// Replaces the session's store by the one `data` (a store snapshot)
/// describes; its cluster time.
fn restore(session: &mut Session, data: &[u8]) -> Result<Moment, crate::store::SnapshotError> {
    let config = session.store.config().clone();
    let (store, at) = crate::store::Store::read_snapshot(config, data)?;
    session.store = store;
    if let Some(replicated) = session.replicated.as_mut() {
        replicated.cluster_time = at;
    }
    Ok(at)
}

/// `HOST:PORT` to one address.
fn resolve(addr: &str) -> io::Result<SocketAddr> {
    let bare = addr.replace(['[', ']'], "");
    let (host, port) = bare
        .rsplit_once(':')
        .ok_or_else(|| io::Error::other(format!("{addr} is not HOST:PORT")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| io::Error::other(format!("{addr}: bad port")))?;
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{addr} does not resolve")))
}

/// Wall-clock microseconds, for a new leader's token floor.
fn wall_micros() -> u64 {
    super::system::first_token().get()
}
