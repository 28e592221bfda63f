//! Changing a cluster's members (issue 15): an admin Name adds a fourth
//! member, which joins from the leader's snapshot and votes, and removes
//! one, which no longer counts toward a majority; anyone else is refused.
//! Real processes, and the real `dlm cluster` command.

mod common;

use std::path::Path;
use std::process::Command;

use common::cluster::TestCluster;
use common::{request, status, temp_dir, token};
use serde_json::{Value, json};

fn secret(c: char) -> String {
    std::iter::repeat_n(c, 1400).collect()
}

/// An administration request as Name `name` with `identity`.
fn admin(action: &str, file: &str, name: &str, identity: &str) -> String {
    json!({"ID": "op", "FileName": file, "Action": action, "Name": name, "Identity": identity})
        .to_string()
}

/// `dlm --json ARGS...` as the admin `ops`, against client port `port`:
/// its exit status and its JSON answer.
fn dlm(dir: &Path, port: u16, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_dlm"))
        .args([
            "--port",
            &port.to_string(),
            "--json",
            "--name",
            "ops",
            "--identity-file",
        ])
        .arg(dir.join("ops.cfg"))
        .args(args)
        .output()
        .expect("run dlm");
    let text = String::from_utf8_lossy(&out.stdout);
    let answer = serde_json::from_str(text.trim()).unwrap_or_else(
        |_| json!({"stdout": text, "stderr": String::from_utf8_lossy(&out.stderr)}),
    );
    (out.status.code().unwrap_or(-1), answer)
}

#[test]
fn an_admin_adds_a_member_that_votes_and_removes_one_that_no_longer_counts() {
    let ids = temp_dir("admins");
    let ops = secret('o');
    std::fs::write(ids.join("ops.cfg"), json!({"Identity": ops}).to_string()).unwrap();
    std::fs::write(
        ids.join("app.cfg"),
        json!({"Identity": secret('a')}).to_string(),
    )
    .unwrap();
    let dir = ids.to_str().unwrap();
    let args = [
        "--heartbeat-ms",
        "50",
        "--identity-dir",
        dir,
        "--admin",
        "ops",
    ];
    let mut cluster = TestCluster::start(3, &args);
    let leader = cluster.leader();
    let held = cluster.call_settled(0, &request("Lock", "keeper", "kept", "600"));
    assert_eq!(status(&held), "Locked", "{held}");

    // Only an authenticated admin Name may look or change.
    let mut c = cluster.client(1);
    let anonymous = json!({"ID":"op","FileName":"members","Action":"Members"}).to_string();
    assert_eq!(status(&c.call(&anonymous)), "NotOwner");
    let not_admin = admin("Members", "m", "app", &secret('a'));
    assert_eq!(status(&c.call(&not_admin)), "NotOwner");
    let wrong = admin("Members", "m", "ops", &secret('x'));
    assert_eq!(status(&c.call(&wrong)), "BadPayload");
    let malformed = admin("AddMember", "4", "ops", &ops);
    assert_eq!(status(&c.call(&malformed)), "BadPayload");
    let members = c.call(&admin("Members", "m", "ops", &ops));
    assert_eq!(status(&members), "Members", "{members}");
    assert_eq!(members["Voters"], "1,2,3");
    assert_eq!(members["NodeId"], 2);

    // Add member 4, through a follower, then start it: it joins from the
    // leader's snapshot, holds what the others hold, and counts.
    let follower = (leader + 1) % 3;
    let port = cluster.addr(follower).port();
    let (four, four_addr) = cluster.start_joining();
    let spec = format!("4={four_addr}");
    let (code, added) = dlm(&ids, port, &["cluster", "add", &spec]);
    assert_eq!((code, &added["Status"]), (0, &json!("Done")), "{added}");
    let committed = cluster.stats(leader)["Committed"].as_u64().unwrap();
    cluster.wait_applied(four, committed);
    let renewed = cluster.call_settled(four, &request("Lock", "keeper", "kept", "600"));
    assert_eq!(token(&renewed), token(&held), "{renewed}");
    let taken = cluster.call_settled(four, &request("Lock", "intruder", "kept", "600"));
    assert_eq!(status(&taken), "NotOwner", "{taken}");
    let (code, seen) = dlm(&ids, cluster.addr(four).port(), &["cluster", "status"]);
    assert_eq!(code, 0, "{seen}");
    assert_eq!(seen["Voters"], json!([1, 2, 3, 4]), "{seen}");
    assert_eq!(seen["Peers"]["4"], json!(four_addr), "{seen}");
    // Adding it again changes nothing and still succeeds.
    assert_eq!(dlm(&ids, port, &["cluster", "add", &spec]).0, 0);

    // Remove the first leader, stop it and one more old member: the two
    // left (one of them the newcomer) are a majority of three and commit.
    let gone = u16::try_from(leader + 1).unwrap().to_string();
    let survivor = (0..3).find(|&i| i != leader).unwrap();
    let (code, removed) = dlm(
        &ids,
        cluster.addr(survivor).port(),
        &["cluster", "remove", &gone],
    );
    assert_eq!(code, 0, "{removed}");
    cluster.terminate(leader);
    let other = (0..3).find(|&i| i != leader && i != survivor).unwrap();
    cluster.kill(other);
    let fresh = cluster.call_settled(four, &request("Lock", "late", "fresh", "60"));
    assert_eq!(status(&fresh), "Locked", "{fresh}");
    assert!(token(&fresh) > token(&held));
    let members = cluster
        .client(survivor)
        .call(&admin("Members", "m", "ops", &ops));
    let voters: Vec<u64> = members["Voters"]
        .as_str()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(voters.len(), 3, "{members}");
    assert!(!voters.contains(&(leader as u64 + 1)), "{members}");
}

#[test]
fn administration_is_for_cluster_members_only() {
    let data = temp_dir("single-durable");
    let server = common::TestServer::with_args(&["--data-dir", data.to_str().unwrap()]);
    let mut c = server.connect();
    let line = json!({"ID":"op","FileName":"4=127.0.0.1:9","Action":"AddMember"}).to_string();
    assert_eq!(status(&c.call(&line)), "BadAction");
    let out = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"))
        .args(["127.0.0.1", "0", "--admin", "ops"])
        .output()
        .expect("run the server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--admin needs --peers"), "{err}");
}

/// A member that was down while another joined catches up from a snapshot,
/// which carries no addresses: it learns the newcomer's from its `Hello`.
#[test]
fn a_member_away_during_a_join_learns_the_newcomer_address() {
    let ids = temp_dir("admins-away");
    let ops = secret('o');
    std::fs::write(ids.join("ops.cfg"), json!({"Identity": ops}).to_string()).unwrap();
    let dir = ids.to_str().unwrap();
    let args = [
        "--heartbeat-ms",
        "50",
        "--identity-dir",
        dir,
        "--admin",
        "ops",
    ];
    let mut cluster = TestCluster::start(3, &args);
    let leader = cluster.leader();
    let away = (leader + 1) % 3;
    cluster.kill(away);
    let (four, four_addr) = cluster.start_joining();
    let up = (leader + 2) % 3;
    let (code, added) = dlm(
        &ids,
        cluster.addr(up).port(),
        &["cluster", "add", &format!("4={four_addr}")],
    );
    assert_eq!(code, 0, "{added}");
    // Restarted with the old --peers (no member 4), behind the snapshot
    // taken at the change.
    cluster.restart_with_peers(away, 3);
    let committed = cluster.stats(leader)["Committed"].as_u64().unwrap();
    cluster.wait_applied(away, committed);
    cluster.wait_applied(four, committed);
    let start = std::time::Instant::now();
    loop {
        let members = cluster
            .client(away)
            .call(&admin("Members", "m", "ops", &ops));
        let peers = members["Peers"].as_str().unwrap_or_default().to_owned();
        if members["Voters"] == "1,2,3,4" && peers.contains(&format!("4={four_addr}")) {
            break;
        }
        assert!(
            start.elapsed() < common::cluster::SETTLE,
            "never learned: {members}"
        );
    }
}
