//! The only module that does I/O: one `mio` reactor thread owns every
//! socket, the store and the statistics log.
//!
//! - [`reactor`]: the event loop, accept/read/write, limits, signals.
//! - [`connection`]: a connection's buffers and the socket-free request
//!   path (framing, decoding, parsing, applying, the reply queue).
//! - [`log`]: the statistics log, `JackrabbitDLM.log`.

pub mod connection;
pub mod log;
pub mod reactor;

pub use reactor::{Server, StartError};
