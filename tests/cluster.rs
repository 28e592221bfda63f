//! A cluster of three real processes on loopback (PROTOCOL.md, Cluster):
//! every node answers, in both encodings; a killed or paused leader is
//! replaced without losing an acknowledged lock, item or token; a majority
//! down is `Unavailable`, never a wrong answer.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::cluster::TestCluster;
use common::{put, request, status, token};
use jackrabbit_dlm::protocol::codec::Encoding;

/// Quick elections (0.5 to 1 s) and a short commit timeout keep tests short.
const FAST: &[&str] = &["--heartbeat-ms", "50", "--commit-timeout", "2"];

#[test]
fn every_node_answers_for_the_cluster_in_both_encodings() {
    let cluster = TestCluster::start(3, FAST);
    cluster.leader();
    for (n, encoding) in [Encoding::Plain, Encoding::Table].into_iter().enumerate() {
        let lock = format!("door{n}");
        let mut a = cluster.client(0);
        let mut b = cluster.client(1);
        let mut c = cluster.client(2);
        let held = a.call_in(encoding, &request("Lock", "alice", &lock, "60"));
        assert_eq!(status(&held), "Locked", "{held}");
        let first = token(&held);
        let refused = b.call_in(encoding, &request("Lock", "bob", &lock, "60"));
        assert_eq!(status(&refused), "NotOwner", "{refused}");
        let tested = c.call_in(encoding, &request("TestLock", "alice", &lock, "0"));
        assert_eq!(status(&tested), "Locked", "{tested}");
        let renewed = c.call_in(encoding, &request("Lock", "alice", &lock, "60"));
        assert_eq!(token(&renewed), first, "a renewal keeps its token");
        let item = format!("key{n}");
        let stored = b.call_in(encoding, &put("bob", &item, "dmFsdWU=", "60"));
        assert_eq!(status(&stored), "Done", "{stored}");
        let got = a.call_in(encoding, &request("Get", "bob", &item, "0"));
        assert_eq!(got["DataStore"], "dmFsdWU=", "{got}");
        let other = c.call_in(encoding, &request("Get", "eve", &item, "0"));
        assert_eq!(status(&other), "NotOwner", "{other}");
        let released = b.call_in(encoding, &request("Unlock", "alice", &lock, "0"));
        assert_eq!(status(&released), "Unlocked", "{released}");
        let next = c.call_in(encoding, &request("Lock", "bob", &lock, "60"));
        assert!(token(&next) > first, "{next}");
    }
    // Reads go through ReadIndex, not the log: many of them on every node
    // add no entry, and still see the latest write.
    let committed = cluster.stats(0)["Committed"].as_u64().unwrap();
    let mut writer = cluster.client(0);
    for n in 0..10 {
        let value = format!("v{n}");
        let stored = writer.call(&put("w", "latest", &value, "60"));
        assert_eq!(status(&stored), "Done");
        for i in 0..3 {
            let got = cluster.client(i).call(&request("Get", "w", "latest", "0"));
            assert_eq!(got["DataStore"], value, "node {i} read an old value: {got}");
            let tested = cluster
                .client(i)
                .call(&request("TestLock", "bob", "door1", "0"));
            assert_eq!(status(&tested), "Locked", "{tested}");
        }
    }
    let now = cluster.stats(0)["Committed"].as_u64().unwrap();
    assert!(
        now - committed <= 12,
        "reads were written to the log: {committed} -> {now}"
    );
    for i in 0..3 {
        let stats = cluster.stats(i);
        assert_eq!(stats["NodeId"], i as u64 + 1, "{stats}");
        assert!(stats["Term"].as_u64().unwrap() >= 1, "{stats}");
        assert!(stats["Committed"].as_u64().unwrap() >= stats["Applied"].as_u64().unwrap());
    }
}

/// Locks taken by several clients on every node while the leader is killed
/// with SIGKILL: a new leader comes, and every lock that was acknowledged
/// is still held by its owner with its token; tokens granted after the
/// change are above every token before it.
#[test]
fn killing_the_leader_under_load_loses_no_acknowledged_lock_or_token() {
    let mut cluster = TestCluster::start(3, FAST);
    let old = cluster.leader();
    let addrs: Vec<_> = (0..3).map(|i| cluster.addr(i)).collect();
    let acknowledged = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let items = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4usize {
        let (addrs, acknowledged, items, stop) = (
            addrs.clone(),
            acknowledged.clone(),
            items.clone(),
            stop.clone(),
        );
        workers.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let node = (w + n) % 3;
                let name = format!("w{w}-{n}");
                let id = format!("id{w}");
                // A request to the killed node fails: not acknowledged.
                let Some(reply) = try_call(addrs[node], &request("Lock", &id, &name, "600")) else {
                    continue;
                };
                match status(&reply) {
                    "Locked" => {
                        acknowledged
                            .lock()
                            .unwrap()
                            .insert(name.clone(), token(&reply));
                        let stored = try_call(addrs[node], &put(&id, &name, "eA==", "600"));
                        if stored.is_some_and(|r| status(&r) == "Done") {
                            items.lock().unwrap().push(name);
                        }
                    }
                    "Unavailable" => {}
                    other => panic!("a fresh lock answered {other}: {reply}"),
                }
            }
        }));
    }
    // Let some locks through, then kill the leader, then let more through.
    let wait_for = |count: usize| {
        let start = std::time::Instant::now();
        while acknowledged.lock().unwrap().len() < count {
            assert!(start.elapsed() < common::cluster::SETTLE, "load stalled");
            std::thread::yield_now();
        }
    };
    wait_for(50);
    cluster.kill(old);
    let before: u64 = acknowledged
        .lock()
        .unwrap()
        .values()
        .copied()
        .max()
        .unwrap();
    let count_at_kill = acknowledged.lock().unwrap().len();
    wait_for(count_at_kill + 50);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let new = cluster.leader();
    assert_ne!(new, old);
    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut tokens: Vec<u64> = acknowledged.values().copied().collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        acknowledged.len(),
        "a token was granted twice"
    );
    let live: Vec<usize> = (0..3).filter(|&i| cluster.is_up(i)).collect();
    for (k, (name, &tok)) in acknowledged.iter().enumerate() {
        let w = &name[1..name.find('-').unwrap()];
        let node = live[k % live.len()];
        let renewed = cluster.call_settled(node, &request("Lock", &format!("id{w}"), name, "600"));
        assert_eq!(status(&renewed), "Locked", "{name}: {renewed}");
        assert_eq!(token(&renewed), tok, "{name} kept its token");
        let other = cluster.call_settled(node, &request("Lock", "intruder", name, "600"));
        assert_eq!(status(&other), "NotOwner", "{name}: {other}");
    }
    for name in items.lock().unwrap().iter() {
        let w = &name[1..name.find('-').unwrap()];
        let got = cluster.call_settled(live[0], &request("Get", &format!("id{w}"), name, "0"));
        assert_eq!(got["DataStore"], "eA==", "{name}: {got}");
    }
    let after = cluster.call_settled(live[1], &request("Lock", "late", "fresh", "60"));
    assert!(token(&after) > before, "{after} after {before}");
}

#[test]
fn a_majority_down_is_unavailable_never_a_wrong_answer() {
    let mut cluster = TestCluster::start(3, FAST);
    let leader = cluster.leader();
    let survivor = (leader + 1) % 3;
    let held = cluster.call_settled(survivor, &request("Lock", "alice", "door", "600"));
    assert_eq!(status(&held), "Locked");
    for i in 0..3 {
        if i != survivor {
            cluster.kill(i);
        }
    }
    let mut client = cluster.client(survivor);
    for req in [
        request("Lock", "bob", "door", "60"),
        request("TestLock", "alice", "door", "0"),
        put("bob", "k", "eA==", "60"),
    ] {
        let reply = client.call(&req);
        assert_eq!(status(&reply), "Unavailable", "{req}: {reply}");
    }
    // Version and Stats are this node's own, and still answer.
    let stats = cluster.stats(survivor);
    assert_eq!(status(&stats), "Stats");
}

/// The leader is stopped (SIGSTOP) past the election timeout: the others
/// elect a new leader and go on; resumed, the old leader steps down, and no
/// lock ever has two holders (the old leader never grants what the new one
/// holds).
#[test]
fn a_paused_leader_steps_down_and_no_lock_gets_two_holders() {
    let cluster = TestCluster::start(3, FAST);
    let old = cluster.leader();
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let first = cluster.call_settled(others[0], &request("Lock", "alice", "door", "600"));
    assert_eq!(status(&first), "Locked");
    cluster.pause(old);
    // Requests sent to the paused leader wait in its socket meanwhile.
    let mut stale = cluster.client(old);
    stale.send(format!("{}\n", request("Lock", "mallory", "door", "600")).as_bytes());
    let new = cluster.leader_among(&others);
    let renewed = cluster.call_settled(new, &request("Lock", "alice", "door", "600"));
    assert_eq!(token(&renewed), token(&first));
    let second = cluster.call_settled(new, &request("Lock", "bob", "window", "600"));
    assert_eq!(status(&second), "Locked");
    cluster.resume(old);
    let reply = stale.reply();
    assert!(
        matches!(status(&reply), "NotOwner" | "Unavailable"),
        "the old leader granted a held lock: {reply}"
    );
    assert_eq!(cluster.leader(), new, "the resumed leader stepped down");
    let theirs = cluster.call_settled(old, &request("Lock", "mallory", "window", "600"));
    assert_eq!(status(&theirs), "NotOwner", "{theirs}");
    let again = cluster.call_settled(old, &request("Lock", "carol", "attic", "600"));
    assert!(token(&again) > token(&second), "{again} after {second}");
}

/// One request on a fresh connection; `None` if the node is gone.
fn try_call(addr: std::net::SocketAddr, line: &str) -> Option<serde_json::Value> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(common::REPLY_TIMEOUT)).ok()?;
    stream.write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).ok()?;
    serde_json::from_str(&reply).ok()
}

/// A request parked with `Wait` on a follower is answered `NotOwner` when
/// the leader changes (PROTOCOL.md, Cluster), and one parked on a lock that
/// is released while the leader stays is granted, on any node.
#[test]
fn waits_are_granted_across_nodes_and_answered_on_a_change_of_leader() {
    let mut cluster = TestCluster::start(3, FAST);
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    let held = cluster.call_settled(leader, &request("Lock", "alice", "door", "600"));
    assert_eq!(status(&held), "Locked");
    let mut waiter = cluster.client(follower);
    waiter.send_line(&common::lock_wait("bob", "door", "600", "60"));
    // The wait is parked once the cluster applied it: bob's TestLock is
    // then still NotOwner, and alice's release hands the lock to bob.
    cluster.wait_parked(follower, 1);
    let released = cluster.call_settled(leader, &request("Unlock", "alice", "door", "0"));
    assert_eq!(status(&released), "Unlocked");
    let granted = waiter.reply();
    assert_eq!(status(&granted), "Locked", "{granted}");
    assert!(token(&granted) > token(&held));

    waiter.send_line(&common::lock_wait("carol", "door", "600", "60"));
    cluster.wait_parked(follower, 2);
    cluster.kill(leader);
    let answered = waiter.reply();
    assert_eq!(status(&answered), "NotOwner", "{answered}");
    let new = cluster.leader();
    let still = cluster.call_settled(new, &request("Lock", "bob", "door", "600"));
    assert_eq!(token(&still), token(&granted), "bob still holds it");
}

/// Members must decide alike: one started with other store settings
/// (here `--max-holders`) is not listened to, and not listening either, so
/// it answers `Unavailable` and never a decision of its own, while the
/// others go on.
#[test]
fn a_member_with_other_store_settings_takes_no_part() {
    let mut cluster = TestCluster::start(3, FAST);
    let leader = cluster.leader();
    let odd = (leader + 1) % 3;
    cluster.kill(odd);
    cluster.restart_with_args(odd, &["--max-holders", "5"]);
    let others: Vec<usize> = (0..3).filter(|&i| i != odd).collect();
    let held = cluster.call_settled(others[0], &request("Lock", "a", "door", "60"));
    assert_eq!(status(&held), "Locked", "{held}");
    let mut client = cluster.client(odd);
    let reply = client.call(&request("Lock", "b", "door", "60"));
    assert_eq!(status(&reply), "Unavailable", "{reply}");
    assert_eq!(cluster.stats(odd)["Leader"], 0);
    assert_eq!(cluster.leader_among(&others), leader);
}
