//! The session's side of a cluster (or of a durable single server): the
//! requests this node proposes, and the replies it owes once they are
//! applied.
//!
//! In replicated mode a request that the store decides is not applied when
//! it arrives: [`Replicated::propose`] encodes it (already parsed and
//! authenticated) into this turn's commands with a fresh [`Origin`], and
//! its connection keeps a slot for the reply (replies still leave in
//! request order). The Raft node proposes the turn's commands as one entry;
//! every node applies every committed entry to its store
//! ([`super::Session::apply_entry`]), and the node that holds the client's
//! connection writes the reply, in the request's encoding. A request whose
//! entry is not applied within `--commit-timeout` is answered
//! `Unavailable` ([`super::Session::expire_proposals`]): its effect is
//! unknown (PROTOCOL.md, Cluster).
//!
//! Bounds: one pending entry per unanswered request, which the
//! connections' `--max-output` and `--batch` bound; the turn's commands are
//! cleared every turn.

use std::collections::VecDeque;

use hashbrown::HashMap;

use super::ConnKey;
use crate::protocol::codec::Encoding;
use crate::protocol::request::NameTag;
use crate::protocol::{Action, Request, Status};
use crate::replication::command::{self, Origin};
use crate::replication::node::Place;
use crate::store::Ticket;
use crate::time::{Millis, Moment};

/// A request this node proposed, not yet answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Proposal {
    pub(super) conn: ConnKey,
    pub(super) encoding: Encoding,
}

/// What applying entries (or the commit timeout) owes a connection.
#[derive(Debug)]
pub enum Delivery {
    /// The reply to the proposed request `origin`, encoded: `bytes` of
    /// [`Deliveries::bytes`] (its status, for `--audit`).
    Reply {
        conn: ConnKey,
        origin: Origin,
        status: Status,
        bytes: std::ops::Range<usize>,
    },
    /// The proposed request `origin` was applied and waits in a queue as
    /// `ticket`.
    Parked {
        conn: ConnKey,
        origin: Origin,
        ticket: Ticket,
    },
}

/// Most room kept for a turn's replies between turns.
pub const MAX_KEPT_REPLY_BYTES: usize = 16 << 20;

/// What a turn owes this node's connections: the deliveries, and the
/// bytes of their replies, one buffer for all (kept from turn to turn, so a
/// reply costs no allocation of its own).
#[derive(Debug, Default)]
pub struct Deliveries {
    pub list: Vec<Delivery>,
    pub bytes: Vec<u8>,
}

impl Deliveries {
    /// Empties both, keeping their room (up to `MAX_KEPT_REPLY_BYTES`
    /// for the replies: a burst's buffer is not kept for ever).
    pub fn clear(&mut self) {
        self.list.clear();
        self.bytes.clear();
        if self.bytes.capacity() > MAX_KEPT_REPLY_BYTES {
            self.bytes = Vec::new();
        }
    }
}

/// The replicated mode's state in a session.
pub struct Replicated {
    pub(super) node: u16,
    next_seq: u64,
    /// This turn's commands, for the Raft node.
    commands: Vec<u8>,
    /// This turn's reads (`TestLock`, `Get`), as commands, for ReadIndex.
    reads: Vec<u8>,
    /// Whether the request being answered may be read without the log:
    /// its connection has no request ahead of it still to be applied, so
    /// reading now keeps the connection's requests in order.
    pub(super) read_now: bool,
    pub(super) proposals: HashMap<Origin, Proposal>,
    /// When each proposal times out, oldest first (the local clock only
    /// moves forward, so this is deadline order).
    timeouts: VecDeque<(Moment, Origin)>,
    commit_timeout: Millis,
    /// Cluster time as of the last applied entry.
    pub cluster_time: Moment,
    /// This node's place, for `Stats`.
    pub(super) place: Place,
    /// Cluster administration (see [`MemberRequest`]).
    pub admin: Admin,
}

/// What cluster administration needs in the session: who may, what the
/// members are, and the changes applied that the Raft node must propose.
#[derive(Debug, Default)]
pub struct Admin {
    /// A cluster with members (`--peers`), not one durable server.
    pub clustered: bool,
    /// The Names (`--admin`) whose authenticated requests may administer.
    pub names: Vec<NameTag>,
    /// `Voters` of a `Members` reply, e.g. `1,2,3`.
    pub voters: String,
    /// `Peers` of a `Members` reply, e.g. `1=10.0.0.1:7001,2=...`.
    pub peers: String,
    /// Changes asked for by applied `AddMember`/`RemoveMember` requests,
    /// for the leader to propose.
    pub requests: Vec<MemberRequest>,
}

/// An applied request to change the membership: the leader proposes it as
/// a raft configuration change; its reply comes once that is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRequest {
    pub origin: Origin,
    pub add: bool,
    pub node: u64,
    /// `HOST:PORT`, for an addition.
    pub addr: String,
    /// The term of the entry that carried it: only the leader of that term
    /// proposes it (a request applied again after a restart, or left by a
    /// leader that fell, is not; its asker got `Unavailable`).
    pub term: u64,
}

/// The member an `AddMember` (`ID=HOST:PORT`) or `RemoveMember` (`ID`)
/// request names in its `FileName`: its node ID (1 to 65535) and address;
/// `None` when it names none.
pub fn member_spec(action: Action, file_name: &str) -> Option<(u64, &str)> {
    let (id, addr) = match action {
        Action::AddMember => file_name.split_once('=')?,
        Action::RemoveMember => (file_name, ""),
        _ => return None,
    };
    let id: u16 = id.trim().parse().ok().filter(|&id| id > 0)?;
    if action == Action::AddMember {
        let (host, port) = addr.rsplit_once(':')?;
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        port.parse::<u16>().ok().filter(|&p| p > 0)?;
        if !host_ok {
            return None;
        }
    }
    Some((u64::from(id), addr))
}

impl Replicated {
    /// Replicated mode for node `node`, answering `Unavailable` after
    /// `commit_timeout`. `first_seq` must differ from every earlier run of
    /// this node (the wall clock's microseconds do): entries of an earlier
    /// run, applied again at start-up, must never match a new request.
    pub fn new(node: u16, commit_timeout: Millis, first_seq: u64) -> Replicated {
        Replicated {
            node,
            next_seq: first_seq,
            commands: Vec::new(),
            reads: Vec::new(),
            read_now: false,
            proposals: HashMap::new(),
            timeouts: VecDeque::new(),
            commit_timeout,
            cluster_time: Moment::from_ms(0),
            place: Place {
                node_id: u64::from(node),
                leader: 0,
                term: 0,
                committed: 0,
                applied: 0,
                is_leader: false,
            },
            admin: Admin::default(),
        }
    }

    /// Whether `action` goes through the log: everything the store
    /// decides, reads included (so they are linearizable).
    pub(super) fn replicates(action: Action) -> bool {
        !matches!(action, Action::Version | Action::Stats | Action::Members)
    }

    /// Adds `request` to this turn's commands (or, a read that may be
    /// answered without the log, to its reads) under a new origin.
    pub(super) fn propose(&mut self, request: &Request<'_>) -> Origin {
        self.next_seq += 1;
        let origin = Origin::new(self.node, self.next_seq);
        let read = matches!(request.action(), Action::TestLock | Action::Get);
        let out = if read && self.read_now {
            &mut self.reads
        } else {
            &mut self.commands
        };
        command::push_request(out, origin, request);
        origin
    }

    /// Moves this turn's reads to `out` (cleared first).
    pub fn take_reads(&mut self, out: &mut Vec<u8>) {
        out.clear();
        out.append(&mut self.reads);
    }

    /// Sends commands (reads that could not be answered without changing
    /// anything) through the log with the next turn's.
    pub fn through_log(&mut self, commands: &[u8]) {
        self.commands.extend_from_slice(commands);
    }

    /// Records who is owed the reply to `origin`, from local time `now`.
    pub(super) fn track(&mut self, origin: Origin, conn: ConnKey, encoding: Encoding, now: Moment) {
        self.proposals.insert(origin, Proposal { conn, encoding });
        self.timeouts
            .push_back((now.after(self.commit_timeout), origin));
    }

    /// Withdraws `origin`'s request from its queue on every node (its
    /// connection is gone or closed its side) and forgets its reply.
    pub(super) fn withdraw(&mut self, origin: Origin) {
        command::push_cancel(&mut self.commands, origin);
        self.proposals.remove(&origin);
    }

    /// The commands gathered this turn; cleared by [`Replicated::clear_turn`].
    pub fn turn_commands(&self) -> &[u8] {
        &self.commands
    }

    pub fn clear_turn(&mut self) {
        self.commands.clear();
    }

    /// The proposals whose time ran out by `now`, oldest first, removed.
    pub(super) fn timed_out(&mut self, now: Moment, out: &mut Vec<(Origin, Proposal)>) {
        while let Some(&(deadline, origin)) = self.timeouts.front() {
            if deadline > now {
                break;
            }
            self.timeouts.pop_front();
            if let Some(p) = self.proposals.remove(&origin) {
                out.push((origin, p));
            }
        }
    }

    /// The sequence number of the last request proposed (origins are
    /// `(node, seq)`).
    pub fn last_seq(&self) -> u64 {
        self.next_seq
    }

    /// When the oldest proposal times out.
    pub fn next_timeout(&self) -> Option<Moment> {
        self.timeouts.front().map(|&(t, _)| t)
    }

    /// Updates this node's place, for `Stats`.
    pub fn set_place(&mut self, place: Place) {
        self.place = place;
    }

    /// The fields a member's `Stats` adds.
    pub(super) fn place_fields(&self) -> [(&'static str, u64); 5] {
        let p = &self.place;
        [
            ("NodeId", p.node_id),
            ("Leader", p.leader),
            ("Term", p.term),
            ("Committed", p.committed),
            ("Applied", p.applied),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_named_by_id_and_address() {
        let add = |name| member_spec(Action::AddMember, name);
        assert_eq!(add("4=127.0.0.1:7004"), Some((4, "127.0.0.1:7004")));
        assert_eq!(add("65535=db-4.example:1"), Some((65535, "db-4.example:1")));
        assert_eq!(add("4=[::1]:7004"), Some((4, "[::1]:7004")));
        for bad in [
            "4",
            "0=h:1",
            "65536=h:1",
            "4=h",
            "4=h:0",
            "4=:1",
            "x=h:1",
            "4=h\"x:1",
        ] {
            assert_eq!(add(bad), None, "{bad}");
        }
        let remove = |name| member_spec(Action::RemoveMember, name);
        assert_eq!(remove("2"), Some((2, "")));
        assert_eq!(remove("0"), None);
        assert_eq!(remove("2=h:1"), None);
        assert_eq!(member_spec(Action::Lock, "2"), None);
    }
}
