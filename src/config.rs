//! The server's command line, parsed and validated into a [`Config`].
//!
//! Every limit the server enforces is a named option here, with its default
//! shown in `--help`. Every option can also be set from the environment
//! (`JACKRABBIT_DLM_<NAME>`, see [`command`]), for unit files and containers.

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
    /// Address to listen on: an IPv4 or IPv6 address or a host name, resolved at start-up (0.0.0.0 or '' serves other machines, '' as upstream's server reads it)
    #[arg(default_value = "127.0.0.1")]
    pub host: String,

    /// TCP port to listen on (0 picks a free one)
    #[arg(default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Longest request line in bytes, newline included; a longer one is answered BadPayload and discarded (upstream's limit is 10485760)
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

    /// Write the server's process ID to this file once it listens; removed on a clean exit
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,

    /// Connections the kernel may queue before the server accepts them (the listen backlog)
    #[arg(long, value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub backlog: u32,

    /// Close each connection after its first reply, as the upstream server does (for clients that read until end of file)
    #[arg(long)]
    pub close_after_reply: bool,

    /// Time stamps in the statistics log in UTC instead of local time
    #[arg(long)]
    pub log_utc: bool,

    /// Once per statistics interval, log the client addresses refused (NotOwner, BadPayload, AuthFailed) and how often: lines "DLMerror/KIND: ADDRESS COUNT, ...", the busiest first, never a name, ID or payload
    #[arg(long)]
    pub audit: bool,

    /// With --audit: most client addresses tracked per statistics interval; the refusals of further addresses are logged as one figure ("others COUNT")
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub audit_max_addresses: u32,

    /// Authenticate requests that carry a Name against the identity files DIR/NAME.cfg (upstream's Config directory), read at start-up, when they change, and on SIGHUP; off without it
    #[arg(long, value_name = "DIR")]
    pub identity_dir: Option<PathBuf>,

    /// With --identity-dir: the longest Expire (and Wait) a request without a Name may ask for, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 3543,
          value_parser = clap::value_parser!(u64).range(1..=10 * 365 * 86_400))]
    pub anonymous_max_ttl: u64,

    /// With --identity-dir: the longest DataStore a request without a Name may put, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 16_384)]
    pub anonymous_max_value: u64,

    /// With --identity-dir: most identity files read (the rest are ignored, with a warning)
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_identities: u32,

    /// More diagnostics on stderr (-v: info, -vv: debug, which may show names and IDs; never values)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Serve Prometheus metrics (GET /metrics), /livez and /readyz over HTTP on this HOST:PORT [default: off]
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,

    /// Most connections the metrics port keeps open at once; more are closed at once
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub metrics_max_connections: u64,

    /// Longest HTTP request head the metrics port reads, in bytes; a longer one is answered 400
    #[arg(long, value_name = "BYTES", default_value_t = 8192,
          value_parser = clap::value_parser!(u64).range(256..=1 << 20))]
    pub metrics_max_request: u64,

    /// Close a metrics-port connection this many seconds after it was accepted, answered or not
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub metrics_timeout: u64,

    /// Keep every acknowledged change in DIR (a log with checksums and snapshots), fsynced before the reply; a restart resumes from it. Required with --peers [default: memory only]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Serve as one member of a cluster: every member's replication address, this node's included, as ID=HOST:PORT,... (IDs 1 to 65535)
    #[arg(long, value_name = "ID=HOST:PORT,...", value_parser = parse_peers)]
    pub peers: Option<Peers>,

    /// This node's ID among --peers
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u16).range(1..))]
    pub node_id: Option<u16>,

    /// With --peers and a new --data-dir: join a running cluster that was told of this node (`dlm cluster add ID=HOST:PORT`) instead of founding one; its state comes from the leader. --peers then lists the members to reach and this node
    #[arg(long)]
    pub join: bool,

    /// With --peers and --identity-dir: a Name whose authenticated requests may list the members and change them (`dlm cluster status|add|remove`); repeat or separate with commas [default: nobody may]
    #[arg(long = "admin", value_name = "NAME", value_delimiter = ',')]
    pub admins: Vec<String>,

    /// Answer Unavailable to a request that is not committed within this many seconds (its effect is then unknown)
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub commit_timeout: u64,

    /// Milliseconds between two heartbeats of the leader; a follower that hears none for 10 to 20 of them starts an election
    #[arg(long, value_name = "MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub heartbeat_ms: u64,

    /// Write a snapshot of the store and drop the log before it every this many applied entries
    #[arg(long, value_name = "ENTRIES", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_after: u64,

    /// Also write a snapshot once the entries applied since the last one hold this many bytes: the log since the snapshot is kept in memory, so this bounds it
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20,
          value_parser = clap::value_parser!(u64).range(1 << 16..))]
    pub snapshot_after_bytes: u64,

    /// Longest message a member accepts from another, in bytes (raft batches and snapshots); a longer one closes that replication connection
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30,
          value_parser = clap::value_parser!(u64).range(1 << 20..=1 << 32))]
    pub max_peer_message: u64,

    /// A test hook: read "MONOTONIC_MS WALL_MS" from this file at most every 50 ms, and step the clock this server reads forward by the first (never back) and the wall clock by the second (FAULTS.md)
    #[arg(long, value_name = "PATH", hide = true)]
    pub clock_offset_file: Option<PathBuf>,
}

/// The members of a cluster: `(id, address)` by ID, each address as given
/// (resolved at start-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers(pub Vec<(u16, String)>);

/// `1=HOST:PORT,2=HOST:PORT,...`: IDs from 1 to 65535, each once.
pub fn parse_peers(text: &str) -> Result<Peers, String> {
    let mut peers = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not ID=HOST:PORT"))?;
        let id: u16 = id
            .trim()
            .parse()
            .ok()
            .filter(|&id| id > 0)
            .ok_or_else(|| format!("'{id}' is not a node ID from 1 to 65535"))?;
        let addr = addr.trim();
        if addr
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            return Err(format!("'{addr}' is not HOST:PORT"));
        }
        if peers.iter().any(|&(other, _)| other == id) {
            return Err(format!("node {id} is listed twice"));
        }
        peers.push((id, addr.to_owned()));
    }
    if peers.is_empty() {
        return Err("no members listed".to_owned());
    }
    peers.sort_by_key(|&(id, _)| id);
    Ok(Peers(peers))
}

/// The prefix of the environment variables that set options:
/// `JACKRABBIT_DLM_MAX_LINE=4096` is `--max-line 4096`, `JACKRABBIT_DLM_HOST`
/// and `JACKRABBIT_DLM_PORT` the positional arguments. An option on the
/// command line wins over its variable.
pub const ENV_PREFIX: &str = "JACKRABBIT_DLM_";

/// The server's command line as clap sees it, with every argument also
/// read from its `JACKRABBIT_DLM_<NAME>` variable (named after the long
/// option, or the positional argument; shown in `--help`). Added here
/// rather than per option, so that no option can be left without one.
pub fn command() -> clap::Command {
    use clap::CommandFactory as _;
    Config::command().mut_args(|arg| {
        let name = arg
            .get_long()
            .map_or_else(|| arg.get_id().as_str().to_owned(), str::to_owned);
        if matches!(name.as_str(), "help" | "version") {
            return arg;
        }
        let var = format!(
            "{ENV_PREFIX}{}",
            name.to_ascii_uppercase().replace('-', "_")
        );
        arg.env(var)
    })
}

/// Writes the server's man page, `jackrabbit-dlm.1`, in roff.
/// clap_mangen leaves the variables out, so they get their own section.
pub fn write_man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let command = command();
    clap_mangen::Man::new(command.clone()).render(out)?;
    writeln!(out, ".SH ENVIRONMENT")?;
    writeln!(
        out,
        "Every option can also be set from a variable; an option given on the command line wins."
    )?;
    for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
        let Some(var) = arg.get_env().and_then(|v| v.to_str()) else {
            continue;
        };
        let option = arg.get_long().map_or_else(
            || arg.get_id().as_str().to_ascii_uppercase(),
            |long| format!("\\-\\-{}", long.replace('-', "\\-")),
        );
        writeln!(out, ".TP\n\\fB{var}\\fR\nAs \\fB{option}\\fR.")?;
    }
    Ok(())
}

impl Config {
    /// Parses `args` (program name first). On error, the message is one line.
    pub fn from_args<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::FromArgMatches as _;
        let matches = command().try_get_matches_from(args)?;
        Config::from_arg_matches(&matches).map_err(|e| e.format(&mut command()))
    }

    /// A configuration with every default, listening on `127.0.0.1:0`: for
    /// tests and embedding (the environment is not read).
    pub fn for_tests() -> Config {
        Config::parse_from(["jackrabbit-dlm", "127.0.0.1", "0"])
    }

    /// Checks what clap cannot: the cluster options belong together.
    pub fn check(&self) -> Result<(), String> {
        if self.join && self.peers.is_none() {
            return Err("--join needs --peers: the members to join".to_owned());
        }
        if !self.admins.is_empty() {
            if self.peers.is_none() {
                return Err(
                    "--admin needs --peers: only a cluster has members to change".to_owned(),
                );
            }
            if self.identity_dir.is_none() {
                return Err("--admin needs --identity-dir: an admin authenticates with its Name and Identity".to_owned());
            }
            if let Some(bad) = self
                .admins
                .iter()
                .find(|n| !crate::session::auth::valid_name(n))
            {
                return Err(format!("--admin {bad:?} is not a valid Name"));
            }
        }
        match (&self.peers, self.node_id) {
            (Some(peers), Some(id)) => {
                if !peers.0.iter().any(|&(member, _)| member == id) {
                    return Err(format!("--node-id {id} is not among --peers"));
                }
                if self.data_dir.is_none() {
                    return Err(
                        "--peers needs --data-dir: a member that forgets its votes and log on restart could break the cluster's guarantees".to_owned(),
                    );
                }
                Ok(())
            }
            (Some(_), None) => Err("--peers needs --node-id".to_owned()),
            (None, Some(_)) => Err("--node-id needs --peers".to_owned()),
            (None, None) => Ok(()),
        }
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
        assert!(!c.audit, "off by default");
        assert_eq!(c.audit_max_addresses, 10_000);
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
    fn every_option_has_its_environment_variable() {
        let command = command();
        let mut seen = Vec::new();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let var = arg.get_env().and_then(|v| v.to_str()).unwrap_or("");
            assert!(var.starts_with(ENV_PREFIX), "{id} has no variable");
            assert_eq!(var, var.to_ascii_uppercase(), "{id}");
            seen.push(var.to_owned());
        }
        for var in [
            "JACKRABBIT_DLM_HOST",
            "JACKRABBIT_DLM_PORT",
            "JACKRABBIT_DLM_MAX_LINE",
            "JACKRABBIT_DLM_MAX_WAITERS",
            "JACKRABBIT_DLM_METRICS",
            "JACKRABBIT_DLM_VERBOSE",
        ] {
            assert!(seen.iter().any(|s| s == var), "{var} missing from {seen:?}");
        }
        let help = command.clone().render_long_help().to_string();
        assert!(help.contains("[env: JACKRABBIT_DLM_MAX_LINE="), "{help}");
        // The test hook is hidden, from the man page too.
        assert!(!help.contains("clock-offset"), "{help}");
        let mut page = Vec::new();
        write_man_page(&mut page).unwrap();
        let page = String::from_utf8_lossy(&page);
        assert!(!page.contains("CLOCK_OFFSET"), "{page}");
        let c = Config::from_args(["x", "--clock-offset-file", "/tmp/o"]).unwrap();
        assert_eq!(
            c.clock_offset_file.as_deref(),
            Some(std::path::Path::new("/tmp/o"))
        );
    }

    #[test]
    fn metrics_options() {
        let c = Config::from_args(["x"]).unwrap();
        assert_eq!(c.metrics, None, "off by default");
        assert_eq!(
            (
                c.metrics_max_connections,
                c.metrics_max_request,
                c.metrics_timeout
            ),
            (16, 8192, 10)
        );
        let c = Config::from_args(["x", "--metrics", "[::1]:9100"]).unwrap();
        assert_eq!(c.metrics.as_deref(), Some("[::1]:9100"));
        assert!(Config::from_args(["x", "--metrics-max-request", "10"]).is_err());
    }

    #[test]
    fn man_page_names_the_options() {
        let mut page = Vec::new();
        write_man_page(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains(".TH jackrabbit-dlm 1"), "{page}");
        assert!(page.contains("max\\-line"), "{page}");
    }

    #[test]
    fn cluster_options() {
        let c = Config::from_args(["x"]).unwrap();
        assert_eq!(
            (c.peers.clone(), c.node_id, c.commit_timeout, c.heartbeat_ms),
            (None, None, 5, 100)
        );
        assert_eq!(c.check(), Ok(()));
        let c = Config::from_args([
            "x",
            "--peers",
            "2=127.0.0.1:7002, 1=localhost:7001,3=[::1]:7003",
            "--node-id",
            "2",
            "--data-dir",
            "/tmp/d",
        ])
        .unwrap();
        let peers = c.peers.clone().unwrap().0;
        assert_eq!(peers[0], (1, "localhost:7001".to_owned()));
        assert_eq!(peers[2], (3, "[::1]:7003".to_owned()));
        assert_eq!(c.check(), Ok(()));
        for bad in ["1=a:1,1=b:2", "0=a:1", "1=nohost", "x", ""] {
            assert!(Config::from_args(["x", "--peers", bad]).is_err(), "{bad}");
        }
        let c = Config::from_args(["x", "--peers", "1=a:1", "--node-id", "2", "--data-dir", "d"])
            .unwrap();
        assert!(c.check().unwrap_err().contains("not among"));
        let c = Config::from_args(["x", "--peers", "1=a:1", "--node-id", "1"]).unwrap();
        assert!(c.check().unwrap_err().contains("--data-dir"));
        let c = Config::from_args(["x", "--node-id", "1"]).unwrap();
        assert!(c.check().is_err());
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
