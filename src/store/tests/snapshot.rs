//! Snapshots: each kind of entry round trip, the errors, corruption, and a
//! proptest that a store restored from a snapshot (and the compacted store
//! it was taken from) go on exactly alike.

use super::*;
use crate::protocol::request::NameTag;
use crate::store::snapshot::{MAGIC, VERSION};
use proptest::prelude::*;
use std::num::NonZeroU64;

fn config() -> StoreConfig {
    StoreConfig {
        max_holders: 3,
        first_token: FencingToken::new(FIRST_TOKEN),
        compact_after: 64,
        max_waiters_per_lock: 4,
        max_waiters_total: 12,
        ..StoreConfig::unbounded()
    }
}

fn origin(n: u64) -> Origin {
    Origin(NonZeroU64::new(n).expect("non-zero"))
}

fn snapshot(s: &Store, now: u64) -> Vec<u8> {
    let mut out = Vec::new();
    s.write_snapshot(t(now), &mut out);
    out
}

/// `s` written at `now` and read back, checked.
fn round_trip(s: &Store, now: u64) -> Store {
    let bytes = snapshot(s, now);
    let (restored, taken_at) = Store::read_snapshot(s.config().clone(), &bytes).expect("restores");
    assert_eq!(taken_at, t(now));
    restored
        .verify()
        .expect("a restored store keeps the invariants");
    assert_eq!(snapshot(&restored, now), bytes, "the same bytes again");
    assert_eq!(restored.bytes_held(), s.bytes_held());
    assert_eq!(restored.next_token(), s.next_token());
    assert_eq!(restored.counters.a_lock, s.lock_count() as u64);
    assert_eq!(restored.counters.a_data, s.data_count() as u64);
    restored
}

fn outcome(s: &mut Store, now: u64, r: &Request<'_>) -> String {
    match s.apply(t(now), r) {
        Outcome::Reply(reply) => json(reply),
        Outcome::Parked(_) => "parked".into(),
    }
}

fn done(s: &mut Store) -> Vec<(Option<Origin>, Option<FencingToken>, Mode)> {
    let mut out = Vec::new();
    s.take_completions(&mut out);
    out.iter().map(|c| (c.origin, c.granted, c.mode)).collect()
}

#[test]
fn an_empty_store_is_a_header() {
    let s = Store::new(config(), t(5));
    let bytes = snapshot(&s, 5);
    let mut want = MAGIC.to_vec();
    want.extend_from_slice(&VERSION.to_le_bytes());
    want.extend_from_slice(&5u64.to_le_bytes());
    want.extend_from_slice(&FIRST_TOKEN.to_le_bytes());
    want.extend_from_slice(&[0; 8]);
    assert_eq!(bytes, want);
    let restored = round_trip(&s, 5);
    assert_eq!((restored.lock_count(), restored.data_count()), (0, 0));
}

#[test]
fn an_exclusive_hold_keeps_owner_tag_deadline_and_token() {
    let mut s = Store::new(config(), t(0));
    let tag = NameTag(0xfeed);
    run(
        &mut s,
        0,
        req(Action::Lock, "w1", "jobs").authenticated_as(tag),
    );
    run(&mut s, 0, req(Action::Lock, "w2", "other"));
    let mut b = round_trip(&s, 10);
    let token = format!(r#"{{"Status":"Locked","ID":"w1","Token":{FIRST_TOKEN}}}"#);
    assert_eq!(
        outcome(&mut b, 10, &req(Action::Lock, "w1", "jobs")),
        r#"{"Status":"NotOwner"}"#,
        "the Name tag came along"
    );
    assert_eq!(
        outcome(
            &mut b,
            10,
            &req(Action::Lock, "w1", "jobs").authenticated_as(tag)
        ),
        token
    );
    // `other` ends at 1000 as before; `jobs` was just renewed until 1010.
    for (now, left) in [(999, 2), (1000, 1), (1009, 1), (1010, 0)] {
        b.expire(t(now), usize::MAX);
        assert_eq!((b.lock_count(), b.counters.a_lock), (left, left as u64));
    }
}

#[test]
fn a_shared_lock_keeps_its_limit_and_every_share() {
    let mut s = Store::new(config(), t(0));
    let shared = |id| {
        req(Action::Lock, id, "conf")
            .with_mode(Mode::Shared)
            .with_limit(2)
    };
    run(&mut s, 0, shared("r1"));
    run(&mut s, 5, shared("r2").with_expire(Millis::new(50)));
    let mut b = round_trip(&s, 10);
    assert_eq!(
        outcome(&mut b, 10, &req(Action::TestLock, "r1", "conf")),
        r#"{"Status":"Locked","ID":"r1","Mode":"Shared","Holders":2}"#
    );
    assert_eq!(
        outcome(&mut b, 10, &shared("r3")),
        r#"{"Status":"NotOwner"}"#,
        "full at its limit"
    );
    assert_eq!(
        outcome(&mut b, 10, &shared("r2")),
        format!(
            r#"{{"Status":"Locked","ID":"r2","Token":{},"Mode":"Shared"}}"#,
            FIRST_TOKEN + 1
        )
    );
    b.expire(t(60), usize::MAX);
    assert_eq!(b.share_count(), 2, "r2 renewed until 1010");
    b.expire(t(1000), usize::MAX);
    assert_eq!(b.share_count(), 1);
    b.verify().unwrap();
}

#[test]
fn waiters_keep_their_order_mode_wait_and_origin() {
    let mut s = Store::new(config(), t(0));
    run(&mut s, 0, req(Action::Lock, "h", "jobs"));
    let wait = |id, ms| req(Action::Lock, id, "jobs").with_wait(Millis::new(ms));
    assert!(matches!(
        s.apply_from(t(1), &wait("a", 300), origin(1)),
        Outcome::Parked(_)
    ));
    assert!(matches!(
        s.apply_from(t(2), &wait("b", 900).with_mode(Mode::Shared), origin(2)),
        Outcome::Parked(_)
    ));
    assert!(matches!(
        s.apply(t(3), &wait("c", 900).with_mode(Mode::Shared)),
        Outcome::Parked(_)
    ));
    let mut b = round_trip(&s, 10);
    assert_eq!(b.waiter_count(), 3);
    b.expire(t(301), usize::MAX);
    assert_eq!(done(&mut b), [(Some(origin(1)), None, Mode::Exclusive)]);
    assert_eq!(
        outcome(&mut b, 400, &req(Action::Unlock, "h", "jobs")),
        r#"{"Status":"Unlocked","ID":"h"}"#
    );
    let next = FIRST_TOKEN + 1;
    assert_eq!(
        done(&mut b),
        [
            (Some(origin(2)), Some(tok(next)), Mode::Shared),
            (None, Some(tok(next + 1)), Mode::Shared)
        ]
    );
    assert!(!b.cancel_origin(origin(2)));
    b.verify().unwrap();
}

#[test]
fn a_restored_waiter_is_withdrawn_by_its_origin() {
    let mut s = Store::new(config(), t(0));
    run(&mut s, 0, req(Action::Lock, "h", "jobs"));
    let wait = req(Action::Lock, "a", "jobs").with_wait(Millis::new(300));
    assert!(matches!(
        s.apply_from(t(1), &wait, origin(9)),
        Outcome::Parked(_)
    ));
    let mut b = round_trip(&s, 1);
    assert!(b.cancel_origin(origin(9)));
    assert_eq!(b.waiter_count(), 0);
    b.verify().unwrap();
}

#[test]
fn a_grant_awaited_after_a_withdrawal_survives_the_snapshot() {
    let mut s = Store::new(config(), t(0));
    run(
        &mut s,
        0,
        req(Action::Lock, "r1", "conf")
            .with_mode(Mode::Shared)
            .with_limit(2),
    );
    let w = req(Action::Lock, "w", "conf").with_wait(Millis::new(500));
    let r2 = req(Action::Lock, "r2", "conf")
        .with_wait(Millis::new(500))
        .with_mode(Mode::Shared)
        .with_limit(2);
    assert!(matches!(
        s.apply_from(t(1), &w, origin(1)),
        Outcome::Parked(_)
    ));
    assert!(matches!(
        s.apply_from(t(1), &r2, origin(2)),
        Outcome::Parked(_)
    ));
    assert!(s.cancel_origin(origin(1)));
    let mut b = round_trip(&s, 2);
    // The next step grants r2 in both.
    let other = req(Action::TestLock, "x", "elsewhere");
    for store in [&mut s, &mut b] {
        outcome(store, 3, &other);
        assert_eq!(
            done(store),
            [(Some(origin(2)), Some(tok(FIRST_TOKEN + 1)), Mode::Shared)]
        );
    }
}

#[test]
fn a_data_item_keeps_its_value_byte_for_byte() {
    let mut s = Store::new(config(), t(0));
    let value = "\"quoted\\\" é 🔒 \u{0} tail";
    run(&mut s, 0, put("w1", "cfg", value, 500));
    run(&mut s, 0, put("w1", "empty", "", 500));
    let mut b = round_trip(&s, 0);
    let mut out = Vec::new();
    match b.apply(t(1), &req(Action::Get, "w1", "cfg")) {
        Outcome::Reply(Reply::Value { data, .. }) => out.extend_from_slice(data.as_bytes()),
        other => panic!("{other:?}"),
    }
    assert_eq!(out, value.as_bytes());
    b.expire(t(500), usize::MAX);
    assert_eq!(b.data_count(), 0);
}

#[test]
fn entries_past_their_time_are_kept_as_state() {
    let mut s = Store::new(config(), t(0));
    run(
        &mut s,
        0,
        req(Action::Lock, "h", "jobs").with_expire(Millis::new(10)),
    );
    let wait = req(Action::Lock, "a", "jobs").with_wait(Millis::new(300));
    assert!(matches!(
        s.apply_from(t(1), &wait, origin(1)),
        Outcome::Parked(_)
    ));
    // Taken at 50: the hold ended at 10 but nothing has looked.
    let mut b = round_trip(&s, 50);
    assert_eq!(b.lock_count(), 1);
    b.expire(t(50), usize::MAX);
    assert_eq!(
        done(&mut b),
        [(Some(origin(1)), Some(tok(FIRST_TOKEN + 1)), Mode::Exclusive)]
    );
}

#[test]
fn a_snapshot_over_the_memory_cap_restores_and_refuses_new_entries() {
    let mut s = Store::new(config(), t(0));
    run(&mut s, 0, req(Action::Lock, "w1", "jobs"));
    run(&mut s, 0, put("w1", "cfg", "value", 1000));
    let bytes = snapshot(&s, 0);
    let small = StoreConfig {
        max_bytes: s.bytes_held() - 1,
        ..config()
    };
    let (mut b, _) = Store::read_snapshot(small, &bytes).expect("acknowledged state restores");
    assert_eq!(b.bytes_held(), s.bytes_held());
    b.verify().unwrap();
    assert_eq!(
        outcome(&mut b, 1, &req(Action::Lock, "w1", "new")),
        r#"{"Status":"NO"}"#
    );
    assert_eq!(
        outcome(&mut b, 1, &req(Action::Unlock, "w1", "jobs")),
        r#"{"Status":"Unlocked","ID":"w1"}"#
    );
    assert!(outcome(&mut b, 1, &req(Action::Lock, "w1", "new")).contains("Locked"));
}

/// A store with some of everything.
fn rich() -> Store {
    let mut s = Store::new(config(), t(0));
    let tag = NameTag(77);
    run(
        &mut s,
        0,
        req(Action::Lock, "h", "jobs").authenticated_as(tag),
    );
    run(
        &mut s,
        0,
        req(Action::Lock, "r1", "conf")
            .with_mode(Mode::Shared)
            .with_limit(3),
    );
    run(
        &mut s,
        0,
        req(Action::Lock, "r2", "conf")
            .with_mode(Mode::Shared)
            .with_limit(3),
    );
    let wait = |id| req(Action::Lock, id, "jobs").with_wait(Millis::new(300));
    assert!(matches!(
        s.apply_from(t(1), &wait("a"), origin(1)),
        Outcome::Parked(_)
    ));
    assert!(matches!(
        s.apply_from(
            t(1),
            &wait("b").with_mode(Mode::Shared).with_limit(2),
            origin(2)
        ),
        Outcome::Parked(_)
    ));
    assert!(matches!(s.apply(t(1), &wait("c")), Outcome::Parked(_)));
    let exclusive = req(Action::Lock, "x", "conf").with_wait(Millis::new(300));
    assert!(matches!(
        s.apply_from(t(1), &exclusive, origin(3)),
        Outcome::Parked(_)
    ));
    run(
        &mut s,
        0,
        put("w1", "cfg", "value", 1000).authenticated_as(tag),
    );
    run(&mut s, 0, put("w2", "zz", "", 1000));
    s
}

#[test]
fn errors_say_what_and_where() {
    let bytes = snapshot(&rich(), 5);
    let read = |b: &[u8]| {
        Store::read_snapshot(config(), b)
            .err()
            .map(|e| (e.kind(), e.offset()))
    };
    assert_eq!(
        read(b"JRDLMSNQ"),
        Some((SnapshotErrorKind::NotASnapshot, 0))
    );
    assert_eq!(read(b""), Some((SnapshotErrorKind::NotASnapshot, 0)));
    let mut v2 = bytes.clone();
    v2[8] = 2;
    assert_eq!(read(&v2), Some((SnapshotErrorKind::UnknownVersion(2), 8)));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        read(&longer),
        Some((SnapshotErrorKind::TrailingBytes, bytes.len()))
    );
    assert_eq!(
        read(&bytes[..bytes.len() - 1]).map(|e| e.0),
        Some(SnapshotErrorKind::Truncated)
    );
    // A limit above this node's `max_holders`.
    let few = StoreConfig {
        max_holders: 2,
        ..config()
    };
    let err = Store::read_snapshot(few, &bytes).err().expect("refused");
    assert_eq!(
        err.kind(),
        SnapshotErrorKind::Invalid("a limit out of range")
    );
    assert!(err.to_string().contains("limit out of range"), "{err}");
    // A count far larger than the bytes left is refused before any work.
    let mut huge = bytes[..26].to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(read(&huge), Some((SnapshotErrorKind::Truncated, 26)));
}

/// A snapshot with locks `names` (exclusive, owner "o", no waiters).
fn by_hand(names: &[&[u8]]) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&100u64.to_le_bytes());
    b.extend_from_slice(&u32::try_from(names.len()).unwrap().to_le_bytes());
    for name in names {
        b.extend_from_slice(&u32::try_from(name.len()).unwrap().to_le_bytes());
        b.extend_from_slice(name);
        b.push(0);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(b'o');
        b.push(0);
        b.extend_from_slice(&10u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    b
}

#[test]
fn names_must_be_valid_unique_and_in_order() {
    let kind = |b: Vec<u8>| Store::read_snapshot(config(), &b).err().map(|e| e.kind());
    assert_eq!(kind(by_hand(&[b"a", b"b"])), None);
    assert_eq!(kind(by_hand(&[b""])), None, "an empty name is a name");
    let invalid = SnapshotErrorKind::Invalid;
    assert_eq!(
        kind(by_hand(&[b"a", b"a"])),
        Some(invalid("lock names out of order, or repeated"))
    );
    assert_eq!(
        kind(by_hand(&[b"b", b"a"])),
        Some(invalid("lock names out of order, or repeated"))
    );
    assert_eq!(
        kind(by_hand(&[b"\xff"])),
        Some(invalid("a string not UTF-8"))
    );
    let long = vec![b'n'; 4097];
    assert_eq!(
        kind(by_hand(&[&long])),
        Some(invalid("a name or ID longer than a request may send"))
    );
    assert_eq!(kind(by_hand(&[&long[..4096]])), None);
}

#[test]
fn any_single_corrupt_byte_or_truncation_is_an_error_or_a_sound_store() {
    let bytes = snapshot(&rich(), 5);
    let mut restored = 0;
    let mut check = |b: &[u8]| {
        if let Ok((s, _)) = Store::read_snapshot(config(), b) {
            s.verify().expect("a store that restores is sound");
            assert_eq!(snapshot(&s, 5).len(), b.len());
            restored += 1;
        }
    };
    for len in 0..bytes.len() {
        check(&bytes[..len]);
    }
    for at in 0..bytes.len() {
        for value in [
            0,
            1,
            2,
            0x7f,
            0x80,
            0xff,
            bytes[at] ^ 1,
            bytes[at].wrapping_add(1),
        ] {
            let mut b = bytes.clone();
            b[at] = value;
            check(&b);
        }
    }
    assert!(
        restored > 0,
        "some corruptions are still snapshots (a deadline, a token)"
    );
}

// The proptest: random operations on store `a`; at a random step `a` is
// snapshotted into `b` and compacted; from then on every operation runs on
// both and they must agree on everything.

/// A request's ID and name: indexes into `IDS` and `LOCKS` (or `ITEMS`).
#[derive(Debug, Clone, Copy)]
struct Who(u8, u8);

impl Who {
    fn id(self) -> &'static str {
        IDS[usize::from(self.0)]
    }
    fn lock(self) -> &'static str {
        LOCKS[usize::from(self.1)]
    }
    fn item(self) -> &'static str {
        ITEMS[usize::from(self.1) % ITEMS.len()]
    }
}

/// How a `Lock` asks.
#[derive(Debug, Clone, Copy)]
struct Ask {
    shared: bool,
    limit: u8,
    tagged: bool,
    expire_ms: u64,
    wait_ms: u64,
    /// Through `apply_from`, with an origin.
    replicated: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Lock(Who, Ask),
    /// With a Name tag or not.
    Unlock(Who, bool),
    TestLock(Who),
    Put(Who, u8, u64),
    Get(Who),
    Erase(Who),
    Advance(u64),
    Expire(u64),
    Cancel(u64),
    CancelAll,
    Floor(u64),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    let who = || (0u8..4, 0u8..3).prop_map(|(id, name)| Who(id, name));
    let ask = (
        any::<bool>(),
        0u8..4,
        prop::bool::weighted(0.2),
        1u64..400,
        prop_oneof![Just(0u64), 1u64..600],
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(shared, limit, tagged, expire_ms, wait_ms, replicated)| Ask {
                shared,
                limit,
                tagged,
                expire_ms,
                wait_ms,
                replicated,
            },
        );
    prop_oneof![
        8 => (who(), ask).prop_map(|(who, ask)| Op::Lock(who, ask)),
        3 => (who(), prop::bool::weighted(0.2)).prop_map(|(who, tagged)| Op::Unlock(who, tagged)),
        1 => who().prop_map(Op::TestLock),
        2 => (who(), 0u8..4, 0u64..400).prop_map(|(who, value, ms)| Op::Put(who, value, ms)),
        1 => who().prop_map(Op::Get),
        1 => who().prop_map(Op::Erase),
        2 => prop_oneof![0u64..300, 0u64..100_000].prop_map(Op::Advance),
        2 => (0u64..300).prop_map(Op::Expire),
        2 => (1u64..40).prop_map(Op::Cancel),
        1 => Just(Op::CancelAll),
        1 => (0u64..5).prop_map(Op::Floor),
        1 => Just(Op::Compact),
    ]
}

const IDS: [&str; 4] = ["a", "b", "c", ""];
const LOCKS: [&str; 3] = ["x", "y", "z"];
const ITEMS: [&str; 2] = ["p", "q"];
const VALUES: [&str; 4] = ["", "v", "é\"\\", "long value long value long value"];

/// What one store made of an operation: the reply's JSON (or "parked"),
/// then the completions since the last step.
type Seen = (
    Option<String>,
    Vec<(Option<Origin>, Option<FencingToken>, Mode)>,
);

fn step(s: &mut Store, now: &mut u64, op: &Op, next_origin: u64) -> Seen {
    let tag = |tagged: bool| if tagged { Some(NameTag(5)) } else { None };
    let with_tag = |r: Request<'static>, tagged| match tag(tagged) {
        Some(t) => r.authenticated_as(t),
        None => r,
    };
    let answer = |s: &mut Store, r: Request<'static>, replicated: bool| {
        let outcome = if replicated {
            s.apply_from(t(*now), &r, origin(next_origin))
        } else {
            s.apply(t(*now), &r)
        };
        Some(match outcome {
            Outcome::Reply(reply) => json(reply),
            Outcome::Parked(_) => "parked".to_string(),
        })
    };
    let reply = match *op {
        Op::Lock(who, ask) => {
            let mode = if ask.shared {
                Mode::Shared
            } else {
                Mode::Exclusive
            };
            let r = req(Action::Lock, who.id(), who.lock())
                .with_expire(Millis::new(ask.expire_ms))
                .with_wait(Millis::new(ask.wait_ms))
                .with_mode(mode)
                .with_limit(if ask.shared { u32::from(ask.limit) } else { 0 });
            answer(s, with_tag(r, ask.tagged), ask.replicated)
        }
        Op::Unlock(who, tagged) => {
            let r = req(Action::Unlock, who.id(), who.lock());
            answer(s, with_tag(r, tagged), true)
        }
        Op::TestLock(who) => answer(s, req(Action::TestLock, who.id(), who.lock()), false),
        Op::Put(who, value, ms) => answer(
            s,
            put(who.id(), who.item(), VALUES[usize::from(value)], ms),
            true,
        ),
        Op::Get(who) => answer(s, req(Action::Get, who.id(), who.item()), true),
        Op::Erase(who) => answer(s, req(Action::Erase, who.id(), who.item()), false),
        Op::Advance(dt) => {
            *now += dt;
            None
        }
        Op::Expire(dt) => {
            *now += dt;
            s.expire(t(*now), usize::MAX);
            None
        }
        // One of the recent requests' origins.
        Op::Cancel(back) => {
            let o = next_origin.saturating_sub(back).max(1);
            Some(s.cancel_origin(origin(o)).to_string())
        }
        Op::CancelAll => {
            s.cancel_all_waits();
            None
        }
        Op::Floor(k) => {
            s.raise_token_floor(FencingToken::new(s.next_token().get() + k));
            None
        }
        Op::Compact => {
            if !s.maybe_compact() {
                s.compact();
            }
            None
        }
    };
    (reply, done(s))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn a_restored_store_goes_on_exactly_as_the_original(
        before in prop::collection::vec(op(), 0..80),
        after in prop::collection::vec(op(), 1..80),
    ) {
        let mut a = Store::new(config(), Moment::START);
        let mut now = 0;
        let mut origins = 1;
        for op in &before {
            step(&mut a, &mut now, op, origins);
            origins += 1;
            a.verify().map_err(TestCaseError::fail)?;
        }
        let bytes = snapshot(&a, now);
        let (mut b, at) = Store::read_snapshot(config(), &bytes)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(at, t(now));
        b.verify().map_err(TestCaseError::fail)?;
        prop_assert_eq!(snapshot(&b, now), bytes.clone());
        // Its keys and wheel lists move; `b`'s were made afresh.
        a.compact();
        let mut now_b = now;
        for op in &after {
            let seen_a = step(&mut a, &mut now, op, origins);
            // `b` compacts on its own schedule: layouts must not matter.
            let op_b = if matches!(op, Op::Compact) { Op::Advance(0) } else { op.clone() };
            let seen_b = step(&mut b, &mut now_b, &op_b, origins);
            origins += 1;
            prop_assert_eq!(&seen_a, &seen_b, "after {:?}", op);
            a.verify().map_err(TestCaseError::fail)?;
            b.verify().map_err(TestCaseError::fail)?;
            prop_assert_eq!(snapshot(&a, now), snapshot(&b, now_b));
            prop_assert_eq!(a.bytes_held(), b.bytes_held());
            prop_assert_eq!((a.lock_count(), a.data_count()), (b.lock_count(), b.data_count()));
        }
    }
}

/// Shared locks settled in one expiry hand out tokens in the order of
/// their names, in the store that made them (whose keys run the other way)
/// and in its restored copy (whose keys follow the names).
#[test]
fn locks_settled_together_grant_in_name_order_whatever_their_keys() {
    let mut a = Store::new(config(), t(0));
    for name in ["l2", "l1"] {
        let share = req(Action::Lock, "r", name)
            .with_expire(Millis::new(100))
            .with_mode(Mode::Shared)
            .with_limit(1);
        run(&mut a, 0, share);
    }
    for (o, name) in [(2, "l2"), (1, "l1")] {
        let wait = req(Action::Lock, "w", name)
            .with_wait(Millis::new(500))
            .with_mode(Mode::Shared)
            .with_limit(1);
        assert!(matches!(
            a.apply_from(t(1), &wait, origin(o)),
            Outcome::Parked(_)
        ));
    }
    let mut b = round_trip(&a, 1);
    let next = a.next_token().get();
    for s in [&mut a, &mut b] {
        s.expire(t(100), usize::MAX);
        assert_eq!(
            done(s),
            [
                (Some(origin(1)), Some(tok(next)), Mode::Shared),
                (Some(origin(2)), Some(tok(next + 1)), Mode::Shared)
            ]
        );
    }
    assert_eq!(snapshot(&a, 100), snapshot(&b, 100));
}
