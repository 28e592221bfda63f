//! The replies of one connection that wait behind parked requests.
//!
//! Replies on a connection leave in request order, parked or not. While no
//! request of the connection is parked, replies go straight to its output.
//! From the first parked request on, each parked request has a slot that
//! collects the replies of the requests behind it; when a parked request
//! completes, every slot at the front that has its reply is released into
//! the output, in order.
//!
//! Bound: the bytes held here count toward `--max-output` (see
//! [`super::Connection::pending_output`]), so a connection whose replies pile
//! up behind a long wait stops being read.

use std::collections::VecDeque;

use crate::protocol::codec::Encoding;
use crate::replication::command::Origin;
use crate::store::Ticket;

/// What a slot waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Awaited {
    /// A request parked in a lock's queue.
    Wait(Ticket),
    /// In a cluster: a request proposed and not yet applied.
    Commit(Origin),
}

/// A reply slot for a parked request.
struct Slot {
    awaited: Awaited,
    /// In a cluster, the request's origin (kept once it parks, to withdraw it).
    origin: Option<Origin>,
    /// The ID its `Locked` reply names.
    id: Box<str>,
    encoding: Encoding,
    /// Its reply, once the wait is over.
    reply: Option<Vec<u8>>,
    /// Replies to the requests that came after it, in order.
    behind: Vec<u8>,
}

/// Parked requests of one connection, oldest first, with the replies held
/// back behind each.
#[derive(Default)]
pub(super) struct ParkedReplies {
    slots: VecDeque<Slot>,
    /// Bytes of replies held back (answers of parked requests included).
    held: usize,
    /// Slots still waiting for their commit (asked once per line).
    commits: usize,
}

impl ParkedReplies {
    /// Whether a request of this connection waits (or its reply is held).
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes held back.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Where the next reply goes if a request is parked: behind the newest
    /// parked request. `None`: straight to the output.
    pub(super) fn behind_newest(&mut self) -> Option<&mut Vec<u8>> {
        self.slots.back_mut().map(|slot| &mut slot.behind)
    }

    /// Records that `bytes` more are held (after writing into
    /// [`ParkedReplies::behind_newest`]).
    pub(super) fn note_held(&mut self, bytes: usize) {
        self.held += bytes;
    }

    /// A new parked (or, in a cluster, proposed) request, behind every
    /// earlier one.
    pub(super) fn park(&mut self, awaited: Awaited, id: Box<str>, encoding: Encoding) {
        let origin = match awaited {
            Awaited::Commit(origin) => {
                self.commits += 1;
                Some(origin)
            }
            Awaited::Wait(_) => None,
        };
        self.slots.push_back(Slot {
            awaited,
            origin,
            id,
            encoding,
            reply: None,
            behind: Vec::new(),
        });
    }

    /// The ID and encoding of the waiting request `awaited`, if it is one of
    /// this connection's and still unanswered.
    pub(super) fn waiting(&self, awaited: Awaited) -> Option<(&str, Encoding)> {
        self.slots
            .iter()
            .find(|s| s.awaited == awaited && s.reply.is_none())
            .map(|s| (&*s.id, s.encoding))
    }

    /// The requests still unanswered, oldest first, with their origins.
    pub(super) fn unanswered(&self) -> Vec<(Awaited, Option<Origin>)> {
        self.slots
            .iter()
            .filter(|s| s.reply.is_none())
            .map(|s| (s.awaited, s.origin))
            .collect()
    }

    /// Whether a proposed request is still to be applied.
    pub(super) fn awaits_commit(&self) -> bool {
        debug_assert_eq!(
            self.commits,
            self.slots
                .iter()
                .filter(|s| matches!(s.awaited, Awaited::Commit(_)) && s.reply.is_none())
                .count(),
            "the count of slots awaiting a commit"
        );
        self.commits > 0
    }

    /// A proposed request was applied and parked in a lock's queue: from now
    /// on it waits for `ticket`.
    pub(super) fn committed_parked(&mut self, origin: Origin, ticket: Ticket) {
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.awaited == Awaited::Commit(origin) && s.reply.is_none())
        {
            slot.awaited = Awaited::Wait(ticket);
            self.commits -= 1;
        }
    }

    /// Gives request `awaited` its reply, then moves every slot at the
    /// front that has its reply, and the replies behind it, to `output`.
    pub(super) fn answer(&mut self, awaited: Awaited, reply: &[u8], output: &mut Vec<u8>) {
        let Some(at) = self
            .slots
            .iter()
            .position(|s| s.awaited == awaited && s.reply.is_none())
        else {
            return;
        };
        if let Awaited::Commit(_) = awaited {
            self.commits -= 1;
        }
        if at == 0 {
            // The oldest: out at once, with what waited behind it (the
            // usual case, and no copy kept).
            if let Some(front) = self.slots.pop_front() {
                self.held -= front.behind.len();
                output.extend_from_slice(reply);
                output.extend_from_slice(&front.behind);
            }
        } else {
            self.held += reply.len();
            self.slots[at].reply = Some(reply.to_vec());
        }
        while let Some(front) = self.slots.front_mut() {
            let Some(reply) = front.reply.take() else {
                break;
            };
            self.held -= reply.len() + front.behind.len();
            output.extend_from_slice(&reply);
            output.extend_from_slice(&front.behind);
            self.slots.pop_front();
        }
    }
}
