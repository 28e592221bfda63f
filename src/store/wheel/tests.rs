//! The wheel against its rules: never early, O(1) moves, compaction, huge
//! clock jumps, and a model of sorted deadlines.

use super::*;
use crate::rng::splitmix64;
use proptest::prelude::*;
use std::collections::HashMap;

/// Advance without a limit; the fired keys, sorted.
fn advance_all<T: Copy + Ord>(wheel: &mut Wheel<T>, now: u64) -> Vec<T> {
    let mut fired = Vec::new();
    assert!(!wheel.advance(now, usize::MAX, &mut fired));
    assert_eq!(wheel.now(), now.max(wheel.now()));
    fired.sort_unstable();
    fired
}

/// Distances that sit on and around every level boundary, and beyond the
/// wheel's range.
fn boundaries() -> Vec<u64> {
    let mut out = vec![1, 2, 86_400_000];
    for k in 1..=8u32 {
        let p = 64u64.pow(k);
        out.extend([p - 1, p, p + 1]);
    }
    out
}

#[test]
fn node_is_small() {
    assert_eq!(size_of::<Node<u64>>(), 32);
    assert_eq!(size_of::<Node<u32>>(), 24);
}

#[test]
fn fires_at_the_deadline_not_before() {
    let starts = [
        0,
        1,
        37,
        4000,
        64u64.pow(3) - 3,
        64u64.pow(5) + 12_345,
        EPOCH_MASK - 2,
        (EPOCH_MASK + 1) * 5 + 7,
    ];
    for start in starts {
        for distance in boundaries() {
            let deadline = start + distance;
            let mut wheel = Wheel::new(start);
            let id = wheel.schedule(deadline, deadline);
            assert_eq!(wheel.deadline(id), deadline);
            assert_eq!(wheel.key(id), deadline);
            let next = wheel.next_deadline().expect("one timer is live");
            assert!(
                next > start && next <= deadline,
                "{start} {deadline} {next}"
            );
            assert!(
                advance_all(&mut wheel, deadline - 1).is_empty(),
                "{start} {deadline}"
            );
            assert_eq!(wheel.len(), 1);
            assert_eq!(wheel.now(), deadline - 1);
            assert_eq!(advance_all(&mut wheel, deadline), [deadline]);
            assert!(wheel.is_empty());
            assert_eq!(wheel.next_deadline(), None);
        }
    }
}

#[test]
fn every_millisecond_fires_exactly_its_timers() {
    let mut wheel = Wheel::new(0);
    let mut state = 1;
    let mut expected: HashMap<u64, Vec<u64>> = HashMap::new();
    for key in 0..3000 {
        let deadline = 1 + splitmix64(&mut state) % 20_000;
        wheel.schedule(deadline, key);
        expected.entry(deadline).or_default().push(key);
    }
    for now in 1..=20_000 {
        let mut want = expected.remove(&now).unwrap_or_default();
        want.sort_unstable();
        assert_eq!(advance_all(&mut wheel, now), want, "at {now}");
    }
    assert!(wheel.is_empty());
}

#[test]
fn hopping_by_next_deadline_fires_each_timer_at_its_deadline() {
    let mut wheel = Wheel::new(1_000);
    let mut state = 2;
    let mut deadlines = Vec::new();
    for key in 0..5000u64 {
        // Spread over every level and a few epochs beyond the wheel.
        let bits = splitmix64(&mut state) % 42;
        let deadline = 1_000 + splitmix64(&mut state) % (1 << bits);
        deadlines.push(deadline);
        wheel.schedule(deadline, key);
    }
    let mut fired = 0;
    while let Some(time) = wheel.next_deadline() {
        assert!(time >= wheel.now());
        for key in advance_all(&mut wheel, time) {
            assert_eq!(deadlines[usize::try_from(key).unwrap()], time.max(1_000));
            fired += 1;
        }
    }
    assert_eq!(fired, 5000);
}

#[test]
fn reschedule_moves_the_timer_without_leaving_a_copy() {
    let mut wheel = Wheel::new(0);
    let later = wheel.schedule(100, 1u32);
    let earlier = wheel.schedule(5_000, 2u32);
    wheel.reschedule(later, 300_000);
    wheel.reschedule(earlier, 50);
    assert_eq!(wheel.len(), 2);
    assert_eq!(wheel.deadline(later), 300_000);
    assert!(advance_all(&mut wheel, 49).is_empty());
    assert_eq!(advance_all(&mut wheel, 50), [2]);
    assert!(advance_all(&mut wheel, 299_999).is_empty());
    assert_eq!(wheel.len(), 1);
    assert_eq!(advance_all(&mut wheel, 300_000), [1]);
    assert!(advance_all(&mut wheel, 10_000_000).is_empty());
    assert!(wheel.is_empty());
}

#[test]
fn reschedule_within_the_same_slot_and_the_overflow_list() {
    let mut wheel = Wheel::new(0);
    let id = wheel.schedule(4_100, 1u8);
    wheel.reschedule(id, 4_101); // same level-2 slot
    let far = wheel.schedule(10 * (EPOCH_MASK + 1), 2u8);
    wheel.reschedule(far, 3 * (EPOCH_MASK + 1) + 5); // still overflow, earlier
    assert!(wheel.next_deadline().expect("live") <= 4_101);
    assert!(advance_all(&mut wheel, 4_100).is_empty());
    assert_eq!(advance_all(&mut wheel, 4_101), [1]);
    assert!(wheel.next_deadline().expect("live") <= 3 * (EPOCH_MASK + 1) + 5);
    assert!(advance_all(&mut wheel, 3 * (EPOCH_MASK + 1) + 4).is_empty());
    assert_eq!(advance_all(&mut wheel, 3 * (EPOCH_MASK + 1) + 5), [2]);
}

#[test]
fn cancel_removes_the_timer() {
    let mut wheel = Wheel::new(0);
    let a = wheel.schedule(10, 'a');
    let b = wheel.schedule(10, 'b');
    let c = wheel.schedule(1 << 40, 'c');
    assert_eq!(wheel.cancel(a), 'a');
    assert_eq!(wheel.cancel(c), 'c');
    assert!(!wheel.contains(a));
    assert_eq!(wheel.try_cancel(c), None);
    assert_eq!(wheel.len(), 1);
    assert_eq!(advance_all(&mut wheel, 1 << 41), ['b']);
    assert!(!wheel.contains(b));
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn deadlines_beyond_the_wheel_range() {
    let epoch = EPOCH_MASK + 1;
    let mut wheel = Wheel::new(epoch - 10);
    wheel.schedule(epoch + 5, 1u64); // near, but in the next epoch
    wheel.schedule(7 * epoch + 123, 2);
    wheel.schedule(u64::MAX, 3);
    wheel.schedule(u64::MAX - 1, 4);
    assert!(advance_all(&mut wheel, epoch + 4).is_empty());
    assert_eq!(advance_all(&mut wheel, epoch + 5), [1]);
    assert!(advance_all(&mut wheel, 7 * epoch + 122).is_empty());
    assert_eq!(advance_all(&mut wheel, 7 * epoch + 123), [2]);
    // One huge jump costs work per timer, not per epoch skipped.
    assert!(advance_all(&mut wheel, u64::MAX - 2).is_empty());
    assert_eq!(advance_all(&mut wheel, u64::MAX), [3, 4]);
    assert!(wheel.is_empty());
}

#[test]
fn deadlines_in_the_past_fire_at_the_next_advance() {
    let mut wheel = Wheel::new(1_000);
    let past = wheel.schedule(10, 1u8);
    wheel.schedule(1_000, 2);
    assert_eq!(wheel.next_deadline(), Some(1_000));
    assert_eq!(wheel.deadline(past), 10);
    assert_eq!(advance_all(&mut wheel, 1_000), [1, 2]);
    // Rescheduling into the past works the same way.
    let id = wheel.schedule(5_000, 3);
    wheel.reschedule(id, 0);
    assert_eq!(advance_all(&mut wheel, 1_000), [3]);
}

#[test]
fn a_lower_now_does_not_move_the_clock_back() {
    let mut wheel = Wheel::new(500);
    wheel.schedule(600, 1u8);
    assert!(advance_all(&mut wheel, 100).is_empty());
    assert_eq!(wheel.now(), 500);
    assert_eq!(advance_all(&mut wheel, 600), [1]);
}

#[test]
fn advance_with_a_limit_resumes_on_the_next_call() {
    let mut wheel = Wheel::new(0);
    for key in 0..100u32 {
        wheel.schedule(70 + u64::from(key % 3), key);
    }
    wheel.schedule(10_000, 1_000);
    let mut fired = Vec::new();
    assert!(wheel.advance(5_000, 40, &mut fired));
    assert_eq!(fired.len(), 40);
    assert!(wheel.now() <= 72);
    assert!(wheel.advance(5_000, 80, &mut fired));
    assert_eq!(fired.len(), 80);
    assert!(!wheel.advance(5_000, 200, &mut fired));
    assert_eq!(wheel.now(), 5_000);
    fired.sort_unstable();
    assert_eq!(fired, (0..100).collect::<Vec<_>>());
    // Reaching the limit exactly on the last due timer reports no more work.
    let mut more = Vec::new();
    assert!(!wheel.advance(10_000, 1, &mut more));
    assert_eq!(more, [1_000]);
    // A zero limit fires nothing but still says whether work is due.
    let id = wheel.schedule(10_000, 7);
    assert!(wheel.advance(10_000, 0, &mut Vec::new()));
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.cancel(id), 7);
}

#[test]
fn compact_keeps_every_timer_and_reports_moves() {
    let mut wheel = Wheel::new(0);
    let mut ids: HashMap<u64, TimerId> = HashMap::new();
    let mut state = 3;
    for key in 0..2000u64 {
        let deadline = splitmix64(&mut state) % (1 << 38);
        ids.insert(key, wheel.schedule(deadline, key));
    }
    for key in (0..2000).filter(|k| k % 3 != 0) {
        let id = ids.remove(&key).expect("scheduled");
        assert_eq!(wheel.cancel(id), key);
    }
    let live = wheel.len();
    let before = wheel.heap_bytes();
    let mut moves = 0;
    wheel.compact(|key, id| {
        assert!(ids.insert(key, id).is_some(), "moved a dead timer {key}");
        moves += 1;
    });
    assert!(moves > 0);
    assert_eq!(wheel.len(), live);
    assert_eq!(wheel.nodes.len(), live);
    assert!(wheel.heap_bytes() < before);
    for (&key, &id) in &ids {
        assert!((id.index() as usize) < live);
        assert_eq!(wheel.key(id), key);
    }
    // Links survived the moves: every timer still fires exactly once.
    let mut fired = advance_all(&mut wheel, u64::MAX);
    fired.dedup();
    assert_eq!(fired.len(), live);
}

#[test]
fn set_key_replaces_the_key() {
    let mut wheel = Wheel::new(0);
    let id = wheel.schedule(5, 1u8);
    wheel.set_key(id, 9);
    assert_eq!(wheel.key(id), 9);
    assert_eq!(advance_all(&mut wheel, 5), [9]);
}

/// A deadline relative to the wheel's clock, from the past to far beyond
/// the wheel's range, with extra weight on level boundaries.
fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        -100i64..=0,
        0i64..100,
        0i64..10_000,
        0i64..(1 << 27),
        0i64..(1 << 40),
        (1u32..=7, -1i64..=1).prop_map(|(k, d)| 64i64.pow(k) + d),
    ]
}

/// A clock jump: none, small, large, or huge.
fn jump() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..3,
        0u64..200,
        0u64..100_000,
        0u64..(1 << 31),
        0u64..(1 << 42),
        (1u32..=7, 0u64..=1).prop_map(|(k, d)| 64u64.pow(k) - d),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Schedule(i64),
    Reschedule(prop::sample::Index, i64),
    Cancel(prop::sample::Index),
    Advance(u64, usize),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => offset().prop_map(Op::Schedule),
        3 => (any::<prop::sample::Index>(), offset()).prop_map(|(i, o)| Op::Reschedule(i, o)),
        2 => any::<prop::sample::Index>().prop_map(Op::Cancel),
        4 => (jump(), prop_oneof![1usize..4, Just(usize::MAX)]).prop_map(|(j, l)| Op::Advance(j, l)),
        1 => Just(Op::Compact),
    ]
}

fn at(now: u64, offset: i64) -> u64 {
    now.saturating_add_signed(offset)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(800))]

    #[test]
    fn behaves_like_a_naive_model(
        start in prop_oneof![0u64..1000, 0u64..(1 << 40), Just(EPOCH_MASK - 50)],
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let mut wheel = Wheel::new(start);
        // The model: key -> (deadline, id); keys are never reused.
        let mut model: HashMap<u64, (u64, TimerId)> = HashMap::new();
        let mut live: Vec<u64> = Vec::new();
        let mut next_key = 0u64;
        for op in ops {
            match op {
                Op::Schedule(offset) => {
                    let deadline = at(wheel.now(), offset);
                    let id = wheel.schedule(deadline, next_key);
                    model.insert(next_key, (deadline, id));
                    live.push(next_key);
                    next_key += 1;
                }
                Op::Reschedule(index, offset) => {
                    if live.is_empty() {
                        continue;
                    }
                    let key = live[index.index(live.len())];
                    let deadline = at(wheel.now(), offset);
                    let entry = model.get_mut(&key).expect("live key");
                    wheel.reschedule(entry.1, deadline);
                    entry.0 = deadline;
                }
                Op::Cancel(index) => {
                    if live.is_empty() {
                        continue;
                    }
                    let key = live.swap_remove(index.index(live.len()));
                    let (_, id) = model.remove(&key).expect("live key");
                    prop_assert_eq!(wheel.cancel(id), key);
                }
                Op::Advance(jump, limit) => {
                    let target = wheel.now().saturating_add(jump);
                    loop {
                        let mut fired = Vec::new();
                        let more = wheel.advance(target, limit, &mut fired);
                        prop_assert!(fired.len() <= limit);
                        prop_assert!(wheel.now() <= target);
                        for key in &fired {
                            let (deadline, _) = model.remove(key).expect("fired once, while live");
                            prop_assert!(deadline <= wheel.now(), "{} fired at {}", deadline, wheel.now());
                        }
                        live.retain(|key| model.contains_key(key));
                        if !more {
                            break;
                        }
                        prop_assert_eq!(fired.len(), limit);
                    }
                    prop_assert_eq!(wheel.now(), target);
                    prop_assert!(model.values().all(|&(deadline, _)| deadline > target));
                }
                Op::Compact => {
                    let mut moved = Vec::new();
                    wheel.compact(|key, id| moved.push((key, id)));
                    for (key, id) in moved {
                        model.get_mut(&key).expect("moved a live timer").1 = id;
                    }
                    prop_assert_eq!(wheel.nodes.len(), wheel.len());
                }
            }
            prop_assert_eq!(wheel.len(), model.len());
            for (&key, &(deadline, id)) in &model {
                prop_assert_eq!(wheel.key(id), key);
                prop_assert_eq!(wheel.deadline(id), deadline);
            }
            match model.values().map(|&(deadline, _)| deadline).min() {
                None => prop_assert_eq!(wheel.next_deadline(), None),
                Some(min) => {
                    let next = wheel.next_deadline();
                    prop_assert!(next.is_some_and(|n| n <= min.max(wheel.now()) && n >= wheel.now()),
                        "next {:?}, min {}, now {}", next, min, wheel.now());
                }
            }
        }
    }
}
