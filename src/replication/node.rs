//! The Raft node of a cluster member (or of a single server with
//! `--data-dir`): raft-rs's `RawNode`, driven one turn at a time by the
//! reactor, and the cluster time the leader stamps on what it proposes.
//!
//! Each turn the reactor calls, in this order: [`Replica::tick`] (raft's
//! logical clock, one tick per `--heartbeat-ms`), [`Replica::step`] for each
//! peer message read and [`Replica::relayed`] for each batch a follower
//! relayed, then [`Replica::end_turn`] once, with the commands the session
//! gathered this turn. `end_turn` proposes them as one entry (group commit;
//! a follower relays them to the leader instead), handles raft's `Ready`
//! (entries and hard state written, then ONE `sync` of the log for the whole
//! turn, messages queued in [`Replica::outbox`], committed entries handed to
//! the caller to apply), and loops while raft has more ready.
//!
//! With a [`Syncer`] (the server's durable storage) the fsync does not hold
//! up the turn: the records are written, the file goes to the syncer's
//! thread, raft is told the `Ready` is only written
//! (`advance_append_async`), and the messages that depend on it (a
//! follower's acknowledgements, votes) wait in `unpersisted`. A later turn,
//! woken by the syncer, learns what became durable, sends those messages
//! and tells raft (`on_persist_ready`), which only then counts the node's
//! own copy and applies what that commits. Without one (tests on raft's
//! memory storage) each `Ready` is synced in its turn.
//!
//! Cluster time: the leader stamps each entry with
//! `base + (local now - became leader)`, where `base` is the cluster time of
//! the last entry it had applied when it won; appliers take the running
//! maximum of the stamps. So cluster time is the same on every node, never
//! goes back, and stands still while there is no leader: TTLs outlast an
//! outage and never end early (PROTOCOL.md, Cluster). The leader proposes an
//! empty batch when the store's next deadline has come in cluster time, so
//! TTLs expire on every node at the same point of the log.
//!
//! Boundary: no sockets and no clock: the local time is an argument and the
//! messages go out through the outbox; storage is the [`LogStore`] given.

use std::collections::VecDeque;
use std::fs::File;
use std::io;

use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Message, Snapshot,
};
use raft::{Config, RawNode, StateRole};

use super::command;
use super::syncer::Syncer;
use crate::time::{Millis, Moment};

/// What a Raft node persists: raft-rs's `Storage` (what it reads) plus the
/// writes of a `Ready`, made durable together by [`LogStore::sync`].
pub trait LogStore: raft::Storage {
    /// Appends `entries`, replacing any conflicting suffix.
    fn append(&mut self, entries: &[Entry]) -> io::Result<()>;
    fn set_hard_state(&mut self, hard_state: &HardState) -> io::Result<()>;
    fn set_commit(&mut self, commit: u64) -> io::Result<()>;
    /// The membership after a change was applied (durable at the next
    /// sync).
    fn set_conf_state(&mut self, conf_state: ConfState) -> io::Result<()>;
    /// Installs a snapshot received from the leader in place of the log.
    fn apply_snapshot(&mut self, snapshot: Snapshot) -> io::Result<()>;
    /// Makes every write since the last sync durable (one fsync).
    fn sync(&mut self) -> io::Result<()>;
    /// Writes what [`LogStore::sync`] would make durable, without the
    /// fsync, and hands over the file to fsync (none: nothing to make
    /// durable, `must_sync` false, or nothing this storage can hand over).
    fn write_for_sync(&mut self, must_sync: bool) -> io::Result<Option<File>>;
    /// Keeps `data`, the state machine's snapshot at applied `index`, and
    /// drops the log before it.
    fn compact(&mut self, index: u64, conf_state: ConfState, data: Vec<u8>) -> io::Result<()>;
}

/// How many entries back from the end of the log a new leader looks for
/// the last stamp (raft's own empty entries and membership changes carry
/// none; a run this long of them does not happen).
const STAMP_SEARCH: usize = 64;

/// A node's part in the cluster, as `Stats` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub node_id: u64,
    /// The leader this node knows of; 0 while none.
    pub leader: u64,
    pub term: u64,
    pub committed: u64,
    pub applied: u64,
    pub is_leader: bool,
}

/// Something for the reactor to send to another member.
#[derive(Debug)]
pub enum Outgoing {
    /// A raft message (its `to` names the member).
    Raft(Message),
    /// A follower's commands for the leader to propose.
    Relay { to: u64, commands: Vec<u8> },
}

/// What the caller applies, in log order.
pub enum Applied<'a> {
    /// A committed entry of ours (a batch or a `Lead`), to apply at cluster
    /// time `at` (the running maximum of the stamps).
    Entry {
        index: u64,
        /// The term of the leader that proposed it.
        term: u64,
        at: Moment,
        data: &'a [u8],
    },
    /// The leader's snapshot replaced our state: restore the store from
    /// `data`, taken at `index`.
    Snapshot { index: u64, data: &'a [u8] },
    /// A change of membership, applied (or refused alike on every node).
    Membership(MemberChange),
}

/// A committed change of membership, as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub index: u64,
    /// The member added or removed.
    pub node: u64,
    pub added: bool,
    /// Its replication address (`HOST:PORT`), when it was added.
    pub addr: String,
    /// The origin of the request that asked for it (0: unknown).
    pub asked_by: u64,
    /// Why raft refused it, if it did.
    pub refused: Option<String>,
}

/// Why a change of membership cannot be proposed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRefusal {
    NotLeader,
    /// One change at a time: the last is not applied yet, or leadership is
    /// being handed over.
    Busy,
    Raft(String),
}

impl std::fmt::Display for MemberRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberRefusal::NotLeader => f.write_str("this node does not lead"),
            MemberRefusal::Busy => f.write_str("another change of membership is in progress"),
            MemberRefusal::Raft(e) => write!(f, "raft refused the change: {e}"),
        }
    }
}

/// A membership change's context: who asked (an origin, little-endian),
/// then the member's address.
fn member_context(asked_by: u64, addr: &str) -> Vec<u8> {
    let mut context = asked_by.to_le_bytes().to_vec();
    context.extend_from_slice(addr.as_bytes());
    context
}

fn read_member_context(context: &[u8]) -> (u64, String) {
    match context.split_first_chunk::<8>() {
        Some((asked_by, addr)) => (
            u64::from_le_bytes(*asked_by),
            String::from_utf8_lossy(addr).into_owned(),
        ),
        None => (0, String::new()),
    }
}

/// Settings of a [`Replica`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub id: u64,
    /// The time between two raft ticks (a heartbeat); an election takes
    /// `election_ticks` to `2 * election_ticks` of them.
    pub heartbeat: Millis,
    pub election_ticks: usize,
    /// Most bytes of relayed or unsent commands kept while no leader is
    /// known; the rest are dropped (their requests end `Unavailable`).
    pub max_waiting: usize,
    /// The index applied before the node started (from the snapshot).
    pub applied: u64,
    /// Cluster time when the node started (the snapshot's, or 0).
    pub cluster_time: Moment,
}

/// The leader's reckoning of cluster time.
#[derive(Debug, Clone, Copy)]
struct Reign {
    since: Moment,
    base: u64,
}

/// A Raft node and the turn-by-turn work around it.
pub struct Replica<S: LogStore> {
    raw: RawNode<S>,
    heartbeat: Millis,
    next_tick: Moment,
    reign: Option<Reign>,
    /// The highest stamp applied: cluster time as of the last applied entry.
    applied_time: u64,
    /// The stamp of the last batch this node proposed as leader.
    last_stamp: u64,
    /// Commands relayed by followers, or our own while no leader is known.
    waiting: Vec<u8>,
    max_waiting: usize,
    /// Scratch for the entry being proposed.
    batch: Vec<u8>,
    /// Messages for other members, drained by the reactor.
    pub outbox: Vec<Outgoing>,
    /// Answered read indexes: (the context given to
    /// [`Replica::read_index`], the commit index to apply before reading).
    pub read_states: Vec<(u64, u64)>,
    /// Wall-clock microseconds, for a new leader's token floor.
    wall_micros: fn() -> u64,
    /// The fsync thread, when syncs run beside the turn.
    syncer: Option<Syncer>,
    /// `Ready`s written and not yet known durable, in order: their number
    /// and the messages that must wait for it.
    unpersisted: VecDeque<(u64, Vec<Message>)>,
}

/// Raft-rs logs through slog; this hands its records to `log`.
fn logger() -> slog::Logger {
    slog::Logger::root(slog::Drain::fuse(slog_stdlog::StdLog), slog::o!())
}

impl<S: LogStore> Replica<S> {
    /// A node over `storage` (which holds the membership), starting at
    /// local time `now`.
    pub fn new(
        settings: &Settings,
        storage: S,
        now: Moment,
        wall_micros: fn() -> u64,
    ) -> raft::Result<Replica<S>> {
        let config = Config {
            id: settings.id,
            election_tick: settings.election_ticks,
            heartbeat_tick: 1,
            applied: settings.applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A leader that cannot hear a majority steps down (a paused
            // leader resumed cannot keep serving), and a node cut off does
            // not disrupt the rest with elections when it comes back.
            check_quorum: true,
            pre_vote: true,
            ..Config::default()
        };
        config.validate()?;
        let raw = RawNode::new(&config, storage, &logger())?;
        Ok(Replica {
            raw,
            heartbeat: settings.heartbeat,
            next_tick: now.after(settings.heartbeat),
            reign: None,
            applied_time: settings.cluster_time.as_ms(),
            last_stamp: 0,
            waiting: Vec::new(),
            max_waiting: settings.max_waiting,
            batch: Vec::new(),
            outbox: Vec::new(),
            read_states: Vec::new(),
            wall_micros,
            syncer: None,
            unpersisted: VecDeque::new(),
        })
    }

    /// From now on, fsyncs run on `syncer`'s thread beside the turns.
    pub fn set_syncer(&mut self, syncer: Syncer) {
        self.syncer = Some(syncer);
    }

    /// Takes in what the syncer made durable since the last turn: the
    /// messages that waited for it go out, and raft counts it. Not while a
    /// `Ready` is being handled.
    fn collect_durable(&mut self) -> io::Result<()> {
        let Some(syncer) = self.syncer.as_mut() else {
            return Ok(());
        };
        let upto = syncer.durable()?.unwrap_or(0);
        let all = !syncer.is_busy();
        self.release(upto, all);
        Ok(())
    }

    /// Waits for every fsync asked for (before the log moves to another
    /// file, or a snapshot replaces it). Not while a `Ready` is handled.
    fn wait_for_disk(&mut self) -> io::Result<()> {
        if let Some(syncer) = self.syncer.as_mut() {
            syncer.wait()?;
            self.release(0, true);
        }
        Ok(())
    }

    /// Releases the `Ready`s durable: those numbered up to `upto`, or all
    /// when no fsync is out (the rest wrote nothing that needed one).
    fn release(&mut self, upto: u64, all: bool) {
        let mut last = None;
        while let Some((number, _)) = self.unpersisted.front() {
            if !all && *number > upto {
                break;
            }
            if let Some((number, messages)) = self.unpersisted.pop_front() {
                self.outbox.extend(messages.into_iter().map(Outgoing::Raft));
                last = Some(number);
            }
        }
        if let Some(number) = last {
            self.raw.on_persist_ready(number);
        }
    }

    /// Starts an election at once (a single-member cluster needs no wait).
    pub fn campaign(&mut self) -> raft::Result<()> {
        self.raw.campaign()
    }

    /// This node's place in the cluster.
    pub fn place(&self) -> Place {
        let raft = &self.raw.raft;
        Place {
            node_id: raft.id,
            leader: raft.leader_id,
            term: raft.term,
            committed: raft.raft_log.committed,
            applied: raft.raft_log.applied,
            is_leader: raft.state == StateRole::Leader,
        }
    }

    /// The storage, for its counters.
    pub fn storage(&self) -> &S {
        self.raw.store()
    }

    /// Asks for the commit index a linearizable read must wait for
    /// (raft's ReadIndex: the leader confirms it still leads with a
    /// heartbeat round); the answer comes in [`Replica::read_states`] with
    /// `context`. A follower asks the leader; without a leader nothing
    /// comes, and the reads time out.
    pub fn read_index(&mut self, context: u64) {
        self.raw.read_index(context.to_le_bytes().to_vec());
    }

    /// Hands leadership to the follower furthest along the log among
    /// those that answered lately (this node is about to stop); proposals
    /// wait meanwhile. The follower chosen; `None` when this node does not
    /// lead, already hands over, or has no follower to hand to.
    pub fn hand_over(&mut self) -> Option<u64> {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader || raft.lead_transferee.is_some() {
            return None;
        }
        let me = raft.id;
        let learners = raft.prs().conf().learners();
        let target = raft
            .prs()
            .iter()
            .filter(|(id, pr)| **id != me && pr.recent_active && !learners.contains(id))
            .max_by_key(|(id, pr)| (pr.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)?;
        self.raw.transfer_leader(target);
        Some(target)
    }

    /// Proposes adding member `node`, which listens for members at `addr`
    /// (`add`), or removing it; `asked_by` (an origin) comes back with the
    /// change once applied, in [`Applied::Membership`].
    pub fn propose_member(
        &mut self,
        add: bool,
        node: u64,
        addr: &str,
        asked_by: u64,
    ) -> Result<(), MemberRefusal> {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader {
            return Err(MemberRefusal::NotLeader);
        }
        if raft.has_pending_conf() || raft.lead_transferee.is_some() {
            return Err(MemberRefusal::Busy);
        }
        let mut change = ConfChange::default();
        change.set_change_type(if add {
            ConfChangeType::AddNode
        } else {
            ConfChangeType::RemoveNode
        });
        change.node_id = node;
        change.context = member_context(asked_by, addr).into();
        self.raw
            .propose_conf_change(Vec::new(), change)
            .map_err(|e| MemberRefusal::Raft(e.to_string()))
    }

    /// The voting members, by raft's current configuration.
    pub fn voters(&self) -> Vec<u64> {
        let mut voters: Vec<u64> = self.raw.raft.prs().conf().voters().ids().iter().collect();
        voters.sort_unstable();
        voters
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// Whether this node leads and is handing leadership over.
    pub fn is_handing_over(&self) -> bool {
        self.is_leader() && self.raw.raft.lead_transferee.is_some()
    }

    /// Whether commands wait here: relayed to us, or ours, not yet proposed
    /// or passed on.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The index applied last.
    pub fn applied(&self) -> u64 {
        self.raw.raft.raft_log.applied
    }

    /// Hands the storage `data`, the store's snapshot as of the last
    /// applied entry, so it drops the log before it.
    pub fn compact(&mut self, data: Vec<u8>) -> io::Result<()> {
        // The syncer's fsyncs are of the segment compaction replaces.
        self.wait_for_disk()?;
        let index = self.applied();
        let conf_state = self.raw.raft.prs().conf().to_conf_state();
        self.raw.mut_store().compact(index, conf_state, data)
    }

    /// Advances raft's clock to local time `now`.
    pub fn tick(&mut self, now: Moment) {
        while now >= self.next_tick {
            self.raw.tick();
            self.next_tick = self.next_tick.after(self.heartbeat);
        }
    }

    /// Hands raft a message from another member. A message raft refuses
    /// (from a stranger, out of date) is dropped: raft tolerates loss.
    pub fn step(&mut self, message: Message) {
        if let Err(e) = self.raw.step(message) {
            log::debug!("raft refused a message: {e}");
        }
    }

    /// The connection to member `id` broke: raft stops streaming to it
    /// until it answers again.
    pub fn report_unreachable(&mut self, id: u64) {
        self.raw.report_unreachable(id);
    }

    /// Commands a follower relayed: proposed with ours at the end of the
    /// turn if we lead; a node that no longer leads but knows who does
    /// passes them on (a follower that has not heard of the change yet);
    /// with no leader known they are dropped (the follower's requests time
    /// out).
    pub fn relayed(&mut self, commands: &[u8]) {
        let leader = self.raw.raft.leader_id;
        if self.reign.is_none() && (leader == 0 || leader == self.raw.raft.id) {
            return;
        }
        match command::check_commands(commands) {
            Ok(_) => self.keep_waiting(commands),
            Err(e) => log::warn!("a member relayed commands that do not decode: {e}"),
        }
    }

    /// Commands a relay could not take (no connection to the leader): they
    /// wait for a later turn.
    pub fn requeue(&mut self, commands: &[u8]) {
        self.keep_waiting(commands);
    }

    fn keep_waiting(&mut self, commands: &[u8]) {
        if self.waiting.len() + commands.len() <= self.max_waiting {
            self.waiting.extend_from_slice(commands);
        }
    }

    /// Cluster time by the leader's reckoning at local time `now`.
    fn cluster_now(&self, now: Moment) -> Option<u64> {
        self.reign
            .map(|r| r.base.saturating_add(now.since(r.since).as_ms()))
    }

    /// The local time at which the store's next deadline (in cluster time)
    /// comes, if this node leads: when to wake to propose that time.
    pub fn wake_for(&self, store_deadline: Option<Moment>) -> Option<Moment> {
        let reign = self.reign?;
        let deadline = store_deadline?.as_ms();
        Some(
            reign
                .since
                .after(Millis::new(deadline.saturating_sub(reign.base))),
        )
    }

    /// When raft's clock next ticks.
    pub fn next_tick(&self) -> Moment {
        self.next_tick
    }

    /// Ends the turn at local time `now`: proposes (or relays) `commands`,
    /// the session's for this turn, with what followers relayed; persists,
    /// syncs once, queues messages, and hands every committed entry to
    /// `apply`. `store_deadline` is the store's next deadline in cluster
    /// time, which the leader proposes the time for when it has come.
    pub fn end_turn(
        &mut self,
        now: Moment,
        commands: &[u8],
        store_deadline: Option<Moment>,
        apply: &mut dyn FnMut(Applied<'_>),
    ) -> io::Result<()> {
        self.collect_durable()?;
        self.propose_turn(now, commands, store_deadline);
        while self.raw.has_ready() {
            self.handle_ready(now, apply)?;
        }
        Ok(())
    }

    fn propose_turn(&mut self, now: Moment, commands: &[u8], store_deadline: Option<Moment>) {
        if let Some(stamp) = self.cluster_now(now) {
            if self.raw.raft.lead_transferee.is_some() {
                // Handing over: raft drops proposals until the transfer
                // ends. They wait, for the next leader (or for us again, if
                // the transfer times out).
                self.keep_waiting(commands);
                return;
            }
            let stamp = stamp.max(self.last_stamp);
            let time_due =
                store_deadline.is_some_and(|d| d.as_ms() <= stamp && self.last_stamp < d.as_ms());
            if commands.is_empty() && self.waiting.is_empty() && !time_due {
                return;
            }
            command::begin_batch(&mut self.batch, stamp);
            self.batch.extend_from_slice(&self.waiting);
            self.batch.extend_from_slice(commands);
            let data = std::mem::take(&mut self.batch);
            match self.raw.propose(Vec::new(), data) {
                Ok(()) => {
                    self.last_stamp = stamp;
                    self.waiting.clear();
                }
                Err(e) => {
                    // Not in the log: the commands wait for a later turn.
                    log::warn!("cannot propose: {e}");
                    self.keep_waiting(commands);
                }
            }
            return;
        }
        self.keep_waiting(commands);
        let leader = self.raw.raft.leader_id;
        if leader != 0 && !self.waiting.is_empty() {
            let commands = std::mem::take(&mut self.waiting);
            self.outbox.push(Outgoing::Relay {
                to: leader,
                commands,
            });
        }
    }

    fn handle_ready(&mut self, now: Moment, apply: &mut dyn FnMut(Applied<'_>)) -> io::Result<()> {
        let mut ready = self.raw.ready();
        for state in ready.take_read_states() {
            if let Ok(context) = <[u8; 8]>::try_from(&state.request_ctx[..]) {
                self.read_states
                    .push((u64::from_le_bytes(context), state.index));
            }
        }
        // A leader's appends may go out before its own write: a follower's
        // acknowledgement is what counts, and raft counts the leader's own
        // only once it is persisted.
        for m in ready.take_messages() {
            self.outbox.push(Outgoing::Raft(m));
        }
        if !ready.snapshot().is_empty() {
            if let Some(syncer) = self.syncer.as_mut() {
                // The snapshot starts another segment: what the syncer
                // has of the old one is made durable first.
                syncer.wait()?;
            }
            let snapshot = ready.snapshot().clone();
            let index = snapshot.get_metadata().index;
            self.raw.mut_store().apply_snapshot(snapshot.clone())?;
            apply(Applied::Snapshot {
                index,
                data: snapshot.get_data(),
            });
        }
        let committed = ready.take_committed_entries();
        self.apply_entries(&committed, apply);
        if !ready.entries().is_empty() {
            self.raw.mut_store().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.raw.mut_store().set_hard_state(hs)?;
        }
        let role_changed = ready.ss().map(|ss| ss.raft_state);
        if self.syncer.is_some() {
            self.written(ready)?;
        } else {
            self.synced(ready, apply)?;
        }
        match role_changed {
            Some(StateRole::Leader) if self.reign.is_none() => self.begin_reign(now),
            Some(StateRole::Leader) | None => {}
            Some(_) => self.reign = None,
        }
        Ok(())
    }

    /// Ends a `Ready` whose records are written: its fsync goes to the
    /// syncer, and what depends on it waits.
    fn written(&mut self, mut ready: raft::Ready) -> io::Result<()> {
        let number = ready.number();
        let waiting = ready.take_persisted_messages();
        // raft says whether this Ready needs the disk (entries, a vote, a
        // term, a snapshot); a commit index that moved does not.
        let file = self.raw.mut_store().write_for_sync(ready.must_sync())?;
        self.raw.advance_append_async(ready);
        self.unpersisted.push_back((number, waiting));
        if let Some(syncer) = self.syncer.as_mut() {
            match file {
                Some(file) => syncer.submit(number, file)?,
                // Nothing to make durable (an installed snapshot is on
                // return): it is as soon as those before are.
                None if !syncer.is_busy() => self.release(number, true),
                None => {}
            }
        }
        // After the release: raft applies no further than it knows durable
        // (a snapshot's index among it).
        self.raw.advance_apply();
        Ok(())
    }

    /// Ends a `Ready` with one sync in the turn.
    fn synced(
        &mut self,
        mut ready: raft::Ready,
        apply: &mut dyn FnMut(Applied<'_>),
    ) -> io::Result<()> {
        self.raw.mut_store().sync()?;
        for m in ready.take_persisted_messages() {
            self.outbox.push(Outgoing::Raft(m));
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        for m in light.take_messages() {
            self.outbox.push(Outgoing::Raft(m));
        }
        let committed = light.take_committed_entries();
        self.apply_entries(&committed, apply);
        self.raw.advance_apply();
        Ok(())
    }

    /// Won an election: reckon cluster time from the last applied stamp and
    /// propose the `Lead` entry before anything else of this term.
    fn begin_reign(&mut self, now: Moment) {
        let base = self
            .applied_time
            .max(self.last_stamp)
            .max(self.last_stamp_in_log());
        self.reign = Some(Reign { since: now, base });
        self.last_stamp = base;
        let lead = command::lead(base, (self.wall_micros)(), self.raw.raft.id);
        if let Err(e) = self.raw.propose(Vec::new(), lead) {
            log::warn!("cannot propose the Lead entry: {e}");
        }
        log::info!(
            "node {} leads (term {}) at cluster time {base} ms",
            self.raw.raft.id,
            self.raw.raft.term
        );
    }

    /// The stamp of the last entry of the log that has one: the highest
    /// cluster time in the log (each leader stamps from the highest it
    /// found), which a new leader must not go below, even before it has
    /// applied its log (a node that restarts and wins at once).
    fn last_stamp_in_log(&self) -> u64 {
        let store = self.raw.store();
        let (Ok(first), Ok(last)) = (store.first_index(), store.last_index()) else {
            return 0;
        };
        let mut index = last;
        for _ in 0..STAMP_SEARCH {
            if index < first || index == 0 {
                break;
            }
            let context = raft::GetEntriesContext::empty(false);
            if let Ok(entries) = store.entries(index, index + 1, None, context) {
                if let Some(stamp) = entries
                    .first()
                    .and_then(|e| command::decode(e.get_data()).ok())
                    .map(|e| e.stamp)
                {
                    return stamp;
                }
            }
            index -= 1;
        }
        0
    }

    fn apply_entries(&mut self, entries: &[Entry], apply: &mut dyn FnMut(Applied<'_>)) {
        for entry in entries {
            if entry.get_entry_type() == EntryType::EntryConfChange {
                self.apply_member_change(entry, apply);
                continue;
            }
            if entry.get_entry_type() != EntryType::EntryNormal || entry.get_data().is_empty() {
                // Raft's own empty entry of a new term.
                continue;
            }
            let data = entry.get_data();
            if let Ok(decoded) = command::decode(data) {
                self.applied_time = self.applied_time.max(decoded.stamp);
            }
            apply(Applied::Entry {
                index: entry.index,
                term: entry.term,
                at: Moment::from_ms(self.applied_time),
                data,
            });
        }
    }
}

impl<S: LogStore> Replica<S> {
    /// A committed change of membership: raft's configuration follows it
    /// on every node, and the storage keeps it.
    fn apply_member_change(&mut self, entry: &Entry, apply: &mut dyn FnMut(Applied<'_>)) {
        let mut change = ConfChange::default();
        if let Err(e) = change.merge_from_bytes(entry.get_data()) {
            // Only a leader of ours writes these; not one we can read is a
            // bug, and applying nothing keeps every node alike.
            log::warn!(
                "a membership change at {} does not decode: {e}",
                entry.index
            );
            return;
        }
        let (asked_by, addr) = read_member_context(change.get_context());
        let refused = match self.raw.apply_conf_change(&change) {
            Ok(conf_state) => self
                .raw
                .mut_store()
                .set_conf_state(conf_state)
                .err()
                .map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        let added = change.get_change_type() != ConfChangeType::RemoveNode;
        apply(Applied::Membership(MemberChange {
            index: entry.index,
            node: change.node_id,
            added,
            addr,
            asked_by,
            refused,
        }));
    }
}

impl LogStore for super::storage::DiskStorage {
    fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        super::storage::DiskStorage::append(self, entries).map_err(io::Error::other)
    }

    fn set_hard_state(&mut self, hard_state: &HardState) -> io::Result<()> {
        super::storage::DiskStorage::set_hard_state(self, hard_state);
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> io::Result<()> {
        super::storage::DiskStorage::set_commit(self, commit);
        Ok(())
    }

    fn set_conf_state(&mut self, conf_state: ConfState) -> io::Result<()> {
        super::storage::DiskStorage::set_conf_state(self, conf_state);
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> io::Result<()> {
        super::storage::DiskStorage::apply_snapshot(self, snapshot).map_err(io::Error::other)
    }

    fn sync(&mut self) -> io::Result<()> {
        super::storage::DiskStorage::sync(self).map_err(io::Error::other)
    }

    fn write_for_sync(&mut self, must_sync: bool) -> io::Result<Option<File>> {
        super::storage::DiskStorage::write_for_sync(self, must_sync).map_err(io::Error::other)
    }

    fn compact(&mut self, index: u64, conf_state: ConfState, data: Vec<u8>) -> io::Result<()> {
        super::storage::DiskStorage::compact(self, index, conf_state, data)
            .map_err(io::Error::other)
    }
}

/// raft-rs's in-memory storage, for tests and tools: durable it is not.
impl LogStore for raft::storage::MemStorage {
    fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        self.wl().append(entries).map_err(io::Error::other)
    }

    fn set_hard_state(&mut self, hard_state: &HardState) -> io::Result<()> {
        self.wl().set_hardstate(hard_state.clone());
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> io::Result<()> {
        self.wl().mut_hard_state().set_commit(commit);
        Ok(())
    }

    fn set_conf_state(&mut self, conf_state: ConfState) -> io::Result<()> {
        self.wl().set_conf_state(conf_state);
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> io::Result<()> {
        self.wl().apply_snapshot(snapshot).map_err(io::Error::other)
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn write_for_sync(&mut self, _: bool) -> io::Result<Option<File>> {
        Ok(None)
    }

    fn compact(&mut self, index: u64, _: ConfState, _: Vec<u8>) -> io::Result<()> {
        self.wl().compact(index).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Action, Request};
    use command::{Command, EntryKind, Origin};
    use raft::eraftpb::ConfState;
    use raft::storage::MemStorage;

    fn settings(id: u64) -> Settings {
        Settings {
            id,
            heartbeat: Millis::new(100),
            election_ticks: 10,
            max_waiting: 1 << 20,
            applied: 0,
            cluster_time: Moment::from_ms(0),
        }
    }

    fn node(id: u64, voters: &[u64]) -> Replica<MemStorage> {
        let storage = MemStorage::new_with_conf_state(ConfState::from((voters.to_vec(), vec![])));
        Replica::new(&settings(id), storage, Moment::from_ms(0), || 42).unwrap()
    }

    /// Applied entries, decoded: (kind, cluster time, origins of requests).
    type Log = Vec<(EntryKind, u64, Vec<Origin>)>;

    fn collect(log: &mut Log) -> impl FnMut(Applied<'_>) + '_ {
        move |applied| {
            if let Applied::Entry { at, data, .. } = applied {
                let entry = command::decode(data).unwrap();
                let origins = entry
                    .commands()
                    .map(|c| match c.unwrap() {
                        Command::Request(o, _) => o,
                        Command::Cancel(o) => o,
                    })
                    .collect();
                log.push((entry.kind, at.as_ms(), origins));
            }
        }
    }

    fn one_request(origin: Origin) -> Vec<u8> {
        let mut out = Vec::new();
        let request = Request::new(Action::Lock, "me", "door").unwrap();
        command::push_request(&mut out, origin, &request);
        out
    }

    #[test]
    fn a_single_node_leads_and_commits_a_turn_in_the_same_turn() {
        let mut replica = node(1, &[1]);
        replica.campaign().unwrap();
        let mut log = Log::new();
        let t0 = Moment::from_ms(0);
        replica
            .end_turn(t0, &[], None, &mut collect(&mut log))
            .unwrap();
        assert!(replica.place().is_leader);
        assert!(matches!(
            log[0].0,
            EntryKind::Lead {
                token_floor: 42,
                node: 1
            }
        ));
        let origin = Origin::new(1, 1);
        let t = Moment::from_ms(250);
        replica
            .end_turn(t, &one_request(origin), None, &mut collect(&mut log))
            .unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1], (EntryKind::Batch, 250, vec![origin]));
        assert!(replica.outbox.is_empty());
    }

    #[test]
    fn the_leader_proposes_the_time_when_a_deadline_comes() {
        let mut replica = node(1, &[1]);
        replica.campaign().unwrap();
        let mut log = Log::new();
        replica
            .end_turn(Moment::from_ms(0), &[], None, &mut collect(&mut log))
            .unwrap();
        let deadline = Some(Moment::from_ms(500));
        assert_eq!(replica.wake_for(deadline), Some(Moment::from_ms(500)));
        replica
            .end_turn(Moment::from_ms(400), &[], deadline, &mut collect(&mut log))
            .unwrap();
        assert_eq!(log.len(), 1, "nothing due yet");
        replica
            .end_turn(Moment::from_ms(500), &[], deadline, &mut collect(&mut log))
            .unwrap();
        assert_eq!(log[1], (EntryKind::Batch, 500, vec![]));
        replica
            .end_turn(Moment::from_ms(600), &[], deadline, &mut collect(&mut log))
            .unwrap();
        assert_eq!(log.len(), 2, "that time was proposed once");
    }

    /// Three nodes in memory, messages carried by hand: the leader's turn
    /// commits on every node, relayed commands included, and a new leader
    /// resumes cluster time where the old one's entries left it.
    #[test]
    fn three_nodes_agree_and_time_resumes_after_a_change_of_leader() {
        let voters = [1, 2, 3];
        let mut nodes: Vec<Replica<MemStorage>> =
            voters.iter().map(|&id| node(id, &voters)).collect();
        let mut logs: Vec<Log> = vec![Log::new(), Log::new(), Log::new()];
        let mut down = [false; 3];
        let turn = |nodes: &mut Vec<Replica<MemStorage>>,
                    logs: &mut Vec<Log>,
                    down: &[bool; 3],
                    now: u64,
                    commands: &[(usize, Vec<u8>)]| {
            for round in 0..10 {
                for i in 0..3 {
                    if down[i] {
                        continue;
                    }
                    let mine: Vec<u8> = commands
                        .iter()
                        .filter(|(n, _)| *n == i && round == 0)
                        .flat_map(|(_, c)| c.clone())
                        .collect();
                    let now = Moment::from_ms(now);
                    nodes[i].tick(now);
                    nodes[i]
                        .end_turn(now, &mine, None, &mut collect(&mut logs[i]))
                        .unwrap();
                }
                let mut mail = Vec::new();
                for node in nodes.iter_mut() {
                    mail.append(&mut node.outbox);
                }
                for m in mail {
                    match m {
                        Outgoing::Raft(m) => {
                            let to = usize::try_from(m.to - 1).unwrap();
                            if !down[to] {
                                nodes[to].step(m);
                            }
                        }
                        Outgoing::Relay { to, commands } => {
                            let to = usize::try_from(to - 1).unwrap();
                            if !down[to] {
                                nodes[to].relayed(&commands);
                            }
                        }
                    }
                }
            }
        };
        nodes[0].campaign().unwrap();
        turn(&mut nodes, &mut logs, &down, 0, &[]);
        assert!(nodes[0].place().is_leader);
        let a = Origin::new(1, 1);
        let b = Origin::new(3, 1);
        turn(
            &mut nodes,
            &mut logs,
            &down,
            1000,
            &[(0, one_request(a)), (2, one_request(b))],
        );
        for log in &logs {
            let origins: Vec<Origin> = log.iter().flat_map(|e| e.2.clone()).collect();
            assert!(origins.contains(&a) && origins.contains(&b), "{log:?}");
            assert_eq!(log, &logs[0]);
        }
        let before = logs[1].last().unwrap().1;
        // The leader dies; another wins and leads from the last stamp.
        down[0] = true;
        let mut now = 2000;
        while !(nodes[1].place().is_leader || nodes[2].place().is_leader) {
            assert!(now < 60_000, "no new leader");
            now += 100;
            turn(&mut nodes, &mut logs, &down, now, &[]);
        }
        let new = usize::from(nodes[2].place().is_leader) + 1;
        let lead = logs[new].last().unwrap();
        assert!(matches!(lead.0, EntryKind::Lead { node, .. } if node == new as u64 + 1));
        assert_eq!(lead.1, before, "time stood still through the change");
        let c = Origin::new(2, 1);
        turn(
            &mut nodes,
            &mut logs,
            &down,
            now + 300,
            &[(1, one_request(c))],
        );
        let last = logs[2].last().unwrap();
        assert_eq!(last.2, vec![c]);
        assert_eq!(last.1, before + 300);
        assert_eq!(logs[1], logs[2]);
    }

    /// Carries every node's outbox to the others that are up, after a
    /// turn of each, `rounds` times; membership changes applied go to
    /// `changes` (node index, change), and a node that applies an addition
    /// compacts its log, as the server does, so the newcomer starts from a
    /// snapshot.
    fn exchange(
        nodes: &mut [Replica<MemStorage>],
        down: &[bool],
        now: u64,
        changes: &mut Vec<(usize, MemberChange)>,
    ) {
        for _ in 0..20 {
            for (i, node) in nodes.iter_mut().enumerate() {
                if down[i] {
                    continue;
                }
                let now = Moment::from_ms(now);
                node.tick(now);
                let mut added = false;
                node.end_turn(now, &[], None, &mut |applied| {
                    if let Applied::Membership(change) = applied {
                        added |= change.added;
                        changes.push((i, change));
                    }
                })
                .unwrap();
                if added {
                    node.compact(Vec::new()).unwrap();
                }
            }
            let mail: Vec<Outgoing> = nodes.iter_mut().flat_map(|n| n.outbox.drain(..)).collect();
            for m in mail {
                if let Outgoing::Raft(m) = m {
                    let to = usize::try_from(m.to - 1).unwrap();
                    if to < nodes.len() && !down[to] {
                        nodes[to].step(m);
                    }
                }
            }
        }
    }

    /// A fourth node with an empty log joins through a snapshot and votes;
    /// a member removed no longer counts toward a majority.
    #[test]
    fn a_member_joins_from_a_snapshot_and_another_leaves() {
        let voters = [1, 2, 3];
        let mut nodes: Vec<Replica<MemStorage>> =
            voters.iter().map(|&id| node(id, &voters)).collect();
        let fresh = Replica::new(&settings(4), MemStorage::new(), Moment::START, || 1).unwrap();
        nodes.push(fresh);
        let mut down = vec![false; 4];
        let mut changes = Vec::new();
        nodes[0].campaign().unwrap();
        exchange(&mut nodes, &down, 0, &mut changes);
        assert!(nodes[0].is_leader());
        assert_eq!(
            nodes[1].propose_member(true, 4, "127.0.0.1:9", 7),
            Err(MemberRefusal::NotLeader)
        );
        nodes[0].propose_member(true, 4, "127.0.0.1:9", 7).unwrap();
        assert_eq!(
            nodes[0].propose_member(false, 2, "", 8),
            Err(MemberRefusal::Busy),
            "one change at a time"
        );
        exchange(&mut nodes, &down, 100, &mut changes);
        let joined: Vec<usize> = changes.iter().map(|(i, _)| *i).collect();
        assert_eq!(joined, [0, 1, 2], "applied on the three old members");
        let change = &changes[0].1;
        assert!(change.added && change.node == 4 && change.refused.is_none());
        assert_eq!((change.addr.as_str(), change.asked_by), ("127.0.0.1:9", 7));
        for node in &nodes {
            assert_eq!(node.voters(), [1, 2, 3, 4], "node {}", node.place().node_id);
        }
        let leader = nodes[0].place();
        assert_eq!(nodes[3].place().leader, 1);
        assert!(nodes[3].applied() >= leader.committed - 1, "caught up");
        let first = raft::Storage::first_index(nodes[3].storage()).unwrap();
        assert!(
            first > 1,
            "node 4 started from a snapshot, not from entry 1"
        );

        changes.clear();
        nodes[0].propose_member(false, 2, "", 8).unwrap();
        exchange(&mut nodes, &down, 200, &mut changes);
        assert!(changes.iter().all(|(_, c)| !c.added && c.node == 2));
        assert_eq!(nodes[0].voters(), [1, 3, 4]);
        // Nodes 2 and 3 down: 1 and 4 are a majority of {1, 3, 4}.
        down[1] = true;
        down[2] = true;
        let before = nodes[0].place().committed;
        let mut log = Log::new();
        let origin = Origin::new(1, 9);
        nodes[0]
            .end_turn(
                Moment::from_ms(300),
                &one_request(origin),
                None,
                &mut collect(&mut log),
            )
            .unwrap();
        exchange(&mut nodes, &down, 300, &mut changes);
        assert!(
            nodes[0].place().committed > before,
            "committed with node 4's vote"
        );
        assert_eq!(nodes[3].place().committed, nodes[0].place().committed);
    }
}
