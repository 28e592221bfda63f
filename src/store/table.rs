//! One namespace of the store: entries in a slab, found by name.
//!
//! Entries live in a `Slab`, so each has a small, stable key that a timer in
//! the wheel can carry; a `hashbrown::HashTable` of those keys, hashed by
//! name, finds them. Each kind of entry has its own key type ([`HoldKey`],
//! [`ItemKey`]), so a data item's key can never index the lock table.
//!
//! A request hashes its name once ([`Table::hash`]) and passes the hash to
//! `find` and then to `insert` or `remove`: hashing a name costs more than
//! the table's probe.
//!
//! Boundary: no clock, no socket, no knowledge of TTLs or owners; the
//! store's modules decide what an entry means.

use hashbrown::{DefaultHashBuilder, HashTable};
use slab::Slab;
use std::hash::BuildHasher;

use super::wheel::TimerId;

/// A key into one table's slab, typed by the kind of entry it names.
pub(super) trait SlabKey: Copy + Eq + std::fmt::Debug {
    /// The key of slab slot `index`.
    fn from_index(index: u32) -> Self;
    /// The slab slot.
    fn index(self) -> usize;
}

macro_rules! slab_keys {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(super) struct $name(u32);

        impl $name {
            /// A key no slot ever has ([`key_at`] never hands it out): the
            /// end of an intrusive list.
            #[allow(dead_code)]
            pub(super) const NIL: $name = $name(u32::MAX);
        }

        impl SlabKey for $name {
            fn from_index(index: u32) -> Self {
                $name(index)
            }
            fn index(self) -> usize {
                self.0 as usize
            }
        }
    )*};
}

slab_keys! {
    /// A lock hold's key in the lock table.
    HoldKey;
    /// A data item's key in the data table.
    ItemKey;
    /// A parked request's key in the waiters' slab.
    WaiterKey;
    /// One ID's share of a lock held shared, in the holders' slab.
    HolderKey;
    /// The set of shares of a lock held shared.
    SetKey;
}

/// The slab key `index` as a `u32` key, or `None` past `u32::MAX - 1`: the
/// store refuses to grow a table that far rather than truncate a key.
pub(super) fn key_at<K: SlabKey>(index: usize) -> Option<K> {
    u32::try_from(index)
        .ok()
        .filter(|&i| i != u32::MAX)
        .map(K::from_index)
}

/// What a table needs of its entries.
pub(super) trait Entry {
    type Key: SlabKey;
    fn name(&self) -> &str;
    fn timer(&self) -> TimerId;
    fn set_timer(&mut self, timer: TimerId);
    /// Bytes charged to the memory guard for this entry.
    fn cost(&self) -> u64;
}

/// Implements [`Entry`] for entry types that keep their strings in a
/// `packed` field and their timer in `timer`, with the given key type.
macro_rules! packed_entry {
    ($($kind:ty => $key:ty),* $(,)?) => {$(
        impl $crate::store::table::Entry for $kind {
            type Key = $key;
            fn name(&self) -> &str {
                self.packed.name()
            }
            fn timer(&self) -> $crate::store::wheel::TimerId {
                self.timer
            }
            fn set_timer(&mut self, timer: $crate::store::wheel::TimerId) {
                self.timer = timer;
            }
            fn cost(&self) -> u64 {
                $crate::store::ENTRY_OVERHEAD + self.packed.len() as u64
            }
        }
    )*};
}
pub(super) use packed_entry;

/// One namespace: entries in a slab, found by name through a hash table of
/// slab keys.
pub(super) struct Table<E: Entry> {
    entries: Slab<E>,
    index: HashTable<E::Key>,
    hasher: DefaultHashBuilder,
}

impl<E: Entry> Table<E> {
    pub(super) fn new() -> Self {
        Table {
            entries: Slab::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry with its key, in slab order (which says nothing of the
    /// logical state: callers that need an order sort).
    pub(super) fn iter(&self) -> impl Iterator<Item = (E::Key, &E)> {
        self.entries
            .iter()
            .map(|(i, e)| (key_at::<E::Key>(i).unwrap_or(E::Key::from_index(0)), e))
    }

    /// Whether at least half of the slab's room is unused, so that
    /// compacting would give memory back.
    pub(super) fn is_sparse(&self) -> bool {
        self.entries.capacity() >= 2 * self.entries.len() + 64
    }

    /// Entry `key`, if that slot is in use (a key kept across calls may be
    /// stale).
    pub(super) fn get(&self, key: E::Key) -> Option<&E> {
        self.entries.get(key.index())
    }

    /// The hash of `name` in this table.
    pub(super) fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    /// The hash of entry `key`'s name, for removals that no request drove
    /// (expiry).
    pub(super) fn hash_of(&self, key: E::Key) -> u64 {
        self.hash(self[key].name())
    }

    /// The entry named `name`, whose hash is `hash`.
    pub(super) fn find(&self, hash: u64, name: &str) -> Option<E::Key> {
        debug_assert_eq!(hash, self.hash(name));
        let entries = &self.entries;
        self.index
            .find(hash, |k| entries[k.index()].name() == name)
            .copied()
    }

    /// The key the next inserted entry gets, or `None` if the table cannot
    /// grow (see [`key_at`]).
    pub(super) fn vacant_key(&self) -> Option<E::Key> {
        key_at(self.entries.vacant_key())
    }

    /// Adds `entry`, whose name hashes to `hash` and is not in the table, at
    /// `key`, which [`Table::vacant_key`] gave just before.
    pub(super) fn insert(&mut self, hash: u64, key: E::Key, entry: E) {
        debug_assert_eq!(hash, self.hash(entry.name()));
        debug_assert_eq!(key.index(), self.entries.vacant_key());
        self.entries.insert(entry);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .insert_unique(hash, key, |k| hasher.hash_one(entries[k.index()].name()));
    }

    /// Removes entry `key`, whose name hashes to `hash`.
    pub(super) fn remove(&mut self, hash: u64, key: E::Key) -> E {
        debug_assert_eq!(hash, self.hash_of(key));
        if let Ok(slot) = self.index.find_entry(hash, |&k| k == key) {
            slot.remove();
        }
        self.entries.remove(key.index())
    }

    /// Moves entries to the front of the slab and gives back unused memory;
    /// `moved(entry, new_key)` is told of every entry whose key changed.
    pub(super) fn compact(&mut self, mut moved: impl FnMut(&E, E::Key)) {
        let (index, hasher) = (&mut self.index, &self.hasher);
        self.entries.compact(|entry, from, to| {
            // Both come from the slab, whose keys all passed `key_at`; a
            // compaction only lowers them.
            let (Some(from), Some(to)) = (key_at::<E::Key>(from), key_at::<E::Key>(to)) else {
                return true;
            };
            let hash = hasher.hash_one(entry.name());
            if let Some(k) = index.find_mut(hash, |&k| k == from) {
                *k = to;
            }
            moved(entry, to);
            true
        });
        self.entries.shrink_to_fit();
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .shrink_to_fit(|k| hasher.hash_one(entries[k.index()].name()));
    }
}

impl<E: Entry> std::ops::Index<E::Key> for Table<E> {
    type Output = E;
    fn index(&self, key: E::Key) -> &E {
        &self.entries[key.index()]
    }
}

impl<E: Entry> std::ops::IndexMut<E::Key> for Table<E> {
    fn index_mut(&mut self, key: E::Key) -> &mut E {
        &mut self.entries[key.index()]
    }
}
