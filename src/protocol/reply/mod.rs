//! Typed replies to bytes.
//!
//! Replies are written by hand into the connection's output buffer: a reply
//! is a handful of fixed fragments plus at most an ID, a token and a value,
//! so a general serializer would only add cost. Strings are escaped as JSON
//! requires (`"`, `\` and control characters); everything else, including
//! non-ASCII UTF-8, is copied as it is.

use std::mem::MaybeUninit;

use crate::stats::{Counters, Figure};

/// The `Status` of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Locked,
    Unlocked,
    NotOwner,
    Done,
    NotFound,
    Version,
    Stats,
    BadPayload,
    BadAction,
    /// The memory guard refused to create or grow an entry.
    No,
    /// Upstream's answer for a data item it cannot read back. This server
    /// never sends it; clients know it.
    NoData,
    /// Upstream's answer for a damaged stored value. This server never
    /// sends it; clients know it.
    Corruption,
    /// A cluster node could not commit the request in time (PROTOCOL.md,
    /// Cluster): its effect is unknown. A single server never sends it.
    Unavailable,
    /// The answer to `Members` (cluster administration, ours).
    Members,
}

/// Each status's wire name, listed once. From the list come
/// [`Status::as_str`] and `write_head`, which appends `{"Status":"<name>"`
/// with one arm per status so that each copy has a length the compiler
/// knows (a few moves, not a `memcpy` call).
macro_rules! wire_names {
    ($($status:ident => $wire:literal,)*) => {
        impl Status {
            /// Every status, in the order of the list.
            pub const ALL: [Status; [$(Status::$status),*].len()] = [$(Status::$status),*];

            /// The status as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Status::$status => $wire,)*
                }
            }
        }

        /// Appends `{"Status":"<status>"`.
        fn write_head(out: &mut Vec<u8>, status: Status) {
            match status {
                $(Status::$status => out.extend_from_slice(
                    concat!("{\"Status\":\"", $wire, "\"").as_bytes()
                ),)*
            }
        }
    };
}

wire_names! {
    Locked => "Locked",
    Unlocked => "Unlocked",
    NotOwner => "NotOwner",
    Done => "Done",
    NotFound => "NotFound",
    Version => "Version",
    Stats => "Stats",
    BadPayload => "BadPayload",
    BadAction => "BadAction",
    No => "NO",
    NoData => "NoData",
    Corruption => "Corruption",
    Unavailable => "Unavailable",
    Members => "Members",
}

impl Status {
    /// The status named `text`, exactly as on the wire.
    pub fn from_wire(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A fencing token (`Token` on `Locked`): strictly greater for every new
/// hold the server grants, so a resource guarded by the lock can refuse a
/// writer whose token is below the highest it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(u64);

impl FencingToken {
    /// The token `value`.
    pub const fn new(value: u64) -> FencingToken {
        FencingToken(value)
    }

    /// The token as the number on the wire.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The token after this one (the last token stays the last: after
    /// 2^64 - 1 grants there is nothing greater to hand out).
    pub const fn next(self) -> FencingToken {
        FencingToken(self.0.saturating_add(1))
    }
}

impl std::fmt::Display for FencingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The value of `ID` in a `Version` reply.
pub const VERSION_ID: &str = concat!("JackrabbitDLM/", env!("CARGO_PKG_VERSION"));

/// A reply, borrowing its strings from the request or the store.
#[derive(Debug, Clone, Copy)]
pub enum Reply<'a> {
    /// `{"Status":...}` alone.
    Bare(Status),
    /// `{"Status":...,"ID":...}`: a status with the caller's ID.
    WithId(Status, &'a str),
    /// `{"Status":"Locked","ID":...,"Token":...}`: a `Lock` that holds.
    Locked { id: &'a str, token: FencingToken },
    /// `{"Status":"Locked","ID":...,"Token":...,"Mode":"Shared"}`: a shared
    /// `Lock` that holds.
    LockedShared { id: &'a str, token: FencingToken },
    /// `{"Status":"Locked","ID":...,"Mode":"Shared","Holders":...}`: a
    /// `TestLock` by one of the holders of a lock held shared.
    HeldShared { id: &'a str, holders: u32 },
    /// `{"Status":"Done","ID":...,"DataStore":...}`: a successful `Get`.
    Value { id: &'a str, data: &'a str },
    /// `{"Status":"Version","ID":"JackrabbitDLM/..."}`.
    Version,
    /// `{"Status":"Stats",...}` with every counter.
    Stats(&'a Counters),
    /// `Stats` of a cluster member: every counter, then `NodeId`, `Leader`,
    /// `Term`, `Committed` and `Applied` (PROTOCOL.md, Cluster).
    ClusterStats(&'a Counters, [(&'static str, u64); 5]),
    /// `{"Status":"Members",...}`: this node's place (as in `Stats`), then
    /// `Voters` (`"1,2,3"`) and `Peers` (`"1=HOST:PORT,..."`, the members'
    /// replication addresses as this node knows them).
    Members {
        place: [(&'static str, u64); 5],
        voters: &'a str,
        peers: &'a str,
    },
}

impl Reply<'_> {
    /// The reply's status.
    pub fn status(&self) -> Status {
        match *self {
            Reply::Bare(s) | Reply::WithId(s, _) => s,
            Reply::Locked { .. } | Reply::LockedShared { .. } | Reply::HeldShared { .. } => {
                Status::Locked
            }
            Reply::Value { .. } => Status::Done,
            Reply::Version => Status::Version,
            Reply::Stats(_) | Reply::ClusterStats(..) => Status::Stats,
            Reply::Members { .. } => Status::Members,
        }
    }

    /// Appends the reply's JSON object (without a newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_body(out);
        out.push(b'}');
    }

    /// Appends the reply's JSON object and the newline that ends it on the
    /// wire: the plain-line fast path, one fragment fewer than
    /// [`Reply::write_json`] plus a push.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        self.write_body(out);
        out.extend_from_slice(b"}\n");
    }

    /// Everything but the closing brace. Each arm copies fixed fragments
    /// whose lengths the compiler knows (see `wire_names!`) and reserves
    /// once for the variable parts.
    fn write_body(&self, out: &mut Vec<u8>) {
        match *self {
            Reply::Bare(status) => write_head(out, status),
            Reply::WithId(status, id) => {
                out.reserve(OWNER_ROOM + id.len());
                write_head(out, status);
                out.extend_from_slice(b",\"ID\":");
                write_json_string(out, id);
            }
            Reply::Locked { id, token } => {
                out.reserve(LOCKED_ROOM + id.len());
                write_head(out, Status::Locked);
                out.extend_from_slice(b",\"ID\":");
                write_json_string(out, id);
                out.extend_from_slice(b",\"Token\":");
                write_u64(out, token.get());
            }
            Reply::LockedShared { id, token } => {
                out.reserve(LOCKED_ROOM + MODE_ROOM + id.len());
                write_head(out, Status::Locked);
                out.extend_from_slice(b",\"ID\":");
                write_json_string(out, id);
                out.extend_from_slice(b",\"Token\":");
                write_u64(out, token.get());
                out.extend_from_slice(b",\"Mode\":\"Shared\"");
            }
            Reply::HeldShared { id, holders } => {
                out.reserve(LOCKED_ROOM + MODE_ROOM + id.len());
                write_head(out, Status::Locked);
                out.extend_from_slice(b",\"ID\":");
                write_json_string(out, id);
                out.extend_from_slice(b",\"Mode\":\"Shared\",\"Holders\":");
                write_u64(out, u64::from(holders));
            }
            Reply::Value { id, data } => {
                out.reserve(VALUE_ROOM + id.len() + data.len());
                write_head(out, Status::Done);
                out.extend_from_slice(b",\"ID\":");
                write_json_string(out, id);
                out.extend_from_slice(b",\"DataStore\":");
                write_json_string(out, data);
            }
            Reply::Version => {
                write_head(out, Status::Version);
                out.extend_from_slice(b",\"ID\":");
                write_json_string(out, VERSION_ID);
            }
            Reply::Stats(counters) => {
                write_head(out, Status::Stats);
                write_counters(out, counters);
            }
            Reply::ClusterStats(counters, place) => {
                write_head(out, Status::Stats);
                write_counters(out, counters);
                write_number_fields(out, place.into_iter());
            }
            Reply::Members {
                place,
                voters,
                peers,
            } => {
                write_head(out, Status::Members);
                write_number_fields(out, place.into_iter());
                out.extend_from_slice(b",\"Voters\":");
                write_json_string(out, voters);
                out.extend_from_slice(b",\"Peers\":");
                write_json_string(out, peers);
            }
        }
    }
}

/// Appends `,"Name":value` for each counter: integers, except MemoryMax,
/// with two decimals.
fn write_counters(out: &mut Vec<u8>, counters: &Counters) {
    for (name, value) in counters.fields() {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            Figure::Count(n) => write_u64(out, n),
            Figure::Hundredths(n) => {
                write_u64(out, n / 100);
                out.push(b'.');
                if n % 100 < 10 {
                    out.push(b'0');
                }
                write_u64(out, n % 100);
            }
        }
    }
}

/// Appends `,"Name":value` for each field.
fn write_number_fields(out: &mut Vec<u8>, fields: impl Iterator<Item = (&'static str, u64)>) {
    for (name, value) in fields {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        write_u64(out, value);
    }
}

/// Room for a reply's fixed fragments, its closing brace and newline, and
/// its two quotes per string: reserved up front with the strings' lengths so
/// that (unless a string needs escapes) the reply is written without growing.
const OWNER_ROOM: usize = 40;
const LOCKED_ROOM: usize = 64;
const VALUE_ROOM: usize = 48;
/// Room for `,"Mode":"Shared"` (and `,"Holders":` with its digits).
const MODE_ROOM: usize = 40;

/// Whether any byte of `chunk` (8 bytes, little-endian) needs escaping: a
/// control character (below 0x20), `"` or `\\`. Checks the eight bytes at
/// once (the classic "has a zero byte" bit trick, applied to the bytes
/// themselves and to their differences from `"` and `\\`).
fn chunk_needs_escape(chunk: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = chunk.wrapping_sub(ONES * 0x20) & !chunk;
    let quote = chunk ^ (ONES * b'"' as u64);
    let backslash = chunk ^ (ONES * b'\\' as u64);
    let is_quote = quote.wrapping_sub(ONES) & !quote;
    let is_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | is_quote | is_backslash) & HIGH != 0
}

/// Whether a byte must be escaped inside a JSON string.
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Strings of 8 to this many bytes take the word-by-word path of
/// [`append_short_clean`].
const SHORT_STRING: usize = 64;

/// Appends `s` as a quoted JSON string.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if (8..=SHORT_STRING).contains(&bytes.len()) && append_short_clean(out, bytes) {
        return;
    }
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most strings (IDs, base64 values) need no escape: find that out eight
    // bytes at a time and copy them whole.
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        if chunk_needs_escape(word_at(chunk, 0)) {
            break;
        }
        clean += 8;
    }
    while clean < bytes.len() && !needs_escape(bytes[clean]) {
        clean += 1;
    }
    out.extend_from_slice(&bytes[..clean]);
    if clean < bytes.len() {
        write_escaped(out, &bytes[clean..]);
    }
    out.push(b'"');
}

/// The eight bytes of `bytes` from `at`, as a little-endian word.
fn word_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// Appends `"bytes"` if none of its 8 to [`SHORT_STRING`] bytes needs an
/// escape, and says whether it did (appending nothing otherwise).
///
/// IDs and names are typically this short and clean, and for them a
/// `memcpy` call and the vector's per-push bookkeeping cost more than the
/// copy itself. So the string is checked and copied as eight-byte words
/// (the last word overlapping the one before it), each copy one store into
/// reserved room, and the length is set once.
fn append_short_clean(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let n = bytes.len();
    debug_assert!((8..=SHORT_STRING).contains(&n));
    let last = n - 8;
    let mut at = 0;
    while at < last {
        if chunk_needs_escape(word_at(bytes, at)) {
            return false;
        }
        at += 8;
    }
    if chunk_needs_escape(word_at(bytes, last)) {
        return false;
    }
    out.reserve(n + 2);
    let room = &mut out.spare_capacity_mut()[..n + 2];
    room[0].write(b'"');
    let mut at = 0;
    while at < last {
        put_word(room, 1 + at, word_at(bytes, at));
        at += 8;
    }
    put_word(room, 1 + last, word_at(bytes, last));
    room[n + 1].write(b'"');
    // SAFETY: the `n + 2` bytes past the length lie within the reserved
    // capacity (`room` was sliced from it) and were all written above: the
    // quote at 0, the words at 1 + [0, n) (the last word ends at n), the
    // quote at n + 1.
    unsafe { out.set_len(out.len() + n + 2) };
    true
}

/// Writes `word` (little-endian) into `room[at..at + 8]`: one store.
fn put_word(room: &mut [MaybeUninit<u8>], at: usize, word: u64) {
    let slot: &mut [MaybeUninit<u8>; 8] = (&mut room[at..at + 8])
        .try_into()
        .unwrap_or_else(|_| unreachable!("an eight-byte range"));
    *slot = word.to_le_bytes().map(MaybeUninit::new);
}

/// Appends `bytes`, escaping what JSON requires.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[copied..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
        copied = i + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
}

/// Appends the decimal digits of `n`.
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[cfg(test)]
mod tests;
