//! `dlm`: the Jackrabbit DLM from the shell.
//!
//! One subcommand per protocol action, built on [`jackrabbit_dlm::client`],
//! plus `dlm run`, a distributed `flock(1)` (see `run.rs`). Answers go to
//! stdout (plain, or one JSON object with `--json`); anything that is not
//! success is one line on stderr and an exit status a script can branch on.

mod generate;
mod run;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::{BoolishValueParser, TypedValueParser as _};
use clap::{ArgAction, Parser, Subcommand};
use serde_json::{Value, json};

use jackrabbit_dlm::client::{DEFAULT_PORT, Encoding, Error, ErrorKind, Locker, Status};

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the lock or item is owned by another ID, or absent
  2  usage error (also a request the server rejects as malformed)
  3  the server cannot be reached or the connection broke
  4  the server refused for another reason (memory guard, unknown action)
     or did not answer in the protocol
`dlm run` exits with COMMAND's status instead (128 + N if signal N ended it).";

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
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: String,

    /// The server's port.
    #[arg(long, global = true, default_value_t = DEFAULT_PORT)]
    port: u16,

    /// The ID to act as [default: $DLM_ID, else a fresh random ID].
    #[arg(long, global = true)]
    id: Option<String>,

    /// Send table-encoded request lines instead of plain JSON.
    #[arg(
        long = "encoded",
        global = true,
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new().map(Encoding::table_when)
    )]
    encoding: Encoding,

    /// Print answers as one JSON object per command, for scripts.
    #[arg(long, global = true)]
    json: bool,

    /// Seconds to wait for the connection and for each reply.
    #[arg(long, global = true, value_name = "S", default_value = "10", value_parser = seconds)]
    timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Take or renew a lock.
    Lock {
        /// The lock's name.
        name: String,
        /// Seconds the hold lasts unless renewed.
        #[arg(long, value_name = "S", value_parser = positive_seconds)]
        expire: Duration,
        /// Take a share (beside other shared holders), like `flock -s`.
        #[arg(long)]
        shared: bool,
        /// With --shared: at most N holders at once (a semaphore).
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
        #[arg(long, value_name = "S", value_parser = positive_seconds)]
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
    /// $DLM_TOKEN. If the hold is lost, COMMAND gets SIGTERM.
    Run {
        /// The lock's name.
        name: String,
        /// Seconds the hold lasts unless renewed.
        #[arg(long, value_name = "S", value_parser = positive_seconds)]
        expire: Duration,
        /// Seconds to wait in the lock's queue before giving up (exit 1).
        #[arg(long, value_name = "S", default_value = "0", value_parser = seconds)]
        wait: Duration,
        /// Run while sharing the lock with other --shared runs (readers).
        #[arg(long)]
        shared: bool,
        /// At most N of these commands at once, across machines (implies
        /// --shared; every run of the semaphore must give the same N).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<OsString>,
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
        Command::Version | Command::Stats => "dlm".to_owned(),
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
    let from_env = || std::env::var("DLM_ID").ok().filter(|id| !id.is_empty());
    if let Some(id) = id.or_else(from_env) {
        builder = builder.id(id);
    }
    if let Some(limit) = limit {
        builder = builder.limit(limit);
    }
    let mut locker = match builder.build() {
        Ok(locker) => locker,
        Err(e) => return fail(&e),
    };
    let report = Report { json };
    let outcome = match command {
        Command::Lock { expire, shared, .. } => lock(&mut locker, expire, shared, report),
        Command::Unlock { .. } => unlock(&mut locker, report),
        Command::Test { .. } => test(&mut locker, report),
        Command::Put { value, expire, .. } => put(&mut locker, &value, expire, report),
        Command::Get { .. } => get(&mut locker, report),
        Command::Erase { .. } => erase(&mut locker, report),
        Command::Version => version(&mut locker, report),
        Command::Stats => stats(&mut locker, report),
        Command::Run {
            expire,
            wait,
            shared,
            limit,
            command,
            ..
        } => {
            let shared = shared || limit.is_some();
            return run::run(locker, expire, wait, shared, &command);
        }
    };
    match outcome {
        Ok(outcome) => outcome as u8,
        Err(e) => fail(&e),
    }
}

/// Says why a request failed, in one line, and picks the exit status.
fn fail(error: &Error) -> u8 {
    eprintln!("dlm: {error}");
    Outcome::of(error) as u8
}

/// How answers are shown.
#[derive(Debug, Clone, Copy)]
struct Report {
    json: bool,
}

impl Report {
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
        if self.json {
            self.answer("", fields);
        }
        eprintln!("dlm: {why}");
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
            let fields = if shared {
                json!({"Status": "Locked", "Name": locker.name(), "ID": locker.id(), "Token": token.get(), "Mode": "Shared"})
            } else {
                json!({"Status": "Locked", "Name": locker.name(), "ID": locker.id(), "Token": token.get()})
            };
            report.answer(
                &format!(
                    "Locked {} (token {token}, ID {}{})",
                    locker.name(),
                    locker.id(),
                    if shared { ", shared" } else { "" }
                ),
                fields,
            );
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
    let value = if value == "-" {
        let mut bytes = Vec::new();
        if let Err(e) = io::stdin().read_to_end(&mut bytes) {
            eprintln!("dlm: cannot read the value from stdin: {e}");
            return Ok(Outcome::Usage);
        }
        match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                eprintln!("dlm: the value on stdin is not UTF-8 text");
                return Ok(Outcome::Usage);
            }
        }
    } else {
        value.to_owned()
    };
    match locker.put(&value, expire) {
        Ok(()) => {
            report.answer(
                &format!("Stored {}", locker.name()),
                json!({"Status": "Done", "Name": locker.name(), "ID": locker.id()}),
            );
            Ok(Outcome::Success)
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
}
