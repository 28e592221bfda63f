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
//! Invariant: the waiters' slab is never renumbered (tickets held by
//! connections name its slots); a ticket's generation tells a stale ticket
//! from the waiter that reuses its slot. Bounds: `max_waiters_per_lock`
//! and `max_waiters_total`, and each waiter is charged to the memory guard.
//!
//! Boundary: nothing here knows connections or writes replies.

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

/// How a parked request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub ticket: Ticket,
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
    tail: WaiterKey,
    len: u32,
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
    pub(super) owner: Box<str>,
    /// The Name the owner was authenticated as, if it was.
    pub(super) owner_name: Option<NameTag>,
    /// The TTL the hold gets when it is granted.
    pub(super) expire: Millis,
    pub(super) mode: Mode,
    /// The limit a shared request asked for (the default when it gave none).
    pub(super) limit: u32,
    pub(super) timer: TimerId,
    prev: WaiterKey,
    pub(super) next: WaiterKey,
    /// Distinguishes successive waiters that reuse one slab slot.
    generation: u32,
}

impl Waiter {
    /// Bytes charged to the memory guard while it waits.
    pub(super) fn cost(&self) -> u64 {
        ENTRY_OVERHEAD + self.owner.len() as u64
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
    /// `limit` is the shared request's (unused for an exclusive one).
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
        {
            return Outcome::Reply(Reply::Bare(Status::NotOwner));
        }
        if !self.charge(ENTRY_OVERHEAD + req.id().len() as u64) {
            return Outcome::Reply(Reply::Bare(Status::No));
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let timer = self
            .wheel
            .schedule(now.after(req.wait()).as_ms(), Due::Waiter(wkey));
        self.waiters.insert(Waiter {
            hold: key,
            owner: req.id().into(),
            owner_name: req.owner_name(),
            expire: req.expire(),
            mode: req.mode(),
            limit,
            timer,
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
        self.counters.waited += 1;
        Outcome::Parked(Ticket {
            waiter: wkey,
            generation,
        })
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
        waiter
    }

    /// Completes waiter `wkey` without a grant (its wait ran out) and drops
    /// it. Its timer is left to the caller. Returns the set of the shared
    /// lock whose queue it headed: the waiters behind it may be grantable.
    pub(super) fn time_out(&mut self, wkey: WaiterKey) -> Option<SetKey> {
        self.counters.wait_timeout += 1;
        self.refuse_waiter(wkey)
    }

    /// Completes waiter `wkey` with `NotOwner` and drops it, as
    /// [`Store::time_out`] does, without counting a time-out.
    pub(super) fn refuse_waiter(&mut self, wkey: WaiterKey) -> Option<SetKey> {
        let unblocks = self.unblocks(wkey);
        let waiter = self.unqueue(wkey);
        self.release(waiter.cost());
        self.completed.push(Completion {
            ticket: waiter.ticket(wkey),
            granted: None,
            mode: waiter.mode,
        });
        unblocks
    }

    /// The set of the shared lock whose queue waiter `wkey` heads, if any:
    /// when the front of such a queue leaves, the next may be granted.
    fn unblocks(&self, wkey: WaiterKey) -> Option<SetKey> {
        let hold = &self.locks[self.waiters[wkey.index()].hold];
        (hold.queue.head == wkey && hold.shared != SetKey::NIL).then_some(hold.shared)
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
            if let Some(set) = self.unblocks(wkey) {
                self.unblocked.push(set);
            }
            let waiter = self.unqueue(wkey);
            self.wheel.cancel(waiter.timer);
            self.release(waiter.cost());
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
