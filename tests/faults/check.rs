//! The checks of a recorded history: linearizability of every name's
//! calls against the model (stateright's tester), and the safety
//! properties checked directly on the calls, each a list of anomalies.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

use super::history::Call;
use super::model::{Entry, Id, Op, Ret};
use super::remembering;

/// The calls of each name, in invocation order.
fn by_name(calls: &[Call]) -> BTreeMap<&str, Vec<&Call>> {
    let mut names: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for call in calls {
        names.entry(&call.name).or_default().push(call);
    }
    names
}

/// Every check; an empty list when the history passes.
pub fn anomalies(calls: &[Call]) -> Vec<String> {
    checked(calls).0
}

/// Every check's anomalies, and how many names the tester left to the
/// remembering search.
pub fn checked(calls: &[Call]) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut remembered = 0;
    for (name, calls) in by_name(calls) {
        // stateright's tester first; where its search runs out of time,
        // the same model searched with memory of the states it has seen.
        let verdict = match linearizable_within(&calls, SEARCH_BUDGET) {
            Some(true) => None,
            Some(false) => Some("not linearizable"),
            None => {
                remembered += 1;
                remembering_verdict(&calls)
            }
        };
        if let Some(verdict) = verdict {
            found.push(format!("{name}: {verdict}; its calls:\n{}", render(&calls)));
        }
        found.extend(overlapping_holds(name, &calls));
        found.extend(lost_puts(name, &calls));
    }
    found.extend(token_order(calls));
    found.extend(foreign_values(calls));
    (found, remembered)
}

/// The verdict of the remembering search on a name the tester left
/// undecided; `None` when linearizable.
fn remembering_verdict(calls: &[&Call]) -> Option<&'static str> {
    match remembering::linearizable(calls) {
        Some(true) => None,
        Some(false) => Some("not linearizable (found by the remembering search)"),
        None => Some("undecided: both searches ran out of room"),
    }
}

/// One call a line, for a report.
pub fn render(calls: &[&Call]) -> String {
    calls
        .iter()
        .map(|c| match &c.returned {
            Some((at, ret)) => format!(
                "  [{}..{at}] t{:x} {:?} -> {ret:?}",
                c.invoked, c.thread, c.op
            ),
            None => format!("  [{}..] t{:x} {:?} -> unknown", c.invoked, c.thread, c.op),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How long the tester may search one name's history (its search has no
/// memory of states seen, so a history with many calls in flight at once
/// can take it very long).
const SEARCH_BUDGET: Duration = Duration::from_secs(5);

/// [`linearizable`] on a thread of its own, `None` when it has not decided
/// within `budget` (the thread is left to finish with the test process).
fn linearizable_within(calls: &[&Call], budget: Duration) -> Option<bool> {
    let owned: Vec<Call> = calls.iter().map(|&c| c.clone()).collect();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let calls: Vec<&Call> = owned.iter().collect();
        let _ = send.send(linearizable(&calls));
    });
    receive.recv_timeout(budget).ok()
}

/// Whether a call counts for linearizability: a read left in flight
/// changes nothing and is left out.
pub fn counts(call: &Call) -> bool {
    call.returned.is_some() || !matches!(call.op, Op::TestLock { .. } | Op::Get { .. })
}

/// Whether one name's calls are linearizable against the model.
pub fn linearizable(calls: &[&Call]) -> bool {
    let mut events: Vec<(u64, &Call, bool)> = Vec::new();
    for call in calls.iter().filter(|c| counts(c)) {
        events.push((call.invoked, call, false));
        if call.returned.is_some() {
            events.push((call.returned_at(), call, true));
        }
    }
    events.sort_by_key(|&(at, _, _)| at);
    let mut tester = LinearizabilityTester::new(Entry::default());
    for (_, call, completes) in events {
        let step = if completes {
            tester.on_return(call.thread, call.ret().expect("returned").clone())
        } else {
            tester.on_invoke(call.thread, call.op.clone())
        };
        if let Err(e) = step {
            panic!("a malformed history: {e}");
        }
    }
    tester.is_consistent()
}

/// A hold as the answers show it: a name, its holder and token.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Hold {
    token: u64,
    id: Id,
    shared: bool,
}

/// Every hold one name's `Lock` answers show, with the calls that
/// confirmed it (granted or renewed it).
fn holds<'a>(calls: &[&'a Call]) -> BTreeMap<Hold, Vec<&'a Call>> {
    let mut holds: BTreeMap<Hold, Vec<&Call>> = BTreeMap::new();
    for call in calls {
        if let Some(&Ret::Locked { token, shared }) = call.ret() {
            let id = call.op.id();
            holds
                .entry(Hold { token, id, shared })
                .or_default()
                .push(call);
        }
    }
    holds
}

/// Never two holds, one of them exclusive, at once: tokens order grants,
/// so a hold confirmed after a later-granted hold was confirmed was held
/// across that grant.
fn overlapping_holds(name: &str, calls: &[&Call]) -> Vec<String> {
    let holds = holds(calls);
    let mut found = Vec::new();
    for (earlier, first) in &holds {
        for (later, second) in holds.range(earlier..).skip(1) {
            if !(earlier.shared && later.shared) && earlier.token != later.token {
                let last_of_earlier = first.iter().map(|c| c.invoked).max().unwrap_or(0);
                let first_of_later = second.iter().map(|c| c.returned_at()).min();
                if first_of_later.is_some_and(|at| at < last_of_earlier) {
                    found.push(format!(
                        "{name}: {earlier:?} was still held after {later:?} was granted"
                    ));
                }
            }
        }
    }
    found
}

/// Tokens: one token is one hold (one name and ID), and a hold granted
/// after another completed has the greater token.
fn token_order(calls: &[Call]) -> Vec<String> {
    let mut found = Vec::new();
    // Per hold: its name, when it was first confirmed (its grant was
    // before that completed) and the latest call by its ID on its name
    // that showed it not yet granted (its grant was after that began).
    let mut seen: BTreeMap<u64, (&str, Id, u64, u64)> = BTreeMap::new();
    for (name, calls) in by_name(calls) {
        for (hold, confirmations) in holds(&calls) {
            let first = confirmations
                .iter()
                .min_by_key(|c| c.invoked)
                .expect("a hold is confirmed");
            let before = calls
                .iter()
                .filter(|c| c.op.id() == hold.id && c.returned_at() < first.invoked)
                .filter(|c| match (&c.op, c.ret()) {
                    (_, Some(Ret::Locked { token, .. })) => *token != hold.token,
                    (_, Some(Ret::Unlocked { .. })) => true,
                    // A `Lock` refused may be a holder's refused conversion.
                    (Op::Unlock { .. } | Op::TestLock { .. }, Some(Ret::NotOwner)) => true,
                    _ => false,
                })
                .map(|c| c.invoked)
                .max()
                .unwrap_or(0);
            let entry = (name, hold.id, first.returned_at(), before);
            if let Some(&(other, id, _, _)) = seen.get(&hold.token) {
                if (other, id) != (name, hold.id) {
                    found.push(format!(
                        "token {} granted to id{id} on {other} and to id{} on {name}",
                        hold.token, hold.id
                    ));
                }
            }
            seen.insert(hold.token, entry);
        }
    }
    let grants: Vec<(u64, u64, u64)> = seen
        .iter()
        .map(|(&token, &(_, _, granted_by, after))| (token, granted_by, after))
        .collect();
    for &(token, granted_by, _) in &grants {
        for &(other, _, after) in &grants {
            if granted_by < after && other < token {
                found.push(format!(
                    "token {other} was granted after token {token}, and is smaller"
                ));
            }
        }
    }
    found
}

/// No acknowledged `Put` lost or reverted: a `Get` by its owner after it
/// completed, with no other change to the name begun since it was
/// invoked, reads its value.
fn lost_puts(name: &str, calls: &[&Call]) -> Vec<String> {
    let changes = |c: &&&Call| {
        matches!(c.op, Op::Put { .. } | Op::Erase { .. })
            && !matches!(c.ret(), Some(Ret::NotOwner | Ret::NotFound))
    };
    let mut found = Vec::new();
    for get in calls.iter().filter(|c| matches!(c.op, Op::Get { .. })) {
        let Some(ret) = get.ret() else { continue };
        let latest = calls
            .iter()
            .filter(changes)
            .filter(|c| c.invoked < get.invoked)
            .max_by_key(|c| c.invoked);
        let Some(put) = latest else { continue };
        let (&Op::Put { id, ref value }, Some(Ret::Done)) = (&put.op, put.ret()) else {
            continue;
        };
        let alone = !calls.iter().filter(changes).any(|c| {
            c.invoked != put.invoked
                && c.returned_at() > put.invoked
                && c.invoked < get.returned_at()
        });
        let expected = if id == get.op.id() {
            Ret::Value(value.clone())
        } else {
            Ret::NotOwner
        };
        if alone && put.returned_at() < get.invoked && *ret != expected {
            found.push(format!(
                "{name}: acknowledged Put {value:?} by id{id}, then {:?} read {ret:?}",
                get.op
            ));
        }
    }
    found
}

/// No value readable by another ID: whatever a `Get` reads was put on its
/// name by its own ID.
fn foreign_values(calls: &[Call]) -> Vec<String> {
    let written: BTreeMap<&str, (&str, Id)> = calls
        .iter()
        .filter_map(|c| match &c.op {
            Op::Put { id, value } => Some((value.as_str(), (c.name.as_str(), *id))),
            _ => None,
        })
        .collect();
    calls
        .iter()
        .filter_map(|c| match c.ret() {
            Some(Ret::Value(value)) => {
                let reader = (c.name.as_str(), c.op.id());
                (written.get(value.as_str()) != Some(&reader)).then(|| {
                    format!(
                        "{}: id{} read {value:?}, which it never put there",
                        c.name, reader.1
                    )
                })
            }
            _ => None,
        })
        .collect()
}
