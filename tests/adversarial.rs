//! Hostile clients against the real server binary over real sockets.
//!
//! Each test plays one attack a lock server on a network meets, checks the
//! server's answer to it, and ends the same way: a fresh client still gets
//! `Version` answered, and the server's resident memory is under a stated
//! bound. Timing bounds are generous (seconds), never tight.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{Client, TestServer, put, request, stats_until};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// Resident memory a server may have at the end of a test: far below what
/// any of the attacks would cost if a bound were missing.
const RSS_BOUND: u64 = 64 * MIB;

fn version_line() -> String {
    request("Version", "probe", "probe", "0")
}

/// A fresh client is answered promptly and the server's memory is under `rss`.
fn assert_healthy(server: &TestServer, rss: u64) {
    let started = Instant::now();
    let mut client = server.connect();
    let reply = client.call(&version_line());
    assert_eq!(reply["Status"], "Version");
    assert!(reply["ID"].as_str().unwrap_or("").contains("JackrabbitDLM"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "Version took {:?}",
        started.elapsed()
    );
    let resident = server.rss_bytes();
    assert!(resident > 0, "cannot read the server's memory");
    assert!(
        resident < rss,
        "server resident memory {resident} B, bound {rss} B"
    );
}

/// Closing this socket sends a reset instead of a FIN (SO_LINGER 0).
fn reset_on_close(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::linger>()).expect("small"),
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
}

/// True when the peer has closed `stream` (EOF or reset) within `limit`;
/// bytes the server sent before closing are skipped.
fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Polls until the server has at most `most` descriptors open (or 10 s pass).
fn fds_settle(server: &TestServer, most: usize) -> usize {
    let start = Instant::now();
    loop {
        let open = server.fd_count();
        if open <= most || start.elapsed() > Duration::from_secs(10) {
            return open;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stats(client: &mut Client) -> Value {
    client.call(&common::stats_request())
}

/// The reply to a plain line is JSON; to any other line, table-encoded JSON.
fn reply_status(line: &str) -> String {
    let json: Value = if line.starts_with('{') {
        serde_json::from_str(line).expect("plain reply is JSON")
    } else {
        let plain = jackrabbit_dlm::protocol::codec::decode(line.as_bytes())
            .expect("reply is table-encoded");
        serde_json::from_slice(&plain).expect("decoded reply is JSON")
    };
    json["Status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn slow_loris_connections_are_closed_and_others_served() {
    const SLOW: usize = 200;
    let server = TestServer::with_args(&["--partial-timeout", "1"]);
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    let mut good = server.connect();
    let prefix = br#"{"ID":"loris","FileName":"f","Action":"Lock","Expire":"30"}"#;
    let started = Instant::now();
    let mut closed = [false; SLOW];
    // One byte a second on every slow connection, never a newline; a good
    // client is served all the while.
    for (second, &byte) in prefix.iter().enumerate().take(4) {
        for (i, stream) in slow.iter_mut().enumerate() {
            if !closed[i] && stream.write_all(&[byte]).is_err() {
                closed[i] = true;
            }
        }
        let deadline = started + Duration::from_secs(second as u64 + 1);
        while Instant::now() < deadline {
            let asked = Instant::now();
            assert_eq!(good.call(&version_line())["Status"], "Version");
            assert!(asked.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut still_open = 0;
    for stream in slow.iter_mut() {
        if !closed_by_server(stream, Duration::from_secs(5)) {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "slow connections outlived --partial-timeout");
    // The good client sent whole lines the whole time and is still served.
    assert_eq!(good.call(&version_line())["Status"], "Version");
    eprintln!(
        "slow loris: {SLOW} connections, one byte a second, all closed after {:?}",
        started.elapsed()
    );
    assert_healthy(&server, RSS_BOUND);
}

#[test]
fn connection_flood_past_max_connections_is_refused_cleanly() {
    const LIMIT: usize = 50;
    const FLOOD: usize = 300;
    let server = TestServer::with_args(&["--max-connections", &LIMIT.to_string()]);
    let mut first = server.connect();
    assert_eq!(first.call(&version_line())["Status"], "Version");
    let baseline = server.fd_count();

    let mut flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(server.addr).expect("the kernel accepts the connect"))
        .collect();
    let line = format!("{}\n", version_line());
    let (mut served, mut refused) = (0, 0);
    for stream in flood.iter_mut() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        // A refused connection may already be closed: writing can fail.
        let _ = stream.write_all(line.as_bytes());
        let mut reply = [0u8; 256];
        match stream.read(&mut reply) {
            Ok(n) if n > 0 => {
                assert!(reply[..n].starts_with(br#"{"Status":"Version""#));
                served += 1;
            }
            Ok(_) => refused += 1,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => refused += 1,
            Err(e) => panic!("neither served nor refused: {e}"),
        }
    }
    assert_eq!(served, LIMIT - 1, "connections served besides the first");
    assert_eq!(refused, FLOOD - served);
    // The client that was there first keeps working.
    assert_eq!(first.call(&version_line())["Status"], "Version");
    let counted = stats(&mut first);
    assert_eq!(counted["Refused"], refused as u64);

    drop(flood);
    let open = fds_settle(&server, baseline);
    assert!(
        open <= baseline,
        "{open} descriptors open, {baseline} before the flood"
    );
    eprintln!(
        "flood: {FLOOD} connections at --max-connections {LIMIT}: {served} served, {refused} refused, descriptors back to {open}"
    );
    assert_healthy(&server, RSS_BOUND);
}

#[test]
fn pipelining_client_that_never_reads_is_bounded_and_gets_every_reply_in_order() {
    const REQUESTS: usize = 100_000;
    const VALUE: usize = 1000;
    // A short partial-line timeout: a client held back by backpressure has
    // no unfinished line of its own and must not be closed for one.
    let server = TestServer::with_args(&["--partial-timeout", "1"]);
    let mut other = server.connect();
    let value = "g".repeat(VALUE);
    assert_eq!(
        other.call(&put("piper", "big", &value, "600"))["Status"],
        "Done"
    );

    // Half the requests take a lock (the token says where in the order a
    // reply is), half fetch a 1 kB value (so replies pile up fast).
    let mut piper = server.connect();
    let mut writer_end = piper.stream().try_clone().expect("clone stream");
    let writer = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..REQUESTS {
            let line = if i % 2 == 0 {
                request("Lock", "piper", &format!("p{i}"), "1")
            } else {
                request("Get", "piper", "big", "0")
            };
            batch.extend_from_slice(line.as_bytes());
            batch.push(b'\n');
            if batch.len() > 64 * 1024 || i + 1 == REQUESTS {
                writer_end.write_all(&batch).expect("write requests");
                batch.clear();
            }
        }
    });

    // The piper never reads: once its replies fill the socket buffers and
    // --max-output, the server must stop reading it. Wait for the count of
    // requests read to stand still (but for the Stats requests themselves).
    let mut last = 0;
    let mut still_since = Instant::now();
    let started = Instant::now();
    let read_by_server = loop {
        let count = stats(&mut other)["In"].as_u64().unwrap_or(0);
        if count > last + 1 {
            still_since = Instant::now();
        } else if still_since.elapsed() > Duration::from_millis(700) {
            break count;
        }
        last = count;
        assert!(started.elapsed() < Duration::from_secs(30), "never settles");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        read_by_server < REQUESTS as u64,
        "the server read all {read_by_server} requests of a client that does not read"
    );
    let resident = server.rss_bytes();
    assert!(
        resident < RSS_BOUND,
        "{resident} B resident while a client does not read"
    );
    // Other clients are unaffected.
    let asked = Instant::now();
    assert_eq!(other.call(&version_line())["Status"], "Version");
    assert_eq!(
        other.call(&request("Lock", "other", "elsewhere", "5"))["Status"],
        "Locked"
    );
    assert!(asked.elapsed() < Duration::from_secs(10));
    // Well past --partial-timeout (and its once-a-second sweep) without
    // reading; then the client reads: every reply, in order.
    std::thread::sleep(Duration::from_millis(2500));
    let mut first_token = None;
    for i in 0..REQUESTS {
        let reply: Value = serde_json::from_str(&piper.line()).expect("JSON reply");
        if i % 2 == 1 {
            assert_eq!(reply["Status"], "Done", "reply {i}");
            assert_eq!(reply["DataStore"].as_str().map(str::len), Some(VALUE));
            continue;
        }
        assert_eq!(reply["Status"], "Locked", "reply {i}");
        let token = reply["Token"].as_u64().expect("token");
        let first = *first_token.get_or_insert(token);
        // Tokens count up by one per lock; the other client's lock took one
        // somewhere in between.
        let expected = first + i as u64 / 2;
        assert!(
            token == expected || token == expected + 1,
            "reply {i} out of order: token {token}, first {first}"
        );
    }
    writer.join().expect("writer thread");
    eprintln!(
        "pipelining: {REQUESTS} requests from a client that does not read; the server stopped after reading {read_by_server}, {} KiB resident; then every reply in order",
        resident / 1024
    );
    assert_healthy(&server, RSS_BOUND);
}

#[test]
fn churn_of_thousands_of_connections_some_reset_mid_request() {
    const CONNECTIONS: usize = 3000;
    let server = TestServer::start();
    let mut watcher = server.connect();
    assert_eq!(watcher.call(&version_line())["Status"], "Version");
    let baseline = server.fd_count();
    let whole = format!("{}\n", version_line());
    let half = &whole.as_bytes()[..whole.len() / 2];
    let mut resets = 0;
    for i in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        match i % 5 {
            // A polite one-request client.
            0 => {
                stream.write_all(whole.as_bytes()).expect("send");
                let mut reply = [0u8; 128];
                let n = stream.read(&mut reply).expect("reply");
                assert!(reply[..n].starts_with(br#"{"Status":"Version""#));
            }
            // Reset in the middle of a request.
            1 => {
                reset_on_close(&stream);
                stream.write_all(half).expect("send");
                resets += 1;
            }
            // A whole request and half of the next, then a reset before the
            // reply is read.
            2 => {
                reset_on_close(&stream);
                stream.write_all(whole.as_bytes()).expect("send");
                stream.write_all(half).expect("send");
                resets += 1;
            }
            // A request and the end of the stream in one go (as `nc -q0` or
            // a shell pipe sends it): the FIN arrives with the data.
            3 => {
                stream.write_all(whole.as_bytes()).expect("send");
                stream
                    .shutdown(std::net::Shutdown::Write)
                    .expect("half-close");
                let mut reply = [0u8; 128];
                let n = stream.read(&mut reply).expect("reply");
                assert!(reply[..n].starts_with(br#"{"Status":"Version""#));
            }
            // Connect and vanish.
            _ => {}
        }
    }
    let counted = stats_until(&mut watcher, Duration::from_secs(10), |s| {
        s["Connections"].as_u64() >= Some(CONNECTIONS as u64 + 1)
    });
    assert!(counted["Connections"].as_u64() >= Some(CONNECTIONS as u64 + 1));
    let open = fds_settle(&server, baseline);
    assert!(
        open <= baseline,
        "{open} descriptors open, {baseline} before the churn"
    );
    eprintln!(
        "churn: {CONNECTIONS} connections ({resets} reset mid-request), descriptors back to {open}"
    );
    assert_healthy(&server, RSS_BOUND);
}

#[test]
fn junk_is_answered_bad_payload_or_closed() {
    let server = TestServer::start();
    let mut client = server.connect();

    let mut lines: Vec<Vec<u8>> = vec![
        b"\0\0\0\0".to_vec(),
        b"{\0}".to_vec(),
        b"{\"ID\":\"\xff\xfe\",\"FileName\":\"f\",\"Action\":\"Get\"}".to_vec(),
        b"\xc3\x28\xa0\xa1".to_vec(),
        format!("{{\"x\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        "{".repeat(10_000).into_bytes(),
        br#"{"ID":"a","FileName":"f","Action":"Lock","Expire":1e999}"#.to_vec(),
        br#"{"ID":"a","FileName":"f","Action":"Lock","Expire":"1e999"}"#.to_vec(),
        br#"{"ID":"a","FileName":"f","Action":"Lock","Expire":123456789012345678901234567890}"#
            .to_vec(),
        br#"{"ID":"a","FileName":"f","Action":"Lock","Expire":"-inf"}"#.to_vec(),
        br#"{"ID":"a","ID":"b","FileName":"f","Action":"Get"}"#.to_vec(),
        br#"{"ID":"a","FileName":"f","Action":"Get","Action":"Get"}"#.to_vec(),
        br#"{"ID":"a","FileName":"f","Action":"Put","Expire":"1","DataStore":{"a":1}}"#.to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"zZzZ".to_vec(),
        b"a^1".to_vec(),
    ];
    // Random bytes, deterministic: no newline, and not starting with
    // whitespace (a blank line gets no reply).
    let mut rng = jackrabbit_dlm::rng::Rng::new(0x2545_F491_4F6C_DD1D, 0);
    for _ in 0..300 {
        let mut line = Vec::new();
        let len = 1 + rng.below(300) as usize;
        while line.len() < len {
            let b = rng.next_u64().to_le_bytes()[3];
            if b != b'\n' && !(line.is_empty() && b.is_ascii_whitespace()) {
                line.push(b);
            }
        }
        lines.push(line);
    }
    for line in &lines {
        client.send(line);
        client.send(b"\n");
    }
    for (i, line) in lines.iter().enumerate() {
        let status = reply_status(&client.line());
        assert_eq!(
            status,
            "BadPayload",
            "junk line {i} {:?}",
            String::from_utf8_lossy(&line[..line.len().min(60)])
        );
    }

    // A request of exactly 1 MiB - 1 bytes with its newline is served...
    let limit = usize::try_from(MIB).expect("1 MiB fits");
    let frame = put("big", "big", "", "30");
    let value = "v".repeat(limit - 1 - frame.len() - 1);
    let big = put("big", "big", &value, "30");
    assert_eq!(big.len() + 1, limit - 1);
    assert_eq!(client.call(&big)["Status"], "Done");
    let got = client.call(&request("Get", "big", "big", "0"));
    assert_eq!(got["DataStore"].as_str().map(str::len), Some(value.len()));
    // ... and so is junk of exactly the limit.
    client.send(&vec![b'#'; limit - 1]);
    client.send(b"\n");
    assert_eq!(reply_status(&client.line()), "BadPayload");

    // A line of 1 MiB + 1 is answered BadPayload once and discarded; what
    // came before and what comes after are answered.
    let mut overlong = server.connect();
    overlong.send(format!("{}\n", version_line()).as_bytes());
    overlong.send(&vec![b'{'; limit]);
    overlong.send(b"\n");
    overlong.send(format!("{}\n", version_line()).as_bytes());
    assert_eq!(reply_status(&overlong.line()), "Version");
    assert_eq!(reply_status(&overlong.line()), "BadPayload");
    assert_eq!(reply_status(&overlong.line()), "Version");
    let counted = stats(&mut client);
    assert_eq!(counted["DataOverrun"], 1);
    assert_eq!(counted["BadPayload"].as_u64(), Some(lines.len() as u64 + 2));
    eprintln!(
        "junk: {} junk lines answered BadPayload, 1 MiB - 1 served, 1 MiB + 1 answered and discarded",
        lines.len() + 1
    );
    assert_healthy(&server, RSS_BOUND);
}

#[test]
fn memory_cap_answers_no_and_resident_memory_stops_growing() {
    const CAP: u64 = 4 * MIB;
    let server = TestServer::with_args(&["--max-memory", &CAP.to_string()]);
    let mut client = server.connect();
    let value = "m".repeat(10_000);
    let mut stored = 0;
    loop {
        let reply = client.call(&put("filler", &format!("item{stored}"), &value, "600"));
        match reply["Status"].as_str() {
            Some("Done") => stored += 1,
            Some("NO") => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(stored <= 1000, "the cap never answered NO");
    }
    assert!(stored as u64 * 10_000 <= CAP);
    // Small entries still fit in what is left; locks fill it to the brim.
    let mut locks = 0;
    while client.call(&request("Lock", "filler", &format!("lock{locks}"), "600"))["Status"]
        == "Locked"
    {
        locks += 1;
        assert!(
            locks <= 100,
            "room for more than 100 locks after the last value"
        );
    }
    let at_cap = server.rss_bytes();
    // Keep pushing: 2000 more Puts (20 MB) are all refused, memory flat.
    for i in 0..2000 {
        let reply = client.call(&put("filler", &format!("more{i}"), &value, "600"));
        assert_eq!(reply["Status"], "NO");
    }
    let after = server.rss_bytes();
    assert!(
        after < at_cap + 4 * MIB,
        "resident memory grew from {at_cap} to {after} B past the cap"
    );
    // What was stored is intact.
    let first = client.call(&request("Get", "filler", "item0", "0"));
    assert_eq!(first["DataStore"].as_str().map(str::len), Some(10_000));
    let counted = stats(&mut client);
    assert_eq!(counted["NO"], 2002);
    assert_eq!(counted["ALock"], locks);
    eprintln!(
        "memory cap {CAP} B: {stored} values of 10 kB stored, 2001 more refused NO; resident {} KiB at the cap, {} KiB after",
        at_cap / 1024,
        after / 1024
    );
    assert_healthy(&server, RSS_BOUND);
}

#[test]
fn lock_of_a_killed_client_is_free_after_its_ttl() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let server = TestServer::start();
    // The real `dlm` client holds the lock while its command runs; the
    // command prints its own pid so it can be reaped after `dlm` is killed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dlm"))
        .args([
            "--port",
            &server.addr.port().to_string(),
            "--id",
            "vanishing",
        ])
        .args([
            "run",
            "victim",
            "--expire",
            "3",
            "--",
            "sh",
            "-c",
            "echo HELPER-PID $$; exec sleep 30",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start dlm run");
    let stdout = child.stdout.take().expect("dlm stdout");
    let pid_line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("HELPER-PID "))
        .expect("the command under the lock reports its pid");
    let command_pid: i32 = pid_line["HELPER-PID ".len()..].trim().parse().expect("pid");
    let mut probe = server.connect();
    let held = probe.call(&request("TestLock", "vanishing", "victim", "0"));
    assert_eq!(held["Status"], "Locked", "{held}");
    // SIGKILL: no chance to unlock.
    child.kill().expect("kill dlm");
    child.wait().expect("reap dlm");
    // SAFETY: kill(2) on the orphaned command we started.
    unsafe {
        libc::kill(command_pid, libc::SIGKILL);
    }
    let killed = Instant::now();

    let mut other = server.connect();
    // Vanishing does not release: the lock belongs to its ID until the TTL.
    assert_eq!(
        other.call(&request("Lock", "survivor", "victim", "5"))["Status"],
        "NotOwner"
    );
    let freed = loop {
        let reply = other.call(&request("TestLock", "survivor", "victim", "0"));
        if reply["Status"] == "Unlocked" {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "never freed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        other.call(&request("Lock", "survivor", "victim", "5"))["Status"],
        "Locked"
    );
    let counted = stats_until(&mut other, Duration::from_secs(5), |s| {
        s["ExpiredLock"].as_u64() >= Some(1)
    });
    assert!(counted["ExpiredLock"].as_u64() >= Some(1));
    eprintln!("vanished holder: lock with a 3 s TTL free {freed:?} after the kill");
    assert_healthy(&server, RSS_BOUND);
}
