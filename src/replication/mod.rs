//! Replication and durable state: the Raft node (raft-rs's `RawNode`),
//! what its log entries carry, and the peer wire.
//!
//! - `command.rs`: the bytes of a log entry (a turn's requests, stamped
//!   with cluster time; a new leader's `Lead`);
//! - `node.rs`: `Replica`, the Raft node driven one turn at a time, and
//!   cluster time;
//! - `wire.rs`: the frames members send each other.
//!
//! Boundary: no sockets and no clock (the reactor drives everything here);
//! only the storage writes files.

pub mod command;
pub mod node;
pub mod wire;
