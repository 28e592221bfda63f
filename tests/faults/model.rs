//! PROTOCOL.md as a sequential object for stateright's linearizability
//! tester: one lock or one data item (linearizability is local, so each
//! name is checked on its own history).
//!
//! Time is left out: every TTL is far longer than a run, and cluster time
//! never runs ahead, so nothing expires. Where the protocol leaves a choice
//! the model takes every allowed answer:
//! - a new hold's token is any number above every token granted before on
//!   this name (a leader change raises the floor);
//! - a `Wait` may be answered `NotOwner` at any time (its time ran out, or
//!   a leader change answered it), and `Locked` only when it can be granted;
//! - a shared request that could join the holders may be answered
//!   `NotOwner` (someone may be waiting ahead of it).
//!
//! An operation whose answer never came (`Unavailable`, a broken
//! connection, a timeout) is left in flight: the tester may apply it or
//! not, and then applies it through [`SequentialSpec::invoke`] with the
//! token unknown.

use stateright::semantics::SequentialSpec;

/// The places of every semaphore in the runs: every shared request asks
/// for it.
pub const LIMIT: usize = 2;

/// A client's ID, as an index (`id0`, `id1`, ...).
pub type Id = u8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Lock { id: Id, shared: bool, wait: bool },
    Unlock { id: Id },
    TestLock { id: Id },
    Put { id: Id, value: String },
    Get { id: Id },
    Erase { id: Id },
}

impl Op {
    pub fn id(&self) -> Id {
        match *self {
            Op::Lock { id, .. }
            | Op::Unlock { id }
            | Op::TestLock { id }
            | Op::Put { id, .. }
            | Op::Get { id }
            | Op::Erase { id } => id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// `Locked` to a `Lock`.
    Locked {
        token: u64,
        shared: bool,
    },
    /// `Locked` to a `TestLock` by a holder.
    Held {
        shared: bool,
        holders: u64,
    },
    /// `Unlocked`; `released` when it carried the caller's `ID` (its hold
    /// ended) rather than finding the lock free.
    Unlocked {
        released: bool,
    },
    NotOwner,
    /// `Done` to a `Put` or an `Erase`.
    Done,
    /// `Done` to a `Get`, with its `DataStore`.
    Value(String),
    NotFound,
    /// Anything the protocol never answers to these requests.
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Hold {
    id: Id,
    shared: bool,
    /// Unknown when granted by a request whose answer never came.
    token: Option<u64>,
}

/// One name: its holders, the highest token granted on it, its data item.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Entry {
    holds: Vec<Hold>,
    floor: u64,
    data: Option<(Id, String)>,
}

/// What a `Lock` may do in a state.
enum Grant {
    /// Renewal of the caller's hold in the mode it holds.
    Renew(usize),
    /// A new hold (or a conversion of the caller's sole hold, at `Some`).
    New(Option<usize>),
    /// A new shared hold that may also be refused (someone may wait ahead).
    Maybe,
    Refused,
}

impl Entry {
    fn own(&self, id: Id) -> Option<usize> {
        self.holds.iter().position(|h| h.id == id)
    }

    fn grant(&self, id: Id, shared: bool) -> Grant {
        match self.own(id) {
            Some(i) if self.holds[i].shared == shared => Grant::Renew(i),
            Some(i) if self.holds.len() == 1 => Grant::New(Some(i)),
            Some(_) => Grant::Refused,
            None if self.holds.is_empty() => Grant::New(None),
            None if shared && self.holds.iter().all(|h| h.shared) && self.holds.len() < LIMIT => {
                Grant::Maybe
            }
            None => Grant::Refused,
        }
    }

    /// Takes a new hold (replacing the caller's converted one at `at`).
    fn take(&mut self, at: Option<usize>, id: Id, shared: bool, token: Option<u64>) {
        if let Some(i) = at {
            self.holds.remove(i);
        }
        self.holds.push(Hold { id, shared, token });
        if let Some(token) = token {
            self.floor = self.floor.max(token);
        }
    }

    /// A `Lock` answered `ret`: whether it may be, and its effect.
    fn lock(&mut self, id: Id, shared: bool, wait: bool, ret: &Ret) -> bool {
        let grant = self.grant(id, shared);
        match (grant, ret) {
            (_, Ret::NotOwner) if wait => true,
            (Grant::Refused | Grant::Maybe, Ret::NotOwner) => true,
            (Grant::Renew(i), &Ret::Locked { token, shared: s }) if s == shared => {
                match self.holds[i].token {
                    Some(held) => held == token,
                    None => {
                        self.holds[i].token = Some(token);
                        self.floor = self.floor.max(token);
                        true
                    }
                }
            }
            (Grant::New(at), &Ret::Locked { token, shared: s }) if s == shared => {
                let fresh = token > self.floor;
                self.take(at, id, shared, Some(token));
                fresh
            }
            (Grant::Maybe, &Ret::Locked { token, shared: s }) if s == shared => {
                let fresh = token > self.floor;
                self.take(None, id, shared, Some(token));
                fresh
            }
            _ => false,
        }
    }

    fn answer(&mut self, op: &Op) -> Ret {
        match *op {
            Op::Lock { .. } => unreachable!("a Lock's answer is checked in is_valid_step"),
            Op::Unlock { id } => match self.own(id) {
                Some(i) => {
                    self.holds.remove(i);
                    Ret::Unlocked { released: true }
                }
                None if self.holds.is_empty() => Ret::Unlocked { released: false },
                None => Ret::NotOwner,
            },
            Op::TestLock { id } => match self.own(id) {
                Some(i) => Ret::Held {
                    shared: self.holds[i].shared,
                    holders: self.holds.len() as u64,
                },
                None if self.holds.is_empty() => Ret::Unlocked { released: false },
                None => Ret::NotOwner,
            },
            Op::Put { id, ref value } => match &self.data {
                Some((owner, _)) if *owner != id => Ret::NotOwner,
                _ => {
                    self.data = Some((id, value.clone()));
                    Ret::Done
                }
            },
            Op::Get { id } => match &self.data {
                None => Ret::NotFound,
                Some((owner, value)) if *owner == id => Ret::Value(value.clone()),
                Some(_) => Ret::NotOwner,
            },
            Op::Erase { id } => match &self.data {
                None => Ret::NotFound,
                Some((owner, _)) if *owner == id => {
                    self.data = None;
                    Ret::Done
                }
                Some(_) => Ret::NotOwner,
            },
        }
    }
}

impl SequentialSpec for Entry {
    type Op = Op;
    type Ret = Ret;

    /// An operation left in flight, applied with the answer it would get:
    /// a grant where one is allowed, its token unknown.
    fn invoke(&mut self, op: &Op) -> Ret {
        let Op::Lock { id, shared, .. } = *op else {
            return self.answer(op);
        };
        match self.grant(id, shared) {
            Grant::Renew(i) => Ret::Locked {
                token: self.holds[i].token.unwrap_or(0),
                shared,
            },
            Grant::New(at) => {
                self.take(at, id, shared, None);
                Ret::Locked { token: 0, shared }
            }
            Grant::Maybe => {
                self.take(None, id, shared, None);
                Ret::Locked { token: 0, shared }
            }
            Grant::Refused => Ret::NotOwner,
        }
    }

    fn is_valid_step(&mut self, op: &Op, ret: &Ret) -> bool {
        match *op {
            Op::Lock { id, shared, wait } => self.lock(id, shared, wait, ret),
            _ => self.answer(op) == *ret,
        }
    }
}
