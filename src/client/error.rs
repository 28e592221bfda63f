//! The one error type of the client, and what it can say about a failure.
//!
//! A call can fail in four ways, and callers react differently to each: the
//! network (retry later, maybe elsewhere), the server speaking something that
//! is not this protocol (a bug or the wrong port), the value codec (the
//! stored value is not what this codec expects), or an answer from the server
//! that means "no" (`NotOwner`, `NotFound`, the memory guard's `NO`, ...).
//! [`Error::kind`] tells them apart; [`Error::status`] picks out the last.

use std::fmt;
use std::io;

use crate::protocol::action::Action;
use crate::protocol::reply::Status;

/// A boxed error from a value codec or a closure given as one.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a client call failed.
///
/// The message (its `Display`) is one line that names the action, the lock or
/// item, and the server where that helps, e.g.
/// `Lock "jobs": owned by another ID (NotOwner)`.
///
/// ```no_run
/// use std::time::Duration;
/// use jackrabbit_dlm::client::{ErrorKind, Locker, Status};
///
/// let mut locker = Locker::builder("jobs").build()?;
/// match locker.try_lock(Duration::from_secs(30)) {
///     Ok(token) => println!("locked, token {token:?}"),
///     Err(e) if e.status() == Some(Status::NotOwner) => println!("busy"),
///     Err(e) if matches!(e.kind(), ErrorKind::Io { .. }) => println!("server down: {e}"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), jackrabbit_dlm::client::Error>(())
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

/// The kinds of [`Error`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Connecting to the server, sending to it or reading from it failed,
    /// including a read that timed out.
    Io {
        /// What it was talking to: the server as `host:port`.
        server: String,
        /// What the client was doing: `connect to`, `send to` or `receive from`.
        during: &'static str,
        /// The underlying failure.
        source: io::Error,
    },
    /// The server's reply is not a reply of the Jackrabbit DLM protocol.
    Protocol(String),
    /// The value codec could not encode a value or decode a stored one.
    Codec(BoxError),
    /// The client's settings cannot work: a `Name` that breaks the rule,
    /// an identity file that is not one, a Name without an Identity.
    Config(String),
    /// The server answered, and the answer means the request did not do what
    /// was asked (for example `NotOwner`).
    Status {
        /// The action the request asked for.
        action: Action,
        /// The lock or data item the request was about.
        name: String,
        /// The server's answer.
        status: Status,
    },
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The server's status, when the failure is an answer from the server.
    pub fn status(&self) -> Option<Status> {
        match self.kind {
            ErrorKind::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// Whether the server could not be reached or the connection broke.
    pub fn is_io(&self) -> bool {
        matches!(self.kind, ErrorKind::Io { .. })
    }

    /// Whether the lock or item is owned by another ID (`NotOwner`).
    pub fn is_not_owner(&self) -> bool {
        self.status() == Some(Status::NotOwner)
    }

    pub(crate) fn io(server: String, during: &'static str, source: io::Error) -> Error {
        Error {
            kind: ErrorKind::Io {
                server,
                during,
                source,
            },
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Protocol(message.into()),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Config(message.into()),
        }
    }

    pub(crate) fn codec(source: BoxError) -> Error {
        Error {
            kind: ErrorKind::Codec(source),
        }
    }

    pub(crate) fn status_of(action: Action, name: &str, status: Status) -> Error {
        Error {
            kind: ErrorKind::Status {
                action,
                name: name.to_owned(),
                status,
            },
        }
    }
}

/// What a status means when it is the reason a request failed.
fn meaning(status: Status) -> &'static str {
    match status {
        Status::NotOwner => "owned by another ID",
        Status::NotFound => "not found",
        Status::No => "refused by the server's memory guard",
        Status::BadPayload => "the server rejected the request as malformed",
        Status::BadAction => "the server does not know this action",
        Status::NoData => "the server has no data for it",
        Status::Corruption => "the server reports the stored value damaged",
        Status::Unavailable => "the cluster could not commit it in time; its effect is unknown",
        // Success statuses, and any the client does not expect here.
        _ => "unexpected answer",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Io {
                server,
                during,
                source,
            } => {
                if source.kind() == io::ErrorKind::WouldBlock
                    || source.kind() == io::ErrorKind::TimedOut
                {
                    write!(f, "{during} {server}: timed out")
                } else {
                    write!(f, "{during} {server}: {source}")
                }
            }
            ErrorKind::Protocol(message) => write!(f, "protocol error: {message}"),
            ErrorKind::Codec(source) => write!(f, "value codec: {source}"),
            ErrorKind::Config(message) => write!(f, "{message}"),
            ErrorKind::Status {
                action,
                name,
                status,
            } => write!(
                f,
                "{} {name:?}: {} ({})",
                action.name(),
                meaning(*status),
                status.as_str()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io { source, .. } => Some(source),
            ErrorKind::Codec(source) => Some(source.as_ref()),
            ErrorKind::Protocol(_) | ErrorKind::Config(_) | ErrorKind::Status { .. } => None,
        }
    }
}
