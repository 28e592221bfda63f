//! The tokio client: many tasks share one connection, a pipeline reads
//! several items in one round trip, and a renewing guard keeps a lock
//! while the tasks work.
//!
//! Start a server (`cargo run --release --bin jackrabbit-dlm`), then
//!
//! ```text
//! cargo run --example async_client --features tokio -- [HOST] [PORT]
//! ```

use std::error::Error;
use std::time::Duration;

use jackrabbit_dlm::client::{AsyncClient, DEFAULT_PORT, Outcome, Pipeline};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = args.next().map_or(Ok(DEFAULT_PORT), |p| p.parse())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = AsyncClient::builder().host(host).port(port).build_async()?;
        println!("talking to {}", client.version().await?);
        let minute = Duration::from_secs(60);

        // Held and renewed on its own thread while the tasks below run.
        let guard = client
            .lock_renewing("async-example", Duration::from_secs(3))
            .await?;
        println!("holding async-example, token {:?}", guard.token());

        // Four tasks, one connection: their requests take turns on it.
        let tasks: Vec<_> = (0..4)
            .map(|n| {
                let item = client.handle(format!("async-example-{n}"));
                tokio::spawn(async move { item.put(format!("task {n} was here"), minute).await })
            })
            .collect();
        for task in tasks {
            task.await??;
        }

        // Read all four back in one round trip.
        let mut batch = Pipeline::new();
        for n in 0..4 {
            batch.get(&format!("async-example-{n}"));
        }
        for result in client.send(&batch).await {
            if let Outcome::Value(Some(value)) = result? {
                println!("{}", String::from_utf8_lossy(&value));
            }
        }
        println!("still held: {}", guard.is_held());
        guard.release()?;
        Ok(())
    })
}
