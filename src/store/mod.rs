//! The lock and data state machine.
//!
//! Pure: the current time comes in as an argument (milliseconds on a
//! monotonic clock), so tests and fuzzers drive it, and nothing here touches
//! a socket. [`Store::apply`] answers one request; [`Store::expire`] removes
//! entries whose TTL has passed, driven by the [`wheel`].
//!
//! Locks and data items are two namespaces of the same shape, each a
//! [`Table`]: the entries live in a `Slab` (stable `u32` keys that the timer
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

pub mod wheel;

use hashbrown::{DefaultHashBuilder, HashTable};
use slab::Slab;
use std::hash::BuildHasher;

use crate::protocol::{Action, Reply, Request, Status};
use crate::stats::Counters;
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
}

/// What a timer in the wheel stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Lock(u32),
    Data(u32),
}

/// A lock held by an owner until `deadline`.
#[derive(Debug)]
struct Hold {
    name: Box<str>,
    owner: Box<str>,
    deadline: u64,
    token: u64,
    timer: TimerId,
}

/// A data item owned by an owner until `deadline`.
#[derive(Debug)]
struct Item {
    name: Box<str>,
    owner: Box<str>,
    value: Box<str>,
    deadline: u64,
    timer: TimerId,
}

trait Entry {
    fn name(&self) -> &str;
    fn timer(&self) -> TimerId;
    fn set_timer(&mut self, timer: TimerId);
    fn cost(&self) -> u64;
}

impl Entry for Hold {
    fn name(&self) -> &str {
        &self.name
    }
    fn timer(&self) -> TimerId {
        self.timer
    }
    fn set_timer(&mut self, timer: TimerId) {
        self.timer = timer;
    }
    fn cost(&self) -> u64 {
        ENTRY_OVERHEAD + self.name.len() as u64 + self.owner.len() as u64
    }
}

impl Entry for Item {
    fn name(&self) -> &str {
        &self.name
    }
    fn timer(&self) -> TimerId {
        self.timer
    }
    fn set_timer(&mut self, timer: TimerId) {
        self.timer = timer;
    }
    fn cost(&self) -> u64 {
        ENTRY_OVERHEAD + (self.name.len() + self.owner.len() + self.value.len()) as u64
    }
}

/// One namespace: entries in a slab, found by name through a hash table of
/// slab keys.
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

    fn find(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        let entries = &self.entries;
        self.index
            .find(hash, |&k| entries[k as usize].name() == name)
            .copied()
    }

    fn insert(&mut self, entry: E) -> u32 {
        let hash = self.hasher.hash_one(entry.name());
        let key = self.entries.insert(entry) as u32;
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .insert_unique(hash, key, |&k| hasher.hash_one(entries[k as usize].name()));
        key
    }

    fn remove(&mut self, key: u32) -> E {
        let hash = self.hasher.hash_one(self.entries[key as usize].name());
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
        match self.live_lock(now, req.name) {
            Some(key) => {
                let hold = &mut self.locks.entries[key as usize];
                if &*hold.owner != req.id {
                    return Reply::Bare(Status::NotOwner);
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
                self.locks.insert(Hold {
                    name: req.name.into(),
                    owner: req.id.into(),
                    deadline,
                    token,
                    timer,
                });
                self.counters.lock += 1;
                self.counters.a_lock = self.locks.len() as u64;
                Reply::Locked { id: req.id, token }
            }
        }
    }

    fn unlock<'a>(&mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        let Some(key) = self.live_lock(now, req.name) else {
            self.counters.unlock_nf += 1;
            return Reply::Bare(Status::Unlocked);
        };
        if &*self.locks.entries[key as usize].owner != req.id {
            return Reply::Bare(Status::NotOwner);
        }
        self.remove_lock(key);
        self.counters.unlock += 1;
        Reply::Owner(Status::Unlocked, req.id)
    }

    fn test_lock<'a>(&mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        self.counters.test_lock += 1;
        match self.live_lock(now, req.name) {
            None => Reply::Bare(Status::Unlocked),
            Some(key) if &*self.locks.entries[key as usize].owner == req.id => {
                Reply::Owner(Status::Locked, req.id)
            }
            Some(_) => Reply::Bare(Status::NotOwner),
        }
    }

    fn put<'a>(&mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        let deadline = now.saturating_add(req.expire_ms);
        match self.live_item(now, req.name) {
            Some(key) => {
                let item = &self.data.entries[key as usize];
                if &*item.owner != req.id {
                    return Reply::Bare(Status::NotOwner);
                }
                let old_len = item.value.len() as u64;
                let new_len = req.data.len() as u64;
                if new_len > old_len && !self.charge(new_len - old_len) {
                    return Reply::Bare(Status::No);
                }
                if new_len < old_len {
                    self.release(old_len - new_len);
                }
                let item = &mut self.data.entries[key as usize];
                item.value = req.data.into();
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
                self.data.insert(Item {
                    name: req.name.into(),
                    owner: req.id.into(),
                    value: req.data.into(),
                    deadline,
                    timer,
                });
                self.counters.put_new += 1;
                self.counters.a_data = self.data.len() as u64;
            }
        }
        self.counters.data_in += req.data.len() as u64;
        Reply::Owner(Status::Done, req.id)
    }

    fn get<'a>(&'a mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        let Some(key) = self.live_item(now, req.name) else {
            self.counters.get_nf += 1;
            return Reply::Bare(Status::NotFound);
        };
        let item = &self.data.entries[key as usize];
        if &*item.owner != req.id {
            self.counters.not_owner += 1;
            return Reply::Bare(Status::NotOwner);
        }
        self.counters.get += 1;
        self.counters.data_out += item.value.len() as u64;
        Reply::Value {
            id: req.id,
            data: &item.value,
        }
    }

    fn erase<'a>(&mut self, now: u64, req: &Request<'a>) -> Reply<'a> {
        let Some(key) = self.live_item(now, req.name) else {
            self.counters.erase_nf += 1;
            return Reply::Bare(Status::NotFound);
        };
        if &*self.data.entries[key as usize].owner != req.id {
            return Reply::Bare(Status::NotOwner);
        }
        self.remove_item(key);
        self.counters.erased += 1;
        Reply::Owner(Status::Done, req.id)
    }

    /// The key of the lock `name` if it exists and has not expired; an
    /// expired one is removed on the spot.
    fn live_lock(&mut self, now: u64, name: &str) -> Option<u32> {
        let key = self.locks.find(name)?;
        if self.locks.entries[key as usize].deadline > now {
            return Some(key);
        }
        self.remove_lock(key);
        self.counters.expired_lock += 1;
        None
    }

    /// As [`Store::live_lock`], for data items.
    fn live_item(&mut self, now: u64, name: &str) -> Option<u32> {
        let key = self.data.find(name)?;
        if self.data.entries[key as usize].deadline > now {
            return Some(key);
        }
        self.remove_item(key);
        self.counters.expired_data += 1;
        None
    }

    fn remove_lock(&mut self, key: u32) {
        let hold = self.locks.remove(key);
        self.wheel.cancel(hold.timer);
        self.release(hold.cost());
        self.counters.a_lock = self.locks.len() as u64;
    }

    fn remove_item(&mut self, key: u32) {
        let item = self.data.remove(key);
        self.wheel.cancel(item.timer);
        self.release(item.cost());
        self.counters.a_data = self.data.len() as u64;
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
        for &timer in &due {
            // The wheel has already dropped the timer: free the entry without
            // cancelling it again.
            match timer {
                Due::Lock(key) => {
                    let hold = self.locks.remove(key);
                    self.release(hold.cost());
                    self.counters.expired_lock += 1;
                }
                Due::Data(key) => {
                    let item = self.data.remove(key);
                    self.release(item.cost());
                    self.counters.expired_data += 1;
                }
            }
        }
        self.counters.a_lock = self.locks.len() as u64;
        self.counters.a_data = self.data.len() as u64;
        self.expired = due;
        more
    }

    /// Shrinks the tables back toward what is in use once enough was freed
    /// since the last time (`ForcedGC`); true when it did.
    pub fn maybe_compact(&mut self) -> bool {
        if self.freed_since_compaction < self.config.compact_after {
            return false;
        }
        self.compact();
        true
    }

    /// Compacts now (see [`Store::maybe_compact`]).
    pub fn compact(&mut self) {
        self.freed_since_compaction = 0;
        self.counters.forced_gc += 1;
        let wheel = &mut self.wheel;
        self.locks
            .compact(|hold, to| wheel.set_key(hold.timer(), Due::Lock(to)));
        self.data
            .compact(|item, to| wheel.set_key(item.timer(), Due::Data(to)));
        let (locks, data) = (&mut self.locks.entries, &mut self.data.entries);
        wheel.compact(|due, timer| match due {
            Due::Lock(k) => locks[k as usize].set_timer(timer),
            Due::Data(k) => data[k as usize].set_timer(timer),
        });
        self.expired = Vec::new();
    }
}

#[cfg(test)]
mod tests;
