//! Running the server as a service, against the real binary: `READY=1` on
//! `NOTIFY_SOCKET` (systemd's `Type=notify`), socket activation (the
//! listening socket passed as fd 3 with `LISTEN_FDS`/`LISTEN_PID`), options
//! from `JACKRABBIT_DLM_<NAME>` variables, and the generated man pages and
//! completions.

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Client, request, temp_dir};

const PATIENCE: Duration = Duration::from_secs(10);

fn server_command(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"));
    command
        .arg("--log-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Kills the child when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The last word of each of the child's first `n` stdout lines.
fn first_lines(child: &mut std::process::Child, n: usize) -> Vec<String> {
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .lines()
        .take(n)
        .map(|l| {
            let l = l.expect("start-up line");
            l.split_whitespace().last().unwrap_or("").to_owned()
        })
        .collect()
}

#[test]
fn ready_is_sent_to_notify_socket_after_bind() {
    let dir = temp_dir("notify");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut command = server_command(&dir);
    command
        .args(["127.0.0.1", "0"])
        .env("NOTIFY_SOCKET", &socket_path);
    let mut server = Running(command.spawn().expect("start the server"));
    let mut buf = [0u8; 256];
    let n = socket
        .recv(&mut buf)
        .expect("a notification from the server");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        message.lines().any(|l| l == "READY=1"),
        "notification {message:?}"
    );
    // Sent after bind: the address it prints is already served.
    let addr = first_lines(&mut server.0, 1)[0].parse().expect("address");
    let mut client = Client::connect(addr);
    assert_eq!(
        client.call(&request("Version", "t", "t", "0"))["Status"],
        "Version"
    );
    // SIGTERM: STOPPING=1 as shutdown begins.
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(i32::try_from(server.0.id()).unwrap(), libc::SIGTERM);
    }
    let n = socket.recv(&mut buf).expect("a second notification");
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "STOPPING=1");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The server run as systemd runs a socket-activated service: `fd` as fd 3,
/// `LISTEN_FDS=1`, and `LISTEN_PID` the server's own pid. The pid is known
/// only after fork and `Command` fixes the environment before it, so a
/// shell sets it and `exec`s the server, which keeps the shell's pid.
fn activated(dir: &std::path::Path, fd: std::os::fd::RawFd, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .arg("--log-dir")
        .arg(dir)
        .args(args)
        .env("LISTEN_FDS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: between fork and exec the closure calls only dup2 and fcntl,
    // which are async-signal-safe, on descriptors this process owns.
    unsafe {
        command.pre_exec(move || {
            let rc = if fd == 3 {
                // Already fd 3: clear close-on-exec.
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

#[test]
fn socket_activation_serves_the_passed_listener() {
    let dir = temp_dir("activation");
    // The listener systemd would create; the server is told port 1, which
    // it must not try to bind.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().unwrap();
    let command = &mut activated(&dir, listener.as_raw_fd(), &["127.0.0.1", "1"]);
    let mut server = Running(command.spawn().expect("start the server"));
    let printed: std::net::SocketAddr = first_lines(&mut server.0, 1)[0].parse().expect("address");
    assert_eq!(printed, addr, "the server serves the socket it was passed");
    drop(listener);
    let mut client = Client::connect(addr);
    assert_eq!(
        client.call(&request("Lock", "a", "activated", "60"))["Status"],
        "Locked"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socket_activation_refuses_a_descriptor_that_is_not_a_listener() {
    let dir = temp_dir("activation-bad");
    let file = std::fs::File::open("/dev/null").unwrap();
    let output = activated(&dir, file.as_raw_fd(), &["127.0.0.1", "0"])
        .stderr(Stdio::piped())
        .output()
        .expect("run the server");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fd 3 is not"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn options_come_from_the_environment() {
    let dir = temp_dir("env");
    let mut command = server_command(&dir);
    command
        .env("JACKRABBIT_DLM_HOST", "127.0.0.1")
        .env("JACKRABBIT_DLM_PORT", "0")
        .env("JACKRABBIT_DLM_METRICS", "127.0.0.1:0")
        .env("JACKRABBIT_DLM_MAX_CONNECTIONS", "33")
        // The command line wins over the environment.
        .env("JACKRABBIT_DLM_MAX_MEMORY", "1")
        .args(["--max-memory", "4000000"]);
    let mut server = Running(command.spawn().expect("start the server"));
    let words = first_lines(&mut server.0, 2);
    let metrics = words[1]
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&metrics).expect("metrics port");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("send");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("answer");
    assert!(
        body.contains("\njackrabbit_dlm_connections_max 33\n"),
        "{body}"
    );
    assert!(
        body.contains("\njackrabbit_dlm_memory_limit_bytes 4000000\n"),
        "{body}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_names_the_variables() {
    let output = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for var in ["JACKRABBIT_DLM_MAX_LINE", "JACKRABBIT_DLM_METRICS_TIMEOUT"] {
        assert!(help.contains(&format!("[env: {var}=")), "{var}: {help}");
    }
}

#[test]
fn man_pages_and_completions_are_generated() {
    let server = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .arg("--generate-man")
        .output()
        .unwrap();
    assert!(server.status.success());
    let page = String::from_utf8_lossy(&server.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH jackrabbit-dlm 1"),
        "{page}"
    );
    assert!(page.contains("JACKRABBIT_DLM_METRICS"), "{page}");

    let dlm = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dlm"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "dlm {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let page = dlm(&["generate", "man"]);
    assert!(page.contains(".TH dlm 1"), "{page}");
    assert!(page.contains("run"), "{page}");
    let bash = dlm(&["generate", "completions", "bash"]);
    assert!(bash.contains("complete") && bash.contains("dlm"), "{bash}");
    for shell in ["zsh", "fish"] {
        assert!(!dlm(&["generate", "completions", shell]).is_empty());
    }
    // Hidden: not in dlm's help.
    assert!(!dlm(&["--help"]).contains("generate"));
}
