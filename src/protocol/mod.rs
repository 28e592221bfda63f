//! Bytes to typed requests and typed replies to bytes.
//!
//! Pure: nothing here touches a socket or reads a clock.

pub mod codec;
