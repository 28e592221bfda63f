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
        let id = r.id().to_string();
        let reply = match r.action() {
            Action::Lock => match self.locks.get_mut(r.name()) {
                Some(h) if h.0 == id => {
                    h.1 = now + r.expire().as_ms();
                    Reply::Locked {
                        id: r.id(),
                        token: tok(h.2),
                    }
                }
                Some(_) => Reply::Bare(Status::NotOwner),
                None => {
                    let token = self.next_token;
                    self.next_token += 1;
                    self.locks
                        .insert(r.name().into(), (id, now + r.expire().as_ms(), token));
                    Reply::Locked {
                        id: r.id(),
                        token: tok(token),
                    }
                }
            },
            Action::Unlock => match self.locks.get(r.name()) {
                None => Reply::Bare(Status::Unlocked),
                Some(h) if h.0 == id => {
                    self.locks.remove(r.name());
                    Reply::WithId(Status::Unlocked, r.id())
                }
                Some(_) => Reply::Bare(Status::NotOwner),
            },
            Action::TestLock => match self.locks.get(r.name()) {
                None => Reply::Bare(Status::Unlocked),
                Some(h) if h.0 == id => Reply::WithId(Status::Locked, r.id()),
                Some(_) => Reply::Bare(Status::NotOwner),
            },
            Action::Put => match self.data.get(r.name()) {
                Some(d) if d.0 != id => Reply::Bare(Status::NotOwner),
                _ => {
                    self.data.insert(
                        r.name().into(),
                        (id, r.data().into(), now + r.expire().as_ms()),
                    );
                    Reply::WithId(Status::Done, r.id())
                }
            },
            Action::Get => match self.data.get(r.name()) {
                None => Reply::Bare(Status::NotFound),
                Some(d) if d.0 == id => {
                    return json(Reply::Value {
                        id: r.id(),
                        data: &d.1,
                    });
                }
                Some(_) => Reply::Bare(Status::NotOwner),
            },
            Action::Erase => match self.data.get(r.name()) {
                None => Reply::Bare(Status::NotFound),
                Some(d) if d.0 == id => {
                    self.data.remove(r.name());
                    Reply::WithId(Status::Done, r.id())
                }
                Some(_) => Reply::Bare(Status::NotOwner),
            },
            Action::Version | Action::Stats => Reply::Version,
            Action::AddMember | Action::RemoveMember | Action::Members => {
                Reply::Bare(Status::BadAction)
            }
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
                    let r = Request::new(action, ids[id as usize], names[name as usize])
                        .expect("a valid request")
                        .with_expire(Millis::new(expire_ms))
                        .with_data(values[data as usize]);
                    let got = json(reply(&mut s, now, &r));
                    prop_assert_eq!(got, m.apply(now, &r));
                }
                Op::Advance(dt) => now += dt,
                Op::Expire(dt) => {
                    now += dt;
                    while s.expire(t(now), 3) {}
                    m.locks.retain(|_, v| v.1 > now);
                    m.data.retain(|_, v| v.2 > now);
                    // The wheel alone keeps the live counts true.
                    prop_assert_eq!(s.lock_count(), m.locks.len());
                    prop_assert_eq!(s.data_count(), m.data.len());
                    prop_assert_eq!(s.counters.a_lock, m.locks.len() as u64);
                    prop_assert_eq!(s.counters.a_data, m.data.len() as u64);
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
