//! Jackrabbit DLM in Rust: a wire-compatible, single-reactor replacement for
//! the Jackrabbit DLM lock server.
//!
//! The crate, bottom-up (ARCHITECTURE.md walks it in more detail):
//!
//! - [`protocol`]: bytes to typed requests and replies to bytes. Pure.
//! - [`store`]: locks and data items with TTLs, on a timer wheel. Pure: the
//!   time is an argument.
//! - [`stats`]: the counters and the statistics log line.
//! - [`config`]: the command line, validated.
//! - [`server`]: the only module that does I/O: one `mio` reactor.
//! - [`client`]: the Rust client (`Locker`) that the `dlm` command line is
//!   built on; a user of the server, not a part of it.

pub mod client;
pub mod config;
pub mod protocol;
pub mod server;
pub mod session;
pub mod stats;
pub mod store;
pub mod time;
