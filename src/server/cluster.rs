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

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mio::{Registry, event::Event};

use super::members::{self, Members, Received};
use crate::config::Config;
use crate::replication::node::{Applied, MemberChange, Outgoing, Replica, Settings};
use crate::replication::storage::DiskStorage;
use crate::replication::syncer::Syncer;
use crate::session::{Deliveries, Replicated, Session, auth};
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
    pub deliveries: Deliveries,
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
    snapshot_after_bytes: u64,
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
    /// Every member's replication address, this node's included.
    addresses: BTreeMap<u64, String>,
    /// `--data-dir`, where the members file is kept.
    dir: PathBuf,
    /// A snapshot was installed: the `Members` texts are to be redone.
    membership_stale: bool,
    /// Where each member that connected said it listens (its `Hello`).
    heard: BTreeMap<u64, String>,
    /// Sequence numbers below this are reserved for this run, durably.
    seq_reserved: u64,
}

impl Cluster {
    /// Sets up replication when the configuration asks for it, and puts
    /// the session in replicated mode.
    pub fn start(
        config: &Config,
        session: &mut Session,
        now: Moment,
        registry: &Registry,
        waker: &Arc<mio::Waker>,
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
        // A node that joins starts with no members at all: the leader's
        // snapshot tells it who they are.
        if storage.is_fresh() && !config.join {
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
        // The log's fsyncs run on their own thread, which wakes the
        // reactor when one is done.
        let waker = Arc::clone(waker);
        replica.set_syncer(Syncer::start(Arc::new(move || {
            if let Err(e) = waker.wake() {
                log::warn!("cannot wake the reactor: {e}");
            }
        }))?);
        if voters == [u64::from(me)] && !config.join {
            replica.campaign().map_err(io::Error::other)?;
        }
        let mut addresses = BTreeMap::new();
        let members = match peers {
            Some(peers) => {
                let own = peers.0.iter().find(|(id, _)| *id == me);
                let own = own.ok_or_else(|| io::Error::other("--node-id is not among --peers"))?;
                let listen = resolve(&own.1)?;
                // Once the membership changed, the members file (written
                // as changes are applied) knows it better than --peers.
                addresses = match read_members_file(dir)? {
                    Some(saved) => saved,
                    None => peers
                        .0
                        .iter()
                        .map(|(id, a)| (u64::from(*id), a.clone()))
                        .collect(),
                };
                addresses.insert(u64::from(me), own.1.clone());
                let mut others = Vec::new();
                for (&id, addr) in &addresses {
                    if id != u64::from(me) {
                        others.push((id, resolve(addr)?));
                    }
                }
                let max = usize::try_from(config.max_peer_message).unwrap_or(usize::MAX);
                let advertise = own.1.clone();
                Some(Members::bind(
                    u64::from(me),
                    advertise,
                    session.store.config().fingerprint(),
                    listen,
                    others,
                    max,
                    registry,
                )?)
            }
            None => None,
        };
        // Origins must never repeat across runs of this node (an entry of
        // an earlier run, applied after a restart, would answer a new
        // request): the wall clock alone could step back, so sequence
        // numbers start past the block the last run reserved.
        let first_seq = wall_micros().max(read_sequence_file(dir)?);
        let seq_reserved = first_seq.saturating_add(SEQUENCE_BLOCK);
        write_sequence_file(dir, seq_reserved)?;
        let mut replicated =
            Replicated::new(me, Millis::from_secs(config.commit_timeout), first_seq);
        replicated.cluster_time = cluster_time;
        replicated.admin.clustered = members.is_some();
        replicated.admin.names = config.admins.iter().map(|n| auth::name_tag(n)).collect();
        replicated.admin.voters = voters_text(&replica.voters());
        replicated.admin.peers = peers_text(&addresses);
        session.replicate(replicated);
        Ok(Some(Cluster {
            replica,
            members,
            received: Vec::new(),
            deliveries: Deliveries::default(),
            commands: Vec::new(),
            reads: Vec::new(),
            next_read: 0,
            turn_reads: Vec::new(),
            commit_timeout: Millis::from_secs(config.commit_timeout),
            snapshot_after: config.snapshot_after,
            snapshot_after_bytes: config.snapshot_after_bytes,
            snapshot_at: applied,
            heartbeat: Millis::new(config.heartbeat_ms),
            stopping: None,
            last_reign: (0, 0),
            changes: Vec::new(),
            snapshot_now: false,
            addresses,
            dir: dir.clone(),
            membership_stale: false,
            heard: BTreeMap::new(),
            seq_reserved,
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
        let mut learned = false;
        for received in std::mem::take(&mut self.received) {
            match received {
                Received::Hello { node, addr } => {
                    if !addr.is_empty() && self.heard.len() < MAX_HEARD {
                        self.heard.insert(node, addr);
                    }
                    learned |= self.learn_addresses();
                }
                Received::Raft(m) => self.replica.step(*m),
                Received::Relay(commands) => self.replica.relayed(&commands),
            }
        }
        if learned {
            write_members_file(&self.dir, &self.addresses)?;
            if let Some(replicated) = session.replicated.as_mut() {
                replicated.admin.peers = peers_text(&self.addresses);
            }
        }
        if let Some(members) = self.members.as_mut() {
            for id in members.take_unreachable() {
                self.replica.report_unreachable(id);
            }
        }
        if let Some(replicated) = session.replicated.as_mut() {
            // Before anything of this turn is proposed or relayed.
            if replicated.last_seq() >= self.seq_reserved {
                self.seq_reserved = replicated.last_seq().saturating_add(SEQUENCE_BLOCK);
                write_sequence_file(&self.dir, self.seq_reserved)?;
            }
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
        let installed = &mut self.membership_stale;
        let mut failed: Option<crate::store::SnapshotError> = None;
        self.replica.end_turn(
            now,
            &self.commands,
            deadline,
            &mut |applied| match applied {
                Applied::Entry { at, data, term, .. } => {
                    session.apply_entry(at, data, deliveries);
                    if let Some(replicated) = session.replicated.as_mut() {
                        for request in &mut replicated.admin.requests {
                            if request.term == 0 {
                                request.term = term;
                            }
                        }
                    }
                }
                Applied::Membership(change) => changes.push(change),
                Applied::Snapshot { index, data } => match restore(session, data) {
                    Ok(_) => {
                        log::info!("installed the leader's snapshot at index {index}");
                        *installed = true;
                    }
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
        self.propose_member_changes(session);
        self.follow_membership(session)?;
        let applied = self.replica.applied();
        let log_full = self.replica.storage().log_bytes() >= self.snapshot_after_bytes
            && applied > self.snapshot_at;
        if self.snapshot_now
            || log_full
            || applied >= self.snapshot_at.saturating_add(self.snapshot_after)
        {
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
    /// Members said where they listen (their `Hello`): one whose address
    /// this node did not know (it was added while this node was away, and
    /// the snapshot that told of it carries no addresses) is connected to,
    /// if it is a member (a removed one that still runs is not).
    /// Only numeric addresses are learned (no name lookups in the reactor).
    /// Whether the addresses changed.
    fn learn_addresses(&mut self) -> bool {
        let Some(members) = self.members.as_mut() else {
            return false;
        };
        let voters = self.replica.voters();
        let mut learned = false;
        for (&node, addr) in &self.heard {
            if self.addresses.contains_key(&node) || !voters.contains(&node) {
                continue;
            }
            let Ok(resolved) = addr.parse::<SocketAddr>() else {
                log::info!("node {node} listens at {addr:?}, which is not numeric: not learned");
                continue;
            };
            log::info!("node {node} listens at {addr}: connecting to it");
            members.add(node, resolved);
            self.addresses.insert(node, addr.clone());
            learned = true;
        }
        learned
    }

    /// The leader proposes the changes of membership that applied
    /// `AddMember`/`RemoveMember` requests of its own term asked for.
    fn propose_member_changes(&mut self, session: &mut Session) {
        let Some(replicated) = session.replicated.as_mut() else {
            return;
        };
        let term = self.replica.place().term;
        for request in std::mem::take(&mut replicated.admin.requests) {
            if !self.replica.is_leader() || request.term != term {
                continue;
            }
            let asked_by = request.origin.0.get();
            if let Err(e) =
                self.replica
                    .propose_member(request.add, request.node, &request.addr, asked_by)
            {
                log::warn!("cannot change the membership (node {}): {e}", request.node);
            }
        }
    }

    /// Follows the changes of membership applied this turn: the asker is
    /// answered, the addresses kept (in the members file too), connections
    /// to added members opened and those to removed ones closed.
    fn follow_membership(&mut self, session: &mut Session) -> io::Result<()> {
        let changes = std::mem::take(&mut self.changes);
        if changes.is_empty() && !self.membership_stale {
            return Ok(());
        }
        // A snapshot brings its membership with it.
        self.membership_stale = false;
        self.learn_addresses();
        for change in changes {
            session.answer_member_change(
                change.asked_by,
                change.refused.is_some(),
                &mut self.deliveries,
            );
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
            if change.node == self.replica.place().node_id && !change.added {
                log::warn!("this node was removed from the cluster: it takes no further part");
            }
            let Some(members) = self.members.as_mut() else {
                continue;
            };
            if change.added {
                match resolve(&change.addr) {
                    Ok(addr) => members.add(change.node, addr),
                    Err(e) => log::warn!("node {}: {e}", change.node),
                }
                if change.node != self.replica.place().node_id {
                    self.addresses.insert(change.node, change.addr.clone());
                }
                // A member that joins has no log: it starts from a snapshot
                // (the leader sends one only for what it compacted).
                self.snapshot_now = true;
            } else {
                members.remove(change.node);
                self.addresses.remove(&change.node);
            }
        }
        if self.members.is_some() {
            write_members_file(&self.dir, &self.addresses)?;
        }
        if let Some(replicated) = session.replicated.as_mut() {
            replicated.admin.voters = voters_text(&self.replica.voters());
            replicated.admin.peers = peers_text(&self.addresses);
        }
        Ok(())
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
    session.replace_store(store);
    if let Some(replicated) = session.replicated.as_mut() {
        replicated.cluster_time = at;
    }
    Ok(at)
}

/// The file in `--data-dir` that keeps the sequence numbers reserved for
/// this node's requests: one decimal number, below which the next run does
/// not start.
const SEQUENCE_FILE: &str = "sequence";
/// Sequence numbers reserved at a time (one durable write per block).
const SEQUENCE_BLOCK: u64 = 1 << 20;

/// The reservation of the last run (0 if there is none).
fn read_sequence_file(dir: &Path) -> io::Result<u64> {
    let path = dir.join(SEQUENCE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("{}: not a number", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

fn write_sequence_file(dir: &Path, reserved: u64) -> io::Result<()> {
    replace_file(dir, SEQUENCE_FILE, format!("{reserved}\n").as_bytes())
}

/// Most `Hello` addresses remembered (members connect from at most
/// `MAX_INCOMING` connections at once; IDs are u16).
const MAX_HEARD: usize = 1 << 16;

/// The file in `--data-dir` that keeps the members' addresses once the
/// membership changed: `ID=HOST:PORT` lines.
const MEMBERS_FILE: &str = "members";
/// Longest members file read (64 Ki members of 255-byte addresses fit).
const MAX_MEMBERS_FILE: u64 = 16 << 20;

/// The members file's addresses, if there is one; a file that does not
/// read is an error that names it.
fn read_members_file(dir: &Path) -> io::Result<Option<BTreeMap<u64, String>>> {
    let path = dir.join(MEMBERS_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let mut text = String::new();
    io::Read::read_to_string(&mut io::Read::take(file, MAX_MEMBERS_FILE), &mut text)
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
    let list = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(",");
    let peers = crate::config::parse_peers(&list)
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
    Ok(Some(
        peers
            .0
            .into_iter()
            .map(|(id, a)| (u64::from(id), a))
            .collect(),
    ))
}

/// Replaces the members file, durably.
fn write_members_file(dir: &Path, addresses: &BTreeMap<u64, String>) -> io::Result<()> {
    let mut text = String::new();
    for (id, addr) in addresses {
        text.push_str(&format!("{id}={addr}\n"));
    }
    replace_file(dir, MEMBERS_FILE, text.as_bytes())
}

/// Replaces `dir/name` by `bytes`, durably: a new file, synced, renamed
/// over the old, and the directory synced.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let path = dir.join(name);
    let new = dir.join(format!("{name}.new"));
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut file = std::fs::File::create(&new).map_err(named)?;
    io::Write::write_all(&mut file, bytes).map_err(named)?;
    file.sync_all().map_err(named)?;
    std::fs::rename(&new, &path).map_err(named)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(named)
}

/// `Voters` of a `Members` reply: `1,2,3`.
fn voters_text(voters: &[u64]) -> String {
    voters
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `Peers` of a `Members` reply: `1=HOST:PORT,...`.
fn peers_text(addresses: &BTreeMap<u64, String>) -> String {
    addresses
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect::<Vec<_>>()
        .join(",")
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
