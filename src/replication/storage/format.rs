//! The bytes of the durable log: segment files of checksummed records, and
//! snapshot files checksummed as a whole.
//!
//! Pure: bytes in, values out, and values in, bytes out; no file, no clock.
//! [`DiskStorage::open`](super::DiskStorage::open) decodes through
//! [`decode_segment`] and [`decode_snapshot`], and so does the `wal` fuzz
//! target, so what the fuzzer checks is what start-up runs. Nothing here
//! panics or allocates on a length read from the bytes before checking it
//! against the bytes actually there.
//!
//! A segment file:
//!
//! ```text
//! header  magic "JRDLMWAL" | version u32 | base u64 | crc32 u32 of the 20 bytes before
//! record  len u32 | crc32 u32 of kind and payload | kind u8 | payload (len bytes)
//! record  ...
//! ```
//!
//! Integers are little-endian. `base` is the index of the snapshot the
//! segment continues: its entries have indexes above it. A payload is the
//! protobuf encoding of an `Entry` (kind 1), a `HardState` (2) or a
//! `ConfState` (3). An entry whose index is at most the last one seen
//! replaces the entries from there on (raft's conflicting suffix).
//!
//! A snapshot file:
//!
//! ```text
//! magic "JRDLMSNP" | version u32 | metadata len u32 | SnapshotMetadata (protobuf)
//! | data len u64 | data | crc32 u32 of everything before
//! ```

use std::fmt;

use protobuf::Message;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

/// The first bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"JRDLMWAL";
/// The first bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"JRDLMSNP";
/// The format version this code writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Magic, version, base index, checksum.
pub const SEGMENT_HEADER_LEN: usize = 8 + 4 + 8 + 4;
/// Length, checksum, kind.
pub const RECORD_HEADER_LEN: usize = 4 + 4 + 1;
/// The longest record payload. A longer length in a file is corruption, not
/// an allocation; an entry longer than this is refused before it is written,
/// since it could not be read back.
pub const MAX_RECORD_BYTES: u32 = 64 << 20;
/// The longest snapshot metadata: a configuration of a few voters is tens of
/// bytes.
pub const MAX_SNAPSHOT_METADATA_BYTES: u32 = 1 << 20;
/// The largest log index a file may name. Raft counts entries one by one
/// from 1, so no real log comes near; a larger one is corruption, and
/// arithmetic on indexes cannot overflow.
pub const MAX_LOG_INDEX: u64 = 1 << 62;
/// Magic, version, metadata length.
const SNAPSHOT_HEAD_LEN: usize = 8 + 4 + 4;
/// The data length after the metadata, and the checksum at the end.
const SNAPSHOT_FIXED_LEN: usize = SNAPSHOT_HEAD_LEN + 8 + 4;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_CONF_STATE: u8 = 3;

/// What is wrong with the bytes, and where: the byte offset in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    offset: u64,
    kind: Corruption,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Corruption {
    ShortHeader {
        len: usize,
        need: usize,
    },
    BadMagic,
    UnsupportedVersion(u32),
    BadHeaderChecksum,
    RecordTooLong(u32),
    BadChecksum {
        stored: u32,
        computed: u32,
        after: u64,
    },
    UnknownKind(u8),
    BadPayload {
        kind: &'static str,
        why: String,
    },
    EntryDoesNotFollow {
        index: u64,
        last: u64,
        base: u64,
    },
    CommitPastLog {
        commit: u64,
        last: u64,
    },
    SnapshotBadChecksum {
        stored: u32,
        computed: u32,
    },
    SnapshotMetadataTooLong(u32),
    SnapshotLength {
        data: u64,
        room: u64,
    },
    IndexTooLarge(u64),
}

impl DecodeError {
    fn at(offset: usize, kind: Corruption) -> DecodeError {
        DecodeError {
            offset: offset as u64,
            kind,
        }
    }

    /// The byte offset in the file where the bad bytes start.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: ", self.offset)?;
        match &self.kind {
            Corruption::ShortHeader { len, need } => {
                write!(
                    f,
                    "file of {len} bytes, shorter than its {need}-byte header"
                )
            }
            Corruption::BadMagic => write!(f, "not a file of this kind (bad magic)"),
            Corruption::UnsupportedVersion(v) => {
                write!(f, "format version {v}, this build reads {FORMAT_VERSION}")
            }
            Corruption::BadHeaderChecksum => write!(f, "bad header checksum"),
            Corruption::RecordTooLong(len) => write!(
                f,
                "record length {len} above the maximum {MAX_RECORD_BYTES} (a bad record header)"
            ),
            Corruption::BadChecksum {
                stored,
                computed,
                after,
            } => write!(
                f,
                "record checksum {stored:#010x} should be {computed:#010x}, \
                 and {after} bytes follow it (corruption, not a torn tail)"
            ),
            Corruption::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
            Corruption::BadPayload { kind, why } => write!(f, "undecodable {kind}: {why}"),
            Corruption::EntryDoesNotFollow { index, last, base } => write!(
                f,
                "entry {index} does not follow the log, which ends at {last} \
                 (and starts after {base})"
            ),
            Corruption::CommitPastLog { commit, last } => write!(
                f,
                "hard state commits index {commit}, past the last entry {last}"
            ),
            Corruption::SnapshotBadChecksum { stored, computed } => write!(
                f,
                "snapshot checksum {stored:#010x} should be {computed:#010x}"
            ),
            Corruption::SnapshotMetadataTooLong(len) => write!(
                f,
                "snapshot metadata length {len} above the maximum {MAX_SNAPSHOT_METADATA_BYTES}"
            ),
            Corruption::IndexTooLarge(index) => {
                write!(f, "index {index} above the maximum {MAX_LOG_INDEX}")
            }
            Corruption::SnapshotLength { data, room } => write!(
                f,
                "snapshot data length {data}, but {room} bytes are there for it"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why the end of a segment was dropped: what a write cut short by a crash
/// leaves, on the last record with nothing valid after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TornReason {
    /// Fewer bytes than a record header.
    ShortHeader,
    /// The record's length reaches past the end of the file.
    ShortPayload,
    /// The last record's checksum is wrong and nothing follows it.
    BadChecksum,
    /// Zero bytes from the record on: the file was extended, not written.
    Zeroes,
}

/// The end of a segment that recovery drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Where the torn record starts: the file is cut here.
    pub offset: u64,
    /// What was wrong with it.
    pub reason: TornReason,
}

/// A segment, replayed: the state its records leave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedSegment {
    /// The snapshot index the segment continues from.
    pub base: u64,
    /// The last hard state written, if any.
    pub hard_state: Option<HardState>,
    /// The last configuration written, if any.
    pub conf_state: Option<ConfState>,
    /// The log after `base`, conflicting suffixes already replaced: entry
    /// `i` has index `base + 1 + i`.
    pub entries: Vec<Entry>,
    /// Whole records decoded.
    pub records: u64,
    /// The bytes of the header and of the whole records: the file's length
    /// once a torn tail is cut.
    pub valid_len: u64,
    /// The torn tail, if the file ends in one.
    pub torn: Option<TornTail>,
}

impl DecodedSegment {
    /// The index of the last entry (`base` when there is none).
    pub fn last_index(&self) -> u64 {
        self.base + self.entries.len() as u64
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

fn checksum(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

fn check_magic_and_version(bytes: &[u8], magic: &[u8; 8], need: usize) -> Result<(), DecodeError> {
    if bytes.len() < need {
        return Err(DecodeError::at(
            0,
            Corruption::ShortHeader {
                len: bytes.len(),
                need,
            },
        ));
    }
    if bytes[..8] != magic[..] {
        return Err(DecodeError::at(0, Corruption::BadMagic));
    }
    match u32_at(bytes, 8) {
        Some(FORMAT_VERSION) => Ok(()),
        Some(other) => Err(DecodeError::at(8, Corruption::UnsupportedVersion(other))),
        None => Err(DecodeError::at(0, Corruption::BadMagic)),
    }
}

fn parse<M: Message>(payload: &[u8], kind: &'static str, at: usize) -> Result<M, DecodeError> {
    M::parse_from_bytes(payload).map_err(|e| {
        DecodeError::at(
            at,
            Corruption::BadPayload {
                kind,
                why: e.to_string(),
            },
        )
    })
}

/// Decodes and replays a whole segment file.
///
/// A torn tail (see [`TornReason`]) is reported in
/// [`DecodedSegment::torn`], not as an error: the caller cuts the file at
/// [`DecodedSegment::valid_len`]. Everything else that is wrong is an
/// error: a bad file header, a record length above [`MAX_RECORD_BYTES`], a
/// bad checksum with more bytes after the record, an unknown kind, a
/// payload that is not its protobuf message, an entry whose index does not
/// follow, a last hard state committing past the log.
pub fn decode_segment(bytes: &[u8]) -> Result<DecodedSegment, DecodeError> {
    check_magic_and_version(bytes, &SEGMENT_MAGIC, SEGMENT_HEADER_LEN)?;
    let base = u64_at(bytes, 12).unwrap_or_default();
    let stored = u32_at(bytes, 20).unwrap_or_default();
    if checksum(&[&bytes[..20]]) != stored {
        return Err(DecodeError::at(20, Corruption::BadHeaderChecksum));
    }
    if base > MAX_LOG_INDEX {
        return Err(DecodeError::at(12, Corruption::IndexTooLarge(base)));
    }
    let mut segment = DecodedSegment {
        base,
        ..DecodedSegment::default()
    };
    let mut at = SEGMENT_HEADER_LEN;
    let mut hard_state_at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let Some((len, stored, kind)) = record_header(rest) else {
            segment.torn = Some(torn(at, TornReason::ShortHeader));
            break;
        };
        if len > MAX_RECORD_BYTES {
            return Err(DecodeError::at(at, Corruption::RecordTooLong(len)));
        }
        // `len` is at most 64 MiB, so this neither overflows nor truncates.
        let end = RECORD_HEADER_LEN + len as usize;
        let Some(body) = rest.get(8..end) else {
            segment.torn = Some(torn(at, TornReason::ShortPayload));
            break;
        };
        let computed = checksum(&[body]);
        if computed != stored {
            let after = rest.len() - end;
            if after == 0 {
                segment.torn = Some(torn(at, TornReason::BadChecksum));
            } else if rest.iter().all(|&b| b == 0) {
                segment.torn = Some(torn(at, TornReason::Zeroes));
            } else {
                return Err(DecodeError::at(
                    at,
                    Corruption::BadChecksum {
                        stored,
                        computed,
                        after: after as u64,
                    },
                ));
            }
            break;
        }
        replay(&mut segment, &mut hard_state_at, kind, &body[1..], at)?;
        segment.records += 1;
        at += end;
        segment.valid_len = at as u64;
    }
    segment.valid_len = segment.valid_len.max(SEGMENT_HEADER_LEN as u64);
    // Raft refuses (panics on) a commit index past its log, so that is
    // caught here, where it can still be reported with its place.
    let (commit, last) = (
        segment.hard_state.as_ref().map_or(0, |h| h.commit),
        segment.last_index(),
    );
    if commit > last {
        return Err(DecodeError::at(
            hard_state_at,
            Corruption::CommitPastLog { commit, last },
        ));
    }
    Ok(segment)
}

fn torn(at: usize, reason: TornReason) -> TornTail {
    TornTail {
        offset: at as u64,
        reason,
    }
}

fn record_header(rest: &[u8]) -> Option<(u32, u32, u8)> {
    Some((u32_at(rest, 0)?, u32_at(rest, 4)?, *rest.get(8)?))
}

fn replay(
    segment: &mut DecodedSegment,
    hard_state_at: &mut usize,
    kind: u8,
    payload: &[u8],
    at: usize,
) -> Result<(), DecodeError> {
    match kind {
        KIND_ENTRY => {
            let entry: Entry = parse(payload, "entry", at)?;
            let last = segment.last_index();
            if entry.index <= segment.base || entry.index > last + 1 {
                return Err(DecodeError::at(
                    at,
                    Corruption::EntryDoesNotFollow {
                        index: entry.index,
                        last,
                        base: segment.base,
                    },
                ));
            }
            // Entry `index` goes to position `index - base - 1`, which is at
            // most the vector's length, so this is in range.
            let keep =
                usize::try_from(entry.index - segment.base - 1).unwrap_or(segment.entries.len());
            segment.entries.truncate(keep);
            segment.entries.push(entry);
        }
        KIND_HARD_STATE => {
            segment.hard_state = Some(parse(payload, "hard state", at)?);
            *hard_state_at = at;
        }
        KIND_CONF_STATE => segment.conf_state = Some(parse(payload, "conf state", at)?),
        other => return Err(DecodeError::at(at, Corruption::UnknownKind(other))),
    }
    Ok(())
}

/// Decodes a whole snapshot file, checksum first.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    check_magic_and_version(bytes, &SNAPSHOT_MAGIC, SNAPSHOT_FIXED_LEN)?;
    let crc_at = bytes.len() - 4;
    let stored = u32_at(bytes, crc_at).unwrap_or_default();
    let computed = checksum(&[&bytes[..crc_at]]);
    if stored != computed {
        return Err(DecodeError::at(
            crc_at,
            Corruption::SnapshotBadChecksum { stored, computed },
        ));
    }
    let meta_len = u32_at(bytes, 12).unwrap_or_default();
    if meta_len > MAX_SNAPSHOT_METADATA_BYTES {
        return Err(DecodeError::at(
            12,
            Corruption::SnapshotMetadataTooLong(meta_len),
        ));
    }
    // At most 1 MiB: no truncation.
    let meta_end = SNAPSHOT_HEAD_LEN + meta_len as usize;
    let room = (crc_at as u64).saturating_sub(meta_end as u64 + 8);
    let data_len = u64_at(bytes, meta_end).filter(|&len| len == room);
    let (Some(meta), Some(_)) = (bytes.get(SNAPSHOT_HEAD_LEN..meta_end), data_len) else {
        return Err(DecodeError::at(
            meta_end.min(crc_at),
            Corruption::SnapshotLength {
                data: u64_at(bytes, meta_end).unwrap_or_default(),
                room,
            },
        ));
    };
    let metadata: SnapshotMetadata = parse(meta, "snapshot metadata", SNAPSHOT_HEAD_LEN)?;
    if metadata.index > MAX_LOG_INDEX {
        return Err(DecodeError::at(
            SNAPSHOT_HEAD_LEN,
            Corruption::IndexTooLarge(metadata.index),
        ));
    }
    let mut snapshot = Snapshot::default();
    snapshot.set_metadata(metadata);
    snapshot.data = bytes[meta_end + 8..crc_at].to_vec().into();
    Ok(snapshot)
}

/// Why a value cannot be written.
#[derive(Debug)]
pub enum EncodeError {
    /// The record's payload would be longer than [`MAX_RECORD_BYTES`].
    TooLong(u64),
    /// protobuf refused the message.
    Protobuf(protobuf::ProtobufError),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong(len) => write!(
                f,
                "a record of {len} bytes is above the maximum {MAX_RECORD_BYTES}"
            ),
            EncodeError::Protobuf(e) => write!(f, "cannot encode: {e}"),
        }
    }
}

/// Appends a segment's header to `out`.
pub fn encode_segment_header(base: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&SEGMENT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&base.to_le_bytes());
    let crc = checksum(&[&out[start..]]);
    out.extend_from_slice(&crc.to_le_bytes());
}

fn encode_record(kind: u8, message: &dyn Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.push(kind);
    if let Err(e) = message.write_to_vec(out) {
        out.truncate(start);
        return Err(EncodeError::Protobuf(e));
    }
    let payload = out.len() - start - RECORD_HEADER_LEN;
    let len = match u32::try_from(payload) {
        Ok(len) if len <= MAX_RECORD_BYTES => len,
        _ => {
            out.truncate(start);
            return Err(EncodeError::TooLong(payload as u64));
        }
    };
    let crc = checksum(&[&out[start + 8..]]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Appends an entry record to `out` (nothing when it fails).
pub fn encode_entry(entry: &Entry, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_record(KIND_ENTRY, entry, out)
}

/// Appends a hard state record to `out`.
pub fn encode_hard_state(hard_state: &HardState, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_record(KIND_HARD_STATE, hard_state, out)
}

/// Appends a configuration record to `out`.
pub fn encode_conf_state(conf_state: &ConfState, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_record(KIND_CONF_STATE, conf_state, out)
}

/// A whole segment that restates a state: the header, the hard state, the
/// configuration, then the entries (which must follow `base`).
pub fn encode_segment(
    base: u64,
    hard_state: &HardState,
    conf_state: &ConfState,
    entries: &[Entry],
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_segment_header(base, &mut out);
    encode_hard_state(hard_state, &mut out)?;
    encode_conf_state(conf_state, &mut out)?;
    for entry in entries {
        encode_entry(entry, &mut out)?;
    }
    Ok(out)
}

/// The bytes of a snapshot file before its data, and the checksum that
/// follows the data: a caller with a large snapshot writes
/// `head`, `data`, then the checksum, without copying the data.
pub fn encode_snapshot_head(
    metadata: &SnapshotMetadata,
    data: &[u8],
) -> Result<(Vec<u8>, [u8; 4]), EncodeError> {
    let mut head = Vec::new();
    head.extend_from_slice(&SNAPSHOT_MAGIC);
    head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let meta = metadata.write_to_bytes().map_err(EncodeError::Protobuf)?;
    let meta_len = u32::try_from(meta.len())
        .ok()
        .filter(|&len| len <= MAX_SNAPSHOT_METADATA_BYTES)
        .ok_or(EncodeError::TooLong(meta.len() as u64))?;
    head.extend_from_slice(&meta_len.to_le_bytes());
    head.extend_from_slice(&meta);
    head.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let crc = checksum(&[&head, data]);
    Ok((head, crc.to_le_bytes()))
}

/// A whole snapshot file in one buffer (tests and seeds).
pub fn encode_snapshot(metadata: &SnapshotMetadata, data: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let (mut out, crc) = encode_snapshot_head(metadata, data)?;
    out.extend_from_slice(data);
    out.extend_from_slice(&crc);
    Ok(out)
}
