//! One run: set up a target, start the generator threads, measure the
//! window, check the counters, and turn the tallies into a [`RunResult`].
//!
//! The mio engine's threads and the etcd fighters' runtime are measured by
//! the same window code ([`window`]) and reported through the same
//! [`RunResult`], so every target's figures mean the same thing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jackrabbit_dlm::protocol::Encoding;

use crate::control;
use crate::engine::{self, Plan};
use crate::fighter::{Rules, Tally};
use crate::mode::{Mode, Sharing};
use crate::occupancy::Occupancy;
use crate::procfs;
use crate::report::{RunResult, Verification};
use crate::target::{Kind, Target};
use crate::wire::{Dialect, Names};

/// Violating counters listed by name in a report.
const EXAMPLES: usize = 5;

/// The settings every run of one invocation shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub resources: u32,
    pub duration: Duration,
    pub pipeline: usize,
    pub expire_secs: f64,
    pub seed: u64,
    pub threads: usize,
    pub retry_delay: Duration,
    pub hold: Duration,
    pub wait_secs: f64,
    pub encoding: Encoding,
    pub verify: bool,
    pub shared_percent: u32,
    pub limit: u32,
    pub cycles: Option<u64>,
}

/// A short string unique to this run, so names from other runs (even ones
/// killed while holding locks) never meet this run's.
fn nonce() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        // Seconds and nanoseconds mixed: all a nonce needs.
        .map_or(0, |d| {
            d.as_secs().rotate_left(32) ^ u64::from(d.subsec_nanos())
        });
    let mixed =
        nanos ^ (u64::from(std::process::id()) << 40) ^ RUNS.fetch_add(1, Ordering::Relaxed);
    format!("{:x}", mixed & 0xffff_ffff_ffff)
}

/// Fights over `target` with `connections` connections.
pub fn fight(
    target: &Target,
    settings: &Settings,
    connections: usize,
    round: usize,
) -> Result<RunResult, String> {
    let nonce = nonce();
    if target.kind == Kind::Etcd {
        return etcd_fight(target, settings, connections, round, &nonce);
    }
    control::probe(target.addr)?;
    let dialect = match target.kind {
        Kind::Jackrabbit => Dialect::Jackrabbit {
            encoding: settings.encoding,
        },
        Kind::Echo => Dialect::Echo {
            encoding: settings.encoding,
        },
        Kind::Redis => Dialect::Redis {
            unlock_sha: control::load_unlock_script(target.addr)?,
        },
        Kind::Etcd => return Err("an etcd target has no line protocol".into()),
    };
    let spec = settings.mode.spec();
    let wait = spec.waits.then_some(settings.wait_secs);
    let semaphore = spec.sharing == Sharing::Semaphore;
    let names = Names::new(&nonce, settings.resources, settings.expire_secs, wait)
        .with_limit(semaphore.then_some(settings.limit));
    let per_conn = if spec.pipelined { settings.pipeline } else { 1 };
    let shares = spec.sharing != Sharing::Exclusive;
    // Without a Limit the server's own bound (`--max-holders`) applies,
    // above any number of fighters here.
    let occupancy = (settings.verify && shares).then(|| {
        let limit = if semaphore { settings.limit } else { u32::MAX };
        Arc::new(Occupancy::new(settings.resources, limit))
    });
    let plan = Plan {
        addr: target.addr,
        dialect: &dialect,
        names: &names,
        spec,
        fighters_per_conn: per_conn,
        rules: rules(settings, occupancy.clone()),
        duration: settings.duration,
        seed: settings.seed,
        nonce: &nonce,
    };

    let threads = settings.threads.clamp(1, connections);
    let (tally, cpu, elapsed) = window(target, settings, threads, |t, barrier, failed| {
        let range = (connections * t / threads)..(connections * (t + 1) / threads);
        engine::run_thread(&plan, range, barrier, failed)
    })?;

    let verify = match &occupancy {
        Some(occupancy) => Some(occupied(occupancy, &tally)),
        None if settings.verify => {
            let counters = control::read_counters(target.addr, &dialect, &names)?;
            Some(compare(&counters, &tally, &names))
        }
        None => None,
    };
    Ok(result(
        target,
        settings,
        (connections, per_conn, round),
        &tally,
        cpu,
        elapsed,
        verify,
    ))
}

/// The rules of a run's fighters.
fn rules(settings: &Settings, occupancy: Option<Arc<Occupancy>>) -> Rules {
    let spec = settings.mode.spec();
    let shares = spec.sharing != Sharing::Exclusive;
    Rules {
        resources: settings.resources,
        // Shares never write the counter: the occupancy check instead.
        verify: settings.verify && !shares,
        on_refusal: spec.on_refusal,
        retry_delay: settings.retry_delay,
        hold: settings.hold,
        sharing: spec.sharing,
        shared_percent: settings.shared_percent,
        occupancy,
        cycles: settings.cycles,
    }
}

/// Fights over an etcd target: the same fighters, tallies and window, on
/// the etcd module's runtime (one request in flight per fighter).
#[cfg(feature = "etcd")]
fn etcd_fight(
    target: &Target,
    settings: &Settings,
    connections: usize,
    round: usize,
    nonce: &str,
) -> Result<RunResult, String> {
    let names = Names::new(nonce, settings.resources, settings.expire_secs, None);
    let plan = crate::etcd::Plan {
        endpoints: &target.endpoints,
        names: &names,
        rules: rules(settings, None),
        fighters: connections,
        threads: settings.threads,
        expire_secs: settings.expire_secs,
        duration: settings.duration,
        seed: settings.seed,
        nonce,
    };
    let (tally, cpu, elapsed) = window(target, settings, 1, |_, barrier, failed| {
        crate::etcd::run(&plan, barrier, failed)
    })?;
    Ok(result(
        target,
        settings,
        (connections, 1, round),
        &tally,
        cpu,
        elapsed,
        None,
    ))
}

/// Without the `etcd` feature there are no etcd fighters; validation
/// refuses such targets before any run, and this says why again.
#[cfg(not(feature = "etcd"))]
fn etcd_fight(
    target: &Target,
    _settings: &Settings,
    _connections: usize,
    _round: usize,
    _nonce: &str,
) -> Result<RunResult, String> {
    Err(format!(
        "{} is an etcd target, but this lockfight was built without the etcd feature",
        target.label
    ))
}

/// Runs `threads` generator threads (`run(t, barrier, failed)` each),
/// reading the server's CPU over the measured window, and merges their
/// tallies: (tally, server CPU seconds, window).
fn window<F>(
    target: &Target,
    settings: &Settings,
    threads: usize,
    run: F,
) -> Result<(Tally, Option<f64>, Duration), String>
where
    F: Fn(usize, &Barrier, &AtomicBool) -> Result<Tally, String> + Sync,
{
    let barrier = Barrier::new(threads + 1);
    let failed = AtomicBool::new(false);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (run, barrier, failed) = (&run, &barrier, &failed);
                scope.spawn(move || run(t, barrier, failed))
            })
            .collect();
        barrier.wait();
        // The server's CPU is read over the same window the threads measure.
        let started = Instant::now();
        let cpu_before = cpu_seconds(&target.pids);
        // The window is --duration, or for a run of --cycles until the
        // fighters are done (at most --duration).
        let bounded = settings.cycles.is_some();
        if !failed.load(Ordering::SeqCst) && !bounded {
            thread::sleep(settings.duration.saturating_sub(started.elapsed()));
        }
        let mut cpu_after = None;
        if !bounded {
            cpu_after = Some(cpu_seconds(&target.pids));
        }
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        let elapsed = started.elapsed().min(settings.duration);
        let cpu_after = cpu_after.unwrap_or_else(|| cpu_seconds(&target.pids));
        let mut tally = Tally::new(settings.resources);
        let mut first_error = None;
        for result in results {
            match result {
                Ok(Ok(t)) => tally.merge(&t),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert_with(|| "a generator thread panicked".to_string());
                }
            }
        }
        let cpu = match (cpu_before, cpu_after) {
            (Ok(Some(before)), Ok(Some(after))) => Ok(Some(after - before)),
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(None),
        };
        match first_error {
            Some(e) => Err(e),
            None => Ok((tally, cpu?, elapsed)),
        }
    })
}

/// CPU seconds of the target's processes added up (a cluster's members),
/// or `None` without any.
fn cpu_seconds(pids: &[u32]) -> Result<Option<f64>, String> {
    if pids.is_empty() {
        return Ok(None);
    }
    pids.iter()
        .map(|&pid| procfs::cpu_seconds(pid))
        .sum::<Result<f64, String>>()
        .map(Some)
}

/// The report of one run from its tally; `shape` is (connections,
/// requests in flight per connection, round).
fn result(
    target: &Target,
    settings: &Settings,
    shape: (usize, usize, usize),
    tally: &Tally,
    cpu: Option<f64>,
    elapsed: Duration,
    verify: Option<Verification>,
) -> RunResult {
    let (connections, per_conn, round) = shape;
    let secs = if settings.cycles.is_some() {
        elapsed.as_secs_f64().max(1e-6)
    } else {
        settings.duration.as_secs_f64()
    };
    let us = |q: f64| tally.latency.quantile(q).as_secs_f64() * 1e6;
    let grants = target.kind != Kind::Echo;
    RunResult {
        target: target.label.clone(),
        kind: target.kind,
        // Every member of a cluster target, in the order given.
        address: target
            .endpoints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        mode: settings.mode,
        connections,
        pipeline: per_conn,
        resources: settings.resources,
        round,
        seconds: secs,
        requests: tally.requests,
        requests_per_sec: tally.requests as f64 / secs,
        lock_requests: tally.lock_requests,
        acquisitions: tally.acquisitions,
        acquisitions_per_sec: grants.then(|| tally.acquisitions as f64 / secs),
        refusals: tally.refusals,
        refusal_ratio: (grants && tally.lock_requests > 0)
            .then(|| tally.refusals as f64 / tally.lock_requests as f64),
        fairness: if grants { tally.fairness() } else { None },
        errors: tally.errors,
        p50_us: us(0.5),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: us(1.0),
        server_cpu_secs: cpu,
        server_cpu_secs_per_million: cpu
            .filter(|_| tally.requests > 0)
            .map(|c| c / tally.requests as f64 * 1e6),
        verify,
        first_unexpected_reply: tally.first_unexpected.clone(),
        first_connection_failure: tally.first_failure.clone(),
    }
}

/// Compares the counters read back with the increments the fighters saw.
fn compare(counters: &[u64], tally: &Tally, names: &Names) -> Verification {
    let mut violations = 0;
    let mut examples = Vec::new();
    for (r, (&counted, &increments)) in counters.iter().zip(&tally.increments).enumerate() {
        if counted != increments {
            violations += 1;
            if examples.len() < EXAMPLES {
                examples.push(format!(
                    "{}: counter {counted}, increments {increments}",
                    String::from_utf8_lossy(&names.counters[r])
                ));
            }
        }
    }
    Verification {
        increments: tally.increments.iter().sum(),
        counted: counters.iter().sum(),
        violations,
        examples,
        lost_holds: tally.lost_holds,
        unfinished: tally.unfinished,
        grants_checked: 0,
        most_shared: 0,
    }
}

/// What the occupancy check of a shared mode found.
fn occupied(occupancy: &Occupancy, tally: &Tally) -> Verification {
    let found = occupancy.findings();
    Verification {
        increments: 0,
        counted: 0,
        violations: found.violations,
        examples: found.examples,
        lost_holds: tally.lost_holds,
        unfinished: tally.unfinished,
        grants_checked: found.grants,
        most_shared: found.most_shared,
    }
}
