//! Reads that change nothing: `TestLock` and `Get` answered from a shared
//! borrow, for a cluster's linearizable reads through ReadIndex.
//!
//! A cluster member answers a read from its own store once it has applied
//! the log up to the leader's commit index, without writing the read to the
//! log. That is only sound if answering changes nothing, since the other
//! members never see the read: so [`Store::read`] takes `&self`, and where
//! [`Store::apply`] would change something on the way (an expired entry to
//! remove, which may hand a lock to a waiter and take a token; a shared
//! lock whose shares may need pruning; a queue left to grant) it answers
//! `None`, and the caller sends the read through the log instead.
//!
//! Counting is the caller's: a read counts what `apply` would
//! (`TestLock`, `TestLockNF`, `Get`, `GetNF`, `DataOut`) through
//! [`count_read`].

use super::Store;
use super::table::SetKey;
use crate::protocol::{Action, Reply, Request, Status};
use crate::stats::Counters;
use crate::time::Moment;

impl Store {
    /// The reply `apply(now, req)` would give to a `TestLock` or `Get`,
    /// if giving it changes nothing; `None` otherwise (and for any other
    /// action).
    pub fn read<'a>(&'a self, now: Moment, req: &Request<'a>) -> Option<Reply<'a>> {
        if !self.unblocked.is_empty() {
            return None;
        }
        match req.action() {
            Action::TestLock => {
                let hash = self.locks.hash(req.name());
                let Some(key) = self.locks.find(hash, req.name()) else {
                    return Some(Reply::Bare(Status::Unlocked));
                };
                let hold = &self.locks[key];
                if hold.deadline <= now || hold.shared != SetKey::NIL {
                    return None;
                }
                Some(if hold.is_owned_by(req.id(), req.owner_name()) {
                    Reply::WithId(Status::Locked, req.id())
                } else {
                    Reply::Bare(Status::NotOwner)
                })
            }
            Action::Get => {
                let hash = self.data.hash(req.name());
                let Some(key) = self.data.find(hash, req.name()) else {
                    return Some(Reply::Bare(Status::NotFound));
                };
                let item = &self.data[key];
                if item.deadline <= now {
                    return None;
                }
                Some(if item.packed.is_owned_by(req.id(), req.owner_name()) {
                    Reply::Value {
                        id: req.id(),
                        data: item.packed.value(),
                    }
                } else {
                    Reply::Bare(Status::NotOwner)
                })
            }
            _ => None,
        }
    }
}

/// What a read's reply counts: its status, and the length of the value
/// it returned.
pub fn read_counts(reply: &Reply<'_>) -> (Status, Option<usize>) {
    match *reply {
        Reply::Value { data, .. } => (Status::Done, Some(data.len())),
        _ => (reply.status(), None),
    }
}

/// Counts a read answered by [`Store::read`] as `apply` would have, from
/// [`read_counts`].
pub fn count_read(counters: &mut Counters, (status, value): (Status, Option<usize>)) {
    match (status, value) {
        (Status::Locked, _) => counters.test_lock += 1,
        (Status::Unlocked, _) => counters.test_lock_nf += 1,
        (Status::NotFound, _) => counters.get_nf += 1,
        (Status::Done, Some(len)) => {
            counters.get += 1;
            counters.data_out += len as u64;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Outcome, StoreConfig};
    use crate::time::Millis;

    fn req<'a>(action: Action, id: &'a str, name: &'a str) -> Request<'a> {
        Request::new(action, id, name)
            .unwrap()
            .with_expire(Millis::new(1000))
    }

    /// Every read `read` answers is what `apply` answers; where it answers
    /// nothing, `apply` would have changed the store.
    #[test]
    fn a_read_answers_as_apply_would_or_not_at_all() {
        let t0 = Moment::from_ms(0);
        let mut store = Store::new(StoreConfig::unbounded(), t0);
        let _ = store.apply(t0, &req(Action::Lock, "a", "l"));
        let _ = store.apply(t0, &req(Action::Put, "a", "k").with_data("v"));
        let cases = [
            req(Action::TestLock, "a", "l"),
            req(Action::TestLock, "b", "l"),
            req(Action::TestLock, "a", "free"),
            req(Action::Get, "a", "k"),
            req(Action::Get, "b", "k"),
            req(Action::Get, "a", "none"),
        ];
        let t = Moment::from_ms(500);
        for case in &cases {
            let read = store.read(t, case).map(|r| format!("{r:?}"));
            let applied = match store.apply(t, case) {
                Outcome::Reply(r) => format!("{r:?}"),
                Outcome::Parked(_) => panic!("a read parked"),
            };
            assert_eq!(read.as_deref(), Some(applied.as_str()), "{case:?}");
        }
        // Expired but not yet removed: answering would remove them.
        let late = Moment::from_ms(1500);
        assert!(store.read(late, &cases[0]).is_none());
        assert!(store.read(late, &cases[3]).is_none());
        assert_eq!(store.lock_count(), 1, "read changed nothing");
        assert!(store.read(late, &req(Action::Lock, "a", "l")).is_none());
    }
}
