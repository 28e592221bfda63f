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
