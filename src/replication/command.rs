//! What a replicated log entry carries, and its bytes.
//!
//! Every committed entry is applied by every node to its own store, so an
//! entry holds everything the store decides from, and nothing a node
//! decides alone:
//!
//! - [`EntryKind::Batch`]: the requests (and withdrawals) that reached the
//!   leader in one turn, from its own clients and relayed by followers,
//!   stamped with the cluster time at which the leader proposed them;
//! - [`EntryKind::Lead`]: proposed by each new leader before anything else:
//!   its cluster time, and a floor for fencing tokens from its wall clock
//!   (so tokens keep growing even past a lost data directory). Applying it
//!   answers every parked `Wait` with `NotOwner` (PROTOCOL.md, Cluster).
//!
//! A request is carried already parsed and authenticated (its `NameTag`
//! included, never its Identity), so followers need neither the identity
//! directory nor the parser's settings to apply it, and each carries the
//! [`Origin`] that tells the node holding the client's connection which of
//! its requests it is.
//!
//! Format (little-endian), version 1:
//!
//! ```text
//! entry   = version:u8 kind:u8 stamp:u64 body
//! Batch   body = command*            (to the end of the entry)
//! Lead    body = token_floor:u64 node:u64
//! command = 1 origin:u64 action:u8 flags:u8 expire:u64 wait:u64
//!             [limit:u32 if flags&LIMIT] [tag:u64 if flags&TAG]
//!             id_len:u16 id name_len:u16 name data_len:u32 data
//!         | 2 origin:u64             (withdraw the parked request origin)
//! ```
//!
//! Decoding never panics and never allocates: every length is checked
//! against what remains, strings are borrowed from the entry. A command
//! that does not decode ends the batch ([`Commands`] yields the error),
//! which every node sees alike, since they all hold the same bytes.
//!
//! Boundary: pure bytes ⇄ values; no I/O, no store.

use std::fmt;
use std::num::NonZeroU64;

use crate::protocol::request::NameTag;
use crate::protocol::{Action, Mode, Request};
use crate::time::Millis;

/// The version byte every entry starts with.
pub const VERSION: u8 = 1;

const KIND_BATCH: u8 = 1;
const KIND_LEAD: u8 = 2;
const COMMAND_REQUEST: u8 = 1;
const COMMAND_CANCEL: u8 = 2;
const FLAG_SHARED: u8 = 1;
const FLAG_LIMIT: u8 = 2;
const FLAG_TAG: u8 = 4;
/// Bytes before an entry's body: version, kind, stamp.
const HEAD: usize = 10;

/// Which request of which node a command is: the node's ID in the top 16
/// bits, a per-node sequence number below (never zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(pub NonZeroU64);

impl Origin {
    /// The `seq`th request of node `node` (`seq` is taken modulo 2^48 and
    /// never 0).
    pub fn new(node: u16, seq: u64) -> Origin {
        let low = (seq & ((1 << 48) - 1)).max(1);
        let value = (u64::from(node) << 48) | low;
        Origin(NonZeroU64::new(value).unwrap_or(NonZeroU64::MIN))
    }

    /// The node the request reached.
    pub fn node(self) -> u64 {
        self.0.get() >> 48
    }
}

impl From<Origin> for crate::store::Origin {
    fn from(origin: Origin) -> crate::store::Origin {
        crate::store::Origin(origin.0)
    }
}

/// The two kinds of entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Batch,
    Lead { token_floor: u64, node: u64 },
}

/// A decoded entry: its kind, its cluster time, and (for a batch) its
/// commands, still as bytes.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub kind: EntryKind,
    /// Cluster time in milliseconds when the leader proposed it.
    pub stamp: u64,
    body: &'a [u8],
}

/// One command of a batch.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    /// A request to apply, from `origin`.
    Request(Origin, Request<'a>),
    /// Withdraw `origin`'s parked request (its connection closed).
    Cancel(Origin),
}

/// What was wrong with an entry's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the entry (or the relayed batch) where decoding failed.
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// Starts a batch entry stamped `stamp` in `out` (cleared first); append
/// commands with [`push_request`] / [`push_cancel`] or relayed bytes.
pub fn begin_batch(out: &mut Vec<u8>, stamp: u64) {
    out.clear();
    out.push(VERSION);
    out.push(KIND_BATCH);
    out.extend_from_slice(&stamp.to_le_bytes());
}

/// The bytes of a `Lead` entry.
pub fn lead(stamp: u64, token_floor: u64, node: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + 16);
    out.push(VERSION);
    out.push(KIND_LEAD);
    out.extend_from_slice(&stamp.to_le_bytes());
    out.extend_from_slice(&token_floor.to_le_bytes());
    out.extend_from_slice(&node.to_le_bytes());
    out
}

/// Appends `request` from `origin`. The request's strings obey
/// PROTOCOL.md's length rules (a [`Request`] cannot be made otherwise), so
/// their lengths fit the fields; a value longer than `u32::MAX` cannot be a
/// line under the line limit.
pub fn push_request(out: &mut Vec<u8>, origin: Origin, request: &Request<'_>) {
    let mut flags = 0;
    if request.mode() == Mode::Shared {
        flags |= FLAG_SHARED;
    }
    if request.limit().is_some() {
        flags |= FLAG_LIMIT;
    }
    if request.owner_name().is_some() {
        flags |= FLAG_TAG;
    }
    out.push(COMMAND_REQUEST);
    out.extend_from_slice(&origin.0.get().to_le_bytes());
    out.push(action_code(request.action()));
    out.push(flags);
    out.extend_from_slice(&request.expire().as_ms().to_le_bytes());
    out.extend_from_slice(&request.wait().as_ms().to_le_bytes());
    if let Some(limit) = request.limit() {
        out.extend_from_slice(&limit.to_le_bytes());
    }
    if let Some(NameTag(tag)) = request.owner_name() {
        out.extend_from_slice(&tag.to_le_bytes());
    }
    push_str16(out, request.id());
    push_str16(out, request.name());
    let data = request.data().as_bytes();
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&data[..len as usize]);
}

/// Appends the withdrawal of `origin`'s parked request.
pub fn push_cancel(out: &mut Vec<u8>, origin: Origin) {
    out.push(COMMAND_CANCEL);
    out.extend_from_slice(&origin.0.get().to_le_bytes());
}

fn push_str16(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn action_code(action: Action) -> u8 {
    match action {
        Action::Lock => 1,
        Action::Unlock => 2,
        Action::TestLock => 3,
        Action::Get => 4,
        Action::Put => 5,
        Action::Erase => 6,
        Action::Version => 7,
        Action::Stats => 8,
        Action::AddMember => 9,
        Action::RemoveMember => 10,
        Action::Members => 11,
    }
}

fn action_of(code: u8) -> Option<Action> {
    Action::ALL.into_iter().find(|&a| action_code(a) == code)
}

/// Decodes an entry's head; the commands of a batch come from
/// [`Entry::commands`].
pub fn decode(bytes: &[u8]) -> Result<Entry<'_>, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    if r.u8()? != VERSION {
        return Err(r.error(0, "unknown entry version"));
    }
    let kind = r.u8()?;
    let stamp = r.u64()?;
    let kind = match kind {
        KIND_BATCH => EntryKind::Batch,
        KIND_LEAD => {
            let token_floor = r.u64()?;
            let node = r.u64()?;
            if r.at != bytes.len() {
                return Err(r.error(r.at, "bytes after a Lead entry"));
            }
            EntryKind::Lead { token_floor, node }
        }
        _ => return Err(r.error(1, "unknown entry kind")),
    };
    Ok(Entry {
        kind,
        stamp,
        body: &bytes[r.at..],
    })
}

impl<'a> Entry<'a> {
    /// The commands of a batch, in order (none for a `Lead`).
    pub fn commands(&self) -> Commands<'a> {
        let body = match self.kind {
            EntryKind::Batch => self.body,
            EntryKind::Lead { .. } => &[],
        };
        Commands {
            r: Reader { bytes: body, at: 0 },
            failed: false,
        }
    }
}

/// Checks that `bytes` is a sequence of whole commands (what a follower
/// relays to the leader), so that a peer's garbage never enters the log.
pub fn check_commands(bytes: &[u8]) -> Result<usize, DecodeError> {
    let mut commands = Commands {
        r: Reader { bytes, at: 0 },
        failed: false,
    };
    let mut n = 0;
    for command in &mut commands {
        command?;
        n += 1;
    }
    Ok(n)
}

/// The commands of a batch; after an error, nothing more.
pub struct Commands<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl<'a> Commands<'a> {
    /// The commands in `bytes` (a batch's body, or relayed commands).
    pub fn of(bytes: &'a [u8]) -> Commands<'a> {
        Commands {
            r: Reader { bytes, at: 0 },
            failed: false,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.r.bytes.len() - self.r.at
    }
}

impl<'a> Iterator for Commands<'a> {
    type Item = Result<Command<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.at == self.r.bytes.len() {
            return None;
        }
        let command = self.r.command();
        self.failed = command.is_err();
        Some(command)
    }
}

/// A cursor over an entry's bytes that refuses to read past the end.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, offset: usize, what: &'static str) -> DecodeError {
        DecodeError { offset, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(DecodeError {
                offset: self.at,
                what: "entry ends early",
            })?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn str(&mut self, len: usize) -> Result<&'a str, DecodeError> {
        let at = self.at;
        std::str::from_utf8(self.take(len)?).map_err(|_| self.error(at, "a string is not UTF-8"))
    }

    fn origin(&mut self) -> Result<Origin, DecodeError> {
        let at = self.at;
        NonZeroU64::new(self.u64()?)
            .map(Origin)
            .ok_or(self.error(at, "origin 0"))
    }

    fn command(&mut self) -> Result<Command<'a>, DecodeError> {
        let start = self.at;
        match self.u8()? {
            COMMAND_CANCEL => Ok(Command::Cancel(self.origin()?)),
            COMMAND_REQUEST => {
                let origin = self.origin()?;
                let action =
                    action_of(self.u8()?).ok_or(self.error(self.at - 1, "unknown action"))?;
                let flags = self.u8()?;
                if flags & !(FLAG_SHARED | FLAG_LIMIT | FLAG_TAG) != 0 {
                    return Err(self.error(self.at - 1, "unknown flags"));
                }
                let expire = Millis::new(self.u64()?);
                let wait = Millis::new(self.u64()?);
                let limit = if flags & FLAG_LIMIT != 0 {
                    self.u32()?
                } else {
                    0
                };
                let tag = if flags & FLAG_TAG != 0 {
                    Some(NameTag(self.u64()?))
                } else {
                    None
                };
                let id_len = usize::from(self.u16()?);
                let id = self.str(id_len)?;
                let name_len = usize::from(self.u16()?);
                let name = self.str(name_len)?;
                let data_len = usize::try_from(self.u32()?).unwrap_or(usize::MAX);
                let data = self.str(data_len)?;
                let request = Request::new(action, id, name)
                    .map_err(|_| self.error(start, "ID or FileName too long"))?
                    .with_expire(expire)
                    .with_wait(wait)
                    .with_data(data)
                    .with_mode(if flags & FLAG_SHARED != 0 {
                        Mode::Shared
                    } else {
                        Mode::Exclusive
                    })
                    .with_limit(limit);
                let request = match tag {
                    Some(tag) => request.authenticated_as(tag),
                    None => request,
                };
                Ok(Command::Request(origin, request))
            }
            _ => Err(self.error(start, "unknown command")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request<'static> {
        Request::new(Action::Lock, "me", "door")
            .unwrap()
            .with_expire(Millis::new(5000))
            .with_wait(Millis::new(250))
            .with_mode(Mode::Shared)
            .with_limit(3)
            .authenticated_as(NameTag(0xfeed))
    }

    #[test]
    fn a_batch_round_trips_every_field() {
        let mut out = Vec::new();
        begin_batch(&mut out, 1234);
        let origin = Origin::new(3, 77);
        push_request(&mut out, origin, &request());
        let put = Request::new(Action::Put, "you", "k")
            .unwrap()
            .with_data("v\u{e9}");
        push_request(&mut out, Origin::new(1, 1), &put);
        push_cancel(&mut out, origin);
        let entry = decode(&out).unwrap();
        assert_eq!(entry.kind, EntryKind::Batch);
        assert_eq!(entry.stamp, 1234);
        let commands: Vec<_> = entry.commands().map(Result::unwrap).collect();
        assert_eq!(commands.len(), 3);
        let Command::Request(o, r) = commands[0] else {
            panic!("{:?}", commands[0])
        };
        assert_eq!(o, origin);
        assert_eq!(o.node(), 3);
        assert_eq!(r, request());
        let Command::Request(_, r) = commands[1] else {
            panic!()
        };
        assert_eq!(r, put);
        assert!(matches!(commands[2], Command::Cancel(o) if o == origin));
        assert_eq!(check_commands(&out[HEAD..]), Ok(3));
    }

    #[test]
    fn a_lead_entry_round_trips() {
        let bytes = lead(9, 1_700_000_000_000_000, 2);
        let entry = decode(&bytes).unwrap();
        assert_eq!(
            entry.kind,
            EntryKind::Lead {
                token_floor: 1_700_000_000_000_000,
                node: 2
            }
        );
        assert_eq!(entry.stamp, 9);
        assert_eq!(entry.commands().count(), 0);
    }

    #[test]
    fn every_truncation_and_junk_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        begin_batch(&mut out, 1);
        push_request(&mut out, Origin::new(1, 2), &request());
        for len in 0..out.len() {
            let cut = &out[..len];
            let ok = decode(cut).map(|e| e.commands().all(|c| c.is_ok()));
            // Only the empty batch (the head alone) is whole.
            assert_eq!(ok == Ok(true), len == HEAD, "length {len}");
        }
        for at in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[at] ^= 1 << bit;
                if let Ok(entry) = decode(&bad) {
                    for command in entry.commands() {
                        let _ = command;
                    }
                }
            }
        }
        assert!(decode(&[VERSION + 1, KIND_BATCH, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(check_commands(&[COMMAND_CANCEL, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn origins_keep_their_node_and_are_never_zero() {
        assert_eq!(Origin::new(5, 0).node(), 5);
        assert_eq!(Origin::new(0, 0).0.get(), 1);
        assert_ne!(Origin::new(2, 1), Origin::new(2, 2));
        assert_eq!(Origin::new(65535, u64::MAX).node(), 65535);
    }
}
