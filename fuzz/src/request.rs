//! `request`: any line parses without panicking, what is accepted obeys
//! PROTOCOL.md's field rules, and every reply is JSON that survives the
//! table encoding.
//!
//! Input: the bytes, cut at `\n` into lines, all parsed by one reused
//! [`Parser`] with the rest of the input as the padding behind each line (as
//! a connection's buffer has), and applied to one [`Store`]:
//!
//! - the outcome does not depend on what the padding holds (the same line
//!   padded with spaces, parsed by a fresh parser, gives the same result),
//!   and the padding is left untouched;
//! - an accepted request obeys the field rules: `ID` 1..=1024 bytes,
//!   `FileName` 1..=4096, `Expire` at least 1 ms and at most the max TTL for
//!   `Lock` and `Put` and 0 otherwise, `Wait` only on `Lock` and at most the
//!   max TTL, `DataStore` only on `Put`;
//! - differential: a reading of the same line with `serde_json` and the
//!   rules of PROTOCOL.md, written independently here, reaches the same
//!   verdict (accepted with the same fields, `BadAction`, or `BadPayload`);
//! - the reply to it (or to its error) is a JSON object per `serde_json`
//!   whose fields match what was asked, and table-encoding it and decoding
//!   gives back the same bytes.

use jackrabbit_dlm::protocol::codec;
use jackrabbit_dlm::protocol::request::{DEFAULT_MAX_HOLDERS, MAX_FILE_NAME, MAX_ID, PADDING};
use jackrabbit_dlm::protocol::{Action, ParseError, Parser, Reply, Request, Status};
use jackrabbit_dlm::stats::Figure;
use jackrabbit_dlm::store::{Outcome, Store, StoreConfig};
use jackrabbit_dlm::time::{Millis, Moment};
use serde_json::Value;

/// The server's default max TTL, in milliseconds.
pub const MAX_TTL_MS: u64 = 86_400_000;

/// A request with its strings copied out of the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    pub action: Action,
    pub id: String,
    pub name: String,
    pub expire_ms: u64,
    pub wait_ms: u64,
    pub data: String,
}

impl Owned {
    fn of(r: &Request<'_>) -> Owned {
        Owned {
            action: r.action(),
            id: r.id().to_owned(),
            name: r.name().to_owned(),
            expire_ms: r.expire().as_ms(),
            wait_ms: r.wait().as_ms(),
            data: r.data().to_owned(),
        }
    }

    /// The request again; it came from the parser, so it passes
    /// `Request::new`'s checks.
    fn as_request(&self) -> Request<'_> {
        Request::new(self.action, &self.id, &self.name)
            .expect("a parsed request is a valid request")
            .with_expire(Millis::new(self.expire_ms))
            .with_wait(Millis::new(self.wait_ms))
            .with_data(&self.data)
    }
}

/// What a line amounts to: a request, or the error it is answered with.
pub type Verdict = Result<Owned, ParseError>;

/// Parses `line` with `padding` (at least [`PADDING`] bytes) behind it and
/// checks that the padding is left as it was.
pub fn parse_padded(parser: &mut Parser, line: &[u8], padding: &[u8]) -> Verdict {
    let mut buf = line.to_vec();
    buf.extend_from_slice(padding);
    let verdict = parser.parse(&mut buf, line.len()).map(|r| Owned::of(&r));
    assert_eq!(
        &buf[line.len()..],
        padding,
        "the parser wrote into the padding"
    );
    verdict
}

/// The rules of PROTOCOL.md for an accepted request.
pub fn assert_field_rules(r: &Owned, max_ttl_ms: u64) {
    assert!(r.id.len() <= MAX_ID, "ID length {}", r.id.len());
    assert!(
        r.name.len() <= MAX_FILE_NAME,
        "FileName length {}",
        r.name.len()
    );
    match r.action {
        Action::Lock | Action::Put => {
            // Zero: asked for zero or less (granted, and over at once).
            assert!(r.expire_ms <= max_ttl_ms, "expire_ms {}", r.expire_ms);
        }
        _ => assert_eq!(r.expire_ms, 0, "expire_ms on {:?}", r.action),
    }
    if r.action == Action::Lock {
        assert!(r.wait_ms <= max_ttl_ms, "wait_ms {}", r.wait_ms);
    } else {
        assert_eq!(r.wait_ms, 0, "wait_ms on {:?}", r.action);
    }
    if r.action != Action::Put {
        assert!(r.data.is_empty(), "DataStore on {:?}", r.action);
    }
}

/// An object's members in order, duplicates kept (a `serde_json::Value`
/// would silently keep only the last).
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Members, M::Error> {
                let mut members = Vec::new();
                while let Some(pair) = m.next_entry::<String, Value>()? {
                    members.push(pair);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// Nesting depth of a value (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Seconds as PROTOCOL.md allows them: a decimal string or a JSON number.
fn seconds(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s.trim_ascii().parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn ms_from(secs: f64) -> u64 {
    // Finite seconds within the max TTL; `as` saturates besides.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = (secs * 1000.0).ceil() as u64;
    ms.max(1)
}

/// PROTOCOL.md's request rules applied to `serde_json`'s reading of `line`;
/// `None` where the two JSON readers legitimately differ (nesting beyond the
/// server's documented depth limit, numbers `serde_json` cannot hold).
pub fn reference(line: &[u8], max_ttl_ms: u64) -> Option<Verdict> {
    let bad = |why| Some(Err(ParseError::BadPayload(why)));
    let members = match serde_json::from_slice::<Members>(line) {
        Ok(m) => m.0,
        Err(e) => {
            let text = e.to_string();
            if text.contains("recursion limit") || text.contains("number out of range") {
                return None;
            }
            // Either not JSON or not an object: BadPayload both ways.
            return bad("not a JSON object");
        }
    };
    if members.iter().any(|(_, v)| depth(v) >= 30) {
        return None;
    }
    let known = [
        "ID",
        "FileName",
        "Action",
        "Expire",
        "Wait",
        "DataStore",
        "Mode",
        "Limit",
        "Name",
        "Identity",
    ];
    for key in known {
        if members.iter().filter(|(k, _)| k == key).count() > 1 {
            return bad("duplicate key");
        }
    }
    let get = |key: &str| members.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let action = match get("Action") {
        Some(Value::String(name)) => match Action::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
        {
            Some(a) => a,
            None => return Some(Err(ParseError::BadAction)),
        },
        _ => return bad("Action"),
    };
    // A string of at most `max` bytes, or an integer as its decimal text
    // (PROTOCOL.md, Request fields); other numbers are left to the parser's
    // own tests (`Err(true)`: no verdict here).
    let text = |key: &str, max: usize| match get(key) {
        Some(Value::String(s)) if s.len() <= max => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        Some(Value::Number(_)) => Err(true),
        _ => Err(false),
    };
    let (id, name) = match (text("ID", MAX_ID), text("FileName", MAX_FILE_NAME)) {
        (Ok(id), Ok(name)) => (id, name),
        (Err(false), _) | (_, Err(false)) => return bad("ID or FileName"),
        _ => return None,
    };
    let mut r = Owned {
        action,
        id,
        name,
        expire_ms: 0,
        wait_ms: 0,
        data: String::new(),
    };
    if matches!(action, Action::Lock | Action::Put) {
        // Zero or less is no time at all (granted, and over at once).
        match get("Expire").and_then(seconds) {
            Some(s) if s.is_finite() && s <= 0.0 => r.expire_ms = 0,
            Some(s) if s.is_finite() && s * 1000.0 <= max_ttl_ms as f64 => {
                r.expire_ms = ms_from(s);
            }
            _ => return bad("Expire"),
        }
    }
    let wait = if action == Action::Lock {
        get("Wait")
    } else {
        None
    };
    if let Some(wait) = wait {
        match seconds(wait) {
            Some(0.0) => {}
            Some(s) if s.is_finite() && s > 0.0 && s * 1000.0 <= max_ttl_ms as f64 => {
                r.wait_ms = ms_from(s);
            }
            _ => return bad("Wait"),
        }
    }
    if action == Action::Lock {
        // The shared-lock extension: Mode exactly "Shared" or "Exclusive",
        // Limit only with Shared, a whole number from 1 to the default
        // --max-holders.
        let shared = match get("Mode") {
            None => false,
            Some(Value::String(m)) if m == "Shared" => true,
            Some(Value::String(m)) if m == "Exclusive" => false,
            Some(_) => return bad("Mode"),
        };
        if let Some(limit) = get("Limit") {
            let n = match limit {
                Value::String(s) => s.trim_ascii().parse::<u32>().ok(),
                Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                _ => None,
            };
            if !shared || !n.is_some_and(|n| (1..=DEFAULT_MAX_HOLDERS).contains(&n)) {
                return bad("Limit");
            }
        }
    }
    if action == Action::Put {
        match get("DataStore") {
            Some(Value::String(s)) => r.data = s.clone(),
            _ => return bad("DataStore"),
        }
    }
    Some(Ok(r))
}

/// Two verdicts agree: the same request, or errors of the same kind (the
/// BadPayload texts are for logs and may differ).
fn same_verdict(a: &Verdict, b: &Verdict) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(ParseError::BadAction), Err(ParseError::BadAction)) => true,
        (Err(ParseError::BadPayload(_)), Err(ParseError::BadPayload(_))) => true,
        _ => false,
    }
}

/// The reply is a JSON object matching what it answers, and survives the
/// table encoding.
pub fn assert_reply_is_sound(reply: &Reply<'_>, asked: Option<&Owned>) {
    let mut plain = Vec::new();
    reply.write_json(&mut plain);
    let value: Value = serde_json::from_slice(&plain).unwrap_or_else(|e| {
        panic!(
            "reply {:?} is not JSON: {e}",
            String::from_utf8_lossy(&plain)
        )
    });
    let object = value.as_object().expect("reply is an object");
    assert_eq!(
        object.get("Status").and_then(Value::as_str),
        Some(reply.status().as_str())
    );
    let id = object.get("ID").and_then(Value::as_str);
    match (*reply, asked) {
        (Reply::WithId(_, owner), Some(r)) | (Reply::Locked { id: owner, .. }, Some(r)) => {
            assert_eq!(owner, r.id);
            assert_eq!(id, Some(owner));
        }
        (Reply::Value { id: owner, data }, Some(r)) => {
            assert_eq!(owner, r.id);
            assert_eq!(id, Some(owner));
            assert_eq!(object.get("DataStore").and_then(Value::as_str), Some(data));
        }
        (Reply::Version, _) => assert!(id.is_some_and(|v| v.contains("JackrabbitDLM"))),
        (Reply::Stats(counters), _) => {
            for (name, n) in counters.fields() {
                match n {
                    Figure::Count(n) => {
                        assert_eq!(object.get(name).and_then(Value::as_u64), Some(n), "{name}");
                    }
                    Figure::Hundredths(n) => {
                        let shown = object.get(name).and_then(Value::as_f64);
                        assert_eq!(shown, Some(n as f64 / 100.0), "{name}");
                    }
                }
            }
        }
        _ => {}
    }
    if let Reply::Locked { token, .. } = *reply {
        assert_eq!(
            object.get("Token").and_then(Value::as_u64),
            Some(token.get())
        );
    }
    let encoded = codec::encode(&plain);
    assert_eq!(codec::decode(encoded.as_bytes()).as_deref(), Ok(&plain[..]));
}

pub fn check(data: &[u8]) {
    let mut parser = Parser::new(MAX_TTL_MS);
    let mut store = Store::new(StoreConfig::unbounded(), Moment::START);
    let spaces = [b' '; PADDING];
    let mut start = 0;
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        // Behind the line in a connection's buffer: its newline, the next
        // lines, then whatever the buffer held before.
        let end = (start + line.len() + PADDING).min(data.len());
        let mut padding = data[start + line.len()..end].to_vec();
        padding.resize(PADDING, 0xA5);
        start += line.len() + 1;

        let verdict = parse_padded(&mut parser, line, &padding);
        let fresh = parse_padded(&mut Parser::new(MAX_TTL_MS), line, &spaces);
        assert_eq!(
            verdict, fresh,
            "the verdict depends on the padding or on earlier lines"
        );
        if let Some(expected) = reference(line, MAX_TTL_MS) {
            assert!(
                same_verdict(&verdict, &expected),
                "server says {verdict:?}, the serde_json reading says {expected:?}, line {:?}",
                String::from_utf8_lossy(line)
            );
        }
        let now = Moment::from_ms(i as u64 * 10);
        match &verdict {
            Ok(r) => {
                assert_field_rules(r, MAX_TTL_MS);
                match store.apply(now, &r.as_request()) {
                    Outcome::Parked(_) => {
                        // Nothing is sent yet: the reply comes when the wait ends.
                        assert!(r.action == Action::Lock && r.wait_ms > 0, "{r:?} parked");
                    }
                    Outcome::Reply(reply) => assert_reply_is_sound(&reply, Some(r)),
                }
            }
            Err(ParseError::BadAction) => {
                assert_reply_is_sound(&Reply::Bare(Status::BadAction), None);
            }
            Err(ParseError::BadPayload(_)) => {
                assert_reply_is_sound(&Reply::Bare(Status::BadPayload), None);
            }
        }
    }
}
