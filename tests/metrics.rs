//! The metrics port (`--metrics`) against the real server binary over real
//! sockets: what `/metrics` says, read with an independent exposition-format
//! parser (`prometheus-parse`) and checked against what the test did; the
//! health checks; and hostile clients on the metrics port (junk, oversized
//! and slow requests, floods of connections and requests), after each of
//! which the lock port still answers and the server's memory is bounded.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, put, request, temp_dir};
use prometheus_parse::{Scrape, Value};

const MIB: u64 = 1 << 20;
const RSS_BOUND: u64 = 64 * MIB;
const PATIENCE: Duration = Duration::from_secs(10);

/// A `jackrabbit-dlm` process with its metrics port, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    dir: std::path::PathBuf,
}

impl Server {
    /// Starts the server with `--metrics 127.0.0.1:0` and `args`.
    fn start(args: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"));
        command.args(["--metrics", "127.0.0.1:0"]).args(args);
        Server::spawn(command)
    }

    /// Starts `command` (the server binary with its options) in a fresh log
    /// directory and reads both start-up lines.
    fn spawn(mut command: Command) -> Server {
        let dir = temp_dir("metrics");
        command
            .args(["127.0.0.1", "0", "--log-dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start the server");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut last_word = |what: &str| -> String {
            let line = lines.next().expect(what).expect(what);
            line.split_whitespace().last().expect(what).to_owned()
        };
        let addr = last_word("listening line").parse().expect("address");
        let url = last_word("metrics line");
        let metrics = url
            .trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .parse()
            .expect("metrics address");
        Server {
            child,
            addr,
            metrics,
            dir,
        }
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    fn metrics_stream(&self) -> TcpStream {
        let stream = TcpStream::connect(self.metrics).expect("connect to the metrics port");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream
    }

    /// Sends `raw` on a fresh metrics connection; returns all it got back
    /// until the server closed it.
    fn exchange(&self, raw: &[u8]) -> String {
        let mut stream = self.metrics_stream();
        stream.write_all(raw).expect("send");
        read_to_close(&mut stream)
    }

    /// `GET path`: the status code and the body.
    fn get(&self, path: &str) -> (u16, String) {
        let text = self.exchange(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        split_response(&text)
    }

    /// `/metrics`, parsed.
    fn scrape(&self) -> Scrape {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200, "{body}");
        parse(&body)
    }

    fn rss_bytes(&self) -> u64 {
        common::proc_status_kib(self.child.id(), "VmRSS:") * 1024
    }

    /// The lock port answers a fresh client and memory is bounded.
    fn assert_healthy(&self) {
        let mut client = self.connect();
        let reply = client.call(&request("Version", "probe", "probe", "0"));
        assert_eq!(reply["Status"], "Version");
        let rss = self.rss_bytes();
        assert!(rss > 0 && rss < RSS_BOUND, "resident memory {rss} B");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads until EOF (or a reset, which also means closed); panics if the
/// server neither answers nor closes within the read timeout.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("metrics port neither answered nor closed: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn split_response(text: &str) -> (u16, String) {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    (code, body.to_owned())
}

fn parse(body: &str) -> Scrape {
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("exposition parses")
}

/// The value of the unlabelled sample `name` (counter or gauge).
fn value(scrape: &Scrape, name: &str) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("no sample {name}"));
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{name} is {other:?}"),
    }
}

#[test]
fn metrics_count_what_the_clients_did() {
    let server = Server::start(&["--max-memory", "5000000", "--max-connections", "77"]);
    let mut a = server.connect();
    let mut b = server.connect();
    let mut sent = 0u32;
    let mut call = |client: &mut Client, line: &str| {
        sent += 1;
        client.call(line)
    };
    for name in ["secret-lock-1", "secret-lock-2", "secret-lock-3"] {
        assert_eq!(
            call(&mut a, &request("Lock", "secret-id-a", name, "60"))["Status"],
            "Locked"
        );
    }
    assert_eq!(
        call(
            &mut b,
            &request("Lock", "secret-id-b", "secret-lock-1", "60")
        )["Status"],
        "NotOwner"
    );
    assert_eq!(
        call(
            &mut a,
            &request("Unlock", "secret-id-a", "secret-lock-3", "0")
        )["Status"],
        "Unlocked"
    );
    assert_eq!(
        call(
            &mut b,
            &put("secret-id-b", "secret-item", "secret-value", "60")
        )["Status"],
        "Done"
    );
    call(&mut b, &request("Get", "secret-id-b", "secret-item", "0"));
    call(&mut a, "{not json");
    // `b` closes its side and reads until the server has closed it too, so
    // the server has let go of it before the scrape.
    b.stream()
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert!(b.is_closed(), "the server closes a finished connection");

    let (code, body) = server.get("/metrics");
    assert_eq!(code, 200);
    for secret in ["secret-lock", "secret-id", "secret-item", "secret-value"] {
        assert!(!body.contains(secret), "{secret} shows in /metrics");
    }
    let scrape = parse(&body);
    assert_eq!(value(&scrape, "jackrabbit_dlm_connections"), 1.0);
    let sent = f64::from(sent);
    for (name, expected) in [
        ("jackrabbit_dlm_lock_total", 3.0),
        ("jackrabbit_dlm_not_owner_total", 1.0),
        ("jackrabbit_dlm_unlock_total", 1.0),
        ("jackrabbit_dlm_put_new_total", 1.0),
        ("jackrabbit_dlm_get_total", 1.0),
        ("jackrabbit_dlm_bad_payload_total", 1.0),
        ("jackrabbit_dlm_data_in_total", 12.0),
        ("jackrabbit_dlm_requests_total", sent),
        ("jackrabbit_dlm_replies_total", sent),
        ("jackrabbit_dlm_connections_total", 2.0),
        ("jackrabbit_dlm_locks", 2.0),
        ("jackrabbit_dlm_items", 1.0),
        ("jackrabbit_dlm_waiters", 0.0),
        ("jackrabbit_dlm_connections", 1.0),
        ("jackrabbit_dlm_connections_max", 77.0),
        ("jackrabbit_dlm_memory_limit_bytes", 5_000_000.0),
        ("jackrabbit_dlm_ready", 1.0),
    ] {
        assert_eq!(value(&scrape, name), expected, "{name}");
    }
    let held = value(&scrape, "jackrabbit_dlm_memory_held_bytes");
    assert!(held > 0.0 && held < 5_000_000.0, "held {held}");
    // MemoryMax, a gauge in percent with the two decimals of PROTOCOL.md.
    let memory_max = value(&scrape, "jackrabbit_dlm_memory_max_percent");
    assert!(memory_max > 0.0 && memory_max <= 100.0, "{memory_max}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("jackrabbit_dlm_memory_max_percent ")
                && l.len() - l.rfind('.').unwrap() == 3),
        "two decimals"
    );

    // Every request answered is in the latency histogram, once.
    let histogram = scrape
        .samples
        .iter()
        .find(|s| s.metric == "jackrabbit_dlm_request_duration_seconds")
        .expect("the latency histogram");
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("not a histogram: {:?}", histogram.value);
    };
    let inf = buckets.last().expect("buckets");
    assert!(inf.less_than.is_infinite());
    assert_eq!(inf.count, sent, "requests in the histogram");
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));

    // Every PROTOCOL.md counter the server keeps has its family.
    for (protocol, _) in jackrabbit_dlm::stats::Counters::default().fields() {
        if matches!(protocol, "ALock" | "AData") {
            continue;
        }
        let tag = format!("(PROTOCOL.md counter {protocol})");
        assert!(
            scrape.docs.values().any(|doc| doc.ends_with(&tag)),
            "no family for {protocol}"
        );
    }
    let info = scrape
        .samples
        .iter()
        .find(|s| s.metric == "jackrabbit_dlm_build_info")
        .expect("build_info");
    assert_eq!(info.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    server.assert_healthy();
}

#[test]
fn health_checks_and_http_answers() {
    let server = Server::start(&[]);
    assert_eq!(server.get("/livez"), (200, "ok\n".to_owned()));
    assert_eq!(server.get("/readyz"), (200, "ready\n".to_owned()));
    assert_eq!(server.get("/no/such/path").0, 404);
    let head = server.exchange(b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    let post = server.exchange(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let with_body = server.exchange(b"GET /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert!(with_body.starts_with("HTTP/1.1 400"), "{with_body}");
    let scrape = server.scrape();
    let answers = |code: &str| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "jackrabbit_dlm_metrics_port_answers_total"
                    && s.labels.get("code") == Some(code)
            })
            .map(|s| match s.value {
                Value::Counter(v) => v,
                _ => panic!("not a counter"),
            })
            .unwrap_or_else(|| panic!("no answers for {code}"))
    };
    // livez, readyz, HEAD (and this scrape, counted once written: not yet).
    assert_eq!(answers("200"), 3.0);
    assert_eq!(answers("404"), 1.0);
    assert_eq!(answers("405"), 1.0);
    assert_eq!(answers("400"), 1.0);
    server.assert_healthy();
}

#[test]
fn junk_is_answered_400_and_closed() {
    let server = Server::start(&["--metrics-max-request", "1024"]);
    let mut junk: Vec<Vec<u8>> = vec![
        b"\0\0\0\0\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
        b"\xff\xfe\xfd /metrics HTTP/1.1\r\n\r\n".to_vec(),
        // Over --metrics-max-request without ever ending the head.
        format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(4000)).into_bytes(),
        format!("GET /{} HTTP/1.1\r\n", "a".repeat(4000)).into_bytes(),
    ];
    let mut rng = jackrabbit_dlm::rng::Rng::new(0x9E37_79B9_7F4A_7C15, 16);
    for _ in 0..50 {
        let len = 1 + rng.below(2000) as usize;
        let mut line: Vec<u8> = (0..len).map(|_| (rng.next_u64() & 0xff) as u8).collect();
        line.extend_from_slice(b"\r\n\r\n");
        junk.push(line);
    }
    for (i, bytes) in junk.iter().enumerate() {
        let answer = server.exchange(bytes);
        // Random bytes can make a well-formed request for no served path
        // (404) or a method we do not serve (405); never a 200, never silence.
        assert!(
            ["HTTP/1.1 400 ", "HTTP/1.1 404 ", "HTTP/1.1 405 "]
                .iter()
                .any(|p| answer.starts_with(p)),
            "junk {i} answered {answer:?}"
        );
    }
    for bytes in &junk[..7] {
        assert!(
            server.exchange(bytes).starts_with("HTTP/1.1 400 "),
            "{bytes:?}"
        );
    }
    server.assert_healthy();
}

#[test]
fn slow_requests_are_closed_by_the_timeout() {
    let server = Server::start(&["--metrics-timeout", "1"]);
    let mut loris = server.metrics_stream();
    loris.write_all(b"GET /metr").expect("send");
    // Held open while the lock port goes on serving.
    server.assert_healthy();
    let rest = read_to_close(&mut loris);
    assert_eq!(rest, "", "a partial request gets no answer");
    // The timeout closed it (the counter says so; how long it took is the
    // server's clock, in whole milliseconds, not the test's to judge).
    let scrape = server.scrape();
    assert_eq!(
        value(&scrape, "jackrabbit_dlm_metrics_port_timed_out_total"),
        1.0
    );
    server.assert_healthy();
}

#[test]
fn connection_floods_are_bounded() {
    let server = Server::start(&["--metrics-max-connections", "5"]);
    // Hold four of the five slots with connections that never send. Their
    // handshakes finished before the scrape connects, and the server
    // accepts its queue in order, so when the scrape (the fifth) is
    // answered, all four are in.
    let mut holders: Vec<TcpStream> = (0..4).map(|_| server.metrics_stream()).collect();
    assert_eq!(
        value(&server.scrape(), "jackrabbit_dlm_metrics_port_connections"),
        5.0
    );
    server.assert_healthy();
    // A flood: the one free slot takes one at a time; the rest are closed
    // at once, without an answer.
    let mut flood = Vec::new();
    for _ in 0..200 {
        let mut stream = server.metrics_stream();
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        flood.push(stream);
    }
    server.assert_healthy();
    let mut refused = 0;
    for mut stream in flood {
        if read_to_close(&mut stream).is_empty() {
            refused += 1;
        }
    }
    assert!(refused > 0, "no connection refused past the limit");
    // The holders close their side; each read to the end shows the server
    // has closed it, and its slot is free again.
    for holder in &mut holders {
        holder
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        assert_eq!(read_to_close(holder), "", "a holder got an answer");
    }
    let scrape = server.scrape();
    assert_eq!(
        value(&scrape, "jackrabbit_dlm_metrics_port_connections"),
        1.0
    );
    let counted = value(&scrape, "jackrabbit_dlm_metrics_port_refused_total");
    assert!(
        counted >= f64::from(refused),
        "{counted} counted, {refused} seen"
    );
    server.assert_healthy();
}

#[test]
fn request_floods_get_one_answer_each() {
    let server = Server::start(&[]);
    // Many requests pipelined on one connection: one answer, then closed.
    let pipelined = "GET /livez HTTP/1.1\r\n\r\n".repeat(1000);
    let answer = server.exchange(pipelined.as_bytes());
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 1, "{answer}");
    // Many scrapes in a row, each whole.
    for _ in 0..200 {
        let (code, body) = server.get("/metrics");
        assert_eq!(code, 200);
        assert!(body.contains("jackrabbit_dlm_build_info"));
    }
    // Lock-port traffic in between is counted and served.
    let mut client = server.connect();
    for i in 0..100 {
        let name = format!("n{i}");
        assert_eq!(
            client.call(&request("Lock", "x", &name, "60"))["Status"],
            "Locked"
        );
    }
    let scrape = server.scrape();
    assert_eq!(value(&scrape, "jackrabbit_dlm_lock_total"), 100.0);
    server.assert_healthy();
}
