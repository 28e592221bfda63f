//! Helpers for end-to-end tests: start the real server binary on
//! `127.0.0.1:0`, read back its port, and talk to it over TCP.

#![allow(dead_code)]

pub mod cluster;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a test waits for any single reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory under the system's temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("jdlm-{tag}-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Starts a server process whose first stdout line ends with the address it
/// listens on (`jackrabbit-dlm`, `lockfight ceiling`), and reads it back.
pub fn spawn_listening(command: &mut Command) -> (Child, SocketAddr) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read start-up line");
    let addr = first
        .split_whitespace()
        .last()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in start-up line {first:?}"));
    (child, addr)
}

/// A server running inside the test process, on a clock the test moves:
/// the real reactor over real sockets, for tests of TTLs and waits that
/// must not sleep. Stopped (and its thread joined) when dropped.
pub struct InProcess {
    pub addr: SocketAddr,
    pub clock: jackrabbit_dlm::server::ManualClock,
    control: jackrabbit_dlm::server::Control,
    thread: Option<std::thread::JoinHandle<()>>,
    pub dir: PathBuf,
}

impl InProcess {
    /// The server with default settings (log in a temp dir).
    pub fn start() -> InProcess {
        InProcess::with_args(&[])
    }

    /// The server with extra command-line options.
    pub fn with_args(args: &[&str]) -> InProcess {
        use jackrabbit_dlm::config::Config;
        use jackrabbit_dlm::server::{ManualClock, RunMode, Server};
        let dir = temp_dir("inproc");
        let mut argv = vec!["jackrabbit-dlm", "127.0.0.1", "0", "--log-dir"];
        let dir_text = dir.to_string_lossy().into_owned();
        argv.push(&dir_text);
        argv.extend_from_slice(args);
        let config = Config::from_args(argv).expect("valid test options");
        let clock = ManualClock::new();
        let server = Server::bind_with(&config, RunMode::in_process(clock.clone()))
            .expect("bind an in-process server");
        let addr = server.local_addr();
        let control = server.control();
        let thread = std::thread::spawn(move || {
            server.run().expect("the reactor runs");
        });
        InProcess {
            addr,
            clock,
            control,
            thread: Some(thread),
            dir,
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Lets `ms` milliseconds pass on the server's clock; it expires what is
    /// then due before it sleeps again.
    pub fn advance(&self, ms: u64) {
        self.clock.advance(jackrabbit_dlm::time::Millis::new(ms));
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("JackrabbitDLM.log")).unwrap_or_default()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.control.shutdown();
        // The shutdown grace runs on the server's clock: move it past.
        self.advance(60_000);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `jackrabbit-dlm` process, killed when dropped.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl TestServer {
    /// The server with default settings (log in a temp dir).
    pub fn start() -> TestServer {
        TestServer::with_args(&[])
    }

    /// The server with extra command-line options.
    pub fn with_args(args: &[&str]) -> TestServer {
        TestServer::spawn(args, None)
    }

    /// The server with extra options and, optionally, a limit on its open
    /// file descriptors (RLIMIT_NOFILE).
    pub fn spawn(args: &[&str], fd_limit: Option<u64>) -> TestServer {
        use std::os::unix::process::CommandExt;
        let dir = temp_dir("server");
        let mut command = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"));
        command
            .args(["127.0.0.1", "0", "--log-dir"])
            .arg(&dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(limit) = fd_limit {
            // SAFETY: setrlimit is async-signal-safe; the closure runs in the
            // child between fork and exec and touches nothing else.
            unsafe {
                command.pre_exec(move || {
                    let rlim = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let (child, addr) = spawn_listening(&mut command);
        TestServer { child, addr, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("JackrabbitDLM.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.wait(Duration::from_secs(10))
            .expect("server exits after SIGTERM")
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:") * 1024
    }

    /// CPU seconds (user + system) the server process has used.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at ')'.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of the whole line.
        let total = ticks(11) + ticks(12);
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        total as f64 / hz as f64
    }

    /// Open file descriptors of the server process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `VmXxx:` line of `/proc/PID/status`, in KiB.
pub fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One client connection with line-oriented helpers.
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to server");
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// A connection from the local address `source` (any of 127.0.0.0/8
    /// on Linux's loopback), as a client on another machine would come.
    pub fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> Client {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .expect("a socket");
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .expect("bind the source address");
        socket.connect(&addr.into()).expect("connect to server");
        let stream = TcpStream::from(socket);
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// The next reply line, without its newline; panics on timeout or EOF.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read reply");
        assert!(n > 0, "connection closed while waiting for a reply");
        assert!(line.ends_with('\n'), "reply without newline: {line:?}");
        line.pop();
        line
    }

    /// Sends one plain JSON line and returns the reply parsed.
    pub fn call(&mut self, request: &str) -> serde_json::Value {
        self.send(format!("{request}\n").as_bytes());
        let line = self.line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?} is not JSON: {e}"))
    }

    /// Sends one request line table-encoded and returns the decoded reply.
    pub fn call_encoded(&mut self, request: &str) -> serde_json::Value {
        let line = jackrabbit_dlm::protocol::codec::encode(request.as_bytes());
        self.send(format!("{line}\n").as_bytes());
        let reply = self.line();
        let plain = jackrabbit_dlm::protocol::codec::decode(reply.as_bytes())
            .unwrap_or_else(|e| panic!("reply {reply:?} is not table-encoded: {e}"));
        serde_json::from_slice(&plain).expect("decoded reply is JSON")
    }

    /// Sends one request line in `encoding` and returns the reply, decoded
    /// and parsed.
    pub fn call_in(
        &mut self,
        encoding: jackrabbit_dlm::protocol::codec::Encoding,
        request: &str,
    ) -> serde_json::Value {
        match encoding {
            jackrabbit_dlm::protocol::codec::Encoding::Plain => self.call(request),
            jackrabbit_dlm::protocol::codec::Encoding::Table => self.call_encoded(request),
        }
    }

    /// Sends `line` and a newline without waiting for a reply.
    pub fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\n").as_bytes());
    }

    /// The next reply line (plain JSON), parsed.
    pub fn reply(&mut self) -> serde_json::Value {
        let line = self.line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?} is not JSON: {e}"))
    }

    /// True when the server closed the connection (EOF or reset) within the timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// The `Status` of a reply, or `<none>`.
pub fn status(reply: &serde_json::Value) -> &str {
    reply["Status"].as_str().unwrap_or("<none>")
}

/// The `Token` of a `Locked` reply.
pub fn token(reply: &serde_json::Value) -> u64 {
    reply["Token"].as_u64().expect("Token")
}

/// A `Lock` with `Wait`, as a plain line.
pub fn lock_wait(id: &str, name: &str, expire: &str, wait: &str) -> String {
    serde_json::json!({"ID": id, "FileName": name, "Action": "Lock", "Expire": expire, "Wait": wait})
        .to_string()
}

/// A `Stats` request line.
pub fn stats_request() -> String {
    request("Stats", "t", "t", "0")
}

/// A request line as the Python client builds it.
pub fn request(action: &str, id: &str, name: &str, expire: &str) -> String {
    serde_json::json!({"ID": id, "FileName": name, "Action": action, "Expire": expire}).to_string()
}

/// A Put request line.
pub fn put(id: &str, name: &str, data: &str, expire: &str) -> String {
    serde_json::json!({"ID": id, "FileName": name, "Action": "Put", "Expire": expire, "DataStore": data})
        .to_string()
}

/// Asks `Stats` until `check` accepts it or `limit` passes; returns the
/// last. For waiting until the server has seen something (a request
/// parked, a connection closed) that no reply reports.
pub fn stats_until(
    client: &mut Client,
    limit: Duration,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let stats = client.call(&stats_request());
        if check(&stats) || start.elapsed() > limit {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks Stats until `n` requests are parked (`Waited` counts them): for
/// tests that must know a waiter is queued before they go on.
pub fn wait_for_parked(server: &InProcess, n: u64) {
    let mut probe = server.connect();
    let stats = stats_until(&mut probe, Duration::from_secs(10), |s| {
        s["Waited"].as_u64() >= Some(n)
    });
    assert!(stats["Waited"].as_u64() >= Some(n), "{stats}");
}

/// Reads a whole file into a string, or empty.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
