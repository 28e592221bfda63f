//! [`Locker`]: one lock and the data item of the same name, as method calls.
//!
//! Each method is one request (or, for [`Locker::lock`], a patient series of
//! them) and turns the server's status into a result. What goes on the wire
//! is `wire`'s business, and when a request may be sent again is
//! `connection`'s; this module only decides what each answer means and what
//! the locker remembers of it (the token of its current hold).

use std::collections::BTreeMap;
use std::fmt;
use std::thread;
use std::time::Duration;

use super::builder::LockerBuilder;
use super::codec::ErasedCodec;
use super::connection::Link;
use super::guard::LockGuard;
use super::wire::{Reply, Request};
use super::{Error, FencingToken, Status};
use crate::protocol::action::Action;
use crate::protocol::codec::Encoding;

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
    /// The `Limit` of shared requests (see [`LockerBuilder::limit`]).
    pub(super) limit: Option<u32>,
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
        LockerBuilder::new(name.into())
    }

    /// A locker from a finished builder's parts; it connects on its first
    /// request.
    pub(super) fn new(
        name: String,
        id: String,
        encoding: Encoding,
        (retries, retry_sleep): (u32, Duration),
        codec: Box<dyn ErasedCodec>,
        link: Link,
    ) -> Locker {
        Locker {
            name,
            id,
            encoding,
            retries,
            retry_sleep,
            codec,
            token: None,
            link,
            limit: None,
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

    /// Takes or renews a share of the lock for `expire` (`"Mode":"Shared"`,
    /// with the builder's [`limit`](LockerBuilder::limit)): beside other
    /// shared holders, up to the lock's limit, never beside an exclusive
    /// one. Patient like [`lock`](Locker::lock): retries `NotOwner` and
    /// I/O failures. An exclusive hold of this ID converts to a share (a new
    /// token), and [`lock`](Locker::lock) converts a share back when this ID
    /// is the only holder.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::Locker;
    /// // At most 4 of these at once, across machines.
    /// let mut slot = Locker::builder("render-farm").limit(4).build()?;
    /// let token = slot.lock_shared(Duration::from_secs(30))?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock_shared(&mut self, expire: Duration) -> Result<FencingToken, Error> {
        let mut retries_left = self.retries;
        loop {
            match self.try_lock_shared(expire) {
                Err(e) if retries_left > 0 && (e.is_io() || e.is_not_owner()) => {
                    retries_left -= 1;
                    thread::sleep(self.retry_sleep);
                }
                outcome => return outcome,
            }
        }
    }

    /// A share of the lock with a single request, as
    /// [`try_lock`](Locker::try_lock) is for an exclusive hold.
    pub fn try_lock_shared(&mut self, expire: Duration) -> Result<FencingToken, Error> {
        self.acquire_in(expire, None, Some(self.limit))
    }

    /// A share of the lock, waiting up to `wait` in the lock's queue, as
    /// [`lock_wait`](Locker::lock_wait) does: the queue is first come first
    /// served for both modes, so shared requests never overtake an
    /// exclusive one waiting ahead of them.
    pub fn lock_shared_wait(
        &mut self,
        expire: Duration,
        wait: Duration,
    ) -> Result<FencingToken, Error> {
        self.acquire_in(
            expire,
            Some(wait).filter(|w| !w.is_zero()),
            Some(self.limit),
        )
    }

    /// A share taken like [`lock_shared`](Locker::lock_shared), as a guard
    /// that ends this ID's share (and only it) when dropped.
    pub fn lock_shared_guard(&mut self, expire: Duration) -> Result<LockGuard<'_>, Error> {
        let token = self.lock_shared(expire)?;
        Ok(LockGuard::new(self, token))
    }

    /// One `Lock` request, with the `Wait` extension if `wait` is given.
    fn acquire(&mut self, expire: Duration, wait: Option<Duration>) -> Result<FencingToken, Error> {
        self.acquire_in(expire, wait, None)
    }

    /// One `Lock` request: shared (with its `Limit`, if any) when `shared`
    /// is given, else exclusive.
    fn acquire_in(
        &mut self,
        expire: Duration,
        wait: Option<Duration>,
        shared: Option<Option<u32>>,
    ) -> Result<FencingToken, Error> {
        let request = Request {
            action: Action::Lock,
            id: &self.id,
            name: &self.name,
            expire: Some(expire),
            wait,
            data: None,
            shared,
        };
        let reply = self.link.round_trip(&request, self.encoding)?;
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
            shared: None,
        };
        self.link.round_trip(&request, self.encoding)
    }

    fn refused(&self, action: Action, status: Status) -> Error {
        Error::status_of(action, &self.name, status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
