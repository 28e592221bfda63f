//! Fault injection with checked histories (FAULTS.md): three or five real
//! members on loopback whose replication traffic goes through proxies the
//! test controls, a seeded random schedule of partitions, cut and slowed
//! links, bounced connections, `kill -9`, SIGTERM, restarts, SIGSTOP and
//! SIGCONT, one member's clocks stepped, a member removed and added back,
//! while clients run every kind of request against random members. Every
//! call is recorded and the history is checked: linearizable against a
//! model of PROTOCOL.md (stateright's tester, name by name), never two
//! holders of which one is exclusive at once, tokens increasing in grant
//! order, no acknowledged `Put` lost or reverted, no value read by another
//! ID.
//!
//! `FAULTS_SECONDS` (default 10) bounds the faults, `FAULTS_SEED` replays a
//! schedule (default: from the clock, printed), `FAULTS_NODES` is 3 or 5.

mod common;

#[path = "faults/check.rs"]
mod check;
#[path = "faults/clients.rs"]
mod clients;
#[path = "faults/history.rs"]
mod history;
#[path = "faults/model.rs"]
mod model;
#[path = "faults/proxy.rs"]
mod proxy;
#[path = "faults/remembering.rs"]
mod remembering;
#[path = "faults/schedule.rs"]
mod schedule;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::cluster::{SETTLE, TestCluster};
use common::{put, request, status, temp_dir, token};
use history::History;
use model::{Op, Ret};
use proxy::Network;
use schedule::{Fault, Schedule};

/// Quick elections and a short commit timeout: more leader changes a run.
const FAST: &[&str] = &["--heartbeat-ms", "50", "--commit-timeout", "2"];
/// Clients running at once.
const CLIENTS: u64 = 8;

fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// The admin Name that changes the members, and its Identity.
const ADMIN: &str = "ops";

fn admin_identity() -> String {
    std::iter::repeat_n('o', 1400).collect()
}

/// A cluster of `n` whose every link goes through `network`, each member
/// reading its clock offsets from its clock file, with an admin (the
/// identity directory `ids`) that may change the members; anonymous
/// clients may ask for the clients' TTLs.
fn proxied(n: usize, network: &mut Network, ids: &std::path::Path) -> TestCluster {
    let file = serde_json::json!({ "Identity": admin_identity() }).to_string();
    std::fs::write(ids.join(format!("{ADMIN}.cfg")), file).expect("write the admin's identity");
    let ids = ids.to_str().expect("a UTF-8 path");
    let mut args = FAST.to_vec();
    args.extend([
        "--identity-dir",
        ids,
        "--admin",
        ADMIN,
        "--anonymous-max-ttl",
        "86400",
    ]);
    TestCluster::start_routed_with_clock_files(n, &args, |from, to, addr| {
        network.route(from, to, addr)
    })
}

/// Sends the admin `action` on `file` to the members up in `addrs` (but
/// `not`), one after another, until one answers `Done`.
fn change_members(addrs: &clients::Addrs, not: usize, action: &str, file: &str) {
    let request = serde_json::json!({
        "ID": "op", "FileName": file, "Action": action,
        "Name": ADMIN, "Identity": admin_identity(),
    })
    .to_string();
    let start = Instant::now();
    let mut answers = Vec::new();
    for round in 0.. {
        let up: Vec<SocketAddr> = {
            let addrs = addrs.read().unwrap();
            let up = addrs.iter().enumerate().filter(|&(i, _)| i != not);
            up.filter_map(|(_, addr)| *addr).collect()
        };
        let addr = up[round % up.len()];
        let answer = ask(addr, &request);
        if answer.as_ref().is_some_and(|a| status(a) == "Done") {
            return;
        }
        answers.push(answer);
        assert!(
            start.elapsed() < SETTLE,
            "{action} {file} never done: {answers:?}"
        );
    }
}

/// The member that says it leads, among those up and not paused, if one
/// does.
fn leading(addrs: &clients::Addrs, paused: &[bool]) -> Option<usize> {
    let stats = r#"{"Action":"Stats","ID":"t","FileName":"t"}"#;
    let up: Vec<(usize, SocketAddr)> = {
        let addrs = addrs.read().unwrap();
        let up = addrs.iter().enumerate().filter(|&(i, _)| !paused[i]);
        up.filter_map(|(i, addr)| Some((i, (*addr)?))).collect()
    };
    up.into_iter()
        .find(|&(i, addr)| {
            ask(addr, stats).is_some_and(|s| s["Leader"].as_u64() == Some(i as u64 + 1))
        })
        .map(|(i, _)| i)
}

/// One request on a new connection to `addr`, its answer if one came.
fn ask(addr: SocketAddr, request: &str) -> Option<serde_json::Value> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    (&stream)
        .write_all(format!("{request}\n").as_bytes())
        .ok()?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).ok()?;
    serde_json::from_str(&reply).ok()
}

/// Each member's clock offsets, written to its clock file (`MONOTONIC_MS
/// WALL_MS`, replaced whole so a member never reads half of it).
struct Clocks {
    offsets: Vec<(u64, i64)>,
    files: Vec<PathBuf>,
}

impl Clocks {
    fn new(cluster: &TestCluster) -> Clocks {
        let n = cluster.len();
        Clocks {
            offsets: vec![(0, 0); n],
            files: (0..n).map(|i| cluster.clock_file(i)).collect(),
        }
    }

    fn step(&mut self, i: usize, monotonic_ms: u64, wall_ms: i64) {
        let (monotonic, wall) = &mut self.offsets[i];
        *monotonic += monotonic_ms;
        *wall += wall_ms;
        let next = self.files[i].with_extension("next");
        std::fs::write(&next, format!("{monotonic} {wall}\n")).expect("write the offsets");
        std::fs::rename(&next, &self.files[i]).expect("replace the offsets");
    }
}

/// What a run did.
struct Run {
    faults: Vec<String>,
    /// How many faults of each kind.
    tally: std::collections::BTreeMap<&'static str, usize>,
    calls: Vec<history::Call>,
    /// The leader's term at the end: how many elections there were.
    term: u64,
}

/// Runs the schedule of `seed` for `seconds` on `n` members, then heals
/// everything and reads every name back.
fn run(seed: u64, seconds: u64, n: usize) -> Run {
    let mut network = Network::new(n);
    let ids = temp_dir("faults-ids");
    let mut cluster = proxied(n, &mut network, &ids);
    cluster.leader();
    // Where each member is reached once added back: through the links.
    let into: Vec<String> = (0..n)
        .map(|i| {
            let addr = cluster.members_addr(i).parse().expect("a numeric address");
            network.route_into(i, addr).to_string()
        })
        .collect();
    let mut clocks = Clocks::new(&cluster);
    let addrs: clients::Addrs =
        Arc::new(RwLock::new((0..n).map(|i| Some(cluster.addr(i))).collect()));
    let history = Arc::new(History::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|number| {
            let client = clients::Client::new(seed, number, history.clone(), addrs.clone());
            let stop = stop.clone();
            std::thread::spawn(move || client.run(start, &stop))
        })
        .collect();
    let mut schedule = Schedule::new(seed, n);
    let mut faults = Vec::new();
    let mut tally = std::collections::BTreeMap::new();
    let mut paused = vec![false; n];
    let mut removed = vec![false; n];
    let set_addr = |i: usize, addr| addrs.write().unwrap()[i] = addr;
    while start.elapsed() < Duration::from_secs(seconds) {
        let (fault, hold) = schedule.next();
        faults.push(format!("{:>6} ms  {fault}", start.elapsed().as_millis()));
        *tally.entry(fault.kind()).or_insert(0) += 1;
        match fault {
            Fault::Heal => network.heal(),
            Fault::Partition(side) => network.partition(&side),
            Fault::Cut(from, to) => network.cut(from, to),
            Fault::Delay(from, to, ms) => network.delay(from, to, Duration::from_millis(ms)),
            Fault::Bounce => network.bounce(),
            Fault::Kill(i) => {
                set_addr(i, None);
                cluster.kill(i);
                paused[i] = false;
            }
            Fault::Restart(i) => {
                cluster.restart(i);
                set_addr(i, Some(cluster.addr(i)));
            }
            Fault::Pause(i) => {
                cluster.pause(i);
                paused[i] = true;
            }
            Fault::Resume(i) => {
                cluster.resume(i);
                paused[i] = false;
            }
            Fault::Terminate(i) => {
                set_addr(i, None);
                cluster.terminate(i);
            }
            Fault::StepMonotonic(i, ms, of_leader) => {
                let leader = of_leader.then(|| leading(&addrs, &paused)).flatten();
                if let Some(leader) = leader {
                    faults.push(format!("          (the leader is member {leader})"));
                    *tally.entry("of them the leader's").or_insert(0) += 1;
                }
                clocks.step(leader.unwrap_or(i), ms, 0);
            }
            Fault::StepWall(i, ms) => clocks.step(i, 0, ms),
            Fault::Remove(i) => {
                network.heal();
                set_addr(i, None);
                change_members(&addrs, i, "RemoveMember", &(i + 1).to_string());
                cluster.terminate(i);
                removed[i] = true;
            }
            Fault::Rejoin(i) => {
                network.heal();
                rejoin(&mut cluster, &addrs, i, &into[i]);
                removed[i] = false;
            }
        }
        // The schedule's own pacing: how long this fault stands.
        std::thread::sleep(hold);
    }
    eprintln!("faults: schedule done, healing");
    network.heal();
    for (i, &paused) in paused.iter().enumerate() {
        if paused {
            cluster.resume(i);
        }
        if !cluster.is_up(i) && !removed[i] {
            cluster.restart(i);
            set_addr(i, Some(cluster.addr(i)));
        }
    }
    for i in (0..n).filter(|&i| removed[i]) {
        rejoin(&mut cluster, &addrs, i, &into[i]);
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("a client thread");
    }
    eprintln!("faults: clients stopped, reading every name back");
    let leader = cluster.leader();
    let term = cluster.stats(leader)["Term"].as_u64().unwrap_or(0);
    let names: BTreeSet<String> = history.calls().into_iter().map(|c| c.name).collect();
    let names: Vec<String> = names.into_iter().collect();
    clients::Client::new(seed, CLIENTS, history.clone(), addrs.clone())
        .read_back(&names, Instant::now() + SETTLE);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&ids);
    Run {
        faults,
        tally,
        calls: history.calls(),
        term,
    }
}

/// Starts removed member `i` on an empty data directory with `--join`
/// and adds it back, at `addr` (which carries each member's link to it).
fn rejoin(cluster: &mut TestCluster, addrs: &clients::Addrs, i: usize, addr: &str) {
    cluster.rejoin(i);
    change_members(addrs, i, "AddMember", &format!("{}={addr}", i + 1));
    addrs.write().unwrap()[i] = Some(cluster.addr(i));
}

/// The main run: a random schedule (or `FAULTS_SEED`'s), its history
/// checked; a failure prints the command that replays it and leaves the
/// whole history in a file.
#[test]
fn a_random_schedule_of_faults_leaves_a_checked_history() {
    let seconds = setting("FAULTS_SECONDS", 10);
    let n = usize::try_from(setting("FAULTS_NODES", 3)).expect("a member count");
    assert!(n == 3 || n == 5, "FAULTS_NODES is 3 or 5");
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let seed = setting("FAULTS_SEED", clock);
    let replay = format!(
        "FAULTS_SEED={seed} FAULTS_SECONDS={seconds} FAULTS_NODES={n} cargo test --test faults -- --nocapture"
    );
    println!("faults: seed {seed}; replay with: {replay}");
    let began = Instant::now();
    let run = run(seed, seconds, n);
    eprintln!(
        "faults: seed {seed}: run done, checking {} calls",
        run.calls.len()
    );
    let checking = Instant::now();
    let (anomalies, remembered) = check::checked(&run.calls);
    let answered = run.calls.iter().filter(|c| c.returned.is_some()).count();
    let granted = run
        .calls
        .iter()
        .filter(|c| matches!(c.ret(), Some(Ret::Locked { .. })))
        .count();
    println!(
        "faults: seed {seed}: {} faults, term {}, {} calls ({answered} answered, {granted} grants), run {:.1} s, checked in {:.1} s ({} names by the remembering search)",
        run.faults.len(),
        run.term,
        run.calls.len(),
        checking.duration_since(began).as_secs_f64(),
        checking.elapsed().as_secs_f64(),
        remembered
    );
    let tally: Vec<String> = run
        .tally
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    println!("faults: seed {seed}: {}", tally.join(", "));
    assert!(answered > 0, "no call was answered: {:?}", run.faults);
    if !anomalies.is_empty() {
        let path =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{seed}.txt"));
        let all: Vec<&history::Call> = run.calls.iter().collect();
        let report = format!(
            "seed {seed}\nreplay: {replay}\n\nanomalies:\n{}\n\nfaults:\n{}\n\nhistory:\n{}\n",
            anomalies.join("\n"),
            run.faults.join("\n"),
            check::render(&all)
        );
        std::fs::write(&path, report).expect("write the report");
        let shown: Vec<&str> = anomalies.iter().map(|a| a.as_str()).take(5).collect();
        panic!(
            "seed {seed}: {} anomalies (the history is in {}); replay with:\n  {replay}\n{}",
            anomalies.len(),
            path.display(),
            shown.join("\n")
        );
    }
}

/// The proxies carry the cluster: a leader cut off by them is replaced,
/// the rest commit without it, and once healed it catches up.
#[test]
fn a_leader_cut_off_by_the_proxies_is_replaced_and_catches_up() {
    let mut network = Network::new(3);
    let ids = temp_dir("faults-ids");
    let cluster = proxied(3, &mut network, &ids);
    let old = cluster.leader();
    network.partition(&[old]);
    let rest: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = cluster.leader_among(&rest);
    assert_ne!(new, old);
    let stored = cluster.call_settled(new, &put("w", "kept", "djE=", "600"));
    assert_eq!(status(&stored), "Done", "{stored}");
    let committed = cluster.stats(new)["Committed"].as_u64().unwrap();
    network.heal();
    cluster.wait_applied(old, committed);
    let got = cluster.call_settled(old, &request("Get", "w", "kept", "0"));
    assert_eq!(got["DataStore"], "djE=", "{got}");
}

/// One member's clock file steps its clocks: its monotonic clock forward
/// (a hold's TTL runs out as if the time had passed), its wall clock
/// either way (a new leader's token floor follows it up, never down).
#[test]
fn a_members_clock_file_steps_its_clocks() {
    let mut cluster = TestCluster::start_routed_with_clock_files(1, FAST, |_, _, addr| addr);
    let file = cluster.clock_file(0);
    let lock = |id: &str, name: &str| request("Lock", id, name, "600");
    let held = cluster.call_settled(0, &lock("a", "stepped"));
    assert_eq!(status(&held), "Locked", "{held}");
    // 601 s later on the clock it reads, the hold has run out.
    std::fs::write(&file, "601000 0").unwrap();
    let start = Instant::now();
    loop {
        let taken = cluster.call_settled(0, &lock("b", "stepped"));
        if status(&taken) == "Locked" {
            assert!(token(&taken) > token(&held), "{taken}");
            break;
        }
        assert!(start.elapsed() < SETTLE, "the hold never ran out: {taken}");
    }
    // An hour ahead: the next leader's tokens start past that hour.
    std::fs::write(&file, "601000 3600000").unwrap();
    cluster.terminate(0);
    cluster.restart(0);
    let ahead = cluster.call_settled(0, &lock("c", "ahead"));
    let hour_on = std::time::SystemTime::now() + Duration::from_secs(3500);
    let micros = hour_on
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    assert!(u128::from(token(&ahead)) > micros, "{ahead}");
    // An hour behind: tokens still grow.
    std::fs::write(&file, "0 -3600000").unwrap();
    cluster.terminate(0);
    cluster.restart(0);
    let behind = cluster.call_settled(0, &lock("d", "behind"));
    assert!(token(&behind) > token(&ahead), "{behind} after {ahead}");
}

/// A member removed and added back (an empty data directory, `--join`)
/// catches up, and the others reach it through the links from
/// themselves: with every link into it cut it hears no leader.
#[test]
fn a_member_added_back_is_reached_through_the_links() {
    let mut network = Network::new(3);
    let ids = temp_dir("faults-ids");
    let mut cluster = proxied(3, &mut network, &ids);
    let leader = cluster.leader();
    let gone = (leader + 1) % 3;
    let into = network.route_into(gone, cluster.members_addr(gone).parse().unwrap());
    let addrs: clients::Addrs =
        Arc::new(RwLock::new((0..3).map(|i| Some(cluster.addr(i))).collect()));
    change_members(&addrs, gone, "RemoveMember", &(gone + 1).to_string());
    cluster.terminate(gone);
    addrs.write().unwrap()[gone] = None;
    let stored = cluster.call_settled(leader, &put("w", "kept", "djE=", "600"));
    assert_eq!(status(&stored), "Done", "{stored}");
    rejoin(&mut cluster, &addrs, gone, &into.to_string());
    let committed = cluster.stats(leader)["Committed"].as_u64().unwrap();
    cluster.wait_applied(gone, committed);
    let got = cluster.call_settled(gone, &request("Get", "w", "kept", "0"));
    assert_eq!(got["DataStore"], "djE=", "{got}");

    for from in (0..3).filter(|&i| i != gone) {
        network.cut(from, gone);
    }
    let start = Instant::now();
    while cluster.stats(gone)["Leader"].as_u64() != Some(0) {
        assert!(
            start.elapsed() < SETTLE,
            "member {gone} still hears a leader"
        );
    }
    network.heal();
    let rest: Vec<usize> = (0..3).filter(|&i| i != gone).collect();
    let leader = cluster.leader_among(&rest);
    let committed = cluster.stats(leader)["Committed"].as_u64().unwrap();
    cluster.wait_applied(gone, committed);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&ids);
}

fn lock(id: u8) -> Op {
    Op::Lock {
        id,
        shared: false,
        wait: false,
    }
}

fn locked(token: u64) -> Option<Ret> {
    Some(Ret::Locked {
        token,
        shared: false,
    })
}

fn put_op(id: u8, value: &str) -> Op {
    Op::Put {
        id,
        value: value.to_owned(),
    }
}

/// The checker passes what the protocol allows, answers never given
/// included, and flags each kind of anomaly.
#[test]
fn the_checker_passes_allowed_histories_and_flags_each_anomaly() {
    let released = Some(Ret::Unlocked { released: true });
    let fine = History::sequential(&[
        (1, "l", lock(0), locked(10)),
        (1, "l", lock(0), locked(10)),
        (2, "l", lock(1), Some(Ret::NotOwner)),
        (1, "l", Op::Unlock { id: 0 }, released.clone()),
        // A leader change raises the floor: any greater token will do.
        (2, "l", lock(1), locked(500)),
        // A Wait may be answered NotOwner even with the lock free.
        (
            3,
            "m",
            Op::Lock {
                id: 2,
                shared: false,
                wait: true,
            },
            Some(Ret::NotOwner),
        ),
        // An answer never came: the Put may or may not have been done.
        (4, "d", put_op(0, "a"), None),
        (5, "d", Op::Get { id: 0 }, Some(Ret::Value("a".into()))),
        (5, "d", Op::Get { id: 1 }, Some(Ret::NotOwner)),
    ]);
    assert_eq!(check::anomalies(&fine), Vec::<String>::new());
    let names = |calls: &[history::Call], name: &str| -> Vec<history::Call> {
        calls.iter().filter(|c| c.name == name).cloned().collect()
    };
    for name in ["l", "m", "d"] {
        let calls = names(&fine, name);
        let calls: Vec<&history::Call> = calls.iter().collect();
        assert_eq!(remembering::linearizable(&calls), Some(true), "{name}");
    }

    let two_holders = History::sequential(&[
        (1, "l", lock(0), locked(10)),
        (2, "l", lock(1), locked(11)),
        (1, "l", lock(0), locked(10)),
    ]);
    let found = check::anomalies(&two_holders);
    assert!(
        found.iter().any(|a| a.contains("not linearizable")),
        "{found:?}"
    );
    assert!(found.iter().any(|a| a.contains("still held")), "{found:?}");
    let calls: Vec<&history::Call> = two_holders.iter().collect();
    assert_eq!(remembering::linearizable(&calls), Some(false));

    let lost = History::sequential(&[
        (1, "d", put_op(0, "a"), Some(Ret::Done)),
        (2, "d", Op::Get { id: 0 }, Some(Ret::NotFound)),
    ]);
    let found = check::anomalies(&lost);
    assert!(
        found.iter().any(|a| a.contains("acknowledged Put")),
        "{found:?}"
    );

    let foreign = History::sequential(&[
        (1, "d", put_op(0, "a"), Some(Ret::Done)),
        (2, "d", Op::Get { id: 1 }, Some(Ret::Value("a".into()))),
    ]);
    let found = check::anomalies(&foreign);
    assert!(found.iter().any(|a| a.contains("never put")), "{found:?}");

    let backwards = History::sequential(&[
        (1, "a", lock(0), locked(10)),
        (
            2,
            "b",
            Op::TestLock { id: 1 },
            Some(Ret::Unlocked { released: false }),
        ),
        (2, "b", lock(1), locked(9)),
    ]);
    let found = check::anomalies(&backwards);
    assert!(found.iter().any(|a| a.contains("is smaller")), "{found:?}");

    let reused =
        History::sequential(&[(1, "a", lock(0), locked(10)), (2, "b", lock(1), locked(10))]);
    let found = check::anomalies(&reused);
    assert!(
        found.iter().any(|a| a.contains("token 10 granted")),
        "{found:?}"
    );
}

/// The history that seed 3 (120 s, three members) left on `lock-16-0`:
/// 70 calls on 20 tester threads, several in flight, a queue of waiters
/// granted in turn. stateright's tester searched it for 15 minutes
/// without deciding; it is linearizable, and the remembering search finds
/// a linearization at once. The full check passes it (through the
/// fallback).
#[test]
fn the_history_of_seed_3_on_lock_16_0_is_decided_and_linearizable() {
    let text = include_str!("faults/seed-3-lock-16-0.txt");
    let calls = History::parse(text, "lock-16-0");
    assert_eq!(calls.len(), 74);
    let all: Vec<&history::Call> = calls.iter().collect();
    assert_eq!(remembering::linearizable(&all), Some(true));
    assert_eq!(check::anomalies(&calls), Vec::<String>::new());
}
