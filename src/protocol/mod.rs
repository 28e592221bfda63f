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
//!
//! [`action`], [`codec`] and [`reply`] are shared with the client;
//! [`frame`] and [`request`] are the server's alone (feature `server`).

pub mod action;
pub mod codec;
#[cfg(feature = "server")]
pub mod frame;
pub mod reply;
#[cfg(feature = "server")]
pub mod request;

pub use action::{Action, Mode};
pub use codec::Encoding;
pub use reply::{FencingToken, Reply, Status};
#[cfg(feature = "server")]
pub use request::{ParseError, Parser, Request};

/// The port a server listens on, and a client connects to, unless told
/// otherwise.
pub const DEFAULT_PORT: u16 = 37373;
