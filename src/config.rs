//! The server's command line, parsed and validated into a [`Config`].
//!
//! Every limit the server enforces is a named option here, with its default
//! shown in `--help`.

use clap::Parser;
use std::path::PathBuf;

pub use crate::protocol::DEFAULT_PORT;

/// Jackrabbit DLM: a lock and volatile-data server for many processes on many machines.
///
/// Clients take advisory locks with a TTL (only the owner's ID can release them)
/// and share small values with a TTL. Values are stored and returned untouched
/// and never logged.
#[derive(Debug, Clone, Parser)]
#[command(name = "jackrabbit-dlm", version)]
pub struct Config {
    /// Address to listen on: an IPv4 or IPv6 address or a host name, resolved at start-up (0.0.0.0 serves other machines)
    #[arg(default_value = "127.0.0.1")]
    pub host: String,

    /// TCP port to listen on (0 picks a free one)
    #[arg(default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Longest request line in bytes, newline included; a longer one closes its connection
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u64).range(64..=1 << 30))]
    pub max_line: u64,

    /// Longest TTL (Expire) and Wait a request may ask for, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=10 * 365 * 86_400))]
    pub max_ttl: u64,

    /// Bytes that locks and data may hold in all; past it Lock and Put answer NO [default: a third of physical RAM]
    #[arg(long, value_name = "BYTES")]
    pub max_memory: Option<u64>,

    /// Most simultaneous client connections; more are closed at once (counted as Refused)
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Close a connection whose unfinished line started arriving longer ago than this, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub partial_timeout: u64,

    /// Directory of JackrabbitDLM.log (statistics, start-up and shutdown lines)
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub log_dir: PathBuf,

    /// Seconds between two statistics lines in the log
    #[arg(long, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=31 * 86_400))]
    pub stats_interval: u64,

    /// Pin the reactor thread to this CPU
    #[arg(long, value_name = "N")]
    pub pin_core: Option<usize>,

    /// Stop reading a connection while this many reply bytes wait to be sent to it
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u64).range(4096..=1 << 30))]
    pub max_output: u64,

    /// Most requests served from one connection per event-loop turn, so one busy client cannot starve the rest
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub batch: u64,

    /// Most requests waiting (Lock with Wait) on one lock; past it a waiting Lock gets NotOwner at once
    #[arg(long = "max-waiters", value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_waiters_per_lock: u32,

    /// Most requests waiting on all locks together
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_waiters_total: u64,

    /// Most holders of one lock held shared, and the limit of a shared Lock that gives no Limit
    #[arg(long, value_name = "N", default_value_t = crate::protocol::request::DEFAULT_MAX_HOLDERS,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub max_holders: u32,

    /// Compact tables and buffers (ForcedGC) once this many bytes were freed [default: --max-line]
    #[arg(long, value_name = "BYTES")]
    pub compact_after: Option<u64>,

    /// More diagnostics on stderr (-v: info, -vv: debug, which may show names and IDs; never values)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Config {
    /// Parses `args` (program name first). On error, the message is one line.
    pub fn from_args<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Config::try_parse_from(args)
    }

    /// A configuration with every default, listening on `127.0.0.1:0`: for
    /// tests and embedding.
    pub fn for_tests() -> Config {
        Config::parse_from(["jackrabbit-dlm", "127.0.0.1", "0"])
    }

    /// Bytes freed before a compaction.
    pub fn compact_threshold(&self) -> u64 {
        self.compact_after.unwrap_or(self.max_line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::from_args(["jackrabbit-dlm"]).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", DEFAULT_PORT));
        assert_eq!(c.max_line, 1 << 20);
        assert_eq!(c.max_ttl, 86_400);
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.partial_timeout, 10);
        assert_eq!(c.stats_interval, 3600);
        assert_eq!(c.compact_threshold(), 1 << 20);
        assert_eq!(
            c.max_memory, None,
            "resolved at start-up, not while parsing"
        );
        assert_eq!(
            (c.max_waiters_per_lock, c.max_waiters_total),
            (10_000, 100_000)
        );
        assert_eq!(c.max_holders, 10_000);
    }

    #[test]
    fn positional_host_and_port() {
        let c = Config::from_args(["x", "::1", "4000", "--max-ttl", "60"]).unwrap();
        assert_eq!((c.host.as_str(), c.port, c.max_ttl), ("::1", 4000, 60));
        // Names are kept as given: resolving one is start-up's I/O.
        let c = Config::from_args(["x", "no such host.invalid", "0"]).unwrap();
        assert_eq!(c.host, "no such host.invalid");
    }

    #[test]
    fn bad_values_are_errors() {
        for args in [
            &["x", "127.0.0.1", "70000"][..],
            &["x", "--max-line", "abc"],
            &["x", "--max-ttl", "0"],
            &["x", "--no-such-option"],
            &["x", "--max-connections", "-5"],
        ] {
            assert!(Config::from_args(args.iter().copied()).is_err(), "{args:?}");
        }
    }
}
