//! Jackrabbit DLM in Rust: a wire-compatible, single-reactor replacement for
//! the Jackrabbit DLM lock server.
//!
//! The crate, bottom-up (ARCHITECTURE.md walks it in more detail):
//!
//! - [`protocol`]: bytes to typed requests and replies to bytes. Pure.
//! - [`store`]: locks and data items with TTLs, on a timer wheel. Pure: the
//!   time is an argument.
//! - [`session`]: the socket-free request path: a connection's buffers,
//!   framing, decoding, parsing, applying, the parked-reply queue. Pure.
//! - [`stats`]: the counters and the statistics log line.
//! - [`config`]: the command line, validated (no I/O).
//! - [`server`]: the only module that does network I/O: one `mio` reactor.
//! - [`client`]: the Rust client (`Client`, `Locker`, `RenewingGuard`, and
//!   with the `tokio` feature `AsyncClient`) that the `dlm` command line is
//!   built on; a user of the server, not a part of it.
//! - [`rng`] and [`time`]: a small seeded generator for tests, benchmarks and
//!   lockfight, and the millisecond types.
//!
//! # Features
//!
//! Each part builds only what it needs; with no flags, everything is built.
//!
//! - `client`: [`client`], and the parts of [`protocol`] it speaks (the
//!   codec, the actions, the statuses and the string writer).
//! - `server`: [`store`], [`session`], [`config`], [`server`], the request parser and the
//!   line framer of [`protocol`], and the `jackrabbit-dlm` binary.
//! - `cli`: the `dlm` command line (with `client`).
//! - `lockfight`: the `lockfight` benchmark harness (with `client`).
//! - `tokio` (off by default): the client's `AsyncClient` (with `client`).
//!   The server never depends on tokio.
//!
//! A program that wants only the client depends on this crate with
//! `default-features = false, features = ["client"]`.

// The map above names every module; without a feature, its modules are not
// there to link to.
#![cfg_attr(
    not(all(feature = "client", feature = "server")),
    allow(rustdoc::broken_intra_doc_links, rustdoc::private_intra_doc_links)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod config;
pub mod protocol;
#[cfg(feature = "server")]
pub mod replication;
pub mod rng;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod session;
pub mod stats;
#[cfg(feature = "server")]
pub mod store;
pub mod time;
