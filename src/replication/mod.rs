//! Replication and durable state: the Raft node (raft-rs's `RawNode`),
//! what its log entries carry, the peer wire, and the log and snapshots on
//! disk.
//!
//! - `command.rs`: the bytes of a log entry (a turn's requests, stamped
//!   with cluster time; a new leader's `Lead`);
//! - `node.rs`: `Replica`, the Raft node driven one turn at a time, and
//!   cluster time;
//! - `wire.rs`: the frames members send each other;
//! - `storage.rs`: `DiskStorage`, the durable log and snapshots under raft;
//! - `syncer.rs`: `Syncer`, the thread that fsyncs the log while the
//!   reactor goes on serving.
//!
//! Boundary: no sockets and no clock (the reactor drives everything here);
//! only the storage touches files, and only the syncer's thread waits for
//! the disk.

pub mod command;
pub mod node;
pub mod storage;
pub mod syncer;
pub mod wire;
