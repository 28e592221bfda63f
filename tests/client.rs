//! The Rust client against the real server over TCP: every method, every
//! status it can meet, value codecs, reconnection, the lock guard, and
//! contention.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{TestServer, temp_dir};
use jackrabbit_dlm::client::{
    Base64, Encoding, ErrorKind, FencingToken, Identity, Locker, LockerBuilder, Status, Table,
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
        assert_eq!(a.token(), Some(token));
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
    assert_eq!(a.token(), Some(token), "testing changes nothing");
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
    let reader = |name: &str| locker_at(server.addr, name).id("same").build().unwrap();

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
        assert_eq!(Some(guard.token()), (*guard).token());
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
                    assert!(guard.token() > last_token, "fencing tokens only grow");
                    data.put(format!("{} {}", count + 1, guard.token()), MINUTE)
                        .unwrap();
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

#[test]
fn shared_locks_readers_together_writers_alone() {
    let server = TestServer::start();
    let mut r1 = locker(&server, "rw", "r1");
    let mut r2 = locker(&server, "rw", "r2");
    let mut w = locker(&server, "rw", "w");
    let t1 = r1.try_lock_shared(MINUTE).unwrap();
    let t2 = r2.try_lock_shared(MINUTE).unwrap();
    assert!(t2 > t1);
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
    let server = TestServer::start();
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
    assert!(
        slot("d", 3)
            .try_lock_shared(MINUTE)
            .unwrap_err()
            .is_not_owner()
    );
    // A waiter takes the place that frees up.
    let waiter = thread::spawn(move || c.lock_shared_wait(MINUTE, MINUTE).map(|_| c));
    // The queue is served in order: nobody may join while c waits.
    let mut e = slot("e", 2);
    while e.try_lock_shared(MINUTE).is_ok() {
        // c is not queued yet: give the place back and look again.
        e.unlock().unwrap();
        thread::yield_now();
    }
    assert!(a.unlock().unwrap());
    let mut c = waiter.join().unwrap().unwrap();
    assert_eq!(c.test_lock().unwrap(), Status::Locked);
    assert!(e.try_lock_shared(MINUTE).unwrap_err().is_not_owner());
}
