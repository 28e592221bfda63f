//! `peer`: what another cluster member sends, and what a log entry holds,
//! never panics a node, and everything that decodes means one thing.
//!
//! Input: the bytes, read both as a stream of replication frames
//! (`replication::wire`) and as a log entry (`replication::command`).
//!
//! - frames: `next_frame` never reads past the input or a frame over the
//!   limit; each frame it returns, encoded again, decodes to the same frame
//!   (a raft message: to one with the same known fields);
//! - entries: a decoded entry's commands, encoded again into a fresh entry
//!   with the same stamp, decode to the same commands (origins, every
//!   request field); `check_commands` on a batch's body agrees with walking
//!   its commands.

use jackrabbit_dlm::replication::command::{self, Command, EntryKind};
use jackrabbit_dlm::replication::wire::{self, Frame};

/// The frame limit the check reads with: small, so that over-limit
/// lengths are common.
const MAX_FRAME: usize = 4096;

pub fn check(data: &[u8]) {
    check_frames(data);
    check_entry(data);
}

fn check_frames(data: &[u8]) {
    let mut at = 0;
    while at < data.len() {
        match wire::next_frame(&data[at..], MAX_FRAME) {
            Ok(Some((frame, used))) => {
                assert!(used >= 5 && at + used <= data.len(), "took {used} at {at}");
                let mut again = Vec::new();
                match &frame {
                    Frame::Hello {
                        node,
                        settings,
                        addr,
                    } => wire::push_hello(&mut again, *node, *settings, addr),
                    Frame::Raft(m) => wire::push_raft(&mut again, m).expect("encodes"),
                    Frame::Relay(c) => wire::push_relay(&mut again, c),
                }
                let (back, n) = wire::next_frame(&again, usize::MAX >> 1)
                    .expect("re-encoded frame decodes")
                    .expect("whole");
                assert_eq!(n, again.len());
                match (&frame, &back) {
                    (
                        Frame::Hello {
                            node: a,
                            settings: s,
                            addr: x,
                        },
                        Frame::Hello {
                            node: b,
                            settings: t,
                            addr: y,
                        },
                    ) => assert_eq!((a, s, x), (b, t, y)),
                    // Compared by their known fields (protobuf's text form,
                    // which `Debug` prints): fields raft does not know are
                    // kept in a hash map, written back in no set order,
                    // and `==` tells an empty set of them from none.
                    (Frame::Raft(a), Frame::Raft(b)) => {
                        assert_eq!(format!("{a:?}"), format!("{b:?}"));
                    }
                    (Frame::Relay(a), Frame::Relay(b)) => assert_eq!(a, b),
                    _ => panic!("{frame:?} came back as {back:?}"),
                }
                at += used;
            }
            Ok(None) | Err(_) => break,
        }
    }
}

fn check_entry(data: &[u8]) {
    let Ok(entry) = command::decode(data) else {
        return;
    };
    let commands: Vec<_> = entry.commands().collect();
    if entry.kind != EntryKind::Batch {
        assert!(commands.is_empty());
        return;
    }
    let whole = commands.iter().all(Result::is_ok);
    let mut again = Vec::new();
    command::begin_batch(&mut again, entry.stamp);
    for c in commands.iter().flatten() {
        match c {
            Command::Request(origin, request) => {
                command::push_request(&mut again, *origin, request)
            }
            Command::Cancel(origin) => command::push_cancel(&mut again, *origin),
        }
    }
    let back = command::decode(&again).expect("re-encoded entry decodes");
    assert_eq!(back.stamp, entry.stamp);
    let back: Vec<_> = back
        .commands()
        .map(|c| c.expect("re-encoded command decodes"))
        .collect();
    let decoded: Vec<_> = commands.iter().flatten().collect();
    assert_eq!(back.len(), decoded.len());
    for (a, b) in decoded.iter().zip(&back) {
        match (a, b) {
            (Command::Request(oa, ra), Command::Request(ob, rb)) => {
                assert_eq!(oa, ob);
                assert_eq!(ra, rb);
            }
            (Command::Cancel(oa), Command::Cancel(ob)) => assert_eq!(oa, ob),
            _ => panic!("{a:?} came back as {b:?}"),
        }
    }
    assert!(
        command::check_commands(&again[10..]).is_ok(),
        "a whole batch checks"
    );
    if !whole {
        // The original's body does not check either.
        assert!(command::check_commands(&data[10..]).is_err());
    }
}
