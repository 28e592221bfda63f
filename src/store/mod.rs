//! The lock and data state machine.
//!
//! Pure: the current time comes in as an argument (milliseconds on a
//! monotonic clock), so tests and fuzzers drive it, and nothing here touches
//! a socket. [`Store::apply`] answers one request; [`Store::expire`] removes
//! entries whose TTL has passed, driven by the [`wheel`].
//!
//! Locks and data items are two namespaces of the same shape, each a
//! `Table`: the entries live in a `Slab` (stable `u32` keys that the timer
//! wheel can carry) and a `hashbrown::HashTable` of those keys, hashed by
//! name, finds them. Each entry owns exactly one timer; refreshing a TTL moves
//! that timer, so the wheel never holds stale entries.
//!
//! Expiry is also checked on every access, so correctness never depends on
//! when the wheel runs: the wheel is what frees memory (and keeps `ALock` and
//! `AData` true) without any access.
//!
//! Memory guard: every entry is charged its name, owner and value bytes plus
//! [`ENTRY_OVERHEAD`]; a `Lock` or `Put` that would create or grow an entry
//! past `max_bytes` is answered `NO` and changes nothing.
//!
//! Waiting acquire (`Wait` on `Lock`): when another ID holds the lock, the
//! request becomes a [`Waiter`] in the hold's first-come-first-served queue
//! (an intrusive list through the waiters' slab, so leaving it from the middle
//! is O(1)) and [`Store::apply`] answers [`Reply::Parked`] with a [`Ticket`].
//! Whenever the hold ends (unlock, expiry seen by the wheel or on access), the
//! oldest waiter takes it over at once with a new token, and a
//! [`Completion`] is queued for the caller to deliver; a waiter whose time
//! runs out completes with `NotOwner`. The caller withdraws the waiters of a
//! connection that closes with [`Store::cancel_wait`].

mod packed;
pub mod wheel;

use hashbrown::{DefaultHashBuilder, HashTable};
use slab::Slab;
use std::hash::BuildHasher;

use crate::protocol::{Action, Reply, Request, Status};
use crate::stats::Counters;
use packed::{Packed, Recycler};
use wheel::{TimerId, Wheel};

/// Bytes charged to every entry beyond its strings: the slab slot, the index
/// slot, the timer node and the allocator's headers, rounded up.
pub const ENTRY_OVERHEAD: u64 = 128;

/// Settings of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Most bytes that locks and data items may hold (see [`ENTRY_OVERHEAD`]).
    pub max_bytes: u64,
    /// Compact the tables once this many bytes were freed since the last time.
    pub compact_after: u64,
    /// The first fencing token handed out.
    pub first_token: u64,
    /// Most waiters queued on one lock; past it a waiting `Lock` gets `NotOwner` at once.
    pub max_waiters_per_lock: u32,
    /// Most waiters queued in all.
    pub max_waiters: usize,
}

impl StoreConfig {
    /// No memory cap, compaction after 1 MiB freed, tokens from 1, and the
    /// server's default waiter bounds: for tests and tools.
    pub fn unbounded() -> StoreConfig {
        StoreConfig {
            max_bytes: u64::MAX,
            compact_after: 1 << 20,
            first_token: 1,
            max_waiters_per_lock: 10_000,
            max_waiters: 100_000,
        }
    }
}

/// Names a parked request, so its completion can find its way back and its
/// connection can withdraw it. Unique for the life of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(pub u64);

/// How a parked request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub ticket: Ticket,
    /// `Some(token)`: the lock was granted (`Locked`); `None`: the wait ran
    /// out (`NotOwner`).
    pub granted: Option<u64>,
}

/// What a timer in the wheel stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Lock(u32),
    Data(u32),
    Waiter(u32),
}

/// End of a waiter list.
const NIL: u32 = u32::MAX;

/// The waiters of one hold, oldest first: an intrusive list through
/// [`Waiter::prev`]/[`Waiter::next`].
#[derive(Debug, Clone, Copy)]
struct Queue {
    head: u32,
    tail: u32,
    len: u32,
}

impl Queue {
    const EMPTY: Queue = Queue {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// A `Lock` request parked until the hold it waits on ends or its time runs out.
#[derive(Debug)]
pub struct Waiter {
    /// The hold it waits on (a key of the lock table).
    hold: u32,
    owner: Box<str>,
    expire_ms: u64,
    timer: TimerId,
    prev: u32,
    next: u32,
    /// Distinguishes successive waiters that reuse one slab slot.
    generation: u32,
}

/// A lock held by an owner until `deadline`.
#[derive(Debug)]
struct Hold {
    /// Name and owner.
    packed: Packed,
    deadline: u64,
    token: u64,
    timer: TimerId,
    queue: Queue,
}

/// A data item owned by an owner until `deadline`.
#[derive(Debug)]
struct Item {
    /// Name, owner and value.
    packed: Packed,
    deadline: u64,
    timer: TimerId,
}

trait Entry {
    fn name(&self) -> &str;
    fn timer(&self) -> TimerId;
    fn set_timer(&mut self, timer: TimerId);
    fn cost(&self) -> u64;
}

/// Holds and items keep their strings in `packed` and their timer in `timer`.
macro_rules! packed_entry {
    ($($kind:ty),*) => {$(
        impl Entry for $kind {
            fn name(&self) -> &str {
                self.packed.name()
            }
            fn timer(&self) -> TimerId {
                self.timer
            }
            fn set_timer(&mut self, timer: TimerId) {
                self.timer = timer;
            }
            fn cost(&self) -> u64 {
                ENTRY_OVERHEAD + self.packed.len() as u64
            }
        }
    )*};
}

packed_entry!(Hold, Item);

/// One namespace: entries in a slab, found by name through a hash table of
/// slab keys.
///
/// A request hashes its name once ([`Table::hash`]) and passes the hash to
/// `find` and then to `insert` or `remove`: hashing a name costs more than
/// the table's probe.
struct Table<E> {
    entries: Slab<E>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl<E: Entry> Table<E> {
    fn new() -> Self {
        Table {
            entries: Slab::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether at least half of the slab's room is unused, so that
    /// compacting would give memory back.
    fn is_sparse(&self) -> bool {
        self.entries.capacity() >= 2 * self.entries.len() + 64
    }

    /// The hash of `name` in this table.
    fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    /// The hash of entry `key`'s name, for removals that no request drove
    /// (expiry).
    fn hash_of(&self, key: u32) -> u64 {
        self.hash(self.entries[key as usize].name())
    }

    /// The entry named `name`, whose hash is `hash`.
    fn find(&self, hash: u64, name: &str) -> Option<u32> {
        debug_assert_eq!(hash, self.hash(name));
        let entries = &self.entries;
        self.index
            .find(hash, |&k| entries[k as usize].name() == name)
            .copied()
    }

    /// Adds `entry`, whose name hashes to `hash` and is not in the table.
    fn insert(&mut self, hash: u64, entry: E) -> u32 {
        debug_assert_eq!(hash, self.hash(entry.name()));
        let key = self.entries.insert(entry) as u32;
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .insert_unique(hash, key, |&k| hasher.hash_one(entries[k as usize].name()));
        key
    }

    /// Removes entry `key`, whose name hashes to `hash`.
    fn remove(&mut self, hash: u64, key: u32) -> E {
        debug_assert_eq!(hash, self.hash_of(key));
        if let Ok(slot) = self.index.find_entry(hash, |&k| k == key) {
            slot.remove();
        }
        self.entries.remove(key as usize)
    }

    /// Moves entries to the front of the slab and gives back unused memory;
    /// `moved(entry, new_key)` is told of every entry whose key changed.
    fn compact(&mut self, mut moved: impl FnMut(&E, u32)) {
        let (index, hasher) = (&mut self.index, &self.hasher);
        self.entries.compact(|entry, from, to| {
            let hash = hasher.hash_one(entry.name());
            if let Some(k) = index.find_mut(hash, |&k| k == from as u32) {
                *k = to as u32;
            }
            moved(entry, to as u32);
            true
        });
        self.entries.shrink_to_fit();
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .shrink_to_fit(|&k| hasher.hash_one(entries[k as usize].name()));
    }
}

/// Locks, data items, their timers, and the counters.
pub struct Store {
    locks: Table<Hold>,
    data: Table<Item>,
    wheel: Wheel<Due>,
    next_token: u64,
    bytes: u64,
    freed_since_compaction: u64,
    config: StoreConfig,
    expired: Vec<Due>,
    waiters: Slab<Waiter>,
    next_generation: u32,
    completed: Vec<Completion>,
    /// Buffers of entries that are gone, for the next entries' strings.
    recycler: Recycler,
    /// Every counter of PROTOCOL.md; the server adds its own (`In`, `Out`,
    /// `Connections`, ...) here too, so `Stats` reports one set.
    pub counters: Counters,
}

impl Store {
    /// An empty store whose clock starts at `now`.
    pub fn new(config: StoreConfig, now: u64) -> Store {
        Store {
            locks: Table::new(),
            data: Table::new(),
            wheel: Wheel::new(now),
            next_token: config.first_token,
            bytes: 0,
            freed_since_compaction: 0,
            config,
            expired: Vec::new(),
            waiters: Slab::new(),
            next_generation: 0,
            completed: Vec::new(),
            recycler: Recycler::default(),
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

    /// Bytes charged to live entries (the memory guard's measure).
    pub fn bytes_held(&self) -> u64 {
        self.bytes
    }

    /// The next time [`Store::expire`] has work, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.wheel.next_deadline()
    }

    /// Answers one request at time `now`.
    pub fn apply<'a>(&'a mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        let reply = match req.action {
            Action::Lock => self.lock(now, req),
            Action::Unlock => self.unlock(now, req),
            Action::TestLock => self.test_lock(now, req),
            Action::Put => self.put(now, req),
            Action::Get => return self.get(now, req),
            Action::Erase => self.erase(now, req),
            Action::Version => Reply::Version,
            Action::Stats => return Reply::Stats(&self.counters),
        };
        if reply.status() == Status::NotOwner {
            self.counters.not_owner += 1;
        }
        reply
    }

    fn lock<'a>(&mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        let deadline = now.saturating_add(req.expire_ms);
        let hash = self.locks.hash(req.name);
        match self.live_lock(now, hash, req.name) {
            Some(key) => {
                let hold = &mut self.locks.entries[key as usize];
                if hold.packed.owner() != req.id {
                    return if req.wait_ms > 0 {
                        self.park(now, key, req)
                    } else {
                        Reply::Bare(Status::NotOwner)
                    };
                }
                hold.deadline = deadline;
                self.wheel.reschedule(hold.timer, deadline);
                self.counters.relock += 1;
                Reply::Locked {
                    id: req.id,
                    token: hold.token,
                }
            }
            None => {
                let cost = ENTRY_OVERHEAD + (req.name.len() + req.id.len()) as u64;
                if !self.charge(cost) {
                    return Reply::Bare(Status::No);
                }
                let token = self.next_token;
                self.next_token += 1;
                // The timer is scheduled first, carrying the key the entry
                // is about to get.
                let key = self.locks.entries.vacant_key() as u32;
                let timer = self.wheel.schedule(deadline, Due::Lock(key));
                self.locks.insert(
                    hash,
                    Hold {
                        packed: self.recycler.pack(req.name, req.id, ""),
                        deadline,
                        token,
                        timer,
                        queue: Queue::EMPTY,
                    },
                );
                self.counters.lock += 1;
                self.counters.a_lock = self.locks.len() as u64;
                Reply::Locked { id: req.id, token }
            }
        }
    }

    fn unlock<'a>(&mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        let hash = self.locks.hash(req.name);
        let Some(key) = self.live_lock(now, hash, req.name) else {
            self.counters.unlock_nf += 1;
            return Reply::Bare(Status::Unlocked);
        };
        if self.locks.entries[key as usize].packed.owner() != req.id {
            return Reply::Bare(Status::NotOwner);
        }
        self.end_hold(now, key, hash, true);
        self.counters.unlock += 1;
        Reply::Owner(Status::Unlocked, req.id)
    }

    fn test_lock<'a>(&mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        self.counters.test_lock += 1;
        let hash = self.locks.hash(req.name);
        match self.live_lock(now, hash, req.name) {
            None => Reply::Bare(Status::Unlocked),
            Some(key) if self.locks.entries[key as usize].packed.owner() == req.id => {
                Reply::Owner(Status::Locked, req.id)
            }
            Some(_) => Reply::Bare(Status::NotOwner),
        }
    }

    fn put<'a>(&mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        let deadline = now.saturating_add(req.expire_ms);
        let hash = self.data.hash(req.name);
        match self.live_item(now, hash, req.name) {
            Some(key) => {
                let item = &self.data.entries[key as usize];
                if item.packed.owner() != req.id {
                    return Reply::Bare(Status::NotOwner);
                }
                let old_len = item.packed.value().len() as u64;
                let new_len = req.data.len() as u64;
                if new_len > old_len && !self.charge(new_len - old_len) {
                    return Reply::Bare(Status::No);
                }
                if new_len < old_len {
                    self.release(old_len - new_len);
                }
                let packed = self.recycler.pack(req.name, req.id, req.data);
                let item = &mut self.data.entries[key as usize];
                self.recycler
                    .recycle(std::mem::replace(&mut item.packed, packed));
                item.deadline = deadline;
                self.wheel.reschedule(item.timer, deadline);
                self.counters.put_update += 1;
            }
            None => {
                let cost = ENTRY_OVERHEAD + (req.name.len() + req.id.len() + req.data.len()) as u64;
                if !self.charge(cost) {
                    return Reply::Bare(Status::No);
                }
                let key = self.data.entries.vacant_key() as u32;
                let timer = self.wheel.schedule(deadline, Due::Data(key));
                self.data.insert(
                    hash,
                    Item {
                        packed: self.recycler.pack(req.name, req.id, req.data),
                        deadline,
                        timer,
                    },
                );
                self.counters.put_new += 1;
                self.counters.a_data = self.data.len() as u64;
            }
        }
        self.counters.data_in += req.data.len() as u64;
        Reply::Owner(Status::Done, req.id)
    }

    fn get<'a>(&'a mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        let hash = self.data.hash(req.name);
        let Some(key) = self.live_item(now, hash, req.name) else {
            self.counters.get_nf += 1;
            return Reply::Bare(Status::NotFound);
        };
        let item = &self.data.entries[key as usize];
        if item.packed.owner() != req.id {
            self.counters.not_owner += 1;
            return Reply::Bare(Status::NotOwner);
        }
        self.counters.get += 1;
        self.counters.data_out += item.packed.value().len() as u64;
        Reply::Value {
            id: req.id,
            data: item.packed.value(),
        }
    }

    fn erase<'a>(&mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        let hash = self.data.hash(req.name);
        let Some(key) = self.live_item(now, hash, req.name) else {
            self.counters.erase_nf += 1;
            return Reply::Bare(Status::NotFound);
        };
        if self.data.entries[key as usize].packed.owner() != req.id {
            return Reply::Bare(Status::NotOwner);
        }
        self.remove_item(key, hash);
        self.counters.erased += 1;
        Reply::Owner(Status::Done, req.id)
    }

    /// The key of the lock `name` (whose hash is `hash`) if it exists and
    /// has not expired. An expired one ends on the spot: it passes to its
    /// oldest waiter (and is then live, under the new owner) or is removed.
    fn live_lock(&mut self, now: u64, hash: u64, name: &str) -> Option<u32> {
        let key = self.locks.find(hash, name)?;
        if self.locks.entries[key as usize].deadline > now {
            return Some(key);
        }
        self.counters.expired_lock += 1;
        self.end_hold(now, key, hash, true).then_some(key)
    }

    /// Ends the current holder's hold on lock `key` (whose name hashes to
    /// `hash`): the oldest waiter takes it over (true), or the lock is
    /// removed (false). `timer_live` is false when the wheel has just fired
    /// (and dropped) the hold's timer.
    fn end_hold(&mut self, now: u64, key: u32, hash: u64, timer_live: bool) -> bool {
        // Waiters whose own time ran out (their timers not yet fired) are
        // answered NotOwner rather than granted.
        let mut head = self.locks.entries[key as usize].queue.head;
        while head != NIL && self.wheel.deadline(self.waiters[head as usize].timer) <= now {
            let timer = self.waiters[head as usize].timer;
            self.wheel.cancel(timer);
            self.time_out(head);
            head = self.locks.entries[key as usize].queue.head;
        }
        if head == NIL {
            if timer_live {
                self.remove_lock(key, hash);
            } else {
                self.discard_hold(key, hash);
            }
            return false;
        }
        let waiter = self.unqueue(head);
        self.wheel.cancel(waiter.timer);
        let token = self.next_token;
        self.next_token += 1;
        let deadline = now.saturating_add(waiter.expire_ms);
        let hold = &mut self.locks.entries[key as usize];
        // The waiter was charged for its owner string; the hold now carries it.
        let old_owner = hold.packed.owner().len() as u64;
        let packed = self.recycler.pack(hold.packed.name(), &waiter.owner, "");
        self.recycler
            .recycle(std::mem::replace(&mut hold.packed, packed));
        hold.token = token;
        hold.deadline = deadline;
        if timer_live {
            self.wheel.reschedule(hold.timer, deadline);
        } else {
            hold.timer = self.wheel.schedule(deadline, Due::Lock(key));
        }
        self.release(ENTRY_OVERHEAD + old_owner);
        self.completed.push(Completion {
            ticket: ticket(head, waiter.generation),
            granted: Some(token),
        });
        self.counters.lock += 1;
        true
    }

    /// Answers waiter `wkey` NotOwner (its wait ran out) and drops it. Its
    /// timer is left to the caller.
    fn time_out(&mut self, wkey: u32) {
        let waiter = self.unqueue(wkey);
        self.release(ENTRY_OVERHEAD + waiter.owner.len() as u64);
        self.completed.push(Completion {
            ticket: ticket(wkey, waiter.generation),
            granted: None,
        });
        self.counters.wait_timeout += 1;
        self.counters.not_owner += 1;
    }

    /// Parks `req` on lock `key`, unless a bound or the memory cap refuses.
    fn park<'a>(&mut self, now: u64, key: u32, req: &Request<'a>) -> Reply<'a> {
        let queue = self.locks.entries[key as usize].queue;
        if queue.len >= self.config.max_waiters_per_lock
            || self.waiters.len() >= self.config.max_waiters
        {
            return Reply::Bare(Status::NotOwner);
        }
        if !self.charge(ENTRY_OVERHEAD + req.id.len() as u64) {
            return Reply::Bare(Status::No);
        }
        let wkey = self.waiters.vacant_key() as u32;
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let timer = self
            .wheel
            .schedule(now.saturating_add(req.wait_ms), Due::Waiter(wkey));
        self.waiters.insert(Waiter {
            hold: key,
            owner: req.id.into(),
            expire_ms: req.expire_ms,
            timer,
            prev: queue.tail,
            next: NIL,
            generation,
        });
        let hold = &mut self.locks.entries[key as usize];
        if queue.tail == NIL {
            hold.queue.head = wkey;
        } else {
            self.waiters[queue.tail as usize].next = wkey;
        }
        hold.queue.tail = wkey;
        hold.queue.len += 1;
        self.counters.waited += 1;
        Reply::Parked {
            ticket: ticket(wkey, generation),
            id: req.id,
        }
    }

    /// Takes waiter `wkey` out of its hold's queue and the waiters' slab.
    /// Its timer is left to the caller.
    fn unqueue(&mut self, wkey: u32) -> Waiter {
        let waiter = self.waiters.remove(wkey as usize);
        let queue = &mut self.locks.entries[waiter.hold as usize].queue;
        if waiter.prev == NIL {
            queue.head = waiter.next;
        } else {
            self.waiters[waiter.prev as usize].next = waiter.next;
        }
        if waiter.next == NIL {
            queue.tail = waiter.prev;
        } else {
            self.waiters[waiter.next as usize].prev = waiter.prev;
        }
        queue.len -= 1;
        waiter
    }

    /// Withdraws a parked request whose connection went away: it leaves the
    /// queue and is never granted. Unknown or finished tickets are ignored.
    pub fn cancel_wait(&mut self, ticket: Ticket) {
        let (wkey, generation) = ((ticket.0 & 0xFFFF_FFFF) as u32, (ticket.0 >> 32) as u32);
        if self
            .waiters
            .get(wkey as usize)
            .is_some_and(|w| w.generation == generation)
        {
            let waiter = self.unqueue(wkey);
            self.wheel.cancel(waiter.timer);
            self.release(ENTRY_OVERHEAD + waiter.owner.len() as u64);
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

    /// As [`Store::live_lock`], for data items.
    fn live_item(&mut self, now: u64, hash: u64, name: &str) -> Option<u32> {
        let key = self.data.find(hash, name)?;
        if self.data.entries[key as usize].deadline > now {
            return Some(key);
        }
        self.remove_item(key, hash);
        self.counters.expired_data += 1;
        None
    }

    /// Removes lock `key` (whose name hashes to `hash`) and cancels its timer.
    fn remove_lock(&mut self, key: u32, hash: u64) {
        let timer = self.discard_hold(key, hash);
        self.wheel.cancel(timer);
    }

    /// Removes data item `key` (whose name hashes to `hash`) and cancels its
    /// timer.
    fn remove_item(&mut self, key: u32, hash: u64) {
        let timer = self.discard_item(key, hash);
        self.wheel.cancel(timer);
    }

    /// Takes lock `key` out of its table: its bytes are released, its
    /// buffer goes to the recycler and the gauge is updated. Returns its
    /// timer, for the caller to cancel unless the wheel has just fired it.
    fn discard_hold(&mut self, key: u32, hash: u64) -> TimerId {
        let hold = self.locks.remove(hash, key);
        self.release(hold.cost());
        self.counters.a_lock = self.locks.len() as u64;
        self.recycler.recycle(hold.packed);
        hold.timer
    }

    /// As [`Store::discard_hold`], for data items.
    fn discard_item(&mut self, key: u32, hash: u64) -> TimerId {
        let item = self.data.remove(hash, key);
        self.release(item.cost());
        self.counters.a_data = self.data.len() as u64;
        self.recycler.recycle(item.packed);
        item.timer
    }

    /// Reserves `bytes` under the memory cap; false (and nothing reserved)
    /// if the cap would be exceeded.
    fn charge(&mut self, bytes: u64) -> bool {
        if self.bytes.saturating_add(bytes) > self.config.max_bytes {
            self.counters.no += 1;
            return false;
        }
        self.bytes += bytes;
        true
    }

    fn release(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_sub(bytes);
        self.freed_since_compaction = self.freed_since_compaction.saturating_add(bytes);
    }

    /// Removes entries whose TTL passed by `now`, at most about `limit` of
    /// them; true when more are due (call again soon).
    pub fn expire(&mut self, now: u64, limit: usize) -> bool {
        let mut due = std::mem::take(&mut self.expired);
        due.clear();
        let more = self.wheel.advance(now, limit, &mut due);
        // The wheel has already dropped these timers: entries are freed
        // without cancelling them again. Waiters go first, so that a lock
        // whose hold ends in the same batch never hands itself to a waiter
        // whose fired timer is still on the list.
        for &timer in &due {
            if let Due::Waiter(wkey) = timer {
                self.time_out(wkey);
            }
        }
        // Holds that ended earlier hand over (and take tokens) first; the
        // wheel itself fires a batch in no particular order.
        let locks = &self.locks.entries;
        due.sort_by_key(|&timer| match timer {
            Due::Lock(key) => (0, locks[key as usize].deadline, locks[key as usize].token),
            _ => (1, 0, 0),
        });
        for &timer in &due {
            match timer {
                Due::Lock(key) => {
                    self.counters.expired_lock += 1;
                    let hash = self.locks.hash_of(key);
                    self.end_hold(now, key, hash, false);
                }
                Due::Data(key) => {
                    // Its timer has just fired: nothing to cancel.
                    self.discard_item(key, self.data.hash_of(key));
                    self.counters.expired_data += 1;
                }
                Due::Waiter(_) => {}
            }
        }
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
        let (wheel, waiters) = (&mut self.wheel, &mut self.waiters);
        self.locks.compact(|hold, to| {
            wheel.set_key(hold.timer(), Due::Lock(to));
            let mut w = hold.queue.head;
            while w != NIL {
                waiters[w as usize].hold = to;
                w = waiters[w as usize].next;
            }
        });
        self.data
            .compact(|item, to| wheel.set_key(item.timer(), Due::Data(to)));
        let (locks, data) = (&mut self.locks.entries, &mut self.data.entries);
        let waiters = &mut self.waiters;
        wheel.compact(|due, timer| match due {
            Due::Lock(k) => locks[k as usize].set_timer(timer),
            Due::Data(k) => data[k as usize].set_timer(timer),
            Due::Waiter(k) => waiters[k as usize].timer = timer,
        });
        // Waiter keys live on in tickets held by connections, so the
        // waiters' slab is never renumbered; it is only released when empty.
        if self.waiters.is_empty() {
            self.waiters = Slab::new();
        }
        self.expired = Vec::new();
    }
}

/// A ticket from a waiter's slab key and generation.
fn ticket(wkey: u32, generation: u32) -> Ticket {
    Ticket(u64::from(generation) << 32 | u64::from(wkey))
}

#[cfg(test)]
mod tests;
