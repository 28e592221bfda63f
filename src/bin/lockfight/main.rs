//! `lockfight`: the lock-fighting load generator and benchmark harness.
//!
//! Many fighters compete for the same resources on a lock server: each
//! picks one of `--resources` names at random, locks it, and unlocks it
//! again once it holds it. lockfight drives them from one `mio` loop per
//! thread, so the generator itself stays cheap, and fights over several
//! targets in one invocation, alternating them round by round, so that
//! their figures can be compared as ratios measured side by side:
//! Jackrabbit DLM, Redis, etcd (with the `etcd` feature), and the echo
//! ceiling that `lockfight ceiling` serves.
//!
//! Module map, bottom-up:
//! - `args`: the command line.
//! - `histogram`: the latency histogram (the seeded generator is the
//!   library's `jackrabbit_dlm::rng::Rng`).
//! - `wire`: requests and replies for each target's protocol; no I/O.
//! - `mode`: the table of fighting modes.
//! - `fighter`: one fighter's request sequence and what it counts; no I/O.
//! - `occupancy`: `--verify` of the shared modes, who holds what as the
//!   fighters see it; no I/O.
//! - `engine`: the event loop that drives connections and fighters.
//! - `control`: blocking side talks (script loading, counter check).
//! - `etcd`: the etcd fighters, on a tokio runtime of their own (the
//!   `etcd` feature); the same fighters and tallies as the engine's.
//! - `fight`: one run end to end; `procfs`: the server's CPU and memory.
//! - `report`, `chart`: tables, JSON, the summary and the sweep chart.
//! - `ceiling`: the echo ceiling server; `memory`: resident bytes per entry.

mod args;
mod ceiling;
mod chart;
mod control;
mod engine;
#[cfg(feature = "etcd")]
mod etcd;
mod fight;
mod fighter;
mod histogram;
mod memory;
mod mode;
mod occupancy;
mod procfs;
mod report;
mod target;
mod wire;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::args::{Cli, Command, FightArgs, MemoryArgs};

use crate::fight::Settings;
use crate::report::RunResult;
use crate::target::{Kind, Target};

/// Exit status of a usage error, as clap uses.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Ceiling { host, port }) => match ceiling::serve(&host, port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lockfight: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Memory(args)) => run_memory(&args),
        None => run(cli.fight),
    }
}

fn run_memory(args: &MemoryArgs) -> ExitCode {
    let targets = match args
        .targets
        .iter()
        .map(|t| target::parse(t))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(t) => t,
        Err(e) => return usage(&e),
    };
    if targets.len() != args.server_pids.len() {
        return usage("memory needs one --server-pid per --target");
    }
    if let Some(t) = targets.iter().find(|t| t.kind == Kind::Echo) {
        return usage(&format!("{} is an echo target; it stores nothing", t.label));
    }
    if let Some(t) = targets.iter().find(|t| t.kind == Kind::Etcd) {
        return usage(&format!(
            "{} is an etcd target; memory measures jackrabbit and redis only",
            t.label
        ));
    }
    if args.entries == 0 {
        return usage("--entries must be at least 1");
    }
    if args.value_bytes == 0 || args.value_bytes > 1 << 20 {
        return usage("--value-bytes must be between 1 and 1048576");
    }
    let mut results = Vec::new();
    for (t, &pid) in targets.iter().zip(&args.server_pids) {
        match memory::measure(t, pid, args.entries, args.value_bytes) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("lockfight: {}: {e}", t.label);
                return ExitCode::FAILURE;
            }
        }
    }
    let text = if args.json {
        match serde_json::to_string_pretty(&results) {
            Ok(j) => j + "\n",
            Err(e) => {
                eprintln!("lockfight: cannot write JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else if args.markdown {
        memory::table(&results).markdown()
    } else {
        memory::table(&results).text()
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// Reports a usage error.
fn usage(message: &str) -> ExitCode {
    eprintln!("lockfight: {message}");
    ExitCode::from(USAGE)
}

/// Everything a fighting invocation needs, validated.
struct Invocation {
    targets: Vec<Target>,
    settings: Settings,
    connection_counts: Vec<usize>,
    rounds: usize,
    chart: Option<PathBuf>,
}

fn validate(args: &FightArgs) -> Result<Invocation, String> {
    let mut targets = args
        .targets
        .iter()
        .map(|t| target::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|o| o.label == t.label) {
            return Err(format!(
                "two targets are labelled {:?}; name them LABEL=URL",
                t.label
            ));
        }
    }
    if !args.server_pids.is_empty() {
        if args.server_pids.len() != targets.len() {
            return Err(format!(
                "{} --server-pid for {} --target; give one per target (0 for none)",
                args.server_pids.len(),
                targets.len()
            ));
        }
        for (t, pids) in targets.iter_mut().zip(&args.server_pids) {
            t.pids.clone_from(&pids.0);
        }
    }
    if let Some(t) = targets.iter().find(|t| t.kind == Kind::Etcd) {
        etcd_supports(t, args)?;
    }
    if args.verify {
        if let Some(t) = targets.iter().find(|t| t.kind == Kind::Echo) {
            return Err(format!(
                "--verify needs a lock server; {} is an echo target",
                t.label
            ));
        }
    }
    if args.mode.spec().sharing != crate::mode::Sharing::Exclusive {
        if let Some(t) = targets.iter().find(|t| t.kind != Kind::Jackrabbit) {
            return Err(format!(
                "the {} mode takes shares, which only a jackrabbit target has; {} is not one",
                args.mode, t.label
            ));
        }
    }
    if args.shared_percent > 100 {
        return Err("--shared-percent must be between 0 and 100".into());
    }
    if !(1..=1_000_000).contains(&args.limit) {
        return Err("--limit must be between 1 and 1000000".into());
    }
    if args.cycles == Some(0) {
        return Err("--cycles must be at least 1".into());
    }
    if args.mode.spec().waits {
        if let Some(t) = targets.iter().find(|t| t.kind == Kind::Redis) {
            return Err(format!(
                "{} is Redis, which has no waiting acquire",
                t.label
            ));
        }
    }
    let counts = if args.sweep_connections.is_empty() {
        vec![args.connections]
    } else {
        args.sweep_connections.clone()
    };
    if counts.contains(&0) {
        return Err("connection counts must be at least 1".into());
    }
    if args.resources == 0 {
        return Err("--resources must be at least 1".into());
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86400.0) {
        return Err("--duration must be a number of seconds above 0".into());
    }
    if !(1..=4096).contains(&args.pipeline) {
        return Err("--pipeline must be between 1 and 4096".into());
    }
    if !(args.expire.is_finite() && args.expire > 0.0 && args.expire <= 86400.0) {
        return Err("--expire must be above 0 and at most 86400 seconds".into());
    }
    if args.threads == 0 || args.rounds == 0 {
        return Err("--threads and --rounds must be at least 1".into());
    }
    if !(args.retry_delay_ms.is_finite()
        && args.retry_delay_ms >= 0.0
        && args.retry_delay_ms <= 60_000.0)
    {
        return Err("--retry-delay-ms must be between 0 and 60000".into());
    }
    if !(args.hold_ms.is_finite() && args.hold_ms >= 0.0 && args.hold_ms <= 60_000.0) {
        return Err("--hold-ms must be between 0 and 60000".into());
    }
    if !(args.wait.is_finite() && args.wait > 0.0 && args.wait <= 86400.0) {
        return Err("--wait must be above 0 and at most 86400 seconds".into());
    }
    let chart = args.chart.clone().or_else(|| {
        (!args.sweep_connections.is_empty()).then(|| PathBuf::from("lockfight-sweep.svg"))
    });
    Ok(Invocation {
        targets,
        settings: Settings {
            mode: args.mode,
            resources: args.resources,
            duration: Duration::from_secs_f64(args.duration),
            pipeline: args.pipeline,
            expire_secs: args.expire,
            seed: args.seed,
            threads: args.threads,
            retry_delay: Duration::from_secs_f64(args.retry_delay_ms / 1000.0),
            hold: Duration::from_secs_f64(args.hold_ms / 1000.0),
            wait_secs: args.wait,
            encoding: args.encoding,
            verify: args.verify,
            shared_percent: args.shared_percent,
            limit: args.limit,
            cycles: args.cycles,
        },
        connection_counts: counts,
        rounds: args.rounds,
        chart,
    })
}

/// Refuses what the etcd fighters cannot do: they keep one gRPC channel
/// each with one request in flight (HTTP/2 under gRPC has no order of
/// replies to pipeline on), take exclusive locks without waiting (etcd's
/// own lock waits on a key's deletion, not on a queue in the server), and
/// keep no counters for `--verify`.
fn etcd_supports(t: &Target, args: &FightArgs) -> Result<(), String> {
    if !cfg!(feature = "etcd") {
        return Err(format!(
            "{} is an etcd target, but this lockfight was built without the etcd feature \
             (cargo build --release --features etcd --bin lockfight)",
            t.label
        ));
    }
    let spec = args.mode.spec();
    if spec.pipelined
        || spec.waits
        || spec.sharing != crate::mode::Sharing::Exclusive
        || spec.reconnect != crate::mode::Reconnect::Never
    {
        return Err(format!(
            "{} is an etcd target: only the persistent, patient and aggressive modes \
             fight over etcd (one request in flight per fighter on its own channel), not {}",
            t.label, args.mode
        ));
    }
    if args.verify {
        return Err(format!(
            "--verify does not check etcd targets ({})",
            t.label
        ));
    }
    Ok(())
}

fn run(args: FightArgs) -> ExitCode {
    let inv = match validate(&args) {
        Ok(inv) => inv,
        Err(e) => return usage(&e),
    };
    let mut runs: Vec<RunResult> = Vec::new();
    for &connections in &inv.connection_counts {
        for round in 1..=inv.rounds {
            for target in &inv.targets {
                match fight::fight(target, &inv.settings, connections, round) {
                    Ok(result) => {
                        if !args.quiet {
                            eprintln!("{}", progress_line(&result));
                        }
                        runs.push(result);
                    }
                    Err(e) => {
                        eprintln!("lockfight: {}: {e}", target.label);
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    let labels: Vec<String> = inv.targets.iter().map(|t| t.label.clone()).collect();
    let summary = report::summarize(&runs, &labels);
    if let Some(path) = &inv.chart {
        let title = format!(
            "lockfight {}, {} resources, median of {} round(s)",
            inv.settings.mode, inv.settings.resources, inv.rounds
        );
        if let Err(e) = chart::draw(path, &summary, &labels, &title) {
            eprintln!("lockfight: {e}");
            return ExitCode::FAILURE;
        }
    }
    let compared = labels.len() > 1 || inv.rounds > 1;
    let output = if args.json {
        let doc = serde_json::json!({
            "command": std::env::args().collect::<Vec<_>>(),
            "runs": runs,
            "summary": summary,
        });
        match serde_json::to_string_pretty(&doc) {
            Ok(text) => text + "\n",
            Err(e) => {
                eprintln!("lockfight: cannot write JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let render = |t: report::Table| {
            if args.markdown {
                t.markdown()
            } else {
                t.text()
            }
        };
        let mut text = render(report::runs_table(&runs));
        if compared {
            text.push('\n');
            text.push_str(&render(report::summary_table(&summary, &labels[0])));
        }
        text
    };
    // A closed stdout (lockfight ... | head) is not worth a panic.
    let _ = std::io::stdout().write_all(output.as_bytes());

    let mut failed = false;
    for r in &runs {
        if let Some(v) = r.verify.as_ref().filter(|v| !v.passed()) {
            failed = true;
            let what = if v.grants_checked > 0 {
                format!(
                    "{} of {} grants broke the rules of shared locks",
                    v.violations, v.grants_checked
                )
            } else {
                format!(
                    "{} of {} counters differ from their increments (counted {}, increments {})",
                    v.violations, r.resources, v.counted, v.increments
                )
            };
            eprintln!(
                "lockfight: VIOLATION on {} (round {}, {} connections): {what}{}",
                r.target,
                r.round,
                r.connections,
                if v.unfinished {
                    "; some fighters did not finish their cycle"
                } else {
                    ""
                }
            );
            for example in &v.examples {
                eprintln!("lockfight:   {example}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn progress_line(r: &RunResult) -> String {
    let mut line = format!(
        "{} {} c={} P={} round {}: {:.0} req/s, p99 {:.1}µs, {} errors",
        r.target,
        r.mode,
        r.connections,
        r.pipeline,
        r.round,
        r.requests_per_sec,
        r.p99_us,
        r.errors
    );
    if let Some(cpu) = r.server_cpu_secs_per_million {
        line.push_str(&format!(", server {cpu:.2} CPU s/Mreq"));
    }
    if let Some(v) = &r.verify {
        let checked = if v.grants_checked > 0 {
            format!(
                "{} grants checked, at most {} shared at once",
                v.grants_checked, v.most_shared
            )
        } else {
            format!("{} increments", v.increments)
        };
        line.push_str(&format!(
            ", verify {} ({checked}, {} lost holds)",
            if v.passed() { "ok" } else { "FAILED" },
            v.lost_holds
        ));
    }
    if let Some(reply) = &r.first_unexpected_reply {
        line.push_str(&format!(", first unexpected reply {reply:?}"));
    }
    if let Some(why) = &r.first_connection_failure {
        line.push_str(&format!(", first connection failure: {why}"));
    }
    line
}
