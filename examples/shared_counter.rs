//! The shared counter done right: take the lock, read, write + 1, release,
//! with the hold's fencing token stored next to the count.
//!
//! Start a server (`cargo run --release --bin jackrabbit-dlm`), then
//!
//! ```text
//! cargo run --example shared_counter -- [HOST] [PORT] [WORKERS] [ROUNDS]
//! ```
//!
//! Each worker stands for a separate process: it has its own random ID for
//! the lock, so the server keeps workers apart. The count itself is a data
//! item owned by one shared ID (`shared-counter`), because a data item can
//! only be written by the ID that owns it.
//!
//! Why the token: a worker can stall (a long GC pause, a stopped VM) past
//! its hold's TTL while another worker takes the lock and writes. When the
//! stalled worker wakes it still believes it holds the lock. Writing its
//! token next to the count lets the next reader see that the last writer
//! held a newer hold, and the stale worker refuses to write. The data item
//! cannot refuse a write by itself, so here the check is the writer's; a
//! resource that can check (a database row updated `WHERE token <= ?`)
//! should do it there.

use std::error::Error;
use std::thread;
use std::time::Duration;

use jackrabbit_dlm::client::{DEFAULT_PORT, FencingToken, Locker};

/// How long a hold or the stored count lasts if a worker dies.
const EXPIRE: Duration = Duration::from_secs(30);

/// The stored text: `<count> <token of the hold that wrote it>`.
fn parse(stored: Option<Vec<u8>>) -> Result<(u64, FencingToken), Box<dyn Error>> {
    let Some(bytes) = stored else {
        return Ok((0, FencingToken::new(0)));
    };
    let text = String::from_utf8(bytes)?;
    let (count, token) = text.split_once(' ').ok_or("stored count has no token")?;
    Ok((count.parse()?, FencingToken::new(token.parse()?)))
}

fn worker(host: String, port: u16, rounds: u64) -> Result<(), Box<dyn Error + Send + Sync>> {
    let run = || -> Result<(), Box<dyn Error>> {
        let mut lock = Locker::builder("counter")
            .host(host.as_str())
            .port(port)
            .retries(10_000)
            .retry_sleep(Duration::from_millis(2))
            .build()?;
        let mut count = Locker::builder("counter")
            .host(host.as_str())
            .port(port)
            .id("shared-counter")
            .build()?;
        for _ in 0..rounds {
            let hold = lock.lock_guard(EXPIRE)?;
            let token = hold
                .token()
                .ok_or("this server hands out no fencing tokens (an upstream server?)")?;
            let (value, written_by) = parse(count.get()?)?;
            if written_by > token {
                return Err("a newer hold wrote the count: this worker's hold is stale".into());
            }
            count.put(format!("{} {token}", value + 1), EXPIRE)?;
            // `hold` drops here: the lock is released.
        }
        Ok(())
    };
    run().map_err(|e| e.to_string().into())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let host = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = args.get(1).map_or(Ok(DEFAULT_PORT), |p| p.parse())?;
    let workers: u64 = args.get(2).map_or(Ok(4), |n| n.parse())?;
    let rounds: u64 = args.get(3).map_or(Ok(100), |n| n.parse())?;

    let mut count = Locker::builder("counter")
        .host(host.as_str())
        .port(port)
        .id("shared-counter")
        .build()?;
    count.erase()?;

    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let host = host.clone();
            thread::spawn(move || worker(host, port, rounds))
        })
        .collect();
    for handle in handles {
        handle
            .join()
            .map_err(|_| "a worker panicked")?
            .map_err(|e| e.to_string())?;
    }

    let (value, token) = parse(count.get()?)?;
    println!(
        "count {value} (expected {}), last written under token {token}",
        workers * rounds
    );
    if value != workers * rounds {
        return Err("lost updates".into());
    }
    count.erase()?;
    Ok(())
}
