//! One connection, many names: a `Client` with per-name handles, and a
//! `Pipeline` that takes ten locks in one round trip.
//!
//! Start a server (`cargo run --release --bin jackrabbit-dlm`), then
//!
//! ```text
//! cargo run --example pipeline -- [HOST:PORT ...]
//! ```
//!
//! Several `HOST:PORT`s are the nodes of a cluster: the client talks to the
//! first that answers and moves on when one fails or answers `Unavailable`.

use std::error::Error;
use std::time::{Duration, Instant};

use jackrabbit_dlm::client::{Client, DEFAULT_PORT, Outcome, Pipeline};

fn main() -> Result<(), Box<dyn Error>> {
    let mut endpoints = Vec::new();
    for arg in std::env::args().skip(1) {
        let (host, port) = arg.rsplit_once(':').ok_or("give endpoints as HOST:PORT")?;
        endpoints.push((host.to_owned(), port.parse::<u16>()?));
    }
    if endpoints.is_empty() {
        endpoints.push(("127.0.0.1".to_owned(), DEFAULT_PORT));
    }
    let client = Client::builder().endpoints(endpoints).build()?;
    let minute = Duration::from_secs(60);

    // Ten locks, one write and ten replies read.
    let mut batch = Pipeline::new();
    for shard in 0..10 {
        batch.lock(&format!("shard-{shard}"), minute);
    }
    let started = Instant::now();
    let results = client.send(&batch);
    println!("10 locks in one round trip: {:?}", started.elapsed());
    for (shard, result) in results.iter().enumerate() {
        match result {
            Ok(Outcome::Locked(token)) => println!("shard-{shard}: held, token {token:?}"),
            Ok(other) => println!("shard-{shard}: {other:?}"),
            Err(e) => println!("shard-{shard}: {e}"),
        }
    }

    // A handle is one name on the same connection.
    let progress = client.handle("shard-progress");
    progress.put("10 shards locked", minute)?;
    println!(
        "progress: {}",
        String::from_utf8_lossy(&progress.get()?.unwrap_or_default())
    );

    // Release them all, again in one round trip.
    batch.clear();
    for shard in 0..10 {
        batch.unlock(&format!("shard-{shard}"));
    }
    batch.erase("shard-progress");
    let released = client
        .send(&batch)
        .into_iter()
        .filter(|r| matches!(r, Ok(Outcome::Unlocked(true))))
        .count();
    println!("released {released} locks");
    Ok(())
}
