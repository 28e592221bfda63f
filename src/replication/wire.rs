//! The frames cluster members send each other over their replication
//! connections.
//!
//! Each connection carries frames one way, from the member that opened it:
//! a `Hello` naming the sender, then raft messages and relayed commands.
//!
//! ```text
//! frame = length:u32 (of kind and payload, little-endian) kind:u8 payload
//! kind  1 Hello    node:u64 settings:u64 addr (UTF-8, to the end, at most
//!                  255 bytes: where the sender listens for members, as in
//!                  --peers); settings: the fingerprint of the store
//!                  settings it decides with, which must be the receiver's
//!       2 Raft     a raft-rs Message, protobuf-encoded
//!       3 Relay    commands (see command.rs) for the leader to propose
//! ```
//!
//! Bound: a frame longer than the reader's limit is an error that closes
//! the connection (members reconnect); nothing a peer sends can panic or
//! make the reader allocate past the limit.
//!
//! Boundary: pure bytes ⇄ frames.

use std::fmt;

use protobuf::Message as _;
use raft::eraftpb::Message;

const KIND_HELLO: u8 = 1;
const KIND_RAFT: u8 = 2;
const KIND_RELAY: u8 = 3;
/// Bytes of a frame's length field.
const LEN: usize = 4;

/// One frame, decoded.
#[derive(Debug)]
pub enum Frame<'a> {
    Hello {
        node: u64,
        settings: u64,
        addr: &'a str,
    },
    Raft(Box<Message>),
    Relay(&'a [u8]),
}

/// A frame that cannot be read: the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    TooLong { len: usize, max: usize },
    Empty,
    UnknownKind(u8),
    BadHello,
    BadRaftMessage(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TooLong { len, max } => {
                write!(f, "a frame of {len} bytes, over the limit of {max}")
            }
            WireError::Empty => f.write_str("an empty frame"),
            WireError::UnknownKind(k) => write!(f, "a frame of unknown kind {k}"),
            WireError::BadHello => f.write_str("a malformed Hello"),
            WireError::BadRaftMessage(e) => write!(f, "a raft message that does not decode: {e}"),
        }
    }
}

impl std::error::Error for WireError {}

fn begin(out: &mut Vec<u8>, kind: u8, payload_len: usize) {
    let len = u32::try_from(payload_len + 1).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
}

/// The longest address a `Hello` carries.
pub const MAX_HELLO_ADDR: usize = 255;

/// Appends a `Hello` from `node`, which decides with store settings of
/// fingerprint `settings` and listens for members at `addr` (cut to
/// [`MAX_HELLO_ADDR`] bytes at a character boundary).
pub fn push_hello(out: &mut Vec<u8>, node: u64, settings: u64, addr: &str) {
    let mut end = addr.len().min(MAX_HELLO_ADDR);
    while !addr.is_char_boundary(end) {
        end -= 1;
    }
    begin(out, KIND_HELLO, 16 + end);
    out.extend_from_slice(&node.to_le_bytes());
    out.extend_from_slice(&settings.to_le_bytes());
    out.extend_from_slice(&addr.as_bytes()[..end]);
}

/// Appends a raft message.
pub fn push_raft(out: &mut Vec<u8>, message: &Message) -> Result<(), WireError> {
    let bytes = message
        .write_to_bytes()
        .map_err(|e| WireError::BadRaftMessage(e.to_string()))?;
    begin(out, KIND_RAFT, bytes.len());
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Appends relayed commands.
pub fn push_relay(out: &mut Vec<u8>, commands: &[u8]) {
    begin(out, KIND_RELAY, commands.len());
    out.extend_from_slice(commands);
}

/// The first whole frame of `buf`, with the bytes it took; `Ok(None)`
/// while the frame is incomplete. A frame longer than `max` is an error
/// as soon as its length is read.
pub fn next_frame(buf: &[u8], max: usize) -> Result<Option<(Frame<'_>, usize)>, WireError> {
    let Some(len) = buf.get(..LEN) else {
        return Ok(None);
    };
    let mut len_bytes = [0; LEN];
    len_bytes.copy_from_slice(len);
    let len = usize::try_from(u32::from_le_bytes(len_bytes)).unwrap_or(usize::MAX);
    if len == 0 {
        return Err(WireError::Empty);
    }
    if len > max {
        return Err(WireError::TooLong { len, max });
    }
    let Some(body) = buf.get(LEN..LEN + len) else {
        return Ok(None);
    };
    let (kind, payload) = (body[0], &body[1..]);
    let frame = match kind {
        KIND_HELLO => {
            let (node, rest) = payload
                .split_first_chunk::<8>()
                .ok_or(WireError::BadHello)?;
            let (settings, addr) = rest.split_first_chunk::<8>().ok_or(WireError::BadHello)?;
            if addr.len() > MAX_HELLO_ADDR {
                return Err(WireError::BadHello);
            }
            Frame::Hello {
                node: u64::from_le_bytes(*node),
                settings: u64::from_le_bytes(*settings),
                addr: std::str::from_utf8(addr).map_err(|_| WireError::BadHello)?,
            }
        }
        KIND_RAFT => Frame::Raft(Box::new(
            Message::parse_from_bytes(payload)
                .map_err(|e| WireError::BadRaftMessage(e.to_string()))?,
        )),
        KIND_RELAY => Frame::Relay(payload),
        other => return Err(WireError::UnknownKind(other)),
    };
    Ok(Some((frame, LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::MessageType;

    #[test]
    fn frames_round_trip_and_wait_for_their_last_byte() {
        let mut out = Vec::new();
        push_hello(&mut out, 7, 99, "127.0.0.1:7007");
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.to = 2;
        m.from = 7;
        m.term = 9;
        push_raft(&mut out, &m).unwrap();
        push_relay(&mut out, b"abc");
        for cut in 0..13 {
            assert!(next_frame(&out[..cut], 1024).unwrap().is_none(), "{cut}");
        }
        let (frame, used) = next_frame(&out, 1024).unwrap().unwrap();
        assert!(matches!(
            frame,
            Frame::Hello {
                node: 7,
                settings: 99,
                addr: "127.0.0.1:7007"
            }
        ));
        let rest = &out[used..];
        let (frame, used2) = next_frame(rest, 1024).unwrap().unwrap();
        let Frame::Raft(got) = frame else { panic!() };
        assert_eq!(*got, m);
        let (frame, used3) = next_frame(&rest[used2..], 1024).unwrap().unwrap();
        assert!(matches!(frame, Frame::Relay(b"abc")));
        assert_eq!(used + used2 + used3, out.len());
    }

    #[test]
    fn junk_is_an_error_never_a_panic_or_a_big_allocation() {
        assert_eq!(
            next_frame(&[0xff, 0xff, 0xff, 0x7f], 1 << 20).unwrap_err(),
            WireError::TooLong {
                len: 0x7fff_ffff,
                max: 1 << 20
            }
        );
        assert_eq!(next_frame(&[0, 0, 0, 0], 16).unwrap_err(), WireError::Empty);
        assert!(next_frame(&[2, 0, 0, 0, 9, 0], 16).is_err());
        assert!(next_frame(&[3, 0, 0, 0, 1, 1, 2], 16).is_err());
        assert!(next_frame(&[5, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff], 16).is_err());
    }
}
