//! End to end: `lockfight` fights for about a second in each mode with
//! `--verify` against a real `jackrabbit-dlm`, and against its own echo
//! ceiling. The checks are that requests were answered and that mutual
//! exclusion held; there are no timing assertions, since the machine is
//! shared and noisy.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Output};

use common::TestServer;

/// Runs lockfight with `args`.
fn lockfight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockfight"))
        .args(args)
        .output()
        .expect("run lockfight")
}

/// Runs lockfight with `args` and `--json`, expects success, and returns the
/// single run it reports.
fn one_run(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--json", "--quiet"]);
    let out = lockfight(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lockfight {args:?} failed: {stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let runs = doc["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    runs[0].clone()
}

/// Fights over a fresh server in `mode` with `--verify` and checks the run.
fn fight_verified(mode: &str, extra: &[&str]) {
    let server = TestServer::start();
    let target = format!("jackrabbit://{}", server.addr);
    let pid = server.pid().to_string();
    let mut args = vec![
        "--target",
        &target,
        "--mode",
        mode,
        "--duration",
        "1",
        "--connections",
        "4",
        "--resources",
        "8",
        "--pipeline",
        "8",
        "--verify",
        "--server-pid",
        &pid,
    ];
    args.extend(extra);
    let run = one_run(&args);
    assert!(
        run["requests"].as_u64().unwrap() > 0,
        "no request answered: {run}"
    );
    assert!(
        run["acquisitions"].as_u64().unwrap() > 0,
        "no lock granted: {run}"
    );
    assert!(
        run["server_cpu_secs"].as_f64().is_some(),
        "no CPU figure: {run}"
    );
    let verify = &run["verify"];
    assert_eq!(verify["violations"], 0, "{run}");
    assert_eq!(verify["unfinished"], false, "{run}");
    assert_eq!(verify["counted"], verify["increments"], "{run}");
    assert!(verify["increments"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(run["errors"], 0, "{run}");
}

#[test]
fn oneshot_verified() {
    fight_verified("oneshot", &[]);
}

#[test]
fn persistent_verified() {
    fight_verified("persistent", &[]);
}

#[test]
fn persistent_encoded_verified() {
    fight_verified("persistent", &["--encoded"]);
}

#[test]
fn pipelined_verified() {
    fight_verified("pipelined", &[]);
}

#[test]
fn patient_verified() {
    fight_verified("patient", &[]);
}

#[test]
fn aggressive_verified() {
    fight_verified("aggressive", &[]);
}

#[test]
fn chaos_verified() {
    fight_verified("chaos", &[]);
}

#[test]
fn wait_verified_on_two_hot_keys() {
    // Few keys, so most Locks are parked and handed over by the server.
    fight_verified("wait", &["--resources", "2", "--hold-ms", "0.2"]);
}

/// Fights over a fresh server in a shared mode with `--verify` for a
/// bounded number of lock attempts (`--cycles`), and checks that every
/// attempt was granted once and checked, with no violation.
fn shared_fight_verified(mode: &str, extra: &[&str]) -> serde_json::Value {
    let server = TestServer::start();
    let target = format!("jackrabbit://{}", server.addr);
    let mut args = vec![
        "--target",
        &target,
        "--mode",
        mode,
        "--connections",
        "8",
        "--resources",
        "2",
        "--cycles",
        "40",
        // An upper bound only: the run ends when the cycles are done.
        "--duration",
        "60",
        "--wait",
        "30",
        "--verify",
    ];
    args.extend(extra);
    let run = one_run(&args);
    // Every attempt waits until granted: 8 fighters × 40 cycles.
    assert_eq!(run["acquisitions"], 8 * 40, "{run}");
    assert_eq!(
        run["requests"],
        2 * 8 * 40,
        "a Lock and an Unlock each: {run}"
    );
    assert_eq!(run["errors"], 0, "{run}");
    let verify = &run["verify"];
    assert_eq!(verify["violations"], 0, "{run}");
    assert_eq!(verify["unfinished"], false, "{run}");
    assert_eq!(verify["lost_holds"], 0, "{run}");
    assert_eq!(verify["grants_checked"], run["acquisitions"], "{run}");
    run
}

#[test]
fn readers_and_writers_verified() {
    // Half of the cycles shared, so writers and readers meet often.
    let run = shared_fight_verified("rw", &["--shared-percent", "50", "--hold-ms", "0.5"]);
    let most = run["verify"]["most_shared"].as_u64().unwrap();
    assert!((1..=8).contains(&most), "{run}");
}

#[test]
fn readers_only_and_writers_only_verified() {
    let run = shared_fight_verified("rw", &["--shared-percent", "100"]);
    assert!(run["verify"]["most_shared"].as_u64() >= Some(1), "{run}");
    let run = shared_fight_verified("rw", &["--shared-percent", "0"]);
    assert_eq!(run["verify"]["most_shared"], 0, "no share taken: {run}");
}

#[test]
fn semaphore_verified() {
    let run = shared_fight_verified("semaphore", &["--limit", "3", "--hold-ms", "0.5"]);
    let most = run["verify"]["most_shared"].as_u64().unwrap();
    assert!((1..=3).contains(&most), "{run}");
}

#[test]
fn semaphore_verified_encoded() {
    shared_fight_verified("semaphore", &["--limit", "1", "--encoded"]);
}

#[test]
fn shared_modes_need_a_jackrabbit_target() {
    let out = lockfight(&["--target", "echo://127.0.0.1:1", "--mode", "rw"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shares"), "{stderr}");
    let out = lockfight(&[
        "--target",
        "jackrabbit://127.0.0.1:1",
        "--mode",
        "rw",
        "--shared-percent",
        "101",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn etcd_targets_parse_and_are_refused_where_they_cannot_fight() {
    let out = lockfight(&[
        "--target",
        "etcd://127.0.0.1:1,127.0.0.1:2",
        "--mode",
        "pipelined",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "etcd") {
        assert!(stderr.contains("persistent"), "{stderr}");
        let out = lockfight(&["--target", "etcd://127.0.0.1:1", "--verify"]);
        assert_eq!(out.status.code(), Some(2));
    } else {
        assert!(
            stderr.contains("built without the etcd feature"),
            "{stderr}"
        );
    }
    let out = lockfight(&["--target", "etcd://127.0.0.1:1,", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(2), "an empty member");
}

/// The echo ceiling, killed when dropped.
struct Ceiling {
    child: Child,
    addr: SocketAddr,
}

impl Ceiling {
    fn start() -> Ceiling {
        let (child, addr) =
            common::spawn_listening(Command::new(env!("CARGO_BIN_EXE_lockfight")).args([
                "ceiling",
                "127.0.0.1",
                "0",
            ]));
        Ceiling { child, addr }
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ceiling_answers_every_mode() {
    let ceiling = Ceiling::start();
    let target = format!("echo://{}", ceiling.addr);
    let pid = ceiling.child.id().to_string();
    for mode in ["oneshot", "persistent", "pipelined"] {
        let run = one_run(&[
            "--target",
            &target,
            "--mode",
            mode,
            "--duration",
            "0.5",
            "--connections",
            "4",
            "--server-pid",
            &pid,
        ]);
        assert!(run["requests"].as_u64().unwrap() > 0, "{mode}: {run}");
        assert_eq!(run["errors"], 0, "{mode}: {run}");
        assert!(run["acquisitions_per_sec"].is_null(), "echo grants nothing");
    }
}

#[test]
fn comparison_and_sweep_write_a_summary_and_a_chart() {
    let server = TestServer::start();
    let ceiling = Ceiling::start();
    let jr = format!("jackrabbit://{}", server.addr);
    let echo = format!("echo://{}", ceiling.addr);
    let chart = server.dir.join("sweep.svg");
    let chart_arg = chart.to_string_lossy().to_string();
    let out = lockfight(&[
        "--target",
        &jr,
        "--target",
        &echo,
        "--sweep-connections",
        "1,4",
        "--rounds",
        "2",
        "--duration",
        "0.2",
        "--chart",
        &chart_arg,
        "--json",
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(doc["runs"].as_array().unwrap().len(), 2 * 2 * 2);
    let summary = doc["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2 * 2);
    assert_eq!(summary[0]["reference_over_this_requests"], 1.0);
    assert!(summary[1]["reference_over_this_requests"].as_f64().unwrap() > 0.0);
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    assert!(svg.starts_with("<svg") && svg.contains("jackrabbit") && svg.contains("echo"));
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        &["--target", "echo://127.0.0.1:1", "--verify"][..],
        &["--target", "ftp://127.0.0.1:1"][..],
        &["--target", "echo://127.0.0.1:1", "--duration", "0"][..],
        &[
            "--target",
            "echo://127.0.0.1:1",
            "--target",
            "echo://127.0.0.1:2",
        ][..],
        &[
            "--target",
            "echo://127.0.0.1:1",
            "--server-pid",
            "1",
            "--server-pid",
            "2",
        ][..],
    ] {
        let out = lockfight(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("lockfight: "), "{stderr}");
    }
    assert_eq!(
        lockfight(&[]).status.code(),
        Some(2),
        "a target is required"
    );
}

#[test]
fn unreachable_target_fails_with_one_line() {
    // Bind then drop a listener, so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let out = lockfight(&[
        "--target",
        &format!("jackrabbit://127.0.0.1:{port}"),
        "--duration",
        "0.2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Runs lockfight on one resource whose holds expire after 1 ms while the
/// fighters keep them 2 ms: the server rightly hands the lock on while its
/// holder still acts on it, and `--verify` must say so. Returns stderr.
fn expired_holds_are_caught(extra: &[&str]) -> String {
    let server = TestServer::start();
    let target = format!("jackrabbit://{}", server.addr);
    let mut args = vec![
        "--target",
        &target,
        "--resources",
        "1",
        "--connections",
        "8",
        "--expire",
        "0.001",
        "--hold-ms",
        "2",
        "--duration",
        "1",
        "--verify",
        "--quiet",
    ];
    args.extend(extra);
    let out = lockfight(&args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("VIOLATION"), "{stderr}");
    stderr
}

#[test]
fn verify_reports_the_lost_updates_of_expired_holds() {
    // A second holder gets in between a read and a write of the counter.
    expired_holds_are_caught(&[]);
}

#[test]
fn verify_reports_writers_beside_holders_whose_ttl_ran_out() {
    // The occupancy check sees an exclusive grant beside a holder.
    let stderr = expired_holds_are_caught(&["--mode", "rw", "--shared-percent", "20"]);
    assert!(stderr.contains("granted beside"), "{stderr}");
}
