//! Bytes to typed requests, and typed replies to bytes.
//!
//! Pure: nothing here touches a socket or reads a clock. The pieces, in the
//! order a line meets them:
//!
//! - [`frame`] cuts a connection's byte stream into lines and enforces the
//!   line limit;
//! - [`codec`] undoes (and applies) the 78-character table encoding;
//! - [`request`] parses a plain JSON line in place into a [`Request`];
//! - [`reply`] writes a [`Reply`] as JSON.

pub mod action;
pub mod codec;
pub mod frame;
pub mod reply;
pub mod request;

pub use action::Action;
pub use codec::Encoding;
pub use reply::{FencingToken, Reply, Status};
pub use request::{ParseError, Parser, Request};
