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
//!
//! With both top bits of the first byte set (`0xc0`), [`check_shared`]
//! plays shared locks and semaphores on four locks and six IDs: both modes,
//! `Limit`s (none, or 1 to 3, under a `--max-holders` of 4), conversions
//! (an ID asking in the other mode), renewals, waits in both modes with
//! withdrawals, and clock jumps up to 65 million ms. Checked at every step,
//! from the replies, the completions and `TestLock` by every ID: never an
//! exclusive holder beside any other holder; never more shares than the
//! limit they were all granted under; `Holders` the number of holders;
//! tokens strictly increasing per grant (a renewal keeps its token); every
//! wait completes once, in its mode, grants in arrival order, and no new
//! hold is granted past a waiter still in time (but a conversion of one's
//! own hold); a lock nobody holds has no waiter in time; and at the end
//! nothing is left, shares included.

use std::collections::HashMap;

use jackrabbit_dlm::protocol::{Action, FencingToken, Mode, Reply, Request, Status};
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
            Action::AddMember | Action::RemoveMember | Action::Members => {
                Reply::Bare(Status::BadAction)
            }
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
    match data.first() {
        Some(b) if b & 0xc0 == 0xc0 => return check_shared(data),
        Some(b) if b & 0x40 != 0 => return check_waits(data),
        _ => {}
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

/// A connection closes: the `pick`th of the waits still parked (in ticket
/// order) is withdrawn.
fn withdraw<T>(
    store: &mut Store,
    pick: usize,
    waiting: &mut HashMap<Ticket, T>,
    finished: &mut Vec<Ticket>,
) {
    let mut tickets: Vec<Ticket> = waiting.keys().copied().collect();
    tickets.sort();
    if !tickets.is_empty() {
        let ticket = tickets[pick % tickets.len()];
        store.cancel_wait(ticket);
        waiting.remove(&ticket);
        finished.push(ticket);
    }
}

/// Lets all time pass after `now`, ten seconds a step, sweeping and
/// calling `settle` (which says how many waits it still follows) after
/// each: then every wait has ended and nothing is left, no lock, no share,
/// no waiter, no byte held.
fn let_all_time_pass(
    store: &mut Store,
    mut now: u64,
    mut settle: impl FnMut(&mut Store, u64) -> usize,
) {
    let mut followed = usize::MAX;
    for _ in 0..100 {
        if store.waiter_count() == 0 && store.lock_count() == 0 && followed == 0 {
            break;
        }
        now += 10_000;
        while store.expire(at(now), 7) {}
        followed = settle(store, now);
    }
    assert_eq!(followed, 0, "{followed} waits never completed");
    assert_eq!(store.waiter_count(), 0);
    assert_eq!(store.lock_count(), 0);
    assert_eq!(store.share_count(), 0);
    assert_eq!(store.bytes_held(), 0, "bytes held with nothing alive");
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
                let pick = bytes.u8() as usize;
                withdraw(&mut store, pick, &mut follow.waiting, &mut follow.finished);
                follow.settle(&mut store, now, &names, None);
            }
            _ => store.compact(),
        }
        assert_eq!(store.waiter_count(), follow.waiting.len(), "waiters");
    }
    let_all_time_pass(&mut store, now, |store, now| {
        follow.settle(store, now, &names, None);
        follow.waiting.len()
    });
}

/// IDs of the shared scenario: more than its largest limit, so semaphores
/// fill up and refuse.
const SHARERS: [&str; 6] = ["a", "b", "c", "d", "w1", "\u{e9}t\u{e9}"];

/// Locks of the shared scenario: few, so requests meet.
const SHARED_NAMES: usize = 4;

/// `--max-holders` of the shared scenario, the limit of a share without
/// `Limit`.
const MAX_HOLDERS: u32 = 4;

/// A hold as the replies of the shared scenario showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    shared: bool,
    token: u64,
    /// The limit a share was asked with (`MAX_HOLDERS` without one).
    limit: u32,
}

/// A parked request of the shared scenario.
#[derive(Debug, Clone, Copy)]
struct Queued {
    name: usize,
    owner: usize,
    seq: u64,
    shared: bool,
    limit: u32,
    /// When its wait runs out.
    until: u64,
}

/// What [`check_shared`] knows of holds, waits and tokens so far.
struct Shares {
    /// The holds the replies showed, by (name, ID); a hold may have run
    /// out since.
    seen: HashMap<(usize, usize), Seen>,
    waiting: HashMap<Ticket, Queued>,
    finished: Vec<Ticket>,
    /// Every token of a new grant so far.
    tokens: std::collections::HashSet<u64>,
    last_token: u64,
    seq: u64,
}

impl Shares {
    /// A grant of `name` to `owner` (a reply or a completion) with `token`:
    /// the same hold renewed keeps its token, anything else is a new grant,
    /// whose token is above `floor` and was never given before.
    ///
    /// The grants of one request are made in one turn, in an order the
    /// replies do not show (a conversion's reply comes before the grants to
    /// the waiters it lets in, an expired hold's hand-over before the
    /// reply), so the reply to a `Lock` is checked against the tokens of
    /// the steps before it; the completions of one turn, granted in queue
    /// order, each against the one before.
    fn granted(&mut self, name: usize, owner: usize, grant: Seen, floor: u64) -> bool {
        let renewed = self
            .seen
            .get(&(name, owner))
            .is_some_and(|s| s.shared == grant.shared && s.token == grant.token);
        if !renewed {
            assert!(
                grant.token > floor,
                "new grant of {name} to {owner} with token {} after {floor}",
                grant.token,
            );
            assert!(
                self.tokens.insert(grant.token),
                "token {} given twice",
                grant.token
            );
            self.last_token = self.last_token.max(grant.token);
        }
        self.seen.insert((name, owner), grant);
        !renewed
    }

    /// Waits on `name` still in time at `now`, parked before `seq`.
    fn older_waiters(&self, name: usize, seq: u64, now: u64) -> usize {
        self.waiting
            .values()
            .filter(|w| w.name == name && w.seq < seq && w.until > now)
            .count()
    }

    /// Takes the store's completions: each was waiting and completes once;
    /// a grant goes to the oldest waiter of its lock still in time (those
    /// whose wait ran out in the same turn are taken first), with a token
    /// as [`Shares::granted`] says, in the mode it asked for; and the
    /// grantee holds the lock, unless `own_unlock` says the request that
    /// caused the grant was the grantee's own `Unlock` of it. Returns who
    /// was handed a lock, as (name, owner).
    fn settle(
        &mut self,
        store: &mut Store,
        now: u64,
        own_unlock: Option<(usize, usize)>,
    ) -> Vec<(usize, usize)> {
        let mut completions = Vec::new();
        store.take_completions(&mut completions);
        for done in completions.iter().filter(|d| d.granted.is_none()) {
            self.complete(done.ticket);
        }
        let mut holders = Vec::new();
        for done in completions.iter().filter(|d| d.granted.is_some()) {
            let queued = self.complete(done.ticket);
            let older = self.older_waiters(queued.name, queued.seq, now);
            assert_eq!(older, 0, "a grant overtook {older} older waiters");
            assert_eq!(
                done.mode == Mode::Shared,
                queued.shared,
                "granted in its mode"
            );
            let token = done.granted.map_or(0, FencingToken::get);
            let floor = self.last_token;
            let grant = Seen {
                shared: queued.shared,
                token,
                limit: queued.limit,
            };
            self.granted(queued.name, queued.owner, grant, floor);
            holders.push((queued.name, queued.owner));
        }
        let names = names();
        for &(name, owner) in &holders {
            if own_unlock != Some((name, owner)) {
                let probe = test_lock(SHARERS[owner], &names[name]);
                let status = reply(store, now, &probe).status();
                assert_eq!(status, Status::Locked, "the grantee does not hold");
            }
        }
        holders
    }

    fn complete(&mut self, ticket: Ticket) -> Queued {
        assert!(
            !self.finished.contains(&ticket),
            "{ticket:?} completed twice"
        );
        self.finished.push(ticket);
        self.waiting
            .remove(&ticket)
            .unwrap_or_else(|| panic!("{ticket:?} completed but never waited"))
    }

    /// `TestLock` on `name` by every ID: never an exclusive holder beside
    /// any other, never more shares than the limit they were asked with
    /// (which they all share), `Holders` the number of IDs told `Locked`,
    /// and nobody told `NotOwner` when nobody holds it.
    fn check_holders(&mut self, store: &mut Store, now: u64, name: usize) {
        // A first probe lets the store notice what ran out at `now`, and
        // hand it on, before the probes that count.
        let names = names();
        let _ = reply(store, now, &test_lock(SHARERS[0], &names[name]));
        let _ = self.settle(store, now, None);
        let (mut exclusive, mut shared, mut refused) = (Vec::new(), Vec::new(), 0);
        let mut counts = Vec::new();
        for (owner, id) in SHARERS.iter().enumerate() {
            match reply(store, now, &test_lock(id, &names[name])) {
                Reply::WithId(Status::Locked, _) => exclusive.push(owner),
                Reply::HeldShared { holders, .. } => {
                    shared.push(owner);
                    counts.push(holders);
                }
                Reply::Bare(Status::NotOwner) => refused += 1,
                Reply::Bare(Status::Unlocked) => {}
                other => panic!("TestLock answered {other:?}"),
            }
        }
        let mut completions = Vec::new();
        store.take_completions(&mut completions);
        assert!(
            completions.is_empty(),
            "probes changed the lock: {completions:?}"
        );
        assert!(
            exclusive.len() <= 1,
            "{} exclusive holders of {name}",
            exclusive.len()
        );
        assert!(
            exclusive.is_empty() || shared.is_empty(),
            "an exclusive holder beside {} shares of {name}",
            shared.len()
        );
        for holders in &counts {
            assert_eq!(*holders as usize, shared.len(), "Holders of {name}");
        }
        let limits: Vec<u32> = shared
            .iter()
            .filter_map(|&owner| self.seen.get(&(name, owner)))
            .map(|s| {
                assert!(s.shared, "a share seen as exclusive");
                s.limit
            })
            .collect();
        assert_eq!(
            limits.len(),
            shared.len(),
            "every share of {name} was seen granted"
        );
        if let Some(&limit) = limits.first() {
            assert!(
                limits.iter().all(|&l| l == limit),
                "shares of {name} under two limits"
            );
            assert!(
                u32::try_from(shared.len()).is_ok_and(|n| n <= limit),
                "{} shares of a limit of {limit}",
                shared.len()
            );
        }
        let held = exclusive.len() + shared.len();
        assert_eq!(
            refused,
            if held == 0 { 0 } else { SHARERS.len() - held },
            "NotOwner of {name}"
        );
        if held == 0 {
            let live = self.older_waiters(name, u64::MAX, now);
            assert_eq!(live, 0, "{name} is free with {live} waiters in time");
        }
        // Who does not hold, holds nothing any longer.
        for owner in 0..SHARERS.len() {
            if !exclusive.contains(&owner) && !shared.contains(&owner) {
                self.seen.remove(&(name, owner));
            }
        }
    }
}

/// Shared locks and semaphores: both modes, limits, conversions, waits
/// (with withdrawals) and clock jumps on a few locks, checking the
/// properties of PROTOCOL.md at every step (see [`Shares`]). Chosen by the
/// top two bits of the first byte; no memory cap.
pub fn check_shared(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let _ = bytes.u8();
    let mut store = Store::new(
        StoreConfig {
            max_waiters_per_lock: 4,
            max_waiters_total: 10,
            max_holders: MAX_HOLDERS,
            compact_after: 256,
            first_token: FencingToken::new(u64::from(bytes.u32()) + 1),
            ..StoreConfig::unbounded()
        },
        Moment::START,
    );
    let names = names();
    let mut shares = Shares {
        seen: HashMap::new(),
        waiting: HashMap::new(),
        finished: Vec::new(),
        tokens: std::collections::HashSet::new(),
        last_token: 0,
        seq: 0,
    };
    let mut now = 0u64;
    while !bytes.is_empty() {
        let op = bytes.u8();
        match op % 8 {
            kind @ 0..=4 => {
                let who = bytes.u8();
                let owner = who as usize % SHARERS.len();
                let name = (who as usize / SHARERS.len()) % SHARED_NAMES;
                let id = SHARERS[owner];
                let action = [
                    Action::Lock,
                    Action::Lock,
                    Action::Lock,
                    Action::Unlock,
                    Action::TestLock,
                ][kind as usize];
                let mut request = request(action, id, &names[name]);
                let (mut shared, mut limit, mut wait) = (false, MAX_HOLDERS, 0);
                if action == Action::Lock {
                    let how = bytes.u8();
                    shared = how & 1 == 1;
                    wait = u64::from((how >> 3) & 3) * 30;
                    request = request
                        .with_expire(Millis::new(u64::from(bytes.u8()) * 5 + 1))
                        .with_wait(Millis::new(wait));
                    if shared {
                        request = request.with_mode(Mode::Shared);
                        if let n @ 1..=3 = u32::from((how >> 1) & 3) {
                            request = request.with_limit(n);
                            limit = n;
                        }
                    }
                }
                let floor = shares.last_token;
                let was_holder = shares.seen.contains_key(&(name, owner));
                let outcome = store.apply(at(now), &request);
                let (parked, answer) = match outcome {
                    Outcome::Parked(ticket) => (Some(ticket), None),
                    Outcome::Reply(reply) => (None, Some(reply)),
                };
                let token = match answer {
                    Some(Reply::Locked { token, .. }) => {
                        assert!(!shared, "an exclusive reply to a shared Lock");
                        Some(token.get())
                    }
                    Some(Reply::LockedShared { token, .. }) => {
                        assert!(shared, "a shared reply to an exclusive Lock");
                        Some(token.get())
                    }
                    _ => None,
                };
                let own_unlock = (action == Action::Unlock).then_some((name, owner));
                let handed = shares.settle(&mut store, now, own_unlock);
                // The request may first have handed an expired hold to this
                // ID's own wait (its turn had come), then converted it.
                let was_holder = was_holder || handed.contains(&(name, owner));
                if let Some(ticket) = parked {
                    assert!(wait > 0, "parked without Wait");
                    assert!(!shares.finished.contains(&ticket), "ticket reused");
                    shares.seq += 1;
                    let queued = Queued {
                        name,
                        owner,
                        seq: shares.seq,
                        shared,
                        limit,
                        until: now + wait,
                    };
                    assert!(
                        shares.waiting.insert(ticket, queued).is_none(),
                        "ticket given twice"
                    );
                }
                if let (Action::Lock, Some(token)) = (action, token) {
                    let new = shares.granted(
                        name,
                        owner,
                        Seen {
                            shared,
                            token,
                            limit,
                        },
                        floor,
                    );
                    // A new hold never overtakes a waiter in time (one still
                    // waiting once the hand-overs of this turn are done),
                    // unless it converts this ID's own hold.
                    let older = shares.older_waiters(name, u64::MAX, now);
                    assert!(
                        !new || older == 0 || was_holder,
                        "a new grant of {name} past {older} waiters"
                    );
                }
                // Who holds what after an `Unlock` (which may hand the lock
                // to this ID's own next wait) the probes below tell.
                shares.check_holders(&mut store, now, name);
            }
            5 if op & 0x80 != 0 => now += u64::from(bytes.u16()) * 997,
            5 => now += u64::from(bytes.u8()),
            6 => {
                while store.expire(at(now), (op >> 4) as usize + 1) {}
                let _ = shares.settle(&mut store, now, None);
            }
            _ if op & 0x80 != 0 => store.compact(),
            _ => {
                let pick = bytes.u8() as usize;
                withdraw(&mut store, pick, &mut shares.waiting, &mut shares.finished);
                let _ = shares.settle(&mut store, now, None);
            }
        }
        assert_eq!(store.waiter_count(), shares.waiting.len(), "waiters");
    }
    let_all_time_pass(&mut store, now, |store, now| {
        let _ = shares.settle(store, now, None);
        shares.waiting.len()
    });
}
