//! The lock and data state machine.
//!
//! Pure: the current time comes in as an argument (a [`Moment`] on the
//! caller's clock), so tests and fuzzers drive it, and nothing here touches
//! a socket or reads a clock. [`Store::apply`] answers one request with an
//! [`Outcome`]: a reply now, or a [`Ticket`] for a request parked in a
//! lock's queue. [`Store::expire`] removes entries whose TTL has passed,
//! driven by the [`wheel`].
//!
//! The pieces:
//! - `table.rs`: one namespace, entries in a slab found by name, with typed
//!   keys; `packed.rs`: an entry's strings in one buffer, and the recycler;
//! - `locks.rs`: `Lock`, `Unlock`, `TestLock` and the end of a hold;
//! - `data.rs`: `Put`, `Get`, `Erase`;
//! - `waiters.rs`: the `Wait` queues, tickets and completions;
//! - `shared.rs`: the shares of locks held shared; `sharing.rs`: `Lock`,
//!   `Unlock` and `TestLock` on them, conversions, and granting a queue of
//!   both modes;
//! - [`wheel`]: the hierarchical timer wheel.
//!
//! Invariants: each entry and each waiter has exactly one timer, and each
//! timer one owner; a refreshed TTL moves its timer. Expiry is also checked
//! on every access, so correctness never depends on when the wheel runs: the
//! wheel is what frees memory (and keeps `ALock` and `AData` true) without
//! any access.
//!
//! Memory guard: every entry, share and waiter is charged its strings plus
//! [`ENTRY_OVERHEAD`]; a `Lock` or `Put` that would create or grow an entry
//! past `max_bytes` is answered `NO` and changes nothing.
//!
//! Boundary: the store builds replies but neither writes nor counts them by
//! status (the session does, in one place); it counts what it decides
//! (`Lock`, `Relock`, `PutNew`, expiries, ...).

mod data;
mod locks;
mod packed;
mod shared;
mod sharing;
mod table;
mod waiters;
pub mod wheel;

use slab::Slab;

use crate::protocol::request::DEFAULT_MAX_HOLDERS;
use crate::protocol::{Action, FencingToken, Reply, Request, Status};
use crate::stats::Counters;
use crate::time::Moment;
use data::Item;
use locks::{Hold, HoldTimer};
use packed::Recycler;
use shared::Holders;
use table::{Entry, HoldKey, HolderKey, ItemKey, SetKey, SlabKey, Table, WaiterKey};
use waiters::Waiter;
use wheel::Wheel;

pub use waiters::{Completion, Ticket};

/// Bytes charged to every entry beyond its strings: the slab slot, the index
/// slot, the timer node and the allocator's headers, rounded up.
pub const ENTRY_OVERHEAD: u64 = 128;

/// Settings of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Most bytes that locks, data items and waiters may hold (see
    /// [`ENTRY_OVERHEAD`]).
    pub max_bytes: u64,
    /// Compact the tables once this many bytes were freed since the last time.
    pub compact_after: u64,
    /// The first fencing token handed out.
    pub first_token: FencingToken,
    /// Most waiters queued on one lock; past it a waiting `Lock` gets
    /// `NotOwner` at once.
    pub max_waiters_per_lock: u32,
    /// Most waiters queued on all locks together.
    pub max_waiters_total: usize,
    /// Most holders of one lock held shared, and the limit of a shared
    /// `Lock` that gives no `Limit` (`--max-holders`).
    pub max_holders: u32,
}

impl StoreConfig {
    /// No memory cap, compaction after 1 MiB freed, tokens from 1, and the
    /// server's default waiter bounds: for tests and tools.
    pub fn unbounded() -> StoreConfig {
        StoreConfig {
            max_bytes: u64::MAX,
            compact_after: 1 << 20,
            first_token: FencingToken::new(1),
            max_waiters_per_lock: 10_000,
            max_waiters_total: 100_000,
            max_holders: DEFAULT_MAX_HOLDERS,
        }
    }
}

/// What [`Store::apply`] made of a request.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The answer, now.
    Reply(Reply<'a>),
    /// The request waits in a lock's queue; its [`Completion`] comes later.
    Parked(Ticket),
}

impl Outcome<'_> {
    /// The status of a reply now; `None` for a parked request.
    pub fn status(&self) -> Option<Status> {
        match self {
            Outcome::Reply(reply) => Some(reply.status()),
            Outcome::Parked(_) => None,
        }
    }
}

/// What a timer in the wheel stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Lock(HoldKey),
    Data(ItemKey),
    Waiter(WaiterKey),
    /// One share of a lock held shared.
    Holder(HolderKey),
}

/// Locks, data items, waiters, their timers, and the store's counters.
pub struct Store {
    locks: Table<Hold>,
    data: Table<Item>,
    wheel: Wheel<Due>,
    next_token: FencingToken,
    bytes: u64,
    freed_since_compaction: u64,
    config: StoreConfig,
    expired: Vec<Due>,
    waiters: Slab<Waiter>,
    next_generation: u32,
    completed: Vec<Completion>,
    /// Buffers of entries that are gone, for the next entries' strings.
    recycler: Recycler,
    /// The shares of locks held shared.
    holders: Holders,
    /// Shared locks whose queue may have become grantable since the last
    /// request or expiry (a withdrawn waiter at the front), granted at the
    /// next one.
    unblocked: Vec<SetKey>,
    /// Every counter of PROTOCOL.md; the session and the reactor add theirs
    /// (`In`, `Out`, statuses, `Connections`, ...) here too, so `Stats`
    /// reports one set.
    pub counters: Counters,
}

impl Store {
    /// An empty store whose clock starts at `now`.
    pub fn new(config: StoreConfig, now: Moment) -> Store {
        Store {
            locks: Table::new(),
            data: Table::new(),
            wheel: Wheel::new(now.as_ms()),
            next_token: config.first_token,
            bytes: 0,
            freed_since_compaction: 0,
            config,
            expired: Vec::new(),
            waiters: Slab::new(),
            next_generation: 0,
            completed: Vec::new(),
            recycler: Recycler::default(),
            holders: Holders::new(),
            unblocked: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// Locks alive (not yet removed by expiry).
    pub fn lock_count(&self) -> usize {
        self.locks.len()
    }

    /// Data items alive (not yet removed by expiry).
    pub fn data_count(&self) -> usize {
        self.data.len()
    }

    /// Bytes charged to live entries and waiters (the memory guard's measure).
    pub fn bytes_held(&self) -> u64 {
        self.bytes
    }

    /// The memory guard's cap in bytes (`--max-memory`).
    pub fn max_bytes(&self) -> u64 {
        self.config.max_bytes
    }

    /// The next time [`Store::expire`] has work, if any.
    pub fn next_deadline(&self) -> Option<Moment> {
        self.wheel.next_deadline().map(Moment::from_ms)
    }

    /// Shares of shared locks held now (each charged like an entry).
    pub fn share_count(&self) -> usize {
        self.holders.len()
    }

    /// The settings the store was made with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Answers one request at time `now`.
    pub fn apply<'a>(&'a mut self, now: Moment, req: &Request<'a>) -> Outcome<'a> {
        if !self.unblocked.is_empty() {
            self.grant_unblocked(now);
        }
        let reply = match req.action() {
            Action::Lock => return self.lock(now, req),
            Action::Unlock => self.unlock(now, req),
            Action::TestLock => self.test_lock(now, req),
            Action::Put => self.put(now, req),
            Action::Get => self.get(now, req),
            Action::Erase => self.erase(now, req),
            Action::Version => Reply::Version,
            Action::Stats => Reply::Stats(&self.counters),
        };
        Outcome::Reply(reply)
    }

    /// Reserves `bytes` under the memory cap; false (and nothing reserved)
    /// if the cap would be exceeded.
    fn charge(&mut self, bytes: u64) -> bool {
        match self.bytes.checked_add(bytes) {
            Some(total) if total <= self.config.max_bytes => {
                self.bytes = total;
                true
            }
            _ => false,
        }
    }

    fn release(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_sub(bytes);
        self.freed_since_compaction = self.freed_since_compaction.saturating_add(bytes);
    }

    /// Removes entries whose TTL passed by `now`, at most about `limit` of
    /// them; true when more are due (call again soon).
    pub fn expire(&mut self, now: Moment, limit: usize) -> bool {
        let mut due = std::mem::take(&mut self.expired);
        due.clear();
        let more = self.wheel.advance(now.as_ms(), limit, &mut due);
        // The wheel has already dropped these timers: entries are freed
        // without cancelling them again. Waiters go first, so that a lock
        // whose hold ends in the same batch never hands itself to a waiter
        // whose fired timer is still on the list.
        let mut touched = std::mem::take(&mut self.unblocked);
        for &timer in &due {
            if let Due::Waiter(wkey) = timer {
                if let Some(set) = self.time_out(wkey) {
                    touched.push(set);
                }
            }
        }
        // Shares whose timers fired leave first, all of them, so that no
        // later step touches a timer the wheel has dropped; their locks are
        // settled below.
        for &timer in &due {
            if let Due::Holder(hkey) = timer {
                self.counters.expired_lock += 1;
                touched.push(self.end_share(hkey));
            }
        }
        // Holds that ended earlier hand over (and take tokens) first; the
        // wheel itself fires a batch in no particular order.
        let locks = &self.locks;
        due.sort_by_key(|&timer| match timer {
            Due::Lock(key) => (0, locks[key].deadline, locks[key].token),
            _ => (1, Moment::START, FencingToken::new(0)),
        });
        for &timer in &due {
            match timer {
                Due::Lock(key) if self.locks[key].shared != SetKey::NIL => {
                    // A shared lock's own timer stands at the end of time
                    // (its shares have the real ones): schedule it again.
                    let hold = &mut self.locks[key];
                    hold.timer = self.wheel.schedule(u64::MAX, Due::Lock(key));
                }
                Due::Lock(key) => {
                    self.counters.expired_lock += 1;
                    let hash = self.locks.hash_of(key);
                    self.end_hold(now, key, hash, HoldTimer::Fired);
                }
                Due::Data(key) => {
                    // Its timer has just fired: nothing to cancel.
                    self.discard_item(key, self.data.hash_of(key));
                    self.counters.expired_data += 1;
                }
                Due::Waiter(_) | Due::Holder(_) => {}
            }
        }
        self.settle(now, &mut touched);
        self.unblocked = touched;
        self.counters.a_lock = self.locks.len() as u64;
        self.counters.a_data = self.data.len() as u64;
        self.expired = due;
        more
    }

    /// Shrinks the tables back toward what is in use once enough was freed
    /// since the last time (`ForcedGC`) and a table is at most half full;
    /// true when it did. Waiting for half-empty tables keeps a mass expiry
    /// of N entries at O(N log N) compaction work instead of one compaction
    /// per threshold's worth of frees.
    pub fn maybe_compact(&mut self) -> bool {
        if self.freed_since_compaction < self.config.compact_after
            || !(self.locks.is_sparse() || self.data.is_sparse())
        {
            return false;
        }
        self.compact();
        true
    }

    /// Compacts now (see [`Store::maybe_compact`]).
    pub fn compact(&mut self) {
        self.freed_since_compaction = 0;
        self.counters.forced_gc += 1;
        self.recycler.clear();
        let (wheel, waiters, holders) = (&mut self.wheel, &mut self.waiters, &mut self.holders);
        self.locks.compact(|hold, to| {
            wheel.set_key(hold.timer(), Due::Lock(to));
            if hold.shared != SetKey::NIL {
                holders.set_mut(hold.shared).lock = to;
            }
            let mut w = hold.queue.head;
            while w != WaiterKey::NIL {
                waiters[w.index()].hold = to;
                w = waiters[w.index()].next;
            }
        });
        self.data
            .compact(|item, to| wheel.set_key(item.timer(), Due::Data(to)));
        let (locks, data) = (&mut self.locks, &mut self.data);
        let (waiters, holders) = (&mut self.waiters, &mut self.holders);
        wheel.compact(|due, timer| match due {
            Due::Lock(k) => locks[k].set_timer(timer),
            Due::Data(k) => data[k].set_timer(timer),
            Due::Waiter(k) => waiters[k.index()].timer = timer,
            Due::Holder(k) => holders[k].timer = timer,
        });
        self.holders.compact();
        // Waiter keys live on in tickets held by connections, so the
        // waiters' slab is never renumbered; it is only released when empty.
        if self.waiters.is_empty() {
            self.waiters = Slab::new();
        }
        self.expired = Vec::new();
    }
}

#[cfg(test)]
mod tests;
