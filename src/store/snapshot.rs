//! Snapshots: the store's whole logical state as bytes, and a store rebuilt
//! from them.
//!
//! Replication compacts its log into a snapshot of the state machine, and a
//! node that falls behind, or restarts, is given one. What is written is
//! what the store's behaviour depends on (see "Determinism" in the module
//! above) and nothing of its layout, so two stores in the same logical
//! state write the same bytes, and a restored store answers every later
//! call as the store it was taken from. Counters are node-local statistics
//! and are left out; `ALock` and `AData` are set from what is restored.
//!
//! # Format (version 1)
//!
//! Little-endian throughout. A string is its length (`u32`; a value's is a
//! `u64`) then its UTF-8 bytes. A Name tag is a byte, 0 (none) or 1
//! followed by the tag's `u64`. Times are absolute milliseconds on the
//! store's clock, the one [`Store::apply`] is given (a cluster's time), so a
//! TTL resumes exactly where it stood.
//!
//! ```text
//! magic "JRDLMSNP"  version u16  taken_at u64  next_token u64
//! locks u32, each, in increasing byte order of names:
//!     name  flags u8 (bit 0: held shared; bit 1: its queue awaits a grant)
//!     exclusive: owner  tag  deadline u64  token u64
//!     shared:    limit u32  shares u32, each, by increasing (owner, tag):
//!                    owner  tag  deadline u64  token u64
//!     waiters u32, each, from the front of the queue:
//!         owner  tag  mode u8 (0 exclusive, 1 shared)  limit u32 (0 when
//!         exclusive)  expire u64 (ms)  wait deadline u64  origin u64 (0: none)
//! items u32, each, in increasing byte order of names:
//!     name  owner  tag  value  deadline u64
//! ```
//!
//! Reading accepts exactly what writing produces: any other byte string is
//! an error that says what was wrong and at which offset, never a panic
//! (wrong magic, unknown version, a truncation, trailing bytes, a name or ID
//! longer than a request may have, not UTF-8, names out of order or
//! repeated, a limit out of range, more shares than the limit, a token not
//! below the next token, two waiters with one origin, ...). A count is
//! checked against the bytes left before anything is read for it, and
//! nothing is allocated but the store's own entries, so decoding costs a
//! small multiple of the input's size.
//!
//! Memory guard: each restored entry, share and waiter is charged as when
//! it was made, without asking the guard. A snapshot holding more than the
//! config's `max_bytes` still restores in full (it is state the cluster
//! acknowledged); the guard then refuses new entries until enough is gone.
//!
//! Boundary: bytes in, bytes out; no file, no clock (the time the snapshot
//! was taken at comes back to the caller).

use std::num::NonZeroU64;

use super::shared::holder_cost;
use super::sharing::NEVER;
use super::table::{Entry, SetKey, SlabKey, WaiterKey, key_at};
use super::waiters::{Parking, Queue};
use super::{Due, ENTRY_OVERHEAD, Hold, Item, Origin, Store, StoreConfig};
use crate::protocol::request::{MAX_FILE_NAME, MAX_ID, NameTag};
use crate::protocol::{FencingToken, Mode};
use crate::time::{Millis, Moment};

/// The first bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"JRDLMSNP";
/// The format written, and the only one read.
pub const VERSION: u16 = 1;

const SHARED: u8 = 1;
const PENDING: u8 = 2;

/// Fewest bytes a lock, a share, a waiter and a data item take: what a
/// count is checked against.
const MIN_LOCK: usize = 4 + 1 + 4 + 1 + 8 + 8 + 4;
const MIN_SHARE: usize = 4 + 1 + 8 + 8;
const MIN_WAITER: usize = 4 + 1 + 1 + 4 + 8 + 8 + 8;
const MIN_ITEM: usize = 4 + 4 + 1 + 8 + 8;

/// Why bytes are not a snapshot, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotError {
    offset: usize,
    kind: SnapshotErrorKind,
}

/// What was wrong with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotErrorKind {
    /// It does not start with [`MAGIC`].
    NotASnapshot,
    /// A version this build does not read.
    UnknownVersion(u16),
    /// It ends inside a field or a record.
    Truncated,
    /// Bytes follow the end of the snapshot.
    TrailingBytes,
    /// A field whose value the format or the store's rules forbid.
    Invalid(&'static str),
}

impl SnapshotError {
    /// The byte offset of the field that was wrong.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What was wrong.
    pub fn kind(&self) -> SnapshotErrorKind {
        self.kind
    }
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.offset;
        match self.kind {
            SnapshotErrorKind::NotASnapshot => write!(f, "not a store snapshot (no magic)"),
            SnapshotErrorKind::UnknownVersion(v) => {
                write!(
                    f,
                    "snapshot version {v} unknown (this build reads {VERSION})"
                )
            }
            SnapshotErrorKind::Truncated => write!(f, "snapshot truncated at byte {at}"),
            SnapshotErrorKind::TrailingBytes => write!(f, "bytes after the snapshot at byte {at}"),
            SnapshotErrorKind::Invalid(what) => write!(f, "snapshot invalid at byte {at}: {what}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Appends the pieces of the format.
struct Writer<'o>(&'o mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A name or an ID (at most 4096 bytes, so its length fits).
    fn text(&mut self, s: &str) {
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(s.as_bytes());
    }
    fn value(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn tag(&mut self, tag: Option<NameTag>) {
        match tag {
            None => self.u8(0),
            Some(tag) => {
                self.u8(1);
                self.u64(tag.0);
            }
        }
    }
    /// A count of things the store holds: slab keys are `u32`s, so it fits.
    fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

impl Store {
    /// Appends the store's logical state at `now` to `out` (see the format
    /// above); [`Store::read_snapshot`] gives it back. `now` is only
    /// recorded, and is where the restored store's clock starts: give the
    /// time of the last call made to the store, or later. Entries whose
    /// time is up but that nothing has removed yet are written as they are,
    /// as they are state too.
    pub fn write_snapshot(&self, now: Moment, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        w.0.extend_from_slice(&MAGIC);
        w.0.extend_from_slice(&VERSION.to_le_bytes());
        w.u64(now.as_ms());
        w.u64(self.next_token.get());
        let mut locks: Vec<&Hold> = self.locks.iter().map(|(_, hold)| hold).collect();
        locks.sort_unstable_by(|a, b| a.packed.name().cmp(b.packed.name()));
        w.count(locks.len());
        for hold in locks {
            w.text(hold.packed.name());
            let shared = hold.shared != SetKey::NIL;
            let pending = shared && hold.pending && hold.queue.head != WaiterKey::NIL;
            w.u8(if shared { SHARED } else { 0 } | if pending { PENDING } else { 0 });
            if shared {
                let set = self.holders.set(hold.shared);
                w.u32(set.limit);
                let mut shares: Vec<_> = set.members().iter().map(|&h| &self.holders[h]).collect();
                shares
                    .sort_unstable_by_key(|share| (share.owner(), share.owner_name().map(|t| t.0)));
                w.count(shares.len());
                for share in shares {
                    w.text(share.owner());
                    w.tag(share.owner_name());
                    w.u64(share.deadline.as_ms());
                    w.u64(share.token.get());
                }
            } else {
                w.text(hold.packed.owner());
                w.tag(hold.packed.owner_name());
                w.u64(hold.deadline.as_ms());
                w.u64(hold.token.get());
            }
            w.u32(hold.queue.len);
            let mut at = hold.queue.head;
            while at != WaiterKey::NIL {
                let waiter = &self.waiters[at.index()];
                w.text(&waiter.request.owner);
                w.tag(waiter.request.owner_name);
                w.u8(match waiter.request.mode {
                    Mode::Exclusive => 0,
                    Mode::Shared => 1,
                });
                w.u32(waiter.request.limit);
                w.u64(waiter.request.expire.as_ms());
                w.u64(waiter.request.until.as_ms());
                w.u64(waiter.request.origin.map_or(0, |o| o.0.get()));
                at = waiter.next;
            }
        }
        let mut items: Vec<&Item> = self.data.iter().map(|(_, item)| item).collect();
        items.sort_unstable_by(|a, b| a.packed.name().cmp(b.packed.name()));
        w.count(items.len());
        for item in items {
            w.text(item.packed.name());
            w.text(item.packed.owner());
            w.tag(item.packed.owner_name());
            w.value(item.packed.value());
            w.u64(item.deadline.as_ms());
        }
    }

    /// A store with `config` in the state `bytes` (from
    /// [`Store::write_snapshot`]) describe, and the time the snapshot was
    /// taken at, which is where the store's clock stands.
    pub fn read_snapshot(
        config: StoreConfig,
        bytes: &[u8],
    ) -> Result<(Store, Moment), SnapshotError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len()).ok() != Some(&MAGIC[..]) {
            return Err(r.error_at(0, SnapshotErrorKind::NotASnapshot));
        }
        let version = u16::from_le_bytes(r.array()?);
        if version != VERSION {
            return Err(r.error_at(MAGIC.len(), SnapshotErrorKind::UnknownVersion(version)));
        }
        let taken_at = Moment::from_ms(r.u64()?);
        let next_token = FencingToken::new(r.u64()?);
        let mut store = Store::new(config, taken_at);
        store.next_token = next_token;
        let mut restore = Restore { store, bytes: 0 };
        r.named(
            MIN_LOCK,
            "lock names out of order, or repeated",
            |r, name| restore.lock(r, name),
        )?;
        r.named(
            MIN_ITEM,
            "item names out of order, or repeated",
            |r, name| restore.item(r, name),
        )?;
        if r.at != bytes.len() {
            return Err(r.error_at(r.at, SnapshotErrorKind::TrailingBytes));
        }
        let mut store = restore.store;
        store.bytes = restore.bytes;
        store.counters.a_lock = store.locks.len() as u64;
        store.counters.a_data = store.data.len() as u64;
        Ok((store, taken_at))
    }
}

/// A store being rebuilt, and the bytes its entries are charged.
struct Restore {
    store: Store,
    bytes: u64,
}

impl Restore {
    fn charge(&mut self, cost: u64) {
        self.bytes = self.bytes.saturating_add(cost);
    }

    /// Whether `token` may be held: below the next token, unless tokens ran
    /// out (the last one is then both).
    fn token_ok(&self, token: u64) -> bool {
        let next = self.store.next_token.get();
        token < next || next == u64::MAX
    }

    /// The rest of lock `name`'s record.
    fn lock(&mut self, r: &mut Reader<'_>, name: &str) -> Result<(), SnapshotError> {
        let store = &mut self.store;
        let flags_at = r.at;
        let flags = r.u8()?;
        if flags & !(SHARED | PENDING) != 0 || flags == PENDING {
            return Err(r.invalid(flags_at, "lock flags"));
        }
        let Some(key) = store.locks.vacant_key() else {
            return Err(r.invalid(flags_at, "more locks than the table can hold"));
        };
        let hash = store.locks.hash(name);
        if flags & SHARED == 0 {
            let owner = r.text(MAX_ID)?;
            let tag = r.tag()?;
            let deadline = Moment::from_ms(r.u64()?);
            let token_at = r.at;
            let token = r.u64()?;
            if !self.token_ok(token) {
                return Err(r.invalid(token_at, "a token not below the next token"));
            }
            let store = &mut self.store;
            let Some(packed) = store.recycler.pack(name, owner, tag, "") else {
                return Err(r.invalid(flags_at, "a lock's strings do not fit"));
            };
            let timer = store.wheel.schedule(deadline.as_ms(), Due::Lock(key));
            store.locks.insert(
                hash,
                key,
                Hold {
                    packed,
                    deadline,
                    token: FencingToken::new(token),
                    timer,
                    queue: Queue::EMPTY,
                    shared: SetKey::NIL,
                    pending: false,
                },
            );
        } else {
            let limit_at = r.at;
            let limit = r.u32()?;
            if !(1..=store.config.max_holders).contains(&limit) {
                return Err(r.invalid(limit_at, "a limit out of range"));
            }
            let count_at = r.at;
            let shares = r.count(MIN_SHARE)?;
            if !(1..=limit).contains(&shares) {
                return Err(r.invalid(count_at, "a shared lock's shares not within 1..=limit"));
            }
            let Some(packed) = store.recycler.pack(name, "", None, "") else {
                return Err(r.invalid(flags_at, "a lock's strings do not fit"));
            };
            let Some(set) = store.holders.new_set(key, limit) else {
                return Err(r.invalid(flags_at, "more shared locks than the table can hold"));
            };
            let timer = store.wheel.schedule(NEVER, Due::Lock(key));
            store.locks.insert(
                hash,
                key,
                Hold {
                    packed,
                    deadline: Moment::from_ms(NEVER),
                    token: FencingToken::new(0),
                    timer,
                    queue: Queue::EMPTY,
                    shared: set,
                    pending: false,
                },
            );
            let mut previous: Option<(&str, Option<u64>)> = None;
            for _ in 0..shares {
                let start = r.at;
                let owner = r.text(MAX_ID)?;
                let tag = r.tag()?;
                let deadline = Moment::from_ms(r.u64()?);
                let token_at = r.at;
                let token = r.u64()?;
                let this = (owner, tag.map(|t| t.0));
                if previous.is_some_and(|p| p >= this) {
                    return Err(r.invalid(start, "shares out of order, or one owner twice"));
                }
                previous = Some(this);
                if !self.token_ok(token) {
                    return Err(r.invalid(token_at, "a token not below the next token"));
                }
                let store = &mut self.store;
                let Some(hkey) = store.holders.vacant_key() else {
                    return Err(r.invalid(start, "more shares than the table can hold"));
                };
                let timer = store.wheel.schedule(deadline.as_ms(), Due::Holder(hkey));
                let token = FencingToken::new(token);
                store
                    .holders
                    .insert(hkey, set, (owner, tag), deadline, token, timer);
                let hold = &mut store.locks[key];
                hold.deadline = hold.deadline.min(deadline);
                self.charge(holder_cost(owner));
            }
        }
        let hold = &self.store.locks[key];
        self.charge(hold.cost());
        let waiters = r.count(MIN_WAITER)?;
        for _ in 0..waiters {
            self.waiter(r, key)?;
        }
        if flags & PENDING != 0 {
            if self.store.locks[key].queue.head == WaiterKey::NIL {
                return Err(r.invalid(flags_at, "a grant awaited by an empty queue"));
            }
            self.store.mark_unblocked(key);
        }
        Ok(())
    }

    /// One waiter's record, queued at the end of lock `key`'s queue.
    fn waiter(&mut self, r: &mut Reader<'_>, key: super::HoldKey) -> Result<(), SnapshotError> {
        let start = r.at;
        let owner = r.text(MAX_ID)?;
        let owner_name = r.tag()?;
        let mode_at = r.at;
        let mode = match r.u8()? {
            0 => Mode::Exclusive,
            1 => Mode::Shared,
            _ => return Err(r.invalid(mode_at, "a waiter's mode")),
        };
        let limit_at = r.at;
        let limit = r.u32()?;
        let limit_ok = match mode {
            Mode::Exclusive => limit == 0,
            Mode::Shared => (1..=self.store.config.max_holders).contains(&limit),
        };
        if !limit_ok {
            return Err(r.invalid(limit_at, "a waiter's limit out of range"));
        }
        let expire = Millis::new(r.u64()?);
        let until = Moment::from_ms(r.u64()?);
        let origin_at = r.at;
        let origin = NonZeroU64::new(r.u64()?).map(Origin);
        let store = &mut self.store;
        if origin.is_some_and(|o| store.origins.contains_key(&o)) {
            return Err(r.invalid(origin_at, "two waiters with one origin"));
        }
        let Some(wkey) = key_at::<WaiterKey>(store.waiters.vacant_key()) else {
            return Err(r.invalid(start, "more waiters than the table can hold"));
        };
        let parking = Parking {
            owner: owner.into(),
            owner_name,
            expire,
            mode,
            limit,
            until,
            origin,
        };
        store.enqueue(key, wkey, parking);
        self.charge(ENTRY_OVERHEAD + owner.len() as u64);
        Ok(())
    }

    /// The rest of data item `name`'s record.
    fn item(&mut self, r: &mut Reader<'_>, name: &str) -> Result<(), SnapshotError> {
        let start = r.at;
        let owner = r.text(MAX_ID)?;
        let tag = r.tag()?;
        let value = r.value()?;
        let deadline = Moment::from_ms(r.u64()?);
        let store = &mut self.store;
        let Some(key) = store.data.vacant_key() else {
            return Err(r.invalid(start, "more items than the table can hold"));
        };
        let Some(packed) = store.recycler.pack(name, owner, tag, value) else {
            return Err(r.invalid(start, "an item's strings do not fit"));
        };
        let timer = store.wheel.schedule(deadline.as_ms(), Due::Data(key));
        let hash = store.data.hash(name);
        let item = Item {
            packed,
            deadline,
            timer,
        };
        let cost = item.cost();
        store.data.insert(hash, key, item);
        self.charge(cost);
        Ok(())
    }
}

/// Reads the pieces of the format, each checked against what is left.
struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn error_at(&self, offset: usize, kind: SnapshotErrorKind) -> SnapshotError {
        SnapshotError { offset, kind }
    }

    fn invalid(&self, offset: usize, what: &'static str) -> SnapshotError {
        self.error_at(offset, SnapshotErrorKind::Invalid(what))
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'b [u8], SnapshotError> {
        if n > self.left() {
            return Err(self.error_at(self.at, SnapshotErrorKind::Truncated));
        }
        let piece = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(piece)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let at = self.at;
        let piece = self.take(N)?;
        piece
            .try_into()
            .map_err(|_| self.error_at(at, SnapshotErrorKind::Truncated))
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A count of records of at least `min` bytes each, then the records,
    /// each a name (in increasing order, or the error is `out_of_order`)
    /// followed by what `record` reads.
    fn named(
        &mut self,
        min: usize,
        out_of_order: &'static str,
        mut record: impl FnMut(&mut Self, &'b str) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let mut previous: Option<&str> = None;
        for _ in 0..self.count(min)? {
            let start = self.at;
            let name = self.text(MAX_FILE_NAME)?;
            if previous.is_some_and(|p| p >= name) {
                return Err(self.invalid(start, out_of_order));
            }
            previous = Some(name);
            record(self, name)?;
        }
        Ok(())
    }

    /// A count of records of at least `min` bytes each, all of which must
    /// fit in what is left.
    fn count(&mut self, min: usize) -> Result<u32, SnapshotError> {
        let at = self.at;
        let n = self.u32()?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min))
            .is_some_and(|need| need <= self.left());
        if !fits {
            return Err(self.error_at(at, SnapshotErrorKind::Truncated));
        }
        Ok(n)
    }

    fn utf8(&mut self, len: usize, at: usize) -> Result<&'b str, SnapshotError> {
        let piece = self.take(len)?;
        std::str::from_utf8(piece).map_err(|_| self.invalid(at, "a string not UTF-8"))
    }

    /// A name or an ID of at most `max` bytes.
    fn text(&mut self, max: usize) -> Result<&'b str, SnapshotError> {
        let at = self.at;
        let len = usize::try_from(self.u32()?).unwrap_or(usize::MAX);
        if len > max {
            return Err(self.invalid(at, "a name or ID longer than a request may send"));
        }
        self.utf8(len, at)
    }

    /// A data item's value.
    fn value(&mut self) -> Result<&'b str, SnapshotError> {
        let at = self.at;
        let len = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
        self.utf8(len, at)
    }

    fn tag(&mut self) -> Result<Option<NameTag>, SnapshotError> {
        let at = self.at;
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(NameTag(self.u64()?))),
            _ => Err(self.invalid(at, "a Name tag marker")),
        }
    }
}
