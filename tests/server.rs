//! End-to-end tests of the transport, the limits, the counters and the
//! logs, against the real server binary over TCP.

mod common;

use common::{Client, TestServer, put, request, stats_request, stats_until, status};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

fn version_line() -> String {
    request("Version", "a", "x", "0")
}

#[test]
fn a_thousand_pipelined_requests_in_one_write_come_back_in_order() {
    let server = TestServer::start();
    let mut client = server.connect();
    let mut batch = String::new();
    for i in 0..1000 {
        batch.push_str(&request("Lock", "w", &format!("lock-{i}"), "30"));
        batch.push('\n');
    }
    client.send(batch.as_bytes());
    let mut last = 0;
    for _ in 0..1000 {
        let reply: Value = serde_json::from_str(&client.line()).unwrap();
        assert_eq!(status(&reply), "Locked");
        let token = reply["Token"].as_u64().unwrap();
        assert!(token > last, "replies in request order, tokens increasing");
        last = token;
    }
    let stats = client.call(&request("Stats", "w", "x", "0"));
    assert_eq!(stats["ALock"], 1000);
}

#[test]
fn a_request_sent_one_byte_at_a_time_with_crlf() {
    let server = TestServer::start();
    let mut client = server.connect();
    for b in format!("{}\r\n", version_line()).bytes() {
        client.send(&[b]);
        std::thread::sleep(Duration::from_millis(1));
    }
    let reply: Value = serde_json::from_str(&client.line()).unwrap();
    assert_eq!(status(&reply), "Version");
}

#[test]
fn empty_lines_are_ignored() {
    let server = TestServer::start();
    let mut client = server.connect();
    client.send(format!("\n\r\n   \n\t\r\n{}\n\n", version_line()).as_bytes());
    assert!(client.line().contains("\"Version\""));
    // Nothing else was answered: the next reply is for the next request.
    let reply = client.call(&request("TestLock", "a", "x", "0"));
    assert_eq!(status(&reply), "Unlocked");
}

#[test]
fn one_shot_connections_like_the_python_client() {
    let server = TestServer::start();
    for i in 0..50 {
        let mut client = server.connect();
        let reply = client.call(&request("Lock", &format!("w{i}"), "shared", "30"));
        let expected = if i == 0 { "Locked" } else { "NotOwner" };
        assert_eq!(status(&reply), expected);
        drop(client);
    }
    let stats = server.connect().call(&request("Stats", "a", "x", "0"));
    assert!(stats["Connections"].as_u64().unwrap() >= 51);
}

#[test]
fn half_close_after_the_request_still_gets_the_reply() {
    let server = TestServer::start();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            format!(
                "{}\n{}\n",
                version_line(),
                request("TestLock", "a", "x", "0")
            )
            .as_bytes(),
        )
        .unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut all = String::new();
    stream.read_to_string(&mut all).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 2, "{all:?}");
    assert!(lines[0].contains("Version") && lines[1].contains("Unlocked"));
}

#[test]
fn a_last_request_without_newline_is_answered_at_half_close() {
    let server = TestServer::start();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(version_line().as_bytes()).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut all = String::new();
    stream.read_to_string(&mut all).unwrap();
    assert!(all.contains("\"Version\"") && all.ends_with('\n'));
}

/// A TestLock line padded with spaces to exactly `len` bytes, newline included.
fn line_of_len(len: usize) -> Vec<u8> {
    let core = request("TestLock", "a", "x", "0");
    let mut line = core.into_bytes();
    line.resize(len - 1, b' ');
    line.push(b'\n');
    line
}

#[test]
fn line_limit_just_under_is_served_just_over_is_answered_and_discarded() {
    let server = TestServer::start();
    let limit = 1 << 20;
    let mut client = server.connect();
    client.send(&line_of_len(limit));
    assert_eq!(
        status(&serde_json::from_str(&client.line()).unwrap()),
        "Unlocked"
    );

    let mut over = server.connect();
    // An answered request first: its reply must not be lost.
    over.send(format!("{}\n", version_line()).as_bytes());
    assert!(over.line().contains("Version"));
    over.send(&line_of_len(limit + 1));
    assert_eq!(over.line(), r#"{"Status":"BadPayload"}"#);
    // The connection goes on with the next line.
    assert!(over.call(&version_line())["Status"] == "Version");

    let stats = server.connect().call(&request("Stats", "a", "x", "0"));
    assert_eq!(stats["DataOverrun"], 1);
}

#[test]
fn an_overrun_in_the_table_encoding_is_answered_in_it() {
    let server = TestServer::with_args(&["--max-line", "256"]);
    let mut client = server.connect();
    let long = jackrabbit_dlm::protocol::codec::encode(&[b'x'; 200]);
    client.send(format!("{long}\n").as_bytes());
    let reply = jackrabbit_dlm::protocol::codec::decode(client.line().as_bytes()).unwrap();
    assert_eq!(reply, br#"{"Status":"BadPayload"}"#);
    assert_eq!(client.call(&version_line())["Status"], "Version");
}

#[test]
fn line_limit_is_configurable_and_counts_unfinished_lines() {
    let server = TestServer::with_args(&["--max-line", "256"]);
    let mut client = server.connect();
    client.send(&line_of_len(256));
    assert_eq!(
        status(&serde_json::from_str(&client.line()).unwrap()),
        "Unlocked"
    );
    // 300 bytes without any newline: answered before a newline arrives,
    // and what follows up to the newline is discarded.
    let mut over = server.connect();
    over.send(&[b'{'; 300]);
    assert_eq!(over.line(), r#"{"Status":"BadPayload"}"#);
    over.send(&[b'{'; 5000]);
    over.send(b"}\n");
    assert_eq!(over.call(&version_line())["Status"], "Version");
    assert_eq!(
        server.connect().call(&request("Stats", "a", "x", "0"))["DataOverrun"],
        1
    );
}

#[test]
fn every_kind_of_bad_payload_keeps_the_connection() {
    let server = TestServer::with_args(&["--max-ttl", "3600"]);
    let mut client = server.connect();
    let long_id = "i".repeat(1025);
    let long_name = "n".repeat(4097);
    let bad_lines: Vec<String> = vec![
        "{".into(),
        "{}".into(),
        "{} trailing".into(),
        "{\"ID\":\"a\"".into(),
        "{\"ID\":\"\\x\"}".into(),
        r#"{"FileName":"x","Action":"Lock","Expire":"1"}"#.into(),
        r#"{"ID":"a","Action":"Lock","Expire":"1"}"#.into(),
        r#"{"ID":"a","FileName":"x","Expire":"1"}"#.into(),
        r#"{"ID":null,"FileName":"x","Action":"Lock","Expire":"1"}"#.into(),
        r#"{"ID":"a","FileName":["x"],"Action":"Lock","Expire":"1"}"#.into(),
        r#"{"ID":"a","FileName":"x","Action":7,"Expire":"1"}"#.into(),
        r#"{"ID":"a","FileName":"x","Action":"Lock"}"#.into(),
        r#"{"ID":"a","FileName":"x","Action":"Put","Expire":"1"}"#.into(),
        r#"{"ID":"a","FileName":"x","Action":"Put","Expire":"1","DataStore":42}"#.into(),
        r#"{"ID":true,"FileName":"x","Action":"Lock","Expire":"1"}"#.into(),
        r#"{"ID":"a","FileName":{},"Action":"Lock","Expire":"1"}"#.into(),
        format!(r#"{{"ID":"{long_id}","FileName":"x","Action":"Lock","Expire":"1"}}"#),
        format!(r#"{{"ID":"a","FileName":"{long_name}","Action":"Lock","Expire":"1"}}"#),
    ];
    let bad_expires = [
        "\"abc\"",
        "\"-inf\"",
        "\"inf\"",
        "\"nan\"",
        "\"1e999\"",
        "1e999",
        "\"3601\"",
        "3601",
        "null",
        "true",
    ];
    let mut all = bad_lines;
    for e in bad_expires {
        all.push(format!(
            r#"{{"ID":"a","FileName":"x","Action":"Lock","Expire":{e}}}"#
        ));
        all.push(format!(
            r#"{{"ID":"a","FileName":"x","Action":"Put","Expire":{e},"DataStore":"v"}}"#
        ));
    }
    for line in &all {
        let reply = client.call(line);
        assert_eq!(status(&reply), "BadPayload", "{line}");
        // The same connection keeps working.
        assert_eq!(status(&client.call(&version_line())), "Version");
    }
    // The same in the table encoding, plus lines that are not valid table text.
    for line in all.iter().take(5) {
        assert_eq!(status(&client.call_encoded(line)), "BadPayload", "{line}");
    }
    let plain_bad = |c: &mut Client, text: &str| {
        c.send(format!("{text}\n").as_bytes());
        let reply = c.line();
        let decoded =
            jackrabbit_dlm::protocol::codec::decode(reply.as_bytes()).expect("encoded reply");
        assert_eq!(decoded, br#"{"Status":"BadPayload"}"#, "{text}");
    };
    // A line not starting with '{' is table-encoded by definition, so
    // anything else that is not JSON gets an encoded BadPayload.
    plain_bad(&mut client, "not json");
    plain_bad(&mut client, "[1,2,3]");
    plain_bad(&mut client, "\"just a string\"");
    plain_bad(
        &mut client,
        &jackrabbit_dlm::protocol::codec::encode(b"[1,2,3]"),
    );
    plain_bad(&mut client, "a^1"); // odd length
    plain_bad(&mut client, "a^~~"); // foreign characters
    plain_bad(&mut client, "zZzZ"); // pairs above 255
    plain_bad(&mut client, "a^é1"); // non-ASCII
    assert_eq!(status(&client.call(&version_line())), "Version");
    let stats = client.call(&request("Stats", "a", "x", "0"));
    assert_eq!(
        usize::try_from(stats["BadPayload"].as_u64().unwrap()).unwrap(),
        all.len() + 5 + 8
    );
}

#[test]
fn expire_accepts_fractions_numbers_and_padding() {
    let server = TestServer::start();
    let mut client = server.connect();
    for (i, e) in ["\"0.25\"", "7", "1.5", "\" 3 \"", "\"86400\""]
        .iter()
        .enumerate()
    {
        let line = format!(r#"{{"ID":"a","FileName":"f{i}","Action":"Lock","Expire":{e}}}"#);
        assert_eq!(status(&client.call(&line)), "Locked", "{e}");
    }
    // Other actions ignore Expire entirely.
    let line = r#"{"ID":"a","FileName":"f0","Action":"Unlock","Expire":"abc"}"#;
    assert_eq!(status(&client.call(line)), "Unlocked");
}

#[test]
fn short_ttls_expire_without_any_access() {
    // The server's clock stands still until the test moves it, so the
    // setup takes no part of the TTLs however slow the machine is.
    let server = common::InProcess::start();
    let mut client = server.connect();
    for i in 0..100 {
        client.call(&request("Lock", "a", &format!("l{i}"), "0.2"));
        client.call(&put("a", &format!("d{i}"), "v", "0.2"));
    }
    let stats = client.call(&request("Stats", "a", "x", "0"));
    assert_eq!(
        (stats["ALock"].as_u64(), stats["AData"].as_u64()),
        (Some(100), Some(100))
    );
    server.advance(200);
    let stats = stats_until(&mut client, Duration::from_secs(10), |s| {
        s["ALock"] == 0 && s["AData"] == 0
    });
    assert_eq!(
        (stats["ALock"].as_u64(), stats["AData"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(stats["ExpiredLock"], 100);
    assert_eq!(stats["ExpiredData"], 100);
}

#[test]
fn tokens_strictly_increase_across_names_and_holds() {
    let server = TestServer::start();
    let mut client = server.connect();
    let mut last = 0u64;
    for i in 0..200 {
        let name = format!("n{}", i % 5);
        let reply = client.call(&request("Lock", &format!("w{}", i % 3), &name, "30"));
        if status(&reply) == "Locked" {
            let token = reply["Token"].as_u64().unwrap();
            assert!(token >= last);
            last = token;
            client.call(&request("Unlock", &format!("w{}", i % 3), &name, "0"));
            let again = client.call(&request("Lock", "other", &name, "30"));
            let next = again["Token"].as_u64().unwrap();
            assert!(next > last, "a new hold gets a greater token");
            last = next;
            client.call(&request("Unlock", "other", &name, "0"));
        }
    }
    // Tokens start from the wall clock in microseconds, so they grow across restarts.
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let now_us = u64::try_from(now_us).expect("microseconds fit until the year 586912");
    assert!(last > now_us - 3_600_000_000 && last < now_us + 3_600_000_000);
}

#[test]
fn memory_guard_answers_no_and_changes_nothing() {
    let server = TestServer::with_args(&["--max-memory", "20000"]);
    let mut client = server.connect();
    let mut created = 0;
    let mut refused = 0;
    for i in 0..400 {
        match status(&client.call(&request("Lock", "w", &format!("lock-{i}"), "30"))) {
            "Locked" => created += 1,
            "NO" => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        created > 10 && refused > 0,
        "{created} created, {refused} refused"
    );
    let stats = client.call(&request("Stats", "a", "x", "0"));
    assert_eq!(stats["ALock"], created);
    assert_eq!(stats["NO"], refused);
    assert_eq!(
        status(&client.call(&put("w", "d", &"v".repeat(30000), "30"))),
        "NO"
    );
    // A relock does not grow anything and is still allowed.
    assert_eq!(
        status(&client.call(&request("Lock", "w", "lock-0", "30"))),
        "Locked"
    );
    // Freeing makes room.
    client.call(&request("Unlock", "w", "lock-0", "0"));
    assert_eq!(
        status(&client.call(&request("Lock", "w", "fresh", "30"))),
        "Locked"
    );
}

#[test]
fn max_connections_closes_the_excess_and_counts_it() {
    let server = TestServer::with_args(&["--max-connections", "3"]);
    let mut held: Vec<Client> = (0..3).map(|_| server.connect()).collect();
    for c in &mut held {
        assert_eq!(status(&c.call(&version_line())), "Version");
    }
    let mut excess = server.connect();
    let _ = excess
        .stream()
        .write_all(format!("{}\n", version_line()).as_bytes());
    assert!(excess.is_closed());
    // The held connections keep working; freeing one makes room.
    assert_eq!(status(&held[0].call(&version_line())), "Version");
    drop(held.pop());
    // Once the server has seen the close, a new connection is served: until
    // then it is refused, so try until one is (each refusal counts).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let mut c = server.connect();
        let _ = c
            .stream()
            .write_all(format!("{}\n", request("Stats", "a", "x", "0")).as_bytes());
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut c.reader, &mut line).unwrap_or(0) > 0 {
            break serde_json::from_str::<Value>(&line).expect("a Stats reply");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no room after a close"
        );
    };
    assert!(stats["Refused"].as_u64().unwrap() >= 1);
}

#[test]
fn partial_lines_older_than_the_timeout_are_closed() {
    let server = TestServer::with_args(&["--partial-timeout", "1"]);
    let mut slow = server.connect();
    slow.send(b"{\"ID\":");
    let mut healthy = server.connect();
    assert!(slow.is_closed(), "the dribbling connection is closed");
    assert_eq!(status(&healthy.call(&version_line())), "Version");
}

#[test]
fn stats_log_line_every_interval() {
    let server = TestServer::with_args(&["--stats-interval", "1"]);
    let mut client = server.connect();
    client.call(&request("Lock", "w", "x", "30"));
    client.call(&put("w", "secret-name", "secret-value", "30"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = server.log_text();
        if let Some(line) = text.lines().find(|l| l.contains("Lock: 1")) {
            break line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no stats line in {text:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // "YYYY-MM-DD HH:MM:SS.uuuuuu Name: value, ..." sorted, zeros left out.
    let (date, rest) = line.split_at(26);
    assert_eq!(date.len(), 26);
    assert_eq!(&date[4..5], "-");
    assert_eq!(&date[10..11], " ");
    assert_eq!(&date[19..20], ".");
    // Integers, except MemoryMax: a percentage with two decimals.
    let pairs: Vec<(&str, &str)> = rest
        .trim()
        .split(", ")
        .map(|p| p.split_once(": ").expect("Name: value"))
        .collect();
    for &(name, value) in &pairs {
        if name == "MemoryMax" {
            assert_two_decimals(value);
        } else {
            assert!(
                value.parse::<u64>().is_ok_and(|v| v != 0),
                "{name}: {value}"
            );
        }
    }
    let names: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(pairs.contains(&("ALock", "1")) && pairs.contains(&("PutNew", "1")));
    assert!(names.contains(&"MemoryMax"), "{line}");
    let log = server.log_text();
    assert!(!log.contains("secret"), "no names or values in the log");
    assert!(log.lines().next().unwrap().contains("Jackrabbit DLM"));
}

/// `value` is a positive number with exactly two decimals, as MemoryMax is
/// shown, and a percentage.
fn assert_two_decimals(value: &str) {
    let (units, cents) = value.split_once('.').expect("a decimal point");
    assert!(
        !units.is_empty()
            && units.bytes().all(|b| b.is_ascii_digit())
            && cents.len() == 2
            && cents.bytes().all(|b| b.is_ascii_digit()),
        "{value}"
    );
    let percent: f64 = value.parse().unwrap();
    assert!(percent > 0.0 && percent <= 100.0, "{value}");
}

/// PROTOCOL.md, Counters: MemoryMax is the highest resident memory seen, in
/// percent of physical memory with two decimals; in `Stats` a JSON number
/// with its two decimals, and it never goes down.
#[test]
fn memory_max_is_a_percentage_with_two_decimals() {
    let mut server = TestServer::start();
    let mut client = server.connect();
    client.send_line(&stats_request());
    let line = client.line();
    let (_, rest) = line
        .split_once(r#""MemoryMax":"#)
        .expect("MemoryMax in Stats");
    let value = rest.split([',', '}']).next().unwrap();
    assert_two_decimals(value);
    let first: f64 = value.parse().unwrap();
    // Of the order of the resident memory the test sees (the server read
    // its own before these values were stored, and rounds up).
    for i in 0..200 {
        client.call(&put("w", &format!("v{i}"), &"x".repeat(16_000), "60"));
    }
    // SAFETY: sysconf only reads system configuration values.
    let physical =
        unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) * libc::sysconf(libc::_SC_PAGESIZE) };
    let seen = server.rss_bytes() as f64 * 100.0 / physical as f64;
    assert!(first <= seen + 0.01, "{first} against {seen}");
    let later = client.call(&stats_request());
    assert!(later["MemoryMax"].as_f64() >= Some(first), "{later}");
    server.terminate();
    let log = server.log_text();
    let last = log.lines().last().unwrap();
    let (_, value) = last
        .split_once("MemoryMax: ")
        .expect("MemoryMax in the last line");
    assert_two_decimals(value.split(',').next().unwrap());
}

#[test]
fn sigterm_flushes_logs_the_final_line_and_exits_zero() {
    let mut server = TestServer::start();
    let mut client = server.connect();
    client.call(&request("Lock", "w", "x", "30"));
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let log = server.log_text();
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.contains("stopped") && last.contains("Lock: 1"),
        "{log}"
    );
}

#[test]
fn bad_command_line_is_one_line_and_exit_2() {
    for args in [
        &["--max-line", "abc"][..],
        &["--bogus"],
        &["127.0.0.1", "99999"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--max-line",
        "--max-ttl",
        "--max-memory",
        "--max-connections",
        "--partial-timeout",
        "--log-dir",
        "--stats-interval",
        "--pin-core",
        "--verbose",
        "[default: 1048576]",
        "[default: 37373]",
    ] {
        assert!(text.contains(option), "--help lacks {option}");
    }
}

#[test]
fn port_in_use_is_reported_and_exits_1() {
    let server = TestServer::start();
    let dir = common::temp_dir("inuse");
    let port = server.addr.port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .args(["127.0.0.1", &port, "--log-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let message = format!("Another program is using this port: {port}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&message));
    assert!(common::read(&dir.join("JackrabbitDLM.log")).contains(&message));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn running_out_of_file_descriptors_neither_spins_nor_stops_service() {
    let server = TestServer::spawn(&[], Some(48));
    // More connections than the server can have descriptors for: the rest
    // wait in the kernel's accept queue while accept fails with EMFILE.
    let mut clients: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = server.cpu_seconds();
    std::thread::sleep(Duration::from_secs(1));
    let spent = server.cpu_seconds() - before;
    assert!(
        spent < 0.5,
        "a busy accept loop burned {spent} s of CPU in 1 s"
    );
    // Free descriptors: the waiting connections are accepted and served.
    let last = clients.pop().expect("a client");
    clients.truncate(5);
    let mut last = Client {
        reader: std::io::BufReader::new(last),
    };
    last.stream()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(status(&last.call(&version_line())), "Version");
}

#[test]
fn large_frees_compact_the_tables() {
    let server = TestServer::start();
    let mut client = server.connect();
    let value = "v".repeat(200);
    let mut batch = String::new();
    for i in 0..20_000 {
        batch.push_str(&put("w", &format!("item-{i}"), &value, "60"));
        batch.push('\n');
    }
    client.send(batch.as_bytes());
    for _ in 0..20_000 {
        client.line();
    }
    let mut batch = String::new();
    for i in 0..20_000 {
        batch.push_str(&request("Erase", "w", &format!("item-{i}"), "0"));
        batch.push('\n');
    }
    client.send(batch.as_bytes());
    for _ in 0..20_000 {
        assert!(client.line().contains("Done"));
    }
    let stats = stats_until(&mut client, Duration::from_secs(10), |s| {
        s["ForcedGC"].as_u64() >= Some(1)
    });
    assert!(stats["ForcedGC"].as_u64() >= Some(1), "{stats}");
    assert_eq!(stats["AData"], 0);
    // Still fully working after the compaction.
    assert_eq!(status(&client.call(&put("w", "after", "v", "60"))), "Done");
    assert_eq!(
        client.call(&request("Get", "w", "after", "0"))["DataStore"],
        "v"
    );
}

#[test]
fn pin_core_serves_and_rejects_a_missing_cpu() {
    let server = TestServer::with_args(&["--pin-core", "0"]);
    assert_eq!(status(&server.connect().call(&version_line())), "Version");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let allowed = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string();
    assert_eq!(allowed, "0");
    let dir = common::temp_dir("pin");
    let out = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .args(["127.0.0.1", "0", "--pin-core", "4000", "--log-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pin-core 4000"));
    let _ = std::fs::remove_dir_all(dir);
}

/// PROTOCOL.md, Transport and framing: `--close-after-reply` closes each
/// connection after its first reply, as the upstream server does; a
/// second pipelined request is not answered.
#[test]
fn close_after_reply_closes_after_the_first_reply() {
    let server = TestServer::with_args(&["--close-after-reply"]);
    let mut client = server.connect();
    client.send(format!("{}\n{}\n", version_line(), version_line()).as_bytes());
    assert!(client.line().contains("\"Version\""));
    assert!(client.is_closed(), "closed after the first reply");
    // Without the option the same two lines get two replies.
    let plain = TestServer::start();
    let mut client = plain.connect();
    client.send(format!("{}\n{}\n", version_line(), version_line()).as_bytes());
    assert!(client.line().contains("\"Version\""));
    assert!(client.line().contains("\"Version\""));
}

/// The upstream layout: a pid file written once listening and removed on a
/// clean exit, a log directory created when missing, the listen backlog.
#[test]
fn pid_file_and_a_missing_log_directory() {
    let dir = common::temp_dir("layout");
    let pid_path = dir.join("run").join("jackrabbit.pid");
    std::fs::create_dir_all(pid_path.parent().unwrap()).unwrap();
    let logs = dir.join("Logs").join("deeper");
    let mut command = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"));
    command
        .args(["127.0.0.1", "0", "--backlog", "64", "--pid-file"])
        .arg(&pid_path)
        .arg("--log-dir")
        .arg(&logs);
    let (mut child, _) = common::spawn_listening(&mut command);
    let pid: u32 = std::fs::read_to_string(&pid_path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, child.id());
    assert!(
        logs.join("JackrabbitDLM.log").exists(),
        "the log directory was made"
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    assert!(!pid_path.exists(), "removed on a clean exit");
    let _ = std::fs::remove_dir_all(dir);
}

/// An empty HOST is every IPv4 interface, as upstream reads it.
#[test]
fn an_empty_host_listens_on_every_ipv4_interface() {
    let dir = common::temp_dir("empty-host");
    let mut command = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"));
    command.args(["", "0", "--log-dir"]).arg(&dir);
    let (mut child, addr) = common::spawn_listening(&mut command);
    assert_eq!(addr.ip().to_string(), "0.0.0.0");
    let mut client = Client::connect(SocketAddr::from(([127, 0, 0, 1], addr.port())));
    assert_eq!(status(&client.call(&version_line())), "Version");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// Checks that every statistics line of `text` (all but the start-up line)
/// has pairs, each a name and a number, as upstream's ChartDLM splits them.
fn assert_lines_have_pairs(text: &str) {
    for line in text.lines().skip(1) {
        let pairs = line[27..].trim_start_matches("Jackrabbit DLM ");
        let pairs = pairs.rsplit_once("stopped. ").map_or(pairs, |(_, p)| p);
        assert!(!pairs.is_empty(), "a line without pairs: {line:?}");
        for piece in pairs.split(", ") {
            let (name, value) = piece.split_once(": ").expect("Name: value");
            assert!(
                !name.is_empty() && value.parse::<f64>().is_ok(),
                "{piece:?} in {line:?}"
            );
        }
    }
}

/// PROTOCOL.md, Counters and the statistics log: local time as upstream
/// writes it (`--log-utc` for UTC), read off the start-up line (written
/// before the server says it listens) and the shutdown line.
#[test]
fn log_time_stamps_are_local_or_utc() {
    for (utc, expect_offset) in [(false, 3 * 3600), (true, 0)] {
        let dir = common::temp_dir("log-tz");
        let mut command = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"));
        // A POSIX TZ string needs no time zone database: 3 hours east.
        command
            .env("TZ", "XYZ-3")
            .args(["127.0.0.1", "0", "--log-dir"])
            .arg(&dir);
        if utc {
            command.arg("--log-utc");
        }
        // The stamps read as the project writes them at this offset: the
        // format sorts as the time does, so a stamp between the one of
        // before and the one of after is the right one.
        let stamp = |at| jackrabbit_dlm::stats::timestamp_at_offset(at, expect_offset);
        let before = stamp(std::time::SystemTime::now());
        let (mut child, addr) = common::spawn_listening(&mut command);
        let path = dir.join("JackrabbitDLM.log");
        let started = common::read(&path);
        let after = stamp(std::time::SystemTime::now());
        assert!(
            before.as_str() <= &started[..26] && &started[..26] <= after.as_str(),
            "utc {utc}: {started:?} is not between {before} and {after}"
        );
        assert_eq!(
            status(&Client::connect(addr).call(&version_line())),
            "Version"
        );
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM);
        }
        assert!(child.wait().unwrap().success());
        let stopped = stamp(std::time::SystemTime::now());
        let text = common::read(&path);
        let last = text.lines().last().unwrap();
        assert!(last.contains("stopped."), "{text}");
        assert!(
            after.as_str() <= &last[..26] && &last[..26] <= stopped.as_str(),
            "{last}"
        );
        assert_lines_have_pairs(&text);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Statistics lines once a second on a clock the test moves: each has
/// pairs (an interval with nothing counted writes `Idle: 0`; see the stats
/// unit test for that line itself).
#[test]
fn statistics_lines_always_have_pairs() {
    let server = common::InProcess::with_args(&["--stats-interval", "1"]);
    let mut client = server.connect();
    for _ in 0..3 {
        server.advance(1000);
        // The turn that answers the second request comes after the one
        // that wrote the interval's line.
        client.call(&version_line());
        client.call(&version_line());
    }
    let text = server.log_text();
    assert!(text.lines().count() >= 4, "{text}");
    assert_lines_have_pairs(&text);
}

/// contrib/LaunchDLM starts the server in the upstream layout: Logs/ with
/// the statistics log and the pid file, every interface, and exits when the
/// server is stopped on purpose.
#[test]
fn the_launcher_serves_in_the_upstream_layout() {
    let home = common::temp_dir("launcher");
    let logs = home.join("Logs");
    std::fs::create_dir_all(&logs).unwrap();
    // The launcher appends the server's output to Logs/LaunchDLM.out: make
    // it a FIFO and read it line by line, so the test waits for what the
    // server writes rather than polling a file.
    let out = logs.join("LaunchDLM.out");
    let c_out = std::ffi::CString::new(out.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_out.as_ptr(), 0o600) }, 0, "mkfifo");
    let (send, lines) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let fifo = std::fs::File::open(out).expect("open the FIFO");
        for line in BufReader::new(fifo).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let mut launcher = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/LaunchDLM"))
        .env("DLM_HOME", &home)
        .env("DLM_BINARY", env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .env("DLM_PORT", "0")
        .spawn()
        .expect("start the launcher");
    let pid_path = logs.join("JackrabbitDLM.pid");
    // The server's start-up line (written after its pid file) comes through
    // the FIFO, read as it is written.
    let banner = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("a start-up line");
    let port = banner
        .split_whitespace()
        .last()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.port())
        .unwrap_or_else(|| panic!("no address in {banner:?}"));
    let pid: i32 = common::read(&pid_path).trim().parse().expect("a pid file");
    let mut client = Client::connect(SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(status(&client.call(&version_line())), "Version");
    assert!(logs.join("JackrabbitDLM.log").exists());
    // SAFETY: kill(2) on the server the launcher started.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    assert!(
        launcher.wait().unwrap().success(),
        "a clean stop ends the launcher"
    );
    assert!(!pid_path.exists());
    // The server closed its end of the FIFO: the reader has seen it all.
    reader.join().expect("the FIFO reader");
    let _ = std::fs::remove_dir_all(home);
}
