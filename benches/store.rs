//! The store alone (no parsing, no sockets): lock/unlock on one hot key and
//! across 1M keys, and put/get of 64-byte values.
//!
//! Run: `cargo bench --bench store`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jackrabbit_dlm::protocol::{Action, Request};
use jackrabbit_dlm::store::{Store, StoreConfig};
use jackrabbit_dlm::time::{Millis, Moment};

const MANY: usize = 1_000_000;

fn request<'a>(action: Action, name: &'a str, data: &'a str) -> Request<'a> {
    Request::new(action, "worker-17", name)
        .expect("a valid request")
        .with_expire(Millis::from_secs(60))
        .with_data(data)
}

fn bench(c: &mut Criterion) {
    let names: Vec<String> = (0..MANY).map(|i| format!("resource-{i:07}")).collect();
    let value = "v".repeat(64);

    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(2));
    let mut store = Store::new(StoreConfig::unbounded(), Moment::START);
    group.bench_function("lock_unlock_hot_key", |b| {
        let (lock, unlock) = (
            request(Action::Lock, "hot", ""),
            request(Action::Unlock, "hot", ""),
        );
        b.iter(|| {
            black_box(store.apply(Moment::from_ms(1), &lock).status());
            black_box(store.apply(Moment::from_ms(1), &unlock).status());
        })
    });

    // 1M keys, all held: a relock and a test of a random-looking key.
    let mut store = Store::new(StoreConfig::unbounded(), Moment::START);
    for n in &names {
        store.apply(Moment::from_ms(0), &request(Action::Lock, n, ""));
    }
    let mut i = 0usize;
    group.bench_function("relock_testlock_1M_keys", |b| {
        b.iter(|| {
            i = (i + 7_919) % MANY;
            black_box(
                store
                    .apply(Moment::from_ms(1), &request(Action::Lock, &names[i], ""))
                    .status(),
            );
            black_box(
                store
                    .apply(
                        Moment::from_ms(1),
                        &request(Action::TestLock, &names[i], ""),
                    )
                    .status(),
            );
        })
    });
    // 1M keys: unlock one and lock it again (a new hold and a new timer).
    group.bench_function("unlock_lock_1M_keys", |b| {
        b.iter(|| {
            i = (i + 7_919) % MANY;
            black_box(
                store
                    .apply(Moment::from_ms(1), &request(Action::Unlock, &names[i], ""))
                    .status(),
            );
            black_box(
                store
                    .apply(Moment::from_ms(1), &request(Action::Lock, &names[i], ""))
                    .status(),
            );
        })
    });
    drop(store);

    let mut store = Store::new(StoreConfig::unbounded(), Moment::START);
    for n in names.iter().take(4096) {
        store.apply(Moment::from_ms(0), &request(Action::Put, n, &value));
    }
    group.bench_function("put_get_64_bytes", |b| {
        b.iter(|| {
            i = (i + 1) % 4096;
            black_box(
                store
                    .apply(Moment::from_ms(1), &request(Action::Put, &names[i], &value))
                    .status(),
            );
            black_box(
                store
                    .apply(Moment::from_ms(1), &request(Action::Get, &names[i], ""))
                    .status(),
            );
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
