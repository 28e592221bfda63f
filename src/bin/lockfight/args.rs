//! lockfight's command line: the fighting options (the default command),
//! and the `ceiling` and `memory` subcommands.

use std::path::PathBuf;

use clap::builder::{BoolishValueParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand};
use jackrabbit_dlm::protocol::Encoding;

use crate::mode::Mode;

#[derive(Parser)]
#[command(
    name = "lockfight",
    version,
    about = "Lock-fighting load generator: Jackrabbit DLM against Redis, etcd and the echo ceiling",
    long_about = "Lock-fighting load generator: Jackrabbit DLM against Redis, etcd and the echo ceiling.\n\n\
        Each fighter owns an ID (and a connection, except in oneshot mode), picks one of \
        --resources names at random, sends Lock (Expire --expire), and on Locked sends Unlock. \
        Throughput counts every reply; acquisitions count granted locks; NotOwner is the share \
        of Lock requests refused; fairness is Jain's index of the locks granted per fighter \
        (1 when all got as many). Latencies run from a request's write to its reply. Give several --target options to compare them in one run: \
        they are run in turn, round after round (--rounds), and the summary quotes the first \
        target's figures divided by each other's, as the median over the rounds.\n\n\
        Exit status: 0 on success, 1 on a failed run or a --verify violation, 2 on a usage error.",
    args_conflicts_with_subcommands = true,
    args_override_self = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub fight: FightArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the echo ceiling: one mio thread, the same fixed reply to every line, no state
    ///
    /// Prints "lockfight ceiling listening on ADDRESS" once bound, then serves
    /// until killed. Fight over it with --target echo://ADDRESS.
    Ceiling {
        /// IP address to listen on
        #[arg(default_value = "127.0.0.1")]
        host: String,
        /// TCP port to listen on (0 picks a free one)
        #[arg(default_value_t = 37374)]
        port: u16,
    },
    /// Measure servers' resident memory: idle, then per entry after N locks and N data items
    ///
    /// Reads VmRSS of each server process idle, after creating --entries locks, and after
    /// creating --entries data items of --value-bytes bytes; reports bytes per entry and the
    /// overhead beyond the name, ID and value bytes. Removes the entries at the end. Start
    /// the servers fresh for a meaningful idle figure.
    Memory(MemoryArgs),
}

#[derive(Args)]
pub struct MemoryArgs {
    #[arg(
        long = "target",
        value_name = "URL",
        required = true,
        help = "Server to fill: [LABEL=]jackrabbit://HOST[:PORT] or [LABEL=]redis://HOST[:PORT]; \
                repeat for several"
    )]
    pub targets: Vec<String>,

    /// PID of each target's server process, in the same order as --target
    #[arg(long = "server-pid", value_name = "PID", required = true)]
    pub server_pids: Vec<u32>,

    /// Locks created, then data items created
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub entries: u64,

    /// Bytes of each data item's value
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    pub value_bytes: usize,

    /// Print the results as JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Print the results as a Markdown table
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
}

#[derive(Args)]
pub struct FightArgs {
    #[arg(
        long = "target",
        value_name = "URL",
        required = true,
        help = "Server to fight over: [LABEL=]jackrabbit://HOST[:PORT] (default port 37373), \
                [LABEL=]redis://HOST[:PORT] (default 6379), [LABEL=]echo://HOST:PORT or \
                [LABEL=]etcd://HOST[:PORT][,HOST[:PORT]...] (default 2379; the etcd feature; \
                persistent, patient and aggressive modes). Repeat to compare targets in one run; \
                the first is the reference of the ratios"
    )]
    pub targets: Vec<String>,

    /// Fighting mode
    #[arg(long, value_enum, default_value_t = Mode::Persistent)]
    pub mode: Mode,

    /// Concurrent connections (oneshot: concurrent fighters, each on a new connection per request)
    #[arg(short = 'c', long, default_value_t = 32, value_name = "C")]
    pub connections: usize,

    /// Run once per connection count instead of --connections, e.g. 1,8,32,128, and draw the
    /// chart (see --chart)
    #[arg(long, value_delimiter = ',', value_name = "C,C,...")]
    pub sweep_connections: Vec<usize>,

    /// Number of resource names the fighters compete for
    #[arg(short = 'k', long, default_value_t = 1024, value_name = "K")]
    pub resources: u32,

    /// Seconds measured per run (fractions allowed)
    #[arg(short = 'd', long, default_value_t = 3.0, value_name = "SECS")]
    pub duration: f64,

    /// Requests written per connection before the replies are read (pipelined mode only)
    #[arg(short = 'p', long, default_value_t = 32, value_name = "P")]
    pub pipeline: usize,

    /// Expire of each Lock, in seconds (Redis: PX in milliseconds)
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub expire: f64,

    /// Seed of the fighters' random choices
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Generator threads, each with its own mio loop and a share of the connections
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Rounds: every target runs once per round, targets alternating (A,B,C,A,B,C,...)
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,

    /// Milliseconds a patient (or chaos) fighter sleeps before retrying a refused lock
    #[arg(long, default_value_t = 1.0, value_name = "MS")]
    pub retry_delay_ms: f64,

    /// Milliseconds a fighter holds a granted lock before its next request (any mode)
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub hold_ms: f64,

    /// Wait of each Lock in the wait mode, in seconds: how long the server may queue it
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub wait: f64,

    /// Percentage of the cycles that take a share in the rw mode (the rest take the lock
    /// exclusively; 0 is the same load with exclusive locks only)
    #[arg(long, default_value_t = 95, value_name = "PERCENT")]
    pub shared_percent: u32,

    /// Limit of each share in the semaphore mode: at most N holders of a resource at once
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub limit: u32,

    /// Lock attempts each fighter makes before it stops; the run ends when all have (or when
    /// --duration has passed), and rates are per second of the run's real length
    #[arg(long, value_name = "N")]
    pub cycles: Option<u64>,

    /// Send table-encoded lines instead of plain JSON (jackrabbit and echo targets)
    #[arg(
        long = "encoded",
        action = clap::ArgAction::SetTrue,
        value_parser = BoolishValueParser::new().map(Encoding::table_when)
    )]
    pub encoding: Encoding,

    /// Each holder does Get, Put(value+1) on the counter its lock guards before Unlock; at the
    /// end every counter must equal its increments, or the run fails (not for echo targets).
    /// In the rw and semaphore modes, every grant is checked instead against who holds the
    /// resource as the fighters see it: no exclusive holder beside another holder, no more
    /// shares than the limit, fencing tokens increasing in the order of grant
    #[arg(long)]
    pub verify: bool,

    /// PID of a target's server process, to report its CPU seconds (user+system, all threads,
    /// from /proc) per million requests; give one per --target, in the same order (0 for none);
    /// for a cluster, PID+PID+PID adds up its members
    #[arg(long = "server-pid", value_name = "PID[+PID...]", value_parser = crate::target::Pids::parse)]
    pub server_pids: Vec<crate::target::Pids>,

    /// Print the results as JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Print the results as Markdown tables
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,

    /// Where to write the SVG chart of throughput and p99 against connections
    /// [default with --sweep-connections: lockfight-sweep.svg]
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,

    /// Don't print a line per run on stderr as runs finish
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_asks_for_the_table_encoding() {
        let encoding = |args: &[&str]| Cli::try_parse_from(args).unwrap().fight.encoding;
        let target = ["lockfight", "--target", "jackrabbit://127.0.0.1:37373"];
        assert_eq!(encoding(&target), Encoding::Plain);
        assert_eq!(
            encoding(&[&target[..], &["--encoded"]].concat()),
            Encoding::Table
        );
    }
}
