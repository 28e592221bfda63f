//! Locks held shared: `Lock`, `Unlock` and `TestLock` on them, conversions
//! between the modes, and granting a queue of waiters of both modes.
//!
//! The rules are PROTOCOL.md's ("Shared locks and semaphores"). A shared
//! request is granted when the lock is free, or held shared with fewer than
//! its limit of shares and nobody waiting; the limit is fixed by the grant
//! that takes the lock from nobody, and a shared request naming another
//! limit gets `NotOwner`. The same ID asking again in the mode it holds
//! renews (same token); asking for the other mode converts, with a new
//! token, only when it is the sole holder.
//!
//! The queue is served from the front only: the front is granted as soon as
//! it can be, then the next ([`Store::grant_queue`]), so a run of shared
//! waiters joins in one turn and nobody is overtaken. A waiter whose limit
//! differs from the lock's when it reaches the front is answered
//! `NotOwner`.
//!
//! Exclusive traffic never comes here: `locks.rs` branches off on the
//! lock's mode or the request's.
//!
//! Boundary: as `locks.rs`: time is an argument, replies are built here and
//! written and counted by the caller.

use super::locks::HoldTimer;
use super::shared::holder_cost;
use super::table::{Entry, HoldKey, HolderKey, SetKey, SlabKey, WaiterKey};
use super::waiters::{Completion, Queue};
use super::{Due, ENTRY_OVERHEAD, Outcome, Store, locks::Hold};
use crate::protocol::request::NameTag;
use crate::protocol::{FencingToken, Mode, Reply, Request, Status};
use crate::time::Moment;

/// Where the own timer of a lock held shared stands: the end of time (its
/// shares have the real ones).
pub(super) const NEVER: u64 = u64::MAX;

impl Store {
    /// The limit a shared request asks for: its `Limit`, or `max_holders`;
    /// `None` past `max_holders` (only a hand-built request gets there: the
    /// parser refuses it).
    fn limit_of(&self, req: &Request<'_>) -> Option<u32> {
        let limit = req.limit().unwrap_or(self.config.max_holders);
        (1..=self.config.max_holders)
            .contains(&limit)
            .then_some(limit)
    }

    /// A new lock held shared by `req.id()` alone.
    #[cold]
    pub(super) fn new_shared_lock<'a>(
        &mut self,
        hash: u64,
        deadline: Moment,
        req: &Request<'a>,
    ) -> Reply<'a> {
        let Some(limit) = self.limit_of(req) else {
            return Reply::Bare(Status::BadPayload);
        };
        let (Some(key), Some(hkey)) = (self.locks.vacant_key(), self.holders.vacant_key()) else {
            return Reply::Bare(Status::No);
        };
        let Some(packed) = self.recycler.pack(req.name(), "", None, "") else {
            return Reply::Bare(Status::BadPayload);
        };
        let cost = ENTRY_OVERHEAD + packed.len() as u64 + holder_cost(req.id());
        if !self.charge(cost) {
            self.recycler.recycle(packed);
            return Reply::Bare(Status::No);
        }
        let Some(set) = self.holders.new_set(key, limit) else {
            self.release(cost);
            self.recycler.recycle(packed);
            return Reply::Bare(Status::No);
        };
        let timer = self.wheel.schedule(NEVER, Due::Lock(key));
        self.locks.insert(
            hash,
            key,
            Hold {
                packed,
                deadline,
                token: FencingToken::new(0),
                timer,
                queue: Queue::EMPTY,
                shared: set,
                pending: false,
            },
        );
        let token = self.add_share(key, hkey, (req.id(), req.owner_name()), deadline);
        self.counters.lock += 1;
        self.counters.a_lock = self.locks.len() as u64;
        Reply::LockedShared {
            id: req.id(),
            token,
        }
    }

    /// A `Lock` on the live lock `key` where the lock is held shared or the
    /// request is shared.
    #[cold]
    pub(super) fn lock_either_mode<'a>(
        &mut self,
        now: Moment,
        key: HoldKey,
        deadline: Moment,
        req: &Request<'a>,
    ) -> Outcome<'a> {
        let limit = match req.mode() {
            Mode::Exclusive => 0,
            Mode::Shared => match self.limit_of(req) {
                Some(limit) => limit,
                None => return Outcome::Reply(Reply::Bare(Status::BadPayload)),
            },
        };
        let set = self.locks[key].shared;
        if set == SetKey::NIL {
            // Held exclusively; the request is shared.
            if self.locks[key].is_owned_by(req.id(), req.owner_name()) {
                return Outcome::Reply(self.downgrade(now, key, deadline, limit, req));
            }
            return self.refuse_or_park(now, key, req, limit);
        }
        if let Some(hkey) = self.holders.find(set, req.id(), req.owner_name()) {
            let shares = self.holders.set(set);
            let reply = match req.mode() {
                Mode::Shared if limit != shares.limit => Reply::Bare(Status::NotOwner),
                Mode::Shared => self.renew_share(key, hkey, deadline, req),
                Mode::Exclusive if shares.len() == 1 => self.upgrade(key, hkey, deadline, req),
                Mode::Exclusive => Reply::Bare(Status::NotOwner),
            };
            return Outcome::Reply(reply);
        }
        if req.mode() == Mode::Shared {
            let shares = self.holders.set(set);
            if limit != shares.limit {
                return Outcome::Reply(Reply::Bare(Status::NotOwner));
            }
            if shares.len() < shares.limit && self.locks[key].queue.head == WaiterKey::NIL {
                return Outcome::Reply(self.join(key, deadline, req));
            }
        }
        self.refuse_or_park(now, key, req, limit)
    }

    fn refuse_or_park<'a>(
        &mut self,
        now: Moment,
        key: HoldKey,
        req: &Request<'a>,
        limit: u32,
    ) -> Outcome<'a> {
        if req.wait().is_zero() {
            Outcome::Reply(Reply::Bare(Status::NotOwner))
        } else {
            self.park(now, key, req, limit)
        }
    }

    /// A new share for `req.id()` on lock `key`, held shared with room.
    fn join<'a>(&mut self, key: HoldKey, deadline: Moment, req: &Request<'a>) -> Reply<'a> {
        let Some(hkey) = self.holders.vacant_key() else {
            return Reply::Bare(Status::No);
        };
        if !self.charge(holder_cost(req.id())) {
            return Reply::Bare(Status::No);
        }
        let token = self.add_share(key, hkey, (req.id(), req.owner_name()), deadline);
        self.counters.lock += 1;
        Reply::LockedShared {
            id: req.id(),
            token,
        }
    }

    /// The caller's share `hkey` of lock `key` renewed until `deadline`.
    fn renew_share<'a>(
        &mut self,
        key: HoldKey,
        hkey: HolderKey,
        deadline: Moment,
        req: &Request<'a>,
    ) -> Reply<'a> {
        let token = self.move_share(key, hkey, deadline);
        self.counters.relock += 1;
        Reply::LockedShared {
            id: req.id(),
            token,
        }
    }

    /// Share `hkey` of lock `key` now ends at `deadline`; returns its token.
    fn move_share(&mut self, key: HoldKey, hkey: HolderKey, deadline: Moment) -> FencingToken {
        let share = &mut self.holders[hkey];
        share.deadline = deadline;
        self.wheel.reschedule(share.timer, deadline.as_ms());
        let hold = &mut self.locks[key];
        hold.deadline = hold.deadline.min(deadline);
        share.token
    }

    /// Adds the share `hkey` (a vacant key, already charged) of `owner` to
    /// lock `key`, held shared: a new token, its own timer.
    fn add_share(
        &mut self,
        key: HoldKey,
        hkey: HolderKey,
        owner: (&str, Option<NameTag>),
        deadline: Moment,
    ) -> FencingToken {
        let token = self.take_token();
        let timer = self.wheel.schedule(deadline.as_ms(), Due::Holder(hkey));
        let hold = &mut self.locks[key];
        hold.deadline = hold.deadline.min(deadline);
        self.holders
            .insert(hkey, hold.shared, owner, deadline, token, timer);
        token
    }

    /// The sole, exclusive holder of lock `key` converts to a share (with a
    /// new token) of the lock, now held shared with limit `limit`.
    fn downgrade<'a>(
        &mut self,
        now: Moment,
        key: HoldKey,
        deadline: Moment,
        limit: u32,
        req: &Request<'a>,
    ) -> Reply<'a> {
        let Some(hkey) = self.holders.vacant_key() else {
            return Reply::Bare(Status::No);
        };
        // The owner's bytes move from the lock to the share, which adds an
        // entry's overhead.
        if !self.charge(ENTRY_OVERHEAD) {
            return Reply::Bare(Status::No);
        }
        let name_only = self
            .recycler
            .pack(self.locks[key].packed.name(), "", None, "");
        let (Some(packed), Some(set)) = (name_only, self.holders.new_set(key, limit)) else {
            self.release(ENTRY_OVERHEAD);
            return Reply::Bare(Status::No);
        };
        let hold = &mut self.locks[key];
        let old_cost = hold.cost();
        self.recycler
            .recycle(std::mem::replace(&mut hold.packed, packed));
        // The owner's Name tag, if it had one, left with it: the share
        // keeps its tag apart, uncharged, as every share does.
        let tag = (old_cost + ENTRY_OVERHEAD).saturating_sub(hold.cost() + holder_cost(req.id()));
        hold.shared = set;
        hold.deadline = deadline;
        self.wheel.reschedule(hold.timer, NEVER);
        self.release(tag);
        let token = self.add_share(key, hkey, (req.id(), req.owner_name()), deadline);
        self.counters.lock += 1;
        // Shared waiters at the front may join it now.
        self.grant_queue(now, key);
        Reply::LockedShared {
            id: req.id(),
            token,
        }
    }

    /// The sole share `hkey` of lock `key` converts to an exclusive hold,
    /// with a new token.
    fn upgrade<'a>(
        &mut self,
        key: HoldKey,
        hkey: HolderKey,
        deadline: Moment,
        req: &Request<'a>,
    ) -> Reply<'a> {
        let Some(packed) = self.recycler.pack(
            self.locks[key].packed.name(),
            req.id(),
            req.owner_name(),
            "",
        ) else {
            return Reply::Bare(Status::BadPayload);
        };
        let share = self.holders.remove(hkey);
        self.wheel.cancel(share.timer);
        self.holders.remove_set(share.set);
        let token = self.take_token();
        let hold = &mut self.locks[key];
        // The share's charge and the lock's are the hold's now, which may
        // be more than the two by a Name tag: a transfer, as in
        // `hand_over`, that the memory guard is not asked about.
        let old_cost = hold.cost() + share.cost();
        self.recycler
            .recycle(std::mem::replace(&mut hold.packed, packed));
        let new_cost = hold.cost();
        hold.shared = SetKey::NIL;
        hold.token = token;
        hold.deadline = deadline;
        self.wheel.reschedule(hold.timer, deadline.as_ms());
        self.release(old_cost);
        self.bytes = self.bytes.saturating_add(new_cost);
        self.counters.lock += 1;
        Reply::Locked {
            id: req.id(),
            token,
        }
    }

    /// `Unlock` of the live lock `key`, held shared: ends the caller's own
    /// share only.
    #[cold]
    pub(super) fn unlock_share<'a>(
        &mut self,
        now: Moment,
        key: HoldKey,
        hash: u64,
        req: &Request<'a>,
    ) -> Reply<'a> {
        let Some(hkey) = self
            .holders
            .find(self.locks[key].shared, req.id(), req.owner_name())
        else {
            return Reply::Bare(Status::NotOwner);
        };
        let share = self.holders.remove(hkey);
        self.wheel.cancel(share.timer);
        self.release(share.cost());
        self.counters.unlock += 1;
        if self.holders.set(share.set).len() == 0 {
            self.end_hold(now, key, hash, HoldTimer::Scheduled);
        } else {
            self.grant_queue(now, key);
        }
        Reply::WithId(Status::Unlocked, req.id())
    }

    /// `TestLock` of the live lock `key`, held shared.
    #[cold]
    pub(super) fn test_share<'a>(&self, key: HoldKey, req: &Request<'a>) -> Reply<'a> {
        let set = self.locks[key].shared;
        match self.holders.find(set, req.id(), req.owner_name()) {
            Some(_) => Reply::HeldShared {
                id: req.id(),
                holders: self.holders.set(set).len(),
            },
            None => Reply::Bare(Status::NotOwner),
        }
    }

    /// Expiry on access of lock `key` (held shared, named with hash `hash`)
    /// at `now`, which has reached the lower bound of its shares' deadlines:
    /// every share that ended leaves. The lock's key if it is still live
    /// (shares remain, or it passed to waiters).
    #[cold]
    pub(super) fn prune_shares(&mut self, now: Moment, key: HoldKey, hash: u64) -> Option<HoldKey> {
        let ended = self.end_late_shares(now, key);
        if self.holders.set(self.locks[key].shared).len() == 0 {
            return self
                .end_hold(now, key, hash, HoldTimer::Scheduled)
                .then_some(key);
        }
        if ended {
            self.grant_queue(now, key);
        }
        Some(key)
    }

    /// Removes the shares of lock `key` (held shared) whose deadline has
    /// passed by `now` (their timers not yet fired) and makes the lock's
    /// bound exact again; true if any left. The lock may be left with no
    /// share: the caller ends it.
    fn end_late_shares(&mut self, now: Moment, key: HoldKey) -> bool {
        let set = self.locks[key].shared;
        let mut earliest = Moment::from_ms(NEVER);
        let mut ended = false;
        let mut at = 0;
        while let Some(&hkey) = self.holders.set(set).members().get(at) {
            let deadline = self.holders[hkey].deadline;
            if deadline > now {
                earliest = earliest.min(deadline);
                at += 1;
                continue;
            }
            // The last member moves into `at`: look there again.
            let share = self.holders.remove(hkey);
            self.wheel.cancel(share.timer);
            self.release(share.cost());
            self.counters.expired_lock += 1;
            ended = true;
        }
        self.locks[key].deadline = earliest;
        ended
    }

    /// Gives lock `key`, which nobody holds now, to its first waiter `head`,
    /// which asks to share it: the lock is held shared with the waiter's
    /// limit, then the shared waiters behind it join while there is room.
    /// False (and the waiter refused) if the slabs cannot grow.
    pub(super) fn hand_over_shared(
        &mut self,
        now: Moment,
        key: HoldKey,
        head: WaiterKey,
        timer: HoldTimer,
    ) -> bool {
        let limit = self.waiters[head.index()].request.limit;
        let name_only = self
            .recycler
            .pack(self.locks[key].packed.name(), "", None, "");
        let ready = match (self.holders.vacant_key(), name_only) {
            (Some(hkey), Some(packed)) => match self.holders.new_set(key, limit) {
                Some(set) => Some((hkey, packed, set)),
                None => {
                    self.recycler.recycle(packed);
                    None
                }
            },
            (_, packed) => {
                if let Some(packed) = packed {
                    self.recycler.recycle(packed);
                }
                None
            }
        };
        let Some((hkey, packed, set)) = ready else {
            let waiter_timer = self.waiters[head.index()].timer;
            self.wheel.cancel(waiter_timer);
            self.refuse_waiter(head);
            return false;
        };
        let waiter = self.unqueue(head);
        self.wheel.cancel(waiter.timer);
        let deadline = now.after(waiter.request.expire);
        let hold = &mut self.locks[key];
        // The waiter's charge (an entry's overhead and its owner) is the
        // share's; the previous owner's bytes (and Name tag) leave the lock.
        let old_cost = hold.cost();
        self.recycler
            .recycle(std::mem::replace(&mut hold.packed, packed));
        let old_owner = old_cost.saturating_sub(hold.cost());
        hold.shared = set;
        hold.deadline = deadline;
        match timer {
            HoldTimer::Scheduled => self.wheel.reschedule(hold.timer, NEVER),
            HoldTimer::Fired => hold.timer = self.wheel.schedule(NEVER, Due::Lock(key)),
        }
        self.release(old_owner);
        let token = self.add_share(
            key,
            hkey,
            (&waiter.request.owner, waiter.request.owner_name),
            deadline,
        );
        self.completed.push(Completion {
            ticket: waiter.ticket(head),
            origin: waiter.request.origin,
            granted: Some(token),
            mode: Mode::Shared,
        });
        self.counters.lock += 1;
        self.grant_queue(now, key);
        true
    }

    /// Grants the front of lock `key`'s queue while it can be granted: the
    /// lock is held shared, the front asks to share it with the same limit,
    /// and there is room (or the front's ID holds a share already, which it
    /// renews). Late waiters at the front time out; a front whose limit
    /// differs is refused. Stops at the first waiter that must wait.
    pub(super) fn grant_queue(&mut self, now: Moment, key: HoldKey) {
        loop {
            let hold = &self.locks[key];
            let (set, head) = (hold.shared, hold.queue.head);
            if set == SetKey::NIL || head == WaiterKey::NIL {
                return;
            }
            // Shares whose time is up (their timers not yet fired) neither
            // take room nor keep the limit.
            if hold.deadline <= now
                && self.end_late_shares(now, key)
                && self.holders.set(set).len() == 0
            {
                let hash = self.locks.hash_of(key);
                self.end_hold(now, key, hash, HoldTimer::Scheduled);
                return;
            }
            let waiter = &self.waiters[head.index()];
            let late = Moment::from_ms(self.wheel.deadline(waiter.timer)) <= now;
            if !late && waiter.request.mode == Mode::Exclusive {
                return;
            }
            let shares = self.holders.set(set);
            if late || waiter.request.limit != shares.limit {
                let waiter_timer = waiter.timer;
                self.wheel.cancel(waiter_timer);
                if late {
                    self.time_out(head);
                } else {
                    self.refuse_waiter(head);
                }
                continue;
            }
            let held = self
                .holders
                .find(set, &waiter.request.owner, waiter.request.owner_name);
            let hkey = match held {
                Some(hkey) => hkey,
                None if shares.len() >= shares.limit => return,
                None => match self.holders.vacant_key() {
                    Some(hkey) => hkey,
                    None => {
                        let waiter_timer = waiter.timer;
                        self.wheel.cancel(waiter_timer);
                        self.refuse_waiter(head);
                        continue;
                    }
                },
            };
            let waiter = self.unqueue(head);
            self.wheel.cancel(waiter.timer);
            let deadline = now.after(waiter.request.expire);
            let token = if held.is_some() {
                // Its ID shares the lock already (it asked twice): a renewal,
                // and the waiter's own charge goes.
                self.release(waiter.cost());
                self.counters.relock += 1;
                self.move_share(key, hkey, deadline)
            } else {
                // The waiter's charge is the new share's.
                self.counters.lock += 1;
                self.add_share(
                    key,
                    hkey,
                    (&waiter.request.owner, waiter.request.owner_name),
                    deadline,
                )
            };
            self.completed.push(Completion {
                ticket: waiter.ticket(head),
                origin: waiter.request.origin,
                granted: Some(token),
                mode: Mode::Shared,
            });
        }
    }

    /// Share `hkey`, whose timer the wheel has just fired (and dropped),
    /// leaves its lock; returns its set (its lock is settled at the end of
    /// the expiry).
    pub(super) fn end_share(&mut self, hkey: HolderKey) -> SetKey {
        let share = self.holders.remove(hkey);
        self.release(share.cost());
        share.set
    }

    /// After shares left or a front waiter went away: each lock marked in
    /// `unblocked` (stale keys skipped) that is still held shared passes on
    /// if no share is left, or grants its queue. In the order of the locks'
    /// names, since each may hand out tokens: never in the order of keys,
    /// which depend on the tables' layout.
    pub(super) fn settle_unblocked(&mut self, now: Moment) {
        let mut keys = std::mem::take(&mut self.unblocked);
        let locks = &self.locks;
        keys.retain(|&key| locks.get(key).is_some_and(|hold| hold.pending));
        if keys.len() > 1 {
            keys.sort_unstable_by(|&a, &b| locks[a].packed.name().cmp(locks[b].packed.name()));
            keys.dedup();
        }
        for &key in &keys {
            // Nothing below removes or marks a lock other than `key`.
            let hold = &mut self.locks[key];
            hold.pending = false;
            let set = hold.shared;
            if set == SetKey::NIL {
                continue;
            }
            if self.holders.set(set).len() == 0 {
                let hash = self.locks.hash_of(key);
                self.end_hold(now, key, hash, HoldTimer::Scheduled);
            } else {
                self.grant_queue(now, key);
            }
        }
        keys.clear();
        self.unblocked = keys;
    }
}
