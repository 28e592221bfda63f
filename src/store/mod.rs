//! The lock and data state machine. Pure: the current time is an argument.

pub mod wheel;
