//! A rolling restart of a three-node cluster under load (issue 15): each
//! member in turn, the leader first, gets SIGTERM, exits, is started again
//! on its data directory and catches up. A leader hands leadership to an
//! up-to-date follower before it exits, so no request is answered
//! `Unavailable`, and no connection is dropped but those to the member
//! being stopped (their clients move to another member).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use common::cluster::{SETTLE, TestCluster};
use common::{put, request, status};

/// What the clients and the test share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled after every answered request.
    progress: Condvar,
    stop: AtomicBool,
    slowest_ms: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Each member's client address; `None` while it is being stopped or
    /// is down.
    addrs: Vec<Option<SocketAddr>>,
    answered: u64,
    unavailable: Vec<String>,
    unexpected_drops: Vec<String>,
    wrong: Vec<String>,
    /// Connections that moved off a member being stopped.
    moved: u64,
}

impl Shared {
    fn answered(&self) -> u64 {
        self.state.lock().unwrap().answered
    }

    /// Waits until `n` more requests than `since` were answered.
    fn wait_answered(&self, since: u64, n: u64) {
        let guard = self.state.lock().unwrap();
        let (guard, timeout) = self
            .progress
            .wait_timeout_while(guard, SETTLE, |s| s.answered < since + n)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "load stalled at {} answers",
            guard.answered
        );
    }
}

/// One request and its reply line on a kept connection; `None` when the
/// connection ends (or the reply times out).
fn exchange(conn: &mut BufReader<TcpStream>, line: &str) -> Option<serde_json::Value> {
    conn.get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .ok()?;
    let mut reply = String::new();
    match conn.read_line(&mut reply) {
        Ok(n) if n > 0 => serde_json::from_str(&reply).ok(),
        _ => None,
    }
}

fn connect(addr: SocketAddr) -> Option<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(common::REPLY_TIMEOUT)).ok()?;
    stream.set_nodelay(true).ok()?;
    Some(BufReader::new(stream))
}

/// Client `w`: on one connection, its own lock and item, round and round:
/// Lock, TestLock, Put, Get, Unlock, each answer checked. A connection that
/// ends while its member is being stopped moves to another member (the
/// request in flight is indeterminate, so the round starts again with a
/// `Lock`, which renews); any other end is a failure.
fn client(w: usize, shared: &Shared) {
    let (id, name) = (format!("c{w}"), format!("rolling{w}"));
    let mut node = w % 3;
    // Another member that is up, after `from` in turn.
    let pick = |from: usize| -> Option<(usize, SocketAddr)> {
        let state = shared.state.lock().unwrap();
        (1..3)
            .map(|k| (from + k) % 3)
            .find_map(|k| state.addrs[k].map(|a| (k, a)))
    };
    let mut conn = {
        let addr = shared.state.lock().unwrap().addrs[node].expect("up");
        connect(addr).expect("connect")
    };
    let mut round = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        round += 1;
        let value = format!("dmFs{round:04}");
        let steps = [
            (request("Lock", &id, &name, "600"), "Locked"),
            (request("TestLock", &id, &name, "0"), "Locked"),
            (put(&id, &name, &value, "600"), "Done"),
            (request("Get", &id, &name, "0"), "Done"),
            (request("Unlock", &id, &name, "0"), "Unlocked"),
        ];
        for (line, expected) in &steps {
            let asked = Instant::now();
            let Some(reply) = exchange(&mut conn, line) else {
                let stopping = shared.state.lock().unwrap().addrs[node].is_none();
                if !stopping {
                    let what = format!("client {w} lost its connection to member {node}");
                    shared.state.lock().unwrap().unexpected_drops.push(what);
                    shared.stop.store(true, Ordering::Relaxed);
                    return;
                }
                // Move to a member that is up (waiting, not sleeping: each
                // try is a connect).
                let start = Instant::now();
                conn = loop {
                    if let Some((k, addr)) = pick(node) {
                        if let Some(c) = connect(addr) {
                            node = k;
                            break c;
                        }
                    }
                    assert!(start.elapsed() < SETTLE, "no member to move to");
                    std::thread::yield_now();
                };
                shared.state.lock().unwrap().moved += 1;
                break;
            };
            let took = u64::try_from(asked.elapsed().as_millis()).unwrap_or(u64::MAX);
            shared.slowest_ms.fetch_max(took, Ordering::Relaxed);
            let mut state = shared.state.lock().unwrap();
            state.answered += 1;
            let got = status(&reply).to_string();
            if got == "Unavailable" {
                state
                    .unavailable
                    .push(format!("client {w} on member {node}: {line}"));
            } else if got != *expected
                || (line.contains("\"Get\"") && reply["DataStore"] != value.as_str())
            {
                state
                    .wrong
                    .push(format!("client {w} on member {node}: {line} -> {reply}"));
            }
            drop(state);
            shared.progress.notify_all();
        }
    }
}

#[test]
fn a_rolling_restart_under_load_answers_every_request() {
    let mut cluster = TestCluster::start(3, &["--heartbeat-ms", "50"]);
    let first = cluster.leader();
    let shared = Arc::new(Shared::default());
    shared.state.lock().unwrap().addrs = (0..3).map(|i| Some(cluster.addr(i))).collect();
    let clients: Vec<_> = (0..6)
        .map(|w| {
            let shared = shared.clone();
            std::thread::spawn(move || client(w, &shared))
        })
        .collect();
    shared.wait_answered(0, 200);
    let started = Instant::now();
    let order = [first, (first + 1) % 3, (first + 2) % 3];
    let mut stops = Vec::new();
    for &i in &order {
        shared.state.lock().unwrap().addrs[i] = None;
        let asked = Instant::now();
        let exit = cluster.terminate(i);
        stops.push(asked.elapsed());
        assert!(exit.success(), "member {i} exited with {exit}");
        cluster.restart(i);
        let leader = cluster.leader();
        let committed = cluster.stats(leader)["Committed"].as_u64().unwrap();
        cluster.wait_applied(i, committed);
        shared.state.lock().unwrap().addrs[i] = Some(cluster.addr(i));
        // Load goes on through the change and after it.
        let now = shared.answered();
        shared.wait_answered(now, 200);
        assert!(
            !shared.stop.load(Ordering::Relaxed),
            "a client stopped early"
        );
    }
    let took = started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let state = shared.state.lock().unwrap();
    eprintln!(
        "rolling restart of 3 members (leader first) in {:.1} s: {} answers, {} Unavailable, \
         {} connections moved off stopped members, slowest answer {} ms, \
         SIGTERM to exit {:?}",
        took.as_secs_f64(),
        state.answered,
        state.unavailable.len(),
        state.moved,
        shared.slowest_ms.load(Ordering::Relaxed),
        stops,
    );
    assert_eq!(state.unexpected_drops, Vec::<String>::new());
    assert_eq!(state.unavailable, Vec::<String>::new());
    assert_eq!(state.wrong, Vec::<String>::new());
    assert!(state.moved >= 2, "no client was on a stopped member");
}
