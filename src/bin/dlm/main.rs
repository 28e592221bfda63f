//! `dlm`: the Jackrabbit DLM from the shell.
//!
//! One subcommand per protocol action, built on [`jackrabbit_dlm::client`],
//! plus `dlm run`, a distributed `flock(1)` (see `run.rs`), `dlm identity
//! new` (identity files) and `dlm chart` (a statistics log drawn, see
//! `chart.rs`). Answers go to stdout (plain, or one JSON object with
//! `--json`); anything that is not success is one line on stderr and an
//! exit status a script can branch on. Every option can also come from the
//! environment (`DLM_<OPTION>`, shown in `--help`).

mod chart;
mod generate;
mod run;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::{BoolishValueParser, TypedValueParser as _};
use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use jackrabbit_dlm::client::{
    Base64, DEFAULT_PORT, Encoding, Error, ErrorKind, Identity, Locker, LockerBuilder, Status,
    Table,
};

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the lock or item is owned by another ID, or absent
  2  usage error (also a request the server rejects as malformed)
  3  the server cannot be reached or the connection broke
  4  the server refused for another reason (memory guard, unknown action)
     or did not answer in the protocol
`dlm run` exits with COMMAND's status instead (128 + N if signal N ended it),
or with --conflict-exit-code when the lock is held by another ID.

Each dlm invocation acts as a fresh random ID unless --id or DLM_ID gives
one: set DLM_ID (or pass the same --id) for commands that must act as one
owner, such as `dlm lock x` then `dlm unlock x`.";

/// What a `dlm` invocation ends with; the number is the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success = 0,
    Refused = 1,
    Usage = 2,
    Connection = 3,
    Server = 4,
}

impl Outcome {
    /// The exit status for a client error.
    fn of(error: &Error) -> Outcome {
        match error.kind() {
            ErrorKind::Io { .. } => Outcome::Connection,
            ErrorKind::Status {
                status: Status::NotOwner | Status::NotFound,
                ..
            } => Outcome::Refused,
            ErrorKind::Status {
                status: Status::BadPayload,
                ..
            } => Outcome::Usage,
            _ => Outcome::Server,
        }
    }
}

/// Talk to a Jackrabbit DLM server: locks, data items, and running a command
/// under a lock.
#[derive(Debug, Parser)]
#[command(name = "dlm", version, after_help = EXIT_STATUS_HELP)]
struct Cli {
    /// The server's host name or address.
    #[arg(long, global = true, env = "DLM_HOST", default_value = "127.0.0.1")]
    host: String,

    /// The server's port.
    #[arg(long, global = true, env = "DLM_PORT", default_value_t = DEFAULT_PORT)]
    port: u16,

    /// The ID to act as [default: a fresh random ID for each invocation].
    #[arg(long, global = true, env = "DLM_ID", hide_env_values = true)]
    id: Option<String>,

    /// Send table-encoded request lines instead of plain JSON (the current
    /// upstream server reads nothing else).
    #[arg(
        long = "encoded",
        global = true,
        env = "DLM_ENCODED",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new().map(Encoding::table_when)
    )]
    encoding: Encoding,

    /// How values are stored: `table` as the Python client stores them (so
    /// either reads what the other put), `identity` as UTF-8 text unchanged,
    /// `base64` as standard base64.
    #[arg(long, global = true, env = "DLM_CODEC", value_enum, default_value_t = CodecChoice::Table)]
    codec: CodecChoice,

    /// Authenticate as NAME (needs --identity-file).
    #[arg(
        long = "name",
        global = true,
        env = "DLM_NAME",
        value_name = "NAME",
        requires = "identity_file"
    )]
    auth_name: Option<String>,

    /// The identity file of --name: a JSON object with an `Identity`, as
    /// `dlm identity new` writes it.
    #[arg(
        long,
        global = true,
        env = "DLM_IDENTITY_FILE",
        value_name = "FILE",
        requires = "auth_name"
    )]
    identity_file: Option<PathBuf>,

    /// Print answers as one JSON object per command, for scripts.
    #[arg(long, global = true, env = "DLM_JSON")]
    json: bool,

    /// Seconds to wait for the connection and for each reply.
    #[arg(long, global = true, env = "DLM_TIMEOUT", value_name = "S", default_value = "10", value_parser = seconds)]
    timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

/// `--codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CodecChoice {
    Table,
    Identity,
    Base64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Take or renew a lock.
    Lock {
        /// The lock's name.
        name: String,
        /// Seconds the hold lasts unless renewed.
        #[arg(long, env = "DLM_EXPIRE", value_name = "S", value_parser = positive_seconds)]
        expire: Duration,
        /// Take a share, beside other shared holders (like `flock -s`)
        #[arg(long)]
        shared: bool,
        /// With --shared: at most N holders at once, a semaphore (every holder must give the same N)
        #[arg(long, value_name = "N", requires = "shared",
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Release a lock (this ID's own share, if it holds one).
    Unlock {
        /// The lock's name.
        name: String,
    },
    /// Show who holds a lock, changing nothing (exit 0 only if it is this ID).
    Test {
        /// The lock's name.
        name: String,
    },
    /// Store VALUE (`-` reads it from stdin) as the data item NAME.
    Put {
        /// The data item's name.
        name: String,
        /// The value, or `-` to read it from stdin.
        value: String,
        /// Seconds the item lasts unless stored again.
        #[arg(long, env = "DLM_EXPIRE", value_name = "S", value_parser = positive_seconds)]
        expire: Duration,
    },
    /// Print the data item NAME exactly as stored.
    Get {
        /// The data item's name.
        name: String,
    },
    /// Remove the data item NAME.
    Erase {
        /// The data item's name.
        name: String,
    },
    /// Print the server's version.
    Version,
    /// Print the server's counters.
    Stats,
    /// Run COMMAND while holding the lock NAME, like flock(1) across machines.
    ///
    /// The hold is renewed every EXPIRE/3 seconds while COMMAND runs and
    /// released when it exits. COMMAND gets the hold's fencing token as
    /// $DLM_TOKEN (when the server issues tokens), the lock's name as
    /// $DLM_LOCK_NAME and the ID as $DLM_ID. If the hold is lost, COMMAND
    /// gets SIGTERM (and SIGKILL after --kill-after, if given).
    Run {
        /// The lock's name.
        name: String,
        /// Seconds the hold lasts unless renewed.
        #[arg(long, env = "DLM_EXPIRE", value_name = "S", value_parser = positive_seconds)]
        expire: Duration,
        /// Seconds to wait in the lock's queue before giving up (shown on a
        /// terminal while it waits).
        #[arg(long, env = "DLM_WAIT", value_name = "S", default_value = "0", value_parser = seconds)]
        wait: Duration,
        /// The exit status when another ID holds the lock (after --wait).
        #[arg(
            short = 'E',
            long,
            env = "DLM_CONFLICT_EXIT_CODE",
            value_name = "N",
            default_value_t = 1
        )]
        conflict_exit_code: u8,
        /// After the hold is lost and COMMAND got SIGTERM, send SIGKILL if
        /// it is still running this many seconds later.
        #[arg(long, env = "DLM_KILL_AFTER", value_name = "S", value_parser = seconds)]
        kill_after: Option<Duration>,
        /// Hold a share, beside other shared holders, never beside an
        /// exclusive one (like `flock -s`); renewed as a share.
        #[arg(long, env = "DLM_SHARED")]
        shared: bool,
        /// At most N of these commands at once across machines, a
        /// semaphore (like `consul lock -n`; implies --shared; every
        /// holder must give the same N): past N, the next waits up to
        /// --wait, then exits with --conflict-exit-code.
        #[arg(long, env = "DLM_LIMIT", value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Run this shell command (with `sh -c`) instead of COMMAND.
        #[arg(
            short = 'c',
            long = "command",
            value_name = "SHELL COMMAND",
            conflicts_with = "command"
        )]
        shell: Option<OsString>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required_unless_present = "shell", value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// Identity files for authentication (`--name`, `--identity-file`).
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// A cluster's members: list them, add one, remove one. Needs `--name`
    /// and `--identity-file` of a Name the servers were started with as
    /// `--admin`.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Draw every counter of a statistics log (this server's or upstream's
    /// JackrabbitDLM.log) over time as an SVG chart, one line per counter,
    /// log scale.
    Chart {
        /// The statistics log.
        log: PathBuf,
        /// The SVG file to write.
        #[arg(short, long, value_name = "FILE.svg")]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Show the members as the server asked sees them: its ID, the leader,
    /// the term, the voters and every member's replication address.
    Status,
    /// Add member ID, listening for the others at HOST:PORT (its --peers
    /// entry); then start it with --join. Safe to repeat.
    Add {
        /// The new member as ID=HOST:PORT.
        #[arg(value_name = "ID=HOST:PORT", value_parser = member_to_add)]
        member: (u16, String),
    },
    /// Remove member ID (then stop it). Safe to repeat.
    Remove {
        /// The member's ID.
        #[arg(value_name = "ID", value_parser = clap::value_parser!(u16).range(1..))]
        member: u16,
    },
}

/// `ID=HOST:PORT`, as `dlm cluster add` takes it.
fn member_to_add(text: &str) -> Result<(u16, String), String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ID=HOST:PORT"))?;
    let id = id
        .parse::<u16>()
        .ok()
        .filter(|&id| id > 0)
        .ok_or_else(|| format!("{id:?} is not a member ID from 1 to 65535"))?;
    if addr
        .rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(format!("{addr:?} is not HOST:PORT"));
    }
    Ok((id, addr.to_owned()))
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Write a new identity file DIR/NAME.cfg (mode 0600; never over an
    /// existing one) with a random Identity of upstream's length. Copy it to
    /// the server's identity directory and to the clients of NAME.
    New {
        /// The Name it authenticates: 1 to 255 of A-Z a-z 0-9 . _ -, not
        /// starting with `.`.
        name: String,
        /// The directory to write it in (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

/// A number of seconds, fractions allowed, not negative.
fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(value).map_err(|_| format!("{text:?} is not a usable duration"))
}

/// A number of seconds above zero.
fn positive_seconds(text: &str) -> Result<Duration, String> {
    match seconds(text)? {
        d if d.is_zero() => Err("must be more than 0 seconds".to_owned()),
        d => Ok(d),
    }
}

/// A clap error as one line: its message without the usage block.
fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect();
    message.join(" ").trim_start_matches("error: ").to_owned()
}

fn main() -> ExitCode {
    if let Some(code) = generate::if_asked() {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("dlm: a subcommand is needed; see dlm --help");
            return ExitCode::from(Outcome::Usage as u8);
        }
        Err(e) => {
            eprintln!("dlm: {}", one_line(&e));
            return ExitCode::from(Outcome::Usage as u8);
        }
    };
    ExitCode::from(dispatch(cli))
}

/// Runs the command line's subcommand and returns the exit status.
fn dispatch(cli: Cli) -> u8 {
    let Cli {
        host,
        port,
        id,
        encoding,
        codec,
        auth_name,
        identity_file,
        json,
        timeout,
        command,
    } = cli;
    // Version and Stats still need a FileName on the wire.
    let name = match &command {
        Command::Lock { name, .. }
        | Command::Unlock { name }
        | Command::Test { name }
        | Command::Put { name, .. }
        | Command::Get { name }
        | Command::Erase { name }
        | Command::Run { name, .. } => name.clone(),
        Command::Version | Command::Stats | Command::Cluster(_) => "dlm".to_owned(),
        Command::Identity(IdentityCommand::New { name, dir }) => {
            return identity_new(name, dir, Report { json, drawn: false });
        }
        Command::Chart { log, output } => return chart(log, output, Report { json, drawn: false }),
    };
    let limit = match &command {
        Command::Lock { limit, .. } | Command::Run { limit, .. } => *limit,
        _ => None,
    };
    let mut builder = Locker::builder(name)
        .host(host)
        .port(port)
        .timeout(timeout)
        .encoding(encoding);
    builder = match codec {
        CodecChoice::Table => builder.codec(Table),
        CodecChoice::Identity => builder.codec(Identity),
        CodecChoice::Base64 => builder.codec(Base64),
    };
    if let Some(limit) = limit {
        builder = builder.limit(limit);
    }
    if let (Some(auth_name), Some(file)) = (auth_name, identity_file) {
        builder = builder.name(auth_name).identity_file(file);
    }
    // An empty DLM_ID counts as none.
    let id = id.filter(|id| !id.is_empty());
    let report = Report {
        json,
        drawn: id.is_none(),
    };
    let mut locker = match with_id(builder, id).build() {
        Ok(locker) => locker,
        Err(e) => return report.fail(&e),
    };
    let outcome = match command {
        Command::Lock { expire, shared, .. } => lock(&mut locker, expire, shared, report),
        Command::Unlock { .. } => unlock(&mut locker, report),
        Command::Test { .. } => test(&mut locker, report),
        Command::Put { value, expire, .. } => put(&mut locker, &value, expire, report),
        Command::Get { .. } => get(&mut locker, report),
        Command::Erase { .. } => erase(&mut locker, report),
        Command::Version => version(&mut locker, report),
        Command::Stats => stats(&mut locker, report),
        Command::Cluster(command) => cluster(&mut locker, command, report),
        Command::Run {
            expire,
            wait,
            conflict_exit_code,
            kill_after,
            shared,
            limit,
            shell,
            command,
            ..
        } => {
            let command = match shell {
                Some(shell) => vec!["sh".into(), "-c".into(), shell],
                None => command,
            };
            let options = run::Options {
                expire,
                wait,
                conflict_exit_code,
                kill_after,
                shared: shared || limit.is_some(),
            };
            return run::run(locker, &options, &command, report);
        }
        Command::Identity(_) | Command::Chart { .. } => unreachable!("answered above"),
    };
    match outcome {
        Ok(outcome) => outcome as u8,
        Err(e) => report.fail(&e),
    }
}

fn with_id(builder: LockerBuilder, id: Option<String>) -> LockerBuilder {
    match id {
        Some(id) => builder.id(id),
        None => builder,
    }
}

/// `dlm identity new NAME --dir DIR`.
fn identity_new(name: &str, dir: &std::path::Path, report: Report) -> u8 {
    match jackrabbit_dlm::client::identity::write_identity_file(dir, name) {
        Ok(path) => {
            report.answer(
                &format!("Wrote {}", path.display()),
                json!({"Status": "Done", "Name": name, "File": path.display().to_string()}),
            );
            Outcome::Success as u8
        }
        Err(e) => {
            eprintln!("dlm: {e}");
            match e.kind() {
                ErrorKind::Config(_) => Outcome::Usage as u8,
                _ => Outcome::Server as u8,
            }
        }
    }
}

/// `dlm chart LOG -o FILE.svg`.
fn chart(log: &std::path::Path, output: &std::path::Path, report: Report) -> u8 {
    let text = match std::fs::read(log) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("dlm: cannot read {}: {e}", log.display());
            return Outcome::Usage as u8;
        }
    };
    let samples = chart::samples(&text);
    let title = format!("{} ({} statistics lines)", log.display(), samples.len());
    match chart::draw(&samples, output, &title) {
        Ok(counters) => {
            report.answer(
                &format!(
                    "Drew {counters} counters over {} lines into {}",
                    samples.len(),
                    output.display()
                ),
                json!({"Status": "Done", "Lines": samples.len(), "Counters": counters,
                       "File": output.display().to_string()}),
            );
            Outcome::Success as u8
        }
        Err(e) => {
            eprintln!("dlm: cannot chart {}: {e}", log.display());
            Outcome::Usage as u8
        }
    }
}

/// What a refusal adds when this invocation's ID was drawn at random: the
/// likeliest reason for `NotOwner`, and the fix.
const DRAWN_ID_HINT: &str = "; this dlm acted as a fresh random ID, which owns nothing an \
earlier dlm took: give every command that must act as one owner the same --id \
(or set DLM_ID)";

/// How answers are shown.
#[derive(Debug, Clone, Copy)]
struct Report {
    json: bool,
    /// The ID was drawn at random for this invocation.
    drawn: bool,
}

impl Report {
    /// Says why a request failed, in one line, and picks the exit status.
    fn fail(self, error: &Error) -> u8 {
        eprintln!("dlm: {error}{}", self.hint(error.status()));
        Outcome::of(error) as u8
    }

    /// The drawn-ID hint, for a `NotOwner` when the ID was drawn.
    fn hint(self, status: Option<Status>) -> &'static str {
        if self.drawn && status == Some(Status::NotOwner) {
            DRAWN_ID_HINT
        } else {
            ""
        }
    }

    /// Prints an answer: `fields` as one JSON object with `--json`, else
    /// `plain` as a line (nothing if `plain` is empty).
    fn answer(self, plain: &str, fields: Value) {
        let mut out = io::stdout().lock();
        let _ = if self.json {
            writeln!(out, "{fields}")
        } else if plain.is_empty() {
            Ok(())
        } else {
            writeln!(out, "{plain}")
        };
    }

    /// An answer that ends in exit status 1: `why` on stderr, and the
    /// server's status on stdout with `--json`.
    fn refused(self, why: &str, fields: Value) -> Outcome {
        let status = fields["Status"].as_str().and_then(Status::from_wire);
        if self.json {
            self.answer("", fields);
        }
        eprintln!("dlm: {why}{}", self.hint(status));
        Outcome::Refused
    }

    /// The data item is absent (`NotFound`): exit status 1.
    fn no_item(self, locker: &Locker) -> Outcome {
        self.refused(
            &format!("{:?} has no data item", locker.name()),
            json!({"Status": "NotFound", "Name": locker.name()}),
        )
    }

    /// A failed request: as [`Report::refused`] when the server said
    /// `NotOwner` or `NotFound`, else the error as it is.
    fn refusal(self, locker: &Locker, error: Error) -> Result<Outcome, Error> {
        match error.status() {
            Some(status @ (Status::NotOwner | Status::NotFound)) => Ok(self.refused(
                &error.to_string(),
                json!({"Status": status.as_str(), "Name": locker.name()}),
            )),
            _ => Err(error),
        }
    }
}

fn lock(
    locker: &mut Locker,
    expire: Duration,
    shared: bool,
    report: Report,
) -> Result<Outcome, Error> {
    let taken = if shared {
        locker.try_lock_shared(expire)
    } else {
        locker.try_lock(expire)
    };
    match taken {
        Ok(token) => {
            let mode = if shared { ", shared" } else { "" };
            let plain = match token {
                Some(token) => format!(
                    "Locked {} (token {token}, ID {}{mode})",
                    locker.name(),
                    locker.id()
                ),
                None => format!(
                    "Locked {} (no token, ID {}{mode})",
                    locker.name(),
                    locker.id()
                ),
            };
            let mut fields = json!({"Status": "Locked", "Name": locker.name(), "ID": locker.id(),
                                    "Token": token.map(|t| t.get())});
            if shared {
                fields["Mode"] = json!("Shared");
            }
            report.answer(&plain, fields);
            Ok(Outcome::Success)
        }
        Err(e) => report.refusal(locker, e),
    }
}

fn unlock(locker: &mut Locker, report: Report) -> Result<Outcome, Error> {
    match locker.unlock() {
        Ok(true) => {
            report.answer(
                &format!("Unlocked {}", locker.name()),
                json!({"Status": "Unlocked", "Name": locker.name(), "Released": true}),
            );
            Ok(Outcome::Success)
        }
        Ok(false) => Ok(report.refused(
            &format!("{:?} was not locked", locker.name()),
            json!({"Status": "Unlocked", "Name": locker.name(), "Released": false}),
        )),
        Err(e) => report.refusal(locker, e),
    }
}

fn test(locker: &mut Locker, report: Report) -> Result<Outcome, Error> {
    let status = locker.test_lock()?;
    let fields = json!({"Status": status.as_str(), "Name": locker.name()});
    let name = locker.name();
    Ok(match status {
        Status::Locked => {
            report.answer(&format!("{name:?} is locked by this ID"), fields);
            Outcome::Success
        }
        Status::NotOwner => report.refused(&format!("{name:?} is locked by another ID"), fields),
        _ => report.refused(&format!("{name:?} is not locked"), fields),
    })
}

fn put(
    locker: &mut Locker,
    value: &str,
    expire: Duration,
    report: Report,
) -> Result<Outcome, Error> {
    // Any bytes; the codec says whether it can store them (identity takes
    // UTF-8 text only).
    let value = if value == "-" {
        let mut bytes = Vec::new();
        if let Err(e) = io::stdin().read_to_end(&mut bytes) {
            eprintln!("dlm: cannot read the value from stdin: {e}");
            return Ok(Outcome::Usage);
        }
        bytes
    } else {
        value.as_bytes().to_vec()
    };
    match locker.put(&value, expire) {
        Ok(()) => {
            report.answer(
                &format!("Stored {}", locker.name()),
                json!({"Status": "Done", "Name": locker.name(), "ID": locker.id()}),
            );
            Ok(Outcome::Success)
        }
        Err(e) if matches!(e.kind(), ErrorKind::Codec(_)) => {
            eprintln!("dlm: {e} (try --codec table or base64 for bytes that are not UTF-8)");
            Ok(Outcome::Usage)
        }
        Err(e) => report.refusal(locker, e),
    }
}

fn get(locker: &mut Locker, report: Report) -> Result<Outcome, Error> {
    match locker.get() {
        Ok(Some(value)) => {
            if report.json {
                let text = String::from_utf8_lossy(&value);
                report.answer(
                    "",
                    json!({"Status": "Done", "Name": locker.name(), "Value": text}),
                );
            } else {
                // Byte for byte, so `dlm get x > f` gives back what
                // `dlm put x - < f` stored.
                let mut out = io::stdout().lock();
                let _ = out.write_all(&value).and_then(|()| out.flush());
            }
            Ok(Outcome::Success)
        }
        Ok(None) => Ok(report.no_item(locker)),
        Err(e) => report.refusal(locker, e),
    }
}

fn erase(locker: &mut Locker, report: Report) -> Result<Outcome, Error> {
    match locker.erase() {
        Ok(true) => {
            report.answer(
                &format!("Erased {}", locker.name()),
                json!({"Status": "Done", "Name": locker.name()}),
            );
            Ok(Outcome::Success)
        }
        Ok(false) => Ok(report.no_item(locker)),
        Err(e) => report.refusal(locker, e),
    }
}

fn version(locker: &mut Locker, report: Report) -> Result<Outcome, Error> {
    let version = locker.version()?;
    report.answer(&version, json!({"Status": "Version", "ID": version}));
    Ok(Outcome::Success)
}

fn cluster(locker: &mut Locker, command: ClusterCommand, report: Report) -> Result<Outcome, Error> {
    match command {
        ClusterCommand::Status => {
            let m = locker.members()?;
            let voters: Vec<String> = m.voters.iter().map(u64::to_string).collect();
            let mut plain = vec![
                format!("node: {}", m.node_id),
                format!("leader: {}", m.leader),
                format!("term: {}", m.term),
                format!("voters: {}", voters.join(",")),
            ];
            plain.extend(
                m.peers
                    .iter()
                    .map(|(id, addr)| format!("member {id}: {addr}")),
            );
            let peers: serde_json::Map<String, Value> = m
                .peers
                .iter()
                .map(|(id, addr)| (id.to_string(), Value::from(addr.as_str())))
                .collect();
            let json = serde_json::json!({
                "Status": "Members",
                "NodeId": m.node_id,
                "Leader": m.leader,
                "Term": m.term,
                "Voters": m.voters,
                "Peers": peers,
            });
            report.answer(&plain.join("\n"), json);
        }
        ClusterCommand::Add { member: (id, addr) } => {
            locker.add_member(id, &addr)?;
            report.answer(
                &format!("member {id} added at {addr}: start it with --join"),
                serde_json::json!({"Status": "Done", "Added": id, "Address": addr}),
            );
        }
        ClusterCommand::Remove { member: id } => {
            locker.remove_member(id)?;
            report.answer(
                &format!("member {id} removed: stop it"),
                serde_json::json!({"Status": "Done", "Removed": id}),
            );
        }
    }
    Ok(Outcome::Success)
}

fn stats(locker: &mut Locker, report: Report) -> Result<Outcome, Error> {
    let counters: BTreeMap<String, u64> = locker.stats()?;
    let plain: Vec<String> = counters
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    let mut fields = serde_json::Map::new();
    fields.insert("Status".to_owned(), Value::from("Stats"));
    fields.extend(
        counters
            .into_iter()
            .map(|(name, value)| (name, Value::from(value))),
    );
    report.answer(&plain.join("\n"), Value::Object(fields));
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_asks_for_the_table_encoding_anywhere_on_the_line() {
        let encoding = |args: &[&str]| Cli::try_parse_from(args).unwrap().encoding;
        assert_eq!(encoding(&["dlm", "version"]), Encoding::Plain);
        assert_eq!(encoding(&["dlm", "--encoded", "version"]), Encoding::Table);
        assert_eq!(encoding(&["dlm", "get", "x", "--encoded"]), Encoding::Table);
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_a_shell_command_or_a_command_but_not_both() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|cli| cli.command);
        let base = ["dlm", "run", "x", "--expire", "3"];
        let shell = parse(&[&base[..], &["-c", "echo hi"]].concat()).unwrap();
        assert!(matches!(shell, Command::Run { shell: Some(_), .. }));
        assert!(parse(&[&base[..], &["--", "true"]].concat()).is_ok());
        assert!(parse(&base).is_err(), "neither");
        assert!(
            parse(&[&base[..], &["-c", "true", "--", "true"]].concat()).is_err(),
            "both"
        );
    }
}
