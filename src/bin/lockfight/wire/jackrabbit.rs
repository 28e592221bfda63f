//! The Jackrabbit DLM line protocol, as PROTOCOL.md defines it.
//!
//! Requests are built by hand from prebuilt names (the generator must stay
//! cheap); replies are scanned for the two fields a fighter needs, `Status`
//! and, for a `Get`, `DataStore`, tolerating the spaces Python's `json.dumps`
//! puts after colons. The table encoding is the library's codec.

use jackrabbit_dlm::protocol::Encoding;
use jackrabbit_dlm::protocol::codec::{decode_into, encode_into};

use super::{
    COUNTER_OWNER, COUNTER_TTL_SECS, Names, Op, Outcome, Parsed, parse_decimal, push_decimal,
};

/// Appends the JSON object (no newline) for `op` to `out`.
pub fn write_json(out: &mut Vec<u8>, names: &Names, owner: &[u8], resource: u32, op: Op) {
    let r = resource as usize;
    match op {
        Op::Lock | Op::LockShared | Op::Unlock => {
            out.extend_from_slice(b"{\"ID\":\"");
            out.extend_from_slice(owner);
            out.extend_from_slice(b"\",\"FileName\":\"");
            out.extend_from_slice(&names.locks[r]);
            if op != Op::Unlock {
                out.extend_from_slice(b"\",\"Action\":\"Lock\",\"Expire\":\"");
                out.extend_from_slice(names.expire_secs.as_bytes());
                if let Some(wait) = &names.wait_secs {
                    out.extend_from_slice(b"\",\"Wait\":\"");
                    out.extend_from_slice(wait.as_bytes());
                }
                if op == Op::LockShared {
                    out.extend_from_slice(b"\",\"Mode\":\"Shared");
                    if let Some(limit) = &names.limit {
                        out.extend_from_slice(b"\",\"Limit\":\"");
                        out.extend_from_slice(limit.as_bytes());
                    }
                }
                out.extend_from_slice(b"\"}");
            } else {
                out.extend_from_slice(b"\",\"Action\":\"Unlock\"}");
            }
        }
        Op::Get | Op::Put(_) => {
            out.extend_from_slice(b"{\"ID\":\"");
            out.extend_from_slice(COUNTER_OWNER);
            out.extend_from_slice(b"\",\"FileName\":\"");
            out.extend_from_slice(&names.counters[r]);
            if let Op::Put(value) = op {
                out.extend_from_slice(b"\",\"Action\":\"Put\",\"Expire\":\"");
                push_decimal(out, u64::from(COUNTER_TTL_SECS));
                out.extend_from_slice(b"\",\"DataStore\":\"");
                push_decimal(out, value);
                out.extend_from_slice(b"\"}");
            } else {
                out.extend_from_slice(b"\",\"Action\":\"Get\"}");
            }
        }
    }
}

/// Appends the table encoding of `json` and a newline to `out`.
pub fn encode_line(json: &[u8], out: &mut Vec<u8>) {
    encode_into(json, out);
    out.push(b'\n');
}

/// Looks for one reply line at the front of `buf`.
pub fn parse_reply(buf: &[u8], op: Op, encoding: Encoding, scratch: &mut Vec<u8>) -> Parsed {
    let Some(end) = memchr::memchr(b'\n', buf) else {
        return Parsed::Incomplete;
    };
    let mut line = &buf[..end];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    let outcome = match encoding {
        Encoding::Table => {
            scratch.clear();
            match decode_into(line.trim_ascii(), scratch) {
                Ok(()) => interpret(scratch, op),
                Err(_) => Outcome::Unexpected,
            }
        }
        Encoding::Plain => interpret(line, op),
    };
    Parsed::Reply {
        outcome,
        len: end + 1,
    }
}

/// What the JSON reply `json` to `op` means.
pub fn interpret(json: &[u8], op: Op) -> Outcome {
    match string_field(json, b"Status") {
        Some(b"Locked") => Outcome::Locked(number_field(json, b"Token")),
        Some(b"Unlocked") => Outcome::Unlocked,
        Some(b"NotOwner") => Outcome::NotOwner,
        Some(b"NotFound") => Outcome::NotFound,
        Some(b"Done") if op == Op::Get => string_field(json, b"DataStore")
            .and_then(parse_decimal)
            .map_or(Outcome::Unexpected, Outcome::Value),
        Some(b"Done") => Outcome::Done,
        _ => Outcome::Unexpected,
    }
}

/// The raw contents of the string field `key` in a flat JSON object, if it
/// is there and has no escapes (the fields read here never need them).
fn string_field<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let rest = value_of(json, key)?.strip_prefix(b"\"")?;
    let close = memchr::memchr2(b'"', b'\\', rest)?;
    (rest[close] == b'"').then(|| &rest[..close])
}

/// The value of the unsigned number field `key` in a flat JSON object, if
/// it is there.
fn number_field(json: &[u8], key: &[u8]) -> Option<u64> {
    let rest = value_of(json, key)?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    parse_decimal(&rest[..digits])
}

/// What follows the colon after the key `key` (quoted) in a flat JSON
/// object, spaces skipped.
fn value_of<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&json[from..], key) {
        let start = from + at;
        from = start + key.len();
        if start == 0 || json[start - 1] != b'"' || json.get(from) != Some(&b'"') {
            continue;
        }
        let rest = skip_space(&json[from + 1..]);
        let Some(rest) = rest.strip_prefix(b":") else {
            continue;
        };
        return Some(skip_space(rest));
    }
    None
}

fn skip_space(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use jackrabbit_dlm::protocol::codec::encode;

    fn names() -> Names {
        Names::new("t", 2, 10.0, None)
    }

    fn json(op: Op) -> String {
        let mut out = Vec::new();
        write_json(&mut out, &names(), b"f1", 1, op);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn requests_are_valid_json_with_the_protocol_fields() {
        let lock: serde_json::Value = serde_json::from_str(&json(Op::Lock)).unwrap();
        assert_eq!(lock["ID"], "f1");
        assert_eq!(lock["FileName"], "lftr1");
        assert_eq!(lock["Action"], "Lock");
        assert_eq!(lock["Expire"], "10");
        assert!(lock.get("Wait").is_none());
        let mut out = Vec::new();
        write_json(
            &mut out,
            &Names::new("t", 2, 10.0, Some(0.5)),
            b"f1",
            1,
            Op::Lock,
        );
        let waiting: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(waiting["Wait"], "0.5");
        let mut out = Vec::new();
        let semaphore = Names::new("t", 2, 10.0, Some(0.5)).with_limit(Some(3));
        write_json(&mut out, &semaphore, b"f1", 1, Op::LockShared);
        let shared: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(shared["Mode"], "Shared");
        assert_eq!(shared["Limit"], "3");
        assert_eq!(shared["Wait"], "0.5");
        let shared: serde_json::Value = serde_json::from_str(&json(Op::LockShared)).unwrap();
        assert_eq!(shared["Mode"], "Shared");
        assert!(shared.get("Limit").is_none());
        assert!(lock.get("Mode").is_none());
        let unlock: serde_json::Value = serde_json::from_str(&json(Op::Unlock)).unwrap();
        assert_eq!(unlock["Action"], "Unlock");
        let get: serde_json::Value = serde_json::from_str(&json(Op::Get)).unwrap();
        assert_eq!(get["ID"], "lockfight-counter");
        assert_eq!(get["FileName"], "lftc1");
        let put: serde_json::Value = serde_json::from_str(&json(Op::Put(42))).unwrap();
        assert_eq!(put["Action"], "Put");
        assert_eq!(put["DataStore"], "42");
        assert_eq!(put["Expire"], "3600");
    }

    #[test]
    fn replies_map_to_outcomes() {
        let mut s = Vec::new();
        let cases: &[(&[u8], Op, Outcome)] = &[
            (
                b"{\"Status\":\"Locked\",\"ID\":\"f1\",\"Token\":17}\n",
                Op::Lock,
                Outcome::Locked(Some(17)),
            ),
            (
                b"{\"Status\": \"NotOwner\"}\r\n",
                Op::Lock,
                Outcome::NotOwner,
            ),
            (
                b"{\"Status\":\"Unlocked\",\"ID\":\"f1\"}\n",
                Op::Unlock,
                Outcome::Unlocked,
            ),
            (
                b"{\"Status\":\"Done\",\"ID\":\"c\"}\n",
                Op::Put(1),
                Outcome::Done,
            ),
            (
                b"{\"Status\":\"Done\",\"ID\":\"c\",\"DataStore\":\"41\"}\n",
                Op::Get,
                Outcome::Value(41),
            ),
            (
                b"{\"Status\":\"Done\",\"ID\":\"c\",\"DataStore\":\"x\"}\n",
                Op::Get,
                Outcome::Unexpected,
            ),
            (b"{\"Status\":\"NotFound\"}\n", Op::Get, Outcome::NotFound),
            (
                b"{\"Status\":\"BadPayload\"}\n",
                Op::Lock,
                Outcome::Unexpected,
            ),
            (
                b"{\"ID\":\"Status\",\"Status\":\"NO\"}\n",
                Op::Lock,
                Outcome::Unexpected,
            ),
            (b"garbage\n", Op::Lock, Outcome::Unexpected),
        ];
        for (reply, op, want) in cases {
            assert_eq!(
                parse_reply(reply, *op, Encoding::Plain, &mut s),
                Parsed::Reply {
                    outcome: *want,
                    len: reply.len()
                },
                "{}",
                String::from_utf8_lossy(reply)
            );
        }
        assert_eq!(
            parse_reply(b"{\"Status\"", Op::Lock, Encoding::Plain, &mut s),
            Parsed::Incomplete
        );
    }

    #[test]
    fn encoded_replies_are_decoded() {
        let mut s = Vec::new();
        let line = format!("{}\n", encode(b"{\"Status\":\"Locked\",\"ID\":\"f1\"}"));
        assert_eq!(
            parse_reply(line.as_bytes(), Op::Lock, Encoding::Table, &mut s),
            Parsed::Reply {
                outcome: Outcome::Locked(None),
                len: line.len()
            }
        );
        assert_eq!(
            parse_reply(b"{}\n", Op::Lock, Encoding::Table, &mut s),
            Parsed::Reply {
                outcome: Outcome::Unexpected,
                len: 3
            }
        );
    }
}
