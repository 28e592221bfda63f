//! Jackrabbit DLM in Rust.

pub mod protocol;
pub mod store;
