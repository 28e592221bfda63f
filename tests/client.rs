//! The Rust client against the real server over TCP: every method, every
//! status it can meet, value codecs, reconnection, the lock guard, and
//! contention.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{InProcess, TestServer, stats_until, temp_dir, wait_for_parked};
use jackrabbit_dlm::client::{
    Base64, Client, ClientBuilder, Encoding, ErrorKind, FencingToken, Identity, Locker,
    LockerBuilder, Lost, Outcome, Pipeline, Status, Table,
};

const MINUTE: Duration = Duration::from_secs(60);

/// A locker for `name` on `addr` that gives up at once (tests that want
/// patience say so).
fn locker_at(addr: SocketAddr, name: &str) -> LockerBuilder {
    Locker::builder(name)
        .host(addr.ip().to_string())
        .port(addr.port())
        .timeout(Duration::from_secs(10))
        .retries(0)
}

fn locker(server: &TestServer, name: &str, id: &str) -> Locker {
    locker_at(server.addr, name).id(id).build().unwrap()
}

/// Lockers for IDs `a` and `b` on one name (distinct per encoding).
fn rivals(server: &TestServer, name: &str, encoding: Encoding) -> (Locker, Locker) {
    let name = format!("{name}-{encoding:?}");
    let build = |id: &str| {
        locker_at(server.addr, &name)
            .id(id)
            .encoding(encoding)
            .build()
            .unwrap()
    };
    (build("a"), build("b"))
}

#[test]
fn lock_rows_in_both_encodings() {
    let server = TestServer::start();
    for encoding in [Encoding::Plain, Encoding::Table] {
        let (mut a, mut b) = rivals(&server, "lock", encoding);

        // absent: a new hold with a token
        let token = a.try_lock(MINUTE).unwrap();
        assert!(token.is_some(), "this server hands out fencing tokens");
        assert_eq!(a.token(), token);
        // held by the same ID: renewed, same token
        assert_eq!(a.lock(MINUTE).unwrap(), token);
        // held by another ID
        let err = b.try_lock(MINUTE).unwrap_err();
        assert_eq!(err.status(), Some(Status::NotOwner), "{err}");
        assert!(err.to_string().contains("owned by another ID"), "{err}");
        assert_eq!(b.token(), None);

        assert!(a.unlock().unwrap());
        // a new hold gets a greater token
        assert!(b.try_lock(MINUTE).unwrap() > token);
    }
}

#[test]
fn unlock_rows() {
    let server = TestServer::start();
    let (mut a, mut b) = (locker(&server, "u", "a"), locker(&server, "u", "b"));
    assert!(!a.unlock().unwrap(), "absent: Unlocked, nothing released");
    a.try_lock(MINUTE).unwrap();
    assert!(b.unlock().unwrap_err().is_not_owner());
    assert!(a.unlock().unwrap(), "held by the same ID: released");
    assert_eq!(a.token(), None);
}

#[test]
fn test_lock_rows() {
    let server = TestServer::start();
    let (mut a, mut b) = (locker(&server, "t", "a"), locker(&server, "t", "b"));
    assert_eq!(a.test_lock().unwrap(), Status::Unlocked);
    let token = a.try_lock(MINUTE).unwrap();
    assert_eq!(a.test_lock().unwrap(), Status::Locked);
    assert_eq!(a.token(), token, "testing changes nothing");
    assert_eq!(b.test_lock().unwrap(), Status::NotOwner);
}

#[test]
fn data_rows_in_both_encodings() {
    let server = TestServer::start();
    for encoding in [Encoding::Plain, Encoding::Table] {
        let (mut a, mut b) = rivals(&server, "data", encoding);

        assert_eq!(a.get().unwrap(), None, "Get absent: NotFound");
        assert!(!a.erase().unwrap(), "Erase absent: NotFound");
        a.put("first \"quoted\"\n", MINUTE).unwrap();
        a.put("second é中", MINUTE).unwrap();
        assert_eq!(a.get().unwrap().unwrap(), "second é中".as_bytes());
        assert!(b.put("theirs", MINUTE).unwrap_err().is_not_owner());
        assert!(b.get().unwrap_err().is_not_owner());
        assert!(b.erase().unwrap_err().is_not_owner());
        assert!(a.erase().unwrap(), "Erase owned: Done");
        assert_eq!(a.get().unwrap(), None);

        // The lock and the data item of one name are independent.
        b.put("now mine", MINUTE).unwrap();
        a.try_lock(MINUTE).unwrap();
        assert_eq!(b.get().unwrap().unwrap(), b"now mine");
    }
}

#[test]
fn version_is_dlm_and_stats_on_one_connection() {
    let server = TestServer::start();
    let mut a = locker(&server, "v", "a");
    assert!(a.version().unwrap().contains("JackrabbitDLM"));
    assert!(a.is_dlm());
    a.try_lock(MINUTE).unwrap();
    a.put("x", MINUTE).unwrap();
    let stats = a.stats().unwrap();
    assert_eq!(stats["Lock"], 1);
    assert_eq!(stats["PutNew"], 1);
    assert_eq!(
        stats["Connections"], 1,
        "every request went over one connection"
    );
}

#[test]
fn refusals_no_and_bad_payload() {
    let server = TestServer::with_args(&["--max-memory", "20000", "--max-ttl", "100"]);
    let mut a = locker(&server, "big", "a");
    let err = a.put(vec![b'x'; 50_000], MINUTE).unwrap_err();
    assert_eq!(err.status(), Some(Status::No), "{err}");
    let err = a.try_lock(Duration::from_secs(101)).unwrap_err();
    assert_eq!(err.status(), Some(Status::BadPayload), "{err}");
    assert!(err.to_string().contains("malformed"), "{err}");
    // A bad request never costs the connection.
    assert_eq!(a.stats().unwrap()["Connections"], 1);
}

#[test]
fn codecs_round_trip_every_byte() {
    let server = TestServer::start();
    let every_byte: Vec<u8> = (0..=255).collect();
    // Reads what the server holds, as it is.
    let reader = |name: &str| {
        locker_at(server.addr, name)
            .id("same")
            .codec(Identity)
            .build()
            .unwrap()
    };

    let mut b64 = locker_at(server.addr, "b64")
        .id("same")
        .codec(Base64)
        .build()
        .unwrap();
    b64.put(&every_byte, MINUTE).unwrap();
    assert_eq!(b64.get().unwrap().unwrap(), every_byte);
    // The server holds the encoded text, nothing else.
    let stored = reader("b64").get().unwrap().unwrap();
    assert_eq!(Base64.decode_text(&stored), every_byte);

    let mut table = locker_at(server.addr, "tbl")
        .id("same")
        .codec(Table)
        .build()
        .unwrap();
    table.put(&every_byte, MINUTE).unwrap();
    assert_eq!(table.get().unwrap().unwrap(), every_byte);
    assert_eq!(reader("tbl").get().unwrap().unwrap().len(), 512);

    let mut xor = locker_at(server.addr, "xor")
        .codec_fns(
            |v: &[u8]| Ok::<_, String>(v.iter().map(|b| format!("{:02x}", b ^ 0x5a)).collect()),
            |t: &str| {
                (0..t.len())
                    .step_by(2)
                    .map(|i| {
                        let byte = t.get(i..i + 2).ok_or("odd length")?;
                        u8::from_str_radix(byte, 16)
                            .map(|b| b ^ 0x5a)
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<u8>, String>>()
            },
        )
        .build()
        .unwrap();
    xor.put(&every_byte, MINUTE).unwrap();
    assert_eq!(xor.get().unwrap().unwrap(), every_byte);
}

#[test]
fn codec_errors_are_typed() {
    let server = TestServer::start();
    let mut text = locker_at(server.addr, "c")
        .id("same")
        .codec(Identity)
        .build()
        .unwrap();
    let err = text.put([0xff, 0xfe], MINUTE).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Codec(_)), "{err}");
    text.put("not base64!", MINUTE).unwrap();
    let mut b64 = locker_at(server.addr, "c")
        .id("same")
        .codec(Base64)
        .build()
        .unwrap();
    let err = b64.get().unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Codec(_)), "{err}");
    assert!(err.to_string().starts_with("value codec"), "{err}");
}

/// Decodes with a value codec through the public trait.
trait DecodeText {
    fn decode_text(&self, text: &[u8]) -> Vec<u8>;
}

impl<C: jackrabbit_dlm::client::ValueCodec> DecodeText for C {
    fn decode_text(&self, text: &[u8]) -> Vec<u8> {
        let text = std::str::from_utf8(text).unwrap();
        self.decode(text).map_err(Into::into).unwrap()
    }
}

/// The server binary on a given port, killed when dropped.
struct FixedPortServer {
    child: Child,
    dir: std::path::PathBuf,
}

impl FixedPortServer {
    fn start(port: u16) -> FixedPortServer {
        let dir = temp_dir("client-restart");
        let mut child = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
            .args(["127.0.0.1", &port.to_string(), "--log-dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The start-up line means it is listening.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains(&format!(":{port}")), "{line}");
        FixedPortServer { child, dir }
    }
}

impl Drop for FixedPortServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn reconnects_after_the_server_restarts() {
    let first = TestServer::start();
    let addr = first.addr;
    let mut a = locker_at(addr, "r").id("a").build().unwrap();
    let old_token = a.try_lock(MINUTE).unwrap();
    drop(first);

    let _second = FixedPortServer::start(addr.port());
    // The old connection is dead; the locker notices and reconnects once.
    assert!(a.is_dlm());
    assert_eq!(
        a.test_lock().unwrap(),
        Status::Unlocked,
        "the new server starts empty"
    );
    assert!(
        a.try_lock(MINUTE).unwrap() > old_token,
        "tokens grow across restarts"
    );
    assert_eq!(a.stats().unwrap()["Connections"], 1);
}

#[test]
fn an_unreachable_server_is_an_io_error() {
    let server = TestServer::start();
    let addr = server.addr;
    drop(server);
    let mut a = locker_at(addr, "gone")
        .retry_sleep(Duration::ZERO)
        .retries(2)
        .build()
        .unwrap();
    let err = a.lock(MINUTE).unwrap_err();
    assert!(err.is_io(), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn lock_guard_releases_on_drop_and_on_panic() {
    let server = TestServer::start();
    let mut other = locker(&server, "g", "other");

    let mut a = locker(&server, "g", "a");
    {
        let mut guard = a.lock_guard(MINUTE).unwrap();
        assert_eq!(guard.token(), (*guard).token());
        guard.put("while held", MINUTE).unwrap();
        assert!(other.try_lock(MINUTE).unwrap_err().is_not_owner());
    }
    other.try_lock(MINUTE).unwrap();
    assert!(other.lock_guard(MINUTE).unwrap().unlock().unwrap());

    let mut b = locker(&server, "g", "b");
    let panicked = thread::spawn(move || {
        let _guard = b.lock_guard(MINUTE).unwrap();
        panic!("deliberate panic while holding the lock");
    })
    .join();
    assert!(panicked.is_err());
    assert_eq!(other.test_lock().unwrap(), Status::Unlocked);
}

/// The shared counter done right: take the lock, read, write + 1 with the
/// hold's token next to the value, release. The data item belongs to a
/// shared ID, so every worker may write it; the lock (one random ID per
/// worker) is what keeps them apart.
#[test]
fn contending_threads_count_exactly() {
    const THREADS: usize = 2;
    const ROUNDS: u64 = 40;
    let server = TestServer::start();
    let addr = server.addr;
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            thread::spawn(move || {
                let mut lock = locker_at(addr, "counter")
                    .retries(u32::MAX)
                    .retry_sleep(Duration::from_millis(1))
                    .build()
                    .unwrap();
                let mut data = locker_at(addr, "counter")
                    .id("counter-keeper")
                    .build()
                    .unwrap();
                for _ in 0..ROUNDS {
                    let guard = lock.lock_guard(MINUTE).unwrap();
                    let (count, last_token) = match data.get().unwrap() {
                        Some(text) => {
                            let text = String::from_utf8(text).unwrap();
                            let (count, token) = text.split_once(' ').unwrap();
                            (
                                count.parse::<u64>().unwrap(),
                                FencingToken::new(token.parse().unwrap()),
                            )
                        }
                        None => (0, FencingToken::new(0)),
                    };
                    let token = guard.token().unwrap();
                    assert!(token > last_token, "fencing tokens only grow");
                    data.put(format!("{} {token}", count + 1), MINUTE).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let mut data = locker_at(addr, "counter")
        .id("counter-keeper")
        .build()
        .unwrap();
    let text = String::from_utf8(data.get().unwrap().unwrap()).unwrap();
    assert_eq!(
        text.split_once(' ').unwrap().0,
        (THREADS as u64 * ROUNDS).to_string()
    );
}

#[test]
fn lock_wait_is_granted_when_the_holder_releases() {
    let server = TestServer::start();
    let mut holder = locker(&server, "q", "holder");
    let first = holder.try_lock(MINUTE).unwrap();
    let addr = server.addr;
    let waiter = thread::spawn(move || {
        let mut waiter = locker_at(addr, "q").id("waiter").build().unwrap();
        waiter.lock_wait(MINUTE, MINUTE)
    });
    // Release only once the waiter is parked (the Waited counter says so).
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while holder.stats().unwrap()["Waited"] == 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "the waiter never parked"
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert!(holder.unlock().unwrap());
    let granted = waiter.join().unwrap().unwrap();
    assert!(granted > first);
    assert_eq!(holder.test_lock().unwrap(), Status::NotOwner);
}

#[test]
fn lock_wait_runs_out_with_not_owner() {
    let server = TestServer::start();
    let mut holder = locker(&server, "q", "holder");
    holder.try_lock(MINUTE).unwrap();
    let mut waiter = locker(&server, "q", "waiter");
    let err = waiter
        .lock_wait(MINUTE, Duration::from_millis(100))
        .unwrap_err();
    assert!(err.is_not_owner(), "{err}");
    // Zero wait is a plain try.
    assert!(
        waiter
            .lock_wait(MINUTE, Duration::ZERO)
            .unwrap_err()
            .is_not_owner()
    );
    assert_eq!(holder.stats().unwrap()["Waited"], 1);
}

/// A client on `addr` that gives up at once.
fn client_at(addr: SocketAddr) -> ClientBuilder {
    Client::builder()
        .host(addr.ip().to_string())
        .port(addr.port())
        .timeout(Duration::from_secs(10))
        .retries(0)
}

#[test]
fn a_client_pipelines_many_names_on_one_connection() {
    let server = TestServer::start();
    let client = client_at(server.addr).id("many").build().unwrap();
    let mut batch = Pipeline::new();
    batch
        .lock("a", MINUTE)
        .lock("b", MINUTE)
        .put("c", "value of c", MINUTE)
        .get("c")
        .test_lock("a")
        .unlock("a")
        .unlock("never-locked")
        .erase("c")
        .get("c")
        .version();
    let results = client.send(&batch);
    assert_eq!(results.len(), batch.len());
    let outcomes: Vec<Outcome> = results.into_iter().map(Result::unwrap).collect();
    let (Outcome::Locked(Some(a)), Outcome::Locked(Some(b))) = (&outcomes[0], &outcomes[1]) else {
        panic!("{outcomes:?}");
    };
    assert!(b > a, "replies in request order: b was granted after a");
    assert_eq!(outcomes[2], Outcome::Stored);
    assert_eq!(outcomes[3], Outcome::Value(Some(b"value of c".to_vec())));
    assert_eq!(outcomes[4], Outcome::Tested(Status::Locked));
    assert_eq!(outcomes[5], Outcome::Unlocked(true));
    assert_eq!(outcomes[6], Outcome::Unlocked(false));
    assert_eq!(outcomes[7], Outcome::Erased(true));
    assert_eq!(outcomes[8], Outcome::Value(None));
    assert!(matches!(&outcomes[9], Outcome::Version(v) if v.contains("JackrabbitDLM")));

    // Handles and clones share the connection and the ID.
    let b_handle = client.handle("b");
    let clone = client.clone();
    assert_eq!(b_handle.test_lock().unwrap(), Status::Locked);
    assert!(clone.unlock("b").unwrap());
    assert_eq!(client.stats().unwrap()["Connections"], 1);
    let rival = client_at(server.addr).id("rival").build().unwrap();
    b_handle.lock(MINUTE).unwrap();
    assert!(rival.try_lock("b", MINUTE).unwrap_err().is_not_owner());
}

#[test]
fn a_failed_request_in_a_pipeline_fails_alone() {
    let server = TestServer::start();
    let text = client_at(server.addr)
        .id("t")
        .codec(Identity)
        .build()
        .unwrap();
    let other = client_at(server.addr).id("o").build().unwrap();
    other.lock("taken", MINUTE).unwrap();
    let mut batch = Pipeline::new();
    batch
        .put("bytes", [0xffu8, 0xfe], MINUTE)
        .lock("taken", MINUTE)
        .put("text", "fine", MINUTE);
    let results = text.send(&batch);
    assert!(matches!(
        results[0].as_ref().unwrap_err().kind(),
        ErrorKind::Codec(_)
    ));
    assert!(results[1].as_ref().unwrap_err().is_not_owner());
    assert_eq!(results[2].as_ref().unwrap(), &Outcome::Stored);
    assert!(text.send(&Pipeline::new()).is_empty());
}

#[test]
fn a_parked_lock_holds_back_the_rest_of_its_pipeline() {
    let server = InProcess::start();
    let holder = client_at(server.addr).id("holder").build().unwrap();
    holder.try_lock("w", Duration::from_secs(1)).unwrap();
    let waiter = client_at(server.addr).id("waiter").build().unwrap();
    let sent = thread::spawn(move || {
        let mut batch = Pipeline::new();
        batch
            .lock_wait("w", MINUTE, Duration::from_secs(30))
            .put("w-note", "granted", MINUTE)
            .get("w-note");
        waiter.send(&batch)
    });
    wait_for_parked(&server, 1);
    // The holder's hold runs out: the waiter is granted, then the rest.
    server.advance(1001);
    let results: Vec<Outcome> = sent
        .join()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        matches!(results[0], Outcome::Locked(Some(_))),
        "{results:?}"
    );
    assert_eq!(results[1], Outcome::Stored);
    assert_eq!(results[2], Outcome::Value(Some(b"granted".to_vec())));
}

/// Waits until the server has seen more than `seen` renewals (`Relock`);
/// returns the new count.
fn wait_for_renewal(server: &InProcess, seen: u64) -> u64 {
    let mut probe = server.connect();
    let stats = stats_until(&mut probe, Duration::from_secs(10), |s| {
        s["Relock"].as_u64().unwrap_or(0) > seen
    });
    let now = stats["Relock"].as_u64().unwrap_or(0);
    assert!(now > seen, "no renewal came: {stats}");
    now
}

#[test]
fn a_renewing_guard_keeps_the_hold_far_past_its_ttl() {
    let server = InProcess::start();
    let client = client_at(server.addr).id("renewer").build().unwrap();
    let expire = Duration::from_millis(600);
    let guard = client.lock_renewing("r", expire).unwrap();
    let token = guard.token().expect("a token");
    // Five times the server's clock moves 400 ms (past a TTL/3 but inside
    // the TTL), each time after a renewal: 2 s of server time in all.
    let mut renewals = 0;
    for _ in 0..5 {
        renewals = wait_for_renewal(&server, renewals);
        server.advance(400);
    }
    assert!(guard.is_held());
    assert_eq!(guard.token(), Some(token));
    let rival = client_at(server.addr).id("rival").build().unwrap();
    assert!(rival.try_lock("r", MINUTE).unwrap_err().is_not_owner());
    assert!(guard.release().unwrap(), "released by the guard");
    assert!(rival.try_lock("r", MINUTE).unwrap() > Some(token));
}

#[test]
fn a_renewing_guard_says_when_the_hold_is_lost() {
    let server = InProcess::start();
    let mut locker = locker_at(server.addr, "l").id("owner").build().unwrap();
    let guard = locker.lock_renewing(Duration::from_secs(3)).unwrap();
    let lost = guard.lost_channel();
    let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&called);
    guard.on_lost(move |why| {
        assert_eq!(why, &Lost::Taken);
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    // A thief queues for the lock; when the hold runs out on the server's
    // clock, the lock passes to the thief in the same turn.
    let thief = client_at(server.addr).id("thief").build().unwrap();
    let queued = thread::spawn(move || {
        thief
            .lock_wait("l", MINUTE, Duration::from_secs(60))
            .map(|token| (thief, token))
    });
    wait_for_parked(&server, 1);
    server.advance(3001);
    let (thief, _) = queued.join().unwrap().unwrap();
    // The next renewal (a second later at most) finds NotOwner.
    assert_eq!(lost.recv_timeout(Duration::from_secs(10)), Ok(Lost::Taken));
    assert!(!guard.is_held());
    assert_eq!(guard.lost(), Some(Lost::Taken));
    assert!(
        called.load(std::sync::atomic::Ordering::SeqCst),
        "the callback ran"
    );
    // Late subscribers hear of it at once.
    assert_eq!(guard.lost_channel().recv(), Ok(Lost::Taken));
    assert!(!guard.release().unwrap(), "nothing to release");
    assert_eq!(
        thief.test_lock("l").unwrap(),
        Status::Locked,
        "the thief's hold is untouched"
    );
    // The locker itself stayed usable.
    assert!(locker.try_lock(MINUTE).unwrap_err().is_not_owner());
}

#[test]
fn endpoints_fail_over_to_a_live_server() {
    let server = TestServer::start();
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Client::builder()
        .endpoints([("127.0.0.1", dead), ("127.0.0.1", server.addr.port())])
        .id("fail-over")
        .build()
        .unwrap();
    assert!(client.try_lock("f", MINUTE).unwrap().is_some());
    // A node that answers Unavailable: the Lock moves on to the next node,
    // the Unlock is not sent again and reports Unavailable.
    let (busy, requests) = upstream_like(vec![
        r#"{"Status":"Unavailable"}"#,
        r#"{"Status":"Unavailable"}"#,
    ]);
    let client = Client::builder()
        .endpoints([("127.0.0.1", busy), ("127.0.0.1", server.addr.port())])
        .id("fail-over")
        .build()
        .unwrap();
    assert!(
        client.try_lock("f", MINUTE).unwrap().is_some(),
        "renewed on the live node"
    );
    let only_busy = Client::builder()
        .port(busy)
        .id("fail-over")
        .build()
        .unwrap();
    let err = only_busy.unlock("f").unwrap_err();
    assert_eq!(err.status(), Some(Status::Unavailable), "{err}");
    assert!(err.to_string().contains("effect is unknown"), "{err}");
    drop((client, only_busy));
    assert_eq!(requests.join().unwrap().len(), 2, "one Lock, one Unlock");
}

/// A server that answers each request line, on any connection, with the
/// next of `replies` in the encoding the request used, then stops; returns
/// the plain JSON of every request line it read.
fn upstream_like(replies: Vec<&'static str>) -> (u16, thread::JoinHandle<Vec<String>>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut replies = replies.into_iter();
        'accepting: while let Ok((stream, _)) = listener.accept() {
            let mut reader = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue 'accepting;
                }
                let line = line.trim_end();
                let Some(reply) = replies.next() else {
                    break 'accepting;
                };
                let (plain, answer) = if line.starts_with('{') {
                    (line.to_owned(), reply.to_owned())
                } else {
                    let plain = jackrabbit_dlm::protocol::codec::decode(line.as_bytes()).unwrap();
                    (
                        String::from_utf8(plain).unwrap(),
                        jackrabbit_dlm::protocol::codec::encode(reply.as_bytes()),
                    )
                };
                seen.push(plain);
                reader
                    .get_mut()
                    .write_all(format!("{answer}\n").as_bytes())
                    .unwrap();
                if replies.len() == 0 {
                    break 'accepting;
                }
            }
        }
        seen
    });
    (port, server)
}

#[test]
fn against_an_upstream_style_server() {
    let dir = temp_dir("client-upstream");
    let identity_file = jackrabbit_dlm::client::identity::write_identity_file(&dir, "svc").unwrap();
    let identity = jackrabbit_dlm::client::identity::read_identity_file(&identity_file).unwrap();
    // Upstream answers Locked without a Token, and knows NoData.
    let (port, requests) = upstream_like(vec![
        r#"{"Status":"Locked","ID":"me"}"#,
        r#"{"Status":"Unlocked","ID":"me"}"#,
        r#"{"Status":"NoData"}"#,
    ]);
    let mut locker = Locker::builder("jobs")
        .port(port)
        .id("me")
        .encoding(Encoding::Table)
        .name("svc")
        .identity_file(&identity_file)
        .build()
        .unwrap();
    assert_eq!(
        locker.try_lock(MINUTE).unwrap(),
        None,
        "a hold without a token"
    );
    assert!(locker.unlock().unwrap());
    let err = locker.get().unwrap_err();
    assert_eq!(err.status(), Some(Status::NoData), "{err}");
    drop(locker);
    let requests = requests.join().unwrap();
    let expected = |action: &str, expire: &str| {
        format!(
            r#"{{"ID":"me","FileName":"jobs","Action":"{action}","Expire":"{expire}","Name":"svc","Identity":"{identity}"}}"#
        )
    };
    assert_eq!(
        requests,
        [
            expected("Lock", "60"),
            expected("Unlock", "0"),
            expected("Get", "0")
        ],
        "every request carries Expire, Name and Identity, table-encoded on the wire"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn authenticated_settings_work_against_this_server_today() {
    // The server does not authenticate yet: Name and Identity are ignored.
    let server = TestServer::start();
    let dir = temp_dir("client-auth");
    let file = jackrabbit_dlm::client::identity::write_identity_file(&dir, "svc").unwrap();
    let client = client_at(server.addr)
        .name("svc")
        .identity_file(&file)
        .build()
        .unwrap();
    assert!(client.try_lock("auth", MINUTE).unwrap().is_some());
    assert!(client.unlock("auth").unwrap());
    let err = client_at(server.addr)
        .name("../svc")
        .identity("x")
        .build()
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Config(_)), "{err}");
    let err = client_at(server.addr).name("svc").build().unwrap_err();
    assert!(err.to_string().contains("needs an Identity"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The shared vectors' values, as bytes, with their table encoding.
fn codec_vectors() -> Vec<(Vec<u8>, String)> {
    let text = include_str!("vectors/table-codec.json");
    let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
    vectors["valid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let bytes = match (v["text"].as_str(), v["bytes_hex"].as_str()) {
                (Some(text), _) => text.as_bytes().to_vec(),
                (None, Some(hex)) => (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
                _ => panic!("vector without a value: {v}"),
            };
            (bytes, v["encoded"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// What the Python client does with a value by default is the table
/// encoding; a raw connection plays that client here. Each vector goes in
/// one way and comes out the other, byte for byte.
#[test]
fn values_cross_between_the_python_codec_path_and_ours() {
    let server = TestServer::start();
    let mut python = server.connect();
    for (i, (bytes, encoded)) in codec_vectors().into_iter().enumerate() {
        // Ours in, theirs out: the default codec stores what Python would.
        let name = format!("ours-{i}");
        let mut ours = locker_at(server.addr, &name).id("mixed").build().unwrap();
        ours.put(&bytes, MINUTE).unwrap();
        let got = python.call(&common::request("Get", "mixed", &name, "0"));
        assert_eq!(
            got["DataStore"].as_str(),
            Some(encoded.as_str()),
            "vector {i}"
        );

        // Theirs in, ours out.
        let name = format!("theirs-{i}");
        let put = python.call(&common::put("mixed", &name, &encoded, "60"));
        assert_eq!(put["Status"], "Done");
        let mut ours = locker_at(server.addr, &name).id("mixed").build().unwrap();
        assert_eq!(ours.get().unwrap(), Some(bytes), "vector {i}");
    }
}

#[cfg(feature = "tokio")]
mod tokio_client {
    use super::*;
    use jackrabbit_dlm::client::AsyncClient;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn the_async_client_has_the_same_surface() {
        let server = TestServer::start();
        block_on(async {
            let client: AsyncClient = client_at(server.addr).id("async").build_async().unwrap();
            let rival = client_at(server.addr).id("rival").build_async().unwrap();
            let token = client.try_lock("a", MINUTE).await.unwrap();
            assert!(token.is_some());
            assert!(
                rival
                    .try_lock("a", MINUTE)
                    .await
                    .unwrap_err()
                    .is_not_owner()
            );
            let handle = client.handle("a");
            assert_eq!(handle.test_lock().await.unwrap(), Status::Locked);
            handle.put(b"\x00\xffbytes", MINUTE).await.unwrap();
            assert_eq!(handle.get().await.unwrap(), Some(b"\x00\xffbytes".to_vec()));
            let mut batch = Pipeline::new();
            batch.unlock("a").erase("a").get("a").stats();
            let results = client.send(&batch).await;
            assert_eq!(results[0].as_ref().unwrap(), &Outcome::Unlocked(true));
            assert_eq!(results[1].as_ref().unwrap(), &Outcome::Erased(true));
            assert_eq!(results[2].as_ref().unwrap(), &Outcome::Value(None));
            assert!(
                matches!(results[3].as_ref().unwrap(), Outcome::Stats(s) if s["Connections"] == 2)
            );
            assert!(client.version().await.unwrap().contains("JackrabbitDLM"));
            let guard = client.lock_renewing("g", MINUTE).await.unwrap();
            assert!(guard.is_held());
            assert!(
                rival
                    .try_lock("g", MINUTE)
                    .await
                    .unwrap_err()
                    .is_not_owner()
            );
            assert!(guard.release().unwrap());
            assert!(rival.try_lock("g", MINUTE).await.unwrap().is_some());
        });
    }

    #[test]
    fn the_async_client_fails_over_and_spawns() {
        let server = TestServer::start();
        let (busy, requests) = upstream_like(vec![r#"{"Status":"Unavailable"}"#]);
        block_on(async {
            let client = AsyncClient::builder()
                .endpoints([("127.0.0.1", busy), ("127.0.0.1", server.addr.port())])
                .id("async-fail-over")
                .build_async()
                .unwrap();
            // The future is Send: it can be spawned on any runtime.
            let task = tokio::spawn({
                let client = client.clone();
                async move { client.try_lock("f", MINUTE).await }
            });
            assert!(task.await.unwrap().unwrap().is_some());
            assert!(client.unlock("f").await.unwrap());
        });
        assert_eq!(requests.join().unwrap().len(), 1);
    }
}

#[test]
fn shared_locks_readers_together_writers_alone() {
    let server = TestServer::start();
    let mut r1 = locker(&server, "rw", "r1");
    let mut r2 = locker(&server, "rw", "r2");
    let mut w = locker(&server, "rw", "w");
    let t1 = r1.try_lock_shared(MINUTE).unwrap();
    let t2 = r2.try_lock_shared(MINUTE).unwrap();
    assert!(t1.is_some() && t2 > t1);
    // A renewal keeps its token; a writer is refused while readers hold it.
    assert_eq!(r1.try_lock_shared(MINUTE).unwrap(), t1);
    assert!(w.try_lock(MINUTE).unwrap_err().is_not_owner());
    assert_eq!(r1.test_lock().unwrap(), Status::Locked);
    assert_eq!(w.test_lock().unwrap(), Status::NotOwner);
    // The guard ends only its own share.
    {
        let guard = r2.lock_shared_guard(MINUTE).unwrap();
        assert_eq!(guard.token(), t2);
    }
    assert_eq!(r2.test_lock().unwrap(), Status::NotOwner);
    assert_eq!(r1.test_lock().unwrap(), Status::Locked);
    // The sole holder converts to exclusive, with a new token.
    let te = r1.try_lock(MINUTE).unwrap();
    assert!(te > t2);
    assert!(r2.try_lock_shared(MINUTE).unwrap_err().is_not_owner());
    assert!(r1.unlock().unwrap());
    let tw = w.try_lock(MINUTE).unwrap();
    assert!(tw > te);
}

#[test]
fn a_limit_makes_a_semaphore() {
    let server = InProcess::start();
    let slot = |id: &str, limit: u32| {
        locker_at(server.addr, "sem")
            .id(id)
            .limit(limit)
            .build()
            .unwrap()
    };
    let (mut a, mut b, mut c) = (slot("a", 2), slot("b", 2), slot("c", 2));
    a.try_lock_shared(MINUTE).unwrap();
    b.try_lock_shared(MINUTE).unwrap();
    assert!(c.try_lock_shared(MINUTE).unwrap_err().is_not_owner());
    // Another limit than the lock's is refused, even with room.
    let mut d = slot("d", 3);
    assert!(d.try_lock_shared(MINUTE).unwrap_err().is_not_owner());
    // A waiter takes the place that frees up, in the turn it frees up, so
    // a latecomer finds the semaphore full again.
    let waiter = thread::spawn(move || c.lock_shared_wait(MINUTE, MINUTE).map(|_| c));
    wait_for_parked(&server, 1);
    let mut e = slot("e", 2);
    assert!(a.unlock().unwrap());
    let mut c = waiter.join().unwrap().unwrap();
    assert_eq!(c.test_lock().unwrap(), Status::Locked);
    assert!(e.try_lock_shared(MINUTE).unwrap_err().is_not_owner());
}
