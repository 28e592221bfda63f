//! Talking to the upstream (Python) Jackrabbit DLM server: table-encoded
//! lines, which is all the current upstream server reads, an authenticated
//! Name, and values in the table codec the Python client uses, so either
//! client reads what the other put.
//!
//! ```text
//! dlm identity new worker --dir /home/JackrabbitDLM/Config
//! cargo run --example upstream -- HOST PORT /home/JackrabbitDLM/Config/worker.cfg
//! ```
//!
//! Without the identity file argument it runs anonymously. It works the
//! same against this server.

use std::error::Error;
use std::time::Duration;

use jackrabbit_dlm::client::{DEFAULT_PORT, Encoding, Locker};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = args.next().map_or(Ok(DEFAULT_PORT), |p| p.parse())?;
    let mut builder = Locker::builder("upstream-example")
        .host(host)
        .port(port)
        .encoding(Encoding::Table);
    if let Some(file) = args.next() {
        builder = builder.name("worker").identity_file(file);
    }
    let mut locker = builder.build()?;
    println!("server: {}", locker.version()?);
    // Upstream hands out no fencing tokens: None there, Some here.
    let token = locker.try_lock(Duration::from_secs(30))?;
    println!("locked, fencing token {token:?}");
    locker.put(
        "a value the Python client can read",
        Duration::from_secs(60),
    )?;
    let value = locker.get()?.unwrap_or_default();
    println!("read back: {}", String::from_utf8_lossy(&value));
    locker.erase()?;
    locker.unlock()?;
    Ok(())
}
