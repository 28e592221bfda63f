//! `auth`: requests with `Name` and `Identity` through a connection's whole
//! input path, with a session that authenticates (PROTOCOL.md,
//! Authentication) against two known identities, `alpha` (`MaxSize` 32)
//! and `beta` (the default `MaxSize`); anonymous requests are held to 60 s
//! and 16 bytes.
//!
//! Input: operations of three bytes each (`a`, `b`, `c`), up to
//! [`MAX_OPS`]; a Name taken from the input (kind 15) takes `c` more bytes.
//! - `a`: the action (bits 0-2: Lock, Unlock, TestLock, Put, Get, Erase,
//!   Version, Stats), the ID (bit 3: `w1` or `w2`), the FileName (bits 4-5,
//!   modulo 3), a `Wait` (bit 6: `"120"` when anonymous, past its limit;
//!   `"0"` with a Name), the table encoding (bit 7);
//! - `b`: the credentials (bits 0-3, [`credentials`]: none, each Name with
//!   its Identity, an Identity of the right length but wrong, of the wrong
//!   length, missing or not a string, another Name's, Names with path
//!   separators, huge, unknown, hidden, empty, not a string, or taken from
//!   the input) and `Expire` (bits 4-5: 30 s, 120 s, past the server's max
//!   TTL, 30 as a JSON number);
//! - `c`: the size of what varies (which character differs, by how much a
//!   length is wrong, the DataStore's length: below 40 bytes, or 16384 or
//!   16385 with bit 6).
//!
//! The oracle is a model of PROTOCOL.md written from its text: the verdict
//! (`Name` 1 to 255 bytes of `A-Z a-z 0-9 . _ -`, not starting with `.`,
//! known, with exactly its Identity, within its `MaxSize`; without `Name`,
//! the anonymous limits), and the semantics table with an entry owned by
//! its ID *and* the Name it was created under. Checked after every request:
//!
//! - never a panic; the reply is one line, JSON, in the request's encoding;
//! - a request whose credentials fail is `{"Status":"BadPayload"}` and
//!   counts `AuthFailed` (and `BadPayload`); one refused before them (an
//!   `Expire` past the max TTL) counts `BadPayload` only;
//! - otherwise the status is the model's: an entry created under a Name is
//!   `NotOwner` to the same ID with another Name or none, and an anonymous
//!   one to the same ID with a Name; `Get` returns the value put;
//! - the counters `AuthFailed`, `BadPayload`, `NotOwner` are the model's, a
//!   `Stats` reply shows the same `AuthFailed`, and the connection's
//!   `--audit` figures are the same counts; at the end the store holds the
//!   model's locks and items.

use std::collections::HashMap;

use jackrabbit_dlm::protocol::codec;
use jackrabbit_dlm::session::auth::{Identities, Identity, Policy};
use jackrabbit_dlm::session::{Connection, Served, Session};
use jackrabbit_dlm::stats::Refusals;
use jackrabbit_dlm::store::{Store, StoreConfig};
use jackrabbit_dlm::time::{Millis, Moment};
use serde_json::{Map, Value, json};

use super::input::Bytes;

/// Most operations of one input.
pub const MAX_OPS: usize = 64;
const MAX_TTL_S: u64 = 86_400;
const ANONYMOUS_MAX_TTL_S: u64 = 60;
const ANONYMOUS_MAX_VALUE: usize = 16;
const ALPHA_MAX_SIZE: usize = 32;
const BETA_MAX_SIZE: usize = 16_384;
const MAX_LINE: usize = 1 << 20;
const ACTIONS: [&str; 8] = [
    "Lock", "Unlock", "TestLock", "Put", "Get", "Erase", "Version", "Stats",
];
const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// An Identity of `len` URL-safe characters, as upstream writes them.
fn secret(len: usize, step: usize) -> String {
    (0..len)
        .map(|i| char::from(URL_SAFE[(i * step + i / 7) % URL_SAFE.len()]))
        .collect()
}

/// The known identities: (Name, Identity, MaxSize).
fn known() -> [(&'static str, String, usize); 2] {
    [
        ("alpha", secret(1364, 7), ALPHA_MAX_SIZE),
        ("beta", secret(1400, 11), BETA_MAX_SIZE),
    ]
}

/// `Name` and `Identity` of a request as sent (`None`: the key is absent).
#[derive(Debug, Clone)]
struct Sent {
    name: Option<Value>,
    identity: Option<Value>,
}

/// Kind `kind` of credentials, sized by `c`; kind 15 takes its Name from
/// `input`.
fn credentials(kind: u8, c: u8, input: &mut Bytes<'_>) -> Sent {
    let [(alpha, alpha_id, _), (_, beta_id, _)] = known();
    let c = usize::from(c);
    let named = |name: String, identity: String| Sent {
        name: Some(json!(name)),
        identity: Some(json!(identity)),
    };
    match kind {
        0 if c % 2 == 1 => Sent {
            // An Identity without a Name: still anonymous.
            name: None,
            identity: Some(json!(alpha_id)),
        },
        0 => Sent {
            name: None,
            identity: None,
        },
        1 => named(alpha.into(), alpha_id),
        2 => named("beta".into(), beta_id),
        3 => {
            // The right length, one character different.
            let mut wrong = alpha_id.into_bytes();
            let at = c % wrong.len();
            wrong[at] = if wrong[at] == b'A' { b'B' } else { b'A' };
            named(alpha.into(), String::from_utf8(wrong).unwrap_or_default())
        }
        4 => named(alpha.into(), alpha_id[..alpha_id.len() - 1 - c % 8].into()),
        5 => named(alpha.into(), format!("{alpha_id}{}", "A".repeat(1 + c % 8))),
        6 => Sent {
            name: Some(json!(alpha)),
            identity: None,
        },
        7 => named(alpha.into(), beta_id),
        8 => {
            let names = [
                "../alpha",
                "alpha/../alpha",
                "a/b",
                "/etc/passwd",
                "..",
                "alpha\\x",
                "./alpha",
                "alpha\u{0}",
            ];
            named(names[c % names.len()].into(), alpha_id)
        }
        // Huge: 255 bytes is a valid (unknown) Name, anything longer none.
        9 => named("a".repeat(255 + c * 37), alpha_id),
        10 => named("gamma".into(), alpha_id),
        11 => named(".alpha".into(), alpha_id),
        12 => Sent {
            name: Some([json!(null), json!(7), json!(true), json!([]), json!({})][c % 5].clone()),
            identity: Some(json!(alpha_id)),
        },
        13 => Sent {
            name: Some(json!(alpha)),
            identity: Some([json!(null), json!(1364), json!([alpha_id])][c % 3].clone()),
        },
        14 => named(String::new(), alpha_id),
        _ => {
            let bytes: Vec<u8> = (0..c).map(|_| input.u8()).collect();
            named(String::from_utf8_lossy(&bytes).into_owned(), alpha_id)
        }
    }
}

/// PROTOCOL.md's Name rule, written out.
fn name_rule(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Who owns an entry: its ID and the Name it was created under.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    id: String,
    name: Option<String>,
}

/// One request as the model sees it.
struct Asked {
    action: &'static str,
    id: String,
    file: String,
    expire_s: u64,
    wait_s: u64,
    data: Option<String>,
    sent: Sent,
}

#[derive(Default)]
struct Model {
    locks: HashMap<String, Owner>,
    data: HashMap<String, (Owner, String)>,
    auth_failed: u64,
    bad_payload: u64,
    not_owner: u64,
}

/// What the model says of a request.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Refused before authentication (an `Expire` past the max TTL).
    BadPayload,
    AuthFailed,
    /// Authenticated as this Name, or anonymous.
    As(Option<String>),
}

impl Model {
    fn verdict(&self, r: &Asked) -> Verdict {
        let asks_time = matches!(r.action, "Lock" | "Put");
        if asks_time && r.expire_s > MAX_TTL_S {
            return Verdict::BadPayload;
        }
        let data_len = r.data.as_ref().map_or(0, String::len);
        let Some(name) = &r.sent.name else {
            let over_time =
                asks_time && (r.expire_s > ANONYMOUS_MAX_TTL_S || r.wait_s > ANONYMOUS_MAX_TTL_S);
            let over_size = r.action == "Put" && data_len > ANONYMOUS_MAX_VALUE;
            return if over_time || over_size {
                Verdict::AuthFailed
            } else {
                Verdict::As(None)
            };
        };
        let Some(name) = name.as_str() else {
            return Verdict::AuthFailed;
        };
        let identity = r.sent.identity.as_ref().and_then(Value::as_str);
        let fits = |max: usize| r.action != "Put" || data_len <= max;
        match known().iter().find(|(n, _, _)| *n == name) {
            Some((_, secret, max))
                if name_rule(name) && identity == Some(secret.as_str()) && fits(*max) =>
            {
                Verdict::As(Some(name.to_owned()))
            }
            _ => Verdict::AuthFailed,
        }
    }

    /// The status the semantics table gives `r` from `owner`, applied to
    /// the model; for a `Get`, the value too.
    fn apply(&mut self, r: &Asked, owner: Owner) -> (&'static str, Option<String>) {
        let file = r.file.clone();
        let status = match r.action {
            "Lock" => match self.locks.get(&file) {
                None => {
                    self.locks.insert(file, owner);
                    "Locked"
                }
                Some(held) if *held == owner => "Locked",
                Some(_) => "NotOwner",
            },
            "Unlock" => match self.locks.get(&file) {
                None => "Unlocked",
                Some(held) if *held == owner => {
                    self.locks.remove(&file);
                    "Unlocked"
                }
                Some(_) => "NotOwner",
            },
            "TestLock" => match self.locks.get(&file) {
                None => "Unlocked",
                Some(held) if *held == owner => "Locked",
                Some(_) => "NotOwner",
            },
            "Put" => match self.data.get(&file) {
                Some((by, _)) if *by != owner => "NotOwner",
                _ => {
                    let value = r.data.clone().unwrap_or_default();
                    self.data.insert(file, (owner, value));
                    "Done"
                }
            },
            "Get" => match self.data.get(&file) {
                None => "NotFound",
                Some((by, value)) if *by == owner => return ("Done", Some(value.clone())),
                Some(_) => "NotOwner",
            },
            "Erase" => match self.data.get(&file) {
                None => "NotFound",
                Some((by, _)) if *by == owner => {
                    self.data.remove(&file);
                    "Done"
                }
                Some(_) => "NotOwner",
            },
            "Version" => "Version",
            _ => "Stats",
        };
        (status, None)
    }

    /// The owner of the entry `r` would touch, if there is one.
    fn entry_owner(&self, r: &Asked) -> Option<&Owner> {
        match r.action {
            "Lock" | "Unlock" | "TestLock" => self.locks.get(&r.file),
            "Put" | "Get" | "Erase" => self.data.get(&r.file).map(|(owner, _)| owner),
            _ => None,
        }
    }
}

fn session() -> Session {
    let store = Store::new(StoreConfig::unbounded(), Moment::START);
    let mut session = Session::new(store, Millis::from_secs(MAX_TTL_S), 4, MAX_LINE);
    let mut identities = Identities::new();
    for (name, secret, max) in known() {
        let file = json!({"Identity": secret, "MaxSize": max}).to_string();
        identities.insert(
            name,
            Identity::parse(file.as_bytes()).expect("a valid identity file"),
        );
    }
    session.authenticate(Policy {
        identities,
        anonymous_max_ttl: Millis::from_secs(ANONYMOUS_MAX_TTL_S),
        anonymous_max_value: ANONYMOUS_MAX_VALUE as u64,
    });
    session
}

/// Sends `line` and its newline through `conn` and returns what it answered.
fn exchange(session: &mut Session, conn: &mut Connection, line: &[u8]) -> Vec<u8> {
    let mut stream = line.to_vec();
    stream.push(b'\n');
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let buf = conn.read_buffer();
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        conn.received(n);
        rest = &rest[n..];
        while conn.serve(session, Moment::START, usize::MAX) == Served::Budget {}
    }
    let out = conn.unsent().to_vec();
    conn.sent(out.len());
    out
}

pub fn check(data: &[u8]) {
    let mut input = Bytes::new(data);
    let mut session = session();
    let mut conn = Connection::new(MAX_LINE, 0);
    conn.audit();
    let mut model = Model::default();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let (a, b, c) = (input.u8(), input.u8(), input.u8());
        let action = ACTIONS[usize::from(a & 7)];
        let sent = credentials(b & 15, c, &mut input);
        let anonymous = sent.name.is_none();
        let (expire_s, expire) = match (b >> 4) & 3 {
            0 => (30, json!("30")),
            1 => (120, json!("120")),
            2 => (MAX_TTL_S + 1, json!((MAX_TTL_S + 1).to_string())),
            _ => (30, json!(30)),
        };
        let wait_s = match (a & 0x40 != 0, anonymous) {
            (true, true) if action == "Lock" => Some(120),
            (true, false) if action == "Lock" => Some(0),
            _ => None,
        };
        let data = (action == "Put").then(|| {
            let len = if c & 0x40 != 0 {
                BETA_MAX_SIZE + usize::from(c & 1)
            } else {
                usize::from(c) % 40
            };
            "v".repeat(len)
        });
        let asked = Asked {
            action,
            id: if a & 8 == 0 { "w1" } else { "w2" }.to_owned(),
            file: format!("f{}", (a >> 4 & 3) % 3),
            expire_s,
            wait_s: wait_s.unwrap_or(0),
            data,
            sent,
        };
        let mut object = Map::new();
        object.insert("ID".into(), json!(asked.id));
        object.insert("FileName".into(), json!(asked.file));
        object.insert("Action".into(), json!(action));
        object.insert("Expire".into(), expire);
        if let Some(wait) = wait_s {
            object.insert("Wait".into(), json!(wait.to_string()));
        }
        if let Some(value) = &asked.data {
            object.insert("DataStore".into(), json!(value));
        }
        if let Some(name) = &asked.sent.name {
            object.insert("Name".into(), name.clone());
        }
        if let Some(identity) = &asked.sent.identity {
            object.insert("Identity".into(), identity.clone());
        }
        let plain = Value::Object(object).to_string();
        let table = a & 0x80 != 0;
        let line = if table {
            codec::encode(plain.as_bytes()).into_bytes()
        } else {
            plain.clone().into_bytes()
        };

        let out = exchange(&mut session, &mut conn, &line);
        let text = out
            .strip_suffix(b"\n")
            .unwrap_or_else(|| panic!("one reply line to {plain:.300}: {out:?}"));
        assert!(!text.contains(&b'\n'), "one reply line to {plain:.300}");
        let reply_bytes = if table {
            codec::decode(text).expect("a table-encoded reply to a table-encoded line")
        } else {
            text.to_vec()
        };
        let reply: Value = serde_json::from_slice(&reply_bytes).expect("the reply is JSON");
        let status = reply["Status"].as_str().unwrap_or("<none>");

        match model.verdict(&asked) {
            Verdict::BadPayload => {
                assert_eq!(reply, json!({"Status": "BadPayload"}), "{plain:.300}");
                model.bad_payload += 1;
            }
            Verdict::AuthFailed => {
                assert_eq!(reply, json!({"Status": "BadPayload"}), "{plain:.300}");
                model.bad_payload += 1;
                model.auth_failed += 1;
            }
            Verdict::As(name) => {
                let owner = Owner {
                    id: asked.id.clone(),
                    name,
                };
                // The binding, stated on its own: the same ID under another
                // Name (or none) never gets in.
                if let Some(held) = model.entry_owner(&asked) {
                    if held.id == owner.id && held.name != owner.name {
                        assert_eq!(status, "NotOwner", "{plain:.300} on {held:?}");
                    }
                }
                let (want, value) = model.apply(&asked, owner);
                assert_eq!(status, want, "{plain:.300}: {reply}");
                if want == "NotOwner" {
                    model.not_owner += 1;
                }
                if let Some(value) = value {
                    assert_eq!(reply["DataStore"].as_str(), Some(value.as_str()));
                }
                if matches!(want, "Locked" | "Done") {
                    assert_eq!(reply["ID"].as_str(), Some(asked.id.as_str()), "{reply}");
                }
                if want == "Stats" {
                    assert_eq!(reply["AuthFailed"].as_u64(), Some(model.auth_failed));
                }
            }
        }
        let counters = &session.store.counters;
        assert_eq!(
            (
                counters.auth_failed,
                counters.bad_payload,
                counters.not_owner
            ),
            (model.auth_failed, model.bad_payload, model.not_owner),
            "counters after {plain:.300}"
        );
    }
    assert_eq!(
        conn.take_refusals(),
        Refusals {
            not_owner: model.not_owner,
            bad_payload: model.bad_payload,
            auth_failed: model.auth_failed,
        },
        "the connection's --audit figures"
    );
    assert_eq!(session.store.lock_count(), model.locks.len());
    assert_eq!(session.store.data_count(), model.data.len());
}
