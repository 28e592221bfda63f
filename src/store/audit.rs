//! A check of the store's structures against each other: what every other
//! file in `store/` keeps true, tested from the outside.
//!
//! For tests, fuzzers and a restored snapshot's callers who want to be
//! sure ([`Store::verify`]). It walks everything, so it costs O(state):
//! never on a request's path.
//!
//! Boundary: reads only; it never repairs.

use super::packed::Packed;
use super::table::{Entry, SetKey, SlabKey, Table, WaiterKey};
use super::{Store, sharing::NEVER};
use crate::protocol::Mode;
use crate::protocol::request::{MAX_FILE_NAME, MAX_ID};

/// Fails with `$($why)*` unless `$cond`.
macro_rules! ensure {
    ($cond:expr, $($why:tt)*) => {
        if !$cond {
            return Err(format!($($why)*));
        }
    };
}

/// Checks what entries of both tables must be: a name and an owner within
/// the request's limits, and found by the name.
fn named_entry<E: Entry>(
    table: &Table<E>,
    key: E::Key,
    packed: &Packed,
    what: &str,
) -> Result<(), String> {
    let name = packed.name();
    ensure!(
        name.len() <= MAX_FILE_NAME,
        "a {what} name of {} bytes",
        name.len()
    );
    ensure!(
        packed.owner().len() <= MAX_ID,
        "{what} {name:?}: a long owner"
    );
    ensure!(
        table.find(table.hash(name), name) == Some(key),
        "{what} {name:?} is not found by its name"
    );
    Ok(())
}

impl Store {
    /// Checks the store's invariants: each entry, share and waiter has
    /// exactly one timer, at its deadline, and each timer one owner; each
    /// name is found by its table; an exclusive hold stands alone, a lock
    /// held shared has from one to its limit of shares (at most
    /// `max_holders`), one per owner, below a bound of their deadlines; each
    /// queue is a well-linked list in order; each origin names its one
    /// waiter; every token held is below the next token (unless tokens ran
    /// out); names and IDs obey the request's length rules; the bytes
    /// charged are the sum of what lives; each lock marked for a grant is
    /// on the list. The first broken one is described in the error.
    pub fn verify(&self) -> Result<(), String> {
        let mut bytes = 0u64;
        let mut timers = 0usize;
        let mut shares = 0usize;
        let mut waiters = 0usize;
        let mut with_origin = 0usize;
        let below_next =
            |token: u64| token < self.next_token.get() || self.next_token.get() == u64::MAX;
        for (key, hold) in self.locks.iter() {
            let name = hold.packed.name();
            named_entry(&self.locks, key, &hold.packed, "lock")?;
            ensure!(hold.packed.value().is_empty(), "lock {name:?} has a value");
            bytes += hold.cost();
            timers += 1;
            let timer = self.wheel.deadline(hold.timer);
            if hold.shared == SetKey::NIL {
                ensure!(
                    timer == hold.deadline.as_ms(),
                    "lock {name:?}: its timer is not at its deadline"
                );
                ensure!(below_next(hold.token.get()), "lock {name:?}: a token ahead");
            } else {
                ensure!(
                    hold.packed.owner().is_empty() && hold.packed.owner_name().is_none(),
                    "lock {name:?} is held shared and by one owner"
                );
                ensure!(
                    timer == NEVER,
                    "lock {name:?}: held shared, its own timer runs"
                );
                let set = self.holders.set(hold.shared);
                ensure!(set.lock == key, "lock {name:?}: its set names another lock");
                ensure!(
                    (1..=self.config.max_holders).contains(&set.limit),
                    "lock {name:?}: limit {} out of range",
                    set.limit
                );
                ensure!(
                    (1..=set.limit).contains(&set.len()),
                    "lock {name:?}: {} shares, limit {}",
                    set.len(),
                    set.limit
                );
                let mut owners = Vec::new();
                for (at, &hkey) in set.members().iter().enumerate() {
                    let share = &self.holders[hkey];
                    ensure!(
                        share.set == hold.shared,
                        "lock {name:?}: a share of another set"
                    );
                    ensure!(
                        share.place() as usize == at,
                        "lock {name:?}: a share out of place"
                    );
                    ensure!(share.owner().len() <= MAX_ID, "lock {name:?}: a long owner");
                    ensure!(
                        self.wheel.deadline(share.timer) == share.deadline.as_ms(),
                        "lock {name:?}: a share's timer is not at its deadline"
                    );
                    ensure!(
                        hold.deadline <= share.deadline,
                        "lock {name:?}: its bound is above a share's deadline"
                    );
                    ensure!(
                        below_next(share.token.get()),
                        "lock {name:?}: a token ahead"
                    );
                    ensure!(
                        self.holders
                            .find(hold.shared, share.owner(), share.owner_name())
                            == Some(hkey),
                        "lock {name:?}: a share not found by its owner"
                    );
                    owners.push((share.owner(), share.owner_name().map(|tag| tag.0)));
                    bytes += share.cost();
                    timers += 1;
                }
                owners.sort_unstable();
                let before = owners.len();
                owners.dedup();
                ensure!(
                    owners.len() == before,
                    "lock {name:?}: two shares of one owner"
                );
                shares += before;
            }
            ensure!(
                !hold.pending || self.unblocked.contains(&key),
                "lock {name:?} is marked for a grant but not listed"
            );
            let (mut w, mut prev, mut len, mut seq) = (hold.queue.head, WaiterKey::NIL, 0u32, None);
            while w != WaiterKey::NIL {
                let Some(waiter) = self.waiters.get(w.index()) else {
                    return Err(format!("lock {name:?}: its queue names a free slot"));
                };
                ensure!(
                    waiter.hold == key,
                    "lock {name:?}: a waiter of another lock"
                );
                ensure!(
                    waiter.prev == prev,
                    "lock {name:?}: a waiter badly linked back"
                );
                ensure!(
                    waiter.request.owner.len() <= MAX_ID,
                    "lock {name:?}: a waiter's long owner"
                );
                ensure!(
                    seq.is_none_or(|s| s < waiter.seq),
                    "lock {name:?}: waiters' places out of order"
                );
                ensure!(
                    self.wheel.deadline(waiter.timer) == waiter.request.until.as_ms(),
                    "lock {name:?}: a waiter's timer is not at its deadline"
                );
                let limit_ok = match waiter.request.mode {
                    Mode::Exclusive => waiter.request.limit == 0,
                    Mode::Shared => (1..=self.config.max_holders).contains(&waiter.request.limit),
                };
                ensure!(
                    limit_ok,
                    "lock {name:?}: a waiter's limit {}",
                    waiter.request.limit
                );
                if let Some(origin) = waiter.request.origin {
                    ensure!(
                        self.origins.get(&origin) == Some(&w),
                        "lock {name:?}: a waiter's origin names another"
                    );
                    with_origin += 1;
                }
                bytes += waiter.cost();
                timers += 1;
                seq = Some(waiter.seq);
                prev = w;
                w = waiter.next;
                len += 1;
                waiters += 1;
            }
            ensure!(
                hold.queue.tail == prev,
                "lock {name:?}: its queue's tail is wrong"
            );
            ensure!(
                hold.queue.len == len,
                "lock {name:?}: its queue's length is wrong"
            );
        }
        for (key, item) in self.data.iter() {
            let name = item.packed.name();
            named_entry(&self.data, key, &item.packed, "item")?;
            ensure!(
                self.wheel.deadline(item.timer) == item.deadline.as_ms(),
                "item {name:?}: its timer is not at its deadline"
            );
            bytes += item.cost();
            timers += 1;
        }
        ensure!(waiters == self.waiters.len(), "a waiter in no queue");
        ensure!(
            with_origin == self.origins.len(),
            "an origin with no waiter"
        );
        ensure!(shares == self.holders.len(), "a share of no lock");
        ensure!(
            self.holders.set_count()
                == self
                    .locks
                    .iter()
                    .filter(|(_, h)| h.shared != SetKey::NIL)
                    .count(),
            "a set of no lock"
        );
        ensure!(
            timers == self.wheel.len(),
            "{} timers for {timers} owners",
            self.wheel.len()
        );
        ensure!(
            bytes == self.bytes,
            "{} bytes charged, {bytes} live",
            self.bytes
        );
        Ok(())
    }
}
