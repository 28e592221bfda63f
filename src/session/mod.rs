//! The socket-free request path: a connection's buffers and what happens to
//! a line between the bytes the reactor read and the bytes it writes back.
//!
//! The reactor reads bytes into a [`Connection`], calls
//! [`Connection::serve`] to answer the complete lines they hold, and writes
//! [`Connection::unsent`] to the socket. Everything between, framing,
//! decoding the table encoding, parsing in place, applying to the store,
//! writing and encoding the reply, happens here, so it is tested, fuzzed
//! (`connection` target), benchmarked (`request` bench) and driven by the
//! golden scripts (`tests/scripts/`) without sockets.
//!
//! - [`Session`]: what every connection of a reactor shares: the store, the
//!   parser and scratch buffers, and which connection each parked request
//!   belongs to. [`Session::answer_line`] is the path of one line.
//! - [`Connection`]: one client's input and output buffers and its queue of
//!   parked replies (replies leave in request order, parked or not).
//!
//! Every reply is counted here, in one place ([`count_reply`]): `Out`, and
//! the counter of its status where PROTOCOL.md has one.
//!
//! Boundary: no sockets and no clock (the time is an argument); the store
//! decides, this layer only frames, parses, routes and writes.

pub mod auth;
mod connection;
mod replies;

use std::ops::Range;

use hashbrown::HashMap;

use crate::protocol::codec::{self, Encoding};
use crate::protocol::request::PADDING;
use crate::protocol::{ParseError, Parser, Reply, Status};
use crate::stats::Counters;
use crate::store::{Completion, Outcome, Store, Ticket};
use crate::time::{Millis, Moment};

pub use connection::{Connection, Served};

/// Identifies a connection to the session: the reactor's slab key.
pub type ConnKey = usize;

/// State shared by every connection of a reactor: the store and the scratch
/// buffers of the request path.
pub struct Session {
    /// The locks, data items and counters.
    pub store: Store,
    parser: Parser,
    /// A table-encoded line, decoded (plus padding for the parser).
    decoded: Vec<u8>,
    /// The plain JSON of a reply that goes out table-encoded.
    plain: Vec<u8>,
    /// Most lines answered per connection per call of [`Connection::serve`].
    batch: usize,
    /// The line limit given to new connections.
    max_line: usize,
    /// Which connection each parked request belongs to.
    parked: HashMap<Ticket, ConnKey>,
    /// With `--identity-dir`: the identities and the anonymous limits.
    auth: Option<auth::Policy>,
}

/// What [`Session::answer_line`] did with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Only whitespace: nothing to answer.
    Blank,
    /// The reply was appended to the output.
    Replied,
    /// The request waits in a lock's queue; its reply comes later.
    Parked {
        ticket: Ticket,
        id: Box<str>,
        encoding: Encoding,
    },
}

impl Session {
    /// A session over `store`, accepting TTLs up to `max_ttl`, answering at
    /// most `batch` lines per connection per turn, with lines of at most
    /// `max_line` bytes.
    pub fn new(store: Store, max_ttl: Millis, batch: usize, max_line: usize) -> Session {
        let max_holders = store.config().max_holders;
        Session {
            store,
            parser: Parser::new(max_ttl.as_ms()).with_max_holders(max_holders),
            decoded: Vec::new(),
            plain: Vec::new(),
            batch: batch.max(1),
            max_line,
            parked: HashMap::new(),
            auth: None,
        }
    }

    /// Authenticates every request from now on as `policy` says (PROTOCOL.md,
    /// Authentication).
    pub fn authenticate(&mut self, policy: auth::Policy) {
        self.auth = Some(policy);
    }

    /// Replaces the identities (the directory was read again); no effect
    /// unless the session authenticates.
    pub fn set_identities(&mut self, identities: auth::Identities) {
        if let Some(policy) = &mut self.auth {
            policy.identities = identities;
        }
    }

    /// Moves the completions of parked requests out of the store, each with
    /// the key of the connection it belongs to (completions of connections
    /// that closed are dropped).
    pub fn completions(&mut self, out: &mut Vec<(ConnKey, Completion)>) {
        let mut done = Vec::new();
        self.store.take_completions(&mut done);
        for completion in done {
            if let Some(conn) = self.parked.remove(&completion.ticket) {
                out.push((conn, completion));
            }
        }
    }

    /// The line limit of new connections.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Gives back the memory of scratch buffers that a large line grew.
    pub fn shrink(&mut self) {
        self.decoded = Vec::new();
        self.plain = Vec::new();
        self.parser.shrink();
    }

    /// Answers the line `buf[line]`, appending the reply and its newline to
    /// `out`, in the line's own encoding. `buf` must extend at least
    /// [`PADDING`] bytes past the line. Writes nothing for a line of only
    /// whitespace, or for a request that waits in a lock's queue.
    pub fn answer_line(
        &mut self,
        now: Moment,
        buf: &mut [u8],
        line: Range<usize>,
        out: &mut Vec<u8>,
    ) -> Answer {
        let raw = &buf[line.clone()];
        // Requests nearly always arrive as a bare `{...}`: nothing to trim.
        let (skip, len) = if let [b'{', .., b'}'] = raw {
            (0, raw.len())
        } else {
            let rest = raw.trim_ascii_start();
            (raw.len() - rest.len(), rest.trim_ascii_end().len())
        };
        if len == 0 {
            return Answer::Blank;
        }
        let start = line.start + skip;
        let Session {
            store,
            parser,
            decoded,
            plain,
            auth,
            ..
        } = self;
        let auth = auth.as_ref();
        store.counters.requests_in += 1;
        let encoding = Encoding::of_first_byte(buf[start]);
        let mut parked_id = "";
        let outcome = match encoding {
            Encoding::Plain => answer(
                store,
                parser,
                auth,
                now,
                &mut buf[start..],
                len,
                &mut parked_id,
            ),
            Encoding::Table => {
                decoded.clear();
                match codec::decode_into(&buf[start..start + len], decoded) {
                    Ok(()) => {
                        let len = decoded.len();
                        decoded.resize(len + PADDING, b' ');
                        answer(store, parser, auth, now, decoded, len, &mut parked_id)
                    }
                    Err(_) => Outcome::Reply(Reply::Bare(Status::BadPayload)),
                }
            }
        };
        let reply = match outcome {
            Outcome::Reply(reply) => reply,
            Outcome::Parked(ticket) => {
                return Answer::Parked {
                    ticket,
                    id: parked_id.into(),
                    encoding,
                };
            }
        };
        let status = reply.status();
        write_reply(reply, encoding, plain, out);
        count_reply(&mut store.counters, status);
        Answer::Replied
    }

    /// Answers a line over the limit, of which `start` is what arrived
    /// (PROTOCOL.md, Transport and framing): `BadPayload`, in the encoding
    /// its first byte announced, counted as `DataOverrun`.
    pub fn answer_overrun(&mut self, start: &[u8], out: &mut Vec<u8>) -> Answer {
        // Only what the framer must have seen counts: the first line's worth.
        let encoding = start[..start.len().min(self.max_line)]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .map_or(Encoding::Plain, |&b| Encoding::of_first_byte(b));
        let counters = &mut self.store.counters;
        counters.requests_in += 1;
        counters.data_overrun += 1;
        write_reply(
            Reply::Bare(Status::BadPayload),
            encoding,
            &mut self.plain,
            out,
        );
        count_reply(&mut self.store.counters, Status::BadPayload);
        Answer::Replied
    }
}

/// Parses `buf[..len]` and applies it, or names what was wrong with it.
/// A parked request's ID (which its reply needs later, when the request is
/// gone) is left in `parked_id`.
fn answer<'a>(
    store: &'a mut Store,
    parser: &'a mut Parser,
    auth: Option<&auth::Policy>,
    now: Moment,
    buf: &'a mut [u8],
    len: usize,
    parked_id: &mut &'a str,
) -> Outcome<'a> {
    match parser.parse(buf, len) {
        Ok(mut request) => {
            if let Some(policy) = auth {
                match policy.judge(&request) {
                    Ok(Some(tag)) => request = request.authenticated_as(tag),
                    Ok(None) => {}
                    Err(auth::AuthFailed) => {
                        store.counters.auth_failed += 1;
                        return Outcome::Reply(Reply::Bare(Status::BadPayload));
                    }
                }
            }
            log::debug!(
                "{} {:?} by {:?}",
                request.action().name(),
                request.name(),
                request.id()
            );
            let outcome = store.apply(now, &request);
            if let Outcome::Parked(_) = outcome {
                *parked_id = request.id();
            }
            outcome
        }
        Err(ParseError::BadAction) => Outcome::Reply(Reply::Bare(Status::BadAction)),
        Err(ParseError::BadPayload(why)) => {
            log::debug!("bad payload: {why}");
            Outcome::Reply(Reply::Bare(Status::BadPayload))
        }
    }
}

/// Appends `reply` and its newline to `out` in `encoding`; `plain` is
/// scratch for the JSON of a table-encoded reply.
#[inline]
fn write_reply(reply: Reply<'_>, encoding: Encoding, plain: &mut Vec<u8>, out: &mut Vec<u8>) {
    match encoding {
        Encoding::Plain => reply.write_line(out),
        Encoding::Table => {
            plain.clear();
            reply.write_json(plain);
            codec::encode_into(plain, out);
            out.push(b'\n');
        }
    }
}

/// Counts one reply that was written: `Out`, and its status's own counter
/// where PROTOCOL.md has one. The one place replies are counted.
pub fn count_reply(counters: &mut Counters, status: Status) {
    counters.replies_out += 1;
    match status {
        Status::NotOwner => counters.not_owner += 1,
        Status::BadPayload => counters.bad_payload += 1,
        Status::BadAction => counters.bad_action += 1,
        Status::No => {
            counters.memory_refused += 1;
            counters.memory_overload_check += 1;
        }
        Status::Locked
        | Status::Unlocked
        | Status::Done
        | Status::NotFound
        | Status::Version
        | Status::Stats
        | Status::NoData
        | Status::Corruption
        | Status::Unavailable => {}
    }
}

#[cfg(test)]
mod tests;
