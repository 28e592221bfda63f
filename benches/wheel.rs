//! Throughput of the timer wheel at the scale the store runs it: a million
//! live TTLs spread over a day.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jackrabbit_dlm::rng::splitmix64;
use jackrabbit_dlm::store::wheel::{TimerId, Wheel};

const TIMERS: usize = 1_000_000;
const DAY_MS: u64 = 86_400_000;

/// Deterministic deadlines over a day, from the seed `state`.
fn deadlines(mut state: u64) -> Vec<u64> {
    (0..TIMERS)
        .map(|_| 1 + splitmix64(&mut state) % DAY_MS)
        .collect()
}

fn filled(deadlines: &[u64]) -> (Wheel<u64>, Vec<TimerId>) {
    let mut wheel = Wheel::new(0);
    let ids = deadlines
        .iter()
        .enumerate()
        .map(|(key, &deadline)| wheel.schedule(deadline, key as u64))
        .collect();
    (wheel, ids)
}

fn wheel(c: &mut Criterion) {
    let first = deadlines(1);
    let second = deadlines(2);

    let mut group = c.benchmark_group("wheel");
    // One iteration handles a million timers; a few samples are plenty.
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(TIMERS as u64));

    group.bench_function("schedule_1M_within_24h", |b| {
        b.iter_batched(
            || Wheel::new(0),
            |mut wheel| {
                for (key, &deadline) in first.iter().enumerate() {
                    black_box(wheel.schedule(deadline, key as u64));
                }
                wheel
            },
            BatchSize::PerIteration,
        )
    });

    // Refresh every live timer to a new deadline, alternating between two
    // sets so each pass really moves them.
    let (mut wheel, ids) = filled(&first);
    let mut flip = false;
    group.bench_function("reschedule_1M_live", |b| {
        b.iter(|| {
            let targets = if flip { &first } else { &second };
            flip = !flip;
            for (&id, &deadline) in ids.iter().zip(targets) {
                wheel.reschedule(id, deadline);
            }
        })
    });
    drop(wheel);

    group.bench_function("advance_1M_to_fire_all", |b| {
        b.iter_batched(
            || (filled(&first).0, Vec::with_capacity(TIMERS)),
            |(mut wheel, mut expired)| {
                wheel.advance(DAY_MS, usize::MAX, &mut expired);
                assert_eq!(expired.len(), TIMERS);
                (wheel, expired)
            },
            BatchSize::PerIteration,
        )
    });

    // The reactor's view: a turn every 10 ms, each firing at most 1024 keys.
    group.bench_function("advance_1M_in_10ms_turns", |b| {
        b.iter_batched(
            || (filled(&first).0, Vec::with_capacity(1024)),
            |(mut wheel, mut expired)| {
                let mut now = 0;
                while now < DAY_MS {
                    now += 10;
                    while wheel.advance(now, 1024, &mut expired) {
                        expired.clear();
                    }
                    expired.clear();
                }
                (wheel, expired)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, wheel);
criterion_main!(benches);
