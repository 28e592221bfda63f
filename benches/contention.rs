//! The real reactor in-process on loopback, with N client threads fighting
//! over K keys: each sends Lock (Expire 10) on a random key and, when it
//! gets Locked, Unlock. Throughput counts every request answered.
//!
//! Run: `cargo bench --bench contention`

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jackrabbit_dlm::config::Config;
use jackrabbit_dlm::server::Server;

/// Starts the server on a free loopback port in a background thread.
fn start_server() -> SocketAddr {
    let mut config = Config::for_tests();
    config.log_dir = std::env::temp_dir();
    let server = Server::bind(&config).expect("bind");
    let addr = server.local_addr();
    std::thread::spawn(move || server.run());
    addr
}

/// One fighter: a persistent connection doing lock/unlock rounds until told
/// to stop; adds the requests it got answered to `done`.
fn fighter(addr: SocketAddr, id: usize, keys: usize, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut rng = jackrabbit_dlm::rng::Rng::new(0, id as u64);
    let keys = u32::try_from(keys).expect("a few keys");
    let mut answered = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = rng.below(keys);
        let lock = format!(
            "{{\"ID\":\"f{id}\",\"FileName\":\"k{key}\",\"Action\":\"Lock\",\"Expire\":\"10\"}}\n"
        );
        writer.write_all(lock.as_bytes()).expect("send");
        line.clear();
        reader.read_line(&mut line).expect("reply");
        answered += 1;
        if line.contains("\"Locked\"") {
            let unlock =
                format!("{{\"ID\":\"f{id}\",\"FileName\":\"k{key}\",\"Action\":\"Unlock\"}}\n");
            writer.write_all(unlock.as_bytes()).expect("send");
            line.clear();
            reader.read_line(&mut line).expect("reply");
            answered += 1;
        }
    }
    done.fetch_add(answered, Ordering::Relaxed);
}

fn bench(c: &mut Criterion) {
    let addr = start_server();
    let mut group = c.benchmark_group("contention");
    for (clients, keys) in [(4usize, 1usize), (4, 1024), (16, 16)] {
        // Elements per iteration are set by the measured run itself: one
        // iteration is one answered request.
        group.throughput(Throughput::Elements(1));
        group.bench_function(
            BenchmarkId::new(format!("{clients}_clients"), format!("{keys}_keys")),
            |b| {
                b.iter_custom(|iters| {
                    let stop = Arc::new(AtomicBool::new(false));
                    let done = Arc::new(AtomicU64::new(0));
                    let start = Instant::now();
                    let threads: Vec<_> = (0..clients)
                        .map(|id| {
                            let (stop, done) = (stop.clone(), done.clone());
                            std::thread::spawn(move || fighter(addr, id, keys, stop, done))
                        })
                        .collect();
                    // Run until about `iters` requests have been answered.
                    while done.load(Ordering::Relaxed) < iters
                        && start.elapsed() < Duration::from_secs(30)
                    {
                        std::thread::sleep(Duration::from_millis(1));
                        if start.elapsed() > Duration::from_millis(50) {
                            break;
                        }
                    }
                    stop.store(true, Ordering::Relaxed);
                    for t in threads {
                        let _ = t.join();
                    }
                    let elapsed = start.elapsed();
                    let answered = done.load(Ordering::Relaxed).max(1);
                    // Scale to the time `iters` requests take at the rate seen.
                    elapsed.mul_f64(iters as f64 / answered as f64)
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
