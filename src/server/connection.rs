//! One client connection's buffers and the path a request line takes through
//! them, without the socket.
//!
//! The reactor reads bytes into [`Connection::read_buffer`], calls
//! [`Connection::serve`] to answer the complete lines they hold, and writes
//! [`Connection::unsent`] to the socket. Everything between, framing,
//! decoding the table encoding, parsing in place, applying to the store and
//! encoding the reply, happens here and in [`Engine`], so it can be tested and
//! fuzzed without sockets.
//!
//! The input buffer always keeps [`PADDING`] bytes after the received data,
//! because simd-json reads (but never changes) that many bytes past a line;
//! lines are therefore parsed where they were received, never copied.

use std::collections::VecDeque;
use std::ops::Range;

use hashbrown::HashMap;

use crate::protocol::codec;
use crate::protocol::frame::{Frame, Framer};
use crate::protocol::request::PADDING;
use crate::protocol::{ParseError, Parser, Reply, Status};
use crate::store::{Completion, Store, Ticket};

/// Input buffer size a connection starts with (and shrinks back to).
const INITIAL_INPUT: usize = 16 * 1024;
/// Smallest free space worth a `read` call.
const MIN_READ: usize = 4 * 1024;
/// Output capacity above which an idle connection gives memory back.
const KEEP_OUTPUT: usize = 64 * 1024;

/// State shared by every connection of a reactor: the store and the scratch
/// buffers of the request path.
pub struct Engine {
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
    parked: HashMap<Ticket, usize>,
}

/// What [`Engine::answer_line`] did with a line.
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
        encoded: bool,
    },
}

impl Engine {
    /// An engine over `store`, accepting TTLs up to `max_ttl_ms` and
    /// answering at most `batch` lines per connection per turn.
    pub fn new(store: Store, max_ttl_ms: u64, batch: usize, max_line: usize) -> Engine {
        Engine {
            store,
            parser: Parser::new(max_ttl_ms),
            decoded: Vec::new(),
            plain: Vec::new(),
            batch: batch.max(1),
            max_line,
            parked: HashMap::new(),
        }
    }

    /// Moves the completions of parked requests out of the store, each with
    /// the key of the connection it belongs to (completions of connections
    /// that closed are dropped).
    pub fn completions(&mut self, out: &mut Vec<(usize, Completion)>) {
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
        now: u64,
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
        let Engine {
            store,
            parser,
            decoded,
            plain,
            ..
        } = self;
        store.counters.requests_in += 1;
        if buf[start] == b'{' {
            let reply = answer(store, parser, now, &mut buf[start..], len);
            if let Reply::Parked { ticket, id } = reply {
                return Answer::Parked {
                    ticket,
                    id: id.into(),
                    encoded: false,
                };
            }
            reply.write_line(out);
        } else {
            decoded.clear();
            plain.clear();
            let reply = match codec::decode_into(&buf[start..start + len], decoded) {
                Ok(()) => {
                    let len = decoded.len();
                    decoded.resize(len + PADDING, b' ');
                    answer(store, parser, now, decoded, len)
                }
                Err(_) => {
                    store.counters.bad_payload += 1;
                    Reply::Bare(Status::BadPayload)
                }
            };
            if let Reply::Parked { ticket, id } = reply {
                return Answer::Parked {
                    ticket,
                    id: id.into(),
                    encoded: true,
                };
            }
            reply.write_json(plain);
            codec::encode_into(plain, out);
            out.push(b'\n');
        }
        store.counters.replies_out += 1;
        Answer::Replied
    }
}

/// Parses `buf[..len]` and applies it, or names what was wrong with it.
fn answer<'a>(
    store: &'a mut Store,
    parser: &mut Parser,
    now: u64,
    buf: &'a mut [u8],
    len: usize,
) -> Reply<'a> {
    match parser.parse(buf, len) {
        Ok(request) => {
            log::debug!(
                "{} {:?} by {:?}",
                request.action.name(),
                request.name,
                request.id
            );
            store.apply(now, &request)
        }
        Err(ParseError::BadAction) => {
            store.counters.bad_action += 1;
            Reply::Bare(Status::BadAction)
        }
        Err(ParseError::BadPayload(why)) => {
            log::debug!("bad payload: {why}");
            store.counters.bad_payload += 1;
            Reply::Bare(Status::BadPayload)
        }
    }
}

/// Why [`Connection::serve`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Every complete line received so far is answered.
    AllLines,
    /// The per-turn budget ran out; complete lines may remain.
    Budget,
    /// Too many reply bytes wait to be sent: stop reading until they drain.
    OutputFull,
    /// A line exceeded the limit: close the connection (counted).
    Overrun,
}

/// One connection's input and output buffers.
pub struct Connection {
    /// Received bytes are `input[..filled]`; the allocation always extends at
    /// least [`PADDING`] bytes further.
    input: Vec<u8>,
    filled: usize,
    framer: Framer,
    output: Vec<u8>,
    sent: usize,
    /// When the current unfinished line was first seen (ms).
    partial_since: Option<u64>,
    /// Requests waiting in lock queues, in request order, each with the
    /// replies to the requests after it (which must not overtake it).
    parked: VecDeque<ParkedReply>,
    /// Bytes of replies held back behind parked requests.
    held: usize,
    /// The key the reactor knows this connection by.
    key: usize,
}

/// A reply slot for a parked request.
struct ParkedReply {
    ticket: Ticket,
    id: Box<str>,
    encoded: bool,
    /// Its reply, once the wait is over.
    reply: Option<Vec<u8>>,
    /// Replies to the requests that came after it, in order.
    behind: Vec<u8>,
}

impl Connection {
    /// A connection whose lines may be at most `max_line` bytes, known to
    /// the reactor (and to parked-request bookkeeping) as `key`.
    pub fn new(max_line: usize, key: usize) -> Connection {
        Connection {
            input: vec![0; INITIAL_INPUT.min(max_line + MIN_READ) + PADDING],
            filled: 0,
            framer: Framer::new(max_line),
            output: Vec::new(),
            sent: 0,
            partial_since: None,
            parked: VecDeque::new(),
            held: 0,
            key,
        }
    }

    /// Free space to read into: pass the number of bytes read to
    /// [`Connection::received`]. Grows the buffer (up to about the line
    /// limit) when an unfinished line fills it.
    pub fn read_buffer(&mut self) -> &mut [u8] {
        if self.input.len() < PADDING + MIN_READ {
            // After an overrun the buffer was given back; start afresh.
            self.input = vec![0; INITIAL_INPUT + PADDING];
            self.filled = 0;
            self.framer.reset();
        }
        let room = self.input.len() - PADDING - self.filled;
        if room < MIN_READ {
            let most = self.framer.max_line() + MIN_READ + PADDING;
            let grown = (self.input.len() * 2)
                .min(most)
                .max(self.filled + MIN_READ + PADDING);
            self.input.resize(grown, 0);
        }
        let end = self.input.len() - PADDING;
        &mut self.input[self.filled..end]
    }

    /// Records that `n` bytes were read into [`Connection::read_buffer`].
    pub fn received(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.input.len() - PADDING);
    }

    /// Answers complete lines, at most the engine's batch of them, and stops
    /// early when `max_output` reply bytes are waiting to be sent.
    pub fn serve(&mut self, engine: &mut Engine, now: u64, max_output: usize) -> Served {
        let mut answered = 0;
        let mut consumed_any = false;
        let outcome = loop {
            if self.pending_output() >= max_output {
                break Served::OutputFull;
            }
            if answered >= engine.batch {
                break Served::Budget;
            }
            match self.framer.next_line(&self.input[..self.filled]) {
                Frame::Line(line) => {
                    consumed_any = true;
                    if self.answer(engine, now, line) {
                        answered += 1;
                    }
                }
                Frame::Incomplete => break Served::AllLines,
                Frame::Overrun => {
                    engine.store.counters.data_overrun += 1;
                    self.filled = 0;
                    self.framer.reset();
                    self.input = Vec::new();
                    return Served::Overrun;
                }
            }
        };
        self.discard_consumed(now, consumed_any);
        outcome
    }

    /// At end of input: answers a last line that lacks its newline.
    pub fn finish(&mut self, engine: &mut Engine, now: u64) {
        if let Some(line) = self.framer.take_rest(&self.input[..self.filled]) {
            self.answer(engine, now, line);
        }
        self.discard_consumed(now, true);
    }

    /// Answers one line; its reply goes out directly, or behind the last
    /// parked request. True unless the line was blank.
    fn answer(&mut self, engine: &mut Engine, now: u64, line: Range<usize>) -> bool {
        let (out, held) = match self.parked.back_mut() {
            Some(last) => (&mut last.behind, true),
            None => (&mut self.output, false),
        };
        let before = out.len();
        match engine.answer_line(now, &mut self.input, line, out) {
            Answer::Blank => false,
            Answer::Replied => {
                if held {
                    self.held += out.len() - before;
                }
                true
            }
            Answer::Parked {
                ticket,
                id,
                encoded,
            } => {
                engine.parked.insert(ticket, self.key);
                self.parked.push_back(ParkedReply {
                    ticket,
                    id,
                    encoded,
                    reply: None,
                    behind: Vec::new(),
                });
                true
            }
        }
    }

    /// Writes the reply of a parked request that completed, and releases
    /// every reply that no longer waits behind an unanswered one.
    pub fn complete(&mut self, engine: &mut Engine, completion: Completion) {
        let Some(slot) = self
            .parked
            .iter_mut()
            .find(|p| p.ticket == completion.ticket)
        else {
            return;
        };
        let reply = match completion.granted {
            Some(token) => Reply::Locked {
                id: &slot.id,
                token,
            },
            None => Reply::Bare(Status::NotOwner),
        };
        let mut bytes = Vec::new();
        if slot.encoded {
            engine.plain.clear();
            reply.write_json(&mut engine.plain);
            codec::encode_into(&engine.plain, &mut bytes);
        } else {
            reply.write_json(&mut bytes);
        }
        bytes.push(b'\n');
        self.held += bytes.len();
        slot.reply = Some(bytes);
        engine.store.counters.replies_out += 1;
        while let Some(front) = self.parked.front_mut() {
            let Some(reply) = front.reply.take() else {
                break;
            };
            self.held -= reply.len() + front.behind.len();
            self.output.extend_from_slice(&reply);
            self.output.extend_from_slice(&front.behind);
            self.parked.pop_front();
        }
    }

    /// Takes this connection's requests out of every lock queue, answering
    /// them `NotOwner` so the replies behind them can still go out: for a
    /// client that closed its side (it cannot be granted a lock it would
    /// never hear of) and for a connection being closed.
    pub fn withdraw_waits(&mut self, engine: &mut Engine) {
        let waiting: Vec<Ticket> = self
            .parked
            .iter()
            .filter(|p| p.reply.is_none())
            .map(|p| p.ticket)
            .collect();
        for ticket in waiting {
            engine.store.cancel_wait(ticket);
            engine.parked.remove(&ticket);
            engine.store.counters.not_owner += 1;
            self.complete(
                engine,
                Completion {
                    ticket,
                    granted: None,
                },
            );
        }
    }

    /// Whether a request of this connection waits in a lock queue.
    pub fn is_waiting(&self) -> bool {
        !self.parked.is_empty()
    }

    /// Reply bytes not yet written, including those held back behind a
    /// parked request: what `--max-output` bounds.
    pub fn pending_output(&self) -> usize {
        self.unsent().len() + self.held
    }

    /// Moves the unfinished line to the front of the input buffer.
    fn discard_consumed(&mut self, now: u64, consumed_any: bool) {
        let consumed = self.framer.consumed();
        if consumed > 0 {
            self.input.copy_within(consumed..self.filled, 0);
            self.filled -= consumed;
            self.framer.discard_consumed();
        }
        if self.filled == 0 {
            self.partial_since = None;
            if self.input.len() > 2 * INITIAL_INPUT + PADDING {
                self.input = vec![0; INITIAL_INPUT + PADDING];
            }
        } else if consumed_any || self.partial_since.is_none() {
            self.partial_since = Some(now);
        }
    }

    /// Whether complete lines may be waiting in the input buffer.
    pub fn has_input(&self) -> bool {
        self.filled > 0
    }

    /// When the current unfinished line started arriving, if there is one.
    pub fn partial_since(&self) -> Option<u64> {
        self.partial_since
    }

    /// Reply bytes not yet written to the socket.
    pub fn unsent(&self) -> &[u8] {
        &self.output[self.sent..]
    }

    /// Records that `n` bytes of [`Connection::unsent`] were written.
    pub fn sent(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.output.len());
        if self.sent == self.output.len() {
            self.output.clear();
            self.sent = 0;
            if self.output.capacity() > KEEP_OUTPUT {
                self.output = Vec::new();
            }
        } else if self.sent > KEEP_OUTPUT && self.sent * 2 > self.output.len() {
            self.output.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Heap bytes held by this connection's buffers.
    pub fn heap_bytes(&self) -> usize {
        self.input.capacity() + self.output.capacity() + self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    fn engine() -> Engine {
        let store = Store::new(
            StoreConfig {
                first_token: 7,
                ..StoreConfig::unbounded()
            },
            0,
        );
        Engine::new(store, 86_400_000, 4, 1024)
    }

    /// Feeds `input` in `chunk`-byte reads, serving after each, and returns
    /// everything the connection would have sent.
    fn feed(
        engine: &mut Engine,
        conn: &mut Connection,
        input: &[u8],
        chunk: usize,
    ) -> (Vec<u8>, Served) {
        let mut sent = Vec::new();
        let mut last = Served::AllLines;
        for piece in input.chunks(chunk) {
            let buf = conn.read_buffer();
            buf[..piece.len()].copy_from_slice(piece);
            conn.received(piece.len());
            loop {
                last = conn.serve(engine, 0, 1 << 20);
                sent.extend_from_slice(conn.unsent());
                let n = conn.unsent().len();
                conn.sent(n);
                match last {
                    Served::Budget => continue,
                    Served::Overrun => return (sent, last),
                    _ => break,
                }
            }
        }
        (sent, last)
    }

    #[test]
    fn answers_pipelined_lines_in_order_across_budgets() {
        let mut e = engine();
        let mut c = Connection::new(1024, 0);
        let mut input = Vec::new();
        for i in 0..10 {
            input.extend_from_slice(
                format!(
                    "{{\"ID\":\"a\",\"FileName\":\"f{i}\",\"Action\":\"Lock\",\"Expire\":5}}\n"
                )
                .as_bytes(),
            );
        }
        let (out, _) = feed(&mut e, &mut c, &input, input.len());
        let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
        assert_eq!(lines.len(), 10);
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(
                *line,
                format!("{{\"Status\":\"Locked\",\"ID\":\"a\",\"Token\":{}}}", 7 + i)
            );
        }
    }

    #[test]
    fn table_encoded_request_gets_table_encoded_reply() {
        let mut e = engine();
        let mut c = Connection::new(1024, 0);
        let mut line =
            codec::encode(br#"{"ID":"w1","FileName":"jobs","Action":"Lock","Expire":"30"}"#)
                .into_bytes();
        line.extend_from_slice(b"\r\n");
        let (out, _) = feed(&mut e, &mut c, &line, 3);
        let reply = codec::decode(out.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(reply, br#"{"Status":"Locked","ID":"w1","Token":7}"#);
    }

    #[test]
    fn bad_encoded_line_is_an_encoded_bad_payload() {
        let mut e = engine();
        let mut c = Connection::new(1024, 0);
        let (out, _) = feed(&mut e, &mut c, b"a^1\nzz~~\n", 100);
        let lines: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 2);
        for l in lines {
            assert_eq!(codec::decode(l).unwrap(), br#"{"Status":"BadPayload"}"#);
        }
    }

    #[test]
    fn whitespace_lines_get_no_reply() {
        let mut e = engine();
        let mut c = Connection::new(1024, 0);
        let (out, _) = feed(&mut e, &mut c, b"\n \t \r\n\n", 2);
        assert!(out.is_empty());
        assert_eq!(e.store.counters.requests_in, 0);
    }

    #[test]
    fn overrun_frees_the_buffer_and_counts() {
        let mut e = engine();
        let mut c = Connection::new(64, 0);
        let (out, last) = feed(&mut e, &mut c, &[b'x'; 100], 10);
        assert!(out.is_empty());
        assert_eq!(last, Served::Overrun);
        assert_eq!(e.store.counters.data_overrun, 1);
        assert_eq!(c.heap_bytes(), 0);
    }

    #[test]
    fn unterminated_last_line_is_answered_at_end_of_input() {
        let mut e = engine();
        let mut c = Connection::new(1024, 0);
        let line = br#"{"ID":"a","FileName":"f","Action":"Version"}"#;
        let (out, _) = feed(&mut e, &mut c, line, 7);
        assert!(out.is_empty());
        c.finish(&mut e, 0);
        assert!(c.unsent().starts_with(br#"{"Status":"Version""#));
    }

    #[test]
    fn leading_whitespace_before_the_object() {
        let mut e = engine();
        let mut c = Connection::new(1024, 0);
        let (out, _) = feed(
            &mut e,
            &mut c,
            b"  {\"ID\":\"a\",\"FileName\":\"f\",\"Action\":\"version\"}  \n",
            100,
        );
        assert!(out.starts_with(br#"{"Status":"Version""#));
    }

    #[test]
    fn partial_line_timestamp() {
        let mut e = engine();
        let mut c = Connection::new(1024, 0);
        c.read_buffer()[..3].copy_from_slice(b"{\"I");
        c.received(3);
        c.serve(&mut e, 5, 1 << 20);
        assert_eq!(c.partial_since(), Some(5));
        c.serve(&mut e, 9, 1 << 20);
        assert_eq!(c.partial_since(), Some(5));
    }

    #[test]
    fn replies_behind_a_parked_request_wait_for_it() {
        let mut e = engine();
        let mut holder = Connection::new(1024, 1);
        let mut waiter = Connection::new(1024, 2);
        feed(
            &mut e,
            &mut holder,
            b"{\"ID\":\"h\",\"FileName\":\"x\",\"Action\":\"Lock\",\"Expire\":9}\n",
            100,
        );
        let pipelined = concat!(
            "{\"ID\":\"w\",\"FileName\":\"x\",\"Action\":\"Lock\",\"Expire\":9,\"Wait\":9}\n",
            "{\"ID\":\"w\",\"FileName\":\"v\",\"Action\":\"Version\"}\n",
        );
        let (out, _) = feed(&mut e, &mut waiter, pipelined.as_bytes(), 1000);
        assert!(out.is_empty(), "nothing may overtake the parked Lock");
        assert!(waiter.is_waiting());
        assert!(
            waiter.pending_output() > 0,
            "the Version reply is held back"
        );
        // The holder unlocks: the store grants the waiter.
        feed(
            &mut e,
            &mut holder,
            b"{\"ID\":\"h\",\"FileName\":\"x\",\"Action\":\"Unlock\"}\n",
            100,
        );
        let mut done = Vec::new();
        e.completions(&mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, 2, "routed to the waiting connection");
        waiter.complete(&mut e, done[0].1);
        let text = String::from_utf8(waiter.unsent().to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("{\"Status\":\"Locked\",\"ID\":\"w\""),
            "{text}"
        );
        assert!(lines[1].starts_with("{\"Status\":\"Version\""), "{text}");
        assert!(!waiter.is_waiting());
        assert_eq!(waiter.pending_output(), waiter.unsent().len());
    }

    #[test]
    fn reading_after_an_overrun_starts_afresh() {
        let mut e = engine();
        let mut c = Connection::new(64, 0);
        let (_, last) = feed(&mut e, &mut c, &[b'x'; 100], 10);
        assert_eq!(last, Served::Overrun);
        let (out, _) = feed(
            &mut e,
            &mut c,
            b"{\"ID\":\"a\",\"FileName\":\"f\",\"Action\":\"Version\"}\n",
            5,
        );
        assert!(out.starts_with(b"{\"Status\":\"Version\""));
    }
}
