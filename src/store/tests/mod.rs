//! Store tests: the semantics table's rows as the store sees them (the
//! golden scripts in `tests/scripts/` cover every row byte for byte through
//! the session), the memory guard, compaction; then property tests against
//! naive models (`model.rs`, `waiting.rs`).

use super::*;
use crate::protocol::{Action, Mode, Status};
use crate::time::Millis;
use std::collections::HashMap;

mod model;
mod origins;
mod shared;
mod snapshot;
mod waiting;

const FIRST_TOKEN: u64 = 1_000;

fn store_with_cap(max_bytes: u64) -> Store {
    Store::new(
        StoreConfig {
            max_bytes,
            compact_after: 4096,
            first_token: FencingToken::new(FIRST_TOKEN),
            ..StoreConfig::unbounded()
        },
        Moment::START,
    )
}

fn store() -> Store {
    store_with_cap(u64::MAX)
}

/// Token number `n`.
fn tok(n: u64) -> FencingToken {
    FencingToken::new(n)
}

/// The time `ms` milliseconds after the store's start.
fn t(ms: u64) -> Moment {
    Moment::from_ms(ms)
}

fn req<'a>(action: Action, id: &'a str, name: &'a str) -> Request<'a> {
    Request::new(action, id, name)
        .expect("a valid request")
        .with_expire(Millis::new(1000))
}

fn put<'a>(id: &'a str, name: &'a str, data: &'a str, expire_ms: u64) -> Request<'a> {
    Request::new(Action::Put, id, name)
        .expect("a valid request")
        .with_expire(Millis::new(expire_ms))
        .with_data(data)
}

/// The reply to a request that is answered at once.
fn reply<'a>(store: &'a mut Store, now: u64, request: &Request<'a>) -> Reply<'a> {
    match store.apply(t(now), request) {
        Outcome::Reply(reply) => reply,
        Outcome::Parked(_) => panic!("parked, not answered"),
    }
}

impl Store {
    /// `apply` at `now` ms, for tests.
    fn apply_at<'a>(&'a mut self, now: u64, request: &Request<'a>) -> Outcome<'a> {
        self.apply(t(now), request)
    }
}

fn json(reply: Reply<'_>) -> String {
    let mut out = Vec::new();
    reply.write_json(&mut out);
    String::from_utf8(out).unwrap()
}

fn run(store: &mut Store, now: u64, request: Request<'_>) -> String {
    json(reply(store, now, &request))
}

#[test]
fn lock_absent_gives_a_new_hold_and_token() {
    let mut s = store();
    assert_eq!(
        run(&mut s, 0, req(Action::Lock, "w1", "jobs")),
        r#"{"Status":"Locked","ID":"w1","Token":1000}"#
    );
    assert_eq!((s.counters.lock, s.counters.a_lock), (1, 1));
}

#[test]
fn lock_expired_is_like_absent() {
    let mut s = store();
    run(&mut s, 0, req(Action::Lock, "w1", "jobs"));
    assert_eq!(
        run(&mut s, 1000, req(Action::Lock, "w2", "jobs")),
        r#"{"Status":"Locked","ID":"w2","Token":1001}"#
    );
    assert_eq!(s.counters.expired_lock, 1);
}

#[test]
fn lock_by_same_id_resets_ttl_and_keeps_token() {
    let mut s = store();
    run(&mut s, 0, req(Action::Lock, "w1", "jobs"));
    assert_eq!(
        run(&mut s, 900, req(Action::Lock, "w1", "jobs")),
        r#"{"Status":"Locked","ID":"w1","Token":1000}"#
    );
    // The TTL now runs from 900: still held at 1899, gone at 1900.
    assert!(!s.expire(t(1899), usize::MAX));
    assert_eq!(s.lock_count(), 1);
    s.expire(t(1900), usize::MAX);
    assert_eq!(s.lock_count(), 0);
    assert_eq!(s.counters.relock, 1);
}

#[test]
fn lock_held_by_another_is_not_owner() {
    let mut s = store();
    run(&mut s, 0, req(Action::Lock, "w1", "jobs"));
    assert_eq!(
        run(&mut s, 1, req(Action::Lock, "w2", "jobs")),
        r#"{"Status":"NotOwner"}"#
    );
}

#[test]
fn unlock_rows() {
    let mut s = store();
    assert_eq!(
        run(&mut s, 0, req(Action::Unlock, "w1", "j")),
        r#"{"Status":"Unlocked"}"#
    );
    run(&mut s, 0, req(Action::Lock, "w1", "j"));
    assert_eq!(
        run(&mut s, 0, req(Action::Unlock, "w2", "j")),
        r#"{"Status":"NotOwner"}"#
    );
    assert_eq!(
        run(&mut s, 0, req(Action::Unlock, "w1", "j")),
        r#"{"Status":"Unlocked","ID":"w1"}"#
    );
    assert_eq!(s.lock_count(), 0);
    assert_eq!((s.counters.unlock, s.counters.unlock_nf), (1, 1));
}

#[test]
fn entries_in_recycled_buffers_show_only_their_own_strings() {
    let mut s = store();
    // 4 + 9 + 15 = 28 bytes and 5 + 9 + 17 = 31 bytes: one size class, so
    // the second item gets the first one's buffer.
    run(&mut s, 0, put("owner-one", "item", "secret-value-xx", 1000));
    run(&mut s, 0, req(Action::Erase, "owner-one", "item"));
    run(
        &mut s,
        0,
        put("owner-two", "item2", "short-value-of-17", 1000),
    );
    assert_eq!(
        run(&mut s, 0, req(Action::Get, "owner-two", "item2")),
        r#"{"Status":"Done","ID":"owner-two","DataStore":"short-value-of-17"}"#
    );
    assert_eq!(
        run(&mut s, 0, req(Action::Get, "owner-one", "item2")),
        r#"{"Status":"NotOwner"}"#
    );
    assert_eq!(s.bytes_held(), ENTRY_OVERHEAD + 31);
    // Holds: the new holder's buffer was the old holder's.
    run(&mut s, 0, req(Action::Lock, "owner-one-long", "lock-a"));
    run(&mut s, 0, req(Action::Unlock, "owner-one-long", "lock-a"));
    run(&mut s, 0, req(Action::Lock, "me", "lock-b"));
    assert_eq!(
        run(&mut s, 0, req(Action::TestLock, "owner-one-long", "lock-b")),
        r#"{"Status":"NotOwner"}"#
    );
    assert_eq!(
        run(&mut s, 0, req(Action::TestLock, "me", "lock-b")),
        r#"{"Status":"Locked","ID":"me"}"#
    );
    assert_eq!(s.bytes_held(), 2 * ENTRY_OVERHEAD + 31 + 8);
}

#[test]
fn test_lock_rows() {
    let mut s = store();
    assert_eq!(
        run(&mut s, 0, req(Action::TestLock, "w1", "j")),
        r#"{"Status":"Unlocked"}"#
    );
    run(&mut s, 0, req(Action::Lock, "w1", "j"));
    assert_eq!(
        run(&mut s, 0, req(Action::TestLock, "w1", "j")),
        r#"{"Status":"Locked","ID":"w1"}"#
    );
    assert_eq!(
        run(&mut s, 0, req(Action::TestLock, "w2", "j")),
        r#"{"Status":"NotOwner"}"#
    );
    assert_eq!(
        run(&mut s, 1000, req(Action::TestLock, "w1", "j")),
        r#"{"Status":"Unlocked"}"#
    );
}

#[test]
fn put_get_erase_rows() {
    let mut s = store();
    assert_eq!(
        run(&mut s, 0, req(Action::Get, "a", "x")),
        r#"{"Status":"NotFound"}"#
    );
    assert_eq!(
        run(&mut s, 0, req(Action::Erase, "a", "x")),
        r#"{"Status":"NotFound"}"#
    );
    assert_eq!(
        run(&mut s, 0, put("a", "x", "v1", 500)),
        r#"{"Status":"Done","ID":"a"}"#
    );
    assert_eq!(
        run(&mut s, 0, put("b", "x", "v2", 500)),
        r#"{"Status":"NotOwner"}"#
    );
    assert_eq!(
        run(&mut s, 1, req(Action::Get, "a", "x")),
        r#"{"Status":"Done","ID":"a","DataStore":"v1"}"#
    );
    assert_eq!(
        run(&mut s, 1, req(Action::Get, "b", "x")),
        r#"{"Status":"NotOwner"}"#
    );
    assert_eq!(
        run(&mut s, 400, put("a", "x", "longer", 500)),
        r#"{"Status":"Done","ID":"a"}"#
    );
    assert_eq!(
        run(&mut s, 899, req(Action::Get, "a", "x")),
        r#"{"Status":"Done","ID":"a","DataStore":"longer"}"#
    );
    assert_eq!(
        run(&mut s, 899, req(Action::Erase, "b", "x")),
        r#"{"Status":"NotOwner"}"#
    );
    assert_eq!(
        run(&mut s, 899, req(Action::Erase, "a", "x")),
        r#"{"Status":"Done","ID":"a"}"#
    );
    assert_eq!(
        run(&mut s, 899, req(Action::Get, "a", "x")),
        r#"{"Status":"NotFound"}"#
    );
    let c = &s.counters;
    assert_eq!(
        (
            c.put_new,
            c.put_update,
            c.get,
            c.get_nf,
            c.erased,
            c.erase_nf
        ),
        (1, 1, 2, 2, 1, 1)
    );
    assert_eq!((c.data_in, c.data_out), (8, 8));
}

#[test]
fn locks_and_data_are_separate_namespaces() {
    let mut s = store();
    run(&mut s, 0, req(Action::Lock, "a", "x"));
    assert_eq!(
        run(&mut s, 0, req(Action::Get, "a", "x")),
        r#"{"Status":"NotFound"}"#
    );
    assert_eq!(
        run(&mut s, 0, put("b", "x", "v", 10)),
        r#"{"Status":"Done","ID":"b"}"#
    );
    assert_eq!(
        run(&mut s, 0, req(Action::TestLock, "a", "x")),
        r#"{"Status":"Locked","ID":"a"}"#
    );
}

#[test]
fn expiry_frees_without_access() {
    let mut s = store();
    run(&mut s, 0, req(Action::Lock, "a", "x"));
    run(&mut s, 0, put("a", "y", "v", 2000));
    s.expire(t(999), usize::MAX);
    assert_eq!((s.counters.a_lock, s.counters.a_data), (1, 1));
    s.expire(t(1000), usize::MAX);
    assert_eq!((s.counters.a_lock, s.counters.a_data), (0, 1));
    s.expire(t(2000), usize::MAX);
    assert_eq!((s.counters.a_lock, s.counters.a_data), (0, 0));
    assert_eq!(s.bytes_held(), 0);
    assert_eq!((s.counters.expired_lock, s.counters.expired_data), (1, 1));
}

#[test]
fn tokens_strictly_increase_across_names() {
    let mut s = store();
    let mut last = tok(0);
    for i in 0..50u64 {
        let name = format!("n{}", i % 7);
        let now = i * 300;
        if let Reply::Locked { token, .. } = reply(&mut s, now, &req(Action::Lock, "w", &name)) {
            if token != last {
                assert!(token > last);
                last = token;
            }
        }
        reply(&mut s, now, &req(Action::Unlock, "w", &name));
    }
    assert_eq!(last, tok(FIRST_TOKEN + 49));
}

#[test]
fn memory_guard_refuses_growth_and_changes_nothing() {
    let per_lock = ENTRY_OVERHEAD + 2;
    let mut s = store_with_cap(per_lock * 2);
    assert!(run(&mut s, 0, req(Action::Lock, "a", "1")).contains("Locked"));
    assert!(run(&mut s, 0, req(Action::Lock, "a", "2")).contains("Locked"));
    assert_eq!(
        run(&mut s, 0, req(Action::Lock, "a", "3")),
        r#"{"Status":"NO"}"#
    );
    assert_eq!(run(&mut s, 0, put("a", "4", "", 10)), r#"{"Status":"NO"}"#);
    // A relock does not grow anything.
    assert!(run(&mut s, 0, req(Action::Lock, "a", "1")).contains("Locked"));
    assert_eq!(s.lock_count(), 2);
    // Freeing makes room again.
    run(&mut s, 0, req(Action::Unlock, "a", "1"));
    assert!(run(&mut s, 0, req(Action::Lock, "a", "3")).contains("Locked"));
}

#[test]
fn memory_guard_on_put_update_growth() {
    let mut s = store_with_cap(ENTRY_OVERHEAD + 2 + 4);
    assert!(run(&mut s, 0, put("a", "x", "1234", 10)).contains("Done"));
    assert_eq!(
        run(&mut s, 0, put("a", "x", "12345", 10)),
        r#"{"Status":"NO"}"#
    );
    assert_eq!(
        run(&mut s, 0, req(Action::Get, "a", "x")),
        r#"{"Status":"Done","ID":"a","DataStore":"1234"}"#
    );
    assert!(run(&mut s, 0, put("a", "x", "1", 10)).contains("Done"));
}

#[test]
fn compaction_keeps_every_entry_and_timer() {
    let mut s = store();
    let names: Vec<String> = (0..2000).map(|i| format!("lock-{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        reply(&mut s, 0, &req(Action::Lock, "w", n));
        reply(&mut s, 0, &put("w", n, "value", 1000 + i as u64));
    }
    // Freeing a third is plenty of bytes but leaves the tables two-thirds
    // full: not worth compacting yet.
    for n in names.iter().step_by(3) {
        reply(&mut s, 0, &req(Action::Unlock, "w", n));
        reply(&mut s, 0, &req(Action::Erase, "w", n));
    }
    assert!(!s.maybe_compact());
    // Freeing another third leaves them a third full.
    for n in names.iter().skip(1).step_by(3) {
        reply(&mut s, 0, &req(Action::Unlock, "w", n));
        reply(&mut s, 0, &req(Action::Erase, "w", n));
    }
    assert!(s.maybe_compact());
    assert_eq!(s.counters.forced_gc, 1);
    for (i, n) in names.iter().enumerate() {
        let held = run(&mut s, 1, req(Action::TestLock, "w", n));
        assert_eq!(held.contains("Locked"), i % 3 == 2, "{n}");
    }
    // Timers still point at the right entries after the move.
    s.expire(t(1000), usize::MAX);
    assert_eq!(s.lock_count(), 0);
    s.expire(t(2000), usize::MAX);
    let alive = (0..names.len())
        .filter(|&i| i % 3 == 2 && 1000 + i > 2000)
        .count();
    assert_eq!(s.data_count(), alive);
}
