//! A job that runs longer than any TTL you would want for a crashed
//! holder: a `RenewingGuard` renews a 6 s hold every 2 s while the job
//! works, and the job checks it before each step.
//!
//! Start a server (`cargo run --release --bin jackrabbit-dlm`), then
//!
//! ```text
//! cargo run --example renewing_guard -- [HOST] [PORT]
//! ```
//!
//! Run it twice at once: the second waits (patiently, as the Python client
//! does) until the first is done. Stop the server while it runs to see the
//! hold reported lost.

use std::error::Error;
use std::thread;
use std::time::Duration;

use jackrabbit_dlm::client::{DEFAULT_PORT, Locker};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = args.next().map_or(Ok(DEFAULT_PORT), |p| p.parse())?;
    let mut locker = Locker::builder("renewing-example")
        .host(host)
        .port(port)
        .retries(60)
        .build()?;
    let guard = locker.lock_renewing(Duration::from_secs(6))?;
    println!("holding, token {:?}", guard.token());
    guard.on_lost(|why| eprintln!("lost the lock: {why}"));
    for step in 1..=10 {
        if !guard.is_held() {
            return Err("stopped: another worker may hold the lock now".into());
        }
        println!("step {step} of 10");
        thread::sleep(Duration::from_secs(1));
    }
    println!("released: {}", guard.release()?);
    Ok(())
}
