//! The history of a run: every call's invocation and completion, in one
//! order that agrees with real time (both are numbered under one lock), so
//! a call that completed before another was invoked has the smaller
//! number.

use std::sync::Mutex;

use super::model::{Op, Ret};

/// One call: who made it (a tester thread: a client starts a new one after
/// an answer that never came, so each has at most one call in flight, its
/// last), on which name, and its answer, if one came.
#[derive(Clone, Debug)]
pub struct Call {
    pub thread: u64,
    pub name: String,
    pub op: Op,
    pub invoked: u64,
    /// When it completed and with what; `None` when its effect is unknown.
    pub returned: Option<(u64, Ret)>,
}

impl Call {
    /// The completion's number, or past every number for a call in flight.
    pub fn returned_at(&self) -> u64 {
        self.returned.as_ref().map_or(u64::MAX, |&(at, _)| at)
    }

    pub fn ret(&self) -> Option<&Ret> {
        self.returned.as_ref().map(|(_, ret)| ret)
    }
}

#[derive(Default)]
struct Log {
    next: u64,
    calls: Vec<Call>,
}

/// The calls of every client, shared between their threads.
#[derive(Default)]
pub struct History {
    log: Mutex<Log>,
}

impl History {
    /// Records that `thread` sends `op` on `name`; the call's index.
    pub fn invoke(&self, thread: u64, name: &str, op: Op) -> usize {
        let mut log = self.log.lock().unwrap();
        log.next += 1;
        let invoked = log.next;
        log.calls.push(Call {
            thread,
            name: name.to_owned(),
            op,
            invoked,
            returned: None,
        });
        log.calls.len() - 1
    }

    /// Records the answer to call `index`.
    pub fn complete(&self, index: usize, ret: Ret) {
        let mut log = self.log.lock().unwrap();
        log.next += 1;
        let at = log.next;
        log.calls[index].returned = Some((at, ret));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.log.lock().unwrap().calls.clone()
    }

    /// A history built by hand (the checker's own tests): `(thread, name,
    /// op, answer)` in invocation order, each completed before the next
    /// is invoked unless its answer is `None` (left in flight).
    pub fn sequential(calls: &[(u64, &str, Op, Option<Ret>)]) -> Vec<Call> {
        let history = History::default();
        for (thread, name, op, ret) in calls {
            let index = history.invoke(*thread, name, op.clone());
            if let Some(ret) = ret {
                history.complete(index, ret.clone());
            }
        }
        history.calls()
    }
}

/// The `key: value` fields of a rendered variant (`Lock { id: 1, ... }`).
fn fields(text: &str) -> (&str, Vec<(&str, &str)>) {
    let (variant, rest) = text.split_once(" { ").unwrap_or((text, ""));
    let pairs = rest
        .trim_end_matches(" }")
        .split(", ")
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once(": ").expect("a field"))
        .collect();
    (variant, pairs)
}

fn field<T: std::str::FromStr>(pairs: &[(&str, &str)], key: &str) -> T {
    let (_, value) = pairs.iter().find(|(k, _)| *k == key).expect("the field");
    value.parse().ok().expect("a field's value")
}

impl History {
    /// Reads back the calls of one name as `check::render` wrote them
    /// (lock calls only: the histories kept as regression tests).
    pub fn parse(text: &str, name: &str) -> Vec<Call> {
        text.lines()
            .map(|line| {
                let (times, rest) = line.trim().split_once("] t").expect("[times] tTHREAD");
                let (invoked, returned) = times[1..].split_once("..").expect("a..b");
                let (thread, rest) = rest.split_once(' ').expect("a thread");
                let (op, ret) = rest.split_once(" -> ").expect("op -> answer");
                let (variant, pairs) = fields(op);
                let id = field(&pairs, "id");
                let op = match variant {
                    "Lock" => Op::Lock {
                        id,
                        shared: field(&pairs, "shared"),
                        wait: field(&pairs, "wait"),
                    },
                    "Unlock" => Op::Unlock { id },
                    "TestLock" => Op::TestLock { id },
                    other => panic!("not a lock call: {other}"),
                };
                let (variant, pairs) = fields(ret);
                let ret = match variant {
                    "unknown" => None,
                    "Locked" => Some(Ret::Locked {
                        token: field(&pairs, "token"),
                        shared: field(&pairs, "shared"),
                    }),
                    "Held" => Some(Ret::Held {
                        shared: field(&pairs, "shared"),
                        holders: field(&pairs, "holders"),
                    }),
                    "Unlocked" => Some(Ret::Unlocked {
                        released: field(&pairs, "released"),
                    }),
                    "NotOwner" => Some(Ret::NotOwner),
                    other => panic!("not a lock answer: {other}"),
                };
                Call {
                    thread: u64::from_str_radix(thread, 16).expect("a thread"),
                    name: name.to_owned(),
                    op,
                    invoked: invoked.parse().expect("invoked"),
                    returned: ret.map(|ret| (returned.parse().expect("returned"), ret)),
                }
            })
            .collect()
    }
}
