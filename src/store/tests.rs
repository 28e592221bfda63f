//! Store tests: one per row of PROTOCOL.md's semantics table, then a
//! property test against a naive model.

use super::*;
use crate::protocol::Action;
use std::collections::HashMap;

const FIRST_TOKEN: u64 = 1_000;

fn store_with_cap(max_bytes: u64) -> Store {
    Store::new(
        StoreConfig {
            max_bytes,
            compact_after: 4096,
            first_token: FIRST_TOKEN,
        },
        0,
    )
}

fn store() -> Store {
    store_with_cap(u64::MAX)
}

fn req<'a>(action: Action, id: &'a str, name: &'a str) -> Request<'a> {
    Request {
        action,
        id,
        name,
        expire_ms: 1000,
        wait_ms: 0,
        data: "",
    }
}

fn put<'a>(id: &'a str, name: &'a str, data: &'a str, expire_ms: u64) -> Request<'a> {
    Request {
        data,
        expire_ms,
        ..req(Action::Put, id, name)
    }
}

fn json(reply: Reply<'_>) -> String {
    let mut out = Vec::new();
    reply.write_json(&mut out);
    String::from_utf8(out).unwrap()
}

fn run(store: &mut Store, now: u64, request: Request<'_>) -> String {
    json(store.apply(now, &request))
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
    assert!(!s.expire(1899, usize::MAX));
    assert_eq!(s.lock_count(), 1);
    s.expire(1900, usize::MAX);
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
    assert_eq!(s.counters.not_owner, 1);
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
    s.expire(999, usize::MAX);
    assert_eq!((s.counters.a_lock, s.counters.a_data), (1, 1));
    s.expire(1000, usize::MAX);
    assert_eq!((s.counters.a_lock, s.counters.a_data), (0, 1));
    s.expire(2000, usize::MAX);
    assert_eq!((s.counters.a_lock, s.counters.a_data), (0, 0));
    assert_eq!(s.bytes_held(), 0);
    assert_eq!((s.counters.expired_lock, s.counters.expired_data), (1, 1));
}

#[test]
fn tokens_strictly_increase_across_names() {
    let mut s = store();
    let mut last = 0;
    for i in 0..50u64 {
        let name = format!("n{}", i % 7);
        let now = i * 300;
        if let Reply::Locked { token, .. } = s.apply(now, &req(Action::Lock, "w", &name)) {
            if token != last {
                assert!(token > last);
                last = token;
            }
        }
        s.apply(now, &req(Action::Unlock, "w", &name));
    }
    assert_eq!(last, FIRST_TOKEN + 49);
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
    assert_eq!(s.counters.no, 2);
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
        s.apply(0, &req(Action::Lock, "w", n));
        s.apply(0, &put("w", n, "value", 1000 + i as u64));
    }
    for n in names.iter().step_by(3) {
        s.apply(0, &req(Action::Unlock, "w", n));
        s.apply(0, &req(Action::Erase, "w", n));
    }
    assert!(s.maybe_compact());
    assert_eq!(s.counters.forced_gc, 1);
    for (i, n) in names.iter().enumerate() {
        let held = run(&mut s, 1, req(Action::TestLock, "w", n));
        assert_eq!(held.contains("Locked"), i % 3 != 0, "{n}");
    }
    // Timers still point at the right entries after the move.
    s.expire(1000, usize::MAX);
    assert_eq!(s.lock_count(), 0);
    s.expire(2000, usize::MAX);
    let alive = (0..names.len())
        .filter(|&i| i % 3 != 0 && 1000 + i > 2000)
        .count();
    assert_eq!(s.data_count(), alive);
}

mod model {
    //! A naive model of the semantics table, and random operations on both.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    pub enum Op {
        Apply {
            action: Action,
            id: u8,
            name: u8,
            expire_ms: u64,
            data: u8,
        },
        Advance(u64),
        Expire(u64),
        Compact,
    }

    fn op() -> impl Strategy<Value = Op> {
        let action = prop::sample::select(vec![
            Action::Lock,
            Action::Unlock,
            Action::TestLock,
            Action::Put,
            Action::Get,
            Action::Erase,
        ]);
        prop_oneof![
            6 => (action, 0u8..3, 0u8..4, 1u64..3000, 0u8..4)
                .prop_map(|(action, id, name, expire_ms, data)| Op::Apply { action, id, name, expire_ms, data }),
            2 => prop_oneof![0u64..50, 0u64..5000, 0u64..10_000_000].prop_map(Op::Advance),
            1 => (0u64..3000).prop_map(Op::Expire),
            1 => Just(Op::Compact),
        ]
    }

    #[derive(Default)]
    struct Model {
        locks: HashMap<String, (String, u64, u64)>,
        data: HashMap<String, (String, String, u64)>,
        next_token: u64,
    }

    impl Model {
        fn apply(&mut self, now: u64, r: &Request<'_>) -> String {
            self.locks.retain(|_, v| v.1 > now);
            self.data.retain(|_, v| v.2 > now);
            let id = r.id.to_string();
            let reply = match r.action {
                Action::Lock => match self.locks.get_mut(r.name) {
                    Some(h) if h.0 == id => {
                        h.1 = now + r.expire_ms;
                        Reply::Locked {
                            id: r.id,
                            token: h.2,
                        }
                    }
                    Some(_) => Reply::Bare(Status::NotOwner),
                    None => {
                        let token = self.next_token;
                        self.next_token += 1;
                        self.locks
                            .insert(r.name.into(), (id, now + r.expire_ms, token));
                        Reply::Locked { id: r.id, token }
                    }
                },
                Action::Unlock => match self.locks.get(r.name) {
                    None => Reply::Bare(Status::Unlocked),
                    Some(h) if h.0 == id => {
                        self.locks.remove(r.name);
                        Reply::Owner(Status::Unlocked, r.id)
                    }
                    Some(_) => Reply::Bare(Status::NotOwner),
                },
                Action::TestLock => match self.locks.get(r.name) {
                    None => Reply::Bare(Status::Unlocked),
                    Some(h) if h.0 == id => Reply::Owner(Status::Locked, r.id),
                    Some(_) => Reply::Bare(Status::NotOwner),
                },
                Action::Put => match self.data.get(r.name) {
                    Some(d) if d.0 != id => Reply::Bare(Status::NotOwner),
                    _ => {
                        self.data
                            .insert(r.name.into(), (id, r.data.into(), now + r.expire_ms));
                        Reply::Owner(Status::Done, r.id)
                    }
                },
                Action::Get => match self.data.get(r.name) {
                    None => Reply::Bare(Status::NotFound),
                    Some(d) if d.0 == id => {
                        return json(Reply::Value {
                            id: r.id,
                            data: &d.1,
                        });
                    }
                    Some(_) => Reply::Bare(Status::NotOwner),
                },
                Action::Erase => match self.data.get(r.name) {
                    None => Reply::Bare(Status::NotFound),
                    Some(d) if d.0 == id => {
                        self.data.remove(r.name);
                        Reply::Owner(Status::Done, r.id)
                    }
                    Some(_) => Reply::Bare(Status::NotOwner),
                },
                Action::Version | Action::Stats => Reply::Version,
            };
            json(reply)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn store_matches_model(ops in prop::collection::vec(op(), 1..200)) {
            let mut s = store();
            let mut m = Model { next_token: FIRST_TOKEN, ..Model::default() };
            let mut now = 0u64;
            let ids = ["a", "b", "c"];
            let names = ["n0", "n1", "n2", "n3"];
            let values = ["", "v", "value", "\"quoted\\\""];
            for op in ops {
                match op {
                    Op::Apply { action, id, name, expire_ms, data } => {
                        let r = Request {
                            action,
                            id: ids[id as usize],
                            name: names[name as usize],
                            expire_ms,
                            wait_ms: 0,
                            data: values[data as usize],
                        };
                        let got = json(s.apply(now, &r));
                        prop_assert_eq!(got, m.apply(now, &r));
                    }
                    Op::Advance(dt) => now += dt,
                    Op::Expire(dt) => {
                        now += dt;
                        while s.expire(now, 3) {}
                        m.locks.retain(|_, v| v.1 > now);
                        m.data.retain(|_, v| v.2 > now);
                        // The wheel alone keeps the live counts true.
                        prop_assert_eq!(s.lock_count(), m.locks.len());
                        prop_assert_eq!(s.data_count(), m.data.len());
                        prop_assert_eq!(s.counters.a_lock as usize, m.locks.len());
                        prop_assert_eq!(s.counters.a_data as usize, m.data.len());
                    }
                    Op::Compact => s.compact(),
                }
                // At most one holder per name is structural in both; bytes
                // held never go negative and return to zero when empty.
                if s.lock_count() == 0 && s.data_count() == 0 {
                    prop_assert_eq!(s.bytes_held(), 0);
                }
            }
        }
    }
}
