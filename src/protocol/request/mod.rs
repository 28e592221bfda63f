//! One request line (plain JSON) to a typed [`Request`].
//!
//! Parsing happens in place: simd-json unescapes strings inside the line's
//! own buffer, and the [`Request`] borrows them from there, so a request
//! costs no allocation. The [`Parser`] keeps simd-json's scratch buffers and
//! its tape between lines.
//!
//! The rules are PROTOCOL.md's: keys are case-sensitive, unknown keys are
//! ignored, `Action` is case-insensitive, `ID` is 1 to 1024 bytes,
//! `FileName` 1 to 4096 bytes, `Expire` (required for `Lock` and `Put`) is a
//! finite number of seconds above 0 and at most the server's max TTL, and
//! `DataStore` must be a string for `Put` and is ignored otherwise. On
//! `Lock`, `Mode` is exactly `"Shared"` or `"Exclusive"` and `Limit` (only
//! with `"Mode":"Shared"`) a whole number, as a string or a number, from 1
//! to the server's `--max-holders`; other actions ignore both. A known
//! key given twice is refused: two `ID`s in one request is an ambiguity a lock
//! server should not resolve by guessing.

use simd_json::{Buffers, Node, StaticNode, Tape};

use crate::time::Millis;

pub use super::action::{Action, Mode};

/// Bytes of slack simd-json needs after a line's last byte. The bytes there
/// are read but never changed, so they may be the start of the next line.
pub const PADDING: usize = simd_json::INPUT_PADDING;

/// Longest accepted `ID`, in bytes.
pub const MAX_ID: usize = 1024;
/// Longest accepted `FileName`, in bytes.
pub const MAX_FILE_NAME: usize = 4096;
/// The default of `--max-holders`: most holders of one shared lock, and the
/// limit of a shared `Lock` that gives no `Limit`.
pub const DEFAULT_MAX_HOLDERS: u32 = 10_000;
/// Deepest JSON nesting accepted anywhere in a request (a real request is flat).
const MAX_DEPTH: usize = 32;

/// A valid request, borrowing its strings from the line it was parsed from.
///
/// The fields are private: a `Request` is made by the [`Parser`] or by
/// [`Request::new`], which both enforce the rules the store relies on (the
/// lengths of `ID` and `FileName`), so no hand-built request can break them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    action: Action,
    id: &'a str,
    name: &'a str,
    expire: Millis,
    wait: Millis,
    data: &'a str,
    credentials: Credentials<'a>,
    owner_name: Option<NameTag>,
    mode: Mode,
    /// `Limit`, or 0 when not given.
    limit: u32,
}

/// The `Name` and `Identity` a request carries (PROTOCOL.md,
/// Authentication), as sent: checking them is the session's job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// No `Name`: an anonymous request.
    #[default]
    Anonymous,
    /// A `Name` string, with the `Identity` string if there was one.
    Claimed {
        name: &'a str,
        identity: Option<&'a str>,
    },
    /// A `Name` that is not a string.
    Malformed,
}

impl<'a> Credentials<'a> {
    fn from_fields(name: Option<&Node<'a>>, identity: Option<&Node<'a>>) -> Credentials<'a> {
        match name {
            None => Credentials::Anonymous,
            Some(&Node::String(name)) => Credentials::Claimed {
                name,
                identity: match identity {
                    Some(&Node::String(identity)) => Some(identity),
                    _ => None,
                },
            },
            Some(_) => Credentials::Malformed,
        }
    }
}

/// A short digest of an authenticated `Name`: what an entry created by an
/// authenticated request keeps to be bound to its Name (never the
/// Identity). Made by the session once it has checked the Identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NameTag(pub u64);

impl<'a> Request<'a> {
    /// A request for `action` by `id` on `name`, with no TTL, no wait and no
    /// value; `BadPayload` if `id` or `name` breaks PROTOCOL.md's length
    /// rules.
    pub fn new(action: Action, id: &'a str, name: &'a str) -> Result<Request<'a>, ParseError> {
        if id.len() > MAX_ID {
            return Err(ParseError::BadPayload("ID too long"));
        }
        if name.len() > MAX_FILE_NAME {
            return Err(ParseError::BadPayload("FileName too long"));
        }
        Ok(Request::checked(action, id, name))
    }

    /// A request whose `id` and `name` the caller has checked against the
    /// length rules (the parser and [`Request::new`]).
    fn checked(action: Action, id: &'a str, name: &'a str) -> Request<'a> {
        Request {
            action,
            id,
            name,
            expire: Millis::ZERO,
            wait: Millis::ZERO,
            data: "",
            credentials: Credentials::Anonymous,
            owner_name: None,
            mode: Mode::Exclusive,
            limit: 0,
        }
    }

    /// The same request with TTL `expire` (`Expire`).
    pub fn with_expire(self, expire: Millis) -> Request<'a> {
        Request { expire, ..self }
    }

    /// The same request waiting up to `wait` in the lock's queue (`Wait`).
    pub fn with_wait(self, wait: Millis) -> Request<'a> {
        Request { wait, ..self }
    }

    /// The same request carrying the value `data` (`DataStore`).
    pub fn with_data(self, data: &'a str) -> Request<'a> {
        Request { data, ..self }
    }

    /// The same request holding in `mode` (`Mode`).
    pub fn with_mode(self, mode: Mode) -> Request<'a> {
        Request { mode, ..self }
    }

    /// The same request asking for at most `limit` holders (`Limit`); 0
    /// means no `Limit`. The store refuses a limit above its `max_holders`.
    pub fn with_limit(self, limit: u32) -> Request<'a> {
        Request { limit, ..self }
    }

    /// What the request asks for.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The caller's identity: the owner of what it creates.
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The lock or data item the request is about.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The TTL of a `Lock` or `Put`; zero (the grant ends at once) when the
    /// request asked for zero or less, and for other actions.
    pub fn expire(&self) -> Millis {
        self.expire
    }

    /// How long a `Lock` may wait in the lock's queue; zero for no waiting
    /// (and for every other action).
    pub fn wait(&self) -> Millis {
        self.wait
    }

    /// The opaque value of a `Put`; empty otherwise.
    pub fn data(&self) -> &'a str {
        self.data
    }

    /// The `Name` and `Identity` as sent.
    pub fn credentials(&self) -> Credentials<'a> {
        self.credentials
    }

    /// The same request carrying `credentials` (for tools and tests; the
    /// parser reads them from the line).
    pub fn with_credentials(self, credentials: Credentials<'a>) -> Request<'a> {
        Request {
            credentials,
            ..self
        }
    }

    /// The Name the request was authenticated as, if it was: the owner of
    /// what it creates is its ID and this Name.
    pub fn owner_name(&self) -> Option<NameTag> {
        self.owner_name
    }

    /// The same request, authenticated as the Name whose digest is `tag`.
    /// Only the session calls this, after checking the Identity.
    pub fn authenticated_as(self, tag: NameTag) -> Request<'a> {
        Request {
            owner_name: Some(tag),
            ..self
        }
    }

    /// How a `Lock` holds; [`Mode::Exclusive`] unless it said `Shared`.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The `Limit` of a shared `Lock`, if it gave one.
    pub fn limit(&self) -> Option<u32> {
        (self.limit != 0).then_some(self.limit)
    }
}

/// Why a line is not a valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Answered `BadPayload`; the text says what was wrong (for debug logs,
    /// never containing client data).
    BadPayload(&'static str),
    /// Answered `BadAction`.
    BadAction,
}

/// Reusable parsing state: simd-json's buffers and tape, and room for the
/// decimal text of an `ID` or `FileName` sent as a number.
pub struct Parser {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    max_ttl_ms: u64,
    numbers: String,
    max_holders: u32,
}

/// Room for two numbers' text: an integer is at most 20 characters, a
/// float's shortest round-trip form at most 24.
const NUMBER_ROOM: usize = 64;

impl Parser {
    /// A parser that accepts TTLs (and waits) up to `max_ttl_ms` milliseconds.
    pub fn new(max_ttl_ms: u64) -> Parser {
        Parser {
            buffers: Buffers::with_max_depth(4096, MAX_DEPTH),
            tape: Some(Tape::null().reset()),
            max_ttl_ms: max_ttl_ms.max(1),
            numbers: String::with_capacity(NUMBER_ROOM),
            max_holders: DEFAULT_MAX_HOLDERS,
        }
    }

    /// The same parser accepting a `Limit` of at most `max_holders`.
    pub fn with_max_holders(self, max_holders: u32) -> Parser {
        Parser {
            max_holders: max_holders.max(1),
            ..self
        }
    }

    /// Gives back memory that a large line made the parser's buffers grow.
    pub fn shrink(&mut self) {
        self.buffers = Buffers::with_max_depth(4096, MAX_DEPTH);
        self.tape = Some(Tape::null().reset());
    }

    /// Parses the JSON text in `buf[..len]`. `buf` must extend at least
    /// [`PADDING`] bytes past `len`; those bytes are not changed. Strings in
    /// `buf[..len]` are unescaped in place.
    ///
    /// The request borrows from `buf` and, for an `ID` or `FileName` sent
    /// as a number, from the parser.
    pub fn parse<'a>(
        &'a mut self,
        buf: &'a mut [u8],
        len: usize,
    ) -> Result<Request<'a>, ParseError> {
        let Parser {
            buffers,
            tape: kept,
            max_ttl_ms,
            numbers,
            max_holders,
        } = self;
        let mut tape: Tape<'a> = kept.take().unwrap_or_else(Tape::null).reset();
        let parsed = if buf.len() < len + PADDING {
            Err(ParseError::BadPayload("line buffer lacks padding"))
        } else {
            match simd_json::fill_tape_padded(buf, len, buffers, &mut tape) {
                Ok(()) => read_request(&tape.0, *max_ttl_ms, *max_holders, numbers),
                Err(_) => Err(ParseError::BadPayload("not JSON")),
            }
        };
        *kept = Some(tape.reset());
        parsed
    }
}

/// The values of the known keys, found while walking the object's keys.
#[derive(Default)]
struct Fields<'t, 'a> {
    id: Option<&'t Node<'a>>,
    name: Option<&'t Node<'a>>,
    action: Option<&'t Node<'a>>,
    expire: Option<&'t Node<'a>>,
    wait: Option<&'t Node<'a>>,
    data: Option<&'t Node<'a>>,
    auth_name: Option<&'t Node<'a>>,
    identity: Option<&'t Node<'a>>,
    mode: Option<&'t Node<'a>>,
    limit: Option<&'t Node<'a>>,
}

fn read_request<'a>(
    tape: &[Node<'a>],
    max_ttl_ms: u64,
    max_holders: u32,
    numbers: &'a mut String,
) -> Result<Request<'a>, ParseError> {
    let Some((&Node::Object { len, .. }, mut rest)) = tape.split_first() else {
        return Err(ParseError::BadPayload("not a JSON object"));
    };
    let mut fields = Fields::default();
    for _ in 0..len {
        let [Node::String(key), value, after @ ..] = rest else {
            return Err(ParseError::BadPayload("malformed object"));
        };
        // By length first: each key then costs one fixed-size comparison.
        let slot = match key.len() {
            2 if *key == "ID" => Some(&mut fields.id),
            8 if *key == "FileName" => Some(&mut fields.name),
            6 if *key == "Action" => Some(&mut fields.action),
            6 if *key == "Expire" => Some(&mut fields.expire),
            4 if *key == "Wait" => Some(&mut fields.wait),
            4 if *key == "Mode" => Some(&mut fields.mode),
            5 if *key == "Limit" => Some(&mut fields.limit),
            9 if *key == "DataStore" => Some(&mut fields.data),
            4 if *key == "Name" => Some(&mut fields.auth_name),
            8 if *key == "Identity" => Some(&mut fields.identity),
            _ => None,
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return Err(ParseError::BadPayload("duplicate key"));
            }
            *slot = Some(value);
        }
        // Step over a nested value's nodes to the next key.
        rest = match *value {
            Node::Object { count, .. } | Node::Array { count, .. } => {
                after.get(count..).unwrap_or_default()
            }
            _ => after,
        };
    }

    let action = match fields.action {
        Some(&Node::String(name)) => Action::from_name(name).ok_or(ParseError::BadAction)?,
        Some(_) => return Err(ParseError::BadPayload("Action is not a string")),
        None => return Err(ParseError::BadPayload("Action missing")),
    };
    // Numbers are written out first, then both texts are borrowed.
    numbers.clear();
    let id = text_field(
        fields.id,
        MAX_ID,
        numbers,
        "ID missing, not text, or too long",
    )?;
    let name = text_field(
        fields.name,
        MAX_FILE_NAME,
        numbers,
        "FileName missing, not text, or too long",
    )?;
    let numbers: &'a str = numbers;
    let mut request = Request::checked(action, id.get(numbers), name.get(numbers));
    request.credentials = Credentials::from_fields(fields.auth_name, fields.identity);
    match action {
        Action::Lock => {
            request.expire = Millis::new(ttl_ms(fields.expire.copied(), max_ttl_ms)?);
            if let Some(wait) = fields.wait {
                request.wait = Millis::new(wait_ms(*wait, max_ttl_ms)?);
            }
            if fields.mode.is_some() || fields.limit.is_some() {
                read_mode(&mut request, fields.mode, fields.limit, max_holders)?;
            }
        }
        Action::Put => {
            request.expire = Millis::new(ttl_ms(fields.expire.copied(), max_ttl_ms)?);
            request.data = match fields.data {
                Some(&Node::String(data)) => data,
                _ => return Err(ParseError::BadPayload("DataStore missing or not a string")),
            };
        }
        _ => {}
    }
    Ok(request)
}

/// `Mode` and `Limit` of a `Lock` (the extension; old clients send neither).
#[cold]
fn read_mode(
    request: &mut Request<'_>,
    mode: Option<&Node<'_>>,
    limit: Option<&Node<'_>>,
    max_holders: u32,
) -> Result<(), ParseError> {
    request.mode = match mode {
        None => Mode::Exclusive,
        Some(&Node::String(name)) => {
            Mode::from_name(name).ok_or(ParseError::BadPayload("Mode unknown"))?
        }
        Some(_) => return Err(ParseError::BadPayload("Mode is not a string")),
    };
    if let Some(limit) = limit {
        if request.mode != Mode::Shared {
            return Err(ParseError::BadPayload("Limit without Mode Shared"));
        }
        let n = match *limit {
            Node::String(text) => text.trim_ascii().parse::<u32>().ok(),
            Node::Static(StaticNode::U64(n)) => u32::try_from(n).ok(),
            Node::Static(StaticNode::I64(n)) => u32::try_from(n).ok(),
            _ => None,
        };
        request.limit = n
            .filter(|n| (1..=max_holders).contains(n))
            .ok_or(ParseError::BadPayload("Limit not a whole number in range"))?;
    }
    Ok(())
}

/// Where an `ID` or `FileName` text is: in the line, or written out from a
/// number into the parser's `numbers`.
enum Text<'a> {
    Line(&'a str),
    Number(std::ops::Range<usize>),
}

impl<'a> Text<'a> {
    fn get(self, numbers: &'a str) -> &'a str {
        match self {
            Text::Line(text) => text,
            Text::Number(range) => numbers.get(range).unwrap_or_default(),
        }
    }
}

/// An `ID` or `FileName`: a string of at most `max` bytes, or a number
/// taken as its decimal text (PROTOCOL.md, Request fields), which is
/// appended to `numbers`.
fn text_field<'a>(
    node: Option<&Node<'a>>,
    max: usize,
    numbers: &mut String,
    complaint: &'static str,
) -> Result<Text<'a>, ParseError> {
    let start = numbers.len();
    match node {
        Some(&Node::String(text)) if text.len() <= max => return Ok(Text::Line(text)),
        Some(&Node::Static(StaticNode::U64(n))) => {
            numbers.push_str(itoa::Buffer::new().format(n));
        }
        Some(&Node::Static(StaticNode::I64(n))) => {
            numbers.push_str(itoa::Buffer::new().format(n));
        }
        Some(&Node::Static(StaticNode::F64(f))) => write_float(f, numbers),
        _ => return Err(ParseError::BadPayload(complaint)),
    }
    Ok(Text::Number(start..numbers.len()))
}

/// Appends `f` in its shortest round-trip form, written as Python writes a
/// float (`1.5`, `1000.0`, `1e+22`, `1.5e-07`), since the upstream server
/// reads a numeric `ID` through Python.
fn write_float(f: f64, out: &mut String) {
    use std::fmt::Write as _;
    let start = out.len();
    // Debug is the shortest form that reads back as the same f64, and
    // switches to an exponent where Python's repr does (below 1e-4, from
    // 1e16 up); Python signs the exponent and gives it two digits at least.
    let _ = write!(out, "{f:?}");
    if let Some(e) = out[start..].find('e').map(|e| start + e) {
        let exponent = out.split_off(e + 1);
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(digits) => ('-', digits),
            None => ('+', exponent.as_str()),
        };
        out.push(sign);
        if digits.len() < 2 {
            out.push('0');
        }
        out.push_str(digits);
    }
}

/// Seconds as sent (a JSON number or a decimal string), before range checks.
fn seconds(node: Node<'_>) -> Option<f64> {
    match node {
        Node::String(text) => text.trim_ascii().parse::<f64>().ok(),
        Node::Static(StaticNode::I64(n)) => Some(n as f64),
        Node::Static(StaticNode::U64(n)) => Some(n as f64),
        Node::Static(StaticNode::F64(n)) => Some(n),
        _ => None,
    }
}

/// Whole milliseconds for `secs`, rounded up so that a positive TTL never
/// becomes zero.
fn to_ms(secs: f64) -> u64 {
    // Callers pass finite seconds within the max TTL (at most ten years),
    // far below 2^64 ms; `as` saturates besides.
    #[allow(clippy::cast_possible_truncation)]
    let ms = (secs * 1000.0).ceil() as u64;
    ms.max(1)
}

/// Milliseconds for whole seconds sent the common way (`"30"`, `" 30 "` or
/// `30`); `None` for anything else (fractions, exponents, negative or huge
/// values), which takes the general path through [`seconds`]. Whole seconds
/// need no floating point.
fn whole_ms(node: Node<'_>) -> Option<u64> {
    let secs = match node {
        Node::String(text) => {
            // Spaces around the digits are allowed but rare: trim only when
            // the text as sent is not plain digits.
            let text = text.as_bytes();
            whole_seconds(text).or_else(|| whole_seconds(text.trim_ascii()))?
        }
        Node::Static(StaticNode::U64(n)) => n,
        Node::Static(StaticNode::I64(n)) => u64::try_from(n).ok()?,
        _ => return None,
    };
    secs.checked_mul(1000)
}

/// The value of 1 to 9 ASCII digits; `None` for anything else.
fn whole_seconds(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let mut secs = 0;
    for &byte in digits {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        secs = secs * 10 + u64::from(digit);
    }
    Some(secs)
}

/// The TTL of a `Lock` or `Put`: finite and at most the max TTL; zero or
/// less is no time at all (the grant ends at once, as upstream's does).
fn ttl_ms(node: Option<Node<'_>>, max_ttl_ms: u64) -> Result<u64, ParseError> {
    if let Some(ms) = node.and_then(whole_ms) {
        return if ms > max_ttl_ms {
            Err(ParseError::BadPayload("Expire out of range"))
        } else {
            Ok(ms)
        };
    }
    let secs = node
        .and_then(seconds)
        .ok_or(ParseError::BadPayload("Expire missing or not a number"))?;
    if !secs.is_finite() || secs * 1000.0 > max_ttl_ms as f64 {
        return Err(ParseError::BadPayload("Expire out of range"));
    }
    Ok(if secs <= 0.0 { 0 } else { to_ms(secs) })
}

fn wait_ms(node: Node<'_>, max_ttl_ms: u64) -> Result<u64, ParseError> {
    if let Some(ms) = whole_ms(node) {
        return if ms > max_ttl_ms {
            Err(ParseError::BadPayload("Wait out of range"))
        } else {
            Ok(ms)
        };
    }
    let secs = seconds(node).ok_or(ParseError::BadPayload("Wait is not a number"))?;
    if !secs.is_finite() || secs < 0.0 || secs * 1000.0 > max_ttl_ms as f64 {
        return Err(ParseError::BadPayload("Wait out of range"));
    }
    Ok(if secs == 0.0 { 0 } else { to_ms(secs) })
}

#[cfg(test)]
mod tests;
