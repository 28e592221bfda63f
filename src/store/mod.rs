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
//! - [`wheel`]: the hierarchical timer wheel;
//! - [`snapshot`]: the whole logical state as bytes, and back.
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
//! # Determinism
//!
//! In a cluster every node applies the same log to its own store, so what a
//! store does is a function of its *logical* state (the holds with their
//! owners, Name tags, deadlines and tokens; the shares of each lock held
//! shared, with its limit; each queue's waiters in order, with their owner,
//! mode, limit, TTL, wait deadline and origin; the data items; the next
//! token; which shared queues await a grant after a withdrawal) and of the
//! calls made, never of its layout (slab keys, the wheel's insertion order,
//! hash tables, whether it was compacted or restored from a
//! [`snapshot`]). Two stores in the same logical state, given the same
//! calls to [`Store::apply_from`] (or [`Store::apply`]),
//! [`Store::expire`]`(now, usize::MAX)`, [`Store::cancel_origin`],
//! [`Store::cancel_all_waits`] and [`Store::maybe_compact`], with times
//! that never go back, give the same replies (statuses, tokens, values), the
//! same completions (origin, grant, mode) in the same order, and the same
//! snapshot bytes. What is not logical: tickets (one store's slots), the
//! counters, and `expire` with a `limit` below what is due (which timers
//! fire first is the wheel's choice; the single server does not mind).
//! Where the code meets many things at once it orders them by logical
//! state: a batch of fired timers (`order_due`), the shared locks to settle
//! (by name), the waiters answered by `cancel_all_waits` (by lock name, then
//! queue order). Only what is due is sorted, so the single server's path
//! costs what it did.
//!
//! Boundary: the store builds replies but neither writes nor counts them by
//! status (the session does, in one place); it counts what it decides
//! (`Lock`, `Relock`, `PutNew`, expiries, ...).

mod audit;
mod data;
mod locks;
mod packed;
mod read;
mod shared;
mod sharing;
pub mod snapshot;
mod table;
mod waiters;
pub mod wheel;

use hashbrown::HashMap;
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

pub use read::{count_read, read_counts};
pub use snapshot::{SnapshotError, SnapshotErrorKind};
pub use waiters::{Completion, Origin, Ticket};

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
    /// A fingerprint of the settings the store decides with (the memory
    /// cap, the waiter bounds, `--max-holders`; not the first token, which
    /// a cluster's log sets, nor compaction, which decides nothing): cluster
    /// members compare theirs, since they must decide alike. FNV-1a, stable
    /// across builds.
    pub fn fingerprint(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let fields = [
            self.max_bytes,
            u64::from(self.max_waiters_per_lock),
            self.max_waiters_total as u64,
            u64::from(self.max_holders),
        ];
        for byte in fields.iter().flat_map(|f| f.to_le_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

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
    /// next one; each is marked `Hold::pending` (a key here whose lock is
    /// not marked is stale and skipped).
    unblocked: Vec<HoldKey>,
    /// The waiters that have an origin, by origin.
    origins: HashMap<Origin, WaiterKey>,
    /// The origin of the request [`Store::apply_from`] is applying, for
    /// `park`; `None` on every other path.
    parking_origin: Option<Origin>,
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
            origins: HashMap::new(),
            parking_origin: None,
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

    /// The token the next new hold or share gets.
    pub fn next_token(&self) -> FencingToken {
        self.next_token
    }

    /// Makes the next token at least `floor` (never lowers it): a node that
    /// becomes leader, or restores state, keeps tokens above every token
    /// the cluster may have handed out.
    pub fn raise_token_floor(&mut self, floor: FencingToken) {
        self.next_token = self.next_token.max(floor);
    }

    /// Answers one request at time `now`.
    pub fn apply<'a>(&'a mut self, now: Moment, req: &Request<'a>) -> Outcome<'a> {
        if !self.unblocked.is_empty() {
            self.settle_unblocked(now);
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
            // A store alone has no members; a cluster member's session
            // answers these before they reach it.
            Action::AddMember | Action::RemoveMember | Action::Members => {
                Reply::Bare(Status::BadAction)
            }
        };
        Outcome::Reply(reply)
    }

    /// Answers a replicated request as [`Store::apply`] does; when it parks,
    /// the waiter keeps `origin`, which its [`Completion`] carries and
    /// [`Store::cancel_origin`] withdraws it by. A `Lock` whose origin is
    /// already parked is answered `NotOwner` (an origin names one waiter).
    pub fn apply_from<'a>(
        &'a mut self,
        now: Moment,
        req: &Request<'a>,
        origin: Origin,
    ) -> Outcome<'a> {
        if req.action() != Action::Lock {
            return self.apply(now, req);
        }
        if !self.unblocked.is_empty() {
            self.settle_unblocked(now);
        }
        // Only `park` reads it; `lock` borrows nothing of the store in its
        // outcome, so it is cleared before anything else runs.
        self.parking_origin = Some(origin);
        let outcome = self.lock(now, req);
        self.parking_origin = None;
        outcome
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
        // The wheel fires a batch in the order of its own layout: put it in
        // an order of the logical state alone (see "Determinism" above).
        if due.len() > 1 {
            self.order_due(&mut due);
        }
        // The wheel has already dropped these timers: entries are freed
        // without cancelling them again.
        for &timer in &due {
            match timer {
                Due::Waiter(wkey) => {
                    if let Some(key) = self.time_out(wkey) {
                        self.mark_unblocked(key);
                    }
                }
                Due::Holder(hkey) => {
                    self.counters.expired_lock += 1;
                    let set = self.end_share(hkey);
                    let key = self.holders.set(set).lock;
                    self.mark_unblocked(key);
                }
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
            }
        }
        self.settle_unblocked(now);
        self.counters.a_lock = self.locks.len() as u64;
        self.counters.a_data = self.data.len() as u64;
        self.expired = due;
        more
    }

    /// Puts a batch of fired timers in the order they are handled, a
    /// function of the logical state only. Waiters go first, by wait
    /// deadline, lock name and place in the queue, so that a lock whose
    /// hold ends in the same batch never hands itself to a waiter whose
    /// fired timer is still on the list. Then every share whose timer fired
    /// leaves (in any order: removing shares commutes), so that no later
    /// step touches a timer the wheel has dropped; their locks are settled
    /// at the end, by name. Then exclusive holds, by deadline and token
    /// (each hold's token is its own), so that holds that ended earlier
    /// hand over, and take tokens, first; a shared lock's own timer is only
    /// scheduled again, in any order. Data items last, in any order:
    /// removing them commutes.
    fn order_due(&self, due: &mut [Due]) {
        use std::cmp::Ordering;
        fn phase(due: Due) -> u8 {
            match due {
                Due::Waiter(_) => 0,
                Due::Holder(_) => 1,
                Due::Lock(_) => 2,
                Due::Data(_) => 3,
            }
        }
        let (locks, waiters) = (&self.locks, &self.waiters);
        due.sort_unstable_by(|&a, &b| {
            phase(a).cmp(&phase(b)).then_with(|| match (a, b) {
                (Due::Waiter(a), Due::Waiter(b)) => {
                    let (a, b) = (&waiters[a.index()], &waiters[b.index()]);
                    a.request
                        .until
                        .cmp(&b.request.until)
                        .then_with(|| locks[a.hold].packed.name().cmp(locks[b.hold].packed.name()))
                        .then(a.seq.cmp(&b.seq))
                }
                (Due::Lock(a), Due::Lock(b)) => {
                    let (a, b) = (&locks[a], &locks[b]);
                    (a.deadline, a.token).cmp(&(b.deadline, b.token))
                }
                _ => Ordering::Equal,
            })
        });
    }

    /// Marks lock `key` (held shared) as one whose queue may have become
    /// grantable, to be settled at the next request or expiry.
    fn mark_unblocked(&mut self, key: HoldKey) {
        let hold = &mut self.locks[key];
        if !hold.pending {
            hold.pending = true;
            self.unblocked.push(key);
        }
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
        // The marked locks may have moved.
        self.unblocked.clear();
        let pending = self.locks.iter().filter(|(_, hold)| hold.pending);
        self.unblocked.extend(pending.map(|(key, _)| key));
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
