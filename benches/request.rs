//! The whole in-process path of one request: parse the line in place, apply
//! it to the store, encode the reply. Lock, Unlock, Put (64-byte value) and
//! Get, each on 4096 names, plain and table-encoded.
//!
//! A second group, `parse`, measures the floor under all of that: simd-json
//! alone filling its tape from a lockfight-shaped `Lock` line, and the whole
//! request parser (simd-json plus reading the fields) on the same lines.
//!
//! Run: `cargo bench --bench request`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jackrabbit_dlm::protocol::codec;
use jackrabbit_dlm::protocol::codec::Encoding;
use jackrabbit_dlm::protocol::request::{PADDING, Parser};
use jackrabbit_dlm::session::Session;
use jackrabbit_dlm::store::{Store, StoreConfig};
use jackrabbit_dlm::time::{Millis, Moment};

const NAMES: usize = 4096;

fn session() -> Session {
    let store = Store::new(
        StoreConfig {
            compact_after: u64::MAX,
            ..StoreConfig::unbounded()
        },
        Moment::START,
    );
    Session::new(store, Millis::from_secs(86_400), 256, 1 << 20)
}

/// One request line per name, optionally table-encoded.
fn lines(action: &str, extra: &str, encoding: Encoding) -> Vec<Vec<u8>> {
    (0..NAMES)
        .map(|i| {
            let json = format!(
                r#"{{"ID":"worker-17","FileName":"resource-{i}","Action":"{action}"{extra}}}"#
            );
            match encoding {
                Encoding::Plain => json.into_bytes(),
                Encoding::Table => codec::encode(json.as_bytes()).into_bytes(),
            }
        })
        .collect()
}

/// Answers every line once (as if each had just been read from a socket)
/// and returns how long that took.
fn answer_all(
    session: &mut Session,
    lines: &[Vec<u8>],
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Duration {
    let start = Instant::now();
    for line in lines {
        buf.clear();
        buf.extend_from_slice(line);
        let len = buf.len();
        buf.resize(len + PADDING, b' ');
        out.clear();
        black_box(session.answer_line(Moment::from_ms(1), buf, 0..len, out));
        black_box(&out);
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let value = "v".repeat(64);
    let put_extra = format!(r#","Expire":"60","DataStore":"{value}""#);
    for encoding in [Encoding::Plain, Encoding::Table] {
        let suffix = match encoding {
            Encoding::Plain => "plain",
            Encoding::Table => "encoded",
        };
        let lock = lines("Lock", r#","Expire":"60""#, encoding);
        let unlock = lines("Unlock", "", encoding);
        let put = lines("Put", &put_extra, encoding);
        let get = lines("Get", "", encoding);
        let erase = lines("Erase", "", encoding);

        let mut group = c.benchmark_group(format!("request/{suffix}"));
        group.throughput(Throughput::Elements(NAMES as u64));
        let mut e = session();
        let (mut buf, mut out) = (Vec::new(), Vec::new());

        // Lock on free names; unlocking them again is not timed.
        group.bench_function("lock", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += answer_all(&mut e, &lock, &mut buf, &mut out);
                    answer_all(&mut e, &unlock, &mut buf, &mut out);
                }
                total
            })
        });
        // Unlock held names; taking them is not timed.
        group.bench_function("unlock", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    answer_all(&mut e, &lock, &mut buf, &mut out);
                    total += answer_all(&mut e, &unlock, &mut buf, &mut out);
                }
                total
            })
        });
        // Put creating items; erasing them is not timed.
        group.bench_function("put_64_bytes", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += answer_all(&mut e, &put, &mut buf, &mut out);
                    answer_all(&mut e, &erase, &mut buf, &mut out);
                }
                total
            })
        });
        // Get of existing 64-byte items.
        answer_all(&mut e, &put, &mut buf, &mut out);
        group.bench_function("get_64_bytes", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += answer_all(&mut e, &get, &mut buf, &mut out);
                }
                total
            })
        });
        group.finish();
    }
}

/// The lines `lockfight` sends: `Lock` on `lf<nonce>r<n>` by `lf<nonce>c<n>`.
fn lockfight_lines() -> Vec<Vec<u8>> {
    (0..NAMES)
        .map(|i| {
            let mut line = format!(
                r#"{{"ID":"lf1764129000c{}","FileName":"lf1764129000r{i}","Action":"Lock","Expire":"10"}}"#,
                i % 32
            )
            .into_bytes();
            line.resize(line.len() + PADDING, b' ');
            line
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let lines = lockfight_lines();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(NAMES as u64));
    let mut buf = Vec::new();
    let mut buffers = simd_json::Buffers::default();
    // The tape's allocation is reused from line to line, as the server's is.
    let mut spare = Some(simd_json::Tape::null());
    group.bench_function("simd_json_tape_only", |b| {
        b.iter(|| {
            for line in &lines {
                buf.clone_from(line);
                let len = buf.len() - PADDING;
                let mut tape = spare.take().unwrap_or_else(simd_json::Tape::null).reset();
                let ok =
                    simd_json::fill_tape_padded(&mut buf, len, &mut buffers, &mut tape).is_ok();
                black_box(ok);
                spare = Some(tape.reset());
            }
        })
    });
    let mut parser = Parser::new(86_400_000);
    group.bench_function("request", |b| {
        b.iter(|| {
            for line in &lines {
                buf.clone_from(line);
                let len = buf.len() - PADDING;
                black_box(parser.parse(&mut buf, len).is_ok());
            }
        })
    });
    group.bench_function("copy_only", |b| {
        b.iter(|| {
            for line in &lines {
                buf.clone_from(line);
                black_box(&buf);
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench, parse
}
criterion_main!(benches);
