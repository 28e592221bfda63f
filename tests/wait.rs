//! The `Wait` extension end to end: parked `Lock` requests, FIFO hand-off,
//! time-outs, closed waiters, and reply order on a connection. The reactor
//! runs in-process on a clock the test moves: TTLs and waits run out when
//! the test says, and every test checks that its waiters were really parked.

mod common;

use common::{Client, InProcess, lock_wait, request, stats_request, stats_until, wait_for_parked};
use serde_json::Value;
use std::time::Duration;

#[test]
fn a_hundred_waiters_are_granted_in_arrival_order() {
    let server = InProcess::start();
    let mut holder = server.connect();
    assert_eq!(
        holder.call(&request("Lock", "holder", "hot", "60"))["Status"],
        "Locked"
    );
    let mut waiters: Vec<Client> = Vec::new();
    for i in 0..100 {
        let mut c = server.connect();
        c.send_line(&lock_wait(&format!("w{i}"), "hot", "60", "60"));
        // Arrival order is the order the server read them: wait until this
        // one is parked before sending the next.
        wait_for_parked(&server, i + 1);
        waiters.push(c);
    }
    holder.call(&request("Unlock", "holder", "hot", "0"));
    let mut last_token = 0;
    for (i, c) in waiters.iter_mut().enumerate() {
        let granted = c.reply();
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
    let server = InProcess::start();
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "0.3"));
    let mut waiter = server.connect();
    waiter.send_line(&lock_wait("w", "x", "30", "30"));
    wait_for_parked(&server, 1);
    server.advance(300);
    let granted = waiter.reply();
    assert_eq!(granted["Status"], "Locked");
    assert_eq!(granted["ID"], "w");
    assert_eq!(
        holder.call(&request("TestLock", "holder", "x", "0"))["Status"],
        "NotOwner"
    );
}

#[test]
fn a_waiter_times_out_with_not_owner_and_others_keep_their_place() {
    let server = InProcess::start();
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "60"));
    let mut short = server.connect();
    short.send_line(&lock_wait("short", "x", "30", "0.3"));
    wait_for_parked(&server, 1);
    let mut long = server.connect();
    long.send_line(&lock_wait("long", "x", "30", "60"));
    wait_for_parked(&server, 2);
    server.advance(300);
    assert_eq!(short.reply(), serde_json::json!({"Status": "NotOwner"}));
    let stats = server.connect().call(&stats_request());
    assert_eq!(stats["WaitTimeout"], 1);
    holder.call(&request("Unlock", "holder", "x", "0"));
    assert_eq!(long.reply()["ID"], "long");
}

#[test]
fn a_closed_waiter_is_skipped() {
    let server = InProcess::start();
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "60"));
    let mut gone = server.connect();
    gone.send_line(&lock_wait("gone", "x", "30", "60"));
    wait_for_parked(&server, 1);
    let mut next = server.connect();
    next.send_line(&lock_wait("next", "x", "30", "60"));
    wait_for_parked(&server, 2);
    drop(gone);
    // The server answers a withdrawn wait NotOwner (to nobody): once it has,
    // it has seen the close.
    let mut probe = server.connect();
    let stats = stats_until(&mut probe, Duration::from_secs(10), |s| {
        s["NotOwner"].as_u64() >= Some(1)
    });
    assert_eq!(stats["NotOwner"], 1, "{stats}");
    holder.call(&request("Unlock", "holder", "x", "0"));
    assert_eq!(next.reply()["ID"], "next");
    let owner = server
        .connect()
        .call(&request("TestLock", "next", "x", "0"));
    assert_eq!(owner["Status"], "Locked");
}

#[test]
fn a_pipelined_request_behind_a_parked_one_is_answered_after_it() {
    let server = InProcess::start();
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
    let stats = server.connect().call(&stats_request());
    assert_eq!(stats["ALock"], 2);
    holder.call(&request("Unlock", "holder", "x", "0"));
    let first = client.reply();
    assert_eq!(
        (first["Status"].as_str(), first["ID"].as_str()),
        (Some("Locked"), Some("w"))
    );
    assert_eq!(client.reply()["Status"], "Version");
    assert_eq!(client.reply()["Status"], "Locked");
}

#[test]
fn waiting_in_the_table_encoding() {
    let server = InProcess::start();
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "0.2"));
    let mut waiter = server.connect();
    let line = jackrabbit_dlm::protocol::codec::encode(lock_wait("w", "x", "30", "30").as_bytes());
    waiter.send(format!("{line}\n").as_bytes());
    wait_for_parked(&server, 1);
    server.advance(200);
    let reply = waiter.line();
    let plain = jackrabbit_dlm::protocol::codec::decode(reply.as_bytes()).expect("table-encoded");
    let granted: Value = serde_json::from_slice(&plain).expect("JSON");
    assert_eq!(granted["Status"], "Locked");
    assert_eq!(granted["ID"], "w");
}

#[test]
fn same_id_as_holder_and_wait_zero_are_answered_at_once() {
    let server = InProcess::start();
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
    let server = InProcess::with_args(&["--max-ttl", "100"]);
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
    let server = InProcess::with_args(&["--max-waiters", "2"]);
    let mut holder = server.connect();
    holder.call(&request("Lock", "holder", "x", "60"));
    let mut parked: Vec<Client> = Vec::new();
    for i in 0..2 {
        let mut c = server.connect();
        c.send_line(&lock_wait(&format!("w{i}"), "x", "30", "60"));
        wait_for_parked(&server, i + 1);
        parked.push(c);
    }
    let mut third = server.connect();
    assert_eq!(
        third.call(&lock_wait("w2", "x", "30", "60"))["Status"],
        "NotOwner"
    );
}
