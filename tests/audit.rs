//! `--audit` (PROTOCOL.md, Counters and the statistics log): once per
//! statistics interval, for each kind of refusal, the client addresses
//! refused that way and how often, the busiest first; never a name, ID or
//! payload. The real reactor in-process on a clock the test moves, with
//! clients coming from several loopback addresses.

mod common;

use common::{Client, InProcess, request, status};
use serde_json::json;
use std::net::IpAddr;

fn from(server: &InProcess, source: &str) -> Client {
    Client::connect_from(server.addr, source.parse::<IpAddr>().unwrap())
}

/// Ends the interval on the server's clock and returns the log's lines
/// after `skip` of them, once the interval's lines are written.
fn next_interval(server: &InProcess, probe: &mut Client, skip: usize) -> Vec<String> {
    server.advance(1000);
    // The turn that answers the second request comes after the one that
    // wrote the interval's lines.
    let version = request("Version", "probe", "v", "0");
    probe.call(&version);
    probe.call(&version);
    server
        .log_text()
        .lines()
        .skip(skip)
        .map(str::to_owned)
        .collect()
}

fn audit_lines(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|l| l.get(27..))
        .filter(|l| l.starts_with("DLMerror/"))
        .collect()
}

fn not_owner(id: &str) -> String {
    request("Lock", id, "secret-lock", "30")
}

#[test]
fn each_refused_address_once_an_interval_busiest_first() {
    let identities = common::temp_dir("audit-ids");
    let server = InProcess::with_args(&[
        "--audit",
        "--stats-interval",
        "1",
        "--identity-dir",
        identities.to_str().unwrap(),
    ]);
    let mut holder = from(&server, "127.0.0.1");
    assert_eq!(status(&holder.call(&not_owner("secret-holder"))), "Locked");

    // 127.0.0.2: three NotOwner and a BadPayload, then it closes.
    let mut b = from(&server, "127.0.0.2");
    for _ in 0..3 {
        assert_eq!(status(&b.call(&not_owner("secret-id-b"))), "NotOwner");
    }
    assert_eq!(status(&b.call("{not json")), "BadPayload");
    drop(b);
    // 127.0.0.3: one NotOwner, two AuthFailed (answered BadPayload, so
    // counted BadPayload too, as the counters count them), and it stays.
    let mut c = from(&server, "127.0.0.3");
    assert_eq!(status(&c.call(&not_owner("secret-id-c"))), "NotOwner");
    let bad_identity = json!({"ID": "secret-id-c", "FileName": "secret-lock",
        "Action": "Lock", "Expire": "30", "Name": "secret-name", "Identity": "x".repeat(1400)});
    for _ in 0..2 {
        assert_eq!(status(&c.call(&bad_identity.to_string())), "BadPayload");
    }
    let stats = holder.call(&common::stats_request());

    let lines = next_interval(&server, &mut holder, 1);
    assert_eq!(
        audit_lines(&lines),
        [
            "DLMerror/AuthFailed: 127.0.0.3 2",
            "DLMerror/BadPayload: 127.0.0.3 2, 127.0.0.2 1",
            "DLMerror/NotOwner: 127.0.0.2 3, 127.0.0.3 1",
        ],
        "{lines:#?}"
    );
    // The figures add up to the counters.
    assert_eq!(
        (
            stats["NotOwner"].as_u64(),
            stats["BadPayload"].as_u64(),
            stats["AuthFailed"].as_u64()
        ),
        (Some(4), Some(3), Some(2))
    );
    // After the interval's statistics line; nothing of names, IDs, payloads.
    let stats_line = lines
        .iter()
        .position(|l| l.contains("NotOwner: 4"))
        .unwrap();
    let first_audit = lines.iter().position(|l| l.contains("DLMerror/")).unwrap();
    assert!(stats_line < first_audit, "{lines:#?}");
    let log = server.log_text();
    assert!(!log.contains("secret") && !log.contains("xxxx"), "{log}");

    // The next interval counts afresh: only what came since.
    assert_eq!(status(&c.call(&not_owner("secret-id-c"))), "NotOwner");
    let skip = server.log_text().lines().count();
    let lines = next_interval(&server, &mut holder, skip);
    assert_eq!(
        audit_lines(&lines),
        ["DLMerror/NotOwner: 127.0.0.3 1"],
        "{lines:#?}"
    );
    // An interval without refusals has no audit line.
    let skip = server.log_text().lines().count();
    let lines = next_interval(&server, &mut holder, skip);
    assert!(audit_lines(&lines).is_empty(), "{lines:#?}");
    let _ = std::fs::remove_dir_all(identities);
}

#[test]
fn past_the_tracked_addresses_the_rest_is_one_figure() {
    let server = InProcess::with_args(&[
        "--audit",
        "--audit-max-addresses",
        "2",
        "--stats-interval",
        "1",
    ]);
    let mut holder = from(&server, "127.0.0.1");
    assert_eq!(status(&holder.call(&not_owner("secret-holder"))), "Locked");
    // Connections that stay open are folded in when the line is written,
    // in the order they were accepted: 127.0.0.1 and 127.0.0.2 are
    // tracked, 127.0.0.3 and 127.0.0.4 are not.
    let mut clients = Vec::new();
    for (source, refused) in [
        ("127.0.0.1", 1),
        ("127.0.0.2", 4),
        ("127.0.0.3", 2),
        ("127.0.0.4", 5),
    ] {
        let mut client = from(&server, source);
        for _ in 0..refused {
            assert_eq!(status(&client.call(&not_owner("secret-id"))), "NotOwner");
        }
        clients.push(client);
    }
    let lines = next_interval(&server, &mut holder, 1);
    assert_eq!(
        audit_lines(&lines),
        ["DLMerror/NotOwner: 127.0.0.2 4, 127.0.0.1 1, others 7"],
        "{lines:#?}"
    );
}

#[test]
fn without_audit_no_audit_lines() {
    let server = InProcess::with_args(&["--stats-interval", "1"]);
    let mut holder = from(&server, "127.0.0.1");
    holder.call(&not_owner("secret-holder"));
    let mut other = from(&server, "127.0.0.2");
    assert_eq!(status(&other.call(&not_owner("secret-id"))), "NotOwner");
    let lines = next_interval(&server, &mut holder, 1);
    assert!(
        lines.iter().any(|l| l.contains("NotOwner: 1")),
        "{lines:#?}"
    );
    assert!(audit_lines(&lines).is_empty(), "{lines:#?}");
}

/// The real binary: at shutdown, the last (partial) interval's audit lines
/// come before the shutdown line.
#[test]
fn the_last_interval_is_audited_at_shutdown() {
    let mut server = common::TestServer::with_args(&["--audit"]);
    let mut holder = Client::connect_from(server.addr, "127.0.0.1".parse().unwrap());
    assert_eq!(status(&holder.call(&not_owner("secret-holder"))), "Locked");
    let mut other = Client::connect_from(server.addr, "127.0.0.5".parse().unwrap());
    assert_eq!(status(&other.call(&not_owner("secret-id"))), "NotOwner");
    assert!(server.terminate().success());
    let log = server.log_text();
    let lines: Vec<String> = log.lines().map(str::to_owned).collect();
    assert_eq!(
        audit_lines(&lines),
        ["DLMerror/NotOwner: 127.0.0.5 1"],
        "{log}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.contains("stopped.") && last.contains("NotOwner: 1"),
        "{log}"
    );
    assert!(
        lines[lines.len() - 2].contains("DLMerror/NotOwner"),
        "{log}"
    );
}

/// With `--data-dir` every decision of the store comes back through the
/// log, and its refusals are still the asking address's.
#[test]
fn refusals_decided_through_the_log_are_the_asking_address() {
    let data = common::temp_dir("audit-durable");
    let server = InProcess::with_args(&[
        "--audit",
        "--stats-interval",
        "1",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let mut holder = from(&server, "127.0.0.1");
    assert_eq!(status(&holder.call(&not_owner("secret-holder"))), "Locked");
    let mut b = from(&server, "127.0.0.2");
    for _ in 0..2 {
        assert_eq!(status(&b.call(&not_owner("secret-id-b"))), "NotOwner");
    }
    let lines = next_interval(&server, &mut holder, 1);
    assert_eq!(
        audit_lines(&lines),
        ["DLMerror/NotOwner: 127.0.0.2 2"],
        "{lines:#?}"
    );
    let _ = std::fs::remove_dir_all(data);
}
