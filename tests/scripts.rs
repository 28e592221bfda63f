//! Golden scripts: plain-text files under `tests/scripts/`, each a sequence
//! of request lines, clock steps and the exact reply bytes expected, driven
//! through the session layer (no sockets) with a clock the script moves.
//!
//! Every script runs twice, once with plain JSON lines and once with every
//! request and every expected reply in the table encoding, unless its
//! `encodings:` line names one. A new row of PROTOCOL.md is a new script.
//!
//! The language, one command per line:
//!
//! ```text
//! # a comment (blank lines are ignored too)
//! encodings: plain            only in this encoding (plain or table)
//! config: max_bytes=400       a setting, before the first request: max_bytes,
//!                             max_line, max_ttl (seconds), batch,
//!                             max_waiters_per_lock, max_waiters_total,
//!                             max_holders
//! > {"ID":"a",...}            connection `a` sends this line
//! b> {"ID":"b",...}           connection `b` sends it
//! < {"Status":...}            the next reply on `a` is exactly this line
//! b< {"Status":...}           ... on `b`
//! b: quiet                    `b` has no reply waiting
//! b: close                    `b`'s client closes (its waits are withdrawn)
//! +1500                       1.5 s pass; what is due expires
//! ```
//!
//! Each `>` and each `+` is one event-loop turn as the reactor runs it:
//! serve the connection, expire what is due, deliver completed waits. At the
//! end of a script no connection may have a reply nobody expected.
//! Tokens start at 1.

use std::collections::BTreeMap;
use std::path::Path;

use jackrabbit_dlm::protocol::FencingToken;
use jackrabbit_dlm::protocol::codec::{self, Encoding};
use jackrabbit_dlm::session::{Connection, Served, Session};
use jackrabbit_dlm::store::{Store, StoreConfig};
use jackrabbit_dlm::time::{Millis, Moment};

/// Settings a script may change, with the server's defaults.
struct Settings {
    max_bytes: u64,
    max_line: usize,
    max_ttl_secs: u64,
    batch: usize,
    max_waiters_per_lock: u32,
    max_waiters_total: usize,
    max_holders: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_bytes: u64::MAX,
            max_line: 1 << 20,
            max_ttl_secs: 86_400,
            batch: 256,
            max_waiters_per_lock: 10_000,
            max_waiters_total: 100_000,
            max_holders: 10_000,
        }
    }
}

impl Settings {
    fn set(&mut self, key: &str, value: &str, at: &str) {
        fn number<T: std::str::FromStr>(value: &str, at: &str) -> T {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{at}: bad number {value:?}"))
        }
        match key {
            "max_bytes" => self.max_bytes = number(value, at),
            "max_line" => self.max_line = number(value, at),
            "max_ttl" => self.max_ttl_secs = number(value, at),
            "batch" => self.batch = number(value, at),
            "max_waiters_per_lock" => self.max_waiters_per_lock = number(value, at),
            "max_waiters_total" => self.max_waiters_total = number(value, at),
            "max_holders" => self.max_holders = number(value, at),
            _ => panic!("{at}: unknown setting {key:?}"),
        }
    }
}

/// One client connection of a script.
struct Client {
    conn: Connection,
    /// Reply bytes the connection sent that the script has not read yet.
    unread: Vec<u8>,
}

/// A script being run in one encoding.
struct Run {
    session: Session,
    clients: BTreeMap<String, Client>,
    now: Moment,
    encoding: Encoding,
    next_key: usize,
    max_line: usize,
}

impl Run {
    fn new(settings: &Settings, encoding: Encoding) -> Run {
        let store = Store::new(
            StoreConfig {
                max_bytes: settings.max_bytes,
                compact_after: 1 << 20,
                first_token: FencingToken::new(1),
                max_waiters_per_lock: settings.max_waiters_per_lock,
                max_waiters_total: settings.max_waiters_total,
                max_holders: settings.max_holders,
            },
            Moment::START,
        );
        Run {
            session: Session::new(
                store,
                Millis::from_secs(settings.max_ttl_secs),
                settings.batch,
                settings.max_line,
            ),
            clients: BTreeMap::new(),
            now: Moment::START,
            encoding,
            next_key: 0,
            max_line: settings.max_line,
        }
    }

    fn client(&mut self, name: &str) -> &mut Client {
        if !self.clients.contains_key(name) {
            let conn = Connection::new(self.max_line, self.next_key);
            self.next_key += 1;
            self.clients.insert(
                name.to_owned(),
                Client {
                    conn,
                    unread: Vec::new(),
                },
            );
        }
        self.clients.get_mut(name).expect("just inserted")
    }

    /// Client `name` sends `line` and a newline; the connection is served.
    fn send(&mut self, name: &str, line: &str, at: &str) {
        let mut bytes = match self.encoding {
            Encoding::Plain => line.as_bytes().to_vec(),
            Encoding::Table => codec::encode(line.as_bytes()).into_bytes(),
        };
        bytes.push(b'\n');
        let now = self.now;
        let Run {
            session, clients, ..
        } = self;
        let client = clients.get_mut(name).expect("client exists");
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let room = client.conn.read_buffer();
            let n = room.len().min(rest.len());
            room[..n].copy_from_slice(&rest[..n]);
            client.conn.received(n);
            rest = &rest[n..];
            loop {
                match client.conn.serve(session, now, usize::MAX) {
                    Served::Budget => continue,
                    Served::AllLines => break,
                    other => panic!("{at}: the connection stopped: {other:?}"),
                }
            }
        }
        self.end_turn();
    }

    /// What the reactor does after serving: expire, deliver completed waits,
    /// then the replies go out.
    fn end_turn(&mut self) {
        while self.session.store.expire(self.now, 4096) {}
        let mut done = Vec::new();
        self.session.completions(&mut done);
        for (key, completion) in done {
            if let Some(client) = self.clients.values_mut().find(|c| c.conn_key() == key) {
                client.conn.complete(&mut self.session, completion);
            }
        }
        for client in self.clients.values_mut() {
            let n = client.conn.unsent().len();
            client.unread.extend_from_slice(client.conn.unsent());
            client.conn.sent(n);
        }
    }

    /// The next reply line on `name`, decoded to plain JSON in the table run.
    fn next_reply(&mut self, name: &str, at: &str) -> String {
        let client = self.client(name);
        let Some(end) = client.unread.iter().position(|&b| b == b'\n') else {
            panic!(
                "{at}: no reply on {name} (unread: {:?})",
                String::from_utf8_lossy(&client.unread)
            );
        };
        let line: Vec<u8> = client.unread.drain(..=end).collect();
        let line = &line[..line.len() - 1];
        String::from_utf8_lossy(line).into_owned()
    }

    /// The expected line as it is on the wire in this run's encoding
    /// (`$VERSION` stands for the crate's version).
    fn wire(&self, expected: &str) -> String {
        let expected = &expected.replace("$VERSION", env!("CARGO_PKG_VERSION"));
        match self.encoding {
            Encoding::Plain => expected.to_owned(),
            Encoding::Table => codec::encode(expected.as_bytes()),
        }
    }
}

impl Client {
    fn conn_key(&self) -> usize {
        self.conn.key()
    }
}

/// Splits `line` into the connection it names (default `a`) and the rest
/// after `marker`, if it is such a command.
fn command<'l>(line: &'l str, marker: &str) -> Option<(&'l str, &'l str)> {
    let at = line.find(marker)?;
    let name = &line[..at];
    if !name.chars().all(|c| c.is_ascii_lowercase()) {
        return None;
    }
    let rest = &line[at + marker.len()..];
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    Some((if name.is_empty() { "a" } else { name }, rest))
}

fn run_script(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).expect("read script");
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut settings = Settings::default();
    let mut encodings = vec![Encoding::Plain, Encoding::Table];
    let mut body = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{file}:{}", n + 1);
        let trimmed = line.trim_end();
        if trimmed.trim_start().is_empty() || trimmed.trim_start().starts_with('#') {
            continue;
        }
        if let Some(which) = trimmed.strip_prefix("encodings:") {
            encodings = which
                .split_whitespace()
                .map(|e| match e {
                    "plain" => Encoding::Plain,
                    "table" => Encoding::Table,
                    _ => panic!("{at}: unknown encoding {e:?}"),
                })
                .collect();
        } else if let Some(pairs) = trimmed.strip_prefix("config:") {
            assert!(body.is_empty(), "{at}: config after the first step");
            for pair in pairs.split_whitespace() {
                let (key, value) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{at}: {pair:?} is not KEY=VALUE"));
                settings.set(key, value, &at);
            }
        } else {
            body.push((at, trimmed.to_owned()));
        }
    }
    assert!(!body.is_empty(), "{file}: an empty script");
    let mut steps = 0;
    for &encoding in &encodings {
        let mut run = Run::new(&settings, encoding);
        for (at, line) in &body {
            let at = format!("{at} ({encoding:?})");
            steps += 1;
            if let Some(ms) = line.strip_prefix('+') {
                let ms: u64 = ms
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{at}: bad time step"));
                run.now = run.now.after(Millis::new(ms));
                run.end_turn();
            } else if let Some((name, request)) = command(line, ">") {
                run.client(name);
                run.send(name, request, &at);
            } else if let Some((name, expected)) = command(line, "<") {
                let got = run.next_reply(name, &at);
                let want = run.wire(expected);
                assert_eq!(got, want, "{at}: the reply on {name}");
            } else if let Some((name, what)) = command(line, ":") {
                match what {
                    "quiet" => {
                        let unread = &run.client(name).unread;
                        assert!(
                            unread.is_empty(),
                            "{at}: {name} has a reply: {:?}",
                            String::from_utf8_lossy(unread)
                        );
                    }
                    "close" => {
                        let Run {
                            session, clients, ..
                        } = &mut run;
                        if let Some(client) = clients.get_mut(name) {
                            client.conn.withdraw_waits(session);
                        }
                        run.clients.remove(name);
                        run.end_turn();
                    }
                    _ => panic!("{at}: unknown command {what:?}"),
                }
            } else {
                panic!("{at}: not a command: {line:?}");
            }
        }
        for (name, client) in &run.clients {
            assert!(
                client.unread.is_empty(),
                "{file} ({encoding:?}): a reply on {name} that the script does not expect: {:?}",
                String::from_utf8_lossy(&client.unread)
            );
        }
    }
    steps
}

#[test]
fn golden_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/scripts")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 10, "the scripts are missing");
    let filter = std::env::var("SCRIPT").unwrap_or_default();
    for script in scripts {
        if !script.to_string_lossy().contains(&filter) {
            continue;
        }
        let steps = run_script(&script);
        assert!(steps > 0);
    }
}
