//! `store`: a sequence of requests, clock advances, expiry sweeps and
//! compactions applied to the [`Store`] (with its timer wheel) and to a naive
//! model of PROTOCOL.md's semantics table, memory guard included.
//!
//! Input: one byte for the memory cap (unlimited or a few entries' worth),
//! four for the first fencing token, then operations of two to three bytes.
//!
//! The model keeps expired entries until something removes them, as the
//! store does (an access removes the one it touches, a sweep removes all that
//! are due), because the memory guard counts what is really held. Checked
//! after every step:
//!
//! - the same reply, byte for byte;
//! - tokens of new holds strictly increase;
//! - at most one holder per lock: `TestLock` by every ID on the name just
//!   touched answers `Locked` to at most one of them, the model's holder;
//! - the same number of locks and data items and the same bytes held;
//! - after a sweep, `ALock`/`AData` match the live entries and the wheel's
//!   next deadline is no later than the earliest live deadline.
//!
//! With bit 0x40 of the first byte set, `Lock` may also wait (PROTOCOL.md's
//! waiting acquire) and waits may be withdrawn (a connection closing); the
//! naive model does not follow queues, so [`check_waits`] checks properties
//! instead: every parked request completes exactly once unless withdrawn,
//! grants on a lock go to its oldest waiter, a granted waiter holds the lock,
//! tokens (grants included) strictly increase, at most one holder per lock,
//! and once all time has passed nothing is left: no lock, no waiter, no
//! byte held.

use std::collections::HashMap;

use jackrabbit_dlm::protocol::{Action, FencingToken, Reply, Request, Status};
use jackrabbit_dlm::store::{ENTRY_OVERHEAD, Outcome, Store, StoreConfig, Ticket};
use jackrabbit_dlm::time::{Millis, Moment};

use super::input::Bytes;

const IDS: [&str; 4] = ["a", "b", "w1", "\u{e9}t\u{e9}"];

fn names() -> [String; 8] {
    [
        "n0".into(),
        "n1".into(),
        "jobs".into(),
        "x".into(),
        "y".repeat(100),
        "\u{1F512}".into(),
        "n2".into(),
        "z".repeat(1000),
    ]
}

fn values() -> [String; 8] {
    [
        String::new(),
        "v".into(),
        "value".into(),
        "\"quoted\\\"".into(),
        "d".repeat(64),
        "e".repeat(300),
        "\n\u{0}".into(),
        "f".repeat(2000),
    ]
}

/// A TTL in milliseconds: mostly short, sometimes up to ten years (the
/// largest `--max-ttl`).
fn expire_ms(b: u8) -> u64 {
    if b < 200 {
        b as u64 * 7 + 1
    } else {
        (b - 199) as u64 * 5_700_000_000
    }
}

struct Hold {
    owner: String,
    deadline: u64,
    token: u64,
}

struct Item {
    owner: String,
    value: String,
    deadline: u64,
}

/// The semantics table, with a `HashMap` per namespace.
struct Model {
    locks: HashMap<String, Hold>,
    data: HashMap<String, Item>,
    next_token: u64,
    bytes: u64,
    max_bytes: u64,
}

impl Model {
    fn lock_cost(name: &str, owner: &str) -> u64 {
        ENTRY_OVERHEAD + (name.len() + owner.len()) as u64
    }

    fn item_cost(name: &str, item: &Item) -> u64 {
        ENTRY_OVERHEAD + (name.len() + item.owner.len() + item.value.len()) as u64
    }

    /// Removes the lock `name` if its TTL has passed; whether it is there.
    fn lock_is_live(&mut self, now: u64, name: &str) -> bool {
        match self.locks.get(name) {
            Some(h) if h.deadline <= now => {
                self.bytes -= Model::lock_cost(name, &h.owner);
                self.locks.remove(name);
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    fn item_is_live(&mut self, now: u64, name: &str) -> bool {
        match self.data.get(name) {
            Some(d) if d.deadline <= now => {
                self.bytes -= Model::item_cost(name, d);
                self.data.remove(name);
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    fn fits(&self, more: u64) -> bool {
        self.bytes.saturating_add(more) <= self.max_bytes
    }

    /// The reply as JSON, and the token of a hold it created.
    fn apply(&mut self, now: u64, r: &Request<'_>) -> (Vec<u8>, Option<u64>) {
        let mut new_token = None;
        let name = r.name();
        let deadline = now.saturating_add(r.expire().as_ms());
        let reply = match r.action() {
            Action::Lock if self.lock_is_live(now, name) => {
                let h = self.locks.get_mut(name).expect("live");
                if h.owner == r.id() {
                    h.deadline = deadline;
                    Reply::Locked {
                        id: r.id(),
                        token: FencingToken::new(h.token),
                    }
                } else {
                    Reply::Bare(Status::NotOwner)
                }
            }
            Action::Lock => {
                let cost = Model::lock_cost(name, r.id());
                if self.fits(cost) {
                    let token = self.next_token;
                    self.next_token += 1;
                    self.bytes += cost;
                    self.locks.insert(
                        name.into(),
                        Hold {
                            owner: r.id().into(),
                            deadline,
                            token,
                        },
                    );
                    new_token = Some(token);
                    Reply::Locked {
                        id: r.id(),
                        token: FencingToken::new(token),
                    }
                } else {
                    Reply::Bare(Status::No)
                }
            }
            Action::Unlock | Action::TestLock if !self.lock_is_live(now, name) => {
                Reply::Bare(Status::Unlocked)
            }
            Action::Unlock | Action::TestLock if self.locks[name].owner != r.id() => {
                Reply::Bare(Status::NotOwner)
            }
            Action::Unlock => {
                self.bytes -= Model::lock_cost(name, r.id());
                self.locks.remove(name);
                Reply::WithId(Status::Unlocked, r.id())
            }
            Action::TestLock => Reply::WithId(Status::Locked, r.id()),
            Action::Put if self.item_is_live(now, name) => {
                let item = &self.data[name];
                let (old, new) = (item.value.len() as u64, r.data().len() as u64);
                if item.owner != r.id() {
                    Reply::Bare(Status::NotOwner)
                } else if new > old && !self.fits(new - old) {
                    Reply::Bare(Status::No)
                } else {
                    self.bytes = self.bytes + new - old;
                    let item = self.data.get_mut(name).expect("live");
                    item.value = r.data().into();
                    item.deadline = deadline;
                    Reply::WithId(Status::Done, r.id())
                }
            }
            Action::Put => {
                let item = Item {
                    owner: r.id().into(),
                    value: r.data().into(),
                    deadline,
                };
                let cost = Model::item_cost(name, &item);
                if self.fits(cost) {
                    self.bytes += cost;
                    self.data.insert(name.into(), item);
                    Reply::WithId(Status::Done, r.id())
                } else {
                    Reply::Bare(Status::No)
                }
            }
            Action::Get | Action::Erase if !self.item_is_live(now, name) => {
                Reply::Bare(Status::NotFound)
            }
            Action::Get | Action::Erase if self.data[name].owner != r.id() => {
                Reply::Bare(Status::NotOwner)
            }
            Action::Get => {
                let mut out = Vec::new();
                Reply::Value {
                    id: r.id(),
                    data: &self.data[name].value,
                }
                .write_json(&mut out);
                return (out, None);
            }
            Action::Erase => {
                let item = self.data.remove(name).expect("live");
                self.bytes -= Model::item_cost(name, &item);
                Reply::WithId(Status::Done, r.id())
            }
            Action::Version | Action::Stats => Reply::Version,
        };
        let mut out = Vec::new();
        reply.write_json(&mut out);
        (out, new_token)
    }

    /// Removes everything whose TTL has passed by `now`.
    fn sweep(&mut self, now: u64) {
        let mut freed = 0;
        self.locks.retain(|name, h| {
            let live = h.deadline > now;
            if !live {
                freed += Model::lock_cost(name, &h.owner);
            }
            live
        });
        self.data.retain(|name, d| {
            let live = d.deadline > now;
            if !live {
                freed += Model::item_cost(name, d);
            }
            live
        });
        self.bytes -= freed;
    }
}

fn json(reply: Reply<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    reply.write_json(&mut out);
    out
}

/// The store's settings from the header: one byte whose top bit caps the
/// memory (the low six bits say how much), four for the first token.
fn config_from(bytes: &mut Bytes<'_>) -> StoreConfig {
    let cap = bytes.u8();
    let max_bytes = if cap & 0x80 == 0 {
        u64::MAX
    } else {
        ENTRY_OVERHEAD + (cap & 0x3f) as u64 * 37
    };
    StoreConfig {
        max_bytes,
        compact_after: 512,
        first_token: FencingToken::new(bytes.u32() as u64 + 1),
        ..StoreConfig::unbounded()
    }
}

/// `TestLock` of `name` by `id`.
fn test_lock<'a>(id: &'a str, name: &'a str) -> Request<'a> {
    request(Action::TestLock, id, name)
}

/// A request with no TTL, wait or value; the names and IDs used here all
/// pass `Request::new`'s checks.
fn request<'a>(action: Action, id: &'a str, name: &'a str) -> Request<'a> {
    Request::new(action, id, name).expect("names and IDs within the limits")
}

/// The time `ms` milliseconds after the store's start.
fn at(ms: u64) -> Moment {
    Moment::from_ms(ms)
}

/// The reply to a request that is not parked.
fn reply<'a>(store: &'a mut Store, now: u64, request: &Request<'a>) -> Reply<'a> {
    match store.apply(at(now), request) {
        Outcome::Reply(reply) => reply,
        Outcome::Parked(_) => panic!("{request:?} parked without Wait"),
    }
}

pub fn check(data: &[u8]) {
    if data.first().is_some_and(|b| b & 0x40 != 0) {
        return check_waits(data);
    }
    let mut bytes = Bytes::new(data);
    let config = config_from(&mut bytes);
    let (max_bytes, first_token) = (config.max_bytes, config.first_token);
    let mut store = Store::new(config, Moment::START);
    let mut model = Model {
        locks: HashMap::new(),
        data: HashMap::new(),
        next_token: first_token.get(),
        bytes: 0,
        max_bytes,
    };
    let (names, values) = (names(), values());
    let mut now = 0u64;
    let mut last_token = 0;

    while !bytes.is_empty() {
        let op = bytes.u8();
        match op % 16 {
            kind @ 0..=8 => {
                let action = [
                    Action::Lock,
                    Action::Lock,
                    Action::Unlock,
                    Action::TestLock,
                    Action::Put,
                    Action::Put,
                    Action::Get,
                    Action::Erase,
                    Action::Version,
                ][kind as usize];
                let who = bytes.u8();
                let name = &names[(who >> 2) as usize % names.len()];
                let mut request = request(action, IDS[(who & 3) as usize], name);
                if matches!(action, Action::Lock | Action::Put) {
                    request = request.with_expire(Millis::new(expire_ms(bytes.u8())));
                }
                if action == Action::Put {
                    request = request.with_data(&values[(op >> 4) as usize % values.len()]);
                }
                let got = json(reply(&mut store, now, &request));
                let (want, new_token) = model.apply(now, &request);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{request:?} at {now}"
                );
                if let Some(token) = new_token {
                    assert!(token > last_token, "token {token} after {last_token}");
                    last_token = token;
                }
                if matches!(action, Action::Lock | Action::Unlock) {
                    one_holder(&mut store, &mut model, now, name);
                }
            }
            9 | 10 => now += bytes.u8() as u64,
            11 => now += bytes.u16() as u64 * 997,
            12 | 13 => {
                let limit = (op >> 4) as usize + 1;
                let mut rounds = 0;
                while store.expire(at(now), limit) {
                    rounds += 1;
                    assert!(rounds < 100_000, "expire never finishes");
                }
                model.sweep(now);
                let counters = &store.counters;
                assert_eq!(counters.a_lock, model.locks.len() as u64);
                assert_eq!(counters.a_data, model.data.len() as u64);
                let earliest = model
                    .locks
                    .values()
                    .map(|h| h.deadline)
                    .chain(model.data.values().map(|d| d.deadline))
                    .min();
                match (store.next_deadline().map(Moment::as_ms), earliest) {
                    (None, None) => {}
                    (Some(next), Some(earliest)) => assert!(
                        next <= earliest,
                        "next deadline {next} is after the earliest entry's {earliest}"
                    ),
                    (next, earliest) => {
                        panic!("next deadline {next:?}, earliest entry {earliest:?}")
                    }
                }
            }
            14 => store.compact(),
            _ => {
                store.maybe_compact();
            }
        }
        assert_eq!(store.lock_count(), model.locks.len(), "locks held");
        assert_eq!(store.data_count(), model.data.len(), "data items held");
        assert_eq!(store.bytes_held(), model.bytes, "bytes held");
        assert!(model.bytes <= max_bytes);
    }
}

/// `TestLock` on `name` by every ID: at most one is told `Locked`, and it is
/// the model's holder.
fn one_holder(store: &mut Store, model: &mut Model, now: u64, name: &str) {
    let mut holders = 0;
    for id in IDS {
        let probe = test_lock(id, name);
        let reply = reply(store, now, &probe);
        if reply.status() == Status::Locked {
            holders += 1;
        }
        let got = json(reply);
        let (want, _) = model.apply(now, &probe);
        assert_eq!(got, want, "TestLock by {id} on {name}");
    }
    assert!(holders <= 1, "{holders} holders of {name}");
}

/// A parked request being followed by [`check_waits`].
struct Parked {
    name: usize,
    owner: &'static str,
    /// Order of parking, across all locks.
    seq: u64,
}

/// What [`check_waits`] knows of the waits, holds and tokens so far.
struct Follow {
    /// Parked requests not completed or withdrawn yet.
    waiting: HashMap<Ticket, Parked>,
    /// Tickets completed or withdrawn.
    finished: Vec<Ticket>,
    /// The token of the hold last seen on each name.
    held_token: HashMap<usize, u64>,
    last_token: u64,
    seq: u64,
}

impl Follow {
    /// Takes the store's completions and checks each: it was waiting, it
    /// completes once, a grant goes to the oldest waiter of its lock with a
    /// new token, and the grantee holds the lock, unless `unlocked` says the
    /// request that caused the grant was the grantee's own `Unlock` of it
    /// (a hold that expired unnoticed is handed over before the request is
    /// served).
    fn settle(
        &mut self,
        store: &mut Store,
        now: u64,
        names: &[String],
        unlocked: Option<(usize, &str)>,
    ) {
        let mut completions = Vec::new();
        store.take_completions(&mut completions);
        let mut granted = Vec::new();
        for done in &completions {
            let ticket = done.ticket;
            assert!(
                !self.finished.contains(&ticket),
                "{ticket:?} completed twice"
            );
            let parked = self
                .waiting
                .remove(&ticket)
                .unwrap_or_else(|| panic!("{ticket:?} completed but never waited"));
            self.finished.push(ticket);
            if let Some(token) = done.granted {
                let older = self
                    .waiting
                    .values()
                    .filter(|w| w.name == parked.name && w.seq < parked.seq)
                    .count();
                assert_eq!(older, 0, "a grant overtook {older} older waiters");
                self.new_token(parked.name, token.get());
                granted.push((parked.name, parked.owner));
            }
        }
        // The last grant on each lock holds it now.
        granted.reverse();
        let mut seen = Vec::new();
        for (name, owner) in granted {
            if !seen.contains(&name) && unlocked != Some((name, owner)) {
                seen.push(name);
                let probe = test_lock(owner, &names[name]);
                let status = reply(store, now, &probe).status();
                assert_eq!(status, Status::Locked, "the grantee does not hold");
            }
        }
    }

    fn new_token(&mut self, name: usize, token: u64) {
        assert!(
            token > self.last_token,
            "token {token} after {}",
            self.last_token
        );
        self.last_token = token;
        self.held_token.insert(name, token);
    }
}

/// The waiting-acquire scenario: see the module documentation.
pub fn check_waits(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let mut store = Store::new(
        StoreConfig {
            // Small bounds, so full queues are met too.
            max_waiters_per_lock: 3,
            max_waiters_total: 8,
            ..config_from(&mut bytes)
        },
        Moment::START,
    );
    let names = names();
    let mut follow = Follow {
        waiting: HashMap::new(),
        finished: Vec::new(),
        held_token: HashMap::new(),
        last_token: 0,
        seq: 0,
    };
    let mut now = 0u64;

    while !bytes.is_empty() {
        let op = bytes.u8();
        match op % 8 {
            0..=3 => {
                let action = [Action::Lock, Action::Lock, Action::Unlock, Action::TestLock]
                    [(op % 8) as usize];
                let who = bytes.u8();
                let name = (who >> 2) as usize % names.len();
                let id = IDS[(who & 3) as usize];
                let mut request = request(action, id, &names[name]);
                if action == Action::Lock {
                    request = request
                        .with_expire(Millis::new(bytes.u8() as u64 * 5 + 1))
                        .with_wait(Millis::new(match op >> 4 {
                            0..=3 => 0,
                            w => w as u64 * 40,
                        }));
                }
                let outcome = store.apply(at(now), &request);
                let (parked, locked) = match outcome {
                    Outcome::Parked(ticket) => {
                        assert!(request.wait().as_ms() > 0, "parked without Wait");
                        (Some(ticket), None)
                    }
                    Outcome::Reply(Reply::Locked { token, .. }) => (None, Some(token.get())),
                    Outcome::Reply(_) => (None, None),
                };
                // Grants the request itself caused come first.
                let unlocked = (action == Action::Unlock).then_some((name, id));
                follow.settle(&mut store, now, &names, unlocked);
                if let Some(ticket) = parked {
                    assert!(!follow.finished.contains(&ticket), "ticket reused");
                    follow.seq += 1;
                    let seq = follow.seq;
                    let fresh = follow.waiting.insert(
                        ticket,
                        Parked {
                            name,
                            owner: id,
                            seq,
                        },
                    );
                    assert!(fresh.is_none(), "ticket given twice");
                }
                // A new hold (a relock keeps its token).
                if let Some(token) = locked
                    .filter(|t| action == Action::Lock && follow.held_token.get(&name) != Some(t))
                {
                    let last = follow.last_token;
                    assert!(token > last, "token {token} after {last}");
                    follow.last_token = token;
                    follow.held_token.insert(name, token);
                }
                let holders = IDS
                    .iter()
                    .filter(|&&probe| {
                        reply(&mut store, now, &test_lock(probe, &names[name])).status()
                            == Status::Locked
                    })
                    .count();
                assert!(holders <= 1, "{holders} holders");
                follow.settle(&mut store, now, &names, None);
            }
            4 => now += bytes.u8() as u64,
            5 => {
                while store.expire(at(now), (op >> 4) as usize + 1) {}
                follow.settle(&mut store, now, &names, None);
            }
            6 => {
                // A connection closes: its waits are withdrawn.
                let pick = bytes.u8() as usize;
                let mut tickets: Vec<Ticket> = follow.waiting.keys().copied().collect();
                tickets.sort();
                if !tickets.is_empty() {
                    let ticket = tickets[pick % tickets.len()];
                    store.cancel_wait(ticket);
                    follow.waiting.remove(&ticket);
                    follow.finished.push(ticket);
                }
                follow.settle(&mut store, now, &names, None);
            }
            _ => store.compact(),
        }
        assert_eq!(store.waiter_count(), follow.waiting.len(), "waiters");
    }
    // Let all time pass: every wait ends, every hold expires, nothing stays.
    for _ in 0..100 {
        if store.waiter_count() == 0 && store.lock_count() == 0 {
            break;
        }
        now += 10_000;
        while store.expire(at(now), 7) {}
        follow.settle(&mut store, now, &names, None);
    }
    assert!(
        follow.waiting.is_empty(),
        "{} waits never completed",
        follow.waiting.len()
    );
    assert_eq!(store.waiter_count(), 0);
    assert_eq!(store.lock_count(), 0);
    assert_eq!(store.bytes_held(), 0, "bytes held with nothing alive");
}
