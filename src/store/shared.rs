//! The holders of locks held shared (`"Mode":"Shared"`).
//!
//! An exclusive hold keeps its one owner in the lock's own entry, as it
//! always did: that is the fast path, and nothing here is touched by it. A
//! lock held shared points to a [`HolderSet`] (its limit and its members),
//! and each member is a [`Holder`] with its own owner, deadline, wheel timer
//! and fencing token. A hash index on (set, owner) finds the caller's own
//! share in O(1), and a set's members are a vector in which each holder
//! knows its place, so a share leaves in O(1) too.
//!
//! Invariants: a set has at most `limit` members and a set is only kept while
//! its lock is shared; no two members of a set have the same owner (the
//! comparison is [`Holder::is_owned_by`]); the holders' and the sets' slabs
//! are never renumbered (wheel timers and the lock entries name their slots),
//! only released when empty.
//!
//! Boundary: no clock, no wheel, no memory guard: the callers in `locks.rs`
//! decide; this is storage.

use crate::protocol::request::NameTag;
use hashbrown::{DefaultHashBuilder, HashTable};
use slab::Slab;
use std::hash::BuildHasher;

use super::ENTRY_OVERHEAD;
use super::table::{HoldKey, HolderKey, SetKey, SlabKey, key_at};
use super::wheel::TimerId;
use crate::protocol::FencingToken;
use crate::time::Moment;

/// One ID's share of a lock held shared.
#[derive(Debug)]
pub(super) struct Holder {
    /// The set it belongs to.
    pub(super) set: SetKey,
    owner: Box<str>,
    /// The Name the owner was authenticated as, if it was.
    owner_name: Option<NameTag>,
    pub(super) deadline: Moment,
    pub(super) token: FencingToken,
    pub(super) timer: TimerId,
    /// Its place in its set's `members`.
    at: u32,
}

impl Holder {
    /// Whether this share belongs to the caller `id`: the one ownership
    /// comparison of shares.
    pub(super) fn is_owned_by(&self, id: &str, name: Option<NameTag>) -> bool {
        &*self.owner == id && self.owner_name == name
    }

    /// The owner.
    pub(super) fn owner(&self) -> &str {
        &self.owner
    }

    /// The Name the owner was authenticated as, if it was.
    pub(super) fn owner_name(&self) -> Option<NameTag> {
        self.owner_name
    }

    /// Its place in its set's members (for the audit).
    pub(super) fn place(&self) -> u32 {
        self.at
    }

    /// Bytes charged to the memory guard for this share.
    pub(super) fn cost(&self) -> u64 {
        holder_cost(&self.owner)
    }
}

/// Bytes a share held by `owner` is charged: like an entry.
pub(super) fn holder_cost(owner: &str) -> u64 {
    ENTRY_OVERHEAD + owner.len() as u64
}

/// The holders of one lock held shared.
#[derive(Debug)]
pub(super) struct HolderSet {
    /// The lock.
    pub(super) lock: HoldKey,
    /// Most members, fixed by the grant that took the lock from nobody.
    pub(super) limit: u32,
    members: Vec<HolderKey>,
}

impl HolderSet {
    pub(super) fn len(&self) -> u32 {
        // A set never has more than `limit` (a u32) members.
        u32::try_from(self.members.len()).unwrap_or(u32::MAX)
    }

    pub(super) fn members(&self) -> &[HolderKey] {
        &self.members
    }
}

/// Every share of every lock held shared.
pub(super) struct Holders {
    holders: Slab<Holder>,
    sets: Slab<HolderSet>,
    /// Holder keys, hashed by (set, owner).
    index: HashTable<HolderKey>,
    hasher: DefaultHashBuilder,
}

impl Holders {
    pub(super) fn new() -> Holders {
        Holders {
            holders: Slab::new(),
            sets: Slab::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Sets (locks held shared) now.
    pub(super) fn set_count(&self) -> usize {
        self.sets.len()
    }

    /// Shares held now, on all locks.
    pub(super) fn len(&self) -> usize {
        self.holders.len()
    }

    fn hash(&self, set: SetKey, owner: &str) -> u64 {
        self.hasher.hash_one((set.index(), owner))
    }

    /// A new, empty set for lock `lock`; `None` if the slab cannot grow.
    pub(super) fn new_set(&mut self, lock: HoldKey, limit: u32) -> Option<SetKey> {
        let key = key_at::<SetKey>(self.sets.vacant_key())?;
        self.sets.insert(HolderSet {
            lock,
            limit,
            members: Vec::new(),
        });
        Some(key)
    }

    /// Removes set `set`, which must have no members.
    pub(super) fn remove_set(&mut self, set: SetKey) {
        let gone = self.sets.remove(set.index());
        debug_assert!(gone.members.is_empty());
    }

    pub(super) fn set(&self, set: SetKey) -> &HolderSet {
        &self.sets[set.index()]
    }

    pub(super) fn set_mut(&mut self, set: SetKey) -> &mut HolderSet {
        &mut self.sets[set.index()]
    }

    /// The share of `owner` in set `set`.
    pub(super) fn find(
        &self,
        set: SetKey,
        owner: &str,
        owner_name: Option<NameTag>,
    ) -> Option<HolderKey> {
        let holders = &self.holders;
        self.index
            .find(self.hash(set, owner), |k| {
                let h = &holders[k.index()];
                h.set == set && h.is_owned_by(owner, owner_name)
            })
            .copied()
    }

    /// The key the next share gets, or `None` if the slab cannot grow.
    pub(super) fn vacant_key(&self) -> Option<HolderKey> {
        key_at(self.holders.vacant_key())
    }

    /// Adds `owner`'s share to set `set` at `key` (from
    /// [`Holders::vacant_key`] just before); the owner has none there yet.
    pub(super) fn insert(
        &mut self,
        key: HolderKey,
        set: SetKey,
        (owner, owner_name): (&str, Option<NameTag>),
        deadline: Moment,
        token: FencingToken,
        timer: TimerId,
    ) {
        debug_assert_eq!(key.index(), self.holders.vacant_key());
        debug_assert!(self.find(set, owner, owner_name).is_none());
        let members = &mut self.sets[set.index()].members;
        let at = u32::try_from(members.len()).unwrap_or(u32::MAX);
        members.push(key);
        self.holders.insert(Holder {
            set,
            owner: owner.into(),
            owner_name,
            deadline,
            token,
            timer,
            at,
        });
        let hash = self.hash(set, owner);
        let (holders, hasher) = (&self.holders, &self.hasher);
        self.index.insert_unique(hash, key, |k| {
            let h = &holders[k.index()];
            hasher.hash_one((h.set.index(), &*h.owner))
        });
    }

    /// Takes share `key` out of its set and the index. Its timer and its
    /// bytes are left to the caller.
    pub(super) fn remove(&mut self, key: HolderKey) -> Holder {
        let holder = self.holders.remove(key.index());
        let hash = self.hash(holder.set, &holder.owner);
        if let Ok(slot) = self.index.find_entry(hash, |&k| k == key) {
            slot.remove();
        }
        let members = &mut self.sets[holder.set.index()].members;
        members.swap_remove(holder.at as usize);
        if let Some(&moved) = members.get(holder.at as usize) {
            self.holders[moved.index()].at = holder.at;
        }
        holder
    }

    /// Gives back the slabs' memory once no share and no set is left (their
    /// keys live on in timers and lock entries, so they are never
    /// renumbered).
    pub(super) fn compact(&mut self) {
        if self.holders.is_empty() && self.sets.is_empty() {
            *self = Holders::new();
        } else {
            self.index.shrink_to_fit(|k| {
                let h = &self.holders[k.index()];
                self.hasher.hash_one((h.set.index(), &*h.owner))
            });
        }
    }
}

impl std::ops::Index<HolderKey> for Holders {
    type Output = Holder;
    fn index(&self, key: HolderKey) -> &Holder {
        &self.holders[key.index()]
    }
}

impl std::ops::IndexMut<HolderKey> for Holders {
    fn index_mut(&mut self, key: HolderKey) -> &mut Holder {
        &mut self.holders[key.index()]
    }
}
