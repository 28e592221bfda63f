//! Typed replies to bytes.
//!
//! Replies are written by hand into the connection's output buffer: a reply
//! is a handful of fixed fragments plus at most an ID, a token and a value,
//! so a general serializer would only add cost. Strings are escaped as JSON
//! requires (`"`, `\` and control characters); everything else, including
//! non-ASCII UTF-8, is copied as it is.

use crate::stats::Counters;
use crate::store::Ticket;

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
    /// Internal: a parked request (never sent; see [`Reply::Parked`]).
    Waiting,
}

impl Status {
    /// The status as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Locked => "Locked",
            Status::Unlocked => "Unlocked",
            Status::NotOwner => "NotOwner",
            Status::Done => "Done",
            Status::NotFound => "NotFound",
            Status::Version => "Version",
            Status::Stats => "Stats",
            Status::BadPayload => "BadPayload",
            Status::BadAction => "BadAction",
            Status::No => "NO",
            Status::Waiting => "Waiting",
        }
    }

    /// The status named `text`, exactly as on the wire.
    pub fn from_wire(text: &str) -> Option<Status> {
        [
            Status::Locked,
            Status::Unlocked,
            Status::NotOwner,
            Status::Done,
            Status::NotFound,
            Status::Version,
            Status::Stats,
            Status::BadPayload,
            Status::BadAction,
            Status::No,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The value of `ID` in a `Version` reply.
pub const VERSION_ID: &str = concat!("JackrabbitDLM/", env!("CARGO_PKG_VERSION"));

/// A reply, borrowing its strings from the request or the store.
#[derive(Debug, Clone, Copy)]
pub enum Reply<'a> {
    /// `{"Status":...}` alone.
    Bare(Status),
    /// `{"Status":...,"ID":...}`.
    Owner(Status, &'a str),
    /// `{"Status":"Locked","ID":...,"Token":...}`: a `Lock` that holds.
    Locked { id: &'a str, token: u64 },
    /// `{"Status":"Done","ID":...,"DataStore":...}`: a successful `Get`.
    Value { id: &'a str, data: &'a str },
    /// `{"Status":"Version","ID":"JackrabbitDLM/..."}`.
    Version,
    /// `{"Status":"Stats",...}` with every counter.
    Stats(&'a Counters),
    /// Not a wire reply: the request waits in a lock's queue (the `Wait`
    /// extension) and is answered later, when its ticket completes.
    Parked { ticket: Ticket, id: &'a str },
}

impl Reply<'_> {
    /// The reply's status.
    pub fn status(&self) -> Status {
        match *self {
            Reply::Bare(s) | Reply::Owner(s, _) => s,
            Reply::Locked { .. } => Status::Locked,
            Reply::Value { .. } => Status::Done,
            Reply::Version => Status::Version,
            Reply::Stats(_) => Status::Stats,
            Reply::Parked { .. } => Status::Waiting,
        }
    }

    /// Appends the reply's JSON object (without a newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"Status\":\"");
        out.extend_from_slice(self.status().as_str().as_bytes());
        out.push(b'"');
        match *self {
            Reply::Bare(_) | Reply::Parked { .. } => {}
            Reply::Owner(_, id) => write_field(out, b",\"ID\":", id),
            Reply::Locked { id, token } => {
                write_field(out, b",\"ID\":", id);
                out.extend_from_slice(b",\"Token\":");
                write_u64(out, token);
            }
            Reply::Value { id, data } => {
                write_field(out, b",\"ID\":", id);
                write_field(out, b",\"DataStore\":", data);
            }
            Reply::Version => write_field(out, b",\"ID\":", VERSION_ID),
            Reply::Stats(counters) => {
                for (name, value) in counters.fields() {
                    out.extend_from_slice(b",\"");
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(b"\":");
                    write_u64(out, value);
                }
            }
        }
        out.push(b'}');
    }
}

fn write_field(out: &mut Vec<u8>, key: &[u8], value: &str) {
    out.extend_from_slice(key);
    write_json_string(out, value);
}

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

/// Appends `s` as a quoted JSON string.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most strings (IDs, base64 values) need no escape: find that out eight
    // bytes at a time and copy them whole.
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        if chunk_needs_escape(word) {
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
mod tests {
    use super::*;

    fn json(reply: Reply<'_>) -> String {
        let mut out = Vec::new();
        reply.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn protocol_examples() {
        assert_eq!(
            json(Reply::Locked {
                id: "w1",
                token: 1764129000000017
            }),
            r#"{"Status":"Locked","ID":"w1","Token":1764129000000017}"#
        );
        assert_eq!(
            json(Reply::Bare(Status::NotOwner)),
            r#"{"Status":"NotOwner"}"#
        );
        assert_eq!(
            json(Reply::Value {
                id: "w1",
                data: "aGVsbG8="
            }),
            r#"{"Status":"Done","ID":"w1","DataStore":"aGVsbG8="}"#
        );
        assert_eq!(
            json(Reply::Version),
            format!(
                r#"{{"Status":"Version","ID":"JackrabbitDLM/{}"}}"#,
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(json(Reply::Bare(Status::No)), r#"{"Status":"NO"}"#);
    }

    #[test]
    fn strings_survive_a_json_round_trip() {
        let nasty = "q\"b\\s\n\r\t\u{0}\u{1f}\u{7f}é中😀/";
        let text = json(Reply::Value {
            id: nasty,
            data: nasty,
        });
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["ID"], nasty);
        assert_eq!(parsed["DataStore"], nasty);
    }

    proptest::proptest! {
        /// Escapes are found wherever they fall: in a whole eight-byte word,
        /// in the padded tail, or right at a word boundary.
        #[test]
        fn any_string_survives_a_json_round_trip(
            prefix in "[a-z0-9]{0,20}",
            nasty in proptest::sample::select(vec!["", "\"", "\\", "\n", "\u{1}", "\u{1f}", "é"]),
            suffix in "\\PC{0,12}",
        ) {
            let s = format!("{prefix}{nasty}{suffix}");
            let mut out = Vec::new();
            write_json_string(&mut out, &s);
            let back: String = serde_json::from_slice(&out).unwrap();
            proptest::prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn stats_reply_is_json_with_every_counter() {
        let counters = Counters {
            lock: 3,
            ..Counters::default()
        };
        let parsed: serde_json::Value =
            serde_json::from_str(&json(Reply::Stats(&counters))).unwrap();
        assert_eq!(parsed["Status"], "Stats");
        assert_eq!(parsed["Lock"], 3);
        assert_eq!(parsed["NotOwner"], 0);
    }

    #[test]
    fn escape_detection_agrees_with_the_byte_rule() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut chunk = [b'a'; 8];
                chunk[pos] = b;
                assert_eq!(
                    chunk_needs_escape(u64::from_le_bytes(chunk)),
                    needs_escape(b),
                    "byte {b} at {pos}"
                );
            }
        }
        // Every length and position of a byte to escape, through the writer.
        for len in 0..24 {
            for pos in 0..len {
                let mut text = vec![b'x'; len];
                text[pos] = b'"';
                let s = String::from_utf8(text).unwrap();
                let mut out = Vec::new();
                write_json_string(&mut out, &s);
                let back: String = serde_json::from_slice(&out).unwrap();
                assert_eq!(back, s);
            }
        }
    }

    #[test]
    fn numbers() {
        for n in [0, 9, 10, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn statuses_round_trip_their_wire_names() {
        for s in [
            "Locked",
            "Unlocked",
            "NotOwner",
            "Done",
            "NotFound",
            "Version",
            "Stats",
            "BadPayload",
            "BadAction",
            "NO",
        ] {
            assert_eq!(Status::from_wire(s).map(Status::as_str), Some(s));
        }
    }
}
