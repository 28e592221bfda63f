//! `snapshot`: arbitrary bytes read as a store snapshot
//! ([`Store::read_snapshot`]).
//!
//! Input: the bytes, whole (the seeds are real snapshots, from [`seeds`]).
//! Checked: reading never panics (and is bounded: every count is checked
//! against the bytes left); bytes that read are a sound store
//! ([`Store::verify`]), written back byte for byte (the format has one
//! encoding of each state, so a corrupt byte either fails to read or is
//! another valid state), read again to the same store; and the restored
//! store goes on soundly: expiries up to the end of time and
//! `cancel_all_waits` keep it sound and leave no waiter.

use std::num::NonZeroU64;

use jackrabbit_dlm::protocol::request::NameTag;
use jackrabbit_dlm::protocol::{Action, FencingToken, Mode, Request};
use jackrabbit_dlm::store::{Origin, Outcome, Store, StoreConfig};
use jackrabbit_dlm::time::{Millis, Moment};

fn config() -> StoreConfig {
    StoreConfig {
        max_holders: 8,
        first_token: FencingToken::new(1_000),
        ..StoreConfig::unbounded()
    }
}

fn sound(store: &Store, what: &str) {
    if let Err(broken) = store.verify() {
        panic!("{what}: {broken}");
    }
}

pub fn check(data: &[u8]) {
    let Ok((mut store, taken_at)) = Store::read_snapshot(config(), data) else {
        return;
    };
    sound(&store, "restored");
    let mut again = Vec::new();
    store.write_snapshot(taken_at, &mut again);
    assert_eq!(
        again, data,
        "a snapshot that reads is written back byte for byte"
    );
    let (copy, at) = Store::read_snapshot(config(), &again).expect("its own snapshot reads");
    assert_eq!(at, taken_at);
    let mut third = Vec::new();
    copy.write_snapshot(at, &mut third);
    assert_eq!(third, again);
    assert_eq!(
        (copy.lock_count(), copy.data_count(), copy.waiter_count()),
        (store.lock_count(), store.data_count(), store.waiter_count())
    );
    assert_eq!(copy.bytes_held(), store.bytes_held());
    // It goes on: the waiters' and the entries' times run out (a granted
    // waiter may hold on to the end of time), then a leader change.
    for now in [
        taken_at.as_ms(),
        taken_at.as_ms().saturating_add(1_000),
        u64::MAX - 1,
        u64::MAX,
    ] {
        let now = Moment::from_ms(now.max(taken_at.as_ms()));
        while store.expire(now, usize::MAX) {}
        sound(&store, "after an expiry");
    }
    store.cancel_all_waits();
    sound(&store, "after cancel_all_waits");
    assert_eq!(store.waiter_count(), 0);
}

fn origin(n: u64) -> Origin {
    Origin(NonZeroU64::new(n).expect("non-zero"))
}

fn request<'a>(id: &'a str, name: &'a str, ms: u64) -> Request<'a> {
    Request::new(Action::Lock, id, name)
        .expect("a valid request")
        .with_expire(Millis::new(ms))
}

/// Real snapshots for the seed corpus (`fuzz/corpus/snapshot/seed-*`,
/// which `tests/fuzz_regressions.rs` keeps equal to these): an empty store,
/// a store with some of everything, and one taken after its entries' time
/// ran out but before anything removed them.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let snapshot = |store: &Store, at: u64| {
        let mut out = Vec::new();
        store.write_snapshot(Moment::from_ms(at), &mut out);
        out
    };
    let empty = Store::new(config(), Moment::from_ms(5));
    let mut s = Store::new(config(), Moment::START);
    let now = Moment::from_ms(10);
    let tag = NameTag(0x0123_4567_89ab_cdef);
    let apply = |s: &mut Store, r: Request<'_>, o: Option<u64>| match o {
        Some(o) => matches!(s.apply_from(now, &r, origin(o)), Outcome::Parked(_)),
        None => matches!(s.apply(now, &r), Outcome::Parked(_)),
    };
    apply(
        &mut s,
        request("holder", "jobs", 30_000).authenticated_as(tag),
        None,
    );
    let shared = |id| {
        request(id, "conf", 20_000)
            .with_mode(Mode::Shared)
            .with_limit(3)
    };
    apply(&mut s, shared("r1"), None);
    apply(&mut s, shared("r2"), None);
    let wait = |id, name| request(id, name, 5_000).with_wait(Millis::new(9_000));
    assert!(apply(&mut s, wait("w1", "jobs"), Some(1)));
    assert!(apply(
        &mut s,
        wait("w2", "jobs").with_mode(Mode::Shared).with_limit(2),
        Some(2)
    ));
    assert!(apply(&mut s, wait("w3", "jobs"), None));
    assert!(apply(&mut s, wait("x", "conf"), Some(3)));
    assert!(apply(
        &mut s,
        wait("r3", "conf").with_mode(Mode::Shared).with_limit(3),
        Some(4)
    ));
    let put = |id, name, value| {
        Request::new(Action::Put, id, name)
            .expect("a valid request")
            .with_expire(Millis::new(60_000))
            .with_data(value)
    };
    apply(&mut s, put("w1", "cfg", "aGVsbG8=\"\\é"), None);
    apply(&mut s, put("w2", "empty", "").authenticated_as(tag), None);
    // The exclusive waiter in front of a shared one withdrawn: a grant
    // awaits the next step.
    assert!(s.cancel_origin(origin(3)));
    let rich = snapshot(&s, 10);
    let late = snapshot(&s, 40_000);
    vec![
        ("empty", snapshot(&empty, 5)),
        ("rich", rich),
        ("late", late),
    ]
}
