//! `wal`: the durable log's decoders, the ones `DiskStorage::open` runs,
//! never panic on any bytes, and what they accept is what recovery keeps.
//!
//! Input: the bytes of a file, decoded as a log segment and as a snapshot;
//! then a copy with every checksum made right (the header's and each
//! record's for a segment, the whole file's for a snapshot), so the fuzzer
//! reaches the payloads, the index rules and the lengths behind the
//! checksums instead of stopping at them. Seeds are real files.
//!
//! For a segment that decodes:
//! - the entries follow the base without a gap;
//! - the valid length is within the input, and is all of it unless a torn
//!   tail was found there;
//! - the valid prefix alone (the file once recovery cuts the torn tail)
//!   decodes to the same state, with no torn tail;
//! - the state restated as a new segment (what compaction writes) decodes
//!   to the same state, and a next entry appended to the valid prefix is
//!   read back.
//!
//! For a snapshot that decodes: encoding it again and decoding gives the
//! same snapshot.

use jackrabbit_dlm::replication::storage::format::{
    self, DecodedSegment, MAX_RECORD_BYTES, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use jackrabbit_dlm::replication::storage::{decode_segment, decode_snapshot};

pub fn check(data: &[u8]) {
    check_segment(data);
    check_segment(&with_segment_checksums(data));
    check_snapshot(data);
    check_snapshot(&with_snapshot_checksum(data));
}

fn check_segment(data: &[u8]) {
    let Ok(segment) = decode_segment(data) else {
        return;
    };
    for (i, entry) in segment.entries.iter().enumerate() {
        assert_eq!(entry.index, segment.base + 1 + i as u64, "entries follow");
    }
    let valid = usize::try_from(segment.valid_len).expect("valid length");
    assert!(valid <= data.len());
    match segment.torn {
        None => assert_eq!(valid, data.len(), "whole file valid"),
        Some(torn) => assert_eq!(torn.offset, segment.valid_len, "cut where torn"),
    }

    let cut = decode_segment(&data[..valid]).expect("the valid prefix decodes");
    assert_eq!(cut.torn, None);
    assert_eq!(
        state(&cut),
        state(&segment),
        "cutting the tail loses nothing"
    );

    let restated = format::encode_segment(
        segment.base,
        &segment.hard_state.clone().unwrap_or_default(),
        &segment.conf_state.clone().unwrap_or_default(),
        &segment.entries,
    );
    // Only a payload near the record maximum could fail to encode, and
    // then it could not have been decoded.
    let restated = decode_segment(&restated.expect("restated")).expect("restated decodes");
    assert_eq!(known(&restated.entries), known(&segment.entries));
    assert_eq!(
        known(&restated.hard_state.unwrap_or_default()),
        known(&segment.hard_state.clone().unwrap_or_default())
    );

    let mut next = segment.entries.last().cloned().unwrap_or_default();
    // The base is at most 2^62, so this cannot overflow.
    next.index = segment.last_index() + 1;
    let mut appended = data[..valid].to_vec();
    if format::encode_entry(&next, &mut appended).is_ok() {
        let appended = decode_segment(&appended).expect("an appended entry decodes");
        assert_eq!(appended.last_index(), next.index);
        assert_eq!(known(&appended.entries.last()), known(&Some(&next)));
    }
}

/// What recovery takes from a segment.
fn state(segment: &DecodedSegment) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        segment.base,
        &segment.hard_state,
        &segment.conf_state,
        &segment.entries,
        segment.records,
        segment.valid_len,
    )
}

/// The header's and every record's checksum rewritten to match.
fn with_segment_checksums(data: &[u8]) -> Vec<u8> {
    let mut bytes = data.to_vec();
    if bytes.len() < SEGMENT_HEADER_LEN {
        return bytes;
    }
    let crc = crc32(&bytes[..20]);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    let mut at = SEGMENT_HEADER_LEN;
    while at + RECORD_HEADER_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if len > MAX_RECORD_BYTES {
            break;
        }
        let end = at + RECORD_HEADER_LEN + usize::try_from(len).expect("record length");
        if end > bytes.len() {
            break;
        }
        let crc = crc32(&bytes[at + 8..end]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
    bytes
}

/// The last four bytes rewritten to the checksum of the rest.
fn with_snapshot_checksum(data: &[u8]) -> Vec<u8> {
    let mut bytes = data.to_vec();
    if let Some(crc_at) = bytes.len().checked_sub(4) {
        let crc = crc32(&bytes[..crc_at]);
        bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
    }
    bytes
}

fn check_snapshot(data: &[u8]) {
    let Ok(snapshot) = decode_snapshot(data) else {
        return;
    };
    let again = format::encode_snapshot(snapshot.get_metadata(), &snapshot.data)
        .expect("a decoded snapshot encodes");
    assert_eq!(
        known(&decode_snapshot(&again).expect("decodes again")),
        known(&snapshot)
    );
}

/// A protobuf value's known fields (its text form, which `Debug` prints):
/// what a round trip keeps. `==` also compares the fields raft does not
/// know, which come back in another order, and tells an empty set of them
/// from none.
fn known<T: std::fmt::Debug>(value: &T) -> String {
    format!("{value:?}")
}

/// CRC-32 (IEEE), bit by bit: independent of the crate the decoder uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
