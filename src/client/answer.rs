//! What each answer means: one function per action, from a parsed reply to
//! the caller's result. Every client type ([`Locker`](super::Locker),
//! [`Client`](super::Client), the tokio client, the renewal thread) reads
//! replies through these, so a status means the same thing everywhere.

use std::collections::BTreeMap;

use super::codec::ErasedCodec;
use super::error::Error;
use super::wire::Reply;
use super::{FencingToken, Status};
use crate::protocol::action::Action;

/// `Lock`: the token of the hold (`None` from a server without the
/// fencing-token extension, such as upstream's).
pub(crate) fn locked(reply: Reply, name: &str) -> Result<Option<FencingToken>, Error> {
    match reply.status {
        Status::Locked => Ok(reply.token()),
        status => Err(Error::status_of(Action::Lock, name, status)),
    }
}

/// `Unlock`: whether this ID held the lock (`false`: nobody did).
pub(crate) fn unlocked(reply: Reply, name: &str) -> Result<bool, Error> {
    match reply.status {
        Status::Unlocked => Ok(reply.id().is_some()),
        status => Err(Error::status_of(Action::Unlock, name, status)),
    }
}

/// `TestLock`: `Locked` (this ID), `Unlocked` (nobody) or `NotOwner`.
pub(crate) fn tested(reply: Reply, name: &str) -> Result<Status, Error> {
    match reply.status {
        status @ (Status::Locked | Status::Unlocked | Status::NotOwner) => Ok(status),
        status => Err(Error::status_of(Action::TestLock, name, status)),
    }
}

/// `Put`: stored.
pub(crate) fn stored(reply: Reply, name: &str) -> Result<(), Error> {
    match reply.status {
        Status::Done => Ok(()),
        status => Err(Error::status_of(Action::Put, name, status)),
    }
}

/// `Get`: the value decoded by `codec`, `None` if there is none.
pub(crate) fn value(
    mut reply: Reply,
    name: &str,
    codec: &dyn ErasedCodec,
) -> Result<Option<Vec<u8>>, Error> {
    match reply.status {
        Status::Done => {
            let text = reply
                .take_data()
                .ok_or_else(|| Error::protocol("a Get reply without a DataStore string"))?;
            codec.decode_value(&text).map(Some).map_err(Error::codec)
        }
        Status::NotFound => Ok(None),
        status => Err(Error::status_of(Action::Get, name, status)),
    }
}

/// `Erase`: whether the item was there.
pub(crate) fn erased(reply: Reply, name: &str) -> Result<bool, Error> {
    match reply.status {
        Status::Done => Ok(true),
        Status::NotFound => Ok(false),
        status => Err(Error::status_of(Action::Erase, name, status)),
    }
}

/// `Version`: the server's version string.
pub(crate) fn version(reply: Reply, name: &str) -> Result<String, Error> {
    match (reply.status, reply.id()) {
        (Status::Version, Some(version)) => Ok(version.to_owned()),
        (Status::Version, None) => Err(Error::protocol("a Version reply without an ID")),
        (status, _) => Err(Error::status_of(Action::Version, name, status)),
    }
}

/// `Stats`: the counters by name.
pub(crate) fn stats(reply: Reply, name: &str) -> Result<BTreeMap<String, u64>, Error> {
    match reply.status {
        Status::Stats => Ok(reply
            .counters()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()),
        status => Err(Error::status_of(Action::Stats, name, status)),
    }
}

/// A cluster's members as one member sees them (`Members`, cluster
/// administration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The member that answered.
    pub node_id: u64,
    /// The leader it knows of (0: none).
    pub leader: u64,
    /// Its Raft term.
    pub term: u64,
    /// The voting members, by raft's configuration.
    pub voters: Vec<u64>,
    /// Every member's replication address that it knows, by ID.
    pub peers: BTreeMap<u64, String>,
}

/// `Members`: the membership.
pub(crate) fn membership(reply: Reply, name: &str) -> Result<Membership, Error> {
    if reply.status != Status::Members {
        return Err(Error::status_of(Action::Members, name, reply.status));
    }
    let number = |field| {
        reply
            .counters()
            .find(|&(n, _)| n == field)
            .map(|(_, v)| v)
            .ok_or_else(|| Error::protocol(format!("a Members reply without {field}")))
    };
    let text = |field| {
        reply
            .text(field)
            .ok_or_else(|| Error::protocol(format!("a Members reply without {field}")))
    };
    let bad = |field| Error::protocol(format!("a Members reply with a malformed {field}"));
    let voters = text("Voters")?
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().map_err(|_| bad("Voters")))
        .collect::<Result<Vec<u64>, Error>>()?;
    let mut peers = BTreeMap::new();
    for entry in text("Peers")?.split(',').filter(|p| !p.is_empty()) {
        let (id, addr) = entry.split_once('=').ok_or_else(|| bad("Peers"))?;
        peers.insert(id.parse().map_err(|_| bad("Peers"))?, addr.to_owned());
    }
    Ok(Membership {
        node_id: number("NodeId")?,
        leader: number("Leader")?,
        term: number("Term")?,
        voters,
        peers,
    })
}

/// `AddMember`, `RemoveMember`: the change is applied.
pub(crate) fn member_changed(reply: Reply, action: Action, name: &str) -> Result<(), Error> {
    match reply.status {
        Status::Done => Ok(()),
        status => Err(Error::status_of(action, name, status)),
    }
}

/// The answer to one request of a [`Pipeline`](super::Pipeline), by action.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// `Lock`: held, with the hold's fencing token (`None` from a server
    /// without fencing tokens, such as upstream's).
    Locked(Option<FencingToken>),
    /// `Unlock`: `true` if this ID held the lock, `false` if nobody did.
    Unlocked(bool),
    /// `TestLock`: `Locked` (this ID), `Unlocked` (nobody) or `NotOwner`.
    Tested(Status),
    /// `Put`: stored.
    Stored,
    /// `Get`: the value, decoded, or `None` if there is none.
    Value(Option<Vec<u8>>),
    /// `Erase`: `true` if the item was there.
    Erased(bool),
    /// `Version`: the server's version string.
    Version(String),
    /// `Stats`: the server's counters.
    Stats(BTreeMap<String, u64>),
}

/// `reply` read as the answer to `action` on `name`.
pub(crate) fn outcome(
    action: Action,
    reply: Reply,
    name: &str,
    codec: &dyn ErasedCodec,
) -> Result<Outcome, Error> {
    match action {
        Action::Lock => locked(reply, name).map(Outcome::Locked),
        Action::Unlock => unlocked(reply, name).map(Outcome::Unlocked),
        Action::TestLock => tested(reply, name).map(Outcome::Tested),
        Action::Put => stored(reply, name).map(|()| Outcome::Stored),
        Action::Get => value(reply, name, codec).map(Outcome::Value),
        Action::Erase => erased(reply, name).map(Outcome::Erased),
        Action::Version => version(reply, name).map(Outcome::Version),
        Action::Stats => stats(reply, name).map(Outcome::Stats),
        Action::AddMember | Action::RemoveMember | Action::Members => Err(Error::protocol(
            "cluster administration is not pipelined: use Locker::members and its kin",
        )),
    }
}
