//! Locks: `Lock`, `Unlock`, `TestLock`, and the end of a hold.
//!
//! A lock is free, held exclusively by one owner until its deadline (this
//! file, the fast path), or held shared by a set of shares, each with its
//! own owner, deadline, timer and token (`sharing.rs`). When a hold ends
//! (unlock, expiry seen by the wheel or on access), the oldest waiter still
//! in time takes it over at once with a new fencing token (see
//! `waiters.rs`), and after it every shared waiter that can join; only a
//! lock with no such waiter is removed.
//!
//! Invariants: a lock with waiters is never free; an exclusive hold has no
//! other holder beside it, and a shared lock at most its limit of shares;
//! waiters are granted in arrival order; every new hold or share gets a
//! token greater than every token before it.
//!
//! Boundary: time is an argument; replies are built here but written and
//! counted by the caller.

use super::packed::Packed;
use super::table::{Entry, HoldKey, SetKey, SlabKey, WaiterKey, packed_entry};
use super::waiters::{Completion, Queue};
use super::wheel::TimerId;
use super::{Due, ENTRY_OVERHEAD, Outcome, Store};
use crate::protocol::request::NameTag;
use crate::protocol::{FencingToken, Mode, Reply, Request, Status};
use crate::time::Moment;

/// A lock held by an owner until `deadline`, or held shared.
///
/// Held shared (`shared` is not `NIL`), the owner is empty, `token` is
/// unused, `deadline` is a lower bound of the shares' deadlines (when the
/// clock reaches it, the shares are checked on access) and the timer stands
/// at the end of time: the shares have their own.
#[derive(Debug)]
pub(super) struct Hold {
    /// Name and owner.
    pub(super) packed: Packed,
    pub(super) deadline: Moment,
    pub(super) token: FencingToken,
    pub(super) timer: TimerId,
    pub(super) queue: Queue,
    /// The shares of a lock held shared; `SetKey::NIL` when exclusive.
    pub(super) shared: SetKey,
    /// In `Store::unblocked`: its queue may have become grantable.
    pub(super) pending: bool,
}

impl Hold {
    /// Whether this exclusive hold belongs to the caller `id`: the one
    /// ownership comparison of exclusive holds.
    #[inline]
    pub(super) fn is_owned_by(&self, id: &str, name: Option<NameTag>) -> bool {
        self.packed.is_owned_by(id, name)
    }
}

packed_entry!(Hold => HoldKey);

/// Whether the timer of a hold that ends is still in the wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoldTimer {
    /// Scheduled: cancel or move it.
    Scheduled,
    /// The wheel has just fired (and dropped) it.
    Fired,
}

impl Store {
    pub(super) fn lock<'a>(&mut self, now: Moment, req: &Request<'a>) -> Outcome<'a> {
        let deadline = now.after(req.expire());
        let hash = self.locks.hash(req.name());
        let Some(key) = self.live_lock(now, hash, req.name()) else {
            if req.mode() == Mode::Shared {
                return Outcome::Reply(self.new_shared_lock(hash, deadline, req));
            }
            if req.expire().is_zero() {
                // Granted with no time: a new token, and nothing to keep.
                let token = self.take_token();
                self.counters.lock += 1;
                return Outcome::Reply(Reply::Locked {
                    id: req.id(),
                    token,
                });
            }
            return Outcome::Reply(self.new_hold(hash, deadline, req));
        };
        let hold = &mut self.locks[key];
        if hold.shared != SetKey::NIL || req.mode() == Mode::Shared {
            return self.lock_either_mode(now, key, deadline, req);
        }
        if !hold.is_owned_by(req.id(), req.owner_name()) {
            return if req.wait().is_zero() {
                Outcome::Reply(Reply::Bare(Status::NotOwner))
            } else {
                self.park(now, key, req, 0)
            };
        }
        if req.expire().is_zero() {
            // Renewed with no time: the hold ends at once (to the next
            // waiter, if one is in time).
            let token = hold.token;
            self.end_hold(now, key, hash, HoldTimer::Scheduled);
            self.counters.relock += 1;
            return Outcome::Reply(Reply::Locked {
                id: req.id(),
                token,
            });
        }
        hold.deadline = deadline;
        self.wheel.reschedule(hold.timer, deadline.as_ms());
        self.counters.relock += 1;
        Outcome::Reply(Reply::Locked {
            id: req.id(),
            token: hold.token,
        })
    }

    /// A new hold on the free lock `req.name()` (whose hash is `hash`).
    fn new_hold<'a>(&mut self, hash: u64, deadline: Moment, req: &Request<'a>) -> Reply<'a> {
        let Some(key) = self.locks.vacant_key() else {
            return Reply::Bare(Status::No);
        };
        let Some(packed) = self
            .recycler
            .pack(req.name(), req.id(), req.owner_name(), "")
        else {
            return Reply::Bare(Status::BadPayload);
        };
        let cost = ENTRY_OVERHEAD + packed.len() as u64;
        if !self.charge(cost) {
            self.recycler.recycle(packed);
            return Reply::Bare(Status::No);
        }
        let token = self.take_token();
        // The timer is scheduled first, carrying the key the entry is about
        // to get.
        let timer = self.wheel.schedule(deadline.as_ms(), Due::Lock(key));
        self.locks.insert(
            hash,
            key,
            Hold {
                packed,
                deadline,
                token,
                timer,
                queue: Queue::EMPTY,
                shared: SetKey::NIL,
                pending: false,
            },
        );
        self.counters.lock += 1;
        self.counters.a_lock = self.locks.len() as u64;
        Reply::Locked {
            id: req.id(),
            token,
        }
    }

    pub(super) fn unlock<'a>(&mut self, now: Moment, req: &Request<'a>) -> Reply<'a> {
        let hash = self.locks.hash(req.name());
        let Some(key) = self.live_lock(now, hash, req.name()) else {
            self.counters.unlock_nf += 1;
            return Reply::Bare(Status::Unlocked);
        };
        if self.locks[key].shared != SetKey::NIL {
            return self.unlock_share(now, key, hash, req);
        }
        if !self.locks[key].is_owned_by(req.id(), req.owner_name()) {
            return Reply::Bare(Status::NotOwner);
        }
        self.end_hold(now, key, hash, HoldTimer::Scheduled);
        self.counters.unlock += 1;
        Reply::WithId(Status::Unlocked, req.id())
    }

    pub(super) fn test_lock<'a>(&mut self, now: Moment, req: &Request<'a>) -> Reply<'a> {
        let hash = self.locks.hash(req.name());
        match self.live_lock(now, hash, req.name()) {
            None => {
                self.counters.test_lock_nf += 1;
                Reply::Bare(Status::Unlocked)
            }
            Some(key) if self.locks[key].shared != SetKey::NIL => self.test_share(key, req),
            Some(key) if self.locks[key].is_owned_by(req.id(), req.owner_name()) => {
                self.counters.test_lock += 1;
                Reply::WithId(Status::Locked, req.id())
            }
            Some(_) => Reply::Bare(Status::NotOwner),
        }
    }

    /// The key of the lock `name` (whose hash is `hash`) if it exists and
    /// has not expired. An expired one ends on the spot: it passes to its
    /// oldest waiter (and is then live, under the new owner) or is removed.
    pub(super) fn live_lock(&mut self, now: Moment, hash: u64, name: &str) -> Option<HoldKey> {
        let key = self.locks.find(hash, name)?;
        if self.locks[key].deadline > now {
            return Some(key);
        }
        if self.locks[key].shared != SetKey::NIL {
            return self.prune_shares(now, key, hash);
        }
        self.counters.expired_lock += 1;
        self.end_hold(now, key, hash, HoldTimer::Scheduled)
            .then_some(key)
    }

    /// Ends the current holder's hold on lock `key` (whose name hashes to
    /// `hash`), or takes a shared lock whose last share ended back to
    /// nobody: the oldest waiter still in time takes it over (true), in its
    /// mode, or the lock is removed (false).
    pub(super) fn end_hold(
        &mut self,
        now: Moment,
        key: HoldKey,
        hash: u64,
        timer: HoldTimer,
    ) -> bool {
        let set = self.locks[key].shared;
        if set != SetKey::NIL {
            self.holders.remove_set(set);
            self.locks[key].shared = SetKey::NIL;
        }
        loop {
            // Waiters whose own time ran out (their timers not yet fired)
            // complete without a grant rather than take the lock.
            let head = self.locks[key].queue.head;
            if head == WaiterKey::NIL {
                let timer_id = self.discard_hold(key, hash);
                if timer == HoldTimer::Scheduled {
                    self.wheel.cancel(timer_id);
                }
                return false;
            }
            let waiter_timer = self.waiters[head.index()].timer;
            if Moment::from_ms(self.wheel.deadline(waiter_timer)) <= now {
                self.wheel.cancel(waiter_timer);
                self.time_out(head);
                continue;
            }
            if self.waiters[head.index()].request.mode == Mode::Exclusive
                && self.waiters[head.index()].request.expire.is_zero()
            {
                // It asked for no time: granted, and over at once.
                let waiter = self.unqueue(head);
                self.wheel.cancel(waiter.timer);
                self.release(waiter.cost());
                let token = self.take_token();
                self.completed.push(Completion {
                    ticket: waiter.ticket(head),
                    origin: waiter.request.origin,
                    granted: Some(token),
                    mode: Mode::Exclusive,
                });
                self.counters.lock += 1;
                continue;
            }
            let granted = match self.waiters[head.index()].request.mode {
                Mode::Exclusive => self.hand_over(now, key, head, timer),
                Mode::Shared => self.hand_over_shared(now, key, head, timer),
            };
            if granted {
                return true;
            }
        }
    }

    /// Gives lock `key` to its first waiter `head`: a new token, the
    /// waiter's TTL, the waiter's owner in the hold's buffer. False (and the
    /// waiter completed without a grant) if its strings cannot be packed,
    /// which the parser's length limits rule out.
    pub(super) fn hand_over(
        &mut self,
        now: Moment,
        key: HoldKey,
        head: WaiterKey,
        timer: HoldTimer,
    ) -> bool {
        let name_and_owner = {
            let hold = &self.locks[key];
            let waiter = &self.waiters[head.index()];
            self.recycler.pack(
                hold.packed.name(),
                &waiter.request.owner,
                waiter.request.owner_name,
                "",
            )
        };
        let Some(packed) = name_and_owner else {
            let waiter_timer = self.waiters[head.index()].timer;
            self.wheel.cancel(waiter_timer);
            self.refuse_waiter(head);
            return false;
        };
        let waiter = self.unqueue(head);
        self.wheel.cancel(waiter.timer);
        let token = self.take_token();
        let deadline = now.after(waiter.request.expire);
        let hold = &mut self.locks[key];
        // The waiter's charge and the old hold's are released, the new
        // hold's is charged: a transfer, which may differ from them only by
        // a Name tag, so the memory guard is not asked.
        let old_cost = hold.cost();
        self.recycler
            .recycle(std::mem::replace(&mut hold.packed, packed));
        let new_cost = hold.cost();
        hold.token = token;
        hold.deadline = deadline;
        match timer {
            HoldTimer::Scheduled => self.wheel.reschedule(hold.timer, deadline.as_ms()),
            HoldTimer::Fired => hold.timer = self.wheel.schedule(deadline.as_ms(), Due::Lock(key)),
        }
        self.release(old_cost + waiter.cost());
        self.bytes = self.bytes.saturating_add(new_cost);
        self.completed.push(Completion {
            ticket: waiter.ticket(head),
            origin: waiter.request.origin,
            granted: Some(token),
            mode: Mode::Exclusive,
        });
        self.counters.lock += 1;
        true
    }

    /// The next fencing token.
    pub(super) fn take_token(&mut self) -> FencingToken {
        let token = self.next_token;
        self.next_token = token.next();
        token
    }

    /// Takes lock `key` out of its table: its bytes are released, its
    /// buffer goes to the recycler and the gauge is updated. Returns its
    /// timer, for the caller to cancel unless the wheel has just fired it.
    pub(super) fn discard_hold(&mut self, key: HoldKey, hash: u64) -> TimerId {
        let hold = self.locks.remove(hash, key);
        self.release(hold.cost());
        self.counters.a_lock = self.locks.len() as u64;
        self.recycler.recycle(hold.packed);
        hold.timer
    }
}
