//! PROTOCOL.md, Authentication, end to end: the real server with an
//! identity directory, over TCP.

mod common;

use common::{TestServer, status};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

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

/// Asks until `line` is answered `want` or ten seconds pass.
fn answered_within(c: &mut common::Client, line: &str, want: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if status(&c.call(line)) == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_directory_is_read_again_when_it_changes_and_on_sighup() {
    let dir = common::temp_dir("ids");
    // A malformed file is no identity.
    std::fs::write(dir.join("broken.cfg"), "{not json").unwrap();
    std::fs::write(dir.join("short.cfg"), json!({"Identity":"abc"}).to_string()).unwrap();
    let server = server_with(&dir, &[]);
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
    assert!(
        answered_within(&mut c, &lock, "Locked"),
        "a new file is noticed"
    );
    // Changed in place and announced by SIGHUP: the old Identity stops working.
    let t = secret('t');
    write_identity(&dir, "late", &t, None);
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(i32::try_from(server.pid()).unwrap(), libc::SIGHUP);
    }
    let relock = named("Lock", "w", "late2", "5", "late", &t);
    assert!(
        answered_within(&mut c, &relock, "Locked"),
        "re-read on SIGHUP"
    );
    assert_eq!(
        status(&c.call(&named("Lock", "w", "late3", "5", "late", &s))),
        "BadPayload"
    );
    let _ = std::fs::remove_dir_all(dir);
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
