//! Property checks behind the fuzz targets.
//!
//! Each module has one `check(data: &[u8])` that turns arbitrary bytes into a
//! scenario, runs it against the real code and against a naive model, and
//! panics when a property of PROTOCOL.md does not hold. The fuzz targets in
//! `fuzz_targets/` are one line each; `tests/fuzz_regressions.rs` in the main
//! package includes this file with `#[path]` and replays committed seeds and
//! every crash the fuzzers found through the same functions, on stable Rust.
//!
//! The scenarios are decoded from the bytes by hand (a few header bytes, then
//! raw payload) rather than with `arbitrary`, so that the payload stays the
//! contiguous byte string the dictionary's tokens can be spliced into, and so
//! the main package needs no extra dependency to replay them.

pub mod auth;
pub mod codec;
pub mod connection;
pub mod frame;
pub mod input;
pub mod peer;
pub mod request;
pub mod snapshot;
pub mod store;
pub mod wal;
