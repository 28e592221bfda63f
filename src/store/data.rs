//! Data items: `Put`, `Get`, `Erase`.
//!
//! A data item is a name, an owner and an opaque value with a TTL. The value
//! is stored and returned byte for byte; nothing here looks inside it or
//! logs it.
//!
//! Boundary: time is an argument; replies are built here but written and
//! counted by the caller.

use super::packed::Packed;
use super::table::{Entry, ItemKey, packed_entry};
use super::wheel::TimerId;
use super::{Due, ENTRY_OVERHEAD, Store};
use crate::protocol::{Reply, Request, Status};
use crate::time::Moment;

/// A data item owned by an owner until `deadline`.
#[derive(Debug)]
pub(super) struct Item {
    /// Name, owner and value.
    pub(super) packed: Packed,
    pub(super) deadline: Moment,
    pub(super) timer: TimerId,
}

packed_entry!(Item => ItemKey);

impl Store {
    pub(super) fn put<'a>(&mut self, now: Moment, req: &Request<'a>) -> Reply<'a> {
        let deadline = now.after(req.expire());
        let hash = self.data.hash(req.name());
        let Some(key) = self.live_item(now, hash, req.name()) else {
            if req.expire().is_zero() {
                // Stored with no time: gone at once, so nothing is kept.
                self.counters.put_new += 1;
                self.counters.data_in += req.data().len() as u64;
                return Reply::WithId(Status::Done, req.id());
            }
            return self.new_item(hash, deadline, req);
        };
        let item = &self.data[key];
        if !item.packed.is_owned_by(req.id(), req.owner_name()) {
            return Reply::Bare(Status::NotOwner);
        }
        if req.expire().is_zero() {
            let timer = self.discard_item(key, hash);
            self.wheel.cancel(timer);
            self.counters.put_update += 1;
            self.counters.data_in += req.data().len() as u64;
            return Reply::WithId(Status::Done, req.id());
        }
        let old_len = item.packed.value().len() as u64;
        let new_len = req.data().len() as u64;
        if new_len > old_len && !self.charge(new_len - old_len) {
            return Reply::Bare(Status::No);
        }
        let Some(packed) = self
            .recycler
            .pack(req.name(), req.id(), req.owner_name(), req.data())
        else {
            if new_len > old_len {
                self.release(new_len - old_len);
            }
            return Reply::Bare(Status::BadPayload);
        };
        if new_len < old_len {
            self.release(old_len - new_len);
        }
        let item = &mut self.data[key];
        self.recycler
            .recycle(std::mem::replace(&mut item.packed, packed));
        item.deadline = deadline;
        self.wheel.reschedule(item.timer, deadline.as_ms());
        self.counters.put_update += 1;
        self.counters.data_in += new_len;
        Reply::WithId(Status::Done, req.id())
    }

    /// A new item for the absent name `req.name()` (whose hash is `hash`).
    fn new_item<'a>(&mut self, hash: u64, deadline: Moment, req: &Request<'a>) -> Reply<'a> {
        let Some(key) = self.data.vacant_key() else {
            return Reply::Bare(Status::No);
        };
        let Some(packed) = self
            .recycler
            .pack(req.name(), req.id(), req.owner_name(), req.data())
        else {
            return Reply::Bare(Status::BadPayload);
        };
        if !self.charge(ENTRY_OVERHEAD + packed.len() as u64) {
            self.recycler.recycle(packed);
            return Reply::Bare(Status::No);
        }
        let timer = self.wheel.schedule(deadline.as_ms(), Due::Data(key));
        self.data.insert(
            hash,
            key,
            Item {
                packed,
                deadline,
                timer,
            },
        );
        self.counters.put_new += 1;
        self.counters.a_data = self.data.len() as u64;
        self.counters.data_in += req.data().len() as u64;
        Reply::WithId(Status::Done, req.id())
    }

    pub(super) fn get<'a>(&'a mut self, now: Moment, req: &Request<'a>) -> Reply<'a> {
        let hash = self.data.hash(req.name());
        let Some(key) = self.live_item(now, hash, req.name()) else {
            self.counters.get_nf += 1;
            return Reply::Bare(Status::NotFound);
        };
        let item = &self.data[key];
        if !item.packed.is_owned_by(req.id(), req.owner_name()) {
            return Reply::Bare(Status::NotOwner);
        }
        self.counters.get += 1;
        self.counters.data_out += item.packed.value().len() as u64;
        Reply::Value {
            id: req.id(),
            data: item.packed.value(),
        }
    }

    pub(super) fn erase<'a>(&mut self, now: Moment, req: &Request<'a>) -> Reply<'a> {
        let hash = self.data.hash(req.name());
        let Some(key) = self.live_item(now, hash, req.name()) else {
            self.counters.erase_nf += 1;
            return Reply::Bare(Status::NotFound);
        };
        if !self.data[key]
            .packed
            .is_owned_by(req.id(), req.owner_name())
        {
            return Reply::Bare(Status::NotOwner);
        }
        let timer = self.discard_item(key, hash);
        self.wheel.cancel(timer);
        self.counters.erased += 1;
        Reply::WithId(Status::Done, req.id())
    }

    /// The key of the data item `name` (whose hash is `hash`) if it exists
    /// and has not expired; an expired one is removed on the spot.
    fn live_item(&mut self, now: Moment, hash: u64, name: &str) -> Option<ItemKey> {
        let key = self.data.find(hash, name)?;
        if self.data[key].deadline > now {
            return Some(key);
        }
        let timer = self.discard_item(key, hash);
        self.wheel.cancel(timer);
        self.counters.expired_data += 1;
        None
    }

    /// Takes data item `key` out of its table (see `discard_hold`). Returns
    /// its timer, for the caller to cancel unless the wheel has just fired it.
    pub(super) fn discard_item(&mut self, key: ItemKey, hash: u64) -> TimerId {
        let item = self.data.remove(hash, key);
        self.release(item.cost());
        self.counters.a_data = self.data.len() as u64;
        self.recycler.recycle(item.packed);
        item.timer
    }
}
