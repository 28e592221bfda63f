//! One fighter: the sequence of requests it makes and what it counts.
//!
//! A fighter loops over cycles: pick a resource at random, `Lock` it, and
//! once it holds the lock, `Unlock` it again. Under `--verify` the holder
//! also reads the counter that the lock guards and writes it back plus one
//! before unlocking; at the end every counter must equal the number of
//! increments counted here, or two fighters held a lock at once.
//!
//! In the shared modes (`rw`, `semaphore`) a cycle's `Lock` is a share or
//! an exclusive hold, decided when the cycle starts; there `--verify`
//! reports each grant and each leaving to the run's
//! [`Occupancy`] instead of counting on a
//! counter (shared holders never write one).
//!
//! The fighter never touches a socket and never reads the clock: the engine
//! hands it each reply with the current time, and asks it for its next
//! request. That keeps the decision logic testable on its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::histogram::Histogram;
use crate::mode::{OnRefusal, Sharing};
use crate::occupancy::Occupancy;
use crate::wire::{Op, Outcome};
use jackrabbit_dlm::rng::Rng;

/// The rules every fighter of a run follows.
#[derive(Debug, Clone)]
pub struct Rules {
    pub resources: u32,
    pub verify: bool,
    pub on_refusal: OnRefusal,
    pub retry_delay: Duration,
    /// How long a holder keeps its lock before its next request.
    pub hold: Duration,
    /// Whether `Lock`s ask for shares.
    pub sharing: Sharing,
    /// With [`Sharing::Mixed`]: the percentage of cycles that take a share.
    pub shared_percent: u32,
    /// Where grants and leavings are checked (`--verify` in a shared mode).
    pub occupancy: Option<Arc<Occupancy>>,
    /// Cycles each fighter makes before it stops (`--cycles`), if bounded.
    pub cycles: Option<u64>,
}

/// What the fighters of one thread counted.
#[derive(Clone, Default)]
pub struct Tally {
    /// Replies received inside the measured window.
    pub requests: u64,
    /// Of those, replies to `Lock`.
    pub lock_requests: u64,
    /// Replies granting a lock.
    pub acquisitions: u64,
    /// Replies refusing a lock.
    pub refusals: u64,
    /// Error replies, broken connections, failed connects.
    pub errors: u64,
    /// `Unlock`s answered `NotOwner`: the hold was lost before its release.
    pub lost_holds: u64,
    /// Latency of every reply inside the window.
    pub latency: Histogram,
    /// Successful counter writes per resource (all of them, not only inside
    /// the window, since the final check compares with the counters).
    pub increments: Vec<u64>,
    /// The first reply that meant nothing to its fighter, for diagnosis.
    pub first_unexpected: Option<String>,
    /// Why the first connection broke, for diagnosis.
    pub first_failure: Option<String>,
    /// Whether the run ended before every fighter finished its cycle.
    pub unfinished: bool,
    /// Locks each fighter was granted inside the window, for fairness.
    pub per_fighter: Vec<u64>,
}

impl Tally {
    /// An empty tally for `resources` resources.
    pub fn new(resources: u32) -> Self {
        Tally {
            increments: vec![0; resources as usize],
            ..Tally::default()
        }
    }

    /// Adds `other` to this tally.
    pub fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.lock_requests += other.lock_requests;
        self.acquisitions += other.acquisitions;
        self.refusals += other.refusals;
        self.errors += other.errors;
        self.lost_holds += other.lost_holds;
        self.latency.merge(&other.latency);
        if self.increments.len() < other.increments.len() {
            self.increments.resize(other.increments.len(), 0);
        }
        for (a, b) in self.increments.iter_mut().zip(&other.increments) {
            *a += b;
        }
        if self.first_unexpected.is_none() {
            self.first_unexpected.clone_from(&other.first_unexpected);
        }
        if self.first_failure.is_none() {
            self.first_failure.clone_from(&other.first_failure);
        }
        self.unfinished |= other.unfinished;
        self.per_fighter.extend_from_slice(&other.per_fighter);
    }

    /// Jain's fairness index of the locks granted per fighter: 1 when all
    /// got the same number, 1/n when one fighter got them all.
    pub fn fairness(&self) -> Option<f64> {
        let n = self.per_fighter.len() as f64;
        let sum: f64 = self.per_fighter.iter().map(|&x| x as f64).sum();
        let squares: f64 = self
            .per_fighter
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum();
        (squares > 0.0).then(|| sum * sum / (n * squares))
    }
}

/// One fighter's state.
pub struct Fighter {
    /// The ID its locks are taken under.
    pub owner: Box<[u8]>,
    pub rng: Rng,
    /// The resource of the current cycle.
    pub resource: u32,
    /// The request it makes next.
    pub next: Op,
    /// It makes no request before this time (a patient retry).
    pub sleeps_until: Option<Instant>,
    /// It has finished its last cycle and makes no more requests.
    pub done: bool,
    /// Locks granted to it inside the window.
    pub acquired: u64,
    /// Whether the current cycle takes a share.
    pub shared: bool,
    /// Whether it holds the resource as far as the occupancy check knows
    /// (granted, and its `Unlock` not sent yet).
    pub holds: bool,
    /// Cycles it has started.
    pub cycles: u64,
    /// It has made its `--cycles` and starts no other.
    pub out_of_cycles: bool,
}

impl Fighter {
    /// A fighter about to lock its first resource.
    pub fn new(owner: Box<[u8]>, rng: Rng, rules: &Rules) -> Self {
        let mut fighter = Fighter {
            owner,
            rng,
            resource: 0,
            next: Op::Lock,
            sleeps_until: None,
            done: false,
            acquired: 0,
            shared: false,
            holds: false,
            cycles: 0,
            out_of_cycles: false,
        };
        fighter.new_cycle(rules);
        fighter
    }

    /// Whether `next` asks for the lock (in either mode).
    fn locks_next(&self) -> bool {
        matches!(self.next, Op::Lock | Op::LockShared)
    }

    /// Called as its `next` request is written: an `Unlock` ends its hold
    /// for the occupancy check before the server can end it. (A request
    /// sent again on a new connection is not a second leaving.)
    pub fn sending(&mut self, rules: &Rules) {
        if self.next == Op::Unlock && self.holds {
            self.holds = false;
            if let Some(occupancy) = &rules.occupancy {
                occupancy.leave(self.resource, self.shared);
            }
        }
    }

    /// Whether the fighter has a request to make at `now`. Once `stopping`,
    /// it starts no new cycle but finishes the one it is in (it may hold a
    /// lock, and under `--verify` a counter write must not be left half done).
    pub fn ready(&mut self, now: Instant, stopping: bool) -> Readiness {
        if self.done {
            return Readiness::Done;
        }
        if (stopping || self.out_of_cycles) && self.locks_next() {
            self.done = true;
            return Readiness::Done;
        }
        match self.sleeps_until {
            Some(until) if now < until => Readiness::SleepsUntil(until),
            _ => {
                self.sleeps_until = None;
                Readiness::Ready
            }
        }
    }

    /// Takes in the reply to `self.next`; `counting` tells whether it falls
    /// inside the measured window.
    pub fn on_reply(
        &mut self,
        outcome: Outcome,
        rules: &Rules,
        now: Instant,
        counting: bool,
        tally: &mut Tally,
    ) {
        let count = u64::from(counting);
        match (self.next, outcome) {
            (Op::Lock | Op::LockShared, Outcome::Locked(_) | Outcome::Answered) => {
                tally.lock_requests += count;
                tally.acquisitions += count;
                self.acquired += count;
                if let Some(occupancy) = &rules.occupancy {
                    let token = match outcome {
                        Outcome::Locked(token) => token,
                        _ => None,
                    };
                    occupancy.grant(self.resource, self.shared, token);
                    self.holds = true;
                }
                if rules.verify {
                    self.next = Op::Get;
                } else {
                    self.next = Op::Unlock;
                    self.hold(rules, now);
                }
            }
            (Op::Lock | Op::LockShared, Outcome::NotOwner) => {
                tally.lock_requests += count;
                tally.refusals += count;
                self.refused(rules, now);
            }
            (Op::Lock | Op::LockShared, _) => {
                tally.lock_requests += count;
                tally.errors += count;
                self.new_cycle(rules);
            }
            (Op::Get, Outcome::Value(v)) => {
                self.next = Op::Put(v.saturating_add(1));
                self.hold(rules, now);
            }
            (Op::Get, Outcome::NotFound) => {
                self.next = Op::Put(1);
                self.hold(rules, now);
            }
            (Op::Put(_), Outcome::Done) => {
                tally.increments[self.resource as usize] += 1;
                self.next = Op::Unlock;
            }
            (Op::Get | Op::Put(_), _) => {
                // The counter was not written, so nothing is owed to it.
                tally.errors += count;
                self.next = Op::Unlock;
            }
            (Op::Unlock, Outcome::Unlocked | Outcome::Answered) => self.new_cycle(rules),
            (Op::Unlock, Outcome::NotOwner) => {
                tally.lost_holds += 1;
                self.new_cycle(rules);
            }
            (Op::Unlock, _) => {
                tally.errors += count;
                self.new_cycle(rules);
            }
        }
    }

    /// Keeps the lock for `--hold-ms` before the next request: between the
    /// read and the write of the counter under `--verify`, so a hold that
    /// outlives its lock shows up as a lost update.
    fn hold(&mut self, rules: &Rules, now: Instant) {
        if !rules.hold.is_zero() {
            self.sleeps_until = Some(now + rules.hold);
        }
    }

    fn refused(&mut self, rules: &Rules, now: Instant) {
        let choice = match rules.on_refusal {
            OnRefusal::Any => [
                OnRefusal::GiveUp,
                OnRefusal::RetryLater,
                OnRefusal::RetryNow,
            ][self.rng.below(3) as usize],
            other => other,
        };
        match choice {
            OnRefusal::RetryLater => self.sleeps_until = Some(now + rules.retry_delay),
            OnRefusal::RetryNow => {}
            OnRefusal::GiveUp | OnRefusal::Any => self.new_cycle(rules),
        }
    }

    fn new_cycle(&mut self, rules: &Rules) {
        self.resource = self.rng.below(rules.resources);
        self.shared = match rules.sharing {
            Sharing::Exclusive => false,
            Sharing::Mixed => self.rng.below(100) < rules.shared_percent,
            Sharing::Semaphore => true,
        };
        self.next = if self.shared {
            Op::LockShared
        } else {
            Op::Lock
        };
        self.cycles += 1;
        self.out_of_cycles = rules.cycles.is_some_and(|bound| self.cycles > bound);
    }
}

/// Whether a fighter has a request to make now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    SleepsUntil(Instant),
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(verify: bool, on_refusal: OnRefusal) -> Rules {
        Rules {
            resources: 4,
            verify,
            on_refusal,
            retry_delay: Duration::from_millis(5),
            hold: Duration::ZERO,
            sharing: Sharing::Exclusive,
            shared_percent: 0,
            occupancy: None,
            cycles: None,
        }
    }

    fn fighter(r: &Rules) -> Fighter {
        Fighter::new(b"f".to_vec().into_boxed_slice(), Rng::new(1, 1), r)
    }

    #[test]
    fn plain_cycle_is_lock_then_unlock() {
        let r = rules(false, OnRefusal::GiveUp);
        let mut f = fighter(&r);
        let mut t = Tally::new(4);
        let now = Instant::now();
        assert_eq!(f.next, Op::Lock);
        f.on_reply(Outcome::Locked(Some(1)), &r, now, true, &mut t);
        assert_eq!(f.next, Op::Unlock);
        f.on_reply(Outcome::Unlocked, &r, now, true, &mut t);
        assert_eq!(f.next, Op::Lock);
        assert_eq!((t.lock_requests, t.acquisitions, t.errors), (1, 1, 0));
    }

    #[test]
    fn verified_cycle_increments_the_guarded_counter() {
        let r = rules(true, OnRefusal::GiveUp);
        let mut f = fighter(&r);
        let mut t = Tally::new(4);
        let now = Instant::now();
        let res = f.resource;
        f.on_reply(Outcome::Locked(Some(1)), &r, now, true, &mut t);
        assert_eq!(f.next, Op::Get);
        f.on_reply(Outcome::Value(41), &r, now, true, &mut t);
        assert_eq!(f.next, Op::Put(42));
        f.on_reply(Outcome::Done, &r, now, false, &mut t);
        assert_eq!(f.next, Op::Unlock);
        assert_eq!(t.increments[res as usize], 1);
        f.on_reply(Outcome::Locked(Some(1)), &r, now, true, &mut t);
        assert_eq!(
            f.next,
            Op::Lock,
            "an unexpected reply to Unlock ends the cycle"
        );
    }

    #[test]
    fn missing_counter_starts_at_one_and_failed_put_counts_nothing() {
        let r = rules(true, OnRefusal::GiveUp);
        let mut f = fighter(&r);
        let mut t = Tally::new(4);
        let now = Instant::now();
        f.on_reply(Outcome::Locked(Some(1)), &r, now, true, &mut t);
        f.on_reply(Outcome::NotFound, &r, now, true, &mut t);
        assert_eq!(f.next, Op::Put(1));
        f.on_reply(Outcome::Unexpected, &r, now, true, &mut t);
        assert_eq!(f.next, Op::Unlock);
        assert_eq!(t.increments.iter().sum::<u64>(), 0);
        assert_eq!(t.errors, 1);
    }

    #[test]
    fn refusal_policies() {
        let now = Instant::now();
        let mut t = Tally::new(4);

        let r = rules(false, OnRefusal::RetryNow);
        let mut f = fighter(&r);
        let res = f.resource;
        f.on_reply(Outcome::NotOwner, &r, now, true, &mut t);
        assert_eq!((f.next, f.resource, f.sleeps_until), (Op::Lock, res, None));

        let r = rules(false, OnRefusal::RetryLater);
        let mut f = fighter(&r);
        f.on_reply(Outcome::NotOwner, &r, now, true, &mut t);
        assert_eq!(
            f.ready(now, false),
            Readiness::SleepsUntil(now + r.retry_delay)
        );
        assert_eq!(f.ready(now + r.retry_delay, false), Readiness::Ready);
        assert_eq!(t.refusals, 2);
    }

    #[test]
    fn stopping_finishes_the_cycle_first() {
        let r = rules(true, OnRefusal::GiveUp);
        let mut f = fighter(&r);
        let mut t = Tally::new(4);
        let now = Instant::now();
        f.on_reply(Outcome::Locked(Some(1)), &r, now, true, &mut t);
        assert_eq!(f.ready(now, true), Readiness::Ready);
        f.on_reply(Outcome::NotFound, &r, now, false, &mut t);
        f.on_reply(Outcome::Done, &r, now, false, &mut t);
        assert_eq!(f.ready(now, true), Readiness::Ready);
        f.on_reply(Outcome::Unlocked, &r, now, false, &mut t);
        assert_eq!(f.ready(now, true), Readiness::Done);
        assert_eq!(t.requests, 0, "the engine counts requests, not the fighter");
    }

    #[test]
    fn holders_hold_before_unlock_or_between_read_and_write() {
        let now = Instant::now();
        let mut t = Tally::new(4);
        for verify in [false, true] {
            let mut r = rules(verify, OnRefusal::GiveUp);
            r.hold = Duration::from_millis(3);
            let mut f = fighter(&r);
            f.on_reply(Outcome::Locked(Some(1)), &r, now, true, &mut t);
            if verify {
                assert_eq!(f.ready(now, true), Readiness::Ready);
                f.on_reply(Outcome::Value(1), &r, now, true, &mut t);
                assert_eq!(f.next, Op::Put(2));
            } else {
                assert_eq!(f.next, Op::Unlock);
            }
            let held = Readiness::SleepsUntil(now + r.hold);
            assert_eq!(f.ready(now, true), held, "even when stopping");
            assert_eq!(f.ready(now + r.hold, true), Readiness::Ready);
        }
    }

    #[test]
    fn fairness_index() {
        let mut t = Tally::new(1);
        assert_eq!(t.fairness(), None);
        t.per_fighter = vec![5, 5, 5, 5];
        assert_eq!(t.fairness(), Some(1.0));
        t.per_fighter = vec![8, 0, 0, 0];
        assert_eq!(t.fairness(), Some(0.25));
    }

    #[test]
    fn shared_cycles_report_grants_and_leavings_once() {
        let occupancy = Arc::new(Occupancy::new(4, 2));
        let r = Rules {
            sharing: Sharing::Semaphore,
            occupancy: Some(Arc::clone(&occupancy)),
            cycles: Some(1),
            ..rules(false, OnRefusal::GiveUp)
        };
        let mut f = fighter(&r);
        let mut t = Tally::new(4);
        let now = Instant::now();
        assert_eq!((f.next, f.shared), (Op::LockShared, true));
        f.on_reply(Outcome::Locked(Some(5)), &r, now, true, &mut t);
        assert_eq!(f.next, Op::Unlock, "a share never writes the counter");
        // Sent, then sent again on a new connection: one leaving.
        f.sending(&r);
        f.sending(&r);
        let mut other = fighter(&r);
        other.resource = f.resource;
        other.on_reply(Outcome::Locked(Some(6)), &r, now, true, &mut t);
        let mut third = fighter(&r);
        third.resource = f.resource;
        third.on_reply(Outcome::Locked(Some(7)), &r, now, true, &mut t);
        // f left, so other and third are two shares of a limit of 2.
        let found = occupancy.findings();
        assert_eq!((found.grants, found.violations), (3, 0), "{found:?}");
        assert_eq!(found.most_shared, 2);
        f.on_reply(Outcome::Unlocked, &r, now, true, &mut t);
        assert_eq!(
            f.ready(now, false),
            Readiness::Done,
            "its one cycle is made"
        );
    }

    #[test]
    fn mixed_cycles_take_shares_in_their_share() {
        let r = Rules {
            sharing: Sharing::Mixed,
            shared_percent: 95,
            ..rules(false, OnRefusal::GiveUp)
        };
        let mut f = fighter(&r);
        let mut t = Tally::new(4);
        let now = Instant::now();
        let mut shares = 0;
        for _ in 0..1000 {
            shares += u32::from(f.next == Op::LockShared);
            f.on_reply(Outcome::Locked(None), &r, now, true, &mut t);
            f.on_reply(Outcome::Unlocked, &r, now, true, &mut t);
        }
        assert!((920..=980).contains(&shares), "{shares} of 1000");
    }

    #[test]
    fn lost_hold_is_counted() {
        let r = rules(false, OnRefusal::GiveUp);
        let mut f = fighter(&r);
        let mut t = Tally::new(4);
        let now = Instant::now();
        f.on_reply(Outcome::Locked(Some(1)), &r, now, true, &mut t);
        f.on_reply(Outcome::NotOwner, &r, now, false, &mut t);
        assert_eq!(t.lost_holds, 1);
    }
}
