//! Replication and durable state: the Raft log and snapshots on disk.

pub mod storage;
