//! A second search for a linearization of one name's calls, on the same
//! model, for the histories stateright's tester cannot decide in time: its
//! search keeps no memory, so it explores again every order that leads to
//! a state it has already failed from, which with many calls in flight at
//! once is more than a run can wait for. This one (after Wing and Gong,
//! with Lowe's memory of configurations) remembers every (calls
//! linearized, model state) it has seen and never explores one twice.

use std::collections::HashSet;

use stateright::semantics::SequentialSpec;

use super::check::counts;
use super::history::Call;
use super::model::Entry;

/// Most configurations remembered before the search gives up (a few
/// hundred bytes each).
const ROOM: usize = 1_000_000;

/// The calls linearized so far, one bit each.
type Done = Vec<u64>;

fn has(done: &Done, i: usize) -> bool {
    done[i / 64] & (1 << (i % 64)) != 0
}

fn with(done: &Done, i: usize) -> Done {
    let mut next = done.clone();
    next[i / 64] |= 1 << (i % 64);
    next
}

/// `Some(true)` when `calls` (one name's) have a linearization, `Some(false)`
/// when they have none, `None` when the search ran out of room.
pub fn linearizable(calls: &[&Call]) -> Option<bool> {
    let calls: Vec<&Call> = calls.iter().copied().filter(|c| counts(c)).collect();
    let answered = calls.iter().filter(|c| c.returned.is_some()).count();
    let mut seen: HashSet<(Done, Entry)> = HashSet::new();
    let start = (vec![0; calls.len().div_ceil(64)], Entry::default());
    let mut stack = vec![(start, 0)];
    while let Some(((done, entry), linearized)) = stack.pop() {
        if linearized == answered {
            return Some(true);
        }
        if !seen.insert((done.clone(), entry.clone())) {
            continue;
        }
        if seen.len() > ROOM {
            return None;
        }
        // A call may come next if no call still open completed before it
        // was invoked.
        let first_return = (0..calls.len())
            .filter(|&i| !has(&done, i))
            .map(|i| calls[i].returned_at())
            .min()
            .unwrap_or(u64::MAX);
        for i in (0..calls.len()).filter(|&i| !has(&done, i)) {
            let call = calls[i];
            if call.invoked > first_return {
                continue;
            }
            let mut next = entry.clone();
            let fits = match call.ret() {
                Some(ret) => next.is_valid_step(&call.op, ret),
                None => {
                    next.invoke(&call.op);
                    true
                }
            };
            if fits {
                let counted = linearized + usize::from(call.returned.is_some());
                stack.push(((with(&done, i), next), counted));
            }
        }
    }
    Some(false)
}
