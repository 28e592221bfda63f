//! The load generator's event loop: one `mio::Poll` drives every connection
//! of a thread.
//!
//! The generator shares two cores with the server it measures, so it must
//! be cheap: no thread per connection, no allocation per request, and as few
//! system calls as correctness allows. A connection writes its batch (one
//! request, or `--pipeline` of them), and reads only while replies are owed:
//! a read that does not fill the buffer has drained the socket (readiness is
//! edge-triggered, so any later data raises a new event), and once every
//! reply is in, the next batch goes out in the same turn without another
//! `epoll_wait`.
//!
//! Requests are never lost: a fighter only moves on when its reply arrives,
//! so after a broken connection the same requests are sent again on a new
//! one. Every request a fighter makes is safe to repeat while it holds its
//! lock (`Put` writes the same value, `Unlock` of a released lock answers
//! `Unlocked`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::fighter::{Fighter, Readiness, Rules, Tally};
use crate::mode::{ModeSpec, Reconnect};
use crate::wire::{Dialect, Names, Outcome, Parsed};
use jackrabbit_dlm::rng::Rng;

/// Bytes of reply a connection can hold before it is parsed.
const INPUT_BYTES: usize = 64 * 1024;
/// Pause before a broken connection is opened again, so a dead server is
/// not hammered in a tight loop.
const RECONNECT_DELAY: Duration = Duration::from_millis(10);
/// How long the persistent connections may take to open.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// How long fighters may take to finish their cycles after the window.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// Longest excerpt of an unexpected reply kept for the report.
const EXCERPT_BYTES: usize = 200;

/// Everything the threads of one run share, read-only.
pub struct Plan<'a> {
    pub addr: SocketAddr,
    pub dialect: &'a Dialect,
    pub names: &'a Names,
    pub spec: &'static ModeSpec,
    /// Fighters per connection: `--pipeline` in pipelined mode, else 1.
    pub fighters_per_conn: usize,
    pub rules: Rules,
    pub duration: Duration,
    pub seed: u64,
    /// Makes the fighters' IDs unique to this run.
    pub nonce: &'a str,
}

/// Runs connections `conns` of the plan on the calling thread.
///
/// All threads of a run meet at `barrier` once their connections are open,
/// so the measured window starts together; `failed` tells the others when
/// one of them could not get that far.
pub fn run_thread(
    plan: &Plan<'_>,
    conns: Range<usize>,
    barrier: &Barrier,
    failed: &AtomicBool,
) -> Result<Tally, String> {
    let prepared = Engine::new(plan, conns).and_then(|mut engine| {
        engine.connect_all()?;
        Ok(engine)
    });
    if prepared.is_err() {
        failed.store(true, Ordering::SeqCst);
    }
    barrier.wait();
    let mut engine = prepared?;
    if failed.load(Ordering::SeqCst) {
        return Err("another generator thread failed to start".into());
    }
    engine.run()?;
    let mut tally = engine.tally;
    for conn in &engine.conns {
        tally
            .per_fighter
            .extend(conn.fighters.iter().map(|f| f.acquired));
    }
    Ok(tally)
}

/// One connection and the fighters that share it.
struct Conn {
    stream: Option<TcpStream>,
    fighters: Vec<Fighter>,
    /// Fighters whose requests await a reply, in the order they were sent.
    in_flight: VecDeque<usize>,
    sent_at: Instant,
    out: Vec<u8>,
    written: usize,
    input: Box<[u8]>,
    /// Unparsed input is `input[start..end]`.
    start: usize,
    end: usize,
    close_after_reply: bool,
    /// A broken connection is reopened at this time.
    retry_at: Option<Instant>,
    /// Every fighter has finished.
    done: bool,
}

struct Engine<'p> {
    plan: &'p Plan<'p>,
    poll: Poll,
    conns: Vec<Conn>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    tally: Tally,
    deadline: Instant,
    stopping: bool,
    /// Connections not yet done.
    open: usize,
    scratch: Vec<u8>,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

impl<'p> Engine<'p> {
    fn new(plan: &'p Plan<'p>, range: Range<usize>) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create a poll: {e}"))?;
        let now = Instant::now();
        let per = plan.fighters_per_conn;
        let conns: Vec<Conn> = range
            .map(|c| {
                let fighters = (0..per)
                    .map(|k| {
                        let number = (c * per + k) as u64;
                        let owner = format!("lf{}f{number}", plan.nonce)
                            .into_bytes()
                            .into_boxed_slice();
                        Fighter::new(owner, Rng::new(plan.seed, number), &plan.rules)
                    })
                    .collect();
                Conn {
                    stream: None,
                    fighters,
                    in_flight: VecDeque::with_capacity(per),
                    sent_at: now,
                    out: Vec::with_capacity(per * 128),
                    written: 0,
                    input: vec![0; INPUT_BYTES].into_boxed_slice(),
                    start: 0,
                    end: 0,
                    close_after_reply: false,
                    retry_at: None,
                    done: false,
                }
            })
            .collect();
        Ok(Engine {
            plan,
            poll,
            open: conns.len(),
            conns,
            timers: BinaryHeap::new(),
            tally: Tally::new(plan.rules.resources),
            deadline: now,
            stopping: false,
            scratch: Vec::with_capacity(1024),
        })
    }

    /// Opens every connection that lives across requests, and waits until
    /// all are established, so that connecting is not part of the window.
    fn connect_all(&mut self) -> Result<(), String> {
        if self.plan.spec.reconnect == Reconnect::EveryRequest {
            return Ok(());
        }
        let addr = self.plan.addr;
        let fail = |e: io::Error| format!("cannot connect to {addr}: {e}");
        for i in 0..self.conns.len() {
            self.open_stream(i).map_err(fail)?;
        }
        let mut established = vec![false; self.conns.len()];
        let mut pending = self.conns.len();
        let limit = Instant::now() + CONNECT_LIMIT;
        let mut events = Events::with_capacity(1024);
        while pending > 0 {
            let now = Instant::now();
            if now >= limit {
                return Err(format!("timed out connecting to {addr}"));
            }
            match self.poll.poll(&mut events, Some(limit - now)) {
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(format!("poll failed: {e}")),
                Ok(()) => {}
            }
            for event in events.iter() {
                let i = event.token().0;
                if i >= established.len()
                    || established[i]
                    || !(event.is_writable() || event.is_error())
                {
                    continue;
                }
                let Some(stream) = self.conns[i].stream.as_ref() else {
                    continue;
                };
                match stream.take_error() {
                    Ok(None) => {}
                    Ok(Some(e)) | Err(e) => return Err(fail(e)),
                }
                if let Err(e) = stream.peer_addr() {
                    if e.kind() == io::ErrorKind::NotConnected {
                        continue; // still connecting: a spurious event
                    }
                    return Err(fail(e));
                }
                established[i] = true;
                pending -= 1;
            }
        }
        Ok(())
    }

    fn open_stream(&mut self, i: usize) -> io::Result<()> {
        let mut stream = TcpStream::connect(self.plan.addr)?;
        // Requests are small and latency is measured: never let Nagle hold
        // one. A connection that carries a single request needs no such
        // care (Nagle never holds a first segment), and saves the call.
        if self.plan.spec.reconnect != Reconnect::EveryRequest {
            stream.set_nodelay(true)?;
        }
        self.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.conns[i].stream = Some(stream);
        Ok(())
    }

    fn run(&mut self) -> Result<(), String> {
        let start = Instant::now();
        self.deadline = start + self.plan.duration;
        for i in 0..self.conns.len() {
            self.issue(i, start);
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if !self.stopping && now >= self.deadline {
                self.stopping = true;
                for i in 0..self.conns.len() {
                    self.issue(i, now);
                }
            }
            self.fire_timers(now);
            if self.open == 0 {
                return Ok(());
            }
            let give_up = self.deadline + DRAIN_LIMIT;
            if now >= give_up {
                self.tally.unfinished = true;
                return Ok(());
            }
            let mut until = if self.stopping {
                give_up
            } else {
                self.deadline
            };
            if let Some(Reverse((at, _))) = self.timers.peek() {
                until = until.min(*at);
            }
            match self
                .poll
                .poll(&mut events, Some(until.saturating_duration_since(now)))
            {
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(format!("poll failed: {e}")),
                Ok(()) => {}
            }
            for event in events.iter() {
                let i = event.token().0;
                if i >= self.conns.len() || self.conns[i].stream.is_none() {
                    continue;
                }
                let now = Instant::now();
                if event.is_writable() {
                    self.flush(i, now);
                }
                // Flags are hints only; the read itself reports errors.
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(i, now);
                }
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, i))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.issue(i, now);
        }
    }

    /// Sends connection `i`'s next batch, if nothing is in flight and some
    /// fighter has a request to make.
    fn issue(&mut self, i: usize, now: Instant) {
        let plan = self.plan;
        let conn = &mut self.conns[i];
        if conn.done || !conn.in_flight.is_empty() {
            return;
        }
        if let Some(at) = conn.retry_at {
            if now < at {
                return;
            }
            conn.retry_at = None;
        }
        conn.out.clear();
        conn.written = 0;
        let mut wake: Option<Instant> = None;
        let mut finished = true;
        for (k, fighter) in conn.fighters.iter_mut().enumerate() {
            match fighter.ready(now, self.stopping) {
                Readiness::Done => {}
                Readiness::SleepsUntil(at) => {
                    finished = false;
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
                Readiness::Ready => {
                    finished = false;
                    fighter.sending(&plan.rules);
                    plan.dialect.write(
                        &mut conn.out,
                        &mut self.scratch,
                        plan.names,
                        &fighter.owner,
                        fighter.resource,
                        fighter.next,
                    );
                    conn.in_flight.push_back(k);
                }
            }
        }
        if conn.in_flight.is_empty() {
            if finished {
                conn.done = true;
                conn.stream = None;
                self.open -= 1;
            } else if let Some(at) = wake {
                self.timers.push(Reverse((at, i)));
            }
            return;
        }
        conn.close_after_reply = match plan.spec.reconnect {
            Reconnect::Never => false,
            Reconnect::EveryRequest => true,
            Reconnect::Sometimes => conn.fighters[0].rng.below(2) == 0,
        };
        conn.sent_at = now;
        if conn.stream.is_none() {
            if let Err(e) = self.open_stream(i) {
                self.broken(i, now, &format!("cannot connect: {e}"));
                return;
            }
        }
        self.flush(i, now);
    }

    /// Writes what is left of connection `i`'s batch.
    fn flush(&mut self, i: usize, now: Instant) {
        let conn = &mut self.conns[i];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        while conn.written < conn.out.len() {
            match stream.write(&conn.out[conn.written..]) {
                Ok(0) => return self.broken(i, now, "connection closed while writing"),
                Ok(n) => conn.written += n,
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => {}
                Err(e) => return self.broken(i, now, &format!("write failed: {e}")),
            }
        }
    }

    /// Reads connection `i` while replies are owed and the socket has data.
    fn read(&mut self, i: usize, now: Instant) {
        loop {
            let conn = &mut self.conns[i];
            let Some(stream) = conn.stream.as_mut() else {
                return;
            };
            if conn.end == conn.input.len() && conn.start > 0 {
                conn.input.copy_within(conn.start..conn.end, 0);
                conn.end -= conn.start;
                conn.start = 0;
            }
            if conn.end == conn.input.len() {
                return self.broken(i, now, "reply longer than the input buffer");
            }
            match stream.read(&mut conn.input[conn.end..]) {
                Ok(0) => return self.broken(i, now, "connection closed by the server"),
                Ok(n) => {
                    conn.end += n;
                    let drained = conn.end < conn.input.len();
                    if !self.take_replies(i, now) || drained {
                        return;
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => {}
                Err(e) => return self.broken(i, now, &format!("read failed: {e}")),
            }
        }
    }

    /// Hands every complete reply to its fighter; sends the next batch once
    /// all are in. Returns whether more replies are still owed.
    fn take_replies(&mut self, i: usize, now: Instant) -> bool {
        let plan = self.plan;
        let counting = now < self.deadline;
        let conn = &mut self.conns[i];
        while let Some(&k) = conn.in_flight.front() {
            let fighter = &mut conn.fighters[k];
            let buf = &conn.input[conn.start..conn.end];
            match plan.dialect.parse(buf, fighter.next, &mut self.scratch) {
                Parsed::Incomplete => break,
                Parsed::Garbled => {
                    self.broken(i, now, "reply is not valid for the target's protocol");
                    return false;
                }
                Parsed::Reply { outcome, len } => {
                    if outcome == Outcome::Unexpected && self.tally.first_unexpected.is_none() {
                        let excerpt = &buf[..len.min(EXCERPT_BYTES)];
                        self.tally.first_unexpected =
                            Some(String::from_utf8_lossy(excerpt).trim_end().to_string());
                    }
                    conn.start += len;
                    conn.in_flight.pop_front();
                    if counting {
                        self.tally.requests += 1;
                        self.tally.latency.record(now - conn.sent_at);
                    }
                    fighter.on_reply(outcome, &plan.rules, now, counting, &mut self.tally);
                }
            }
        }
        if conn.start == conn.end {
            conn.start = 0;
            conn.end = 0;
        }
        if !conn.in_flight.is_empty() {
            return true;
        }
        if conn.close_after_reply {
            conn.stream = None;
            conn.start = 0;
            conn.end = 0;
        }
        self.issue(i, now);
        false
    }

    /// Gives up connection `i`'s stream; its fighters send their requests
    /// again on a new one after a short pause.
    fn broken(&mut self, i: usize, now: Instant, why: &str) {
        self.tally.errors += 1;
        if self.tally.first_failure.is_none() {
            self.tally.first_failure = Some(why.to_string());
        }
        let conn = &mut self.conns[i];
        conn.stream = None;
        conn.in_flight.clear();
        conn.start = 0;
        conn.end = 0;
        conn.out.clear();
        conn.written = 0;
        let at = now + RECONNECT_DELAY;
        conn.retry_at = Some(at);
        self.timers.push(Reverse((at, i)));
    }
}
