//! Request lines out, reply lines in: the client's side of PROTOCOL.md.
//!
//! Pure, like `protocol/`: no sockets here, so the line formats are tested
//! without a server. Requests are written by hand (five fields, escaped with
//! the server's own [`write_json_string`]); replies are small flat JSON
//! objects, read with `miniserde`, a JSON reader with no serde behind it
//! that decodes every string escape (`\uXXXX` surrogate pairs included) and
//! keeps integers up to 2^64 - 1 exact, which is what tokens and counters
//! need.

use std::time::Duration;

use miniserde::json::{Number, Object, Value};

use super::error::Error;
use crate::protocol::action::Action;
use crate::protocol::codec;
use crate::protocol::codec::Encoding;
use crate::protocol::reply::{FencingToken, Status, write_json_string, write_u64};

/// The `Name` and `Identity` an authenticating client sends with every
/// request (PROTOCOL.md, Authentication). The Identity is a secret: it is
/// never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Auth {
    pub name: String,
    pub identity: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One request, borrowing everything from the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub action: Action,
    pub id: &'a str,
    pub name: &'a str,
    /// `Expire` for `Lock` and `Put`; every other request sends `"0"`, as
    /// upstream's clients do (its server reads `Expire` on every request).
    pub expire: Option<Duration>,
    /// The `Wait` extension on `Lock`.
    pub wait: Option<Duration>,
    /// `DataStore` for `Put`.
    pub data: Option<&'a str>,
    /// `Name` and `Identity`, when the client authenticates.
    pub auth: Option<&'a Auth>,
    /// `"Mode":"Shared"` on `Lock` (with `Limit` if given) when `Some`.
    pub shared: Option<Option<u32>>,
}

impl<'a> Request<'a> {
    /// A request with no `Expire`, `Wait`, `DataStore` or authentication.
    pub const fn new(action: Action, id: &'a str, name: &'a str) -> Request<'a> {
        Request {
            action,
            id,
            name,
            expire: None,
            wait: None,
            data: None,
            auth: None,
            shared: None,
        }
    }

    /// Appends the request as one line, newline included, to `out`.
    /// `scratch` holds the JSON text while it is table-encoded.
    pub fn write_line(&self, encoding: Encoding, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        match encoding {
            Encoding::Plain => self.write_json(out),
            Encoding::Table => {
                scratch.clear();
                self.write_json(scratch);
                codec::encode_into(scratch, out);
            }
        }
        out.push(b'\n');
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"ID\":");
        write_json_string(out, self.id);
        out.extend_from_slice(b",\"FileName\":");
        write_json_string(out, self.name);
        out.extend_from_slice(b",\"Action\":\"");
        out.extend_from_slice(self.action.name().as_bytes());
        out.push(b'"');
        out.extend_from_slice(b",\"Expire\":\"");
        write_seconds(out, self.expire.unwrap_or_default());
        out.push(b'"');
        if let Some(wait) = self.wait {
            out.extend_from_slice(b",\"Wait\":\"");
            write_seconds(out, wait);
            out.push(b'"');
        }
        if let Some(data) = self.data {
            out.extend_from_slice(b",\"DataStore\":");
            write_json_string(out, data);
        }
        if let Some(limit) = self.shared {
            out.extend_from_slice(b",\"Mode\":\"Shared\"");
            if let Some(limit) = limit {
                out.extend_from_slice(b",\"Limit\":\"");
                write_u64(out, u64::from(limit));
                out.push(b'"');
            }
        }
        if let Some(auth) = self.auth {
            out.extend_from_slice(b",\"Name\":");
            write_json_string(out, &auth.name);
            out.extend_from_slice(b",\"Identity\":");
            write_json_string(out, &auth.identity);
        }
        out.push(b'}');
    }
}

/// Appends `d` as decimal seconds, with only the fraction digits it needs
/// (`30`, `0.25`, `1.000000001`).
fn write_seconds(out: &mut Vec<u8>, d: Duration) {
    write_u64(out, d.as_secs());
    let mut nanos = d.subsec_nanos();
    if nanos == 0 {
        return;
    }
    let mut digits = 9;
    while nanos % 10 == 0 {
        nanos /= 10;
        digits -= 1;
    }
    out.push(b'.');
    let text = nanos.to_string();
    out.extend(std::iter::repeat_n(b'0', digits - text.len()));
    out.extend_from_slice(text.as_bytes());
}

/// A parsed reply.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: Status,
    fields: Object,
}

impl Reply {
    /// Parses one reply line (without its newline) sent in `encoding`.
    pub fn parse(line: &[u8], encoding: Encoding) -> Result<Reply, Error> {
        let decoded;
        let json = match encoding {
            Encoding::Plain => line,
            Encoding::Table => {
                decoded = codec::decode(line.trim_ascii())
                    .map_err(|e| Error::protocol(format!("reply is not table-encoded: {e}")))?;
                &decoded
            }
        };
        let text = std::str::from_utf8(json)
            .map_err(|e| Error::protocol(format!("reply is not UTF-8: {e}")))?;
        // miniserde's error says no more than that the text is not JSON.
        let value: Value =
            miniserde::json::from_str(text).map_err(|_| Error::protocol("reply is not JSON"))?;
        let Value::Object(fields) = value else {
            return Err(Error::protocol("reply is not a JSON object"));
        };
        let status = match fields.get("Status") {
            Some(Value::String(text)) => Status::from_wire(text)
                .ok_or_else(|| Error::protocol(format!("unknown status {text:?}")))?,
            _ => return Err(Error::protocol("reply has no Status string")),
        };
        Ok(Reply { status, fields })
    }

    /// The `ID` field.
    pub fn id(&self) -> Option<&str> {
        match self.fields.get("ID") {
            Some(Value::String(text)) => Some(text),
            _ => None,
        }
    }

    /// The `Token` field of a `Locked` reply to `Lock`.
    pub fn token(&self) -> Option<FencingToken> {
        self.fields
            .get("Token")
            .and_then(as_u64)
            .map(FencingToken::new)
    }

    /// Takes the `DataStore` field of a successful `Get`.
    pub fn take_data(&mut self) -> Option<String> {
        match self.fields.remove("DataStore") {
            Some(Value::String(text)) => Some(text),
            _ => None,
        }
    }

    /// A string field.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.fields.get(name) {
            Some(Value::String(text)) => Some(text),
            _ => None,
        }
    }

    /// Every integer field, which in a `Stats` reply is every counter.
    pub fn counters(&self) -> impl Iterator<Item = (&str, u64)> {
        self.fields
            .iter()
            .filter_map(|(name, v)| Some((name.as_str(), as_u64(v)?)))
    }
}

/// `value` if it is a JSON integer from 0 to 2^64 - 1 (a larger one, a
/// negative one or one with a fraction or exponent is not).
fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(Number::U64(n)) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(request: Request<'_>, encoding: Encoding) -> String {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        request.write_line(encoding, &mut out, &mut scratch);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lock_line_matches_the_protocol_example() {
        let mut lock = Request::new(Action::Lock, "w1", "jobs");
        lock.expire = Some(Duration::from_secs(30));
        assert_eq!(
            line(lock, Encoding::Plain),
            "{\"ID\":\"w1\",\"FileName\":\"jobs\",\"Action\":\"Lock\",\"Expire\":\"30\"}\n"
        );
    }

    #[test]
    fn table_lines_start_like_the_protocol_example() {
        let text = line(Request::new(Action::Version, "w1", "x"), Encoding::Table);
        assert!(text.starts_with("a^1l1y1W1l"), "{text}");
        let json = codec::decode(text.trim_end().as_bytes()).unwrap();
        assert_eq!(
            json,
            br#"{"ID":"w1","FileName":"x","Action":"Version","Expire":"0"}"#
        );
    }

    #[test]
    fn every_request_carries_expire_and_auth_comes_last() {
        let auth = Auth {
            name: "svc".to_owned(),
            identity: "s3cr\"t".to_owned(),
        };
        let mut unlock = Request::new(Action::Unlock, "w1", "jobs");
        unlock.auth = Some(&auth);
        assert_eq!(
            line(unlock, Encoding::Plain),
            "{\"ID\":\"w1\",\"FileName\":\"jobs\",\"Action\":\"Unlock\",\"Expire\":\"0\",\
             \"Name\":\"svc\",\"Identity\":\"s3cr\\\"t\"}\n"
        );
        assert!(
            !format!("{auth:?}").contains("s3cr"),
            "Debug hides the Identity"
        );
    }

    #[test]
    fn strings_are_escaped() {
        let mut put = Request::new(Action::Put, "a\"b", "c\\d");
        put.expire = Some(Duration::from_millis(250));
        put.data = Some("line\nbreak");
        let text = line(put, Encoding::Plain);
        let Value::Object(parsed) = miniserde::json::from_str(&text).unwrap() else {
            panic!("not an object: {text}");
        };
        let field = |name: &str| match parsed.get(name) {
            Some(Value::String(s)) => s.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(field("ID"), "a\"b");
        assert_eq!(field("FileName"), "c\\d");
        assert_eq!(field("Expire"), "0.25");
        assert_eq!(field("DataStore"), "line\nbreak");
    }

    #[test]
    fn seconds_use_only_the_digits_they_need() {
        let text = |d| {
            let mut out = Vec::new();
            write_seconds(&mut out, d);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(Duration::ZERO), "0");
        assert_eq!(text(Duration::from_secs(86400)), "86400");
        assert_eq!(text(Duration::from_millis(1500)), "1.5");
        assert_eq!(text(Duration::from_millis(5)), "0.005");
        assert_eq!(text(Duration::new(1, 1)), "1.000000001");
    }

    #[test]
    fn replies_parse_in_both_encodings() {
        let plain = br#"{"Status":"Locked","ID":"w1","Token":1764129000000017}"#;
        let reply = Reply::parse(plain, Encoding::Plain).unwrap();
        assert_eq!(reply.status, Status::Locked);
        assert_eq!(reply.id(), Some("w1"));
        assert_eq!(reply.token(), Some(FencingToken::new(1764129000000017)));

        let encoded = codec::encode(br#"{"Status":"NO"}"#);
        let reply = Reply::parse(encoded.as_bytes(), Encoding::Table).unwrap();
        assert_eq!(reply.status, Status::No);
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for bad in [
            &b"nonsense"[..],
            b"[1]",
            b"{}",
            br#"{"Status":"Maybe"}"#,
            br#"{"Status":7}"#,
            br#"{"Status":"Done""#,
            br#"{"Status":"Done"} trailing"#,
        ] {
            let err = Reply::parse(bad, Encoding::Plain).unwrap_err();
            assert!(err.to_string().starts_with("protocol error"), "{err}");
        }
        assert!(Reply::parse(b"{}", Encoding::Table).is_err());
    }

    #[test]
    fn reply_strings_decode_every_escape() {
        let line = r#"{"Status":"Done","ID":"w\"1\\\/","DataStore":"\n\r\t\b\f \u00e9 \u4e2d \ud83d\ude00 é中😀"}"#;
        let mut reply = Reply::parse(line.as_bytes(), Encoding::Plain).unwrap();
        assert_eq!(reply.id(), Some("w\"1\\/"));
        assert_eq!(
            reply.take_data().as_deref(),
            Some("\n\r\t\u{8}\u{c} é 中 😀 é中😀")
        );
    }

    #[test]
    fn a_lone_surrogate_or_bad_escape_is_a_protocol_error() {
        for bad in [
            &br#"{"Status":"Done","DataStore":"\ud83d"}"#[..],
            br#"{"Status":"Done","DataStore":"\ude00x"}"#,
            br#"{"Status":"Done","DataStore":"\x"}"#,
            b"{\"Status\":\"Done\",\"DataStore\":\"raw\ncontrol\"}",
            b"{\"Status\":\"Done\",\"ID\":\"\xff\"}",
        ] {
            let err = Reply::parse(bad, Encoding::Plain).unwrap_err();
            assert!(err.to_string().starts_with("protocol error"), "{err}");
        }
    }

    #[test]
    fn tokens_and_counters_are_exact_to_the_last_u64() {
        let line = format!(r#"{{"Status":"Locked","ID":"w1","Token":{}}}"#, u64::MAX);
        let reply = Reply::parse(line.as_bytes(), Encoding::Plain).unwrap();
        assert_eq!(reply.token(), Some(FencingToken::new(u64::MAX)));
        // One past 2^64 - 1 is no token, and neither is a negative or a float.
        for token in ["18446744073709551616", "-1", "1.0", "1e3", "\"7\""] {
            let line = format!(r#"{{"Status":"Locked","ID":"w1","Token":{token}}}"#);
            let reply = Reply::parse(line.as_bytes(), Encoding::Plain).unwrap();
            assert_eq!(reply.token(), None, "{token}");
        }
    }

    #[test]
    fn stats_counters_are_the_integer_fields() {
        let line = br#"{"Status":"Stats","Lock":3,"NotOwner":0,"In":18446744073709551615,"MemoryMax":12.34,"Leader":-1}"#;
        let reply = Reply::parse(line, Encoding::Plain).unwrap();
        assert_eq!(reply.status, Status::Stats);
        let counters: Vec<_> = reply.counters().collect();
        assert_eq!(
            counters,
            [("In", u64::MAX), ("Lock", 3), ("NotOwner", 0)],
            "MemoryMax (a float) and Leader (negative) are not counters"
        );
    }
}
