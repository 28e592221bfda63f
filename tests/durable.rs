//! Durable state (PROTOCOL.md, Durable state): a single server with
//! `--data-dir` killed with SIGKILL restarts holding exactly what it
//! acknowledged; a torn tail is dropped; a corrupt record stops start-up
//! with a message naming the file and offset; a cluster member that was
//! down catches up from its data directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cluster::TestCluster;
use common::{TestServer, put, request, status, temp_dir, token};

fn start(dir: &Path) -> TestServer {
    start_with(dir, &[])
}

fn start_with(dir: &Path, args: &[&str]) -> TestServer {
    let mut all = vec!["--data-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    TestServer::with_args(&all)
}

fn kill9(server: &mut TestServer) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(server.pid() as i32, libc::SIGKILL);
    }
    server
        .wait(std::time::Duration::from_secs(10))
        .expect("killed");
}

/// The log segment of a data directory.
fn segment(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .expect("a log segment")
}

/// Takes locks and items, and returns (lock name, token) pairs.
fn fill(server: &TestServer) -> Vec<(String, u64)> {
    let mut client = server.connect();
    let mut held = Vec::new();
    for n in 0..20 {
        let name = format!("lock{n}");
        let reply = client.call(&request("Lock", "owner", &name, "3600"));
        assert_eq!(status(&reply), "Locked", "{reply}");
        held.push((name, token(&reply)));
        let reply = client.call(&put(
            "owner",
            &format!("item{n}"),
            &format!("dmFs{n}"),
            "3600",
        ));
        assert_eq!(status(&reply), "Done", "{reply}");
    }
    let released = client.call(&request("Unlock", "owner", "lock19", "0"));
    assert_eq!(status(&released), "Unlocked");
    held.pop();
    held
}

fn check_kept(server: &TestServer, held: &[(String, u64)]) {
    let mut client = server.connect();
    for (name, tok) in held {
        let renewed = client.call(&request("Lock", "owner", name, "3600"));
        assert_eq!(token(&renewed), *tok, "{name}: {renewed}");
        let other = client.call(&request("Lock", "other", name, "3600"));
        assert_eq!(status(&other), "NotOwner", "{name}: {other}");
    }
    for n in 0..20 {
        let got = client.call(&request("Get", "owner", &format!("item{n}"), "0"));
        assert_eq!(got["DataStore"], format!("dmFs{n}"), "{got}");
    }
    let free = client.call(&request("Lock", "other", "lock19", "60"));
    assert_eq!(status(&free), "Locked", "the unlock was kept too: {free}");
    let max = held.iter().map(|&(_, t)| t).max().unwrap();
    assert!(token(&free) > max, "tokens go on growing: {free}");
}

#[test]
fn a_killed_server_restarts_with_every_acknowledged_lock_token_and_item() {
    let dir = temp_dir("durable");
    let mut server = start(&dir);
    let held = fill(&server);
    kill9(&mut server);
    let server = start(&dir);
    check_kept(&server, &held);
}

#[test]
fn a_killed_server_restarts_from_its_snapshot_and_the_log_after_it() {
    let dir = temp_dir("snapshot");
    let mut server = start_with(&dir, &["--snapshot-after", "7"]);
    let held = fill(&server);
    kill9(&mut server);
    let snapshots = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "snap")
        })
        .count();
    assert_eq!(snapshots, 1, "the log was compacted into one snapshot");
    let server = start_with(&dir, &["--snapshot-after", "7"]);
    check_kept(&server, &held);
}

#[test]
fn a_torn_tail_is_dropped_and_everything_before_it_kept() {
    let dir = temp_dir("torn");
    let mut server = start(&dir);
    let held = fill(&server);
    kill9(&mut server);
    // A write the kill cut short: the start of a record and nothing more.
    let path = segment(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 0xde, 0xad]);
    std::fs::write(&path, &bytes).unwrap();
    let server = start(&dir);
    check_kept(&server, &held);
    drop(server);
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(after >= len as u64, "nothing acknowledged was cut");
}

#[test]
fn a_corrupt_record_stops_start_up_naming_the_file_and_offset() {
    let dir = temp_dir("corrupt");
    let mut server = start(&dir);
    fill(&server);
    kill9(&mut server);
    let path = segment(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .args(["127.0.0.1", "0", "--log-dir"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(file), "names the file: {stderr}");
    assert!(stderr.contains("at byte "), "names the offset: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A member killed while the others go on comes back from its data
/// directory, catches up, and is then needed (another member killed): the
/// cluster keeps every lock, including those taken while it was down.
#[test]
fn a_killed_member_restarted_catches_up_from_its_data_dir() {
    // Compacting every 5 entries: what it missed reaches it as a snapshot.
    let fast = [
        "--heartbeat-ms",
        "50",
        "--commit-timeout",
        "2",
        "--snapshot-after",
        "5",
    ];
    let mut cluster = TestCluster::start(3, &fast);
    let leader = cluster.leader();
    let down = (leader + 1) % 3;
    let before = cluster.call_settled(leader, &request("Lock", "a", "before", "600"));
    cluster.kill(down);
    let mut more = Vec::new();
    for n in 0..20 {
        let name = format!("more{n}");
        let reply = cluster.call_settled(leader, &request("Lock", "c", &name, "600"));
        more.push((name, token(&reply)));
    }
    let during = cluster.call_settled(leader, &request("Lock", "b", "during", "600"));
    let stored = cluster.call_settled(leader, &put("b", "item", "eA==", "600"));
    assert_eq!(status(&stored), "Done");
    cluster.restart(down);
    let committed = cluster.stats(leader)["Committed"].as_u64().unwrap();
    cluster.wait_applied(down, committed);
    let third = (0..3).find(|&i| i != leader && i != down).unwrap();
    cluster.kill(third);
    for (id, name, reply) in [("a", "before", &before), ("b", "during", &during)] {
        let renewed = cluster.call_settled(down, &request("Lock", id, name, "600"));
        assert_eq!(token(&renewed), token(reply), "{name}: {renewed}");
    }
    let got = cluster.call_settled(down, &request("Get", "b", "item", "0"));
    assert_eq!(got["DataStore"], "eA==", "{got}");
    for (name, tok) in more {
        let renewed = cluster.call_settled(down, &request("Lock", "c", &name, "600"));
        assert_eq!(token(&renewed), tok, "{name}: {renewed}");
    }
}

/// Request origins never repeat across restarts even if the wall clock
/// stepped back: each run starts past the sequence block the last run
/// reserved in `DATA_DIR/sequence` (here set far ahead of the wall clock,
/// as a clock stepped back a year would leave it).
#[test]
fn sequence_numbers_start_past_the_last_run_whatever_the_wall_clock() {
    let dir = temp_dir("durable-sequence");
    let reserved = |dir: &Path| -> u64 {
        let text = std::fs::read_to_string(dir.join("sequence")).expect("the sequence file");
        text.trim().parse().expect("a number")
    };
    let mut server = start(&dir);
    let first = reserved(&dir);
    server.terminate();
    let ahead = first + (365 * 24 * 3600 * 1_000_000);
    std::fs::write(dir.join("sequence"), format!("{ahead}\n")).unwrap();
    let mut server = start(&dir);
    let mut client = server.connect();
    for n in 0..50 {
        let reply = client.call(&request("Lock", "w", &format!("s{n}"), "60"));
        assert_eq!(status(&reply), "Locked", "{reply}");
    }
    assert!(reserved(&dir) > ahead, "the new run reserved past {ahead}");
    server.terminate();
    std::fs::write(dir.join("sequence"), "not a number\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .args(["127.0.0.1", "0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sequence: not a number"), "{err}");
}
