//! Waiting acquire (`Wait` on `Lock`): parked requests and their queues.
//!
//! When another ID holds a lock, a `Lock` with `Wait` becomes a [`Waiter`]
//! in the hold's first-come-first-served [`Queue`]: an intrusive list through
//! the waiters' slab, so a waiter leaves from the middle in O(1). Each waiter
//! has its own wheel timer for its `Wait`. [`Store::apply`] answers
//! [`Outcome::Parked`] with a [`Ticket`]; when the hold ends (`end_hold` in
//! `locks.rs`) the oldest waiter still in time takes it over and a
//! [`Completion`] is queued for the caller to deliver; a waiter whose time
//! runs out completes without a grant. [`Store::cancel_wait`] withdraws the
//! waiters of a connection that closed.
//!
//! A replicated request parks with an [`Origin`] ([`Store::apply_from`]):
//! which node asked, and which of its requests, the same on every node,
//! where a ticket is one node's slot. Its completion carries the origin, and
//! [`Store::cancel_origin`] withdraws it by origin, through a map kept only
//! for waiters that have one (the single server's waiters never touch it).
//! [`Store::cancel_all_waits`] answers every waiter at once (a leader
//! change).
//!
//! Invariant: the waiters' slab is never renumbered (tickets held by
//! connections name its slots); a ticket's generation tells a stale ticket
//! from the waiter that reuses its slot. Bounds: `max_waiters_per_lock`
//! and `max_waiters_total`, and each waiter is charged to the memory guard.
//!
//! Boundary: nothing here knows connections or writes replies.

use std::num::NonZeroU64;

use super::table::{HoldKey, SetKey, SlabKey, WaiterKey, key_at};
use super::wheel::TimerId;
use super::{Due, ENTRY_OVERHEAD, Outcome, Store};
use crate::protocol::request::NameTag;
use crate::protocol::{FencingToken, Mode, Reply, Request, Status};
use crate::time::{Millis, Moment};

/// Names a parked request, so its completion can find its way back and its
/// connection can withdraw it. Unique for the life of the store. Ordered
/// (by slot, then generation) only so that tools can sort them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket {
    waiter: WaiterKey,
    generation: u32,
}

/// Where a replicated request came from: an opaque non-zero number (which
/// node, which of its requests) that is the same on every node applying the
/// log, unlike a [`Ticket`]. At most one parked waiter has a given origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin(pub NonZeroU64);

/// How a parked request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub ticket: Ticket,
    /// The origin it was parked with ([`Store::apply_from`]), if any.
    pub origin: Option<Origin>,
    /// `Some(token)`: the lock was granted (`Locked`); `None`: the wait ran
    /// out or was refused (`NotOwner`).
    pub granted: Option<FencingToken>,
    /// The mode the request asked for (a shared grant's reply says so).
    pub mode: Mode,
}

/// The waiters of one hold, oldest first: an intrusive list through
/// [`Waiter::prev`]/[`Waiter::next`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Queue {
    pub(super) head: WaiterKey,
    pub(super) tail: WaiterKey,
    pub(super) len: u32,
}

impl Queue {
    pub(super) const EMPTY: Queue = Queue {
        head: WaiterKey::NIL,
        tail: WaiterKey::NIL,
        len: 0,
    };
}

/// A `Lock` request parked until the hold it waits on ends or its time runs out.
#[derive(Debug)]
pub(super) struct Waiter {
    /// The hold it waits on.
    pub(super) hold: HoldKey,
    /// What it asked for.
    pub(super) request: Parking,
    pub(super) timer: TimerId,
    /// Its place in its queue: greater than every waiter's ahead of it.
    /// Only compared within one queue, so it says nothing of other locks.
    pub(super) seq: u64,
    pub(super) prev: WaiterKey,
    pub(super) next: WaiterKey,
    /// Distinguishes successive waiters that reuse one slab slot.
    generation: u32,
}

/// What a parked request asked for: all of a waiter but its place.
#[derive(Debug)]
pub(super) struct Parking {
    pub(super) owner: Box<str>,
    /// The Name the owner was authenticated as, if it was.
    pub(super) owner_name: Option<NameTag>,
    /// The TTL the hold gets when it is granted.
    pub(super) expire: Millis,
    pub(super) mode: Mode,
    /// The limit a shared request asked for (the default when it gave
    /// none); 0 for an exclusive one.
    pub(super) limit: u32,
    /// When its wait runs out (its timer's deadline, kept here too so that
    /// a batch of fired timers can be put in order).
    pub(super) until: Moment,
    /// Where a replicated request came from.
    pub(super) origin: Option<Origin>,
}

impl Waiter {
    /// Bytes charged to the memory guard while it waits.
    pub(super) fn cost(&self) -> u64 {
        ENTRY_OVERHEAD + self.request.owner.len() as u64
    }

    pub(super) fn ticket(&self, key: WaiterKey) -> Ticket {
        Ticket {
            waiter: key,
            generation: self.generation,
        }
    }
}

impl Store {
    /// Parks `req` on lock `key`, unless a bound or the memory cap refuses;
    /// `limit` is the shared request's (unused for an exclusive one). The
    /// origin is [`Store::apply_from`]'s, if it called; a second waiter with
    /// the origin of one still parked is refused `NotOwner`, so that an
    /// origin always names one waiter.
    pub(super) fn park<'a>(
        &mut self,
        now: Moment,
        key: HoldKey,
        req: &Request<'a>,
        limit: u32,
    ) -> Outcome<'a> {
        let queue = self.locks[key].queue;
        let Some(wkey) = key_at::<WaiterKey>(self.waiters.vacant_key()) else {
            return Outcome::Reply(Reply::Bare(Status::NotOwner));
        };
        if queue.len >= self.config.max_waiters_per_lock
            || self.waiters.len() >= self.config.max_waiters_total
            || self
                .parking_origin
                .is_some_and(|origin| self.origins.contains_key(&origin))
        {
            return Outcome::Reply(Reply::Bare(Status::NotOwner));
        }
        if !self.charge(ENTRY_OVERHEAD + req.id().len() as u64) {
            return Outcome::Reply(Reply::Bare(Status::No));
        }
        let parking = Parking {
            owner: req.id().into(),
            owner_name: req.owner_name(),
            expire: req.expire(),
            mode: req.mode(),
            limit,
            until: now.after(req.wait()),
            origin: self.parking_origin,
        };
        let ticket = self.enqueue(key, wkey, parking);
        self.counters.waited += 1;
        Outcome::Parked(ticket)
    }

    /// Adds a waiter (already charged) at the end of lock `key`'s queue,
    /// with its timer, at `wkey`, the slab's vacant key (from [`key_at`]);
    /// the caller has checked that its origin, if any, is free.
    pub(super) fn enqueue(&mut self, key: HoldKey, wkey: WaiterKey, parking: Parking) -> Ticket {
        debug_assert_eq!(wkey.index(), self.waiters.vacant_key());
        let queue = self.locks[key].queue;
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let timer = self
            .wheel
            .schedule(parking.until.as_ms(), Due::Waiter(wkey));
        let seq = match queue.tail {
            WaiterKey::NIL => 0,
            tail => self.waiters[tail.index()].seq.wrapping_add(1),
        };
        if let Some(origin) = parking.origin {
            self.origins.insert(origin, wkey);
        }
        self.waiters.insert(Waiter {
            hold: key,
            request: parking,
            timer,
            seq,
            prev: queue.tail,
            next: WaiterKey::NIL,
            generation,
        });
        let hold = &mut self.locks[key];
        if queue.tail == WaiterKey::NIL {
            hold.queue.head = wkey;
        } else {
            self.waiters[queue.tail.index()].next = wkey;
        }
        hold.queue.tail = wkey;
        hold.queue.len += 1;
        Ticket {
            waiter: wkey,
            generation,
        }
    }

    /// Takes waiter `wkey` out of its hold's queue and the waiters' slab.
    /// Its timer is left to the caller.
    pub(super) fn unqueue(&mut self, wkey: WaiterKey) -> Waiter {
        let waiter = self.waiters.remove(wkey.index());
        let queue = &mut self.locks[waiter.hold].queue;
        if waiter.prev == WaiterKey::NIL {
            queue.head = waiter.next;
        } else {
            self.waiters[waiter.prev.index()].next = waiter.next;
        }
        if waiter.next == WaiterKey::NIL {
            queue.tail = waiter.prev;
        } else {
            self.waiters[waiter.next.index()].prev = waiter.prev;
        }
        queue.len -= 1;
        if let Some(origin) = waiter.request.origin {
            self.origins.remove(&origin);
        }
        waiter
    }

    /// Completes waiter `wkey` without a grant (its wait ran out) and drops
    /// it. Its timer is left to the caller. Returns the shared lock whose
    /// queue it headed: the waiters behind it may be grantable.
    pub(super) fn time_out(&mut self, wkey: WaiterKey) -> Option<HoldKey> {
        self.counters.wait_timeout += 1;
        self.refuse_waiter(wkey)
    }

    /// Completes waiter `wkey` with `NotOwner` and drops it, as
    /// [`Store::time_out`] does, without counting a time-out.
    pub(super) fn refuse_waiter(&mut self, wkey: WaiterKey) -> Option<HoldKey> {
        let unblocks = self.unblocks(wkey);
        let waiter = self.unqueue(wkey);
        self.release(waiter.cost());
        self.completed.push(Completion {
            ticket: waiter.ticket(wkey),
            origin: waiter.request.origin,
            granted: None,
            mode: waiter.request.mode,
        });
        unblocks
    }

    /// The shared lock whose queue waiter `wkey` heads, if any: when the
    /// front of such a queue leaves, the next may be granted.
    fn unblocks(&self, wkey: WaiterKey) -> Option<HoldKey> {
        let key = self.waiters[wkey.index()].hold;
        let hold = &self.locks[key];
        (hold.queue.head == wkey && hold.shared != SetKey::NIL).then_some(key)
    }

    /// Withdraws a parked request whose connection went away: it leaves the
    /// queue and is never granted. Unknown or finished tickets are ignored.
    pub fn cancel_wait(&mut self, ticket: Ticket) {
        let wkey = ticket.waiter;
        if self
            .waiters
            .get(wkey.index())
            .is_some_and(|w| w.generation == ticket.generation)
        {
            self.withdraw(wkey);
        }
    }

    /// Withdraws the parked request that has `origin`, as
    /// [`Store::cancel_wait`] does with its ticket; false if no waiter has
    /// it (it was never parked, or has completed or been withdrawn).
    pub fn cancel_origin(&mut self, origin: Origin) -> bool {
        match self.origins.get(&origin) {
            Some(&wkey) => {
                self.withdraw(wkey);
                true
            }
            None => false,
        }
    }

    /// Takes waiter `wkey` out, never to be granted and with no completion.
    fn withdraw(&mut self, wkey: WaiterKey) {
        if let Some(key) = self.unblocks(wkey) {
            self.mark_unblocked(key);
        }
        let waiter = self.unqueue(wkey);
        self.wheel.cancel(waiter.timer);
        self.release(waiter.cost());
    }

    /// Answers every parked request `NotOwner` (a completion without a
    /// grant for each), as a leader change must: lock by lock in the order
    /// of their names' bytes, each queue from its front, so the order of
    /// the completions depends on the logical state only.
    pub fn cancel_all_waits(&mut self) {
        let mut locks: Vec<HoldKey> = self.waiters.iter().map(|(_, w)| w.hold).collect();
        let table = &self.locks;
        locks.sort_unstable_by(|&a, &b| table[a].packed.name().cmp(table[b].packed.name()));
        locks.dedup();
        for key in locks {
            loop {
                let head = self.locks[key].queue.head;
                if head == WaiterKey::NIL {
                    break;
                }
                let timer = self.waiters[head.index()].timer;
                self.wheel.cancel(timer);
                self.refuse_waiter(head);
            }
        }
    }

    /// Moves the completions of parked requests (grants and time-outs) that
    /// happened since the last call into `out`.
    pub fn take_completions(&mut self, out: &mut Vec<Completion>) {
        out.append(&mut self.completed);
    }

    /// Requests parked now.
    pub fn waiter_count(&self) -> usize {
        self.waiters.len()
    }
}
