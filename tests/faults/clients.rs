//! Clients that run random requests against random members and record
//! each in the history. A client keeps its connection for a few requests
//! (a follower relays them across leader changes), and closes it after a
//! call whose answer did not come (unknown).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jackrabbit_dlm::rng::Rng;
use serde_json::{Value, json};

use super::history::History;
use super::model::{Id, LIMIT, Op, Ret};

/// Far longer than any run: nothing expires while the model looks.
const EXPIRE: &str = "86400";
/// The `Wait` of a waiting `Lock`, in seconds.
const WAIT: &str = "1";
/// How long a client waits for an answer before it counts it unknown:
/// past a commit timeout and a `Wait`.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// IDs the clients take turns with, so holders and owners meet.
pub const IDS: u8 = 3;
/// Names of each kind a generation of the run uses.
const NAMES: u64 = 3;
/// How long one generation of names is used: each name's history stays
/// short enough for the tester's search.
const GENERATION: Duration = Duration::from_secs(3);

/// The members' client addresses, `None` while one is down.
pub type Addrs = Arc<RwLock<Vec<Option<SocketAddr>>>>;

/// The request line for `op` on `name`.
fn line(op: &Op, name: &str) -> String {
    let id = format!("id{}", op.id());
    let mut request = json!({"ID": id, "FileName": name, "Expire": "0"});
    match op {
        Op::Lock { shared, wait, .. } => {
            request["Action"] = "Lock".into();
            request["Expire"] = EXPIRE.into();
            if *shared {
                request["Mode"] = "Shared".into();
                request["Limit"] = LIMIT.to_string().into();
            }
            if *wait {
                request["Wait"] = WAIT.into();
            }
        }
        Op::Unlock { .. } => request["Action"] = "Unlock".into(),
        Op::TestLock { .. } => request["Action"] = "TestLock".into(),
        Op::Put { value, .. } => {
            request["Action"] = "Put".into();
            request["Expire"] = EXPIRE.into();
            request["DataStore"] = value.clone().into();
        }
        Op::Get { .. } => request["Action"] = "Get".into(),
        Op::Erase { .. } => request["Action"] = "Erase".into(),
    }
    request.to_string()
}

/// The model's reading of a reply to `op`; `None` for `Unavailable` (its
/// effect is unknown).
fn ret(op: &Op, reply: &Value) -> Option<Ret> {
    let shared = reply["Mode"] == "Shared";
    Some(match (reply["Status"].as_str().unwrap_or(""), op) {
        ("Unavailable", _) => return None,
        ("Locked", Op::Lock { .. }) => match reply["Token"].as_u64() {
            Some(token) => Ret::Locked { token, shared },
            None => Ret::Other(reply.to_string()),
        },
        ("Locked", Op::TestLock { .. }) => Ret::Held {
            shared,
            holders: reply["Holders"].as_u64().unwrap_or(1),
        },
        ("Unlocked", Op::Unlock { .. } | Op::TestLock { .. }) => Ret::Unlocked {
            released: reply.get("ID").is_some(),
        },
        ("NotOwner", _) => Ret::NotOwner,
        ("Done", Op::Get { .. }) => match reply["DataStore"].as_str() {
            Some(value) => Ret::Value(value.to_owned()),
            None => Ret::Other(reply.to_string()),
        },
        ("Done", Op::Put { .. } | Op::Erase { .. }) => Ret::Done,
        ("NotFound", Op::Get { .. } | Op::Erase { .. }) => Ret::NotFound,
        _ => Ret::Other(reply.to_string()),
    })
}

/// A connection to a member, with the timeouts of a client.
fn connect(addr: SocketAddr) -> Option<BufReader<TcpStream>> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).ok()?;
    stream.set_nodelay(true).ok()?;
    Some(BufReader::new(stream))
}

/// Sends one request and reads its reply, or `None` when none came
/// (connection broken, timeout).
fn exchange(connection: &mut BufReader<TcpStream>, request: &str) -> Option<Value> {
    connection
        .get_mut()
        .write_all(format!("{request}\n").as_bytes())
        .ok()?;
    let mut reply = String::new();
    let n = connection.read_line(&mut reply).ok()?;
    if n == 0 {
        return None;
    }
    serde_json::from_str(&reply).ok()
}

/// One client: its own random stream, its tester thread (renumbered after
/// each unknown answer), the connection it keeps for a few requests.
pub struct Client {
    pub number: u64,
    thread: u64,
    kept: Option<BufReader<TcpStream>>,
    rng: Rng,
    history: Arc<History>,
    addrs: Addrs,
}

impl Client {
    pub fn new(seed: u64, number: u64, history: Arc<History>, addrs: Addrs) -> Client {
        Client {
            number,
            thread: number << 32,
            kept: None,
            rng: Rng::new(seed, 1000 + number),
            history,
            addrs,
        }
    }

    /// A member that is up (running, perhaps paused), at random.
    fn member(&mut self) -> Option<SocketAddr> {
        let addrs = self.addrs.read().unwrap();
        let up: Vec<SocketAddr> = addrs.iter().flatten().copied().collect();
        let n = u32::try_from(up.len()).ok().filter(|&n| n > 0)?;
        Some(up[self.rng.below(n) as usize])
    }

    /// Runs `op` on `name` and records it; whether its answer came. Three
    /// times in four on the connection the last call left open, else on a
    /// new one to a random member. Nothing is recorded when no connection
    /// could be made (the request was never sent).
    pub fn call(&mut self, name: &str, op: Op) -> Option<Ret> {
        let mut connection = match self.kept.take() {
            Some(kept) if self.rng.below(4) != 0 => kept,
            _ => connect(self.member()?)?,
        };
        let request = line(&op, name);
        let index = self.history.invoke(self.thread, name, op.clone());
        let answer = exchange(&mut connection, &request).and_then(|reply| ret(&op, &reply));
        match &answer {
            Some(ret) => {
                self.history.complete(index, ret.clone());
                self.kept = Some(connection);
            }
            // Its reply may still come: the connection is closed.
            None => self.thread += 1,
        }
        answer
    }

    fn pick(&mut self, n: u64) -> u64 {
        u64::from(self.rng.below(u32::try_from(n).expect("a small choice")))
    }

    /// A random request on a name of the current generation.
    fn random(&mut self, generation: u64) -> (String, Op) {
        let id: Id = u8::try_from(self.pick(u64::from(IDS))).expect("a small ID");
        let name = self.pick(NAMES);
        let roll = self.pick(100);
        let op = match roll {
            0..=19 => Op::Lock {
                id,
                shared: false,
                wait: roll < 8,
            },
            20..=31 => Op::Lock {
                id,
                shared: true,
                wait: roll < 25,
            },
            32..=49 => Op::Unlock { id },
            50..=59 => Op::TestLock { id },
            60..=74 => Op::Put {
                id,
                value: format!("c{}-{}", self.number, self.rng.next_u64()),
            },
            75..=91 => Op::Get { id },
            _ => Op::Erase { id },
        };
        let kind = if roll < 60 { "lock" } else { "item" };
        (format!("{kind}-{generation}-{name}"), op)
    }

    /// Random requests until `stop`.
    pub fn run(mut self, start: Instant, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let generation = start.elapsed().as_secs() / GENERATION.as_secs();
            let (name, op) = self.random(generation);
            if self.call(&name, op).is_none() && self.member().is_none() {
                // Every member is down: the schedule restarts one soon.
                std::thread::yield_now();
            }
        }
    }

    /// After the run, with the cluster whole again: asks every ID about
    /// every name of `names` (a `TestLock` or a `Get`, by kind) until each
    /// is answered, so that every acknowledged change is read back.
    pub fn read_back(&mut self, names: &[String], deadline: Instant) {
        for name in names {
            for id in 0..IDS {
                let op = if name.starts_with("lock") {
                    Op::TestLock { id }
                } else {
                    Op::Get { id }
                };
                while self.call(name, op.clone()).is_none() {
                    assert!(Instant::now() < deadline, "{name} is never answered");
                }
            }
        }
    }
}
