//! One client connection's buffers, without the socket.
//!
//! The input buffer always keeps [`PADDING`] bytes after the received data,
//! because simd-json reads (but never changes) that many bytes past a line;
//! lines are therefore parsed where they were received, never copied.
//!
//! Bounds: the input grows to about the line limit and no further; output
//! not yet sent plus replies held behind parked requests is what
//! `--max-output` bounds ([`Connection::pending_output`]); at most the
//! session's batch of lines is answered per call of [`Connection::serve`].

use std::ops::Range;

use super::replies::{Awaited, ParkedReplies};
use super::{Answer, ConnKey, Delivery, Session, count_reply, write_reply};
use crate::protocol::frame::{Frame, Framer};
use crate::protocol::request::PADDING;
use crate::protocol::{Mode, Reply, Status};
use crate::stats::Refusals;
use crate::store::Completion;
use crate::time::Moment;

/// Input buffer size a connection starts with (and shrinks back to).
const INITIAL_INPUT: usize = 16 * 1024;
/// Smallest free space worth a `read` call.
const MIN_READ: usize = 4 * 1024;
/// Output capacity above which an idle connection gives memory back.
const KEEP_OUTPUT: usize = 64 * 1024;

/// Why [`Connection::serve`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Every complete line received so far is answered.
    AllLines,
    /// The per-turn budget ran out; complete lines may remain.
    Budget,
    /// Too many reply bytes wait to be sent: stop reading until they drain.
    OutputFull,
}

/// A line to answer: a request line, or the start of a line over the limit.
enum Incoming {
    Line(Range<usize>),
    Overrun(Range<usize>),
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
    /// When the current unfinished line was first seen.
    partial_since: Option<Moment>,
    /// Requests waiting in lock queues, in request order, each with the
    /// replies to the requests after it (which must not overtake it).
    parked: ParkedReplies,
    /// The key the reactor knows this connection by.
    key: ConnKey,
    /// With `--close-after-reply`: answer one line, then nothing more.
    one_line: bool,
    /// Lines answered (counted only while `one_line` matters).
    lines_answered: u32,
    /// With `--audit`: this connection's refusals since the reactor last
    /// took them (`None`: not counted).
    refusals: Option<Refusals>,
}

impl Connection {
    /// A connection whose lines may be at most `max_line` bytes, known to
    /// the reactor (and to parked-request bookkeeping) as `key`.
    pub fn new(max_line: usize, key: ConnKey) -> Connection {
        Connection {
            input: vec![0; INITIAL_INPUT.min(max_line + MIN_READ) + PADDING],
            filled: 0,
            framer: Framer::new(max_line),
            output: Vec::new(),
            sent: 0,
            partial_since: None,
            parked: ParkedReplies::default(),
            key,
            one_line: false,
            lines_answered: 0,
            refusals: None,
        }
    }

    /// The key the reactor knows this connection by.
    pub fn key(&self) -> ConnKey {
        self.key
    }

    /// Answers only its first request; then [`Connection::is_done`]
    /// (`--close-after-reply`, as the upstream server does).
    pub fn close_after_reply(&mut self) {
        self.one_line = true;
    }

    /// Counts this connection's refusals (`--audit`), for
    /// [`Connection::take_refusals`].
    pub fn audit(&mut self) {
        self.refusals = Some(Refusals::default());
    }

    /// The refusals counted since the last call (none unless
    /// [`Connection::audit`] was called).
    pub fn take_refusals(&mut self) -> Refusals {
        self.refusals
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Whether the connection has answered all it will (its one line, with
    /// `--close-after-reply`): the reactor closes it once that is sent.
    pub fn is_done(&self) -> bool {
        self.one_line && self.lines_answered > 0
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

    /// Answers complete lines, at most the session's batch of them, and stops
    /// early when `max_output` reply bytes are waiting to be sent.
    pub fn serve(&mut self, session: &mut Session, now: Moment, max_output: usize) -> Served {
        let mut answered = 0;
        let mut consumed_any = false;
        let outcome = loop {
            if self.pending_output() >= max_output {
                break Served::OutputFull;
            }
            if answered >= session.batch {
                break Served::Budget;
            }
            if self.is_done() {
                break Served::AllLines;
            }
            let incoming = match self.framer.next_line(&self.input[..self.filled]) {
                Frame::Line(line) => Incoming::Line(line),
                Frame::Incomplete => break Served::AllLines,
                Frame::Overrun(start) => Incoming::Overrun(start),
            };
            consumed_any = true;
            if self.answer_audited(session, now, incoming) {
                answered += 1;
                self.lines_answered = self.lines_answered.saturating_add(1);
            }
        };
        self.discard_consumed(now, consumed_any);
        outcome
    }

    /// At end of input: answers a last line that lacks its newline.
    pub fn finish(&mut self, session: &mut Session, now: Moment) {
        if let Some(line) = self.framer.take_rest(&self.input[..self.filled]) {
            self.answer_audited(session, now, Incoming::Line(line));
        }
        self.discard_consumed(now, true);
    }

    /// [`Connection::answer`], and with `--audit` the refusals it counted
    /// are this connection's. (Read off the counters, so that the one place
    /// that counts replies, `count_reply`, stays the only one, and an
    /// address's figures add up to the counters.)
    fn answer_audited(&mut self, session: &mut Session, now: Moment, incoming: Incoming) -> bool {
        if self.refusals.is_none() {
            return self.answer(session, now, incoming);
        }
        let before = Refusals::of(&session.store.counters);
        let answered = self.answer(session, now, incoming);
        self.note_refusals(Some(before), session);
        answered
    }

    /// With `--audit`: adds the refusals counted since `before`.
    fn note_refusals(&mut self, before: Option<Refusals>, session: &Session) {
        if let (Some(refusals), Some(before)) = (&mut self.refusals, before) {
            refusals.add_since(before, &session.store.counters);
        }
    }

    /// Answers one line; its reply goes out directly, or behind the last
    /// parked request. True unless the line was blank.
    fn answer(&mut self, session: &mut Session, now: Moment, incoming: Incoming) -> bool {
        if let Some(replicated) = session.replicated.as_mut() {
            replicated.read_now = !self.parked.awaits_commit();
        }
        let (out, held) = match self.parked.behind_newest() {
            Some(behind) => (behind, true),
            None => (&mut self.output, false),
        };
        let before = out.len();
        let answer = match incoming {
            Incoming::Line(line) => session.answer_line(now, &mut self.input, line, out),
            Incoming::Overrun(start) => session.answer_overrun(&self.input[start], out),
        };
        match answer {
            Answer::Blank => false,
            Answer::Replied => {
                if held {
                    let added = out.len() - before;
                    self.parked.note_held(added);
                }
                true
            }
            Answer::Parked {
                ticket,
                id,
                encoding,
            } => {
                session.parked.insert(ticket, self.key);
                self.parked.park(Awaited::Wait(ticket), id, encoding);
                true
            }
            Answer::Proposed {
                origin,
                id,
                encoding,
            } => {
                if let Some(replicated) = session.replicated.as_mut() {
                    replicated.track(origin, self.key, encoding, now);
                }
                self.parked.park(Awaited::Commit(origin), id, encoding);
                true
            }
        }
    }

    /// What applying the log (or the commit timeout) owes this connection:
    /// a proposed request's reply, released in order, or the news that it
    /// now waits in a lock's queue.
    pub fn deliver(&mut self, session: &mut Session, delivery: Delivery, bytes_of: &[u8]) {
        match delivery {
            Delivery::Reply {
                origin,
                status,
                bytes,
                ..
            } => {
                // Refused by the store through the log: this connection's
                // refusal, for --audit (the counters counted it already).
                if let (Some(refusals), Status::NotOwner) = (&mut self.refusals, status) {
                    refusals.not_owner += 1;
                }
                let reply = bytes_of.get(bytes).unwrap_or_default();
                self.parked
                    .answer(Awaited::Commit(origin), reply, &mut self.output);
            }
            Delivery::Parked { origin, ticket, .. } => {
                self.parked.committed_parked(origin, ticket);
                session.parked.insert(ticket, self.key);
            }
        }
    }

    /// Writes the reply of a parked request that completed, and releases
    /// every reply that no longer waits behind an unanswered one.
    pub fn complete(&mut self, session: &mut Session, completion: Completion) {
        let awaited = Awaited::Wait(completion.ticket);
        let Some((id, encoding)) = self.parked.waiting(awaited) else {
            return;
        };
        let reply = match completion.granted {
            Some(token) if completion.mode == Mode::Shared => Reply::LockedShared { id, token },
            Some(token) => Reply::Locked { id, token },
            None => Reply::Bare(Status::NotOwner),
        };
        let mut bytes = Vec::new();
        write_reply(reply, encoding, &mut session.plain, &mut bytes);
        let before = self.refusals.map(|_| Refusals::of(&session.store.counters));
        count_reply(&mut session.store.counters, reply.status());
        self.note_refusals(before, session);
        self.parked.answer(awaited, &bytes, &mut self.output);
    }

    /// Takes this connection's requests out of every lock queue, answering
    /// them `NotOwner` so the replies behind them can still go out: for a
    /// client that closed its side (it cannot be granted a lock it would
    /// never hear of) and for a connection being closed.
    /// In a cluster the withdrawal goes through the log, so that every
    /// node's queue loses the request.
    pub fn withdraw_waits(&mut self, session: &mut Session) {
        for (awaited, origin) in self.parked.unanswered() {
            let Awaited::Wait(ticket) = awaited else {
                // Proposed, not applied yet: its reply is still to come.
                continue;
            };
            match (origin, session.replicated.as_mut()) {
                (Some(origin), Some(replicated)) => replicated.withdraw(origin),
                _ => {
                    session.store.cancel_wait(ticket);
                }
            }
            session.parked.remove(&ticket);
            self.complete(
                session,
                Completion {
                    ticket,
                    origin: None,
                    granted: None,
                    mode: Mode::Exclusive,
                },
            );
        }
    }

    /// For a connection being closed, in a cluster: its proposed requests
    /// that are not applied yet are withdrawn after them (should they park)
    /// and their replies forgotten, so a later connection with the same key
    /// never receives them.
    pub fn abandon_proposals(&mut self, session: &mut Session) {
        let Some(replicated) = session.replicated.as_mut() else {
            return;
        };
        for (awaited, _) in self.parked.unanswered() {
            if let Awaited::Commit(origin) = awaited {
                replicated.withdraw(origin);
            }
        }
    }

    /// Whether a request of this connection waits in a lock queue.
    pub fn is_waiting(&self) -> bool {
        !self.parked.is_empty()
    }

    /// Reply bytes not yet written, including those held back behind a
    /// parked request: what `--max-output` bounds.
    pub fn pending_output(&self) -> usize {
        self.unsent().len() + self.parked.held()
    }

    /// Moves the unfinished line to the front of the input buffer.
    fn discard_consumed(&mut self, now: Moment, consumed_any: bool) {
        let consumed = self.framer.consumed();
        if consumed > 0 {
            self.input.copy_within(consumed..self.filled, 0);
            self.filled -= consumed;
            self.framer.discard_consumed();
        }
        if self.filled == 0 && self.input.len() > 2 * INITIAL_INPUT + PADDING {
            self.input = vec![0; INITIAL_INPUT + PADDING];
        }
        // The rest of a line over the limit is discarded as it comes, so
        // nothing of it is kept; it is still an unfinished line, which the
        // partial-line timeout bounds.
        if self.filled == 0 && !self.framer.is_discarding() {
            self.partial_since = None;
        } else if consumed_any || self.partial_since.is_none() {
            self.partial_since = Some(now);
        }
    }

    /// Whether complete lines may be waiting in the input buffer.
    pub fn has_input(&self) -> bool {
        self.filled > 0
    }

    /// When the current unfinished line started arriving, if there is one.
    pub fn partial_since(&self) -> Option<Moment> {
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
        self.input.capacity() + self.output.capacity() + self.parked.held()
    }
}
