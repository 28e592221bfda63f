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
mod replicated;
mod replies;

use std::ops::Range;

use hashbrown::HashMap;

use crate::protocol::codec::{self, Encoding};
use crate::protocol::request::PADDING;
use crate::protocol::{FencingToken, ParseError, Parser, Reply, Request, Status};
use crate::replication::command::{self, Command, EntryKind, Origin};
use crate::stats::Counters;
use crate::store::{Completion, Outcome, Store, Ticket};
use crate::time::{Millis, Moment};

pub use connection::{Connection, Served};
pub use replicated::{Admin, Deliveries, Delivery, MemberRequest, Replicated, member_spec};

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
    /// Completions taken from a store about to be replaced, for the next
    /// [`Session::completions`].
    carried: Vec<(ConnKey, Completion)>,
    /// With `--identity-dir`: the identities and the anonymous limits.
    auth: Option<auth::Policy>,
    /// In a cluster or with `--data-dir`: requests go through the log.
    pub replicated: Option<Replicated>,
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
    /// The request was proposed to the log; its reply comes once applied.
    Proposed {
        origin: Origin,
        id: Box<str>,
        encoding: Encoding,
    },
}

/// What the request path decided: the store's outcome now, or a proposal.
enum Decided<'a> {
    Now(Outcome<'a>),
    Proposed(Origin),
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
            carried: Vec::new(),
            auth: None,
            replicated: None,
        }
    }

    /// Sends every request the store decides through the log from now on
    /// (see `replicated.rs`).
    pub fn replicate(&mut self, replicated: Replicated) {
        self.replicated = Some(replicated);
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
        out.append(&mut self.carried);
        let mut done = Vec::new();
        self.store.take_completions(&mut done);
        for completion in done {
            if let Some(conn) = self.parked.remove(&completion.ticket) {
                out.push((conn, completion));
            }
        }
    }

    /// Replaces the store by `store` (a leader's snapshot installed): every
    /// request parked in the old one is answered `NotOwner`, as on a change
    /// of leader, since the new store knows nothing of this node's tickets;
    /// the counters carry over.
    pub fn replace_store(&mut self, store: Store) {
        self.store.cancel_all_waits();
        let mut carried = std::mem::take(&mut self.carried);
        self.completions(&mut carried);
        self.carried = carried;
        self.parked.clear();
        // The counters are this node's, not the snapshot's: they go on,
        // but for what is alive now.
        let mut store = store;
        let (a_lock, a_data) = (store.counters.a_lock, store.counters.a_data);
        store.counters = self.store.counters.clone();
        store.counters.a_lock = a_lock;
        store.counters.a_data = a_data;
        self.store = store;
    }

    /// Applies one committed log entry at cluster time `at` (replicated
    /// mode): the store expires what is due then, then decides each command;
    /// the replies this node owes its own clients are pushed to `out`.
    /// Every node runs exactly this on the same entries, so their stores
    /// agree (no local clock, no connection state decides anything here).
    pub fn apply_entry(&mut self, at: Moment, data: &[u8], out: &mut Deliveries) {
        let Session {
            store,
            plain,
            replicated,
            ..
        } = self;
        let Some(replicated) = replicated.as_mut() else {
            return;
        };
        let entry = match command::decode(data) {
            Ok(entry) => entry,
            Err(e) => {
                // Every node holds the same bytes and skips them alike.
                log::error!("a committed entry does not decode ({e}); skipped");
                return;
            }
        };
        replicated.cluster_time = replicated.cluster_time.max(at);
        let at = replicated.cluster_time;
        store.expire(at, usize::MAX);
        if let EntryKind::Lead { token_floor, node } = entry.kind {
            log::debug!("node {node} leads from cluster time {} ms", at.as_ms());
            store.cancel_all_waits();
            store.raise_token_floor(FencingToken::new(token_floor));
        }
        for command in entry.commands() {
            let command = match command {
                Ok(command) => command,
                Err(e) => {
                    log::error!("a committed command does not decode ({e}); rest skipped");
                    break;
                }
            };
            match command {
                Command::Cancel(origin) => {
                    store.cancel_origin(origin.into());
                }
                Command::Request(origin, request) if request.action().is_admin() => {
                    // Checked when proposed; the leader proposes the change
                    // (its reply comes when that is applied).
                    if let Some((node, addr)) = member_spec(request.action(), request.name()) {
                        replicated.admin.requests.push(MemberRequest {
                            origin,
                            add: request.action() == crate::protocol::Action::AddMember,
                            node,
                            addr: addr.to_owned(),
                            term: 0,
                        });
                    }
                }
                Command::Request(origin, request) => {
                    let mine = if origin.node() == u64::from(replicated.node) {
                        replicated.proposals.remove(&origin)
                    } else {
                        None
                    };
                    let outcome = store.apply_from(at, &request, origin.into());
                    let Some(proposal) = mine else {
                        continue;
                    };
                    match outcome {
                        Outcome::Reply(reply) => {
                            let status = owe(reply, origin, proposal, plain, out);
                            count_reply(&mut store.counters, status);
                        }
                        Outcome::Parked(ticket) => out.list.push(Delivery::Parked {
                            conn: proposal.conn,
                            origin,
                            ticket,
                        }),
                    }
                }
            }
        }
        store.maybe_compact();
    }

    /// Answers reads (commands gathered by `take_reads`) whose read index
    /// this node has applied, from the store as it stands, without the log
    /// (`Store::read`); a read that would change something on the way is
    /// sent through the log instead.
    pub fn answer_reads(&mut self, commands: &[u8], out: &mut Deliveries) {
        let Session {
            store,
            plain,
            replicated,
            ..
        } = self;
        let Some(replicated) = replicated.as_mut() else {
            return;
        };
        let at = replicated.cluster_time;
        let mut start = 0;
        let mut rest = command::Commands::of(commands);
        while let Some(Ok(Command::Request(origin, request))) = rest.next() {
            let end = commands.len() - rest.remaining();
            let bytes = &commands[start..end];
            start = end;
            let Some(proposal) = replicated.proposals.get(&origin).copied() else {
                continue; // timed out, or its connection closed
            };
            match store.read(at, &request) {
                Some(reply) => {
                    replicated.proposals.remove(&origin);
                    let counts = crate::store::read_counts(&reply);
                    let status = owe(reply, origin, proposal, plain, out);
                    crate::store::count_read(&mut store.counters, counts);
                    count_reply(&mut store.counters, status);
                }
                None => replicated.through_log(bytes),
            }
        }
    }

    /// A change of membership asked for by `asked_by` was applied: if the
    /// request is this node's, its reply, `Done`, or `NotOwner` when raft
    /// refused the change.
    pub fn answer_member_change(&mut self, asked_by: u64, refused: bool, out: &mut Deliveries) {
        let Some(replicated) = self.replicated.as_mut() else {
            return;
        };
        let Some(origin) = std::num::NonZeroU64::new(asked_by).map(Origin) else {
            return;
        };
        let Some(proposal) = replicated.proposals.remove(&origin) else {
            return;
        };
        let status = if refused {
            Status::NotOwner
        } else {
            Status::Done
        };
        owe(Reply::Bare(status), origin, proposal, &mut self.plain, out);
        count_reply(&mut self.store.counters, status);
    }

    /// Answers `Unavailable` to this node's proposals that were not applied
    /// within `--commit-timeout` of local time `now`.
    pub fn expire_proposals(&mut self, now: Moment, out: &mut Deliveries) {
        let Some(replicated) = self.replicated.as_mut() else {
            return;
        };
        let mut late = Vec::new();
        replicated.timed_out(now, &mut late);
        for (origin, proposal) in late {
            let reply = Reply::Bare(Status::Unavailable);
            owe(reply, origin, proposal, &mut self.plain, out);
            count_reply(&mut self.store.counters, Status::Unavailable);
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
            replicated,
            ..
        } = self;
        let auth = auth.as_ref();
        let replicated = replicated.as_mut();
        store.counters.requests_in += 1;
        let encoding = Encoding::of_first_byte(buf[start]);
        let mut parked_id = "";
        let context = Context {
            auth,
            replicated,
            now,
        };
        let decided = match encoding {
            Encoding::Plain => answer(
                store,
                parser,
                context,
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
                        answer(store, parser, context, decoded, len, &mut parked_id)
                    }
                    Err(_) => Decided::Now(Outcome::Reply(Reply::Bare(Status::BadPayload))),
                }
            }
        };
        let reply = match decided {
            Decided::Now(Outcome::Reply(reply)) => reply,
            Decided::Now(Outcome::Parked(ticket)) => {
                return Answer::Parked {
                    ticket,
                    id: parked_id.into(),
                    encoding,
                };
            }
            Decided::Proposed(origin) => {
                return Answer::Proposed {
                    origin,
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

/// What the path of one line needs besides the store and the parser.
struct Context<'s> {
    auth: Option<&'s auth::Policy>,
    replicated: Option<&'s mut Replicated>,
    now: Moment,
}

/// Parses `buf[..len]` and applies it (or proposes it, replicated), or
/// names what was wrong with it. A parked or proposed request's ID (which
/// its reply needs later, when the request is gone) is left in `parked_id`.
fn answer<'a>(
    store: &'a mut Store,
    parser: &'a mut Parser,
    context: Context<'a>,
    buf: &'a mut [u8],
    len: usize,
    parked_id: &mut &'a str,
) -> Decided<'a> {
    let Context {
        auth,
        replicated,
        now,
    } = context;
    let refused = |status| Decided::Now(Outcome::Reply(Reply::Bare(status)));
    match parser.parse(buf, len) {
        Ok(mut request) => {
            if let Some(policy) = auth {
                match policy.judge(&request) {
                    Ok(Some(tag)) => request = request.authenticated_as(tag),
                    Ok(None) => {}
                    Err(auth::AuthFailed) => {
                        store.counters.auth_failed += 1;
                        return refused(Status::BadPayload);
                    }
                }
            }
            log::debug!(
                "{} {:?} by {:?}",
                request.action().name(),
                request.name(),
                request.id()
            );
            if let Some(replicated) = replicated {
                return propose(store, replicated, &request, parked_id);
            }
            let outcome = store.apply(now, &request);
            if let Outcome::Parked(_) = outcome {
                *parked_id = request.id();
            }
            Decided::Now(outcome)
        }
        Err(ParseError::BadAction) => refused(Status::BadAction),
        Err(ParseError::BadPayload(why)) => {
            log::debug!("bad payload: {why}");
            refused(Status::BadPayload)
        }
    }
}

/// A request in replicated mode: into the turn's commands, unless it is one
/// this node answers alone (`Version`, and `Stats` with its place).
fn propose<'a>(
    store: &'a Store,
    replicated: &'a mut Replicated,
    request: &Request<'a>,
    parked_id: &mut &'a str,
) -> Decided<'a> {
    let action = request.action();
    if action.is_admin() {
        if let Some(refusal) = refuse_admin(replicated, request) {
            return Decided::Now(Outcome::Reply(Reply::Bare(refusal)));
        }
    }
    if Replicated::replicates(action) {
        *parked_id = request.id();
        return Decided::Proposed(replicated.propose(request));
    }
    let reply = match action {
        crate::protocol::Action::Stats => {
            Reply::ClusterStats(&store.counters, replicated.place_fields())
        }
        crate::protocol::Action::Members => Reply::Members {
            place: replicated.place_fields(),
            voters: &replicated.admin.voters,
            peers: &replicated.admin.peers,
        },
        _ => Reply::Version,
    };
    Decided::Now(Outcome::Reply(reply))
}

/// Why an administration request is refused, if it is: `BadAction` where
/// there is no cluster (a durable single server), `NotOwner` unless it was
/// authenticated as one of the `--admin` Names, `BadPayload` for a
/// `FileName` that names no member.
fn refuse_admin(replicated: &Replicated, request: &Request<'_>) -> Option<Status> {
    let admin = &replicated.admin;
    if !admin.clustered {
        return Some(Status::BadAction);
    }
    if !request
        .owner_name()
        .is_some_and(|tag| admin.names.contains(&tag))
    {
        return Some(Status::NotOwner);
    }
    let action = request.action();
    if action != crate::protocol::Action::Members && member_spec(action, request.name()).is_none() {
        return Some(Status::BadPayload);
    }
    None
}

/// The reply to this node's proposal `origin`, written in its encoding and
/// owed to its connection; its status, for the caller to count (once the
/// reply, which may borrow the store, is gone).
fn owe(
    reply: Reply<'_>,
    origin: Origin,
    proposal: replicated::Proposal,
    plain: &mut Vec<u8>,
    out: &mut Deliveries,
) -> Status {
    let start = out.bytes.len();
    let status = reply.status();
    write_reply(reply, proposal.encoding, plain, &mut out.bytes);
    out.list.push(Delivery::Reply {
        conn: proposal.conn,
        origin,
        status,
        bytes: start..out.bytes.len(),
    });
    status
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
        | Status::Unavailable
        | Status::Members => {}
    }
}

#[cfg(test)]
mod tests;
