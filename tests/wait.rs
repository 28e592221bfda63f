//! The `Wait` extension end to end: parked `Lock` requests, FIFO hand-off,
//! time-outs, closed waiters, and reply order on a connection.

mod common;

use common::{Client, TestServer, request, stats_until};
use serde_json::Value;
use std::time::Duration;

fn lock_wait(id: &str, name: &str, expire: &str, wait: &str) -> String {
    serde_json::json!({"ID": id, "FileName": name, "Action": "Lock", "Expire": expire, "Wait": wait})
        .to_string()
}

fn send_line(client: &mut Client, line: &str) {
    client.send(format!("{line}\n").as_bytes());
}

fn reply(client: &mut Client) -> Value {
    serde_json::from_str(&client.line()).expect("JSON reply")
}

/// Polls Stats until `n` requests are parked (Waited counts them).
fn wait_for_parked(server: &TestServer, n: u64) {
    let mut probe = server.connect();
    let stats = stats_until(&mut probe, Duration::from_secs(10), |s| {
        s["Waited"].as_u64() >= Some(n)
    });
    assert!(stats["Waited"].as_u64() >= Some(n), "{stats}");
}

#[test]
fn a_hundred_waiters_are_granted_in_arrival_order() {
    let server = TestServer::start();
    let mut holder = server.connect();
    assert_eq!(
        holder.call(&request("Lock", "holder", "hot", "60"))["Status"],
        "Locked"
    );
    let mut waiters: Vec<Client> = Vec::new();
    for i in 0..100 {
        let mut c = server.connect();
        send_line(&mut c, &lock_wait(&format!("w{i}"), "hot", "60", "60"));
        // Arrival order is the order the server read them: wait until this
        // one is parked before sending the next.
        wait_for_parked(&server, i + 1);
        waiters.push(c);
    }
    holder.call(&request("Unlock", "holder", "hot", "0"));
    let mut last_token = 0;
    for (i, c) in waiters.iter_mut().enumerate() {
        let granted = reply(c);
        assert_eq!(granted["Status"], "Locked", "waiter {i}");
        assert_eq!(granted["ID"], format!("w{i}"));
        let token = granted["Token"].as_u64().unwrap();
        assert!(token > last_token);
        last_token = token;
        // Nobody else holds it now: the next waiter is still waiting.
        let unlocked = c.call(&request("Unlock", &format!("w{i}"), "hot", "0"));
        assert_eq!(unlocked["Status"], "Unlocked");
    }
}

#[test]
fn expiry_of_the_holder_grants_the_first_waiter_without_any_request() {
    let server = TestServer::start();
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "0.3"));
    let mut waiter = server.connect();
    send_line(&mut waiter, &lock_wait("w", "x", "30", "30"));
    let granted = reply(&mut waiter);
    assert_eq!(granted["Status"], "Locked");
    assert_eq!(granted["ID"], "w");
    assert_eq!(
        holder.call(&request("TestLock", "holder", "x", "0"))["Status"],
        "NotOwner"
    );
}

#[test]
fn a_waiter_times_out_with_not_owner_and_others_keep_their_place() {
    let server = TestServer::start();
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "60"));
    let mut short = server.connect();
    send_line(&mut short, &lock_wait("short", "x", "30", "0.3"));
    wait_for_parked(&server, 1);
    let mut long = server.connect();
    send_line(&mut long, &lock_wait("long", "x", "30", "60"));
    assert_eq!(reply(&mut short), serde_json::json!({"Status": "NotOwner"}));
    let stats = server.connect().call(&request("Stats", "a", "b", "0"));
    assert_eq!(stats["WaitTimeout"], 1);
    holder.call(&request("Unlock", "holder", "x", "0"));
    assert_eq!(reply(&mut long)["ID"], "long");
}

#[test]
fn a_closed_waiter_is_skipped() {
    let server = TestServer::start();
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "60"));
    let mut gone = server.connect();
    send_line(&mut gone, &lock_wait("gone", "x", "30", "60"));
    wait_for_parked(&server, 1);
    let mut next = server.connect();
    send_line(&mut next, &lock_wait("next", "x", "30", "60"));
    wait_for_parked(&server, 2);
    drop(gone);
    // Let the server see the close before the release.
    std::thread::sleep(Duration::from_millis(100));
    holder.call(&request("Unlock", "holder", "x", "0"));
    assert_eq!(reply(&mut next)["ID"], "next");
    let owner = server
        .connect()
        .call(&request("TestLock", "next", "x", "0"));
    assert_eq!(owner["Status"], "Locked");
}

#[test]
fn a_pipelined_request_behind_a_parked_one_is_answered_after_it() {
    let server = TestServer::start();
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "60"));
    let mut client = server.connect();
    client.send(
        format!(
            "{}\n{}\n{}\n",
            lock_wait("w", "x", "30", "60"),
            request("Version", "w", "v", "0"),
            request("Lock", "w", "other", "30"),
        )
        .as_bytes(),
    );
    wait_for_parked(&server, 1);
    // The Version and the second Lock were applied but are held back.
    let stats = server.connect().call(&request("Stats", "a", "b", "0"));
    assert_eq!(stats["ALock"], 2);
    holder.call(&request("Unlock", "holder", "x", "0"));
    let first = reply(&mut client);
    assert_eq!(
        (first["Status"].as_str(), first["ID"].as_str()),
        (Some("Locked"), Some("w"))
    );
    assert_eq!(reply(&mut client)["Status"], "Version");
    assert_eq!(reply(&mut client)["Status"], "Locked");
}

#[test]
fn waiting_in_the_table_encoding() {
    let server = TestServer::start();
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "0.2"));
    let mut waiter = server.connect();
    let granted = waiter.call_encoded(&lock_wait("w", "x", "30", "30"));
    assert_eq!(granted["Status"], "Locked");
    assert_eq!(granted["ID"], "w");
}

#[test]
fn same_id_as_holder_and_wait_zero_are_answered_at_once() {
    let server = TestServer::start();
    let mut c = server.connect();
    c.call(&request("Lock", "me", "x", "60"));
    assert_eq!(
        c.call(&lock_wait("me", "x", "60", "30"))["Status"],
        "Locked"
    );
    assert_eq!(
        c.call(&lock_wait("you", "x", "60", "0"))["Status"],
        "NotOwner"
    );
}

#[test]
fn bad_wait_values_are_bad_payload() {
    let server = TestServer::with_args(&["--max-ttl", "100"]);
    let mut c = server.connect();
    for w in [
        "\"-1\"", "\"nan\"", "\"inf\"", "\"abc\"", "\"101\"", "null", "[]",
    ] {
        let line =
            format!(r#"{{"ID":"a","FileName":"x","Action":"Lock","Expire":"1","Wait":{w}}}"#);
        assert_eq!(c.call(&line)["Status"], "BadPayload", "{w}");
    }
}

#[test]
fn max_waiters_per_lock_answers_not_owner_at_once() {
    let server = TestServer::with_args(&["--max-waiters", "2"]);
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "60"));
    let mut parked: Vec<Client> = Vec::new();
    for i in 0..2 {
        let mut c = server.connect();
        send_line(&mut c, &lock_wait(&format!("w{i}"), "x", "30", "60"));
        wait_for_parked(&server, i + 1);
        parked.push(c);
    }
    let mut third = server.connect();
    assert_eq!(
        third.call(&lock_wait("w2", "x", "30", "60"))["Status"],
        "NotOwner"
    );
}
