//! Hierarchical timer wheel: the store's expiry schedule.
//!
//! The store keeps one timer per lock TTL, data TTL and waiter timeout.
//! Millions may be live at once, many are refreshed or cancelled
//! before they fire, and the reactor needs to know how long it may sleep. A binary heap would make every refresh `O(log n)` and leave stale
//! entries behind; this wheel makes schedule, reschedule and cancel `O(1)` and
//! reuses a timer's node when its deadline moves.
//!
//! # Design
//!
//! Time is a `u64` count of milliseconds chosen by the caller. There are
//! 6 levels of 64 slots; a slot of level `L` is `64^L` ms wide, so
//! level 0 resolves single milliseconds and the whole wheel spans `64^6` ms
//! (about 795 days), called an *epoch* here. A timer is filed by the highest
//! 6-bit digit in which its deadline differs from the wheel's current time:
//! if they first differ in digit `L`, the timer lives at level `L`, in the slot
//! named by the deadline's digit `L`. Every filed timer therefore shares all
//! higher digits with `now`, and its slot lies strictly ahead of `now`'s digit
//! on that level (at level 0: at or ahead, since a due timer sits in the
//! current slot).
//!
//! When the clock reaches the start of an occupied slot at level `L > 0`, the
//! slot is *cascaded*: each of its timers is filed again relative to the new
//! time, which puts it on a lower level. Reaching an occupied level-0 slot
//! fires its timers. Because of the filing rule, the first occupied slot on
//! the lowest non-empty level is always the next thing to do, and a `u64`
//! occupancy bitmap per level finds it with one `trailing_zeros`.
//!
//! Deadlines in a later epoch than `now` (further than the wheel can
//! represent) wait in a separate overflow list, together with a lower bound
//! of their deadlines. When the clock reaches the start of that bound's epoch,
//! the list is filed again: timers now within the epoch enter the wheel, the
//! others stay. Parking them in the top level instead would refile each one
//! every 64^6 ms of clock, so a huge clock jump (say to `u64::MAX`) would
//! loop once per epoch skipped; the list is touched only when the clock
//! reaches the epoch of its earliest deadline.
//!
//! Timers are nodes in one `Vec` with a free list, linked into per-slot
//! intrusive doubly-linked lists by `u32` index (`u32::MAX` is nil), so an id
//! is just the node index, unlinking is `O(1)`, and a node is 32 bytes for an
//! 8-byte key.
//!
//! # What it must never do
//!
//! * Read a clock: time only moves through [`Wheel::advance`], so the store
//!   stays deterministic and testable.
//! * Fire early: a timer fires at the first `advance(now)` with
//!   `now >= deadline`, never before. A deadline already `<= now()` when
//!   scheduled fires at the next advance.
//! * Cause undefined behaviour on a stale id: the code is entirely safe
//!   Rust; a stale id is a caller bug caught by `debug_assert!`, ignored in
//!   release builds where possible.

use std::fmt;

/// Number of levels in the wheel.
const LEVELS: usize = 6;
/// Bits of time resolved by one level (64 slots).
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Mask of one level's digit.
const DIGIT_MASK: u64 = (SLOTS as u64) - 1;
/// Bits of time the whole wheel spans: 64^6 ms is one epoch.
#[allow(clippy::cast_possible_truncation)] // LEVELS is 6
const EPOCH_BITS: u32 = SLOT_BITS * LEVELS as u32;
/// The time bits below the epoch: two times are in the same epoch when they
/// differ only in these bits.
const EPOCH_MASK: u64 = (1 << EPOCH_BITS) - 1;
/// List index of the overflow list, after the `LEVELS * SLOTS` slot lists.
#[allow(clippy::cast_possible_truncation)] // 6 * 64
const OVERFLOW: u16 = (LEVELS * SLOTS) as u16;
/// Number of list heads: every slot plus the overflow list.
const LISTS: usize = LEVELS * SLOTS + 1;
/// `Node::list` of a node on the free list.
const FREE: u16 = u16::MAX;
/// The nil link.
const NIL: u32 = u32::MAX;

/// Handle of a scheduled timer; valid until the timer fires or is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u32);

impl TimerId {
    /// The node index behind this id, for debugging and logging.
    pub fn index(self) -> u32 {
        self.0
    }
}

/// One timer, or a free node (then `list == FREE` and `next` links the free
/// list). Fields are ordered by the compiler; for an 8-byte key it is 32 bytes.
#[derive(Clone, Copy)]
struct Node<T> {
    deadline: u64,
    key: T,
    prev: u32,
    next: u32,
    /// Which list the node is on: `level * 64 + slot`, [`OVERFLOW`] or [`FREE`].
    list: u16,
}

/// A hierarchical timer wheel holding keys of type `T` (see the module docs).
pub struct Wheel<T: Copy> {
    /// The time the wheel has advanced to; never decreases.
    now: u64,
    /// Live timers.
    len: usize,
    nodes: Vec<Node<T>>,
    /// Head of the free list threaded through `Node::next`.
    free: u32,
    /// First node of each slot list and of the overflow list. Boxed so that
    /// moving a `Wheel` copies a few words, not 1.5 KiB.
    heads: Box<[u32; LISTS]>,
    /// Bit `s` of `occupied[L]` is set when slot `s` of level `L` is non-empty.
    occupied: [u64; LEVELS],
    /// A lower bound of the deadlines on the overflow list (`u64::MAX` when it
    /// is empty). Not raised on cancel, which would need a scan; a low bound
    /// only makes the overflow list be refiled a little early.
    overflow_min: u64,
}

impl<T: Copy> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("now", &self.now)
            .field("len", &self.len)
            .field("nodes", &self.nodes.len())
            .field("next_deadline", &self.next_deadline())
            .finish()
    }
}

impl<T: Copy> Wheel<T> {
    /// An empty wheel whose current time is `now`.
    pub fn new(now: u64) -> Self {
        Self::with_capacity(now, 0)
    }

    /// An empty wheel whose current time is `now`, with room for `capacity`
    /// timers before the node storage grows.
    pub fn with_capacity(now: u64, capacity: usize) -> Self {
        Wheel {
            now,
            len: 0,
            nodes: Vec::with_capacity(capacity),
            free: NIL,
            heads: Box::new([NIL; LISTS]),
            occupied: [0; LEVELS],
            overflow_min: u64::MAX,
        }
    }

    /// The time the wheel has advanced to.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Number of live timers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `id` names a live timer. Only an id that was never handed out
    /// by this wheel, or was reused after its timer ended, can fool it.
    pub fn contains(&self, id: TimerId) -> bool {
        self.nodes
            .get(id.0 as usize)
            .is_some_and(|node| node.list != FREE)
    }

    /// Schedule `key` to fire at `deadline` (ms). O(1).
    pub fn schedule(&mut self, deadline: u64, key: T) -> TimerId {
        let node = Node {
            deadline,
            key,
            prev: NIL,
            next: NIL,
            list: FREE,
        };
        let index = if self.free != NIL {
            let index = self.free;
            self.free = self.nodes[index as usize].next;
            self.nodes[index as usize] = node;
            index
        } else {
            // u32::MAX is nil, so at most u32::MAX nodes; 128 GiB of them
            // would be needed first, so this is an invariant, not input.
            let index = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("timer wheel is limited to u32::MAX - 1 timers");
            self.nodes.push(node);
            index
        };
        self.len += 1;
        self.file(index);
        TimerId(index)
    }

    /// Move a live timer to a new deadline, earlier or later, in O(1), reusing
    /// its node, so a refreshed TTL leaves no stale entry behind.
    pub fn reschedule(&mut self, id: TimerId, deadline: u64) {
        if !self.contains(id) {
            debug_assert!(false, "reschedule of a dead timer {id:?}");
            return;
        }
        let index = id.0;
        let node = &mut self.nodes[index as usize];
        let old_list = node.list;
        node.deadline = deadline;
        // Refreshing within one slot is common for short TTLs: keep the links.
        if self.list_for(deadline) != old_list {
            self.unlink(index);
            self.file(index);
        } else if old_list == OVERFLOW {
            // The overflow bound must stay below every deadline on the list.
            self.overflow_min = self.overflow_min.min(deadline);
        }
    }

    /// Remove a live timer, returning its key. O(1).
    ///
    /// A stale id is a caller bug: it asserts in debug builds; in release it
    /// changes nothing and returns the key the node last held, or panics if
    /// the id lies beyond the node storage (possible after [`Wheel::compact`]).
    pub fn cancel(&mut self, id: TimerId) -> T {
        if !self.contains(id) {
            debug_assert!(false, "cancel of a dead timer {id:?}");
            return self.nodes[id.0 as usize].key;
        }
        self.unlink(id.0);
        let key = self.nodes[id.0 as usize].key;
        self.release(id.0);
        key
    }

    /// Remove the timer if it is live, returning its key; `None` for a stale id.
    pub fn try_cancel(&mut self, id: TimerId) -> Option<T> {
        self.contains(id).then(|| self.cancel(id))
    }

    /// Deadline of a live timer (a stale id: see [`Wheel::cancel`]).
    pub fn deadline(&self, id: TimerId) -> u64 {
        debug_assert!(self.contains(id), "deadline of a dead timer {id:?}");
        self.nodes[id.0 as usize].deadline
    }

    /// Key of a live timer (a stale id: see [`Wheel::cancel`]).
    pub fn key(&self, id: TimerId) -> T {
        debug_assert!(self.contains(id), "key of a dead timer {id:?}");
        self.nodes[id.0 as usize].key
    }

    /// Replace the key of a live timer; a stale id is ignored in release.
    pub fn set_key(&mut self, id: TimerId, key: T) {
        if !self.contains(id) {
            debug_assert!(false, "set_key of a dead timer {id:?}");
            return;
        }
        self.nodes[id.0 as usize].key = key;
    }

    /// The earliest time at which `advance` has work to do (a timer's
    /// deadline or a cascade), or None when empty. Never later than the
    /// earliest deadline, and never earlier than `now()`; the server uses it
    /// as its poll timeout.
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_work().map(|(_, time)| time)
    }

    /// Advance to `now` (a `now` lower than `self.now()` only fires timers
    /// already due at `self.now()`: the clock is monotonic), pushing the keys
    /// of timers whose deadline is `<= now` onto `expired` (their ids become
    /// invalid), but stop once `expired.len()` reaches `limit`. Returns true
    /// when due timers remain (call again), false when the wheel has fully
    /// reached `now`. The order of keys within one call is not specified.
    ///
    /// The limit is checked before each timer fires, so `expired` never grows
    /// past `limit`. Cascades continue past the limit, since they fire
    /// nothing; that makes `true` mean that a due timer really is waiting.
    pub fn advance(&mut self, now: u64, limit: usize, expired: &mut Vec<T>) -> bool {
        let target = now.max(self.now);
        while let Some((list, time)) = self.next_work() {
            if time > target {
                break;
            }
            // `max` keeps the clock monotonic even if an invariant were broken.
            if (list as usize) < SLOTS {
                if expired.len() >= limit {
                    return true;
                }
                self.now = self.now.max(time);
                self.fire(list, limit, expired);
            } else {
                self.now = self.now.max(time);
                self.refile(list);
            }
        }
        self.now = target;
        false
    }

    /// Compaction: move live nodes into a dense prefix of the node storage and
    /// release the unused capacity, calling `moved(key, new_id)` for every
    /// timer whose id changed, so the owner can update the ids it stores.
    /// Every id not reported keeps naming the same timer.
    pub fn compact(&mut self, mut moved: impl FnMut(T, TimerId)) {
        let live = self.len;
        // There are as many free nodes below `live` as live nodes at or above
        // it; move each of the latter into one of the former.
        let mut hole = 0;
        for source in live..self.nodes.len() {
            if self.nodes[source].list == FREE {
                continue;
            }
            while self.nodes[hole].list != FREE {
                hole += 1;
            }
            let node = self.nodes[source];
            self.nodes[hole] = node;
            // `hole < live <= u32::MAX - 1`, so the cast is lossless.
            #[allow(clippy::cast_possible_truncation)]
            let new = hole as u32;
            if node.prev == NIL {
                self.heads[node.list as usize] = new;
            } else {
                self.nodes[node.prev as usize].next = new;
            }
            if node.next != NIL {
                self.nodes[node.next as usize].prev = new;
            }
            moved(node.key, TimerId(new));
            hole += 1;
        }
        self.nodes.truncate(live);
        self.nodes.shrink_to_fit();
        self.free = NIL;
    }

    /// Bytes of heap held by the wheel (capacity-based), for memory reporting.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Node<T>>() + size_of::<[u32; LISTS]>()
    }

    /// The list a timer with `deadline` belongs on, relative to `self.now`.
    fn list_for(&self, deadline: u64) -> u16 {
        // Due or past: the current level-0 slot, so the next advance fires it.
        if deadline <= self.now {
            return (self.now & DIGIT_MASK) as u16;
        }
        let differ = self.now ^ deadline;
        if differ > EPOCH_MASK {
            return OVERFLOW;
        }
        // The highest differing digit picks the level; `| DIGIT_MASK` makes
        // a difference in digit 0 alone land on level 0.
        let level = (u64::BITS - 1 - (differ | DIGIT_MASK).leading_zeros()) / SLOT_BITS;
        let slot = (deadline >> (level * SLOT_BITS)) & DIGIT_MASK;
        // `level < LEVELS` and `slot < SLOTS`: below OVERFLOW, a u16.
        #[allow(clippy::cast_possible_truncation)]
        let list = (level as usize * SLOTS + slot as usize) as u16;
        list
    }

    /// Link node `index` (not on any list) into the list its deadline
    /// belongs on.
    fn file(&mut self, index: u32) {
        let deadline = self.nodes[index as usize].deadline;
        let list = self.list_for(deadline);
        let head = self.heads[list as usize];
        let node = &mut self.nodes[index as usize];
        node.list = list;
        node.prev = NIL;
        node.next = head;
        if head != NIL {
            self.nodes[head as usize].prev = index;
        }
        self.heads[list as usize] = index;
        if list == OVERFLOW {
            self.overflow_min = self.overflow_min.min(deadline);
        } else {
            self.occupied[list as usize / SLOTS] |= 1 << (list as usize % SLOTS);
        }
    }

    /// Take node `index` off its list; it keeps its `list` field until refiled
    /// or released.
    fn unlink(&mut self, index: u32) {
        let Node {
            prev, next, list, ..
        } = self.nodes[index as usize];
        if prev == NIL {
            self.heads[list as usize] = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        if self.heads[list as usize] == NIL {
            self.mark_empty(list);
        }
    }

    /// Record that list `list` has become empty.
    fn mark_empty(&mut self, list: u16) {
        if list == OVERFLOW {
            self.overflow_min = u64::MAX;
        } else {
            self.occupied[list as usize / SLOTS] &= !(1 << (list as usize % SLOTS));
        }
    }

    /// Put unlinked node `index` on the free list.
    fn release(&mut self, index: u32) {
        let node = &mut self.nodes[index as usize];
        node.list = FREE;
        node.prev = NIL;
        node.next = self.free;
        self.free = index;
        self.len -= 1;
    }

    /// The next list `advance` must process and the time it falls due.
    fn next_work(&self) -> Option<(u16, u64)> {
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            #[allow(clippy::cast_possible_truncation)] // level < LEVELS
            let shift = level as u32 * SLOT_BITS;
            let digit = ((self.now >> shift) & DIGIT_MASK) as u32;
            // Level 0's current slot holds due timers; on higher levels the
            // current slot is always empty, since such timers sit lower down.
            let first = if level == 0 { digit } else { digit + 1 };
            let ahead = occupied & u64::MAX.checked_shl(first).unwrap_or(0);
            let (slot, time) = if ahead != 0 {
                let slot = ahead.trailing_zeros();
                let block = self.now & !((1u64 << (shift + SLOT_BITS)) - 1);
                (slot, block + (u64::from(slot) << shift))
            } else {
                // A slot behind the clock breaks the filing invariant; deal
                // with it now rather than strand its timers (refiling and
                // `fire` both check deadlines, so nothing fires early).
                debug_assert!(false, "level {level} has a slot behind the clock");
                (occupied.trailing_zeros(), self.now)
            };
            // `level < LEVELS` and `slot < 64`: below OVERFLOW, a u16.
            #[allow(clippy::cast_possible_truncation)]
            let list = (level * SLOTS) as u16 + slot as u16;
            return Some((list, time));
        }
        if self.heads[OVERFLOW as usize] != NIL {
            // Every overflow deadline lies in a later epoch than `now`, so
            // this is after every slot's time and after `now`.
            let time = (self.overflow_min & !EPOCH_MASK).max(self.now);
            return Some((OVERFLOW, time));
        }
        None
    }

    /// Fire the timers of level-0 slot `list`, which fall due at `self.now`,
    /// until `expired` reaches `limit`.
    fn fire(&mut self, list: u16, limit: usize, expired: &mut Vec<T>) {
        while expired.len() < limit {
            let index = self.heads[list as usize];
            if index == NIL {
                return;
            }
            self.unlink(index);
            let node = self.nodes[index as usize];
            if node.deadline > self.now {
                // Unreachable while the invariants hold; refiling it keeps the
                // promise never to fire early and lands it in a later slot.
                debug_assert!(
                    false,
                    "timer due at {} in slot due at {}",
                    node.deadline, self.now
                );
                self.file(index);
                continue;
            }
            expired.push(node.key);
            self.release(index);
        }
    }

    /// Cascade: refile every timer of `list` (a slot above level 0, or the
    /// overflow list) relative to `self.now`, which has reached the list's time.
    fn refile(&mut self, list: u16) {
        let mut index = self.heads[list as usize];
        self.heads[list as usize] = NIL;
        self.mark_empty(list);
        while index != NIL {
            let next = self.nodes[index as usize].next;
            self.file(index);
            index = next;
        }
    }
}

#[cfg(test)]
mod tests;
