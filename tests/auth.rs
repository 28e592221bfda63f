//! PROTOCOL.md, Authentication, end to end: the real server with an
//! identity directory, over TCP.

mod common;

use common::{InProcess, TestServer, status};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

fn secret(c: char) -> String {
    std::iter::repeat_n(c, 1364).collect()
}

fn write_identity(dir: &Path, name: &str, identity: &str, max_size: Option<u64>) {
    let mut file = json!({"Identity": identity});
    if let Some(max) = max_size {
        file["MaxSize"] = json!(max);
    }
    std::fs::write(dir.join(format!("{name}.cfg")), file.to_string()).unwrap();
}

/// A request line with `Name` and `Identity`.
fn named(action: &str, id: &str, file: &str, expire: &str, name: &str, identity: &str) -> String {
    json!({"ID": id, "FileName": file, "Action": action, "Expire": expire,
           "Name": name, "Identity": identity})
    .to_string()
}

fn anonymous(action: &str, id: &str, file: &str, expire: &str) -> String {
    common::request(action, id, file, expire)
}

fn server_with(dir: &Path, extra: &[&str]) -> TestServer {
    let mut args = vec!["--identity-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    TestServer::with_args(&args)
}

#[test]
fn a_valid_identity_authenticates_and_anything_else_is_bad_payload() {
    let dir = common::temp_dir("ids");
    let s = secret('s');
    write_identity(&dir, "svc", &s, None);
    let server = server_with(&dir, &[]);
    let mut c = server.connect();
    let ok = c.call(&named("Lock", "w1", "jobs", "30", "svc", &s));
    assert_eq!(status(&ok), "Locked", "{ok}");
    let wrong = secret('t');
    let short = &s[..s.len() - 1];
    let bad: Vec<String> = vec![
        named("Lock", "w1", "x", "30", "svc", &wrong),
        named("Lock", "w1", "x", "30", "svc", short),
        named("Lock", "w1", "x", "30", "nobody", &s),
        named("Lock", "w1", "x", "30", "../svc", &s),
        named("Lock", "w1", "x", "30", "a/b", &s),
        named("Lock", "w1", "x", "30", ".svc", &s),
        named("Lock", "w1", "x", "30", &"n".repeat(300), &s),
        json!({"ID":"w1","FileName":"x","Action":"Lock","Expire":"30","Name":"svc"}).to_string(),
        json!({"ID":"w1","FileName":"x","Action":"Lock","Expire":"30","Name":7,"Identity":s})
            .to_string(),
    ];
    for line in &bad {
        assert_eq!(
            c.call(line),
            json!({"Status": "BadPayload"}),
            "{:.80}",
            line
        );
    }
    // The same in the table encoding.
    assert_eq!(status(&c.call_encoded(&bad[0])), "BadPayload");
    let stats = c.call(&common::stats_request());
    assert_eq!(stats["AuthFailed"].as_u64(), Some(bad.len() as u64 + 1));
    // The log has neither the Identity nor the Name.
    drop(c);
    let log = server.log_text();
    assert!(!log.contains(&s[..64]) && !log.contains("svc"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn entries_are_bound_to_their_id_and_their_name() {
    let dir = common::temp_dir("ids");
    let (s, t) = (secret('s'), secret('t'));
    write_identity(&dir, "svc", &s, None);
    write_identity(&dir, "other", &t, None);
    let server = server_with(&dir, &[]);
    let mut c = server.connect();
    assert_eq!(
        status(&c.call(&named("Lock", "w1", "jobs", "30", "svc", &s))),
        "Locked"
    );
    // The same ID without a Name, or with another Name, is not the owner.
    assert_eq!(
        status(&c.call(&anonymous("Unlock", "w1", "jobs", "0"))),
        "NotOwner"
    );
    assert_eq!(
        status(&c.call(&named("Unlock", "w1", "jobs", "0", "other", &t))),
        "NotOwner"
    );
    assert_eq!(
        status(&c.call(&named("TestLock", "w1", "jobs", "0", "svc", &s))),
        "Locked"
    );
    assert_eq!(
        status(&c.call(&named("Unlock", "w1", "jobs", "0", "svc", &s))),
        "Unlocked"
    );
    // An anonymous entry answers NotOwner to a request that carries a Name.
    assert_eq!(
        status(&c.call(&anonymous("Lock", "w2", "anon", "30"))),
        "Locked"
    );
    assert_eq!(
        status(&c.call(&named("Unlock", "w2", "anon", "0", "svc", &s))),
        "NotOwner"
    );
    // Data too.
    let put = json!({"ID":"w1","FileName":"cfg","Action":"Put","Expire":"30","DataStore":"v",
                     "Name":"svc","Identity":s})
    .to_string();
    assert_eq!(status(&c.call(&put)), "Done");
    assert_eq!(
        status(&c.call(&anonymous("Get", "w1", "cfg", "0"))),
        "NotOwner"
    );
    let got = c.call(&named("Get", "w1", "cfg", "0", "svc", &s));
    assert_eq!(got["DataStore"], "v");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn anonymous_limits_and_max_size() {
    let dir = common::temp_dir("ids");
    let s = secret('s');
    write_identity(&dir, "svc", &s, Some(8));
    let server = server_with(
        &dir,
        &["--anonymous-max-ttl", "60", "--anonymous-max-value", "4"],
    );
    let mut c = server.connect();
    assert_eq!(
        status(&c.call(&anonymous("Lock", "a", "x", "60"))),
        "Locked"
    );
    assert_eq!(
        status(&c.call(&anonymous("Lock", "a", "y", "61"))),
        "BadPayload"
    );
    let put = |data: &str, auth: bool| {
        let file = if auth { "named" } else { "anonymous" };
        let mut line =
            json!({"ID":"a","FileName":file,"Action":"Put","Expire":"5","DataStore":data});
        if auth {
            line["Name"] = json!("svc");
            line["Identity"] = json!(s);
        }
        line.to_string()
    };
    assert_eq!(status(&c.call(&put("1234", false))), "Done");
    assert_eq!(status(&c.call(&put("12345", false))), "BadPayload");
    assert_eq!(status(&c.call(&put("12345678", true))), "Done");
    assert_eq!(status(&c.call(&put("123456789", true))), "BadPayload");
    assert_eq!(
        status(&c.call(&named("Lock", "a", "z", "3600", "svc", &s))),
        "Locked"
    );
    let stats: Value = c.call(&common::stats_request());
    assert_eq!(stats["AuthFailed"], 3);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_directory_is_read_again_when_it_changes() {
    let dir = common::temp_dir("ids");
    // A malformed file is no identity.
    std::fs::write(dir.join("broken.cfg"), "{not json").unwrap();
    std::fs::write(dir.join("short.cfg"), json!({"Identity":"abc"}).to_string()).unwrap();
    // In-process, on a clock the test moves: the directory is looked at in
    // the once-a-second sweep.
    let server = InProcess::with_args(&["--identity-dir", dir.to_str().unwrap()]);
    let mut c = server.connect();
    for name in ["broken", "short"] {
        assert_eq!(
            status(&c.call(&named("Lock", "w", name, "5", name, "abc"))),
            "BadPayload"
        );
    }
    let s = secret('s');
    let lock = named("Lock", "w", "late", "5", "late", &s);
    assert_eq!(status(&c.call(&lock)), "BadPayload");
    write_identity(&dir, "late", &s, None);
    assert_eq!(status(&c.call(&lock)), "BadPayload", "not before the sweep");
    server.advance(1000);
    // The turn that answers this one ends with the sweep (if the wake-up's
    // turn did not already run it): the next request comes after it.
    assert_eq!(
        status(&c.call(&anonymous("Version", "w", "v", "0"))),
        "Version"
    );
    assert_eq!(status(&c.call(&lock)), "Locked", "a new file is noticed");
    let _ = std::fs::remove_dir_all(dir);
}

/// The server's `-v` diagnostics, line by line, from a thread that keeps
/// its stderr drained.
fn diagnostics(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr");
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// The next diagnostic line that says how many identities were read.
fn next_reading(lines: &std::sync::mpsc::Receiver<String>) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the server said it read the identities");
        if line.contains(" identities") {
            return line;
        }
    }
}

#[test]
fn sighup_reads_the_directory_at_once() {
    let dir = common::temp_dir("ids");
    let s = secret('s');
    write_identity(&dir, "late", &s, None);
    let log_dir = common::temp_dir("ids-log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"));
    command
        .args(["127.0.0.1", "0", "-v", "--identity-dir"])
        .arg(&dir)
        .arg("--log-dir")
        .arg(&log_dir)
        .stderr(std::process::Stdio::piped());
    let (mut child, addr) = common::spawn_listening(&mut command);
    let lines = diagnostics(&mut child);
    assert!(next_reading(&lines).contains(": 1 identities"));
    let mut c = common::Client::connect(addr);
    assert_eq!(
        status(&c.call(&named("Lock", "w", "a", "5", "late", &s))),
        "Locked"
    );
    // Changed in place, same size, its time stamp put back: only SIGHUP can
    // tell the server.
    let path = dir.join("late.cfg");
    let stamp = std::fs::metadata(&path).unwrap().modified().unwrap();
    let t = secret('t');
    write_identity(&dir, "late", &t, None);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(stamp)
        .unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGHUP);
    }
    assert!(next_reading(&lines).contains(": 1 identities"));
    assert_eq!(
        status(&c.call(&named("Lock", "w", "b", "5", "late", &t))),
        "Locked"
    );
    assert_eq!(
        status(&c.call(&named("Lock", "w", "c", "5", "late", &s))),
        "BadPayload",
        "the old Identity no longer works"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(log_dir);
}

#[test]
fn without_an_identity_directory_names_are_ignored() {
    let server = TestServer::start();
    let mut c = server.connect();
    assert_eq!(
        status(&c.call(&named("Lock", "w1", "x", "30", "svc", "whatever"))),
        "Locked"
    );
    assert_eq!(
        status(&c.call(&anonymous("Unlock", "w1", "x", "0"))),
        "Unlocked"
    );
}

#[test]
fn an_unreadable_identity_directory_stops_start_up_with_a_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .args([
            "127.0.0.1",
            "0",
            "--identity-dir",
            "/no/such/dir",
            "--log-dir",
        ])
        .arg(common::temp_dir("ids-log"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
}
