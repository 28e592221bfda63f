//! The Rust client: a [`Locker`] names one lock (and the data item of the
//! same name) on a Jackrabbit DLM server and speaks the protocol for it.
//!
//! It offers what the Python `Locker` offers, in Rust's terms: results
//! instead of status strings, a typed [`Error`], a guard that releases the
//! lock when it goes out of scope, and a [`ValueCodec`] for stored values.
//!
//! ```no_run
//! use std::time::Duration;
//! use jackrabbit_dlm::client::Locker;
//!
//! let mut jobs = Locker::builder("jobs").host("127.0.0.1").port(37373).build()?;
//! {
//!     let guard = jobs.lock_guard(Duration::from_secs(30))?;
//!     println!("holding jobs with fencing token {}", guard.token());
//! } // released here, also on panic
//! # Ok::<(), jackrabbit_dlm::client::Error>(())
//! ```
//!
//! # The connection
//!
//! A `Locker` connects on its first request and keeps that one connection
//! (with `TCP_NODELAY`) for every later request. It never reconnects behind
//! a request's back more than once, and only when doing so cannot change
//! what the request means:
//!
//! - Before reusing the connection it checks, without blocking, that the
//!   server has not closed it. A server that restarted or dropped an idle
//!   connection is noticed here, before anything is sent, and the request
//!   goes out on a new connection.
//! - If sending fails, the server never saw a complete line, so it did not
//!   act: reconnect and send again.
//! - If the connection closes after the request went out and before the
//!   reply came back, the server may have acted. `Lock`, `TestLock`, `Put`,
//!   `Get`, `Version` and `Stats` are sent again: for a fixed ID, doing them
//!   twice leaves the same state and gives the same answer as doing them
//!   once (a second `Lock` by the holder keeps the hold and its token).
//!   `Unlock` and `Erase` are not: if the first copy did release or erase,
//!   another ID may have taken the name since, and the repeat would answer
//!   `NotOwner` for a release that happened. The caller gets the I/O error
//!   instead, and the next call starts on a new connection.
//! - A read timeout is never followed by a resend: the reply may still be on
//!   its way, so the connection is dropped.
//!
//! # Patience
//!
//! [`Locker::lock`] is the patient mode of the Python client: on a
//! connection failure or `NotOwner` it sleeps
//! [`retry_sleep`](LockerBuilder::retry_sleep) and tries again, up to
//! [`retries`](LockerBuilder::retries) more times. [`Locker::try_lock`]
//! tries once. [`Locker::lock_wait`] lets the server do the waiting: the
//! request queues, first come first served, and is answered the moment the
//! lock is free.

#![deny(missing_docs)]

mod codec;
mod connection;
mod error;
mod guard;
mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::thread;
use std::time::Duration;

pub use self::codec::{Base64, FnCodec, Identity, Table, ValueCodec};
pub use self::error::{BoxError, Error, ErrorKind};
pub use self::guard::LockGuard;
pub use self::wire::Encoding;
pub use crate::protocol::reply::Status;

use self::codec::ErasedCodec;
use self::connection::{Connection, Failure};
use self::wire::{Reply, Request};
use crate::protocol::request::Action;

/// The server's default port.
pub const DEFAULT_PORT: u16 = 37373;

/// The fencing token of a hold: strictly greater for every new hold the
/// server grants. A resource guarded by the lock rejects writes that carry a
/// token lower than the highest it has seen.
pub type FencingToken = u64;

/// A client for one lock and the data item of the same name.
///
/// Built with [`Locker::builder`]. Every request carries the locker's ID,
/// which owns whatever the locker locks or stores; another `Locker` with the
/// same ID is the same owner as far as the server is concerned.
pub struct Locker {
    name: String,
    id: String,
    encoding: Encoding,
    retries: u32,
    retry_sleep: Duration,
    codec: Box<dyn ErasedCodec>,
    token: Option<FencingToken>,
    link: Link,
}

impl fmt::Debug for Locker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locker")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("server", &self.link.server())
            .field("encoding", &self.encoding)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Locker {
    /// Starts building a locker for the lock (and data item) `name`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use jackrabbit_dlm::client::{Base64, Encoding, Locker};
    ///
    /// // Like the Python client's Locker("jobs", Retry=7, RetrySleep=1),
    /// // with binary values stored as base64 and table-encoded lines.
    /// let mut jobs = Locker::builder("jobs")
    ///     .host("dlm.internal")
    ///     .port(37373)
    ///     .retries(7)
    ///     .retry_sleep(Duration::from_secs(1))
    ///     .timeout(Duration::from_secs(5))
    ///     .encoding(Encoding::Table)
    ///     .codec(Base64)
    ///     .build()?;
    /// jobs.put([0u8, 255, 7], Duration::from_secs(60))?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn builder(name: impl Into<String>) -> LockerBuilder {
        LockerBuilder {
            name: name.into(),
            id: None,
            host: "127.0.0.1".to_owned(),
            port: DEFAULT_PORT,
            timeout: Duration::from_secs(10),
            retries: 7,
            retry_sleep: Duration::from_secs(1),
            encoding: Encoding::Plain,
            codec: Box::new(Identity),
        }
    }

    /// The lock's (and data item's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ID this locker acts as.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fencing token of the current hold, if this locker holds the lock
    /// as far as it knows (it learns otherwise from the server's answers,
    /// not from the clock).
    pub fn token(&self) -> Option<FencingToken> {
        self.token
    }

    /// Takes or renews the lock for `expire`, patiently: a connection failure
    /// or `NotOwner` is retried up to the configured number of times, with
    /// the configured sleep in between. Returns the hold's fencing token.
    ///
    /// Renewing a hold this ID already has resets its TTL and keeps its
    /// token.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// let token = locker.lock(Duration::from_secs(30))?;
    /// assert_eq!(locker.token(), Some(token));
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock(&mut self, expire: Duration) -> Result<FencingToken, Error> {
        let mut retries_left = self.retries;
        loop {
            match self.try_lock(expire) {
                Err(e) if retries_left > 0 && (e.is_io() || e.is_not_owner()) => {
                    retries_left -= 1;
                    thread::sleep(self.retry_sleep);
                }
                outcome => return outcome,
            }
        }
    }

    /// Takes or renews the lock for `expire` with a single request: fails at
    /// once with `NotOwner` if another ID holds it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// match locker.try_lock(Duration::from_secs(30)) {
    ///     Ok(token) => println!("ours, token {token}"),
    ///     Err(e) if e.is_not_owner() => println!("busy, try later"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn try_lock(&mut self, expire: Duration) -> Result<FencingToken, Error> {
        self.acquire(expire, None)
    }

    /// Takes or renews the lock for `expire`, waiting up to `wait` while
    /// another ID holds it: the server parks the request in the lock's
    /// first-come-first-served queue and grants it (with a new token) as
    /// soon as the lock is released or expires. Fails with `NotOwner` when
    /// `wait` runs out, with `BadPayload` when `wait` is above the server's
    /// maximum TTL. A zero `wait` is [`try_lock`](Locker::try_lock).
    ///
    /// Uses the server's `Wait` extension: one request, no polling. The
    /// reply timeout is extended by `wait`.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::Locker;
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// // Queue for up to 10 s, then hold for 30 s.
    /// let token = locker.lock_wait(Duration::from_secs(30), Duration::from_secs(10))?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock_wait(&mut self, expire: Duration, wait: Duration) -> Result<FencingToken, Error> {
        self.acquire(expire, Some(wait).filter(|w| !w.is_zero()))
    }

    /// One `Lock` request, with the `Wait` extension if `wait` is given.
    fn acquire(&mut self, expire: Duration, wait: Option<Duration>) -> Result<FencingToken, Error> {
        let reply = self.request(Action::Lock, Some(expire), wait, None)?;
        match reply.status {
            Status::Locked => {
                let token = reply.token().ok_or_else(|| {
                    Error::protocol("a Locked reply without a Token (no fencing-token extension?)")
                })?;
                self.token = Some(token);
                Ok(token)
            }
            status => {
                if status == Status::NotOwner {
                    self.token = None;
                }
                Err(self.refused(Action::Lock, status))
            }
        }
    }

    /// Takes the lock patiently, like [`lock`](Locker::lock), and returns a
    /// guard that releases it when dropped (also while unwinding from a
    /// panic). The guard dereferences to the locker, so the data item can be
    /// used while holding it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// let mut guard = locker.lock_guard(Duration::from_secs(30))?;
    /// let token = guard.token();
    /// guard.put(format!("written under token {token}"), Duration::from_secs(60))?;
    /// drop(guard); // released
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock_guard(&mut self, expire: Duration) -> Result<LockGuard<'_>, Error> {
        let token = self.lock(expire)?;
        Ok(LockGuard::new(self, token))
    }

    /// Asks who holds the lock without changing anything: `Locked` (this
    /// ID), `Unlocked` (nobody) or `NotOwner` (another ID).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// match locker.test_lock()? {
    ///     Status::Locked => println!("held by this ID"),
    ///     Status::Unlocked => println!("free"),
    ///     _ => println!("held by another ID"),
    /// }
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn test_lock(&mut self) -> Result<Status, Error> {
        let reply = self.request(Action::TestLock, None, None, None)?;
        match reply.status {
            Status::Locked => Ok(Status::Locked),
            status @ (Status::Unlocked | Status::NotOwner) => {
                self.token = None;
                Ok(status)
            }
            status => Err(self.refused(Action::TestLock, status)),
        }
    }

    /// Releases the lock. Returns `true` if this ID held it, `false` if
    /// nobody did (it had expired); fails with `NotOwner` if another ID
    /// holds it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// locker.lock(Duration::from_secs(30))?;
    /// assert!(locker.unlock()?, "released a hold of ours");
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn unlock(&mut self) -> Result<bool, Error> {
        let reply = self.request(Action::Unlock, None, None, None)?;
        match reply.status {
            Status::Unlocked => {
                self.token = None;
                Ok(reply.id().is_some())
            }
            status => {
                if status == Status::NotOwner {
                    self.token = None;
                }
                Err(self.refused(Action::Unlock, status))
            }
        }
    }

    /// Stores `value` (through the codec) as the data item for `expire`,
    /// creating it or replacing this ID's value and TTL. Fails with
    /// `NotOwner` if another ID owns the item, and with `NO` if the server's
    /// memory guard refuses it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// locker.put("v1", Duration::from_secs(60))?;
    /// assert_eq!(locker.get()?.as_deref(), Some(&b"v1"[..]));
    /// assert!(locker.erase()?);
    /// assert_eq!(locker.get()?, None);
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn put(&mut self, value: impl AsRef<[u8]>, expire: Duration) -> Result<(), Error> {
        let text = self
            .codec
            .encode_value(value.as_ref())
            .map_err(Error::codec)?;
        let reply = self.request(Action::Put, Some(expire), None, Some(&text))?;
        match reply.status {
            Status::Done => Ok(()),
            status => Err(self.refused(Action::Put, status)),
        }
    }

    /// Reads the data item, decoded by the codec: `None` if there is none.
    /// Fails with `NotOwner` if another ID owns it.
    pub fn get(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let mut reply = self.request(Action::Get, None, None, None)?;
        match reply.status {
            Status::Done => {
                let text = reply
                    .take_data()
                    .ok_or_else(|| Error::protocol("a Get reply without a DataStore string"))?;
                self.codec
                    .decode_value(&text)
                    .map(Some)
                    .map_err(Error::codec)
            }
            Status::NotFound => Ok(None),
            status => Err(self.refused(Action::Get, status)),
        }
    }

    /// Removes the data item. Returns `true` if it was there, `false` if not;
    /// fails with `NotOwner` if another ID owns it.
    pub fn erase(&mut self) -> Result<bool, Error> {
        let reply = self.request(Action::Erase, None, None, None)?;
        match reply.status {
            Status::Done => Ok(true),
            Status::NotFound => Ok(false),
            status => Err(self.refused(Action::Erase, status)),
        }
    }

    /// The server's version string, e.g. `JackrabbitDLM/0.1.0`.
    pub fn version(&mut self) -> Result<String, Error> {
        let reply = self.request(Action::Version, None, None, None)?;
        match (reply.status, reply.id()) {
            (Status::Version, Some(version)) => Ok(version.to_owned()),
            (Status::Version, None) => Err(Error::protocol("a Version reply without an ID")),
            (status, _) => Err(self.refused(Action::Version, status)),
        }
    }

    /// Whether the server answers like a Jackrabbit DLM server. Any failure,
    /// including an unreachable server, is `false`.
    pub fn is_dlm(&mut self) -> bool {
        self.version().is_ok_and(|v| v.contains("JackrabbitDLM"))
    }

    /// The server's counters (`Lock`, `NotOwner`, `Connections`, ...) by
    /// name: the `Stats` extension.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// println!("talking to {}", locker.version()?);
    /// println!("{} locks alive", locker.stats()?["ALock"]);
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn stats(&mut self) -> Result<BTreeMap<String, u64>, Error> {
        let reply = self.request(Action::Stats, None, None, None)?;
        match reply.status {
            Status::Stats => Ok(reply
                .counters()
                .map(|(name, value)| (name.to_owned(), value))
                .collect()),
            status => Err(self.refused(Action::Stats, status)),
        }
    }

    /// Sends one request for this locker's name and ID and reads its reply.
    fn request(
        &mut self,
        action: Action,
        expire: Option<Duration>,
        wait: Option<Duration>,
        data: Option<&str>,
    ) -> Result<Reply, Error> {
        let request = Request {
            action,
            id: &self.id,
            name: &self.name,
            expire,
            wait,
            data,
        };
        self.link.round_trip(&request, self.encoding)
    }

    fn refused(&self, action: Action, status: Status) -> Error {
        Error::status_of(action, &self.name, status)
    }
}

/// Configures a [`Locker`]; made by [`Locker::builder`].
pub struct LockerBuilder {
    name: String,
    id: Option<String>,
    host: String,
    port: u16,
    timeout: Duration,
    retries: u32,
    retry_sleep: Duration,
    encoding: Encoding,
    codec: Box<dyn ErasedCodec>,
}

impl fmt::Debug for LockerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockerBuilder")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl LockerBuilder {
    /// The ID to act as (1 to 1024 bytes). Default: a fresh random URL-safe
    /// string of 37 to 72 characters, so no two lockers share an owner by
    /// accident. Lockers given the same ID are one owner.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The server's host name or address. Default `127.0.0.1`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The server's port. Default [`DEFAULT_PORT`].
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The limit on connecting, and on waiting for each reply. Default 10 s.
    /// A zero duration is taken as one millisecond.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How many more times [`Locker::lock`] tries after a connection failure
    /// or `NotOwner`. Default 7.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// How long [`Locker::lock`] sleeps between tries. Default 1 s.
    pub fn retry_sleep(mut self, retry_sleep: Duration) -> Self {
        self.retry_sleep = retry_sleep;
        self
    }

    /// Plain JSON or table-encoded request lines. Default plain.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The codec for stored values. Default [`Identity`] (UTF-8 text).
    pub fn codec(mut self, codec: impl ValueCodec + 'static) -> Self {
        self.codec = Box::new(codec);
        self
    }

    /// The codec for stored values, as two closures: see [`FnCodec`].
    ///
    /// ```
    /// use jackrabbit_dlm::client::Locker;
    ///
    /// // Upper-case on the way out, lower-case on the way in.
    /// let locker = Locker::builder("shouting")
    ///     .codec_fns(
    ///         |v: &[u8]| Ok::<_, String>(String::from_utf8_lossy(v).to_uppercase()),
    ///         |t: &str| Ok(t.to_lowercase().into_bytes()),
    ///     )
    ///     .build()?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn codec_fns<E, D, Err>(self, encode: E, decode: D) -> Self
    where
        E: Fn(&[u8]) -> Result<String, Err> + Send + 'static,
        D: Fn(&str) -> Result<Vec<u8>, Err> + Send + 'static,
        Err: Into<BoxError> + 'static,
    {
        self.codec(FnCodec::new(encode, decode))
    }

    /// The locker. It connects on its first request.
    ///
    /// Fails only if no ID was given and the operating system's random
    /// source cannot provide one.
    pub fn build(self) -> Result<Locker, Error> {
        let id = match self.id {
            Some(id) => id,
            None => random_id()?,
        };
        Ok(Locker {
            name: self.name,
            id,
            encoding: self.encoding,
            retries: self.retries,
            retry_sleep: self.retry_sleep,
            codec: self.codec,
            token: None,
            link: Link {
                host: self.host,
                port: self.port,
                timeout: self.timeout,
                connection: None,
                line: Vec::new(),
                scratch: Vec::new(),
                reply: Vec::new(),
            },
        })
    }
}

/// A fresh random ID: 37 to 72 characters of the URL-safe base64 alphabet.
fn random_id() -> Result<String, Error> {
    const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut random = [0u8; 1 + 72];
    getrandom::fill(&mut random).map_err(|e| {
        Error::io(
            "the OS random source".to_owned(),
            "read",
            std::io::Error::other(e),
        )
    })?;
    // 36 lengths from one byte: lengths 37 to 40 are a shade likelier than
    // the rest, which costs nothing that matters (every ID has at least
    // 37 * 6 = 222 random bits).
    let len = 37 + usize::from(random[0]) % 36;
    Ok(random[1..=len]
        .iter()
        .map(|&b| char::from(URL_SAFE[usize::from(b & 63)]))
        .collect())
}

/// The connection to the server and the buffers a round trip reuses.
struct Link {
    host: String,
    port: u16,
    timeout: Duration,
    connection: Option<Connection>,
    line: Vec<u8>,
    scratch: Vec<u8>,
    reply: Vec<u8>,
}

impl Link {
    /// `host:port`, for messages.
    fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Sends `request` and reads its reply, reconnecting and resending at
    /// most once, as the module documentation describes.
    fn round_trip(&mut self, request: &Request<'_>, encoding: Encoding) -> Result<Reply, Error> {
        self.line.clear();
        request.write_line(encoding, &mut self.line, &mut self.scratch);
        // A waiting Lock is held back by the server on purpose.
        let read_timeout = self
            .timeout
            .saturating_add(request.wait.unwrap_or_default());
        let mut may_resend = true;
        loop {
            let connection = match self.connection.take() {
                Some(c) if c.is_usable() => c,
                _ => Connection::open(&self.host, self.port, self.timeout)
                    .map_err(|e| Error::io(self.server(), "connect to", e))?,
            };
            let connection = self.connection.insert(connection);
            let (resend, error) =
                match connection.round_trip(&self.line, &mut self.reply, read_timeout) {
                    Ok(()) => return Reply::parse(&self.reply, encoding),
                    Err(Failure::NotSent(e)) => (true, Error::io(self.server(), "send to", e)),
                    Err(Failure::Closed(e)) => (
                        replay_is_safe(request.action),
                        Error::io(self.server(), "receive from", e),
                    ),
                    Err(Failure::Broken(e)) => (false, Error::io(self.server(), "receive from", e)),
                };
            self.connection = None;
            if !(resend && may_resend) {
                return Err(error);
            }
            may_resend = false;
        }
    }
}

/// Whether a request that may already have been applied can be sent again
/// without changing what its answer means (see the module documentation).
fn replay_is_safe(action: Action) -> bool {
    !matches!(action, Action::Unlock | Action::Erase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_url_safe_and_sized() {
        for _ in 0..200 {
            let id = random_id().unwrap();
            assert!((37..=72).contains(&id.len()), "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        assert_ne!(random_id().unwrap(), random_id().unwrap());
    }

    #[test]
    fn an_unreachable_server_is_an_io_error_naming_it() {
        // A port that was free a moment ago: nothing listens there.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut locker = Locker::builder("x").port(port).build().unwrap();
        let err = locker.version().unwrap_err();
        assert!(err.is_io(), "{err}");
        let expected = format!("connect to 127.0.0.1:{port}:");
        assert!(err.to_string().starts_with(&expected), "{err}");
        assert!(!locker.is_dlm());
    }

    /// A scripted server: for each connection it accepts in turn, reads one
    /// request line, then answers with the script's line or, for `None`,
    /// closes without answering. Returns the requests it read.
    fn scripted_server(
        script: Vec<Option<&'static str>>,
    ) -> (u16, thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let mut requests = Vec::new();
            for answer in script {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                requests.push(line);
                if let Some(answer) = answer {
                    reader.get_mut().write_all(answer.as_bytes()).unwrap();
                    reader.get_mut().write_all(b"\n").unwrap();
                }
            }
            requests
        });
        (port, server)
    }

    const VERSION_REPLY: &str = r#"{"Status":"Version","ID":"JackrabbitDLM/test"}"#;

    #[test]
    fn a_lost_reply_to_a_safe_request_is_asked_again_once() {
        let (port, server) = scripted_server(vec![None, Some(VERSION_REPLY)]);
        let mut locker = Locker::builder("x").port(port).build().unwrap();
        assert_eq!(locker.version().unwrap(), "JackrabbitDLM/test");
        let requests = server.join().unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0], requests[1]);
    }

    #[test]
    fn a_second_lost_reply_is_an_error() {
        let (port, server) = scripted_server(vec![None, None]);
        let mut locker = Locker::builder("x").port(port).build().unwrap();
        let err = locker.version().unwrap_err();
        assert!(err.is_io(), "{err}");
        assert_eq!(server.join().unwrap().len(), 2);
    }

    #[test]
    fn a_lost_reply_to_unlock_or_erase_is_not_asked_again() {
        // The second connection is answered only if the client asks again
        // after the failed call; here it asks Version, not Unlock or Erase.
        let (port, server) = scripted_server(vec![None, None, Some(VERSION_REPLY)]);
        let mut locker = Locker::builder("x").port(port).build().unwrap();
        assert!(locker.unlock().unwrap_err().is_io());
        assert!(locker.erase().unwrap_err().is_io());
        assert!(locker.is_dlm());
        let requests = server.join().unwrap();
        assert!(requests[0].contains("\"Unlock\""), "{requests:?}");
        assert!(requests[1].contains("\"Erase\""), "{requests:?}");
        assert!(requests[2].contains("\"Version\""), "{requests:?}");
    }

    #[test]
    fn status_errors_name_action_item_and_status() {
        let err = Error::status_of(Action::Lock, "jobs", Status::NotOwner);
        assert_eq!(
            err.to_string(),
            r#"Lock "jobs": owned by another ID (NotOwner)"#
        );
        assert!(err.is_not_owner());
        let err = Error::status_of(Action::Put, "big", Status::No);
        assert_eq!(err.status(), Some(Status::No));
        assert!(err.to_string().ends_with("memory guard (NO)"), "{err}");
    }
}
