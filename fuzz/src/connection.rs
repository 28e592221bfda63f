//! `connection`: bytes through a connection's whole input path (read buffer,
//! framing, table decoding, parsing in place, the store, the reply queue),
//! without sockets, on up to three connections sharing one [`Engine`].
//!
//! Input: a header (line limit, batch, output limit, number of connections,
//! a seed), then the payload, whose lines are dealt to the connections. Each
//! connection's stream arrives in chunks of random sizes, interleaved, and
//! its client drains random amounts of the replies. The driving follows the
//! reactor: read, then serve until every complete line is answered, flushing
//! when the output is full.
//!
//! The oracle is a second engine that answers the model's lines of each
//! connection ([`split_lines`] on the whole stream) one by one from clean,
//! space-padded buffers, in the same global order, and keeps each
//! connection's replies in request order itself: a `Lock` with `Wait` that
//! parks holds back the replies after it until its wait ends (granted or
//! timed out, delivered after every serve and sweep on both sides, as the
//! reactor does); a connection that closes withdraws its waits. At the end
//! all time passes, so every wait ends. Checked:
//!
//! - every connection's replies are byte for byte the oracle's: one per
//!   non-blank line, in order, in the line's encoding, even when the
//!   padding behind a line is the next line, lines are cut anywhere, and
//!   requests wait in lock queues across connections;
//! - `serve` answers at most the batch per call and stops at the output
//!   limit; `AllLines` and `Budget` leave less than the limit pending
//!   (unsent plus held back behind a wait);
//! - a line over the limit is answered `BadPayload` in its encoding, in its
//!   place among the others, keeps no byte of itself, and the connection
//!   goes on after its newline;
//! - `has_input` and `partial_since` say whether an unfinished line waits;
//! - `finish` answers an unterminated last line;
//! - a connection's buffers stay near the line limit.

use std::collections::{HashMap, VecDeque};

use jackrabbit_dlm::protocol::codec::{self, Encoding};
use jackrabbit_dlm::protocol::request::PADDING;
use jackrabbit_dlm::protocol::{FencingToken, Reply, Status};
use jackrabbit_dlm::session::{Answer, Connection, Served, Session, count_reply};
use jackrabbit_dlm::store::{Store, StoreConfig, Ticket};
use jackrabbit_dlm::time::{Millis, Moment};

use super::input::{Bytes, End, Lines, Piece, Rng, split_lines};

const MAX_TTL_MS: u64 = 86_400_000;

fn session(batch: usize, max_line: usize) -> Session {
    let store = Store::new(
        StoreConfig {
            max_bytes: 64 * 1024,
            compact_after: 4096,
            first_token: FencingToken::new(1_000),
            // Small, so full queues are met too.
            max_waiters_per_lock: 3,
            max_waiters_total: 8,
            max_holders: 4,
        },
        Moment::START,
    );
    Session::new(store, Millis::new(MAX_TTL_MS), batch, max_line)
}

/// One simulated client connection and what the oracle expects of it.
struct Client {
    conn: Connection,
    stream: Vec<u8>,
    model: Lines,
    /// Bytes of `stream` delivered so far.
    fed: usize,
    /// Model lines the oracle has gone through.
    next_line: usize,
    /// What the client has read.
    got: Vec<u8>,
    /// What the oracle answered and may be sent (every earlier reply known).
    want: Vec<u8>,
    /// The oracle's replies not sendable yet: the first waits for a parked
    /// request to complete, the rest may not overtake it.
    held: VecDeque<Slot>,
    closed: bool,
    /// Replies held back behind a wait fill `--max-output` and none can be
    /// sent yet: not read (nor served) until a wait ends, as in the reactor.
    blocked: bool,
}

/// A reply in the oracle's order: known, or waiting for a parked request.
enum Slot {
    Known(Vec<u8>),
    Waiting {
        ticket: Ticket,
        id: Box<str>,
        encoding: Encoding,
    },
}

struct Run {
    engine: Session,
    oracle: Session,
    /// The oracle's parked requests, and whose they are.
    oracle_parked: HashMap<Ticket, usize>,
    clients: Vec<Client>,
    rng: Rng,
    max_line: usize,
    batch: usize,
    max_output: usize,
    now: Moment,
}

impl Run {
    /// The oracle answers `line` of client `c`; false for a blank line.
    /// PROTOCOL.md: replies go out in request order, so one that waits for
    /// a parked request holds back all later ones.
    fn oracle_answer(&mut self, c: usize, line: &[u8]) -> bool {
        let mut buf = line.to_vec();
        buf.resize(line.len() + PADDING, b' ');
        let mut reply = Vec::new();
        let slot = match self
            .oracle
            .answer_line(self.now, &mut buf, 0..line.len(), &mut reply)
        {
            Answer::Blank => return false,
            Answer::Replied => Slot::Known(reply),
            Answer::Parked {
                ticket,
                id,
                encoding,
            } => {
                self.oracle_parked.insert(ticket, c);
                Slot::Waiting {
                    ticket,
                    id,
                    encoding,
                }
            }
            // The oracle's session is never replicated.
            Answer::Proposed { .. } => unreachable!("an unreplicated session proposed"),
        };
        self.clients[c].held.push_back(slot);
        self.release(c);
        true
    }

    /// Moves the oracle's known replies at the front of client `c`'s queue
    /// to what may be sent.
    fn release(&mut self, c: usize) {
        let client = &mut self.clients[c];
        while let Some(Slot::Known(_)) = client.held.front() {
            if let Some(Slot::Known(reply)) = client.held.pop_front() {
                client.want.extend_from_slice(&reply);
            }
        }
    }

    /// Hands completed waits to their connections, on both sides: the
    /// engine's to `Connection::complete` (as the reactor does), the
    /// oracle's into its reply queues, as `Locked` with the token or
    /// `NotOwner`, in the request's encoding.
    fn deliver(&mut self) {
        let mut done = Vec::new();
        self.engine.completions(&mut done);
        for (c, completion) in done {
            let client = &mut self.clients[c];
            assert!(!client.closed, "a completion for a closed connection");
            client.conn.complete(&mut self.engine, completion);
        }
        let mut done = Vec::new();
        self.oracle.store.take_completions(&mut done);
        for completion in done {
            let c = self
                .oracle_parked
                .remove(&completion.ticket)
                .expect("a completion for a request that never waited");
            let slot = self.clients[c]
                .held
                .iter_mut()
                .find(|s| matches!(s, Slot::Waiting { ticket, .. } if *ticket == completion.ticket))
                .expect("the waiting reply's slot");
            let Slot::Waiting { id, encoding, .. } = slot else {
                unreachable!("found a waiting slot");
            };
            let reply = match completion.granted {
                Some(token) => Reply::Locked { id, token },
                None => Reply::Bare(Status::NotOwner),
            };
            let mut plain = Vec::new();
            reply.write_json(&mut plain);
            let mut bytes = match encoding {
                Encoding::Table => codec::encode(&plain).into_bytes(),
                Encoding::Plain => plain,
            };
            bytes.push(b'\n');
            let status = reply.status();
            *slot = Slot::Known(bytes);
            count_reply(&mut self.oracle.store.counters, status);
            self.release(c);
        }
    }

    /// Client `c` goes away: its waits are withdrawn on both sides.
    fn close(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.closed = true;
        client.conn.withdraw_waits(&mut self.engine);
        // The reactor drops the connection with whatever it had not sent.
        let unsent = client.conn.unsent().len();
        client.conn.sent(unsent);
        for slot in std::mem::take(&mut client.held) {
            if let Slot::Waiting { ticket, .. } = slot {
                // Withdrawn waits are answered NotOwner (nobody reads it).
                self.oracle.store.cancel_wait(ticket);
                self.oracle_parked.remove(&ticket);
                count_reply(&mut self.oracle.store.counters, Status::NotOwner);
            }
        }
    }

    /// The oracle answers the next `k` non-blank model lines of client `c`.
    fn oracle_answers(&mut self, c: usize, k: usize) {
        let mut answered = 0;
        while answered < k {
            let client = &self.clients[c];
            let Some(piece) = client.model.pieces.get(client.next_line).cloned() else {
                panic!("the connection answered a line the model does not have");
            };
            self.clients[c].next_line += 1;
            let answers = match piece {
                Piece::Line(line) => self.oracle_answer(c, &line),
                Piece::Overrun { first, .. } => {
                    let head: Vec<u8> = first.into_iter().collect();
                    let mut reply = Vec::new();
                    self.oracle.answer_overrun(&head, &mut reply);
                    self.clients[c].held.push_back(Slot::Known(reply));
                    self.release(c);
                    true
                }
            };
            if answers {
                answered += 1;
            }
        }
    }

    /// The model lines the oracle has not gone through are all blank.
    fn assert_rest_blank(&self, c: usize) {
        let client = &self.clients[c];
        for piece in &client.model.pieces[client.next_line..] {
            let Piece::Line(line) = piece else {
                panic!("an overrun was never answered");
            };
            assert!(line.trim_ascii().is_empty(), "a line was never answered");
        }
    }

    /// The client reads some of what is waiting (all of it with `all`).
    fn drain(&mut self, c: usize, all: bool) {
        let client = &mut self.clients[c];
        let waiting = client.conn.unsent().len();
        if waiting == 0 {
            return;
        }
        let n = if all {
            waiting
        } else {
            1 + self.rng.below(waiting)
        };
        client.got.extend_from_slice(&client.conn.unsent()[..n]);
        client.conn.sent(n);
    }

    /// Serves client `c` as the reactor does until every complete line is
    /// answered.
    fn serve(&mut self, c: usize) {
        loop {
            let before = self.engine.store.counters.requests_in;
            let served = self.clients[c]
                .conn
                .serve(&mut self.engine, self.now, self.max_output);
            let answered = usize::try_from(self.engine.store.counters.requests_in - before)
                .expect("a batch of lines");
            assert!(answered <= self.batch, "{answered} answers in one call");
            let pending = self.clients[c].conn.pending_output();
            self.oracle_answers(c, answered);
            self.deliver();
            match served {
                Served::AllLines | Served::Budget => {
                    assert!(pending < self.max_output, "serving past the output limit");
                    if served == Served::Budget {
                        assert_eq!(answered, self.batch);
                        if self.rng.below(2) == 0 {
                            self.drain(c, false);
                        }
                        continue;
                    }
                    self.after_all_lines(c);
                    return;
                }
                Served::OutputFull => {
                    assert!(pending >= self.max_output);
                    if self.clients[c].conn.unsent().is_empty() {
                        self.clients[c].blocked = true;
                        return;
                    }
                    self.drain(c, false);
                }
            }
        }
    }

    fn after_all_lines(&mut self, c: usize) {
        let client = &self.clients[c];
        if let Some(&Piece::Overrun { at, .. }) = client.model.pieces.get(client.next_line) {
            assert!(
                client.fed < at,
                "no overrun at {} bytes, the model's is at {at}",
                client.fed
            );
        }
        let arrived = &client.stream[..client.fed];
        let pending = match arrived.iter().rposition(|&b| b == b'\n') {
            Some(at) => arrived.len() - at - 1,
            None => arrived.len(),
        };
        if client.model.discarding_at(client.fed) {
            // Inside a line over the limit: nothing of it is kept, but it is
            // still an unfinished line for the partial-line timeout.
            assert!(!client.conn.has_input(), "input kept while discarding");
            assert!(client.conn.partial_since().is_some());
        } else {
            assert_eq!(
                client.conn.has_input(),
                pending > 0,
                "has_input with {pending} pending"
            );
            assert_eq!(client.conn.partial_since().is_some(), pending > 0);
        }
        if client.conn.unsent().is_empty() {
            let bound = 2 * (self.max_line.max(16 * 1024) + 8 * 1024) + 128 * 1024;
            let held = client.conn.heap_bytes();
            assert!(held <= bound, "{held} bytes of buffers, bound {bound}");
        }
    }

    /// Serves again the blocked clients whose replies can flow now; until
    /// nothing changes, since serving one can end the waits of another.
    fn unblock(&mut self) {
        loop {
            let mut changed = false;
            for c in 0..self.clients.len() {
                if !self.clients[c].blocked || self.clients[c].closed {
                    continue;
                }
                self.drain(c, false);
                if self.clients[c].conn.pending_output() < self.max_output {
                    self.clients[c].blocked = false;
                    changed = true;
                    self.serve(c);
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// Lets every wait run out (waits are at most the max TTL), on both
    /// sides, and hands out the results.
    fn end_all_waits(&mut self) {
        self.now = self.now.after(Millis::new(MAX_TTL_MS + 1));
        let now = self.now;
        while self.engine.store.expire(now, 64) | self.oracle.store.expire(now, 64) {}
        self.deliver();
    }

    /// Delivers the next chunk of client `c`'s stream and serves it.
    fn feed(&mut self, c: usize) {
        let want = self.rng.chunk_len();
        let client = &mut self.clients[c];
        let room = client.conn.read_buffer();
        let n = want.min(room.len()).min(client.stream.len() - client.fed);
        room[..n].copy_from_slice(&client.stream[client.fed..client.fed + n]);
        client.conn.received(n);
        client.fed += n;
        self.serve(c);
    }

    /// End of input on client `c`: the last unterminated line is answered,
    /// then the client reads everything.
    fn finish(&mut self, c: usize) {
        let before = self.engine.store.counters.requests_in;
        self.clients[c].conn.finish(&mut self.engine, self.now);
        let answered = usize::try_from(self.engine.store.counters.requests_in - before)
            .expect("a batch of lines");
        self.assert_rest_blank(c);
        let rest = match &self.clients[c].model.end {
            End::Rest(rest) => rest.clone(),
            End::Discarding => None,
        };
        let oracle_answered = rest.is_some_and(|line| self.oracle_answer(c, &line));
        assert_eq!(answered, usize::from(oracle_answered));
        let client = &self.clients[c];
        assert!(!client.conn.has_input());
        assert!(client.conn.partial_since().is_none());
        self.deliver();
    }
}

pub fn check(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let max_line = match bytes.u8() {
        b @ 0..=127 => 64 + b as usize * 8,
        128..=253 => 4096,
        _ => 1 << 20,
    };
    let batch = bytes.u8() as usize % 8 + 1;
    let max_output = match bytes.u8() {
        255 => 1 << 20,
        b => 1 + b as usize * 16,
    };
    let connections = bytes.u8() as usize % 3 + 1;
    let mut rng = Rng::new(bytes.u32() as u64);
    let payload = bytes.rest();

    let mut streams = vec![Vec::new(); connections];
    for piece in payload.split_inclusive(|&b| b == b'\n') {
        streams[rng.below(connections)].extend_from_slice(piece);
    }
    let clients = streams
        .into_iter()
        .enumerate()
        .map(|(c, stream)| Client {
            conn: Connection::new(max_line, c),
            model: split_lines(&stream, max_line),
            stream,
            fed: 0,
            next_line: 0,
            got: Vec::new(),
            want: Vec::new(),
            held: VecDeque::new(),
            closed: false,
            blocked: false,
        })
        .collect();
    let mut run = Run {
        engine: session(batch, max_line),
        oracle: session(batch, max_line),
        oracle_parked: HashMap::new(),
        clients,
        rng,
        max_line,
        batch,
        max_output,
        now: Moment::START,
    };

    loop {
        run.unblock();
        let open: Vec<usize> = (0..connections)
            .filter(|&c| {
                let client = &run.clients[c];
                !client.closed && !client.blocked && client.fed < client.stream.len()
            })
            .collect();
        if open.is_empty() {
            if run.clients.iter().any(|c| c.blocked && !c.closed) {
                run.end_all_waits();
                continue;
            }
            break;
        }
        let c = open[run.rng.below(open.len())];
        run.feed(c);
        if run.rng.below(2) == 0 {
            run.drain(c, false);
        }
        match run.rng.below(16) {
            0 => run.now = run.now.after(Millis::new(run.rng.below(200) as u64)),
            1 => {
                let now = run.now;
                assert_eq!(
                    run.engine.store.expire(now, 8),
                    run.oracle.store.expire(now, 8)
                );
                run.deliver();
            }
            2 => {
                let (a, b) = (
                    run.engine.store.maybe_compact(),
                    run.oracle.store.maybe_compact(),
                );
                assert_eq!(a, b);
                if a {
                    run.engine.shrink();
                    run.oracle.shrink();
                }
            }
            // Now and then a client goes away mid-stream.
            // (It reads what was sent first, so both sides agree on what
            // it got.)
            3 if run.rng.below(8) == 0 => {
                run.drain(c, true);
                run.close(c);
            }
            _ => {}
        }
    }
    for c in 0..connections {
        if !run.clients[c].closed {
            run.finish(c);
        }
    }
    run.end_all_waits();
    for c in 0..connections {
        if !run.clients[c].closed {
            assert!(
                !run.clients[c].conn.is_waiting(),
                "a wait outlived its time"
            );
            run.drain(c, true);
        }
        let client = &run.clients[c];
        assert!(
            client.got == client.want,
            "connection {c} replied\n{:?}\nthe oracle\n{:?}",
            String::from_utf8_lossy(&client.got),
            String::from_utf8_lossy(&client.want)
        );
    }
}
