//! Replicated requests: waiters with origins (`apply_from`,
//! `cancel_origin`), `cancel_all_waits`, the token floor, and determinism
//! across layouts for orders the proptests rarely reach.

use super::*;
use std::num::NonZeroU64;

fn origin(n: u64) -> Origin {
    Origin(NonZeroU64::new(n).expect("non-zero"))
}

fn waiting<'a>(id: &'a str, name: &'a str) -> Request<'a> {
    req(Action::Lock, id, name).with_wait(Millis::new(500))
}

fn completions(s: &mut Store) -> Vec<(Option<Origin>, Option<u64>, Mode)> {
    let mut done = Vec::new();
    s.take_completions(&mut done);
    done.iter()
        .map(|c| (c.origin, c.granted.map(FencingToken::get), c.mode))
        .collect()
}

fn park_from(s: &mut Store, now: u64, r: &Request<'_>, o: u64) {
    assert!(matches!(
        s.apply_from(t(now), r, origin(o)),
        Outcome::Parked(_)
    ));
}

#[test]
fn a_granted_waiter_completes_with_its_origin() {
    let mut s = store();
    run(&mut s, 0, req(Action::Lock, "a", "jobs"));
    park_from(&mut s, 1, &waiting("b", "jobs"), 7);
    s.verify().unwrap();
    run(&mut s, 2, req(Action::Unlock, "a", "jobs"));
    assert_eq!(
        completions(&mut s),
        [(Some(origin(7)), Some(1001), Mode::Exclusive)]
    );
    assert!(!s.cancel_origin(origin(7)), "a completed waiter is gone");
    s.verify().unwrap();
}

#[test]
fn a_plain_apply_parks_without_an_origin() {
    let mut s = store();
    run(&mut s, 0, req(Action::Lock, "a", "jobs"));
    assert!(matches!(
        s.apply(t(1), &waiting("b", "jobs")),
        Outcome::Parked(_)
    ));
    s.expire(t(501), usize::MAX);
    assert_eq!(completions(&mut s), [(None, None, Mode::Exclusive)]);
}

#[test]
fn apply_from_answers_what_apply_answers() {
    let mut s = store();
    let put = put("a", "cfg", "v", 1000);
    assert!(matches!(
        s.apply_from(t(0), &put, origin(1)),
        Outcome::Reply(_)
    ));
    let get = req(Action::Get, "a", "cfg");
    match s.apply_from(t(1), &get, origin(2)) {
        Outcome::Reply(reply) => {
            assert_eq!(json(reply), r#"{"Status":"Done","ID":"a","DataStore":"v"}"#)
        }
        Outcome::Parked(_) => panic!("a Get never parks"),
    }
    match s.apply_from(t(1), &req(Action::Lock, "a", "jobs"), origin(3)) {
        Outcome::Reply(reply) => {
            assert_eq!(json(reply), r#"{"Status":"Locked","ID":"a","Token":1000}"#)
        }
        Outcome::Parked(_) => panic!("a free lock is granted"),
    }
    assert!(
        !s.cancel_origin(origin(3)),
        "a granted request never parked"
    );
}

#[test]
fn cancel_origin_withdraws_without_a_completion() {
    let mut s = store();
    run(&mut s, 0, req(Action::Lock, "a", "jobs"));
    let bytes = s.bytes_held();
    park_from(&mut s, 1, &waiting("b", "jobs"), 7);
    park_from(&mut s, 1, &waiting("c", "jobs"), 8);
    assert!(s.cancel_origin(origin(7)));
    assert!(!s.cancel_origin(origin(7)), "only once");
    assert!(!s.cancel_origin(origin(99)), "an unknown origin");
    s.verify().unwrap();
    run(&mut s, 2, req(Action::Unlock, "a", "jobs"));
    assert_eq!(
        completions(&mut s),
        [(Some(origin(8)), Some(1001), Mode::Exclusive)]
    );
    run(&mut s, 3, req(Action::Unlock, "c", "jobs"));
    assert_eq!(s.waiter_count(), 0);
    assert!(s.bytes_held() < bytes, "the hold and every waiter gone");
}

#[test]
fn a_second_waiter_with_a_parked_origin_is_refused() {
    let mut s = store();
    run(&mut s, 0, req(Action::Lock, "a", "jobs"));
    park_from(&mut s, 1, &waiting("b", "jobs"), 7);
    match s.apply_from(t(1), &waiting("c", "jobs"), origin(7)) {
        Outcome::Reply(reply) => assert_eq!(json(reply), r#"{"Status":"NotOwner"}"#),
        Outcome::Parked(_) => panic!("two waiters with one origin"),
    }
    assert_eq!(s.waiter_count(), 1);
    s.verify().unwrap();
}

#[test]
fn withdrawing_the_front_by_origin_lets_shared_waiters_join() {
    let mut s = store();
    let shared = |id| waiting(id, "conf").with_mode(Mode::Shared).with_limit(2);
    run(
        &mut s,
        0,
        req(Action::Lock, "a", "conf")
            .with_mode(Mode::Shared)
            .with_limit(2),
    );
    park_from(&mut s, 1, &waiting("w", "conf"), 1);
    park_from(&mut s, 1, &shared("r"), 2);
    assert!(s.cancel_origin(origin(1)));
    // Granted at the next step, whatever it is.
    run(&mut s, 2, req(Action::TestLock, "x", "other"));
    assert_eq!(
        completions(&mut s),
        [(Some(origin(2)), Some(1001), Mode::Shared)]
    );
    s.verify().unwrap();
}

#[test]
fn cancel_all_waits_answers_every_waiter_by_lock_name_then_queue() {
    let mut s = store();
    // Locks made in an order other than their names', so slab order is not
    // name order.
    for name in ["zeta", "alpha", "mid"] {
        run(&mut s, 0, req(Action::Lock, "holder", name));
    }
    park_from(&mut s, 1, &waiting("b", "zeta"), 1);
    park_from(&mut s, 1, &waiting("c", "mid"), 2);
    park_from(&mut s, 1, &waiting("d", "alpha"), 3);
    park_from(&mut s, 1, &waiting("e", "zeta"), 4);
    assert!(matches!(
        s.apply(t(1), &waiting("f", "alpha")),
        Outcome::Parked(_)
    ));
    let before = s.counters.wait_timeout;
    s.cancel_all_waits();
    let order: Vec<Option<Origin>> = completions(&mut s).iter().map(|c| c.0).collect();
    assert_eq!(
        order,
        [
            Some(origin(3)),
            None,
            Some(origin(2)),
            Some(origin(1)),
            Some(origin(4))
        ]
    );
    assert_eq!(s.waiter_count(), 0);
    assert_eq!(s.counters.wait_timeout, before, "not time-outs");
    assert!(!s.cancel_origin(origin(1)));
    s.verify().unwrap();
    // The holds stay.
    assert_eq!(s.lock_count(), 3);
}

#[test]
fn the_token_floor_raises_the_next_token_and_never_lowers_it() {
    let mut s = store();
    assert_eq!(s.next_token(), tok(FIRST_TOKEN));
    s.raise_token_floor(tok(5_000));
    assert_eq!(s.next_token(), tok(5_000));
    s.raise_token_floor(tok(10));
    assert_eq!(s.next_token(), tok(5_000));
    assert_eq!(
        run(&mut s, 0, req(Action::Lock, "a", "jobs")),
        r#"{"Status":"Locked","ID":"a","Token":5000}"#
    );
    assert_eq!(s.next_token(), tok(5_001));
}

/// Two stores with the same locks and waiters, made so that their slab
/// keys and wheel lists differ, whose waiters all time out in one batch:
/// the same completions, in the order of lock names, then queues.
#[test]
fn a_batch_of_time_outs_is_answered_in_logical_order_whatever_the_layout() {
    let mut a = store();
    let mut b = store();
    let names = ["n0", "n1", "n2", "n3", "n4", "n5"];
    // `b` first fills and empties its tables, so that its keys are handed
    // out again in another order.
    for (i, name) in names.iter().enumerate() {
        run(&mut b, 0, req(Action::Lock, "junk", &format!("junk{i}")));
        run(&mut b, 0, put("junk", name, "x", 10));
    }
    for (i, name) in names.iter().enumerate() {
        run(&mut b, 0, req(Action::Unlock, "junk", &format!("junk{i}")));
        run(&mut b, 0, req(Action::Erase, "junk", name));
    }
    for name in names {
        run(&mut a, 0, req(Action::Lock, "h", name));
    }
    for name in names.iter().rev() {
        run(&mut b, 0, req(Action::Lock, "h", name));
    }
    // The waiters join in another order in each store, but each queue's
    // order is the same, and every wait ends at 100.
    let wait = |id, name| waiting(id, name).with_wait(Millis::new(99));
    for (i, name) in names.iter().enumerate() {
        let o = 2 * i as u64;
        park_from(&mut a, 1, &wait("w1", name), o + 1);
        park_from(&mut a, 1, &wait("w2", name), o + 2);
    }
    for (i, name) in names.iter().enumerate().rev() {
        let o = 2 * i as u64;
        park_from(&mut b, 1, &wait("w1", name), o + 1);
    }
    for (i, name) in names.iter().enumerate() {
        let o = 2 * i as u64;
        park_from(&mut b, 1, &wait("w2", name), o + 2);
    }
    a.expire(t(100), usize::MAX);
    b.expire(t(100), usize::MAX);
    let want: Vec<_> = (1..=12)
        .map(|o| (Some(origin(o)), None, Mode::Exclusive))
        .collect();
    assert_eq!(completions(&mut a), want);
    assert_eq!(completions(&mut b), want);
    a.verify().unwrap();
    b.verify().unwrap();
}
