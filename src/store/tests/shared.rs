//! Shared locks and semaphores against a naive model: both modes, limits,
//! conversions, waits, withdrawals, clock jumps and expiry, with the store's
//! own structures audited after every step.
//!
//! Checked at every step: the store's replies and completions have the
//! model's shape (status, mode, holders; tokens are checked apart); every
//! new grant's token is above every token before it and a renewal keeps its
//! token; each lock's waiters are granted in arrival order; no exclusive
//! hold has another holder beside it and no shared lock more shares than its
//! limit; each share's timer stands at its deadline; the bytes charged are
//! the sum of what lives; and the store's locks, shares and queues are the
//! model's.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, VecDeque};

const MAX_HOLDERS: u32 = 3;

fn shared_store() -> Store {
    Store::new(
        StoreConfig {
            max_holders: MAX_HOLDERS,
            first_token: FencingToken::new(FIRST_TOKEN),
            compact_after: 64,
            ..StoreConfig::unbounded()
        },
        Moment::START,
    )
}

/// What a lock looks like from outside: its mode, its holders (sorted),
/// its limit when shared, and its queue (owners in order).
type Shape = (Mode, Vec<String>, u32, Vec<String>);

impl Store {
    /// Checks the store's structures against each other and returns every
    /// lock's shape.
    fn audit(&self) -> BTreeMap<String, Shape> {
        let mut bytes = 0;
        let mut shapes = BTreeMap::new();
        let mut shares_seen = 0;
        for (key, hold) in self.locks.iter() {
            bytes += hold.cost();
            let mut queue = Vec::new();
            let mut w = hold.queue.head;
            while w != WaiterKey::NIL {
                let waiter = &self.waiters[w.index()];
                assert_eq!(waiter.hold, key, "a waiter names its lock");
                queue.push(waiter.request.owner.to_string());
                w = waiter.next;
            }
            let shape = if hold.shared == SetKey::NIL {
                assert!(
                    !hold.packed.owner().is_empty(),
                    "an exclusive hold has an owner"
                );
                assert_eq!(self.wheel.deadline(hold.timer), hold.deadline.as_ms());
                (
                    Mode::Exclusive,
                    vec![hold.packed.owner().to_string()],
                    0,
                    queue,
                )
            } else {
                assert!(
                    hold.packed.owner().is_empty(),
                    "a shared lock has no single owner"
                );
                let set = self.holders.set(hold.shared);
                assert_eq!(set.lock, key, "a set names its lock");
                assert!(set.len() >= 1, "a shared lock has a share");
                assert!(set.len() <= set.limit, "more shares than the limit");
                assert!(set.limit <= self.config.max_holders);
                let mut owners: Vec<String> = set
                    .members()
                    .iter()
                    .map(|&h| {
                        let share = &self.holders[h];
                        assert_eq!(share.set, hold.shared);
                        assert_eq!(self.wheel.deadline(share.timer), share.deadline.as_ms());
                        assert!(
                            hold.deadline <= share.deadline,
                            "the lock's bound is a bound"
                        );
                        bytes += share.cost();
                        share.owner().to_string()
                    })
                    .collect();
                shares_seen += owners.len();
                owners.sort();
                let before = owners.len();
                owners.dedup();
                assert_eq!(before, owners.len(), "one share per ID");
                (Mode::Shared, owners, set.limit, queue)
            };
            shapes.insert(hold.packed.name().to_string(), shape);
        }
        assert_eq!(shares_seen, self.holders.len(), "no share outside a lock");
        for (_, waiter) in self.waiters.iter() {
            bytes += waiter.cost();
        }
        assert_eq!(bytes, self.bytes, "the bytes charged are what lives");
        shapes
    }
}

/// What the model says of a grant's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    New,
    Renewed,
}

#[derive(Debug, Clone)]
struct ModelWaiter {
    park: u64,
    owner: String,
    mode: Mode,
    limit: u32,
    expire: u64,
    wait_deadline: u64,
}

#[derive(Debug)]
enum Held {
    Exclusive {
        owner: String,
        deadline: u64,
    },
    /// Owners with their deadlines.
    Shared {
        limit: u32,
        shares: Vec<(String, u64)>,
    },
}

#[derive(Debug)]
struct ModelLock {
    held: Held,
    queue: VecDeque<ModelWaiter>,
}

#[derive(Default)]
struct Model {
    locks: BTreeMap<String, ModelLock>,
    parks: u64,
    /// (park, granted as what) of each finished wait, in order.
    done: Vec<(u64, Option<Grant>)>,
    /// Locks whose front waiter was withdrawn, granted at the next step.
    pending: Vec<String>,
}

impl Model {
    fn shapes(&self) -> BTreeMap<String, Shape> {
        self.locks
            .iter()
            .map(|(name, lock)| {
                let queue = lock.queue.iter().map(|w| w.owner.clone()).collect();
                let shape = match &lock.held {
                    Held::Exclusive { owner, .. } => {
                        (Mode::Exclusive, vec![owner.clone()], 0, queue)
                    }
                    Held::Shared { limit, shares } => {
                        let mut owners: Vec<String> = shares.iter().map(|s| s.0.clone()).collect();
                        owners.sort();
                        (Mode::Shared, owners, *limit, queue)
                    }
                };
                (name.clone(), shape)
            })
            .collect()
    }

    /// The lock `name` passes from nobody to its first waiter still in
    /// time (in that waiter's mode), or is removed.
    fn end_hold(&mut self, name: &str, now: u64) {
        let lock = self.locks.get_mut(name).expect("a lock");
        while let Some(w) = lock.queue.pop_front() {
            if w.wait_deadline <= now {
                self.done.push((w.park, None));
                continue;
            }
            self.done.push((w.park, Some(Grant::New)));
            lock.held = match w.mode {
                Mode::Exclusive => Held::Exclusive {
                    owner: w.owner,
                    deadline: now + w.expire,
                },
                Mode::Shared => Held::Shared {
                    limit: w.limit,
                    shares: vec![(w.owner, now + w.expire)],
                },
            };
            if w.mode == Mode::Shared {
                self.grant_queue(name, now);
            }
            return;
        }
        self.locks.remove(name);
    }

    fn grant_queue(&mut self, name: &str, now: u64) {
        let Some(lock) = self.locks.get_mut(name) else {
            return;
        };
        let Held::Shared { limit, shares } = &mut lock.held else {
            return;
        };
        if lock.queue.is_empty() {
            return;
        }
        shares.retain(|s| s.1 > now);
        if shares.is_empty() {
            self.end_hold(name, now);
            return;
        }
        while let Some(w) = lock.queue.front() {
            let late = w.wait_deadline <= now;
            if !late && w.mode == Mode::Exclusive {
                return;
            }
            if late || w.limit != *limit {
                self.done.push((w.park, None));
                lock.queue.pop_front();
                continue;
            }
            let held = shares.iter().position(|s| s.0 == w.owner);
            if held.is_none() && shares.len() >= *limit as usize {
                return;
            }
            let w = lock.queue.pop_front().expect("a front");
            match held {
                Some(i) => {
                    shares[i].1 = now + w.expire;
                    self.done.push((w.park, Some(Grant::Renewed)));
                }
                None => {
                    shares.push((w.owner, now + w.expire));
                    self.done.push((w.park, Some(Grant::New)));
                }
            }
        }
    }

    /// Expiry on access; whether the lock is live afterwards.
    fn live(&mut self, name: &str, now: u64) -> bool {
        let Some(lock) = self.locks.get_mut(name) else {
            return false;
        };
        match &mut lock.held {
            Held::Exclusive { deadline, .. } => {
                if *deadline <= now {
                    self.end_hold(name, now);
                }
            }
            Held::Shared { shares, .. } => {
                let before = shares.len();
                shares.retain(|s| s.1 > now);
                if shares.is_empty() {
                    self.end_hold(name, now);
                } else if shares.len() < before {
                    self.grant_queue(name, now);
                }
            }
        }
        self.locks.contains_key(name)
    }

    fn settle_pending(&mut self, now: u64) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort();
        pending.dedup();
        for name in pending {
            self.grant_queue(&name, now);
        }
    }

    /// The reply (tokens left out) and what its token is, or `None` when
    /// the request parks.
    fn apply(&mut self, now: u64, r: &Request<'_>) -> Option<(String, Option<Grant>)> {
        self.settle_pending(now);
        let name = r.name().to_string();
        let id = r.id().to_string();
        let live = self.live(&name, now);
        let deadline = now + r.expire().as_ms();
        let limit = r.limit().unwrap_or(MAX_HOLDERS);
        let shared =
            |id: &str| format!(r#"{{"Status":"Locked","ID":"{id}","Token":_,"Mode":"Shared"}}"#);
        let exclusive = |id: &str| format!(r#"{{"Status":"Locked","ID":"{id}","Token":_}}"#);
        let not_owner = || (r#"{"Status":"NotOwner"}"#.to_string(), None);
        let answer = match r.action() {
            Action::Lock if !live => {
                let held = match r.mode() {
                    Mode::Exclusive => Held::Exclusive {
                        owner: id.clone(),
                        deadline,
                    },
                    Mode::Shared => Held::Shared {
                        limit,
                        shares: vec![(id.clone(), deadline)],
                    },
                };
                self.locks.insert(
                    name,
                    ModelLock {
                        held,
                        queue: VecDeque::new(),
                    },
                );
                let reply = if r.mode() == Mode::Shared {
                    shared(&id)
                } else {
                    exclusive(&id)
                };
                (reply, Some(Grant::New))
            }
            Action::Lock => {
                let lock = self.locks.get_mut(&name).expect("live");
                let queue_empty = lock.queue.is_empty();
                enum Next {
                    Reply(String, Option<Grant>),
                    Park,
                    GrantQueue(String, Option<Grant>),
                }
                let next = match (&mut lock.held, r.mode()) {
                    (Held::Exclusive { owner, deadline: d }, Mode::Exclusive) if *owner == id => {
                        *d = deadline;
                        Next::Reply(exclusive(&id), Some(Grant::Renewed))
                    }
                    (Held::Exclusive { owner, .. }, Mode::Shared) if *owner == id => {
                        lock.held = Held::Shared {
                            limit,
                            shares: vec![(id.clone(), deadline)],
                        };
                        Next::GrantQueue(shared(&id), Some(Grant::New))
                    }
                    (Held::Exclusive { .. }, _) => Next::Park,
                    (Held::Shared { limit: l, shares }, mode) => {
                        match (shares.iter().position(|s| s.0 == id), mode) {
                            (Some(_), Mode::Shared) if limit != *l => {
                                Next::Reply(not_owner().0, None)
                            }
                            (Some(i), Mode::Shared) => {
                                shares[i].1 = deadline;
                                Next::Reply(shared(&id), Some(Grant::Renewed))
                            }
                            (Some(_), Mode::Exclusive) if shares.len() == 1 => {
                                lock.held = Held::Exclusive {
                                    owner: id.clone(),
                                    deadline,
                                };
                                Next::Reply(exclusive(&id), Some(Grant::New))
                            }
                            (Some(_), Mode::Exclusive) => Next::Reply(not_owner().0, None),
                            (None, Mode::Shared) if limit != *l => Next::Reply(not_owner().0, None),
                            (None, Mode::Shared) if shares.len() < *l as usize && queue_empty => {
                                shares.push((id.clone(), deadline));
                                Next::Reply(shared(&id), Some(Grant::New))
                            }
                            (None, _) => Next::Park,
                        }
                    }
                };
                match next {
                    Next::Reply(reply, grant) => (reply, grant),
                    Next::GrantQueue(reply, grant) => {
                        self.grant_queue(&name, now);
                        (reply, grant)
                    }
                    Next::Park if r.wait().is_zero() => not_owner(),
                    Next::Park => {
                        lock.queue.push_back(ModelWaiter {
                            park: self.parks,
                            owner: id,
                            mode: r.mode(),
                            limit,
                            expire: r.expire().as_ms(),
                            wait_deadline: now + r.wait().as_ms(),
                        });
                        self.parks += 1;
                        return None;
                    }
                }
            }
            Action::Unlock if !live => (r#"{"Status":"Unlocked"}"#.to_string(), None),
            Action::Unlock => {
                let lock = self.locks.get_mut(&name).expect("live");
                let unlocked = format!(r#"{{"Status":"Unlocked","ID":"{id}"}}"#);
                match &mut lock.held {
                    Held::Exclusive { owner, .. } if *owner == id => {
                        self.end_hold(&name, now);
                        (unlocked, None)
                    }
                    Held::Shared { shares, .. } if shares.iter().any(|s| s.0 == id) => {
                        shares.retain(|s| s.0 != id);
                        if shares.is_empty() {
                            self.end_hold(&name, now);
                        } else {
                            self.grant_queue(&name, now);
                        }
                        (unlocked, None)
                    }
                    _ => not_owner(),
                }
            }
            Action::TestLock if !live => (r#"{"Status":"Unlocked"}"#.to_string(), None),
            Action::TestLock => match &self.locks[&name].held {
                Held::Exclusive { owner, .. } if *owner == id => {
                    (format!(r#"{{"Status":"Locked","ID":"{id}"}}"#), None)
                }
                Held::Shared { shares, .. } if shares.iter().any(|s| s.0 == id) => (
                    format!(
                        r#"{{"Status":"Locked","ID":"{id}","Mode":"Shared","Holders":{}}}"#,
                        shares.len()
                    ),
                    None,
                ),
                _ => not_owner(),
            },
            _ => unreachable!("only locks in this model"),
        };
        Some(answer)
    }

    /// The wheel's work at `now`.
    fn expire(&mut self, now: u64) {
        let mut touched = std::mem::take(&mut self.pending);
        for (name, lock) in &mut self.locks {
            let head = lock.queue.front().map(|w| w.park);
            let (late, keep): (VecDeque<_>, VecDeque<_>) =
                lock.queue.drain(..).partition(|w| w.wait_deadline <= now);
            self.done.extend(late.iter().map(|w| (w.park, None)));
            if matches!(lock.held, Held::Shared { .. }) && head != keep.front().map(|w| w.park) {
                touched.push(name.clone());
            }
            lock.queue = keep;
            if let Held::Shared { shares, .. } = &mut lock.held {
                let before = shares.len();
                shares.retain(|s| s.1 > now);
                if shares.len() < before {
                    touched.push(name.clone());
                }
            }
        }
        let ended: Vec<String> = self
            .locks
            .iter()
            .filter(|(_, l)| matches!(l.held, Held::Exclusive { deadline, .. } if deadline <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in ended {
            self.end_hold(&name, now);
        }
        touched.sort();
        touched.dedup();
        for name in touched {
            let empty = matches!(
                self.locks.get(&name).map(|l| &l.held),
                Some(Held::Shared { shares, .. }) if shares.is_empty()
            );
            if empty {
                self.end_hold(&name, now);
            } else {
                self.grant_queue(&name, now);
            }
        }
    }

    fn cancel(&mut self, park: u64) {
        for (name, lock) in &mut self.locks {
            if lock.queue.front().is_some_and(|w| w.park == park)
                && matches!(lock.held, Held::Shared { .. })
            {
                self.pending.push(name.clone());
            }
            lock.queue.retain(|w| w.park != park);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Lock {
        id: u8,
        name: u8,
        shared: bool,
        limit: u8,
        expire_ms: u64,
        wait_ms: u64,
    },
    Unlock {
        id: u8,
        name: u8,
    },
    TestLock {
        id: u8,
        name: u8,
    },
    Advance(u64),
    Expire(u64),
    Cancel(usize),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..5, 0u8..2, prop::bool::weighted(0.7), 0u8..4, 1u64..400,
              prop_oneof![Just(0u64), 1u64..600])
            .prop_map(|(id, name, shared, limit, expire_ms, wait_ms)| Op::Lock {
                id, name, shared, limit, expire_ms, wait_ms
            }),
        3 => (0u8..5, 0u8..2).prop_map(|(id, name)| Op::Unlock { id, name }),
        1 => (0u8..5, 0u8..2).prop_map(|(id, name)| Op::TestLock { id, name }),
        2 => prop_oneof![0u64..300, 0u64..100_000].prop_map(Op::Advance),
        2 => (0u64..300).prop_map(Op::Expire),
        1 => (0usize..64).prop_map(Op::Cancel),
        1 => Just(Op::Compact),
    ]
}

/// The reply's JSON with its token (if any) left out.
fn without_token(reply: &str) -> (String, Option<u64>) {
    let Some(at) = reply.find(r#""Token":"#) else {
        return (reply.to_string(), None);
    };
    let digits_at = at + r#""Token":"#.len();
    let end = digits_at
        + reply[digits_at..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(0);
    let token = reply[digits_at..end].parse().ok();
    (format!("{}_{}", &reply[..digits_at], &reply[end..]), token)
}

/// Tokens as the clients see them: within a step (one request or one
/// expiry), new grants above every token of the steps before, the
/// completions' in the order granted; a renewal keeps the token its ID holds.
#[derive(Default)]
struct Tokens {
    last: u64,
    held: HashMap<(String, String), u64>,
    /// This step's grants: (lock, ID, token, kind, from a completion).
    step: Vec<(String, String, u64, Grant, bool)>,
}

impl Tokens {
    fn saw(&mut self, name: &str, id: &str, token: u64, grant: Grant, completion: bool) {
        self.step
            .push((name.to_string(), id.to_string(), token, grant, completion));
    }

    fn end_step(&mut self) -> Result<(), TestCaseError> {
        let step = std::mem::take(&mut self.step);
        let mut last_completion = self.last;
        let mut highest = self.last;
        let held_before = self.held.clone();
        for (name, id, token, grant, completion) in &step {
            if *grant == Grant::New {
                prop_assert!(*token > self.last, "token {} after {}", token, self.last);
                if *completion {
                    prop_assert!(*token > last_completion, "grants out of token order");
                    last_completion = *token;
                }
                highest = highest.max(*token);
                self.held.insert((name.clone(), id.clone()), *token);
            }
        }
        let mut news: Vec<u64> = step
            .iter()
            .filter(|g| g.3 == Grant::New)
            .map(|g| g.2)
            .collect();
        news.sort_unstable();
        news.dedup();
        prop_assert_eq!(
            news.len(),
            step.iter().filter(|g| g.3 == Grant::New).count(),
            "a token twice"
        );
        self.last = highest;
        // A renewal keeps the token its ID held when it was renewed: the one
        // from before the step, or one granted to it earlier in the step (a
        // grant and a renewal of the same ID can come in one turn, and a
        // conversion after them gives a new token).
        for (name, id, token, grant, _) in &step {
            if *grant == Grant::Renewed {
                let key = (name.clone(), id.clone());
                let kept = held_before.get(&key) == Some(token)
                    || step
                        .iter()
                        .any(|g| g.3 == Grant::New && g.0 == *name && g.1 == *id && g.2 == *token);
                prop_assert!(kept, "a renewal keeps its token: {} on {}", token, name);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]
    #[test]
    fn shared_locks_match_model(ops in prop::collection::vec(op(), 1..160)) {
        let mut s = shared_store();
        let mut m = Model::default();
        let ids = ["a", "b", "c", "d", "e"];
        let names = ["x", "y"];
        let mut now = 0;
        // Per park number: the ticket, the lock and the ID.
        let mut parks: Vec<(Ticket, String, String)> = Vec::new();
        let mut tokens = Tokens::default();
        let mut seen_done = 0;
        let mut last_granted_park: HashMap<String, u64> = HashMap::new();
        for op in ops {
            // A reply's token is checked after the completions of the same
            // step, which happened before it (a hold handed on at access).
            let mut reply_token = None;
            match op {
                Op::Lock { id, name, shared, limit, expire_ms, wait_ms } => {
                    let (id, name) = (ids[id as usize], names[name as usize]);
                    let mode = if shared { Mode::Shared } else { Mode::Exclusive };
                    let r = req(Action::Lock, id, name)
                        .with_expire(Millis::new(expire_ms))
                        .with_wait(Millis::new(wait_ms))
                        .with_mode(mode)
                        .with_limit(if shared { u32::from(limit) } else { 0 });
                    let want = m.apply(now, &r);
                    match s.apply_at(now, &r) {
                        Outcome::Parked(ticket) => {
                            prop_assert!(want.is_none(), "store parked, model answered {:?}", want);
                            parks.push((ticket, name.into(), id.into()));
                        }
                        Outcome::Reply(reply) => {
                            let (got, token) = without_token(&json(reply));
                            let (want, grant) = want.expect("the model answered too");
                            prop_assert_eq!(got, want);
                            if let (Some(token), Some(grant)) = (token, grant) {
                                reply_token = Some((name, id, token, grant));
                            }
                        }
                    }
                }
                Op::Unlock { id, name } | Op::TestLock { id, name } => {
                    let action = if matches!(op, Op::Unlock { .. }) { Action::Unlock } else { Action::TestLock };
                    let r = req(action, ids[id as usize], names[name as usize]);
                    let got = json(reply(&mut s, now, &r));
                    prop_assert_eq!(Some(got), m.apply(now, &r).map(|a| a.0));
                }
                Op::Advance(dt) => now += dt,
                Op::Expire(dt) => {
                    now += dt;
                    while s.expire(t(now), 2) {}
                    m.expire(now);
                }
                Op::Cancel(i) => {
                    if let Some((ticket, _, _)) = parks.get(i) {
                        s.cancel_wait(*ticket);
                        m.cancel(i as u64);
                    }
                }
                Op::Compact => s.compact(),
            }
            // Completions: the same waiters finished, granted the same way.
            let mut done = Vec::new();
            s.take_completions(&mut done);
            let park_of = |t: Ticket| parks.iter().position(|p| p.0 == t).expect("known ticket") as u64;
            let model_step: HashMap<u64, Option<Grant>> = m.done[seen_done..].iter().copied().collect();
            seen_done = m.done.len();
            prop_assert_eq!(done.len(), model_step.len(), "completions {:?} vs {:?}", done, model_step);
            for c in &done {
                let park = park_of(c.ticket);
                let grant = model_step.get(&park).copied();
                prop_assert!(grant.is_some(), "park {} finished only in the store", park);
                let (_, name, id) = &parks[usize::try_from(park).expect("a park number")];
                match (c.granted, grant.flatten()) {
                    (None, None) => {}
                    (Some(token), Some(grant)) => {
                        tokens.saw(name, id, token.get(), grant, true);
                        let last = last_granted_park.insert(name.clone(), park);
                        prop_assert!(last.is_none_or(|l| l < park), "granted out of arrival order");
                    }
                    (got, want) => prop_assert!(false, "park {}: store {:?}, model {:?}", park, got, want),
                }
            }
            if let Some((name, id, token, grant)) = reply_token {
                tokens.saw(name, id, token, grant, false);
            }
            tokens.end_step()?;
            prop_assert_eq!(s.audit(), m.shapes());
        }
    }
}
